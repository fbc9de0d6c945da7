//! Reading the frames of a DICOM image as they are stored, without placing
//! them in space: for objects whose geometry is missing or not needed.

use super::attrs::Attrs;
use super::pixels::{PixelFormat, PixelSource};
use super::planes::{file_modality, frame_modality, open};
use super::read::apply_modality;
use crate::{Result, Voxel};
use dicom_dictionary_std::tags;
use std::path::Path;

/// The frames of one DICOM object, values through the Modality LUT.
#[derive(Clone, Debug, PartialEq)]
pub struct Frames<T> {
    /// Pixels down a column (Rows).
    pub rows: usize,
    /// Pixels along a row (Columns).
    pub columns: usize,
    /// Number of frames.
    pub frames: usize,
    /// The values, frame after frame, each row by row with the column index
    /// fastest: pixel `(column c, row r)` of frame `f` is at
    /// `c + columns * (r + rows * f)`.
    pub data: Vec<T>,
}

/// Reads every frame of a DICOM file in file order, through the Modality
/// LUT as [`super::read`] applies it (RescaleSlope and RescaleIntercept, per
/// frame when the functional groups say so; a Modality LUT Sequence;
/// DoseGridScaling), but with no geometry. Use it for multi-frame objects
/// that lack per-frame positions; [`super::read`] is the reader for images
/// with geometry.
pub fn read_frames<T: Voxel>(path: &Path) -> Result<Frames<T>> {
    let obj = open(path, false)?;
    let top = Attrs::new(path, &obj);
    let format = PixelFormat::from_attrs(&top)?;
    let source = PixelSource::of(path, &obj, &format)?;
    let per_frame = top.items(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE);
    let file = file_modality(&obj, &top)?;
    let mut data = Vec::with_capacity(format.frame_pixels() * format.frames);
    for frame in 0..format.frames {
        let item = per_frame.get(frame).map(|o| Attrs::new(path, o));
        let label = format!("frame {}: ", frame + 1);
        let modality = frame_modality(&top, item.as_ref(), &file, &label)?;
        let stored = source.frame(path, &obj, &format, frame)?;
        data.extend(apply_modality::<T>(path, &stored, &modality)?);
    }
    Ok(Frames {
        rows: format.rows,
        columns: format.cols,
        frames: format.frames,
        data,
    })
}
