//! The one error type of `liverseg-report`.

/// A specialised `Result` for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong drawing a picture.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An option is out of its domain (a panel size of 0, an empty
    /// palette).
    #[error("invalid picture option: {0}")]
    Config(String),
    /// The CT and the mask are not on the same grid.
    #[error("grid mismatch: {0}")]
    Grid(String),
    /// Drawing failed.
    #[error("{0}")]
    Draw(String),
    /// Writing the picture failed.
    #[error(transparent)]
    Io(#[from] liverseg_io::Error),
    /// Reading a volume's orientation failed.
    #[error(transparent)]
    Transform(#[from] liverseg_transforms::Error),
}

impl Error {
    /// True when the error is the caller's input rather than the machine.
    pub fn is_bad_input(&self) -> bool {
        match self {
            Error::Config(_) | Error::Grid(_) => true,
            Error::Io(e) => e.is_bad_input(),
            Error::Transform(e) => e.is_bad_input(),
            Error::Draw(_) => false,
        }
    }
}
