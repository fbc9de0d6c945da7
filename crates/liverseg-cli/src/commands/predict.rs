//! `liverseg predict`: segment a CT (NIfTI file, DICOM series) or a folder
//! of them with a liverseg model, on the input's own grid.

use super::dicom::seg_of;
use crate::batch::manifest::BatchCase;
use crate::exit::bad_input;
use crate::formats::{Formats, InputKind};
use crate::shard::Shard;
use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use liverseg_infer::{
    PredictOptions, Prediction, Predictor, Prepared, PreprocessMode, log_stage, read_ct_file,
};
use liverseg_io::dicom::{self, SegOptions, SeriesHeader};
use liverseg_io::{Outputs, Overwrite, Volume, nifti};
use liverseg_model::Precision;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Output format of the mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A uint8 label NIfTI.
    Nifti,
    /// A DICOM SEG referencing the input series (the input must be DICOM).
    Seg,
    /// A DICOM RT Structure Set of contours referencing the input series.
    Rtstruct,
    /// NIfTI and SEG (as `nifti,seg`).
    Both,
}

/// Preprocessing choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Preprocess {
    /// The preset recorded in the model.
    Auto,
    /// The input is already on the model's grid.
    None,
}

/// Arguments of `liverseg predict`.
#[derive(Clone, Debug, Args)]
pub struct PredictArgs {
    /// A liverseg model file (`liverseg train` or `liverseg import-monai`),
    /// or `builtin`, the liver model this binary carries (the default; see
    /// `liverseg models`). Several `--model`s (the folds of `train --fold
    /// K`) are an ensemble: their class probabilities are averaged; they
    /// must share labels, network and preprocessing.
    #[arg(long = "model", default_value = liverseg_infer::BUILTIN)]
    pub models: Vec<String>,
    /// A NIfTI file, a DICOM series directory, a folder of cases, or a
    /// manifest (`.csv`/`.tsv`: a header row with `id`, `input` or one
    /// `input_NNNN` column per channel, and optionally `output`); for a
    /// model of several input channels, one NIfTI file per channel, channel
    /// 0 first (`--input a_0000.nii.gz --input a_0001.nii.gz`), all on one
    /// grid, or one 4-D file. Or a DICOMweb URL: a series
    /// (`https://HOST/dicom-web/studies/S/series/R`, retrieved with
    /// WADO-RS) or a study (`.../studies/S`, its CT series found with
    /// QIDO-RS; `?Modality=MR` or other filters may follow); credentials
    /// from LIVERSEG_DICOMWEB_AUTH (`bearer TOKEN`, `basic USER:PASSWORD`)
    /// or the file LIVERSEG_DICOMWEB_AUTH_FILE names; HTTPS servers are
    /// checked against the CA certificates of the PEM file
    /// LIVERSEG_DICOMWEB_CA when set (Mozilla's roots otherwise).
    #[arg(long = "input", required = true)]
    pub inputs: Vec<PathBuf>,
    /// The mask file (a folder when the input is a folder of cases or a
    /// manifest; it also holds the batch's records, `.liverseg/`), or a
    /// DICOMweb service root (`https://HOST/dicom-web`) where the SEG and
    /// RTSTRUCT are stored with STOW-RS into the source's study.
    #[arg(long)]
    pub output: PathBuf,
    /// nifti, seg, rtstruct, or several joined by commas (`seg,rtstruct`;
    /// `both` is `nifti,seg`). Default: nifti, or seg for a DICOMweb
    /// output.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub format: Vec<Format>,
    /// `cpu` or `cuda:N`.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// The network's number format: `f32`, or `bf16` (on a GPU bfloat16
    /// activations and convolutions, float32 weights and outputs; on the
    /// CPU float32 activations and convolutions whose operands are rounded
    /// to bfloat16 and summed in float32 on AMX tiles or with AVX-512 BF16
    /// dot products, where the CPU has them).
    #[arg(long, default_value = "f32", value_parser = parse_precision)]
    pub precision: Precision,
    /// Mirror test-time augmentation (8 passes).
    #[arg(long)]
    pub tta: bool,
    /// Sliding-window size, e.g. `128,128,64` (default: the model's input size).
    #[arg(long, value_parser = parse_roi)]
    pub roi: Option<[usize; 3]>,
    /// Sliding-window overlap.
    #[arg(long, default_value_t = 0.25)]
    pub overlap: f64,
    /// Windows run through the network together (0: 4 on a GPU, 1 on the
    /// CPU).
    #[arg(long, default_value_t = 0)]
    pub sw_batch_size: usize,
    /// Also write class probabilities (float32, class as the 4th dimension).
    #[arg(long)]
    pub save_probabilities: Option<PathBuf>,
    /// auto: the model's preprocessing; none: the input is on the model grid.
    #[arg(long, value_enum, default_value = "auto")]
    pub preprocess: Preprocess,
    /// Skip largest-component selection and hole filling.
    #[arg(long)]
    pub no_postprocess: bool,
    /// Write a PNG montage of the mask outlined on the CT.
    #[arg(long)]
    pub overlay: Option<PathBuf>,
    /// Low-resolution mode: resample at 3 mm or coarser. Meant for a model
    /// trained with `liverseg train --preset fast`; a model trained finer is
    /// warned about and loses accuracy.
    #[arg(long)]
    pub fast: bool,
    /// Print the volumes as JSON.
    #[arg(long)]
    pub json: bool,
    /// Replace existing outputs; in a batch, redo every case (replacing
    /// only the outputs its records say it wrote).
    #[arg(long)]
    pub force: bool,
    /// In a batch, retry the cases recorded as failed (a case whose inputs
    /// changed is retried anyway).
    #[arg(long)]
    pub retry_failed: bool,
    /// With a folder of cases or a manifest: segment only shard I of N
    /// (`0/4` … `3/4`; cases sorted by id, shard I takes every N-th from
    /// the I-th).
    /// Without it, a Slurm array task (SLURM_ARRAY_TASK_ID,
    /// SLURM_ARRAY_TASK_MIN, SLURM_ARRAY_TASK_COUNT) or a Kubernetes Indexed
    /// Job pod (JOB_COMPLETION_INDEX, LIVERSEG_SHARD_COUNT) takes its shard
    /// from the environment.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
}

/// `--precision`: `f32` or `bf16`.
pub(crate) fn parse_precision(s: &str) -> std::result::Result<Precision, String> {
    Precision::parse(s).map_err(|e| e.to_string())
}

fn parse_roi(s: &str) -> std::result::Result<[usize; 3], String> {
    let v: Vec<usize> = s
        .split(',')
        .map(|p| p.trim().parse::<usize>().map_err(|e| format!("{p:?}: {e}")))
        .collect::<std::result::Result<_, _>>()?;
    match v.as_slice() {
        [a, b, c] if *a > 0 && *b > 0 && *c > 0 => Ok([*a, *b, *c]),
        _ => Err(format!(
            "--roi {s:?}: expected three positive integers, like 128,128,64"
        )),
    }
}

/// One case's line of the report.
#[derive(Debug, Serialize)]
pub(crate) struct CaseReport {
    pub name: String,
    pub input: String,
    pub output: String,
    pub volumes_ml: std::collections::BTreeMap<String, f64>,
    /// What the network saw: its grid's shape and voxel size.
    network_grid: NetworkGrid,
    pub seconds: f64,
}

#[derive(Debug, Serialize)]
struct NetworkGrid {
    dims: [usize; 3],
    spacing_mm: [f64; 3],
}

/// What the input path holds.
pub(crate) enum Input {
    Nifti(PathBuf),
    Series(PathBuf),
    /// One NIfTI file per channel, channel 0 first.
    Channels(Vec<PathBuf>),
}

impl Input {
    /// A batch case's input(s): one file per channel, a NIfTI file, or a
    /// DICOM series (a folder or one of its files).
    pub(crate) fn of(inputs: &[PathBuf]) -> Result<Input> {
        if inputs.len() > 1 {
            return Ok(Input::Channels(inputs.to_vec()));
        }
        Ok(match crate::formats::detect(&inputs[0])? {
            InputKind::Nifti => Input::Nifti(inputs[0].clone()),
            InputKind::DicomFile | InputKind::Folder => Input::Series(inputs[0].clone()),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        match self {
            Input::Nifti(p) | Input::Series(p) => p,
            Input::Channels(ps) => &ps[0],
        }
    }
}

impl PredictArgs {
    /// The outputs `--format` asks for.
    pub(crate) fn formats(&self) -> Formats {
        match self.format.as_slice() {
            [] if super::predict_web::is_url(&self.output) => Formats::of(&[Format::Seg]),
            [] => Formats::of(&[Format::Nifti]),
            list => Formats::of(list),
        }
    }

    /// The input (channel 0's file with several `--input`s).
    pub fn input(&self) -> &Path {
        &self.inputs[0]
    }
}

fn is_nifti_name(p: &Path) -> bool {
    crate::formats::has_nifti_name(p)
}

pub(crate) fn case_name(p: &Path) -> String {
    liverseg_io::nifti::case_name(&p.to_string_lossy())
}

pub(crate) fn overwrite(force: bool) -> Overwrite {
    if force {
        Overwrite::Allow
    } else {
        Overwrite::Never
    }
}

/// The SEG's path with `--format both`: beside the NIfTI mask, `.dcm`.
pub(crate) fn seg_beside(out: &Path) -> PathBuf {
    out.with_file_name(format!("{}.dcm", case_name(out)))
}

/// Where one case's outputs go.
#[derive(Clone, Debug)]
pub(crate) struct CaseOutputs {
    /// The mask (the SEG with `--format seg`).
    pub mask: PathBuf,
    pub probabilities: Option<PathBuf>,
    pub overlay: Option<PathBuf>,
}

/// Writes every output of one case together: each is written aside, and
/// they appear only when all are complete (`Outputs`). `before_commit` sees
/// the targets written just before they move into place (a batch records
/// them). Returns those targets.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_outputs(
    args: &PredictArgs,
    pred: &Prediction,
    ct: Option<&Volume<f32>>,
    series: Option<&SeriesHeader>,
    to: &CaseOutputs,
    overwrite: Overwrite,
    before_commit: &mut dyn FnMut(&[PathBuf]) -> Result<()>,
) -> Result<Vec<PathBuf>> {
    let out = to.mask.as_path();
    let mut outputs = Outputs::new(overwrite);
    let mut written = Vec::new();
    let formats = args.formats();
    if formats.nifti {
        let staged = outputs.stage(out)?;
        nifti::write(&staged, &pred.labels, &nifti::WriteOptions::default())?;
        written.push(out.to_path_buf());
    }
    let (seg_path, rtstruct_path) = formats.paths(out);
    if formats.dicom() {
        let (Some(ct), Some(series)) = (ct, series) else {
            return Err(bad_input(format!(
                "{}: --format seg or rtstruct needs a DICOM series as input",
                args.input().display()
            )));
        };
        // One segment (and ROI) per class present, numbered in order.
        let (numbered, segments) = seg_of(&pred.labels, &pred.classes, &pred.values);
        if segments.is_empty() {
            tracing::warn!(output = %out.display(), "empty mask: no SEG or RTSTRUCT written");
        }
        if let Some(seg_path) = seg_path.filter(|_| !segments.is_empty()) {
            let opts = SegOptions {
                segments: segments.clone(),
                algorithm_name: "liverseg".into(),
                ..Default::default()
            };
            let staged = outputs.stage(&seg_path)?;
            dicom::write_seg(&staged, &numbered, ct, series, &opts)?;
            written.push(seg_path);
        }
        if let Some(rt_path) = rtstruct_path.filter(|_| !segments.is_empty()) {
            let opts = dicom::RtStructOptions {
                rois: segments,
                algorithm_name: "liverseg".into(),
                ..Default::default()
            };
            let staged = outputs.stage(&rt_path)?;
            dicom::write_rtstruct(&staged, &numbered, ct, series, &opts)?;
            written.push(rt_path);
        }
    }
    if let Some(p) = &to.probabilities {
        let probabilities = pred.probabilities.as_ref().ok_or_else(|| {
            anyhow::anyhow!("{}: the prediction kept no probabilities", p.display())
        })?;
        let refs: Vec<&Volume<f32>> = probabilities.iter().collect();
        let staged = outputs.stage(p)?;
        nifti::write_4d(&staged, &refs, &nifti::WriteOptions::default())?;
        written.push(p.clone());
    }
    if let Some(p) = &to.overlay {
        let Some(ct) = ct else {
            return Err(anyhow::anyhow!("the overlay needs the CT"));
        };
        let staged = outputs.stage(p)?;
        write_overlay(&staged, ct, &pred.labels)?;
        written.push(p.clone());
    }
    before_commit(&written)?;
    outputs.commit()?;
    Ok(written)
}

/// One case read and brought to the network's grid, with what its
/// outputs need from the input.
pub(crate) struct Loaded {
    pub prepared: Prepared,
    /// The CT as float HU, kept when the SEG or the overlay needs it.
    pub ct: Option<Volume<f32>>,
    pub series: Option<SeriesHeader>,
}

/// True when the outputs need the CT itself (a SEG, an overlay).
pub(crate) fn needs_ct(args: &PredictArgs) -> bool {
    args.overlay.is_some() || args.formats().dicom()
}

/// Reads one case and runs the model's preprocessing on it.
pub(crate) fn load_case(
    args: &PredictArgs,
    predictor: &Predictor,
    opts: &PredictOptions,
    input: &Input,
) -> Result<Loaded> {
    let needs_ct = needs_ct(args);
    Ok(match input {
        Input::Series(dir) => {
            let (ct, header): (Volume<f32>, SeriesHeader) =
                dicom::read_with_header(dir, &dicom::ReadOptions::default())?;
            // A copy of the CT only when the SEG or the overlay needs it.
            let kept = needs_ct.then(|| ct.clone());
            Loaded {
                prepared: predictor.prepare(ct, opts)?,
                ct: kept,
                series: Some(header),
            }
        }
        Input::Channels(ps) => {
            let opts_read = nifti::ReadOptions::default();
            let vols = ps
                .iter()
                .map(|p| {
                    nifti::read::<f32>(p, &opts_read)
                        .map_err(|e| anyhow::Error::new(e).context(p.display().to_string()))
                })
                .collect::<Result<Vec<_>>>()?;
            let first = needs_ct.then(|| vols[0].clone());
            Loaded {
                prepared: predictor.prepare_channels(vols, opts)?,
                ct: first,
                series: None,
            }
        }
        Input::Nifti(p) if predictor.card().architecture.in_channels() > 1 => {
            // A multi-channel model on one file: the volumes of a 4-D image
            // (the Decathlon's multi-modal layout) are its channels.
            let n = predictor.card().architecture.in_channels();
            let vols = (0..n)
                .map(|k| nifti::read::<f32>(p, &nifti::ReadOptions { volume: Some(k) }))
                .collect::<liverseg_io::Result<Vec<_>>>()
                .with_context(|| {
                    format!(
                        "this model takes {n} input channels: give a 4-D file of {n} volumes or one --input per channel"
                    )
                })?;
            let first = needs_ct.then(|| vols[0].clone());
            Loaded {
                prepared: predictor.prepare_channels(vols, opts)?,
                ct: first,
                series: None,
            }
        }
        Input::Nifti(p) => {
            let ct = read_ct_file(p)?;
            // The SEG and the overlay take the CT as float HU: a copy of what
            // was read, not a second read of the file.
            let hu = needs_ct.then(|| ct.to_f32());
            Loaded {
                prepared: predictor.prepare(ct, opts)?,
                ct: hu,
                series: None,
            }
        }
    })
}

/// The report line of a case done.
pub(crate) fn case_report(
    predictor: &Predictor,
    input: &Path,
    out: &Path,
    pred: &Prediction,
    t0: Instant,
) -> CaseReport {
    let volumes_ml = predictor
        .classes()
        .iter()
        .skip(1)
        .cloned()
        .zip(pred.volumes_ml.iter().copied())
        .collect();
    CaseReport {
        name: case_name(input),
        input: input.display().to_string(),
        output: out.display().to_string(),
        volumes_ml,
        network_grid: NetworkGrid {
            dims: pred.network_grid.dims,
            spacing_mm: pred.network_grid.affine.spacing(),
        },
        seconds: t0.elapsed().as_secs_f64(),
    }
}

/// Runs one case: read, preprocess, network, map back, write.
pub(crate) fn run_case(
    args: &PredictArgs,
    predictor: &Predictor,
    opts: &PredictOptions,
    input: &Input,
    to: &CaseOutputs,
) -> Result<CaseReport> {
    let t0 = Instant::now();
    let loaded = load_case(args, predictor, opts, input)?;
    let net = predictor.infer(&loaded.prepared, opts)?;
    let pred = predictor.finish(loaded.prepared, net, opts)?;
    let t = Instant::now();
    write_outputs(
        args,
        &pred,
        loaded.ct.as_ref(),
        loaded.series.as_ref(),
        to,
        overwrite(args.force),
        &mut |_| Ok(()),
    )?;
    log_stage("write", t);
    Ok(case_report(predictor, input.path(), &to.mask, &pred, t0))
}

/// What `predict --input` names.
enum Target {
    /// One CT: a NIfTI file, a DICOM file or a series folder.
    One(Input),
    /// A batch: a folder's NIfTI files and sub-folders (DICOM series), or
    /// a manifest's cases.
    Batch(Vec<BatchCase>),
}

/// Classifies the input with one listing of a folder: a folder holding a
/// DICOM file is a series; one holding NIfTI files or sub-folders is a
/// folder of cases; anything else is read as a series (and fails there with
/// the reader's reason).
fn classify_input(inputs: &[PathBuf]) -> Result<Target> {
    let one = |i| Ok(Target::One(i));
    let input = inputs[0].as_path();
    if inputs.len() > 1 {
        for p in inputs {
            if !matches!(crate::formats::detect(p)?, InputKind::Nifti) {
                return Err(bad_input(format!(
                    "{}: with several --input, each is one channel's NIfTI file",
                    p.display()
                )));
            }
        }
        return one(Input::Channels(inputs.to_vec()));
    }
    if crate::batch::manifest::is_manifest(input) && input.is_file() {
        return Ok(Target::Batch(
            crate::batch::manifest::read(input).map_err(bad_input)?,
        ));
    }
    match crate::formats::detect(input)? {
        InputKind::Nifti => return one(Input::Nifti(input.to_path_buf())),
        InputKind::DicomFile => return one(Input::Series(input.to_path_buf())),
        InputKind::Folder => {}
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(input)
        .with_context(|| format!("{}: cannot list", input.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        // Hidden entries (`.liverseg-stage-*` of a run writing here, editor
        // files) are no cases.
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
        })
        .collect();
    entries.sort();
    let mut cases = Vec::new();
    for p in entries {
        if p.is_dir() || is_nifti_name(&p) {
            cases.push(BatchCase {
                id: case_name(&p),
                inputs: vec![p],
                output: None,
            });
        } else if p.is_file() && matches!(crate::formats::detect(&p), Ok(InputKind::DicomFile)) {
            return one(Input::Series(input.to_path_buf()));
        }
    }
    if cases.is_empty() {
        return one(Input::Series(input.to_path_buf()));
    }
    // Two files of one case name (a.nii and a.nii.gz) would write one
    // mask.
    cases.sort_by(|a, b| a.id.cmp(&b.id));
    if let Some(w) = cases.windows(2).find(|w| w[0].id == w[1].id) {
        return Err(bad_input(format!(
            "{} and {} are both case {:?}: one mask each is impossible; rename one or use a manifest",
            w[0].inputs[0].display(),
            w[1].inputs[0].display(),
            w[0].id
        )));
    }
    Ok(Target::Batch(cases))
}

/// True when `inputs` name a batch (a folder of cases or a manifest)
/// rather than one case.
pub(crate) fn is_batch(inputs: &[PathBuf]) -> Result<bool> {
    Ok(matches!(classify_input(inputs)?, Target::Batch(_)))
}

/// Checks the arguments that need no model: option values, and the paths
/// read and written (see `formats::PathCheck`).
fn check_args(args: &PredictArgs, single: Option<&Input>) -> Result<()> {
    if args.fast && args.preprocess == Preprocess::None {
        return Err(bad_input(
            "--fast resamples the input, --preprocess none says it is already on the model's grid: pick one"
                .to_string(),
        ));
    }
    if !(0.0..1.0).contains(&args.overlap) {
        return Err(bad_input(format!(
            "--overlap {} must be in [0, 1)",
            args.overlap
        )));
    }
    let formats = args.formats();
    if formats.nifti && formats.dicom() && single.is_some() && !is_nifti_name(&args.output) {
        return Err(bad_input(format!(
            "{}: with a NIfTI and DICOM outputs the output is the NIfTI file (.nii.gz); the others go beside it",
            args.output.display()
        )));
    }
    if formats.dicom() && matches!(single, Some(Input::Nifti(_) | Input::Channels(_))) {
        return Err(bad_input(format!(
            "{}: --format seg or rtstruct needs a DICOM series as input",
            args.input().display()
        )));
    }
    let (seg, rtstruct) = formats.paths(&args.output);
    let beside = |p: Option<PathBuf>| p.filter(|p| *p != args.output);
    let (seg, rtstruct) = (beside(seg), beside(rtstruct));
    let mut check = crate::formats::PathCheck::new()
        .input(args.input())
        .output(&args.output);
    for m in model_paths(args) {
        check = check.input(m);
    }
    for p in &args.inputs[1..] {
        check = check.input(p);
    }
    // In a folder run the extra outputs go inside the output folder, named
    // after each case; their flags only switch them on.
    if single.is_some() {
        check = check
            .output_opt(seg.as_deref())
            .output_opt(rtstruct.as_deref())
            .output_opt(args.save_probabilities.as_deref())
            .output_opt(args.overlay.as_deref());
    }
    check.check()
}

/// The model files `--model` names (not the built-in model).
fn model_paths(args: &PredictArgs) -> impl Iterator<Item = &Path> {
    args.models
        .iter()
        .filter(|m| *m != liverseg_infer::BUILTIN)
        .map(Path::new)
}

/// Loads one model (a file or `builtin`) and its SHA-256.
fn load_model(name: &str, device: &candle_core::Device) -> Result<(Predictor, String)> {
    if name == liverseg_infer::BUILTIN {
        let p =
            Predictor::builtin(device).map_err(|e| bad_input(format!("--model {name}: {e}")))?;
        let hash = liverseg_infer::builtin_bytes()
            .map(crate::batch::journal::sha256)
            .unwrap_or_default();
        return Ok((p, hash));
    }
    let path = Path::new(name);
    liverseg_io::check_input(path)?;
    if !path.is_file() {
        return Err(bad_input(format!("{}: not a model file", path.display())));
    }
    let p = Predictor::load(path, device).map_err(|e| bad_input(format!("{e}")))?;
    let hash = crate::batch::journal::sha256_file(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    Ok((p, hash))
}

/// The predictor `--model` names (an ensemble for several) and its hash
/// (of the members' hashes for an ensemble).
pub(crate) fn load_models(
    args: &PredictArgs,
    device: &candle_core::Device,
) -> Result<(Predictor, String)> {
    let mut members = Vec::new();
    let mut hashes = Vec::new();
    for m in &args.models {
        let (p, h) = load_model(m, device)?;
        members.push(p);
        hashes.push(h);
    }
    if members.len() == 1 {
        return Ok((members.remove(0), hashes.remove(0)));
    }
    let n = members.len();
    let p = Predictor::ensemble(members).map_err(|e| bad_input(format!("--model: {e}")))?;
    tracing::info!("an ensemble of {n} models: their class probabilities are averaged");
    Ok((
        p,
        crate::batch::journal::sha256(hashes.join(",").as_bytes()),
    ))
}

/// Runs `liverseg predict`.
pub fn run(args: &PredictArgs) -> Result<()> {
    if super::predict_web::involved(args) {
        return super::predict_web::run(args);
    }
    run_local(args)
}

/// The prediction options `args` ask for, stopped by `cancel`.
pub(crate) fn options(
    args: &PredictArgs,
    cancel: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> PredictOptions {
    PredictOptions {
        roi: args.roi,
        overlap: args.overlap,
        tta: args.tta,
        preprocess: match args.preprocess {
            Preprocess::Auto => PreprocessMode::Auto,
            Preprocess::None => PreprocessMode::None,
        },
        postprocess: !args.no_postprocess,
        fast: args.fast,
        keep_probabilities: args.save_probabilities.is_some(),
        cancel: Some(cancel),
        sw_batch_size: args.sw_batch_size,
    }
}

/// Runs `liverseg predict` on local files.
pub(crate) fn run_local(args: &PredictArgs) -> Result<()> {
    let target = classify_input(&args.inputs)?;
    let shard = match (&target, &args.shard) {
        (Target::One(_), Some(_)) => {
            return Err(bad_input(format!(
                "{}: --shard splits a folder of cases or a manifest; this is one case",
                args.input().display()
            )));
        }
        (Target::One(_), None) => None,
        (Target::Batch(_), Some(s)) => Some(Shard::parse(s).map_err(bad_input)?),
        (Target::Batch(_), None) => {
            Shard::from_env(|k| std::env::var(k).ok()).map_err(bad_input)?
        }
    };
    let single = match &target {
        Target::One(i) => Some(i),
        Target::Batch(_) => None,
    };
    check_args(args, single)?;
    let device = liverseg_infer::device(&args.device).context("--device")?;
    let (predictor, model_sha256) = load_models(args, &device)?;
    let predictor = predictor.with_precision(args.precision);
    if args.precision == Precision::Bf16 && device.is_cpu() && !liverseg_model::cpu_bf16_available()
    {
        tracing::warn!(
            "--precision bf16: this CPU has neither AMX-BF16 nor AVX-512 BF16, so the convolutions run in float32"
        );
    }
    let cancel = crate::batch::on_termination()?;
    let opts = options(args, cancel.clone());
    if let Some(roi) = args.roi {
        predictor
            .check_window(roi)
            .map_err(|e| bad_input(format!("--roi: {e}")))?;
    }
    match target {
        Target::One(input) => {
            let to = CaseOutputs {
                mask: args.output.clone(),
                probabilities: args.save_probabilities.clone(),
                overlay: args.overlay.clone(),
            };
            let r = run_case(args, &predictor, &opts, &input, &to)
                .map_err(crate::batch::interrupted)
                .map_err(crate::exit::naming(input.path()))?;
            if args.json {
                crate::outln!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({ "cases": [r], "failed": 0 })
                    )?
                )?;
            } else {
                print_case(&r)?;
            }
            Ok(())
        }
        Target::Batch(cases) => crate::batch::run(
            &crate::batch::Batch {
                args,
                predictor: &predictor,
                opts: &opts,
                model_sha256,
                cancel,
            },
            cases,
            shard,
        ),
    }
}

/// The `--overlay` montage: axial, coronal and sagittal slices through the
/// mask's centre, CT window −200..200 HU, mask outlined.
pub(crate) fn write_overlay(path: &Path, ct: &Volume<f32>, labels: &Volume<u8>) -> Result<()> {
    let opts = liverseg_report::OverlayOptions {
        title: path.file_stem().map(|s| s.to_string_lossy().into_owned()),
        ..Default::default()
    };
    liverseg_report::write_overlay(path, ct, labels, &opts, Overwrite::Never)?;
    Ok(())
}

pub(crate) fn print_case(r: &CaseReport) -> Result<()> {
    let vols: Vec<String> = r
        .volumes_ml
        .iter()
        .map(|(k, v)| format!("{k} {v:.1} mL"))
        .collect();
    crate::outln!(
        "{}: {} → {} ({:.1} s)",
        r.name,
        vols.join(", "),
        r.output,
        r.seconds
    )
}
