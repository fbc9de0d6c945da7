//! Resampling a volume onto another grid through world coordinates.
//!
//! Every spatial transform that interpolates (Spacing, RandAffine, RandZoom,
//! inversion onto the original CT) comes down to one question per output
//! voxel: where is its centre in the input's voxel coordinates? For a target
//! grid `(dims, A_out)` and a source with affine `A_in` that is the affine
//! map `M = A_in⁻¹ · A_out`, the same matrix MONAI's `SpatialResample`
//! hands to `grid_sample` (with `align_corners=False` its normalisation
//! cancels out, so voxel centres map to voxel centres).
//!
//! Interpolation follows `torch.nn.functional.grid_sample`: trilinear
//! weights, or the nearest voxel with ties rounded half to even
//! (`nearbyint`); `Border` padding clamps the coordinate into the volume
//! first, `Zeros` padding gives corners outside the volume weight zero.
//! Arithmetic is `f64`, as MONAI's Spacing computes in float64.
//!
//! Work is split into output `z` slabs with rayon; every voxel is computed
//! independently, so the result does not depend on the thread count.

use liverseg_io::{Affine, Volume, Voxel};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::crop::BoxRegion;
pub use super::grid::Grid;
use crate::{Error, Result};

/// How values between voxel centres are computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interpolation {
    /// The value of the nearest voxel (labels). MONAI's `"nearest"`.
    Nearest,
    /// Trilinear interpolation (images, probabilities). MONAI's
    /// `"bilinear"`, which is trilinear for 3-D data.
    Linear,
}

/// What a sample outside the source volume takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Padding {
    /// The value at the nearest border voxel (MONAI Spacing's default).
    Border,
    /// Zero (background).
    Zeros,
    /// Each voxel fills its cell: a sample inside the outer faces of the
    /// edge voxels takes the edge value (as `Border`), one beyond them is
    /// zero. Inversion uses this, so a point of the original grid that lies
    /// within half a voxel of the preprocessed grid's last centre (Spacing's
    /// rounded shape can end there) keeps its label, while regions that
    /// were cropped away become background.
    Extent,
}

/// Resamples `src` onto `target`, returning `f32` values (an image or a
/// probability map).
pub fn resample<T: Voxel>(
    src: &Volume<T>,
    target: &Grid,
    interpolation: Interpolation,
    padding: Padding,
) -> Result<Volume<f32>> {
    resample_map(src, target, interpolation, padding, |v| v as f32)
}

/// Resamples a label map onto `target` with nearest-neighbour
/// interpolation, so no new label value can appear. Samples outside the
/// source take the border label (`Border`) or 0 (`Zeros`).
pub fn resample_labels<T: Voxel>(
    src: &Volume<T>,
    target: &Grid,
    padding: Padding,
) -> Result<Volume<T>> {
    resample_map(src, target, Interpolation::Nearest, padding, T::from_f64)
}

/// [`resample`] with the output value computed by `post` from the
/// interpolated `f64`, so an intensity transform can be fused into the same
/// pass (Spacing followed by ScaleIntensityRange reads and writes each voxel
/// once).
pub fn resample_map<T: Voxel, U: Voxel>(
    src: &Volume<T>,
    target: &Grid,
    interpolation: Interpolation,
    padding: Padding,
    post: impl Fn(f64) -> U + Sync,
) -> Result<Volume<U>> {
    let map = index_map(src, target)?;
    resample_index_map(src, target, &map, interpolation, padding, post)
}

/// Resamples several channels that share one grid onto `target` and
/// reduces each output voxel's values (channel order, as `f32`, each the
/// value [`resample`] would give) to one value with `reduce`.
///
/// The work runs one output `z` plane at a time, so only a plane per
/// channel and thread is ever held: mapping class probabilities back onto a
/// tall CT and taking the decision costs the output volume and nothing
/// full-size in floating point.
pub fn resample_reduce<T: Voxel, U: Voxel>(
    channels: &[&Volume<T>],
    target: &Grid,
    interpolation: Interpolation,
    padding: Padding,
    reduce: impl Fn(&[f32]) -> U + Sync,
) -> Result<Volume<U>> {
    let Some(first) = channels.first() else {
        return Err(Error::Param("resample_reduce: no channels".into()));
    };
    let grid = Grid::of(first);
    if let Some(other) = channels.iter().find(|c| !grid.same_as(&Grid::of(c), 0.0)) {
        return Err(Error::Grid(format!(
            "resample_reduce: channels on different grids ({:?} and {:?})",
            grid.dims,
            other.dims()
        )));
    }
    if first.is_empty() {
        return Err(Error::Grid(format!(
            "cannot resample an empty volume of shape {:?}",
            first.dims()
        )));
    }
    crate::error::check_grid("the resampled volume", &target.dims, size_of::<U>())?;
    let map = index_map(first, target)?;
    let [nx, ny, nz] = target.dims;
    let slab = nx * ny;
    let mut out = vec![U::default(); slab * nz];
    if slab > 0 {
        let m = &map.0;
        let separable = SeparableMap::new(m, first.dims(), target.dims, interpolation, padding);
        let sampler = Sampler::new(first.dims(), interpolation, padding);
        let n = channels.len();
        out.par_chunks_mut(slab).enumerate().for_each_init(
            || (vec![0.0f32; slab * n], vec![0.0f32; n]),
            |(planes, values), (k, plane)| {
                for (c, buf) in channels.iter().zip(planes.chunks_mut(slab)) {
                    match &separable {
                        Some(sep) => sep.fill_plane(c.data(), k, buf, &|v| v as f32),
                        None => {
                            for j in 0..ny {
                                for i in 0..nx {
                                    let g = [i as f64, j as f64, k as f64];
                                    let p = std::array::from_fn(|a| {
                                        m[a][0] * g[0] + m[a][1] * g[1] + m[a][2] * g[2] + m[a][3]
                                    });
                                    buf[i + nx * j] = sampler.sample(c.data(), p) as f32;
                                }
                            }
                        }
                    }
                }
                for (o, v) in plane.iter_mut().enumerate() {
                    for (c, value) in values.iter_mut().enumerate() {
                        *value = planes[c * slab + o];
                    }
                    *v = reduce(values);
                }
            },
        );
    }
    Ok(Volume::new(target.dims, target.affine, out)?)
}

/// `A_in⁻¹ · A_out`: output voxel index → source voxel coordinates.
fn index_map<T: Voxel>(src: &Volume<T>, target: &Grid) -> Result<Affine> {
    let inv = src
        .affine()
        .inverse()
        .ok_or_else(|| Error::Grid(format!("source affine is singular: {:?}", src.affine())))?;
    Ok(inv.matmul(&target.affine))
}

/// Resamples with an explicit index map: output voxel `(i, j, k)` samples
/// the source at `map · (i, j, k, 1)` (source voxel coordinates). The
/// output takes `target`'s affine. Random affine augmentation uses this with
/// a map that is not `A_in⁻¹ · A_out`.
pub fn resample_index_map<T: Voxel, U: Voxel>(
    src: &Volume<T>,
    target: &Grid,
    map: &Affine,
    interpolation: Interpolation,
    padding: Padding,
    post: impl Fn(f64) -> U + Sync,
) -> Result<Volume<U>> {
    let data = resample_core(
        src,
        target.dims,
        map,
        ([0, 1, 2], [false; 3]),
        None,
        interpolation,
        padding,
        post,
    )?;
    Ok(Volume::new(target.dims, target.affine, data)?)
}

/// Resamples onto `target` and returns the result reordered by
/// [`permute_flip`](super::orient::permute_flip)`(perm, flip)`, in one pass.
///
/// The values are bit-identical to resampling and then reordering (the
/// sample positions are computed on `target`'s own indices), which is how
/// a pipeline runs MONAI's Spacing followed by Orientation without the
/// intermediate volume.
pub fn resample_reordered<T: Voxel, U: Voxel>(
    src: &Volume<T>,
    target: &Grid,
    perm: [usize; 3],
    flip: [bool; 3],
    interpolation: Interpolation,
    padding: Padding,
    post: impl Fn(f64) -> U + Sync,
) -> Result<Volume<U>> {
    let map = index_map(src, target)?;
    let (dims, affine) = super::orient::permute_flip_grid(target, perm, flip)?;
    let data = resample_core(
        src,
        target.dims,
        &map,
        (perm, flip),
        None,
        interpolation,
        padding,
        post,
    )?;
    Ok(Volume::new(dims, affine, data)?)
}

/// [`resample_reordered`] restricted to the box `window` of the reordered
/// grid (which must lie inside it): the same values as resampling the whole
/// grid and then [`crop`](super::crop::crop)ping, without computing the
/// rest. A pipeline uses it for the label once CropForeground's box is
/// known from the image.
#[allow(clippy::too_many_arguments)]
pub fn resample_reordered_window<T: Voxel, U: Voxel>(
    src: &Volume<T>,
    target: &Grid,
    perm: [usize; 3],
    flip: [bool; 3],
    window: &BoxRegion,
    interpolation: Interpolation,
    padding: Padding,
    post: impl Fn(f64) -> U + Sync,
) -> Result<Volume<U>> {
    let map = index_map(src, target)?;
    let (dims, affine) = super::orient::permute_flip_grid(target, perm, flip)?;
    let data = resample_core(
        src,
        target.dims,
        &map,
        (perm, flip),
        Some(window),
        interpolation,
        padding,
        post,
    )?;
    let out = super::crop::crop_grid(&Grid { dims, affine }, window);
    Ok(Volume::new(out.dims, out.affine, data)?)
}

/// Samples `src` at `map · g` for every index `g` of a grid of shape
/// `grid_dims`, writing the results in the order of the reordered grid:
/// output axis `a` runs along grid axis `perm[a]`, reversed when `flip[a]`.
#[allow(clippy::too_many_arguments)]
fn resample_core<T: Voxel, U: Voxel>(
    src: &Volume<T>,
    grid_dims: [usize; 3],
    map: &Affine,
    (perm, flip): ([usize; 3], [bool; 3]),
    window: Option<&BoxRegion>,
    interpolation: Interpolation,
    padding: Padding,
    post: impl Fn(f64) -> U + Sync,
) -> Result<Vec<U>> {
    if src.is_empty() {
        return Err(Error::Grid(format!(
            "cannot resample an empty volume of shape {:?}",
            src.dims()
        )));
    }
    let full_dims = [grid_dims[perm[0]], grid_dims[perm[1]], grid_dims[perm[2]]];
    // The part of the reordered grid to produce.
    let (start, out_dims) = match window {
        Some(w) => {
            let inside = (0..3).all(|a| {
                w.start[a] >= 0 && w.end[a] <= full_dims[a] as i64 && w.start[a] < w.end[a]
            });
            if !inside {
                return Err(Error::Param(format!(
                    "resampling window {:?}..{:?} is not inside the grid {full_dims:?}",
                    w.start, w.end
                )));
            }
            (w.start.map(|v| v as usize), w.dims())
        }
        None => ([0; 3], full_dims),
    };
    let n = out_dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| Error::Param(format!("target shape {out_dims:?} overflows")))?;
    crate::error::check_grid("the resampled volume", &out_dims, size_of::<U>())?;
    let mut out = vec![U::default(); n];
    // For output axis a and output index o: the grid index along perm[a].
    let grid_index: [Vec<usize>; 3] = std::array::from_fn(|a| {
        let len = full_dims[a];
        (start[a]..start[a] + out_dims[a])
            .map(|o| if flip[a] { len - 1 - o } else { o })
            .collect()
    });
    // For grid axis d: the output axis that runs along it.
    let mut out_axis_of = [0usize; 3];
    for a in 0..3 {
        out_axis_of[perm[a]] = a;
    }
    let m = &map.0;
    let [nx, ny, _] = out_dims;
    let slab = nx * ny;
    if slab == 0 {
        return Ok(out);
    }
    match SeparableMap::new(m, src.dims(), grid_dims, interpolation, padding) {
        Some(sep) => {
            // Re-index every tap table by output index instead of grid index.
            let sep = sep.reordered(&out_axis_of, &grid_index);
            out.par_chunks_mut(slab)
                .enumerate()
                .for_each(|(k, plane)| sep.fill_plane(src.data(), k, plane, &post));
        }
        None => {
            let sampler = Sampler::new(src.dims(), interpolation, padding);
            out.par_chunks_mut(slab).enumerate().for_each(|(k, plane)| {
                for j in 0..ny {
                    for i in 0..nx {
                        let o = [i, j, k];
                        let mut g = [0.0; 3];
                        for a in 0..3 {
                            g[perm[a]] = grid_index[a][o[a]] as f64;
                        }
                        let c = [
                            m[0][0] * g[0] + m[0][1] * g[1] + m[0][2] * g[2] + m[0][3],
                            m[1][0] * g[0] + m[1][1] * g[1] + m[1][2] * g[2] + m[1][3],
                            m[2][0] * g[0] + m[2][1] * g[1] + m[2][2] * g[2] + m[2][3],
                        ];
                        plane[i + nx * j] = post(sampler.sample(src.data(), c));
                    }
                }
            });
        }
    }
    Ok(out)
}

/// Per-voxel sampling for general (rotated, sheared) index maps.
struct Sampler {
    dims: [usize; 3],
    strides: [usize; 3],
    interpolation: Interpolation,
    padding: Padding,
}

impl Sampler {
    fn new(dims: [usize; 3], interpolation: Interpolation, padding: Padding) -> Self {
        Sampler {
            dims,
            strides: [1, dims[0], dims[0] * dims[1]],
            interpolation,
            padding,
        }
    }

    fn sample<T: Voxel>(&self, data: &[T], c: [f64; 3]) -> f64 {
        let mut taps = [Tap::default(); 3];
        for a in 0..3 {
            taps[a] = Tap::new(
                c[a],
                self.dims[a],
                self.strides[a],
                self.interpolation,
                self.padding,
            );
        }
        taps_value(data, &taps)
    }
}

/// Tolerance, in voxels, of [`Padding::Extent`]'s faces.
const EXTENT_EPS: f64 = 1e-6;

/// The two neighbours along one axis and their weights. An out-of-range
/// neighbour under zero padding has weight 0 (its offset is kept in range
/// so the read is always valid).
#[derive(Clone, Copy, Debug, Default)]
struct Tap {
    offsets: [usize; 2],
    weights: [f64; 2],
}

impl Tap {
    fn new(x: f64, n: usize, stride: usize, interpolation: Interpolation, padding: Padding) -> Tap {
        let last = (n - 1) as f64;
        if !x.is_finite() {
            return Tap::default();
        }
        let x = match padding {
            Padding::Border => x.clamp(0.0, last),
            Padding::Zeros => x,
            // The faces are inclusive, with a margin for the rounding of
            // world coordinates: a centre exactly on a face (Spacing's
            // rounded shape can put one there) belongs to the grid.
            Padding::Extent if !(-0.5 - EXTENT_EPS..=last + 0.5 + EXTENT_EPS).contains(&x) => {
                return Tap::default();
            }
            Padding::Extent => x.clamp(0.0, last),
        };
        match interpolation {
            Interpolation::Nearest => {
                let r = x.round_ties_even();
                if (0.0..=last).contains(&r) {
                    let o = r as usize * stride;
                    Tap {
                        offsets: [o, o],
                        weights: [1.0, 0.0],
                    }
                } else {
                    Tap::default()
                }
            }
            Interpolation::Linear => {
                let f = x.floor();
                let w1 = x - f;
                let w0 = 1.0 - w1;
                let mut tap = Tap::default();
                for (s, (pos, w)) in [(f, w0), (f + 1.0, w1)].into_iter().enumerate() {
                    if (0.0..=last).contains(&pos) {
                        tap.offsets[s] = pos as usize * stride;
                        tap.weights[s] = w;
                    }
                }
                tap
            }
        }
    }
}

/// The trilinear (or nearest) combination of the eight corner values.
#[inline]
fn taps_value<T: Voxel>(data: &[T], t: &[Tap; 3]) -> f64 {
    let mut acc = 0.0;
    for c in 0..2 {
        let wz = t[2].weights[c];
        if wz == 0.0 {
            continue;
        }
        for b in 0..2 {
            let wyz = t[1].weights[b] * wz;
            if wyz == 0.0 {
                continue;
            }
            let base = t[2].offsets[c] + t[1].offsets[b];
            let v0 = data[base + t[0].offsets[0]].to_f64();
            let v1 = data[base + t[0].offsets[1]].to_f64();
            acc += wyz * (t[0].weights[0] * v0 + t[0].weights[1] * v1);
        }
    }
    acc
}

/// The fast path for maps where each source axis follows exactly one output
/// axis (scaling, flips, axis permutations, translations: everything
/// Spacing, Orientation, zoom and crop produce on a non-sheared grid). The
/// taps along each source axis are then computed once per output index
/// instead of once per voxel.
struct SeparableMap {
    /// For source axis `a`: which output axis drives it.
    driver: [usize; 3],
    /// For source axis `a`: its taps, indexed by the driving output index.
    taps: [Vec<Tap>; 3],
    nx: usize,
    ny: usize,
    /// Nearest-neighbour taps: one voxel each, weight 1 (or 0 outside).
    nearest: bool,
}

impl SeparableMap {
    fn new(
        m: &[[f64; 4]; 4],
        src_dims: [usize; 3],
        out_dims: [usize; 3],
        interpolation: Interpolation,
        padding: Padding,
    ) -> Option<SeparableMap> {
        let strides = [1, src_dims[0], src_dims[0] * src_dims[1]];
        let mut driver = [usize::MAX; 3];
        for a in 0..3 {
            let nonzero: Vec<usize> = (0..3).filter(|&c| m[a][c] != 0.0).collect();
            if nonzero.len() != 1 || driver.contains(&nonzero[0]) {
                return None;
            }
            driver[a] = nonzero[0];
        }
        let taps = std::array::from_fn(|a| {
            let c = driver[a];
            (0..out_dims[c])
                .map(|o| {
                    let x = m[a][c] * o as f64 + m[a][3];
                    Tap::new(x, src_dims[a], strides[a], interpolation, padding)
                })
                .collect()
        });
        Some(SeparableMap {
            driver,
            taps,
            nx: out_dims[0],
            ny: out_dims[1],
            nearest: interpolation == Interpolation::Nearest,
        })
    }

    /// The same taps looked up by output index of a reordered grid: source
    /// axis `a` is now driven by output axis `out_axis_of[driver[a]]`, and
    /// output index `o` along it is grid index `grid_index[..][o]`.
    fn reordered(self, out_axis_of: &[usize; 3], grid_index: &[Vec<usize>; 3]) -> SeparableMap {
        let driver: [usize; 3] = std::array::from_fn(|a| out_axis_of[self.driver[a]]);
        let taps = std::array::from_fn(|a| {
            grid_index[driver[a]]
                .iter()
                .map(|&g| self.taps[a][g])
                .collect()
        });
        SeparableMap {
            driver,
            taps,
            nx: grid_index[0].len(),
            ny: grid_index[1].len(),
            nearest: self.nearest,
        }
    }

    /// Fills output plane `k`. Along a row (fixed `j`, `k`) the taps of
    /// the two source axes not driven by `i` are fixed, so their (up to)
    /// four corner offsets and weight products are formed once per row and
    /// the inner loop only gathers along the third axis.
    fn fill_plane<T: Voxel, U: Voxel>(
        &self,
        data: &[T],
        k: usize,
        plane: &mut [U],
        post: &impl Fn(f64) -> U,
    ) {
        let ai = (0..3).find(|&a| self.driver[a] == 0).unwrap_or(0);
        let (aj, ak) = match ai {
            0 => (1, 2),
            1 => (0, 2),
            _ => (0, 1),
        };
        let ti = &self.taps[ai];
        let zero = post(0.0);
        for j in 0..self.ny {
            let out = [0, j, k];
            let tj = self.taps[aj][out[self.driver[aj]]];
            let tk = self.taps[ak][out[self.driver[ak]]];
            let mut bases = [0usize; 4];
            let mut weights = [0.0f64; 4];
            let mut n = 0;
            for c in 0..2 {
                for b in 0..2 {
                    let w = tj.weights[b] * tk.weights[c];
                    if w != 0.0 {
                        bases[n] = tj.offsets[b] + tk.offsets[c];
                        weights[n] = w;
                        n += 1;
                    }
                }
            }
            let row = &mut plane[j * self.nx..(j + 1) * self.nx];
            match (n, self.nearest) {
                (0, _) => row.fill(zero),
                (_, true) => {
                    // Nearest: one corner, weights 1 or 0 (outside, zeros).
                    let base = bases[0];
                    for (o, t) in row.iter_mut().zip(ti) {
                        *o = if t.weights[0] == 0.0 {
                            zero
                        } else {
                            post(data[base + t.offsets[0]].to_f64())
                        };
                    }
                }
                (1, false) => {
                    let (base, w) = (bases[0], weights[0]);
                    for (o, t) in row.iter_mut().zip(ti) {
                        let v0 = data[base + t.offsets[0]].to_f64();
                        let v1 = data[base + t.offsets[1]].to_f64();
                        *o = post(w * (t.weights[0] * v0 + t.weights[1] * v1));
                    }
                }
                (_, false) => {
                    for (o, t) in row.iter_mut().zip(ti) {
                        let mut acc = 0.0;
                        for c in 0..n {
                            let v0 = data[bases[c] + t.offsets[0]].to_f64();
                            let v1 = data[bases[c] + t.offsets[1]].to_f64();
                            acc += weights[c] * (t.weights[0] * v0 + t.weights[1] * v1);
                        }
                        *o = post(acc);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(dims: [usize; 3], affine: Affine) -> Volume<f32> {
        let mut data = Vec::new();
        for k in 0..dims[2] {
            for j in 0..dims[1] {
                for i in 0..dims[0] {
                    data.push((i + 10 * j + 100 * k) as f32);
                }
            }
        }
        Volume::new(dims, affine, data).unwrap()
    }

    #[test]
    fn identity_grid_reproduces_the_volume() {
        let v = ramp(
            [4, 3, 2],
            Affine::from_spacing_origin([2.0, 1.0, 3.0], [5.0, -1.0, 2.0]),
        );
        let out = resample(&v, &Grid::of(&v), Interpolation::Linear, Padding::Border).unwrap();
        assert_eq!(out.data(), v.data());
    }

    #[test]
    fn linear_interpolates_a_ramp_exactly_and_clamps_at_the_border() {
        let v = ramp([4, 3, 2], Affine::identity());
        // Half-voxel shift along i, and one voxel past the end along k.
        let target = Grid {
            dims: [3, 3, 3],
            affine: Affine::from_spacing_origin([1.0, 1.0, 1.0], [0.5, 0.0, 0.0]),
        };
        let out = resample(&v, &target, Interpolation::Linear, Padding::Border).unwrap();
        assert_eq!(out.get(0, 0, 0), Some(0.5));
        assert_eq!(out.get(2, 1, 1), Some(2.5 + 10.0 + 100.0));
        // k = 2 is outside (source has k in 0..=1): border clamps to k = 1.
        assert_eq!(out.get(1, 2, 2), Some(1.5 + 20.0 + 100.0));
        let zeros = resample(&v, &target, Interpolation::Linear, Padding::Zeros).unwrap();
        assert_eq!(zeros.get(1, 2, 2), Some(0.0));
        // Past the last i-centre by half a voxel: half the weight is outside.
        let t2 = Grid {
            dims: [1, 1, 1],
            affine: Affine::from_spacing_origin([1.0, 1.0, 1.0], [3.5, 0.0, 0.0]),
        };
        let z = resample(&v, &t2, Interpolation::Linear, Padding::Zeros).unwrap();
        assert_eq!(z.data(), &[1.5]);
    }

    #[test]
    fn nearest_rounds_half_to_even_like_grid_sample() {
        let v = ramp([4, 1, 1], Affine::identity());
        let target = Grid {
            dims: [4, 1, 1],
            affine: Affine::from_spacing_origin([1.0, 1.0, 1.0], [0.5, 0.0, 0.0]),
        };
        let out = resample(&v, &target, Interpolation::Nearest, Padding::Border).unwrap();
        // 0.5 → 0, 1.5 → 2, 2.5 → 2, 3.5 → clamped to 3.
        assert_eq!(out.data(), &[0.0, 2.0, 2.0, 3.0]);
    }

    #[test]
    fn general_and_separable_paths_agree() {
        let v = ramp(
            [5, 4, 3],
            Affine::from_spacing_origin([1.5, 1.0, 2.0], [0.0, 0.0, 0.0]),
        );
        let target = Grid {
            dims: [6, 5, 4],
            affine: Affine::from_spacing_origin([1.1, 0.9, 1.3], [0.2, -0.3, 0.4]),
        };
        let inv = v.affine().inverse().unwrap().matmul(&target.affine);
        // A tiny off-diagonal term forces the general path.
        let mut skew = inv;
        skew.0[0][1] = 1e-300;
        for interp in [Interpolation::Linear, Interpolation::Nearest] {
            for pad in [Padding::Border, Padding::Zeros] {
                let a = resample_index_map(&v, &target, &inv, interp, pad, |x| x as f32).unwrap();
                let b = resample_index_map(&v, &target, &skew, interp, pad, |x| x as f32).unwrap();
                assert_eq!(a.data(), b.data(), "{interp:?} {pad:?}");
            }
        }
    }

    #[test]
    fn reduce_matches_resampling_each_channel() {
        let a = ramp(
            [5, 4, 3],
            Affine::from_spacing_origin([1.5, 1.0, 2.0], [0.0, 0.0, 0.0]),
        );
        let b = a.map(|v| 500.0 - 2.0 * v);
        let target = Grid {
            dims: [7, 6, 5],
            affine: Affine::from_spacing_origin([1.1, 0.9, 1.3], [-0.7, -0.3, 0.4]),
        };
        // A rotation about z sends the general (per-voxel) path through it.
        let (s, c) = 0.3f64.sin_cos();
        let mut rotated = target;
        rotated.affine.0[0][0] = 1.1 * c;
        rotated.affine.0[0][1] = -0.9 * s;
        rotated.affine.0[1][0] = 1.1 * s;
        rotated.affine.0[1][1] = 0.9 * c;
        for t in [target, rotated] {
            for pad in [Padding::Zeros, Padding::Extent] {
                let ra = resample(&a, &t, Interpolation::Linear, pad).unwrap();
                let rb = resample(&b, &t, Interpolation::Linear, pad).unwrap();
                let diff =
                    resample_reduce(&[&a, &b], &t, Interpolation::Linear, pad, |v| v[0] - v[1])
                        .unwrap();
                assert_eq!(diff.affine(), &t.affine);
                let want: Vec<f32> = ra
                    .data()
                    .iter()
                    .zip(rb.data())
                    .map(|(x, y)| x - y)
                    .collect();
                assert_eq!(diff.data(), &want[..], "{pad:?}");
                assert!(diff.data().iter().any(|&v| v != 0.0));
            }
        }
        let other = ramp([5, 4, 2], *a.affine());
        assert!(
            resample_reduce(
                &[&a, &other],
                &target,
                Interpolation::Linear,
                Padding::Zeros,
                |v| v[0]
            )
            .is_err()
        );
    }

    #[test]
    fn labels_keep_their_values() {
        let mut v = Volume::filled([6, 6, 6], Affine::identity(), 0u8).unwrap();
        for k in 2..4 {
            for j in 1..5 {
                for i in 0..3 {
                    let o = v.index(i, j, k);
                    v.data_mut()[o] = if i == 0 { 7 } else { 2 };
                }
            }
        }
        let target = Grid {
            dims: [9, 9, 9],
            affine: Affine::from_spacing_origin([0.7, 0.7, 0.7], [-0.3, 0.1, 0.2]),
        };
        let out = resample_labels(&v, &target, Padding::Zeros).unwrap();
        assert!(out.data().iter().all(|&x| [0, 2, 7].contains(&x)));
        assert!(out.data().contains(&7) && out.data().contains(&2));
    }
}
