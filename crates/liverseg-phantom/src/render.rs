//! Sampling the anatomy on a voxel grid, then blur, noise and quantisation.

use crate::anatomy::{Anatomy, Tissue};
use crate::{PhantomConfig, Result};
use liverseg_io::Volume;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// A generated case: a CT image and its liver mask on the same grid.
#[derive(Clone, Debug, PartialEq)]
pub struct Phantom {
    /// The CT image in Hounsfield units, clamped to `-1024..=3071`.
    pub image: Volume<i16>,
    /// The reference segmentation: 1 for liver, 0 elsewhere.
    pub label: Volume<u8>,
}

impl Phantom {
    /// Volume of the liver mask in millilitres.
    pub fn liver_ml(&self) -> f64 {
        let [sx, sy, sz] = self.label.spacing();
        let n = self.label.data().iter().filter(|&&v| v == 1).count();
        n as f64 * sx * sy * sz / 1000.0
    }
}

/// Generates the phantom of patient `seed` scanned with `cfg`.
///
/// The same `seed` and `cfg` give the same bytes on every run and with any
/// number of rayon threads. The anatomy depends on `seed` only, so two
/// configurations that differ in spacing or axis flips show the same organs
/// at the same world positions.
pub fn generate(seed: u64, cfg: &PhantomConfig) -> Result<Phantom> {
    cfg.validate()?;
    if let Some(opts) = &cfg.clinical {
        return crate::clinical::generate_clinical(seed, cfg, opts);
    }
    let anatomy = Anatomy::sample(seed);
    let affine = cfg.affine();
    let [nx, ny, nz] = cfg.dims;
    let plane = nx * ny;
    let n = plane * nz;
    let mut hu = vec![0f32; n];
    let mut label = vec![0u8; n];
    hu.par_chunks_mut(plane)
        .zip(label.par_chunks_mut(plane))
        .enumerate()
        .for_each(|(k, (hs, ls))| {
            for j in 0..ny {
                for i in 0..nx {
                    let p = affine.apply([i as f64, j as f64, k as f64]);
                    let (t, v) = anatomy.at(p);
                    hs[i + nx * j] = v as f32;
                    ls[i + nx * j] = u8::from(t == Tissue::Liver);
                }
            }
        });
    let spacing = cfg.spacing;
    let sigma_vox = [0, 1, 2].map(|a| cfg.blur_sigma / spacing[a]);
    blur(&mut hu, cfg.dims, sigma_vox);
    let noise_key = splitmix64(seed ^ 0x6c69_7665_7273_6567);
    let sigma = cfg.noise_sigma as f32;
    let mut image = vec![0i16; n];
    image
        .par_chunks_mut(plane)
        .zip(hu.par_chunks(plane))
        .enumerate()
        .for_each(|(k, (out, src))| {
            // One ChaCha stream per slice: the noise of slice k does not
            // depend on which thread draws it or in which order.
            let mut rng = ChaCha8Rng::seed_from_u64(noise_key);
            rng.set_stream(k as u64);
            let mut pending: Option<f32> = None;
            for (o, &v) in out.iter_mut().zip(src) {
                let e = if sigma > 0.0 {
                    let g = match pending.take() {
                        Some(g) => g,
                        None => {
                            let (a, b) = gaussian_pair(&mut rng);
                            pending = Some(b);
                            a
                        }
                    };
                    g * sigma
                } else {
                    0.0
                };
                *o = (v + e).round().clamp(-1024.0, 3071.0) as i16;
            }
        });
    Ok(Phantom {
        image: Volume::new(cfg.dims, affine, image)?,
        label: Volume::new(cfg.dims, affine, label)?,
    })
}

/// The noise-free tissue classes of patient `seed` on the grid of `cfg`,
/// one [`Tissue`] code (its `u8` discriminant) per voxel. Useful to check
/// where the body and each organ are.
pub fn tissue_map(seed: u64, cfg: &PhantomConfig) -> Result<Volume<u8>> {
    cfg.validate()?;
    if let Some(opts) = &cfg.clinical {
        return crate::clinical::tissue_map_clinical(seed, cfg, opts);
    }
    let anatomy = Anatomy::sample(seed);
    let affine = cfg.affine();
    let [nx, ny, nz] = cfg.dims;
    let plane = nx * ny;
    let mut out = vec![0u8; plane * nz];
    out.par_chunks_mut(plane).enumerate().for_each(|(k, s)| {
        for j in 0..ny {
            for i in 0..nx {
                let p = affine.apply([i as f64, j as f64, k as f64]);
                s[i + nx * j] = anatomy.tissue(p) as u8;
            }
        }
    });
    Ok(Volume::new(cfg.dims, affine, out)?)
}

/// Two independent standard normal values (Box–Muller).
pub(crate) fn gaussian_pair(rng: &mut impl Rng) -> (f32, f32) {
    // 1 - u lies in (0, 1], so the logarithm is finite.
    let u: f64 = 1.0 - rng.random::<f64>();
    let v: f64 = rng.random::<f64>();
    let r = (-2.0 * u.ln()).sqrt();
    let t = std::f64::consts::TAU * v;
    ((r * t.cos()) as f32, (r * t.sin()) as f32)
}

/// A well-mixed 64-bit hash (SplitMix64's finaliser), used to derive the
/// noise key from the patient seed.
pub(crate) fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A normalised Gaussian kernel of standard deviation `sigma` voxels,
/// truncated at three sigmas; `None` when the blur is too small to matter.
pub(crate) fn kernel(sigma: f64) -> Option<Vec<f32>> {
    if sigma < 0.2 {
        return None;
    }
    let radius = (3.0 * sigma).ceil() as i64;
    let w: Vec<f64> = (-radius..=radius)
        .map(|d| (-(d * d) as f64 / (2.0 * sigma * sigma)).exp())
        .collect();
    let sum: f64 = w.iter().sum();
    Some(w.iter().map(|v| (v / sum) as f32).collect())
}

/// Separable Gaussian blur in place, edges clamped. Every output voxel is
/// a fixed-order sum, so the result does not depend on threading.
fn blur(data: &mut [f32], dims: [usize; 3], sigma: [f64; 3]) {
    let [nx, ny, nz] = dims;
    let plane = nx * ny;
    if let Some(k) = kernel(sigma[0]) {
        let r = (k.len() / 2) as isize;
        data.par_chunks_mut(nx).for_each(|row| {
            let src = row.to_vec();
            for (i, o) in row.iter_mut().enumerate() {
                *o = k
                    .iter()
                    .enumerate()
                    .map(|(t, w)| w * src[clamp_index(i as isize + t as isize - r, nx)])
                    .sum();
            }
        });
    }
    if let Some(k) = kernel(sigma[1]) {
        let r = (k.len() / 2) as isize;
        data.par_chunks_mut(plane).for_each(|slice| {
            let src = slice.to_vec();
            for j in 0..ny {
                for i in 0..nx {
                    slice[i + nx * j] = k
                        .iter()
                        .enumerate()
                        .map(|(t, w)| {
                            w * src[i + nx * clamp_index(j as isize + t as isize - r, ny)]
                        })
                        .sum();
                }
            }
        });
    }
    if let Some(k) = kernel(sigma[2]) {
        let r = (k.len() / 2) as isize;
        let src = data.to_vec();
        data.par_chunks_mut(plane)
            .enumerate()
            .for_each(|(z, slice)| {
                for (m, o) in slice.iter_mut().enumerate() {
                    *o = k
                        .iter()
                        .enumerate()
                        .map(|(t, w)| {
                            w * src[m + plane * clamp_index(z as isize + t as isize - r, nz)]
                        })
                        .sum();
                }
            });
    }
}

#[inline]
fn clamp_index(i: isize, n: usize) -> usize {
    i.clamp(0, n as isize - 1) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blur_preserves_constants_and_spreads_spikes() {
        let dims = [9, 7, 5];
        let mut flat = vec![3.0f32; 9 * 7 * 5];
        blur(&mut flat, dims, [1.0, 1.0, 1.0]);
        assert!(flat.iter().all(|v| (v - 3.0).abs() < 1e-5));
        let mut spike = vec![0.0f32; 9 * 7 * 5];
        spike[4 + 9 * (3 + 7 * 2)] = 1.0;
        blur(&mut spike, dims, [1.0, 0.0, 0.0]);
        let centre = spike[4 + 9 * (3 + 7 * 2)];
        let side = spike[5 + 9 * (3 + 7 * 2)];
        assert!((centre - 0.3990).abs() < 2e-3, "{centre}");
        assert!((side - 0.2420).abs() < 2e-3, "{side}");
        // Nothing leaks along the axes that were not blurred.
        assert_eq!(spike[4 + 9 * (4 + 7 * 2)], 0.0);
    }

    #[test]
    fn gaussian_noise_has_unit_variance() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let v: Vec<f64> = (0..20_000)
            .flat_map(|_| {
                let (a, b) = gaussian_pair(&mut rng);
                [f64::from(a), f64::from(b)]
            })
            .collect();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / v.len() as f64;
        assert!(mean.abs() < 0.02, "{mean}");
        assert!((var - 1.0).abs() < 0.03, "{var}");
    }
}
