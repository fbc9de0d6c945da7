//! A voxel grid: a shape and the affine that places it in the world, the
//! input and output of every spatial step.

use liverseg_io::{Affine, Volume, Voxel};
use serde::{Deserialize, Serialize};

/// A voxel grid: a shape and the affine that places it in the world.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Grid {
    /// Voxels along `i`, `j`, `k`.
    pub dims: [usize; 3],
    /// Voxel index → RAS millimetres.
    pub affine: Affine,
}

impl Grid {
    /// The grid a volume lives on.
    pub fn of<T: Voxel>(volume: &Volume<T>) -> Grid {
        Grid {
            dims: volume.dims(),
            affine: *volume.affine(),
        }
    }

    /// Number of voxels.
    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }

    /// True when the grid holds no voxel.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when `other` has the same shape and an affine within `tol`.
    pub fn same_as(&self, other: &Grid, tol: f64) -> bool {
        self.dims == other.dims && self.affine.max_abs_diff(&other.affine) <= tol
    }
}
