//! MR-like phantoms: the same anatomy and labels as [`generate`], painted
//! with relative MR signal per tissue instead of HU, for tests of
//! modalities other than CT.
//!
//! MR intensities have no absolute unit: the same tissue reads 300 on one
//! scanner and 3000 on another, and coil sensitivity shades the image
//! smoothly. So each case draws its own scale (100–4000), a smooth
//! multiplicative bias field (up to ±20 %), and Rician noise (the
//! magnitude of complex Gaussian noise, 2 % of the scale), which keeps air
//! near zero but not at zero. The relative signals follow the textbook
//! ordering at 1.5 T (T1: fat and marrow bright, liver above spleen,
//! fluid dark; T2: fluid, bile and spleen bright, liver dark), not a
//! simulation of relaxation.

use crate::anatomy::Tissue;
use crate::render::splitmix64;
use crate::{Phantom, PhantomConfig, Result, generate, tissue_map};
use liverseg_io::Volume;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// An MR-like contrast.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MrSequence {
    /// T1-weighted: fat bright, fluid dark.
    T1,
    /// T2-weighted: fluid bright, liver dark.
    T2,
}

impl MrSequence {
    /// Its name as a `dataset.json` modality.
    pub fn name(self) -> &'static str {
        match self {
            MrSequence::T1 => "T1",
            MrSequence::T2 => "T2",
        }
    }

    /// The relative signal (0–1) of a tissue.
    pub fn signal(self, t: Tissue) -> f32 {
        use Tissue as T;
        let (t1, t2) = match t {
            T::Air | T::Gas | T::Metal | T::Table => (0.0, 0.0),
            T::Fat | T::VisceralFat => (1.0, 0.75),
            T::CancellousBone => (0.7, 0.55),
            T::Muscle | T::Heart => (0.35, 0.22),
            T::Liver => (0.55, 0.25),
            T::Spleen => (0.4, 0.55),
            T::Kidney => (0.45, 0.5),
            T::KidneyMedulla => (0.3, 0.6),
            T::Pancreas => (0.6, 0.35),
            T::Vessel | T::Artery | T::PortalVein | T::HepaticVein | T::HeartBlood => (0.1, 0.05),
            T::Bone => (0.05, 0.02),
            T::Lung => (0.05, 0.03),
            T::Disc | T::Cartilage => (0.3, 0.45),
            T::Canal | T::Gallbladder | T::RenalPelvis | T::Bladder | T::Fluid | T::Cyst => {
                (0.12, 0.95)
            }
            T::Bowel => (0.25, 0.6),
            T::BowelWall => (0.35, 0.3),
            T::OralContrast => (0.2, 0.8),
            T::Metastasis => (0.3, 0.55),
            T::Hcc => (0.4, 0.5),
            T::Haemangioma => (0.2, 0.9),
        };
        match self {
            MrSequence::T1 => t1,
            MrSequence::T2 => t2,
        }
    }
}

/// The phantom of `seed` on `cfg`'s grid as an MR-like `sequence`: the
/// label is [`generate`]'s (organ labels included when `cfg` asks for
/// them), the image is MR-like signal in arbitrary units stored as int16.
/// Deterministic for a seed and sequence, on any thread count.
pub fn generate_mr(seed: u64, cfg: &PhantomConfig, sequence: MrSequence) -> Result<Phantom> {
    let label = generate(seed, cfg)?.label;
    let tissues = tissue_map(seed, cfg)?;
    let [nx, ny, nz] = cfg.dims;
    let plane = nx * ny;
    // Stream 7 of the seed, per sequence: scale and bias field first.
    let key = splitmix64(seed ^ 0x6d72_6c69_6b65 ^ sequence as u64);
    let mut rng = ChaCha8Rng::seed_from_u64(key);
    rng.set_stream(7);
    let scale: f32 = rng.random_range(100.0..4000.0);
    // Bias: 1 + a·x + b·y + c·z + d·x·y over the grid in [-1, 1], scaled so
    // the field stays within ±20 %.
    let coef: [f32; 4] = [0; 4].map(|_| rng.random_range(-1.0f32..1.0));
    let norm = coef.iter().map(|c| c.abs()).sum::<f32>().max(1.0);
    let coef = coef.map(|c| 0.2 * c / norm);
    let sigma = 0.02 * scale;
    let rel = |i: usize, n: usize| 2.0 * i as f32 / (n.max(2) - 1) as f32 - 1.0;
    let mut out = vec![0i16; plane * nz];
    out.par_chunks_mut(plane)
        .zip(tissues.data().par_chunks(plane))
        .enumerate()
        .for_each(|(k, (o, t))| {
            let mut noise = ChaCha8Rng::seed_from_u64(key);
            noise.set_stream(1000 + k as u64);
            let z = rel(k, nz);
            for j in 0..ny {
                let y = rel(j, ny);
                for i in 0..nx {
                    let x = rel(i, nx);
                    let tissue = Tissue::ALL
                        .get(usize::from(t[i + nx * j]))
                        .copied()
                        .unwrap_or(Tissue::Air);
                    let bias = 1.0 + coef[0] * x + coef[1] * y + coef[2] * z + coef[3] * x * y;
                    let s = sequence.signal(tissue) * scale * bias;
                    let (re, im) = gaussian_pair(&mut noise);
                    let v = ((s + sigma * re).powi(2) + (sigma * im).powi(2)).sqrt();
                    o[i + nx * j] = v.round().min(f32::from(i16::MAX)) as i16;
                }
            }
        });
    let image = Volume::new(cfg.dims, cfg.affine(), out).map_err(crate::Error::from)?;
    Ok(Phantom { image, label })
}

/// Two independent standard normal draws (Box–Muller).
fn gaussian_pair(rng: &mut ChaCha8Rng) -> (f32, f32) {
    let u1: f32 = rng.random_range(f32::EPSILON..1.0);
    let u2: f32 = rng.random_range(0.0..1.0);
    let r = (-2.0 * u1.ln()).sqrt();
    let a = std::f32::consts::TAU * u2;
    (r * a.cos(), r * a.sin())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> PhantomConfig {
        PhantomConfig {
            dims: [48, 48, 24],
            spacing: [8.0, 8.0, 8.0],
            ..PhantomConfig::default()
        }
    }

    fn mean_of(p: &Phantom, tissues: &Volume<u8>, t: Tissue) -> f64 {
        let v: Vec<f64> = p
            .image
            .data()
            .iter()
            .zip(tissues.data())
            .filter(|(_, x)| **x == t as u8)
            .map(|(v, _)| f64::from(*v))
            .collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    }

    #[test]
    fn contrasts_follow_the_sequence_and_scales_differ_by_case() {
        let c = cfg();
        let tissues = tissue_map(3, &c).unwrap();
        let t1 = generate_mr(3, &c, MrSequence::T1).unwrap();
        let t2 = generate_mr(3, &c, MrSequence::T2).unwrap();
        assert_eq!(t1.label, generate(3, &c).unwrap().label);
        assert_eq!(t1, generate_mr(3, &c, MrSequence::T1).unwrap());
        let m = |p: &Phantom, t| mean_of(p, &tissues, t);
        // T1: fat above liver above spleen; T2: spleen above liver.
        assert!(m(&t1, Tissue::Fat) > m(&t1, Tissue::Liver));
        assert!(m(&t1, Tissue::Liver) > m(&t1, Tissue::Spleen));
        assert!(m(&t2, Tissue::Spleen) > m(&t2, Tissue::Liver));
        // Air is near zero, never negative; the scale is the case's own.
        assert!(m(&t1, Tissue::Air) < 0.05 * m(&t1, Tissue::Fat));
        assert!(t1.image.data().iter().all(|&v| v >= 0));
        let other = generate_mr(4, &c, MrSequence::T1).unwrap();
        let ratio = m(&t1, Tissue::Fat) / mean_of(&other, &tissue_map(4, &c).unwrap(), Tissue::Fat);
        assert!(!(0.9..1.1).contains(&ratio), "scales {ratio}");
    }
}
