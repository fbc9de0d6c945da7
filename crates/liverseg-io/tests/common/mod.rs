//! Helpers shared by the integration tests: fixture paths and the check
//! for outside tools (dciodvfy, dcm2niix, Python readers).

// Each test binary uses only some of these helpers.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A file under `tests/fixtures`.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// True when `probe` runs and succeeds. When it does not, prints a loud
/// notice and returns false so the test skips that check, unless
/// `LIVERSEG_REQUIRE_TOOLS=1`, in which case the test fails.
pub fn tool_available(name: &str, probe: &mut Command) -> bool {
    let ok = probe.output().map(|o| o.status.success()).unwrap_or(false);
    if !ok {
        if std::env::var("LIVERSEG_REQUIRE_TOOLS").as_deref() == Ok("1") {
            panic!("{name} is required (LIVERSEG_REQUIRE_TOOLS=1) but not available");
        }
        // Written to the stderr handle rather than with `eprintln!`, which
        // the test harness captures, so the notice shows in every run.
        let _ = writeln!(
            std::io::stderr(),
            "\n!!!!!!!! SKIPPED: {name} is not available; its check did not run !!!!!!!!\n"
        );
    }
    ok
}

/// dicom3tools' validator (it has no version flag; `-version` exits 0).
pub fn dciodvfy_available() -> bool {
    tool_available("dciodvfy", Command::new("dciodvfy").arg("-version"))
}

/// Counts dciodvfy's "Error" and "Warning" lines for one file, printing them.
pub fn dciodvfy(path: &Path) -> (usize, usize) {
    let out = Command::new("dciodvfy").arg(path).output().unwrap();
    let all =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let (mut errors, mut warnings) = (0, 0);
    for line in all.lines() {
        if line.starts_with("Error") {
            errors += 1;
            eprintln!("dciodvfy: {line}");
        } else if line.starts_with("Warning") {
            warnings += 1;
            eprintln!("dciodvfy: {line}");
        }
    }
    (errors, warnings)
}

/// dcm2niix (`-h` prints its usage and exits 0).
pub fn dcm2niix_available() -> bool {
    tool_available("dcm2niix", Command::new("dcm2niix").arg("-h"))
}

/// `python3` able to import every module of `modules` (comma-separated).
pub fn python_available(modules: &str) -> bool {
    tool_available(
        &format!("python3 with {modules}"),
        Command::new("python3").args(["-c", &format!("import {modules}")]),
    )
}

/// The file name of each slice's source image, in slice order.
pub fn slice_file_names(header: &liverseg_io::dicom::SeriesHeader) -> Vec<String> {
    header
        .slices
        .iter()
        .map(|s| {
            s.path
                .as_ref()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}
