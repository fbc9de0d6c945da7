//! A model file's card: what a network needs besides its weights to be
//! used as it was trained (architecture, preprocessing preset, class
//! decision, class names), read and written in one place.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{Device, Tensor};
use liverseg_model::{Architecture, LABELS_KEY, ModelFile, PRESET_KEY, save_as};
use liverseg_transforms::Preset;
use serde::{Serialize, de::DeserializeOwned};

use crate::{Decision, Error, Result};

/// Metadata key holding the model's [`Decision`] as JSON.
pub const DECISION_KEY: &str = "liverseg.decision";
/// Metadata key holding [`ModelCard::values`] as a JSON list.
pub const VALUES_KEY: &str = "liverseg.label_values";
/// Metadata key holding [`ModelCard::largest_component`] as a JSON list.
pub const COMPONENT_KEY: &str = "liverseg.largest_component";
/// Metadata key holding [`ModelCard::about`] as a JSON object.
pub const ABOUT_KEY: &str = "liverseg.about";

/// What a model file says about its network, typed.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelCard {
    /// The network.
    pub architecture: Architecture,
    /// The preprocessing it was trained with; the MONAI tutorial's (`seed`)
    /// for an imported MONAI model that records none.
    pub preset: Preset,
    /// How its logits become classes; `Argmax` (MONAI's inference) when the
    /// file records none.
    pub decision: Decision,
    /// Class names, background first, one per output channel.
    pub classes: Vec<String>,
    /// The label value each class is written with, background (0) first,
    /// one per output channel: the dataset's own values (a model trained
    /// on spleen 3 and kidney 4 writes 3 and 4). `0, 1, 2, ...` when the
    /// file records none.
    pub values: Vec<u8>,
    /// Per class, background first: whether prediction keeps only the
    /// class's largest connected component. Training sets it for a class
    /// found in one piece in every training case (a liver, a spleen; not a
    /// pair of kidneys or scattered lesions). Every foreground class when
    /// the file records none.
    pub largest_component: Vec<bool>,
    /// What a shipped model says about itself (name, version, what it was
    /// trained on, the command that reproduces it, its accuracy), printed
    /// by `liverseg models`; empty for most files.
    pub about: BTreeMap<String, String>,
}

fn entry<T: DeserializeOwned>(
    path: &Path,
    meta: &HashMap<String, String>,
    key: &str,
) -> Result<Option<T>> {
    meta.get(key)
        .map(|json| {
            serde_json::from_str(json).map_err(|e| Error::Card {
                path: path.to_path_buf(),
                reason: format!("unreadable {key} metadata: {e}"),
            })
        })
        .transpose()
}

fn json<T: Serialize + ?Sized>(v: &T) -> String {
    // Presets, decisions and name lists are plain data: serialising them
    // cannot fail.
    serde_json::to_string(v).unwrap_or_default()
}

/// Class names for `n` output channels when a file records none (or a
/// list of another length): background, liver, tumour, class 3, ...
pub fn default_classes(n: usize) -> Vec<String> {
    (0..n)
        .map(|k| match k {
            0 => "background".to_string(),
            1 => "liver".to_string(),
            2 => "tumour".to_string(),
            k => format!("class {k}"),
        })
        .collect()
}

impl ModelCard {
    /// The card of a loaded model file, from its metadata.
    pub fn of(path: &Path, file: &ModelFile) -> Result<ModelCard> {
        let meta = &file.metadata;
        let n = file.architecture.out_channels();
        let classes: Option<Vec<String>> = entry(path, meta, LABELS_KEY)?;
        let values: Option<Vec<u8>> = entry(path, meta, VALUES_KEY)?;
        let values = match values {
            None => (0..n).map(|k| k.min(255) as u8).collect(),
            Some(v) => {
                let mut sorted = v.clone();
                sorted.sort_unstable();
                sorted.dedup();
                if v.len() != n || v.first() != Some(&0) || sorted.len() != n {
                    return Err(Error::Card {
                        path: path.to_path_buf(),
                        reason: format!(
                            "{VALUES_KEY} {v:?}: expected {n} distinct values, background 0 first"
                        ),
                    });
                }
                v
            }
        };
        let largest_component: Option<Vec<bool>> = entry(path, meta, COMPONENT_KEY)?;
        let largest_component = largest_component
            .filter(|v| v.len() == n)
            .unwrap_or_else(|| (0..n).map(|k| k > 0).collect());
        Ok(ModelCard {
            architecture: file.architecture.clone(),
            preset: entry(path, meta, PRESET_KEY)?.unwrap_or_else(Preset::seed),
            decision: entry(path, meta, DECISION_KEY)?.unwrap_or(Decision::Argmax),
            classes: classes
                .filter(|c| c.len() == n)
                .unwrap_or_else(|| default_classes(n)),
            values,
            largest_component,
            about: entry(path, meta, ABOUT_KEY)?.unwrap_or_default(),
        })
    }

    /// Reads a liverseg model file: its card and its weights.
    pub fn read(path: &Path, device: &Device) -> Result<(ModelCard, ModelFile)> {
        let file = ModelFile::load(path, device)?;
        Ok((ModelCard::of(path, &file)?, file))
    }

    /// The metadata entries of this card besides the architecture (which
    /// `liverseg_model::save_as` writes).
    pub fn metadata(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::from([
            (PRESET_KEY.to_string(), json(&self.preset)),
            (DECISION_KEY.to_string(), json(&self.decision)),
            (LABELS_KEY.to_string(), json(&self.classes)),
            (VALUES_KEY.to_string(), json(&self.values)),
            (COMPONENT_KEY.to_string(), json(&self.largest_component)),
        ]);
        if !self.about.is_empty() {
            m.insert(ABOUT_KEY.to_string(), json(&self.about));
        }
        m
    }

    /// Writes `tensors` with this card as a self-describing model file
    /// (atomically; an existing file only with `overwrite`).
    pub fn write(
        &self,
        path: &Path,
        tensors: &HashMap<String, Tensor>,
        overwrite: bool,
    ) -> Result<()> {
        self.write_as(path, tensors, overwrite, candle_core::DType::F32)
    }

    /// [`ModelCard::write`] with the tensors stored as `dtype` (`F16` for a
    /// shipped model; they are read back as float32).
    pub fn write_as(
        &self,
        path: &Path,
        tensors: &HashMap<String, Tensor>,
        overwrite: bool,
        dtype: candle_core::DType,
    ) -> Result<()> {
        save_as(
            path,
            &self.architecture,
            tensors,
            &self.metadata(),
            overwrite,
            dtype,
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use liverseg_model::UNetConfig;

    #[test]
    fn a_card_round_trips_through_a_model_file() {
        let arch = Architecture::MonaiUnet(UNetConfig {
            out_channels: 3,
            channels: vec![4, 8],
            strides: vec![2],
            ..UNetConfig::default()
        });
        let shapes = arch.parameter_shapes().unwrap();
        let tensors: HashMap<String, Tensor> = shapes
            .iter()
            .map(|(k, s)| {
                (
                    k.clone(),
                    Tensor::zeros(s.as_slice(), candle_core::DType::F32, &Device::Cpu).unwrap(),
                )
            })
            .collect();
        let card = ModelCard {
            architecture: arch,
            preset: Preset::fast(),
            decision: Decision::Sigmoid,
            classes: vec!["background".into(), "liver".into(), "tumour".into()],
            values: vec![0, 1, 7],
            largest_component: vec![false, true, false],
            about: BTreeMap::from([("name".into(), "test".into())]),
        };
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.safetensors");
        card.write(&p, &tensors, false).unwrap();
        let (back, file) = ModelCard::read(&p, &Device::Cpu).unwrap();
        assert_eq!(back, card);
        assert_eq!(file.tensors.len(), tensors.len());
        // A file without a card (a MONAI import) gets the tutorial's.
        liverseg_model::save(&p, &card.architecture, &tensors, true).unwrap();
        let (plain, _) = ModelCard::read(&p, &Device::Cpu).unwrap();
        assert_eq!(plain.preset, Preset::seed());
        assert_eq!(plain.decision, Decision::Argmax);
        assert_eq!(plain.classes, default_classes(3));
        assert_eq!(plain.values, [0, 1, 2]);
        assert_eq!(plain.largest_component, [false, true, true]);
        assert!(plain.about.is_empty());
        // Half precision on disk reads back as float32 equal to the card.
        card.write_as(&p, &tensors, true, candle_core::DType::F16)
            .unwrap();
        let (half, file) = ModelCard::read(&p, &Device::Cpu).unwrap();
        assert_eq!(half, card);
        // Values that cannot name the channels are refused.
        for bad in [vec![0u8, 1], vec![1, 2, 3], vec![0, 4, 4]] {
            let c = ModelCard {
                values: bad.clone(),
                ..card.clone()
            };
            c.write(&p, &tensors, true).unwrap();
            let e = ModelCard::read(&p, &Device::Cpu).unwrap_err().to_string();
            assert!(
                e.contains("label_values") && e.contains("m.safetensors"),
                "{bad:?}: {e}"
            );
        }
        assert!(
            file.tensors
                .values()
                .all(|t| t.dtype() == candle_core::DType::F32)
        );
    }
}
