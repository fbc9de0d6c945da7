//! The one error type of `liverseg-phantom`.

/// A specialised `Result` for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while generating a phantom.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A [`crate::PhantomConfig`] field is out of range.
    #[error("invalid phantom configuration: {field}: {reason}")]
    Config {
        /// The offending field, as spelled in `PhantomConfig`.
        field: &'static str,
        /// What is wrong with it, in words.
        reason: String,
    },
    /// Writing a dataset file failed.
    #[error("{}: {reason}", path.display())]
    Write {
        /// The file or folder involved.
        path: std::path::PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The volume could not be assembled (an invalid grid slipped through).
    #[error("cannot build the phantom volume: {0}")]
    Volume(Box<liverseg_io::Error>),
}

impl From<liverseg_io::Error> for Error {
    fn from(e: liverseg_io::Error) -> Self {
        Error::Volume(Box::new(e))
    }
}

impl Error {
    pub(crate) fn config(field: &'static str, reason: impl Into<String>) -> Self {
        Error::Config {
            field,
            reason: reason.into(),
        }
    }
}
