//! The acquisition side of a phantom: grid shape, voxel spacing, axis
//! directions, field-of-view centre, noise and blur.

use crate::clinical::ClinicalOptions;
use crate::{Error, Result};
use liverseg_io::Affine;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The largest number of voxels [`crate::generate`] accepts (2³⁰, 2 GiB of
/// `i16`), so that a typo in a size fails fast instead of exhausting memory.
pub const MAX_VOXELS: usize = 1 << 30;

/// How a phantom is "scanned": the voxel grid laid over the patient.
///
/// The anatomy lives in a patient-centred RAS frame (millimetres, +x to the
/// patient's right, +y anterior, +z superior; the origin lies on the body
/// axis at about the middle of the liver). A configuration only decides
/// where voxels sample that anatomy, so changing the spacing or flipping an
/// axis changes the grid and the affine but not the organs.
#[derive(Clone, Debug, PartialEq)]
pub struct PhantomConfig {
    /// Voxels along array axes `[i, j, k]`.
    pub dims: [usize; 3],
    /// Voxel size along each array axis, mm (positive).
    pub spacing: [f64; 3],
    /// For each array axis, whether its index grows against the RAS
    /// direction (towards Left, Posterior or Inferior). `[true, true, false]`
    /// gives the `LPS` affine `diag(-sx, -sy, sz)` that dcm2niix writes for
    /// an axial DICOM series; `[false, false, false]` is `RAS`;
    /// `[true, true, true]` is `LPI` (slices stored head to feet).
    pub flips: [bool; 3],
    /// World position (patient frame, mm) of the centre of the grid. A
    /// non-zero value moves the field of view, as table height and patient
    /// positioning do on a scanner; it also makes the affine's origin
    /// non-trivial.
    pub center: [f64; 3],
    /// Standard deviation of the additive Gaussian noise, HU (0 for none).
    pub noise_sigma: f64,
    /// Standard deviation of the Gaussian blur applied before the noise, mm
    /// (0 for none). It stands in for the scanner's point-spread function.
    pub blur_sigma: f64,
    /// `Some` opts in to the clinical mode (contrast phases, lesions,
    /// thorax and pelvis, kernel noise, thick slices); `None` keeps the
    /// classic phantom, byte for byte.
    pub clinical: Option<ClinicalOptions>,
}

impl Default for PhantomConfig {
    /// A small DICOM-like (`LPS`) case: 128 × 128 × 64 voxels of
    /// 3.0 × 3.0 × 4.0 mm (384 × 384 × 256 mm), 10 HU noise, 1 mm blur.
    fn default() -> Self {
        PhantomConfig {
            dims: [128, 128, 64],
            spacing: [3.0, 3.0, 4.0],
            flips: [true, true, false],
            center: [0.0, 0.0, 0.0],
            noise_sigma: 10.0,
            blur_sigma: 1.0,
            clinical: None,
        }
    }
}

/// The ranges [`PhantomConfig::random_in`] draws from.
///
/// In-plane, a field of view and a matrix size are drawn and the spacing
/// follows from them (square pixels), because a body of 30–35 cm must fit
/// whatever the matrix: the default matrix of 96–160 voxels therefore gives
/// 2–4.6 mm pixels, and [`RandomRanges::scanner`] gives the 0.6–0.9 mm of a
/// clinical 512 matrix. Along z, a slice spacing and a scan length are drawn
/// and the slice count follows, clamped to `slices`.
#[derive(Clone, Debug, PartialEq)]
pub struct RandomRanges {
    /// In-plane matrix size (inclusive range).
    pub in_plane_dims: (usize, usize),
    /// In-plane field of view, mm.
    pub fov_mm: (f64, f64),
    /// Slice spacing, mm.
    pub slice_spacing: (f64, f64),
    /// Scan length along z, mm.
    pub scan_length_mm: (f64, f64),
    /// Slice count limits (inclusive range).
    pub slices: (usize, usize),
    /// Noise standard deviation, HU.
    pub noise_sigma: (f64, f64),
    /// Blur standard deviation, mm.
    pub blur_sigma: (f64, f64),
}

impl Default for RandomRanges {
    /// Modest sizes for CPU training demos: 96–160 in-plane, 40–100 slices
    /// of 1–5 mm.
    fn default() -> Self {
        RandomRanges {
            in_plane_dims: (96, 160),
            fov_mm: (340.0, 440.0),
            slice_spacing: (1.0, 5.0),
            scan_length_mm: (150.0, 300.0),
            slices: (40, 100),
            noise_sigma: (6.0, 20.0),
            blur_sigma: (0.5, 1.5),
        }
    }
}

impl RandomRanges {
    /// Clinical-scanner sizes: a 512 matrix over 310–460 mm (0.6–0.9 mm
    /// pixels) and up to 400 slices. Each case is then 50–200 MB of `i16`.
    pub fn scanner() -> Self {
        RandomRanges {
            in_plane_dims: (512, 512),
            fov_mm: (310.0, 460.0),
            slice_spacing: (0.7, 5.0),
            scan_length_mm: (180.0, 320.0),
            slices: (40, 400),
            noise_sigma: (8.0, 25.0),
            blur_sigma: (0.4, 0.8),
        }
    }
}

impl PhantomConfig {
    /// A configuration drawn from [`RandomRanges::default`] by `seed`.
    pub fn random(seed: u64) -> Self {
        Self::random_in(seed, &RandomRanges::default())
    }

    /// A configuration drawn from `ranges` by `seed`, varying matrix size,
    /// spacing, slice count, orientation and field-of-view centre the way
    /// scans from different scanners and protocols vary. Half the cases are
    /// `LPS` (DICOM-derived), a quarter `RAS` and a quarter `LPI` (z
    /// flipped). Degenerate ranges (`lo >= hi`) give `lo`.
    pub fn random_in(seed: u64, ranges: &RandomRanges) -> Self {
        // A stream of its own, so the grid and the anatomy (stream 0 of the
        // same seed) are drawn independently.
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(1);
        let n = range_usize(&mut rng, ranges.in_plane_dims);
        let fov = range_f64(&mut rng, ranges.fov_mm);
        let sxy = fov / n as f64;
        let sz = range_f64(&mut rng, ranges.slice_spacing);
        let length = range_f64(&mut rng, ranges.scan_length_mm);
        let (lo, hi) = ranges.slices;
        let nz = ((length / sz).round() as usize).clamp(lo.max(1), hi.max(lo.max(1)));
        let flips = match rng.random_range(0..4u8) {
            0 | 1 => [true, true, false],
            2 => [false, false, false],
            _ => [true, true, true],
        };
        // Round spacings to 1 µm as scanners do, so headers read back
        // exactly what was asked for.
        let round = |v: f64| (v * 1000.0).round() / 1000.0;
        PhantomConfig {
            dims: [n, n, nz],
            spacing: [round(sxy), round(sxy), round(sz)],
            flips,
            center: [
                rng.random_range(-15.0..15.0),
                rng.random_range(-20.0..10.0),
                rng.random_range(-25.0..25.0),
            ],
            noise_sigma: range_f64(&mut rng, ranges.noise_sigma),
            blur_sigma: range_f64(&mut rng, ranges.blur_sigma),
            clinical: None,
        }
    }

    /// Checks every field: positive sizes and spacings, finite values, and
    /// at most [`MAX_VOXELS`] voxels.
    pub fn validate(&self) -> Result<()> {
        if self.dims.contains(&0) {
            return Err(Error::config(
                "dims",
                format!("{:?} has a zero size", self.dims),
            ));
        }
        let n = self
            .dims
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .filter(|&n| n <= MAX_VOXELS);
        if n.is_none() {
            return Err(Error::config(
                "dims",
                format!("{:?} exceeds {MAX_VOXELS} voxels", self.dims),
            ));
        }
        if !self.spacing.iter().all(|s| s.is_finite() && *s > 0.0) {
            return Err(Error::config(
                "spacing",
                format!("{:?} must be finite and positive (mm)", self.spacing),
            ));
        }
        if !self.center.iter().all(|c| c.is_finite()) {
            return Err(Error::config(
                "center",
                format!("{:?} is not finite", self.center),
            ));
        }
        for (field, v) in [
            ("noise_sigma", self.noise_sigma),
            ("blur_sigma", self.blur_sigma),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::config(field, format!("{v} must be >= 0")));
            }
        }
        if let Some(c) = &self.clinical {
            c.validate()?;
        }
        Ok(())
    }

    /// The voxel-to-world affine (RAS mm) of the grid: diagonal, with the
    /// signs given by [`PhantomConfig::flips`] and the origin placed so that
    /// the grid centre lands on [`PhantomConfig::center`].
    pub fn affine(&self) -> Affine {
        let mut step = [0.0; 3];
        let mut origin = [0.0; 3];
        for a in 0..3 {
            step[a] = if self.flips[a] {
                -self.spacing[a]
            } else {
                self.spacing[a]
            };
            let half = (self.dims[a].max(1) - 1) as f64 / 2.0;
            origin[a] = self.center[a] - step[a] * half;
        }
        Affine::from_spacing_origin(step, origin)
    }

    /// nibabel-style orientation codes of [`PhantomConfig::affine`], such as
    /// `"LPS"`.
    pub fn axcodes(&self) -> String {
        self.affine().axcodes_string()
    }
}

fn range_f64(rng: &mut impl Rng, (lo, hi): (f64, f64)) -> f64 {
    if lo < hi {
        rng.random_range(lo..hi)
    } else {
        lo
    }
}

fn range_usize(rng: &mut impl Rng, (lo, hi): (usize, usize)) -> usize {
    if lo < hi {
        rng.random_range(lo..=hi)
    } else {
        lo
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_affine_is_lps_centred() {
        let c = PhantomConfig::default();
        let a = c.affine();
        assert_eq!(c.axcodes(), "LPS");
        assert_eq!(a.origin(), [190.5, 190.5, -126.0]);
        let centre = a.apply([63.5, 63.5, 31.5]);
        assert!(centre.iter().all(|v| v.abs() < 1e-9), "{centre:?}");
        c.validate().unwrap();
    }

    #[test]
    fn random_configs_stay_in_range_and_vary() {
        let r = RandomRanges::default();
        let mut codes = std::collections::BTreeSet::new();
        for seed in 0..40 {
            let c = PhantomConfig::random(seed);
            c.validate().unwrap();
            assert_eq!(c, PhantomConfig::random(seed));
            assert!((96..=160).contains(&c.dims[0]) && c.dims[0] == c.dims[1]);
            assert!((40..=100).contains(&c.dims[2]));
            let fov = c.spacing[0] * c.dims[0] as f64;
            assert!((339.0..=441.0).contains(&fov), "{fov}");
            assert!((1.0..=5.0).contains(&c.spacing[2]));
            assert!(c.noise_sigma >= r.noise_sigma.0 && c.noise_sigma <= r.noise_sigma.1);
            codes.insert(c.axcodes());
        }
        let codes: Vec<_> = codes.into_iter().collect();
        assert_eq!(codes, vec!["LPI", "LPS", "RAS"]);
    }

    #[test]
    fn validate_names_the_field() {
        let mut c = PhantomConfig {
            spacing: [1.0, 0.0, 1.0],
            ..PhantomConfig::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("spacing"), "{e}");
        c.spacing = [1.0; 3];
        c.dims = [1 << 12, 1 << 12, 1 << 12];
        assert!(c.validate().unwrap_err().to_string().contains("dims"));
        c.dims = [4, 4, 4];
        c.noise_sigma = -1.0;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("noise_sigma")
        );
    }
}
