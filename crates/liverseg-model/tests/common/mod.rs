//! Helpers shared by the integration tests: golden-file paths and the
//! largest element-wise difference of two tensors.

// Each test binary uses only some of these helpers.
#![allow(dead_code)]

use candle_core::Tensor;
use std::path::{Path, PathBuf};

/// A file under `tests/golden` (made by `tools/golden/*.py`).
pub fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

/// `max |a − b|` over all elements; the shapes must agree.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}
