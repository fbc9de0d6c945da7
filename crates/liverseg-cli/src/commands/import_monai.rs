//! `liverseg import-monai`: a MONAI `UNet` checkpoint into a self-describing
//! liverseg model file.

use crate::exit::bad_input;
use anyhow::Result;
use clap::{Args, ValueEnum};
use liverseg_model::{Architecture, Norm, UNetConfig};
use std::path::PathBuf;

/// Normalisation choices on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum NormArg {
    /// BatchNorm3d (the tutorial's `Norm.BATCH`).
    Batch,
    /// InstanceNorm3d without affine parameters (MONAI's default).
    Instance,
    /// No normalisation.
    None,
}

/// Arguments of `liverseg import-monai`. The architecture flags default to
/// the liver tutorial's network.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// `torch.save(model.state_dict())` file (`.pth`/`.pt`) or a safetensors
    /// file with MONAI's parameter names.
    pub model: PathBuf,
    /// Output model file (`.safetensors`).
    #[arg(long)]
    pub out: PathBuf,
    /// Input channels.
    #[arg(long, default_value_t = 1)]
    pub in_channels: usize,
    /// Output channels (classes).
    #[arg(long, default_value_t = 2)]
    pub out_channels: usize,
    /// Channels per level, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "16,32,64,128,256")]
    pub channels: Vec<usize>,
    /// Strides between levels, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "2,2,2,2")]
    pub strides: Vec<usize>,
    /// Residual units per layer.
    #[arg(long, default_value_t = 2)]
    pub num_res_units: usize,
    /// Normalisation layers.
    #[arg(long, value_enum, default_value = "batch")]
    pub norm: NormArg,
    /// The preprocessing the network was trained with, recorded in the
    /// model for `liverseg predict`: `seed` (the tutorial's, also what a
    /// model without one gets), `patch`, `fast`, or a preset JSON file.
    #[arg(long)]
    pub preset: Option<String>,
    /// Replace an existing output file.
    #[arg(long)]
    pub force: bool,
}

/// Runs `liverseg import-monai`.
pub fn run(args: &ImportArgs) -> Result<()> {
    let cfg = UNetConfig {
        in_channels: args.in_channels,
        out_channels: args.out_channels,
        channels: args.channels.clone(),
        strides: args.strides.clone(),
        num_res_units: args.num_res_units,
        norm: match args.norm {
            NormArg::Batch => Norm::Batch,
            NormArg::Instance => Norm::Instance,
            NormArg::None => Norm::None,
        },
        ..UNetConfig::default()
    };
    cfg.validate().map_err(|e| bad_input(e.to_string()))?;
    if !args.model.is_file() {
        return Err(bad_input(format!("{}: no such file", args.model.display())));
    }
    crate::formats::ensure_not_input(&args.model, &args.out)?;
    liverseg_io::check_replaceable(
        &args.out,
        if args.force {
            liverseg_io::Overwrite::Allow
        } else {
            liverseg_io::Overwrite::Never
        },
    )?;
    let mut metadata = std::collections::BTreeMap::new();
    if let Some(name) = &args.preset {
        let preset = super::preprocess::load_preset(name)?;
        metadata.insert(
            liverseg_model::PRESET_KEY.to_string(),
            serde_json::to_string(&preset)?,
        );
    }
    let arch = Architecture::MonaiUnet(cfg);
    let tensors =
        liverseg_model::import_monai(&args.model, &arch).map_err(|e| bad_input(e.to_string()))?;
    if args.out.exists() && !args.force {
        return Err(bad_input(format!(
            "{}: already exists (pass --force to replace it)",
            args.out.display()
        )));
    }
    liverseg_model::save_with_metadata(&args.out, &arch, &tensors, &metadata, args.force)?;
    let n: usize = tensors.values().map(|t| t.elem_count()).sum();
    crate::outln!(
        "{}: {} tensors, {n} values, architecture{} recorded",
        args.out.display(),
        tensors.len(),
        if args.preset.is_some() {
            " and preset"
        } else {
            ""
        }
    )?;
    Ok(())
}
