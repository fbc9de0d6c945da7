//! `liverseg train`: configuration printing and overriding, a short run,
//! resume, and the exit-code contract.

mod common;

use liverseg_train::TrainConfig;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn liverseg_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_liverseg"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run liverseg")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn dataset(dir: &Path) -> PathBuf {
    let root = dir.join("data/Phantom");
    common::tiny_dataset(&root, 3);
    root
}

fn tiny_config(dir: &Path) -> PathBuf {
    common::tiny_train_config(dir, Some(dir.join("cache")))
}

#[test]
fn print_config_shows_the_tutorial_defaults_and_applies_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let o = liverseg_in(tmp.path(), &["train", "--print-config"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    let c = TrainConfig::from_toml(&text).unwrap();
    assert_eq!(c, TrainConfig::default());
    let o = liverseg_in(
        tmp.path(),
        &[
            "train",
            "--print-config",
            "--epochs",
            "7",
            "--labels",
            "liver,tumour",
            "--lr",
            "0.001",
            "--precision",
            "bf16",
            "--deterministic",
        ],
    );
    let c = TrainConfig::from_toml(&String::from_utf8_lossy(&o.stdout)).unwrap();
    assert_eq!(c.precision, liverseg_model::Precision::Bf16);
    assert!(c.deterministic);
    assert_eq!(c.epochs, 7);
    assert_eq!(c.optimizer.lr(), 0.001);
    c.validate().unwrap();
    // Validation slides the preset's training window unless the
    // configuration file sets one.
    let print = |extra: &[&str]| {
        let mut args = vec!["train", "--print-config"];
        args.extend_from_slice(extra);
        let o = liverseg_in(tmp.path(), &args);
        assert!(o.status.success(), "{}", stderr(&o));
        TrainConfig::from_toml(&String::from_utf8_lossy(&o.stdout)).unwrap()
    };
    assert_eq!(
        print(&["--preset", "fast"]).sliding_window.roi_size,
        [96, 96, 64]
    );
    assert_eq!(
        print(&["--preset", "patch"]).sliding_window.roi_size,
        [128, 128, 64]
    );
    let cfg = tiny_config(tmp.path());
    let given = print(&["--config", cfg.to_str().unwrap(), "--preset", "fast"]);
    assert_eq!(given.sliding_window.roi_size, [16, 16, 8]);
    assert_eq!(given.preset, "fast");
}

#[test]
fn without_a_dataset_it_says_how_to_get_one() {
    let tmp = tempfile::tempdir().unwrap();
    let o = liverseg_in(tmp.path(), &["train"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cargo xtask synth"), "{}", stderr(&o));
}

#[test]
fn trains_in_bf16_mixed_precision() {
    let tmp = tempfile::tempdir().unwrap();
    dataset(tmp.path());
    let cfg = tiny_config(tmp.path());
    let args = [
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        "runs/b",
        "--precision",
        "bf16",
    ];
    let o = liverseg_in(tmp.path(), &args);
    assert!(o.status.success(), "{}", stderr(&o));
    let run = tmp.path().join("runs/b");
    // Master weights stay float32: every tensor of the checkpoint is F32.
    let bytes = std::fs::read(run.join("best/model.safetensors")).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let dtypes: Vec<&str> = header
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(_, v)| v["dtype"].as_str().unwrap())
        .collect();
    assert!(
        !dtypes.is_empty() && dtypes.iter().all(|d| *d == "F32"),
        "{dtypes:?}"
    );
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let loss: f64 = csv
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(loss.is_finite() && loss > 0.0, "{csv}");
    let o = liverseg_in(
        tmp.path(),
        &["train", "--precision", "fp8", "--print-config"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn trains_resumes_and_protects_an_existing_run() {
    let tmp = tempfile::tempdir().unwrap();
    dataset(tmp.path());
    let cfg = tiny_config(tmp.path());
    let cfg = cfg.to_str().unwrap();
    let o = liverseg_in(tmp.path(), &["train", "--config", cfg, "--out", "runs/t"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("best validation Dice"));
    let run = tmp.path().join("runs/t");
    let log = std::fs::read_to_string(run.join("train.log")).unwrap();
    assert!(log.contains("epoch done"), "{log}");
    assert!(run.join("curves.png").is_file() && run.join("best/model.safetensors").is_file());

    let o = liverseg_in(tmp.path(), &["train", "--config", cfg, "--out", "runs/t"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--resume"));

    let o = liverseg_in(
        tmp.path(),
        &[
            "train", "--config", cfg, "--out", "runs/t", "--resume", "--epochs", "3",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4, "{csv}");
}
