//! Intensity transforms: ScaleIntensityRange, NormalizeIntensity and the
//! nnU-Net CT normalisation.

use liverseg_io::{Volume, Voxel};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// MONAI `ScaleIntensityRange(a_min, a_max, b_min, b_max, clip)`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScaleIntensityRange {
    /// Input value mapped to `b_min`.
    pub a_min: f64,
    /// Input value mapped to `b_max`.
    pub a_max: f64,
    /// Output of `a_min`.
    pub b_min: f64,
    /// Output of `a_max`.
    pub b_max: f64,
    /// Clip the output to `[b_min, b_max]`.
    pub clip: bool,
}

impl ScaleIntensityRange {
    /// The tutorial's CT window: −200..200 HU → 0..1, clipped.
    pub fn ct_window() -> Self {
        ScaleIntensityRange {
            a_min: -200.0,
            a_max: 200.0,
            b_min: 0.0,
            b_max: 1.0,
            clip: true,
        }
    }

    /// Checks the parameters (MONAI only warns on `a_min == a_max`; a
    /// division by zero has no useful output, so it is an error here).
    pub fn validate(&self) -> Result<()> {
        let all = [self.a_min, self.a_max, self.b_min, self.b_max];
        if all.iter().any(|v| !v.is_finite()) || self.a_max == self.a_min {
            return Err(Error::Param(format!(
                "ScaleIntensityRange: a_min {} and a_max {} must be finite and different",
                self.a_min, self.a_max
            )));
        }
        Ok(())
    }

    /// The mapping of one value. MONAI computes it in the image's float32:
    /// `(x − a_min) / (a_max − a_min) · (b_max − b_min) + b_min`, each step
    /// rounded to float32, then clips.
    #[inline]
    pub fn value(&self, x: f32) -> f32 {
        let v = (x - self.a_min as f32) / (self.a_max - self.a_min) as f32;
        let v = v * (self.b_max - self.b_min) as f32 + self.b_min as f32;
        if self.clip {
            // MONAI clips to [b_min, b_max] in that order of arguments.
            v.clamp(
                self.b_min.min(self.b_max) as f32,
                self.b_max.max(self.b_min) as f32,
            )
        } else {
            v
        }
    }

    /// Applies the mapping to every voxel.
    pub fn apply<T: Voxel>(&self, v: &Volume<T>) -> Result<Volume<f32>> {
        self.validate()?;
        Ok(v.map(|x| self.value(x.to_f64() as f32)))
    }
}

/// MONAI `NormalizeIntensity(nonzero)` with no fixed `subtrahend`/`divisor`:
/// `(x − mean) / std` with the population standard deviation (a zero std
/// divides by 1). With `nonzero`, statistics come from and apply to the
/// non-zero voxels only; zeros stay zero.
pub fn normalize_intensity<T: Voxel>(v: &Volume<T>, nonzero: bool) -> Volume<f32> {
    let select = |x: f64| !nonzero || x != 0.0;
    let (n, sum, sum_sq) = v
        .data()
        .par_chunks(1 << 16)
        .map(|c| {
            let mut acc = (0usize, 0.0f64, 0.0f64);
            for &x in c {
                let x = x.to_f64();
                if select(x) {
                    acc.0 += 1;
                    acc.1 += x;
                }
            }
            let mean_c = if acc.0 > 0 { acc.1 / acc.0 as f64 } else { 0.0 };
            // Per-chunk centred sum of squares, merged below (Chan et al.),
            // keeps the variance accurate for CT values around −1000.
            for &x in c {
                let x = x.to_f64();
                if select(x) {
                    acc.2 += (x - mean_c) * (x - mean_c);
                }
            }
            acc
        })
        .collect::<Vec<_>>()
        .into_iter()
        .fold((0usize, 0.0f64, 0.0f64), |a, b| {
            if a.0 == 0 {
                return b;
            }
            if b.0 == 0 {
                return a;
            }
            let (na, nb) = (a.0 as f64, b.0 as f64);
            let delta = b.1 / nb - a.1 / na;
            (
                a.0 + b.0,
                a.1 + b.1,
                a.2 + b.2 + delta * delta * na * nb / (na + nb),
            )
        });
    if n == 0 {
        return v.map(|x| x.to_f64() as f32);
    }
    let mean = sum / n as f64;
    let std = (sum_sq / n as f64).sqrt();
    let div = if std == 0.0 { 1.0 } else { std };
    v.map(|x| {
        let x = x.to_f64();
        if select(x) {
            ((x - mean) / div) as f32
        } else {
            x as f32
        }
    })
}

/// nnU-Net's CT normalisation: clip to dataset-wide foreground percentiles
/// (0.5 and 99.5), then subtract the foreground mean and divide by the
/// foreground standard deviation (at least 1e-8). The statistics are the
/// dataset's, not the case's, so every case is normalised the same way.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CtNormalization {
    /// 0.5th percentile of foreground intensities.
    pub lower: f64,
    /// 99.5th percentile of foreground intensities.
    pub upper: f64,
    /// Mean of foreground intensities.
    pub mean: f64,
    /// Standard deviation of foreground intensities.
    pub std: f64,
}

impl CtNormalization {
    /// Statistics from foreground intensity samples (nnU-Net samples the
    /// voxels under the label of every training case). Percentiles use
    /// numpy's default linear interpolation; the std is the population std.
    pub fn from_samples(samples: &mut [f32]) -> Result<Self> {
        if samples.is_empty() || samples.iter().any(|v| !v.is_finite()) {
            return Err(Error::Param(
                "CT normalisation needs a non-empty set of finite foreground samples".into(),
            ));
        }
        samples.sort_by(f32::total_cmp);
        let n = samples.len() as f64;
        let mean = samples.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var = samples
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / n;
        Ok(CtNormalization {
            lower: percentile_sorted(samples, 0.5),
            upper: percentile_sorted(samples, 99.5),
            mean,
            std: var.sqrt(),
        })
    }

    /// `(clip(x, lower, upper) − mean) / max(std, 1e-8)`.
    pub fn apply<T: Voxel>(&self, v: &Volume<T>) -> Volume<f32> {
        let div = self.std.max(1e-8);
        v.map(|x| ((x.to_f64().clamp(self.lower, self.upper) - self.mean) / div) as f32)
    }
}

/// numpy's `percentile(a, q)` (method "linear") of sorted data.
pub fn percentile_sorted(sorted: &[f32], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q / 100.0 * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    let w = pos - lo as f64;
    f64::from(sorted[lo]) * (1.0 - w) + f64::from(sorted[hi]) * w
}

#[cfg(test)]
mod tests {
    use super::*;
    use liverseg_io::Affine;

    #[test]
    fn ct_window_maps_and_clips() {
        let s = ScaleIntensityRange::ct_window();
        assert_eq!(s.value(-200.0), 0.0);
        assert_eq!(s.value(0.0), 0.5);
        assert_eq!(s.value(100.0), 0.75);
        assert_eq!(s.value(-1000.0), 0.0);
        assert_eq!(s.value(900.0), 1.0);
        let bad = ScaleIntensityRange { a_max: -200.0, ..s };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn normalize_uses_population_std_and_nonzero_mask() {
        let v = Volume::new([4, 1, 1], Affine::identity(), vec![0.0f32, 1.0, 2.0, 3.0]).unwrap();
        let all = normalize_intensity(&v, false);
        // mean 1.5, population std sqrt(1.25).
        let s = 1.25f64.sqrt();
        for (o, x) in all.data().iter().zip([0.0, 1.0, 2.0, 3.0]) {
            assert!((f64::from(*o) - (x - 1.5) / s).abs() < 1e-6);
        }
        let nz = normalize_intensity(&v, true);
        // Non-zero: 1, 2, 3 → mean 2, std sqrt(2/3); 0 stays 0.
        assert_eq!(nz.data()[0], 0.0);
        assert!((f64::from(nz.data()[3]) - 1.0 / (2.0f64 / 3.0).sqrt()).abs() < 1e-6);
    }

    #[test]
    fn percentiles_follow_numpy_linear() {
        let mut s: Vec<f32> = (0..=200).map(|x| x as f32).collect();
        let n = CtNormalization::from_samples(&mut s).unwrap();
        // numpy.percentile(arange(201), 0.5) == 1.0, 99.5 → 199.0.
        assert_eq!(n.lower, 1.0);
        assert_eq!(n.upper, 199.0);
        assert_eq!(n.mean, 100.0);
    }
}
