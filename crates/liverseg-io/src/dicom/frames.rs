//! Reading the frames of a DICOM image as they are stored, without placing
//! them in space: for objects whose geometry is missing or not needed.

use super::attrs::{Attrs, functional_group};
use super::pixels::{PixelFormat, PixelSource};
use super::planes::open;
use super::read::rescale;
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

/// Reads every frame of a DICOM file in file order, with RescaleSlope and
/// RescaleIntercept applied (per frame when the functional groups say so),
/// but no geometry. Use it for multi-frame objects that lack per-frame
/// positions; [`super::read`] is the reader for images with geometry.
pub fn read_frames<T: Voxel>(path: &Path) -> Result<Frames<T>> {
    let obj = open(path, false)?;
    let top = Attrs::new(path, &obj);
    let format = PixelFormat::from_attrs(&top)?;
    let source = PixelSource::of(path, &obj, &format)?;
    let per_frame = top.items(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE);
    let top_rescale = (
        top.float(tags::RESCALE_SLOPE)?.unwrap_or(1.0),
        top.float(tags::RESCALE_INTERCEPT)?.unwrap_or(0.0),
    );
    let mut data = Vec::with_capacity(format.frame_pixels() * format.frames);
    for frame in 0..format.frames {
        let item = per_frame.get(frame).map(|o| Attrs::new(path, o));
        let transform = functional_group(
            &top,
            item.as_ref(),
            tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE,
        );
        let rescale_pair = match transform {
            Some(t) => (
                t.float(tags::RESCALE_SLOPE)?.unwrap_or(top_rescale.0),
                t.float(tags::RESCALE_INTERCEPT)?.unwrap_or(top_rescale.1),
            ),
            None => top_rescale,
        };
        let stored = source.frame(path, &obj, &format, frame)?;
        data.extend(rescale::<T>(path, &stored, rescale_pair)?);
    }
    Ok(Frames {
        rows: format.rows,
        columns: format.cols,
        frames: format.frames,
        data,
    })
}
