//! MONAI-equivalent preprocessing, seeded augmentation, inversion and
//! post-processing for liverseg volumes.
//!
//! Every transform takes and returns [`liverseg_io::Volume`]s, which carry
//! their RAS affine: a spatial step computes the output grid the way MONAI
//! does and updates the affine with it, so every output still lines up with
//! its input in world (millimetre) coordinates.

mod error;
pub mod intensity;
mod pair;
pub mod pipeline;
pub mod postprocess;
pub mod random;
pub mod spatial;

pub use error::{Error, Result};
pub use pair::Pair;
pub use pipeline::{Preprocessed, Preset, Step, StepRecord};
pub use spatial::crop::{
    BoxRegion, CropForegroundOptions, PadMethod, crop, divisible_pad, foreground_box, pad_box,
    spatial_pad,
};
pub use spatial::orient::{
    flip, orientation, orientation_plan, parse_axcodes, permute_flip, rotate90,
};
pub use spatial::resample::{
    Grid, Interpolation, Padding, resample, resample_index_map, resample_labels, resample_map,
    resample_reordered,
};
pub use spatial::resize::{ResizeMode, resize, resize_grid, resize_labels, resize_labels_exact};
pub use spatial::spacing::{spacing, spacing_grid, spacing_labels};
