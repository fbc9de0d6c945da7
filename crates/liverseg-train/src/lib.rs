//! Training loop, checkpoints, logs and spacing-aware metrics for liverseg.
//!
//! It sits on top of `liverseg-io` (reading cases), `liverseg-transforms`
//! (presets, augmentation, inversion) and `liverseg-model` (the networks,
//! losses and sliding-window inference).

mod error;
pub mod metrics;

pub use error::{Error, Result};
