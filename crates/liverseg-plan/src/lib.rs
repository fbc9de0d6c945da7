//! Self-configuring training plans, as nnU-Net v2 makes them.
//!
//! A dataset's [`Fingerprint`] (each case's spacing and its shape after
//! cropping to the non-zero region, and foreground intensity statistics per
//! channel) is read by [`extract`] one case at a time; [`plan`] turns it
//! into the 3-D full-resolution configuration with nnU-Net's rules: the
//! target spacing (median, or the 10th percentile for an axis much coarser
//! than the others), a patch of 256³ voxels' worth shrunk until the
//! network's activations fit the GPU memory target, pooling and kernel
//! sizes per axis (an axis is pooled only while its spacing is within a
//! factor 2 of the finest), a batch size from the memory left and at most
//! 5 % of the dataset per batch, and a normalisation per channel.
//!
//! The rules are checked against nnU-Net's own `ExperimentPlanner` on the
//! same fingerprints (`tests/golden`, made by `tools/golden/nnunet_plans.py`).
//!
//! ```no_run
//! let fp = liverseg_plan::extract(std::path::Path::new("data/Task03_Liver"), |_| {})?;
//! let plan = liverseg_plan::plan(
//!     &fp,
//!     &liverseg_plan::PlanInput {
//!         channels: vec!["CT".into()],
//!         classes: 3,
//!         cases: fp.spacings.len(),
//!         gpu_memory_gb: 8.0,
//!     },
//! )?;
//! println!("patch {:?} at {:?} mm", plan.xyz.patch_size, plan.xyz.spacing);
//! # Ok::<(), liverseg_plan::Error>(())
//! ```

mod error;
mod fingerprint;
mod planner;
mod topology;

pub use error::{Error, Result};
pub use fingerprint::{Fingerprint, IntensityProperties, extract};
pub use planner::{AxesXyz, Plan, PlanInput, plan};
