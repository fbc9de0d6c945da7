//! Preprocessing pipelines: presets as data, applied to an image and its
//! label together, with a record of every grid for inversion.

mod invert;
mod preset;
mod run;
mod step;

pub use invert::{Preprocessed, StepRecord};
pub use preset::{Preset, case_rng, patch_augmentation};
pub use step::Step;
