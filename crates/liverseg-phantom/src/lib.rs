//! Synthetic abdominal CT phantoms with exact liver labels, so that the
//! liverseg pipeline (loading, resampling, training, inference) can be run
//! and tested end to end without real patient data.
//!
//! ```
//! use liverseg_phantom::{generate, PhantomConfig};
//! # fn main() -> liverseg_phantom::Result<()> {
//! let cfg = PhantomConfig { dims: [48, 48, 24], spacing: [8.0, 8.0, 10.0], ..PhantomConfig::default() };
//! let case = generate(42, &cfg)?;
//! assert_eq!(case.image.dims(), [48, 48, 24]);
//! assert_eq!(case.image.axcodes(), ['L', 'P', 'S']);
//! assert!(case.liver_ml() > 500.0);
//! # Ok(()) }
//! ```
//!
//! # What a phantom contains
//!
//! A patient is drawn from a `u64` seed in a patient-centred RAS frame (mm):
//! an elliptic trunk in air on a scanner table; subcutaneous fat (-100 HU)
//! and an abdominal muscle wall (50 HU); visceral fat (-90 HU) filled with
//! bowel loops (25 HU, some holding gas); a liver (50–68 HU with a faint
//! low-frequency texture) built as the union of two or three rotated
//! ellipsoids with smooth radial perturbations, on the patient's right; a
//! spleen on the left at nearly the liver's intensity; kidneys (30 HU); a
//! stomach with an air cap; a gallbladder (8 HU, in most patients); the aorta
//! and the inferior vena cava (45 HU, the IVC running into the liver's
//! shadow); vertebrae with cortical (650 HU) and cancellous (300–450 HU)
//! bone, discs (90 HU), canal and spinous processes; paraspinal muscles; and
//! ribs that curve round the flanks and descend anteriorly.
//!
//! A [`PhantomConfig`] then "scans" that patient: it lays a voxel grid of
//! any size, spacing, axis direction (`LPS` as dcm2niix writes DICOM data,
//! `RAS`, or `LPI`) and field-of-view centre over the patient, samples the
//! tissue at each voxel centre, blurs (Gaussian point-spread function) and
//! adds Gaussian noise. The label is 1 exactly where the liver is the tissue
//! left visible after every other structure was painted, so it is always
//! inside the body and holes where vessels or the gallbladder pass are not
//! labelled. Because the anatomy is defined in millimetres, flipping an axis
//! or changing the spacing changes the grid and not the organs: the liver
//! volume in millilitres agrees across such variants up to sampling error.
//!
//! # Realism limits
//!
//! The phantoms are meant to exercise code, not to replace clinical data.
//! They have no contrast phases (no arterial or portal-venous enhancement,
//! vessels look like unenhanced blood); no tumours, cysts or intrahepatic
//! vessels; no partial-volume effect beyond the blur (voxels are sampled at
//! their centres); Gaussian white noise instead of the correlated,
//! dose-dependent noise of filtered back-projection or iterative
//! reconstruction; no beam hardening, streaks, metal or motion artefacts; a
//! fixed supine pose with no rotation or oblique slices; ribs, vertebrae and
//! bowel drawn as simple analytic shapes (no costal cartilage, pelvis or
//! lungs). A model that does well here has learnt a much easier task than
//! liver segmentation on real CT.
//!
//! # Determinism
//!
//! [`generate`] gives the same bytes for the same seed and configuration on
//! every run, on every platform with IEEE-754 `f64` and with any number of
//! rayon threads: the anatomy comes from ChaCha8 stream 0 of the seed, each
//! slice's noise from its own ChaCha8 stream, and every blurred voxel is a
//! sum in a fixed order.

mod anatomy;
mod config;
mod dataset;
mod error;
mod render;
mod shapes;

pub use anatomy::Tissue;
pub use config::{MAX_VOXELS, PhantomConfig, RandomRanges};
pub use dataset::write_decathlon;
pub use error::{Error, Result};
pub use render::{Phantom, generate, tissue_map};
