//! The one configuration struct of a training run, with the MONAI liver
//! tutorial's choices as defaults, readable from and printable as TOML.

use std::path::PathBuf;

use liverseg_model::{
    Architecture, DiceLossConfig, LossActivation, Precision, SlidingWindowConfig, UNetConfig,
};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};
use liverseg_io::decathlon::{Label, LabelMap};
use liverseg_transforms::Preset;

/// The loss function.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LossConfig {
    /// MONAI `DiceLoss`.
    Dice(DiceLossConfig),
    /// MONAI `DiceCELoss`: Dice plus cross-entropy with optional class
    /// weights.
    DiceCe {
        /// The Dice part.
        dice: DiceLossConfig,
        /// Cross-entropy class weights (empty: unweighted).
        #[serde(default)]
        ce_weights: Vec<f32>,
        /// Weight of the Dice term.
        #[serde(default = "one")]
        lambda_dice: f64,
        /// Weight of the cross-entropy term.
        #[serde(default = "one")]
        lambda_ce: f64,
    },
}

fn one() -> f64 {
    1.0
}

impl LossConfig {
    /// MONAI `DiceCELoss(softmax=True)` with both terms weighted 1: the
    /// loss of the demo and the built-in model.
    pub fn dice_ce_softmax() -> LossConfig {
        LossConfig::DiceCe {
            dice: DiceLossConfig {
                activation: LossActivation::Softmax,
                ..DiceLossConfig::default()
            },
            ce_weights: Vec::new(),
            lambda_dice: 1.0,
            lambda_ce: 1.0,
        }
    }
}

/// The optimiser.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OptimizerConfig {
    /// `torch.optim.Adam`: weight decay added to the gradient (L2).
    Adam {
        /// Learning rate.
        lr: f64,
        /// L2 penalty.
        weight_decay: f64,
        /// β₁, β₂.
        betas: (f64, f64),
        /// ε.
        eps: f64,
        /// AMSGrad variant (the tutorial uses it).
        amsgrad: bool,
    },
    /// `torch.optim.AdamW`: decoupled weight decay.
    AdamW {
        /// Learning rate.
        lr: f64,
        /// Decoupled decay.
        weight_decay: f64,
        /// β₁, β₂.
        betas: (f64, f64),
        /// ε.
        eps: f64,
    },
    /// `torch.optim.SGD` with momentum and optional Nesterov (nnU-Net:
    /// lr 0.01, momentum 0.99, Nesterov, weight decay 3e-5).
    Sgd {
        /// Learning rate.
        lr: f64,
        /// Momentum.
        momentum: f64,
        /// Nesterov momentum.
        nesterov: bool,
        /// L2 penalty added to the gradient.
        weight_decay: f64,
    },
}

impl OptimizerConfig {
    /// `torch.optim.Adam` with torch's betas and ε, no AMSGrad.
    pub fn adam(lr: f64, weight_decay: f64) -> OptimizerConfig {
        OptimizerConfig::Adam {
            lr,
            weight_decay,
            betas: (0.9, 0.999),
            eps: 1e-8,
            amsgrad: false,
        }
    }

    /// The base learning rate.
    pub fn lr(&self) -> f64 {
        match self {
            OptimizerConfig::Adam { lr, .. }
            | OptimizerConfig::AdamW { lr, .. }
            | OptimizerConfig::Sgd { lr, .. } => *lr,
        }
    }
}

/// How the learning rate changes over the run.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ScheduleConfig {
    /// The base rate throughout.
    Constant,
    /// nnU-Net's poly decay: `lr · (1 − epoch / epochs)^exponent`.
    Poly {
        /// The exponent (nnU-Net: 0.9).
        exponent: f64,
    },
    /// Linear warm-up from 0 over `warmup_epochs`, then cosine decay to
    /// `min_lr` at the last epoch.
    Cosine {
        /// Epochs of linear warm-up.
        warmup_epochs: usize,
        /// Final learning rate.
        min_lr: f64,
    },
}

/// Every hyper-parameter of a run. [`TrainConfig::default`] is the MONAI
/// liver tutorial: `seed` preset, the tutorial UNet, Dice loss (sigmoid,
/// squared prediction, one-hot targets), Adam lr 1e-5 with weight decay
/// 1e-5 and AMSGrad, batch 1, 600 epochs, validation every epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Dataset folder holding `dataset.json` (or the file itself). Empty:
    /// look under `data/`.
    pub data: PathBuf,
    /// `splits.json` (default: beside `dataset.json` when present).
    pub splits: Option<PathBuf>,
    /// Cross-validation fold of `splits.json`.
    pub fold: usize,
    /// Run folder.
    pub out: PathBuf,
    /// A built-in preset (`"seed"`, `"patch"`, `"fast"`), the path of a
    /// preset JSON file, or the preset's JSON itself (a plan's).
    pub preset: String,
    /// Classes to learn from the dataset's labels, as
    /// [`LabelMap::resolve`] reads them: `liver=liver+tumour,spleen`
    /// selects and merges by name; empty takes the dataset's default (each
    /// label its own class; Task03's liver and tumour as one, as in the
    /// tutorial).
    pub labels: String,
    /// The network (its output channels are set to the class count).
    pub model: Architecture,
    /// The loss.
    pub loss: LossConfig,
    /// The optimiser.
    pub optimizer: OptimizerConfig,
    /// The learning-rate schedule.
    pub schedule: ScheduleConfig,
    /// Epochs.
    pub epochs: usize,
    /// Optimiser steps per epoch for patch training (0: one pass over the
    /// training cases).
    pub iterations_per_epoch: usize,
    /// Samples per batch.
    pub batch_size: usize,
    /// Batches whose gradients are summed before one optimiser step.
    pub grad_accumulation: usize,
    /// Clip the global gradient norm to this (0: off).
    pub grad_clip: f64,
    /// Validate every this many epochs.
    pub val_every: usize,
    /// Stop after this many validations without a better Dice (0: off).
    pub early_stopping: usize,
    /// Sliding-window settings for validation on whole volumes.
    pub sliding_window: SlidingWindowConfig,
    /// Seed of every random choice (shuffling, augmentation, weights).
    pub seed: u64,
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// Cases preprocessed ahead of the training loop.
    pub prefetch: usize,
    /// Threads preparing batches, each taking every n-th batch (and rayon
    /// across a batch's samples); more help when batches are small and
    /// augmentation is heavy. Batches arrive in the same order whatever
    /// the count.
    pub loader_threads: usize,
    /// Cache folder for preprocessed cases (default: `<data>/.liverseg-cache`).
    pub cache: Option<PathBuf>,
    /// The network's number format: float32, or bfloat16 mixed precision
    /// (float32 master weights and optimiser, bfloat16 activations and
    /// convolutions, float32 losses; see [`Precision`]).
    pub precision: Precision,
    /// Deterministic cuDNN algorithms on a GPU (the same weights from the
    /// same seed on the same GPU, at some cost in speed), as PyTorch's
    /// `cudnn.deterministic`; the CPU is always deterministic.
    pub deterministic: bool,
    /// The older switch for bfloat16 (`"bf16": true`), read from
    /// configurations written before `precision`; never written.
    #[serde(rename = "bf16", skip_serializing)]
    pub legacy_bf16: bool,
    /// Stop after the epoch during which this many minutes of training have
    /// passed, or before an epoch that would end past them (0: no limit).
    pub max_minutes: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            data: PathBuf::new(),
            splits: None,
            fold: 0,
            out: PathBuf::from("runs/liver"),
            preset: "seed".into(),
            labels: String::new(),
            model: Architecture::MonaiUnet(UNetConfig::default()),
            loss: LossConfig::Dice(DiceLossConfig {
                activation: LossActivation::Sigmoid,
                squared_pred: true,
                ..DiceLossConfig::default()
            }),
            optimizer: OptimizerConfig::Adam {
                lr: 1e-5,
                weight_decay: 1e-5,
                betas: (0.9, 0.999),
                eps: 1e-8,
                amsgrad: true,
            },
            schedule: ScheduleConfig::Constant,
            epochs: 600,
            iterations_per_epoch: 0,
            batch_size: 1,
            grad_accumulation: 1,
            grad_clip: 0.0,
            val_every: 1,
            early_stopping: 0,
            sliding_window: SlidingWindowConfig {
                roi_size: [128, 128, 64],
                sw_batch_size: 1,
                ..SlidingWindowConfig::default()
            },
            seed: 0,
            device: "cpu".into(),
            prefetch: 2,
            loader_threads: 1,
            cache: None,
            precision: Precision::F32,
            deterministic: false,
            legacy_bf16: false,
            max_minutes: 0.0,
        }
    }
}

impl TrainConfig {
    /// Reads a TOML file; keys it leaves out keep their defaults.
    pub fn from_toml(text: &str) -> Result<TrainConfig> {
        toml::from_str(text).map_err(|e| Error::Config(format!("train config: {e}")))
    }

    /// The full configuration as TOML (`liverseg train --print-config`).
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string_pretty(self)
            .map_err(|e| Error::Config(format!("cannot print the config: {e}")))
    }

    /// Checks values that would fail later in the run.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.epochs == 0
            || self.batch_size == 0
            || self.grad_accumulation == 0
            || self.val_every == 0
        {
            return bad(
                "epochs, batch_size, grad_accumulation and val_every must be at least 1".into(),
            );
        }
        if self.grad_clip.is_nan() || self.grad_clip < 0.0 {
            return bad(format!("grad_clip {} must be ≥ 0", self.grad_clip));
        }
        let lr = self.optimizer.lr();
        if !(lr > 0.0 && lr.is_finite()) {
            return bad(format!("learning rate {lr} must be positive"));
        }
        if !Preset::BUILT_IN.contains(&self.preset.as_str())
            && !std::path::Path::new(&self.preset).is_file()
            && !self.preset.trim_start().starts_with('{')
        {
            return bad(format!(
                "preset {:?}: expected one of {:?} or a preset JSON file",
                self.preset,
                Preset::BUILT_IN
            ));
        }
        if self.device != "cpu" && !self.device.starts_with("cuda") {
            return bad(format!("device {:?}: expected cpu or cuda:N", self.device));
        }
        Ok(())
    }

    /// The classes this run learns from a dataset's `labels`. The
    /// `liver_tumour` of configurations written before selections existed
    /// reads as `liver,tumour` where the dataset has no label of that name.
    pub fn label_map(&self, labels: &[Label]) -> Result<LabelMap> {
        let resolve = |spec: &str| LabelMap::resolve(labels, spec);
        resolve(&self.labels)
            .or_else(|e| match self.labels.as_str() {
                "liver_tumour" => resolve("liver,tumour").map_err(|_| e),
                _ => Err(e),
            })
            .map_err(|e| Error::Config(format!("labels {:?}: {e}", self.labels)))
    }

    /// Sets the model's input channels.
    pub fn fit_model_inputs(&mut self, channels: usize) {
        match &mut self.model {
            Architecture::MonaiUnet(c) => c.in_channels = channels,
            Architecture::PlainUnet(c) => c.in_channels = channels,
        }
    }

    /// Sets the model's output channels (classes and background).
    pub fn fit_model_to_labels(&mut self, channels: usize) {
        let n = channels;
        match &mut self.model {
            Architecture::MonaiUnet(c) => c.out_channels = n,
            Architecture::PlainUnet(c) => c.out_channels = n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_round_trips_through_toml() {
        let c = TrainConfig::default();
        let text = c.to_toml().unwrap();
        assert!(
            text.contains("lr = 1e-5") || text.contains("lr = 0.00001"),
            "{text}"
        );
        assert_eq!(TrainConfig::from_toml(&text).unwrap(), c);
        c.validate().unwrap();
    }

    #[test]
    fn partial_files_keep_defaults_and_unknown_keys_fail() {
        let c = TrainConfig::from_toml("epochs = 4\nbatch_size = 2\n[optimizer]\nkind = \"sgd\"\nlr = 0.01\nmomentum = 0.99\nnesterov = true\nweight_decay = 3e-5\n").unwrap();
        assert_eq!(c.epochs, 4);
        assert_eq!(c.batch_size, 2);
        assert!(matches!(
            c.optimizer,
            OptimizerConfig::Sgd { nesterov: true, .. }
        ));
        assert_eq!(c.preset, "seed");
        assert!(TrainConfig::from_toml("epoch = 4").is_err());
    }

    #[test]
    fn labels_resolve_against_the_dataset_and_fit_the_model() {
        let task03 = vec![
            Label {
                value: 1,
                name: "liver".into(),
            },
            Label {
                value: 2,
                name: "cancer".into(),
            },
        ];
        let mut c = TrainConfig::default();
        assert_eq!(c.label_map(&task03).unwrap().names(), ["liver"]);
        // The serialised form of the old `liver,tumour` mode still reads.
        c.labels = "liver_tumour".into();
        let m = c.label_map(&task03).unwrap();
        assert_eq!(m.names(), ["liver", "cancer"]);
        c.fit_model_to_labels(m.channels());
        assert!(matches!(&c.model, Architecture::MonaiUnet(u) if u.out_channels == 3));
        c.labels = "spleen".into();
        let e = c.label_map(&task03).unwrap_err().to_string();
        assert!(
            e.contains("spleen") && e.contains("1 liver, 2 cancer"),
            "{e}"
        );
    }
}
