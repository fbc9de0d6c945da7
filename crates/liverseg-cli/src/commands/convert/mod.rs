//! `liverseg convert`: NIfTI ↔ DICOM CT series, DICOM SEG ↔ NIfTI label.

mod dicom;

use crate::exit::bad_input;
use crate::formats::{InputKind, PathCheck, detect, has_nifti_name};
use anyhow::{Context, Result};
use clap::Args;
use liverseg_io::{DType, Overwrite, Volume, Voxel, nifti};
use std::path::{Path, PathBuf};
use tracing::info;

/// Arguments of `liverseg convert`.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// Input: a NIfTI file, a DICOM series directory, a DICOM file or a DICOM SEG.
    pub input: PathBuf,
    /// Output: a `.nii`/`.nii.gz` file, a directory for a DICOM series, or a
    /// `.dcm` file with `--seg`.
    pub output: PathBuf,
    /// A DICOM series: patient/study attributes to copy into a written
    /// series, the source grid of a SEG to read, or the series a written SEG
    /// references.
    #[arg(long)]
    pub reference: Option<PathBuf>,
    /// Write a DICOM SEG from a NIfTI label volume (needs `--reference`).
    #[arg(long)]
    pub seg: bool,
    /// Read this SeriesInstanceUID from a directory holding several series.
    #[arg(long)]
    pub series_uid: Option<String>,
    /// Replace an existing output.
    #[arg(long)]
    pub force: bool,
}

impl ConvertArgs {
    pub(crate) fn overwrite(&self) -> Overwrite {
        if self.force {
            Overwrite::Allow
        } else {
            Overwrite::Never
        }
    }
}

/// The narrowest of u8, i16 and f32 that holds every value exactly, so a
/// CT in integer HU stays int16 and a label map stays uint8.
pub fn narrowest_exact(vol: &Volume<f32>, prefer_label: bool) -> DType {
    let all = |f: fn(f64) -> bool| vol.data().iter().all(|&v| f(f64::from(v)));
    if prefer_label && all(u8::holds_exactly) {
        DType::Uint8
    } else if all(i16::holds_exactly) {
        DType::Int16
    } else {
        DType::Float32
    }
}

/// Writes `vol` as NIfTI in the given element type.
pub fn write_nifti_as(
    path: &Path,
    vol: &Volume<f32>,
    dtype: DType,
    overwrite: Overwrite,
) -> Result<()> {
    let opts = nifti::WriteOptions {
        overwrite,
        ..Default::default()
    };
    match dtype {
        DType::Uint8 => nifti::write(path, &vol.cast::<u8>(), &opts)?,
        DType::Int16 => nifti::write(path, &vol.cast::<i16>(), &opts)?,
        DType::Float32 => nifti::write(path, vol, &opts)?,
    }
    info!(path = %path.display(), dtype = dtype.name(), dims = ?vol.dims(), "wrote NIfTI");
    Ok(())
}

fn nifti_to_nifti(args: &ConvertArgs) -> Result<()> {
    let hdr = nifti::read_header(&args.input)?;
    let vol: Volume<f32> = nifti::read(&args.input, &nifti::ReadOptions::default())?;
    let is_label = hdr.datatype == 2 && hdr.scaling.is_none();
    let dtype = narrowest_exact(&vol, is_label);
    write_nifti_as(&args.output, &vol, dtype, args.overwrite())
}

/// Runs `liverseg convert`.
pub fn run(args: &ConvertArgs) -> Result<()> {
    PathCheck::new()
        .input(&args.input)
        .input_opt(args.reference.as_deref())
        .output(&args.output)
        .check()?;
    liverseg_io::check_replaceable(&args.output, args.overwrite())?;
    let kind = detect(&args.input)?;
    let out_nifti = has_nifti_name(&args.output);
    match kind {
        InputKind::Nifti if args.seg => dicom::nifti_to_seg(args),
        InputKind::Nifti if out_nifti => nifti_to_nifti(args),
        InputKind::Nifti => dicom::nifti_to_series(args),
        InputKind::DicomFile | InputKind::Folder if !out_nifti => Err(bad_input(format!(
            "{}: DICOM input converts to NIfTI: name the output .nii or .nii.gz",
            args.output.display()
        ))),
        InputKind::DicomFile if dicom::is_seg(&args.input)? => dicom::seg_to_nifti(args),
        InputKind::DicomFile | InputKind::Folder => dicom::image_to_nifti(args),
    }
    .with_context(|| format!("converting {}", args.input.display()))
}
