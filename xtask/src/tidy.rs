//! `cargo xtask tidy`: checks on the repository's text that the compiler and
//! clippy do not make, printed as one `path:line: what` line per problem.
//!
//! - Rust files stay short enough to read: at most [`MAX_LINES`] lines. A
//!   longer file under a `tests` folder is listed as a warning and does not
//!   fail, because an integration-test file is a list of independent cases
//!   and each split of one adds a test binary to link; every other Rust file
//!   (`src`, `benches`, fuzz targets) fails.
//! - Every Rust file opens with a `//!` line that says what it is for.
//! - No text file names a folder of one machine (a home, a scratch folder, a
//!   shared mount) as a location: such a path works only where it was typed.
//! - Every command that `README.md` and the other Markdown files show still
//!   parses with the current command line (see [`commands`]).
//!
//! The files checked are git's: tracked files and untracked ones that are not
//! ignored, so a new file is checked before it is committed and nothing under
//! `target/` or `data/` is.

mod commands;

use anyhow::{Context, Result, bail};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Options of `cargo xtask tidy` (none yet).
#[derive(Clone, Debug, clap::Args)]
pub struct TidyArgs {}

/// The most lines a Rust file may have.
pub const MAX_LINES: usize = 800;

/// The folders at the root of a file system whose paths name one machine.
/// Assembled with their slashes at run time so that this file does not
/// match its own check.
const MACHINE_DIRS: [&str; 5] = ["work", "root", "home", "tmp", "Users"];

/// Where machine paths are looked for (folders end with `/`).
const PATH_SCOPE: [&str; 6] = ["crates/", "xtask/", "tools/", "docs/", ".ci/", "README.md"];

/// Files that may name machine paths: the benchmark log records where each
/// measurement ran.
const PATH_EXEMPT: [&str; 1] = ["docs/benchmarks.md"];

/// One finding, printed `path:line: what`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// Path relative to the repository root, with `/` separators.
    pub path: String,
    /// 1-based line number.
    pub line: usize,
    /// What is wrong, and where useful what to do.
    pub what: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.path, self.line, self.what)
    }
}

/// Everything the checks found.
#[derive(Debug, Default)]
pub struct Report {
    /// Findings that fail the check.
    pub problems: Vec<Problem>,
    /// Findings that are listed but do not fail (long test files).
    pub warnings: Vec<Problem>,
}

impl Report {
    fn problem(&mut self, path: &str, line: usize, what: String) {
        self.problems.push(Problem {
            path: path.to_owned(),
            line,
            what,
        });
    }
}

/// Runs every check on the repository and prints what it finds; an error
/// (exit 1) when there is at least one problem.
pub fn run(_args: &TidyArgs) -> Result<()> {
    let root = project_root();
    let files = repo_files(&root)?;
    let mut report = Report::default();
    let mut markdown = Vec::new();
    for path in &files {
        let Some(text) = read_text(&root.join(path))? else {
            continue;
        };
        check_file(path, &text, &mut report);
        if path.ends_with(".md") {
            markdown.push((path.clone(), text));
        }
    }
    let commands = commands::check(&root, &markdown, &mut report);
    report.problems.sort();
    report.warnings.sort();
    for p in &report.problems {
        println!("{p}");
    }
    if !report.warnings.is_empty() {
        println!("warnings (test files over {MAX_LINES} lines; listed, not failing):");
        for w in &report.warnings {
            println!("{w}");
        }
    }
    commands?;
    match report.problems.len() {
        0 => Ok(()),
        1 => bail!("tidy: 1 problem"),
        n => bail!("tidy: {n} problems"),
    }
}

/// The repository root: the folder above this crate's manifest.
fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one folder below the repository root")
        .to_path_buf()
}

/// The files git knows in `root`: tracked ones and untracked ones that are
/// not ignored, sorted, with `/` separators.
fn repo_files(root: &Path) -> Result<Vec<String>> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .output()
        .context("cannot run `git ls-files` (tidy checks the files of a git checkout)")?;
    if !out.status.success() {
        bail!(
            "`git ls-files` failed in {}: {}",
            root.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let mut files: Vec<String> = String::from_utf8(out.stdout)
        .context("`git ls-files` printed a path that is not UTF-8")?
        .split('\0')
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    files.sort();
    files.dedup();
    Ok(files)
}

/// The content of a text file; `None` for a binary file (a NUL byte or not
/// UTF-8) and for a tracked file deleted from the working tree.
fn read_text(path: &Path) -> Result<Option<String>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        // A tracked path that is now a folder (a submodule) has no text.
        Err(_) if path.is_dir() => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    if bytes.contains(&0) {
        return Ok(None);
    }
    Ok(String::from_utf8(bytes).ok())
}

/// The per-file checks (length, module doc, machine paths) of one file.
pub fn check_file(path: &str, text: &str, report: &mut Report) {
    if is_workspace_rust(path) {
        check_length(path, text, report);
        check_module_doc(path, text, report);
    }
    if in_path_scope(path) {
        check_machine_paths(path, text, report);
    }
}

/// A Rust file of the workspace's crates or of xtask.
fn is_workspace_rust(path: &str) -> bool {
    path.ends_with(".rs") && (path.starts_with("crates/") || path.starts_with("xtask/"))
}

/// Whether `path` lies under a `tests` folder (integration tests).
fn is_test_file(path: &str) -> bool {
    path.split('/').rev().skip(1).any(|c| c == "tests")
}

/// Rust files longer than [`MAX_LINES`]: problems, or warnings for test
/// files. The line named is the first one past the limit.
fn check_length(path: &str, text: &str, report: &mut Report) {
    let lines = text.lines().count();
    if lines <= MAX_LINES {
        return;
    }
    let finding = Problem {
        path: path.to_owned(),
        line: MAX_LINES + 1,
        what: format!(
            "{lines} lines, more than {MAX_LINES}: split the file along its seams into modules"
        ),
    };
    if is_test_file(path) {
        report.warnings.push(finding);
    } else {
        report.problems.push(finding);
    }
}

/// The first non-blank line of a Rust file must be a `//!` module doc. (No
/// file puts `#![...]` attributes first, so none may.)
fn check_module_doc(path: &str, text: &str, report: &mut Report) {
    match text.lines().enumerate().find(|(_, l)| !l.trim().is_empty()) {
        Some((_, line)) if line.trim_start_matches('\u{feff}').starts_with("//!") => {}
        Some((i, _)) => report.problem(
            path,
            i + 1,
            "the file does not open with a `//!` line saying what it is for".to_owned(),
        ),
        None => report.problem(
            path,
            1,
            "empty file: it needs at least a `//!` line saying what it is for".to_owned(),
        ),
    }
}

fn in_path_scope(path: &str) -> bool {
    PATH_SCOPE.iter().any(|s| {
        if s.ends_with('/') {
            path.starts_with(s)
        } else {
            path == *s
        }
    }) && !PATH_EXEMPT.contains(&path)
}

/// Absolute paths into a machine's own folders, one problem per line.
fn check_machine_paths(path: &str, text: &str, report: &mut Report) {
    let patterns: Vec<String> = MACHINE_DIRS.iter().map(|d| format!("/{d}/")).collect();
    for (i, line) in text.lines().enumerate() {
        if let Some(found) = find_machine_path(line, &patterns) {
            report.problem(
                path,
                i + 1,
                format!(
                    "machine-specific path `{found}`: use a relative path, an option or an \
                     environment variable"
                ),
            );
        }
    }
}

/// The first path in `line` that starts with one of `patterns` where a path
/// can start (not inside a longer path, such as a relative one, one under an
/// environment variable, or a URL), up to the next space or quote.
fn find_machine_path<'a>(line: &'a str, patterns: &[String]) -> Option<&'a str> {
    let mut best: Option<usize> = None;
    for pattern in patterns {
        for (at, _) in line.match_indices(pattern.as_str()) {
            let starts_path = line[..at]
                .chars()
                .next_back()
                .is_none_or(|c| !(c.is_alphanumeric() || "._-~/$}".contains(c)));
            if starts_path {
                best = Some(best.map_or(at, |b| b.min(at)));
                break;
            }
        }
    }
    let start = best?;
    let rest = &line[start..];
    let end = rest
        .find(|c: char| c.is_whitespace() || "\"'`),;]".contains(c))
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(n: usize) -> String {
        let mut text = String::from("//! A file.\n");
        for i in 1..n {
            text.push_str(&format!("const X{i}: u32 = {i};\n"));
        }
        text
    }

    fn report(path: &str, text: &str) -> Report {
        let mut r = Report::default();
        check_file(path, text, &mut r);
        r
    }

    /// `/{dir}/{rest}`, built at run time so this file holds no such path.
    fn machine(dir: &str, rest: &str) -> String {
        format!("/{dir}/{rest}")
    }

    #[test]
    fn a_source_file_of_801_lines_fails_and_800_pass() {
        for path in [
            "crates/liverseg-io/src/a.rs",
            "crates/liverseg-io/benches/io.rs",
            "xtask/src/tidy.rs",
        ] {
            let r = report(path, &lines(MAX_LINES));
            assert!(r.problems.is_empty() && r.warnings.is_empty(), "{path}");
            let r = report(path, &lines(MAX_LINES + 1));
            assert_eq!(r.problems.len(), 1, "{path}");
            assert_eq!(r.problems[0].line, 801);
            assert!(
                r.problems[0].what.starts_with("801 lines"),
                "{:?}",
                r.problems
            );
            assert!(r.warnings.is_empty());
        }
    }

    #[test]
    fn a_long_test_file_is_a_warning() {
        for path in [
            "crates/liverseg-io/tests/dicom_read.rs",
            "crates/liverseg-io/tests/common/mod.rs",
        ] {
            let r = report(path, &lines(900));
            assert!(r.problems.is_empty(), "{path}");
            assert_eq!(r.warnings.len(), 1, "{path}");
            assert_eq!(
                r.warnings[0].to_string(),
                format!("{path}:801: {}", r.warnings[0].what)
            );
        }
        // A `tests.rs` module inside `src` is source, not a tests folder.
        assert_eq!(report("xtask/src/tests.rs", &lines(900)).problems.len(), 1);
    }

    #[test]
    fn a_rust_file_must_open_with_a_module_doc() {
        let path = "crates/liverseg-io/src/a.rs";
        assert!(
            report(path, "//! Reads things.\nfn f() {}\n")
                .problems
                .is_empty()
        );
        assert!(
            report(path, "\n\n//! After blank lines.\n")
                .problems
                .is_empty()
        );
        let r = report(path, "\n/// An item doc.\nfn f() {}\n");
        assert_eq!(r.problems.len(), 1);
        assert_eq!(r.problems[0].line, 2);
        let r = report(path, "#![allow(dead_code)]\n//! Doc after an attribute.\n");
        assert_eq!(r.problems.len(), 1);
        let r = report("xtask/src/x.rs", "");
        assert_eq!(r.problems.len(), 1);
        assert!(r.problems[0].what.starts_with("empty file"));
        // Only Rust files of the crates and xtask are concerned.
        assert!(
            report("tools/golden/x.py", "import numpy\n")
                .problems
                .is_empty()
        );
        assert!(
            report("crates/liverseg-io/README.md", "# Title\n")
                .problems
                .is_empty()
        );
    }

    #[test]
    fn machine_paths_fail_where_a_path_starts() {
        let path = "crates/liverseg-io/benches/io.rs";
        let data = machine("tmp", "refdata");
        let text =
            format!("//! Bench.\n\nfn dir() -> PathBuf {{\n    PathBuf::from(\"{data}\")\n}}\n");
        let r = report(path, &text);
        assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
        assert_eq!(r.problems[0].line, 4);
        assert!(
            r.problems[0].what.contains(&format!("`{data}`")),
            "{:?}",
            r.problems
        );

        for line in [
            format!(
                "    {}",
                machine("work", "shared/bench/make_phantom.py --out-dir x")
            ),
            format!("cp {} corpus/", machine("home", "me/fixtures/*")),
            format!("--data-dir={}", machine("root", "x")),
            format!("(`{}`)", machine("Users", "me/ct.nii.gz")),
        ] {
            let r = report("docs/ARCHITECTURE.md", &line);
            assert_eq!(r.problems.len(), 1, "{line}");
        }
        for line in [
            // Relative paths and paths under a variable are not machine paths.
            "\"data/tmp/Task/ok.txt\"".to_owned(),
            format!("$HOME{}", machine("work", "x")),
            format!("${{TMPDIR}}{}", machine("tmp", "x")),
            format!("https://example.org{}", machine("home", "index.html")),
            // Only whole folder names count, and a bare folder is no location.
            "/tmpfs/x /homes/y /work".to_owned(),
        ] {
            let r = report("docs/ARCHITECTURE.md", &line);
            assert!(r.problems.is_empty(), "{line}: {:?}", r.problems);
        }
    }

    #[test]
    fn machine_paths_are_looked_for_only_in_scope() {
        let line = format!("python x.py --data {}\n", machine("tmp", "refdata"));
        for path in [
            "README.md",
            ".ci/run",
            "tools/golden/x.py",
            "docs/ARCHITECTURE.md",
            "xtask/src/main.rs",
        ] {
            let r = report(path, &format!("//! Doc.\n{line}"));
            assert_eq!(r.problems.len(), 1, "{path}: {:?}", r.problems);
            assert_eq!(r.problems[0].line, 2);
        }
        for path in ["docs/benchmarks.md", "data/README.md", "Cargo.toml"] {
            assert!(report(path, &line).problems.is_empty(), "{path}");
        }
    }

    #[test]
    fn the_first_machine_path_of_a_line_is_named() {
        let patterns: Vec<String> = MACHINE_DIRS.iter().map(|d| format!("/{d}/")).collect();
        let line = format!("a {} b {}", machine("work", "one\""), machine("tmp", "two"));
        assert_eq!(
            find_machine_path(&line, &patterns),
            Some(machine("work", "one").as_str())
        );
    }
}
