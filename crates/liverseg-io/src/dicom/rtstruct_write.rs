//! RT Structure Set (RTSTRUCT) writing: a label volume on the grid of a CT
//! series as planar contours in patient coordinates, one ROI per class,
//! referencing the series image by image, as TotalSegmentator's
//! `dicom_rtstruct` output and rt-utils write them.
//!
//! Each slice of each class becomes closed planar contours through the
//! centres of its boundary pixels (`contours.rs`: equal to OpenCV's
//! `findContours`; holes and separate islands each get their own contour),
//! placed in LPS millimetres through the volume's affine, each referencing
//! the image of its slice.

use super::contours::slice_contours;
use super::seg_write::{SegmentDef, check_label_values, check_on_reference, referenced_image};
use super::uid::new_uid;
use super::write_elements::{
    check_text, dicom_now, ds, file_object, needs_utf8, put_equipment, put_patient_study, put_seq,
    put_str, put_strs,
};
use super::{SeriesHeader, SliceRef};
use crate::{Error, Overwrite, Result, Volume, Voxel, write_file_atomic};
use dicom_core::VR;
use dicom_dictionary_std::{tags, uids};
use dicom_object::InMemDicomObject;
use std::path::Path;

/// Options for [`write_rtstruct`].
#[derive(Clone, Debug)]
pub struct RtStructOptions {
    /// Whether an existing output file may be replaced.
    pub overwrite: Overwrite,
    /// The ROIs, numbered 1, 2, ... in order; label value `n` in the label
    /// volume belongs to ROI `n` (the same numbering as a SEG's segments).
    pub rois: Vec<SegmentDef>,
    /// (0008,103E) SeriesDescription, also the StructureSetDescription.
    pub series_description: String,
    /// (3006,0036) ROIGenerationAlgorithm is AUTOMATIC; this names the
    /// algorithm in (3006,0038) ROIGenerationDescription.
    pub algorithm_name: String,
}

impl Default for RtStructOptions {
    fn default() -> Self {
        RtStructOptions {
            overwrite: Overwrite::Never,
            rois: vec![SegmentDef::liver(1)],
            series_description: "liverseg segmentation".into(),
            algorithm_name: "liverseg".into(),
        }
    }
}

/// The SeriesNumber of written RTSTRUCT series (beside the SEG's 300).
const RTSTRUCT_SERIES_NUMBER: &str = "301";

/// Display colours by ROI number (RGB), cycling.
const COLOURS: [[u8; 3]; 8] = [
    [221, 130, 101],
    [144, 238, 144],
    [111, 184, 210],
    [216, 101, 79],
    [183, 156, 220],
    [241, 214, 145],
    [250, 250, 225],
    [128, 174, 128],
];

/// Detached Study Management SOP Class: retired, but the class RT
/// Structure Sets conventionally reference their study by (RTReferenced
/// StudySequence), as rt-utils and treatment planning systems write it.
const DETACHED_STUDY_MANAGEMENT: &str = "1.2.840.10008.3.1.2.3.1";

/// SNOMED CT "Anatomical Structure", the category of organs and vessels.
const ANATOMICAL_STRUCTURE: &str = "123037004";

/// Writes `labels` as an RT Structure Set of the series `reference`, whose
/// voxels lie on the grid of `reference_grid` (slice `k` of it is
/// `reference.slices[k]`).
///
/// Every non-zero label value must be the number of one of `opts.rois`.
/// Each ROI gets the contours of its label on every source slice (none on
/// the slices an equalised volume interpolated). An ROI absent everywhere
/// is left out (the standard wants at least one contour per ROI, and
/// readers such as rt-utils expect one); the others keep their numbers.
/// When every ROI is absent the request is refused: a structure set needs
/// one. Patient, study and FrameOfReferenceUID are
/// copied from `reference`; Series and SOP Instance UIDs are fresh. The
/// file is written atomically.
///
/// Errors: as [`super::write_seg`]: [`Error::Request`] for a label volume
/// off the reference grid, a reference without one valid image per slice,
/// a label value without an ROI or malformed ROI definitions;
/// [`Error::Exists`] and [`Error::Io`] when writing.
pub fn write_rtstruct<T: Voxel>(
    path: &Path,
    labels: &Volume<u8>,
    reference_grid: &Volume<T>,
    reference: &SeriesHeader,
    opts: &RtStructOptions,
) -> Result<()> {
    check_on_reference(path, labels, reference_grid, reference)?;
    let [nx, ny, nz] = labels.dims();
    if opts.rois.is_empty() || opts.rois.len() > 255 {
        return Err(Error::request(
            path,
            "an RT Structure Set needs 1 to 255 ROIs",
        ));
    }
    for (k, r) in opts.rois.iter().enumerate() {
        if usize::from(r.number) != k + 1 {
            return Err(Error::request(
                path,
                format!(
                    "ROI {k} is numbered {}; ROIs are numbered 1, 2, ... in order",
                    r.number
                ),
            ));
        }
        check_text(path, "ROIName", &r.label, 64)?;
    }
    check_text(path, "SeriesDescription", &opts.series_description, 64)?;
    check_text(path, "ROIGenerationDescription", &opts.algorithm_name, 64)?;
    check_label_values(path, labels, opts.rois.len())?;

    let plane = nx * ny;
    let lps = |i: usize, j: usize, k: usize| {
        let [x, y, z] = labels.world(i as f64, j as f64, k as f64);
        [-x, -y, z]
    };
    // Per ROI: its contour items, slice by slice.
    let mut contours: Vec<Vec<InMemDicomObject>> = vec![Vec::new(); opts.rois.len()];
    for k in (0..nz).filter(|&k| !reference.slices[k].interpolated) {
        let slice = &labels.data()[k * plane..(k + 1) * plane];
        for roi in &opts.rois {
            let value = roi.number as u8;
            if !slice.contains(&value) {
                continue;
            }
            let mask: Vec<bool> = slice.iter().map(|&v| v == value).collect();
            for c in slice_contours(&mask, nx, ny) {
                let points: Vec<[f64; 3]> = c.iter().map(|&(i, j)| lps(i, j, k)).collect();
                let list = &mut contours[usize::from(roi.number) - 1];
                let number = list.len() + 1;
                list.push(contour_item(&points, &reference.slices[k], number));
            }
        }
    }

    // ROIs with contours, with theirs.
    let (present, contours): (Vec<&SegmentDef>, Vec<Vec<InMemDicomObject>>) = opts
        .rois
        .iter()
        .zip(contours)
        .filter(|(_, c)| !c.is_empty())
        .unzip();
    if present.is_empty() {
        return Err(Error::request(
            path,
            "no ROI has a contour (the mask is empty): there is no structure set to write",
        ));
    }
    let (date, time) = dicom_now();
    let mut obj = InMemDicomObject::new_empty();
    let any_utf8 = needs_utf8(&reference.patient_study)
        || !opts.series_description.is_ascii()
        || !opts.algorithm_name.is_ascii()
        || opts.rois.iter().any(|r| !r.label.is_ascii());
    if any_utf8 {
        put_str(&mut obj, tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192");
    }
    // SOP Common.
    put_str(
        &mut obj,
        tags::SOP_CLASS_UID,
        VR::UI,
        uids::RT_STRUCTURE_SET_STORAGE,
    );
    put_str(&mut obj, tags::SOP_INSTANCE_UID, VR::UI, &new_uid());
    put_str(&mut obj, tags::INSTANCE_CREATION_DATE, VR::DA, &date);
    put_str(&mut obj, tags::INSTANCE_CREATION_TIME, VR::TM, &time);
    // Patient, General Study, RT Series, General Equipment.
    put_patient_study(&mut obj, &reference.patient_study);
    put_str(&mut obj, tags::MODALITY, VR::CS, "RTSTRUCT");
    put_str(&mut obj, tags::SERIES_INSTANCE_UID, VR::UI, &new_uid());
    put_str(
        &mut obj,
        tags::SERIES_NUMBER,
        VR::IS,
        RTSTRUCT_SERIES_NUMBER,
    );
    put_str(&mut obj, tags::SERIES_DATE, VR::DA, &date);
    put_str(&mut obj, tags::SERIES_TIME, VR::TM, &time);
    put_str(
        &mut obj,
        tags::SERIES_DESCRIPTION,
        VR::LO,
        &opts.series_description,
    );
    put_str(&mut obj, tags::OPERATORS_NAME, VR::PN, "");
    // Frame of Reference: the CT's.
    put_str(
        &mut obj,
        tags::FRAME_OF_REFERENCE_UID,
        VR::UI,
        &reference.frame_of_reference_uid,
    );
    put_str(&mut obj, tags::POSITION_REFERENCE_INDICATOR, VR::LO, "");
    put_equipment(&mut obj);
    // Structure Set.
    put_str(&mut obj, tags::STRUCTURE_SET_LABEL, VR::SH, "LIVERSEG");
    put_str(
        &mut obj,
        tags::STRUCTURE_SET_DESCRIPTION,
        VR::ST,
        &opts.series_description,
    );
    put_str(&mut obj, tags::INSTANCE_NUMBER, VR::IS, "1");
    put_str(&mut obj, tags::STRUCTURE_SET_DATE, VR::DA, &date);
    put_str(&mut obj, tags::STRUCTURE_SET_TIME, VR::TM, &time);
    put_seq(
        &mut obj,
        tags::REFERENCED_FRAME_OF_REFERENCE_SEQUENCE,
        vec![frame_of_reference_item(reference)],
    );
    let for_uid = &reference.frame_of_reference_uid;
    let rois = present
        .iter()
        .map(|r| {
            let mut item = InMemDicomObject::new_empty();
            put_str(&mut item, tags::ROI_NUMBER, VR::IS, &r.number.to_string());
            put_str(
                &mut item,
                tags::REFERENCED_FRAME_OF_REFERENCE_UID,
                VR::UI,
                for_uid,
            );
            put_str(&mut item, tags::ROI_NAME, VR::LO, &r.label);
            put_str(
                &mut item,
                tags::ROI_GENERATION_ALGORITHM,
                VR::CS,
                "AUTOMATIC",
            );
            put_str(
                &mut item,
                tags::ROI_GENERATION_DESCRIPTION,
                VR::LO,
                &opts.algorithm_name,
            );
            item
        })
        .collect();
    put_seq(&mut obj, tags::STRUCTURE_SET_ROI_SEQUENCE, rois);
    // ROI Contour.
    let roi_contours = present
        .iter()
        .zip(contours)
        .map(|(r, list)| {
            let mut item = InMemDicomObject::new_empty();
            let colour = COLOURS[(usize::from(r.number) - 1) % COLOURS.len()];
            put_strs(
                &mut item,
                tags::ROI_DISPLAY_COLOR,
                VR::IS,
                &colour.map(|c| c.to_string()),
            );
            put_seq(&mut item, tags::CONTOUR_SEQUENCE, list);
            put_str(
                &mut item,
                tags::REFERENCED_ROI_NUMBER,
                VR::IS,
                &r.number.to_string(),
            );
            item
        })
        .collect();
    put_seq(&mut obj, tags::ROI_CONTOUR_SEQUENCE, roi_contours);
    // RT ROI Observations.
    let observations = present
        .iter()
        .map(|r| {
            let mut item = InMemDicomObject::new_empty();
            let n = r.number.to_string();
            put_str(&mut item, tags::OBSERVATION_NUMBER, VR::IS, &n);
            put_str(&mut item, tags::REFERENCED_ROI_NUMBER, VR::IS, &n);
            let kind = if r.category.value == ANATOMICAL_STRUCTURE {
                "ORGAN"
            } else {
                ""
            };
            put_str(&mut item, tags::RTROI_INTERPRETED_TYPE, VR::CS, kind);
            put_str(&mut item, tags::ROI_INTERPRETER, VR::PN, "");
            item
        })
        .collect();
    put_seq(&mut obj, tags::RTROI_OBSERVATIONS_SEQUENCE, observations);

    let file = file_object(obj, path)?;
    write_file_atomic(path, opts.overwrite, |w| {
        file.write_all(w).map_err(std::io::Error::other)
    })
}

/// One contour: closed, planar, on one source image.
fn contour_item(points: &[[f64; 3]], slice: &SliceRef, number: usize) -> InMemDicomObject {
    let mut item = InMemDicomObject::new_empty();
    put_seq(
        &mut item,
        tags::CONTOUR_IMAGE_SEQUENCE,
        vec![referenced_image(slice)],
    );
    put_str(
        &mut item,
        tags::CONTOUR_GEOMETRIC_TYPE,
        VR::CS,
        "CLOSED_PLANAR",
    );
    put_str(
        &mut item,
        tags::NUMBER_OF_CONTOUR_POINTS,
        VR::IS,
        &points.len().to_string(),
    );
    put_str(&mut item, tags::CONTOUR_NUMBER, VR::IS, &number.to_string());
    let data: Vec<String> = points.iter().flat_map(|p| p.map(ds)).collect();
    put_strs(&mut item, tags::CONTOUR_DATA, VR::DS, &data);
    item
}

/// The frame of reference, study, series and every image the contours
/// lie on.
fn frame_of_reference_item(reference: &SeriesHeader) -> InMemDicomObject {
    let images: Vec<InMemDicomObject> = reference
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
    put_seq(&mut series, tags::CONTOUR_IMAGE_SEQUENCE, images);
    let mut study = InMemDicomObject::new_empty();
    // The study is referenced by the (retired) Detached Study Management
    // class, as RT Structure Sets conventionally do.
    put_str(
        &mut study,
        tags::REFERENCED_SOP_CLASS_UID,
        VR::UI,
        DETACHED_STUDY_MANAGEMENT,
    );
    put_str(
        &mut study,
        tags::REFERENCED_SOP_INSTANCE_UID,
        VR::UI,
        &reference.patient_study.study_instance_uid,
    );
    put_seq(
        &mut study,
        tags::RT_REFERENCED_SERIES_SEQUENCE,
        vec![series],
    );
    let mut item = InMemDicomObject::new_empty();
    put_str(
        &mut item,
        tags::FRAME_OF_REFERENCE_UID,
        VR::UI,
        &reference.frame_of_reference_uid,
    );
    put_seq(&mut item, tags::RT_REFERENCED_STUDY_SEQUENCE, vec![study]);
    item
}
