//! One deterministic preprocessing step as serde data, and how it moves an
//! image and its label.

use liverseg_io::Volume;
use serde::{Deserialize, Serialize};

use crate::intensity::{CtNormalization, ScaleIntensityRange, normalize_intensity};
use crate::spatial::crop::{
    BoxRegion, CropForegroundOptions, PadMethod, crop, foreground_box, pad_box,
};
use crate::spatial::grid::Grid;
use crate::spatial::orient::{orientation_plan, parse_axcodes, permute_flip};
use crate::spatial::resample::{Interpolation, Padding, resample_labels, resample_map};
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

    /// Applies the step to an image, its further channels and an optional
    /// label. Each channel goes through the step as the image does; the one
    /// step that looks at intensities to move voxels, CropForeground, takes
    /// its box from every channel at once (a voxel is foreground when any
    /// channel is above the threshold, as MONAI's on a multi-channel image).
    pub fn apply(&self, pair: Pair) -> Result<Pair> {
        let Pair {
            image,
            label,
            channels,
        } = pair;
        if channels.is_empty() {
            return self.apply_one(image, label);
        }
        if let Step::CropForeground(opts) = self {
            let mut any = image.clone();
            for c in &channels {
                for (a, &v) in any.data_mut().iter_mut().zip(c.data()) {
                    *a = a.max(v);
                }
            }
            let Some(b) = foreground_box(&any, opts)? else {
                return Ok(Pair {
                    image,
                    label,
                    channels,
                });
            };
            return Ok(Pair {
                label: label.map(|l| crop(&l, &b)).transpose()?,
                image: crop(&image, &b)?,
                channels: channels
                    .iter()
                    .map(|c| crop(c, &b))
                    .collect::<Result<Vec<_>>>()?,
            });
        }
        // A channel needs the label only where it decides intensities.
        let needs_label = matches!(self, Step::CtNormalize { stats: None });
        let channels = channels
            .into_iter()
            .map(|c| {
                let l = if needs_label { label.clone() } else { None };
                Ok(self.apply_one(c, l)?.image)
            })
            .collect::<Result<Vec<_>>>()?;
        let mut out = self.apply_one(image, label)?;
        out.channels = channels;
        Ok(out)
    }

    /// The step on one channel and its label.
    fn apply_one(&self, image: Volume<f32>, label: Option<Volume<u8>>) -> Result<Pair> {
        let out = match self {
            Step::Orientation { axcodes } => {
                let codes = parse_axcodes(axcodes)?;
                let (perm, flip) = orientation_plan(image.affine(), codes)?;
                Pair {
                    channels: Vec::new(),
                    label: label.map(|l| permute_flip(&l, perm, flip)).transpose()?,
                    image: permute_flip(&image, perm, flip)?,
                }
            }
            Step::Spacing { pixdim, image_mode } => {
                let target = spacing_grid(&Grid::of(&image), *pixdim)?;
                Pair {
                    channels: Vec::new(),
                    label: label
                        .map(|l| resample_labels(&l, &target, Padding::Border))
                        .transpose()?,
                    image: resample_map(&image, &target, *image_mode, Padding::Border, |v| {
                        v as f32
                    })?,
                }
            }
            Step::ScaleIntensityRange(s) => Pair {
                channels: Vec::new(),
                image: s.apply(&image)?,
                label,
            },
            Step::CropForeground(opts) => match foreground_box(&image, opts)? {
                Some(b) => Pair {
                    channels: Vec::new(),
                    label: label.map(|l| crop(&l, &b)).transpose()?,
                    image: crop(&image, &b)?,
                },
                // MONAI would produce an empty volume; nothing useful can
                // follow that, so an image with no foreground is kept whole.
                None => Pair {
                    image,
                    label,
                    channels: Vec::new(),
                },
            },
            Step::Resize {
                size,
                image_mode,
                label_mode,
            } => Pair {
                channels: Vec::new(),
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
                channels: Vec::new(),
                image: normalize_intensity(&image, *nonzero),
                label,
            },
            Step::CtNormalize { stats } => {
                let stats = match stats {
                    Some(s) => *s,
                    None => case_ct_stats(&image, label.as_ref())?,
                };
                Pair {
                    channels: Vec::new(),
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
        channels: Vec::new(),
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
