//! The Medical Segmentation Decathlon dataset layout: `dataset.json`,
//! `imagesTr/`, `labelsTr/`, `imagesTs/`, and the checks that a copy on disk
//! is complete.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

pub use liverseg_io::decathlon::{DatasetJson, Pair};

/// True for files that are metadata of some other tool rather than data:
/// hidden files, macOS AppleDouble `._*` forks, `.DS_Store`.
pub fn is_junk(name: &str) -> bool {
    name.starts_with('.')
}

/// The NIfTI files (`.nii`, `.nii.gz`) directly in `dir`, junk skipped,
/// sorted by name.
pub fn nifti_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in
        std::fs::read_dir(dir).with_context(|| format!("{}: cannot list", dir.display()))?
    {
        let entry = entry.with_context(|| format!("{}: cannot list", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !is_junk(&name) && (name.ends_with(".nii.gz") || name.ends_with(".nii")) {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// What [`verify_layout`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayoutReport {
    /// Training pairs listed and present.
    pub training: usize,
    /// Test images present.
    pub test: usize,
}

/// Checks that `dir` holds a complete Decathlon dataset: `dataset.json`,
/// the folders `imagesTr`, `labelsTr` and `imagesTs`, every listed
/// training image and label present, and as many files as `numTraining`
/// and `numTest` declare.
pub fn verify_layout(dir: &Path) -> Result<LayoutReport> {
    let ds = DatasetJson::read(dir)?;
    for sub in ["imagesTr", "labelsTr", "imagesTs"] {
        let p = dir.join(sub);
        if !p.is_dir() {
            bail!(
                "{}: missing folder {sub}/ (incomplete or not a Decathlon dataset)",
                dir.display()
            );
        }
    }
    if ds.training.len() != ds.num_training {
        bail!(
            "{}: dataset.json lists {} training pairs but declares numTraining {}",
            dir.display(),
            ds.training.len(),
            ds.num_training
        );
    }
    for pair in &ds.training {
        for rel in [&pair.image, &pair.label] {
            let p = dir.join(rel.trim_start_matches("./"));
            if !p.is_file() {
                bail!("{}: listed in dataset.json but missing", p.display());
            }
        }
    }
    for (sub, want) in [
        ("imagesTr", ds.num_training),
        ("labelsTr", ds.num_training),
        ("imagesTs", ds.num_test),
    ] {
        let found = nifti_files(&dir.join(sub))?.len();
        if found != want {
            bail!(
                "{}: {sub}/ holds {found} NIfTI files, dataset.json declares {want}",
                dir.display()
            );
        }
    }
    Ok(LayoutReport {
        training: ds.num_training,
        test: ds.num_test,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junk_is_hidden_files() {
        assert!(is_junk("._liver_0.nii.gz") && is_junk(".DS_Store"));
        assert!(!is_junk("liver_0.nii.gz"));
    }
}
