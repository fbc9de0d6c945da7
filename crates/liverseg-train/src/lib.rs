//! Training loop, checkpoints, logs and spacing-aware metrics for liverseg.
//!
//! It sits on top of `liverseg-io` (reading cases), `liverseg-transforms`
//! (presets, augmentation, inversion) and `liverseg-model` (the networks,
//! losses and sliding-window inference).

pub mod config;
mod error;
pub mod metrics;
pub mod optim;

pub use error::{Error, Result};
