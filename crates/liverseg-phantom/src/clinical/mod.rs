//! The opt-in clinical mode: contrast phases, liver conditions, intrahepatic
//! vessels, lesions, thorax and pelvis, and a scanner model with kernel
//! noise and thick slices, chosen by [`ClinicalOptions`] and drawn by
//! [`crate::PhantomConfig::clinical_in`].

mod classify;
mod contrast;
mod describe;
mod labels;
mod options;
mod organs;
mod patient;
mod pose;
mod render;
mod vessels;

pub use describe::{CaseDescription, describe};
pub use labels::Organ;
pub use options::{
    ClinicalOptions, ClinicalRanges, ContrastMode, Habitus, Kernel, LesionKind, LiverCondition,
    LiverVariant, Phase, ScanRange,
};
pub use pose::{Position, Resection, Storage};
pub(crate) use render::{generate_clinical, tissue_map_clinical};
