//! A dataset's labels and the classes a network learns from them.
//!
//! `dataset.json` names its label values in one of two ways: the Medical
//! Segmentation Decathlon's value → name (`{"0": "background", "1":
//! "liver", "2": "cancer"}`) or nnU-Net v2's name → value (`{"background":
//! 0, "liver": 1}`). [`DatasetJson::label_list`] reads either into
//! [`Label`]s.
//!
//! A [`LabelMap`] says which classes a network learns: each [`Class`] has a
//! name, the label value predictions are written with, and the dataset
//! values merged into it. It is resolved from the dataset's labels and a
//! selection such as `liver=liver+tumour,spleen` ([`LabelMap::resolve`]):
//!
//! - `NAME` selects the label of that name (case-insensitive; `tumour`,
//!   `tumor` and `cancer` name the same thing) or value.
//! - `NAME=A+B` merges labels `A` and `B` (names or values) into one class
//!   called `NAME`, written with `A`'s value.
//! - A selected organ also takes in the lesion labels (tumour, cancer,
//!   lesion, ...) that no other item claims and that are its own: those
//!   named after it (`liver_tumour`), or every lesion label when it is the
//!   dataset's only organ. A tumour lies inside its organ, so `liver` on the
//!   Decathlon's Task03 is the whole liver, as the MONAI tutorial and
//!   `liverseg evaluate` count it.
//! - Labels not selected become background.
//! - An empty selection (or `auto`) takes every label as its own class,
//!   except for a liver dataset whose other labels are all its lesions
//!   (Task03, LiTS), where it is the tutorial's single `liver` class.

use serde::{Deserialize, Serialize};
use std::path::Path;

use super::DatasetJson;
use crate::{Error, Result};

/// One label of a dataset: a value in its label files and its name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    /// The voxel value, 1–255 (0 is background).
    pub value: u8,
    /// The dataset's name for it.
    pub name: String,
}

/// One class a network learns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Class {
    /// Its name (in model cards, reports and DICOM SEG segment labels).
    pub name: String,
    /// The label value predictions write for it.
    pub value: u8,
    /// The dataset's label values merged into it.
    pub sources: Vec<u8>,
}

/// The classes a network learns from a dataset, background excluded, in
/// output-channel order (class `k` is channel `k + 1`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelMap {
    /// The classes.
    pub classes: Vec<Class>,
    /// Every value the dataset's label files may hold, background included;
    /// any other value is an error when a case is read.
    pub known: Vec<u8>,
}

/// Words that mark a label as a lesion inside an organ.
const LESION_WORDS: [&str; 8] = [
    "tumour",
    "tumor",
    "cancer",
    "lesion",
    "metasta",
    "neoplasm",
    "carcinoma",
    "mass",
];

/// Whether a label's name marks a lesion that lies inside an organ
/// (tumour, tumor, cancer, lesion, metastasis, neoplasm, carcinoma, mass):
/// selections merge such labels into their organ, and prediction fills an
/// organ's holes around them.
pub fn is_lesion(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    LESION_WORDS.iter().any(|w| n.contains(w))
}

/// A name as selections compare it: lower case, spaces and hyphens as
/// underscores, and `tumor`/`cancer` spelled `tumour`.
fn normalise(name: &str) -> String {
    let n: String = name
        .trim()
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c == ' ' || c == '-' { '_' } else { c })
        .collect();
    match n.as_str() {
        "tumor" | "cancer" => "tumour".into(),
        _ => n,
    }
}

impl DatasetJson {
    /// The dataset's labels, background (value 0) excluded, sorted by
    /// value, from either the Decathlon's value → name table or nnU-Net
    /// v2's name → value one. `path` names the file in errors.
    pub fn label_list(&self, path: &Path) -> Result<Vec<Label>> {
        let bad = |reason: String| Error::invalid(path, reason);
        if self.labels.is_empty() {
            return Err(bad("lists no labels".into()));
        }
        let value_of = |text: &str, what: &str| -> Result<u8> {
            text.trim()
                .parse::<u8>()
                .map_err(|_| bad(format!("label {what}: expected a value 0-255")))
        };
        let mut out: Vec<Label> = Vec::new();
        let msd = self.labels.values().all(|v| v.is_string());
        for (key, v) in &self.labels {
            let (value, name) = if msd {
                let name = v.as_str().unwrap_or_default();
                (
                    value_of(key, &format!("{key:?} ({name})"))?,
                    name.to_string(),
                )
            } else if let Some(n) = v.as_u64() {
                (
                    value_of(&n.to_string(), &format!("{key:?}: {n}"))?,
                    key.clone(),
                )
            } else if v.is_array() {
                return Err(bad(format!(
                    "label {key:?} is a list of values (an nnU-Net region); regions are not supported, name each value once"
                )));
            } else {
                return Err(bad(format!(
                    "label {key:?}: {v} is neither a name (Decathlon) nor a value (nnU-Net v2)"
                )));
            };
            if value == 0 {
                continue;
            }
            if let Some(o) = out.iter().find(|l| l.value == value) {
                return Err(bad(format!(
                    "labels {:?} and {name:?} share value {value}",
                    o.name
                )));
            }
            if out.iter().any(|l| normalise(&l.name) == normalise(&name)) {
                return Err(bad(format!("label name {name:?} appears twice")));
            }
            out.push(Label { value, name });
        }
        if out.is_empty() {
            return Err(bad("lists background only".into()));
        }
        out.sort_by_key(|l| l.value);
        Ok(out)
    }
}

impl LabelMap {
    /// Every label its own class.
    pub fn each(labels: &[Label]) -> LabelMap {
        let classes = labels
            .iter()
            .map(|l| Class {
                name: l.name.clone(),
                value: l.value,
                sources: vec![l.value],
            })
            .collect();
        LabelMap::with(classes, labels)
    }

    fn with(classes: Vec<Class>, labels: &[Label]) -> LabelMap {
        let mut known = vec![0];
        known.extend(labels.iter().map(|l| l.value));
        LabelMap { classes, known }
    }

    /// The classes `spec` selects from `labels` (the [module](self) docs
    /// give the rules); an empty `spec` or `auto` gives the dataset's
    /// default. Fails naming the item and the dataset's labels.
    pub fn resolve(labels: &[Label], spec: &str) -> std::result::Result<LabelMap, String> {
        let spec = spec.trim();
        if spec.is_empty() || spec.eq_ignore_ascii_case("auto") {
            let organs: Vec<&Label> = labels.iter().filter(|l| !is_lesion(&l.name)).collect();
            let tutorial = organs.len() == 1 && normalise(&organs[0].name) == "liver";
            return if tutorial {
                LabelMap::resolve(labels, "liver")
            } else {
                Ok(LabelMap::each(labels))
            };
        }
        let listing = || {
            labels
                .iter()
                .map(|l| format!("{} {}", l.value, l.name))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let find = |part: &str| -> std::result::Result<&Label, String> {
            let n = normalise(part);
            labels
                .iter()
                .find(|l| normalise(&l.name) == n || l.value.to_string() == n)
                .ok_or_else(|| format!("no label {part:?} in the dataset ({})", listing()))
        };
        // (class, its labels, selected by a bare organ name)
        let mut items: Vec<(String, Vec<&Label>, bool)> = Vec::new();
        for item in spec.split(',').map(str::trim) {
            let (name, parts, bare) = match item.split_once('=') {
                Some((n, rhs)) => (n.trim().to_string(), rhs.split('+').collect(), false),
                None => (item.to_string(), vec![item], true),
            };
            if name.is_empty() || parts.iter().any(|p| p.trim().is_empty()) {
                return Err(format!("{item:?}: expected NAME or NAME=A+B"));
            }
            let parts = parts
                .into_iter()
                .map(&find)
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let name = if bare { parts[0].name.clone() } else { name };
            if items
                .iter()
                .any(|(n, _, _)| normalise(n) == normalise(&name))
            {
                return Err(format!("class {name:?} named twice"));
            }
            let bare_organ = bare && !is_lesion(&parts[0].name);
            items.push((name, parts, bare_organ));
        }
        let claimed = |items: &[(String, Vec<&Label>, bool)], v: u8| {
            items
                .iter()
                .filter(|(_, p, _)| p.iter().any(|l| l.value == v))
                .count()
        };
        if let Some(l) = labels.iter().find(|l| claimed(&items, l.value) > 1) {
            return Err(format!("label {:?} is in more than one class", l.name));
        }
        let organs = labels.iter().filter(|l| !is_lesion(&l.name)).count();
        for i in 0..items.len() {
            if !items[i].2 {
                continue;
            }
            let organ = normalise(&items[i].1[0].name);
            let own: Vec<&Label> = labels
                .iter()
                .filter(|l| is_lesion(&l.name) && claimed(&items, l.value) == 0)
                .filter(|l| organs == 1 || normalise(&l.name).contains(&organ))
                .collect();
            items[i].1.extend(own);
        }
        let classes = items
            .into_iter()
            .map(|(name, parts, _)| Class {
                name,
                value: parts[0].value,
                sources: parts.iter().map(|l| l.value).collect(),
            })
            .collect();
        Ok(LabelMap::with(classes, labels))
    }

    /// Output channels: the classes and background.
    pub fn channels(&self) -> usize {
        self.classes.len() + 1
    }

    /// Class names, background excluded.
    pub fn names(&self) -> Vec<String> {
        self.classes.iter().map(|c| c.name.clone()).collect()
    }

    /// The value written for each channel, background (0) first.
    pub fn values(&self) -> Vec<u8> {
        std::iter::once(0)
            .chain(self.classes.iter().map(|c| c.value))
            .collect()
    }

    /// The class index (channel) of every label value: `Some(0)` for
    /// background and labels not selected, `None` for values the dataset
    /// does not name.
    pub fn lookup(&self) -> [Option<u8>; 256] {
        let mut table = [None; 256];
        for &v in &self.known {
            table[usize::from(v)] = Some(0);
        }
        for (k, c) in self.classes.iter().enumerate() {
            for &v in &c.sources {
                // At most 255 classes: every source is a distinct u8.
                table[usize::from(v)] = Some(k as u8 + 1);
            }
        }
        table
    }

    /// `liver (1+2), spleen (3)`, for logs and errors.
    pub fn describe(&self) -> String {
        self.classes
            .iter()
            .map(|c| {
                let s: Vec<String> = c.sources.iter().map(u8::to_string).collect();
                format!("{} ({})", c.name, s.join("+"))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}
