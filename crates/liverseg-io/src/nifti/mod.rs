//! NIfTI-1 and NIfTI-2 reading and NIfTI-1 writing, `.nii` and `.nii.gz`.
//!
//! Headers are parsed by the `nifti` crate (NIfTI-1) and by [`nifti2`]
//! (NIfTI-2, which the crate does not read). The affine is chosen as
//! nibabel's `get_best_affine` does: the sform when `sform_code > 0`, else the
//! qform when `qform_code > 0`, else a diagonal from `pixdim` with x flipped
//! and the origin at the volume centre. Scaling (`scl_slope`, `scl_inter`) is
//! applied the way nibabel applies it.
//!
//! Compression is detected from the content (gzip magic), not from the name,
//! when reading; written files are gzipped exactly when the name ends in
//! `.gz`.

mod convert;
mod ct;
mod data;
mod gz;
mod header;
mod inflate;
mod locate;
pub mod nifti2;
mod reader;
mod stats;
#[cfg(test)]
mod test_support;
mod writer;

pub use ct::{Ct, read_ct};
pub use header::{AffineSource, NiftiHeaderInfo};
pub use locate::{read_affine, read_header};
pub use reader::{read, read_bytes, read_bytes_streaming};
pub use stats::read_stats;
pub use writer::{WriteOptions, write, write_4d};

/// Options for [`read`].
#[derive(Clone, Debug, Default)]
pub struct ReadOptions {
    /// Which 3-D volume of a 4-D (or higher) file to read, counting from 0.
    /// A file with more than one volume is an error unless this is set.
    pub volume: Option<usize>,
}

/// The first two bytes of every gzip member.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

pub use crate::decathlon::case_name;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_names_drop_one_nifti_suffix() {
        assert_eq!(case_name("./imagesTr/liver_7.nii.gz"), "liver_7");
        assert_eq!(case_name("C:\\data\\a.nii"), "a");
        assert_eq!(case_name("b"), "b");
        assert_eq!(case_name("x.nii.gz.nii.gz"), "x.nii.gz");
        assert_eq!(case_name("scan.gz"), "scan.gz");
    }
}
