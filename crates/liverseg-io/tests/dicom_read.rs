//! DICOM reading against real files: values and geometry must agree with
//! what pydicom read from the same files (tests/fixtures/manifest.json) and
//! with dcm2niix's conversion of the same series.

mod common;
use common::fixture;

use liverseg_io::dicom::{self, ReadOptions};
use liverseg_io::{Affine, Error, Volume, nifti};
use serde_json::Value;
use std::path::Path;

fn manifest(key: &str) -> Value {
    let text = std::fs::read_to_string(fixture("manifest.json")).unwrap();
    let all: Value = serde_json::from_str(&text).unwrap();
    all[key].clone()
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn affine_from(v: &Value) -> Affine {
    let mut m = [[0.0; 4]; 4];
    for (r, row) in m.iter_mut().enumerate() {
        for (c, x) in row.iter_mut().enumerate() {
            *x = num(&v[r][c]);
        }
    }
    Affine(m)
}

fn assert_stats(vol: &Volume<f32>, want: &Value) {
    let s = vol.stats();
    assert_eq!(s.min, num(&want["min"]), "min");
    assert_eq!(s.max, num(&want["max"]), "max");
    assert_eq!(s.sum, num(&want["sum"]), "sum");
    assert!(
        (s.mean - num(&want["mean"])).abs() < 1e-5,
        "mean {} vs {}",
        s.mean,
        want["mean"]
    );
}

#[test]
fn ct_small_in_hounsfield_units_with_pydicom_geometry() {
    let m = manifest("dicom/CT_small.dcm");
    let (vol, header) =
        dicom::read_with_header::<f32>(&fixture("dicom/CT_small.dcm"), &ReadOptions::default())
            .unwrap();
    assert_eq!(vol.dims(), [128, 128, 1]);
    assert_stats(&vol, &m["rescaled"]);
    // pydicom: (pixel_array * slope + intercept)[row, column].
    assert_eq!(vol.get(20, 10, 0), Some(-839.0));
    assert_eq!(vol.get(3, 100, 0), Some(33.0));
    assert_eq!(vol.get(127, 0, 0), Some(-808.0));
    // LPS (IOP identity, PixelSpacing 0.661468, SliceThickness 5) to RAS.
    let ipp: Vec<f64> = m["ImagePositionPatient"]
        .as_array()
        .unwrap()
        .iter()
        .map(num)
        .collect();
    let want = Affine([
        [-0.661468, 0.0, 0.0, -ipp[0]],
        [0.0, -0.661468, 0.0, -ipp[1]],
        [0.0, 0.0, 5.0, ipp[2]],
        [0.0, 0.0, 0.0, 1.0],
    ]);
    assert!(
        vol.affine().max_abs_diff(&want) < 1e-9,
        "{:?}",
        vol.affine()
    );
    assert_eq!(vol.axcodes(), ['L', 'P', 'S']);
    assert_eq!(header.modality, "CT");
    assert_eq!(header.slices.len(), 1);
    assert_eq!(header.slices[0].sop_class_uid, "1.2.840.10008.5.1.4.1.1.2");

    // HU are integers here, so int16 reading is exact and equal.
    let as_i16 =
        dicom::read::<i16>(&fixture("dicom/CT_small.dcm"), &ReadOptions::default()).unwrap();
    assert_eq!(as_i16.cast::<f32>(), vol);
}

#[test]
fn every_mr_encoding_decodes_to_the_same_pixels() {
    let m = manifest("dicom/MR_small.dcm");
    let reference =
        dicom::read::<f32>(&fixture("dicom/MR_small.dcm"), &ReadOptions::default()).unwrap();
    assert_eq!(reference.dims(), [64, 64, 1]);
    assert_stats(&reference, &m["stored"]);
    assert_eq!(reference.get(20, 10, 0), Some(316.0));
    assert_eq!(reference.get(0, 63, 0), Some(378.0));
    assert_eq!(reference.get(60, 5, 0), Some(214.0));
    for name in [
        "MR_small_implicit.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_RLE.dcm",
        "MR_small_jp2klossless.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
    ] {
        let vol = dicom::read::<f32>(&fixture(&format!("dicom/{name}")), &ReadOptions::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(vol, reference, "{name} differs from MR_small.dcm");
    }
}

#[test]
fn truncated_pixel_data_is_a_clear_error() {
    let path = fixture("dicom/MR_truncated.dcm");
    let e = dicom::read::<f32>(&path, &ReadOptions::default()).unwrap_err();
    assert!(matches!(e, Error::Invalid { .. }), "{e:?}");
    assert!(
        e.to_string()
            .ends_with("MR_truncated.dcm: pixel data has 8130 bytes, 8192 expected"),
        "{e}"
    );
    let e = dicom::read_frames::<f32>(&path).unwrap_err();
    assert!(
        e.to_string()
            .contains("pixel data has 8130 bytes, 8192 expected"),
        "{e}"
    );
}

#[test]
fn series_is_sorted_along_the_normal_and_matches_pydicom() {
    let m = manifest("dicom/series_ct5n");
    let dir = fixture("dicom/series_ct5n");
    let (vol, header) = dicom::read_with_header::<f32>(&dir, &ReadOptions::default()).unwrap();
    assert_eq!(vol.dims(), [16, 16, 5]);
    let want = affine_from(&m["affine_ras"]);
    assert!(
        vol.affine().max_abs_diff(&want) < 1e-5,
        "{:?} vs {want:?}",
        vol.affine()
    );
    assert_stats(&vol, &m["hu"]);
    let order: Vec<String> = common::slice_file_names(&header);
    let want_order: Vec<&str> = m["files_sorted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(order, want_order);
    assert!(header.slices.iter().all(|s| !s.sop_instance_uid.is_empty()));
    assert!(!header.series_instance_uid.is_empty() && !header.frame_of_reference_uid.is_empty());

    // Each slice holds the pixels of the file that the order names.
    for (k, name) in want_order.iter().enumerate() {
        let one = dicom::read::<f32>(&dir.join(name), &ReadOptions::default()).unwrap();
        let n = 16 * 16;
        assert_eq!(&vol.data()[k * n..(k + 1) * n], one.data(), "slice {k}");
        assert!((one.affine().origin()[2] - vol.world(0.0, 0.0, k as f64)[2]).abs() < 1e-6);
    }
}

#[test]
fn series_selection_and_irregular_series_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let src = fixture("dicom/series_ct5n");
    let files = ["2062", "2392", "2693", "3023", "3353"];
    // Leave out the middle slice: the gaps become 2.5, 5, 2.5.
    let gap_dir = tmp.path().join("gap");
    std::fs::create_dir(&gap_dir).unwrap();
    for f in files.iter().filter(|f| **f != "2693") {
        std::fs::copy(src.join(f), gap_dir.join(f)).unwrap();
    }
    // By default the missing slice is interpolated (dcm2niix's equalised
    // output); with `equalise_gaps` off the series is refused.
    let (filled, header) =
        dicom::read_with_header::<f32>(&gap_dir, &ReadOptions::default()).unwrap();
    assert_eq!(filled.dims(), [16, 16, 5]);
    let interpolated: Vec<bool> = header.slices.iter().map(|s| s.interpolated).collect();
    assert_eq!(interpolated, [false, false, true, false, false]);
    let strict = ReadOptions {
        equalise_gaps: false,
        ..ReadOptions::default()
    };
    let e = dicom::read::<f32>(&gap_dir, &strict).unwrap_err();
    assert!(matches!(e, Error::InconsistentSeries { .. }), "{e:?}");
    assert!(
        e.to_string().contains("gaps: 2.5000, 5.0000, 2.5000"),
        "{e}"
    );

    // Two series and a file that is not DICOM: without a UID the larger
    // series (5 images against 1) is read.
    let two = tmp.path().join("two");
    std::fs::create_dir_all(two.join("sub")).unwrap();
    for f in files {
        std::fs::copy(src.join(f), two.join("sub").join(f)).unwrap();
    }
    std::fs::copy(fixture("dicom/CT_small.dcm"), two.join("CT_small.dcm")).unwrap();
    std::fs::write(two.join("notes.txt"), "not DICOM").unwrap();
    let largest = dicom::read::<f32>(&two, &ReadOptions::default()).unwrap();
    assert_eq!(largest.dims(), [16, 16, 5]);
    // Two series of the same size are ambiguous: the error lists both.
    let tie = tmp.path().join("tie");
    std::fs::create_dir_all(&tie).unwrap();
    std::fs::copy(fixture("dicom/CT_small.dcm"), tie.join("a.dcm")).unwrap();
    std::fs::copy(fixture("dicom/MR_small.dcm"), tie.join("b.dcm")).unwrap();
    let e = dicom::read::<f32>(&tie, &ReadOptions::default()).unwrap_err();
    assert!(matches!(e, Error::Request { .. }), "{e:?}");
    assert!(e.to_string().contains("holds 2 image series"), "{e}");

    let listed = dicom::list_series(&two).unwrap();
    assert_eq!(listed.len(), 2);
    let ct5 = listed.iter().find(|s| s.files.len() == 5).unwrap();
    let opts = ReadOptions {
        series_instance_uid: Some(ct5.series_instance_uid.clone()),
        ..ReadOptions::default()
    };
    let vol = dicom::read::<f32>(&two, &opts).unwrap();
    let direct = dicom::read::<f32>(&src, &ReadOptions::default()).unwrap();
    assert_eq!(vol, direct);

    let opts = ReadOptions {
        series_instance_uid: Some("1.2.3".into()),
        ..ReadOptions::default()
    };
    let e = dicom::read::<f32>(&two, &opts).unwrap_err();
    assert!(
        e.to_string()
            .contains("no series with SeriesInstanceUID 1.2.3"),
        "{e}"
    );

    // A SEG beside its images does not count as a second image series.
    let with_seg = tmp.path().join("with_seg");
    std::fs::create_dir(&with_seg).unwrap();
    for f in files {
        std::fs::copy(src.join(f), with_seg.join(f)).unwrap();
    }
    std::fs::copy(fixture("dicom/seg_ct5n.dcm"), with_seg.join("seg.dcm")).unwrap();
    assert_eq!(
        dicom::read::<f32>(&with_seg, &ReadOptions::default()).unwrap(),
        direct
    );
    let listed = dicom::list_series(&with_seg).unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|s| s.is_segmentation())
            .collect::<Vec<_>>(),
        [false, true]
    );

    // A damaged slice is an error naming it, not a slice quietly left out.
    let mut bytes = std::fs::read(src.join("3353")).unwrap();
    bytes.truncate(bytes.len() - 100);
    std::fs::write(with_seg.join("3353"), bytes).unwrap();
    let e = dicom::read::<f32>(&with_seg, &ReadOptions::default()).unwrap_err();
    assert!(
        e.to_string()
            .contains("3353: pixel data has 412 bytes, 512 expected"),
        "{e}"
    );
    let mut bytes = std::fs::read(src.join("2062")).unwrap();
    bytes[700..708].copy_from_slice(&[0xFF; 8]);
    std::fs::write(with_seg.join("2062"), bytes).unwrap();
    let e = dicom::read::<f32>(&with_seg, &ReadOptions::default()).unwrap_err();
    assert!(e.to_string().contains("2062: "), "{e}");

    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    std::fs::write(empty.join("a.txt"), "x").unwrap();
    let e = dicom::read::<f32>(&empty, &ReadOptions::default()).unwrap_err();
    assert!(
        e.to_string()
            .contains("no DICOM images found among 1 files"),
        "{e}"
    );
}

#[test]
fn enhanced_ct_from_highdicom_equals_the_series() {
    let series =
        dicom::read::<f32>(&fixture("dicom/series_ct5n"), &ReadOptions::default()).unwrap();
    let (vol, header) = dicom::read_with_header::<f32>(
        &fixture("dicom/enhanced_ct5n.dcm"),
        &ReadOptions::default(),
    )
    .unwrap();
    assert_eq!(vol.dims(), series.dims());
    assert!(
        vol.affine().max_abs_diff(series.affine()) < 1e-5,
        "{:?}",
        vol.affine()
    );
    assert_eq!(vol.data(), series.data());
    assert_eq!(header.slices.len(), 5);
    assert_eq!(
        header.slices[0].sop_instance_uid,
        "1.2.826.0.1.3680043.8.498.1002"
    );

    // The same frames RLE-compressed one fragment per frame: each frame must
    // be decoded from its own fragment.
    let rle = dicom::read::<f32>(
        &fixture("dicom/enhanced_ct5n_rle.dcm"),
        &ReadOptions::default(),
    )
    .unwrap();
    assert_eq!(rle, vol);
}

#[test]
fn rescale_is_applied_per_file() {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;
    // Give one slice an intercept of -1000 instead of -1024: its HU, and
    // only its, move up by 24.
    let tmp = tempfile::tempdir().unwrap();
    let src = fixture("dicom/series_ct5n");
    for f in ["2062", "2392", "2693", "3023", "3353"] {
        std::fs::copy(src.join(f), tmp.path().join(f)).unwrap();
    }
    let mut obj = dicom_object::open_file(src.join("2693")).unwrap();
    obj.put(DataElement::new(
        tags::RESCALE_INTERCEPT,
        VR::DS,
        PrimitiveValue::from("-1000"),
    ));
    std::fs::remove_file(tmp.path().join("2693")).unwrap();
    obj.write_to_file(tmp.path().join("2693")).unwrap();

    let (orig, header) = dicom::read_with_header::<i16>(&src, &ReadOptions::default()).unwrap();
    let changed = dicom::read::<i16>(tmp.path(), &ReadOptions::default()).unwrap();
    let k = header
        .slices
        .iter()
        .position(|s| s.path.as_ref().unwrap().ends_with("2693"))
        .unwrap();
    let n = 16 * 16;
    for (i, (a, b)) in orig.data().iter().zip(changed.data()).enumerate() {
        let want = if i / n == k { a + 24 } else { *a };
        assert_eq!(*b, want, "voxel {i} (slice {})", i / n);
    }
}

#[test]
fn multiframe_without_positions_is_refused_but_its_frames_can_be_read() {
    let m = manifest("dicom/emri_small.dcm");
    let path = fixture("dicom/emri_small.dcm");
    let e = dicom::read::<f32>(&path, &ReadOptions::default()).unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("10 frames but no per-frame positions"),
        "{e}"
    );

    let frames = dicom::read_frames::<i16>(&path).unwrap();
    assert_eq!((frames.frames, frames.rows, frames.columns), (10, 64, 64));
    let sum: i64 = frames.data.iter().map(|&v| i64::from(v)).sum();
    assert_eq!(sum as f64, num(&m["stored"]["sum"]));
    assert_eq!(
        frames.data.iter().copied().max(),
        Some(num(&m["stored"]["max"]) as i16)
    );
    // pydicom: pixel_array[frame, row, column] and per-frame sums.
    assert_eq!(frames.data[20 + 64 * (10 + 64 * 3)], 180);
    assert_eq!(frames.data[1 + 64 * (63 + 64 * 9)], 87);
    let per_frame: Vec<i64> = frames
        .data
        .chunks(64 * 64)
        .map(|f| f.iter().map(|&v| i64::from(v)).sum())
        .collect();
    assert_eq!(
        per_frame,
        [
            590962, 547514, 504701, 461117, 404573, 355101, 331120, 372843, 441975, 483370
        ]
    );
}

#[test]
fn one_bit_segmentation_frame_reads_with_its_geometry() {
    let m = manifest("dicom/liver_1frame.dcm");
    let path = fixture("dicom/liver_1frame.dcm");
    let (vol, header) = dicom::read_with_header::<u8>(&path, &ReadOptions::default()).unwrap();
    assert_eq!(vol.dims(), [512, 512, 1]);
    let want = affine_from(&m["affine_ras"]);
    assert!(
        vol.affine().max_abs_diff(&want) < 1e-5,
        "{:?}",
        vol.affine()
    );
    let s = vol.stats();
    assert_eq!((s.min, s.max, s.sum), (0.0, 1.0, num(&m["stored"]["sum"])));
    assert_eq!(header.modality, "SEG");
    let frames = dicom::read_frames::<u8>(&path).unwrap();
    assert_eq!(frames.data, vol.data());
}

#[test]
fn integer_reads_refuse_lossy_values_and_bad_paths_are_reported() {
    // HU of -896..1167 do not fit in u8.
    let e = dicom::read::<u8>(&fixture("dicom/CT_small.dcm"), &ReadOptions::default()).unwrap_err();
    assert!(matches!(e, Error::Request { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("cannot be stored as uint8 without loss"),
        "{e}"
    );

    let missing = fixture("dicom/no_such.dcm");
    let e = dicom::read::<f32>(&missing, &ReadOptions::default()).unwrap_err();
    assert!(matches!(e, Error::Io { .. }) && e.is_bad_input(), "{e:?}");

    let e = dicom::read::<f32>(&fixture("manifest.json"), &ReadOptions::default()).unwrap_err();
    assert!(
        e.to_string()
            .contains("manifest.json: not a readable DICOM file"),
        "{e}"
    );
}

/// Reads the directory `series` and checks the value at the world position
/// of every voxel against dcm2niix's conversion of the same directory.
fn assert_matches_dcm2niix(series: &Path) {
    let tmp = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("dcm2niix")
        .args(["-z", "n", "-b", "n", "-f", "out", "-o"])
        .arg(tmp.path())
        .arg(series)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "dcm2niix failed: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    let theirs: Volume<f32> =
        nifti::read(&tmp.path().join("out.nii"), &nifti::ReadOptions::default()).unwrap();
    let ours = dicom::read::<f32>(series, &ReadOptions::default()).unwrap();
    assert_eq!(theirs.len(), ours.len());
    let mut sorted_ours = ours.spacing();
    let mut sorted_theirs = theirs.spacing();
    sorted_ours.sort_by(f64::total_cmp);
    sorted_theirs.sort_by(f64::total_cmp);
    for (a, b) in sorted_ours.iter().zip(&sorted_theirs) {
        assert!(
            (a - b).abs() < 1e-4,
            "spacing {sorted_ours:?} vs dcm2niix {sorted_theirs:?}"
        );
    }
    let to_theirs = theirs.affine().inverse().unwrap();
    let [nx, ny, nz] = ours.dims();
    for k in 0..nz {
        for j in 0..ny {
            for i in 0..nx {
                let w = ours.world(i as f64, j as f64, k as f64);
                let t = to_theirs.apply(w);
                let idx = t.map(|x| x.round());
                assert!(
                    t.iter().zip(&idx).all(|(a, b)| (a - b).abs() < 1e-3),
                    "({i},{j},{k}) -> {t:?}"
                );
                let v = theirs.get(idx[0] as usize, idx[1] as usize, idx[2] as usize);
                assert_eq!(v, ours.get(i, j, k), "voxel ({i},{j},{k})");
            }
        }
    }
}

#[test]
fn oblique_non_square_series_keeps_rows_columns_and_slices_apart() {
    let dir = fixture("dicom/oblique_series");
    let (vol, header) = dicom::read_with_header::<i16>(&dir, &ReadOptions::default()).unwrap();
    // 7 columns along axis 0, 5 rows along axis 1, 4 slices.
    assert_eq!(vol.dims(), [7, 5, 4]);
    for k in 0..4 {
        for r in 0..5 {
            for c in 0..7 {
                assert_eq!(
                    vol.get(c, r, k),
                    Some((100 * k + 10 * r + c) as i16),
                    "({c},{r},{k})"
                );
            }
        }
    }
    let names: Vec<String> = common::slice_file_names(&header);
    assert_eq!(names, ["b", "d", "a", "c"]);
    // The affine the generator used, in RAS: row direction x column spacing
    // 0.7, column direction x row spacing 0.9, normal x 3 mm.
    let (a, b) = (30f64.to_radians(), 20f64.to_radians());
    let row = [a.cos(), a.sin(), 0.0];
    let col = [-a.sin() * b.cos(), a.cos() * b.cos(), b.sin()];
    let normal = [
        row[1] * col[2] - row[2] * col[1],
        row[2] * col[0] - row[0] * col[2],
        row[0] * col[1] - row[1] * col[0],
    ];
    let ras = |v: [f64; 3]| [-v[0], -v[1], v[2]];
    let want = Affine::from_columns(
        [
            ras(row.map(|x| x * 0.7)),
            ras(col.map(|x| x * 0.9)),
            ras(normal.map(|x| x * 3.0)),
        ],
        ras([-12.5, 30.25, 101.0]),
    );
    assert!(
        vol.affine().max_abs_diff(&want) < 1e-5,
        "{:?}\nvs {want:?}",
        vol.affine()
    );
    assert!((vol.spacing()[0] - 0.7).abs() < 1e-9 && (vol.spacing()[1] - 0.9).abs() < 1e-9);
}

#[test]
fn oblique_series_agrees_with_dcm2niix_voxel_for_voxel() {
    if common::dcm2niix_available() {
        assert_matches_dcm2niix(&fixture("dicom/oblique_series"));
    }
}

/// dcm2niix writes the same series as NIfTI; every voxel of ours must hold
/// the value dcm2niix put at the same world position (whatever axis order
/// and flips it chose).
#[test]
fn series_agrees_with_dcm2niix_voxel_for_voxel() {
    if common::dcm2niix_available() {
        assert_matches_dcm2niix(&fixture("dicom/series_ct5n"));
    }
}

#[test]
fn enhanced_object_agrees_with_dcm2niix_voxel_for_voxel() {
    if common::dcm2niix_available() {
        let dir = tempfile::tempdir().unwrap();
        // The uncompressed copy: dcm2niix v1.0.20220720 decodes the RLE one
        // into wrong values (it warns that its decompression is new).
        std::fs::copy(fixture("dicom/enhanced_ct5n.dcm"), dir.path().join("e.dcm")).unwrap();
        assert_matches_dcm2niix(dir.path());
    }
}
