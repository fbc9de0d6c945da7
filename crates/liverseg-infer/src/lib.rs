//! Inference for liverseg: a model file's card, the bridge between volumes
//! and tensors, the one class decision that validation and prediction
//! share, and prediction on a CT's own grid.
//!
//! It sits on `liverseg-io` (reading CTs), `liverseg-transforms` (the
//! model's preprocessing and its inversion) and `liverseg-model` (the
//! networks and sliding-window inference). `liverseg-train` builds on it
//! (validation decides classes with [`Decision`], checkpoints are written
//! as [`ModelCard`]s); prediction needs nothing from training.
//!
//! ```no_run
//! use liverseg_infer::{Predictor, PredictOptions, device, read_ct_file};
//! # fn main() -> liverseg_infer::Result<()> {
//! let predictor = Predictor::load("model.safetensors".as_ref(), &device("cpu")?)?;
//! let ct = read_ct_file("ct.nii.gz".as_ref())?;
//! let prediction = predictor.predict(ct, &PredictOptions::default())?;
//! println!("liver: {:.1} mL", prediction.volumes_ml[0]);
//! # Ok(()) }
//! ```

mod bridge;
mod builtin;
mod card;
mod decision;
mod device;
mod ensemble;
mod error;
mod predictor;

pub use bridge::{channels_to_tensor, tensor_to_volume, volumes_to_tensor};
pub use builtin::{BUILTIN, builtin_bytes};
pub use card::{ABOUT_KEY, COMPONENT_KEY, DECISION_KEY, ModelCard, VALUES_KEY, default_classes};
pub use decision::Decision;
pub use device::device;
pub use error::{Error, Result};
pub use predictor::{
    NetworkOutput, PredictOptions, Prediction, Predictor, Prepared, PreprocessMode, log_stage,
    predict_file, read_ct_file,
};
