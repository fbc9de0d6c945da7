//! `liverseg plan` and `liverseg train --plan` (issue 17): the fingerprint
//! of a dataset with thick slices, the plan nnU-Net's rules make from it
//! (the coarse axis pooled later, with 1-voxel kernels at first), and a
//! short training run with that per-axis network. The dataset is in
//! nnU-Net v2's raw layout (`case_0000.nii.gz` images, a `dataset.json`
//! with `channel_names`, `labels` name → value and `file_ending`).

mod common;

use common::{liverseg, ok, s};
use liverseg_phantom::{PhantomConfig, generate};

#[test]
fn a_thick_slice_dataset_is_planned_and_trained_per_axis() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = dir.join("Thick");
    let cfg = PhantomConfig {
        dims: [56, 56, 16],
        spacing: [4.0, 4.0, 13.0],
        ..PhantomConfig::default()
    };
    let cases = (0..4).map(|i| Ok((format!("thick_{i}"), generate(i, &cfg)?)));
    liverseg_phantom::write_decathlon(&data, cases, "thick slices").unwrap();
    for i in 0..4 {
        let from = data.join(format!("imagesTr/thick_{i}.nii.gz"));
        std::fs::rename(from, data.join(format!("imagesTr/thick_{i}_0000.nii.gz"))).unwrap();
    }
    std::fs::write(
        data.join("dataset.json"),
        r#"{"channel_names": {"0": "CT"}, "labels": {"background": 0, "liver": 1},
            "numTraining": 4, "file_ending": ".nii.gz"}"#,
    )
    .unwrap();
    let plan_path = dir.join("plan.json");
    let o = liverseg(&["plan", "--data", s(&data), "--out", s(&plan_path)]);
    ok(&o);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("spacing      4.000 x 4.000 x 13.000 mm"),
        "{text}"
    );
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan_path).unwrap()).unwrap();
    // The fingerprint is in nnU-Net's z, y, x order; CT has no zero
    // background, so cropping keeps every voxel.
    let fp = &plan["fingerprint"];
    assert_eq!(fp["spacings"][0], serde_json::json!([13.0, 4.0, 4.0]));
    assert_eq!(fp["shapes_after_crop"][3], serde_json::json!([16, 56, 56]));
    assert_eq!(fp["median_relative_size_after_cropping"], 1.0);
    let mean = fp["foreground_intensity_properties_per_channel"]["0"]["mean"]
        .as_f64()
        .unwrap();
    assert!((20.0..120.0).contains(&mean), "liver HU mean {mean}");
    // z is pooled only once x and y have coarsened to within 2x of it, and
    // convolved with 1-voxel kernels until then.
    let xyz = &plan["plan"]["xyz"];
    assert_eq!(xyz["spacing"], serde_json::json!([4.0, 4.0, 13.0]));
    assert_eq!(xyz["strides"][1], serde_json::json!([2, 2, 1]));
    assert_eq!(xyz["kernel_sizes"][0], serde_json::json!([3, 3, 1]));
    assert_eq!(
        plan["plan"]["normalization_schemes"],
        serde_json::json!(["CTNormalization"])
    );
    // Never replaced without --force.
    let again = liverseg(&["plan", "--data", s(&data), "--out", s(&plan_path)]);
    assert_eq!(
        again.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    // The plan trains: a per-axis plain U-Net with the plan's features.
    let run = dir.join("run");
    ok(&liverseg(&[
        "train",
        "--plan",
        s(&plan_path),
        "--out",
        s(&run),
        "--epochs",
        "1",
        "--iterations-per-epoch",
        "1",
        "--batch-size",
        "1",
    ]));
    let o = liverseg(&["models", "--json", s(&run.join("last/model.safetensors"))]);
    ok(&o);
    let card: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        card["network"].as_str().unwrap().starts_with("plain U-Net"),
        "{card}"
    );
    assert!(
        card["preprocessing"]
            .as_str()
            .unwrap()
            .starts_with("plan: spacing → ct_normalize")
    );
}

/// A two-channel MR dataset: a fingerprint per channel, z-scores, and a
/// two-input plain U-Net.
#[test]
fn a_two_channel_mr_dataset_is_planned_with_zscores_and_trains() {
    use liverseg_phantom::{MrSequence, generate_mr};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = dir.join("MR");
    for sub in ["imagesTr", "labelsTr"] {
        std::fs::create_dir_all(data.join(sub)).unwrap();
    }
    let cfg = PhantomConfig {
        dims: [48, 48, 24],
        spacing: [6.0, 6.0, 6.0],
        ..PhantomConfig::default()
    };
    let w = liverseg_io::nifti::WriteOptions::default();
    for i in 0..3 {
        for (c, seq) in [MrSequence::T1, MrSequence::T2].into_iter().enumerate() {
            let p = generate_mr(i, &cfg, seq).unwrap();
            let f = data.join(format!("imagesTr/mr_{i}_{c:04}.nii.gz"));
            liverseg_io::nifti::write(&f, &p.image, &w).unwrap();
            if c == 0 {
                let l = data.join(format!("labelsTr/mr_{i}.nii.gz"));
                liverseg_io::nifti::write(&l, &p.label, &w).unwrap();
            }
        }
    }
    std::fs::write(
        data.join("dataset.json"),
        r#"{"channel_names": {"0": "T1", "1": "T2"}, "labels": {"background": 0, "liver": 1},
            "numTraining": 3, "file_ending": ".nii.gz"}"#,
    )
    .unwrap();
    let plan_path = dir.join("plan.json");
    ok(&liverseg(&[
        "plan",
        "--data",
        s(&data),
        "--out",
        s(&plan_path),
    ]));
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan_path).unwrap()).unwrap();
    let props = &plan["fingerprint"]["foreground_intensity_properties_per_channel"];
    // Each channel has its own statistics (each sequence its own scale).
    assert_ne!(props["0"]["mean"], props["1"]["mean"]);
    assert_eq!(
        plan["plan"]["normalization_schemes"],
        serde_json::json!(["ZScoreNormalization", "ZScoreNormalization"])
    );
    let run = dir.join("run");
    ok(&liverseg(&[
        "train",
        "--plan",
        s(&plan_path),
        "--out",
        s(&run),
        "--epochs",
        "1",
        "--iterations-per-epoch",
        "1",
        "--batch-size",
        "1",
    ]));
    let o = liverseg(&["models", "--json", s(&run.join("last/model.safetensors"))]);
    ok(&o);
    let card: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let network = card["network"].as_str().unwrap();
    assert!(
        network.starts_with("plain U-Net, 2 input channels"),
        "{network}"
    );
    let steps = card["preprocessing"].as_str().unwrap();
    assert_eq!(steps, "plan: spacing → normalize_intensity → spatial_pad");
}
