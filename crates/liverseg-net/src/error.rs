//! The one error type of `liverseg-net`.

use std::path::PathBuf;

/// A specialised `Result` for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong talking to a PACS. No message ever holds credentials.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A URL, a credential or a setting is unusable (the user's input).
    #[error("{0}")]
    Request(String),
    /// The server could not be reached or the transfer broke.
    #[error("{url}: {reason}")]
    Unreachable {
        /// The URL asked for.
        url: String,
        /// What the client reported.
        reason: String,
    },
    /// The server answered with an error status.
    #[error("{url}: HTTP {status}{}", if .detail.is_empty() { String::new() } else { format!(": {}", .detail) })]
    Status {
        /// The URL asked for.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The start of the server's answer, if it said anything.
        detail: String,
    },
    /// The server's answer is not what DICOMweb prescribes.
    #[error("{url}: {reason}")]
    Protocol {
        /// The URL asked for.
        url: String,
        /// What is wrong with the answer.
        reason: String,
    },
    /// A local file could not be read or written.
    #[error("{}: {what}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The cause.
        source: std::io::Error,
    },
}

impl Error {
    /// True when the error is the caller's input (exit status 2).
    pub fn is_bad_input(&self) -> bool {
        matches!(self, Error::Request(_))
    }

    pub(crate) fn io(path: &std::path::Path, what: &'static str, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            what,
            source,
        }
    }
}
