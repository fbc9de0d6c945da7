//! Parity with MONAI 1.6.1 on the golden files made by
//! `tools/golden/transforms_golden.py`: every stage's shape and affine, and
//! its values within the tolerances below.
//!
//! Tolerances: Spacing interpolates in float64 in both tools and stores
//! float32, so HU images agree to float32 rounding (1e-3 HU on values up to
//! 1000); intensity-scaled images to 1e-5. Labels are compared exactly.

use std::path::{Path, PathBuf};

use liverseg_io::{Affine, Volume, Voxel, nifti};
use liverseg_transforms::{
    CropForegroundOptions, Interpolation, PadMethod, ResizeMode, crop, divisible_pad, flip,
    foreground_box,
    intensity::{ScaleIntensityRange, normalize_intensity},
    orientation, resize, resize_labels, rotate90, spacing, spacing_labels, spatial_pad,
};
use serde_json::Value;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/transforms")
}

fn index() -> Value {
    let text = std::fs::read_to_string(dir().join("index.json")).expect("golden index.json");
    serde_json::from_str(&text).expect("valid index.json")
}

fn read<T: Voxel>(name: &str) -> Volume<T> {
    nifti::read(&dir().join(name), &nifti::ReadOptions::default())
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn affine_of(entry: &Value) -> Affine {
    let rows = entry["affine"].as_array().expect("affine");
    let mut a = [[0.0; 4]; 4];
    for (r, row) in rows.iter().enumerate() {
        for (c, v) in row.as_array().expect("row").iter().enumerate() {
            a[r][c] = v.as_f64().expect("number");
        }
    }
    Affine(a)
}

fn shape_of(entry: &Value) -> [usize; 3] {
    let s: Vec<usize> = entry["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    [s[0], s[1], s[2]]
}

/// Checks shape, affine (1e-4, as the issue asks; in practice ~1e-12) and
/// values of an image against a golden case.
fn check_image(case: &str, ours: &Volume<f32>, tol: f32) {
    let idx = index();
    let entry = &idx[case];
    assert_eq!(ours.dims(), shape_of(entry), "{case}: shape");
    let da = ours.affine().max_abs_diff(&affine_of(entry));
    assert!(
        da < 1e-4,
        "{case}: affine differs by {da}: {:?} vs {:?}",
        ours.affine(),
        affine_of(entry)
    );
    let theirs: Volume<f32> = read(entry["files"]["vol"].as_str().unwrap());
    let mut worst = (0.0f32, 0usize);
    for (o, (a, b)) in ours.data().iter().zip(theirs.data()).enumerate() {
        let d = (a - b).abs();
        if d > worst.0 || d.is_nan() {
            worst = (d, o);
        }
    }
    assert!(
        worst.0 <= tol,
        "{case}: image differs by {} at offset {} (ours {}, MONAI {})",
        worst.0,
        worst.1,
        ours.data()[worst.1],
        theirs.data()[worst.1]
    );
}

/// Labels must match exactly.
fn check_label(case: &str, ours: &Volume<u8>) {
    let idx = index();
    let entry = &idx[case];
    assert_eq!(ours.dims(), shape_of(entry), "{case}: label shape");
    assert!(
        ours.affine().max_abs_diff(&affine_of(entry)) < 1e-4,
        "{case}: label affine"
    );
    let theirs: Volume<u8> = read(entry["files"]["seg"].as_str().unwrap());
    let wrong = ours
        .data()
        .iter()
        .zip(theirs.data())
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(
        wrong,
        0,
        "{case}: {wrong} of {} label voxels differ",
        ours.len()
    );
}

struct Stages {
    scaled: Volume<f32>,
    scaled_label: Volume<u8>,
}

fn seed_until_scale() -> Stages {
    let img: Volume<f32> = read("ct.nii.gz");
    let lab: Volume<u8> = read("label.nii.gz");
    let s_img = spacing(&img, [1.5, 1.5, 1.0], Interpolation::Linear).unwrap();
    let s_lab = spacing_labels(&lab, [1.5, 1.5, 1.0]).unwrap();
    check_image("seed_spacing", &s_img, 1e-3);
    check_label("seed_spacing", &s_lab);
    let o_img = orientation(&s_img, ['R', 'A', 'S']).unwrap();
    let o_lab = orientation(&s_lab, ['R', 'A', 'S']).unwrap();
    check_image("seed_orientation", &o_img, 1e-3);
    check_label("seed_orientation", &o_lab);
    let scaled = ScaleIntensityRange::ct_window().apply(&o_img).unwrap();
    check_image("seed_scale", &scaled, 1e-6);
    Stages {
        scaled,
        scaled_label: o_lab,
    }
}

#[test]
fn seed_chain_matches_monai_stage_by_stage() {
    let st = seed_until_scale();
    let b = foreground_box(&st.scaled, &CropForegroundOptions::default())
        .unwrap()
        .expect("foreground");
    let c_img = crop(&st.scaled, &b).unwrap();
    let c_lab = crop(&st.scaled_label, &b).unwrap();
    check_image("seed_crop", &c_img, 1e-6);
    check_label("seed_crop", &c_lab);
    let r_img = resize(&c_img, [24, 20, 16], ResizeMode::Area).unwrap();
    let r_lab = resize_labels(&c_lab, [24, 20, 16]).unwrap();
    check_image("seed_resize_small", &r_img, 1e-5);
    check_label("seed_resize_small", &r_lab);

    // The tutorial's own 128 × 128 × 64, checked by sums and a strided sample.
    let full = resize(&c_img, [128, 128, 64], ResizeMode::Area).unwrap();
    let full_lab = resize_labels(&c_lab, [128, 128, 64]).unwrap();
    let idx = index();
    let entry = &idx["seed_resize_full"];
    assert_eq!(full.dims(), shape_of(entry));
    assert!(full.affine().max_abs_diff(&affine_of(entry)) < 1e-4);
    let sum: f64 = full.data().iter().map(|&v| f64::from(v)).sum();
    assert!(
        (sum - entry["vol_sum"].as_f64().unwrap()).abs() < 1e-2,
        "sum {sum}"
    );
    let lsum: f64 = full_lab.data().iter().map(|&v| f64::from(v)).sum();
    assert_eq!(lsum, entry["seg_sum"].as_f64().unwrap());
    let twos = full_lab.data().iter().filter(|&&v| v == 2).count() as u64;
    assert_eq!(twos, entry["seg_count_2"].as_u64().unwrap());
    let sample = entry["vol_sample"].as_array().unwrap();
    let mut n = 0;
    for i in (0..128).step_by(7) {
        for j in (0..128).step_by(5) {
            for k in (0..64).step_by(3) {
                let want = sample[n].as_f64().unwrap();
                let got = f64::from(full.get(i, j, k).unwrap());
                assert!(
                    (got - want).abs() < 1e-5,
                    "({i}, {j}, {k}): {got} vs {want}"
                );
                n += 1;
            }
        }
    }
    assert_eq!(n, sample.len());
}

#[test]
fn crop_foreground_with_margin_threshold_and_divisibility() {
    let st = seed_until_scale();
    let opts = CropForegroundOptions {
        threshold: 0.3,
        margin: [2, 1, 0],
        k_divisible: [8, 5, 3],
        allow_smaller: false,
    };
    let b = foreground_box(&st.scaled, &opts).unwrap().unwrap();
    check_image("crop_margin_k", &crop(&st.scaled, &b).unwrap(), 0.0);
    check_label("crop_margin_k", &crop(&st.scaled_label, &b).unwrap());
}

#[test]
fn resize_modes() {
    let st = seed_until_scale();
    check_image(
        "resize_trilinear",
        &resize(&st.scaled, [17, 23, 9], ResizeMode::Linear).unwrap(),
        1e-5,
    );
    check_label(
        "resize_trilinear",
        &resize_labels(&st.scaled_label, [17, 23, 9]).unwrap(),
    );
    check_image(
        "resize_area_mixed",
        &resize(&st.scaled, [30, 11, 25], ResizeMode::Area).unwrap(),
        1e-5,
    );
    check_label(
        "resize_area_mixed",
        &resize_labels(&st.scaled_label, [30, 11, 25]).unwrap(),
    );
}

#[test]
fn normalize_pad_rotate_flip() {
    let st = seed_until_scale();
    check_image(
        "normalize_nonzero",
        &normalize_intensity(&st.scaled, true),
        1e-5,
    );
    check_image(
        "spatial_pad",
        &spatial_pad(&st.scaled, [45, 33, 61], PadMethod::Symmetric).unwrap(),
        0.0,
    );
    check_label(
        "spatial_pad",
        &spatial_pad(&st.scaled_label, [45, 33, 61], PadMethod::Symmetric).unwrap(),
    );
    check_image(
        "divisible_pad",
        &divisible_pad(&st.scaled, [7; 3], PadMethod::Symmetric).unwrap(),
        0.0,
    );
    check_image(
        "rotate90_k1_02",
        &rotate90(&st.scaled, 1, (0, 2)).unwrap(),
        0.0,
    );
    check_label(
        "rotate90_k1_02",
        &rotate90(&st.scaled_label, 1, (0, 2)).unwrap(),
    );
    check_image(
        "flip_1",
        &flip(&st.scaled, [false, true, false]).unwrap(),
        0.0,
    );
    check_label(
        "flip_1",
        &flip(&st.scaled_label, [false, true, false]).unwrap(),
    );
}

#[test]
fn oblique_grid() {
    let img: Volume<f32> = read("ct_oblique.nii.gz");
    let lab: Volume<u8> = read("label_oblique.nii.gz");
    let s_img = spacing(&img, [2.0, 2.5, 3.0], Interpolation::Linear).unwrap();
    let s_lab = spacing_labels(&lab, [2.0, 2.5, 3.0]).unwrap();
    check_image("oblique_spacing", &s_img, 1e-3);
    check_label("oblique_spacing", &s_lab);
    check_image(
        "oblique_orientation",
        &orientation(&s_img, ['R', 'A', 'S']).unwrap(),
        1e-3,
    );
    check_label(
        "oblique_orientation",
        &orientation(&s_lab, ['R', 'A', 'S']).unwrap(),
    );
}

#[test]
fn permuted_axes() {
    let img: Volume<f32> = read("ct_permuted.nii.gz");
    let lab: Volume<u8> = read("label_permuted.nii.gz");
    let o_img = orientation(&img, ['R', 'A', 'S']).unwrap();
    let o_lab = orientation(&lab, ['R', 'A', 'S']).unwrap();
    check_image("permuted_orientation", &o_img, 0.0);
    check_label("permuted_orientation", &o_lab);
    check_image(
        "permuted_spacing",
        &spacing(&o_img, [2.0; 3], Interpolation::Linear).unwrap(),
        1e-3,
    );
    check_label(
        "permuted_spacing",
        &spacing_labels(&o_lab, [2.0; 3]).unwrap(),
    );
}
