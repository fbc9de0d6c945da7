//! Presets: named, serialisable preprocessing recipes (the built-in `seed`,
//! `patch` and `fast`), their training-time augmentation and the per-case
//! random generator.

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::step::Step;
use crate::intensity::ScaleIntensityRange;
use crate::random::{RandomTransform, apply_chain};
use crate::spatial::crop::{CropForegroundOptions, PadMethod};
use crate::spatial::resample::{Interpolation, Padding};
use crate::spatial::resize::ResizeMode;
use crate::{Error, Pair, Result};

/// A named, serialisable preprocessing recipe. A model checkpoint stores
/// the preset it was trained with, so prediction repeats it exactly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Preset {
    /// `"seed"`, `"patch"` or a user name.
    pub name: String,
    /// Deterministic steps, in order.
    pub steps: Vec<Step>,
    /// Training-time random transforms applied after `steps` (patch
    /// sampling and augmentation), in order. Empty for inference-only
    /// presets and for `seed`, whose tutorial trains on the whole resized
    /// volume.
    #[serde(default)]
    pub augment: Vec<RandomTransform>,
}

impl Preset {
    /// The original MONAI tutorial, exactly: Spacing(1.5, 1.5, 1.0;
    /// bilinear/nearest) → Orientation(RAS) → ScaleIntensityRange(−200..200
    /// → 0..1, clip) → CropForeground(from the image) → Resize(128, 128, 64;
    /// area/nearest).
    pub fn seed() -> Preset {
        Preset::tutorial_chain("seed", [1.5, 1.5, 1.0], [128, 128, 64], ResizeMode::Nearest)
    }

    /// The tutorial's chain (Spacing → Orientation RAS → CT window →
    /// CropForeground → Resize with area for the image) at another spacing,
    /// size and label resize mode, without augmentation.
    pub fn tutorial_chain(
        name: &str,
        pixdim: [f64; 3],
        size: [usize; 3],
        label_mode: ResizeMode,
    ) -> Preset {
        Preset {
            name: name.into(),
            steps: vec![
                Step::Spacing {
                    pixdim,
                    image_mode: Interpolation::Linear,
                },
                Step::Orientation {
                    axcodes: "RAS".into(),
                },
                Step::ScaleIntensityRange(ScaleIntensityRange::ct_window()),
                Step::CropForeground(CropForegroundOptions::default()),
                Step::Resize {
                    size,
                    image_mode: ResizeMode::Area,
                    label_mode,
                },
            ],
            augment: Vec::new(),
        }
    }

    /// The nnU-Net-like full-resolution path: resampling to a fixed
    /// spacing, RAS (in this order, as [`fast`](Self::fast), so that an
    /// int16 CT is resampled straight from its stored values, with no
    /// full-size float copy), cropping to the body (voxels above −500 HU, as
    /// [`fast`](Self::fast): the air around the patient and beside the
    /// table holds no organ: on the 512 × 512 × 200 bench phantom it takes
    /// the 1.5 mm grid from 299 × 299 × 170 to 288 × 163 × 170 voxels), CT normalisation
    /// (dataset statistics filled in by training), padding to at least
    /// one 128 × 128 × 64 patch; at training time,
    /// 128 × 128 × 64 patches with one in three centred on foreground
    /// (nnU-Net's oversampling) and nnU-Net's augmentations (see
    /// [`patch_augmentation`]).
    pub fn patch() -> Preset {
        Preset {
            name: "patch".into(),
            steps: vec![
                Step::Spacing {
                    pixdim: [1.5, 1.5, 1.5],
                    image_mode: Interpolation::Linear,
                },
                Step::Orientation {
                    axcodes: "RAS".into(),
                },
                body_crop(),
                Step::CtNormalize { stats: None },
                Step::SpatialPad {
                    size: [128, 128, 64],
                    method: PadMethod::Symmetric,
                },
            ],
            augment: patch_augmentation([128, 128, 64]),
        }
    }

    /// The low-resolution path (`liverseg predict --fast`, as
    /// TotalSegmentator's 3 mm models): resampling to 3 mm isotropic, RAS,
    /// cropping to the body (voxels above −500 HU), CT normalisation
    /// (dataset statistics filled in by training), padding to at least one
    /// 96 × 96 × 64 patch (288 × 288 × 192 mm, a whole liver with its
    /// surroundings); at training time, patches of that size with
    /// [`patch_augmentation`]. On the 512 × 512 × 200 bench phantom the
    /// network sees 144 × 96 × 85 voxels, a seventh of the 1.5 mm
    /// [`patch`](Self::patch) path's 288 × 163 × 170.
    ///
    /// Spacing comes before Orientation (the same grid at an isotropic
    /// spacing) so an int16 CT goes straight into the one resampling pass
    /// without a full-size float copy.
    pub fn fast() -> Preset {
        let patch = [96, 96, 64];
        Preset {
            name: "fast".into(),
            steps: vec![
                Step::Spacing {
                    pixdim: [3.0; 3],
                    image_mode: Interpolation::Linear,
                },
                Step::Orientation {
                    axcodes: "RAS".into(),
                },
                body_crop(),
                Step::CtNormalize { stats: None },
                Step::SpatialPad {
                    size: patch,
                    method: PadMethod::Symmetric,
                },
            ],
            augment: patch_augmentation(patch),
        }
    }

    /// The names [`Preset::by_name`] knows.
    pub const BUILT_IN: [&'static str; 3] = ["seed", "patch", "fast"];

    /// The size of what a network trained with this preset saw: the last
    /// Resize step's size, else the size of the training crop (patch
    /// presets). Sliding-window inference uses it as its window.
    pub fn window(&self) -> Option<[usize; 3]> {
        let resized = self.steps.iter().rev().find_map(|s| match s {
            Step::Resize { size, .. } => Some(*size),
            _ => None,
        });
        resized.or_else(|| {
            self.augment.iter().find_map(|t| match t {
                RandomTransform::RandCropByPosNegLabel { spatial_size, .. } => Some(*spatial_size),
                RandomTransform::RandSpatialCrop { roi_size, .. } => Some(*roi_size),
                _ => None,
            })
        })
    }

    /// Applies the training-time transforms ([`Preset::augment`]) to a
    /// preprocessed pair. Crops can return several samples.
    pub fn augment(&self, pair: Pair, rng: &mut ChaCha8Rng) -> Result<Vec<Pair>> {
        if self.augment.is_empty() {
            return Ok(vec![pair]);
        }
        apply_chain(&self.augment, pair, rng)
    }

    /// This preset for images of `modality`, a dataset's channel name, as
    /// nnU-Net chooses a normalisation from it: `CT` keeps the preset as it
    /// is (CT window or CT normalisation); `noNorm` drops its intensity
    /// steps; any other name (`MRI`, `T2`, `FLAIR`, `ADC`, ...) replaces them
    /// by a z-score over the non-zero voxels, applied last so that
    /// CropForeground still sees the raw, non-negative intensities; a
    /// preset that already z-scores and has no CT step is kept. The name
    /// gains `+zscore` or `+nonorm` when anything changed.
    pub fn for_modality(&self, modality: &str) -> Preset {
        let m = modality.trim();
        let ct_steps = self
            .steps
            .iter()
            .any(|s| matches!(s, Step::ScaleIntensityRange(_) | Step::CtNormalize { .. }));
        let zscored = self
            .steps
            .iter()
            .any(|s| matches!(s, Step::NormalizeIntensity { .. }));
        // CT, or a preset that already z-scores (a plan's), stays.
        if m.eq_ignore_ascii_case("ct")
            || (zscored && !ct_steps && !m.eq_ignore_ascii_case("nonorm"))
        {
            return self.clone();
        }
        let intensity = |s: &Step| {
            matches!(
                s,
                Step::ScaleIntensityRange(_)
                    | Step::CtNormalize { .. }
                    | Step::NormalizeIntensity { .. }
            )
        };
        let mut steps: Vec<Step> = self
            .steps
            .iter()
            .filter(|s| !intensity(s))
            .cloned()
            .collect();
        let suffix = if m.eq_ignore_ascii_case("nonorm") {
            "+nonorm"
        } else {
            steps.push(Step::NormalizeIntensity { nonzero: true });
            "+zscore"
        };
        if steps == self.steps {
            return self.clone();
        }
        Preset {
            name: format!("{}{suffix}", self.name),
            steps,
            augment: self.augment.clone(),
        }
    }

    /// A built-in preset: `"seed"`, `"patch"` or `"fast"`
    /// ([`Preset::BUILT_IN`]).
    pub fn by_name(name: &str) -> Result<Preset> {
        match name {
            "seed" => Ok(Preset::seed()),
            "patch" => Ok(Preset::patch()),
            "fast" => Ok(Preset::fast()),
            other => Err(Error::Param(format!(
                "unknown preset {other:?}: expected one of {:?}",
                Preset::BUILT_IN
            ))),
        }
    }

    /// A built-in preset by name ([`Preset::BUILT_IN`]), a preset stored
    /// as JSON in the file `name` (as `liverseg preprocess --preset` and a
    /// training configuration take it), or the JSON itself (`{...}`, as a
    /// training plan writes it). Anything else is a parameter error
    /// naming what was given.
    pub fn load(name: &str) -> Result<Preset> {
        if Preset::BUILT_IN.contains(&name) {
            return Preset::by_name(name);
        }
        // A preset written inline (a training plan's), as JSON.
        if name.trim_start().starts_with('{') {
            return serde_json::from_str(name)
                .map_err(|e| Error::Param(format!("inline preset: not a preset: {e}")));
        }
        let path = std::path::Path::new(name);
        if !path.is_file() {
            return Err(Error::Param(format!(
                "preset {name:?}: expected one of {:?} or a JSON preset file",
                Preset::BUILT_IN
            )));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Param(format!("{name}: cannot read the preset: {e}")))?;
        serde_json::from_str(&text).map_err(|e| Error::Param(format!("{name}: not a preset: {e}")))
    }
}

/// The crop of the `patch` and `fast` presets: the box of the voxels above
/// −500 HU (the body, without the air around it).
fn body_crop() -> Step {
    Step::CropForeground(CropForegroundOptions {
        threshold: -500.0,
        ..Default::default()
    })
}

/// nnU-Net's default augmentation, in MONAI terms, for patches of `patch`
/// voxels: foreground oversampling (pos 1 : neg 2), rotation up to ±30°
/// and scaling 0.7–1.4 (each with probability 0.2), Gaussian noise (0.1),
/// Gaussian blur σ 0.5–1 (0.2), brightness ×0.75–1.25 (0.15), gamma
/// 0.7–1.5 (0.3), and mirroring along every axis (0.5 each).
pub fn patch_augmentation(patch: [usize; 3]) -> Vec<RandomTransform> {
    let deg30 = 30f64.to_radians();
    let mut t = vec![
        RandomTransform::RandCropByPosNegLabel {
            spatial_size: patch,
            pos: 1.0,
            neg: 2.0,
            num_samples: 1,
        },
        RandomTransform::RandAffine {
            prob: 0.2,
            rotate_range: [deg30; 3],
            scale_range: [0.0; 3],
            shear_range: [0.0; 3],
            translate_range: [0.0; 3],
            padding: Padding::Border,
        },
        RandomTransform::RandZoom {
            prob: 0.2,
            min_zoom: 0.7,
            max_zoom: 1.4,
            keep_size: true,
        },
        RandomTransform::RandGaussianNoise {
            prob: 0.1,
            mean: 0.0,
            std: 0.1,
            sample_std: true,
        },
        RandomTransform::RandGaussianSmooth {
            prob: 0.2,
            sigma_x: (0.5, 1.0),
            sigma_y: (0.5, 1.0),
            sigma_z: (0.5, 1.0),
        },
        RandomTransform::RandScaleIntensity {
            prob: 0.15,
            factors: 0.25,
        },
        RandomTransform::RandAdjustContrast {
            prob: 0.3,
            gamma: (0.7, 1.5),
        },
    ];
    for axis in 0..3 {
        t.push(RandomTransform::RandFlip {
            prob: 0.5,
            axes: vec![axis],
        });
    }
    t
}

/// The generator for one case of one epoch of a run with `seed`: a
/// ChaCha8 stream keyed by all three, so every case's augmentation is
/// reproducible on its own, whatever order or thread processes it.
pub fn case_rng(seed: u64, epoch: u64, case: u64) -> ChaCha8Rng {
    use rand::SeedableRng;
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&epoch.to_le_bytes());
    key[16..24].copy_from_slice(&case.to_le_bytes());
    key[24..].copy_from_slice(b"liverseg");
    ChaCha8Rng::from_seed(key)
}
