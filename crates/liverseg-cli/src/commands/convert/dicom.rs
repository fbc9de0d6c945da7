//! The DICOM half of `liverseg convert`: series and files to NIfTI, NIfTI
//! to a CT series, SEG to and from label volumes.

use super::{ConvertArgs, narrowest_exact, write_nifti_as};
use crate::commands::dicom::{read_opts, segments_for};
use crate::exit::bad_input;
use anyhow::{Context, Result};
use liverseg_io::dicom::{self, SegOptions, SeriesHeader};
use liverseg_io::{Affine, DType, Volume, nifti};
use std::path::Path;
use tracing::info;

/// DICOM image (file or series) → NIfTI, as int16 when every value is an
/// integer HU that fits, else float32.
pub fn image_to_nifti(args: &ConvertArgs) -> Result<()> {
    let vol: Volume<f32> = dicom::read(&args.input, &read_opts(args.series_uid.as_ref()))?;
    let dtype = narrowest_exact(&vol, false);
    write_nifti_as(&args.output, &vol, dtype, args.overwrite())
}

/// SEG (+ optional reference series for its grid) → NIfTI label map.
pub fn seg_to_nifti(args: &ConvertArgs) -> Result<()> {
    let reference = match &args.reference {
        Some(r) => {
            let v: Volume<f32> = dicom::read(r, &read_opts(args.series_uid.as_ref()))
                .with_context(|| format!("reading the reference series {}", r.display()))?;
            Some((v.dims(), *v.affine()))
        }
        None => None,
    };
    let seg = dicom::read_seg(&args.input, reference.as_ref().map(|(d, a)| (*d, a)))?;
    let labels = seg
        .label_map()?
        .ok_or_else(|| bad_input(format!("{}: SEG holds no segment", args.input.display())))?;
    write_nifti_as(&args.output, &labels.cast(), DType::Uint8, args.overwrite())
}

/// NIfTI → CT Image Storage series in the directory `args.output`.
pub fn nifti_to_series(args: &ConvertArgs) -> Result<()> {
    let vol: Volume<f32> = nifti::read(&args.input, &nifti::ReadOptions::default())?;
    let reference = match &args.reference {
        Some(r) => Some(
            dicom::read_with_header::<f32>(r, &read_opts(args.series_uid.as_ref()))
                .with_context(|| format!("reading the reference series {}", r.display()))?
                .1,
        ),
        None => None,
    };
    let opts = dicom::WriteSeriesOptions {
        overwrite: args.overwrite(),
        reference,
        ..Default::default()
    };
    let header = dicom::write_series(&args.output, &vol, &opts)?;
    info!(dir = %args.output.display(), images = header.slices.len(), "wrote DICOM series");
    Ok(())
}

fn check_same_grid(
    path: &Path,
    dims: [usize; 3],
    affine: &Affine,
    grid: &Volume<f32>,
) -> Result<()> {
    let diff = affine.max_abs_diff(grid.affine());
    if dims != grid.dims() || diff > 1e-3 {
        return Err(bad_input(format!(
            "{}: label grid (shape {dims:?}, orientation {}) is not the reference series grid (shape {:?}, orientation {}, affine difference {diff:.4} mm)",
            path.display(),
            affine.axcodes_string(),
            grid.dims(),
            grid.affine().axcodes_string()
        )));
    }
    Ok(())
}

/// Reports whether a DICOM input is a SEG.
pub fn is_seg(path: &Path) -> Result<bool> {
    Ok(path.is_file() && dicom::probe(path)?.is_segmentation())
}

/// NIfTI label + reference series → DICOM SEG file.
pub fn nifti_to_seg(args: &ConvertArgs) -> Result<()> {
    let reference = args.reference.as_ref().ok_or_else(|| {
        bad_input("--seg needs --reference DIR, the CT series the labels were drawn on")
    })?;
    let labels: Volume<u8> = nifti::read(&args.input, &nifti::ReadOptions::default())?;
    let (grid, header): (Volume<f32>, SeriesHeader) =
        dicom::read_with_header(reference, &read_opts(args.series_uid.as_ref()))
            .with_context(|| format!("reading the reference series {}", reference.display()))?;
    check_same_grid(&args.input, labels.dims(), labels.affine(), &grid)?;
    let opts = SegOptions {
        overwrite: args.overwrite(),
        segments: segments_for(&labels),
        ..Default::default()
    };
    dicom::write_seg(&args.output, &labels, &grid, &header, &opts)?;
    info!(path = %args.output.display(), "wrote DICOM SEG");
    Ok(())
}
