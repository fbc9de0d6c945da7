//! Random intensity transforms of the image: Gaussian noise, Gaussian
//! smoothing, scaling, shifting and gamma contrast.

use liverseg_io::Volume;
use rayon::prelude::*;

use super::draw::{BoxMuller, slab_rng};
use crate::Result;

/// Adds `mean + std · N(0, 1)` to every voxel. Slab `k` (all voxels with
/// `z = k`) draws its values from its own generator, [`slab_rng`]`(seed,
/// k)`, in x-fastest order, so the field is the same whatever the thread
/// count.
pub(crate) fn add_noise(image: &mut Volume<f32>, mean: f64, std: f64, seed: u64) {
    let [nx, ny, _] = image.dims();
    let plane = nx * ny;
    if plane == 0 {
        return;
    }
    image
        .data_mut()
        .par_chunks_mut(plane)
        .enumerate()
        .for_each(|(k, slab)| {
            let mut rng = slab_rng(seed, k);
            let mut normal = BoxMuller::default();
            for x in slab {
                let noise = mean + std * normal.next(&mut rng);
                *x = (f64::from(*x) + noise) as f32;
            }
        });
}

/// The error function, to double precision: the everywhere-positive series
/// `erf(x) = 2/√π · e^(−x²) · Σ 2ⁿ x^(2n+1) / (1·3·…·(2n+1))` (no
/// cancellation), and ±1 beyond |x| = 6 where `erfc` is below 1e-16.
/// Rust's `f64::erf` is not stable yet.
pub(crate) fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    if a >= 6.0 {
        return x.signum();
    }
    let x2 = a * a;
    let mut term = a;
    let mut sum = a;
    let mut n = 0.0;
    while term > sum * 1e-17 {
        n += 1.0;
        term *= 2.0 * x2 / (2.0 * n + 1.0);
        sum += term;
    }
    let v = 2.0 / std::f64::consts::PI.sqrt() * (-x2).exp() * sum;
    v.min(1.0).copysign(x)
}

/// MONAI's `gaussian_1d(sigma, truncated=4.0, approx="erf",
/// normalize=True)`: taps `−tail..=tail` with `tail = ⌊max(4σ, 0.5) +
/// 0.5⌋`, tap `x` holding the normal mass over `[x − ½, x + ½]`, normalised
/// to sum 1. `σ = 0` is the identity kernel (MONAI's erf saturates to the
/// same `[0, 1, 0]`).
pub(crate) fn gaussian_kernel(sigma: f64) -> Vec<f64> {
    if sigma <= 0.0 {
        return vec![1.0];
    }
    let tail = ((sigma * 4.0).max(0.5) + 0.5).floor() as i64;
    let t = std::f64::consts::FRAC_1_SQRT_2 / sigma;
    let mut k: Vec<f64> = (-tail..=tail)
        .map(|x| {
            let x = x as f64;
            (0.5 * (erf(t * (x + 0.5)) - erf(t * (x - 0.5)))).max(0.0)
        })
        .collect();
    let sum: f64 = k.iter().sum();
    for w in &mut k {
        *w /= sum;
    }
    k
}

/// MONAI `GaussianSmooth(sigma)`: separable convolution along x, y, z with
/// [`gaussian_kernel`]s and zero padding (MONAI's `separable_filtering`
/// pads with zeros, so values near the border fall off). Every output value
/// is a fixed sum in `f64`, computed independently per z slab.
pub(crate) fn smooth(image: &Volume<f32>, sigma: [f64; 3]) -> Result<Volume<f32>> {
    let dims = image.dims();
    let mut cur = image.clone();
    let plane = dims[0] * dims[1];
    if plane == 0 || dims[2] == 0 {
        return Ok(cur);
    }
    for axis in 0..3 {
        let kernel = gaussian_kernel(sigma[axis]);
        if kernel.len() == 1 {
            continue;
        }
        let tail = (kernel.len() / 2) as i64;
        let src = cur.data();
        let mut out = vec![0.0f32; src.len()];
        // Output voxel at position p along `axis` sums kernel[d + tail] ·
        // src[p + d] over the in-range neighbours.
        let (stride, n) = match axis {
            0 => (1usize, dims[0]),
            1 => (dims[0], dims[1]),
            _ => (plane, dims[2]),
        };
        out.par_chunks_mut(plane).enumerate().for_each(|(k, dst)| {
            for (o, d) in dst.iter_mut().enumerate() {
                let i = o % dims[0];
                let j = o / dims[0];
                let p = [i, j, k][axis] as i64;
                let base = k * plane + o - p as usize * stride;
                let lo = (p - tail).max(0);
                let hi = (p + tail).min(n as i64 - 1);
                let mut acc = 0.0f64;
                for q in lo..=hi {
                    let w = kernel[(q - p + tail) as usize];
                    acc += w * f64::from(src[base + q as usize * stride]);
                }
                *d = acc as f32;
            }
        });
        cur = Volume::new(dims, *image.affine(), out)?;
    }
    Ok(cur)
}

/// MONAI `AdjustContrast(gamma)`: `((x − min) / (range + 1e-7))^γ · range
/// + min`, with the minimum and range of the whole image, in `f64`.
pub(crate) fn adjust_contrast(image: &Volume<f32>, gamma: f64) -> Volume<f32> {
    let stats = image.stats();
    let (min, range) = (stats.min, stats.max - stats.min);
    if !min.is_finite() || !range.is_finite() {
        // An image of NaNs (or infinities) has no range to stretch.
        return image.clone();
    }
    image.map(|x| ((((f64::from(x) - min) / (range + 1e-7)).powf(gamma)) * range + min) as f32)
}
