//! Reading binary DICOM Segmentation (SEG) objects into one mask volume per
//! segment, on the grid of the images they label or on a grid of their own.
//!
//! A SEG usually stores only the frames where a segment is present, one
//! frame per (segment, slice), so its frames are not a regular stack: each
//! frame is placed by its position onto a grid, and slices without a frame
//! are empty. Frames that do not fall on that grid exactly (a different
//! in-plane geometry, or between slices) are an error: resampling a mask is
//! a decision for the caller, not for a reader.

use super::SeriesHeader;
use super::attrs::{Attrs, functional_group};
use super::pixels::PixelSource;
use super::planes::{file_planes, open};
use super::series::{SEG_SOP_CLASS, series_header};
use super::stack::Plane;
use crate::{Affine, Error, Result, Volume};
use dicom_dictionary_std::tags;
use std::path::{Path, PathBuf};

/// What a segment is, from the SegmentSequence.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SegmentDescription {
    /// (0062,0004) SegmentNumber, from 1.
    pub number: u16,
    /// (0062,0005) SegmentLabel.
    pub label: String,
    /// (0062,0006) SegmentDescription.
    pub description: String,
    /// (0062,0008) SegmentAlgorithmType (AUTOMATIC, SEMIAUTOMATIC, MANUAL).
    pub algorithm_type: String,
}

/// A binary SEG read onto a grid: one 0/1 mask per segment.
#[derive(Clone, Debug, PartialEq)]
pub struct Segmentation {
    /// The file it was read from.
    pub path: PathBuf,
    /// Identifiers of the SEG object itself (its patient, study and series;
    /// `slices` is empty because a SEG is one object).
    pub header: SeriesHeader,
    /// SeriesInstanceUID of the image series the SEG labels (first item
    /// of ReferencedSeriesSequence; empty when absent).
    pub referenced_series_instance_uid: String,
    /// Each segment with its mask (1 inside, 0 outside), in SegmentNumber
    /// order. All masks share one grid.
    pub segments: Vec<(SegmentDescription, Volume<u8>)>,
}

impl Segmentation {
    /// Merges the masks into one label volume holding each voxel's segment
    /// number (0 for none). Fails when segments overlap, since one label
    /// per voxel cannot say so, or when a number exceeds 255.
    pub fn label_map(&self) -> Result<Option<Volume<u8>>> {
        let path = self.path.as_path();
        let Some((_, first)) = self.segments.first() else {
            return Ok(None);
        };
        let mut out = Volume::filled(first.dims(), *first.affine(), 0u8)?;
        for (desc, mask) in &self.segments {
            let label = u8::try_from(desc.number).map_err(|_| {
                Error::request(
                    path,
                    format!(
                        "segment number {} does not fit a uint8 label map",
                        desc.number
                    ),
                )
            })?;
            for (o, &m) in out.data_mut().iter_mut().zip(mask.data()) {
                if m != 0 {
                    if *o != 0 && *o != label {
                        return Err(Error::request(
                            path,
                            format!(
                                "segments {} and {label} overlap; use the separate masks",
                                *o
                            ),
                        ));
                    }
                    *o = label;
                }
            }
        }
        Ok(Some(out))
    }
}

/// Reads a binary SEG. With `reference` (the shape and affine of the image
/// volume it labels, as [`super::read`] returns them) the masks are on that
/// grid; without, on the smallest regular grid through the SEG's own
/// frames, spaced by SpacingBetweenSlices when given.
pub fn read_seg(path: &Path, reference: Option<([usize; 3], &Affine)>) -> Result<Segmentation> {
    let obj = open(path, false)?;
    let top = Attrs::new(path, &obj);
    let sop_class = top.string(tags::SOP_CLASS_UID);
    if sop_class != SEG_SOP_CLASS {
        return Err(Error::invalid(
            path,
            format!("not a Segmentation object (SOPClassUID {sop_class})"),
        ));
    }
    let seg_type = top.string(tags::SEGMENTATION_TYPE);
    if seg_type != "BINARY" {
        return Err(Error::unsupported(
            path,
            format!("SegmentationType {seg_type}; only BINARY is read"),
        ));
    }
    let descriptions = segment_descriptions(&top)?;
    let info = file_planes(path, &obj, false)?;
    let per_frame = top.items(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE);
    let mut frame_segments = Vec::with_capacity(info.planes.len());
    for p in &info.planes {
        let item = per_frame.get(p.frame).map(|o| Attrs::new(path, o));
        let number = functional_group(&top, item.as_ref(), tags::SEGMENT_IDENTIFICATION_SEQUENCE)
            .map(|s| s.uint(tags::REFERENCED_SEGMENT_NUMBER))
            .transpose()?
            .flatten()
            .ok_or_else(|| {
                Error::invalid(
                    path,
                    format!("frame {}: no ReferencedSegmentNumber", p.frame + 1),
                )
            })?;
        let index = descriptions
            .iter()
            .position(|d| u32::from(d.number) == number)
            .ok_or_else(|| {
                Error::invalid(
                    path,
                    format!("frame {} refers to segment {number}, which SegmentSequence does not describe", p.frame + 1),
                )
            })?;
        frame_segments.push(index);
    }
    let planes: Vec<Plane> = info.planes.iter().map(|p| p.plane).collect();
    let (dims, affine) = match reference {
        Some((dims, affine)) => (dims, *affine),
        None => {
            // SpacingBetweenSlices sits in the Pixel Measures macro, shared
            // or (rarely) per frame; the first frame's value stands for all.
            let first_item = per_frame.first().map(|o| Attrs::new(path, o));
            let between =
                functional_group(&top, first_item.as_ref(), tags::PIXEL_MEASURES_SEQUENCE)
                    .map(|m| m.float(tags::SPACING_BETWEEN_SLICES))
                    .transpose()?
                    .flatten();
            own_grid(
                path,
                &planes,
                [info.format.cols, info.format.rows],
                between,
                info.single_spacing,
            )?
        }
    };
    if [info.format.cols, info.format.rows] != [dims[0], dims[1]] {
        return Err(Error::request(
            path,
            format!(
                "frames are {}x{} pixels, the reference grid is {}x{}; resampling is not supported",
                info.format.cols, info.format.rows, dims[0], dims[1]
            ),
        ));
    }
    let inverse = affine.inverse().ok_or(Error::BadAffine {
        affine: Box::new(affine),
    })?;
    let source = PixelSource::of(path, &obj, &info.format)?;
    let mut masks: Vec<Volume<u8>> = descriptions
        .iter()
        .map(|_| Volume::filled(dims, affine, 0u8))
        .collect::<Result<_>>()?;
    let per_slice = dims[0] * dims[1];
    for ((p, plane), &segment) in info.planes.iter().zip(&planes).zip(&frame_segments) {
        let k = slice_on_grid(plane, &affine, &inverse, dims).map_err(|why| {
            Error::request(
                path,
                format!("frame {}: {why}; resampling is not supported", p.frame + 1),
            )
        })?;
        let stored = source.frame(path, &obj, &info.format, p.frame)?;
        let slice = &mut masks[segment].data_mut()[k * per_slice..(k + 1) * per_slice];
        for (o, &v) in slice.iter_mut().zip(&stored) {
            if v != 0.0 {
                *o = 1;
            }
        }
    }
    let referenced_series_instance_uid = top
        .first_item(tags::REFERENCED_SERIES_SEQUENCE)
        .map(|s| s.string(tags::SERIES_INSTANCE_UID))
        .unwrap_or_default();
    Ok(Segmentation {
        path: path.to_path_buf(),
        header: series_header(&top),
        referenced_series_instance_uid,
        segments: descriptions.into_iter().zip(masks).collect(),
    })
}

fn segment_descriptions(top: &Attrs<'_>) -> Result<Vec<SegmentDescription>> {
    let mut out = Vec::new();
    for item in top.items(tags::SEGMENT_SEQUENCE) {
        let a = Attrs::new(top.path, item);
        let number = a.require_uint(tags::SEGMENT_NUMBER)?;
        let number = u16::try_from(number)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                Error::invalid(
                    top.path,
                    format!("SegmentNumber {number} is not 1 to 65535"),
                )
            })?;
        if out.iter().any(|d: &SegmentDescription| d.number == number) {
            return Err(Error::invalid(
                top.path,
                format!("SegmentNumber {number} is described twice"),
            ));
        }
        out.push(SegmentDescription {
            number,
            label: a.string(tags::SEGMENT_LABEL),
            description: a.string(tags::SEGMENT_DESCRIPTION),
            algorithm_type: a.string(tags::SEGMENT_ALGORITHM_TYPE),
        });
    }
    if out.is_empty() {
        return Err(Error::invalid(
            top.path,
            "SegmentSequence describes no segment",
        ));
    }
    out.sort_by_key(|d| d.number);
    Ok(out)
}

/// The RAS affine of a frame's own pixel grid, its third column being the
/// unit normal (only the first two columns and the origin are compared).
fn frame_affine(plane: &Plane) -> Affine {
    let s = plane.pixel_spacing;
    let r = plane.row_dir().map(|x| x * s[1]);
    let c = plane.col_dir().map(|x| x * s[0]);
    Affine::from_columns([r, c, plane.normal()], plane.ipp).lps_to_ras()
}

/// The slice of the grid `(affine, dims)` that `plane` lies on exactly, or
/// why it lies on none. "Exactly" allows 1% of a voxel and 1e-3 mm of
/// direction error, what printing positions with a few decimals costs.
fn slice_on_grid(
    plane: &Plane,
    affine: &Affine,
    inverse: &Affine,
    dims: [usize; 3],
) -> std::result::Result<usize, String> {
    let frame = frame_affine(plane);
    for axis in 0..2 {
        let (a, b) = (frame.column(axis), affine.column(axis));
        if a.iter().zip(&b).any(|(x, y)| (x - y).abs() > 1e-3) {
            return Err(format!(
                "its pixel axis {axis} steps {a:?} mm, the grid's {b:?} mm"
            ));
        }
    }
    let ijk = inverse.apply(frame.origin());
    let k = ijk[2].round();
    if ijk[0].abs() > 0.01 || ijk[1].abs() > 0.01 || (ijk[2] - k).abs() > 0.01 {
        return Err(format!(
            "its first pixel is at grid index {ijk:.3?}, not on a grid voxel"
        ));
    }
    if k < 0.0 || k >= dims[2] as f64 {
        return Err(format!(
            "it lies at slice {k}, outside the grid's {} slices",
            dims[2]
        ));
    }
    Ok(k as usize)
}

/// The smallest regular grid holding every frame: in-plane geometry of the
/// first frame, slices along its normal from the lowest to the highest
/// frame position, spaced by SpacingBetweenSlices (`between`) when given,
/// else by the smallest distance between distinct frame positions, else
/// (all frames at one position) by `fallback`.
fn own_grid(
    path: &Path,
    planes: &[Plane],
    [cols, rows]: [usize; 2],
    between: Option<f64>,
    fallback: f64,
) -> Result<([usize; 3], Affine)> {
    let Some(first) = planes.first() else {
        return Err(Error::invalid(path, "the Segmentation has no frames"));
    };
    let normal = first.normal();
    let along = |p: &Plane| p.ipp[0] * normal[0] + p.ipp[1] * normal[1] + p.ipp[2] * normal[2];
    let mut positions: Vec<f64> = planes.iter().map(along).collect();
    positions.sort_by(f64::total_cmp);
    positions.dedup_by(|a, b| (*a - *b).abs() < 1e-3);
    let (low, high) = (positions[0], positions[positions.len() - 1]);
    let smallest_gap = positions
        .windows(2)
        .map(|w| w[1] - w[0])
        .fold(f64::INFINITY, f64::min);
    let step = match between {
        Some(b) if b > 0.0 && b.is_finite() => b,
        _ if smallest_gap.is_finite() => smallest_gap,
        _ => fallback,
    };
    let count = ((high - low) / step).round();
    if count > 100_000.0 {
        return Err(Error::invalid(
            path,
            format!("frames span {count} slices of {step} mm"),
        ));
    }
    let cols_dirs = [
        first.row_dir().map(|x| x * first.pixel_spacing[1]),
        first.col_dir().map(|x| x * first.pixel_spacing[0]),
        normal.map(|x| x * step),
    ];
    // The in-plane origin is the first frame's, moved along the normal to
    // the lowest position, so a frame shifted in-plane is caught as off the
    // grid when it is placed.
    let shift = low - along(first);
    let origin = [
        first.ipp[0] + normal[0] * shift,
        first.ipp[1] + normal[1] * shift,
        first.ipp[2] + normal[2] * shift,
    ];
    let affine = Affine::from_columns(cols_dirs, origin).lps_to_ras();
    Ok(([cols, rows, count as usize + 1], affine))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plane(z: f64) -> Plane {
        Plane {
            iop: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
            ipp: [-10.0, 20.0, z],
            pixel_spacing: [0.5, 0.25],
        }
    }

    #[test]
    fn own_grid_steps_by_the_smallest_gap_without_spacing_between_slices() {
        // Frames at 7.5, 0 and 2.5 (two segments share 2.5); 5.0 has none.
        let planes = [plane(7.5), plane(0.0), plane(2.5), plane(2.5)];
        let (dims, affine) = own_grid(Path::new("s"), &planes, [3, 2], None, 1.0).unwrap();
        assert_eq!(dims, [3, 2, 4]);
        assert_eq!(affine.column(2), [0.0, 0.0, 2.5]);
        assert_eq!(affine.origin(), [10.0, -20.0, 0.0]);
        let inverse = affine.inverse().unwrap();
        let k: Vec<usize> = planes
            .iter()
            .map(|p| slice_on_grid(p, &affine, &inverse, dims).unwrap())
            .collect();
        assert_eq!(k, [3, 0, 1, 1]);

        // SpacingBetweenSlices wins when given; one position uses the fallback.
        let (dims, _) = own_grid(Path::new("s"), &planes, [3, 2], Some(1.25), 1.0).unwrap();
        assert_eq!(dims[2], 7);
        let (dims, affine) = own_grid(Path::new("s"), &planes[1..2], [3, 2], None, 3.0).unwrap();
        assert_eq!((dims[2], affine.column(2)), (1, [0.0, 0.0, 3.0]));
    }

    #[test]
    fn frames_off_the_grid_say_why() {
        let (dims, affine) = own_grid(Path::new("s"), &[plane(0.0)], [3, 2], None, 1.0).unwrap();
        let inverse = affine.inverse().unwrap();
        let mut shifted = plane(0.0);
        shifted.ipp[0] += 0.1;
        let why = slice_on_grid(&shifted, &affine, &inverse, dims).unwrap_err();
        assert!(why.contains("not on a grid voxel"), "{why}");
        let mut rotated = plane(0.0);
        rotated.iop = [0.0, 1.0, 0.0, 1.0, 0.0, 0.0];
        let why = slice_on_grid(&rotated, &affine, &inverse, dims).unwrap_err();
        assert!(why.starts_with("its pixel axis 0 steps"), "{why}");
    }
}
