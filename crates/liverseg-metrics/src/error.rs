//! The one error type of `liverseg-metrics`.

/// A specialised `Result` for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong measuring a segmentation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An option or class list is out of its domain (an empty label set, a
    /// negative tolerance, a degenerate spacing).
    #[error("{0}")]
    Config(String),
    /// The prediction and the reference are not on the same grid.
    #[error("grid mismatch: {0}")]
    Grid(String),
}

impl Error {
    /// Every metrics error is the caller's input.
    pub fn is_bad_input(&self) -> bool {
        true
    }
}
