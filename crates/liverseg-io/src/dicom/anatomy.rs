//! The coded concepts a DICOM SEG segment carries for a class name: the
//! segmented property category and type from SNOMED CT (DICOM CID 7150 and
//! 7151), so PACS and 3D Slicer show `Spleen`, not `Segment 3`.
//!
//! Codes were checked against pydicom's `pydicom.sr.codedict.codes.SCT`.

use super::{CodedConcept, SegmentDef};

/// (0062,0003) category of organs and vessels.
const ANATOMY: (&str, &str) = ("123037004", "Anatomical Structure");
/// (0062,0003) category of lesions.
const ALTERED: (&str, &str) = ("49755003", "Morphologically Altered Structure");

/// Structures by the words a dataset may name them with (lower case,
/// underscores for spaces), most specific first, with their SNOMED CT code
/// and meaning.
const STRUCTURES: [(&[&str], &str, &str); 30] = [
    (
        &["inferior_vena_cava", "ivc", "vena_cava"],
        "64131007",
        "Inferior vena cava",
    ),
    (&["portal_vein"], "32764006", "Portal vein"),
    (&["hepatic_vein"], "8993003", "Hepatic vein"),
    (&["abdominal_aorta"], "7832008", "Abdominal aorta"),
    (&["aorta"], "15825003", "Aorta"),
    (&["left_kidney", "kidney_left"], "18639004", "Left kidney"),
    (&["right_kidney", "kidney_right"], "9846003", "Right kidney"),
    (&["kidney"], "64033007", "Kidney"),
    (&["adrenal"], "23451007", "Adrenal gland"),
    (&["gallbladder", "gall_bladder"], "28231008", "Gallbladder"),
    (&["urinary_bladder", "bladder"], "89837001", "Bladder"),
    (&["liver"], "10200004", "Liver"),
    (&["spleen"], "78961009", "Spleen"),
    (&["stomach"], "69695003", "Stomach"),
    (&["pancreas"], "15776009", "Pancreas"),
    (&["duodenum"], "38848004", "Duodenum"),
    (
        &["small_intestine", "small_bowel"],
        "30315005",
        "Small intestine",
    ),
    (&["colon"], "71854001", "Colon"),
    (&["rectum"], "34402009", "Rectum"),
    (&["esophagus", "oesophagus"], "32849002", "Esophagus"),
    (&["left_atrium"], "82471001", "Left atrium"),
    (&["heart"], "80891009", "Heart"),
    (&["lung"], "39607008", "Lung"),
    (&["trachea"], "44567001", "Trachea"),
    (&["hippocampus"], "5366008", "Hippocampus"),
    (&["brain"], "12738006", "Brain"),
    (&["prostate"], "41216001", "Prostate"),
    (&["uterus"], "35039007", "Uterus"),
    (&["vessel", "vasculature"], "59820001", "Blood vessel"),
    (&["artery"], "51114001", "Artery"),
];

/// Lesions by the words that name them, with their code and meaning.
const LESIONS: [(&[&str], &str, &str); 6] = [
    (&["edema", "oedema"], "79654002", "Edema"),
    (&["necrosis", "necrotic"], "6574001", "Necrosis"),
    (&["cyst"], "367643001", "Cyst"),
    (
        &[
            "tumour",
            "tumor",
            "cancer",
            "neoplasm",
            "carcinoma",
            "metasta",
        ],
        "108369006",
        "Neoplasm",
    ),
    (&["mass"], "4147007", "Mass"),
    (&["lesion"], "52988006", "Lesion"),
];

fn find<'a>(
    name: &str,
    table: &'a [(&[&str], &str, &str)],
) -> Option<&'a (&'a [&'a str], &'a str, &'a str)> {
    table
        .iter()
        .find(|(words, _, _)| words.iter().any(|w| name.contains(w)))
}

impl SegmentDef {
    /// The segment numbered `number` for a class called `name`
    /// (`spleen`, `liver_tumour`, `Left Atrium`, ...): a lesion word
    /// (tumour, cancer, cyst, oedema, ...) makes it a Morphologically
    /// Altered Structure of that type, a known organ or vessel an
    /// Anatomical Structure of that type, anything else generic Tissue.
    /// The segment label is the name as the dataset gives it, with
    /// underscores as spaces and a capital first letter.
    pub fn named(number: u16, name: &str) -> SegmentDef {
        let key = name.trim().to_ascii_lowercase().replace([' ', '-'], "_");
        let mut label = name.trim().replace('_', " ");
        if let Some(first) = label.get(0..1) {
            label = first.to_ascii_uppercase() + &label[1..];
        }
        let label: String = label.chars().take(64).collect();
        let (category, type_) = if let Some((_, code, meaning)) = find(&key, &LESIONS) {
            (ALTERED, (*code, *meaning))
        } else if let Some((_, code, meaning)) = find(&key, &STRUCTURES) {
            (ANATOMY, (*code, *meaning))
        } else {
            (("85756007", "Tissue"), ("85756007", "Tissue"))
        };
        SegmentDef {
            number,
            label,
            category: CodedConcept::new(category.0, "SCT", category.1),
            type_: CodedConcept::new(type_.0, "SCT", type_.1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(name: &str) -> (String, String, String) {
        let s = SegmentDef::named(1, name);
        (s.label, s.category.meaning, s.type_.meaning)
    }

    #[test]
    fn names_get_their_anatomy_codes() {
        let c = |l: &str, cat: &str, t: &str| (l.to_string(), cat.to_string(), t.to_string());
        let anat = "Anatomical Structure";
        let alt = "Morphologically Altered Structure";
        assert_eq!(codes("liver"), c("Liver", anat, "Liver"));
        assert_eq!(codes("liver_tumour"), c("Liver tumour", alt, "Neoplasm"));
        assert_eq!(codes("cancer"), c("Cancer", alt, "Neoplasm"));
        assert_eq!(
            codes("inferior_vena_cava"),
            c("Inferior vena cava", anat, "Inferior vena cava")
        );
        assert_eq!(codes("Left Atrium"), c("Left Atrium", anat, "Left atrium"));
        assert_eq!(codes("kidney cyst"), c("Kidney cyst", alt, "Cyst"));
        assert_eq!(
            codes("peritumoral edema"),
            c("Peritumoral edema", alt, "Edema")
        );
        assert_eq!(codes("thing"), c("Thing", "Tissue", "Tissue"));
        assert_eq!(SegmentDef::named(1, "liver"), SegmentDef::liver(1));
        assert_eq!(SegmentDef::named(2, "spleen").type_.value, "78961009");
        assert_eq!(SegmentDef::named(3, &"x".repeat(90)).label.len(), 64);
    }
}
