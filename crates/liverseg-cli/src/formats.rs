//! Recognising what a path on the command line holds.

use crate::exit::bad_input;
use std::io::Read;
use std::path::Path;

/// What an input path holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// A NIfTI-1/2 file, `.nii` or `.nii.gz`.
    Nifti,
    /// One DICOM file (an image, a multi-frame image or a SEG).
    DicomFile,
    /// A directory of DICOM files.
    DicomDir,
}

/// True when the name ends in `.nii` or `.nii.gz` (any case).
pub fn has_nifti_name(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    name.ends_with(".nii") || name.ends_with(".nii.gz")
}

/// Decides what `path` holds from its content (the DICOM preamble, the gzip
/// or NIfTI header), falling back to the name.
pub fn detect(path: &Path) -> anyhow::Result<InputKind> {
    let meta = std::fs::metadata(path)
        .map_err(|e| bad_input(format!("{}: cannot read: {e}", path.display())))?;
    if meta.is_dir() {
        return Ok(InputKind::DicomDir);
    }
    let mut head = Vec::with_capacity(132);
    std::fs::File::open(path)
        .and_then(|f| f.take(132).read_to_end(&mut head))
        .map_err(|e| bad_input(format!("{}: cannot read: {e}", path.display())))?;
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
    Err(bad_input(format!(
        "{}: neither NIfTI (.nii, .nii.gz) nor DICOM (no DICM preamble)",
        path.display()
    )))
}

/// Fails when `output` is the same file or directory as `input`, or lies
/// inside the input directory (writing there would change the input).
pub fn ensure_not_input(input: &Path, output: &Path) -> anyhow::Result<()> {
    let canon_in = std::fs::canonicalize(input).ok();
    let out_parent = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let canon_out = std::fs::canonicalize(out_parent)
        .ok()
        .and_then(|p| output.file_name().map(|n| p.join(n)));
    if let (Some(i), Some(o)) = (canon_in, canon_out)
        && (i == o || (i.is_dir() && o.starts_with(&i)))
    {
        return Err(bad_input(format!(
            "{}: refusing to write over or inside the input {}",
            output.display(),
            input.display()
        )));
    }
    Ok(())
}
