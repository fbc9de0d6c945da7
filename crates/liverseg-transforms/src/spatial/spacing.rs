//! Spacing: resampling to a target voxel size, with MONAI's output grid.

use liverseg_io::{Affine, Volume, Voxel};

use super::grid::Grid;
use super::resample::{Interpolation, Padding, resample, resample_labels};
use crate::{Error, Result};

/// MONAI's `AFFINE_TOL`: a current spacing this close to the target is kept
/// as it is, and corner comparisons use it.
const AFFINE_TOL: f64 = 1e-3;

/// The grid MONAI's `Spacing(pixdim, diagonal=False, scale_extent=False)`
/// resamples `grid` onto.
///
/// - The target spacing along an axis is `pixdim[a]`, except that a
///   non-positive entry keeps the current spacing and a current spacing
///   within 1e-3 mm of the target is kept unchanged.
/// - Directions are kept: the 3×3 part is factored as rotation × upper
///   triangular (Cholesky of `RᵀR`, which removes any shear) and rebuilt as
///   rotation × diag(spacing).
/// - The shape is `round_half_even(extent / spacing + 1)` per axis, where
///   the extent runs between the first and last voxel centres.
/// - The origin stays on the input's corner voxel centre that comes first
///   along every output axis (for a non-sheared grid, voxel 0).
pub fn spacing_grid(grid: &Grid, pixdim: [f64; 3]) -> Result<Grid> {
    if pixdim.iter().any(|p| !p.is_finite()) {
        return Err(Error::Param(format!(
            "Spacing: pixdim {pixdim:?} is not finite"
        )));
    }
    if grid.is_empty() {
        return Err(Error::Param(format!(
            "Spacing: empty input shape {:?}",
            grid.dims
        )));
    }
    let a = &grid.affine.0;
    let current = grid.affine.spacing();
    let mut target = [0.0; 3];
    for ax in 0..3 {
        let t = if pixdim[ax] > 0.0 {
            pixdim[ax]
        } else {
            current[ax]
        };
        target[ax] = if (current[ax] - t).abs() <= AFFINE_TOL {
            current[ax]
        } else {
            t
        };
    }
    let rzs = [
        [a[0][0], a[0][1], a[0][2]],
        [a[1][0], a[1][1], a[1][2]],
        [a[2][0], a[2][1], a[2][2]],
    ];
    let zs = cholesky_upper(&rzs)
        .ok_or_else(|| Error::Grid(format!("Spacing: singular affine {:?}", grid.affine)))?;
    let rotation = mat_mul(&rzs, &inverse_upper(&zs));
    let mut cols = [[0.0; 3]; 3];
    for c in 0..3 {
        for r in 0..3 {
            cols[c][r] = rotation[r][c] * target[c];
        }
    }
    let zero_origin = Affine::from_columns(cols, [0.0; 3]);
    let (dims, offset) = shape_offset(grid, &zero_origin)?;
    Ok(Grid {
        dims,
        affine: Affine::from_columns(cols, offset),
    })
}

/// MONAI's `compute_shape_offset` with `scale_extent=False`.
fn shape_offset(grid: &Grid, out: &Affine) -> Result<([usize; 3], [f64; 3])> {
    let inv_out = out
        .inverse()
        .ok_or_else(|| Error::Param(format!("Spacing: singular output affine {out:?}")))?;
    let xform = inv_out.matmul(&grid.affine);
    let mut corners = Vec::with_capacity(8);
    // numpy.meshgrid(..., indexing="ij") order: the first axis varies slowest.
    for ci in [0.0, grid.dims[0] as f64 - 1.0] {
        for cj in [0.0, grid.dims[1] as f64 - 1.0] {
            for ck in [0.0, grid.dims[2] as f64 - 1.0] {
                corners.push([ci, cj, ck]);
            }
        }
    }
    let out_coords: Vec<[f64; 3]> = corners.iter().map(|c| xform.apply(*c)).collect();
    let mut dims = [0usize; 3];
    for ax in 0..3 {
        let (lo, hi) = out_coords
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), c| {
                (lo.min(c[ax]), hi.max(c[ax]))
            });
        let n = (hi - lo + 1.0).round_ties_even();
        if !(1.0..=1e9).contains(&n) {
            return Err(Error::Param(format!(
                "Spacing: output axis {ax} would have {n} voxels"
            )));
        }
        dims[ax] = n as usize;
    }
    crate::error::check_grid("Spacing's output grid", &dims, 4)?;
    for (i, c) in out_coords.iter().enumerate() {
        let is_min = (0..3).all(|ax| {
            let m = out_coords
                .iter()
                .map(|o| o[ax] - c[ax])
                .fold(f64::INFINITY, f64::min);
            // numpy.allclose(m, 0, rtol=AFFINE_TOL) has atol 1e-8 and a zero reference.
            m.abs() <= 1e-8
        });
        if is_min {
            return Ok((dims, grid.affine.apply(corners[i])));
        }
    }
    // No corner is first along every axis (a strongly rotated target):
    // centre the output on the input, as MONAI does.
    let a = &grid.affine.0;
    let o = &out.0;
    let mut offset = [0.0; 3];
    for r in 0..3 {
        offset[r] = a[r][3];
        for c in 0..3 {
            offset[r] += a[r][c] * grid.dims[c] as f64 / 2.0 - o[r][c] * dims[c] as f64 / 2.0;
        }
    }
    Ok((dims, offset))
}

/// Upper-triangular `U` with `UᵀU = RᵀR` (numpy's `cholesky(RᵀR).T`).
fn cholesky_upper(r: &[[f64; 3]; 3]) -> Option<[[f64; 3]; 3]> {
    let mut g = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            g[i][j] = (0..3).map(|k| r[k][i] * r[k][j]).sum();
        }
    }
    let mut l = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..=i {
            let s: f64 = g[i][j] - (0..j).map(|k| l[i][k] * l[j][k]).sum::<f64>();
            if i == j {
                if s <= 0.0 || !s.is_finite() {
                    return None;
                }
                l[i][i] = s.sqrt();
            } else {
                l[i][j] = s / l[j][j];
            }
        }
    }
    let mut u = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            u[i][j] = l[j][i];
        }
    }
    Some(u)
}

fn inverse_upper(u: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let mut inv = [[0.0; 3]; 3];
    for c in 0..3 {
        // Back-substitution for column c of the inverse.
        for r in (0..3).rev() {
            let mut s = if r == c { 1.0 } else { 0.0 };
            for k in r + 1..3 {
                s -= u[r][k] * inv[k][c];
            }
            inv[r][c] = s / u[r][r];
        }
    }
    inv
}

fn mat_mul(a: &[[f64; 3]; 3], b: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let mut m = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            m[i][j] = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    m
}

/// Resamples an image to `pixdim` (MONAI `Spacing(pixdim, mode="bilinear")`
/// with border padding).
pub fn spacing<T: Voxel>(
    image: &Volume<T>,
    pixdim: [f64; 3],
    interpolation: Interpolation,
) -> Result<Volume<f32>> {
    let target = spacing_grid(&Grid::of(image), pixdim)?;
    resample(image, &target, interpolation, Padding::Border)
}

/// Resamples a label map to `pixdim` with nearest-neighbour interpolation
/// (MONAI `Spacing(pixdim, mode="nearest")`).
pub fn spacing_labels<T: Voxel>(label: &Volume<T>, pixdim: [f64; 3]) -> Result<Volume<T>> {
    let target = spacing_grid(&Grid::of(label), pixdim)?;
    resample_labels(label, &target, Padding::Border)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_and_origin_follow_monai() {
        // 10 voxels of 2.5 mm span 22.5 mm: 22.5 / 1.0 + 1 = 23.5 → 24 (half to even).
        let g = Grid {
            dims: [10, 4, 3],
            affine: Affine::from_spacing_origin([2.5, 1.0, 3.0], [7.0, -3.0, 1.0]),
        };
        let out = spacing_grid(&g, [1.0, 1.0, 1.5]).unwrap();
        assert_eq!(out.dims, [24, 4, 5]);
        assert_eq!(out.affine.origin(), [7.0, -3.0, 1.0]);
        assert_eq!(out.affine.spacing(), [1.0, 1.0, 1.5]);
        // 1.0004 mm is within MONAI's tolerance of 1.0 and is kept.
        let g2 = Grid {
            dims: [5, 5, 5],
            affine: Affine::from_spacing_origin([1.0004, 1.0, 1.0], [0.0; 3]),
        };
        assert_eq!(
            spacing_grid(&g2, [1.0, 1.0, 1.0]).unwrap().affine.spacing()[0],
            1.0004
        );
    }

    #[test]
    fn flipped_axes_keep_direction_and_first_corner() {
        let g = Grid {
            dims: [8, 6, 4],
            affine: Affine::from_columns(
                [[-0.8, 0.0, 0.0], [0.0, -0.8, 0.0], [0.0, 0.0, 2.5]],
                [100.0, 50.0, -20.0],
            ),
        };
        let out = spacing_grid(&g, [1.5, 1.5, 1.0]).unwrap();
        assert_eq!(out.affine.column(0), [-1.5, 0.0, 0.0]);
        assert_eq!(out.affine.origin(), [100.0, 50.0, -20.0]);
        // 7 * 0.8 / 1.5 + 1 = 4.73 → 5; 3 * 2.5 + 1 = 8.5 → 8 (half to even).
        assert_eq!(out.dims, [5, 4, 8]);
    }
}
