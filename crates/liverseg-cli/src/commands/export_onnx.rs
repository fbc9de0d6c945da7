//! `liverseg export-onnx`: a model (a file or the built-in one) as an ONNX
//! graph for ONNX Runtime, TensorRT, OpenVINO or Triton, with its card
//! (preprocessing preset, class names and values, decision) in the file's
//! `metadata_props`.

use crate::exit::bad_input;
use anyhow::Result;
use clap::Args;
use liverseg_infer::{BUILTIN, ModelCard, builtin_bytes};
use liverseg_model::ModelFile;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Arguments of `liverseg export-onnx`.
#[derive(Debug, Args)]
pub struct ExportOnnxArgs {
    /// A liverseg model file, or `builtin` (the model this binary carries).
    #[arg(default_value = BUILTIN)]
    pub model: String,
    /// Output ONNX file.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an existing output file.
    #[arg(long)]
    pub force: bool,
}

/// Reads the model and its card; the card's entries (defaults included)
/// become the file's metadata, so the ONNX file says what the model expects
/// even when the model file left something to its defaults.
fn load(name: &str) -> Result<ModelFile> {
    let device = candle_core::Device::Cpu;
    let (card, mut file) = if name == BUILTIN {
        let bytes = builtin_bytes().ok_or_else(|| {
            bad_input(
                "this build carries no built-in model (built without the builtin-model feature)",
            )
        })?;
        let file = ModelFile::from_bytes(Path::new(BUILTIN), bytes, &device)?;
        (ModelCard::of(Path::new(BUILTIN), &file)?, file)
    } else {
        let path = Path::new(name);
        liverseg_io::check_input(path)?;
        ModelCard::read(path, &device).map_err(|e| bad_input(e.to_string()))?
    };
    file.metadata.extend(card.metadata());
    Ok(file)
}

/// Runs `liverseg export-onnx`.
pub fn run(args: &ExportOnnxArgs) -> Result<()> {
    if args.model != BUILTIN {
        crate::formats::ensure_not_input(Path::new(&args.model), &args.out)?;
    }
    let overwrite = if args.force {
        liverseg_io::Overwrite::Allow
    } else {
        liverseg_io::Overwrite::Never
    };
    liverseg_io::check_replaceable(&args.out, overwrite)?;
    let file = load(&args.model)?;
    let bytes = liverseg_model::export_onnx(&file)?;
    liverseg_io::write_file_atomic(&args.out, overwrite, |w| w.write_all(&bytes))?;
    tracing::info!(out = %args.out.display(), bytes = bytes.len(), "wrote ONNX model");
    crate::outln!(
        "{}: ONNX opset {}, {} bytes, input `image` (N, {}, X, Y, Z) with extents divisible by {:?}, outputs `logits` and `probabilities`",
        args.out.display(),
        liverseg_model::ONNX_OPSET,
        bytes.len(),
        file.architecture.in_channels(),
        file.architecture.divisor()
    )?;
    Ok(())
}
