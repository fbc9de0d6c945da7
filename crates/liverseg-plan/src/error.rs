//! The one error type of `liverseg-plan`.

use std::path::PathBuf;

/// A specialised `Result` for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong planning.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading a dataset's file failed.
    #[error(transparent)]
    Read(#[from] liverseg_io::Error),
    /// A file could not be read.
    #[error("{}: {reason}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A file holds something the planner cannot use.
    #[error("{}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The fingerprint or the planning options are out of their domain.
    #[error("{0}")]
    Config(String),
}

impl Error {
    /// Whether the error is the caller's input (exit 2) rather than a
    /// failure while running (exit 1).
    pub fn is_bad_input(&self) -> bool {
        match self {
            Error::Read(e) => e.is_bad_input(),
            Error::Io { .. } => false,
            Error::Invalid { .. } | Error::Config(_) => true,
        }
    }
}
