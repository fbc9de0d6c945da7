//! Random geometric transforms: RandFlip, RandRotate90, RandAffine and
//! RandZoom.

use liverseg_io::{Affine, Volume, Voxel};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::draw::{fires, scale_word, uniform, word};
use crate::spatial::grid::Grid;
use crate::spatial::orient::{flip, rotate90};
use crate::spatial::resample::{Interpolation, Padding, resample_index_map};
use crate::spatial::resize::{ResizeMode, resize, resize_labels};
use crate::{Error, Pair, Result};

/// MONAI `RandFlip(prob, spatial_axis)`: one draw decides, and all listed
/// axes flip together. One word.
pub(crate) fn rand_flip(
    pair: Pair,
    prob: f64,
    axes: &[usize],
    rng: &mut ChaCha8Rng,
) -> Result<Pair> {
    if !fires(rng, prob) {
        return Ok(pair);
    }
    let mut mask = [false; 3];
    for &a in axes {
        mask[a] = true;
    }
    Ok(Pair {
        channels: Vec::new(),
        image: flip(&pair.image, mask)?,
        label: pair.label.as_ref().map(|l| flip(l, mask)).transpose()?,
    })
}

/// MONAI `RandRotate90(prob, max_k, spatial_axes)`: `k` quarter turns with
/// `k` uniform in `1..=max_k`. Two words (fire, `k`).
pub(crate) fn rand_rotate90(
    pair: Pair,
    prob: f64,
    max_k: usize,
    axes: [usize; 2],
    rng: &mut ChaCha8Rng,
) -> Result<Pair> {
    let fire = fires(rng, prob);
    let k = 1 + scale_word(word(rng), max_k);
    if !fire {
        return Ok(pair);
    }
    // k is at most max_k, which validation keeps far below i32::MAX; the
    // rotation only needs k modulo 4.
    let k = (k % 4) as i32;
    let axes = (axes[0], axes[1]);
    Ok(Pair {
        channels: Vec::new(),
        image: rotate90(&pair.image, k, axes)?,
        label: pair
            .label
            .as_ref()
            .map(|l| rotate90(l, k, axes))
            .transpose()?,
    })
}

/// The parameters MONAI's `RandAffineGrid.randomize` draws, in its order.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct AffineParams {
    /// Radians about axes 0, 1, 2 (intrinsic `"XYZ"`).
    pub rotate: [f64; 3],
    /// The first three of MONAI's six shear coefficients.
    pub shear: [f64; 3],
    /// Voxels.
    pub translate: [f64; 3],
    /// Scale factors (1 + the drawn offset).
    pub scale: [f64; 3],
}

fn matmul3(a: &[[f64; 3]; 3], b: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    std::array::from_fn(|r| std::array::from_fn(|c| (0..3).map(|k| a[r][k] * b[k][c]).sum()))
}

/// The index map of MONAI's `RandAffine` with `spatial_size=None`: output
/// voxel `p` samples the input at `c + R · Sh · (S · (p − c) + t)`, where
/// `c = (n − 1) / 2` is the volume centre and `R · Sh · T · S` is MONAI's
/// composition (`create_rotate @ create_shear @ create_translate @
/// create_scale`) acting on grid coordinates centred on the volume.
pub(crate) fn affine_map(p: &AffineParams, dims: [usize; 3]) -> Affine {
    let (s0, c0) = p.rotate[0].sin_cos();
    let (s1, c1) = p.rotate[1].sin_cos();
    let (s2, c2) = p.rotate[2].sin_cos();
    let rx = [[1.0, 0.0, 0.0], [0.0, c0, -s0], [0.0, s0, c0]];
    let ry = [[c1, 0.0, s1], [0.0, 1.0, 0.0], [-s1, 0.0, c1]];
    let rz = [[c2, -s2, 0.0], [s2, c2, 0.0], [0.0, 0.0, 1.0]];
    // Intrinsic X, then Y, then Z: post-multiplied.
    let rot = matmul3(&matmul3(&rx, &ry), &rz);
    // MONAI composes single-coefficient shears, each pre-multiplied, in the
    // order (0,1), (0,2), (1,0), (1,2), (2,0), (2,1); a three-element range
    // fills the first three and leaves the rest zero.
    let mut shear = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    for ((i, j), c) in [(0, 1), (0, 2), (1, 0)].into_iter().zip(p.shear) {
        let mut e = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
        e[i][j] = c;
        shear = matmul3(&e, &shear);
    }
    let rs = matmul3(&rot, &shear);
    let lin: [[f64; 3]; 3] =
        std::array::from_fn(|r| std::array::from_fn(|c| rs[r][c] * p.scale[c]));
    let centre: [f64; 3] = std::array::from_fn(|a| (dims[a] as f64 - 1.0) / 2.0);
    let mut m = [[0.0; 4]; 4];
    for r in 0..3 {
        let rt: f64 = (0..3).map(|k| rs[r][k] * p.translate[k]).sum();
        let lc: f64 = (0..3).map(|k| lin[r][k] * centre[k]).sum();
        m[r][..3].copy_from_slice(&lin[r]);
        m[r][3] = centre[r] - lc + rt;
    }
    m[3][3] = 1.0;
    Affine(m)
}

/// Draws MONAI's `RandAffineGrid` parameters (rotate, shear, translate,
/// scale, three words each).
pub(crate) fn draw_affine(
    rng: &mut ChaCha8Rng,
    rotate: [f64; 3],
    shear: [f64; 3],
    translate: [f64; 3],
    scale: [f64; 3],
) -> AffineParams {
    let mut sym = |r: [f64; 3]| -> [f64; 3] {
        let mut v = [0.0; 3];
        for a in 0..3 {
            v[a] = uniform(rng, -r[a], r[a]);
        }
        v
    };
    let rotate = sym(rotate);
    let shear = sym(shear);
    let translate = sym(translate);
    let scale = sym(scale).map(|s| 1.0 + s);
    AffineParams {
        rotate,
        shear,
        translate,
        scale,
    }
}

/// Resamples the pair through a voxel index map onto its own grid: the
/// image trilinearly, the label by nearest neighbour (so no new label
/// value appears), both with `padding`.
pub(crate) fn warp(pair: &Pair, map: &Affine, padding: Padding) -> Result<Pair> {
    let grid = Grid::of(&pair.image);
    let image = resample_index_map(
        &pair.image,
        &grid,
        map,
        Interpolation::Linear,
        padding,
        |x| x as f32,
    )?;
    let label = pair
        .label
        .as_ref()
        .map(|l| {
            resample_index_map(
                l,
                &Grid::of(l),
                map,
                Interpolation::Nearest,
                padding,
                u8::from_f64,
            )
        })
        .transpose()?;
    Ok(Pair {
        image,
        label,
        channels: Vec::new(),
    })
}

/// MONAI `Zoom(zoom, mode, keep_size)` with the same factor on every axis:
/// `torch.nn.functional.interpolate` to `floor(n · zoom)` (trilinear for the
/// image, nearest for the label), then with `keep_size` a central pad
/// (edge values, MONAI's default `padding_mode="edge"`) or crop back to
/// `n`. The affine follows MONAI's: voxels shrink by the zoom and the
/// pad/crop moves the origin, so every voxel sits at the world position of
/// the content it shows.
pub(crate) fn zoom(pair: &Pair, z: f64, keep_size: bool) -> Result<Pair> {
    let dims = pair.image.dims();
    let mut size = [0usize; 3];
    for a in 0..3 {
        let m = (dims[a] as f64 * z).floor();
        if !(1.0..=1e12).contains(&m) {
            return Err(Error::Param(format!(
                "RandZoom: zoom {z} turns axis {a} of length {} into {m} voxels",
                dims[a]
            )));
        }
        size[a] = m as usize;
    }
    let image = resize(&pair.image, size, ResizeMode::Linear)?;
    let label = pair
        .label
        .as_ref()
        .map(|l| resize_labels(l, size))
        .transpose()?;
    if !keep_size {
        return Ok(Pair {
            image,
            label,
            channels: Vec::new(),
        });
    }
    Ok(Pair {
        channels: Vec::new(),
        image: pad_crop_edge(&image, dims)?,
        label: label.as_ref().map(|l| pad_crop_edge(l, dims)).transpose()?,
    })
}

/// MONAI `ResizeWithPadOrCrop(size, mode="edge")`: per axis, a shorter
/// volume is padded symmetrically (the odd voxel after) with its edge
/// values and a longer one is cropped around its centre (`CenterSpatialCrop`:
/// start `m / 2 − n / 2`).
pub(crate) fn pad_crop_edge<T: Voxel>(v: &Volume<T>, size: [usize; 3]) -> Result<Volume<T>> {
    let dims = v.dims();
    if dims == size {
        return Ok(v.clone());
    }
    let mut offset = [0i64; 3];
    for a in 0..3 {
        offset[a] = if size[a] >= dims[a] {
            -(((size[a] - dims[a]) / 2) as i64)
        } else {
            (dims[a] / 2 - size[a] / 2) as i64
        };
    }
    // Source index per output index, clamped into the volume (edge mode).
    let table = |a: usize| -> Vec<usize> {
        (0..size[a])
            .map(|o| (o as i64 + offset[a]).clamp(0, dims[a] as i64 - 1) as usize)
            .collect()
    };
    let (ti, tj, tk) = (table(0), table(1), table(2));
    let src = v.data();
    let plane = size[0] * size[1];
    let n = plane
        .checked_mul(size[2])
        .ok_or_else(|| Error::Param(format!("RandZoom: size {size:?} overflows")))?;
    let mut out = vec![T::default(); n];
    if plane > 0 {
        out.par_chunks_mut(plane).enumerate().for_each(|(k, dst)| {
            for (j, row) in dst.chunks_mut(size[0]).enumerate() {
                let base = (tk[k] * dims[1] + tj[j]) * dims[0];
                for (d, &i) in row.iter_mut().zip(&ti) {
                    *d = src[base + i];
                }
            }
        });
    }
    let a = v.affine();
    let origin = a.apply([offset[0] as f64, offset[1] as f64, offset[2] as f64]);
    let affine = Affine::from_columns([a.column(0), a.column(1), a.column(2)], origin);
    Ok(Volume::new(size, affine, out)?)
}
