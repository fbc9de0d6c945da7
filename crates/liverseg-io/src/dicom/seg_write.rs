//! Binary DICOM Segmentation (SEG) writing: a label volume on the grid of a
//! CT series as one Segmentation Storage object referencing that series.
//!
//! The object holds one bit-packed frame per (segment, slice) pair where the
//! slice contains that segment's label, ordered by segment number and then
//! by position along the slice normal. Each frame carries its own
//! ImagePositionPatient and a reference to the source image of its slice,
//! so any reader (highdicom, 3D Slicer, OHIF) can place it without looking
//! at the source series. Geometry follows [`super::write`]: the same
//! ImageOrientationPatient, PixelSpacing and positions the CT writer uses.

use super::uid::new_uid;
use super::write::{image_size, plane_geometry};
use super::write_elements::{
    check_patient_study, check_text, check_uid, code_item, dicom_now, ds, file_object, needs_utf8,
    put_equipment, put_patient_study, put_seq, put_str, put_strs, put_u16,
};
use super::{SeriesHeader, SliceRef};
use crate::{Error, Overwrite, Result, Volume, Voxel, write_file_atomic};
use dicom_core::value::C;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::InMemDicomObject;
use std::path::Path;

/// A coded concept: (CodeValue, CodingSchemeDesignator, CodeMeaning), such
/// as SNOMED CT `10200004` "Liver".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodedConcept {
    /// (0008,0100) CodeValue, at most 16 characters.
    pub value: String,
    /// (0008,0102) CodingSchemeDesignator (`SCT`, `DCM`, ...).
    pub scheme: String,
    /// (0008,0104) CodeMeaning, at most 64 characters.
    pub meaning: String,
}

impl CodedConcept {
    /// A concept from its three parts.
    pub fn new(value: &str, scheme: &str, meaning: &str) -> Self {
        CodedConcept {
            value: value.into(),
            scheme: scheme.into(),
            meaning: meaning.into(),
        }
    }
}

/// One segment of a SEG object: which label value it is and what it
/// depicts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentDef {
    /// (0062,0004) SegmentNumber, which is also the label value in the
    /// label volume. Segments must be numbered 1, 2, 3, ... in order.
    pub number: u16,
    /// (0062,0005) SegmentLabel, at most 64 characters.
    pub label: String,
    /// (0062,0003) SegmentedPropertyCategoryCodeSequence.
    pub category: CodedConcept,
    /// (0062,000F) SegmentedPropertyTypeCodeSequence.
    pub type_: CodedConcept,
}

impl SegmentDef {
    /// The liver: category SCT 123037004 "Anatomical Structure", type
    /// SCT 10200004 "Liver".
    pub fn liver(number: u16) -> Self {
        SegmentDef {
            number,
            label: "Liver".into(),
            category: CodedConcept::new("123037004", "SCT", "Anatomical Structure"),
            type_: CodedConcept::new("10200004", "SCT", "Liver"),
        }
    }
}

/// Options for [`write_seg`].
#[derive(Clone, Debug)]
pub struct SegOptions {
    /// Whether an existing output file may be replaced.
    pub overwrite: Overwrite,
    /// The segments, numbered 1, 2, ... in order; label value `n` in the
    /// label volume belongs to segment `n`.
    pub segments: Vec<SegmentDef>,
    /// (0008,103E) SeriesDescription, also the ContentDescription.
    pub series_description: String,
    /// (0062,0009) SegmentAlgorithmName of every segment.
    pub algorithm_name: String,
}

impl Default for SegOptions {
    fn default() -> Self {
        SegOptions {
            overwrite: Overwrite::Never,
            segments: vec![SegmentDef::liver(1)],
            series_description: "liverseg segmentation".into(),
            algorithm_name: "liverseg".into(),
        }
    }
}

/// The SeriesNumber of written SEG series, a conventional value well above
/// scanner-acquired series numbers.
const SEG_SERIES_NUMBER: &str = "300";

/// (0070,0080) ContentLabel of written SEG objects (CS: capitals, digits,
/// underscore and space only).
const CONTENT_LABEL: &str = "LIVERSEG";

/// Writes `labels` as a binary DICOM Segmentation of the series
/// `reference`, whose voxels lie on the grid of `reference_grid` (the
/// volume read from or written as that series: slice `k` of it is
/// `reference.slices[k]`).
///
/// Every non-zero label value must be the number of one of
/// `opts.segments`. A frame is written for each (segment, slice) where the
/// slice holds that label; slices without it are left out, as highdicom
/// does by default. When the mask is empty everywhere the object still
/// needs one frame, so a single all-zero frame of the first segment on the
/// first slice (along the normal) is written.
///
/// Patient, study and FrameOfReferenceUID are copied from `reference`;
/// Series and SOP Instance UIDs are fresh. The file is written atomically.
///
/// Errors: [`Error::Request`] when `labels` is not on the reference grid
/// (dims differ or an affine element differs by more than 1e-3 mm), when
/// `reference` does not list one valid image per slice, when a label value
/// has no segment, or when the segment definitions are malformed;
/// [`Error::Exists`] when `path` exists and overwriting is not allowed;
/// [`Error::Io`] when writing fails.
///
/// ```
/// use liverseg_io::dicom::{self, SegOptions, WriteSeriesOptions};
/// use liverseg_io::{Affine, Volume};
/// # fn main() -> liverseg_io::Result<()> {
/// let tmp = tempfile::tempdir().unwrap();
/// let affine = Affine::from_spacing_origin([-0.8, -0.8, 2.5], [200.0, 180.0, -40.0]);
/// let ct = Volume::new([4, 3, 2], affine, vec![-1000.0f32; 24])?;
/// let series = dicom::write_series(&tmp.path().join("ct"), &ct, &WriteSeriesOptions::default())?;
/// assert_eq!(series.slices.len(), 2);
///
/// let mut mask = vec![0u8; 24];
/// mask[5] = 1; // Voxel (1, 1, 0) is liver.
/// let labels = Volume::new([4, 3, 2], affine, mask)?;
/// let seg = tmp.path().join("liver_seg.dcm");
/// dicom::write_seg(&seg, &labels, &ct, &series, &SegOptions::default())?;
/// assert!(seg.is_file());
/// # Ok(()) }
/// ```
pub fn write_seg<T: Voxel>(
    path: &Path,
    labels: &Volume<u8>,
    reference_grid: &Volume<T>,
    reference: &SeriesHeader,
    opts: &SegOptions,
) -> Result<()> {
    check_on_reference(path, labels, reference_grid, reference)?;
    let [nx, ny, nz] = labels.dims();
    let (rows, columns) = image_size(nx, ny).map_err(|r| Error::request(path, r))?;
    check_segments(path, opts)?;
    let geom = plane_geometry(labels.affine(), nz).map_err(|r| Error::request(path, r))?;
    check_label_values(path, labels, opts.segments.len())?;

    // Frames: by segment number, then by position along the normal; only
    // on slices that are source images (an equalised volume's interpolated
    // slices lie between them).
    let mut slice_order: Vec<usize> = (0..nz)
        .filter(|&k| !reference.slices[k].interpolated)
        .collect();
    slice_order.sort_by_key(|&k| geom.rank_along_normal(k));
    let plane = nx * ny;
    let mut frames: Vec<(u16, usize)> = Vec::new();
    for seg in &opts.segments {
        let value = seg.number as u8;
        for &k in &slice_order {
            if labels.data()[k * plane..(k + 1) * plane].contains(&value) {
                frames.push((seg.number, k));
            }
        }
    }
    if frames.is_empty() {
        let Some(&k) = slice_order.first() else {
            return Err(Error::request(path, "the reference lists no source image"));
        };
        frames.push((opts.segments[0].number, k));
    }
    let pixel_data = pack_frames(labels.data(), plane, &frames);

    let (date, time) = dicom_now();
    let mut obj = InMemDicomObject::new_empty();
    let any_utf8 = needs_utf8(&reference.patient_study)
        || !opts.series_description.is_ascii()
        || !opts.algorithm_name.is_ascii()
        || opts.segments.iter().any(|s| {
            !s.label.is_ascii() || !s.category.meaning.is_ascii() || !s.type_.meaning.is_ascii()
        });
    if any_utf8 {
        put_str(&mut obj, tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192");
    }
    // SOP Common and Segmentation Image identification.
    put_str(
        &mut obj,
        tags::SOP_CLASS_UID,
        VR::UI,
        uids::SEGMENTATION_STORAGE,
    );
    put_str(&mut obj, tags::SOP_INSTANCE_UID, VR::UI, &new_uid());
    put_strs(
        &mut obj,
        tags::IMAGE_TYPE,
        VR::CS,
        &["DERIVED", "PRIMARY"].map(String::from),
    );
    put_str(&mut obj, tags::INSTANCE_CREATION_DATE, VR::DA, &date);
    put_str(&mut obj, tags::INSTANCE_CREATION_TIME, VR::TM, &time);
    put_str(&mut obj, tags::SERIES_DATE, VR::DA, &date);
    put_str(&mut obj, tags::SERIES_TIME, VR::TM, &time);
    put_str(&mut obj, tags::CONTENT_DATE, VR::DA, &date);
    put_str(&mut obj, tags::CONTENT_TIME, VR::TM, &time);
    // Patient, General Study, Segmentation Series, Frame of Reference.
    put_patient_study(&mut obj, &reference.patient_study);
    put_str(&mut obj, tags::MODALITY, VR::CS, "SEG");
    put_str(&mut obj, tags::SERIES_INSTANCE_UID, VR::UI, &new_uid());
    put_str(&mut obj, tags::SERIES_NUMBER, VR::IS, SEG_SERIES_NUMBER);
    put_str(
        &mut obj,
        tags::SERIES_DESCRIPTION,
        VR::LO,
        &opts.series_description,
    );
    put_str(
        &mut obj,
        tags::FRAME_OF_REFERENCE_UID,
        VR::UI,
        &reference.frame_of_reference_uid,
    );
    put_str(&mut obj, tags::POSITION_REFERENCE_INDICATOR, VR::LO, "");
    // General and Enhanced General Equipment.
    put_equipment(&mut obj);
    // General Image and Content Identification.
    put_str(&mut obj, tags::INSTANCE_NUMBER, VR::IS, "1");
    put_str(&mut obj, tags::CONTENT_LABEL, VR::CS, CONTENT_LABEL);
    put_str(
        &mut obj,
        tags::CONTENT_DESCRIPTION,
        VR::LO,
        &opts.series_description,
    );
    put_str(&mut obj, tags::CONTENT_CREATOR_NAME, VR::PN, "");
    // Image Pixel and Segmentation Image.
    put_u16(&mut obj, tags::SAMPLES_PER_PIXEL, 1);
    put_str(
        &mut obj,
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        "MONOCHROME2",
    );
    put_u16(&mut obj, tags::ROWS, rows);
    put_u16(&mut obj, tags::COLUMNS, columns);
    put_u16(&mut obj, tags::BITS_ALLOCATED, 1);
    put_u16(&mut obj, tags::BITS_STORED, 1);
    put_u16(&mut obj, tags::HIGH_BIT, 0);
    put_u16(&mut obj, tags::PIXEL_REPRESENTATION, 0);
    put_str(&mut obj, tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00");
    put_str(&mut obj, tags::SEGMENTATION_TYPE, VR::CS, "BINARY");
    let segment_items = opts
        .segments
        .iter()
        .map(|s| segment_item(s, &opts.algorithm_name))
        .collect();
    put_seq(&mut obj, tags::SEGMENT_SEQUENCE, segment_items);
    // Multi-frame Dimension: frames are indexed by segment, then position.
    let dim_uid = new_uid();
    let mut org = InMemDicomObject::new_empty();
    put_str(&mut org, tags::DIMENSION_ORGANIZATION_UID, VR::UI, &dim_uid);
    put_seq(&mut obj, tags::DIMENSION_ORGANIZATION_SEQUENCE, vec![org]);
    put_str(&mut obj, tags::DIMENSION_ORGANIZATION_TYPE, VR::CS, "3D");
    let dims = vec![
        dimension_item(
            &dim_uid,
            tags::REFERENCED_SEGMENT_NUMBER,
            tags::SEGMENT_IDENTIFICATION_SEQUENCE,
            "Segment Number",
        ),
        dimension_item(
            &dim_uid,
            tags::IMAGE_POSITION_PATIENT,
            tags::PLANE_POSITION_SEQUENCE,
            "Image Position Patient",
        ),
    ];
    put_seq(&mut obj, tags::DIMENSION_INDEX_SEQUENCE, dims);
    // Multi-frame Functional Groups.
    put_str(
        &mut obj,
        tags::NUMBER_OF_FRAMES,
        VR::IS,
        &frames.len().to_string(),
    );
    let mut orientation = InMemDicomObject::new_empty();
    put_strs(
        &mut orientation,
        tags::IMAGE_ORIENTATION_PATIENT,
        VR::DS,
        &geom.iop.map(ds),
    );
    let mut measures = InMemDicomObject::new_empty();
    put_strs(
        &mut measures,
        tags::PIXEL_SPACING,
        VR::DS,
        &geom.pixel_spacing.map(ds),
    );
    put_str(
        &mut measures,
        tags::SLICE_THICKNESS,
        VR::DS,
        &ds(geom.slice_step),
    );
    put_str(
        &mut measures,
        tags::SPACING_BETWEEN_SLICES,
        VR::DS,
        &ds(geom.slice_step),
    );
    let mut shared = InMemDicomObject::new_empty();
    put_seq(
        &mut shared,
        tags::PLANE_ORIENTATION_SEQUENCE,
        vec![orientation],
    );
    put_seq(&mut shared, tags::PIXEL_MEASURES_SEQUENCE, vec![measures]);
    put_seq(
        &mut obj,
        tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE,
        vec![shared],
    );
    let per_frame = frames
        .iter()
        .map(|&(segment, k)| {
            frame_item(
                segment,
                geom.rank_along_normal(k),
                geom.positions[k],
                &reference.slices[k],
            )
        })
        .collect();
    put_seq(
        &mut obj,
        tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE,
        per_frame,
    );
    // Common Instance Reference: the whole source series.
    let instances = reference
        .slices
        .iter()
        .filter(|s| !s.interpolated)
        .map(referenced_image)
        .collect();
    let mut series = InMemDicomObject::new_empty();
    put_str(
        &mut series,
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        &reference.series_instance_uid,
    );
    put_seq(&mut series, tags::REFERENCED_INSTANCE_SEQUENCE, instances);
    put_seq(&mut obj, tags::REFERENCED_SERIES_SEQUENCE, vec![series]);
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        PrimitiveValue::from(pixel_data),
    ));

    let file = file_object(obj, path)?;
    write_file_atomic(path, opts.overwrite, |w| {
        file.write_all(w).map_err(std::io::Error::other)
    })
}

/// Packs the listed frames (segment number, slice) into DICOM's 1-bit
/// layout: frames back to back with no padding between them, pixels in
/// row-major order, the first pixel of each byte in its least significant
/// bit (PS3.5 §8.1.1), and the whole padded to an even length.
fn pack_frames(labels: &[u8], plane: usize, frames: &[(u16, usize)]) -> Vec<u8> {
    let bits = frames.len() * plane;
    let mut out = vec![0u8; bits.div_ceil(8).next_multiple_of(2)];
    for (f, &(segment, k)) in frames.iter().enumerate() {
        let slice = &labels[k * plane..(k + 1) * plane];
        for (p, &v) in slice.iter().enumerate() {
            if u16::from(v) == segment {
                let bit = f * plane + p;
                out[bit / 8] |= 1 << (bit % 8);
            }
        }
    }
    out
}

/// One item of the SegmentSequence.
fn segment_item(s: &SegmentDef, algorithm: &str) -> InMemDicomObject {
    let mut item = InMemDicomObject::new_empty();
    put_u16(&mut item, tags::SEGMENT_NUMBER, s.number);
    put_str(&mut item, tags::SEGMENT_LABEL, VR::LO, &s.label);
    let c = &s.category;
    put_seq(
        &mut item,
        tags::SEGMENTED_PROPERTY_CATEGORY_CODE_SEQUENCE,
        vec![code_item(&c.value, &c.scheme, &c.meaning)],
    );
    let t = &s.type_;
    put_seq(
        &mut item,
        tags::SEGMENTED_PROPERTY_TYPE_CODE_SEQUENCE,
        vec![code_item(&t.value, &t.scheme, &t.meaning)],
    );
    put_str(&mut item, tags::SEGMENT_ALGORITHM_TYPE, VR::CS, "AUTOMATIC");
    put_str(&mut item, tags::SEGMENT_ALGORITHM_NAME, VR::LO, algorithm);
    item
}

/// One item of the DimensionIndexSequence.
fn dimension_item(uid: &str, index: Tag, group: Tag, label: &str) -> InMemDicomObject {
    let mut item = InMemDicomObject::new_empty();
    put_str(&mut item, tags::DIMENSION_ORGANIZATION_UID, VR::UI, uid);
    item.put(DataElement::new(
        tags::DIMENSION_INDEX_POINTER,
        VR::AT,
        PrimitiveValue::from(index),
    ));
    item.put(DataElement::new(
        tags::FUNCTIONAL_GROUP_POINTER,
        VR::AT,
        PrimitiveValue::from(group),
    ));
    put_str(&mut item, tags::DIMENSION_DESCRIPTION_LABEL, VR::LO, label);
    item
}

/// A ReferencedSOPClassUID + ReferencedSOPInstanceUID item.
pub(crate) fn referenced_image(slice: &SliceRef) -> InMemDicomObject {
    let mut item = InMemDicomObject::new_empty();
    put_str(
        &mut item,
        tags::REFERENCED_SOP_CLASS_UID,
        VR::UI,
        &slice.sop_class_uid,
    );
    put_str(
        &mut item,
        tags::REFERENCED_SOP_INSTANCE_UID,
        VR::UI,
        &slice.sop_instance_uid,
    );
    item
}

/// One item of the PerFrameFunctionalGroupsSequence: where the frame lies,
/// which segment it shows, and which source image it was derived from.
fn frame_item(
    segment: u16,
    rank: usize,
    position: [f64; 3],
    source: &SliceRef,
) -> InMemDicomObject {
    let mut content = InMemDicomObject::new_empty();
    let index: C<u32> = [u32::from(segment), rank as u32].into_iter().collect();
    content.put(DataElement::new(
        tags::DIMENSION_INDEX_VALUES,
        VR::UL,
        PrimitiveValue::U32(index),
    ));
    let mut plane = InMemDicomObject::new_empty();
    put_strs(
        &mut plane,
        tags::IMAGE_POSITION_PATIENT,
        VR::DS,
        &position.map(ds),
    );
    let mut ident = InMemDicomObject::new_empty();
    put_u16(&mut ident, tags::REFERENCED_SEGMENT_NUMBER, segment);
    let mut src = referenced_image(source);
    // The frame lies on its source image's pixel grid (write_seg insists on
    // the reference grid), which lets readers index frames by source image.
    put_str(&mut src, tags::SPATIAL_LOCATIONS_PRESERVED, VR::CS, "YES");
    put_seq(
        &mut src,
        tags::PURPOSE_OF_REFERENCE_CODE_SEQUENCE,
        vec![code_item(
            "121322",
            "DCM",
            "Source image for image processing operation",
        )],
    );
    let mut derivation = InMemDicomObject::new_empty();
    put_seq(&mut derivation, tags::SOURCE_IMAGE_SEQUENCE, vec![src]);
    put_seq(
        &mut derivation,
        tags::DERIVATION_CODE_SEQUENCE,
        vec![code_item("113076", "DCM", "Segmentation")],
    );
    let mut item = InMemDicomObject::new_empty();
    put_seq(&mut item, tags::DERIVATION_IMAGE_SEQUENCE, vec![derivation]);
    put_seq(&mut item, tags::FRAME_CONTENT_SEQUENCE, vec![content]);
    put_seq(&mut item, tags::PLANE_POSITION_SEQUENCE, vec![plane]);
    put_seq(
        &mut item,
        tags::SEGMENT_IDENTIFICATION_SEQUENCE,
        vec![ident],
    );
    item
}

/// Checks that `reference` names a valid series with one image per slice.
/// Checks that `labels` lies on the grid of `reference_grid`, has slices,
/// and that `reference` lists one valid image per slice: what every object
/// written over a source series (SEG, RT Structure Set) needs.
pub(crate) fn check_on_reference<T: Voxel>(
    path: &Path,
    labels: &Volume<u8>,
    reference_grid: &Volume<T>,
    reference: &SeriesHeader,
) -> Result<()> {
    if !labels.same_grid(reference_grid, 1e-3) {
        return Err(Error::request(
            path,
            format!(
                "the label volume ({:?}, affine {:?}) is not on the reference grid ({:?}, \
                 affine {:?}); resample it onto the reference series first",
                labels.dims(),
                labels.affine().rows(),
                reference_grid.dims(),
                reference_grid.affine().rows()
            ),
        ));
    }
    let nz = labels.dims()[2];
    if nz == 0 {
        return Err(Error::request(path, "the label volume has no slices"));
    }
    check_reference(path, reference, nz)
}

fn check_reference(path: &Path, reference: &SeriesHeader, nslices: usize) -> Result<()> {
    if reference.slices.len() != nslices {
        return Err(Error::request(
            path,
            format!(
                "the reference series lists {} images but the label volume has {nslices} slices",
                reference.slices.len()
            ),
        ));
    }
    check_patient_study(path, &reference.patient_study)?;
    check_uid(
        path,
        "reference SeriesInstanceUID",
        &reference.series_instance_uid,
    )?;
    check_uid(
        path,
        "reference FrameOfReferenceUID",
        &reference.frame_of_reference_uid,
    )?;
    for (k, s) in reference.slices.iter().enumerate() {
        check_uid(
            path,
            &format!("SOPClassUID of reference slice {k}"),
            &s.sop_class_uid,
        )?;
        check_uid(
            path,
            &format!("SOPInstanceUID of reference slice {k}"),
            &s.sop_instance_uid,
        )?;
    }
    Ok(())
}

/// Checks the segment definitions and free texts of `opts`.
fn check_segments(path: &Path, opts: &SegOptions) -> Result<()> {
    if opts.segments.is_empty() {
        return Err(Error::request(
            path,
            "a SEG needs at least one segment definition",
        ));
    }
    if opts.segments.len() > 255 {
        return Err(Error::request(
            path,
            "a u8 label volume cannot hold more than 255 segments",
        ));
    }
    check_text(path, "SeriesDescription", &opts.series_description, 64)?;
    check_text(path, "SegmentAlgorithmName", &opts.algorithm_name, 64)?;
    if opts.algorithm_name.is_empty() {
        return Err(Error::request(
            path,
            "SegmentAlgorithmName must not be empty for AUTOMATIC segments",
        ));
    }
    for (i, s) in opts.segments.iter().enumerate() {
        if usize::from(s.number) != i + 1 {
            return Err(Error::request(
                path,
                format!(
                    "segment {} ({:?}) is numbered {}; segments must be numbered 1, 2, 3, ... \
                     in order",
                    i + 1,
                    s.label,
                    s.number
                ),
            ));
        }
        check_text(path, "SegmentLabel", &s.label, 64)?;
        for (what, c) in [("category", &s.category), ("type", &s.type_)] {
            if c.value.is_empty() || c.scheme.is_empty() || c.meaning.is_empty() {
                return Err(Error::request(
                    path,
                    format!("segment {} {what} code {c:?} has an empty part", s.number),
                ));
            }
            check_text(path, "CodeValue", &c.value, 16)?;
            check_text(path, "CodingSchemeDesignator", &c.scheme, 16)?;
            check_text(path, "CodeMeaning", &c.meaning, 64)?;
        }
    }
    Ok(())
}

/// Checks that every non-zero label is a defined segment number.
pub(crate) fn check_label_values(path: &Path, labels: &Volume<u8>, nsegments: usize) -> Result<()> {
    let mut counts = [0usize; 256];
    for &v in labels.data() {
        counts[usize::from(v)] += 1;
    }
    if let Some((value, n)) = counts
        .iter()
        .enumerate()
        .skip(nsegments + 1)
        .find(|(_, n)| **n > 0)
    {
        return Err(Error::request(
            path,
            format!(
                "{n} voxels have label {value} but only segments 1..={nsegments} are defined; \
                 add a SegmentDef for it or relabel the volume"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_pack_lsb_first_without_padding_between_frames() {
        // Two 3x1 slices; frames: segment 1 on slice 1, segment 2 on slice 0.
        let labels = [2, 0, 2, 1, 1, 0];
        let packed = pack_frames(&labels, 3, &[(1, 1), (2, 0)]);
        // Bits 0..3 = slice 1 == 1 -> 1,1,0; bits 3..6 = slice 0 == 2 ->
        // 1,0,1. Byte 0 = 0b0010_1011. Padded to an even length.
        assert_eq!(packed, vec![0b0010_1011, 0]);
    }

    #[test]
    fn nine_pixel_frames_straddle_bytes() {
        let labels = [1u8; 9];
        let packed = pack_frames(&labels, 9, &[(1, 0)]);
        assert_eq!(packed, vec![0xFF, 0x01]);
    }

    #[test]
    fn segment_numbers_must_run_from_one() {
        let dir = Path::new("out.dcm");
        let mut opts = SegOptions::default();
        assert!(check_segments(dir, &opts).is_ok());
        opts.segments = vec![SegmentDef::liver(2)];
        let e = check_segments(dir, &opts).unwrap_err();
        assert!(e.to_string().contains("numbered 2"), "{e}");
        opts.segments = vec![];
        assert!(check_segments(dir, &opts).is_err());
        opts.segments = vec![SegmentDef {
            label: "bad\\label".into(),
            ..SegmentDef::liver(1)
        }];
        assert!(check_segments(dir, &opts).is_err());
    }
}
