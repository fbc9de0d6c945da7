//! `liverseg report DIR`: merges the records of every shard of a batch
//! (`DIR/.liverseg/`) into one CSV and one JSON, and names the cases
//! failed or missing.

use crate::batch::journal::{self, Record, ShardPlan, Status};
use crate::exit::bad_input;
use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Arguments of `liverseg report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A batch's output folder (`liverseg predict --output DIR`).
    pub dir: PathBuf,
    /// Print the JSON report on stdout instead of the summary.
    #[arg(long)]
    pub json: bool,
}

/// One case in the merged report.
#[derive(Debug, Serialize)]
struct CaseLine {
    id: String,
    /// `ok`, `failed`, or `missing` (no shard finished it).
    status: String,
    shard: String,
    seconds: f64,
    volumes_ml: BTreeMap<String, f64>,
    outputs: Vec<String>,
    error: String,
}

/// The batch as a whole.
#[derive(Debug, Serialize)]
struct Summary {
    cases: usize,
    ok: usize,
    failed: usize,
    missing: usize,
    /// Shards that have started, as `I/N`.
    shards: Vec<String>,
    /// Seconds of case work, summed over cases.
    case_seconds: f64,
    /// From the first shard's start to the last record.
    wall_seconds: f64,
    /// Cases done per hour of wall time, all shards together.
    cases_per_hour: f64,
    /// Mean volume per label over the cases done, mL.
    mean_volumes_ml: BTreeMap<String, f64>,
    failed_ids: Vec<String>,
    missing_ids: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Report {
    summary: Summary,
    cases: Vec<CaseLine>,
}

fn line_of(id: &str, history: Option<&Vec<Record>>) -> CaseLine {
    // The last record that ended the case; a `started` after it (a kill
    // before its outputs moved) leaves the earlier state.
    let last = history.and_then(|h| h.iter().rev().find(|r| r.status != Status::Started));
    match last {
        Some(r) => CaseLine {
            id: id.to_string(),
            status: if r.status == Status::Ok {
                "ok"
            } else {
                "failed"
            }
            .into(),
            shard: r.shard.clone(),
            seconds: r.seconds,
            volumes_ml: r.volumes_ml.clone(),
            outputs: r.outputs.iter().map(|w| w.path.clone()).collect(),
            error: r.error.clone().unwrap_or_default(),
        },
        None => CaseLine {
            id: id.to_string(),
            status: "missing".into(),
            shard: String::new(),
            seconds: 0.0,
            volumes_ml: BTreeMap::new(),
            outputs: Vec::new(),
            error: String::new(),
        },
    }
}

fn build(dir: &Path) -> Result<Report> {
    let records = journal::load(dir)
        .with_context(|| format!("{}: cannot read the records", dir.display()))?;
    let plans = ShardPlan::load_all(dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    if plans.is_empty() && records.is_empty() {
        return Err(bad_input(format!(
            "{}: no batch records (.liverseg/*.jsonl); is this a `liverseg predict` output folder?",
            dir.display()
        )));
    }
    let ids: BTreeSet<String> = plans
        .iter()
        .flat_map(|p| p.all.iter().cloned())
        .chain(records.keys().cloned())
        .collect();
    let cases: Vec<CaseLine> = ids.iter().map(|id| line_of(id, records.get(id))).collect();
    let done: Vec<&CaseLine> = cases.iter().filter(|c| c.status == "ok").collect();
    let with = |s: &str| -> Vec<String> {
        cases
            .iter()
            .filter(|c| c.status == s)
            .map(|c| c.id.clone())
            .collect()
    };
    let mut sums: BTreeMap<String, f64> = BTreeMap::new();
    for c in &done {
        for (k, v) in &c.volumes_ml {
            *sums.entry(k.clone()).or_default() += v;
        }
    }
    let start = plans
        .iter()
        .map(|p| p.started_at)
        .chain(records.values().flatten().map(|r| r.ended_at - r.seconds))
        .fold(f64::INFINITY, f64::min);
    let end = records
        .values()
        .flatten()
        .map(|r| r.ended_at)
        .fold(f64::NEG_INFINITY, f64::max);
    let wall = if end > start { end - start } else { 0.0 };
    let mut shards: Vec<String> = plans.iter().map(|p| p.shard.clone()).collect();
    shards.sort();
    shards.dedup();
    let (failed_ids, missing_ids) = (with("failed"), with("missing"));
    let summary = Summary {
        cases: cases.len(),
        ok: done.len(),
        failed: failed_ids.len(),
        missing: missing_ids.len(),
        failed_ids,
        missing_ids,
        shards,
        case_seconds: done.iter().map(|c| c.seconds).sum(),
        wall_seconds: wall,
        cases_per_hour: if wall > 0.0 {
            done.len() as f64 * 3600.0 / wall
        } else {
            0.0
        },
        mean_volumes_ml: sums
            .into_iter()
            .map(|(k, v)| (k, v / done.len().max(1) as f64))
            .collect(),
    };
    Ok(Report { summary, cases })
}

/// A CSV field, quoted when it needs to be.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn csv(report: &Report) -> String {
    let labels: BTreeSet<&String> = report
        .cases
        .iter()
        .flat_map(|c| c.volumes_ml.keys())
        .collect();
    let mut out = String::from("id,status,shard,seconds");
    for l in &labels {
        let _ = write!(out, ",{}", field(&format!("{l}_ml")));
    }
    out.push_str(",outputs,error\n");
    for c in &report.cases {
        let _ = write!(
            out,
            "{},{},{},{:.3}",
            field(&c.id),
            c.status,
            c.shard,
            c.seconds
        );
        for l in &labels {
            match c.volumes_ml.get(*l) {
                Some(v) => {
                    let _ = write!(out, ",{v:.3}");
                }
                None => out.push(','),
            }
        }
        let _ = writeln!(out, ",{},{}", field(&c.outputs.join(";")), field(&c.error));
    }
    out
}

/// Writes `text` to `path` through a temporary beside it.
fn write_whole(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy()
    ));
    std::fs::write(&tmp, text).with_context(|| format!("{}: cannot write", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("{}: cannot write", path.display()))
}

/// Runs `liverseg report`: writes `DIR/.liverseg/report.csv` and
/// `report.json` (replaced at each run), prints the summary, and fails
/// when cases failed (exit 2) or are missing (exit 1).
pub fn run(args: &ReportArgs) -> Result<()> {
    let report = build(&args.dir)?;
    let dir = args.dir.join(journal::DIR);
    let (csv_path, json_path) = (dir.join("report.csv"), dir.join("report.json"));
    write_whole(&csv_path, &csv(&report))?;
    let json = serde_json::to_string_pretty(&report)?;
    write_whole(&json_path, &json)?;
    let s = &report.summary;
    if args.json {
        crate::outln!("{json}")?;
    } else {
        crate::outln!(
            "{} cases: {} ok, {} failed, {} missing; {:.1} cases/hour over {:.0} s (shards {})",
            s.cases,
            s.ok,
            s.failed,
            s.missing,
            s.cases_per_hour,
            s.wall_seconds,
            s.shards.join(", ")
        )?;
        for (k, v) in &s.mean_volumes_ml {
            crate::outln!("mean {k}: {v:.1} mL")?;
        }
        for c in report.cases.iter().filter(|c| c.status == "failed") {
            crate::outln!("failed: {}: {}", c.id, c.error)?;
        }
        for id in &s.missing_ids {
            crate::outln!("missing: {id}")?;
        }
        crate::outln!("{}\n{}", csv_path.display(), json_path.display())?;
    }
    if s.failed > 0 {
        return Err(bad_input(format!(
            "{}: {} case(s) failed: {}",
            args.dir.display(),
            s.failed,
            s.failed_ids.join(", ")
        )));
    }
    if s.missing > 0 {
        return Err(anyhow::anyhow!(
            "{}: {} case(s) missing (no shard finished them): {}",
            args.dir.display(),
            s.missing,
            s.missing_ids.join(", ")
        ));
    }
    Ok(())
}
