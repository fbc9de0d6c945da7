//! Resize to a fixed shape (MONAI `Resize`, `torch.nn.functional.interpolate`).

use liverseg_io::{Affine, Volume, Voxel};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::crop::BoxRegion;
use super::grid::Grid;
use super::resample::{Interpolation, Padding, resample_index_map};
use crate::{Error, Result};

/// Interpolation of [`resize`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResizeMode {
    /// Adaptive average pooling: output voxel `o` averages input voxels
    /// `floor(o·n/m) .. ceil((o+1)·n/m)` per axis (MONAI's default for
    /// images, torch's `"area"`).
    Area,
    /// Trilinear with half-pixel centres (`align_corners=False`).
    Linear,
    /// torch's `"nearest"`: input index `floor(o · (n/m))` computed in
    /// float32, the convention MONAI's label resizing inherits.
    Nearest,
    /// torch's `"nearest-exact"`: input index `floor((o + 0.5) · (n/m))`,
    /// the voxel whose centre is nearest under the resized affine. MONAI's
    /// `"nearest"` (above) places a label up to half an input voxel away
    /// from where the centred affine says it is; this mode does not, so a
    /// label resized this way inverts exactly through world coordinates.
    NearestExact,
}

/// The grid of a resized volume: MONAI's `scale_affine` (centred,
/// `align_corners=False`): each voxel grows by `n/m` and the first centre
/// moves by `(n/m − 1)/2` input voxels, so the volume's outer edges stay put.
pub fn resize_grid(grid: &Grid, size: [usize; 3]) -> Result<Grid> {
    if size.contains(&0) {
        return Err(Error::Param(format!(
            "Resize: target size {size:?} has an empty axis"
        )));
    }
    let s: [f64; 3] = std::array::from_fn(|a| grid.dims[a] as f64 / size[a] as f64);
    let scale = Affine::from_columns(
        [[s[0], 0.0, 0.0], [0.0, s[1], 0.0], [0.0, 0.0, s[2]]],
        [(s[0] - 1.0) / 2.0, (s[1] - 1.0) / 2.0, (s[2] - 1.0) / 2.0],
    );
    Ok(Grid {
        dims: size,
        affine: grid.affine.matmul(&scale),
    })
}

/// MONAI `Resize(spatial_size, mode)` of an image; `f32` output.
pub fn resize<T: Voxel>(v: &Volume<T>, size: [usize; 3], mode: ResizeMode) -> Result<Volume<f32>> {
    let target = resize_grid(&Grid::of(v), size)?;
    if v.dims().contains(&0) {
        return Err(Error::Param(format!("Resize: empty input {:?}", v.dims())));
    }
    if size == v.dims() {
        return Ok(v.map(|x| x.to_f64() as f32));
    }
    match mode {
        ResizeMode::Area => area(v, [0; 3], v.dims(), target),
        ResizeMode::Linear => {
            let s: [f64; 3] = std::array::from_fn(|a| v.dims()[a] as f64 / size[a] as f64);
            let map = Affine::from_columns(
                [[s[0], 0.0, 0.0], [0.0, s[1], 0.0], [0.0, 0.0, s[2]]],
                [(s[0] - 1.0) / 2.0, (s[1] - 1.0) / 2.0, (s[2] - 1.0) / 2.0],
            );
            // torch clamps the source coordinate at 0 and the upper
            // neighbour at n − 1: border padding.
            resample_index_map(
                v,
                &target,
                &map,
                Interpolation::Linear,
                Padding::Border,
                |x| x as f32,
            )
        }
        ResizeMode::Nearest => {
            Ok(nearest(v, [0; 3], v.dims(), target, false)?.map(|x| x.to_f64() as f32))
        }
        ResizeMode::NearestExact => {
            Ok(nearest(v, [0; 3], v.dims(), target, true)?.map(|x| x.to_f64() as f32))
        }
    }
}

/// Crop to `region` (inside `v`) and resize, in one pass over the region:
/// the same values as [`crop`](super::crop::crop) then [`resize`] (or
/// [`resize_labels`] for the nearest modes), without the cropped copy.
/// Linear mode clamps at the region's border, which a view cannot do
/// cheaply, so it is rejected here.
pub fn resize_region<T: Voxel>(
    v: &Volume<T>,
    region: &BoxRegion,
    size: [usize; 3],
    mode: ResizeMode,
) -> Result<Volume<f32>> {
    let full = v.dims();
    let inside = (0..3).all(|a| {
        region.start[a] >= 0 && region.end[a] <= full[a] as i64 && region.start[a] < region.end[a]
    });
    if !inside || mode == ResizeMode::Linear {
        return Err(Error::Param(format!(
            "resize_region: region {:?}..{:?} must lie inside {full:?} and the mode be area or nearest",
            region.start, region.end
        )));
    }
    let start = region.start.map(|s| s as usize);
    let dims = region.dims();
    let target = resize_grid(&super::crop::crop_grid(&Grid::of(v), region), size)?;
    if size == dims {
        let c = nearest(v, start, dims, target, false)?;
        return Ok(c.map(|x| x.to_f64() as f32));
    }
    match mode {
        ResizeMode::Area => area(v, start, dims, target),
        ResizeMode::NearestExact => {
            Ok(nearest(v, start, dims, target, true)?.map(|x| x.to_f64() as f32))
        }
        _ => Ok(nearest(v, start, dims, target, false)?.map(|x| x.to_f64() as f32)),
    }
}

/// Resizes a label map with torch's `"nearest"` rule (MONAI's label
/// resizing), keeping the type.
pub fn resize_labels<T: Voxel>(v: &Volume<T>, size: [usize; 3]) -> Result<Volume<T>> {
    let target = resize_grid(&Grid::of(v), size)?;
    if v.dims().contains(&0) {
        return Err(Error::Param(format!("Resize: empty input {:?}", v.dims())));
    }
    nearest(v, [0; 3], v.dims(), target, false)
}

/// Resizes a label map with the `"nearest-exact"` rule
/// ([`ResizeMode::NearestExact`]), keeping the type.
pub fn resize_labels_exact<T: Voxel>(v: &Volume<T>, size: [usize; 3]) -> Result<Volume<T>> {
    let target = resize_grid(&Grid::of(v), size)?;
    if v.dims().contains(&0) {
        return Err(Error::Param(format!("Resize: empty input {:?}", v.dims())));
    }
    nearest(v, [0; 3], v.dims(), target, true)
}

/// torch nearest (or nearest-exact) resize of the region of `v` starting
/// at `start` with shape `dims`.
fn nearest<T: Voxel>(
    v: &Volume<T>,
    start: [usize; 3],
    dims: [usize; 3],
    target: Grid,
    exact: bool,
) -> Result<Volume<T>> {
    let full = v.dims();
    let idx: [Vec<usize>; 3] = std::array::from_fn(|a| {
        let (n, m) = (dims[a], target.dims[a]);
        // torch computes the scale and the product in float32.
        let scale = n as f32 / m as f32;
        let shift = if exact { 0.5f32 } else { 0.0 };
        (0..m)
            .map(|o| (((o as f32 + shift) * scale).floor() as usize).min(n - 1) + start[a])
            .collect()
    });
    let [mx, my, mz] = target.dims;
    crate::error::check_grid("the resized volume", &target.dims, size_of::<T>())?;
    let mut out = vec![T::default(); mx * my * mz];
    let src = v.data();
    out.par_chunks_mut(mx * my)
        .enumerate()
        .for_each(|(k, plane)| {
            let sk = idx[2][k] * full[0] * full[1];
            for j in 0..my {
                let sj = sk + idx[1][j] * full[0];
                for i in 0..mx {
                    plane[i + j * mx] = src[sj + idx[0][i]];
                }
            }
        });
    Ok(Volume::new(target.dims, target.affine, out)?)
}

/// Adaptive average pooling, one axis at a time (the box average is
/// separable). Sums are in `f64`.
/// Area resize of the region of `v` starting at `start` with shape `dims`.
fn area<T: Voxel>(
    v: &Volume<T>,
    start: [usize; 3],
    dims: [usize; 3],
    target: Grid,
) -> Result<Volume<f32>> {
    let full = v.dims();
    let windows = |n: usize, m: usize| -> Vec<(usize, usize)> {
        (0..m)
            .map(|o| (o * n / m, ((o + 1) * n).div_ceil(m)))
            .collect()
    };
    let wx = windows(dims[0], target.dims[0]);
    let wy = windows(dims[1], target.dims[1]);
    let wz = windows(dims[2], target.dims[2]);
    let [mx, my, mz] = target.dims;
    crate::error::check_grid("the resized volume", &[mx, dims[1], dims[2]], 8)?;
    crate::error::check_grid("the resized volume", &target.dims, 4)?;
    // Pass 1 (x), per input z-plane: (mx, ny) values.
    let src = v.data();
    let mut px = vec![0.0f64; mx * dims[1] * dims[2]];
    px.par_chunks_mut(mx * dims[1])
        .enumerate()
        .for_each(|(k, plane)| {
            for j in 0..dims[1] {
                let row0 = ((start[2] + k) * full[1] + start[1] + j) * full[0] + start[0];
                let row = &src[row0..row0 + dims[0]];
                for (i, &(a, b)) in wx.iter().enumerate() {
                    let s: f64 = row[a..b].iter().map(|x| x.to_f64()).sum();
                    plane[j * mx + i] = s / (b - a) as f64;
                }
            }
        });
    // Pass 2 (y) and 3 (z), per output z-plane.
    let mut out = vec![0.0f32; mx * my * mz];
    out.par_chunks_mut(mx * my)
        .enumerate()
        .for_each(|(ko, plane)| {
            let (za, zb) = wz[ko];
            let mut acc = vec![0.0f64; mx * my];
            for k in za..zb {
                let pk = &px[k * mx * dims[1]..(k + 1) * mx * dims[1]];
                for (jo, &(ya, yb)) in wy.iter().enumerate() {
                    let inv = 1.0 / (yb - ya) as f64;
                    for i in 0..mx {
                        let s: f64 = (ya..yb).map(|j| pk[j * mx + i]).sum();
                        acc[jo * mx + i] += s * inv;
                    }
                }
            }
            let inv_z = 1.0 / (zb - za) as f64;
            for (o, a) in plane.iter_mut().zip(&acc) {
                *o = (a * inv_z) as f32;
            }
        });
    Ok(Volume::new(target.dims, target.affine, out)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn area_averages_blocks_and_keeps_the_outer_edges() {
        let data: Vec<f32> = (0..4).map(|x| x as f32).collect();
        let v = Volume::new(
            [4, 1, 1],
            Affine::from_spacing_origin([1.0, 1.0, 1.0], [0.0; 3]),
            data,
        )
        .unwrap();
        let r = resize(&v, [2, 1, 1], ResizeMode::Area).unwrap();
        assert_eq!(r.data(), &[0.5, 2.5]);
        // Voxels of 2 mm centred at 0.5 and 2.5: the edge stays at -0.5.
        assert_eq!(r.affine().origin(), [0.5, 0.0, 0.0]);
        assert_eq!(r.affine().spacing(), [2.0, 1.0, 1.0]);
        // 3 → 2: windows [0, 2) and [1, 3) overlap, as adaptive pooling does.
        let v3 = Volume::new([3, 1, 1], Affine::identity(), vec![0.0f32, 3.0, 6.0]).unwrap();
        assert_eq!(
            resize(&v3, [2, 1, 1], ResizeMode::Area).unwrap().data(),
            &[1.5, 4.5]
        );
    }

    #[test]
    fn nearest_takes_floor_of_scaled_index() {
        let v = Volume::new([5, 1, 1], Affine::identity(), vec![0u8, 1, 2, 3, 4]).unwrap();
        // scale 5/3: floor(0), floor(1.67) = 1, floor(3.33) = 3.
        assert_eq!(resize_labels(&v, [3, 1, 1]).unwrap().data(), &[0, 1, 3]);
        // scale 5/8: 0, 0, 1, 1, 2, 3, 3, 4.
        assert_eq!(
            resize_labels(&v, [8, 1, 1]).unwrap().data(),
            &[0, 0, 1, 1, 2, 3, 3, 4]
        );
    }

    #[test]
    fn linear_uses_half_pixel_centres() {
        let v = Volume::new([2, 1, 1], Affine::identity(), vec![0.0f32, 1.0]).unwrap();
        // torch: interpolate([0, 1], size=4, mode="linear") = [0, 0.25, 0.75, 1].
        let r = resize(&v, [4, 1, 1], ResizeMode::Linear).unwrap();
        assert_eq!(r.data(), &[0.0, 0.25, 0.75, 1.0]);
    }
}
