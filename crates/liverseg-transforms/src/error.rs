//! The one error type of `liverseg-transforms`.

/// A specialised `Result` for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong preprocessing or post-processing a volume.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A transform parameter is out of its domain (a non-positive spacing,
    /// an empty target size, `a_min == a_max`, …).
    #[error("invalid transform parameter: {0}")]
    Param(String),
    /// Two volumes that must share a grid (an image and its label, the class
    /// probabilities of one case) do not.
    #[error("grid mismatch: {0}")]
    Grid(String),
    /// An output grid would not fit the memory budget
    /// (`liverseg_io::budget`): an absurd spacing or size asked for.
    #[error("{0}")]
    OverBudget(liverseg_io::budget::OverBudget),
    /// Building a volume failed (a singular affine, a size overflow).
    #[error(transparent)]
    Volume(#[from] liverseg_io::Error),
}

impl Error {
    /// True when the error is the caller's input (a bad parameter, mismatched
    /// grids) rather than a failure of the machine.
    pub fn is_bad_input(&self) -> bool {
        match self {
            Error::Param(_) | Error::Grid(_) | Error::OverBudget(_) => true,
            Error::Volume(e) => e.is_bad_input(),
        }
    }
}

/// Fails when a grid of `dims` holding `element_bytes` per voxel would not
/// fit the memory budget; called before every output buffer is allocated.
pub(crate) fn check_grid(what: &str, dims: &[usize], element_bytes: usize) -> Result<()> {
    liverseg_io::budget::check_grid(
        format!("{what} of shape {dims:?}"),
        dims,
        element_bytes as u64,
    )
    .map_err(Error::OverBudget)
}
