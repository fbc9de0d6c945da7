//! The `seed` preset on a 512 × 512 × 200 CT with its label, beside MONAI
//! running the same seven transforms on the same files in the same run.
//!
//! ```text
//! cargo bench -p liverseg-transforms --bench pipeline
//! LIVERSEG_BENCH_REF_PYTHON=/tmp/ref/bin/python cargo bench -p liverseg-transforms --bench pipeline
//! ```
//!
//! Like `liverseg-io`'s bench, a `harness = false` binary: each measurement
//! runs in a fresh child process (this binary with `--child CASE`) so its
//! peak RSS (`VmHWM`) is its own, with one warm-up and
//! `LIVERSEG_BENCH_REPS` (default 5) timed repetitions, median reported, the
//! protocol of `/work/shared/bench/bench_monai.py`. Rayon uses
//! `LIVERSEG_BENCH_THREADS` threads (default 2, MONAI's torch threads).
//!
//! Input: `LIVERSEG_BENCH_DATA` (default `/tmp/refdata`) with
//! `phantom_image.nii.gz` and `phantom_label.nii.gz` from
//! `shared/bench/make_phantom.py`. With `LIVERSEG_BENCH_REF_PYTHON` (a
//! Python with torch, monai, nibabel) and `LIVERSEG_BENCH_MONAI_SCRIPT`
//! (default `/work/shared/bench/bench_monai.py`) the MONAI pipeline runs in
//! the same session and the ratio is printed.

use liverseg_io::{Volume, nifti};
use liverseg_transforms::Preset;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn data_dir() -> PathBuf {
    std::env::var_os("LIVERSEG_BENCH_DATA")
        .map_or_else(|| PathBuf::from("/tmp/refdata"), PathBuf::from)
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
fn one_case(dir: &Path) -> (f64, f64, f64) {
    let t0 = Instant::now();
    let opts = nifti::ReadOptions::default();
    let (image, label) = std::thread::scope(|s| {
        let h = s.spawn(|| nifti::read::<i16>(&dir.join("phantom_image.nii.gz"), &opts));
        let label = nifti::read::<u8>(&dir.join("phantom_label.nii.gz"), &opts);
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
    let dir = data_dir();
    let threads = std::env::var("LIVERSEG_BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .expect("rayon pool");
    one_case(&dir);
    let (mut total, mut read, mut pre) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..reps() {
        let (t, r, p) = one_case(&dir);
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

fn run_monai() -> Option<Value> {
    let python = std::env::var_os("LIVERSEG_BENCH_REF_PYTHON")?;
    let script = std::env::var_os("LIVERSEG_BENCH_MONAI_SCRIPT").map_or_else(
        || PathBuf::from("/work/shared/bench/bench_monai.py"),
        PathBuf::from,
    );
    let tmp = std::env::temp_dir().join(format!("liverseg-monai-{}.json", std::process::id()));
    let status = Command::new(python)
        .arg(&script)
        .arg("--data-dir")
        .arg(data_dir())
        .args([
            "--reps",
            &reps().to_string(),
            "--only",
            "monai_pipeline",
            "--out",
        ])
        .arg(&tmp)
        .status()
        .ok()?;
    if !status.success() {
        eprintln!("MONAI reference failed ({status})");
        return None;
    }
    // Python's json writes NaN for values it could not measure, which is
    // not JSON; read those as null.
    let text = std::fs::read_to_string(&tmp).ok()?.replace("NaN", "null");
    let v: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("cannot parse the MONAI results {}: {e}", tmp.display());
            return None;
        }
    };
    let _ = std::fs::remove_file(&tmp);
    // bench_monai.py writes {"_env": {...}, "<case>": {...}}.
    let Some(case) = v.get("monai_pipeline").cloned() else {
        eprintln!("no monai_pipeline entry in the MONAI results");
        return None;
    };
    if case.get("error").is_some() {
        eprintln!("MONAI reference failed: {}", case["error"]);
        return None;
    }
    Some(case)
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
    let dir = data_dir();
    if !dir.join("phantom_image.nii.gz").is_file() {
        eprintln!(
            "no {}/phantom_image.nii.gz: run /work/shared/bench/make_phantom.py --out-dir {} first",
            dir.display(),
            dir.display()
        );
        return;
    }
    let ours = run_child();
    println!("liverseg seed preset: {ours}");
    if let Some(monai) = run_monai() {
        let ratio = monai["median_s"].as_f64().unwrap_or(f64::NAN)
            / ours["median_s"].as_f64().unwrap_or(f64::NAN);
        println!("MONAI pipeline: {monai}");
        println!(
            "| seed preset, one case | liverseg {:.3} s, {:.0} MiB | MONAI {:.3} s, {:.0} MiB | {:.1}x faster |",
            ours["median_s"].as_f64().unwrap_or(f64::NAN),
            ours["peak_rss_mib"].as_f64().unwrap_or(f64::NAN),
            monai["median_s"].as_f64().unwrap_or(f64::NAN),
            monai["peak_rss_mib"].as_f64().unwrap_or(f64::NAN),
            ratio
        );
    }
}
