//! Seeded random augmentation, equivalent in semantics (not in random
//! streams) to MONAI's `Rand*` transforms.
//!
//! # Determinism
//!
//! The same seed gives bit-identical output whatever the number of rayon
//! threads, because:
//!
//! * every random parameter (does the transform fire, the angle, the crop
//!   centre, …) is drawn sequentially from the caller's generator before any
//!   parallel work starts;
//! * per-voxel randomness (Gaussian noise) comes from one generator per `z`
//!   slab, seeded from a single word drawn from the caller's generator and
//!   told apart by the ChaCha stream number, never from a generator shared
//!   inside a parallel loop;
//! * every parallel step computes each output voxel by a fixed sequence of
//!   floating-point operations, independent of how work is split.
//!
//! # Fixed consumption of the stream
//!
//! Each transform draws the same number of 64-bit words from the generator
//! for each input sample, whether or not it fires and whatever the data
//! ([`RandomTransform::words_per_sample`]): the "fires?" value and all the
//! parameters are always drawn, and integer choices use one word each (no
//! rejection sampling). The parameters a later transform sees therefore do
//! not depend on what earlier transforms happened to do, so turning one
//! augmentation's probability up or down leaves the others' draws alone.
//! MONAI, by contrast, skips the parameter draws of a transform that does
//! not fire.

mod crop;
mod draw;
mod geometry;
mod intensity;
#[cfg(test)]
mod tests;

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::spatial::resample::Padding;
use crate::{Error, Pair, Result};
use draw::{fires, uniform, word};

fn default_prob() -> f64 {
    0.1
}
fn one() -> f64 {
    1.0
}
fn one_sample() -> usize {
    1
}
fn yes() -> bool {
    true
}
fn three() -> usize {
    3
}
fn first_two_axes() -> [usize; 2] {
    [0, 1]
}
fn border() -> Padding {
    Padding::Border
}
fn min_zoom() -> f64 {
    0.9
}
fn max_zoom() -> f64 {
    1.1
}
fn noise_std() -> f64 {
    0.1
}
fn smooth_sigma() -> (f64, f64) {
    (0.25, 1.5)
}
fn gamma_range() -> (f64, f64) {
    (0.5, 4.5)
}

/// One random augmentation step with its parameters. Spatial steps move
/// the image and its label together (the image interpolated trilinearly,
/// the label by nearest neighbour, so label values are never invented);
/// intensity steps touch only the image. Fields left out of a serialised
/// transform take the MONAI defaults given in each variant's description.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RandomTransform {
    /// MONAI `RandCropByPosNegLabeld(spatial_size, pos=1, neg=1,
    /// num_samples=1)`: each of `num_samples` crops of `spatial_size` is
    /// centred on a uniformly chosen foreground voxel (label > 0) with
    /// probability `pos / (pos + neg)`, else on a background voxel (label
    /// 0), the centre then moved so the crop lies inside the volume
    /// (`correct_crop_centers`). A volume smaller than the crop is first
    /// padded symmetrically (image 0, label 0) as nnU-Net does, where MONAI
    /// would fail; without foreground every centre is background, without
    /// background every centre is foreground. Needs the label.
    RandCropByPosNegLabel {
        /// Crop shape in voxels (required).
        spatial_size: [usize; 3],
        /// Weight of foreground centres (default 1).
        #[serde(default = "one")]
        pos: f64,
        /// Weight of background centres (default 1).
        #[serde(default = "one")]
        neg: f64,
        /// Crops per input (default 1).
        #[serde(default = "one_sample")]
        num_samples: usize,
    },
    /// MONAI `RandSpatialCrop(roi_size, random_center=True,
    /// random_size=False)`: a crop of `roi_size` at a uniformly random
    /// position (or the central one); an axis shorter than the ROI is kept
    /// whole, without padding.
    RandSpatialCrop {
        /// Crop shape in voxels (required).
        roi_size: [usize; 3],
        /// Random position (default) or `CenterSpatialCrop`'s central one.
        #[serde(default = "yes")]
        random_center: bool,
    },
    /// MONAI `RandFlip(prob=0.1, spatial_axis)`: with probability `prob`,
    /// flips all the listed axes together (one draw for all of them). The
    /// affine absorbs the flip, so voxels keep their world positions.
    RandFlip {
        /// Probability of flipping (default 0.1).
        #[serde(default = "default_prob")]
        prob: f64,
        /// Axes to flip, each 0, 1 or 2 (required; MONAI's `None`, all
        /// axes, is `[0, 1, 2]`).
        axes: Vec<usize>,
    },
    /// MONAI `RandRotate90(prob=0.1, max_k=3, spatial_axes=(0, 1))`: with
    /// probability `prob`, `k` quarter turns in the plane of
    /// `spatial_axes` (from the first axis towards the second, as
    /// `numpy.rot90`), `k` uniform in `1..=max_k`. The affine absorbs the
    /// rotation.
    RandRotate90 {
        /// Probability of rotating (default 0.1).
        #[serde(default = "default_prob")]
        prob: f64,
        /// Largest number of quarter turns (default 3).
        #[serde(default = "three")]
        max_k: usize,
        /// The plane of rotation (default `[0, 1]`).
        #[serde(default = "first_two_axes")]
        spatial_axes: [usize; 2],
    },
    /// MONAI `RandAffine(prob=0.1, rotate_range, shear_range,
    /// translate_range, scale_range, spatial_size=None, mode="bilinear",
    /// padding_mode)`: with probability `prob`, a resampling about the
    /// volume centre `(n − 1) / 2` by `R · Sh · T · S` with angles
    /// `uniform(±rotate_range)` (radians, intrinsic x-y-z), shear
    /// coefficients `uniform(±shear_range)` (MONAI's first three: `(0,1)`,
    /// `(0,2)`, `(1,0)`), translations `uniform(±translate_range)` voxels
    /// and scales `1 + uniform(±scale_range)`. Ranges default to 0. The
    /// output lies on the input's grid (same shape and affine).
    RandAffine {
        /// Probability of transforming (default 0.1).
        #[serde(default = "default_prob")]
        prob: f64,
        /// Half-range of the rotation about each axis, radians.
        #[serde(default)]
        rotate_range: [f64; 3],
        /// Half-range of the scale offset per axis.
        #[serde(default)]
        scale_range: [f64; 3],
        /// Half-range of the three shear coefficients.
        #[serde(default)]
        shear_range: [f64; 3],
        /// Half-range of the translation per axis, voxels.
        #[serde(default)]
        translate_range: [f64; 3],
        /// Values outside the input (default `border`; MONAI's default,
        /// `reflection`, is not offered).
        #[serde(default = "border")]
        padding: Padding,
    },
    /// MONAI `RandZoom(prob=0.1, min_zoom=0.9, max_zoom=1.1,
    /// keep_size=True, padding_mode="edge")` with one factor for all axes:
    /// with probability `prob`, an interpolation to `floor(n · zoom)`
    /// voxels (image trilinear, label nearest; MONAI's image default is
    /// `area`), then with `keep_size` a central edge-pad or crop back to the
    /// input shape. The affine follows MONAI's, keeping voxels at the world
    /// positions of the content they show.
    RandZoom {
        /// Probability of zooming (default 0.1).
        #[serde(default = "default_prob")]
        prob: f64,
        /// Smallest zoom factor (default 0.9).
        #[serde(default = "min_zoom")]
        min_zoom: f64,
        /// Largest zoom factor (default 1.1).
        #[serde(default = "max_zoom")]
        max_zoom: f64,
        /// Pad or crop back to the input shape (default true).
        #[serde(default = "yes")]
        keep_size: bool,
    },
    /// MONAI `RandGaussianNoise(prob=0.1, mean=0.0, std=0.1,
    /// sample_std=True)`: with probability `prob`, adds normal noise of
    /// mean `mean` and standard deviation drawn uniformly in `[0, std]`
    /// (or exactly `std` without `sample_std`).
    RandGaussianNoise {
        /// Probability of adding noise (default 0.1).
        #[serde(default = "default_prob")]
        prob: f64,
        /// Mean of the noise (default 0).
        #[serde(default)]
        mean: f64,
        /// Standard deviation, or its upper bound (default 0.1).
        #[serde(default = "noise_std")]
        std: f64,
        /// Draw the standard deviation in `[0, std]` (default true).
        #[serde(default = "yes")]
        sample_std: bool,
    },
    /// MONAI `RandGaussianSmooth(sigma_x=(0.25, 1.5), sigma_y=(0.25, 1.5),
    /// sigma_z=(0.25, 1.5), prob=0.1, approx="erf")`: with probability
    /// `prob`, a separable Gaussian blur with each axis's sigma (voxels)
    /// uniform in its range, kernels truncated at 4 sigma, zero padding.
    RandGaussianSmooth {
        /// Probability of smoothing (default 0.1).
        #[serde(default = "default_prob")]
        prob: f64,
        /// Sigma range along axis 0 (default (0.25, 1.5)).
        #[serde(default = "smooth_sigma")]
        sigma_x: (f64, f64),
        /// Sigma range along axis 1 (default (0.25, 1.5)).
        #[serde(default = "smooth_sigma")]
        sigma_y: (f64, f64),
        /// Sigma range along axis 2 (default (0.25, 1.5)).
        #[serde(default = "smooth_sigma")]
        sigma_z: (f64, f64),
    },
    /// MONAI `RandScaleIntensity(factors, prob=0.1)`: with probability
    /// `prob`, `x · (1 + uniform(−factors, factors))`.
    RandScaleIntensity {
        /// Probability of scaling (default 0.1).
        #[serde(default = "default_prob")]
        prob: f64,
        /// Half-range of the scale offset (required, at least 0).
        factors: f64,
    },
    /// MONAI `RandShiftIntensity(offsets, prob=0.1)`: with probability
    /// `prob`, `x + uniform(−offsets, offsets)`.
    RandShiftIntensity {
        /// Probability of shifting (default 0.1).
        #[serde(default = "default_prob")]
        prob: f64,
        /// Half-range of the offset (required, at least 0).
        offsets: f64,
    },
    /// MONAI `RandAdjustContrast(prob=0.1, gamma=(0.5, 4.5))`: with
    /// probability `prob`, `((x − min) / (range + 1e-7))^γ · range + min`
    /// with `γ` uniform in `gamma` and the image's own minimum and range.
    RandAdjustContrast {
        /// Probability of adjusting (default 0.1).
        #[serde(default = "default_prob")]
        prob: f64,
        /// Range of the exponent, both ends positive (default (0.5, 4.5)).
        #[serde(default = "gamma_range")]
        gamma: (f64, f64),
    },
}

fn check_prob(name: &str, prob: f64) -> Result<()> {
    if !(0.0..=1.0).contains(&prob) {
        return Err(Error::Param(format!(
            "{name}: prob must lie in [0, 1], got {prob}"
        )));
    }
    Ok(())
}

fn check_non_negative(name: &str, what: &str, v: f64) -> Result<()> {
    if !(v.is_finite() && v >= 0.0) {
        return Err(Error::Param(format!(
            "{name}: {what} must be finite and at least 0, got {v}"
        )));
    }
    Ok(())
}

fn check_size(name: &str, what: &str, size: [usize; 3]) -> Result<()> {
    if size.contains(&0) {
        return Err(Error::Param(format!(
            "{name}: {what} {size:?} has an empty axis"
        )));
    }
    Ok(())
}

fn check_range(name: &str, what: &str, (lo, hi): (f64, f64), positive: bool) -> Result<()> {
    let low_ok = if positive { lo > 0.0 } else { lo >= 0.0 };
    if !(lo.is_finite() && hi.is_finite() && low_ok && lo <= hi) {
        let bound = if positive { "above 0" } else { "at least 0" };
        return Err(Error::Param(format!(
            "{name}: {what} ({lo}, {hi}) must be finite, {bound} and in increasing order"
        )));
    }
    Ok(())
}

impl RandomTransform {
    /// MONAI's name of the transform, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            RandomTransform::RandCropByPosNegLabel { .. } => "RandCropByPosNegLabel",
            RandomTransform::RandSpatialCrop { .. } => "RandSpatialCrop",
            RandomTransform::RandFlip { .. } => "RandFlip",
            RandomTransform::RandRotate90 { .. } => "RandRotate90",
            RandomTransform::RandAffine { .. } => "RandAffine",
            RandomTransform::RandZoom { .. } => "RandZoom",
            RandomTransform::RandGaussianNoise { .. } => "RandGaussianNoise",
            RandomTransform::RandGaussianSmooth { .. } => "RandGaussianSmooth",
            RandomTransform::RandScaleIntensity { .. } => "RandScaleIntensity",
            RandomTransform::RandShiftIntensity { .. } => "RandShiftIntensity",
            RandomTransform::RandAdjustContrast { .. } => "RandAdjustContrast",
        }
    }

    /// The number of 64-bit words [`RandomTransform::apply`] draws from the
    /// generator for one input sample: fixed by the parameters, the same
    /// whether or not the transform fires.
    pub fn words_per_sample(&self) -> usize {
        match self {
            RandomTransform::RandCropByPosNegLabel { num_samples, .. } => {
                num_samples.saturating_mul(2)
            }
            RandomTransform::RandSpatialCrop { .. } => 3,
            RandomTransform::RandFlip { .. } => 1,
            RandomTransform::RandRotate90 { .. } => 2,
            RandomTransform::RandAffine { .. } => 13,
            RandomTransform::RandZoom { .. } => 2,
            RandomTransform::RandGaussianNoise { .. } => 3,
            RandomTransform::RandGaussianSmooth { .. } => 4,
            RandomTransform::RandScaleIntensity { .. }
            | RandomTransform::RandShiftIntensity { .. }
            | RandomTransform::RandAdjustContrast { .. } => 2,
        }
    }

    /// Checks the parameters, naming the transform and the parameter in the
    /// error.
    pub fn validate(&self) -> Result<()> {
        let name = self.name();
        match self {
            RandomTransform::RandCropByPosNegLabel {
                spatial_size,
                pos,
                neg,
                num_samples,
            } => {
                check_size(name, "spatial_size", *spatial_size)?;
                check_non_negative(name, "pos", *pos)?;
                check_non_negative(name, "neg", *neg)?;
                if pos + neg <= 0.0 {
                    return Err(Error::Param(format!(
                        "{name}: pos and neg cannot both be 0"
                    )));
                }
                if *num_samples == 0 {
                    return Err(Error::Param(format!(
                        "{name}: num_samples must be at least 1"
                    )));
                }
            }
            RandomTransform::RandSpatialCrop { roi_size, .. } => {
                check_size(name, "roi_size", *roi_size)?;
            }
            RandomTransform::RandFlip { prob, axes } => {
                check_prob(name, *prob)?;
                let mut seen = [false; 3];
                if axes.is_empty() {
                    return Err(Error::Param(format!("{name}: axes is empty")));
                }
                for &a in axes {
                    if a > 2 || seen[a] {
                        return Err(Error::Param(format!(
                            "{name}: axes {axes:?} must be distinct axes among 0, 1, 2"
                        )));
                    }
                    seen[a] = true;
                }
            }
            RandomTransform::RandRotate90 {
                prob,
                max_k,
                spatial_axes,
            } => {
                check_prob(name, *prob)?;
                if *max_k == 0 {
                    return Err(Error::Param(format!("{name}: max_k must be at least 1")));
                }
                let [a, b] = *spatial_axes;
                if a > 2 || b > 2 || a == b {
                    return Err(Error::Param(format!(
                        "{name}: spatial_axes {spatial_axes:?} must be two different axes among 0, 1, 2"
                    )));
                }
            }
            RandomTransform::RandAffine {
                prob,
                rotate_range,
                scale_range,
                shear_range,
                translate_range,
                ..
            } => {
                check_prob(name, *prob)?;
                for (what, r) in [
                    ("rotate_range", rotate_range),
                    ("scale_range", scale_range),
                    ("shear_range", shear_range),
                    ("translate_range", translate_range),
                ] {
                    for &v in r {
                        check_non_negative(name, what, v)?;
                    }
                }
            }
            RandomTransform::RandZoom {
                prob,
                min_zoom,
                max_zoom,
                ..
            } => {
                check_prob(name, *prob)?;
                check_range(name, "min_zoom..max_zoom", (*min_zoom, *max_zoom), true)?;
            }
            RandomTransform::RandGaussianNoise {
                prob, mean, std, ..
            } => {
                check_prob(name, *prob)?;
                if !mean.is_finite() {
                    return Err(Error::Param(format!(
                        "{name}: mean must be finite, got {mean}"
                    )));
                }
                check_non_negative(name, "std", *std)?;
            }
            RandomTransform::RandGaussianSmooth {
                prob,
                sigma_x,
                sigma_y,
                sigma_z,
            } => {
                check_prob(name, *prob)?;
                check_range(name, "sigma_x", *sigma_x, false)?;
                check_range(name, "sigma_y", *sigma_y, false)?;
                check_range(name, "sigma_z", *sigma_z, false)?;
            }
            RandomTransform::RandScaleIntensity { prob, factors } => {
                check_prob(name, *prob)?;
                check_non_negative(name, "factors", *factors)?;
            }
            RandomTransform::RandShiftIntensity { prob, offsets } => {
                check_prob(name, *prob)?;
                check_non_negative(name, "offsets", *offsets)?;
            }
            RandomTransform::RandAdjustContrast { prob, gamma } => {
                check_prob(name, *prob)?;
                check_range(name, "gamma", *gamma, true)?;
            }
        }
        Ok(())
    }

    /// Applies the transform to one sample, drawing its parameters from
    /// `rng` ([`RandomTransform::words_per_sample`] words, always). Crops
    /// return `num_samples` samples (one for `RandSpatialCrop`); every
    /// other transform returns one.
    ///
    /// Further channels get the same draws as the image (the generator is
    /// replayed from where the image's draws began), so they move and are
    /// scaled with it; the generator ends where one channel leaves it.
    pub fn apply(&self, pair: Pair, rng: &mut ChaCha8Rng) -> Result<Vec<Pair>> {
        let Pair {
            image,
            label,
            channels,
        } = pair;
        if channels.is_empty() {
            return self.apply_one(
                Pair {
                    image,
                    label,
                    channels,
                },
                rng,
            );
        }
        let start = rng.clone();
        let mut out = self.apply_one(
            Pair {
                image,
                label: label.clone(),
                channels: Vec::new(),
            },
            rng,
        )?;
        for c in channels {
            let mut replay = start.clone();
            let same = self.apply_one(
                Pair {
                    image: c,
                    label: label.clone(),
                    channels: Vec::new(),
                },
                &mut replay,
            )?;
            for (o, s) in out.iter_mut().zip(same) {
                o.channels.push(s.image);
            }
        }
        Ok(out)
    }

    fn apply_one(&self, pair: Pair, rng: &mut ChaCha8Rng) -> Result<Vec<Pair>> {
        self.validate()?;
        let name = self.name();
        if let Some(l) = &pair.label
            && !pair.image.same_grid(l, 1e-3)
        {
            return Err(Error::Grid(format!(
                "{name}: image {:?} and label {:?} are not on the same grid",
                pair.image.dims(),
                l.dims()
            )));
        }
        let one = |p: Pair| Ok(vec![p]);
        match self {
            RandomTransform::RandCropByPosNegLabel {
                spatial_size,
                pos,
                neg,
                num_samples,
            } => crop::pos_neg(pair, *spatial_size, *pos, *neg, *num_samples, rng),
            RandomTransform::RandSpatialCrop {
                roi_size,
                random_center,
            } => crop::spatial(pair, *roi_size, *random_center, rng),
            RandomTransform::RandFlip { prob, axes } => {
                one(geometry::rand_flip(pair, *prob, axes, rng)?)
            }
            RandomTransform::RandRotate90 {
                prob,
                max_k,
                spatial_axes,
            } => one(geometry::rand_rotate90(
                pair,
                *prob,
                *max_k,
                *spatial_axes,
                rng,
            )?),
            RandomTransform::RandAffine {
                prob,
                rotate_range,
                scale_range,
                shear_range,
                translate_range,
                padding,
            } => {
                let fire = fires(rng, *prob);
                let params = geometry::draw_affine(
                    rng,
                    *rotate_range,
                    *shear_range,
                    *translate_range,
                    *scale_range,
                );
                if !fire {
                    return one(pair);
                }
                let map = geometry::affine_map(&params, pair.image.dims());
                one(geometry::warp(&pair, &map, *padding)?)
            }
            RandomTransform::RandZoom {
                prob,
                min_zoom,
                max_zoom,
                keep_size,
            } => {
                let fire = fires(rng, *prob);
                let z = uniform(rng, *min_zoom, *max_zoom);
                if !fire {
                    return one(pair);
                }
                one(geometry::zoom(&pair, z, *keep_size)?)
            }
            RandomTransform::RandGaussianNoise {
                prob,
                mean,
                std,
                sample_std,
            } => {
                let fire = fires(rng, *prob);
                let drawn = uniform(rng, 0.0, *std);
                let seed = word(rng);
                if !fire {
                    return one(pair);
                }
                let std = if *sample_std { drawn } else { *std };
                let mut pair = pair;
                intensity::add_noise(&mut pair.image, *mean, std, seed);
                one(pair)
            }
            RandomTransform::RandGaussianSmooth {
                prob,
                sigma_x,
                sigma_y,
                sigma_z,
            } => {
                let fire = fires(rng, *prob);
                let sigma = [
                    uniform(rng, sigma_x.0, sigma_x.1),
                    uniform(rng, sigma_y.0, sigma_y.1),
                    uniform(rng, sigma_z.0, sigma_z.1),
                ];
                if !fire {
                    return one(pair);
                }
                let image = intensity::smooth(&pair.image, sigma)?;
                one(Pair { image, ..pair })
            }
            RandomTransform::RandScaleIntensity { prob, factors } => {
                let fire = fires(rng, *prob);
                let f = uniform(rng, -factors, *factors);
                if !fire {
                    return one(pair);
                }
                let image = pair.image.map(|x| (f64::from(x) * (1.0 + f)) as f32);
                one(Pair { image, ..pair })
            }
            RandomTransform::RandShiftIntensity { prob, offsets } => {
                let fire = fires(rng, *prob);
                let o = uniform(rng, -offsets, *offsets);
                if !fire {
                    return one(pair);
                }
                let image = pair.image.map(|x| (f64::from(x) + o) as f32);
                one(Pair { image, ..pair })
            }
            RandomTransform::RandAdjustContrast { prob, gamma } => {
                let fire = fires(rng, *prob);
                let g = uniform(rng, gamma.0, gamma.1);
                if !fire {
                    return one(pair);
                }
                let image = intensity::adjust_contrast(&pair.image, g);
                one(Pair { image, ..pair })
            }
        }
    }
}

/// Applies `transforms` in order, each to every sample the previous steps
/// produced (in order), so a crop with `num_samples = n` early in the chain
/// multiplies the samples the later steps see. The generator is consumed
/// sequentially, sample after sample.
pub fn apply_chain(
    transforms: &[RandomTransform],
    pair: Pair,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<Pair>> {
    let mut samples = vec![pair];
    for t in transforms {
        let mut next = Vec::with_capacity(samples.len());
        for s in samples {
            next.extend(t.apply(s, rng)?);
        }
        samples = next;
    }
    Ok(samples)
}
