//! Preprocessing pipelines: presets as data, applied to an image and its
//! label together, with a record of every grid for inversion.

use liverseg_io::{Volume, Voxel};
use serde::{Deserialize, Serialize};

use crate::intensity::{CtNormalization, ScaleIntensityRange, normalize_intensity};
use crate::pair::check_label_grid;
use crate::random::{RandomTransform, apply_chain};
use crate::spatial::crop::{
    BoxRegion, CropForegroundOptions, PadMethod, crop, crop_grid, foreground_box, pad_box,
};
use crate::spatial::orient::{orientation_plan, parse_axcodes, permute_flip};
use crate::spatial::resample::{
    Grid, Interpolation, Padding, resample_labels, resample_map, resample_reduce,
    resample_reordered, resample_reordered_window,
};
use crate::spatial::resize::{
    ResizeMode, resize, resize_labels, resize_labels_exact, resize_region,
};
use crate::spatial::spacing::spacing_grid;
use crate::{Error, Pair, Result};
use rand_chacha::ChaCha8Rng;

/// One deterministic preprocessing step. Spatial steps move image and label
/// together (the image with its interpolation, the label by nearest
/// neighbour); intensity steps change the image only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Step {
    /// MONAI `Orientation(axcodes)`.
    Orientation {
        /// Target axis codes, such as `"RAS"`.
        axcodes: String,
    },
    /// MONAI `Spacing(pixdim, mode=(image_mode, "nearest"))` with border
    /// padding.
    Spacing {
        /// Target voxel size in mm (a non-positive entry keeps the axis).
        pixdim: [f64; 3],
        /// Image interpolation (labels always use nearest).
        #[serde(default = "linear")]
        image_mode: Interpolation,
    },
    /// MONAI `ScaleIntensityRange`.
    ScaleIntensityRange(ScaleIntensityRange),
    /// MONAI `CropForeground` with the image as the source.
    CropForeground(CropForegroundOptions),
    /// MONAI `Resize(spatial_size, mode=(image_mode, "nearest"))`.
    Resize {
        /// Output shape.
        size: [usize; 3],
        /// Image interpolation (labels always use nearest).
        #[serde(default = "area")]
        image_mode: ResizeMode,
        /// Label rule: `nearest` (MONAI's, the default, up to half a voxel
        /// off the resized affine) or `nearest_exact` (aligned).
        #[serde(default = "nearest")]
        label_mode: ResizeMode,
    },
    /// MONAI `SpatialPad(spatial_size)` with zeros.
    SpatialPad {
        /// Minimum shape.
        size: [usize; 3],
        /// Where the padding goes.
        #[serde(default)]
        method: PadMethod,
    },
    /// MONAI `DivisiblePad(k)` with zeros.
    DivisiblePad {
        /// Every axis is padded to a multiple of this.
        k: [usize; 3],
        /// Where the padding goes.
        #[serde(default)]
        method: PadMethod,
    },
    /// MONAI `NormalizeIntensity(nonzero)`.
    NormalizeIntensity {
        /// Statistics from (and normalisation of) non-zero voxels only.
        nonzero: bool,
    },
    /// nnU-Net's CT normalisation. Without `stats` the statistics come from
    /// this case's labelled voxels (training computes dataset-wide ones and
    /// stores them in the preset).
    CtNormalize {
        /// Dataset statistics.
        #[serde(default)]
        stats: Option<CtNormalization>,
    },
}

fn linear() -> Interpolation {
    Interpolation::Linear
}

fn area() -> ResizeMode {
    ResizeMode::Area
}

fn nearest() -> ResizeMode {
    ResizeMode::Nearest
}

impl Step {
    /// A short name for logs and `--stages` file names.
    pub fn name(&self) -> &'static str {
        match self {
            Step::Orientation { .. } => "orientation",
            Step::Spacing { .. } => "spacing",
            Step::ScaleIntensityRange(_) => "scale_intensity_range",
            Step::CropForeground(_) => "crop_foreground",
            Step::Resize { .. } => "resize",
            Step::SpatialPad { .. } => "spatial_pad",
            Step::DivisiblePad { .. } => "divisible_pad",
            Step::NormalizeIntensity { .. } => "normalize_intensity",
            Step::CtNormalize { .. } => "ct_normalize",
        }
    }

    /// True for steps that change the grid.
    pub fn is_spatial(&self) -> bool {
        !matches!(
            self,
            Step::ScaleIntensityRange(_)
                | Step::NormalizeIntensity { .. }
                | Step::CtNormalize { .. }
        )
    }

    /// Applies the step to an image and optional label.
    pub fn apply(&self, pair: Pair) -> Result<Pair> {
        let Pair { image, label } = pair;
        let out = match self {
            Step::Orientation { axcodes } => {
                let codes = parse_axcodes(axcodes)?;
                let (perm, flip) = orientation_plan(image.affine(), codes)?;
                Pair {
                    label: label.map(|l| permute_flip(&l, perm, flip)).transpose()?,
                    image: permute_flip(&image, perm, flip)?,
                }
            }
            Step::Spacing { pixdim, image_mode } => {
                let target = spacing_grid(&Grid::of(&image), *pixdim)?;
                Pair {
                    label: label
                        .map(|l| resample_labels(&l, &target, Padding::Border))
                        .transpose()?,
                    image: resample_map(&image, &target, *image_mode, Padding::Border, |v| {
                        v as f32
                    })?,
                }
            }
            Step::ScaleIntensityRange(s) => Pair {
                image: s.apply(&image)?,
                label,
            },
            Step::CropForeground(opts) => match foreground_box(&image, opts)? {
                Some(b) => Pair {
                    label: label.map(|l| crop(&l, &b)).transpose()?,
                    image: crop(&image, &b)?,
                },
                // MONAI would produce an empty volume; nothing useful can
                // follow that, so an image with no foreground is kept whole.
                None => Pair { image, label },
            },
            Step::Resize {
                size,
                image_mode,
                label_mode,
            } => Pair {
                label: label
                    .map(|l| match label_mode {
                        ResizeMode::Nearest => resize_labels(&l, *size),
                        ResizeMode::NearestExact => resize_labels_exact(&l, *size),
                        other => Err(Error::Param(format!(
                            "Resize: label_mode must be nearest or nearest_exact, not {other:?}"
                        ))),
                    })
                    .transpose()?,
                image: resize(&image, *size, *image_mode)?,
            },
            Step::SpatialPad { size, method } => {
                let b = pad_box(image.dims(), *size, *method);
                pad_pair(image, label, &b)?
            }
            Step::DivisiblePad { k, method } => {
                if k.contains(&0) {
                    return Err(Error::Param("DivisiblePad: k must be at least 1".into()));
                }
                let dims = image.dims();
                let size = std::array::from_fn(|a| dims[a].div_ceil(k[a]) * k[a]);
                pad_pair(image, label, &pad_box(dims, size, *method))?
            }
            Step::NormalizeIntensity { nonzero } => Pair {
                image: normalize_intensity(&image, *nonzero),
                label,
            },
            Step::CtNormalize { stats } => {
                let stats = match stats {
                    Some(s) => *s,
                    None => case_ct_stats(&image, label.as_ref())?,
                };
                Pair {
                    image: stats.apply(&image),
                    label,
                }
            }
        };
        Ok(out)
    }
}

fn pad_pair(image: Volume<f32>, label: Option<Volume<u8>>, b: &BoxRegion) -> Result<Pair> {
    Ok(Pair {
        label: label.map(|l| crop(&l, b)).transpose()?,
        image: crop(&image, b)?,
    })
}

/// CT statistics of one case: its labelled voxels when there is a label,
/// else every voxel above −500 HU (the body).
fn case_ct_stats(image: &Volume<f32>, label: Option<&Volume<u8>>) -> Result<CtNormalization> {
    let mut samples: Vec<f32> = match label {
        Some(l) => image
            .data()
            .iter()
            .zip(l.data())
            .filter(|(_, m)| **m > 0)
            .map(|(&v, _)| v)
            .collect(),
        None => image
            .data()
            .iter()
            .copied()
            .filter(|&v| v > -500.0)
            .collect(),
    };
    if samples.is_empty() {
        samples = image.data().to_vec();
    }
    CtNormalization::from_samples(&mut samples)
}

/// What one step did to the grid, enough to map a volume back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// [`Step::name`].
    pub step: String,
    /// The grid the step read.
    pub input: Grid,
    /// The grid it wrote.
    pub output: Grid,
}

impl StepRecord {
    /// Maps a label map on this step's output grid back onto its input grid
    /// (nearest neighbour; voxels the step had cropped away become 0, see
    /// [`Padding::Extent`]).
    /// Reorientation, cropping and padding invert exactly.
    pub fn invert_labels<T: Voxel>(&self, label: &Volume<T>) -> Result<Volume<T>> {
        check_grid(&self.output, label, &self.step)?;
        resample_labels(label, &self.input, Padding::Extent)
    }

    /// Maps an image or probability map back onto the input grid (trilinear;
    /// 0 outside what the step kept).
    pub fn invert_image<T: Voxel>(&self, image: &Volume<T>) -> Result<Volume<f32>> {
        check_grid(&self.output, image, &self.step)?;
        resample_map(
            image,
            &self.input,
            Interpolation::Linear,
            Padding::Extent,
            |v| v as f32,
        )
    }
}

fn check_grid<T: Voxel>(expected: &Grid, v: &Volume<T>, what: &str) -> Result<()> {
    if !expected.same_as(&Grid::of(v), 1e-4) {
        return Err(Error::Grid(format!(
            "cannot invert {what}: the volume is {:?} with affine {:?}, the step wrote {:?} with affine {:?}",
            v.dims(),
            v.affine(),
            expected.dims,
            expected.affine
        )));
    }
    Ok(())
}

/// The background probability of a voxel from its foreground class
/// probabilities: one minus their sum (subtracted in channel order), kept in
/// `[0, 1]`. [`Preprocessed::invert_probabilities`] and
/// [`Preprocessed::invert_decide`] both use it, so they agree bit for bit.
fn background(foreground: impl Iterator<Item = f32>) -> f32 {
    foreground.fold(1.0f32, |b, v| b - v).clamp(0.0, 1.0)
}

/// The result of [`Preset::run`].
#[derive(Clone, Debug)]
pub struct Preprocessed {
    /// The preprocessed image and label.
    pub pair: Pair,
    /// The input's own grid.
    pub original: Grid,
    /// One record per spatial step, in order.
    pub records: Vec<StepRecord>,
}

impl Preprocessed {
    /// Maps a label map on the preprocessed grid back onto the original
    /// input grid in one nearest-neighbour resampling (every grid is placed
    /// in world coordinates, so the chain of inverses is one map). Voxels
    /// outside the preprocessed field of view become 0.
    pub fn invert_labels<T: Voxel>(&self, label: &Volume<T>) -> Result<Volume<T>> {
        check_grid(&Grid::of(&self.pair.image), label, "the preprocessing")?;
        resample_labels(label, &self.original, Padding::Extent)
    }

    /// Maps class probabilities (channel 0 background) back onto the
    /// original grid: foreground channels trilinearly with 0 outside the
    /// preprocessed field of view, background as one minus their sum, so
    /// each voxel's probabilities still add up to one.
    pub fn invert_probabilities(&self, channels: &[Volume<f32>]) -> Result<Vec<Volume<f32>>> {
        let grid = Grid::of(&self.pair.image);
        let mut out = Vec::with_capacity(channels.len());
        for c in channels {
            check_grid(&grid, c, "the preprocessing")?;
        }
        for c in channels.iter().skip(1) {
            out.push(resample_map(
                c,
                &self.original,
                Interpolation::Linear,
                Padding::Extent,
                |v| v as f32,
            )?);
        }
        if channels.is_empty() {
            return Ok(out);
        }
        let mut bg = Volume::filled(self.original.dims, self.original.affine, 1.0f32)?;
        for (o, b) in bg.data_mut().iter_mut().enumerate() {
            *b = background(out.iter().map(|c| c.data()[o]));
        }
        out.insert(0, bg);
        Ok(out)
    }

    /// A decision on the original grid made straight from class
    /// probabilities on the preprocessed grid: `decide(background,
    /// foreground)` receives, per voxel, exactly the values
    /// [`invert_probabilities`](Self::invert_probabilities) would give
    /// (background first, then the foreground channels in order), but the
    /// mapped-back probability volumes are never made. The work runs one
    /// output plane at a time, so on a tall CT the cost beyond the output is
    /// a plane per channel and thread.
    pub fn invert_decide<U: Voxel>(
        &self,
        channels: &[Volume<f32>],
        decide: impl Fn(f32, &[f32]) -> U + Sync,
    ) -> Result<Volume<U>> {
        let grid = Grid::of(&self.pair.image);
        for c in channels {
            check_grid(&grid, c, "the preprocessing")?;
        }
        let foreground: Vec<&Volume<f32>> = channels.iter().skip(1).collect();
        if foreground.is_empty() {
            return Ok(Volume::filled(
                self.original.dims,
                self.original.affine,
                decide(1.0, &[]),
            )?);
        }
        resample_reduce(
            &foreground,
            &self.original,
            Interpolation::Linear,
            Padding::Extent,
            |fg| decide(background(fg.iter().copied()), fg),
        )
    }
}

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

    /// The nnU-Net-like full-resolution path: RAS, resampling to a fixed
    /// spacing, CT normalisation (dataset statistics filled in by training),
    /// padding to at least one 128 × 128 × 64 patch; at training time,
    /// 128 × 128 × 64 patches with one in three centred on foreground
    /// (nnU-Net's oversampling) and nnU-Net's augmentations (see
    /// [`patch_augmentation`]).
    pub fn patch() -> Preset {
        Preset {
            name: "patch".into(),
            steps: vec![
                Step::Orientation {
                    axcodes: "RAS".into(),
                },
                Step::Spacing {
                    pixdim: [1.5, 1.5, 1.5],
                    image_mode: Interpolation::Linear,
                },
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
    /// [`patch_augmentation`]. The 512 × 512 × 200 bench phantom becomes
    /// 114 × 96 × 167 voxels (1.8 M), against 267 × 267 × 333 (23.7 M) on the
    /// 1.5 mm [`patch`](Self::patch) path (docs/benchmarks.md).
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
                Step::CropForeground(CropForegroundOptions {
                    threshold: -500.0,
                    ..Default::default()
                }),
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

    /// Runs the preset on several cases in parallel (rayon across cases, and
    /// inside each step), keeping the input order. One failing case does not
    /// stop the others.
    pub fn run_batch(&self, pairs: Vec<Pair>) -> Vec<Result<Preprocessed>> {
        use rayon::prelude::*;
        pairs.into_par_iter().map(|p| self.run(p)).collect()
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

    /// Runs every step. Spacing followed by Orientation (and an intensity
    /// scaling right after) is done in one resampling pass with results
    /// bit-identical to running them one by one, which saves two passes
    /// and two full-size volumes on a 512 × 512 × 200 CT.
    pub fn run(&self, pair: Pair) -> Result<Preprocessed> {
        self.run_inner(pair, true, &mut |_, _| Ok(()))
    }

    /// Runs every step separately and calls `on_stage(index, step, pair)`
    /// with each step's output (for `--stages` debugging output).
    pub fn run_stages(
        &self,
        pair: Pair,
        mut on_stage: impl FnMut(usize, &Step, &Pair) -> Result<()>,
    ) -> Result<Preprocessed> {
        let mut idx = 0;
        self.run_inner(pair, false, &mut |step, p| {
            idx += 1;
            on_stage(idx, step, p)
        })
    }

    /// [`Preset::run`] for an image of any voxel type. A CT stored as
    /// int16 (nearly all of them) can go straight into the first resampling
    /// without a float copy: half the memory traffic of the heaviest step
    /// and 2 bytes per input voxel less at the peak. Results are identical
    /// to converting to `f32` first (every int16 is exact in `f32`). An
    /// `f32` image is better passed to [`Preset::run`], which does not copy
    /// it when the preset does not start with Spacing + Orientation.
    pub fn run_typed<T: Voxel>(
        &self,
        image: Volume<T>,
        label: Option<Volume<u8>>,
    ) -> Result<Preprocessed> {
        let original = Grid::of(&image);
        check_label_grid(&image, label.as_ref())?;
        let mut records = Vec::new();
        let (pair, start) = match self.fused_prefix(0) {
            Some(plan) => {
                let fused = run_fused(&plan, &image, label, original, &mut records)?;
                (fused, plan.consumed)
            }
            None => (Pair::new(image.map(|x| x.to_f64() as f32), label)?, 0),
        };
        self.run_from(pair, start, original, records, true, &mut |_, _| Ok(()))
    }

    /// The fusable run of steps starting at `i`: Spacing + Orientation,
    /// then optionally ScaleIntensityRange, CropForeground and Resize.
    fn fused_prefix(&self, i: usize) -> Option<FusedPlan<'_>> {
        let (Some(Step::Spacing { pixdim, image_mode }), Some(Step::Orientation { axcodes })) =
            (self.steps.get(i), self.steps.get(i + 1))
        else {
            return None;
        };
        let mut plan = FusedPlan {
            pixdim: *pixdim,
            image_mode: *image_mode,
            axcodes,
            scale: None,
            crop: None,
            resize: None,
            consumed: 2,
        };
        if let Some(Step::ScaleIntensityRange(s)) = self.steps.get(i + plan.consumed) {
            plan.scale = Some(*s);
            plan.consumed += 1;
        }
        if let Some(Step::CropForeground(c)) = self.steps.get(i + plan.consumed) {
            plan.crop = Some(c);
            plan.consumed += 1;
            if let Some(Step::Resize {
                size,
                image_mode,
                label_mode,
            }) = self.steps.get(i + plan.consumed)
                && *image_mode != ResizeMode::Linear
            {
                plan.resize = Some((*size, *image_mode, *label_mode));
                plan.consumed += 1;
            }
        }
        Some(plan)
    }

    fn run_inner(
        &self,
        pair: Pair,
        fuse: bool,
        on_stage: &mut dyn FnMut(&Step, &Pair) -> Result<()>,
    ) -> Result<Preprocessed> {
        let original = Grid::of(&pair.image);
        let pair = Pair::new(pair.image, pair.label)?;
        self.run_from(pair, 0, original, Vec::new(), fuse, on_stage)
    }

    fn run_from(
        &self,
        mut pair: Pair,
        mut i: usize,
        original: Grid,
        mut records: Vec<StepRecord>,
        fuse: bool,
        on_stage: &mut dyn FnMut(&Step, &Pair) -> Result<()>,
    ) -> Result<Preprocessed> {
        while i < self.steps.len() {
            let step = &self.steps[i];
            let before = Grid::of(&pair.image);
            let mut consumed = 1;
            if let Some(plan) = self.fused_prefix(i).filter(|_| fuse) {
                pair = run_fused(&plan, &pair.image, pair.label, before, &mut records)?;
                consumed = plan.consumed;
            } else {
                pair = step.apply(pair)?;
                if step.is_spatial() {
                    records.push(StepRecord {
                        step: step.name().into(),
                        input: before,
                        output: Grid::of(&pair.image),
                    });
                }
                on_stage(step, &pair)?;
            }
            tracing::debug!(step = step.name(), dims = ?pair.image.dims(), "preprocessing step done");
            i += consumed;
        }
        Ok(Preprocessed {
            pair,
            original,
            records,
        })
    }
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

/// A run of steps executed together (see [`Preset::run`]).
struct FusedPlan<'a> {
    pixdim: [f64; 3],
    image_mode: Interpolation,
    axcodes: &'a str,
    scale: Option<ScaleIntensityRange>,
    crop: Option<&'a CropForegroundOptions>,
    resize: Option<([usize; 3], ResizeMode, ResizeMode)>,
    consumed: usize,
}

/// Runs a [`FusedPlan`]: Spacing and Orientation (and the intensity
/// scaling) in one resampling pass; the foreground box from that image; the
/// label resampled only inside the box; the image cropped and resized in
/// one pass. Every value and record is identical to running the steps one
/// by one (tested), because each fused piece computes the same samples
/// from the same index arithmetic.
fn run_fused<T: Voxel>(
    plan: &FusedPlan<'_>,
    image: &Volume<T>,
    label: Option<Volume<u8>>,
    input: Grid,
    records: &mut Vec<StepRecord>,
) -> Result<Pair> {
    let codes = parse_axcodes(plan.axcodes)?;
    let target = spacing_grid(&input, plan.pixdim)?;
    let (perm, flip) = orientation_plan(&target.affine, codes)?;
    if let Some(s) = &plan.scale {
        s.validate()?;
    }
    // The unfused path stores Spacing's output as f32 before scaling; doing
    // the same cast here keeps the results bit-identical.
    let scale = plan.scale;
    let oriented = resample_reordered(
        image,
        &target,
        perm,
        flip,
        plan.image_mode,
        Padding::Border,
        |v| {
            let v = v as f32;
            match &scale {
                Some(s) => s.value(v),
                None => v,
            }
        },
    )?;
    let oriented_grid = Grid::of(&oriented);
    records.push(StepRecord {
        step: "spacing".into(),
        input,
        output: target,
    });
    records.push(StepRecord {
        step: "orientation".into(),
        input: target,
        output: oriented_grid,
    });
    let resample_label = |l: &Volume<u8>, window: Option<&BoxRegion>| match window {
        Some(w) => resample_reordered_window(
            l,
            &target,
            perm,
            flip,
            w,
            Interpolation::Nearest,
            Padding::Border,
            u8::from_f64,
        ),
        None => resample_reordered(
            l,
            &target,
            perm,
            flip,
            Interpolation::Nearest,
            Padding::Border,
            u8::from_f64,
        ),
    };
    let Some(crop_opts) = plan.crop else {
        let label = label.map(|l| resample_label(&l, None)).transpose()?;
        return Ok(Pair {
            image: oriented,
            label,
        });
    };
    let region = foreground_box(&oriented, crop_opts)?;
    let inside = region.is_some_and(|b| {
        (0..3).all(|a| b.start[a] >= 0 && b.end[a] <= oriented_grid.dims[a] as i64)
    });
    // The label on the cropped grid, computed only inside the box when the
    // box lies inside the volume.
    let label = match (&label, region) {
        (None, _) => None,
        (Some(l), Some(b)) if inside => Some(resample_label(l, Some(&b))?),
        (Some(l), Some(b)) => Some(crop(&resample_label(l, None)?, &b)?),
        (Some(l), None) => Some(resample_label(l, None)?),
    };
    let (image, crop_grid) = match (region, plan.resize) {
        (Some(b), Some((size, image_mode, _))) if inside => {
            let crop_grid = crop_grid(&oriented_grid, &b);
            (resize_region(&oriented, &b, size, image_mode)?, crop_grid)
        }
        (Some(b), _) => {
            let c = crop(&oriented, &b)?;
            let g = Grid::of(&c);
            (c, g)
        }
        (None, _) => (oriented, oriented_grid),
    };
    records.push(StepRecord {
        step: "crop_foreground".into(),
        input: oriented_grid,
        output: crop_grid,
    });
    let Some((size, image_mode, label_mode)) = plan.resize else {
        return Ok(Pair { image, label });
    };
    // Without an inside box the image is still the cropped (or whole)
    // volume and is resized here.
    let image = if region.is_some() && inside {
        image
    } else {
        resize(&image, size, image_mode)?
    };
    let label = label
        .map(|l| match label_mode {
            ResizeMode::NearestExact => resize_labels_exact(&l, size),
            _ => resize_labels(&l, size),
        })
        .transpose()?;
    records.push(StepRecord {
        step: "resize".into(),
        input: crop_grid,
        output: Grid::of(&image),
    });
    Ok(Pair { image, label })
}
