//! Training loop, checkpoints, logs and spacing-aware metrics for liverseg.
//!
//! It sits on top of `liverseg-io` (reading cases), `liverseg-transforms`
//! (presets, augmentation, inversion), `liverseg-model` (the networks,
//! losses and sliding-window inference) and `liverseg-infer` (the class
//! decision validation shares with prediction, model cards, the tensor
//! bridge, devices).

mod adam_cpu;
pub mod config;
pub mod data;
pub mod distributed;
mod error;
pub mod optim;
mod sgd_cpu;
pub mod trainer;

pub use config::TrainConfig;
pub use error::{Error, Result};
pub use liverseg_io::decathlon::LabelMap;
pub use trainer::{EpochRecord, Progress, ProgressFn, RunState, Summary, Trainer, train};
