//! Preprocessing pipelines: presets as data, applied to an image and its
//! label together, with a record of every grid for inversion.

use liverseg_io::{Volume, Voxel};
use serde::{Deserialize, Serialize};

use crate::intensity::{CtNormalization, ScaleIntensityRange, normalize_intensity};
use crate::spatial::crop::{
    BoxRegion, CropForegroundOptions, PadMethod, crop, foreground_box, pad_box,
};
use crate::spatial::orient::{orientation_plan, parse_axcodes, permute_flip};
use crate::spatial::resample::{
    Grid, Interpolation, Padding, resample_labels, resample_map, resample_reordered,
};
use crate::spatial::resize::{ResizeMode, resize, resize_labels, resize_labels_exact};
use crate::spatial::spacing::spacing_grid;
use crate::{Error, Pair, Result};

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
        for c in &out {
            for (b, v) in bg.data_mut().iter_mut().zip(c.data()) {
                *b -= v;
            }
        }
        for b in bg.data_mut() {
            *b = b.clamp(0.0, 1.0);
        }
        out.insert(0, bg);
        Ok(out)
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
}

impl Preset {
    /// The original MONAI tutorial, exactly: Spacing(1.5, 1.5, 1.0;
    /// bilinear/nearest) → Orientation(RAS) → ScaleIntensityRange(−200..200
    /// → 0..1, clip) → CropForeground(from the image) → Resize(128, 128, 64;
    /// area/nearest).
    pub fn seed() -> Preset {
        Preset {
            name: "seed".into(),
            steps: vec![
                Step::Spacing {
                    pixdim: [1.5, 1.5, 1.0],
                    image_mode: Interpolation::Linear,
                },
                Step::Orientation {
                    axcodes: "RAS".into(),
                },
                Step::ScaleIntensityRange(ScaleIntensityRange::ct_window()),
                Step::CropForeground(CropForegroundOptions::default()),
                Step::Resize {
                    size: [128, 128, 64],
                    image_mode: ResizeMode::Area,
                    label_mode: ResizeMode::Nearest,
                },
            ],
        }
    }

    /// The nnU-Net-like full-resolution path: RAS, resampling to a fixed
    /// spacing, CT normalisation (dataset statistics filled in by training),
    /// padding to at least one 128 × 128 × 64 patch. Random patches and
    /// augmentation are applied at training time.
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
        }
    }

    /// `"seed"` or `"patch"`.
    pub fn by_name(name: &str) -> Result<Preset> {
        match name {
            "seed" => Ok(Preset::seed()),
            "patch" => Ok(Preset::patch()),
            other => Err(Error::Param(format!(
                "unknown preset {other:?}: expected \"seed\" or \"patch\""
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

    fn run_inner(
        &self,
        pair: Pair,
        fuse: bool,
        on_stage: &mut dyn FnMut(&Step, &Pair) -> Result<()>,
    ) -> Result<Preprocessed> {
        let original = Grid::of(&pair.image);
        let mut pair = Pair::new(pair.image, pair.label)?;
        let mut records = Vec::new();
        let mut i = 0;
        while i < self.steps.len() {
            let step = &self.steps[i];
            let before = Grid::of(&pair.image);
            let mut consumed = 1;
            if fuse
                && let (Step::Spacing { pixdim, image_mode }, Some(Step::Orientation { axcodes })) =
                    (step, self.steps.get(i + 1))
            {
                let scale = match self.steps.get(i + 2) {
                    Some(Step::ScaleIntensityRange(s)) => Some(*s),
                    _ => None,
                };
                let (fused, spacing_out) =
                    spacing_orientation(pair, *pixdim, *image_mode, axcodes, scale)?;
                records.push(StepRecord {
                    step: step.name().into(),
                    input: before,
                    output: spacing_out,
                });
                records.push(StepRecord {
                    step: "orientation".into(),
                    input: spacing_out,
                    output: Grid::of(&fused.image),
                });
                pair = fused;
                consumed = if scale.is_some() { 3 } else { 2 };
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

/// Spacing, then Orientation, then optionally ScaleIntensityRange, in one
/// pass. Returns the result and the Spacing grid (for the records).
fn spacing_orientation(
    pair: Pair,
    pixdim: [f64; 3],
    image_mode: Interpolation,
    axcodes: &str,
    scale: Option<ScaleIntensityRange>,
) -> Result<(Pair, Grid)> {
    let codes = parse_axcodes(axcodes)?;
    let target = spacing_grid(&Grid::of(&pair.image), pixdim)?;
    let (perm, flip) = orientation_plan(&target.affine, codes)?;
    if let Some(s) = &scale {
        s.validate()?;
    }
    // The unfused path stores Spacing's output as f32 before scaling; doing
    // the same cast here keeps the results bit-identical.
    let image = match scale {
        Some(s) => resample_reordered(
            &pair.image,
            &target,
            perm,
            flip,
            image_mode,
            Padding::Border,
            |v| s.value(v as f32),
        )?,
        None => resample_reordered(
            &pair.image,
            &target,
            perm,
            flip,
            image_mode,
            Padding::Border,
            |v| v as f32,
        )?,
    };
    let label = pair
        .label
        .map(|l| {
            resample_reordered(
                &l,
                &target,
                perm,
                flip,
                Interpolation::Nearest,
                Padding::Border,
                u8::from_f64,
            )
        })
        .transpose()?;
    Ok((Pair { image, label }, target))
}
