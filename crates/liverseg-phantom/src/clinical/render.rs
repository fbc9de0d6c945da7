//! The clinical scanner model: partial volume across the slice thickness,
//! in-plane point-spread blur, kernel-shaped correlated noise, metal
//! streaks and a circular reconstruction field of view.

use super::classify::Plane;
use super::contrast::Contrast;
use super::options::{ClinicalOptions, Kernel};
use super::patient::Patient;
use super::pose::Storage;
use crate::render::{Phantom, gaussian_pair, kernel, splitmix64};
use crate::{Error, PhantomConfig, Result, Tissue};
use liverseg_io::Volume;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Longest distance between two sub-samples across a slab, mm.
const SUB_STEP: f64 = 1.5;
/// Most sub-samples per slice.
const MAX_SUB: usize = 5;

/// Sub-sample offsets (mm, along world z) across a slab of `thickness`:
/// an odd count, so the centre sample (offset 0) gives the label.
pub(crate) fn sub_offsets(thickness: f64, nz: usize) -> Vec<f64> {
    let mut n = (thickness / SUB_STEP).ceil().max(1.0) as usize;
    // Keep the total work bounded for long thick-slice scans.
    let limit = MAX_SUB.min((1200 / nz.max(1)).max(1));
    n = n.min(limit);
    if n.is_multiple_of(2) {
        n = if n < limit { n + 1 } else { n - 1 };
    }
    let step = thickness / n as f64;
    (0..n)
        .map(|s| (s as f64 - (n - 1) as f64 / 2.0) * step)
        .collect()
}

/// The x and y of each column and row and z of each slice in the frame of
/// the anatomy: world mm (the affine is diagonal) divided by the body
/// scale, so a child is the adult anatomy shrunk.
fn axes(cfg: &PhantomConfig, body_scale: f64) -> [Vec<f64>; 3] {
    let a = cfg.affine();
    [0, 1, 2].map(|ax| {
        (0..cfg.dims[ax])
            .map(|i| {
                let mut v = [0.0; 3];
                v[ax] = i as f64;
                a.apply(v)[ax] / body_scale
            })
            .collect()
    })
}

/// `v` reordered into the storage order `opts` asks for.
fn store<T: liverseg_io::Voxel>(v: Volume<T>, opts: &ClinicalOptions) -> Result<Volume<T>> {
    let s = opts.storage;
    if s == Storage::IDENTITY {
        return Ok(v);
    }
    liverseg_transforms::spatial::orient::permute_flip(&v, s.axes, s.flips)
        .map_err(|e| Error::config("clinical.storage", e.to_string()))
}

/// Generates a clinical case (see [`ClinicalOptions`]).
pub(crate) fn generate_clinical(
    seed: u64,
    cfg: &PhantomConfig,
    opts: &ClinicalOptions,
) -> Result<Phantom> {
    let pat = Patient::sample(seed, opts);
    let con = Contrast::draw(seed, opts);
    let [nx, ny, nz] = cfg.dims;
    let plane = nx * ny;
    let [xs, ys, zs] = axes(cfg, opts.body_scale);
    let thickness = if opts.slice_thickness > 0.0 {
        opts.slice_thickness
    } else {
        cfg.spacing[2]
    };
    let offsets = sub_offsets(thickness, nz);
    let centre = offsets.len() / 2;
    let blur = [0, 1].map(|a| kernel(cfg.blur_sigma / cfg.spacing[a]));
    let noise = NoiseFilter::new(opts.kernel, cfg.noise_sigma);
    let key = splitmix64(seed ^ 0x636c_696e_6963_616c);
    let fov = opts.circular_fov;
    let mut image = vec![0i16; plane * nz];
    let mut label = vec![0u8; plane * nz];
    image
        .par_chunks_mut(plane)
        .zip(label.par_chunks_mut(plane))
        .enumerate()
        .for_each(|(k, (img, lab))| {
            let mut acc = vec![0f32; plane];
            let mut metal = Vec::new();
            let mut bone = Vec::new();
            let pelvis = zs[k] < pat.marks.iliac_crest;
            for (s, off) in offsets.iter().enumerate() {
                let z = zs[k] + off / opts.body_scale;
                let pl = Plane::new(&pat, z);
                for j in 0..ny {
                    for i in 0..nx {
                        let h = pl.classify(xs[i], ys[j]);
                        acc[i + nx * j] += pat.hu(h, [xs[i], ys[j], z], &con) as f32;
                        if s == centre {
                            lab[i + nx * j] = h.label;
                            if h.t == Tissue::Metal {
                                metal.push((i, j));
                            }
                            if pelvis && h.t == Tissue::Bone && xs[i].abs() > 40.0 {
                                bone.push((i, j));
                            }
                        }
                    }
                }
            }
            let inv = 1.0 / offsets.len() as f32;
            acc.iter_mut().for_each(|v| *v *= inv);
            if let Some(kx) = &blur[0] {
                filter_rows(&mut acc, nx, kx);
            }
            if let Some(ky) = &blur[1] {
                filter_cols(&mut acc, nx, ny, ky);
            }
            let mut rng = ChaCha8Rng::seed_from_u64(key);
            rng.set_stream(k as u64);
            if !metal.is_empty() {
                streaks(&mut acc, nx, ny, &metal, &mut rng);
            }
            let pixel_mm2 = cfg.spacing[0] * cfg.spacing[1];
            beam_hardening(&mut acc, nx, ny, &bone, pixel_mm2, 6.0 / cfg.spacing[0]);
            if let Some(n) = noise.field(&mut rng, nx, ny) {
                acc.iter_mut().zip(n).for_each(|(a, e)| *a += e);
            }
            let (ci, cj) = ((nx as f64 - 1.0) / 2.0, (ny as f64 - 1.0) / 2.0);
            let rad2 = (nx.min(ny) as f64 / 2.0).powi(2);
            for j in 0..ny {
                for i in 0..nx {
                    let m = i + nx * j;
                    let outside =
                        fov.is_some() && (i as f64 - ci).powi(2) + (j as f64 - cj).powi(2) > rad2;
                    img[m] = match fov {
                        Some(pad) if outside => pad,
                        _ => acc[m].round().clamp(-1024.0, 3071.0) as i16,
                    };
                }
            }
        });
    let affine = cfg.affine();
    Ok(Phantom {
        image: store(Volume::new(cfg.dims, affine, image)?, opts)?,
        label: store(Volume::new(cfg.dims, affine, label)?, opts)?,
    })
}

/// The noise-free tissue classes at voxel centres of a clinical case.
pub(crate) fn tissue_map_clinical(
    seed: u64,
    cfg: &PhantomConfig,
    opts: &ClinicalOptions,
) -> Result<Volume<u8>> {
    let pat = Patient::sample(seed, opts);
    let [nx, ny, nz] = cfg.dims;
    let plane = nx * ny;
    let [xs, ys, zs] = axes(cfg, opts.body_scale);
    let mut out = vec![0u8; plane * nz];
    out.par_chunks_mut(plane).enumerate().for_each(|(k, s)| {
        let pl = Plane::new(&pat, zs[k]);
        for j in 0..ny {
            for i in 0..nx {
                s[i + nx * j] = pl.classify(xs[i], ys[j]).t as u8;
            }
        }
    });
    store(Volume::new(cfg.dims, cfg.affine(), out)?, opts)
}

/// Correlated noise shaped like a reconstruction kernel's noise power
/// spectrum: white noise band-passed in-plane as `G(s1) - c G(s2)`, the
/// difference of two Gaussian low-passes (filtered back-projection's ramp
/// filter removes the lowest frequencies; the kernel's apodisation the
/// highest). Soft kernels keep low frequencies (coarse, blotchy grain),
/// sharp ones high frequencies (fine grain that anticorrelates
/// neighbours).
#[derive(Clone, Debug)]
pub(crate) struct NoiseFilter {
    k1: Option<Vec<f32>>,
    k2: Option<Vec<f32>>,
    c: f32,
    gain: f32,
}

impl NoiseFilter {
    pub fn new(kind: Kernel, sigma: f64) -> Self {
        let (s1, s2, c) = match kind {
            Kernel::Soft => (1.4, 3.5, 0.45),
            Kernel::Standard => (0.7, 2.2, 0.5),
            Kernel::Sharp => (0.0, 1.0, 0.75),
        };
        let k1 = kernel(s1);
        let k2 = kernel(s2);
        // Variance of the 2-D kernel G1 ⊗ G1 - c G2 ⊗ G2 applied to unit
        // white noise.
        let dense = |k: &Option<Vec<f32>>, r: usize| -> Vec<f64> {
            let mut v = vec![0.0; 2 * r + 1];
            match k {
                Some(k) => {
                    let kr = k.len() / 2;
                    for (t, w) in k.iter().enumerate() {
                        v[r + t - kr] = f64::from(*w);
                    }
                }
                None => v[r] = 1.0,
            }
            v
        };
        let r = [&k1, &k2]
            .iter()
            .map(|k| k.as_ref().map_or(0, |k| k.len() / 2))
            .max()
            .unwrap_or(0);
        let (a, b) = (dense(&k1, r), dense(&k2, r));
        let mut var = 0.0;
        for i in 0..a.len() {
            for j in 0..a.len() {
                let w = a[i] * a[j] - c * b[i] * b[j];
                var += w * w;
            }
        }
        let gain = if sigma > 0.0 && var > 0.0 {
            (sigma / var.sqrt()) as f32
        } else {
            0.0
        };
        NoiseFilter {
            k1,
            k2,
            c: c as f32,
            gain,
        }
    }

    /// One slice of noise, or `None` when the noise level is 0.
    pub fn field(&self, rng: &mut impl Rng, nx: usize, ny: usize) -> Option<Vec<f32>> {
        if self.gain == 0.0 {
            return None;
        }
        let n = nx * ny;
        let mut w = Vec::with_capacity(n + 1);
        while w.len() < n {
            let (a, b) = gaussian_pair(rng);
            w.push(a);
            w.push(b);
        }
        w.truncate(n);
        let mut a = w.clone();
        if let Some(k) = &self.k1 {
            filter_rows(&mut a, nx, k);
            filter_cols(&mut a, nx, ny, k);
        }
        let mut b = w;
        if let Some(k) = &self.k2 {
            filter_rows(&mut b, nx, k);
            filter_cols(&mut b, nx, ny, k);
        }
        Some(
            a.iter()
                .zip(&b)
                .map(|(x, y)| self.gain * (x - self.c * y))
                .collect(),
        )
    }
}

/// Convolves every row of an `nx`-wide image with `k`, edges clamped.
fn filter_rows(data: &mut [f32], nx: usize, k: &[f32]) {
    let r = k.len() / 2;
    let mut src = vec![0f32; nx + 2 * r];
    for row in data.chunks_mut(nx) {
        for (t, s) in src.iter_mut().enumerate() {
            *s = row[t.saturating_sub(r).min(nx - 1)];
        }
        for (i, o) in row.iter_mut().enumerate() {
            *o = k.iter().zip(&src[i..]).map(|(w, v)| w * v).sum();
        }
    }
}

/// Convolves every column with `k`, edges clamped, row by row so the inner
/// loop runs along contiguous memory.
fn filter_cols(data: &mut [f32], nx: usize, ny: usize, k: &[f32]) {
    let r = k.len() / 2;
    let src = data.to_vec();
    for j in 0..ny {
        let out = &mut data[j * nx..(j + 1) * nx];
        out.iter_mut().for_each(|v| *v = 0.0);
        for (t, w) in k.iter().enumerate() {
            let jj = (j + t).saturating_sub(r).min(ny - 1);
            let row = &src[jj * nx..(jj + 1) * nx];
            out.iter_mut().zip(row).for_each(|(o, v)| *o += w * v);
        }
    }
}

/// One centroid `(i, j, count)` per half of the slice (left and right
/// of the middle column).
fn centroids(nx: usize, pts: &[(usize, usize)]) -> Vec<(f64, f64, f64)> {
    let mut groups = Vec::new();
    for half in [0, 1] {
        let (mut si, mut sj, mut n) = (0.0, 0.0, 0.0);
        for &(i, j) in pts {
            if usize::from(i >= nx / 2) == half {
                si += i as f64;
                sj += j as f64;
                n += 1.0;
            }
        }
        if n > 0.0 {
            groups.push((si / n, sj / n, n));
        }
    }
    groups
}

/// Beam hardening between the dense bones of both hips: the rays through
/// both femoral heads or acetabula harden most, so a dark band (up to
/// about 30 HU) joins them.
fn beam_hardening(
    acc: &mut [f32],
    nx: usize,
    ny: usize,
    bone: &[(usize, usize)],
    pixel_mm2: f64,
    width: f64,
) {
    let g = centroids(nx, bone);
    if g.len() != 2 {
        return;
    }
    // Bone cross-section in mm² on the weaker side sets the strength.
    let mass = g[0].2.min(g[1].2) * pixel_mm2;
    let amp = 30.0 * (mass / 1500.0).min(1.0);
    if amp < 2.0 {
        return;
    }
    dark_band(
        acc,
        nx,
        ny,
        (g[0].0, g[0].1),
        (g[1].0, g[1].1),
        amp,
        width.max(1.0),
    );
}

/// Subtracts `amp` along the segment from `a` to `b` (pixel units), with
/// a Gaussian profile of standard deviation `width` pixels across it.
fn dark_band(
    acc: &mut [f32],
    nx: usize,
    ny: usize,
    a: (f64, f64),
    b: (f64, f64),
    amp: f64,
    width: f64,
) {
    let (vx, vy) = (b.0 - a.0, b.1 - a.1);
    let len2 = (vx * vx + vy * vy).max(1.0);
    for j in 0..ny {
        for i in 0..nx {
            let t = (((i as f64 - a.0) * vx + (j as f64 - a.1) * vy) / len2).clamp(0.0, 1.0);
            let (px, py) = (a.0 + t * vx - i as f64, a.1 + t * vy - j as f64);
            let d2 = (px * px + py * py) / (2.0 * width * width);
            if d2 < 12.0 {
                acc[i + nx * j] -= (amp * (-d2).exp()) as f32;
            }
        }
    }
}

/// Metal artefacts: bright and dark streaks radiating from each implant
/// (photon starvation and beam hardening along the most attenuating
/// rays), and a dark band between two implants.
fn streaks(acc: &mut [f32], nx: usize, ny: usize, metal: &[(usize, usize)], rng: &mut impl Rng) {
    let groups = centroids(nx, metal);
    let amp = rng.random_range(150.0..400.0);
    let rays: Vec<(f64, f64)> = (0..10)
        .map(|_| {
            let sign = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
            (rng.random_range(0.0..std::f64::consts::PI), sign)
        })
        .collect();
    for j in 0..ny {
        for i in 0..nx {
            let mut add = 0.0;
            for &(ci, cj, n) in &groups {
                let (dx, dy) = (i as f64 - ci, j as f64 - cj);
                let r = (dx * dx + dy * dy).sqrt();
                let a = dy.atan2(dx);
                let size = (n.sqrt() / 10.0).min(1.5);
                let mut s = 0.0;
                for &(t, sign) in &rays {
                    // Distance to the line through the implant at angle t.
                    let d = (a - t).sin().abs() * r;
                    s += sign * (-d * d / 4.0).exp();
                }
                add += amp * size * s / (1.0 + r / 40.0);
            }
            acc[i + nx * j] += add as f32;
        }
    }
    if groups.len() == 2 {
        let (a, b) = (groups[0], groups[1]);
        dark_band(acc, nx, ny, (a.0, a.1), (b.0, b.1), 0.6 * amp, 5.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_odd_centred_and_bounded() {
        for (t, nz) in [(0.6, 300), (3.0, 100), (5.0, 60), (5.0, 300), (10.0, 10)] {
            let o = sub_offsets(t, nz);
            assert_eq!(o.len() % 2, 1, "{t} {nz}");
            assert!(o.len() <= MAX_SUB);
            assert_eq!(o[o.len() / 2], 0.0);
            assert!(o.iter().all(|v| v.abs() <= t / 2.0));
        }
        assert_eq!(sub_offsets(5.0, 60).len(), 5);
        assert_eq!(sub_offsets(5.0, 300).len(), 3);
        assert_eq!(sub_offsets(1.0, 300).len(), 1);
    }

    #[test]
    fn beam_hardening_darkens_between_the_hips_only() {
        let (nx, ny) = (64, 32);
        let mut acc = vec![0f32; nx * ny];
        let mut bone = Vec::new();
        for j in 12..20 {
            for i in 4..12 {
                bone.push((i, j));
                bone.push((nx - 1 - i, j));
            }
        }
        beam_hardening(&mut acc, nx, ny, &bone, 25.0, 3.0);
        let mid = acc[nx / 2 + nx * 15];
        assert!(mid < -20.0, "{mid}");
        assert_eq!(acc[nx / 2], 0.0);
        // One side alone: nothing.
        let mut one = vec![0f32; nx * ny];
        let left: Vec<(usize, usize)> = bone.iter().copied().filter(|p| p.0 < nx / 2).collect();
        beam_hardening(&mut one, nx, ny, &left, 25.0, 3.0);
        assert!(one.iter().all(|v| *v == 0.0));
    }

    #[test]
    fn noise_filter_has_the_requested_std() {
        for kind in Kernel::ALL {
            let f = NoiseFilter::new(kind, 12.0);
            let mut rng = ChaCha8Rng::seed_from_u64(9);
            let v = f.field(&mut rng, 128, 128).unwrap();
            let n = v.len() as f64;
            let mean = v.iter().map(|x| f64::from(*x)).sum::<f64>() / n;
            let sd = (v
                .iter()
                .map(|x| (f64::from(*x) - mean).powi(2))
                .sum::<f64>()
                / n)
                .sqrt();
            assert!((sd - 12.0).abs() < 1.2, "{kind:?}: {sd}");
        }
        assert!(
            NoiseFilter::new(Kernel::Soft, 0.0)
                .field(&mut ChaCha8Rng::seed_from_u64(1), 4, 4)
                .is_none()
        );
    }
}
