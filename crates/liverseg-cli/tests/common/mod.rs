//! Helpers the CLI test files share: run the built binary, check success,
//! and pass paths as arguments. Each test file uses a part of them.
#![allow(dead_code)]

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
