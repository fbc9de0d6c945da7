//! The training loop: batches from a prefetching loader (`loader.rs`),
//! loss, gradient accumulation and clipping, optimiser steps, validation
//! (`validate.rs`), checkpoints `last` and `best` and the metrics files
//! (`checkpoint.rs`), and progress reported as events (`progress.rs`).

use std::path::PathBuf;
use std::time::Instant;

use candle_core::{DType, Device, ModuleT, Tensor};
use candle_nn::{VarBuilder, VarMap};
use liverseg_infer::{Decision, device};
use liverseg_model::{
    Architecture, Compute, DiceCeConfig, PlainUNet, Precision, UNet, deep_supervision,
    dice_ce_loss, dice_loss,
};
use liverseg_transforms::Preset;
use serde::{Deserialize, Serialize};

mod checkpoint;
mod loader;
mod parallel;
mod progress;
mod setup;
mod validate;

pub use progress::{Progress, ProgressFn};

use crate::config::{LossConfig, TrainConfig};
use crate::data::{Cache, Case, Dataset};
use crate::distributed::{Group, Rendezvous, World};
use crate::optim::{Optimizer, clip_grad_norm, learning_rate, seeded_init, trainable};
use crate::{Error, Result};
use liverseg_io::decathlon::LabelMap;
use progress::Reporter;

/// One epoch's numbers, as `metrics.csv` and `metrics.jsonl` record them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss.
    pub train_loss: f64,
    /// Mean validation loss, when validated.
    pub val_loss: Option<f64>,
    /// Mean validation Dice over classes and cases, when validated.
    pub val_dice: Option<f64>,
    /// Mean validation Dice per foreground class.
    pub val_dice_per_class: Vec<f64>,
    /// Learning rate of the epoch.
    pub lr: f64,
    /// Wall time of the epoch's training part.
    pub epoch_seconds: f64,
    /// Training samples per second.
    pub samples_per_s: f64,
}

/// What `state.json` of a checkpoint holds besides the tensors.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunState {
    /// Epochs completed.
    pub epoch: usize,
    /// Optimiser steps taken.
    pub optimizer_steps: u64,
    /// Best validation Dice so far; `None` before the first validation.
    /// (Runs saved before this was optional wrote `null` for "none yet",
    /// which reads back as `None`.)
    pub best_dice: Option<f64>,
    /// Epoch of the best Dice.
    pub best_epoch: usize,
    /// Validations since the best one.
    pub stale_validations: usize,
    /// Every epoch so far.
    pub history: Vec<EpochRecord>,
    /// The configuration of the run.
    pub config: TrainConfig,
    /// The preset, with dataset statistics filled in.
    pub preset: Preset,
    /// How random streams are derived, so a resumed run continues them.
    pub rng: String,
}

/// The result of a run.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Epochs completed.
    pub epochs: usize,
    /// Best validation Dice (`None` when the run never validated).
    pub best_dice: Option<f64>,
    /// Epoch of the best Dice.
    pub best_epoch: usize,
    /// The run folder.
    pub out: PathBuf,
    /// Why training stopped.
    pub stopped: String,
}

enum Net {
    Unet(Box<UNet>),
    Plain(Box<PlainUNet>),
}

impl Net {
    fn build(arch: &Architecture, vb: VarBuilder<'_>) -> Result<Net> {
        Ok(match arch {
            Architecture::MonaiUnet(c) => Net::Unet(Box::new(UNet::new(c, vb)?)),
            Architecture::PlainUnet(c) => Net::Plain(Box::new(PlainUNet::new(c, vb)?)),
        })
    }

    /// Training outputs, full resolution first (deep supervision adds
    /// coarser ones for the plain U-Net), computed as `compute` says and
    /// returned as float32 for the losses.
    fn forward_train(&self, x: &Tensor, compute: Compute) -> Result<Vec<Tensor>> {
        Ok(compute.run_all(x, |x| match self {
            Net::Unet(n) => n.forward_t(x, true).map(|y| vec![y]),
            Net::Plain(n) => n.forward_all(x, true),
        })?)
    }

    fn forward_eval(&self, x: &Tensor, compute: Compute) -> candle_core::Result<Tensor> {
        compute.run(x, |x| match self {
            Net::Unet(n) => n.forward_t(x, false),
            Net::Plain(n) => n.forward_t(x, false),
        })
    }
}

/// Everything a running training needs.
pub struct Trainer {
    cfg: TrainConfig,
    device: Device,
    varmap: VarMap,
    net: Net,
    opt: Optimizer,
    preset: Preset,
    dataset: Dataset,
    labels: LabelMap,
    /// Per channel: whether prediction keeps only the largest component.
    one_piece: Vec<bool>,
    cache: Cache,
    state: RunState,
    progress: Reporter,
    /// The other processes of a data-parallel run (`None` alone).
    group: Option<Group>,
    /// How the network computes on `device` (`Precision::on`: float32
    /// activations with bfloat16 convolutions for `bf16` on the CPU).
    compute: Compute,
}

impl std::fmt::Debug for Trainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("out", &self.cfg.out)
            .field("epoch", &self.state.epoch)
            .finish_non_exhaustive()
    }
}

impl Trainer {
    /// Sets up a run: dataset, preset (with statistics), cache, network
    /// (seeded initialisation, or the `last` checkpoint with `resume`),
    /// optimiser. Refuses to start over an existing run unless `resume` or
    /// `force`.
    pub fn new(mut cfg: TrainConfig, resume: bool, force: bool) -> Result<Trainer> {
        cfg.validate()?;
        if cfg.legacy_bf16 {
            cfg.precision = Precision::Bf16;
            cfg.legacy_bf16 = false;
        }
        liverseg_model::set_cudnn_deterministic(cfg.deterministic);
        let world = World::from_env()?;
        let last = cfg.out.join("last");
        // Finish a checkpoint swap a kill interrupted, and clear what killed
        // runs left behind, before looking for the checkpoint (rank 0
        // alone: the others meet it only once it is done).
        if world.is_writer() {
            liverseg_io::recover(&cfg.out)?;
        }
        let device = device(&parallel_device(&cfg.device, world))?;
        let compute = cfg.precision.on(&device);
        let group = if world.size > 1 {
            let token = cfg.to_toml()?;
            Some(Group::connect(
                world,
                &Rendezvous::from_env()?,
                &token,
                &device,
            )?)
        } else {
            None
        };
        if !resume && last.exists() && !force {
            return Err(Error::RunExists {
                path: cfg.out.clone(),
            });
        }
        if resume && !last.join("state.json").is_file() {
            return Err(Error::Data {
                path: last,
                reason: "no checkpoint to resume from".into(),
            });
        }
        std::fs::create_dir_all(&cfg.out)
            .map_err(|e| Error::io(&cfg.out, "cannot create the run folder", e))?;
        let dataset = Dataset::open(&cfg.data, cfg.splits.as_deref(), cfg.fold)?;
        tracing::info!(
            train = dataset.train.len(),
            val = dataset.val.len(),
            split = %dataset.split_source,
            "dataset"
        );
        let labels = cfg.label_map(&dataset.labels)?;
        let inputs = dataset.channels.len().max(1);
        if cfg.model.in_channels() != inputs {
            tracing::info!(
                channels = inputs,
                modalities = dataset.channels.join(", "),
                "the network's input channels follow the dataset"
            );
            cfg.fit_model_inputs(inputs);
        }
        if cfg.model.out_channels() != labels.channels() {
            tracing::info!(
                channels = labels.channels(),
                "the network's output channels follow the classes"
            );
            cfg.fit_model_to_labels(labels.channels());
        }
        let dropped: Vec<&str> = dataset
            .labels
            .iter()
            .filter(|l| !labels.classes.iter().any(|c| c.sources.contains(&l.value)))
            .map(|l| l.name.as_str())
            .collect();
        tracing::info!(classes = %labels.describe(), "labels");
        if !dropped.is_empty() {
            tracing::warn!(
                labels = dropped.join(", "),
                "labels not selected are trained as background"
            );
        }
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
        let net = Net::build(&cfg.model, vb)?;
        let (state, preset) = if resume {
            let state = checkpoint::read_state(&cfg.out)?;
            let weights = cfg.out.join("last/model.safetensors");
            let tensors = checkpoint::read_tensors(&weights, &device)?;
            liverseg_model::check_parameters(
                &weights,
                &cfg.model,
                &tensors
                    .iter()
                    .map(|(k, t)| (k.clone(), t.dims().to_vec()))
                    .collect(),
            )?;
            for (name, var) in varmap
                .data()
                .lock()
                .map_err(|_| Error::Config("variable map poisoned".into()))?
                .iter()
            {
                if let Some(t) = tensors.get(name) {
                    var.set(t)?;
                }
            }
            let preset = state.preset.clone();
            (state, preset)
        } else {
            seeded_init(&varmap, cfg.seed)?;
            let loaded = Preset::load(&cfg.preset)?;
            // CT keeps the preset only when every channel is CT.
            let modality = dataset
                .channels
                .iter()
                .find(|m| !m.trim().eq_ignore_ascii_case("ct"))
                .unwrap_or(&dataset.channels[0]);
            let mut preset = loaded.for_modality(modality);
            if preset != loaded {
                tracing::info!(
                    modality = %modality,
                    preset = %preset.name,
                    "intensity normalisation chosen from the modality"
                );
            }
            setup::fill_ct_statistics(&mut preset, &dataset.train, &labels)?;
            let state = RunState {
                epoch: 0,
                optimizer_steps: 0,
                best_dice: None,
                best_epoch: 0,
                stale_validations: 0,
                history: Vec::new(),
                config: cfg.clone(),
                preset: preset.clone(),
                rng: format!(
                    "ChaCha8 streams keyed by (seed {}, epoch, sample): epoch order and augmentation are functions of these alone",
                    cfg.seed
                ),
            };
            (state, preset)
        };
        let mut opt = Optimizer::new(cfg.optimizer, trainable(&varmap)?);
        if resume {
            let p = cfg.out.join("last/optimizer.safetensors");
            let tensors = checkpoint::read_tensors(&p, &device)?;
            opt.load_state(&tensors, state.optimizer_steps)
                .map_err(|e| Error::Data {
                    path: p,
                    reason: format!("unreadable optimiser state: {e}"),
                })?;
            // The metrics files hold exactly the checkpoint's epochs.
            if world.is_writer() {
                checkpoint::write_metrics(&cfg.out, &labels, &state.history)?;
            }
        }
        let cache_dir = cfg
            .cache
            .clone()
            .unwrap_or_else(|| dataset.root.join(".liverseg-cache"));
        let cache = Cache::new(cache_dir, &preset, labels.clone(), dataset.channels.len())?;
        // A resumed run keeps its own epochs count from the new config.
        let mut state = state;
        state.config.epochs = cfg.epochs;
        Ok(Trainer {
            cfg,
            device,
            varmap,
            net,
            opt,
            preset,
            dataset,
            one_piece: (0..labels.channels()).map(|k| k > 0).collect(),
            labels,
            cache,
            state,
            progress: Reporter::default(),
            group,
            compute,
        })
    }

    /// Sends the run's progress events to `f` (by default they go
    /// nowhere).
    pub fn set_progress(&mut self, f: ProgressFn) {
        self.progress = Reporter::new(f);
    }

    /// Preprocesses every case into the cache (each case once), and finds
    /// which classes come in one piece in every training case
    /// ([`one_piece`]).
    fn warm_cache(&mut self) -> Result<()> {
        let cases: Vec<&Case> = self.dataset.train.iter().chain(&self.dataset.val).collect();
        self.progress.report(Progress::Stage {
            name: "preprocess",
            steps: cases.len() as u64,
        });
        let mut whole = vec![true; self.labels.channels()];
        whole[0] = false;
        let n_train = self.dataset.train.len();
        for (i, c) in cases.into_iter().enumerate() {
            let prepared = self.cache.get(c, &self.preset)?;
            if i < n_train {
                for (k, w) in whole.iter_mut().enumerate().skip(1) {
                    *w &= one_piece(&prepared.label, k as u8);
                }
            }
            self.progress.report(Progress::Step { note: None });
        }
        self.progress.report(Progress::StageDone);
        tracing::info!(
            classes = ?self.labels.names().iter().zip(&whole[1..]).collect::<Vec<_>>(),
            "largest connected component kept at prediction"
        );
        self.one_piece = whole;
        Ok(())
    }

    /// Trains until the configured epoch count (or early stopping).
    pub fn run(mut self) -> Result<Summary> {
        self.warm_cache()?;
        let writer = self.world().is_writer();
        if writer {
            let toml = self.cfg.to_toml()?;
            liverseg_io::write_file_atomic(
                &self.cfg.out.join("config.toml"),
                liverseg_io::Overwrite::Allow,
                |w| std::io::Write::write_all(w, toml.as_bytes()),
            )?;
        }
        let mut stopped = "finished all epochs".to_string();
        let started = Instant::now();
        let mut slowest_epoch = 0.0f64;
        while self.state.epoch < self.cfg.epochs {
            if self.cfg.max_minutes > 0.0 {
                let budget = self.cfg.max_minutes * 60.0;
                let spent = started.elapsed().as_secs_f64();
                if spent + slowest_epoch > budget {
                    stopped = format!("time budget of {} min reached", self.cfg.max_minutes);
                    break;
                }
            }
            let epoch_started = Instant::now();
            let epoch = self.state.epoch;
            let lr = learning_rate(
                &self.cfg.schedule,
                self.cfg.optimizer.lr(),
                epoch,
                self.cfg.epochs,
            );
            let t0 = Instant::now();
            let (train_loss, samples) = self.train_epoch(epoch, lr)?;
            let seconds = t0.elapsed().as_secs_f64();
            // The last epoch the time budget allows is always validated, so
            // a budgeted run ends with a `best` checkpoint.
            let out_of_time = self.cfg.max_minutes > 0.0
                && started.elapsed().as_secs_f64() + slowest_epoch.max(seconds)
                    > self.cfg.max_minutes * 60.0;
            let validate = (epoch + 1).is_multiple_of(self.cfg.val_every)
                || epoch + 1 == self.cfg.epochs
                || out_of_time;
            let (val_loss, val_dice, per_class) = if validate {
                let (l, d, pc) = self.validate()?;
                (Some(l), Some(d), pc)
            } else {
                (None, None, Vec::new())
            };
            let record = EpochRecord {
                epoch: epoch + 1,
                train_loss,
                val_loss,
                val_dice,
                val_dice_per_class: per_class,
                lr,
                epoch_seconds: seconds,
                samples_per_s: samples as f64 / seconds.max(1e-9),
            };
            tracing::info!(
                epoch = epoch + 1,
                train_loss = format!("{train_loss:.4}"),
                val_dice = ?val_dice.map(|d| format!("{d:.4}")),
                lr,
                seconds = format!("{seconds:.1}"),
                "epoch done"
            );
            self.state.history.push(record.clone());
            self.state.epoch = epoch + 1;
            self.state.optimizer_steps = self.opt.steps();
            let mut improved = false;
            if let Some(d) = val_dice {
                if self.state.best_dice.is_none_or(|best| d > best) {
                    self.state.best_dice = Some(d);
                    self.state.best_epoch = epoch + 1;
                    self.state.stale_validations = 0;
                    improved = true;
                } else {
                    self.state.stale_validations += 1;
                }
            }
            // `best` before `last`: see checkpoint.rs. Rank 0 alone writes.
            if writer {
                if improved {
                    self.save_checkpoint("best")?;
                }
                self.save_checkpoint("last")?;
                self.write_metrics()?;
            }
            self.progress.report(Progress::Epoch {
                record: &record,
                history: &self.state.history,
            });
            slowest_epoch = slowest_epoch.max(epoch_started.elapsed().as_secs_f64());
            if self.cfg.early_stopping > 0
                && self.state.stale_validations >= self.cfg.early_stopping
            {
                stopped = format!(
                    "early stopping: {} validations without a better Dice",
                    self.state.stale_validations
                );
                break;
            }
        }
        tracing::info!(
            rank = self.world().rank,
            fingerprint = format!("{:016x}", self.weights_fingerprint()?),
            "final weights"
        );
        Ok(Summary {
            epochs: self.state.epoch,
            best_dice: self.state.best_dice,
            best_epoch: self.state.best_epoch,
            out: self.cfg.out.clone(),
            stopped,
        })
    }

    /// The configured loss of the network's outputs (deep supervision
    /// when there are several) against the class indices `y`.
    fn loss(&self, outputs: &[Tensor], y: &Tensor) -> Result<Tensor> {
        let one = |logits: &Tensor, target: &Tensor| -> liverseg_model::Result<Tensor> {
            match &self.cfg.loss {
                LossConfig::Dice(c) => dice_loss(logits, target, c),
                LossConfig::DiceCe {
                    dice,
                    ce_weights,
                    lambda_dice,
                    lambda_ce,
                } => dice_ce_loss(
                    logits,
                    target,
                    &DiceCeConfig {
                        dice: *dice,
                        class_weights: (!ce_weights.is_empty()).then(|| ce_weights.clone()),
                        lambda_dice: *lambda_dice,
                        lambda_ce: *lambda_ce,
                    },
                ),
            }
        };
        Ok(deep_supervision(outputs, y, one)?)
    }

    fn train_epoch(&mut self, epoch: usize, lr: f64) -> Result<(f64, usize)> {
        let rx = self.loader(epoch);
        let stage = format!("epoch {}", epoch + 1);
        self.progress.report(Progress::Stage {
            name: &stage,
            steps: rx.batches as u64,
        });
        let accum = self.cfg.grad_accumulation;
        let n_params = self.opt.params().len();
        let mut grads: Vec<Option<Tensor>> = vec![None; n_params];
        let mut pending = 0;
        let (mut loss_sum, mut count, mut samples) = (0.0, 0usize, 0usize);
        for batch in rx {
            let batch = batch?;
            samples += batch.x.dims()[0];
            let outputs = self.net.forward_train(&batch.x, self.compute)?;
            let loss = self.loss(&outputs, &batch.y)?;
            let value = f64::from(loss.to_dtype(DType::F32)?.to_scalar::<f32>()?);
            if !value.is_finite() {
                let last = self.cfg.out.join("last");
                let checkpoint = if last.join("state.json").is_file() {
                    format!(
                        "the last good checkpoint is {} (epoch {})",
                        last.display(),
                        self.state.epoch
                    )
                } else {
                    "there is no checkpoint yet".to_string()
                };
                return Err(Error::Diverged(format!(
                    "loss is {value} at epoch {}, batch {} (cases {}): lower the learning rate or check those cases; {checkpoint}",
                    epoch + 1,
                    count + 1,
                    batch.cases.join(", ")
                )));
            }
            loss_sum += value;
            count += 1;
            let scaled = if accum > 1 {
                (loss / accum as f64)?
            } else {
                loss
            };
            let store = scaled.backward()?;
            for ((_, var), g) in self.opt.params().iter().zip(grads.iter_mut()) {
                if let Some(new) = store.get(var.as_tensor()) {
                    let new = new.detach();
                    *g = Some(match g.take() {
                        None => new,
                        Some(acc) => (acc + new)?.detach(),
                    });
                }
            }
            pending += 1;
            if pending == accum {
                self.apply(&mut grads, lr)?;
                pending = 0;
            }
            let note = format!("loss {:.4}", loss_sum / count as f64);
            self.progress.report(Progress::Step { note: Some(&note) });
        }
        if pending > 0 {
            self.apply(&mut grads, lr)?;
        }
        self.progress.report(Progress::StageDone);
        if count == 0 {
            return Err(Error::Config("the epoch produced no batch".into()));
        }
        // Over every rank: the epoch's mean loss and its samples.
        let mut sums = [loss_sum, count as f64, samples as f64];
        self.sum_over_ranks(&mut sums)?;
        Ok((sums[0] / sums[1], sums[2] as usize))
    }

    fn apply(&mut self, grads: &mut [Option<Tensor>], lr: f64) -> Result<()> {
        self.sync_gradients(grads)?;
        if self.cfg.grad_clip > 0.0 {
            clip_grad_norm(grads, self.cfg.grad_clip)?;
        }
        self.opt.step(grads, lr)?;
        self.sync_buffers()?;
        for g in grads.iter_mut() {
            *g = None;
        }
        Ok(())
    }
}

/// The device of one rank: a bare `cuda` names the rank's local GPU
/// (`cuda:LOCAL_RANK`, for launchers that show every GPU to every process);
/// `cuda:N` and `cpu` are kept (srun's `--gpus-per-task` shows each task
/// its own GPU as `cuda:0`).
fn parallel_device(name: &str, world: World) -> String {
    if name == "cuda" && world.size > 1 {
        format!("cuda:{}", world.local_rank)
    } else {
        name.to_string()
    }
}

/// Trains with `cfg` (see [`Trainer::new`]).
pub fn train(cfg: TrainConfig, resume: bool, force: bool) -> Result<Summary> {
    Trainer::new(cfg, resume, force)?.run()
}

/// The decision matching a loss configuration: a model trained with a
/// sigmoid Dice loss (the tutorial) scores each class on its own, so an
/// argmax would let the independently trained background channel win and
/// halve the Dice; a softmax model takes the argmax.
pub fn decision_of(loss: &LossConfig) -> Decision {
    let activation = match loss {
        LossConfig::Dice(c) => c.activation,
        LossConfig::DiceCe { dice, .. } => dice.activation,
    };
    if activation == liverseg_model::LossActivation::Sigmoid {
        Decision::Sigmoid
    } else {
        Decision::Argmax
    }
}

/// Whether class `k` of a training label is in one piece: absent, or its
/// largest 26-connected component holds at least 90% of its voxels
/// (resampling may chip off a few voxels; a pair of kidneys is two halves).
fn one_piece(label: &liverseg_io::Volume<u8>, k: u8) -> bool {
    let mask = label.map(|v| u8::from(v == k));
    let sizes = liverseg_transforms::postprocess::component_sizes(
        &mask,
        liverseg_transforms::postprocess::Connectivity::Corners26,
    );
    let total: usize = sizes.iter().sum();
    sizes.first().is_none_or(|&big| big * 10 >= total * 9)
}
