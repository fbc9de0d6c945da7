//! The label values of a clinical phantom with
//! [`super::ClinicalOptions::organ_labels`]: the liver (and its tumours)
//! as always, and the organs around it, each one value.

/// A labelled structure and its value in the label volume.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Organ {
    /// The liver, with its intrahepatic vessels and lesions (Task03's rule).
    Liver = 1,
    /// Malignant liver lesions, when [`super::ClinicalOptions::tumour_label`]
    /// is set.
    LiverTumour = 2,
    /// The spleen.
    Spleen = 3,
    /// Both kidneys: cortex, medulla and pelvis.
    Kidney = 4,
    /// The stomach: wall, contents and gas.
    Stomach = 5,
    /// The pancreas.
    Pancreas = 6,
    /// The gallbladder.
    Gallbladder = 7,
    /// The aorta with its branches (iliac, renal, coeliac, mesenteric).
    Aorta = 8,
    /// The inferior vena cava with the renal and iliac veins.
    InferiorVenaCava = 9,
}

impl Organ {
    /// Every labelled structure, by value.
    pub const ALL: [Organ; 9] = [
        Organ::Liver,
        Organ::LiverTumour,
        Organ::Spleen,
        Organ::Kidney,
        Organ::Stomach,
        Organ::Pancreas,
        Organ::Gallbladder,
        Organ::Aorta,
        Organ::InferiorVenaCava,
    ];

    /// Its value in the label volume.
    pub fn value(self) -> u8 {
        self as u8
    }

    /// Its name in a `dataset.json` label table.
    pub fn name(self) -> &'static str {
        match self {
            Organ::Liver => "liver",
            Organ::LiverTumour => "liver_tumour",
            Organ::Spleen => "spleen",
            Organ::Kidney => "kidney",
            Organ::Stomach => "stomach",
            Organ::Pancreas => "pancreas",
            Organ::Gallbladder => "gallbladder",
            Organ::Aorta => "aorta",
            Organ::InferiorVenaCava => "inferior_vena_cava",
        }
    }
}
