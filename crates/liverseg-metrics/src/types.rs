//! The inputs and outputs of the metrics: options, class definitions and
//! the per-case results, with their JSON form.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// Settings of [`evaluate`](super::evaluate).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MetricOptions {
    /// Surface Dice tolerance in mm (default 2.0): a surfel counts as
    /// matched when the other surface is at most this far. Must be finite
    /// and non-negative.
    pub tolerance_mm: f64,
}

impl Default for MetricOptions {
    fn default() -> Self {
        MetricOptions { tolerance_mm: 2.0 }
    }
}

impl MetricOptions {
    /// Options with the given surface Dice tolerance in mm.
    pub fn with_tolerance(tolerance_mm: f64) -> Self {
        MetricOptions { tolerance_mm }
    }

    /// Fails with [`Error::Config`] on a negative or non-finite tolerance.
    pub fn validate(&self) -> Result<()> {
        if self.tolerance_mm.is_finite() && self.tolerance_mm >= 0.0 {
            Ok(())
        } else {
            Err(Error::Config(format!(
                "surface Dice tolerance {} mm: must be finite and non-negative",
                self.tolerance_mm
            )))
        }
    }
}

/// A class to score: a name and the label values that make up its mask.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassSpec {
    /// The name in reports (`liver`, `tumour`, …).
    pub name: String,
    /// The label values whose voxels form the mask.
    pub labels: Vec<u8>,
}

impl ClassSpec {
    /// A class named `name` made of the voxels labelled with any of `labels`.
    pub fn new(name: impl Into<String>, labels: impl Into<Vec<u8>>) -> Self {
        ClassSpec {
            name: name.into(),
            labels: labels.into(),
        }
    }

    /// The whole liver of the Medical Segmentation Decathlon's Task03 (and
    /// LiTS): labels 1 (liver) and 2 (tumour) merged, since a tumour lies
    /// inside the liver.
    pub fn liver() -> Self {
        Self::new("liver", [1, 2])
    }

    /// Task03's tumour class: label 2 alone.
    pub fn tumour() -> Self {
        Self::new("tumour", [2])
    }

    /// Parses a comma-separated list of classes: `liver`, `tumour` (or
    /// `tumor`), or a label value `N` (1–255) giving a class `label N` of
    /// that value alone. Fails with [`Error::Config`] on an empty list, an
    /// unknown name or a repeated class.
    pub fn parse_list(text: &str) -> Result<Vec<ClassSpec>> {
        let mut out: Vec<ClassSpec> = Vec::new();
        for item in text.split(',').map(str::trim) {
            let class = match item.to_ascii_lowercase().as_str() {
                "liver" => Self::liver(),
                "tumour" | "tumor" => Self::tumour(),
                other => match other.parse::<u8>() {
                    Ok(v) if v > 0 => Self::new(format!("label {v}"), [v]),
                    _ => {
                        return Err(Error::Config(format!(
                            "class {item:?}: expected liver, tumour or a label value 1-255"
                        )));
                    }
                },
            };
            if out.iter().any(|c| c.name == class.name) {
                return Err(Error::Config(format!("class {item:?} named twice")));
            }
            out.push(class);
        }
        Ok(out)
    }
}

/// Serialises non-finite numbers as `null` and reads `null` back as `+∞`.
mod finite_or_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else {
            s.serialize_none()
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::INFINITY))
    }
}

/// The metrics of one class in one case; see the [module](super) docs for
/// the exact definitions and the empty-mask conventions.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaseMetrics {
    /// Dice overlap, 0–1.
    #[serde(with = "finite_or_null")]
    pub dice: f64,
    /// Intersection over union (Jaccard), 0–1.
    #[serde(with = "finite_or_null")]
    pub iou: f64,
    /// Hausdorff distance in mm between the edge voxels (MONAI).
    #[serde(with = "finite_or_null")]
    pub hd: f64,
    /// Larger of the two directed 95th-percentile surface distances, mm
    /// (MONAI `percentile=95`).
    #[serde(with = "finite_or_null")]
    pub hd95: f64,
    /// Average symmetric surface distance in mm, all directed distances
    /// pooled (MONAI `symmetric=True`).
    #[serde(with = "finite_or_null")]
    pub assd: f64,
    /// Surface Dice at [`MetricOptions::tolerance_mm`], surfel-area
    /// weighted (DeepMind; MONAI with `use_subvoxels=True`), 0–1.
    #[serde(with = "finite_or_null")]
    pub surface_dice: f64,
    /// Predicted volume in mL.
    #[serde(with = "finite_or_null")]
    pub volume_ml: f64,
    /// Reference volume in mL.
    #[serde(with = "finite_or_null")]
    pub volume_ml_ref: f64,
    /// `(volume_ml − volume_ml_ref) / volume_ml_ref`, signed; 0 when both
    /// are empty, +∞ when only the reference is.
    #[serde(with = "finite_or_null")]
    pub volume_error: f64,
}

impl CaseMetrics {
    /// The field-wise arithmetic mean of `cases`, or `None` for none. An
    /// infinite value (a case with one mask empty) makes that field's mean
    /// infinite, as MONAI's mean reduction does: dropping the case would
    /// flatter a model that misses an organ.
    pub fn mean(cases: &[CaseMetrics]) -> Option<CaseMetrics> {
        if cases.is_empty() {
            return None;
        }
        let n = cases.len() as f64;
        let avg = |f: fn(&CaseMetrics) -> f64| cases.iter().map(f).sum::<f64>() / n;
        Some(CaseMetrics {
            dice: avg(|c| c.dice),
            iou: avg(|c| c.iou),
            hd: avg(|c| c.hd),
            hd95: avg(|c| c.hd95),
            assd: avg(|c| c.assd),
            surface_dice: avg(|c| c.surface_dice),
            volume_ml: avg(|c| c.volume_ml),
            volume_ml_ref: avg(|c| c.volume_ml_ref),
            volume_error: avg(|c| c.volume_error),
        })
    }
}

/// The metrics of one named class, as
/// [`evaluate_classes`](super::evaluate_classes) returns them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// The class's name.
    pub class: String,
    /// Its metrics.
    #[serde(flatten)]
    pub metrics: CaseMetrics,
}
