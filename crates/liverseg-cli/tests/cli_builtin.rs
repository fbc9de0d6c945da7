//! The built-in model: `predict` without `--model` (NIfTI and DICOM in,
//! SEG and overlay out), `--model builtin`, and `liverseg models`.

mod common;
use common::{liverseg, ok, s};

use liverseg_io::{Volume, nifti};
use liverseg_phantom::{ClinicalRanges, PhantomConfig};
use std::path::{Path, PathBuf};

/// A coarse clinical phantom (a seed the built-in model never trained on)
/// written as NIfTI, with its exact label.
fn phantom(dir: &Path) -> (PathBuf, Volume<u8>) {
    let seed = 3_000_001;
    let cfg = PhantomConfig::clinical_in(seed, &ClinicalRanges::coarse());
    let p = liverseg_phantom::generate(seed, &cfg).unwrap();
    let path = dir.join("ct.nii.gz");
    nifti::write(&path, &p.image, &nifti::WriteOptions::default()).unwrap();
    (path, p.label)
}

/// Dice of the liver (labels 1 and 2 merged) between two masks.
fn dice(a: &Volume<u8>, b: &Volume<u8>) -> f64 {
    liverseg_metrics::dice(a.data(), b.data(), &[1, 2]).unwrap()
}

/// The least Dice the built-in model must reach on the test's phantom
/// (0.897 with the 150-epoch weights of 2026-12-06, 0.816 with the first,
/// 100-epoch ones; a placeholder model scores near 0).
const DICE_FLOOR: f64 = 0.85;

#[test]
fn predict_without_a_model_uses_the_built_in_one() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (ct, label) = phantom(t);
    // NIfTI in, with a JSON report and an overlay.
    let mask = t.join("mask.nii.gz");
    let o = liverseg(&[
        "predict",
        "--input",
        s(&ct),
        "--output",
        s(&mask),
        "--json",
        "--overlay",
        s(&t.join("mask.png")),
    ]);
    ok(&o);
    let m: Volume<u8> = nifti::read(&mask, &Default::default()).unwrap();
    assert!(m.same_grid(&label, 1e-4));
    // A real model, not a placeholder: it finds this liver.
    let d = dice(&m, &label);
    assert!(d > DICE_FLOOR, "built-in model Dice {d:.3}");
    assert!(t.join("mask.png").is_file());
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(j["cases"][0]["volumes_ml"]["liver"].is_number(), "{j}");
    // `--model builtin` names the same model: the same mask.
    let named = t.join("named.nii.gz");
    ok(&liverseg(&[
        "predict",
        "--model",
        "builtin",
        "--input",
        s(&ct),
        "--output",
        s(&named),
    ]));
    assert_eq!(
        std::fs::read(&mask).unwrap(),
        std::fs::read(&named).unwrap()
    );
    // Windows batched three at a time (as on a GPU): the same mask.
    let batched = t.join("batched.nii.gz");
    ok(&liverseg(&[
        "predict",
        "--input",
        s(&ct),
        "--output",
        s(&batched),
        "--sw-batch-size",
        "3",
    ]));
    let bm: Volume<u8> = nifti::read(&batched, &Default::default()).unwrap();
    assert_eq!(bm.data(), m.data());
    // bfloat16 mixed precision (on the CPU: bfloat16 convolutions, on AMX
    // tiles where the CPU has them) moves few voxels.
    let bf16 = t.join("bf16.nii.gz");
    ok(&liverseg(&[
        "predict",
        "--input",
        s(&ct),
        "--output",
        s(&bf16),
        "--precision",
        "bf16",
    ]));
    let b: Volume<u8> = nifti::read(&bf16, &Default::default()).unwrap();
    let agree = dice(&b, &m);
    eprintln!("bf16 against f32 mask: Dice {agree:.5}");
    assert!(agree > 0.99, "bf16 mask against f32: Dice {agree:.4}");
    assert!(dice(&b, &label) > DICE_FLOOR);
    // DICOM series in, SEG beside the NIfTI out.
    let series = t.join("series");
    ok(&liverseg(&["convert", s(&ct), s(&series)]));
    let both = t.join("both.nii.gz");
    ok(&liverseg(&[
        "predict",
        "--input",
        s(&series),
        "--output",
        s(&both),
        "--format",
        "both",
    ]));
    let from_series: Volume<u8> = nifti::read(&both, &Default::default()).unwrap();
    assert_eq!(from_series.dims(), m.dims());
    let d = dice(&from_series, &label);
    assert!(d > DICE_FLOOR, "built-in model Dice {d:.3} from DICOM");
    assert!(t.join("both.dcm").is_file());
}

#[test]
fn models_prints_the_built_in_card() {
    let o = liverseg(&["models"]);
    ok(&o);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.starts_with("builtin\n"), "{text}");
    for field in [
        "trained on",
        "recipe",
        "classes",
        "network",
        "preprocessing",
        "window",
    ] {
        assert!(text.contains(field), "{field} missing: {text}");
    }
    let o = liverseg(&["models", "--json"]);
    ok(&o);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["model"], "builtin");
    assert_eq!(j["classes"], serde_json::json!(["background", "liver"]));
    assert!(j["parameters"].as_u64().unwrap() > 0);
    assert!(
        j["about"]["trained on"]
            .as_str()
            .unwrap()
            .contains("synthetic")
    );
    // A model file is described the same way; a missing one is bad input.
    let o = liverseg(&["models", "/nonexistent/model.safetensors"]);
    assert_eq!(o.status.code(), Some(2));
}
