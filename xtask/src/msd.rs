//! The Medical Segmentation Decathlon dataset layout: `dataset.json`,
//! `imagesTr/`, `labelsTr/`, `imagesTs/`, and the checks that a copy on disk
//! is complete.

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One training pair as listed in `dataset.json`, paths relative to the
/// dataset folder (`./imagesTr/liver_0.nii.gz`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pair {
    /// The image path.
    pub image: String,
    /// The label path.
    pub label: String,
}

/// `dataset.json` as the Decathlon writes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatasetJson {
    /// Dataset name, such as `Liver`.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Citation of the source.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reference: String,
    /// Licence of the data.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub licence: String,
    /// Release version or date.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub release: String,
    /// Always `3D` here.
    #[serde(default)]
    pub tensor_image_size: String,
    /// Channel index to modality name, `{"0": "CT"}`.
    #[serde(default)]
    pub modality: BTreeMap<String, String>,
    /// Label value to class name.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Number of training pairs.
    pub num_training: usize,
    /// Number of test images.
    #[serde(default)]
    pub num_test: usize,
    /// The training pairs.
    pub training: Vec<Pair>,
    /// The test images (paths as strings).
    #[serde(default)]
    pub test: Vec<String>,
}

impl DatasetJson {
    /// Reads and parses `dir/dataset.json`.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join("dataset.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("{}: cannot read", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{}: not a Decathlon dataset.json", path.display()))
    }

    /// Pretty-printed JSON with a trailing newline.
    pub fn to_json(&self) -> Result<String> {
        Ok(serde_json::to_string_pretty(self)? + "\n")
    }
}

/// The case name of an image path: its file name without `.nii.gz` or
/// `.nii` (`./imagesTr/liver_7.nii.gz` gives `liver_7`).
pub use liverseg_io::nifti::case_name;

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
    fn case_names_drop_the_extension() {
        assert_eq!(case_name("./imagesTr/liver_7.nii.gz"), "liver_7");
        assert_eq!(case_name("imagesTr/a.nii"), "a");
        assert_eq!(case_name("b"), "b");
    }

    #[test]
    fn parses_a_decathlon_json() {
        let text = r#"{"name": "Liver", "description": "d", "tensorImageSize": "3D",
            "modality": {"0": "CT"}, "labels": {"0": "background", "1": "liver", "2": "cancer"},
            "numTraining": 1, "numTest": 1,
            "training": [{"image": "./imagesTr/liver_0.nii.gz", "label": "./labelsTr/liver_0.nii.gz"}],
            "test": ["./imagesTs/liver_132.nii.gz"]}"#;
        let ds: DatasetJson = serde_json::from_str(text).unwrap();
        assert_eq!(ds.num_training, 1);
        assert_eq!(ds.labels["2"], "cancer");
        assert_eq!(ds.test, vec!["./imagesTs/liver_132.nii.gz"]);
        let back: DatasetJson = serde_json::from_str(&ds.to_json().unwrap()).unwrap();
        assert_eq!(back, ds);
        assert!(ds.to_json().unwrap().contains("\"numTraining\": 1"));
    }
}
