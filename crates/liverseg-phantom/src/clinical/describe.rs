//! A one-line summary of a clinical case, for tabulating results per
//! phase, scan range, kernel or liver condition.

use super::options::{
    ContrastMode, Habitus, Kernel, LesionKind, LiverCondition, LiverVariant, Phase, ScanRange,
};
use super::patient::Patient;
use super::pose::{Position, Resection};
use crate::PhantomConfig;
use std::fmt;

/// What a clinical case shows, as [`describe`] reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct CaseDescription {
    /// Contrast phase.
    pub phase: Phase,
    /// Whether the HU values were randomised instead of following the
    /// phase.
    pub randomised_contrast: bool,
    /// Body build.
    pub habitus: Habitus,
    /// Parenchymal condition.
    pub liver: LiverCondition,
    /// Shape variants.
    pub variants: Vec<LiverVariant>,
    /// Lesion kinds, one entry per lesion.
    pub lesions: Vec<LesionKind>,
    /// Each lesion's mean diameter, mm (same order as `lesions`).
    pub lesion_diameters_mm: Vec<f64>,
    /// Body region scanned.
    pub scan_range: ScanRange,
    /// Reconstruction kernel.
    pub kernel: Kernel,
    /// Effective slice thickness, mm.
    pub slice_thickness: f64,
    /// Whether there is metal in the patient.
    pub metal: bool,
    /// How the patient lies.
    pub position: Position,
    /// Body scale: 1 for an adult, below 1 for a child.
    pub body_scale: f64,
    /// A liver resection, if any.
    pub resection: Option<Resection>,
    /// Orientation codes of the stored volume, such as `LPS`.
    pub axcodes: String,
    /// Whether the storage order differs from the rendered one.
    pub reordered: bool,
}

impl CaseDescription {
    /// `"adult"`, or `"child"` for a body scale below 0.9.
    pub fn age_group(&self) -> &'static str {
        if self.body_scale < 0.9 {
            "child"
        } else {
            "adult"
        }
    }
}

/// The description of case `seed` under `cfg`, or `None` for a classic
/// (non-clinical) configuration.
pub fn describe(seed: u64, cfg: &PhantomConfig) -> Option<CaseDescription> {
    let o = cfg.clinical.as_ref()?;
    let pat = Patient::sample(seed, o);
    Some(CaseDescription {
        phase: o.phase,
        randomised_contrast: matches!(o.contrast, ContrastMode::Randomised { .. }),
        habitus: o.habitus,
        liver: o.liver,
        variants: o.variants.clone(),
        lesions: o.lesions.clone(),
        lesion_diameters_mm: pat
            .lesions
            .iter()
            .map(|l| 2.0 * (l.blob.semi[0] + l.blob.semi[1] + l.blob.semi[2]) / 3.0)
            .collect(),
        scan_range: o.scan_range,
        kernel: o.kernel,
        slice_thickness: if o.slice_thickness > 0.0 {
            o.slice_thickness
        } else {
            cfg.spacing[2]
        },
        metal: o.metal,
        position: o.position,
        body_scale: o.body_scale,
        resection: o.resection,
        axcodes: stored_axcodes(cfg, o),
        reordered: o.storage != super::Storage::IDENTITY,
    })
}

/// The orientation codes of the volume as stored (the rendered grid's
/// codes reordered by the storage).
fn stored_axcodes(cfg: &PhantomConfig, o: &super::ClinicalOptions) -> String {
    let rendered: Vec<char> = cfg.axcodes().chars().collect();
    let flip = |c: char| match c {
        'L' => 'R',
        'R' => 'L',
        'P' => 'A',
        'A' => 'P',
        'S' => 'I',
        'I' => 'S',
        other => other,
    };
    (0..3)
        .map(|a| {
            let c = rendered[o.storage.axes[a]];
            if o.storage.flips[a] { flip(c) } else { c }
        })
        .collect()
}

impl fmt::Display for CaseDescription {
    /// For example `portal venous, abdomen, standard kernel, 3.0 mm, normal
    /// habitus, fatty liver, variants: none, lesions: metastasis 23 mm`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let phase = if self.randomised_contrast {
            format!("randomised contrast ({})", self.phase.name())
        } else {
            self.phase.name().to_string()
        };
        write!(
            f,
            "{phase}, {}, {}, {:.1} mm, {} habitus, {}, variants: ",
            self.scan_range.name(),
            self.kernel.name(),
            self.slice_thickness,
            self.habitus.name(),
            self.liver.name(),
        )?;
        if self.variants.is_empty() {
            write!(f, "none")?;
        } else {
            let v: Vec<&str> = self.variants.iter().map(|v| v.name()).collect();
            write!(f, "{}", v.join(" + "))?;
        }
        write!(f, ", lesions: ")?;
        if self.lesions.is_empty() {
            write!(f, "none")?;
        } else {
            let v: Vec<String> = self
                .lesions
                .iter()
                .zip(&self.lesion_diameters_mm)
                .map(|(k, d)| format!("{} {d:.0} mm", k.name()))
                .collect();
            write!(f, "{}", v.join(" + "))?;
        }
        if self.metal {
            write!(f, ", metal")?;
        }
        if self.position != Position::Supine {
            write!(f, ", {}", self.position.name())?;
        }
        if self.body_scale < 0.9 {
            write!(f, ", child (scale {:.2})", self.body_scale)?;
        }
        if let Some(r) = self.resection {
            write!(f, ", {}", r.name())?;
        }
        if self.reordered {
            write!(f, ", stored {}", self.axcodes)?;
        }
        Ok(())
    }
}
