//! Helpers the CLI test files share: run the built binary, check success,
//! and pass paths as arguments. Each test file uses a part of them.
#![allow(dead_code)]

pub mod orthanc;

use std::path::Path;
use std::process::{Command, Output};

/// Runs the `liverseg` binary of this build with `args`.
pub fn liverseg(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_liverseg"))
        .args(args)
        .output()
        .expect("run liverseg")
}

/// Asserts that a run succeeded, showing its stderr if not.
pub fn ok(o: &Output) {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// A path as a command-line argument.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// True when `probe` runs and succeeds. When it does not, prints a loud
/// notice and returns false so the test skips that check, unless
/// `LIVERSEG_REQUIRE_TOOLS=1` (CI), in which case the test fails.
pub fn tool_available(name: &str, probe: &mut Command) -> bool {
    let ok = probe.output().map(|o| o.status.success()).unwrap_or(false);
    if !ok {
        if std::env::var("LIVERSEG_REQUIRE_TOOLS").as_deref() == Ok("1") {
            panic!("{name} is required (LIVERSEG_REQUIRE_TOOLS=1) but not available");
        }
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "\n!!!!!!!! SKIPPED: {name} is not available; its check did not run !!!!!!!!\n"
        );
    }
    ok
}

/// The scheduler variables a batch takes its shard from.
pub const SCHEDULER_VARS: [&str; 7] = [
    "SLURM_ARRAY_TASK_ID",
    "SLURM_ARRAY_TASK_MIN",
    "SLURM_ARRAY_TASK_MAX",
    "SLURM_ARRAY_TASK_STEP",
    "SLURM_ARRAY_TASK_COUNT",
    "JOB_COMPLETION_INDEX",
    "LIVERSEG_SHARD_COUNT",
];

/// `liverseg args…` without the scheduler variables of the test's own
/// environment (a test run inside a Slurm job must not shard itself).
pub fn clean_cmd(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_liverseg"));
    c.args(args);
    for v in SCHEDULER_VARS {
        c.env_remove(v);
    }
    c
}

/// A phantom CT of `dims` voxels of `spacing` mm, written to `path`.
pub fn phantom_ct(path: &Path, seed: u64, dims: [usize; 3], spacing: f64) {
    let cfg = liverseg_phantom::PhantomConfig {
        dims,
        spacing: [spacing; 3],
        ..liverseg_phantom::PhantomConfig::default()
    };
    let p = liverseg_phantom::generate(seed, &cfg).unwrap();
    liverseg_io::nifti::write(path, &p.image, &Default::default()).unwrap();
}

/// Every record of a batch's output folder (all shards' files).
pub fn batch_records(out: &Path) -> Vec<serde_json::Value> {
    let mut v = Vec::new();
    let Ok(entries) = std::fs::read_dir(out.join(".liverseg")) else {
        return v;
    };
    for e in entries {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|e| e == "jsonl") {
            for line in std::fs::read_to_string(&p).unwrap().lines() {
                v.push(serde_json::from_str(line).unwrap());
            }
        }
    }
    v
}

/// How many of `records` are case `id` with `status`.
pub fn record_count(records: &[serde_json::Value], id: &str, status: &str) -> usize {
    records
        .iter()
        .filter(|r| r["id"] == id && r["status"] == status)
        .count()
}

/// `n` tiny phantoms (24 × 24 × 12 at 16 mm) in the Decathlon layout at
/// `root`, cases `p0`, `p1`, ….
pub fn tiny_dataset(root: &Path, n: u64) {
    let cfg = liverseg_phantom::PhantomConfig {
        dims: [24, 24, 12],
        spacing: [16.0, 16.0, 21.0],
        ..liverseg_phantom::PhantomConfig::default()
    };
    let cases = (0..n).map(|i| Ok((format!("p{i}"), liverseg_phantom::generate(i, &cfg)?)));
    liverseg_phantom::write_decathlon(root, cases, "test phantoms").unwrap();
}

/// A training configuration that runs in seconds (a 4–8-channel UNet on
/// 16 × 16 × 8 inputs, 2 epochs), written as `dir/tiny.toml` beside its
/// preset `dir/tiny.json`; `cache` is the preprocessed-case cache.
pub fn tiny_train_config(dir: &Path, cache: Option<std::path::PathBuf>) -> std::path::PathBuf {
    use liverseg_model::{Architecture, UNetConfig};
    let preset = dir.join("tiny.json");
    std::fs::write(
        &preset,
        r#"{"name": "tiny", "steps": [{"type": "orientation", "axcodes": "RAS"},
            {"type": "scale_intensity_range", "a_min": -200.0, "a_max": 200.0, "b_min": 0.0, "b_max": 1.0, "clip": true},
            {"type": "resize", "size": [16, 16, 8]}]}"#,
    )
    .unwrap();
    let mut c = liverseg_train::TrainConfig {
        preset: preset.to_string_lossy().into_owned(),
        model: Architecture::MonaiUnet(UNetConfig {
            channels: vec![4, 8],
            strides: vec![2],
            num_res_units: 1,
            ..UNetConfig::default()
        }),
        epochs: 2,
        cache,
        ..liverseg_train::TrainConfig::default()
    };
    c.sliding_window.roi_size = [16, 16, 8];
    let p = dir.join("tiny.toml");
    std::fs::write(&p, c.to_toml().unwrap()).unwrap();
    p
}
