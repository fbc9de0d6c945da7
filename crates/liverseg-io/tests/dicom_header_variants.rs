//! Issue 17: the header layouts real archives hold beside the standard one
//! (no preamble, no meta group, no transfer syntax, a data set encoded
//! otherwise than its meta group says, an over-long meta value). Each
//! fixture is pydicom's CT_small.dcm rewritten by
//! `tools/golden/make_header_variants.py`, which checks that pydicom reads
//! the same pixels from it; here liverseg must read the same volume, affine
//! included, as from CT_small.dcm itself.

use liverseg_io::dicom::{self, ReadOptions};
use liverseg_io::{InputKind, detect};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/dicom")
        .join(name)
}

const VARIANTS: [&str; 6] = [
    "ct_small_no_meta_implicit.dcm",
    "ct_small_no_meta_explicit_be.dcm",
    "ct_small_no_preamble.dcm",
    "ct_small_meta_no_tsyntax.dcm",
    "ct_small_implicit_under_explicit.dcm",
    "ct_small_long_version_name.dcm",
];

#[test]
fn every_header_variant_reads_as_the_original() {
    let original = dicom::read::<f32>(&fixture("CT_small.dcm"), &ReadOptions::default()).unwrap();
    for name in VARIANTS {
        let path = fixture(name);
        assert_eq!(detect(&path).unwrap(), InputKind::DicomFile, "{name}");
        let v = dicom::read::<f32>(&path, &ReadOptions::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(v.dims(), original.dims(), "{name}");
        assert!(
            v.affine().max_abs_diff(original.affine()) < 1e-9,
            "{name}: {:?}",
            v.affine()
        );
        assert!(v.data() == original.data(), "{name}: pixels differ");
        let p = dicom::probe(&path).unwrap();
        assert_eq!(p.modality, "CT", "{name}");
        assert_eq!(p.rows, 128, "{name}");
    }
}

#[test]
fn the_transfer_syntax_comes_from_the_data_set_when_the_meta_group_is_wrong_or_absent() {
    for (name, ts) in [
        ("ct_small_no_meta_implicit.dcm", "1.2.840.10008.1.2"),
        ("ct_small_no_meta_explicit_be.dcm", "1.2.840.10008.1.2.2"),
        ("ct_small_meta_no_tsyntax.dcm", "1.2.840.10008.1.2.1"),
        ("ct_small_implicit_under_explicit.dcm", "1.2.840.10008.1.2"),
    ] {
        let p = dicom::probe(&fixture(name)).unwrap();
        assert_eq!(p.transfer_syntax_uid, ts, "{name}");
    }
}

#[test]
fn a_folder_of_headerless_files_reads_as_a_series() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture("ct_small_no_meta_implicit.dcm"),
        tmp.path().join("IM0001"),
    )
    .unwrap();
    // Files that are not DICOM are passed by, as before.
    std::fs::write(tmp.path().join("README"), "exported by a PACS\n").unwrap();
    let v = dicom::read::<f32>(tmp.path(), &ReadOptions::default()).unwrap();
    assert_eq!(v.dims(), [128, 128, 1]);
}

#[test]
fn text_is_still_neither_nifti_nor_dicom() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("notes.txt");
    std::fs::write(&path, "\x08\x00 looks like a tag for two bytes only").unwrap();
    let err = detect(&path).unwrap_err().to_string();
    assert!(err.contains("neither NIfTI"), "{err}");
}

/// pydicom's JPEGLSNearLossless_08.dcm is a 2-D image with no
/// ImagePositionPatient or ImageOrientationPatient (10 columns, 45 rows,
/// pixel sum 25000 as pydicom decodes it). By default it cannot be placed
/// and is refused; with `assume_geometry` it is read at the origin, axial,
/// 1 mm pixels, and the header says what was assumed.
#[test]
fn a_2d_image_without_position_needs_assume_geometry() {
    let path = fixture("JPEGLSNearLossless_08.dcm");
    let e = dicom::read::<f32>(&path, &ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("no ImagePositionPatient"), "{e}");
    let opts = ReadOptions {
        assume_geometry: true,
        ..ReadOptions::default()
    };
    let (v, header) = dicom::read_with_header::<f32>(&path, &opts).unwrap();
    assert_eq!(v.dims(), [10, 45, 1]);
    assert_eq!(v.data().iter().map(|&x| f64::from(x)).sum::<f64>(), 25000.0);
    // LPS axial at the origin is diag(-1, -1, 1) in RAS.
    let want = liverseg_io::Affine::from_spacing_origin([-1.0, -1.0, 1.0], [0.0; 3]);
    assert!(v.affine().max_abs_diff(&want) < 1e-12, "{:?}", v.affine());
    let what = header.assumed_geometry.unwrap();
    assert!(what.contains("placed at the origin"), "{what}");
    // A file with its own geometry assumes nothing.
    let (_, h) = dicom::read_with_header::<f32>(&fixture("CT_small.dcm"), &opts).unwrap();
    assert_eq!(h.assumed_geometry, None);
}

/// A Siemens mosaic (`make_mosaic.py`: MR_small.dcm marked as four tiles)
/// is refused, naming the tile count, rather than read as one slice with
/// the mosaic's position, which belongs to no tile.
#[test]
fn a_siemens_mosaic_is_refused_not_misplaced() {
    let e = dicom::read::<f32>(&fixture("mosaic_mr.dcm"), &ReadOptions::default()).unwrap_err();
    assert!(matches!(e, liverseg_io::Error::Unsupported { .. }), "{e}");
    assert!(e.to_string().contains("Siemens mosaic (4 images"), "{e}");
    // MR_small.dcm itself, with the same position, reads.
    assert!(dicom::read::<f32>(&fixture("MR_small.dcm"), &ReadOptions::default()).is_ok());
}
