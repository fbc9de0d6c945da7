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
