//! `liverseg preprocess`: run a preprocessing preset on one CT (and label)
//! and write the result, optionally with every intermediate stage.

use crate::exit::bad_input;
use crate::formats::{InputKind, PathCheck, detect};
use anyhow::Result;
use clap::Args;
use liverseg_io::nifti::Ct;
use liverseg_io::{Overwrite, Volume, dicom, nifti};
use liverseg_transforms::{Pair, Preset, Step};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tracing::info;

/// Arguments of `liverseg preprocess`.
#[derive(Debug, Args)]
pub struct PreprocessArgs {
    /// The CT: a NIfTI file or a DICOM series directory.
    #[arg(long)]
    pub image: PathBuf,
    /// Its label map: a NIfTI file, or a DICOM SEG on the CT's grid.
    #[arg(long)]
    pub label: Option<PathBuf>,
    /// `seed` (the MONAI tutorial), `patch` (nnU-Net-like, 1.5 mm), `fast`
    /// (3 mm), or a JSON file holding a preset.
    #[arg(long, default_value = "seed")]
    pub preset: String,
    /// Output directory: `image.nii.gz` (float32), `label.nii.gz` (uint8)
    /// and `preprocess.json` (the preset and every grid).
    #[arg(long)]
    pub out: PathBuf,
    /// Also write each step's output as `stages/NN_<step>_image.nii.gz`
    /// (and `_label`), running the steps one by one.
    #[arg(long)]
    pub stages: bool,
    /// Replace an existing output directory.
    #[arg(long)]
    pub force: bool,
}

/// `preprocess.json`: what was done, so a prediction can be mapped back.
#[derive(Debug, Serialize)]
struct Report<'a> {
    image: String,
    label: Option<String>,
    preset: &'a Preset,
    original: liverseg_transforms::Grid,
    output: liverseg_transforms::Grid,
    records: &'a [liverseg_transforms::StepRecord],
    seconds: f64,
}

/// A built-in preset or a JSON preset file (`Preset::load`); anything else
/// is bad input.
pub(crate) fn load_preset(name: &str) -> Result<Preset> {
    Preset::load(name).map_err(|e| bad_input(format!("--preset: {e}")))
}

/// The shape and affine of a CT as read.
fn grid_of(ct: &Ct) -> liverseg_transforms::Grid {
    liverseg_transforms::Grid {
        dims: ct.dims(),
        affine: *ct.affine(),
    }
}

/// Reads a label map (NIfTI, or a DICOM SEG placed on `grid`).
pub fn read_label(path: &Path, grid: &liverseg_transforms::Grid) -> Result<Volume<u8>> {
    Ok(match detect(path)? {
        InputKind::Nifti => nifti::read(path, &nifti::ReadOptions::default())?,
        InputKind::DicomFile => {
            let seg = dicom::read_seg(path, Some((grid.dims, &grid.affine)))?;
            seg.label_map()?
                .ok_or_else(|| bad_input(format!("{}: SEG holds no segment", path.display())))?
        }
        InputKind::Folder => {
            return Err(bad_input(format!(
                "{}: a label must be a NIfTI file or a DICOM SEG file",
                path.display()
            )));
        }
    })
}

/// Reads the CT and its label. A NIfTI label decodes on a second thread
/// while the CT decodes (gzip inflation is serial per stream, so two files
/// use two cores); a SEG needs the CT's grid and is read after it.
pub fn read_inputs(image: &Path, label: Option<&Path>) -> Result<(Ct, Option<Volume<u8>>)> {
    let nifti_label = label.filter(|p| matches!(detect(p), Ok(InputKind::Nifti)));
    let (image_result, early) = std::thread::scope(|s| {
        let handle = s.spawn(|| Ok(liverseg_io::read_ct(image)?));
        let early = nifti_label
            .map(|p| -> Result<Volume<u8>> { Ok(nifti::read(p, &nifti::ReadOptions::default())?) });
        let image = handle.join().unwrap_or_else(|_| {
            Err(anyhow::anyhow!(
                "{}: reader thread panicked",
                image.display()
            ))
        });
        (image, early)
    });
    let image = image_result?;
    let label = match (early, label) {
        (Some(l), _) => Some(l?),
        (None, Some(p)) => Some(read_label(p, &grid_of(&image))?),
        (None, None) => None,
    };
    Ok((image, label))
}

fn write_pair(dir: &Path, stem: &str, pair: &Pair) -> liverseg_io::Result<()> {
    let opts = nifti::WriteOptions::default();
    nifti::write(&dir.join(format!("{stem}image.nii.gz")), &pair.image, &opts)?;
    if let Some(l) = &pair.label {
        nifti::write(&dir.join(format!("{stem}label.nii.gz")), l, &opts)?;
    }
    Ok(())
}

fn io_error(path: &Path, action: &'static str, source: std::io::Error) -> liverseg_io::Error {
    liverseg_io::Error::Io {
        path: path.to_path_buf(),
        action,
        source,
    }
}

/// Runs `liverseg preprocess`.
pub fn run(args: &PreprocessArgs) -> Result<()> {
    let preset = load_preset(&args.preset)?;
    PathCheck::new()
        .input(&args.image)
        .input_opt(args.label.as_deref())
        .output(&args.out)
        .check()?;
    let overwrite = if args.force {
        Overwrite::Allow
    } else {
        Overwrite::Never
    };
    if !args.force && std::fs::symlink_metadata(&args.out).is_ok() {
        return Err(bad_input(format!(
            "{}: already exists (use --force to replace it)",
            args.out.display()
        )));
    }
    liverseg_io::check_replaceable(&args.out, overwrite)?;
    let start = Instant::now();
    let (image, label) = read_inputs(&args.image, args.label.as_deref())?;
    info!(dims = ?image.dims(), seconds = start.elapsed().as_secs_f64(), "read input");
    let mut stages: Vec<(String, Pair)> = Vec::new();
    let run = || -> Result<_> {
        Ok(match (args.stages, image) {
            (true, image) => {
                let pair = Pair::new(image.into_f32(), label)?;
                preset.run_stages(pair, |i, step: &Step, p| {
                    stages.push((format!("{i:02}_{}_", step.name()), p.clone()));
                    Ok(())
                })?
            }
            (false, image) => preset.run(image, label)?,
        })
    };
    let done = run().map_err(crate::exit::naming(&args.image))?;
    let seconds = start.elapsed().as_secs_f64();
    let report = Report {
        image: args.image.display().to_string(),
        label: args.label.as_ref().map(|p| p.display().to_string()),
        preset: &preset,
        original: done.original,
        output: liverseg_transforms::Grid::of(&done.pair.image),
        records: &done.records,
        seconds,
    };
    liverseg_io::write_dir_atomic(&args.out, overwrite, |dir| {
        write_pair(dir, "", &done.pair)?;
        if !stages.is_empty() {
            let sdir = dir.join("stages");
            std::fs::create_dir_all(&sdir)
                .map_err(|e| io_error(&sdir, "cannot create directory", e))?;
            for (stem, p) in &stages {
                write_pair(&sdir, stem, p)?;
            }
        }
        let p = dir.join("preprocess.json");
        let json = serde_json::to_vec_pretty(&report)
            .map_err(std::io::Error::other)
            .map_err(|e| io_error(&p, "cannot serialise", e))?;
        std::fs::write(&p, json).map_err(|e| io_error(&p, "cannot write", e))
    })?;
    crate::outln!(
        "{}: {:?} → {:?} with preset {} in {:.2} s → {}",
        args.image.display(),
        done.original.dims,
        done.pair.image.dims(),
        preset.name,
        seconds,
        args.out.display()
    )?;
    Ok(())
}
