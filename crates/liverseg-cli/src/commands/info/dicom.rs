//! The DICOM half of `liverseg info`: a file (image or SEG) or a series
//! folder described.

use super::Info;
use crate::commands::dicom::read_opts;
use crate::exit::bad_input;
use anyhow::Result;
use liverseg_io::dicom::{self, SeriesHeader};
use liverseg_io::{Affine, Volume};
use serde::Serialize;
use std::path::Path;

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
        return match dicom::read_with_header::<f32>(path, &read_opts(None)) {
            Ok((vol, header)) => Ok(match header.assumed_geometry {
                Some(what) => file_info(&vol, &probe).with("geometry", what),
                None => file_info(&vol, &probe),
            }),
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
