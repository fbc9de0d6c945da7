//! DICOM helpers shared by `info`, `convert` and `predict`: the read
//! options a `--series-uid` gives, and the segments a label map's SEG
//! describes.

use liverseg_io::Volume;
use liverseg_io::dicom::{self, CodedConcept, SegmentDef};

/// Read options of `info` and `convert`: `series_uid` chooses in a folder
/// of several series, and a 2-D image without a position is read with an
/// assumed geometry, which they report (`predict` refuses such images).
pub(crate) fn read_opts(series_uid: Option<&String>) -> dicom::ReadOptions {
    dicom::ReadOptions {
        series_instance_uid: series_uid.cloned(),
        assume_geometry: true,
        ..Default::default()
    }
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
