//! `liverseg serve`: a DICOM node that segments the CT and MR series sent
//! to it and sends the SEG and RTSTRUCT back (see `liverseg_net::node`);
//! `--status` lists its series.

use super::predict::{CaseOutputs, Input, PredictArgs};
use crate::exit::bad_input;
use anyhow::{Context, Result};
use clap::{Args, Parser};
use liverseg_net::node::{NodeConfig, Processor, Spool, Stage, now};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Arguments of `liverseg serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The node's settings (TOML; see deploy/node.toml).
    #[arg(long)]
    pub config: PathBuf,
    /// List the spool's series (receiving, queued, running, sending, done,
    /// failed) and exit; safe while the node runs.
    #[arg(long)]
    pub status: bool,
    /// With --status: one JSON object per series.
    #[arg(long, requires = "status")]
    pub json: bool,
}

/// `predict`'s arguments, parsed as the command line would be.
#[derive(Debug, Parser)]
struct PredictOnly {
    #[command(flatten)]
    args: PredictArgs,
}

fn read_config(path: &Path) -> Result<NodeConfig> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| bad_input(format!("{}: cannot read: {e}", path.display())))?;
    let cfg: NodeConfig =
        toml::from_str(&text).map_err(|e| bad_input(format!("{}: {e}", path.display())))?;
    cfg.validate()
        .map_err(|e| bad_input(format!("{}: {e}", path.display())))?;
    Ok(cfg)
}

/// Runs `liverseg serve`.
pub fn run(args: &ServeArgs) -> Result<()> {
    let cfg = read_config(&args.config)?;
    if args.status {
        return status(&cfg, args.json);
    }
    let stop = crate::batch::on_termination()?;
    let processor = processor(&cfg, stop.clone())?;
    liverseg_net::node::run(cfg, processor, stop).map_err(|e| {
        if e.is_bad_input() {
            bad_input(e.to_string())
        } else {
            anyhow::Error::new(e)
        }
    })
}

/// Segments one spooled series with the configured model into SEG and/or
/// RTSTRUCT files, as `liverseg predict --format seg,rtstruct` would.
fn processor(cfg: &NodeConfig, stop: Arc<std::sync::atomic::AtomicBool>) -> Result<Arc<Processor>> {
    let formats = cfg.formats.join(",");
    let args = PredictOnly::try_parse_from([
        "predict",
        "--model",
        &cfg.model,
        "--input",
        "series",
        "--output",
        "result.dcm",
        "--format",
        &formats,
    ])
    .map_err(|e| bad_input(format!("node settings: {e}")))?
    .args;
    let device = liverseg_infer::device(&cfg.device)
        .map_err(|e| bad_input(format!("node settings: device {:?}: {e}", cfg.device)))?;
    let (predictor, _) = super::predict::load_models(&args, &device)?;
    tracing::info!(model = %cfg.model, device = %cfg.device, "model loaded");
    let opts = super::predict::options(&args, stop);
    let name = if cfg.formats.iter().any(|f| f == "seg") {
        "seg.dcm"
    } else {
        "rtstruct.dcm"
    };
    Ok(Arc::new(move |series: &Path, out: &Path| {
        let mut a = args.clone();
        a.inputs = vec![series.to_path_buf()];
        a.output = out.join(name);
        let to = CaseOutputs {
            mask: a.output.clone(),
            probabilities: None,
            overlay: None,
        };
        let report = super::predict::run_case(
            &a,
            &predictor,
            &opts,
            &Input::Series(series.to_path_buf()),
            &to,
        )
        .map_err(|e| format!("{e:#}"))?;
        tracing::info!(series = %series.display(), volumes_ml = ?report.volumes_ml, seconds = report.seconds, "segmented");
        super::predict_web::results_in(out).map_err(|e| format!("{e:#}"))
    }))
}

/// `--status`: the spool's series, one line (or JSON object) each, and a
/// count per stage.
fn status(cfg: &NodeConfig, json: bool) -> Result<()> {
    let spool = Spool::inspect(&cfg.spool);
    let states = spool.states().context("cannot read the spool")?;
    let t = now();
    let mut counts = std::collections::BTreeMap::new();
    for s in &states {
        *counts
            .entry(format!("{:?}", s.stage).to_lowercase())
            .or_insert(0usize) += 1;
        if json {
            crate::outln!(
                "{}",
                serde_json::to_string(&serde_json::json!({
                    "series": s.series, "study": s.study, "modality": s.modality, "sender": s.sender,
                    "stage": s.stage, "instances": s.instances, "bytes": s.bytes,
                    "attempts": s.attempts, "reason": s.reason, "results": s.results, "sent": s.sent,
                    "seconds_since_last_instance": t - s.last_received_unix,
                }))?
            )?;
            continue;
        }
        let extra = match s.stage {
            Stage::Failed => format!(
                " (attempt {}: {}{})",
                s.attempts,
                s.reason.as_deref().unwrap_or("?"),
                if s.attempts < cfg.max_attempts {
                    format!("; retry in {:.0} s", (s.next_try_unix - t).max(0.0))
                } else {
                    "; no more retries".into()
                }
            ),
            Stage::Done => format!(" (sent {})", s.sent.join(", ")),
            _ => String::new(),
        };
        crate::outln!(
            "{:<9} {} {} from {}, {} instances{extra}",
            format!("{:?}", s.stage).to_lowercase(),
            s.series,
            s.modality,
            s.sender,
            s.instances
        )?;
    }
    if !json {
        let summary: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
        crate::outln!(
            "{} series: {}",
            states.len(),
            if summary.is_empty() {
                "none".into()
            } else {
                summary.join(", ")
            }
        )?;
    }
    Ok(())
}
