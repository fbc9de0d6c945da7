//! Issue 17: a series whose slices are unevenly spaced
//! (`tests/fixtures/dicom/series_ct5n_gaps`, made by `make_gap_series.py`:
//! the slices of `series_ct5n` moved to gaps of 2.5, 2.5, 7.5 and 7.5 mm)
//! reads as dcm2niix's equalised volume: the smallest gap as the slice
//! step, slices between source images interpolated linearly, with a
//! warning; every voxel keeps its world position. A SEG written on it has
//! frames on the source images only.
//!
//! (dcm2niix v1.0.20220720 on this fixture writes its `_Eq_1` file with 8
//! slices for a 20 mm span at 2.5 mm and values out of order, so the
//! expected values here come from the source slices themselves.)

mod common;

use common::fixture;
use liverseg_io::dicom::{self, ReadOptions, SegOptions};
use liverseg_io::{Overwrite, Volume};

/// Each source file read alone, keyed by its z (mm, RAS = LPS for z).
fn sources() -> Vec<(f64, Volume<f32>)> {
    let dir = fixture("dicom/series_ct5n_gaps");
    let mut out: Vec<(f64, Volume<f32>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let v = dicom::read::<f32>(&e.unwrap().path(), &ReadOptions::default()).unwrap();
            (v.affine().origin()[2], v)
        })
        .collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

#[test]
fn uneven_gaps_are_equalised_to_the_smallest_gap() {
    let src = sources();
    let zs: Vec<f64> = src.iter().map(|s| s.0).collect();
    let (v, header) =
        dicom::read_with_header::<f32>(&fixture("dicom/series_ct5n_gaps"), &ReadOptions::default())
            .unwrap();
    assert_eq!(v.dims(), [16, 16, 9]);
    assert!(
        (v.affine().column(2)[2] - 2.5).abs() < 1e-9,
        "{:?}",
        v.affine()
    );
    assert!((v.affine().origin()[2] - zs[0]).abs() < 1e-9);
    for k in 0..9 {
        let z = zs[0] + 2.5 * k as f64;
        assert!((v.world(0.0, 0.0, k as f64)[2] - z).abs() < 1e-9);
        // The source slices around z and the weight of the upper one.
        let hi = zs.iter().position(|&s| s >= z - 1e-6).unwrap();
        let lo = if (zs[hi] - z).abs() < 1e-6 {
            hi
        } else {
            hi - 1
        };
        let w = if lo == hi {
            0.0
        } else {
            (z - zs[lo]) / (zs[hi] - zs[lo])
        };
        let plane = 16 * 16;
        for i in 0..plane {
            let want =
                (1.0 - w) * f64::from(src[lo].1.data()[i]) + w * f64::from(src[hi].1.data()[i]);
            let got = f64::from(v.data()[k * plane + i]);
            assert!(
                (got - want).abs() < 1e-3,
                "slice {k} voxel {i}: {got} vs {want}"
            );
        }
        assert_eq!(header.slices[k].interpolated, lo != hi, "slice {k}");
    }
    // Off, the series is refused as before.
    let strict = ReadOptions {
        equalise_gaps: false,
        ..ReadOptions::default()
    };
    let e = dicom::read::<f32>(&fixture("dicom/series_ct5n_gaps"), &strict)
        .unwrap_err()
        .to_string();
    assert!(e.contains("slice gaps are not uniform"), "{e}");
}

#[test]
fn a_seg_on_an_equalised_series_has_frames_on_source_images_only() {
    let (v, header) =
        dicom::read_with_header::<f32>(&fixture("dicom/series_ct5n_gaps"), &ReadOptions::default())
            .unwrap();
    // Every slice labelled.
    let labels = Volume::filled(v.dims(), *v.affine(), 1u8).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("seg.dcm");
    dicom::write_seg(
        &out,
        &labels,
        &v,
        &header,
        &SegOptions {
            overwrite: Overwrite::Never,
            ..SegOptions::default()
        },
    )
    .unwrap();
    let obj = dicom_object::open_file(&out).unwrap();
    use dicom_dictionary_std::tags;
    let frames = obj
        .element(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE)
        .unwrap()
        .items()
        .unwrap()
        .len();
    assert_eq!(frames, 5, "one frame per source image");
    let series = &obj
        .element(tags::REFERENCED_SERIES_SEQUENCE)
        .unwrap()
        .items()
        .unwrap()[0];
    let instances = series
        .element(tags::REFERENCED_INSTANCE_SEQUENCE)
        .unwrap()
        .items()
        .unwrap()
        .len();
    assert_eq!(instances, 5);
    if common::dciodvfy_available() {
        let o = std::process::Command::new("dciodvfy")
            .arg(&out)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stderr);
        assert!(!text.contains("Error"), "{text}");
    }
}
