//! Medical image I/O for liverseg: NIfTI-1/2 and DICOM (CT series, Enhanced
//! multi-frame, Segmentation) into one [`Volume`] type with RAS geometry.
//!
//! This is the bottom layer of the liverseg workspace: `liverseg-transforms`
//! resamples the volumes it reads, `liverseg-train` and `liverseg-cli` read
//! and write cases through it. It depends on no other liverseg crate and on
//! no tensor library.
//!
//! Every volume carries its voxel-to-world [`Affine`] in RAS millimetres (the
//! nibabel and MONAI convention) and is indexed `[x, y, z]`, like the array
//! MONAI's `LoadImage` returns for the same file.
//!
//! ```
//! use liverseg_io::{nifti, Affine, Volume};
//! # fn main() -> liverseg_io::Result<()> {
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("ct.nii.gz");
//! let affine = Affine::from_spacing_origin([0.8, 0.8, 2.5], [-200.0, -180.0, 40.0]);
//! let ct = Volume::new([4, 3, 2], affine, vec![-1000i16; 24])?;
//! nifti::write(&path, &ct, &nifti::WriteOptions::default())?;
//!
//! let back: Volume<f32> = nifti::read(&path, &nifti::ReadOptions::default())?;
//! assert_eq!(back.dims(), [4, 3, 2]);
//! assert_eq!(back.get(0, 0, 0), Some(-1000.0));
//! assert!(back.affine().max_abs_diff(&affine) < 1e-6);
//! # Ok(()) }
//! ```

mod error;
mod files;
mod geometry;
mod open;
mod output;
mod volume;

pub mod budget;
pub mod decathlon;
pub mod dicom;
pub mod nifti;

pub use error::{Error, Result};
pub use files::{check_input, open_input};
pub use geometry::Affine;
pub use nifti::Ct;
pub use open::{InputKind, detect, has_nifti_name, read_ct};
pub use output::{
    MARKER, Outputs, Overwrite, check_replaceable, install_dir, is_liverseg_output, mark_as_output,
    recover, write_dir_atomic, write_file_atomic,
};
pub use volume::{DType, Stats, Volume, Voxel};
