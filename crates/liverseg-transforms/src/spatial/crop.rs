//! Cropping and padding: CropForeground, SpatialPad, DivisiblePad and the
//! box crop they share.

use liverseg_io::{Affine, Volume, Voxel};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::grid::Grid;
use crate::{Error, Result};

/// A box of voxel indices `start..end` per axis. Either end may lie outside
/// the volume: cropping then pads with zeros, as MONAI's `crop_pad` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoxRegion {
    /// First index per axis (may be negative).
    pub start: [i64; 3],
    /// One past the last index per axis.
    pub end: [i64; 3],
}

impl BoxRegion {
    /// The shape of the box.
    pub fn dims(&self) -> [usize; 3] {
        std::array::from_fn(|a| (self.end[a] - self.start[a]).max(0) as usize)
    }
}

/// The grid of `grid` cropped (or padded) to `region`: same directions and
/// spacing, origin at the centre of voxel `region.start`. Every crop, the
/// fused crop + resize and the windowed resampling place their output with
/// this.
pub fn crop_grid(grid: &Grid, region: &BoxRegion) -> Grid {
    let a = &grid.affine;
    let s = region.start;
    let origin = a.apply([s[0] as f64, s[1] as f64, s[2] as f64]);
    Grid {
        dims: region.dims(),
        affine: Affine::from_columns([a.column(0), a.column(1), a.column(2)], origin),
    }
}

/// Extracts `region` from `v`, filling the parts outside `v` with zero.
/// The output's voxel 0 is input voxel `region.start`, so the affine's
/// origin moves there and every voxel keeps its world position.
pub fn crop<T: Voxel>(v: &Volume<T>, region: &BoxRegion) -> Result<Volume<T>> {
    let dims = region.dims();
    if dims.contains(&0) {
        return Err(Error::Param(format!(
            "crop: empty box {:?}..{:?} of a {:?} volume",
            region.start,
            region.end,
            v.dims()
        )));
    }
    let src_dims = v.dims();
    let start = region.start;
    let affine = crop_grid(&Grid::of(v), region).affine;
    let n = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::Param(format!("crop: box {dims:?} overflows")))?;
    crate::error::check_grid("the cropped or padded volume", &dims, size_of::<T>())?;
    let mut out = vec![T::default(); n];
    // The overlap along x is one contiguous run per row.
    let x_lo = start[0].max(0);
    let x_hi = region.end[0].min(src_dims[0] as i64);
    let src = v.data();
    out.par_chunks_mut(dims[0] * dims[1])
        .enumerate()
        .for_each(|(k, plane)| {
            let sk = start[2] + k as i64;
            if sk < 0 || sk >= src_dims[2] as i64 || x_lo >= x_hi {
                return;
            }
            for j in 0..dims[1] {
                let sj = start[1] + j as i64;
                if sj < 0 || sj >= src_dims[1] as i64 {
                    continue;
                }
                let row_src = (sk as usize * src_dims[1] + sj as usize) * src_dims[0];
                let dst0 = j * dims[0] + (x_lo - start[0]) as usize;
                let len = (x_hi - x_lo) as usize;
                plane[dst0..dst0 + len]
                    .copy_from_slice(&src[row_src + x_lo as usize..row_src + x_lo as usize + len]);
            }
        });
    Ok(Volume::new(dims, affine, out)?)
}

/// Options of [`foreground_box`], MONAI `CropForeground`'s arguments.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CropForegroundOptions {
    /// Voxels with a value strictly greater than this are foreground
    /// (MONAI's default `select_fn` is `x > 0`).
    pub threshold: f64,
    /// Voxels added on each side of the box, per axis.
    pub margin: [usize; 3],
    /// The box size is rounded up to a multiple of this per axis, growing
    /// equally on both sides (the odd voxel after).
    pub k_divisible: [usize; 3],
    /// When true the box never extends past the volume; when false (MONAI's
    /// default) margin and divisibility may reach outside and the crop pads
    /// with zeros.
    pub allow_smaller: bool,
}

impl Default for CropForegroundOptions {
    fn default() -> Self {
        CropForegroundOptions {
            threshold: 0.0,
            margin: [0; 3],
            k_divisible: [1; 3],
            allow_smaller: false,
        }
    }
}

/// The bounding box of the voxels of `source` above `options.threshold`,
/// grown by the margin and rounded to `k_divisible` as MONAI's
/// `CropForeground.compute_bounding_box` does. `None` when no voxel is
/// foreground (MONAI would return an empty box; the pipelines then keep the
/// whole volume).
pub fn foreground_box<T: Voxel>(
    source: &Volume<T>,
    options: &CropForegroundOptions,
) -> Result<Option<BoxRegion>> {
    if options.k_divisible.contains(&0) {
        return Err(Error::Param(
            "CropForeground: k_divisible must be at least 1".into(),
        ));
    }
    let dims = source.dims();
    let thr = options.threshold;
    let plane = dims[0] * dims[1];
    if plane == 0 || dims[2] == 0 {
        return Ok(None);
    }
    let (lo, hi) = source
        .data()
        .par_chunks(plane)
        .enumerate()
        .map(|(k, p)| {
            let mut lo = [usize::MAX; 3];
            let mut hi = [0usize; 3];
            for j in 0..dims[1] {
                let row = &p[j * dims[0]..(j + 1) * dims[0]];
                let first = row.iter().position(|v| v.to_f64() > thr);
                if let Some(f) = first {
                    let last = row.iter().rposition(|v| v.to_f64() > thr).unwrap_or(f);
                    lo = [lo[0].min(f), lo[1].min(j), lo[2].min(k)];
                    hi = [hi[0].max(last), hi[1].max(j), hi[2].max(k)];
                }
            }
            (lo, hi)
        })
        .reduce(
            || ([usize::MAX; 3], [0; 3]),
            |a, b| {
                (
                    std::array::from_fn(|i| a.0[i].min(b.0[i])),
                    std::array::from_fn(|i| a.1[i].max(b.1[i])),
                )
            },
        );
    if lo[0] == usize::MAX {
        return Ok(None);
    }
    let mut start = [0i64; 3];
    let mut end = [0i64; 3];
    for a in 0..3 {
        let mut s = lo[a] as i64 - options.margin[a] as i64;
        let mut e = hi[a] as i64 + 1 + options.margin[a] as i64;
        if options.allow_smaller {
            s = s.max(0);
            e = e.min(dims[a] as i64);
        }
        let size = e - s;
        let k = options.k_divisible[a] as i64;
        let divisible = (size + k - 1) / k * k;
        s -= (divisible - size).div_euclid(2);
        e = s + divisible;
        start[a] = s;
        end[a] = e;
    }
    Ok(Some(BoxRegion { start, end }))
}

/// How [`spatial_pad`] and [`divisible_pad`] split the padding.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PadMethod {
    /// Half before, half after, the odd voxel after (MONAI's default).
    #[default]
    Symmetric,
    /// All padding after the last voxel.
    End,
}

/// The box that pads `dims` up to at least `size` per axis (MONAI
/// `SpatialPad`; an axis already as large is left alone; a size of 0 keeps
/// the axis).
pub fn pad_box(dims: [usize; 3], size: [usize; 3], method: PadMethod) -> BoxRegion {
    let mut start = [0i64; 3];
    let mut end = [0i64; 3];
    for a in 0..3 {
        let extra = size[a].saturating_sub(dims[a]) as i64;
        let before = match method {
            PadMethod::Symmetric => extra / 2,
            PadMethod::End => 0,
        };
        start[a] = -before;
        end[a] = dims[a] as i64 + extra - before;
    }
    BoxRegion { start, end }
}

/// MONAI `SpatialPad(spatial_size, method)` with zeros.
pub fn spatial_pad<T: Voxel>(
    v: &Volume<T>,
    size: [usize; 3],
    method: PadMethod,
) -> Result<Volume<T>> {
    crop(v, &pad_box(v.dims(), size, method))
}

/// MONAI `DivisiblePad(k, method)` with zeros: pads every axis up to the
/// next multiple of `k`.
pub fn divisible_pad<T: Voxel>(
    v: &Volume<T>,
    k: [usize; 3],
    method: PadMethod,
) -> Result<Volume<T>> {
    if k.contains(&0) {
        return Err(Error::Param("DivisiblePad: k must be at least 1".into()));
    }
    let dims = v.dims();
    let size = std::array::from_fn(|a| dims[a].div_ceil(k[a]) * k[a]);
    spatial_pad(v, size, method)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_with_margin_and_divisibility_matches_monai_arithmetic() {
        let mut v = Volume::filled([10, 10, 10], Affine::identity(), 0.0f32).unwrap();
        for (i, j, k) in [(3, 4, 5), (5, 6, 5)] {
            let o = v.index(i, j, k);
            v.data_mut()[o] = 1.0;
        }
        let b = foreground_box(&v, &CropForegroundOptions::default())
            .unwrap()
            .unwrap();
        assert_eq!(
            b,
            BoxRegion {
                start: [3, 4, 5],
                end: [6, 7, 6]
            }
        );
        let opts = CropForegroundOptions {
            margin: [1, 0, 0],
            k_divisible: [4, 4, 4],
            ..Default::default()
        };
        // x: 2..7 (5) → 8: start 2 - 1 = 1; y: 4..7 (3) → 4: start 4 - 0;
        // z: 5..6 (1) → 4: start 5 - 1 = 4.
        let b = foreground_box(&v, &opts).unwrap().unwrap();
        assert_eq!(
            b,
            BoxRegion {
                start: [1, 4, 4],
                end: [9, 8, 8]
            }
        );
        assert!(
            foreground_box(
                &Volume::filled([2, 2, 2], Affine::identity(), 0u8).unwrap(),
                &opts
            )
            .unwrap()
            .is_none()
        );
    }

    #[test]
    fn crop_outside_pads_with_zeros_and_moves_the_origin() {
        let v = Volume::new(
            [2, 2, 1],
            Affine::from_spacing_origin([2.0, 3.0, 4.0], [1.0, 1.0, 1.0]),
            vec![1u8, 2, 3, 4],
        )
        .unwrap();
        let c = crop(
            &v,
            &BoxRegion {
                start: [-1, 0, 0],
                end: [2, 2, 2],
            },
        )
        .unwrap();
        assert_eq!(c.dims(), [3, 2, 2]);
        assert_eq!(c.affine().origin(), [-1.0, 1.0, 1.0]);
        assert_eq!(&c.data()[..6], &[0, 1, 2, 0, 3, 4]);
        assert!(c.data()[6..].iter().all(|&x| x == 0));
    }

    #[test]
    fn symmetric_padding_puts_the_odd_voxel_after() {
        let v = Volume::filled([3, 4, 5], Affine::identity(), 1i16).unwrap();
        let p = divisible_pad(&v, [4, 4, 4], PadMethod::Symmetric).unwrap();
        assert_eq!(p.dims(), [4, 4, 8]);
        assert_eq!(p.affine().origin(), [0.0, 0.0, -1.0]);
        assert_eq!(p.get(3, 0, 0), Some(0));
        assert_eq!(p.get(0, 0, 1), Some(1));
        assert_eq!(p.get(0, 0, 6), Some(0));
    }
}
