//! `liverseg models`: the card of the built-in model, or of model files:
//! what it segments, how it was trained, what it expects.

use anyhow::Result;
use clap::Args;
use liverseg_infer::{BUILTIN, ModelCard, builtin_bytes};
use liverseg_model::{Architecture, ModelFile};
use serde::Serialize;
use std::path::PathBuf;

/// Arguments of `liverseg models`.
#[derive(Debug, Args)]
pub struct ModelsArgs {
    /// Model files to describe (default: the built-in model).
    pub models: Vec<PathBuf>,
    /// Print one JSON object per model instead of text.
    #[arg(long)]
    pub json: bool,
}

/// What `models` reports for one model. Field names are the JSON keys.
#[derive(Debug, Serialize)]
struct Card {
    model: String,
    about: std::collections::BTreeMap<String, String>,
    classes: Vec<String>,
    values: Vec<u8>,
    /// Classes of which prediction keeps the largest component only.
    largest_component: Vec<String>,
    network: String,
    parameters: usize,
    stored_bytes: u64,
    preprocessing: String,
    window: Option<[usize; 3]>,
    decision: String,
}

fn describe(name: String, file: &ModelFile, card: &ModelCard, stored_bytes: u64) -> Card {
    let network = match &card.architecture {
        Architecture::MonaiUnet(c) => format!(
            "MONAI UNet, {} input channel{}, channels {:?}, strides {:?}, {} residual units",
            c.in_channels,
            if c.in_channels == 1 { "" } else { "s" },
            c.channels,
            c.strides,
            c.num_res_units
        ),
        Architecture::PlainUnet(c) => format!(
            "plain U-Net, {} input channel{}, features {:?}, strides {:?}",
            c.in_channels,
            if c.in_channels == 1 { "" } else { "s" },
            c.features,
            c.stage_strides()
        ),
    };
    let steps: Vec<&str> = card.preset.steps.iter().map(|s| s.name()).collect();
    Card {
        model: name,
        about: card.about.clone(),
        classes: card.classes.clone(),
        values: card.values.clone(),
        largest_component: card
            .classes
            .iter()
            .zip(&card.largest_component)
            .filter(|(_, k)| **k)
            .map(|(n, _)| n.clone())
            .collect(),
        network,
        parameters: file.tensors.values().map(|t| t.elem_count()).sum(),
        stored_bytes,
        preprocessing: format!("{}: {}", card.preset.name, steps.join(" → ")),
        window: card.preset.window(),
        decision: format!("{:?}", card.decision).to_lowercase(),
    }
}

/// Runs `liverseg models`.
pub fn run(args: &ModelsArgs) -> Result<()> {
    let device = candle_core::Device::Cpu;
    let mut cards = Vec::new();
    if args.models.is_empty() {
        let bytes = builtin_bytes().ok_or_else(|| {
            crate::exit::bad_input(
                "this build carries no built-in model (built without the builtin-model feature)",
            )
        })?;
        let file = ModelFile::from_bytes(std::path::Path::new(BUILTIN), bytes, &device)?;
        let card = ModelCard::of(std::path::Path::new(BUILTIN), &file)?;
        cards.push(describe(BUILTIN.into(), &file, &card, bytes.len() as u64));
    }
    for path in &args.models {
        let size = liverseg_io::check_input(path)?.len();
        let (card, file) = ModelCard::read(path, &device)?;
        cards.push(describe(path.display().to_string(), &file, &card, size));
    }
    for c in &cards {
        if args.json {
            crate::outln!("{}", serde_json::to_string(c)?)?;
            continue;
        }
        crate::outln!("{}", c.model)?;
        for (k, v) in &c.about {
            crate::outln!("  {k:<16} {v}")?;
        }
        let classes: Vec<String> = c
            .classes
            .iter()
            .zip(&c.values)
            .map(|(n, v)| format!("{v} {n}"))
            .collect();
        crate::outln!("  {:<16} {}", "classes", classes.join(", "))?;
        crate::outln!(
            "  {:<16} {} ({:.2} M parameters, {:.1} MB stored)",
            "network",
            c.network,
            c.parameters as f64 / 1e6,
            c.stored_bytes as f64 / 1e6
        )?;
        crate::outln!("  {:<16} {}", "preprocessing", c.preprocessing)?;
        if let Some(w) = c.window {
            crate::outln!("  {:<16} {} x {} x {}", "window", w[0], w[1], w[2])?;
        }
        crate::outln!("  {:<16} {}", "decision", c.decision)?;
        if !c.largest_component.is_empty() {
            crate::outln!(
                "  {:<16} largest component of {}",
                "post-processing",
                c.largest_component.join(", ")
            )?;
        }
    }
    Ok(())
}
