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
//! # Clinical mode
//!
//! Setting [`PhantomConfig::clinical`] to `Some(`[`ClinicalOptions`]`)`
//! (or drawing a whole case with [`PhantomConfig::clinical_in`] and
//! [`ClinicalRanges`]) switches to a second, richer patient model and
//! scanner model; the classic phantoms above keep their exact bytes.
//!
//! The clinical patient (ChaCha8 stream 2 of the seed) spans the lung
//! apices to the pubic symphysis. The body outline and the fat depend on
//! the [`Habitus`] (3–80 mm of subcutaneous fat, visceral fat that bulges
//! the abdomen). The liver is a right lobe, a left lobe and a caudate lobe
//! (rotated, perturbed ellipsoids) clipped by a two-domed diaphragm (a
//! muscle band); a [`LiverCondition`] makes it fatty (HU only) or cirrhotic
//! (smaller right lobe, larger caudate and left lobe, nodular surface and
//! texture, splenomegaly, usually ascites), and [`LiverVariant`]s add a
//! Riedel lobe or shrink a lobe. Branching portal and hepatic vein trees
//! grow inside the liver; lesions ([`LesionKind`]: cysts, metastases with
//! an enhancing rim, HCC with a capsule, haemangiomas with peripheral
//! nodules; 5–50 mm) sit inside it. Around it: gallbladder, spleen,
//! kidneys (cortex, medulla, renal pelvis), pancreas, stomach (wall, gas
//! cap, contents), colon and small-bowel loops (wall, gas, optional oral
//! contrast), aorta with iliac, renal and mesenteric branches, IVC with
//! iliac and renal veins, the extrahepatic portal, splenic and superior
//! mesenteric veins; heart (myocardium, left and right blood pools),
//! mediastinal fat and lungs with pulmonary vessels above the diaphragm;
//! vertebrae (cortex, cancellous core, discs, canal, arch and processes),
//! ribs with costal cartilage (sometimes calcified), sternum, pelvis
//! (iliac wings, sacrum, pubic and ischial rami, femoral heads and shafts),
//! psoas and back muscles, bladder, table; and, on request, metal (lumbar
//! rods and screws, or a hip prosthesis).
//!
//! Each tissue's HU comes from published ranges for the chosen [`Phase`]
//! (native, arterial, portal venous, delayed), one draw per patient with a
//! shared "bolus" factor, or from SynthSeg-style randomisation
//! ([`ContrastMode::Randomised`]). The label follows the Medical
//! Segmentation Decathlon Task03 / LiTS convention: 1 is the liver
//! including its intrahepatic vessel branches and its lesions (2 for
//! metastases and HCC when [`ClinicalOptions::tumour_label`] is set);
//! gallbladder, IVC, extrahepatic portal vein and ascites are 0.
//!
//! The clinical scanner averages 1–5 sub-samples across the slice
//! thickness (partial volume), blurs in-plane, adds noise whose texture
//! follows the [`Kernel`] (white noise band-passed in-plane, scaled to
//! `noise_sigma`: blotchy for soft kernels, fine and anticorrelated for
//! sharp ones), draws bright and dark streaks from metal and a dark band
//! between two implants, darkens the band between the dense bones of both
//! hips (beam hardening), and optionally writes a padding value outside the
//! circular field of view. [`describe`] summarises a case in one line for
//! tabulating results per phase, scan range or condition.
//!
//! # Realism limits
//!
//! The phantoms are meant to exercise code, not to replace clinical data.
//! The classic phantoms have no contrast phases, lesions, intrahepatic
//! vessels, lungs or pelvis, sample voxels at their centres and add white
//! noise. The clinical mode is richer but still analytic: organs are
//! unions of perturbed ellipsoids and capsule chains, not segmented
//! anatomy; the vessel trees are random binary trees, not the real
//! Couinaud branching; textures are sums of sinusoids; HU values are
//! literature ranges, never fitted to scans; the noise is stationary
//! (no photon-starvation gradients across the body, no dose modulation
//! along z beyond the per-case level); beam hardening other than the band
//! between the hips, cupping, motion, arms,
//! breathing, oblique gantry tilt and reconstruction blur along z (beyond
//! the slab average) are not modelled. A model that does well here has
//! learnt an easier task than liver segmentation on real CT.
//!
//! # Determinism
//!
//! [`generate`] gives the same bytes for the same seed and configuration on
//! every run, on every platform with IEEE-754 `f64` and with any number of
//! rayon threads: the anatomy comes from ChaCha8 stream 0 of the seed (the
//! clinical patient from stream 2, its HU values from stream 4, a
//! clinical grid from stream 3), each slice's noise from its own ChaCha8
//! stream, and every blurred voxel is a sum in a fixed order.

mod anatomy;
mod clinical;
mod config;
mod dataset;
mod error;
mod mr;
mod render;
mod shapes;

pub use anatomy::Tissue;
pub use clinical::{
    CaseDescription, ClinicalOptions, ClinicalRanges, ContrastMode, Habitus, Kernel, LesionKind,
    LiverCondition, LiverVariant, Organ, Phase, Position, Resection, ScanRange, Storage, describe,
};
pub use config::{MAX_VOXELS, PhantomConfig, RandomRanges};
pub use dataset::{write_decathlon, write_decathlon_as};
pub use error::{Error, Result};
pub use mr::{MrSequence, generate_mr};
pub use render::{Phantom, generate, tissue_map};
