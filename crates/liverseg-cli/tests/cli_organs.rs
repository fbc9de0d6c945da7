//! Issue 17: beyond the liver. A four-organ CT dataset described by its
//! `dataset.json` alone (clinical phantoms labelling nine structures) is
//! trained with a label selection, and `predict` writes the dataset's own
//! values, a DICOM SEG with one named segment per organ, and a volume per
//! organ; Dice per organ is checked on held-out cases. A two-channel
//! MR-like dataset in nnU-Net's layout (T1 and T2, an arbitrary intensity
//! scale per case and sequence) trains with a z-score in place of the CT
//! window and predicts from one file per channel.

mod common;

use common::{liverseg, ok, s};
use liverseg_io::{Volume, dicom, nifti};
use liverseg_model::{Architecture, UNetConfig};
use liverseg_phantom::{
    ClinicalOptions, MrSequence, Organ, Phantom, PhantomConfig, generate, generate_mr,
};
use liverseg_train::TrainConfig;
use liverseg_train::config::{LossConfig, OptimizerConfig, ScheduleConfig};
use std::path::Path;

/// The four organs learned, as `--labels` names them.
const ORGANS: [Organ; 4] = [Organ::Liver, Organ::Spleen, Organ::Kidney, Organ::Stomach];

/// An upper-abdominal clinical phantom at 5 mm whose label volume holds
/// every structure `Organ` lists.
fn phantom(seed: u64) -> Phantom {
    generate(seed, &grid()).unwrap()
}

fn grid() -> PhantomConfig {
    PhantomConfig {
        dims: [80, 80, 44],
        spacing: [5.0, 5.0, 5.0],
        flips: [true, true, false],
        center: [0.0, 0.0, -70.0],
        clinical: Some(ClinicalOptions {
            organ_labels: true,
            lesions: Vec::new(),
            ..ClinicalOptions::default()
        }),
        ..PhantomConfig::default()
    }
}

fn config(dir: &Path) -> std::path::PathBuf {
    let preset = dir.join("organs.json");
    std::fs::write(
        &preset,
        r#"{"name": "organs", "steps": [{"type": "orientation", "axcodes": "RAS"},
            {"type": "scale_intensity_range", "a_min": -175.0, "a_max": 250.0, "b_min": 0.0, "b_max": 1.0, "clip": true},
            {"type": "resize", "size": [64, 64, 32]}]}"#,
    )
    .unwrap();
    let mut c = TrainConfig {
        preset: s(&preset).into(),
        model: Architecture::MonaiUnet(UNetConfig {
            channels: vec![8, 16, 32, 64],
            strides: vec![2, 2, 2],
            ..UNetConfig::default()
        }),
        loss: LossConfig::dice_ce_softmax(),
        optimizer: OptimizerConfig::adam(3e-3, 1e-5),
        schedule: ScheduleConfig::Poly { exponent: 0.9 },
        epochs: 60,
        iterations_per_epoch: 8,
        batch_size: 2,
        val_every: 10,
        cache: Some(dir.join("cache")),
        ..TrainConfig::default()
    };
    c.sliding_window.roi_size = [64, 64, 32];
    let p = dir.join("organs.toml");
    std::fs::write(&p, c.to_toml().unwrap()).unwrap();
    p
}

/// Trains `data` with the `--labels` selection `labels`; the best model.
fn train(dir: &Path, data: &Path, labels: &str) -> std::path::PathBuf {
    let run = dir.join("run");
    ok(&liverseg(&[
        "train",
        "--config",
        s(&config(dir)),
        "--data",
        s(data),
        "--out",
        s(&run),
        "--labels",
        labels,
    ]));
    run.join("best/model.safetensors")
}

/// What `liverseg models` prints about a model file.
fn card(model: &Path) -> String {
    let o = liverseg(&["models", s(model)]);
    ok(&o);
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn dice(a: &Volume<u8>, b: &Volume<u8>, value: u8) -> f64 {
    let (mut both, mut na, mut nb) = (0usize, 0usize, 0usize);
    for (&x, &y) in a.data().iter().zip(b.data()) {
        na += usize::from(x == value);
        nb += usize::from(y == value);
        both += usize::from(x == value && y == value);
    }
    2.0 * both as f64 / (na + nb).max(1) as f64
}

#[test]
fn four_organs_train_from_dataset_json_and_predict_with_their_values() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = dir.join("Organs");
    let cases = (0..8).map(|i| Ok((format!("organs_{i}"), phantom(i))));
    liverseg_phantom::write_decathlon(&data, cases, "four organs").unwrap();
    let ds = std::fs::read_to_string(data.join("dataset.json")).unwrap();
    assert!(ds.contains("\"3\": \"spleen\"") && ds.contains("\"9\": \"inferior_vena_cava\""));

    // Train liver, spleen, kidney and stomach; the other five labels of the
    // dataset are background.
    let model = train(dir, &data, "liver,spleen,kidney,stomach");
    let listing = card(&model);
    assert!(
        listing.contains("0 background, 1 liver, 3 spleen, 4 kidney, 5 stomach"),
        "{listing}"
    );
    // Both kidneys are one label: prediction keeps every piece of it.
    assert!(
        listing.contains("largest component of liver, spleen, stomach\n"),
        "{listing}"
    );

    // Two held-out cases: the prediction holds the dataset's values, and
    // each organ overlaps its reference.
    let mut worst = [1.0f64; 4];
    for seed in [100, 101] {
        let p = phantom(seed);
        let image = dir.join(format!("held_{seed}.nii.gz"));
        nifti::write(&image, &p.image, &nifti::WriteOptions::default()).unwrap();
        let out = dir.join(format!("pred_{seed}.nii.gz"));
        let o = liverseg(&[
            "predict",
            "--model",
            s(&model),
            "--input",
            s(&image),
            "--output",
            s(&out),
            "--json",
        ]);
        ok(&o);
        let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let volumes = report["cases"][0]["volumes_ml"].as_object().unwrap();
        let names: Vec<&str> = volumes.keys().map(String::as_str).collect();
        assert_eq!(names, ["kidney", "liver", "spleen", "stomach"]);
        let pred: Volume<u8> = nifti::read(&out, &nifti::ReadOptions::default()).unwrap();
        assert!(pred.data().iter().all(|v| [0, 1, 3, 4, 5].contains(v)));
        let reference = p
            .label
            .map(|v| if (1..=5).contains(&v) && v != 2 { v } else { 0 });
        for (k, organ) in ORGANS.iter().enumerate() {
            let d = dice(&pred, &reference, organ.value());
            eprintln!("held-out {seed} {}: Dice {d:.3}", organ.name());
            worst[k] = worst[k].min(d);
            let voxels = pred.data().iter().filter(|&&v| v == organ.value()).count();
            let ml = voxels as f64 * 0.125;
            assert!((volumes[organ.name()].as_f64().unwrap() - ml).abs() < 0.05);
        }
    }
    for (k, organ) in ORGANS.iter().enumerate() {
        assert!(
            worst[k] > 0.7,
            "{}: worst Dice {:.3}",
            organ.name(),
            worst[k]
        );
    }

    // From DICOM, the SEG has one segment per organ, named, in class order,
    // each the prediction's voxels of that organ.
    let series = dir.join("series");
    let p = phantom(100);
    dicom::write_series(&series, &p.image, &dicom::WriteSeriesOptions::default()).unwrap();
    let nii = dir.join("organs_from_dicom.nii.gz");
    let o = liverseg(&[
        "predict",
        "--model",
        s(&model),
        "--input",
        s(&series),
        "--output",
        s(&nii),
        "--format",
        "both",
    ]);
    ok(&o);
    let pred: Volume<u8> = nifti::read(&nii, &nifti::ReadOptions::default()).unwrap();
    let segmentation = dicom::read_seg(
        &dir.join("organs_from_dicom.dcm"),
        Some((pred.dims(), pred.affine())),
    )
    .unwrap();
    let labels: Vec<&str> = segmentation
        .segments
        .iter()
        .map(|(d, _)| d.label.as_str())
        .collect();
    assert_eq!(labels, ["Liver", "Spleen", "Kidney", "Stomach"]);
    for ((_, mask), organ) in segmentation.segments.iter().zip(ORGANS) {
        let want = pred.data().iter().filter(|&&v| v == organ.value()).count();
        let got = mask.data().iter().filter(|&&v| v == 1).count();
        assert_eq!(got, want, "{}", organ.name());
    }
}

/// The two MR-like sequences of a case, each with its own arbitrary
/// scale, and the case's label.
fn mr_case(seed: u64) -> (Volume<i16>, Volume<i16>, Volume<u8>) {
    let t1 = generate_mr(seed, &grid(), MrSequence::T1).unwrap();
    let t2 = generate_mr(seed, &grid(), MrSequence::T2).unwrap();
    (t1.image, t2.image, t1.label)
}

#[test]
fn a_two_channel_mr_dataset_trains_with_a_zscore_and_predicts_from_both() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // nnU-Net v2's raw layout: case_0000 (T1) and case_0001 (T2), labels
    // named by value, no list of cases.
    let data = dir.join("MR");
    for sub in ["imagesTr", "labelsTr"] {
        std::fs::create_dir_all(data.join(sub)).unwrap();
    }
    let w = nifti::WriteOptions::default();
    for i in 0..8 {
        let (t1, t2, label) = mr_case(i);
        nifti::write(&data.join(format!("imagesTr/mr_{i}_0000.nii.gz")), &t1, &w).unwrap();
        nifti::write(&data.join(format!("imagesTr/mr_{i}_0001.nii.gz")), &t2, &w).unwrap();
        nifti::write(&data.join(format!("labelsTr/mr_{i}.nii.gz")), &label, &w).unwrap();
    }
    let labels: Vec<String> = Organ::ALL
        .iter()
        .filter(|o| **o != Organ::LiverTumour)
        .map(|o| format!("\"{}\": {}", o.name(), o.value()))
        .collect();
    std::fs::write(
        data.join("dataset.json"),
        format!(
            r#"{{"channel_names": {{"0": "T1", "1": "T2"}}, "labels": {{"background": 0, {}}},
            "numTraining": 8, "file_ending": ".nii.gz"}}"#,
            labels.join(", ")
        ),
    )
    .unwrap();
    let model = train(dir, &data, "liver,spleen,kidney");
    let listing = card(&model);
    assert!(
        listing.contains("organs+zscore: orientation → resize → normalize_intensity"),
        "{listing}"
    );
    assert!(listing.contains("2 input channels"), "{listing}");
    for seed in [100, 101] {
        let (t1, t2, label) = mr_case(seed);
        let (a, b) = (
            dir.join(format!("t1_{seed}.nii.gz")),
            dir.join(format!("t2_{seed}.nii.gz")),
        );
        nifti::write(&a, &t1, &w).unwrap();
        nifti::write(&b, &t2, &w).unwrap();
        let out = dir.join(format!("mr_pred_{seed}.nii.gz"));
        ok(&liverseg(&[
            "predict",
            "--model",
            s(&model),
            "--input",
            s(&a),
            "--input",
            s(&b),
            "--output",
            s(&out),
        ]));
        let pred: Volume<u8> = nifti::read(&out, &nifti::ReadOptions::default()).unwrap();
        assert!(pred.same_grid(&label, 1e-6));
        for organ in [Organ::Liver, Organ::Spleen, Organ::Kidney] {
            let d = dice(&pred, &label, organ.value());
            eprintln!("MR held-out {seed} {}: Dice {d:.3}", organ.name());
            assert!(d > 0.7, "MR {seed} {}: Dice {d:.3}", organ.name());
        }
    }
    // The Decathlon's layout: one 4-D file whose volumes are the channels
    // gives the same mask.
    let (t1, t2, _) = mr_case(100);
    let four = dir.join("mr_100_4d.nii.gz");
    nifti::write_4d(&four, &[&t1, &t2], &w).unwrap();
    let out4 = dir.join("mr_pred_100_4d.nii.gz");
    ok(&liverseg(&[
        "predict",
        "--model",
        s(&model),
        "--input",
        s(&four),
        "--output",
        s(&out4),
    ]));
    let read = |p: &Path| -> Volume<u8> { nifti::read(p, &nifti::ReadOptions::default()).unwrap() };
    assert!(read(&out4) == read(&dir.join("mr_pred_100.nii.gz")));
    // One channel for a two-channel model, or channels on two grids: exit 2,
    // nothing written.
    let a = dir.join("t1_100.nii.gz");
    let out = dir.join("refused.nii.gz");
    let o = liverseg(&[
        "predict",
        "--model",
        s(&model),
        "--input",
        s(&a),
        "--output",
        s(&out),
    ]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("takes 2 input channel"));
    let other = PhantomConfig {
        spacing: [4.0, 4.0, 4.0],
        ..grid()
    };
    let moved = dir.join("t2_other_grid.nii.gz");
    nifti::write(
        &moved,
        &generate_mr(100, &other, MrSequence::T2).unwrap().image,
        &w,
    )
    .unwrap();
    let o = liverseg(&[
        "predict",
        "--model",
        s(&model),
        "--input",
        s(&a),
        "--input",
        s(&moved),
        "--output",
        s(&out),
    ]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("not on one grid"));
    assert!(!out.exists());
}
