//! The one error type of `liverseg-infer`.

use std::path::PathBuf;

/// A specialised `Result` for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong loading a model or predicting with it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An option or a model's recorded setting is out of its domain (a
    /// window the network cannot run, a device name).
    #[error("{0}")]
    Config(String),
    /// A model file's metadata is unreadable or inconsistent.
    #[error("{}: {reason}", path.display())]
    Card {
        /// The model file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Two volumes or a tensor and a grid that must agree do not.
    #[error("grid mismatch: {0}")]
    Grid(String),
    /// A device that was asked for cannot be opened (no GPU, no driver, or
    /// a build without the `cuda` feature).
    #[error("{0}")]
    Device(String),
    /// Reading or writing a file failed.
    #[error(transparent)]
    Io(#[from] liverseg_io::Error),
    /// A transform failed.
    #[error(transparent)]
    Transform(#[from] liverseg_transforms::Error),
    /// The model failed.
    #[error(transparent)]
    Model(#[from] liverseg_model::Error),
    /// candle failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// [`PredictOptions::cancel`](crate::PredictOptions::cancel) was set.
    #[error("cancelled")]
    Cancelled,
}

impl Error {
    /// True when the error is the caller's input (a bad option, a model
    /// file that is not one, mismatched grids, a file the readers refuse).
    pub fn is_bad_input(&self) -> bool {
        match self {
            Error::Config(_) | Error::Card { .. } | Error::Grid(_) => true,
            Error::Io(e) => e.is_bad_input(),
            Error::Transform(e) => e.is_bad_input(),
            Error::Model(liverseg_model::Error::File(_) | liverseg_model::Error::Config(_)) => true,
            _ => false,
        }
    }
}
