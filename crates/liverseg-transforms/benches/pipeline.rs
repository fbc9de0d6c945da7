//! The `seed` preset on a 512 × 512 × 200 CT with its label, beside MONAI
//! running the same seven transforms on the same files in the same run.
//!
//! ```text
//! cargo xtask synth --scanner-sizes --cases 1 --seed 19558 --out target/bench-data/ct --force
//! cargo bench -p liverseg-transforms --bench pipeline
//! LIVERSEG_BENCH_PYTHON= cargo bench -p liverseg-transforms --bench pipeline   # liverseg alone
//! ```
//!
//! Like `liverseg-io`'s bench, a `harness = false` binary: each measurement
//! runs in a fresh child process (this binary with `--child`) so its peak
//! RSS (`VmHWM`) is its own, with one warm-up and `LIVERSEG_BENCH_REPS`
//! (default 5) timed repetitions, median reported, the protocol of
//! `tools/bench/bench_monai_pipeline.py`. Rayon uses `LIVERSEG_BENCH_THREADS`
//! threads (default 2), and MONAI's torch as many.
//!
//! Input: `ct/imagesTr/phantom_000.nii.gz` and `ct/labelsTr/phantom_000.nii.gz`
//! under `LIVERSEG_BENCH_DATA` (default: `target/bench-data` of the
//! workspace), the benchmark phantom of the `cargo xtask synth` command above.
//! MONAI reads the same two files: `tools/bench/bench_monai_pipeline.py`,
//! run by `LIVERSEG_BENCH_PYTHON` (default `python3`; set it empty to time
//! liverseg alone), after which the ratio is printed. A Python without
//! torch, monai or nibabel makes the script say SKIPPED.

use liverseg_io::{Volume, nifti};
use liverseg_transforms::Preset;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// `LIVERSEG_BENCH_DATA`, or `target/bench-data` of the workspace.
fn data_dir() -> PathBuf {
    from_root(
        std::env::var_os("LIVERSEG_BENCH_DATA")
            .map_or_else(|| "target/bench-data".into(), PathBuf::from),
    )
}

/// The folder above `crates/liverseg-transforms`.
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .unwrap_or(manifest)
        .to_path_buf()
}

/// `path`, taken from the workspace root when relative: `cargo bench` runs
/// this binary in the crate's folder, but the paths were typed at the root.
fn from_root(path: PathBuf) -> PathBuf {
    if path.is_relative() {
        workspace_root().join(path)
    } else {
        path
    }
}

/// The benchmark phantom's CT and label.
fn inputs() -> (PathBuf, PathBuf) {
    let ct = data_dir().join("ct");
    (
        ct.join("imagesTr/phantom_000.nii.gz"),
        ct.join("labelsTr/phantom_000.nii.gz"),
    )
}

/// Rayon's threads here and torch's on the MONAI side:
/// `LIVERSEG_BENCH_THREADS`, default 2.
fn threads() -> usize {
    std::env::var("LIVERSEG_BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}

fn reps() -> usize {
    std::env::var("LIVERSEG_BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One full case: read both files (in parallel, as the CLI does; the CT in
/// its stored int16), run the preset. Returns (total, read, preprocess)
/// seconds.
fn one_case(image: &Path, label: &Path) -> (f64, f64, f64) {
    let t0 = Instant::now();
    let opts = nifti::ReadOptions::default();
    let (image, label) = std::thread::scope(|s| {
        let h = s.spawn(|| nifti::read::<i16>(image, &opts));
        let label = nifti::read::<u8>(label, &opts);
        (h.join().expect("reader thread"), label)
    });
    let (image, label): (Volume<i16>, Volume<u8>) = (image.expect("image"), label.expect("label"));
    let t1 = Instant::now();
    let out = Preset::seed().run(image, Some(label)).expect("preset");
    assert_eq!(out.pair.image.dims(), [128, 128, 64]);
    let t2 = Instant::now();
    (
        (t2 - t0).as_secs_f64(),
        (t1 - t0).as_secs_f64(),
        (t2 - t1).as_secs_f64(),
    )
}

fn child() {
    let (image, label) = inputs();
    let threads = threads();
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .expect("rayon pool");
    one_case(&image, &label);
    let (mut total, mut read, mut pre) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..reps() {
        let (t, r, p) = one_case(&image, &label);
        total.push(t);
        read.push(r);
        pre.push(p);
    }
    let out = json!({
        "name": "seed_preset",
        "median_s": median(&mut total),
        "read_median_s": median(&mut read),
        "preprocess_median_s": median(&mut pre),
        "all_s": total,
        "threads": threads,
        "peak_rss_mib": peak_rss_mib(),
    });
    println!("{out}");
}

fn run_child() -> Value {
    let exe = std::env::current_exe().expect("bench executable");
    let out = Command::new(exe)
        .arg("--child")
        .output()
        .expect("run child");
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or("{}")).expect("child JSON")
}

/// The Python that runs the MONAI side: `LIVERSEG_BENCH_PYTHON` (a path
/// with a `/` taken from the workspace root when relative), `python3` when
/// unset, none when set empty.
fn python() -> Option<PathBuf> {
    match std::env::var_os("LIVERSEG_BENCH_PYTHON") {
        Some(p) if p.is_empty() => None,
        Some(p) if Path::new(&p).components().count() > 1 => Some(from_root(p.into())),
        Some(p) => Some(p.into()),
        None => Some("python3".into()),
    }
}

/// Runs `tools/bench/bench_monai_pipeline.py` on the same files; `None`
/// (having said why) when it did not measure.
fn run_monai(python: &Path) -> Option<Value> {
    let (image, label) = inputs();
    let script = workspace_root().join("tools/bench/bench_monai_pipeline.py");
    let out = Command::new(python)
        .arg(&script)
        .arg("--image")
        .arg(&image)
        .arg("--label")
        .arg(&label)
        .args(["--reps", &reps().to_string()])
        .args(["--threads", &threads().to_string()])
        .output();
    let out = match out {
        Ok(out) => out,
        Err(e) => {
            eprintln!(
                "MONAI pipeline SKIPPED: cannot run `{}` ({e}); set LIVERSEG_BENCH_PYTHON to a Python with torch, monai and nibabel",
                python.display()
            );
            return None;
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result = stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("@@RESULT@@"));
    let v: Value = match result.map(serde_json::from_str::<Value>) {
        Some(Ok(v)) if out.status.success() => v,
        _ => {
            eprintln!(
                "MONAI pipeline failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            return None;
        }
    };
    if let Some(why) = v.get("skipped") {
        eprintln!(
            "MONAI pipeline SKIPPED: {}",
            why.as_str().unwrap_or_default()
        );
        return None;
    }
    Some(v)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--child") {
        child();
        return;
    }
    if args.iter().any(|a| a == "--list") {
        println!("seed_preset: bench");
        return;
    }
    let (image, label) = inputs();
    if !(image.is_file() && label.is_file()) {
        let out = match std::env::var_os("LIVERSEG_BENCH_DATA") {
            Some(d) => Path::new(&d).join("ct").display().to_string(),
            None => "target/bench-data/ct".into(),
        };
        eprintln!(
            "{} or its label is missing: make the benchmark phantom first, from the workspace root:\n    \
             cargo xtask synth --scanner-sizes --cases 1 --seed 19558 --out {out} --force",
            image.display()
        );
        std::process::exit(1);
    }
    let ours = run_child();
    println!("liverseg seed preset: {ours}");
    let Some(monai) = python().and_then(|py| run_monai(&py)) else {
        return;
    };
    let ratio = monai["median_s"].as_f64().unwrap_or(f64::NAN)
        / ours["median_s"].as_f64().unwrap_or(f64::NAN);
    println!("MONAI pipeline: {monai}");
    println!(
        "| benchmark | liverseg median | MONAI median | ratio (MONAI / liverseg) | peak RSS liverseg | peak RSS MONAI |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    println!(
        "| seed preset, one case, read included | {:.3} s | {:.3} s | **{ratio:.1}x** | {:.0} MiB | {:.0} MiB |",
        ours["median_s"].as_f64().unwrap_or(f64::NAN),
        monai["median_s"].as_f64().unwrap_or(f64::NAN),
        ours["peak_rss_mib"].as_f64().unwrap_or(f64::NAN),
        monai["peak_rss_mib"].as_f64().unwrap_or(f64::NAN),
    );
}
