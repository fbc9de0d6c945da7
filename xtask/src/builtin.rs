//! `cargo xtask train-builtin`: the recipe of liverseg's built-in liver
//! model, from nothing to the shipped weights. It generates the synthetic
//! training phantoms (no real scan is used to train, tune or choose
//! anything), trains the network with the recipe below, and exports the
//! best checkpoint, in half precision with its model card, to
//! `crates/liverseg-infer/models/liver.safetensors`, which the `builtin`
//! feature embeds in the binary.
//!
//! On the CPU every step is deterministic (seeded phantoms, seeded
//! training that does not depend on the thread count), so running it again
//! gives the committed weights bit for bit. It is resumable: the phantoms
//! are generated once into the work folder, and a training killed part way
//! continues from its last checkpoint on the next run.
//!
//! `--check` runs the same recipe on a shrunken configuration (a few tiny
//! phantoms, a tiny network, two epochs) end to end; a test does so.

use anyhow::{Context, Result, bail};
use liverseg_infer::ModelCard;
use liverseg_io::Overwrite;
use liverseg_io::decathlon::Splits;
use liverseg_model::{Architecture, Norm, UNetConfig};
use liverseg_phantom::{ClinicalRanges, PhantomConfig, generate};
use liverseg_train::config::{LossConfig, OptimizerConfig, ScheduleConfig};
use liverseg_train::{TrainConfig, Trainer};
use liverseg_transforms::intensity::ScaleIntensityRange;
use liverseg_transforms::{CropForegroundOptions, PadMethod, Preset, Step, patch_augmentation};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Options of `cargo xtask train-builtin`.
#[derive(Clone, Debug, clap::Args)]
pub struct TrainBuiltinArgs {
    /// Work folder: the phantoms, the preprocessing cache and the run.
    #[arg(long, default_value = "target/builtin")]
    pub work: PathBuf,
    /// Where the exported model goes.
    #[arg(long, default_value = "crates/liverseg-infer/models/liver.safetensors")]
    pub out: PathBuf,
    /// The shrunken recipe (tiny phantoms and network, two epochs), to
    /// check the whole path quickly.
    #[arg(long)]
    pub check: bool,
}

/// The sizes of one run of the recipe.
#[derive(Clone, Debug, PartialEq)]
pub struct Recipe {
    /// Phantoms generated (training and validation).
    pub cases: usize,
    /// First phantom seed; case `i` uses `first_seed + i`.
    pub first_seed: u64,
    /// The patients, contrast phases and scanner settings the clinical
    /// phantoms are drawn from.
    pub ranges: ClinicalRanges,
    /// The network.
    pub network: UNetConfig,
    /// Training epochs, each of `iterations` optimiser steps.
    pub epochs: usize,
    /// Optimiser steps per epoch.
    pub iterations: usize,
    /// Training patch (also the inference window).
    pub patch: [usize; 3],
    /// Voxel size the network works at, mm.
    pub spacing: f64,
}

impl Recipe {
    /// The shipped recipe.
    pub fn full() -> Recipe {
        Recipe {
            cases: 96,
            first_seed: 1_000_000,
            // The clinical mix of phases, patients, livers, lesions,
            // kernels, scan ranges and artefacts, on 256–320 matrices of
            // 1.2–1.6 mm pixels (307–512 mm fields of view) so that 96
            // cases generate in minutes; the network sees them at 3 mm.
            ranges: ClinicalRanges {
                matrix: (256, 320),
                pixel_spacing: (1.2, 1.6),
                max_slices: 160,
                ..ClinicalRanges::default()
            },
            network: UNetConfig {
                channels: vec![16, 32, 64, 128],
                strides: vec![2, 2, 2],
                num_res_units: 2,
                norm: Norm::Instance,
                ..UNetConfig::default()
            },
            epochs: 150,
            iterations: 40,
            patch: [96, 96, 64],
            spacing: 3.0,
        }
    }

    /// The shrunken recipe of `--check`.
    pub fn check() -> Recipe {
        Recipe {
            cases: 4,
            first_seed: 1_000_000,
            ranges: ClinicalRanges {
                matrix: (40, 48),
                pixel_spacing: (8.0, 10.0),
                slice_thickness: (8.0, 10.0),
                max_slices: 28,
                blur_sigma: (0.5, 1.0),
                ..ClinicalRanges::default()
            },
            network: UNetConfig {
                channels: vec![4, 8],
                strides: vec![2],
                num_res_units: 1,
                norm: Norm::Instance,
                ..UNetConfig::default()
            },
            epochs: 2,
            iterations: 2,
            patch: [32, 32, 16],
            spacing: 8.0,
        }
    }

    /// The preprocessing the model is trained with and predicts with:
    /// `spacing` mm isotropic, RAS, cropped to the body, a fixed CT window
    /// (−200..300 HU to 0..1, clipped: no statistics of the synthetic data
    /// are carried to real scans), padded to the patch, and nnU-Net's
    /// augmentation of patches.
    pub fn preset(&self) -> Preset {
        Preset {
            name: "builtin".into(),
            steps: vec![
                Step::Spacing {
                    pixdim: [self.spacing; 3],
                    image_mode: liverseg_transforms::Interpolation::Linear,
                },
                Step::Orientation {
                    axcodes: "RAS".into(),
                },
                Step::ScaleIntensityRange(ScaleIntensityRange {
                    a_min: -200.0,
                    a_max: 300.0,
                    b_min: 0.0,
                    b_max: 1.0,
                    clip: true,
                }),
                // Above −200 HU after the window: the body, not the air.
                Step::CropForeground(CropForegroundOptions::default()),
                Step::SpatialPad {
                    size: self.patch,
                    method: PadMethod::Symmetric,
                },
            ],
            augment: patch_augmentation(self.patch),
        }
    }

    /// The training configuration over the phantoms in `data`.
    pub fn train_config(&self, data: &Path, run: &Path, preset: &Path) -> TrainConfig {
        let mut c = TrainConfig {
            data: data.to_path_buf(),
            out: run.to_path_buf(),
            preset: preset.to_string_lossy().into_owned(),
            model: Architecture::MonaiUnet(self.network.clone()),
            loss: LossConfig::dice_ce_softmax(),
            optimizer: OptimizerConfig::adam(3e-3, 1e-5),
            schedule: ScheduleConfig::Poly { exponent: 0.9 },
            epochs: self.epochs,
            iterations_per_epoch: self.iterations,
            batch_size: 2,
            val_every: 10.min(self.epochs),
            seed: 20261206,
            cache: Some(run.with_file_name("cache")),
            ..TrainConfig::default()
        };
        c.sliding_window.roi_size = self.patch;
        c
    }

    /// A fingerprint of everything that decides the phantoms, so a work
    /// folder made by another recipe is never reused.
    fn data_key(&self) -> String {
        format!("{} {} {:?}", self.cases, self.first_seed, self.ranges)
    }
}

/// Generates the recipe's phantoms into `data` unless they are there.
fn phantoms(recipe: &Recipe, data: &Path) -> Result<()> {
    let key_path = data.join("recipe.txt");
    if let Ok(key) = std::fs::read_to_string(&key_path) {
        if key == recipe.data_key() {
            tracing::info!(data = %data.display(), "phantoms already generated");
            return Ok(());
        }
        bail!(
            "{}: made by another recipe; remove the work folder to regenerate",
            data.display()
        );
    }
    let names: Vec<String> = (0..recipe.cases)
        .map(|i| format!("phantom_{i:03}"))
        .collect();
    tracing::info!(cases = recipe.cases, data = %data.display(), "generating phantoms");
    liverseg_io::write_dir_atomic(data, Overwrite::Never, |dir| {
        let cases = names.iter().enumerate().map(|(i, name)| {
            let seed = recipe.first_seed + i as u64;
            let cfg = PhantomConfig::clinical_in(seed, &recipe.ranges);
            Ok((name.clone(), generate(seed, &cfg)?))
        });
        liverseg_phantom::write_decathlon(dir, cases, "liverseg built-in model training phantoms")
            .map_err(|e| liverseg_io::Error::Request {
                path: dir.to_path_buf(),
                reason: e.to_string(),
            })?;
        let folds = names.len().clamp(2, 10);
        Splits::seeded(&names, folds, 0.0, recipe.first_seed)
            .map_err(|reason| liverseg_io::Error::Request {
                path: dir.to_path_buf(),
                reason,
            })?
            .write(&dir.join("splits.json"), Overwrite::Never)?;
        std::fs::write(dir.join("recipe.txt"), recipe.data_key()).map_err(|e| {
            liverseg_io::Error::Io {
                path: dir.join("recipe.txt"),
                action: "cannot write",
                source: e,
            }
        })
    })?;
    Ok(())
}

/// Runs the recipe: phantoms, training (resumed when a run exists), export.
pub fn run_recipe(recipe: &Recipe, work: &Path, out: &Path) -> Result<ModelCard> {
    std::fs::create_dir_all(work).with_context(|| format!("{}: cannot create", work.display()))?;
    let data = work.join("data");
    phantoms(recipe, &data)?;
    let preset_path = work.join("preset.json");
    let preset_json = serde_json::to_string_pretty(&recipe.preset())?;
    if std::fs::read_to_string(&preset_path).ok().as_deref() != Some(preset_json.as_str()) {
        std::fs::write(&preset_path, &preset_json)
            .with_context(|| format!("{}: cannot write", preset_path.display()))?;
    }
    let run = work.join("run");
    let cfg = recipe.train_config(&data, &run, &preset_path);
    let resume = run.join("last/state.json").is_file();
    let started = std::time::Instant::now();
    let summary = Trainer::new(cfg, resume, false)?.run()?;
    tracing::info!(
        epochs = summary.epochs,
        best_dice = ?summary.best_dice,
        minutes = started.elapsed().as_secs_f64() / 60.0,
        "trained"
    );
    let best = run.join("best/model.safetensors");
    let (mut card, file) = ModelCard::read(&best, &candle_core::Device::Cpu)?;
    card.about = BTreeMap::from([
        ("name".into(), "liverseg built-in liver model".into()),
        ("version".into(), env!("CARGO_PKG_VERSION").into()),
        (
            "trained on".into(),
            format!(
                "{} synthetic clinical phantoms (liverseg-phantom clinical mode, seeds {}..{}); no real scan",
                recipe.cases,
                recipe.first_seed,
                recipe.first_seed + recipe.cases as u64
            ),
        ),
        (
            "recipe".into(),
            if recipe == &Recipe::full() {
                "cargo xtask train-builtin".into()
            } else {
                "cargo xtask train-builtin --check (shrunken)".into()
            },
        ),
        (
            "validation Dice".into(),
            summary.best_dice.map_or("none".into(), |d| {
                format!("{d:.4} (epoch {})", summary.best_epoch)
            }),
        ),
        (
            "intended use".into(),
            "liver masks on adult abdominal CT; see docs/MODEL_CARD.md for the limits".into(),
        ),
    ]);
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    card.write_as(out, &file.tensors, true, candle_core::DType::F16)?;
    tracing::info!(out = %out.display(), "exported the model in half precision");
    Ok(card)
}

/// Runs `cargo xtask train-builtin`.
pub fn run(args: &TrainBuiltinArgs) -> Result<()> {
    let recipe = if args.check {
        Recipe::check()
    } else {
        Recipe::full()
    };
    run_recipe(&recipe, &args.work, &args.out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use liverseg_infer::{PredictOptions, Predictor};

    /// The recipe end to end on its shrunken configuration: phantoms,
    /// training, export in half precision with a card, and prediction with
    /// the exported file; a second run resumes rather than starting over.
    #[test]
    fn the_recipe_runs_end_to_end_shrunken() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("model.safetensors");
        let card = run_recipe(&Recipe::check(), &dir.path().join("work"), &out).unwrap();
        assert_eq!(card.preset.name, "builtin");
        assert!(card.about["recipe"].contains("--check"));
        let p = Predictor::load(&out, &candle_core::Device::Cpu).unwrap();
        assert_eq!(p.card().about, card.about);
        let recipe = Recipe::check();
        let cfg = PhantomConfig::clinical_in(7, &recipe.ranges);
        let ct = generate(7, &cfg).unwrap();
        let pred = p.predict(ct.image, &PredictOptions::default()).unwrap();
        assert_eq!(pred.labels.dims(), cfg.dims);
        // Half precision on disk: about half the bytes of the float32 run.
        let f32_len = std::fs::metadata(dir.path().join("work/run/best/model.safetensors"))
            .unwrap()
            .len();
        let f16_len = std::fs::metadata(&out).unwrap().len();
        assert!(f16_len < f32_len * 3 / 4, "{f16_len} vs {f32_len}");
        // The held-out scoring of `eval-builtin` runs on the exported file.
        let scored = crate::builtin_eval::score(&crate::builtin_eval::EvalBuiltinArgs {
            model: out.clone(),
            cases: 2,
            first_seed: 2_000_000,
            coarse: true,
            varied: false,
            json: None,
            tta: false,
            overlap: 0.25,
        })
        .unwrap();
        assert_eq!(scored.len(), 2);
        for s in &scored {
            assert!((0.0..=1.0).contains(&s.metrics.dice), "{s:?}");
            assert!(!s.phase.is_empty() && !s.scan_range.is_empty());
        }
        // Run again: the phantoms are kept and training resumes at its end.
        run_recipe(&recipe, &dir.path().join("work"), &out).unwrap();
        // From nothing again, in another folder: the same bytes.
        let again = dir.path().join("again.safetensors");
        run_recipe(&recipe, &dir.path().join("work2"), &again).unwrap();
        assert!(std::fs::read(&out).unwrap() == std::fs::read(&again).unwrap());
    }
}
