//! The one door for opening a CT: what a path holds, decided from its
//! content first (the DICOM preamble, the NIfTI header size, the gzip
//! magic) and its name last, and the reader that goes with it.

use crate::nifti::{self, Ct};
use crate::{Error, Result, dicom};
use std::io::Read;
use std::path::Path;

/// What an input path holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// A NIfTI-1/2 file, `.nii` or `.nii.gz`.
    Nifti,
    /// One DICOM file (an image, a multi-frame image or a SEG).
    DicomFile,
    /// A folder (of DICOM files, or of cases).
    Folder,
}

/// True when the name ends in `.nii` or `.nii.gz` (any case).
pub fn has_nifti_name(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    name.ends_with(".nii") || name.ends_with(".nii.gz")
}

/// Decides what `path` holds from its content (the DICOM preamble, the
/// gzip or NIfTI header), falling back to the name. Special files (FIFOs,
/// devices) and unreadable paths are errors naming the path.
pub fn detect(path: &Path) -> Result<InputKind> {
    if crate::check_input(path)?.is_dir() {
        return Ok(InputKind::Folder);
    }
    // 16 KiB hold the preamble and any meta group.
    let mut head = Vec::with_capacity(16384);
    let mut file = crate::open_input(path)?;
    let len = file
        .metadata()
        .map_err(|e| Error::io(path, "cannot stat", e))?
        .len();
    (&mut file)
        .take(16384)
        .read_to_end(&mut head)
        .map_err(|e| Error::io(path, "cannot read", e))?;
    if head.len() >= 132 && &head[128..132] == b"DICM" {
        return Ok(InputKind::DicomFile);
    }
    let sizeof_hdr = head
        .get(..4)
        .map(|b| [b[0], b[1], b[2], b[3]])
        .map(|b| (i32::from_le_bytes(b), i32::from_be_bytes(b)));
    let nifti_magic = matches!(sizeof_hdr, Some((348 | 540, _)) | Some((_, 348 | 540)));
    let gzip = head.starts_with(&[0x1f, 0x8b]);
    if nifti_magic || gzip || has_nifti_name(path) {
        return Ok(InputKind::Nifti);
    }
    // DICOM without the preamble: a meta group or a data set from byte 0
    // (old implicit-VR files, some PACS exports).
    if crate::dicom::looks_like_dicom(&head, usize::try_from(len).unwrap_or(usize::MAX)) {
        return Ok(InputKind::DicomFile);
    }
    Err(Error::invalid(
        path,
        "neither NIfTI (.nii, .nii.gz) nor DICOM (no DICM preamble, no data set at its start)",
    ))
}

/// Reads the CT at `path`, whatever it holds: a NIfTI file as stored
/// (unscaled int16 stays int16), a DICOM file or series folder as float HU.
pub fn read_ct(path: &Path) -> Result<Ct> {
    Ok(match detect(path)? {
        InputKind::Nifti => nifti::read_ct(path, &nifti::ReadOptions::default())?,
        InputKind::DicomFile | InputKind::Folder => {
            Ct::F32(dicom::read(path, &dicom::ReadOptions::default())?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Affine, Volume};

    #[test]
    fn content_decides_before_the_name() {
        let dir = tempfile::tempdir().unwrap();
        let v = Volume::new([2, 2, 2], Affine::identity(), vec![-1000i16; 8]).unwrap();
        // A NIfTI file without a NIfTI suffix is still NIfTI.
        let gz = dir.path().join("ct.nii.gz");
        nifti::write(&gz, &v, &nifti::WriteOptions::default()).unwrap();
        let renamed = dir.path().join("scan.img");
        std::fs::copy(&gz, &renamed).unwrap();
        assert_eq!(detect(&renamed).unwrap(), InputKind::Nifti);
        assert!(matches!(read_ct(&renamed).unwrap(), Ct::I16(_)));
        assert_eq!(detect(dir.path()).unwrap(), InputKind::Folder);
        let junk = dir.path().join("notes.txt");
        std::fs::write(&junk, "hello").unwrap();
        let e = detect(&junk).unwrap_err();
        assert!(
            e.is_bad_input() && e.to_string().contains("notes.txt"),
            "{e}"
        );
    }
}
