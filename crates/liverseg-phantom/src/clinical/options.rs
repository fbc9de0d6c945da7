//! What a clinical case is made of ([`ClinicalOptions`]) and the ranges
//! [`crate::PhantomConfig::clinical_in`] draws cases from
//! ([`ClinicalRanges`]).

use super::patient::Patient;
use super::pose::{Position, Resection, Storage};
use crate::{Error, PhantomConfig, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The contrast phase of the scan, which sets every tissue's HU range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Unenhanced: blood 35–50 HU, liver 50–65 HU.
    Native,
    /// Late arterial (about 35 s): aorta 250–350 HU, spleen moiré, renal
    /// cortex brighter than medulla, liver only slightly enhanced.
    Arterial,
    /// Portal venous (about 70 s): liver 95–125 HU, portal vein 160–200 HU,
    /// homogeneous spleen.
    PortalVenous,
    /// Delayed (3–5 min): liver about 90 HU, blood 110–140 HU, excreted
    /// contrast in the renal collecting systems.
    Delayed,
}

impl Phase {
    /// Every phase, in the order of the columns of the HU table.
    pub const ALL: [Phase; 4] = [
        Phase::Native,
        Phase::Arterial,
        Phase::PortalVenous,
        Phase::Delayed,
    ];

    /// The phase's name as radiologists write it.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Native => "native",
            Phase::Arterial => "arterial",
            Phase::PortalVenous => "portal venous",
            Phase::Delayed => "delayed",
        }
    }
}

/// Where the HU values of the tissues come from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ContrastMode {
    /// Per-tissue ranges of the chosen [`Phase`] from the radiology
    /// literature, with one draw per patient inside each range.
    Literature,
    /// SynthSeg-style randomisation: every tissue except the air outside
    /// the patient gets a HU value drawn uniformly from `lo..hi`, and the
    /// phase only decides nothing but the description. Shapes, noise and
    /// labels are those of [`ContrastMode::Literature`].
    Randomised {
        /// Lowest HU drawn.
        lo: f64,
        /// Highest HU drawn.
        hi: f64,
    },
}

/// Body build: subcutaneous and visceral fat, body size, and the noise a
/// larger patient brings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Habitus {
    /// 3–10 mm of subcutaneous fat, little visceral fat.
    Thin,
    /// 10–25 mm of subcutaneous fat.
    Normal,
    /// 25–40 mm of subcutaneous fat, more visceral fat.
    Overweight,
    /// 40–80 mm of subcutaneous fat, a protruding abdomen full of visceral
    /// fat.
    Obese,
}

impl Habitus {
    /// Every habitus, thin to obese.
    pub const ALL: [Habitus; 4] = [
        Habitus::Thin,
        Habitus::Normal,
        Habitus::Overweight,
        Habitus::Obese,
    ];

    /// The habitus in words.
    pub fn name(self) -> &'static str {
        match self {
            Habitus::Thin => "thin",
            Habitus::Normal => "normal",
            Habitus::Overweight => "overweight",
            Habitus::Obese => "obese",
        }
    }
}

/// The state of the liver parenchyma.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LiverCondition {
    /// Healthy parenchyma, denser than the spleen before contrast.
    Normal,
    /// Steatosis: native HU from 40 down to −15, below the spleen by at
    /// least 10 HU; enhanced phases shifted down by the same amount.
    Fatty,
    /// Cirrhosis: a smaller right lobe, a larger caudate and left lobe, a
    /// nodular surface and texture, splenomegaly and often ascites.
    Cirrhotic,
}

impl LiverCondition {
    /// The condition in words.
    pub fn name(self) -> &'static str {
        match self {
            LiverCondition::Normal => "normal liver",
            LiverCondition::Fatty => "fatty liver",
            LiverCondition::Cirrhotic => "cirrhotic liver",
        }
    }
}

/// Shape variants of the liver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LiverVariant {
    /// A long inferior tongue of the right lobe reaching towards the iliac
    /// crest.
    RiedelLobe,
    /// A small left lobe (atrophy, or a left hepatectomy remnant).
    LeftLobeAtrophy,
    /// A small right lobe.
    RightLobeAtrophy,
}

impl LiverVariant {
    /// The variant in words.
    pub fn name(self) -> &'static str {
        match self {
            LiverVariant::RiedelLobe => "Riedel lobe",
            LiverVariant::LeftLobeAtrophy => "left lobe atrophy",
            LiverVariant::RightLobeAtrophy => "right lobe atrophy",
        }
    }
}

/// Focal liver lesions. Their HU per phase is in the crate's HU table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LesionKind {
    /// Simple cyst, 0–20 HU in every phase, sharp margin.
    Cyst,
    /// Hypovascular metastasis: hypodense, with an enhancing rim.
    Metastasis,
    /// Hepatocellular carcinoma: arterial hyperenhancement, portal and
    /// delayed washout, enhancing capsule.
    Hcc,
    /// Haemangioma: peripheral nodular enhancement filling in centripetally.
    Haemangioma,
}

impl LesionKind {
    /// Every kind.
    pub const ALL: [LesionKind; 4] = [
        LesionKind::Cyst,
        LesionKind::Metastasis,
        LesionKind::Hcc,
        LesionKind::Haemangioma,
    ];

    /// The kind in words.
    pub fn name(self) -> &'static str {
        match self {
            LesionKind::Cyst => "cyst",
            LesionKind::Metastasis => "metastasis",
            LesionKind::Hcc => "HCC",
            LesionKind::Haemangioma => "haemangioma",
        }
    }

    /// True for the malignant kinds, which get label 2 when
    /// [`ClinicalOptions::tumour_label`] is set (Decathlon Task03 labels
    /// tumour 2; benign cysts and haemangiomas stay liver).
    pub fn is_tumour(self) -> bool {
        matches!(self, LesionKind::Metastasis | LesionKind::Hcc)
    }
}

/// The reconstruction kernel, which shapes the noise texture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// Soft tissue kernel (B20–B30, "Standard" on some scanners): coarse,
    /// blotchy noise.
    Soft,
    /// Medium kernel (B40): finer grain.
    Standard,
    /// Sharp kernel (B60–B70, bone or lung): fine, high-frequency noise.
    Sharp,
}

impl Kernel {
    /// Every kernel, soft to sharp.
    pub const ALL: [Kernel; 3] = [Kernel::Soft, Kernel::Standard, Kernel::Sharp];

    /// The kernel in words.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Soft => "soft kernel",
            Kernel::Standard => "standard kernel",
            Kernel::Sharp => "sharp kernel",
        }
    }
}

/// How much of the patient a scan covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScanRange {
    /// The liver with a 15–30 mm margin.
    Liver,
    /// Diaphragm to iliac crest.
    Abdomen,
    /// Diaphragm to the pubic symphysis.
    AbdomenPelvis,
    /// Lung apices to the pubic symphysis.
    ChestAbdomenPelvis,
}

impl ScanRange {
    /// Every range, shortest first.
    pub const ALL: [ScanRange; 4] = [
        ScanRange::Liver,
        ScanRange::Abdomen,
        ScanRange::AbdomenPelvis,
        ScanRange::ChestAbdomenPelvis,
    ];

    /// The range in words.
    pub fn name(self) -> &'static str {
        match self {
            ScanRange::Liver => "liver",
            ScanRange::Abdomen => "abdomen",
            ScanRange::AbdomenPelvis => "abdomen-pelvis",
            ScanRange::ChestAbdomenPelvis => "chest-abdomen-pelvis",
        }
    }
}

/// Everything that makes a phantom "clinical". Set
/// [`PhantomConfig::clinical`] to `Some` of this to opt in; the grid,
/// noise level and blur still come from the rest of [`PhantomConfig`].
#[derive(Clone, Debug, PartialEq)]
pub struct ClinicalOptions {
    /// Contrast phase.
    pub phase: Phase,
    /// Literature HU ranges or randomised contrast.
    pub contrast: ContrastMode,
    /// Body build.
    pub habitus: Habitus,
    /// Parenchymal condition.
    pub liver: LiverCondition,
    /// Shape variants (each at most once matters).
    pub variants: Vec<LiverVariant>,
    /// One lesion of each listed kind; sizes and places come from the seed.
    pub lesions: Vec<LesionKind>,
    /// Label malignant lesions 2 instead of 1 (Decathlon Task03's tumour
    /// class). Off, every lesion is liver (1).
    pub tumour_label: bool,
    /// Positive oral contrast (150–400 HU) in some bowel loops.
    pub oral_contrast: bool,
    /// Reconstruction kernel.
    pub kernel: Kernel,
    /// Reconstructed slice thickness, mm; each voxel averages the anatomy
    /// over this slab (partial volume). 0 means the z spacing.
    pub slice_thickness: f64,
    /// When set, voxels outside the circular reconstruction field of view
    /// (the circle inscribed in the in-plane grid) hold this value, as many
    /// scanners store −1024, −2048 or −3024 there.
    pub circular_fov: Option<i16>,
    /// Metal (spinal fixation or hip prostheses, by scan range) with
    /// streak artefacts.
    pub metal: bool,
    /// The body region the scan covers. Informational (the grid decides
    /// what is sampled); [`PhantomConfig::clinical_in`] sets it so that
    /// results can be tabulated per range, and it picks the metal implant.
    pub scan_range: ScanRange,
    /// How the patient lies: it places the table and decides where gas and
    /// fluid settle. [`PhantomConfig::clinical_in`] also stores the slices
    /// as a scanner would for the position ([`Position::scanner_storage`]).
    pub position: Position,
    /// 1 for an adult; below 1 a child, the whole body scaled by it (0.5 is
    /// a small child, 0.8 a teenager).
    pub body_scale: f64,
    /// A liver resection, or none.
    pub resection: Option<Resection>,
    /// The order the volume is stored in, after rendering.
    pub storage: Storage,
    /// Label the organs around the liver too ([`super::Organ`]: spleen 3,
    /// kidneys 4, stomach 5, pancreas 6, gallbladder 7, aorta 8, IVC 9).
    /// Off, only the liver (and with `tumour_label` its tumours) is
    /// labelled; the image is the same either way.
    pub organ_labels: bool,
}

impl Default for ClinicalOptions {
    /// A normal patient in the portal venous phase, standard kernel, no
    /// lesions, slices as thick as their spacing.
    fn default() -> Self {
        ClinicalOptions {
            phase: Phase::PortalVenous,
            contrast: ContrastMode::Literature,
            habitus: Habitus::Normal,
            liver: LiverCondition::Normal,
            variants: Vec::new(),
            lesions: Vec::new(),
            tumour_label: false,
            oral_contrast: false,
            kernel: Kernel::Standard,
            slice_thickness: 0.0,
            circular_fov: None,
            metal: false,
            scan_range: ScanRange::Abdomen,
            position: Position::Supine,
            body_scale: 1.0,
            resection: None,
            storage: Storage::IDENTITY,
            organ_labels: false,
        }
    }
}

impl ClinicalOptions {
    /// Checks the values a caller may have set by hand.
    pub fn validate(&self) -> Result<()> {
        if !(self.slice_thickness.is_finite() && self.slice_thickness >= 0.0) {
            return Err(Error::config(
                "clinical.slice_thickness",
                format!("{} must be >= 0 mm", self.slice_thickness),
            ));
        }
        if let ContrastMode::Randomised { lo, hi } = self.contrast
            && !(lo.is_finite() && hi.is_finite() && lo <= hi)
        {
            return Err(Error::config(
                "clinical.contrast",
                format!("randomised range {lo}..{hi} is empty or not finite"),
            ));
        }
        if !(self.body_scale.is_finite() && (0.3..=1.2).contains(&self.body_scale)) {
            return Err(Error::config(
                "clinical.body_scale",
                format!("{} must lie in 0.3..=1.2", self.body_scale),
            ));
        }
        if !self.storage.is_valid() {
            return Err(Error::config(
                "clinical.storage",
                format!("{:?} is not a permutation of 0, 1, 2", self.storage.axes),
            ));
        }
        if self.lesions.len() > 12 {
            return Err(Error::config(
                "clinical.lesions",
                format!("{} lesions; at most 12", self.lesions.len()),
            ));
        }
        Ok(())
    }
}

/// The ranges [`PhantomConfig::clinical_in`] draws a clinical case from.
/// Weights need not sum to one; probabilities are per case.
#[derive(Clone, Debug, PartialEq)]
pub struct ClinicalRanges {
    /// Weights of native, arterial, portal venous and delayed.
    pub phases: [f64; 4],
    /// Weights of thin, normal, overweight and obese.
    pub habitus: [f64; 4],
    /// Probability of a fatty liver.
    pub fatty: f64,
    /// Probability of a cirrhotic liver (drawn after `fatty`).
    pub cirrhotic: f64,
    /// Probability of each shape variant.
    pub variant: f64,
    /// Probability that a case has lesions at all.
    pub lesions: f64,
    /// Most lesions in one case.
    pub max_lesions: usize,
    /// Whether malignant lesions are labelled 2.
    pub tumour_label: bool,
    /// Whether the organs around the liver are labelled too
    /// ([`ClinicalOptions::organ_labels`]).
    pub organ_labels: bool,
    /// Probability of positive oral contrast.
    pub oral_contrast: f64,
    /// Weights of soft, standard and sharp kernels.
    pub kernels: [f64; 3],
    /// In-plane matrix (inclusive range).
    pub matrix: (usize, usize),
    /// In-plane pixel spacing, mm. With a 512 matrix 0.6–0.98 mm is a
    /// 307–502 mm field of view, so large patients are truncated.
    pub pixel_spacing: (f64, f64),
    /// Slice thickness, mm.
    pub slice_thickness: (f64, f64),
    /// Probability that slices overlap (spacing 50–80 % of the thickness).
    pub overlap: f64,
    /// Most slices; thinner slices over a long range are spaced out to fit.
    pub max_slices: usize,
    /// Weights of liver, abdomen, abdomen-pelvis and chest-abdomen-pelvis.
    pub scan_ranges: [f64; 4],
    /// Noise standard deviation, HU, for a 3 mm slice of a normal patient
    /// with the standard kernel; scaled by `sqrt(3 / thickness)`, habitus
    /// and kernel.
    pub noise_sigma: (f64, f64),
    /// Point-spread blur, mm.
    pub blur_sigma: (f64, f64),
    /// Probability of a circular field of view with padding outside.
    pub circular_fov: f64,
    /// Probability of metal.
    pub metal: f64,
    /// `Some((lo, hi))` switches every case to randomised contrast.
    pub randomised: Option<(f64, f64)>,
    /// Weights of supine, prone, left and right decubitus.
    pub positions: [f64; 4],
    /// Probability that the patient is a child.
    pub child: f64,
    /// A child's body scale (see [`ClinicalOptions::body_scale`]).
    pub child_scale: (f64, f64),
    /// Probability of a liver resection.
    pub resection: f64,
    /// Probability that the volume is stored in one of the 48 axis orders
    /// drawn at random (on top of the position's own storage).
    pub any_storage: f64,
}

impl Default for ClinicalRanges {
    /// Clinical 512 matrices: 0.6–0.98 mm pixels, 0.6–5 mm slices, at most
    /// 300 of them, every phase and habitus, a third of the cases with
    /// lesions.
    fn default() -> Self {
        ClinicalRanges {
            phases: [0.2, 0.2, 0.45, 0.15],
            habitus: [0.15, 0.4, 0.3, 0.15],
            fatty: 0.2,
            cirrhotic: 0.1,
            variant: 0.1,
            lesions: 0.35,
            max_lesions: 5,
            tumour_label: false,
            organ_labels: false,
            oral_contrast: 0.25,
            kernels: [0.4, 0.45, 0.15],
            matrix: (512, 512),
            pixel_spacing: (0.6, 0.98),
            slice_thickness: (0.6, 5.0),
            overlap: 0.2,
            max_slices: 300,
            scan_ranges: [0.15, 0.35, 0.35, 0.15],
            noise_sigma: (8.0, 16.0),
            blur_sigma: (0.4, 0.8),
            circular_fov: 0.3,
            metal: 0.05,
            randomised: None,
            positions: [1.0, 0.0, 0.0, 0.0],
            child: 0.0,
            child_scale: (0.5, 0.85),
            resection: 0.0,
            any_storage: 0.0,
        }
    }
}

impl ClinicalRanges {
    /// Coarse grids for CPU tests and demos: 96–160 in-plane over 380–460
    /// mm, 2.5–5 mm slices, at most 120 of them.
    pub fn coarse() -> Self {
        ClinicalRanges {
            matrix: (96, 160),
            pixel_spacing: (2.4, 4.6),
            slice_thickness: (2.5, 5.0),
            max_slices: 120,
            blur_sigma: (0.8, 1.5),
            ..ClinicalRanges::default()
        }
    }

    /// These ranges plus what the built-in model was not trained on, for
    /// stress tests: a third of the patients not supine, a quarter
    /// children, a sixth after a liver resection, and half the volumes
    /// stored in a random one of the 48 axis orders.
    pub fn varied(self) -> Self {
        ClinicalRanges {
            positions: [0.67, 0.15, 0.09, 0.09],
            child: 0.25,
            resection: 0.17,
            any_storage: 0.5,
            ..self
        }
    }

    /// The default ranges with SynthSeg-style randomised contrast (every
    /// tissue uniform in −200..400 HU).
    pub fn randomised() -> Self {
        ClinicalRanges {
            randomised: Some((-200.0, 400.0)),
            ..ClinicalRanges::default()
        }
    }
}

impl PhantomConfig {
    /// A clinical case drawn from `ranges` by `seed`: the options
    /// (phase, habitus, liver, lesions, kernel, artefacts) and then a grid
    /// that covers the drawn [`ScanRange`] of this very patient (its
    /// diaphragm, iliac crest and symphysis), with a clinical pixel
    /// spacing, slice thickness and noise. Use it with
    /// [`crate::generate`] and the same `seed`.
    pub fn clinical_in(seed: u64, ranges: &ClinicalRanges) -> Self {
        // Stream 3: independent of the anatomy (0), `random_in` (1), the
        // clinical patient (2) and its HU draw (4).
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(3);
        let r = &mut rng;
        let phase = Phase::ALL[pick(r, &ranges.phases)];
        let habitus = Habitus::ALL[pick(r, &ranges.habitus)];
        let liver = if r.random_bool(p(ranges.fatty)) {
            LiverCondition::Fatty
        } else if r.random_bool(p(ranges.cirrhotic)) {
            LiverCondition::Cirrhotic
        } else {
            LiverCondition::Normal
        };
        let variants: Vec<LiverVariant> = [
            LiverVariant::RiedelLobe,
            LiverVariant::LeftLobeAtrophy,
            LiverVariant::RightLobeAtrophy,
        ]
        .into_iter()
        .filter(|_| r.random_bool(p(ranges.variant)))
        .collect();
        let lesions = if ranges.max_lesions > 0 && r.random_bool(p(ranges.lesions)) {
            let n = r.random_range(1..=ranges.max_lesions);
            // One kind dominates a liver (metastases come in numbers).
            let main = LesionKind::ALL[r.random_range(0..4)];
            (0..n)
                .map(|_| {
                    if r.random_bool(0.7) {
                        main
                    } else {
                        LesionKind::ALL[r.random_range(0..4)]
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        let oral_contrast = r.random_bool(p(ranges.oral_contrast));
        let kernel = Kernel::ALL[pick(r, &ranges.kernels)];
        let scan = ScanRange::ALL[pick(r, &ranges.scan_ranges)];
        let n = draw_usize(r, ranges.matrix);
        let ps = draw(r, ranges.pixel_spacing);
        let mut thickness = draw(r, ranges.slice_thickness);
        let mut sz = if r.random_bool(p(ranges.overlap)) {
            thickness * r.random_range(0.5..0.8)
        } else {
            thickness
        };
        let circular = r.random_bool(p(ranges.circular_fov));
        let pad = [-1024i16, -2048, -3024][r.random_range(0..3)];
        let metal = r.random_bool(p(ranges.metal));
        let flips = match r.random_range(0..4u8) {
            0 | 1 => [true, true, false],
            2 => [false, false, false],
            _ => [true, true, true],
        };
        let noise_ref = draw(r, ranges.noise_sigma);
        let blur = draw(r, ranges.blur_sigma);
        let centre_xy = [r.random_range(-20.0..20.0), r.random_range(-25.0..15.0)];
        let margin = [r.random_range(15.0..30.0), r.random_range(15.0..30.0)];

        // Stream 5: what `varied` adds, drawn apart so that the cases of
        // ranges without it stay the same.
        let mut vr = ChaCha8Rng::seed_from_u64(seed);
        vr.set_stream(5);
        let position = Position::ALL[pick(&mut vr, &ranges.positions)];
        let body_scale = if vr.random_bool(p(ranges.child)) {
            draw(&mut vr, ranges.child_scale)
        } else {
            1.0
        };
        let resection = vr
            .random_bool(p(ranges.resection))
            .then(|| Resection::ALL[vr.random_range(0..2)]);
        let mut storage = position.scanner_storage();
        if vr.random_bool(p(ranges.any_storage)) {
            storage = Storage::random(&mut vr).after(storage);
        }

        let mut opts = ClinicalOptions {
            phase,
            contrast: match ranges.randomised {
                Some((lo, hi)) => ContrastMode::Randomised { lo, hi },
                None => ContrastMode::Literature,
            },
            habitus,
            liver,
            variants,
            lesions,
            tumour_label: ranges.tumour_label,
            oral_contrast,
            kernel,
            slice_thickness: 0.0,
            circular_fov: circular.then_some(pad),
            metal,
            scan_range: scan,
            position,
            body_scale,
            resection,
            storage,
            organ_labels: ranges.organ_labels,
        };
        let marks = Patient::sample(seed, &opts).landmarks().scaled(body_scale);
        // A child's field of view shrinks with the body.
        let (ps, centre_xy, margin) = if body_scale < 1.0 {
            (
                (ps * body_scale).max(0.4),
                centre_xy.map(|c| c * body_scale),
                margin.map(|m| m * body_scale),
            )
        } else {
            (ps, centre_xy, margin)
        };
        let (z_lo, z_hi) = match scan {
            ScanRange::Liver => (marks.liver_bottom - margin[0], marks.dome + margin[1]),
            ScanRange::Abdomen => (marks.iliac_crest - margin[0], marks.dome + margin[1] + 15.0),
            ScanRange::AbdomenPelvis => {
                (marks.symphysis - margin[0], marks.dome + margin[1] + 15.0)
            }
            ScanRange::ChestAbdomenPelvis => (marks.symphysis - margin[0], marks.apex),
        };
        let length = z_hi - z_lo;
        let max = ranges.max_slices.max(1) as f64;
        if length / sz > max {
            sz = length / max;
            thickness = thickness.max(sz);
        }
        let round = |v: f64| (v * 1000.0).round() / 1000.0;
        let sz = round(sz);
        let nz = ((length / sz).ceil() as usize).clamp(1, ranges.max_slices.max(1));
        opts.slice_thickness = round(thickness);
        let kernel_gain = match kernel {
            Kernel::Soft => 0.8,
            Kernel::Standard => 1.0,
            Kernel::Sharp => 1.8,
        };
        let noise = noise_ref * (3.0 / thickness).sqrt() * habitus_noise(habitus) * kernel_gain;
        PhantomConfig {
            dims: [n, n, nz],
            spacing: [round(ps), round(ps), sz],
            flips,
            center: [centre_xy[0], centre_xy[1], 0.5 * (z_lo + z_hi)],
            noise_sigma: noise.min(80.0),
            blur_sigma: blur,
            clinical: Some(opts),
        }
    }
}

/// How much noisier a larger patient's scan is at the same protocol
/// (automatic exposure control compensates only in part).
pub(crate) fn habitus_noise(h: Habitus) -> f64 {
    match h {
        Habitus::Thin => 0.85,
        Habitus::Normal => 1.0,
        Habitus::Overweight => 1.15,
        Habitus::Obese => 1.4,
    }
}

fn p(v: f64) -> f64 {
    if v.is_finite() {
        v.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

/// An index drawn with the given non-negative weights (the first when all
/// are zero).
pub(crate) fn pick(rng: &mut impl Rng, weights: &[f64]) -> usize {
    let w: Vec<f64> = weights.iter().map(|w| w.max(0.0)).collect();
    let total: f64 = w.iter().sum();
    if !(total > 0.0 && total.is_finite()) {
        return 0;
    }
    let mut u = rng.random_range(0.0..total);
    for (i, wi) in w.iter().enumerate() {
        if u < *wi {
            return i;
        }
        u -= wi;
    }
    w.len() - 1
}

fn draw(rng: &mut impl Rng, (lo, hi): (f64, f64)) -> f64 {
    if lo < hi {
        rng.random_range(lo..hi)
    } else {
        lo
    }
}

fn draw_usize(rng: &mut impl Rng, (lo, hi): (usize, usize)) -> usize {
    if lo < hi {
        rng.random_range(lo..=hi)
    } else {
        lo.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clinical_configs_are_deterministic_valid_and_clinical() {
        let r = ClinicalRanges::default();
        let mut phases = std::collections::BTreeSet::new();
        for seed in 0..40 {
            let c = PhantomConfig::clinical_in(seed, &r);
            assert_eq!(c, PhantomConfig::clinical_in(seed, &r));
            c.validate().unwrap();
            assert_eq!(c.dims[0], 512);
            assert!((0.6..=0.98).contains(&c.spacing[0]), "{:?}", c.spacing);
            assert!(c.dims[2] <= 300);
            let o = c.clinical.as_ref().unwrap();
            assert!(o.slice_thickness >= c.spacing[2] - 1e-3);
            assert!((0.6..=5.0 + 1.0).contains(&o.slice_thickness));
            // The grid covers at least the liver.
            assert!(c.dims[2] as f64 * c.spacing[2] > 150.0, "{c:?}");
            phases.insert(o.phase.name());
        }
        assert_eq!(phases.len(), 4);
    }

    #[test]
    fn pick_follows_weights() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut n = [0usize; 3];
        for _ in 0..3000 {
            n[pick(&mut rng, &[1.0, 0.0, 2.0])] += 1;
        }
        assert_eq!(n[1], 0);
        assert!((900..1100).contains(&n[0]), "{n:?}");
        assert_eq!(pick(&mut rng, &[0.0, 0.0]), 0);
    }
}
