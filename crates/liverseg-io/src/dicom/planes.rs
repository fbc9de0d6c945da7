//! Opening DICOM files and listing the image planes each one holds, with
//! their geometry and rescale: one plane for a classic image, one per frame
//! for an Enhanced multi-frame object (from its functional groups).

use super::attrs::{Attrs, error_chain, functional_group};
use super::pixels::PixelFormat;
use super::prescan::check_lengths;
use super::stack::Plane;
use crate::{Error, Result};
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, OpenFileOptions};
use std::path::Path;

/// Opens a DICOM file. With `header_only`, parsing stops before the pixel
/// data, which is all a directory scan needs.
pub(crate) fn open(path: &Path, header_only: bool) -> Result<DefaultDicomObject> {
    // Damaged lengths are caught here before the parser allocates them.
    check_lengths(path, header_only)?;
    let mut options = OpenFileOptions::new();
    if header_only {
        options = options.read_until(tags::PIXEL_DATA);
    }
    // The parser is third-party code run on untrusted bytes; a panic inside
    // it must become an error about this file.
    let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| options.open_file(path)))
        .map_err(|_| {
            Error::invalid(
                path,
                "not a readable DICOM file: the parser failed on corrupt data",
            )
        })?;
    opened.map_err(|e| match e {
        dicom_object::ReadError::OpenFile { source, .. } => Error::io(path, "cannot open", source),
        other => Error::invalid(
            path,
            format!("not a readable DICOM file: {}", error_chain(&other)),
        ),
    })
}

/// One image plane of a file: which frame, where it is, how to rescale it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PlaneRef {
    /// Frame number inside its file, 0-based.
    pub frame: usize,
    /// Position, orientation and pixel spacing.
    pub plane: Plane,
    /// Modality LUT: output = stored × slope + intercept.
    pub rescale: (f64, f64),
}

/// What one file contributes to a volume.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct FilePlanes {
    /// Pixel layout shared by all its frames.
    pub format: PixelFormat,
    /// Its planes (frames).
    pub planes: Vec<PlaneRef>,
    /// Slice spacing to use when the whole volume is this one plane:
    /// SpacingBetweenSlices, else SliceThickness, else 1 mm.
    pub single_spacing: f64,
}

/// Reads RescaleSlope and RescaleIntercept from `a`, if it has them.
fn rescale_of(a: &Attrs<'_>) -> Result<Option<(f64, f64)>> {
    let slope = a.float(tags::RESCALE_SLOPE)?;
    let intercept = a.float(tags::RESCALE_INTERCEPT)?;
    if slope.is_none() && intercept.is_none() {
        return Ok(None);
    }
    Ok(Some((slope.unwrap_or(1.0), intercept.unwrap_or(0.0))))
}

fn slice_spacing(a: &Attrs<'_>) -> Result<Option<f64>> {
    let between = a.float(tags::SPACING_BETWEEN_SLICES)?.filter(|v| *v > 0.0);
    let thickness = a.float(tags::SLICE_THICKNESS)?.filter(|v| *v > 0.0);
    Ok(between.or(thickness))
}

/// Lists the planes of a file from its header (pixel data not needed).
pub(crate) fn file_planes(path: &Path, obj: &DefaultDicomObject) -> Result<FilePlanes> {
    let top = Attrs::new(path, obj);
    let format = PixelFormat::from_attrs(&top)?;
    let per_frame = top.items(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE);
    let enhanced = !per_frame.is_empty() || top.has(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE);
    let top_rescale = rescale_of(&top)?.unwrap_or((1.0, 0.0));
    if !enhanced {
        if format.frames > 1 {
            return Err(Error::unsupported(
                path,
                format!(
                    "{} frames but no per-frame positions (PerFrameFunctionalGroupsSequence), so they cannot be placed in space; `dicom::read_frames` gives the pixels without geometry",
                    format.frames
                ),
            ));
        }
        let plane = classic_plane(&top)?;
        plane.validate(path, "")?;
        return Ok(FilePlanes {
            format,
            planes: vec![PlaneRef {
                frame: 0,
                plane,
                rescale: top_rescale,
            }],
            single_spacing: slice_spacing(&top)?.unwrap_or(1.0),
        });
    }
    // NumberOfFrames rules: a per-frame sequence with more items than frames
    // (as left behind by tools that drop frames) has its extra items
    // ignored, but one with fewer cannot place every frame.
    if !per_frame.is_empty() && per_frame.len() < format.frames {
        return Err(Error::invalid(
            path,
            format!(
                "NumberOfFrames is {} but PerFrameFunctionalGroupsSequence has only {} items",
                format.frames,
                per_frame.len()
            ),
        ));
    }
    let mut planes = Vec::with_capacity(format.frames);
    let mut single_spacing = None;
    for frame in 0..format.frames {
        let label = format!("frame {}: ", frame + 1);
        let item = per_frame.get(frame).map(|o| Attrs::new(path, o));
        let group = |seq| functional_group(&top, item.as_ref(), seq);
        let missing = |what: &str| {
            Error::invalid(
                path,
                format!("{label}no {what} in the per-frame or shared functional groups"),
            )
        };
        let position =
            group(tags::PLANE_POSITION_SEQUENCE).ok_or_else(|| missing("PlanePositionSequence"))?;
        let orientation = group(tags::PLANE_ORIENTATION_SEQUENCE)
            .ok_or_else(|| missing("PlaneOrientationSequence"))?;
        let measures =
            group(tags::PIXEL_MEASURES_SEQUENCE).ok_or_else(|| missing("PixelMeasuresSequence"))?;
        let plane = Plane {
            ipp: position
                .floats_n::<3>(tags::IMAGE_POSITION_PATIENT)?
                .ok_or_else(|| missing("ImagePositionPatient"))?,
            iop: orientation
                .floats_n::<6>(tags::IMAGE_ORIENTATION_PATIENT)?
                .ok_or_else(|| missing("ImageOrientationPatient"))?,
            pixel_spacing: measures
                .floats_n::<2>(tags::PIXEL_SPACING)?
                .ok_or_else(|| missing("PixelSpacing"))?,
        };
        plane.validate(path, &label)?;
        if single_spacing.is_none() {
            single_spacing = slice_spacing(&measures)?;
        }
        let rescale = match group(tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE) {
            Some(t) => rescale_of(&t)?.unwrap_or(top_rescale),
            None => top_rescale,
        };
        planes.push(PlaneRef {
            frame,
            plane,
            rescale,
        });
    }
    Ok(FilePlanes {
        format,
        planes,
        single_spacing: single_spacing.or(slice_spacing(&top)?).unwrap_or(1.0),
    })
}

/// The plane of a classic (single-frame) image from its top-level
/// ImagePositionPatient, ImageOrientationPatient and PixelSpacing.
fn classic_plane(a: &Attrs<'_>) -> Result<Plane> {
    let missing = |what: &str| {
        Error::invalid(
            a.path,
            format!("no {what}: the image cannot be placed in patient space"),
        )
    };
    Ok(Plane {
        ipp: a
            .floats_n::<3>(tags::IMAGE_POSITION_PATIENT)?
            .ok_or_else(|| missing("ImagePositionPatient (0020,0032)"))?,
        iop: a
            .floats_n::<6>(tags::IMAGE_ORIENTATION_PATIENT)?
            .ok_or_else(|| missing("ImageOrientationPatient (0020,0037)"))?,
        pixel_spacing: a
            .floats_n::<2>(tags::PIXEL_SPACING)?
            .ok_or_else(|| missing("PixelSpacing (0028,0030)"))?,
    })
}
