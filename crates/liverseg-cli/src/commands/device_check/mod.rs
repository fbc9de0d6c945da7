//! `liverseg device-check`: does a device compute what the CPU computes,
//! and how fast? Every layer's output and gradients, the two networks'
//! logits and training gradients against the CPU kernels in float32 and
//! bfloat16, then timings (forward, training steps, sliding window) and a
//! whole CT predicted with the built-in model. `tools/device/check.sh` runs
//! it on a GPU machine beside PyTorch's timings of the same cases.
//!
//! With `--device cpu` the CPU plays the device: its float32 convolutions
//! run through the candle compositions other devices use, compared with the
//! CPU kernels (so the check itself is tested without a GPU).

mod agree;
mod timing;

use crate::exit::bad_input;
use anyhow::{Context, Result};
use clap::Args;
use liverseg_model::Precision;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether the CPU is playing the device (compositions instead of kernels).
static COMPOSED: AtomicBool = AtomicBool::new(false);

/// Arguments of `liverseg device-check`.
#[derive(Debug, Args)]
pub struct DeviceCheckArgs {
    /// The device to check: `cuda:N`, or `cpu` (the CPU's compositions
    /// against its kernels).
    #[arg(long, default_value = "cuda:0")]
    pub device: String,
    /// Small shapes and networks (seconds on a CPU), for testing the check.
    #[arg(long)]
    pub quick: bool,
    /// Timed repetitions per case (after one warm-up).
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    /// Agreement only, no timings and no whole CT.
    #[arg(long)]
    pub no_timings: bool,
    /// Write the report as JSON to this file (a new file).
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// One part of the report, or why it could not run.
#[derive(Debug, Serialize)]
#[serde(rename_all = "lowercase")]
enum Part<T> {
    Ok(T),
    Error(String),
}

impl<T> From<Result<T>> for Part<T> {
    fn from(r: Result<T>) -> Self {
        match r {
            Ok(v) => Part::Ok(v),
            Err(e) => Part::Error(format!("{e:#}")),
        }
    }
}

#[derive(Debug, Serialize)]
struct Report {
    device: String,
    liverseg_version: &'static str,
    cuda_feature: bool,
    quick: bool,
    /// Trainable parameters of the tutorial UNet and the plain U-Net.
    parameters: [usize; 2],
    layers: Vec<Part<Vec<agree::Agreement>>>,
    networks: Vec<Part<Vec<agree::Agreement>>>,
    timings: Vec<Part<Vec<timing::Timing>>>,
    whole_ct: Vec<Part<timing::WholeCt>>,
    passed: bool,
}

fn failures(parts: &[Part<Vec<agree::Agreement>>]) -> usize {
    parts
        .iter()
        .map(|p| match p {
            Part::Ok(v) => v.iter().filter(|a| !a.passed).count(),
            Part::Error(_) => 1,
        })
        .sum()
}

fn print_agreements(title: &str, parts: &[Part<Vec<agree::Agreement>>]) -> Result<()> {
    crate::outln!("{title}:")?;
    for p in parts {
        match p {
            Part::Ok(v) => {
                for a in v {
                    crate::outln!(
                        "  {:4} {:<5} {:<3} {:.2e} (bound {:.0e})  {}",
                        if a.passed { "ok" } else { "FAIL" },
                        a.precision.to_string(),
                        a.metric,
                        a.relative,
                        a.tolerance,
                        a.check
                    )?;
                }
            }
            Part::Error(e) => crate::outln!("  ERROR {e}")?,
        }
    }
    Ok(())
}

fn print_timings(report: &Report) -> Result<()> {
    crate::outln!("timings (median seconds):")?;
    for part in &report.timings {
        match part {
            Part::Ok(v) => {
                for t in v {
                    crate::outln!(
                        "  {:<22} {:<5} {:?}: {:.4}",
                        t.case,
                        t.precision.to_string(),
                        t.shape,
                        t.median_s
                    )?;
                }
            }
            Part::Error(e) => crate::outln!("  ERROR {e}")?,
        }
    }
    for part in &report.whole_ct {
        match part {
            Part::Ok(w) => crate::outln!(
                "  whole CT {:?} {}: {:.3} s, Dice {:.4} against the CPU, {:.4} against the label",
                w.shape,
                w.precision,
                w.median_s,
                w.dice_vs_cpu,
                w.dice_vs_label
            )?,
            Part::Error(e) => crate::outln!("  whole CT ERROR {e}")?,
        }
    }
    Ok(())
}

/// Runs `liverseg device-check`.
pub fn run(args: &DeviceCheckArgs) -> Result<()> {
    if args.reps == 0 {
        return Err(bad_input("--reps must be at least 1"));
    }
    if let Some(path) = args.json.as_ref().filter(|p| p.exists()) {
        return Err(bad_input(format!(
            "{}: exists; device-check writes a new report",
            path.display()
        )));
    }
    let device = liverseg_infer::device(&args.device).context("--device")?;
    if device.is_cpu() {
        COMPOSED.store(true, Ordering::Relaxed);
        liverseg_model::set_composed_convolutions_on_cpu(true);
    }
    let precisions = [Precision::F32, Precision::Bf16];
    let mut report = Report {
        device: args.device.clone(),
        liverseg_version: env!("CARGO_PKG_VERSION"),
        cuda_feature: cfg!(feature = "cuda"),
        quick: args.quick,
        parameters: agree::parameter_counts(args.quick)?,
        layers: Vec::new(),
        networks: Vec::new(),
        timings: Vec::new(),
        whole_ct: Vec::new(),
        passed: false,
    };
    for p in precisions {
        tracing::info!(precision = %p, "layers against the CPU");
        report
            .layers
            .push(agree::layers(&device, p, args.quick).into());
        tracing::info!(precision = %p, "networks against the CPU");
        report
            .networks
            .push(agree::networks(&device, p, args.quick).into());
    }
    if !args.no_timings {
        for p in precisions {
            tracing::info!(precision = %p, "timings");
            report
                .timings
                .push(timing::networks(&device, p, args.quick, args.reps).into());
            tracing::info!(precision = %p, "whole CT");
            report
                .whole_ct
                .push(timing::whole_ct(&device, p, args.quick, args.reps).into());
        }
    }
    let failed = failures(&report.layers)
        + failures(&report.networks)
        + report
            .timings
            .iter()
            .filter(|t| matches!(t, Part::Error(_)))
            .count()
        + report
            .whole_ct
            .iter()
            .filter(|t| matches!(t, Part::Error(_)))
            .count();
    report.passed = failed == 0;
    print_agreements("layers", &report.layers)?;
    print_agreements("networks", &report.networks)?;
    if !args.no_timings {
        print_timings(&report)?;
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)?;
        liverseg_io::write_file_atomic(path, liverseg_io::Overwrite::Never, |w| {
            std::io::Write::write_all(w, text.as_bytes())
        })?;
    }
    anyhow::ensure!(report.passed, "{failed} device check(s) failed");
    Ok(())
}
