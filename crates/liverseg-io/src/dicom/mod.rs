//! DICOM: CT/MR images (single files, series directories, Enhanced
//! multi-frame), CT series writing, and binary Segmentation (SEG) objects.
//!
//! Geometry follows DICOM's LPS patient coordinates on disk and is converted
//! to RAS for [`crate::Volume`]: array axis 0 runs along a row (the column
//! index, `ImageOrientationPatient[0..3]`), axis 1 down a column (the row
//! index, `ImageOrientationPatient[3..6]`), axis 2 along the slice normal
//! (row × column), ordered by position along that normal.

use std::path::PathBuf;

mod anatomy;
mod contours;
mod rtstruct_write;
mod seg_write;
mod uid;
mod write;
mod write_elements;

pub use rtstruct_write::{RtStructOptions, write_rtstruct};
pub use seg_write::{CodedConcept, SegOptions, SegmentDef, write_seg};
pub use uid::new_uid;
pub use write::{WriteSeriesOptions, write_series};

/// Patient and study attributes shared by every object of one study. All
/// fields hold the DICOM string value (empty when absent).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PatientStudy {
    /// (0010,0010) PatientName.
    pub patient_name: String,
    /// (0010,0020) PatientID.
    pub patient_id: String,
    /// (0010,0030) PatientBirthDate.
    pub patient_birth_date: String,
    /// (0010,0040) PatientSex.
    pub patient_sex: String,
    /// (0020,000D) StudyInstanceUID.
    pub study_instance_uid: String,
    /// (0008,0020) StudyDate.
    pub study_date: String,
    /// (0008,0030) StudyTime.
    pub study_time: String,
    /// (0020,0010) StudyID.
    pub study_id: String,
    /// (0008,0050) AccessionNumber.
    pub accession_number: String,
    /// (0008,0090) ReferringPhysicianName.
    pub referring_physician_name: String,
    /// (0008,1030) StudyDescription.
    pub study_description: String,
}

/// One source image of a series, in volume order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SliceRef {
    /// (0008,0016) SOPClassUID.
    pub sop_class_uid: String,
    /// (0008,0018) SOPInstanceUID.
    pub sop_instance_uid: String,
    /// The file it was read from or written to, when known.
    pub path: Option<PathBuf>,
    /// True for a slice of a volume read with
    /// [`ReadOptions::equalise_gaps`] that lies between two source images
    /// (its values interpolated); the fields above then name the nearer
    /// one. A SEG writes no frame on such a slice.
    pub interpolated: bool,
}

/// What identifies a series and its images, beside the voxels: enough to
/// write objects (SEG, a derived series) that reference it.
///
/// `slices[k]` is the image holding slice `k` of the matching
/// [`crate::Volume`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeriesHeader {
    /// Patient and study attributes.
    pub patient_study: PatientStudy,
    /// (0020,000E) SeriesInstanceUID.
    pub series_instance_uid: String,
    /// (0020,0052) FrameOfReferenceUID.
    pub frame_of_reference_uid: String,
    /// (0008,0060) Modality.
    pub modality: String,
    /// (0008,103E) SeriesDescription.
    pub series_description: String,
    /// The images, in slice order along the volume's third axis.
    pub slices: Vec<SliceRef>,
    /// For a 2-D image read with [`ReadOptions::assume_geometry`] that had
    /// no position: what was assumed, in words. `None` when the geometry
    /// is the file's own.
    pub assumed_geometry: Option<String>,
}

mod aside;
mod attrs;
mod frames;
mod jpeg12;
mod jpegls;
mod layout;

/// True when `head`, the first bytes of a file of `file_len` bytes, starts
/// a DICOM file, with or without the preamble and the file meta group.
pub(crate) fn looks_like_dicom(head: &[u8], file_len: usize) -> bool {
    layout::layout(head, file_len).is_some()
}
mod own_codecs;
mod pixels;
mod planes;
mod prescan;
mod probe;
mod read;
mod seg_read;
mod series;
mod stack;

pub use frames::{Frames, read_frames};
pub use probe::{DicomProbe, probe};
pub use read::{ReadOptions, read, read_with_header};
pub use seg_read::{SegmentDescription, Segmentation, read_seg};
pub use series::{SeriesSummary, list_series};
