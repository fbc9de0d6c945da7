//! `liverseg train`: one configuration (tutorial defaults, a TOML file,
//! then flags) and a training run in its own folder.

use crate::exit::bad_input;
use crate::formats::PathCheck;
use anyhow::{Context, Result};
use clap::Args;
use liverseg_train::TrainConfig;
use std::path::{Path, PathBuf};

/// Arguments of `liverseg train`. Flags override `--config`, which
/// overrides the defaults (the MONAI liver tutorial).
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Dataset folder holding `dataset.json`, or the file. Default: the
    /// one dataset under `data/`.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// `splits.json` (default: beside `dataset.json` when present).
    #[arg(long)]
    pub splits: Option<PathBuf>,
    /// Cross-validation fold.
    #[arg(long)]
    pub fold: Option<usize>,
    /// A TOML file with any subset of the configuration.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Run folder (default `runs/liver`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the run in `--out` from its `last` checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Start over in an existing run folder.
    #[arg(long)]
    pub force: bool,
    /// `cpu` or `cuda:N`.
    #[arg(long)]
    pub device: Option<String>,
    /// The network's number format: `f32`, or `bf16` (float32 weights,
    /// optimiser and losses; on a GPU bfloat16 activations and
    /// convolutions; on the CPU float32 activations and convolutions whose
    /// operands are rounded to bfloat16 and summed in float32 on AMX tiles
    /// or with AVX-512 BF16 dot products, where the CPU has them).
    #[arg(long, value_parser = super::predict::parse_precision)]
    pub precision: Option<liverseg_model::Precision>,
    /// Deterministic cuDNN algorithms on a GPU (slower; the CPU is always
    /// deterministic).
    #[arg(long)]
    pub deterministic: bool,
    /// `seed` (the tutorial), `patch` (1.5 mm patches, nnU-Net-like),
    /// `fast` (3 mm patches, for `liverseg predict --fast`), or a preset JSON
    /// file.
    #[arg(long)]
    pub preset: Option<String>,
    /// Epochs.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Train as a plan from `liverseg plan` says (nnU-Net's 3d_fullres:
    /// spacing, patch, batch, per-axis network, normalisation, SGD); flags
    /// given beside it override it.
    #[arg(long)]
    pub plan: Option<PathBuf>,
    /// Classes to learn, by the dataset's label names: `spleen,kidney`
    /// selects, `liver=liver+tumour` merges (a selected organ takes in its
    /// own tumour labels: `liver` on Task03 is the whole liver, as in the
    /// tutorial), and unselected labels become background. Default: every
    /// label of dataset.json its own class (Task03: the tutorial's liver).
    #[arg(long)]
    pub labels: Option<String>,
    /// Samples per batch.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Seed of every random choice.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Validate every N epochs.
    #[arg(long)]
    pub val_every: Option<usize>,
    /// Optimiser steps per epoch (patch training).
    #[arg(long)]
    pub iterations_per_epoch: Option<usize>,
    /// Stop after N validations without a better Dice.
    #[arg(long)]
    pub early_stopping: Option<usize>,
    /// Print the full configuration as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
}

/// The dataset under `data/` when there is exactly one.
fn find_dataset() -> Result<PathBuf> {
    let root = Path::new("data");
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(root) {
        for e in entries.flatten() {
            if e.path().join("dataset.json").is_file() {
                found.push(e.path());
            }
        }
    }
    found.sort();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(bad_input(
            "no dataset given and none under data/: pass --data DIR, or make one with \
             `cargo xtask synth --cases 20` (phantoms) or `cargo xtask fetch-data` (MSD Task03_Liver)",
        )),
        _ => Err(bad_input(format!(
            "several datasets under data/ ({}); choose one with --data",
            found
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The configuration from defaults, `--config` and flags. Unless the
/// configuration file sets `sliding_window.roi_size`, validation slides the
/// window the preset trains on ([`Preset::window`]: 96 × 96 × 64 for
/// `fast`), the one `liverseg predict` uses.
///
/// [`Preset::window`]: liverseg_transforms::Preset::window
pub fn build_config(args: &TrainArgs) -> Result<TrainConfig> {
    let mut roi_given = false;
    let mut cfg = match &args.config {
        Some(p) => {
            liverseg_io::check_input(p)?;
            let bytes =
                std::fs::read(p).with_context(|| format!("{}: cannot read", p.display()))?;
            let text = String::from_utf8(bytes).map_err(|_| {
                bad_input(format!(
                    "{}: not a TOML configuration (not UTF-8 text)",
                    p.display()
                ))
            })?;
            let cfg = TrainConfig::from_toml(&text)
                .map_err(|e| bad_input(format!("{}: {e}", p.display())))?;
            roi_given = text
                .parse::<toml::Table>()
                .ok()
                .and_then(|t| t.get("sliding_window")?.get("roi_size").cloned())
                .is_some();
            cfg
        }
        None => TrainConfig::default(),
    };
    if let Some(p) = &args.plan {
        crate::commands::plan::PlanFile::read(p)?.apply(&mut cfg)?;
        roi_given = true;
    }
    if let Some(v) = &args.data {
        cfg.data = v.clone();
    }
    if let Some(v) = &args.splits {
        cfg.splits = Some(v.clone());
    }
    if let Some(v) = args.fold {
        cfg.fold = v;
    }
    if let Some(v) = &args.out {
        cfg.out = v.clone();
    }
    if let Some(v) = &args.device {
        cfg.device = v.clone();
    }
    if let Some(v) = args.precision {
        cfg.precision = v;
    }
    if args.deterministic {
        cfg.deterministic = true;
    }
    if let Some(v) = &args.preset {
        cfg.preset = v.clone();
    }
    if let Some(v) = args.epochs {
        cfg.epochs = v;
    }
    if let Some(v) = &args.labels {
        cfg.labels = v.clone();
    }
    if let Some(v) = args.batch_size {
        cfg.batch_size = v;
    }
    if let Some(v) = args.lr {
        use liverseg_train::config::OptimizerConfig as O;
        match &mut cfg.optimizer {
            O::Adam { lr, .. } | O::AdamW { lr, .. } | O::Sgd { lr, .. } => *lr = v,
        }
    }
    if let Some(v) = args.seed {
        cfg.seed = v;
    }
    if let Some(v) = args.val_every {
        cfg.val_every = v;
    }
    if let Some(v) = args.iterations_per_epoch {
        cfg.iterations_per_epoch = v;
    }
    if let Some(v) = args.early_stopping {
        cfg.early_stopping = v;
    }
    if !roi_given {
        // An unreadable preset is reported when the run starts.
        if let Some(w) = liverseg_transforms::Preset::load(&cfg.preset)
            .ok()
            .and_then(|p| p.window())
        {
            cfg.sliding_window.roi_size = w;
        }
    }
    Ok(cfg)
}

/// Runs `liverseg train`. Logging goes to the terminal and to
/// `<out>/train.log` (`<out>/train.rank-N.log` for rank N > 0 of a
/// data-parallel run, which writes nothing else).
pub fn run(args: &TrainArgs, verbose: u8) -> Result<()> {
    let mut cfg = build_config(args)?;
    if args.print_config {
        return crate::stdout::write_text(&cfg.to_toml()?);
    }
    if cfg.data.as_os_str().is_empty() {
        cfg.data = find_dataset()?;
    }
    PathCheck::new()
        .input(&cfg.data)
        .input_opt(args.config.as_deref())
        .input_opt(cfg.splits.as_deref())
        .output(&cfg.out)
        .check()?;
    cfg.validate().map_err(|e| bad_input(e.to_string()))?;
    let world = liverseg_train::distributed::World::from_env()?;
    std::fs::create_dir_all(&cfg.out)
        .with_context(|| format!("{}: cannot create", cfg.out.display()))?;
    let log = match world.rank {
        0 => "train.log".to_string(),
        r => format!("train.rank-{r}.log"),
    };
    crate::init_logging_with_file(verbose, Some(&cfg.out.join(log)));
    tracing::info!(data = %cfg.data.display(), out = %cfg.out.display(), preset = %cfg.preset, rank = world.rank, ranks = world.size, "training");
    let bars = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let display = crate::progress::training_display(&cfg.out, bars, world.is_writer());
    let summary = liverseg_train::Trainer::new(cfg, args.resume, args.force)
        .and_then(|mut t| {
            t.set_progress(display);
            t.run()
        })
        // The error keeps its type: the exit code and the hint follow it.
        ?;
    match summary.best_dice {
        Some(dice) => crate::outln!(
            "{} epochs ({}); best validation Dice {dice:.4} at epoch {}; model: {}",
            summary.epochs,
            summary.stopped,
            summary.best_epoch,
            summary.out.join("best/model.safetensors").display()
        )?,
        None => crate::outln!(
            "{} epochs ({}); not validated yet, so no best model; last checkpoint: {}",
            summary.epochs,
            summary.stopped,
            summary.out.join("last").display()
        )?,
    }
    Ok(())
}
