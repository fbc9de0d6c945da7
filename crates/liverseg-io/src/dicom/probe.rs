//! A quick look at a DICOM file's header: what kind of object it is and how
//! its pixels are stored, without decoding them.

use super::attrs::Attrs;
use super::planes::open;
use super::series::SEG_SOP_CLASS;
use crate::Result;
use dicom_dictionary_std::tags;
use std::path::Path;

/// Identifying and pixel-format attributes of one DICOM file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DicomProbe {
    /// (0008,0016) SOPClassUID.
    pub sop_class_uid: String,
    /// (0008,0060) Modality.
    pub modality: String,
    /// The transfer syntax UID of the data set.
    pub transfer_syntax_uid: String,
    /// (0008,0018) SOPInstanceUID.
    pub sop_instance_uid: String,
    /// (0020,000D) StudyInstanceUID.
    pub study_instance_uid: String,
    /// (0020,000E) SeriesInstanceUID.
    pub series_instance_uid: String,
    /// (0028,0010) Rows.
    pub rows: u32,
    /// (0028,0011) Columns.
    pub columns: u32,
    /// (0028,0008) NumberOfFrames, 1 when absent.
    pub frames: u32,
    /// (0028,0100) BitsAllocated.
    pub bits_allocated: u32,
    /// (0028,0103) PixelRepresentation: 1 for signed pixels.
    pub pixel_representation: u32,
}

impl DicomProbe {
    /// True for a Segmentation Storage object.
    pub fn is_segmentation(&self) -> bool {
        self.sop_class_uid == SEG_SOP_CLASS
    }

    /// numpy's name for the stored pixel type (`uint8`, `int16`, `uint16`,
    /// `uint32`, ...), or `"bit"` for bit-packed frames.
    pub fn stored_dtype(&self) -> String {
        match (self.bits_allocated, self.pixel_representation) {
            (1, _) => "bit".into(),
            (b, 1) => format!("int{b}"),
            (b, _) => format!("uint{b}"),
        }
    }
}

/// Reads the header of a DICOM file (up to the pixel data).
pub fn probe(path: &Path) -> Result<DicomProbe> {
    let obj = open(path, true)?;
    let transfer_syntax_uid = obj
        .meta()
        .transfer_syntax()
        .trim_end_matches('\0')
        .to_string();
    let a = Attrs::new(path, &obj);
    Ok(DicomProbe {
        sop_class_uid: a.string(tags::SOP_CLASS_UID),
        modality: a.string(tags::MODALITY),
        transfer_syntax_uid,
        sop_instance_uid: a.string(tags::SOP_INSTANCE_UID),
        study_instance_uid: a.string(tags::STUDY_INSTANCE_UID),
        series_instance_uid: a.string(tags::SERIES_INSTANCE_UID),
        rows: a.uint(tags::ROWS)?.unwrap_or(0),
        columns: a.uint(tags::COLUMNS)?.unwrap_or(0),
        frames: a.uint(tags::NUMBER_OF_FRAMES)?.unwrap_or(1),
        bits_allocated: a.uint(tags::BITS_ALLOCATED)?.unwrap_or(0),
        pixel_representation: a.uint(tags::PIXEL_REPRESENTATION)?.unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_ct_and_seg_fixtures() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dicom");
        let ct = probe(&dir.join("CT_small.dcm")).unwrap();
        assert_eq!((ct.rows, ct.columns, ct.frames), (128, 128, 1));
        assert_eq!(ct.modality, "CT");
        // pydicom: CT_small.dcm's StudyInstanceUID.
        assert_eq!(
            ct.study_instance_uid,
            "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"
        );
        assert_eq!(ct.stored_dtype(), "int16");
        assert!(!ct.is_segmentation());
        let seg = probe(&dir.join("liver_1frame.dcm")).unwrap();
        assert!(seg.is_segmentation());
        assert_eq!(seg.stored_dtype(), "bit");
    }
}
