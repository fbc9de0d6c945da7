//! The Medical Segmentation Decathlon layout, in one place: `dataset.json`
//! (what the dataset holds), case names, and `splits.json` (which cases
//! train, validate and are held out), with the one seeded rule that makes
//! every split.
//!
//! # The split rule
//!
//! So that other tools can reproduce a split: take the case names (image
//! file names without `.nii.gz`), sort them, and shuffle them with a
//! Fisher–Yates pass from the last element down, drawing each swap index
//! `j` in `0..=i` with `rand` 0.9's `random_range` from a ChaCha8 generator
//! seeded by `ChaCha8Rng::seed_from_u64(seed)`. The first
//! `round(n · test_fraction)` shuffled cases are the test set. The rest, in
//! shuffled order, are cut into `folds` contiguous parts whose sizes differ
//! by at most one; fold `f` validates on part `f` and trains on all others.
//! Every list in the file is sorted by name. The `folds` list has the
//! structure of nnU-Net's `splits_final.json`.

use crate::{Error, Overwrite, Result, Volume, write_file_atomic};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

mod labels;
pub use labels::{Class, Label, LabelMap, is_lesion};

/// One training pair as listed in `dataset.json`, paths relative to the
/// dataset folder (`./imagesTr/liver_0.nii.gz`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pair {
    /// The image path.
    pub image: String,
    /// The label path.
    pub label: String,
}

/// `dataset.json` as the Decathlon writes it, or as nnU-Net v2 does
/// (`channel_names`, `labels` name → value, `file_ending`, no list of
/// cases: they are the files of `labelsTr`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatasetJson {
    /// Dataset name, such as `Liver`.
    #[serde(default)]
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
    /// nnU-Net v2's channel index to modality name (`channel_names`).
    #[serde(
        default,
        rename = "channel_names",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub channel_names: BTreeMap<String, String>,
    /// Label value to class name (Decathlon), or class name to value
    /// (nnU-Net v2): [`DatasetJson::label_list`] reads either.
    #[serde(default)]
    pub labels: BTreeMap<String, serde_json::Value>,
    /// nnU-Net v2's image file suffix (`.nii.gz`): with it and no
    /// `training` list, the cases are the files of `labelsTr`.
    #[serde(
        default,
        rename = "file_ending",
        skip_serializing_if = "Option::is_none"
    )]
    pub file_ending: Option<String>,
    /// Number of training pairs.
    #[serde(default)]
    pub num_training: usize,
    /// Number of test images.
    #[serde(default)]
    pub num_test: usize,
    /// The training pairs.
    #[serde(default)]
    pub training: Vec<Pair>,
    /// The test images (paths as strings).
    #[serde(default)]
    pub test: Vec<String>,
}

/// A training case on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Case {
    /// Its name (the image file name without `.nii.gz`).
    pub name: String,
    /// The image file.
    pub image: PathBuf,
    /// The label file.
    pub label: PathBuf,
    /// The files of channels 1, 2, ... (nnU-Net's `case_0001`, ...); empty
    /// for one channel, or when `image` holds every channel as the volumes
    /// of a 4-D file (the Decathlon's multi-modal tasks).
    pub extra: Vec<PathBuf>,
}

impl Case {
    /// Reads the case's `channels` input channels as float32 volumes,
    /// channel 0 first: `image` and the `extra` files, or the volumes of a
    /// 4-D `image`. Fails naming the file when one is missing or holds
    /// another number of volumes.
    pub fn read_channels(&self, channels: usize) -> Result<Vec<Volume<f32>>> {
        let plain = crate::nifti::ReadOptions::default();
        if channels <= 1 {
            return Ok(vec![crate::nifti::read(&self.image, &plain)?]);
        }
        if self.extra.len() + 1 == channels {
            return std::iter::once(&self.image)
                .chain(&self.extra)
                .map(|p| crate::nifti::read(p, &plain))
                .collect();
        }
        (0..channels)
            .map(|k| {
                crate::nifti::read(&self.image, &crate::nifti::ReadOptions { volume: Some(k) })
            })
            .collect()
    }
}

/// The case name of a path as the Decathlon layout uses it: the last path
/// component (split at `/` or `\`) without one `.nii.gz` or `.nii` suffix.
/// `./imagesTr/liver_7.nii.gz` → `liver_7`.
pub fn case_name(path: &str) -> String {
    let file = path.rsplit(['/', '\\']).next().unwrap_or(path);
    file.strip_suffix(".nii.gz")
        .or_else(|| file.strip_suffix(".nii"))
        .unwrap_or(file)
        .to_string()
}

fn json_error(path: &Path, what: &str, e: serde_json::Error) -> Error {
    Error::invalid(path, format!("not {what}: {e}"))
}

fn read_text(path: &Path) -> Result<String> {
    let mut text = String::new();
    std::io::Read::read_to_string(&mut crate::open_input(path)?, &mut text)
        .map_err(|e| Error::io(path, "cannot read", e))?;
    Ok(text)
}

fn write_json(path: &Path, value: &impl Serialize, overwrite: Overwrite) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::invalid(path, format!("cannot serialise: {e}")))?
        + "\n";
    write_file_atomic(path, overwrite, |w| w.write_all(text.as_bytes()))
}

impl DatasetJson {
    /// A dataset of `training` pairs with the given name and labels, CT in,
    /// nothing held out in the file itself.
    pub fn new(name: &str, description: &str, labels: &[&str], training: Vec<Pair>) -> Self {
        DatasetJson {
            name: name.into(),
            description: description.into(),
            reference: String::new(),
            licence: String::new(),
            release: String::new(),
            tensor_image_size: "3D".into(),
            modality: BTreeMap::from([("0".into(), "CT".into())]),
            channel_names: BTreeMap::new(),
            labels: labels
                .iter()
                .enumerate()
                .map(|(i, l)| (i.to_string(), l.to_string().into()))
                .collect(),
            file_ending: None,
            num_training: training.len(),
            num_test: 0,
            training,
            test: Vec::new(),
        }
    }

    /// The pair of case `name` as the layout places it.
    pub fn pair(name: &str) -> Pair {
        Pair {
            image: format!("./imagesTr/{name}.nii.gz"),
            label: format!("./labelsTr/{name}.nii.gz"),
        }
    }

    /// Reads `dir/dataset.json`.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join("dataset.json");
        serde_json::from_str(&read_text(&path)?)
            .map_err(|e| json_error(&path, "a Decathlon dataset.json", e))
    }

    /// Writes `dir/dataset.json` atomically.
    pub fn write(&self, dir: &Path, overwrite: Overwrite) -> Result<()> {
        write_json(&dir.join("dataset.json"), self, overwrite)
    }

    /// Pretty-printed JSON with a trailing newline.
    pub fn to_json(&self) -> String {
        // Strings, numbers and maps of strings: serialising cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    /// The input channels and their modality names (`CT`, `T2`, ...), by
    /// index, from `modality` or nnU-Net's `channel_names`; `CT` when the
    /// file names none.
    pub fn channels(&self) -> Vec<String> {
        let table = if self.channel_names.is_empty() {
            &self.modality
        } else {
            &self.channel_names
        };
        if table.is_empty() {
            return vec!["CT".into()];
        }
        let mut v: Vec<(usize, &String)> = table
            .iter()
            .map(|(k, m)| (k.trim().parse().unwrap_or(usize::MAX), m))
            .collect();
        v.sort();
        v.into_iter().map(|(_, m)| m.clone()).collect()
    }

    /// The training cases under `root`, by name; a listed file that is
    /// missing is an error naming it. An nnU-Net v2 dataset (a
    /// `file_ending` and no `training` list) has a case per file of
    /// `labelsTr`, with its image `imagesTr/{case}_0000{file_ending}`.
    pub fn cases(&self, root: &Path) -> Result<BTreeMap<String, Case>> {
        if let (true, Some(ending)) = (self.training.is_empty(), &self.file_ending) {
            return nnunet_cases(root, ending, self.channels().len());
        }
        let mut cases = BTreeMap::new();
        for p in &self.training {
            let image = root.join(p.image.trim_start_matches("./"));
            let label = root.join(p.label.trim_start_matches("./"));
            for f in [&image, &label] {
                if !f.is_file() {
                    return Err(Error::invalid(f, "listed in dataset.json but missing"));
                }
            }
            let name = case_name(&p.image);
            if cases.contains_key(&name) {
                return Err(Error::invalid(
                    &root.join("dataset.json"),
                    format!("lists case {name:?} twice"),
                ));
            }
            cases.insert(
                name.clone(),
                Case {
                    name,
                    image,
                    label,
                    extra: Vec::new(),
                },
            );
        }
        Ok(cases)
    }
}

/// The cases of an nnU-Net v2 raw dataset: one per label file, with its
/// `channels` image files `case_0000`, `case_0001`, ....
fn nnunet_cases(root: &Path, ending: &str, channels: usize) -> Result<BTreeMap<String, Case>> {
    let labels = root.join("labelsTr");
    let entries = std::fs::read_dir(&labels).map_err(|e| Error::io(&labels, "cannot list", e))?;
    let mut cases = BTreeMap::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(&labels, "cannot list", e))?;
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(name) = file.strip_suffix(ending) else {
            continue;
        };
        if name.is_empty() || file.starts_with('.') {
            continue;
        }
        let mut files = Vec::with_capacity(channels);
        for c in 0..channels.max(1) {
            let image = root.join(format!("imagesTr/{name}_{c:04}{ending}"));
            if !image.is_file() {
                return Err(Error::invalid(
                    &image,
                    format!("missing: channel {c} of label file {file}"),
                ));
            }
            files.push(image);
        }
        let image = files.remove(0);
        let name = name.to_string();
        let label = entry.path();
        cases.insert(
            name.clone(),
            Case {
                name,
                image,
                label,
                extra: files,
            },
        );
    }
    Ok(cases)
}

/// One cross-validation fold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fold {
    /// Cases trained on.
    pub train: Vec<String>,
    /// Cases validated on.
    pub val: Vec<String>,
}

/// The content of `splits.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Splits {
    /// The seed the shuffle used.
    #[serde(default)]
    pub seed: u64,
    /// Held-out test cases.
    #[serde(default)]
    pub test: Vec<String>,
    /// Cross-validation folds over the remaining cases.
    pub folds: Vec<Fold>,
}

impl Splits {
    /// Splits `names` (any order) by the module's rule. `folds` must be at
    /// least 2 and at most the cases left after the test set.
    pub fn seeded(
        names: &[String],
        folds: usize,
        test_fraction: f64,
        seed: u64,
    ) -> std::result::Result<Splits, String> {
        if !(0.0..1.0).contains(&test_fraction) {
            return Err(format!(
                "the test fraction must be in [0, 1), got {test_fraction}"
            ));
        }
        let mut sorted = names.to_vec();
        sorted.sort();
        let n = sorted.len();
        sorted.dedup();
        if sorted.len() != n {
            return Err("a case name appears more than once".into());
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for i in (1..n).rev() {
            let j = rng.random_range(0..=i);
            sorted.swap(i, j);
        }
        let n_test = ((n as f64 * test_fraction).round() as usize).min(n);
        let (test, rest) = sorted.split_at(n_test);
        if folds < 2 {
            return Err(format!("at least 2 folds are needed, got {folds}"));
        }
        if folds > rest.len() {
            return Err(format!(
                "{folds} folds exceed the {} cases left after holding out {} test cases",
                rest.len(),
                test.len()
            ));
        }
        let m = rest.len();
        let folds = (0..folds)
            .map(|f| {
                let (lo, hi) = (f * m / folds, (f + 1) * m / folds);
                let mut val = rest[lo..hi].to_vec();
                let mut train: Vec<String> =
                    rest[..lo].iter().chain(&rest[hi..]).cloned().collect();
                val.sort();
                train.sort();
                Fold { train, val }
            })
            .collect();
        let mut test = test.to_vec();
        test.sort();
        Ok(Splits { seed, test, folds })
    }

    /// The split a dataset without `splits.json` trains with: the rule with
    /// seed 0, no test set, and five folds (fewer for fewer than five
    /// cases), fold 0.
    pub fn default_for(names: &[String]) -> std::result::Result<Splits, String> {
        Splits::seeded(names, names.len().clamp(2, 5), 0.0, 0)
    }

    /// Reads a `splits.json`.
    pub fn read(path: &Path) -> Result<Splits> {
        serde_json::from_str(&read_text(path)?).map_err(|e| json_error(path, "a splits.json", e))
    }

    /// Writes a `splits.json` atomically.
    pub fn write(&self, path: &Path, overwrite: Overwrite) -> Result<()> {
        write_json(path, self, overwrite)
    }
}

#[cfg(test)]
mod tests;
