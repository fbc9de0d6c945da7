//! Sliding-window inference with MONAI's `sliding_window_inference`
//! semantics, and mirror test-time augmentation.
//!
//! Window starts, padding of inputs smaller than the window, the Gaussian
//! importance map and the weighted blending follow MONAI exactly, so the
//! same predictor gives the same output (within float rounding).

use crate::{Error, Result};
use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

/// How overlapping window predictions are blended.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlendMode {
    /// Every voxel of a window weighs the same.
    Constant,
    /// A separable Gaussian centred on the window, `σ = sigma_scale · roi`
    /// per axis (MONAI's default `sigma_scale` is 0.125).
    Gaussian {
        /// σ as a fraction of the window extent.
        sigma_scale: f64,
    },
}

/// Options of [`sliding_window_inference`] (MONAI's argument names).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlidingWindowConfig {
    /// Window extent per spatial axis.
    pub roi_size: [usize; 3],
    /// Windows per predictor call.
    pub sw_batch_size: usize,
    /// Fraction of overlap between neighbouring windows, in `[0, 1)`.
    pub overlap: f64,
    /// Blending of overlapping windows.
    pub mode: BlendMode,
    /// Value used to pad inputs smaller than the window.
    pub cval: f32,
}

impl Default for SlidingWindowConfig {
    /// The tutorial's validation call: roi (160, 160, 160), 4 windows per
    /// batch, MONAI's defaults otherwise (overlap 0.25, constant blending).
    fn default() -> Self {
        SlidingWindowConfig {
            roi_size: [160, 160, 160],
            sw_batch_size: 4,
            overlap: 0.25,
            mode: BlendMode::Constant,
            cval: 0.0,
        }
    }
}

/// MONAI's scan interval: `int(roi · (1 − overlap))`, at least 1, or the
/// roi itself when it equals the image extent.
fn scan_interval(image: usize, roi: usize, overlap: f64) -> usize {
    if roi == image {
        roi
    } else {
        ((roi as f64 * (1.0 - overlap)) as usize).max(1)
    }
}

/// Window start positions along one axis (MONAI's `dense_patch_slices`).
pub fn window_starts(image: usize, roi: usize, overlap: f64) -> Vec<usize> {
    let interval = scan_interval(image, roi, overlap);
    let num = image.div_ceil(interval);
    let count = (0..num)
        .find(|d| d * interval + roi >= image)
        .map_or(1, |d| d + 1);
    (0..count)
        .map(|i| {
            let start = i * interval;
            start - (start + roi).saturating_sub(image)
        })
        .collect()
}

/// The importance map of a window, `roi` voxels, x slowest (MONAI's
/// `compute_importance_map`, float32 maths, clamped below at
/// `max(min, 1e-3)`).
pub fn importance_map(roi: [usize; 3], mode: BlendMode) -> Vec<f32> {
    let n: usize = roi.iter().product();
    let BlendMode::Gaussian { sigma_scale } = mode else {
        return vec![1.0; n];
    };
    let axis = |p: usize| -> Vec<f32> {
        let sigma = (p as f64 * sigma_scale) as f32;
        (0..p)
            .map(|i| {
                let x = i as f32 - (p as f32 - 1.0) / 2.0;
                (x * x / (-2.0 * sigma * sigma)).exp()
            })
            .collect()
    };
    let (a, b, c) = (axis(roi[0]), axis(roi[1]), axis(roi[2]));
    let mut m = Vec::with_capacity(n);
    for x in &a {
        for y in &b {
            for z in &c {
                m.push(x * y * z);
            }
        }
    }
    let floor = m.iter().copied().fold(f32::INFINITY, f32::min).max(1e-3);
    m.iter_mut().for_each(|v| *v = v.max(floor));
    m
}

/// Runs `predictor` over windows of `input` `(N, C, X, Y, Z)` and blends
/// the window outputs `(B, K, roi…)` into `(N, K, X, Y, Z)`.
///
/// Inputs smaller than the window are padded with `cval` (half before,
/// half after, as MONAI) and the output cropped back.
pub fn sliding_window_inference(
    input: &Tensor,
    cfg: &SlidingWindowConfig,
    predictor: &mut dyn FnMut(&Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    let (n, _, dx, dy, dz) = input.dims5()?;
    let orig = [dx, dy, dz];
    if !(0.0..1.0).contains(&cfg.overlap) || cfg.sw_batch_size == 0 || cfg.roi_size.contains(&0) {
        return Err(Error::Config(format!(
            "sliding window: overlap {} must be in [0, 1), sw_batch_size and roi_size positive",
            cfg.overlap
        )));
    }
    // Pad every axis up to the window.
    let mut x = input.clone();
    let mut pad_before = [0usize; 3];
    for a in 0..3 {
        let diff = cfg.roi_size[a].saturating_sub(orig[a]);
        if diff > 0 {
            let half = diff / 2;
            pad_before[a] = half;
            let shifted = (x - f64::from(cfg.cval))?;
            x = (shifted.pad_with_zeros(a + 2, half, diff - half)? + f64::from(cfg.cval))?;
        }
    }
    let image: [usize; 3] = std::array::from_fn(|a| orig[a].max(cfg.roi_size[a]));
    let roi = cfg.roi_size;
    let starts: Vec<Vec<usize>> = (0..3)
        .map(|a| window_starts(image[a], roi[a], cfg.overlap))
        .collect();
    let mut windows = Vec::new();
    for &sx in &starts[0] {
        for &sy in &starts[1] {
            for &sz in &starts[2] {
                windows.push([sx, sy, sz]);
            }
        }
    }
    let weights = importance_map(roi, cfg.mode);
    let plane = image[1] * image[2];
    let vol = image[0] * plane;
    let mut count = vec![0.0f32; vol];
    for w in &windows {
        accumulate(&mut count, image, *w, roi, None, &weights);
    }
    let total: Vec<(usize, [usize; 3])> = (0..n)
        .flat_map(|b| windows.iter().map(move |w| (b, *w)))
        .collect();
    let mut out: Option<(usize, Vec<f32>)> = None;
    for chunk in total.chunks(cfg.sw_batch_size) {
        let crops = chunk
            .iter()
            .map(|(b, w)| {
                x.narrow(0, *b, 1)?
                    .narrow(2, w[0], roi[0])?
                    .narrow(3, w[1], roi[1])?
                    .narrow(4, w[2], roi[2])
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let batch = Tensor::cat(&crops, 0)?;
        let pred = predictor(&batch)?;
        let pd = pred.dims();
        if pd.len() != 5 || pd[0] != chunk.len() || pd[2..] != roi {
            return Err(Error::Config(format!(
                "predictor returned shape {pd:?} for {} windows of {roi:?}",
                chunk.len()
            )));
        }
        let k = pd[1];
        let values: Vec<f32> = pred.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let (_, buf) = out.get_or_insert_with(|| (k, vec![0.0f32; n * k * vol]));
        let per_win = k * roi.iter().product::<usize>();
        for (i, (b, w)) in chunk.iter().enumerate() {
            for ch in 0..k {
                let src = &values
                    [i * per_win + ch * (per_win / k)..i * per_win + (ch + 1) * (per_win / k)];
                let dst = &mut buf[(b * k + ch) * vol..(b * k + ch + 1) * vol];
                accumulate(dst, image, *w, roi, Some(src), &weights);
            }
        }
    }
    let (k, mut buf) = out.ok_or_else(|| Error::Config("sliding window: no windows".into()))?;
    // Normalise by the summed weights and crop the padding away.
    let mut result = Vec::with_capacity(n * k * orig.iter().product::<usize>());
    for bk in 0..n * k {
        let v = &mut buf[bk * vol..(bk + 1) * vol];
        for xi in 0..orig[0] {
            for yi in 0..orig[1] {
                let base =
                    (xi + pad_before[0]) * plane + (yi + pad_before[1]) * image[2] + pad_before[2];
                for zi in 0..orig[2] {
                    result.push(v[base + zi] / count[base + zi]);
                }
            }
        }
    }
    Ok(Tensor::from_vec(
        result,
        (n, k, orig[0], orig[1], orig[2]),
        input.device(),
    )?)
}

/// Adds `src · weights` (or, without `src`, the weights themselves: the
/// normalising count map) into the window at `start` of a volume of extent
/// `image` (z fastest).
fn accumulate(
    dst: &mut [f32],
    image: [usize; 3],
    start: [usize; 3],
    roi: [usize; 3],
    src: Option<&[f32]>,
    weights: &[f32],
) {
    let plane = image[1] * image[2];
    for xi in 0..roi[0] {
        for yi in 0..roi[1] {
            let d0 = (start[0] + xi) * plane + (start[1] + yi) * image[2] + start[2];
            let s0 = (xi * roi[1] + yi) * roi[2];
            let dst = &mut dst[d0..d0 + roi[2]];
            let w = &weights[s0..s0 + roi[2]];
            match src {
                None => dst.iter_mut().zip(w).for_each(|(d, w)| *d += w),
                Some(src) => dst
                    .iter_mut()
                    .zip(src[s0..s0 + roi[2]].iter().zip(w))
                    .for_each(|(d, (s, w))| *d += s * w),
            }
        }
    }
}

/// Reverses `t` along dimension `dim`.
pub fn flip(t: &Tensor, dim: usize) -> Result<Tensor> {
    let len = t.dim(dim)?;
    let idx: Vec<u32> = (0..len as u32).rev().collect();
    let idx = Tensor::from_vec(idx, len, t.device())?;
    Ok(t.index_select(&idx, dim)?)
}

/// Mirror test-time augmentation as nnU-Net does it: the mean of the
/// predictions on the input flipped along every non-empty subset of the
/// spatial axes in `axes` (and unflipped), each flipped back.
pub fn mirror_tta(
    input: &Tensor,
    axes: &[usize],
    predictor: &mut dyn FnMut(&Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    if axes.iter().any(|&a| !(2..5).contains(&a)) {
        return Err(Error::Config(format!(
            "mirror axes {axes:?} must be spatial (2, 3 or 4)"
        )));
    }
    let mut sum = predictor(input)?;
    let subsets = 1usize << axes.len();
    for mask in 1..subsets {
        let chosen: Vec<usize> = axes
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, a)| *a)
            .collect();
        let mut x = input.clone();
        for &a in &chosen {
            x = flip(&x, a)?;
        }
        let mut y = predictor(&x)?;
        for &a in &chosen {
            y = flip(&y, a)?;
        }
        sum = (sum + y)?;
    }
    Ok((sum / subsets as f64)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_starts_follow_monai() {
        // monai.data.utils.dense_patch_slices((10,), (4,), (3,)) starts: 0, 3, 6
        assert_eq!(window_starts(10, 4, 0.25), vec![0, 3, 6]);
        // image 11, roi 4, interval 3: 0, 3, 6, 7 (last shifted back to fit)
        assert_eq!(window_starts(11, 4, 0.25), vec![0, 3, 6, 7]);
        assert_eq!(window_starts(4, 4, 0.5), vec![0]);
        assert_eq!(window_starts(9, 4, 0.5), vec![0, 2, 4, 5]);
    }
}
