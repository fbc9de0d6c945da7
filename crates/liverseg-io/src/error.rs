//! The one error type of `liverseg-io`.

use std::path::{Path, PathBuf};

/// A specialised `Result` for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while reading or writing a medical image.
///
/// Every variant names the file (or directory) involved, so that the
/// `Display` output alone tells a user what to fix:
/// `MR_truncated.dcm: pixel data has 8130 bytes, 8192 expected`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The operating system refused an I/O operation.
    #[error("{}: {action}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// What we were doing ("cannot open", "cannot write", ...).
        action: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not in the format its name or content claims, or its
    /// content is inconsistent.
    #[error("{}: {reason}", path.display())]
    Invalid {
        /// The offending file.
        path: PathBuf,
        /// What is wrong, in words.
        reason: String,
    },
    /// The file is valid but uses a feature this crate does not handle.
    #[error("{}: unsupported: {reason}", path.display())]
    Unsupported {
        /// The offending file.
        path: PathBuf,
        /// Which feature.
        reason: String,
    },
    /// Slices of a DICOM series do not form one regular volume.
    #[error("{}: slices do not form one volume: {}", path.display(), differences.join("; "))]
    InconsistentSeries {
        /// The series directory.
        path: PathBuf,
        /// Each difference found, in words.
        differences: Vec<String>,
    },
    /// The caller asked for something the data cannot give (a 4-D volume
    /// without choosing a time point, a series UID that is not there, ...).
    #[error("{}: {reason}", path.display())]
    Request {
        /// The file or directory involved.
        path: PathBuf,
        /// What cannot be done and how to do it instead.
        reason: String,
    },
    /// A voxel buffer does not match the shape it was given.
    #[error("voxel buffer holds {found} values, which does not fit shape {dims:?}")]
    Shape {
        /// The requested shape.
        dims: [usize; 3],
        /// The buffer length.
        found: usize,
    },
    /// An affine is singular or holds non-finite values.
    #[error("affine is singular or not finite: {affine:?}")]
    BadAffine {
        /// The rejected matrix.
        affine: Box<crate::Affine>,
    },
    /// A buffer the input asks for does not fit the memory budget
    /// ([`crate::budget`]).
    #[error("{}: {budget}", path.display())]
    OverBudget {
        /// The file whose content asked for it.
        path: PathBuf,
        /// What, how large, and the budget.
        budget: crate::budget::OverBudget,
    },
    /// An output path exists and overwriting was not allowed.
    #[error("{}: already exists", path.display())]
    Exists {
        /// The existing path.
        path: PathBuf,
    },
}

impl Error {
    pub(crate) fn io(path: &Path, action: &'static str, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    }

    pub(crate) fn invalid(path: &Path, reason: impl Into<String>) -> Self {
        Error::Invalid {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }

    pub(crate) fn unsupported(path: &Path, reason: impl Into<String>) -> Self {
        Error::Unsupported {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }

    /// The error for a buffer that `path` asks for and the budget refuses.
    pub fn over_budget(path: &Path, budget: crate::budget::OverBudget) -> Self {
        Error::OverBudget {
            path: path.to_path_buf(),
            budget,
        }
    }

    pub(crate) fn request(path: &Path, reason: impl Into<String>) -> Self {
        Error::Request {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }

    /// True when the error comes from the input data or the caller's request
    /// (bad file, bad argument) rather than from the environment (disk full,
    /// permission denied). The CLI maps the former to exit code 2.
    pub fn is_bad_input(&self) -> bool {
        match self {
            Error::Io { source, .. } => {
                is_symlink_loop(source)
                    || matches!(
                        source.kind(),
                        std::io::ErrorKind::NotFound
                            | std::io::ErrorKind::UnexpectedEof
                            | std::io::ErrorKind::InvalidData
                            | std::io::ErrorKind::NotADirectory
                            | std::io::ErrorKind::IsADirectory
                            | std::io::ErrorKind::InvalidFilename
                    )
            }
            _ => true,
        }
    }
}

/// A path whose symlinks point round in a circle (`ELOOP`) is the caller's
/// mistake, like a missing file.
fn is_symlink_loop(e: &std::io::Error) -> bool {
    #[cfg(target_os = "linux")]
    {
        e.raw_os_error() == Some(libc::ELOOP)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = e;
        false
    }
}
