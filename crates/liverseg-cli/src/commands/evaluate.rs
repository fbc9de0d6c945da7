//! `liverseg evaluate`: score a directory of predicted label maps against a
//! directory of reference ones (Dice, IoU, HD, HD95, ASSD, surface Dice,
//! volumes), per case and on average.

use crate::exit::bad_input;
use crate::formats::{PathCheck, has_nifti_name};
use anyhow::{Context, Result};
use clap::Args;
use liverseg_io::{Overwrite, Volume, nifti};
use liverseg_metrics::{CaseMetrics, ClassMetrics, ClassSpec, MetricOptions};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use tracing::{info, warn};

/// Arguments of `liverseg evaluate`.
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// Directory of predicted label maps (`.nii` or `.nii.gz`).
    #[arg(long)]
    pub pred: PathBuf,
    /// Directory of reference label maps, paired with the predictions by
    /// file name without its `.nii`/`.nii.gz` extension.
    #[arg(long)]
    pub gt: PathBuf,
    /// Print one JSON object instead of the table: `{"cases": [{"name",
    /// "class", "dice", ...}], "mean": {...}}`, where `mean` holds the
    /// metrics when one class is scored and maps each class name to its
    /// metrics when several are. Infinite distances are `null`.
    #[arg(long)]
    pub json: bool,
    /// Also write the rows (and one `mean` row per class) as CSV to this
    /// file, atomically; infinite values are written `inf`.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Replace an existing `--csv` file.
    #[arg(long)]
    pub force: bool,
    /// Classes to score, comma-separated: `liver` (labels 1 and 2 merged,
    /// the whole organ of Task03/LiTS), `tumour` (label 2) or a label value.
    /// With `--dataset`, the selection `liverseg train --labels` takes
    /// instead (`spleen,kidney`; default every class of the dataset).
    #[arg(long)]
    pub labels: Option<String>,
    /// The dataset's `dataset.json` (or its folder): classes are then its
    /// label names and values, per label.
    #[arg(long)]
    pub dataset: Option<PathBuf>,
    /// Surface Dice tolerance in mm.
    #[arg(long, default_value_t = 2.0)]
    pub tolerance: f64,
    /// Skip files without a counterpart (with a warning) instead of failing.
    #[arg(long)]
    pub allow_missing: bool,
}

/// One line of the report: a case and a class.
#[derive(Debug, Serialize)]
struct Row {
    name: String,
    class: String,
    #[serde(flatten)]
    metrics: CaseMetrics,
}

/// The `--json` output.
#[derive(Debug, Serialize)]
struct Report<'a> {
    tolerance_mm: f64,
    cases: &'a [Row],
    mean: serde_json::Value,
}

/// The NIfTI files of a directory, by name without extension.
fn list_cases(dir: &Path, role: &str) -> Result<BTreeMap<String, PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        bad_input(format!(
            "{}: cannot read {role} directory: {e}",
            dir.display()
        ))
    })?;
    let mut out = BTreeMap::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("{}: cannot list", dir.display()))?
            .path();
        if !path.is_file() || !has_nifti_name(&path) {
            continue;
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let lower = name.to_ascii_lowercase();
        let cut = if lower.ends_with(".nii.gz") { 7 } else { 4 };
        let stem = name[..name.len() - cut].to_string();
        if let Some(other) = out.insert(stem.clone(), path.clone()) {
            return Err(bad_input(format!(
                "{} and {}: two {role} files for case {stem:?}",
                other.display(),
                path.display()
            )));
        }
    }
    Ok(out)
}

/// Pairs predictions with references; unmatched files fail the command
/// unless `allow_missing`.
fn pair(args: &EvaluateArgs) -> Result<Vec<(String, PathBuf, PathBuf)>> {
    let preds = list_cases(&args.pred, "prediction")?;
    let mut gts = list_cases(&args.gt, "reference")?;
    let mut pairs = Vec::new();
    let mut no_gt = Vec::new();
    for (name, p) in preds {
        match gts.remove(&name) {
            Some(g) => pairs.push((name, p, g)),
            None => no_gt.push(p.display().to_string()),
        }
    }
    let no_pred: Vec<String> = gts.values().map(|p| p.display().to_string()).collect();
    let mut problems = Vec::new();
    if !no_gt.is_empty() {
        problems.push(format!(
            "no reference in {} for {}",
            args.gt.display(),
            no_gt.join(", ")
        ));
    }
    if !no_pred.is_empty() {
        problems.push(format!(
            "no prediction in {} for {}",
            args.pred.display(),
            no_pred.join(", ")
        ));
    }
    if !problems.is_empty() {
        let msg = problems.join("; ");
        if !args.allow_missing {
            return Err(bad_input(format!(
                "{msg} (use --allow-missing to skip them)"
            )));
        }
        warn!("skipping unpaired files: {msg}");
    }
    if pairs.is_empty() {
        return Err(bad_input(format!(
            "no case found in both {} and {} (.nii or .nii.gz files paired by name)",
            args.pred.display(),
            args.gt.display()
        )));
    }
    Ok(pairs)
}

fn read_label(path: &Path) -> Result<Volume<u8>> {
    Ok(nifti::read(path, &nifti::ReadOptions::default())?)
}

/// Reads both files at once: gzip inflation is serial per stream, so two
/// files use two cores.
fn read_pair(pred: &Path, gt: &Path) -> Result<(Volume<u8>, Volume<u8>)> {
    std::thread::scope(|s| {
        let handle = s.spawn(|| read_label(gt));
        let p = read_label(pred);
        let g = handle
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("{}: reader thread panicked", gt.display())));
        Ok((p?, g?))
    })
}

/// Maps the library's errors to the CLI's exit codes, naming both files.
fn metric_error(e: liverseg_metrics::Error, pred: &Path, gt: &Path) -> anyhow::Error {
    let (p, g) = (pred.display(), gt.display());
    match e {
        liverseg_metrics::Error::Grid(msg) => {
            bad_input(format!("{p} and {g} are not on the same grid: {msg}"))
        }
        e => bad_input(format!("{p} against {g}: {e}")),
    }
}

fn fmt_num(v: f64, decimals: usize) -> String {
    if v.is_finite() {
        format!("{v:.decimals$}")
    } else {
        "inf".into()
    }
}

fn print_table(rows: &[Row], means: &[(String, CaseMetrics)], tolerance: f64) -> Result<()> {
    let width = rows
        .iter()
        .map(|r| r.name.chars().count())
        .max()
        .unwrap_or(0)
        .max(4);
    let cwidth = rows
        .iter()
        .map(|r| r.class.chars().count())
        .max()
        .unwrap_or(0)
        .max(5);
    let nsd = format!("nsd@{tolerance}mm");
    crate::outln!(
        "{:<width$}  {:<cwidth$}  {:>7} {:>7} {:>8} {:>8} {:>8} {:>10} {:>10} {:>10}",
        "case",
        "class",
        "dice",
        "iou",
        "hd",
        "hd95",
        "assd",
        nsd,
        "vol_ml",
        "ref_ml"
    )?;
    let line = |name: &str, class: &str, m: &CaseMetrics| {
        crate::outln!(
            "{:<width$}  {:<cwidth$}  {:>7} {:>7} {:>8} {:>8} {:>8} {:>10} {:>10} {:>10}",
            name,
            class,
            fmt_num(m.dice, 4),
            fmt_num(m.iou, 4),
            fmt_num(m.hd, 2),
            fmt_num(m.hd95, 2),
            fmt_num(m.assd, 2),
            fmt_num(m.surface_dice, 4),
            fmt_num(m.volume_ml, 1),
            fmt_num(m.volume_ml_ref, 1),
        )
    };
    for r in rows {
        line(&r.name, &r.class, &r.metrics)?;
    }
    for (class, m) in means {
        line("mean", class, m)?;
    }
    Ok(())
}

/// A CSV field: quoted when it holds a comma, quote or line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn csv_num(v: f64) -> String {
    if v.is_finite() {
        v.to_string()
    } else {
        "inf".into()
    }
}

fn write_csv(
    path: &Path,
    rows: &[Row],
    means: &[(String, CaseMetrics)],
    overwrite: Overwrite,
) -> Result<()> {
    let all = rows
        .iter()
        .map(|r| (r.name.as_str(), r.class.as_str(), &r.metrics))
        .chain(means.iter().map(|(c, m)| ("mean", c.as_str(), m)));
    let lines: Vec<String> = all
        .map(|(name, class, m)| {
            let nums = [
                m.dice,
                m.iou,
                m.hd,
                m.hd95,
                m.assd,
                m.surface_dice,
                m.volume_ml,
                m.volume_ml_ref,
                m.volume_error,
            ]
            .map(csv_num)
            .join(",");
            format!("{},{},{nums}", csv_field(name), csv_field(class))
        })
        .collect();
    liverseg_io::write_file_atomic(path, overwrite, |w| {
        writeln!(
            w,
            "name,class,dice,iou,hd,hd95,assd,surface_dice,volume_ml,volume_ml_ref,volume_error"
        )?;
        for l in &lines {
            writeln!(w, "{l}")?;
        }
        Ok(())
    })?;
    Ok(())
}

/// The classes to score: `--labels` as Task03 names or values, or, with
/// `--dataset`, the dataset's classes as `liverseg train` selects them.
fn classes(args: &EvaluateArgs) -> Result<Vec<ClassSpec>> {
    let Some(ds) = &args.dataset else {
        let spec = args.labels.as_deref().unwrap_or("liver");
        return ClassSpec::parse_list(spec)
            .map_err(|e| bad_input(format!("--labels {spec:?}: {e}")));
    };
    let dir = if ds.is_dir() {
        ds.clone()
    } else {
        ds.parent().unwrap_or(Path::new(".")).to_path_buf()
    };
    let json = liverseg_io::decathlon::DatasetJson::read(&dir)?;
    let labels = json.label_list(&dir.join("dataset.json"))?;
    let spec = args.labels.as_deref().unwrap_or("auto");
    let map = liverseg_io::decathlon::LabelMap::resolve(&labels, spec)
        .map_err(|e| bad_input(format!("--labels {spec:?}: {e}")))?;
    Ok(map
        .classes
        .iter()
        .map(|c| ClassSpec::new(c.name.clone(), c.sources.clone()))
        .collect())
}

/// Runs `liverseg evaluate`.
pub fn run(args: &EvaluateArgs) -> Result<()> {
    let classes = classes(args)?;
    let opts = MetricOptions::with_tolerance(args.tolerance);
    opts.validate()
        .map_err(|e| bad_input(format!("--tolerance: {e}")))?;
    let overwrite = if args.force {
        Overwrite::Allow
    } else {
        Overwrite::Never
    };
    if let Some(csv) = &args.csv {
        PathCheck::new()
            .input(&args.pred)
            .input(&args.gt)
            .output(csv)
            .check()?;
        // Fail before the work, not after it.
        if !args.force && std::fs::symlink_metadata(csv).is_ok() {
            return Err(bad_input(format!(
                "{}: already exists (use --force to replace it)",
                csv.display()
            )));
        }
    }
    let pairs = pair(args)?;
    let mut rows = Vec::new();
    for (name, pred_path, gt_path) in &pairs {
        let start = std::time::Instant::now();
        let (pred, gt) = read_pair(pred_path, gt_path)?;
        let scored: Vec<ClassMetrics> =
            liverseg_metrics::evaluate_classes(&pred, &gt, &classes, &opts)
                .map_err(|e| metric_error(e, pred_path, gt_path))?;
        info!(case = %name, seconds = start.elapsed().as_secs_f64(), "scored");
        rows.extend(scored.into_iter().map(|c| Row {
            name: name.clone(),
            class: c.class,
            metrics: c.metrics,
        }));
    }
    let means: Vec<(String, CaseMetrics)> = classes
        .iter()
        .filter_map(|c| {
            let of_class: Vec<CaseMetrics> = rows
                .iter()
                .filter(|r| r.class == c.name)
                .map(|r| r.metrics)
                .collect();
            CaseMetrics::mean(&of_class).map(|m| (c.name.clone(), m))
        })
        .collect();
    if let Some(csv) = &args.csv {
        write_csv(csv, &rows, &means, overwrite)?;
    }
    if args.json {
        let mean = match means.as_slice() {
            [(_, m)] => serde_json::to_value(m)?,
            many => serde_json::Value::Object(
                many.iter()
                    .map(|(c, m)| Ok((c.clone(), serde_json::to_value(m)?)))
                    .collect::<Result<_>>()?,
            ),
        };
        let report = Report {
            tolerance_mm: args.tolerance,
            cases: &rows,
            mean,
        };
        crate::outln!("{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        print_table(&rows, &means, args.tolerance)?;
        if let Some(csv) = &args.csv {
            crate::outln!("wrote {}", csv.display())?;
        }
    }
    Ok(())
}
