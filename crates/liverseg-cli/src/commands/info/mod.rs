//! `liverseg info`: shape, geometry and value statistics of an image file.

mod dicom;

use crate::formats::{InputKind, detect};
use anyhow::Result;
use clap::Args;
use liverseg_io::{Affine, Stats, nifti};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Arguments of `liverseg info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// A NIfTI file, a DICOM file, a DICOM series directory or a DICOM SEG.
    pub path: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// What `info` reports. Field names are the JSON keys.
#[derive(Debug, Serialize)]
pub struct Info {
    /// `nifti1`, `nifti2`, `dicom`, `dicom-series` or `dicom-seg`.
    pub format: String,
    /// x, y, z (and t for 4-D NIfTI).
    pub shape: Vec<usize>,
    /// Voxel spacing in mm along x, y, z.
    pub spacing: [f64; 3],
    /// 4×4 voxel-to-world affine in RAS mm, rows.
    pub affine: Vec<Vec<f64>>,
    /// nibabel-style orientation codes, e.g. "LPS".
    pub axcodes: String,
    /// The stored data type (numpy name).
    pub dtype: String,
    /// Smallest scaled value (HU for CT).
    pub min: f64,
    /// Largest scaled value.
    pub max: f64,
    /// Mean scaled value.
    pub mean: f64,
    /// Format-specific details.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Info {
    pub(crate) fn new(
        format: &str,
        shape: Vec<usize>,
        affine: &Affine,
        dtype: &str,
        stats: Stats,
    ) -> Self {
        Info {
            format: format.into(),
            shape,
            spacing: affine.spacing(),
            affine: affine.rows(),
            axcodes: affine.axcodes_string(),
            dtype: dtype.into(),
            min: stats.min,
            max: stats.max,
            mean: stats.mean,
            extra: Default::default(),
        }
    }

    pub(crate) fn with(mut self, key: &str, value: impl Serialize) -> Self {
        self.extra
            .insert(key.into(), serde_json::to_value(value).unwrap_or_default());
        self
    }
}

fn nifti_info(path: &Path) -> Result<Info> {
    // Statistics over every volume, as nibabel's get_fdata() sees the
    // file, in one pass.
    let (hdr, stats) = nifti::read_stats(path)?;
    let format = if hdr.version == 2 { "nifti2" } else { "nifti1" };
    let dtype = hdr.datatype_name().unwrap_or("unknown");
    Ok(
        Info::new(format, hdr.dims.clone(), &hdr.affine, dtype, stats)
            .with("affine_source", hdr.affine_source)
            .with("qform_code", hdr.qform_code)
            .with("sform_code", hdr.sform_code)
            .with("scl_slope_inter", hdr.scaling)
            .with("description", &hdr.description),
    )
}

/// Gathers the [`Info`] of any supported input.
pub fn gather(path: &Path) -> Result<Info> {
    match detect(path)? {
        InputKind::Nifti => nifti_info(path),
        InputKind::DicomFile | InputKind::Folder => dicom::info(path),
    }
}

fn print_text(path: &Path, info: &Info) -> Result<()> {
    crate::outln!("{}", path.display())?;
    crate::outln!("  format   {}", info.format)?;
    crate::outln!("  shape    {:?}", info.shape)?;
    crate::outln!(
        "  spacing  {:.4} x {:.4} x {:.4} mm",
        info.spacing[0],
        info.spacing[1],
        info.spacing[2]
    )?;
    crate::outln!("  axcodes  {}", info.axcodes)?;
    crate::outln!("  dtype    {}", info.dtype)?;
    crate::outln!(
        "  values   min {:.3}  max {:.3}  mean {:.3}",
        info.min,
        info.max,
        info.mean
    )?;
    crate::outln!("  affine (voxel -> RAS mm)")?;
    for row in &info.affine {
        crate::outln!(
            "    [{:>11.4} {:>11.4} {:>11.4} {:>11.4}]",
            row[0],
            row[1],
            row[2],
            row[3]
        )?;
    }
    for (k, v) in &info.extra {
        crate::outln!("  {k}  {v}")?;
    }
    Ok(())
}

/// Runs `liverseg info`.
pub fn run(args: &InfoArgs) -> Result<()> {
    let info = gather(&args.path)?;
    if args.json {
        crate::outln!("{}", serde_json::to_string(&info)?)?;
    } else {
        print_text(&args.path, &info)?;
    }
    Ok(())
}
