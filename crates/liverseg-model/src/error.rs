//! The one error type of `liverseg-model`.

/// A specialised `Result` for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong building or running a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A layer or network configuration is invalid.
    #[error("invalid model configuration: {0}")]
    Config(String),
    /// A model file is missing, unreadable or does not fit its architecture.
    #[error("{0}")]
    File(String),
    /// candle reported an error.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}
