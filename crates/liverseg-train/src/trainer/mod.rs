//! The training loop: batches from a prefetching loader, loss, gradient
//! accumulation and clipping, optimiser steps, validation with sliding-
//! window inference, checkpoints `last` and `best`, logs and curves.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, sync_channel};
use std::time::Instant;

use candle_core::{DType, Device, ModuleT, Tensor};
use candle_nn::{VarBuilder, VarMap};
use liverseg_model::{
    Architecture, DiceCeConfig, PlainUNet, UNet, deep_supervision_weights, dice_ce_loss, dice_loss,
    sliding_window_inference,
};
use liverseg_transforms::{Pair, Preset, Step, case_rng, intensity::CtNormalization};
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

mod checkpoint;

use crate::config::{LabelMode, LossConfig, TrainConfig};
use crate::data::{Cache, Case, Dataset, Prepared};
use crate::optim::{Optimizer, clip_grad_norm, learning_rate, seeded_init, trainable};
use crate::{Error, Result};
use liverseg_infer::{Decision, device, volumes_to_tensor};

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
    Plain(PlainUNet),
}

impl Net {
    fn build(arch: &Architecture, vb: VarBuilder<'_>) -> Result<Net> {
        Ok(match arch {
            Architecture::MonaiUnet(c) => Net::Unet(Box::new(UNet::new(c, vb)?)),
            Architecture::PlainUnet(c) => Net::Plain(PlainUNet::new(c, vb)?),
        })
    }

    /// Training outputs, full resolution first (deep supervision adds
    /// coarser ones for the plain U-Net).
    fn forward_train(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        Ok(match self {
            Net::Unet(n) => vec![n.forward_t(x, true)?],
            Net::Plain(n) => n.forward_all(x, true)?,
        })
    }

    fn forward_eval(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Net::Unet(n) => n.forward_t(x, false),
            Net::Plain(n) => n.forward_t(x, false),
        }
    }
}

/// A batch: images `(B, 1, X, Y, Z)` and class indices `(B, 1, X, Y, Z)`,
/// and the names of the cases they came from (for messages).
struct Batch {
    x: Tensor,
    y: Tensor,
    cases: Vec<String>,
}

/// The batches of one epoch, taken round-robin from the loader threads'
/// queues (so in plan order); ends when a thread's queue closes.
struct Loader {
    queues: Vec<Receiver<Result<Batch>>>,
    next: usize,
    /// Batches in the epoch.
    batches: usize,
}

impl Iterator for Loader {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        let q = &self.queues[self.next % self.queues.len()];
        self.next += 1;
        q.recv().ok()
    }
}

/// Resolves `preset` (a built-in name, see [`Preset::BUILT_IN`], or a JSON
/// file).
pub fn load_preset(name: &str) -> Result<Preset> {
    match name {
        n if Preset::BUILT_IN.contains(&n) => Ok(Preset::by_name(n)?),
        path => {
            let text = std::fs::read_to_string(path).map_err(|e| Error::Data {
                path: PathBuf::from(path),
                reason: format!(
                    "not one of {:?} or a readable preset file: {e}",
                    Preset::BUILT_IN
                ),
            })?;
            serde_json::from_str(&text).map_err(|e| Error::Data {
                path: PathBuf::from(path),
                reason: format!("not a preset: {e}"),
            })
        }
    }
}

/// Fills nnU-Net CT normalisation statistics from the training cases'
/// labelled voxels (every 7th foreground voxel of each case), as nnU-Net's
/// planning does, so every case is normalised alike.
fn fill_ct_statistics(preset: &mut Preset, cases: &[Case], labels: LabelMode) -> Result<()> {
    let needs = preset
        .steps
        .iter()
        .any(|s| matches!(s, Step::CtNormalize { stats: None }));
    if !needs {
        return Ok(());
    }
    let opts = liverseg_io::nifti::ReadOptions::default();
    let mut samples = Vec::new();
    for c in cases {
        let image: liverseg_io::Volume<f32> = liverseg_io::nifti::read(&c.image, &opts)?;
        crate::data::check_finite(&c.image, &image)?;
        let label: liverseg_io::Volume<u8> = liverseg_io::nifti::read(&c.label, &opts)?;
        crate::data::check_label_values(&c.label, &label, labels)?;
        samples.extend(
            image
                .data()
                .iter()
                .zip(label.data())
                .filter(|(_, l)| **l > 0)
                .step_by(7)
                .map(|(v, _)| *v),
        );
    }
    let stats = CtNormalization::from_samples(&mut samples)?;
    tracing::info!(
        ?stats,
        "CT normalisation statistics from the training cases"
    );
    for s in &mut preset.steps {
        if let Step::CtNormalize { stats: st @ None } = s {
            *st = Some(stats);
        }
    }
    Ok(())
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
    cache: Cache,
    state: RunState,
    progress: bool,
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
    pub fn new(cfg: TrainConfig, resume: bool, force: bool) -> Result<Trainer> {
        cfg.validate()?;
        if cfg.bf16 {
            return Err(Error::Config(
                "bf16 mixed precision is not implemented yet (it needs a CUDA session to validate)"
                    .into(),
            ));
        }
        let last = cfg.out.join("last");
        // Finish a checkpoint swap a kill interrupted, and clear what killed
        // runs left behind, before looking for the checkpoint.
        liverseg_io::recover(&cfg.out)?;
        if !resume && last.exists() && !force {
            return Err(Error::Data {
                path: cfg.out.clone(),
                reason:
                    "already holds a run: pass --resume to continue it or --force to start over"
                        .into(),
            });
        }
        if resume && !last.join("state.json").is_file() {
            return Err(Error::Data {
                path: last,
                reason: "no checkpoint to resume from".into(),
            });
        }
        std::fs::create_dir_all(&cfg.out).map_err(|e| Error::Data {
            path: cfg.out.clone(),
            reason: format!("cannot create the run folder: {e}"),
        })?;
        let device = device(&cfg.device)?;
        let dataset = Dataset::open(&cfg.data, cfg.splits.as_deref(), cfg.fold)?;
        tracing::info!(
            train = dataset.train.len(),
            val = dataset.val.len(),
            split = %dataset.split_source,
            "dataset"
        );
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
            let mut preset = load_preset(&cfg.preset)?;
            fill_ct_statistics(&mut preset, &dataset.train, cfg.labels)?;
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
            checkpoint::write_metrics(&cfg.out, cfg.labels, &state.history)?;
        }
        let cache_dir = cfg
            .cache
            .clone()
            .unwrap_or_else(|| dataset.root.join(".liverseg-cache"));
        let cache = Cache::new(cache_dir, &preset, cfg.labels)?;
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
            cache,
            state,
            progress: std::io::stderr().is_terminal(),
        })
    }

    /// Turns the per-epoch progress bar on or off (default: on when stderr
    /// is a terminal).
    pub fn set_progress(&mut self, on: bool) {
        self.progress = on;
    }

    /// Preprocesses every case into the cache (each case once).
    fn warm_cache(&self) -> Result<()> {
        let cases: Vec<&Case> = self.dataset.train.iter().chain(&self.dataset.val).collect();
        let bar = self.bar(cases.len() as u64, "preprocess");
        for c in cases {
            self.cache.get(c, &self.preset)?;
            bar.inc(1);
        }
        bar.finish_and_clear();
        Ok(())
    }

    fn bar(&self, len: u64, what: &str) -> indicatif::ProgressBar {
        if !self.progress {
            return indicatif::ProgressBar::hidden();
        }
        let bar = indicatif::ProgressBar::new(len);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{prefix:>12} [{bar:30}] {pos}/{len} {msg} ({elapsed}, eta {eta})",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(what.to_string());
        bar
    }

    /// Trains until the configured epoch count (or early stopping).
    pub fn run(mut self) -> Result<Summary> {
        self.warm_cache()?;
        std::fs::write(self.cfg.out.join("config.toml"), self.cfg.to_toml()?).map_err(|e| {
            Error::Data {
                path: self.cfg.out.join("config.toml"),
                reason: e.to_string(),
            }
        })?;
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
            // `best` before `last`: see checkpoint.rs.
            if improved {
                self.save_checkpoint("best")?;
            }
            self.save_checkpoint("last")?;
            self.write_metrics()?;
            if validate {
                crate::plot::draw_curves(&self.cfg.out.join("curves.png"), &self.state.history)?;
            }
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
        Ok(Summary {
            epochs: self.state.epoch,
            best_dice: self.state.best_dice,
            best_epoch: self.state.best_epoch,
            out: self.cfg.out.clone(),
            stopped,
        })
    }

    /// The epoch's sample list: (case index, sample number), in order.
    fn epoch_plan(&self, epoch: usize) -> Vec<(usize, u64)> {
        let n = self.dataset.train.len();
        let mut rng = case_rng(self.cfg.seed, epoch as u64, u64::MAX);
        if self.preset.augment.is_empty() || self.cfg.iterations_per_epoch == 0 {
            let mut order: Vec<usize> = (0..n).collect();
            order.shuffle(&mut rng);
            order
                .into_iter()
                .enumerate()
                .map(|(s, c)| (c, s as u64))
                .collect()
        } else {
            use rand::Rng;
            let total =
                self.cfg.iterations_per_epoch * self.cfg.batch_size * self.cfg.grad_accumulation;
            (0..total)
                .map(|s| (rng.random_range(0..n), s as u64))
                .collect()
        }
    }

    /// Starts the loader threads for `epoch`: `loader_threads` threads,
    /// thread `w` preparing batches `w`, `w + n`, … (rayon across a batch's
    /// samples) into its own bounded queue; [`Loader`] takes them back in
    /// order, so the batches do not depend on the thread count.
    fn loader(&self, epoch: usize) -> Loader {
        let plan = std::sync::Arc::new(self.epoch_plan(epoch));
        let threads = self.cfg.loader_threads.max(1);
        let mut queues = Vec::with_capacity(threads);
        for w in 0..threads {
            let (tx, rx) = sync_channel(self.cfg.prefetch.div_ceil(threads).max(1));
            queues.push(rx);
            self.spawn_loader(epoch, plan.clone(), w, threads, tx);
        }
        Loader {
            queues,
            next: 0,
            batches: plan.len().div_ceil(self.cfg.batch_size.max(1)),
        }
    }

    /// One loader thread: batches `w`, `w + threads`, … of `plan`.
    fn spawn_loader(
        &self,
        epoch: usize,
        plan: std::sync::Arc<Vec<(usize, u64)>>,
        w: usize,
        threads: usize,
        tx: std::sync::mpsc::SyncSender<Result<Batch>>,
    ) {
        let cache = self.cache.clone();
        let preset = self.preset.clone();
        let cases = self.dataset.train.clone();
        let (batch_size, seed, device) = (self.cfg.batch_size, self.cfg.seed, self.device.clone());
        std::thread::spawn(move || {
            use rayon::prelude::*;
            for chunk in plan.chunks(batch_size).skip(w).step_by(threads) {
                let samples: Result<Vec<Prepared>> = chunk
                    .par_iter()
                    .map(|&(c, s)| {
                        let p = cache.get(&cases[c], &preset)?;
                        if preset.augment.is_empty() {
                            return Ok(p);
                        }
                        let pair = Pair::new(p.image, Some(p.label))?;
                        let mut rng = case_rng(seed, epoch as u64, s);
                        let out = preset
                            .augment(pair, &mut rng)?
                            .into_iter()
                            .next()
                            .ok_or_else(|| {
                                Error::Config("augmentation produced no sample".into())
                            })?;
                        let label = out.label.ok_or_else(|| {
                            Error::Config("augmentation dropped the label".into())
                        })?;
                        Ok(Prepared {
                            image: out.image,
                            label,
                            original: p.original,
                        })
                    })
                    .collect();
                let batch = samples.and_then(|s| {
                    let images: Vec<_> = s.iter().map(|p| &p.image).collect();
                    let labels: Vec<_> = s.iter().map(|p| &p.label).collect();
                    Ok(Batch {
                        x: volumes_to_tensor(&images, &device)?,
                        y: volumes_to_tensor(&labels, &device)?,
                        cases: chunk.iter().map(|&(c, _)| cases[c].name.clone()).collect(),
                    })
                });
                let failed = batch.is_err();
                if tx.send(batch).is_err() || failed {
                    return;
                }
            }
        });
    }

    fn loss(&self, outputs: &[Tensor], y: &Tensor) -> Result<Tensor> {
        let one = |logits: &Tensor, target: &Tensor| -> Result<Tensor> {
            Ok(match &self.cfg.loss {
                LossConfig::Dice(c) => dice_loss(logits, target, c)?,
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
                )?,
            })
        };
        if outputs.len() == 1 {
            return one(&outputs[0], y);
        }
        // Deep supervision: each coarser output against the target taken
        // at every f-th voxel, weighted as nnU-Net does.
        let weights = deep_supervision_weights(outputs.len());
        let (_, _, fx, _, _) = outputs[0].dims5()?;
        let mut total: Option<Tensor> = None;
        for (o, w) in outputs.iter().zip(weights) {
            if w == 0.0 {
                continue;
            }
            let (_, _, ox, _, _) = o.dims5()?;
            let f = fx / ox.max(1);
            let t = if f > 1 { subsample(y, f)? } else { y.clone() };
            let l = (one(o, &t)? * w)?;
            total = Some(match total {
                None => l,
                Some(acc) => (acc + l)?,
            });
        }
        total.ok_or_else(|| Error::Config("no deep-supervision output has weight".into()))
    }

    fn train_epoch(&mut self, epoch: usize, lr: f64) -> Result<(f64, usize)> {
        let rx = self.loader(epoch);
        let bar = self.bar(rx.batches as u64, &format!("epoch {}", epoch + 1));
        let accum = self.cfg.grad_accumulation;
        let n_params = self.opt.params().len();
        let mut grads: Vec<Option<Tensor>> = vec![None; n_params];
        let mut pending = 0;
        let (mut loss_sum, mut count, mut samples) = (0.0, 0usize, 0usize);
        for batch in rx {
            let batch = batch?;
            samples += batch.x.dims()[0];
            let outputs = self.net.forward_train(&batch.x)?;
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
            bar.inc(1);
            bar.set_message(format!("loss {:.4}", loss_sum / count as f64));
        }
        if pending > 0 {
            self.apply(&mut grads, lr)?;
        }
        bar.finish_and_clear();
        if count == 0 {
            return Err(Error::Config("the epoch produced no batch".into()));
        }
        Ok((loss_sum / count as f64, samples))
    }

    fn apply(&mut self, grads: &mut [Option<Tensor>], lr: f64) -> Result<()> {
        if self.cfg.grad_clip > 0.0 {
            clip_grad_norm(grads, self.cfg.grad_clip)?;
        }
        self.opt.step(grads, lr)?;
        for g in grads.iter_mut() {
            *g = None;
        }
        Ok(())
    }

    /// Mean loss and Dice over the validation cases: sliding-window
    /// inference over each whole preprocessed volume, classes decided as
    /// prediction decides them ([`Decision::labels`]), Dice per foreground
    /// class through `metrics::dice` (a class absent from both prediction
    /// and label counts as 1).
    fn validate(&self) -> Result<(f64, f64, Vec<f64>)> {
        let classes = self.cfg.labels.classes();
        let mut per_class = vec![0.0; classes - 1];
        let mut loss_sum = 0.0;
        let bar = self.bar(self.dataset.val.len() as u64, "validate");
        for c in &self.dataset.val {
            let p = self.cache.get(c, &self.preset)?;
            let x = volumes_to_tensor(&[&p.image], &self.device)?;
            let y = volumes_to_tensor(&[&p.label], &self.device)?;
            let logits =
                sliding_window_inference(&x, &self.cfg.sliding_window, &mut |w: &Tensor| {
                    Ok(self.net.forward_eval(w)?)
                })?;
            loss_sum += f64::from(
                self.loss(std::slice::from_ref(&logits), &y)?
                    .to_scalar::<f32>()?,
            );
            // The classes as prediction decides them, in the tensor's
            // element order, like the label.
            let truth: Vec<u8> = y
                .flatten_all()?
                .to_vec1::<f32>()?
                .into_iter()
                .map(|v| v as u8)
                .collect();
            let pred = decision_of(&self.cfg.loss).labels(&logits)?;
            for (k, slot) in per_class.iter_mut().enumerate() {
                *slot += crate::metrics::dice(&pred, &truth, &[k as u8 + 1])?;
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
        let n = self.dataset.val.len().max(1) as f64;
        let per_class: Vec<f64> = per_class.iter().map(|d| d / n).collect();
        let mean = per_class.iter().sum::<f64>() / per_class.len().max(1) as f64;
        Ok((loss_sum / n, mean, per_class))
    }
}

/// Every `f`-th voxel of `(N, C, X, Y, Z)` along each spatial axis.
fn subsample(y: &Tensor, f: usize) -> Result<Tensor> {
    let (n, c, x, yy, z) = y.dims5()?;
    let t = y
        .reshape(vec![n * c, x / f, f, yy / f, f, z / f, f])?
        .narrow(2, 0, 1)?
        .narrow(4, 0, 1)?
        .narrow(6, 0, 1)?
        .reshape((n, c, x / f, yy / f, z / f))?;
    Ok(t)
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
