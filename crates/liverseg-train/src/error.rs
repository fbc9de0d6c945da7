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

    /// The processes of a data-parallel run could not meet or lost each
    /// other (a runtime failure).
    #[error("data-parallel training: {0}")]
    Distributed(String),
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
    /// An operating-system failure on `path`: its exit code follows the
    /// cause (a missing file is the caller's, a full disk is not).
    pub(crate) fn io(path: &std::path::Path, action: &'static str, source: std::io::Error) -> Self {
        Error::Io(liverseg_io::Error::Io {
            path: path.to_path_buf(),
            action,
            source,
        })
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    /// Exit codes follow the cause: a full disk while writing the run's
    /// files is the machine's failure (exit 1), a missing file the caller's.
    #[test]
    fn io_errors_are_classified_by_their_cause() {
        let p = std::path::Path::new("runs/x/metrics.csv");
        let full = Error::io(p, "cannot write", std::io::ErrorKind::StorageFull.into());
        assert!(!full.is_bad_input());
        assert!(full.to_string().contains("metrics.csv"), "{full}");
        let missing = Error::io(p, "cannot read", std::io::ErrorKind::NotFound.into());
        assert!(missing.is_bad_input());
        let exists = Error::RunExists {
            path: "runs/x".into(),
        };
        assert!(exists.is_bad_input() && !exists.to_string().contains("--"));
    }
}
