//! `cargo xtask eval-builtin`: the built-in model's accuracy on held-out
//! clinical phantoms (seeds the recipe never trains on), per contrast phase
//! and per scan range, as the table in `docs/MODEL_CARD.md`.
//!
//! Every case is generated at its clinical grid (512 matrix by default),
//! segmented by the model file as `liverseg predict` would, and scored on
//! that grid against the phantom's exact label: Dice and HD95 in mm
//! (`liverseg_metrics::evaluate`, MONAI's definitions).

use anyhow::{Context, Result};
use liverseg_infer::{PredictOptions, Predictor};
use liverseg_metrics::{CaseMetrics, MetricOptions};
use liverseg_phantom::{ClinicalRanges, PhantomConfig, describe, generate};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

/// Options of `cargo xtask eval-builtin`.
#[derive(Clone, Debug, clap::Args)]
pub struct EvalBuiltinArgs {
    /// The model file to score.
    #[arg(long, default_value = "crates/liverseg-infer/models/liver.safetensors")]
    pub model: PathBuf,
    /// Held-out phantoms to generate and score.
    #[arg(long, default_value_t = 32)]
    pub cases: usize,
    /// First seed; the recipe trains on 1,000,000 onwards, so the default
    /// range never meets it.
    #[arg(long, default_value_t = 2_000_000)]
    pub first_seed: u64,
    /// Draw the grids from `ClinicalRanges::coarse()` (96–160 matrices,
    /// 2.5–5 mm slices) instead of clinical 512 matrices.
    #[arg(long)]
    pub coarse: bool,
    /// Also prone and decubitus patients, children, liver resections and
    /// any of the 48 storage orders (`ClinicalRanges::varied`), none of
    /// which the recipe trains on.
    #[arg(long)]
    pub varied: bool,
    /// Also write every case's description and metrics here, as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Predict with mirror test-time augmentation (`liverseg predict --tta`).
    #[arg(long)]
    pub tta: bool,
    /// Sliding-window overlap (`liverseg predict --overlap`).
    #[arg(long, default_value_t = PredictOptions::default().overlap)]
    pub overlap: f64,
}

/// One scored case.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Scored {
    /// The phantom's seed.
    pub seed: u64,
    /// Contrast phase.
    pub phase: String,
    /// Scan range.
    pub scan_range: String,
    /// Liver condition (normal, fatty, cirrhotic).
    pub liver: String,
    /// How the patient lies (supine, prone, left or right decubitus).
    pub position: String,
    /// Adult or child.
    pub age: String,
    /// The liver resection, or "none".
    pub surgery: String,
    /// Orientation codes of the stored volume, such as `LPS`.
    pub axcodes: String,
    /// The whole case in words.
    pub description: String,
    /// Grid size.
    pub dims: [usize; 3],
    /// Seconds the prediction took.
    pub seconds: f64,
    /// Its metrics against the exact label.
    pub metrics: CaseMetrics,
}

/// Scores `args.cases` held-out phantoms with the model.
pub fn score(args: &EvalBuiltinArgs) -> Result<Vec<Scored>> {
    let device = candle_core::Device::Cpu;
    let predictor = Predictor::load(&args.model, &device)
        .with_context(|| format!("{}: cannot load", args.model.display()))?;
    let mut ranges = if args.coarse {
        ClinicalRanges::coarse()
    } else {
        ClinicalRanges::default()
    };
    if args.varied {
        ranges = ranges.varied();
    }
    let opts = PredictOptions {
        tta: args.tta,
        overlap: args.overlap,
        ..PredictOptions::default()
    };
    let mut out = Vec::with_capacity(args.cases);
    for i in 0..args.cases {
        let seed = args.first_seed + i as u64;
        let cfg = PhantomConfig::clinical_in(seed, &ranges);
        let case = describe(seed, &cfg).context("a clinical configuration has a description")?;
        let phantom = generate(seed, &cfg)?;
        let started = std::time::Instant::now();
        let pred = predictor.predict(phantom.image, &opts)?;
        let seconds = started.elapsed().as_secs_f64();
        let metrics = liverseg_metrics::evaluate(
            &pred.labels,
            &phantom.label,
            &[1, 2],
            &MetricOptions::default(),
        )?;
        tracing::info!(
            seed,
            case = %case,
            dice = format!("{:.4}", metrics.dice),
            hd95 = format!("{:.1}", metrics.hd95),
            seconds = format!("{seconds:.2}"),
            "scored"
        );
        out.push(Scored {
            seed,
            phase: case.phase.name().into(),
            scan_range: case.scan_range.name().into(),
            liver: case.liver.name().into(),
            position: case.position.name().into(),
            age: case.age_group().into(),
            surgery: case.resection.map_or("none", |r| r.name()).into(),
            axcodes: case.axcodes.clone(),
            description: case.to_string(),
            dims: cfg.dims,
            seconds,
            metrics,
        });
    }
    Ok(out)
}

/// Mean Dice and HD95 (and the worst Dice) over `cases`, grouped by `key`,
/// as the rows of a markdown table.
fn rows(cases: &[Scored], key: impl Fn(&Scored) -> &str) -> String {
    let mut groups: BTreeMap<&str, Vec<&Scored>> = BTreeMap::new();
    for c in cases {
        groups.entry(key(c)).or_default().push(c);
    }
    let mut s = String::new();
    for (name, g) in groups {
        let _ = writeln!(s, "| {name} | {} |", summary(&g));
    }
    s
}

/// `n | mean Dice | worst Dice | mean HD95` of a group.
fn summary(g: &[&Scored]) -> String {
    let n = g.len() as f64;
    let dice = g.iter().map(|c| c.metrics.dice).sum::<f64>() / n;
    let worst = g
        .iter()
        .map(|c| c.metrics.dice)
        .fold(f64::INFINITY, f64::min);
    let hd95 = g.iter().map(|c| c.metrics.hd95).sum::<f64>() / n;
    format!("{} | {dice:.3} | {worst:.3} | {hd95:.1}", g.len())
}

/// The accuracy tables in markdown: by phase, by scan range (with the
/// overall row), by liver condition, and by position, age, surgery and
/// storage order where the cases differ in them.
pub fn tables(cases: &[Scored]) -> String {
    let head =
        "| cases | mean Dice | worst Dice | mean HD95 (mm) |\n| --- | --- | --- | --- | --- |\n";
    let all: Vec<&Scored> = cases.iter().collect();
    let mut s = format!(
        "| phase {head}{}\n| scan range {head}{}| all | {} |\n\n| liver {head}{}",
        rows(cases, |c| &c.phase),
        rows(cases, |c| &c.scan_range),
        summary(&all),
        rows(cases, |c| &c.liver)
    );
    let varied: [(&str, Key); 4] = [
        ("position", |c| &c.position),
        ("age", |c| &c.age),
        ("surgery", |c| &c.surgery),
        ("stored", |c| storage_group(&c.axcodes)),
    ];
    for (name, key) in varied {
        if cases.iter().any(|c| key(c) != key(&cases[0])) {
            let _ = write!(s, "\n| {name} {head}{}", rows(cases, key));
        }
    }
    s
}

/// What a table groups the cases by.
type Key = fn(&Scored) -> &str;

/// "axial" when the stored axes run along x, y and z in that order (in
/// either direction), else "permuted".
fn storage_group(axcodes: &str) -> &'static str {
    let c: Vec<char> = axcodes.chars().collect();
    let axial = c.len() == 3 && "LR".contains(c[0]) && "AP".contains(c[1]) && "SI".contains(c[2]);
    if axial { "axial (x, y, z)" } else { "permuted" }
}

/// Runs `cargo xtask eval-builtin`.
pub fn run(args: &EvalBuiltinArgs) -> Result<()> {
    let started = std::time::Instant::now();
    let cases = score(args)?;
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&cases)?)
            .with_context(|| format!("{}: cannot write", path.display()))?;
    }
    println!("{}", tables(&cases));
    tracing::info!(
        minutes = started.elapsed().as_secs_f64() / 60.0,
        "scored {} held-out phantoms",
        cases.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(phase: &str, range: &str, dice: f64, hd95: f64) -> Scored {
        Scored {
            seed: 0,
            phase: phase.into(),
            scan_range: range.into(),
            liver: "normal liver".into(),
            position: "supine".into(),
            age: "adult".into(),
            surgery: "none".into(),
            axcodes: "LPS".into(),
            description: String::new(),
            dims: [1, 1, 1],
            seconds: 0.0,
            metrics: CaseMetrics {
                dice,
                iou: 0.0,
                hd: 0.0,
                hd95,
                assd: 0.0,
                surface_dice: 0.0,
                volume_ml: 0.0,
                volume_ml_ref: 0.0,
                volume_error: 0.0,
            },
        }
    }

    #[test]
    fn tables_group_by_phase_and_scan_range() {
        let cases = [
            case("arterial", "liver", 0.9, 4.0),
            case("native", "liver", 0.8, 6.0),
            case("arterial", "abdomen", 0.7, 8.0),
        ];
        let t = tables(&cases);
        assert!(t.contains("| arterial | 2 | 0.800 | 0.700 | 6.0 |"), "{t}");
        assert!(t.contains("| native | 1 | 0.800 | 0.800 | 6.0 |"), "{t}");
        assert!(t.contains("| liver | 2 | 0.850 | 0.800 | 5.0 |"), "{t}");
        assert!(t.contains("| abdomen | 1 | 0.700 | 0.700 | 8.0 |"), "{t}");
        assert!(t.contains("| all | 3 | 0.800 | 0.700 | 6.0 |"), "{t}");
        assert!(
            t.contains("| normal liver | 3 | 0.800 | 0.700 | 6.0 |"),
            "{t}"
        );
        // Three tables, each header followed by its separator.
        let separators = t.lines().filter(|l| l.starts_with("| --- |")).count();
        assert_eq!(separators, 3, "{t}");
    }

    #[test]
    fn varied_cases_add_tables_for_what_varies() {
        let mut prone = case("native", "liver", 0.6, 9.0);
        prone.position = "prone".into();
        prone.axcodes = "PIR".into();
        let cases = [case("native", "liver", 0.8, 6.0), prone];
        let t = tables(&cases);
        assert!(t.contains("| prone | 1 | 0.600 | 0.600 | 9.0 |"), "{t}");
        assert!(t.contains("| permuted | 1 | 0.600 |"), "{t}");
        assert!(t.contains("| axial (x, y, z) | 1 | 0.800 |"), "{t}");
        // Age and surgery do not vary: no table for them.
        assert!(!t.contains("| age "), "{t}");
        let separators = t.lines().filter(|l| l.starts_with("| --- |")).count();
        assert_eq!(separators, 5, "{t}");
    }
}
