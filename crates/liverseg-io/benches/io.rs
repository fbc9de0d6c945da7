//! NIfTI I/O benchmarks of liverseg-io, run beside nibabel.
//!
//! ```text
//! cargo bench -p liverseg-io --bench io                       # all cases
//! cargo bench -p liverseg-io --bench io -- --only read_nii_gz,read_nii
//! LIVERSEG_BENCH_REF_PYTHON=/tmp/ref/bin/python cargo bench -p liverseg-io --bench io
//! ```
//!
//! A plain `harness = false` binary rather than criterion: every case runs in
//! a fresh child process (this binary re-run with `--child CASE`), so the
//! peak RSS it reports (`VmHWM`) belongs to that case alone, exactly as the
//! Python reference scripts measure theirs; timing is one warm-up, then
//! `LIVERSEG_BENCH_REPS` (default 5) timed runs, median reported, the same
//! protocol as `benches/reference/bench_nibabel.py`.
//!
//! Input: `LIVERSEG_BENCH_DATA` (default `/tmp/refdata`) holding
//! `phantom_image.nii.gz` and `phantom_image.nii` as written by
//! `/work/shared/bench/make_phantom.py --also-nii`, the files nibabel reads.
//! When they are missing the bench writes a synthetic 512x512x200 int16
//! volume of its own (and says so: its timings are then not comparable).
//!
//! With `LIVERSEG_BENCH_REF_PYTHON` set to a Python that has nibabel, each
//! case is followed by its nibabel counterpart in the same run and a
//! markdown table of ratios (reference / liverseg) is printed.
//! `LIVERSEG_BENCH_OUT=path.json` saves all results.

use liverseg_io::{Affine, Overwrite, Volume, nifti};
use serde_json::{Value, json};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// (liverseg case, nibabel counterpart(s), what is timed)
const CASES: &[(&str, &[&str], &str)] = &[
    (
        "read_nii_gz",
        &["nib_load_gz"],
        "read .nii.gz int16 into Volume<f32>",
    ),
    (
        "read_nii_gz_i16",
        &[],
        "read .nii.gz int16 into Volume<i16> (how predict reads a CT)",
    ),
    (
        "read_nii",
        &["nib_load_nii"],
        "read .nii int16 into Volume<f32>",
    ),
    (
        "write_nii_gz",
        &["nib_save_gz", "nib_save_gz_fsync"],
        "write Volume<i16> as .nii.gz (level 1)",
    ),
    (
        "write_nii",
        &["nib_save_nii", "nib_save_nii_fsync"],
        "write Volume<i16> as .nii",
    ),
    (
        "gunzip_only",
        &["gzip_decompress_only"],
        "read the .nii.gz file and inflate it into one buffer, no NIfTI parsing",
    ),
    (
        "gunzip_stream",
        &[],
        "read the .nii.gz file and inflate it in 1 MiB blocks (the reader's inflate work)",
    ),
    (
        "read_dicom_series",
        &["pydicom_read_series"],
        "read a 200-slice CT series directory (sort along the normal, rescale) into Volume<f32>",
    ),
    (
        "read_own_nii_gz",
        &[],
        "read a .nii.gz written by liverseg (multi-member gzip) into Volume<f32>",
    ),
];

fn data_dir() -> PathBuf {
    std::env::var_os("LIVERSEG_BENCH_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/refdata"))
}

fn reps() -> usize {
    std::env::var("LIVERSEG_BENCH_REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(5)
}

/// `VmHWM` (peak resident set) or `VmRSS` of this process, in MiB.
fn proc_status_mib(key: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn median(ts: &[f64]) -> f64 {
    let mut s = ts.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// A deterministic CT-like volume (air, a body ellipse, noise) for when the
/// reference phantom is missing.
fn synthetic_volume() -> Volume<i16> {
    let [nx, ny, nz] = [512usize, 512, 200];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut data = Vec::with_capacity(nx * ny * nz);
    for _k in 0..nz {
        for j in 0..ny {
            for i in 0..nx {
                let u = (i as f64 - 255.5) / 256.0;
                let v = (j as f64 - 255.5) / 256.0;
                let base = if (u / 0.86).powi(2) + (v / 0.62).powi(2) < 1.0 {
                    40.0
                } else {
                    -1000.0
                };
                // Irwin-Hall approximation of a Gaussian, sigma ~15 HU.
                let noise = (uniform() + uniform() + uniform() + uniform() - 2.0) * 26.0;
                data.push((base + noise).round() as i16);
            }
        }
    }
    let affine = Affine::from_spacing_origin([0.78, 0.78, 2.5], [-200.0, -200.0, -250.0]);
    Volume::new([nx, ny, nz], affine, data).expect("synthetic volume")
}

/// The two input files, generating them into `scratch` when the reference
/// phantom is missing. Returns `(gz, nii, note)`.
fn inputs(scratch: &Path) -> (PathBuf, PathBuf, Option<String>) {
    let dir = data_dir();
    let gz = dir.join("phantom_image.nii.gz");
    let nii = dir.join("phantom_image.nii");
    if gz.is_file() && nii.is_file() {
        return (gz, nii, None);
    }
    let gz2 = scratch.join("synthetic_image.nii.gz");
    let nii2 = scratch.join("synthetic_image.nii");
    if !(gz2.is_file() && nii2.is_file()) {
        let vol = synthetic_volume();
        let opts = nifti::WriteOptions {
            overwrite: Overwrite::Allow,
            ..Default::default()
        };
        nifti::write(&gz2, &vol, &opts).expect("write synthetic .nii.gz");
        nifti::write(&nii2, &vol, &opts).expect("write synthetic .nii");
    }
    let note = format!(
        "{} or {} missing: timed a synthetic volume written by liverseg instead \
         (not comparable with nibabel's figures; run make_phantom.py --also-nii)",
        gz.display(),
        nii.display()
    );
    (gz2, nii2, Some(note))
}

/// Runs one case in this process and returns its result record.
fn child(case: &str, scratch: &Path) -> Value {
    let (gz, nii, note) = inputs(scratch);
    let read_opts = nifti::ReadOptions::default();
    let write_opts = nifti::WriteOptions {
        overwrite: Overwrite::Allow,
        ..Default::default()
    };
    let mut once: Box<dyn FnMut() -> Value> = match case {
        "read_nii_gz" | "read_nii" => {
            let path = if case == "read_nii_gz" { &gz } else { &nii }.clone();
            Box::new(move || {
                let v: Volume<f32> = nifti::read(&path, &read_opts).expect("read");
                json!({"dims": v.dims(), "file_bytes": file_len(&path)})
            })
        }
        "read_nii_gz_i16" => {
            let path = gz.clone();
            Box::new(move || {
                let v: Volume<i16> = nifti::read(&path, &read_opts).expect("read");
                json!({"dims": v.dims(), "file_bytes": file_len(&path)})
            })
        }
        "read_own_nii_gz" => {
            // Written by `--prepare-own` in another process, so this one's
            // peak RSS is the read's alone.
            let path = scratch.join("own.nii.gz");
            Box::new(move || {
                let v: Volume<f32> = nifti::read(&path, &read_opts).expect("read");
                json!({"dims": v.dims(), "file_bytes": file_len(&path)})
            })
        }
        "write_nii_gz" | "write_nii" => {
            let src: Volume<i16> = nifti::read(&nii, &read_opts).expect("read source");
            let ext = if case == "write_nii_gz" {
                "nii.gz"
            } else {
                "nii"
            };
            let path = scratch.join(format!("liverseg_out.{ext}"));
            Box::new(move || {
                nifti::write(&path, &src, &write_opts).expect("write");
                json!({"dims": src.dims(), "file_bytes": file_len(&path)})
            })
        }
        "read_dicom_series" => {
            // Written by benches/reference/make_dicom_series.py beside the phantom.
            let dir = data_dir().join("series");
            Box::new(move || {
                let v: Volume<f32> =
                    liverseg_io::dicom::read(&dir, &Default::default()).expect("read series");
                json!({"dims": v.dims()})
            })
        }
        "gunzip_only" => Box::new(move || {
            let raw = gunzip_file(&gz);
            json!({"inflated_bytes": raw.len(), "file_bytes": file_len(&gz)})
        }),
        "gunzip_stream" => Box::new(move || {
            let n = gunzip_stream(&gz);
            json!({"inflated_bytes": n, "file_bytes": file_len(&gz)})
        }),
        other => panic!("unknown case {other}"),
    };
    let baseline = proc_status_mib("VmRSS:");
    let mut info = once(); // warm-up
    let mut times = Vec::new();
    for _ in 0..reps() {
        let t0 = Instant::now();
        info = once();
        times.push(t0.elapsed().as_secs_f64());
    }
    json!({
        "name": case,
        "median_s": median(&times),
        "min_s": times.iter().copied().fold(f64::INFINITY, f64::min),
        "max_s": times.iter().copied().fold(0.0, f64::max),
        "all_s": times,
        "reps": times.len(),
        "baseline_rss_mib": baseline,
        "peak_rss_mib": proc_status_mib("VmHWM:"),
        "threads": rayon::current_num_threads(),
        "info": info,
        "note": note,
    })
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

/// Inflates the whole `.nii.gz` into one buffer sized by the gzip trailer,
/// the work of Python's `gzip.decompress(f.read())`.
fn gunzip_file(path: &Path) -> Vec<u8> {
    let compressed = std::fs::read(path).expect("read .nii.gz");
    let isize = compressed.len().checked_sub(4).map_or(0, |at| {
        u32::from_le_bytes(compressed[at..].try_into().unwrap_or([0; 4]))
    });
    let mut out = Vec::with_capacity(isize as usize);
    flate2::bufread::MultiGzDecoder::new(&compressed[..])
        .read_to_end(&mut out)
        .expect("inflate");
    out
}

/// Inflates the whole `.nii.gz` in 1 MiB blocks and discards them: the
/// inflate work of the reader (which converts each block meanwhile).
fn gunzip_stream(path: &Path) -> u64 {
    let compressed = std::fs::read(path).expect("read .nii.gz");
    let mut stream = flate2::bufread::MultiGzDecoder::new(&compressed[..]);
    let mut block = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        match stream.read(&mut block).expect("inflate") {
            0 => return total,
            n => total += n as u64,
        }
    }
}

/// Runs `case` in a fresh process and returns its record.
fn run_child(case: &str, scratch: &Path) -> Value {
    let exe = std::env::current_exe().expect("current_exe");
    let out = Command::new(exe)
        .args(["--child", case, "--scratch"])
        .arg(scratch)
        .output()
        .expect("spawn child");
    parse_result(case, &out)
}

/// Runs the nibabel counterpart `name` with `python`.
fn run_reference(python: &str, name: &str, scratch: &Path) -> Value {
    let refs = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/reference");
    if name == "pydicom_read_series" {
        let out = Command::new(python)
            .arg(refs.join("bench_pydicom_series.py"))
            .args(["--child", "--reps", &reps().to_string(), "--series-dir"])
            .arg(data_dir().join("series"))
            .output()
            .expect("spawn python");
        return parse_result(name, &out);
    }
    let script = refs.join("bench_nibabel.py");
    let out = Command::new(python)
        .arg(script)
        .args(["--child", name, "--reps", &reps().to_string(), "--data-dir"])
        .arg(data_dir())
        .arg("--work-dir")
        .arg(scratch)
        .output()
        .expect("spawn python");
    parse_result(name, &out)
}

fn parse_result(name: &str, out: &std::process::Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    match stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("@@RESULT@@"))
    {
        Some(j) if out.status.success() => serde_json::from_str(j).expect("result JSON"),
        _ => json!({
            "name": name,
            "error": format!("{}\n{}", out.status, String::from_utf8_lossy(&out.stderr)),
        }),
    }
}

fn fmt_s(v: &Value) -> String {
    v["median_s"]
        .as_f64()
        .map_or_else(|| "error".into(), |s| format!("{s:.4} s"))
}

fn fmt_mib(v: &Value) -> String {
    v["peak_rss_mib"]
        .as_f64()
        .map_or_else(|| "-".into(), |m| format!("{m:.0} MiB"))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    if flag("--prepare-own").is_some() {
        let scratch = PathBuf::from(flag("--scratch").expect("--scratch"));
        let (_, nii, _) = inputs(&scratch);
        let src: Volume<i16> =
            nifti::read(&nii, &nifti::ReadOptions::default()).expect("read source");
        let opts = nifti::WriteOptions {
            overwrite: Overwrite::Allow,
            ..Default::default()
        };
        nifti::write(&scratch.join("own.nii.gz"), &src, &opts).expect("write own .nii.gz");
        return;
    }
    if let Some(case) = flag("--child") {
        let scratch = PathBuf::from(flag("--scratch").expect("--scratch"));
        println!("@@RESULT@@{}", child(&case, &scratch));
        return;
    }
    let only: Option<Vec<String>> = flag("--only")
        .or_else(|| std::env::var("LIVERSEG_BENCH_ONLY").ok())
        .map(|s| s.split(',').map(str::to_owned).collect());
    let python = std::env::var("LIVERSEG_BENCH_REF_PYTHON").ok();
    let scratch = tempfile::tempdir().expect("temp dir");
    let (_, _, note) = inputs(scratch.path());
    if let Some(n) = &note {
        eprintln!("NOTE: {n}");
    }
    let mut results = serde_json::Map::new();
    let mut rows = Vec::new();
    for &(case, refs, what) in CASES {
        if only.as_ref().is_some_and(|o| !o.iter().any(|x| x == case)) {
            continue;
        }
        if case == "read_own_nii_gz" {
            let status = Command::new(std::env::current_exe().expect("current_exe"))
                .args(["--prepare-own", "1", "--scratch"])
                .arg(scratch.path())
                .status()
                .expect("spawn --prepare-own");
            assert!(status.success(), "--prepare-own failed");
        }
        let r = run_child(case, scratch.path());
        eprintln!(
            "{case:18} median {:>10}  peak RSS {:>8}  ({what})",
            fmt_s(&r),
            fmt_mib(&r)
        );
        if let Some(e) = r.get("error") {
            eprintln!("{}", e.as_str().unwrap_or_default());
        }
        let mut refs_done = Vec::new();
        if let Some(py) = &python {
            for &name in refs {
                let rr = run_reference(py, name, scratch.path());
                eprintln!(
                    "  {name:16} median {:>10}  peak RSS {:>8}",
                    fmt_s(&rr),
                    fmt_mib(&rr)
                );
                if let Some(e) = rr.get("error") {
                    eprintln!("{}", e.as_str().unwrap_or_default());
                }
                refs_done.push((name, rr.clone()));
                results.insert(name.to_owned(), rr);
            }
        }
        rows.push((case, r.clone(), refs_done));
        results.insert(case.to_owned(), r);
    }
    if python.is_some() {
        println!(
            "| benchmark | liverseg median | reference | reference median | ratio (ref/liverseg) | peak RSS liverseg | peak RSS reference |"
        );
        println!("| --- | --- | --- | --- | --- | --- | --- |");
        for (case, r, refs) in &rows {
            for (name, rr) in refs {
                let ratio = match (rr["median_s"].as_f64(), r["median_s"].as_f64()) {
                    (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
                    _ => "-".into(),
                };
                println!(
                    "| {case} | {} | {name} | {} | {ratio} | {} | {} |",
                    fmt_s(r),
                    fmt_s(rr),
                    fmt_mib(r),
                    fmt_mib(rr)
                );
            }
        }
    }
    let all = Value::Object(results);
    match std::env::var_os("LIVERSEG_BENCH_OUT") {
        Some(p) => std::fs::write(&p, format!("{all:#}\n")).expect("write LIVERSEG_BENCH_OUT"),
        None => println!("{all:#}"),
    }
}
