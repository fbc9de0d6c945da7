//! Prediction on one CT: the model's own preprocessing, sliding-window
//! inference (optionally with mirror test-time augmentation), class
//! probabilities mapped back onto the input grid, post-processing, and the
//! liver volume.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{Device, ModuleT, Tensor};
use liverseg_io::Volume;
use liverseg_io::nifti::Ct;
use liverseg_model::{
    BlendMode, Compute, Precision, SlidingWindowConfig, mirror_tta, sliding_window_inference,
};
use liverseg_transforms::postprocess::{
    Connectivity, fill_holes, largest_component_per_label, on_foreground_box,
};
use liverseg_transforms::{Grid, Preprocessed, Preset, Step};
use serde::{Deserialize, Serialize};

use crate::{Error, ModelCard, Result, channels_to_tensor, tensor_to_volume};
use liverseg_io::decathlon::is_lesion;

/// How the input is brought to the model's grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PreprocessMode {
    /// The preset recorded in the model file (the `seed` preset for a
    /// model imported from MONAI, which records none).
    Auto,
    /// The input is already on the model's grid and intensity scale.
    None,
}

/// Options of [`Predictor::predict`].
#[derive(Clone, Debug)]
pub struct PredictOptions {
    /// Window size (default: the preset's Resize size, else 128 × 128 × 64).
    pub roi: Option<[usize; 3]>,
    /// Window overlap.
    pub overlap: f64,
    /// Mirror test-time augmentation over the three axes.
    pub tta: bool,
    /// Preprocessing.
    pub preprocess: PreprocessMode,
    /// Keep only the largest connected component of each class (26-
    /// connectivity) and fill holes.
    pub postprocess: bool,
    /// Low-resolution mode: every Spacing step of the preset resamples to
    /// at least 3 mm, so a whole CT costs a fraction of the voxels (for a
    /// model trained at that spacing).
    pub fast: bool,
    /// Keep the class probabilities on the output grid
    /// ([`Prediction::probabilities`]). Without them the decision is taken
    /// while mapping back, and no full-size probability volume is made.
    pub keep_probabilities: bool,
    /// Set from another thread (a SIGTERM handler) to stop the network
    /// between two windows: prediction returns [`Error::Cancelled`].
    pub cancel: Option<Arc<AtomicBool>>,
    /// Windows run through the network together (MONAI's
    /// `sw_batch_size`); 0 chooses: 4 on a GPU, which keeps it busy, 1 on
    /// the CPU, where the kernels already use every core per window.
    pub sw_batch_size: usize,
}

impl Default for PredictOptions {
    fn default() -> Self {
        PredictOptions {
            roi: None,
            overlap: 0.25,
            tta: false,
            preprocess: PreprocessMode::Auto,
            postprocess: true,
            fast: false,
            keep_probabilities: false,
            cancel: None,
            sw_batch_size: 0,
        }
    }
}

/// The result on one CT.
#[derive(Debug)]
pub struct Prediction {
    /// Labels on the input's grid, each class written with its value in
    /// the model card ([`ModelCard::values`]: 0 background, then the
    /// dataset's own values, 1 liver for the built-in model).
    pub labels: Volume<u8>,
    /// Class probabilities on the input grid (or the model grid with
    /// `--preprocess none`), background first; only with
    /// [`PredictOptions::keep_probabilities`].
    pub probabilities: Option<Vec<Volume<f32>>>,
    /// Volume per foreground class, mL.
    pub volumes_ml: Vec<f64>,
    /// The class names, background first (the model card's).
    pub classes: Vec<String>,
    /// The label value of each class in [`Prediction::labels`], background
    /// (0) first (the model card's).
    pub values: Vec<u8>,
    /// The grid the network ran on (after preprocessing; the input's own
    /// grid with [`PreprocessMode::None`]).
    pub network_grid: Grid,
}

/// A loaded model and how to apply it.
pub struct Predictor {
    /// One network, or the members of an ensemble
    /// ([`Predictor::ensemble`]), which share the card's architecture.
    pub(crate) nets: Vec<Box<dyn ModuleT + Send + Sync>>,
    pub(crate) card: ModelCard,
    device: Device,
    compute: Compute,
}

impl std::fmt::Debug for Predictor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Predictor")
            .field("preset", &self.card.preset.name)
            .field("decision", &self.card.decision)
            .field("classes", &self.card.classes)
            .finish_non_exhaustive()
    }
}

impl Predictor {
    /// Loads a liverseg model file (trained here or imported from MONAI).
    pub fn load(path: &Path, device: &Device) -> Result<Predictor> {
        let size = liverseg_io::check_input(path)?.len();
        liverseg_io::budget::check("the model file", u128::from(size), 1)
            .map_err(|b| liverseg_io::Error::over_budget(path, b))?;
        let (card, file) = ModelCard::read(path, device)?;
        Predictor::from_file(card, &file, device)
    }

    /// A predictor for a model file already read, with its card. The
    /// network is built once, over the file's own tensors.
    pub fn from_file(
        card: ModelCard,
        file: &liverseg_model::ModelFile,
        device: &Device,
    ) -> Result<Predictor> {
        Ok(Predictor {
            nets: vec![file.network(device)?],
            card,
            device: device.clone(),
            compute: Compute::from(Precision::F32),
        })
    }

    /// Runs the network in `precision` from now on, in its form for the
    /// predictor's device ([`Precision::on`]; float32 by default). bfloat16
    /// halves activation memory and runs on a GPU's tensor cores; on the
    /// CPU it rounds the convolutions' operands, on AMX tiles or with
    /// AVX-512 BF16 dot products. Either stays within the bound
    /// `liverseg_model::Precision` states.
    pub fn with_precision(mut self, precision: Precision) -> Predictor {
        self.compute = precision.on(&self.device);
        self
    }

    /// The precision the network runs in.
    pub fn precision(&self) -> Precision {
        self.compute.precision()
    }

    /// The model's card: architecture, preset, decision, classes.
    pub fn card(&self) -> &ModelCard {
        &self.card
    }

    /// Class names, background first.
    pub fn classes(&self) -> &[String] {
        &self.card.classes
    }

    /// The label value of each class, background first.
    pub fn values(&self) -> &[u8] {
        &self.card.values
    }

    /// The preprocessing preset the model records.
    pub fn preset(&self) -> &Preset {
        &self.card.preset
    }

    /// Fails unless `roi` is a window this network can run: every extent a
    /// positive multiple of its divisor, and its activations within the
    /// memory budget.
    pub fn check_window(&self, roi: [usize; 3]) -> Result<()> {
        let d = self.card.architecture.divisor().map(|d| d.max(1));
        if roi.iter().zip(d).any(|(&r, d)| r == 0 || r % d != 0) {
            let of = if d[1..].iter().all(|&x| x == d[0]) {
                format!("every extent must be a positive multiple of {}", d[0])
            } else {
                format!("the extents must be positive multiples of {d:?} (x, y, z)")
            };
            return Err(Error::Config(format!(
                "window {roi:?}: {of} for this network"
            )));
        }
        let voxels = roi.iter().fold(1u128, |a, &r| a.saturating_mul(r as u128));
        liverseg_io::budget::check(
            format!(
                "the activations of a {}x{}x{} window",
                roi[0], roi[1], roi[2]
            ),
            voxels.saturating_mul(self.card.architecture.activations_per_voxel()),
            4,
        )
        .map_err(|b| Error::Config(b.to_string()))
    }

    fn roi(&self, opts: &PredictOptions, grid: &Grid) -> [usize; 3] {
        if let Some(r) = opts.roi {
            return r;
        }
        let d = self.card.architecture.divisor().map(|d| d.max(1));
        self.card.preset.window().unwrap_or_else(|| {
            // Whole volume up to 128 × 128 × 64, rounded up to the network's
            // divisor.
            let cap = [128, 128, 64];
            std::array::from_fn(|a| grid.dims[a].min(cap[a]).div_ceil(d[a]) * d[a])
        })
    }

    /// The preset with every Spacing step at 3 mm or coarser. A model
    /// trained with [`Preset::fast`] runs unchanged.
    fn fast_preset(&self) -> Preset {
        let mut p = self.card.preset.clone();
        if !p.steps.iter().any(|s| matches!(s, Step::Spacing { .. })) {
            tracing::warn!(
                preset = %p.name,
                "fast mode: this model's preprocessing has no Spacing step; nothing to coarsen"
            );
        }
        for s in &mut p.steps {
            if let Step::Spacing { pixdim, .. } = s {
                let coarse = pixdim.map(|v| v.max(3.0));
                if coarse != *pixdim {
                    tracing::warn!(
                        model_spacing = ?*pixdim,
                        fast_spacing = ?coarse,
                        "fast mode: this model was trained at a finer spacing than it will now see; \
                         expect a coarser, less accurate mask (train one with the fast preset)"
                    );
                }
                *pixdim = coarse;
            }
        }
        p
    }

    /// Class probabilities `(1, C, X, Y, Z)` of a preprocessed image, as
    /// the model's [`Decision`] gives them; an ensemble's members' are
    /// averaged.
    fn network_probabilities(
        &self,
        inputs: &[&Volume<f32>],
        opts: &PredictOptions,
    ) -> Result<Tensor> {
        let image = inputs[0];
        let roi = self.roi(opts, &Grid::of(image));
        self.check_window(roi)?;
        let sw_batch_size = match opts.sw_batch_size {
            0 if self.device.is_cuda() => 4,
            0 => 1,
            n => n,
        };
        if sw_batch_size > 1 {
            let voxels = roi.iter().fold(1u128, |a, &r| a.saturating_mul(r as u128));
            liverseg_io::budget::check(
                format!("the activations of {sw_batch_size} windows"),
                voxels
                    .saturating_mul(self.card.architecture.activations_per_voxel())
                    .saturating_mul(sw_batch_size as u128),
                4,
            )
            .map_err(|b| Error::Config(b.to_string()))?;
        }
        // The blended logits, the importance weights and their sum over the
        // whole grid, and an ensemble's running mean.
        let extra = if self.nets.len() > 1 { 2 } else { 0 };
        liverseg_io::budget::check_grid(
            "the logits over the preprocessed grid",
            &[image.len(), self.card.classes.len() * (1 + extra) + 2],
            4,
        )
        .map_err(|b| Error::Config(b.to_string()))?;
        let x = channels_to_tensor(&[inputs.to_vec()], &self.device)?;
        let cfg = SlidingWindowConfig {
            roi_size: roi,
            sw_batch_size,
            overlap: opts.overlap,
            mode: BlendMode::Constant,
            cval: 0.0,
        };
        let cancelled = || {
            opts.cancel
                .as_ref()
                .is_some_and(|c| c.load(Ordering::Relaxed))
        };
        let mut sum: Option<Tensor> = None;
        for net in &self.nets {
            let mut window = |w: &Tensor| -> liverseg_model::Result<Tensor> {
                if cancelled() {
                    // Stops the sliding window; reported as Cancelled below.
                    return Err(liverseg_model::Error::Config("cancelled".into()));
                }
                Ok(self.compute.run(w, |w| net.forward_t(w, false))?)
            };
            let mut whole = |t: &Tensor| -> liverseg_model::Result<Tensor> {
                sliding_window_inference(t, &cfg, &mut window)
            };
            let logits = if opts.tta {
                mirror_tta(&x, &[2, 3, 4], &mut whole)
            } else {
                whole(&x)
            };
            if cancelled() {
                return Err(Error::Cancelled);
            }
            let probs = self.card.decision.probabilities(&logits?)?;
            sum = Some(match sum {
                None => probs,
                Some(s) => (s + probs)?,
            });
        }
        let sum = sum.ok_or_else(|| Error::Config("a predictor without a network".into()))?;
        Ok(if self.nets.len() > 1 {
            (sum / self.nets.len() as f64)?
        } else {
            sum
        })
    }

    /// Class probabilities on `grid` (background first) from the
    /// network's probability tensor.
    fn probabilities(&self, probs: &Tensor, grid: &Grid) -> Result<Vec<Volume<f32>>> {
        let c = probs.dims()[1];
        let foreground: Vec<Volume<f32>> = (1..c)
            .map(|k| tensor_to_volume(probs, 0, k, grid))
            .collect::<Result<_>>()?;
        self.with_background(foreground)
    }

    /// Prepends the background channel to foreground probabilities.
    fn with_background(&self, foreground: Vec<Volume<f32>>) -> Result<Vec<Volume<f32>>> {
        let Some(first) = foreground.first() else {
            return Err(Error::Config("a model without foreground classes".into()));
        };
        let mut bg = Volume::filled(first.dims(), *first.affine(), 0.0f32)?;
        let mut fg = vec![0.0f32; foreground.len()];
        for (o, b) in bg.data_mut().iter_mut().enumerate() {
            for (f, p) in fg.iter_mut().zip(&foreground) {
                *f = p.data()[o];
            }
            *b = self.card.decision.background(&fg);
        }
        let mut out = Vec::with_capacity(foreground.len() + 1);
        out.push(bg);
        out.extend(foreground);
        Ok(out)
    }

    /// Labels from probabilities on one grid (background first).
    fn decide(&self, probs: &[Volume<f32>]) -> Result<Volume<u8>> {
        let first = probs
            .first()
            .ok_or_else(|| Error::Config("a model without output channels".into()))?;
        let mut labels = Volume::filled(first.dims(), *first.affine(), 0u8)?;
        let mut foreground = vec![0.0f32; probs.len() - 1];
        for (o, out) in labels.data_mut().iter_mut().enumerate() {
            for (f, p) in foreground.iter_mut().zip(&probs[1..]) {
                *f = p.data()[o];
            }
            *out = self.card.decision.label(&foreground);
        }
        Ok(labels)
    }

    /// Segments one CT: a CT as read ([`read_ct_file`]) or a volume of
    /// int16 or float32 HU.
    pub fn predict(&self, image: impl Into<Ct>, opts: &PredictOptions) -> Result<Prediction> {
        let prepared = self.prepare(image, opts)?;
        let out = self.infer(&prepared, opts)?;
        self.finish(prepared, out, opts)
    }

    /// Segments a multi-channel input: `images` channel 0 first (as the
    /// model was trained: BraTS' FLAIR, T1, T1Gd, T2), all on one grid.
    /// One image is [`Predictor::predict`].
    pub fn predict_channels(
        &self,
        images: Vec<Volume<f32>>,
        opts: &PredictOptions,
    ) -> Result<Prediction> {
        let prepared = self.prepare_channels(images, opts)?;
        let out = self.infer(&prepared, opts)?;
        self.finish(prepared, out, opts)
    }

    /// The first of prediction's three stages, [`Predictor::predict`] in
    /// parts so that a batch can overlap them: the model's preprocessing of
    /// one CT. [`Predictor::infer`] runs the network on it and
    /// [`Predictor::finish`] maps the result back.
    pub fn prepare(&self, image: impl Into<Ct>, opts: &PredictOptions) -> Result<Prepared> {
        self.prepare_inputs(Inputs::One(image.into()), opts)
    }

    /// [`Predictor::prepare`] for a multi-channel input (channel 0 first,
    /// all on one grid).
    pub fn prepare_channels(
        &self,
        mut images: Vec<Volume<f32>>,
        opts: &PredictOptions,
    ) -> Result<Prepared> {
        if images.len() == 1 {
            return self.prepare(images.remove(0), opts);
        }
        if let Some(c) = images
            .iter()
            .skip(1)
            .find(|c| !images[0].same_grid(c, 1e-3))
        {
            return Err(Error::Grid(format!(
                "the channels are not on one grid: shapes {:?} and {:?}, affines differ by up to {:.3} mm",
                images[0].dims(),
                c.dims(),
                images[0].affine().max_abs_diff(c.affine())
            )));
        }
        self.prepare_inputs(Inputs::Many(images), opts)
    }

    fn prepare_inputs(&self, inputs: Inputs, opts: &PredictOptions) -> Result<Prepared> {
        let given = match &inputs {
            Inputs::One(_) => 1,
            Inputs::Many(v) => v.len(),
        };
        let wanted = self.card.architecture.in_channels();
        if given != wanted {
            return Err(Error::Config(format!(
                "this model takes {wanted} input channel(s), {given} given (one file per channel, channel 0 first)"
            )));
        }
        let input_grid = match &inputs {
            Inputs::One(image) => Grid {
                dims: image.dims(),
                affine: *image.affine(),
            },
            Inputs::Many(v) => Grid::of(&v[0]),
        };
        let stage = match opts.preprocess {
            PreprocessMode::None => Stage::Raw(match inputs {
                Inputs::One(image) => vec![image.into_f32()],
                Inputs::Many(v) => v,
            }),
            PreprocessMode::Auto => {
                let preset = if opts.fast {
                    self.fast_preset()
                } else {
                    self.card.preset.clone()
                };
                let t = std::time::Instant::now();
                let done = match inputs {
                    Inputs::One(image) => preset.run(image, None)?,
                    Inputs::Many(v) => preset.run_channels(v, None)?,
                };
                log_stage("preprocess", t);
                Stage::Done(Box::new(done))
            }
        };
        Ok(Prepared { stage, input_grid })
    }

    /// The network on a prepared input: class probabilities on the
    /// network's grid (an ensemble's mean).
    pub fn infer(&self, prepared: &Prepared, opts: &PredictOptions) -> Result<NetworkOutput> {
        let t = std::time::Instant::now();
        let (refs, grid): (Vec<&Volume<f32>>, Grid) = match &prepared.stage {
            Stage::Raw(imgs) => (imgs.iter().collect(), prepared.input_grid),
            Stage::Done(done) => (
                std::iter::once(&done.pair.image)
                    .chain(&done.pair.channels)
                    .collect(),
                Grid::of(&done.pair.image),
            ),
        };
        let probs = self.network_probabilities(&refs, opts)?;
        let probabilities = self.probabilities(&probs, &grid)?;
        log_stage("network", t);
        Ok(NetworkOutput {
            probabilities,
            grid,
        })
    }

    /// Maps the network's output back onto the input's grid, decides the
    /// classes, post-processes and measures.
    pub fn finish(
        &self,
        prepared: Prepared,
        out: NetworkOutput,
        opts: &PredictOptions,
    ) -> Result<Prediction> {
        let input_grid = prepared.input_grid;
        let network_grid = out.grid;
        let on_model = out.probabilities;
        let (mut labels, probs) = match prepared.stage {
            Stage::Raw(_) => {
                let labels = self.decide(&on_model)?;
                (labels, opts.keep_probabilities.then_some(on_model))
            }
            Stage::Done(done) => {
                let t = std::time::Instant::now();
                let out = if opts.keep_probabilities {
                    // Foreground channels mapped back; the background by
                    // the decision's own formula.
                    let mapped = done.invert_probabilities(&on_model[1..])?;
                    let probs = self.with_background(mapped)?;
                    (self.decide(&probs)?, Some(probs))
                } else {
                    // The decision is taken plane by plane while mapping
                    // back: no full-size probability volume.
                    let labels =
                        done.invert_decide(&on_model[1..], |fg| self.card.decision.label(fg))?;
                    (labels, None)
                };
                log_stage("map back", t);
                out
            }
        };
        if opts.postprocess {
            // On the box of the mask only: a liver is a few percent of a
            // tall scan.
            let t = std::time::Instant::now();
            labels = self.postprocess(&labels);
            log_stage("post-process", t);
        }
        let voxel_ml = input_grid.affine.det3().abs() / 1000.0;
        let classes = self.card.classes.len();
        let mut counts = vec![0usize; classes];
        for &l in labels.data() {
            if (l as usize) < classes {
                counts[l as usize] += 1;
            }
        }
        let values = &self.card.values;
        if values.iter().enumerate().any(|(k, &v)| usize::from(v) != k) {
            labels = labels.map(|l| values.get(usize::from(l)).copied().unwrap_or(0));
        }
        Ok(Prediction {
            labels,
            classes: self.card.classes.clone(),
            values: values.clone(),
            probabilities: probs,
            network_grid,
            volumes_ml: counts
                .iter()
                .skip(1)
                .map(|&n| n as f64 * voxel_ml)
                .collect(),
        })
    }

    /// The largest component of each one-piece class, and holes filled.
    fn postprocess(&self, labels: &Volume<u8>) -> Volume<u8> {
        let lesion: Vec<bool> = self.card.classes.iter().map(|c| is_lesion(c)).collect();
        let one_piece = &self.card.largest_component;
        on_foreground_box(labels, |l| {
            let mut kept = largest_component_per_label(l, Connectivity::Corners26);
            // Classes in several pieces (a pair of kidneys) keep all.
            if one_piece.iter().skip(1).any(|&k| !k) {
                for (o, &v) in kept.data_mut().iter_mut().zip(l.data()) {
                    if !one_piece.get(usize::from(v)).copied().unwrap_or(true) {
                        *o = v;
                    }
                }
            }
            fill_holes_per_label(&kept, &lesion)
        })
    }
}

/// What a prediction runs on: a CT as read, or several channels.
enum Inputs {
    One(Ct),
    Many(Vec<Volume<f32>>),
}

/// One input brought to the network's grid ([`Predictor::prepare`]).
#[derive(Debug)]
pub struct Prepared {
    stage: Stage,
    input_grid: Grid,
}

impl Prepared {
    /// The grid the input came on.
    pub fn input_grid(&self) -> &Grid {
        &self.input_grid
    }
}

#[derive(Debug)]
enum Stage {
    /// Already on the network's grid (`PreprocessMode::None`).
    Raw(Vec<Volume<f32>>),
    /// The model's preprocessing, with what inverts it.
    Done(Box<Preprocessed>),
}

/// The network's class probabilities on its grid, background first
/// ([`Predictor::infer`]).
#[derive(Debug)]
pub struct NetworkOutput {
    probabilities: Vec<Volume<f32>>,
    grid: Grid,
}

/// Logs how long a stage of prediction took (`-vv`): `read`, `preprocess`,
/// `network`, `map back`, `post-process`, and the CLI's `write`.
pub fn log_stage(name: &str, since: std::time::Instant) {
    tracing::debug!(
        stage = name,
        seconds = format!("{:.3}", since.elapsed().as_secs_f64()),
        "predict"
    );
}

/// Hole filling per class: each class's holes are filled with that class
/// only where the hole is background. An organ's mask includes the lesion
/// classes (`lesion[k]`, from the class names) so a cavity beside a tumour
/// inside the liver is still the liver's hole, and the tumour stays a
/// tumour.
fn fill_holes_per_label(labels: &Volume<u8>, lesion: &[bool]) -> Volume<u8> {
    let max = labels.data().iter().copied().max().unwrap_or(0);
    let is_lesion = |v: u8| lesion.get(usize::from(v)).copied().unwrap_or(false);
    let mut out = labels.clone();
    for cls in 1..=max {
        let organ = !is_lesion(cls);
        let mask = labels.map(|v| u8::from(v == cls || (organ && v > 0 && is_lesion(v))));
        let filled = fill_holes(&mask);
        for (o, (&f, &orig)) in out
            .data_mut()
            .iter_mut()
            .zip(filled.data().iter().zip(labels.data()))
        {
            if f > 0 && orig == 0 {
                *o = cls;
            }
        }
    }
    out
}

/// Reads a CT for prediction: a NIfTI file as stored (unscaled int16 stays
/// int16 up to the first resampling), a DICOM series as float HU. Logs the
/// seconds it took (`-vv`).
pub fn read_ct_file(path: &Path) -> Result<Ct> {
    let t = std::time::Instant::now();
    let ct = liverseg_io::read_ct(path)?;
    log_stage("read", t);
    Ok(ct)
}

/// Reads a CT (NIfTI or DICOM series, [`read_ct_file`]) and runs the
/// predictor on it.
pub fn predict_file(
    predictor: &Predictor,
    path: &Path,
    opts: &PredictOptions,
) -> Result<Prediction> {
    predictor.predict(read_ct_file(path)?, opts)
}
