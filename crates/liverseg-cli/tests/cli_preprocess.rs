//! `liverseg preprocess`: outputs, stages, geometry against MONAI's golden
//! files, and the exit-code contract.

mod common;
use common::liverseg;

use liverseg_io::{Volume, nifti};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../liverseg-transforms/tests/golden/transforms")
        .join(name)
}

fn index() -> Value {
    serde_json::from_str(&std::fs::read_to_string(golden("index.json")).unwrap()).unwrap()
}

fn read<T: liverseg_io::Voxel>(p: &Path) -> Volume<T> {
    nifti::read(p, &nifti::ReadOptions::default())
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn affine_rows(v: &Value) -> Vec<Vec<f64>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
        .collect()
}

#[test]
fn seed_preset_matches_monai_and_writes_its_record() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("pre");
    let o = liverseg(&[
        "preprocess",
        "--image",
        golden("ct.nii.gz").to_str().unwrap(),
        "--label",
        golden("label.nii.gz").to_str().unwrap(),
        "--preset",
        "seed",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let image: Volume<f32> = read(&out.join("image.nii.gz"));
    let label: Volume<u8> = read(&out.join("label.nii.gz"));
    let idx = index();
    let want = &idx["seed_resize_full"];
    assert_eq!(image.dims(), [128, 128, 64]);
    assert_eq!(label.dims(), [128, 128, 64]);
    let sum: f64 = image.data().iter().map(|&v| f64::from(v)).sum();
    assert!(
        (sum - want["vol_sum"].as_f64().unwrap()).abs() < 1e-2,
        "image sum {sum}"
    );
    let lsum: f64 = label.data().iter().map(|&v| f64::from(v)).sum();
    assert_eq!(lsum, want["seg_sum"].as_f64().unwrap());
    // NIfTI stores the affine in float32.
    let rows = affine_rows(&want["affine"]);
    for r in 0..3 {
        for c in 0..4 {
            assert!(
                (image.affine().0[r][c] - rows[r][c]).abs() < 1e-4,
                "affine[{r}][{c}]"
            );
        }
    }
    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("preprocess.json")).unwrap())
            .unwrap();
    assert_eq!(record["preset"]["name"], "seed");
    assert_eq!(record["original"]["dims"], serde_json::json!([20, 16, 10]));
    let steps: Vec<&str> = record["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        ["spacing", "orientation", "crop_foreground", "resize"]
    );
}

#[test]
fn stages_write_every_step_and_match_monai_spacing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("pre");
    let o = liverseg(&[
        "preprocess",
        "--image",
        golden("ct.nii.gz").to_str().unwrap(),
        "--label",
        golden("label.nii.gz").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--stages",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut names: Vec<String> = std::fs::read_dir(out.join("stages"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 10, "{names:?}");
    assert_eq!(names[0], "01_spacing_image.nii.gz");
    assert_eq!(names[9], "05_resize_label.nii.gz");
    let ours: Volume<f32> = read(&out.join("stages/01_spacing_image.nii.gz"));
    let theirs: Volume<f32> = read(&golden("seed_spacing_image.nii.gz"));
    assert_eq!(ours.dims(), theirs.dims());
    let worst = ours
        .data()
        .iter()
        .zip(theirs.data())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst < 1e-3,
        "spacing stage differs from MONAI by {worst} HU"
    );
}

#[test]
fn refuses_existing_output_bad_preset_and_mismatched_label() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("pre");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("keep.txt"), "mine").unwrap();
    let ct = golden("ct.nii.gz");
    let base = [
        "preprocess",
        "--image",
        ct.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    let o = liverseg(&base);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
    assert_eq!(
        std::fs::read_to_string(out.join("keep.txt")).unwrap(),
        "mine"
    );

    // Issue 14: `--force` never replaces a folder liverseg did not write.
    let mut forced = base.to_vec();
    forced.push("--force");
    let o = liverseg(&forced);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("did not write"));
    assert_eq!(
        std::fs::read_to_string(out.join("keep.txt")).unwrap(),
        "mine"
    );
    // A folder it wrote is replaced whole.
    std::fs::remove_file(out.join("keep.txt")).unwrap();
    std::fs::remove_dir(&out).unwrap();
    let o = liverseg(&base);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::write(out.join("stale.txt"), "old run").unwrap();
    let o = liverseg(&forced);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.join("image.nii.gz").is_file() && !out.join("stale.txt").exists());

    let other = tmp.path().join("other");
    let o = liverseg(&[
        "preprocess",
        "--image",
        ct.to_str().unwrap(),
        "--preset",
        "fancy",
        "--out",
        other.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("fancy"));

    // A label on another grid (the permuted copy) is bad input.
    let o = liverseg(&[
        "preprocess",
        "--image",
        ct.to_str().unwrap(),
        "--label",
        golden("label_permuted.nii.gz").to_str().unwrap(),
        "--out",
        other.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("not on the same grid"));
    assert!(!other.exists());
}

#[test]
fn dicom_series_input_and_patch_preset() {
    let series = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../liverseg-io/tests/fixtures/dicom/series_ct5n");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("pre");
    let o = liverseg(&[
        "preprocess",
        "--image",
        series.to_str().unwrap(),
        "--preset",
        "patch",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let image: Volume<f32> = read(&out.join("image.nii.gz"));
    assert_eq!(image.axcodes(), ['R', 'A', 'S']);
    assert!(
        image.spacing().iter().all(|s| (s - 1.5).abs() < 1e-4),
        "{:?}",
        image.spacing()
    );
    let d = image.dims();
    assert!(d[0] >= 128 && d[1] >= 128 && d[2] >= 64);
    assert!(!out.join("label.nii.gz").exists());
}
