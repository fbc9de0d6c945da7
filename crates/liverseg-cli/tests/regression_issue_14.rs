//! Regression tests for issue 14, as a user or an attacker meets the
//! binary: outputs that would destroy inputs, special files, closed and
//! full standard output, budgets, partial outputs, exit codes and messages.

mod common;
use common::{liverseg, ok, s};

use liverseg_io::{Affine, Volume, nifti};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/predict")
        .join(name)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit 2 with a one-line message of at most 300 characters that contains
/// `needle`, and no colour codes (stderr is not a terminal here).
fn bad_input(o: &Output, needle: &str) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains(needle), "{needle:?} not in {e}");
    let last = e.lines().last().unwrap_or_default();
    assert!(last.starts_with("liverseg: error: "), "{e}");
    assert!(last.chars().count() <= 320, "{} chars: {last}", last.len());
    assert!(!e.contains('\x1b'), "colour codes in {e:?}");
}

/// A small CT (int16 HU) and its folder `d/inner/` with a neighbour file.
fn ct_in(dir: &Path) -> PathBuf {
    let inner = dir.join("d/inner");
    std::fs::create_dir_all(&inner).unwrap();
    let ct = inner.join("ct.nii.gz");
    std::fs::copy(golden("ct.nii.gz"), &ct).unwrap();
    std::fs::write(inner.join("notes.txt"), "keep me").unwrap();
    ct
}

fn intact(dir: &Path) {
    assert!(dir.join("d/inner/ct.nii.gz").is_file());
    assert_eq!(
        std::fs::read_to_string(dir.join("d/inner/notes.txt")).unwrap(),
        "keep me"
    );
}

/// Imports the golden MONAI checkpoint (4, 8, 16 channels).
fn model(dir: &Path) -> PathBuf {
    let m = dir.join("model.safetensors");
    ok(&liverseg(&[
        "import-monai",
        s(&golden("unet.pth")),
        "--out",
        s(&m),
        "--channels",
        "4,8,16",
        "--strides",
        "2,2",
    ]));
    m
}

/// Items 1 and 2: an output that is, contains or lies inside an input is
/// refused whatever `--force` says, for every path a command writes.
#[test]
fn outputs_never_land_on_or_around_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let ct = ct_in(t);
    let d = t.join("d");
    let inner = t.join("d/inner");
    let dotdot = t.join("d/inner/../inner");
    for out in [&inner, &d, &dotdot] {
        let o = liverseg(&["convert", s(&ct), s(out), "--force"]);
        bad_input(&o, "refusing to write there");
        let o = liverseg(&["preprocess", "--image", s(&ct), "--out", s(out), "--force"]);
        bad_input(&o, "refusing to write there");
        intact(t);
    }
    let m = model(t);
    let mask = t.join("mask.nii.gz");
    for flag in ["--overlay", "--save-probabilities"] {
        let o = liverseg(&[
            "predict",
            "--model",
            s(&m),
            "--input",
            s(&ct),
            "--output",
            s(&mask),
            flag,
            s(&ct),
            "--force",
        ]);
        bad_input(&o, "is the input");
        intact(t);
    }
    // The model is an input too, and two outputs may not be one path.
    let o = liverseg(&[
        "predict",
        "--model",
        s(&m),
        "--input",
        s(&ct),
        "--output",
        s(&m),
        "--force",
    ]);
    bad_input(&o, "is the input");
    let o = liverseg(&[
        "predict",
        "--model",
        s(&m),
        "--input",
        s(&ct),
        "--output",
        s(&mask),
        "--overlay",
        s(&mask),
    ]);
    bad_input(&o, "the same path");
    assert!(!mask.exists());
    // `--force` removes a demo folder liverseg made, never one of yours.
    let o = liverseg(&["demo", "--out", s(&d), "--force"]);
    bad_input(&o, "did not write");
    intact(t);
}

/// Item 9: special files are refused at once, never read (a FIFO would
/// block forever); a symlink loop is bad input everywhere.
#[cfg(target_os = "linux")]
#[test]
fn fifos_and_symlink_loops_are_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("ct.nii.gz");
    let made = Command::new("mkfifo").arg(&fifo).status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("SKIPPED: mkfifo is not available");
        return;
    }
    let m = model(tmp.path());
    let ct = golden("ct.nii.gz");
    let out = tmp.path().join("o.nii.gz");
    let outdir = tmp.path().join("o");
    let runs: Vec<Vec<&str>> = vec![
        vec!["info", s(&fifo)],
        vec!["convert", s(&fifo), s(&out)],
        vec!["preprocess", "--image", s(&fifo), "--out", s(&outdir)],
        vec![
            "predict",
            "--model",
            s(&m),
            "--input",
            s(&fifo),
            "--output",
            s(&out),
        ],
        vec![
            "predict",
            "--model",
            s(&fifo),
            "--input",
            s(&ct),
            "--output",
            s(&out),
        ],
    ];
    for args in &runs {
        // A hang would block here; the kill below ends it if it happens.
        let mut child = Command::new(env!("CARGO_BIN_EXE_liverseg"))
            .args(args)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        while child.try_wait().unwrap().is_none() {
            if start.elapsed().as_secs() > 60 {
                child.kill().unwrap();
                panic!("{args:?} blocked on a FIFO");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        bad_input(&child.wait_with_output().unwrap(), "FIFO");
    }
    let a = tmp.path().join("a.nii.gz");
    let b = tmp.path().join("b.nii.gz");
    std::os::unix::fs::symlink(&b, &a).unwrap();
    std::os::unix::fs::symlink(&a, &b).unwrap();
    let o = liverseg(&[
        "predict",
        "--model",
        s(&m),
        "--input",
        s(&a),
        "--output",
        s(&out),
    ]);
    bad_input(&o, "a.nii.gz");
    bad_input(&liverseg(&["info", s(&a)]), "a.nii.gz");
}

/// Item 10: a closed pipe ends the printing quietly with exit 0; a full
/// device is exit 1 with a message.
#[test]
fn closed_and_full_standard_output() {
    let tmp = tempfile::tempdir().unwrap();
    let big = tmp.path().join("big.nii");
    // A long `info` text: many extra header lines are not needed, a closed
    // pipe is met by the first write.
    std::fs::copy(golden("ct.nii.gz"), &big).unwrap();
    for args in [
        vec!["info", s(&big)],
        vec!["info", "--json", s(&big)],
        vec!["train", "--print-config"],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_liverseg"))
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away before anything is written.
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    }
    let full = Path::new("/dev/full");
    if !full.exists() {
        eprintln!("SKIPPED: /dev/full is not available");
        return;
    }
    for args in [vec!["info", s(&big)], vec!["train", "--print-config"]] {
        let o = Command::new(env!("CARGO_BIN_EXE_liverseg"))
            .args(&args)
            .stdout(std::fs::OpenOptions::new().write(true).open(full).unwrap())
            .output()
            .unwrap();
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {e}");
        assert!(
            e.contains("standard output") && !e.contains("panicked"),
            "{e}"
        );
    }
}

/// Item 7: sizes that come from inputs are checked against the memory
/// budget before anything is allocated: exit 2 naming the file and the
/// figure.
#[test]
fn input_sizes_beyond_the_budget_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    // A valid header claiming 1000 x 1000 x 1000 float32 voxels (4 GB),
    // as a sparse .nii, under a 64 MiB budget.
    let sparse = t.join("sparse.nii");
    let small = Volume::new([2, 2, 2], Affine::identity(), vec![0f32; 8]).unwrap();
    nifti::write(&sparse, &small, &nifti::WriteOptions::default()).unwrap();
    let mut bytes = std::fs::read(&sparse).unwrap();
    for i in 1..4 {
        bytes[40 + 2 * i..42 + 2 * i].copy_from_slice(&1000i16.to_le_bytes());
    }
    bytes.truncate(352);
    std::fs::write(&sparse, &bytes).unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&sparse)
        .unwrap();
    f.set_len(352 + 4_000_000_000).unwrap();
    for args in [
        vec!["info", s(&sparse)],
        vec![
            "preprocess",
            "--image",
            s(&sparse),
            "--out",
            s(&t.join("p")),
        ],
    ] {
        let mut a = vec!["--memory-limit", "64M"];
        a.extend(args);
        let o = liverseg(&a);
        bad_input(&o, "memory budget");
        assert!(stderr(&o).contains("sparse.nii") && stderr(&o).contains("GiB"));
    }
    // A .nii.gz whose header claims 64 MB, padded with incompressible bytes
    // so the claim passes the deflate bound: refused under a 16 MiB budget.
    let mut raw = bytes.clone();
    raw[40 + 2..42 + 2].copy_from_slice(&400i16.to_le_bytes());
    raw[40 + 4..42 + 4].copy_from_slice(&400i16.to_le_bytes());
    raw[40 + 6..42 + 6].copy_from_slice(&100i16.to_le_bytes());
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    raw.extend((0..200_000).map(|_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as u8
    }));
    let padded = t.join("padded.nii.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw).unwrap();
    std::fs::write(&padded, gz.finish().unwrap()).unwrap();
    let o = liverseg(&[
        "--memory-limit",
        "16M",
        "preprocess",
        "--image",
        s(&padded),
        "--out",
        s(&t.join("q")),
    ]);
    bad_input(&o, "memory budget");

    // A preset asking for 0.001 mm voxels.
    let preset = t.join("tiny_spacing.json");
    std::fs::write(
        &preset,
        r#"{"name": "absurd", "steps": [{"type": "spacing", "pixdim": [0.001, 0.001, 0.001]}]}"#,
    )
    .unwrap();
    let o = liverseg(&[
        "preprocess",
        "--image",
        s(&golden("ct.nii.gz")),
        "--preset",
        s(&preset),
        "--out",
        s(&t.join("r")),
    ]);
    bad_input(&o, "memory budget");
    assert!(stderr(&o).contains("ct.nii.gz"), "{}", stderr(&o));

    // Sliding windows: too large for the budget, or not a size the network
    // can run.
    let m = model(t);
    let out = t.join("mask.nii.gz");
    for (roi, needle) in [
        ("4096,4096,4096", "memory budget"),
        ("1,1,1", "multiple of 4"),
    ] {
        let o = liverseg(&[
            "predict",
            "--model",
            s(&m),
            "--input",
            s(&golden("ct.nii.gz")),
            "--output",
            s(&out),
            "--roi",
            roi,
        ]);
        bad_input(&o, needle);
    }
    assert!(!out.exists());
}

/// Item 11: all outputs of one command appear together or not at all.
#[test]
fn a_failing_output_leaves_no_other_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let m = model(t);
    let series = t.join("series");
    ok(&liverseg(&["convert", s(&golden("ct.nii.gz")), s(&series)]));
    let mask = t.join("mask.nii.gz");
    // Someone else's file where the SEG would go.
    std::fs::write(t.join("mask.dcm"), b"not ours").unwrap();
    let o = liverseg(&[
        "predict",
        "--model",
        s(&m),
        "--input",
        s(&series),
        "--output",
        s(&mask),
        "--format",
        "both",
        "--overlay",
        s(&t.join("mask.png")),
        "--preprocess",
        "none",
        "--roi",
        "32,32,16",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("mask.dcm"), "{}", stderr(&o));
    assert!(!mask.exists() && !t.join("mask.png").exists());
    assert_eq!(std::fs::read(t.join("mask.dcm")).unwrap(), b"not ours");
    let hidden: Vec<_> = std::fs::read_dir(t)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");

    // Item 12: warnings reach a non-terminal stderr without colour codes.
    let nii = t.join("ct.nii.gz");
    std::fs::copy(golden("ct.nii.gz"), &nii).unwrap();
    let o = liverseg(&[
        "predict",
        "--model",
        s(&m),
        "--input",
        s(&nii),
        "--output",
        s(&t.join("fast.nii.gz")),
        "--fast",
    ]);
    ok(&o);
    assert!(stderr(&o).contains("fast mode"), "{}", stderr(&o));
    assert!(!stderr(&o).contains('\x1b'), "{:?}", stderr(&o));
}

/// Item 12: exit codes of bad input agree (2), messages name the file.
#[test]
fn bad_configs_and_checkpoints_are_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let cfg = t.join("train.toml");
    std::fs::write(&cfg, [0xffu8, 0xfe, 0x00, 0x9f, 0x80]).unwrap();
    let o = liverseg(&["train", "--config", s(&cfg), "--print-config"]);
    bad_input(&o, "train.toml");

    // A run folder whose checkpoint is damaged: --resume says which file.
    let run = t.join("run");
    std::fs::create_dir_all(run.join("last")).unwrap();
    std::fs::write(run.join("last/state.json"), "{}").unwrap();
    let data = t.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let o = liverseg(&["train", "--data", s(&data), "--out", s(&run), "--resume"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

/// Item 14: `info` skips NaN voxels in the mean, as nibabel's nanmean and
/// `Volume::stats` do.
#[test]
fn info_mean_skips_nan_voxels() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("nan.nii");
    let mut data: Vec<f32> = (0..60).map(|i| i as f32).collect();
    data[0] = f32::NAN;
    let v = Volume::new([5, 4, 3], Affine::identity(), data).unwrap();
    nifti::write(&p, &v, &nifti::WriteOptions::default()).unwrap();
    let o = liverseg(&["info", "--json", s(&p)]);
    ok(&o);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // (1 + 2 + ... + 59) / 59 = 30.
    assert_eq!(j["mean"].as_f64().unwrap(), 30.0);
    assert_eq!(j["min"].as_f64().unwrap(), 1.0);
}
