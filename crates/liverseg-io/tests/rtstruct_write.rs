//! RT Structure Sets from `write_rtstruct`: validated with dciodvfy and
//! re-rasterised by an independent reader, rt-utils (OpenCV's `fillPoly`
//! over the contours, in the series' own geometry), which must give back
//! every class's mask (Dice against the label volume, per ROI).

mod common;
use common::{dciodvfy, dciodvfy_available, python_available};

use liverseg_io::dicom::{
    RtStructOptions, SegmentDef, SeriesHeader, WriteSeriesOptions, write_rtstruct, write_series,
};
use liverseg_io::{Affine, Volume};
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

/// Square images with square pixels, as CT's: rt-utils rasterises onto
/// a (Columns, Rows) array and scales by PixelSpacing's values in the
/// opposite order to the standard's, which only this shape survives.
const DIMS: [usize; 3] = [36, 36, 7];

/// Per slice: a disk of liver whose radius follows the slice, with a hole
/// in its middle on slices 2 and 3 and a separate island; a ring of spleen
/// with an island of spleen in its hole.
fn labels(affine: Affine) -> Volume<u8> {
    let mut data = vec![0u8; DIMS.iter().product()];
    for k in 0..DIMS[2] {
        let r = 6.0 + k as f64;
        for j in 0..DIMS[1] {
            for i in 0..DIMS[0] {
                let n = i + DIMS[0] * (j + DIMS[1] * k);
                let (x, y) = (i as f64 - 14.0, j as f64 - 15.0);
                let d = (x * x + y * y).sqrt();
                if d <= r && !((2..4).contains(&k) && d < 2.5) {
                    data[n] = 1;
                }
                if (1..4).contains(&i) && (1..3).contains(&j) {
                    data[n] = 1;
                }
                let (u, v) = (i as f64 - 29.0, j as f64 - 7.0);
                let e = (u * u + v * v).sqrt();
                if (3.0..=5.0).contains(&e) || e < 1.0 {
                    data[n] = 2;
                }
            }
        }
    }
    Volume::new(DIMS, affine, data).unwrap()
}

/// rt-utils' masks of every ROI: name → source SOPInstanceUID → the
/// foreground pixels (row-major) of that image.
fn rt_utils_masks(series: &Path, rtstruct: &Path) -> HashMap<String, HashMap<String, Vec<usize>>> {
    let script = r#"
import sys, json
import numpy as np
from rt_utils import RTStructBuilder
rt = RTStructBuilder.create_from(dicom_series_path=sys.argv[1], rt_struct_path=sys.argv[2])
out = {}
for name in rt.get_roi_names():
    mask = rt.get_roi_mask_by_name(name)  # (rows, columns, slices) for square images
    out[name] = {
        ds.SOPInstanceUID: np.flatnonzero(mask[:, :, i]).tolist()
        for i, ds in enumerate(rt.series_data)
    }
print(json.dumps(out))
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(series)
        .arg(rtstruct)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rt-utils failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Dice of label `value` of `labels` against rt-utils' mask of it.
fn dice(
    labels: &Volume<u8>,
    value: u8,
    reference: &SeriesHeader,
    theirs: &HashMap<String, Vec<usize>>,
) -> f64 {
    let plane = DIMS[0] * DIMS[1];
    let (mut both, mut ours_n, mut theirs_n) = (0usize, 0usize, 0usize);
    for (k, s) in reference.slices.iter().enumerate() {
        let ours: Vec<bool> = labels.data()[k * plane..(k + 1) * plane]
            .iter()
            .map(|&v| v == value)
            .collect();
        let got = theirs
            .get(&s.sop_instance_uid)
            .expect("rt-utils has every image");
        ours_n += ours.iter().filter(|&&b| b).count();
        theirs_n += got.len();
        both += got.iter().filter(|&&p| ours[p]).count();
    }
    2.0 * both as f64 / (ours_n + theirs_n).max(1) as f64
}

#[test]
fn an_rtstruct_passes_dciodvfy_and_rt_utils_rasterises_it_back() {
    let tmp = tempfile::tempdir().unwrap();
    // An LPS-stored grid, as scanners write: rows along -y, columns -x.
    let affine = Affine::from_spacing_origin([-0.78, -0.78, 2.5], [120.35, 95.5, -310.25]);
    let ct = Volume::filled(DIMS, affine, -50.0f32).unwrap();
    let series_dir = tmp.path().join("ct");
    let series = write_series(&series_dir, &ct, &WriteSeriesOptions::default()).unwrap();
    let labels = labels(affine);
    let path = tmp.path().join("rtstruct.dcm");
    let opts = RtStructOptions {
        rois: vec![
            SegmentDef::named(1, "liver"),
            SegmentDef::named(2, "spleen"),
            SegmentDef::named(3, "kidney"),
        ],
        ..RtStructOptions::default()
    };
    write_rtstruct(&path, &labels, &ct, &series, &opts).unwrap();

    // A second write to the same path is refused (no --force here).
    assert!(write_rtstruct(&path, &labels, &ct, &series, &opts).is_err());

    if dciodvfy_available() {
        let (errors, warnings) = dciodvfy(&path);
        assert_eq!(errors, 0, "dciodvfy reported errors");
        eprintln!("dciodvfy: {warnings} warnings");
    }
    if python_available("rt_utils, cv2, pydicom, numpy") {
        let masks = rt_utils_masks(&series_dir, &path);
        let mut names: Vec<&String> = masks.keys().collect();
        names.sort();
        // The kidney is absent: left out.
        assert_eq!(names, ["Liver", "Spleen"]);
        for (name, value) in [("Liver", 1u8), ("Spleen", 2)] {
            let d = dice(&labels, value, &series, &masks[name]);
            eprintln!("rt-utils {name}: Dice {d:.5}");
            assert!(d >= 0.98, "{name}: Dice {d}");
        }
    }
}

#[test]
fn an_rtstruct_refuses_labels_off_the_reference_grid_or_without_an_roi() {
    let tmp = tempfile::tempdir().unwrap();
    let affine = Affine::from_spacing_origin([0.8, 0.8, 3.0], [0.0, 0.0, 0.0]);
    let ct = Volume::filled(DIMS, affine, 0.0f32).unwrap();
    let series = write_series(&tmp.path().join("ct"), &ct, &WriteSeriesOptions::default()).unwrap();
    let path = tmp.path().join("rs.dcm");
    let shifted = Affine::from_spacing_origin([0.8, 0.8, 3.0], [5.0, 0.0, 0.0]);
    let e = write_rtstruct(
        &path,
        &labels(shifted),
        &ct,
        &series,
        &RtStructOptions::default(),
    );
    assert!(e.unwrap_err().to_string().contains("reference grid"));
    // Label 2 has no ROI when only the liver is defined.
    let e = write_rtstruct(
        &path,
        &labels(affine),
        &ct,
        &series,
        &RtStructOptions::default(),
    );
    assert!(e.is_err());
    assert!(!path.exists(), "nothing is written on refusal");
}
