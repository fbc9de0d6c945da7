//! The DICOM halves of `info` and `convert`: series and files to NIfTI,
//! NIfTI to a CT series, SEG to and from label volumes.

use super::convert::{ConvertArgs, narrowest_exact, write_nifti_as};
use super::info::Info;
use crate::exit::bad_input;
use anyhow::{Context, Result};
use liverseg_io::dicom::{self, CodedConcept, SegOptions, SegmentDef, SeriesHeader};
use liverseg_io::{Affine, DType, Volume, nifti};
use serde::Serialize;
use std::path::Path;
use tracing::info;

fn read_opts(series_uid: Option<&String>) -> dicom::ReadOptions {
    dicom::ReadOptions {
        series_instance_uid: series_uid.cloned(),
        ..Default::default()
    }
}

/// A segment as `info --json` lists it.
#[derive(Debug, Serialize)]
struct SegmentOut {
    number: u16,
    label: String,
}

/// `info` for a DICOM file (image or SEG) or a series directory.
pub fn info(path: &Path) -> Result<Info> {
    if path.is_file() {
        let probe = dicom::probe(path)?;
        if probe.is_segmentation() {
            return seg_info(path, &probe);
        }
        return match dicom::read::<f32>(path, &read_opts(None)) {
            Ok(vol) => Ok(file_info(&vol, &probe)),
            Err(liverseg_io::Error::Unsupported { .. }) => frames_info(path, &probe),
            Err(e) => Err(e.into()),
        };
    }
    let (vol, header): (Volume<f32>, SeriesHeader) =
        dicom::read_with_header(path, &read_opts(None))?;
    let first = header
        .slices
        .first()
        .and_then(|s| s.path.clone())
        .map(|p| dicom::probe(&p))
        .transpose()?;
    let dtype = first
        .as_ref()
        .map(|p| p.stored_dtype())
        .unwrap_or_else(|| "unknown".into());
    let shape = vol.dims().to_vec();
    Ok(
        Info::new("dicom-series", shape, vol.affine(), &dtype, vol.stats())
            .with("modality", &header.modality)
            .with("series_instance_uid", &header.series_instance_uid)
            .with("series_description", &header.series_description)
            .with("images", header.slices.len()),
    )
}

/// `info` for a multi-frame object whose frames carry no positions: the
/// stored frames and their statistics, with an identity affine flagged as
/// such.
fn frames_info(path: &Path, probe: &dicom::DicomProbe) -> Result<Info> {
    let frames: dicom::Frames<f32> = dicom::read_frames(path)?;
    let vol = Volume::new(
        [frames.columns, frames.rows, frames.frames],
        Affine::identity(),
        frames.data,
    )?;
    Ok(file_info(&vol, probe).with(
        "geometry",
        "none: the frames carry no positions, the affine is the identity",
    ))
}

/// The `info` of one DICOM image file read into `vol`.
fn file_info(vol: &Volume<f32>, probe: &dicom::DicomProbe) -> Info {
    Info::new(
        "dicom",
        vol.dims().to_vec(),
        vol.affine(),
        &probe.stored_dtype(),
        vol.stats(),
    )
    .with("modality", &probe.modality)
    .with("sop_class_uid", &probe.sop_class_uid)
    .with("transfer_syntax_uid", &probe.transfer_syntax_uid)
    .with("frames", probe.frames)
}

fn seg_info(path: &Path, probe: &dicom::DicomProbe) -> Result<Info> {
    let seg = dicom::read_seg(path, None)?;
    let labels = seg
        .label_map()?
        .ok_or_else(|| bad_input(format!("{}: SEG holds no segment", path.display())))?;
    let segments: Vec<SegmentOut> = seg
        .segments
        .iter()
        .map(|(d, _)| SegmentOut {
            number: d.number,
            label: d.label.clone(),
        })
        .collect();
    let shape = labels.dims().to_vec();
    Ok(
        Info::new("dicom-seg", shape, labels.affine(), "uint8", labels.stats())
            .with("segments", segments)
            .with("frames", probe.frames)
            .with(
                "referenced_series_instance_uid",
                &seg.referenced_series_instance_uid,
            ),
    )
}

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

/// The segment descriptions for the label values present: 1 liver, 2 liver
/// tumour (the LiTS and MSD Task03 convention), others generic tissue.
pub(crate) fn segments_for(labels: &Volume<u8>) -> Vec<SegmentDef> {
    let max = labels.data().iter().copied().max().unwrap_or(0).max(1);
    (1..=u16::from(max))
        .map(|n| match n {
            1 => SegmentDef::liver(1),
            2 => SegmentDef {
                number: 2,
                label: "Liver tumour".into(),
                category: CodedConcept::new("49755003", "SCT", "Morphologically Altered Structure"),
                type_: CodedConcept::new("108369006", "SCT", "Neoplasm"),
            },
            n => SegmentDef {
                number: n,
                label: format!("Segment {n}"),
                category: CodedConcept::new("85756007", "SCT", "Tissue"),
                type_: CodedConcept::new("85756007", "SCT", "Tissue"),
            },
        })
        .collect()
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
