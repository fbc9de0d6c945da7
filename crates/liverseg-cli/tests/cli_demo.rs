//! `liverseg demo` end to end with a tiny budget: every file of the report
//! is written, the model is usable by `predict`, and the report's numbers
//! are consistent. (The full-length demo's Dice is measured outside the
//! tests and recorded in docs/benchmarks.md: it takes minutes.)

use std::process::Command;

#[test]
fn a_short_demo_writes_its_report_model_and_predictions() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo");
    let o = Command::new(env!("CARGO_BIN_EXE_liverseg"))
        .args([
            "demo",
            "--out",
            out.to_str().unwrap(),
            "--cases",
            "5",
            "--minutes",
            "0.01",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in [
        "report.md",
        "report.json",
        "model.safetensors",
        "curves.png",
        "demo.log",
        "data/Phantom/splits.json",
    ] {
        assert!(out.join(f).is_file(), "missing {f}");
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let cases = report["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 1);
    assert_eq!(report["test_cases"], 1);
    let dice = cases[0]["dice"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&dice));
    assert_eq!(report["mean_dice"].as_f64().unwrap(), dice);
    assert!(report["epochs"].as_u64().unwrap() >= 1);
    let overlay = out.join(format!(
        "overlays/{}.png",
        cases[0]["name"].as_str().unwrap()
    ));
    assert!(
        std::fs::read(&overlay).unwrap().starts_with(b"\x89PNG"),
        "{}",
        overlay.display()
    );
    let pred = out.join(format!(
        "predictions/{}.nii.gz",
        cases[0]["name"].as_str().unwrap()
    ));
    assert!(pred.is_file());
    // The demo's model works with `liverseg predict`.
    let image = out.join(format!(
        "data/Phantom/imagesTr/{}.nii.gz",
        cases[0]["name"].as_str().unwrap()
    ));
    let mask = tmp.path().join("mask.nii.gz");
    let o = Command::new(env!("CARGO_BIN_EXE_liverseg"))
        .args([
            "predict",
            "--model",
            out.join("model.safetensors").to_str().unwrap(),
            "--input",
            image.to_str().unwrap(),
            "--output",
            mask.to_str().unwrap(),
            "--json",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Running again without --force refuses.
    let o = Command::new(env!("CARGO_BIN_EXE_liverseg"))
        .args(["demo", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}
