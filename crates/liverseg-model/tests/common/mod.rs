//! Helpers shared by the integration tests: golden-file paths and the
//! largest element-wise difference of two tensors.

// Each test binary uses only some of these helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// A file under `tests/golden` (made by `tools/golden/*.py`).
pub fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

// The crate's unit-test helper `max_diff`, shared here
// by path rather than written twice.
#[path = "../../src/test_util.rs"]
mod test_util;
pub(crate) use test_util::max_diff;
