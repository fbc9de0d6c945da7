//! Training loop, checkpoints, logs and spacing-aware metrics for liverseg.
//!
//! It sits on top of `liverseg-io` (reading cases), `liverseg-transforms`
//! (presets, augmentation, inversion) and `liverseg-model` (the networks,
//! losses and sliding-window inference).

pub mod config;
pub mod data;
mod error;
pub mod metrics;
pub mod optim;
pub mod overlay;
pub mod plot;
pub mod predict;
pub mod trainer;

pub use config::{LabelMode, TrainConfig};
pub use error::{Error, Result};
pub use trainer::{Decision, EpochRecord, RunState, Summary, Trainer, device, train};
