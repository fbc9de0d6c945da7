//! The built-in liver model: trained by `cargo xtask train-builtin` on
//! synthetic phantoms only, stored in half precision in
//! `models/liver.safetensors`, and embedded in the binary by the `builtin`
//! feature (the CLI's default; a build without it, such as the GPU
//! binary, is smaller and needs `--model`).

use std::path::Path;

use candle_core::Device;
use liverseg_model::ModelFile;

use crate::{Error, ModelCard, Predictor, Result};

/// The name that selects the built-in model (`--model builtin`).
pub const BUILTIN: &str = "builtin";

#[cfg(feature = "builtin")]
static MODEL: &[u8] = include_bytes!("../models/liver.safetensors");

/// The embedded model file, when this build carries one.
pub fn builtin_bytes() -> Option<&'static [u8]> {
    #[cfg(feature = "builtin")]
    {
        Some(MODEL)
    }
    #[cfg(not(feature = "builtin"))]
    {
        None
    }
}

/// The built-in model file, read from the binary.
fn builtin_file(device: &Device) -> Result<ModelFile> {
    let bytes = builtin_bytes().ok_or_else(|| {
        Error::Config(
            "this build carries no built-in model (built without the `builtin` feature): name a model file"
                .into(),
        )
    })?;
    Ok(ModelFile::from_bytes(Path::new(BUILTIN), bytes, device)?)
}

impl ModelCard {
    /// The card of the built-in model.
    pub fn builtin() -> Result<ModelCard> {
        let file = builtin_file(&Device::Cpu)?;
        ModelCard::of(Path::new(BUILTIN), &file)
    }
}

impl Predictor {
    /// The built-in model, ready to predict.
    pub fn builtin(device: &Device) -> Result<Predictor> {
        let file = builtin_file(device)?;
        let card = ModelCard::of(Path::new(BUILTIN), &file)?;
        Predictor::from_file(card, &file, device)
    }

    /// The built-in model for `name == "builtin"`, else the model file at
    /// `name`.
    pub fn load_named(name: &str, device: &Device) -> Result<Predictor> {
        if name == BUILTIN {
            Predictor::builtin(device)
        } else {
            Predictor::load(Path::new(name), device)
        }
    }
}

#[cfg(all(test, feature = "builtin"))]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_model_loads_with_its_card() {
        let card = ModelCard::builtin().unwrap();
        assert_eq!(card.classes, vec!["background", "liver"]);
        assert_eq!(card.preset.name, "builtin");
        assert!(
            card.about["trained on"].contains("synthetic clinical phantoms"),
            "{:?}",
            card.about
        );
        assert_eq!(card.about["recipe"], "cargo xtask train-builtin");
        let p = Predictor::builtin(&Device::Cpu).unwrap();
        assert_eq!(p.card(), &card);
    }
}
