//! Datasets in the Medical Segmentation Decathlon layout, cross-validation
//! splits, the on-disk cache of preprocessed cases, and conversion between
//! volumes and network tensors.

use std::path::{Path, PathBuf};

use liverseg_io::decathlon::{DatasetJson, Label, LabelMap, Splits};
use liverseg_io::{Overwrite, Volume, nifti};
use liverseg_transforms::{Grid, Preset};

use crate::{Error, Result};

pub use liverseg_io::decathlon::{Case, case_name};

/// A dataset with its training and validation cases.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// The folder holding `dataset.json`.
    pub root: PathBuf,
    /// Cases trained on.
    pub train: Vec<Case>,
    /// Cases validated on.
    pub val: Vec<Case>,
    /// Where the split came from, for the log.
    pub split_source: String,
    /// The dataset's labels (background excluded), from `dataset.json`.
    pub labels: Vec<Label>,
    /// The modality of each input channel (`CT`, `T2`, ...).
    pub channels: Vec<String>,
}

impl Dataset {
    /// Opens `data` (a folder with `dataset.json`, or the file itself).
    /// With `splits.json` (given, or beside `dataset.json`) fold `fold`
    /// decides train and validation; without one, fold `fold` of the
    /// default split (`Splits::default_for`: the seeded rule, five folds).
    pub fn open(data: &Path, splits: Option<&Path>, fold: usize) -> Result<Dataset> {
        let root = if data.is_dir() {
            data.to_path_buf()
        } else {
            data.parent().unwrap_or(Path::new(".")).to_path_buf()
        };
        let json_path = root.join("dataset.json");
        let json = DatasetJson::read(&root)?;
        let labels = json.label_list(&json_path)?;
        let channels = json.channels();
        let cases = json.cases(&root)?;
        if cases.len() < 2 {
            return Err(Error::Data {
                path: json_path,
                reason: format!(
                    "{} training cases; at least 2 are needed (one to validate)",
                    cases.len()
                ),
            });
        }
        let splits_path = splits.map(Path::to_path_buf).or_else(|| {
            let p = root.join("splits.json");
            p.is_file().then_some(p)
        });
        let (split, split_source) = match splits_path {
            Some(p) => (Splits::read(&p)?, format!("{} fold {fold}", p.display())),
            None => {
                let names: Vec<String> = cases.keys().cloned().collect();
                let s = Splits::default_for(&names).map_err(|reason| Error::Data {
                    path: json_path.clone(),
                    reason,
                })?;
                (s, "the default split (no splits.json)".to_string())
            }
        };
        let f = split.folds.get(fold).ok_or_else(|| Error::Data {
            path: root.join("splits.json"),
            reason: format!("fold {fold} requested, the split has {}", split.folds.len()),
        })?;
        let (train_names, val_names) = (f.train.clone(), f.val.clone());
        let pick = |names: &[String]| -> Result<Vec<Case>> {
            names
                .iter()
                .map(|n| {
                    cases.get(n).cloned().ok_or_else(|| Error::Data {
                        path: root.join("dataset.json"),
                        reason: format!("split names case {n:?}, which dataset.json does not list"),
                    })
                })
                .collect()
        };
        Ok(Dataset {
            train: pick(&train_names)?,
            val: pick(&val_names)?,
            root,
            split_source,
            labels,
            channels,
        })
    }
}

/// A preprocessed case, as training reads it.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// Image on the preset's grid.
    pub image: Volume<f32>,
    /// Class indices (channels of the run's [`LabelMap`]) on the same grid.
    pub label: Volume<u8>,
    /// The original CT grid, for mapping results back.
    pub original: Grid,
    /// Input channels 1, 2, ... on the image's grid (empty for one).
    pub channels: Vec<Volume<f32>>,
}

impl Prepared {
    /// Every input channel, the image first.
    pub fn inputs(&self) -> Vec<&Volume<f32>> {
        std::iter::once(&self.image).chain(&self.channels).collect()
    }
}

/// The persistent cache of preprocessed cases. An entry's name carries a
/// hash of the source files' paths, sizes and modification times, the
/// preset (as JSON) and the label map (as JSON), so a changed file or preset simply
/// misses and is recomputed; stale entries are never read.
#[derive(Clone, Debug)]
pub struct Cache {
    dir: PathBuf,
    preset_json: String,
    labels: LabelMap,
    channels: usize,
}

impl Cache {
    /// A cache under `dir` for cases of `channels` input channels
    /// preprocessed with `preset`.
    pub fn new(dir: PathBuf, preset: &Preset, labels: LabelMap, channels: usize) -> Result<Cache> {
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(&dir, "cannot create the cache folder", e))?;
        let preset_json =
            serde_json::to_string(preset).map_err(|e| Error::Config(e.to_string()))?;
        Ok(Cache {
            dir,
            preset_json,
            labels,
            channels: channels.max(1),
        })
    }

    /// The key of a case: FNV-1a over everything that decides its content.
    pub fn key(&self, case: &Case) -> String {
        let mut h = Fnv::new();
        for f in [&case.image, &case.label].into_iter().chain(&case.extra) {
            h.write(f.to_string_lossy().as_bytes());
            if let Ok(m) = std::fs::metadata(f) {
                h.write(&m.len().to_le_bytes());
                if let Ok(t) = m.modified().and_then(|t| {
                    t.duration_since(std::time::UNIX_EPOCH)
                        .map_err(std::io::Error::other)
                }) {
                    h.write(&t.as_nanos().to_le_bytes());
                }
            }
        }
        h.write(self.preset_json.as_bytes());
        h.write(
            serde_json::to_string(&self.labels)
                .unwrap_or_default()
                .as_bytes(),
        );
        if self.channels > 1 {
            h.write(&self.channels.to_le_bytes());
        }
        format!("{}-{:016x}", case.name, h.finish())
    }

    /// The preprocessed case, from the cache or computed (and stored).
    pub fn get(&self, case: &Case, preset: &Preset) -> Result<Prepared> {
        let key = self.key(case);
        let image_path = self.dir.join(format!("{key}_image.nii"));
        let channel_paths: Vec<PathBuf> = (1..self.channels)
            .map(|c| self.dir.join(format!("{key}_image{c}.nii")))
            .collect();
        let label_path = self.dir.join(format!("{key}_label.nii"));
        let grid_path = self.dir.join(format!("{key}_grid.json"));
        if image_path.is_file()
            && label_path.is_file()
            && grid_path.is_file()
            && channel_paths.iter().all(|p| p.is_file())
        {
            let read = || -> Result<Prepared> {
                let opts = nifti::ReadOptions::default();
                let original: Grid =
                    serde_json::from_str(&std::fs::read_to_string(&grid_path).map_err(|e| {
                        Error::Data {
                            path: grid_path.clone(),
                            reason: e.to_string(),
                        }
                    })?)
                    .map_err(|e| Error::Data {
                        path: grid_path.clone(),
                        reason: e.to_string(),
                    })?;
                Ok(Prepared {
                    image: nifti::read(&image_path, &opts)?,
                    label: nifti::read(&label_path, &opts)?,
                    original,
                    channels: channel_paths
                        .iter()
                        .map(|p| nifti::read(p, &opts))
                        .collect::<liverseg_io::Result<Vec<_>>>()?,
                })
            };
            if let Ok(p) = read() {
                return Ok(p);
            }
            tracing::warn!(case = %case.name, "unreadable cache entry; recomputing");
        }
        let prepared = prepare(case, preset, &self.labels, self.channels)?;
        let opts = nifti::WriteOptions {
            overwrite: Overwrite::Allow,
            ..Default::default()
        };
        nifti::write(&image_path, &prepared.image, &opts)?;
        for (p, v) in channel_paths.iter().zip(&prepared.channels) {
            nifti::write(p, v, &opts)?;
        }
        nifti::write(&label_path, &prepared.label, &opts)?;
        let json =
            serde_json::to_vec(&prepared.original).map_err(|e| Error::Config(e.to_string()))?;
        liverseg_io::write_file_atomic(&grid_path, Overwrite::Allow, |w| {
            std::io::Write::write_all(w, &json)
        })?;
        Ok(prepared)
    }
}

/// Reads and preprocesses one case (int16 CTs go into the first resampling
/// without a float copy) and maps its labels to class indices.
pub fn prepare(
    case: &Case,
    preset: &Preset,
    labels: &LabelMap,
    channels: usize,
) -> Result<Prepared> {
    let opts = nifti::ReadOptions::default();
    let label: Volume<u8> = nifti::read(&case.label, &opts)?;
    check_label_values(&case.label, &label, labels)?;
    let done = if channels > 1 {
        let images = case.read_channels(channels)?;
        for v in &images {
            check_finite(&case.image, v)?;
        }
        preset.run_channels(images, Some(label))
    } else {
        let image = nifti::read_ct(&case.image, &opts)?;
        if let nifti::Ct::F32(v) = &image {
            check_finite(&case.image, v)?;
        }
        preset.run(image, Some(label))
    };
    let done = done.map_err(|e| match e {
        liverseg_transforms::Error::Grid(reason) => Error::Data {
            path: case.label.clone(),
            reason,
        },
        other => other.into(),
    })?;
    let label = done
        .pair
        .label
        .map(|l| {
            // Every value was checked against the dataset's labels above.
            let table = labels.lookup();
            l.map(|v| table[usize::from(v)].unwrap_or(0))
        })
        .ok_or_else(|| Error::Config("the preset dropped the label".into()))?;
    Ok(Prepared {
        channels: done.pair.channels,
        image: done.pair.image,
        label,
        original: done.original,
    })
}

/// Fails, naming the file, when a training image holds NaN or infinite
/// voxels: they would turn the loss into NaN at some later batch.
pub fn check_finite(path: &Path, image: &Volume<f32>) -> Result<()> {
    let bad = image.data().iter().filter(|v| !v.is_finite()).count();
    if bad > 0 {
        return Err(Error::Data {
            path: path.to_path_buf(),
            reason: format!(
                "{bad} of {} voxels are NaN or infinite; training needs finite values",
                image.len()
            ),
        });
    }
    Ok(())
}

/// Fails, naming the file and the values, when a label map holds values
/// that `dataset.json` does not name ([`LabelMap::known`]): they would
/// otherwise train silently as background or some class.
pub fn check_label_values(path: &Path, label: &Volume<u8>, map: &LabelMap) -> Result<()> {
    let mut seen = [false; 256];
    for &v in label.data() {
        seen[usize::from(v)] = true;
    }
    let stray: Vec<String> = (0..256usize)
        .filter(|&v| seen[v] && !map.known.contains(&(v as u8)))
        .map(|v| v.to_string())
        .collect();
    if stray.is_empty() {
        return Ok(());
    }
    Err(Error::Data {
        path: path.to_path_buf(),
        reason: format!(
            "label values {} are not labels of this dataset (dataset.json names {:?}); fix or remap the labels",
            stray.join(", "),
            map.known
        ),
    })
}

/// 64-bit FNV-1a: the same on every build and platform (cache keys, run
/// fingerprints), unlike `DefaultHasher`.
pub(crate) struct Fnv(u64);

impl Fnv {
    pub(crate) fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    pub(crate) fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    pub(crate) fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_names_drop_extensions() {
        assert_eq!(case_name("./imagesTr/liver_12.nii.gz"), "liver_12");
        assert_eq!(case_name("a.nii"), "a");
    }
}
