//! What the model and training benches share: the records they print, and
//! running a reference script of `tools/bench` beside them.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.to_string())
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The workspace root: two folders above the bench's crate.
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .unwrap_or(manifest)
        .to_path_buf()
}

/// The Python that runs the PyTorch side: `LIVERSEG_BENCH_PYTHON` (a path
/// with a `/` taken from the workspace root when relative: `cargo bench`
/// runs this binary in the crate's folder), `python3` when unset, none when
/// set empty.
pub fn python() -> Option<PathBuf> {
    match std::env::var_os("LIVERSEG_BENCH_PYTHON") {
        Some(p) if p.is_empty() => None,
        Some(p) if Path::new(&p).is_relative() && Path::new(&p).components().count() > 1 => {
            Some(workspace_root().join(p))
        }
        Some(p) => Some(p.into()),
        None => Some("python3".into()),
    }
}

/// The bfloat16 modes of a run. `LIVERSEG_BENCH_BF16=conv` turns on
/// liverseg's bfloat16 convolutions in the float32 network
/// (`Precision::Bf16.on(&Device::Cpu)`) and gives the PyTorch side `--bf16 conv`
/// (oneDNN's float32 convolutions allowed to round to bfloat16);
/// `LIVERSEG_BENCH_BF16=net` runs the network in `Precision::Bf16`
/// (bfloat16 activations) beside `--bf16 autocast`.
/// `LIVERSEG_BENCH_TORCH_BF16` overrides the PyTorch side's mode. Returns
/// the reference's `--bf16` value and liverseg's mode (`"off"`, `"conv"`
/// or `"net"`).
pub fn bf16_modes() -> (String, &'static str) {
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    let (ours, theirs) = match env("LIVERSEG_BENCH_BF16").as_str() {
        "conv" => ("conv", "conv"),
        "net" => ("net", "autocast"),
        _ => ("off", "off"),
    };
    let torch = match env("LIVERSEG_BENCH_TORCH_BF16").as_str() {
        "" => theirs.to_string(),
        other => other.to_string(),
    };
    (torch, ours)
}

/// How a network computes on the CPU for liverseg's mode `ours` (from
/// [`bf16_modes`]).
#[allow(dead_code)]
pub fn compute(ours: &str) -> liverseg_model::Compute {
    use liverseg_model::{Compute, Precision};
    match ours {
        "net" => Compute::from(Precision::Bf16),
        "conv" => Precision::Bf16.on(&candle_core::Device::Cpu),
        _ => Compute::from(Precision::F32),
    }
}

/// Runs `tools/bench/{script}` with `args` (and `--reps`, `--threads`) and
/// returns its `@@RESULT@@`; `None` (having said why) when it did not
/// measure. `side` names the reference in messages.
pub fn run_reference(
    python: &Path,
    script: &str,
    args: &[&str],
    reps: usize,
    side: &str,
) -> Option<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tools/bench")
        .join(script);
    let out = Command::new(python)
        .arg(&script)
        .args(args)
        .args(["--reps", &reps.to_string()])
        .args(["--threads", &rayon::current_num_threads().to_string()])
        .output();
    let out = match out {
        Ok(out) => out,
        Err(e) => {
            eprintln!(
                "{side} side SKIPPED: cannot run `{}` ({e}); set LIVERSEG_BENCH_PYTHON to a Python with its packages",
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
                "{side} side failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            return None;
        }
    };
    if let Some(why) = v.get("skipped") {
        eprintln!("{side} side SKIPPED: {}", why.as_str().unwrap_or_default());
        return None;
    }
    Some(v)
}

/// The record of one case.
pub fn record(name: &str, times: &[f64], gflop: f64, extra: Value) -> Value {
    let m = median(times.to_vec());
    let mut v = json!({
        "name": name,
        "median_s": m,
        "min_s": times.iter().copied().fold(f64::INFINITY, f64::min),
        "gflops": gflop / m,
        "all_s": times,
        "peak_rss_mib": peak_rss_mib(),
        "threads": rayon::current_num_threads(),
    });
    if let (Some(v), Value::Object(extra)) = (v.as_object_mut(), extra) {
        v.extend(extra);
    }
    v
}

/// Prints the markdown table of `(case, liverseg record, PyTorch record)`
/// rows, first column headed `what`: medians, minima, the ratio (PyTorch
/// over liverseg) and both peak RSS.
pub fn ratio_table(what: &str, rows: &[(&str, &Value, &Value)]) {
    println!(
        "| {what} | liverseg median (min) | PyTorch median (min) | ratio (PyTorch / liverseg) | peak RSS liverseg | peak RSS PyTorch |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    for (case, r, t) in rows {
        println!(
            "| {case} | {:.3} s ({:.3}) | {:.3} s ({:.3}) | **{:.2}x** | {:.0} MiB | {:.0} MiB |",
            f(r, "median_s"),
            f(r, "min_s"),
            f(t, "median_s"),
            f(t, "min_s"),
            f(t, "median_s") / f(r, "median_s"),
            f(r, "peak_rss_mib"),
            f(t, "peak_rss_mib"),
        );
    }
}
