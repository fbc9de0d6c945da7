//! MONAI-equivalent preprocessing, seeded augmentation, inversion and
//! post-processing for liverseg volumes.
//!
//! Every transform takes and returns [`liverseg_io::Volume`]s, which carry
//! their RAS affine: a spatial step computes the output grid the way MONAI
//! does and updates the affine with it, so every output still lines up with
//! its input in world (millimetre) coordinates.
//!
//! It sits between `liverseg-io` (which reads the CT into a `Volume`) and
//! `liverseg-model` (which never sees a file or an affine): training feeds
//! the network `Preset::run` + `Preset::augment` output, prediction runs
//! the same preset and maps the network's answer back with
//! [`Preprocessed::invert_labels`].
//!
//! ```
//! use liverseg_io::{Affine, Volume};
//! use liverseg_transforms::{Pair, Preset, postprocess};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A 60 × 50 × 12 "CT" at 0.8 × 0.8 × 2.5 mm, air with a body block.
//! let affine = Affine::from_spacing_origin([0.8, 0.8, 2.5], [-20.0, -30.0, 10.0]);
//! let mut ct = Volume::filled([60, 50, 12], affine, -1000.0f32)?;
//! for k in 2..10 {
//!     for j in 10..40 {
//!         for i in 15..45 {
//!             let o = ct.index(i, j, k);
//!             ct.data_mut()[o] = 40.0;
//!         }
//!     }
//! }
//! // The MONAI tutorial's preprocessing.
//! let out = Preset::seed().run(ct.clone(), None)?;
//! assert_eq!(out.pair.image.dims(), [128, 128, 64]);
//! // A "prediction" on the network grid, mapped back onto the CT.
//! let mask = postprocess::threshold(&out.pair.image, 0.5);
//! let on_ct = out.invert_labels(&mask)?;
//! assert_eq!(on_ct.dims(), ct.dims());
//! assert_eq!(on_ct.affine(), ct.affine());
//! assert_eq!(on_ct.get(30, 25, 5), Some(1));
//! assert_eq!(on_ct.get(2, 2, 0), Some(0));
//! # Ok(()) }
//! ```

mod error;
pub mod intensity;
mod pair;
pub mod pipeline;
pub mod postprocess;
pub mod random;
pub mod spatial;

pub use error::{Error, Result};
pub use pair::Pair;
pub use pipeline::{Preprocessed, Preset, Step, StepRecord, case_rng, patch_augmentation};
pub use spatial::crop::{
    BoxRegion, CropForegroundOptions, PadMethod, crop, divisible_pad, foreground_box, pad_box,
    spatial_pad,
};
pub use spatial::grid::Grid;
pub use spatial::orient::{
    flip, orientation, orientation_plan, parse_axcodes, permute_flip, rotate90,
};
pub use spatial::resample::{
    Interpolation, Padding, resample, resample_index_map, resample_labels, resample_map,
    resample_reduce, resample_reordered,
};
pub use spatial::resize::{ResizeMode, resize, resize_grid, resize_labels, resize_labels_exact};
pub use spatial::spacing::{spacing, spacing_grid, spacing_labels};
