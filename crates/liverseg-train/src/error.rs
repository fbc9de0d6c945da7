//! The one error type of `liverseg-train`.

use std::path::PathBuf;

/// A specialised `Result` for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong training, evaluating or measuring.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is out of its domain.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A dataset, split file or case is missing or inconsistent.
    #[error("{}: {reason}", path.display())]
    Data {
        /// The file or directory involved.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The run folder already holds a run, and neither resuming nor
    /// starting over was asked for.
    #[error("{}: already holds a run: resume it or start it over", path.display())]
    RunExists {
        /// The run folder.
        path: PathBuf,
    },
    /// Two volumes that must share a grid do not.
    #[error("grid mismatch: {0}")]
    Grid(String),
    /// A device that was asked for cannot be opened (no GPU, no driver, or
    /// a build without the `cuda` feature).
    #[error("{0}")]
    Device(String),
    /// The loss became NaN or infinite.
    #[error("training diverged: {0}")]
    Diverged(String),
    /// Reading or writing a file failed.
    #[error(transparent)]
    Io(#[from] liverseg_io::Error),
    /// A transform failed.
    #[error(transparent)]
    Transform(#[from] liverseg_transforms::Error),
    /// The model failed.
    #[error(transparent)]
    Model(#[from] liverseg_model::Error),
    /// Measuring failed.
    #[error(transparent)]
    Metrics(#[from] liverseg_metrics::Error),
    /// Inference (validation's decision, a model card, a device) failed.
    #[error(transparent)]
    Infer(#[from] liverseg_infer::Error),
    /// candle failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl Error {
    /// True when the error is the caller's input (a bad configuration, a
    /// missing or malformed dataset, mismatched grids).
    pub fn is_bad_input(&self) -> bool {
        match self {
            Error::Config(_) | Error::Data { .. } | Error::Grid(_) | Error::RunExists { .. } => {
                true
            }
            Error::Io(e) => e.is_bad_input(),
            Error::Transform(e) => e.is_bad_input(),
            Error::Infer(e) => e.is_bad_input(),
            Error::Metrics(e) => e.is_bad_input(),
            _ => false,
        }
    }
}
