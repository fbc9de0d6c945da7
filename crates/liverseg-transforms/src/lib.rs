//! MONAI-equivalent preprocessing, seeded augmentation, inversion and
//! post-processing for liverseg volumes.
//!
//! Every transform takes and returns [`liverseg_io::Volume`]s, which carry
//! their RAS affine: a spatial step computes the output grid the way MONAI
//! does and updates the affine with it, so every output still lines up with
//! its input in world (millimetre) coordinates.

mod error;
pub mod postprocess;

pub use error::{Error, Result};
