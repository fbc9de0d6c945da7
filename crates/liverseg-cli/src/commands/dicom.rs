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

/// The SEG of a prediction: one segment per class present, named and coded
/// from the model card's class name ([`SegmentDef::named`]), numbered 1,
/// 2, ... in class order, and the label volume renumbered to match (the
/// NIfTI output keeps the card's values).
pub(crate) fn seg_of(
    labels: &Volume<u8>,
    classes: &[String],
    values: &[u8],
) -> (Volume<u8>, Vec<SegmentDef>) {
    let mut present = [false; 256];
    for &v in labels.data() {
        present[usize::from(v)] = true;
    }
    let mut number = [0u8; 256];
    let mut segments = Vec::new();
    for (name, &v) in classes.iter().zip(values).skip(1) {
        if v > 0 && present[usize::from(v)] {
            let n = segments.len() as u16 + 1;
            number[usize::from(v)] = n as u8;
            segments.push(SegmentDef::named(n, name));
        }
    }
    (labels.map(|v| number[usize::from(v)]), segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seg_has_a_segment_per_class_present() {
        let data = vec![0u8, 3, 3, 9, 0, 9, 9, 0];
        let labels = Volume::new([2, 2, 2], liverseg_io::Affine::identity(), data).unwrap();
        let classes: Vec<String> = ["background", "liver", "spleen", "kidney"]
            .map(String::from)
            .to_vec();
        let (seg, defs) = seg_of(&labels, &classes, &[0, 1, 3, 9]);
        assert_eq!(seg.data(), &[0, 1, 1, 2, 0, 2, 2, 0]);
        let names: Vec<(u16, &str)> = defs.iter().map(|d| (d.number, d.label.as_str())).collect();
        assert_eq!(names, [(1, "Spleen"), (2, "Kidney")]);
        assert_eq!(defs[1].type_.value, "64033007");
    }
}
