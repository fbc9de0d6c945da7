//! NIfTI and DICOM reading and writing of liverseg-io, each case timed
//! beside its nibabel or pydicom counterpart on the same files.
//!
//! ```text
//! cargo xtask synth --scanner-sizes --cases 1 --seed 19558 --out target/bench-data/ct --force
//! cargo bench -p liverseg-io --bench io                       # every case, each followed by its reference
//! cargo bench -p liverseg-io --bench io -- --only read_nii_gz,read_nii
//! LIVERSEG_BENCH_PYTHON= cargo bench -p liverseg-io --bench io   # liverseg alone
//! ```
//!
//! A plain `harness = false` binary rather than criterion: every case runs in
//! a fresh child process (this binary re-run with `--child CASE`), so the
//! peak RSS it reports (`VmHWM`) belongs to that case alone, exactly as the
//! Python reference scripts measure theirs; timing is one warm-up, then
//! `LIVERSEG_BENCH_REPS` (default 5) timed runs, median reported, the same
//! protocol as `tools/bench/bench_nibabel.py`.
//!
//! Input: the benchmark phantom `ct/imagesTr/phantom_000.nii.gz` under
//! `LIVERSEG_BENCH_DATA` (default: `target/bench-data` of the workspace),
//! 512 × 512 × 200 int16 from the `cargo xtask synth` command above. On its
//! first run the bench derives from it, in `ct/io/` (in a child process of
//! its own, with liverseg-io and flate2): `phantom_image.nii`,
//! `phantom_image.nii.gz` (that file as one gzip member at level 1, as
//! nibabel and `gzip -1` write a `.nii.gz`; the synth file itself, written
//! by liverseg in 8 MiB members, is the `read_own_nii_gz` case) and
//! `series/` (a CT series, one file per slice, by liverseg's DICOM writer).
//! The reference scripts read the same files. `cargo xtask synth --force`
//! replaces the folder, so a new phantom never meets stale derived files.
//!
//! Reference: each case is followed by its counterpart in
//! `tools/bench/bench_nibabel.py` or `bench_pydicom_series.py`, run by
//! `LIVERSEG_BENCH_PYTHON` (default `python3`; set it empty for liverseg
//! alone), and a markdown table of ratios (reference / liverseg) is printed.
//! A Python without nibabel or pydicom makes those scripts say SKIPPED.
//! `LIVERSEG_BENCH_OUT=path.json` saves all results.

use liverseg_io::{Overwrite, Volume, nifti};
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
        "read the phantom as a CT series directory (sort along the normal, rescale) into Volume<f32>",
    ),
    (
        "read_own_nii_gz",
        &[],
        "read the phantom as cargo xtask synth wrote it (liverseg, 8 MiB gzip members) into Volume<f32>",
    ),
];

/// `LIVERSEG_BENCH_DATA`, or `target/bench-data` of the workspace.
fn data_dir() -> PathBuf {
    from_root(
        std::env::var_os("LIVERSEG_BENCH_DATA")
            .map_or_else(|| "target/bench-data".into(), PathBuf::from),
    )
}

/// The folder above `crates/liverseg-io`.
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

/// The command that makes the benchmark phantom, run from the workspace
/// root.
fn make_phantom_command() -> String {
    let out = match std::env::var_os("LIVERSEG_BENCH_DATA") {
        Some(d) => Path::new(&d).join("ct").display().to_string(),
        None => "target/bench-data/ct".into(),
    };
    format!("cargo xtask synth --scanner-sizes --cases 1 --seed 19558 --out {out} --force")
}

/// The files the cases read.
#[derive(Debug)]
struct Inputs {
    /// The phantom as `cargo xtask synth` wrote it.
    own_gz: PathBuf,
    /// Derived: the phantom as one gzip member.
    gz: PathBuf,
    /// Derived: the phantom uncompressed.
    nii: PathBuf,
    /// Derived: the phantom as a CT series.
    series: PathBuf,
}

impl Inputs {
    fn new() -> Self {
        let ct = data_dir().join("ct");
        let io = ct.join("io");
        Inputs {
            own_gz: ct.join("imagesTr/phantom_000.nii.gz"),
            gz: io.join("phantom_image.nii.gz"),
            nii: io.join("phantom_image.nii"),
            series: io.join("series"),
        }
    }

    fn derived_ready(&self) -> bool {
        self.gz.is_file() && self.nii.is_file() && self.series.is_dir()
    }
}

/// Writes the derived inputs that are missing (`--prepare`, in a process of
/// its own so that the parent, whose size every Python child would inherit
/// as a floor of its `ru_maxrss`, stays small).
fn prepare(inputs: &Inputs) {
    let opts = nifti::WriteOptions {
        overwrite: Overwrite::Allow,
        ..Default::default()
    };
    let ct: Volume<i16> =
        nifti::read(&inputs.own_gz, &nifti::ReadOptions::default()).expect("read the phantom");
    std::fs::create_dir_all(inputs.nii.parent().expect("a folder")).expect("create ct/io");
    if !inputs.nii.is_file() {
        nifti::write(&inputs.nii, &ct, &opts).expect("write phantom_image.nii");
    }
    if !inputs.gz.is_file() {
        // One member at level 1, the way nibabel (Python's gzip module)
        // writes a .nii.gz, beside the multi-member file liverseg writes.
        let tmp = inputs
            .gz
            .with_extension(format!("gz.tmp-{}", std::process::id()));
        let mut src = std::fs::File::open(&inputs.nii).expect("open phantom_image.nii");
        let dst = std::fs::File::create(&tmp).expect("create the .nii.gz");
        let mut enc = flate2::write::GzEncoder::new(dst, flate2::Compression::fast());
        std::io::copy(&mut src, &mut enc).expect("gzip phantom_image.nii");
        enc.finish().expect("finish the gzip stream");
        std::fs::rename(&tmp, &inputs.gz).expect("rename the .nii.gz into place");
    }
    if !inputs.series.is_dir() {
        let opts = liverseg_io::dicom::WriteSeriesOptions {
            series_description: "liverseg benchmark phantom".into(),
            ..Default::default()
        };
        liverseg_io::dicom::write_series(&inputs.series, &ct, &opts).expect("write the series");
    }
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

/// Runs one case in this process and returns its result record.
fn child(case: &str, scratch: &Path) -> Value {
    let Inputs {
        own_gz,
        gz,
        nii,
        series,
    } = Inputs::new();
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
            let path = own_gz;
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
            let dir = series;
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

/// The Python that runs the reference scripts: `LIVERSEG_BENCH_PYTHON` (a
/// path with a `/` taken from the workspace root when relative), `python3`
/// when unset, none when set empty.
fn python() -> Option<PathBuf> {
    match std::env::var_os("LIVERSEG_BENCH_PYTHON") {
        Some(p) if p.is_empty() => None,
        Some(p) if Path::new(&p).components().count() > 1 => Some(from_root(p.into())),
        Some(p) => Some(p.into()),
        None => Some("python3".into()),
    }
}

/// Runs the reference counterpart `name` with `python`.
fn run_reference(python: &Path, name: &str, inputs: &Inputs, scratch: &Path) -> Value {
    let tools = workspace_root().join("tools/bench");
    let mut cmd = Command::new(python);
    if name == "pydicom_read_series" {
        cmd.arg(tools.join("bench_pydicom_series.py"))
            .args(["--child", "--reps", &reps().to_string(), "--series-dir"])
            .arg(&inputs.series);
    } else {
        let data = inputs.nii.parent().expect("the derived inputs' folder");
        cmd.arg(tools.join("bench_nibabel.py"))
            .args(["--child", name, "--reps", &reps().to_string(), "--data-dir"])
            .arg(data)
            .arg("--work-dir")
            .arg(scratch);
    }
    match cmd.output() {
        Ok(out) => parse_result(name, &out),
        Err(e) => json!({
            "name": name,
            "skipped": format!("cannot run `{}` ({e}); set LIVERSEG_BENCH_PYTHON to a Python with nibabel and pydicom", python.display()),
        }),
    }
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
    let inputs = Inputs::new();
    if args.iter().any(|a| a == "--prepare") {
        prepare(&inputs);
        return;
    }
    if let Some(case) = flag("--child") {
        let scratch = PathBuf::from(flag("--scratch").expect("--scratch"));
        println!("@@RESULT@@{}", child(&case, &scratch));
        return;
    }
    if !inputs.own_gz.is_file() {
        eprintln!(
            "{} is missing: make the benchmark phantom first, from the workspace root:\n    {}",
            inputs.own_gz.display(),
            make_phantom_command()
        );
        std::process::exit(1);
    }
    if !inputs.derived_ready() {
        eprintln!(
            "writing the derived inputs (.nii, one-member .nii.gz, CT series) into {}",
            inputs.nii.parent().expect("a folder").display()
        );
        let status = Command::new(std::env::current_exe().expect("current_exe"))
            .arg("--prepare")
            .status()
            .expect("spawn --prepare");
        assert!(status.success(), "--prepare failed");
    }
    let only: Option<Vec<String>> = flag("--only")
        .or_else(|| std::env::var("LIVERSEG_BENCH_ONLY").ok())
        .map(|s| s.split(',').map(str::to_owned).collect());
    let python = python();
    let scratch = tempfile::tempdir().expect("temp dir");
    let mut results = serde_json::Map::new();
    let mut rows = Vec::new();
    for &(case, refs, what) in CASES {
        if only.as_ref().is_some_and(|o| !o.iter().any(|x| x == case)) {
            continue;
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
                let rr = run_reference(py, name, &inputs, scratch.path());
                if let Some(why) = rr.get("skipped") {
                    eprintln!("  {name:16} SKIPPED: {}", why.as_str().unwrap_or_default());
                    continue;
                }
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
    if rows.iter().any(|(_, _, refs)| !refs.is_empty()) {
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
        Some(p) => std::fs::write(from_root(p.into()), format!("{all:#}\n"))
            .expect("write LIVERSEG_BENCH_OUT"),
        None => println!("{all:#}"),
    }
}
