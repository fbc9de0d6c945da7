//! The patient: organ shapes and intensities drawn from a seed, defined in
//! the patient-centred RAS frame (mm), and the rule that tells which tissue
//! lies at a world point.

use crate::shapes::{Blob, Tube, ellipse_r2, jitter};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::f64::consts::PI;

/// The tissue classes a phantom is painted with. The discriminant is the
/// value [`crate::tissue_map`] stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Tissue {
    /// Outside the patient.
    Air = 0,
    /// The scanner table under the patient.
    Table = 1,
    /// Subcutaneous fat.
    Fat = 2,
    /// Abdominal wall and back muscles.
    Muscle = 3,
    /// Fat between the abdominal organs.
    VisceralFat = 4,
    /// The liver, the only labelled class.
    Liver = 5,
    /// The spleen.
    Spleen = 6,
    /// Both kidneys.
    Kidney = 7,
    /// Aorta and inferior vena cava.
    Vessel = 8,
    /// Bone: vertebrae and ribs.
    Bone = 9,
    /// Intervertebral discs.
    Disc = 10,
    /// Spinal canal contents.
    Canal = 11,
    /// Stomach and bowel walls and contents.
    Bowel = 12,
    /// Gas in the stomach and bowel.
    Gas = 13,
    /// The gallbladder.
    Gallbladder = 14,
    // The classes below appear only in the clinical mode
    // (`PhantomConfig::clinical`); there, `Kidney` is the renal cortex,
    // `Vessel` the inferior vena cava and renal veins, `Bowel` the bowel
    // contents and `Bone` cortical bone.
    /// Lung parenchyma.
    Lung = 15,
    /// Myocardium.
    Heart = 16,
    /// Blood in the right heart chambers.
    HeartBlood = 17,
    /// Aorta, its branches and the left heart's blood (clinical mode).
    Artery = 18,
    /// Portal, splenic and superior mesenteric veins and the intrahepatic
    /// portal branches.
    PortalVein = 19,
    /// Hepatic veins.
    HepaticVein = 20,
    /// The pancreas.
    Pancreas = 21,
    /// Renal medulla and sinus.
    KidneyMedulla = 22,
    /// Urine in the renal collecting systems.
    RenalPelvis = 23,
    /// Urine in the bladder.
    Bladder = 24,
    /// Ascites and other free fluid.
    Fluid = 25,
    /// The enhancing wall of the stomach and bowel.
    BowelWall = 26,
    /// Positive oral contrast in the bowel.
    OralContrast = 27,
    /// Costal cartilage.
    Cartilage = 28,
    /// Cancellous (trabecular) bone.
    CancellousBone = 29,
    /// Metal implants.
    Metal = 30,
    /// A simple liver cyst.
    Cyst = 31,
    /// A liver metastasis.
    Metastasis = 32,
    /// A hepatocellular carcinoma.
    Hcc = 33,
    /// A liver haemangioma.
    Haemangioma = 34,
}

impl Tissue {
    /// Every class, in code order.
    pub const ALL: [Tissue; 35] = [
        Tissue::Air,
        Tissue::Table,
        Tissue::Fat,
        Tissue::Muscle,
        Tissue::VisceralFat,
        Tissue::Liver,
        Tissue::Spleen,
        Tissue::Kidney,
        Tissue::Vessel,
        Tissue::Bone,
        Tissue::Disc,
        Tissue::Canal,
        Tissue::Bowel,
        Tissue::Gas,
        Tissue::Gallbladder,
        Tissue::Lung,
        Tissue::Heart,
        Tissue::HeartBlood,
        Tissue::Artery,
        Tissue::PortalVein,
        Tissue::HepaticVein,
        Tissue::Pancreas,
        Tissue::KidneyMedulla,
        Tissue::RenalPelvis,
        Tissue::Bladder,
        Tissue::Fluid,
        Tissue::BowelWall,
        Tissue::OralContrast,
        Tissue::Cartilage,
        Tissue::CancellousBone,
        Tissue::Metal,
        Tissue::Cyst,
        Tissue::Metastasis,
        Tissue::Hcc,
        Tissue::Haemangioma,
    ];

    /// True for the tissues inside the body outline.
    pub fn in_body(self) -> bool {
        !matches!(self, Tissue::Air | Tissue::Table)
    }
}

/// One rib pair (left and right are mirror images).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rib {
    /// Height at the spine, mm.
    pub(crate) z0: f64,
    /// How far the rib descends from the spine to its front end, mm.
    pub(crate) drop: f64,
    /// Angle from the posterior midline where the rib ends, radians.
    pub(crate) end: f64,
    /// Cross-section radius, mm.
    pub(crate) radius: f64,
}

/// Angle from the posterior midline where every rib starts (beside the
/// vertebra), radians.
pub(crate) const RIB_START: f64 = 0.35;

/// One random patient.
#[derive(Clone, Debug)]
pub(crate) struct Anatomy {
    pub(crate) body: [f64; 2],
    pub(crate) fat: f64,
    pub(crate) wall: f64,
    pub(crate) table_y: f64,
    pub(crate) canal_y: f64,
    pub(crate) vertebra_y: f64,
    pub(crate) vertebra_period: f64,
    pub(crate) vertebra_phase: f64,
    pub(crate) disc_height: f64,
    pub(crate) cancellous_hu: f64,
    pub(crate) ribs: Vec<Rib>,
    pub(crate) paraspinal: [Blob; 2],
    pub(crate) liver: Vec<Blob>,
    pub(crate) liver_hu: f64,
    pub(crate) liver_texture: [([f64; 3], f64); 3],
    pub(crate) spleen: Blob,
    pub(crate) spleen_hu: f64,
    pub(crate) kidneys: [Blob; 2],
    pub(crate) stomach: Blob,
    pub(crate) gallbladder: Option<Blob>,
    pub(crate) bowel: Vec<(Blob, bool)>,
    pub(crate) aorta: Tube,
    pub(crate) ivc: Tube,
}

/// The HU value painted for each tissue before texture, blur and noise
/// (liver and spleen vary per patient and are not listed).
fn base_hu(t: Tissue) -> f64 {
    match t {
        Tissue::Air => -1000.0,
        Tissue::Table => 150.0,
        Tissue::Fat => -100.0,
        Tissue::Muscle => 50.0,
        Tissue::VisceralFat => -90.0,
        Tissue::Liver | Tissue::Spleen => 55.0,
        Tissue::Kidney => 30.0,
        Tissue::Vessel => 45.0,
        Tissue::Bone => 650.0,
        Tissue::Disc => 90.0,
        Tissue::Canal => 15.0,
        Tissue::Bowel => 25.0,
        Tissue::Gas => -950.0,
        Tissue::Gallbladder => 8.0,
        // The clinical classes never occur in a classic phantom; they take
        // their values from the clinical HU table.
        _ => 0.0,
    }
}

impl Anatomy {
    /// Draws a patient from `seed` (stream 0 of ChaCha8).
    pub fn sample(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let r = &mut rng;
        let body = [r.random_range(135.0..170.0), r.random_range(95.0..125.0)];
        let fat = r.random_range(8.0..30.0);
        let wall = r.random_range(9.0..14.0);
        // Semi-axes of the abdominal cavity inside the muscle wall.
        let cx = body[0] - fat - wall;
        let cy = body[1] - fat - wall;
        let canal_y = -body[1] + fat + r.random_range(45.0..55.0);
        let vertebra_y = canal_y + 26.0;
        let vertebra_period = r.random_range(30.0..35.0);
        let liver_z = r.random_range(-10.0..10.0);

        let mut ribs = Vec::new();
        let rib_period = r.random_range(22.0..28.0);
        let lowest = liver_z - r.random_range(40.0..60.0);
        let mut z0 = lowest;
        let mut n = 0;
        while z0 < 260.0 {
            // Lower ribs are shorter (the floating ribs end laterally).
            let end = match n {
                0 => r.random_range(1.3..1.6),
                1 => r.random_range(1.7..2.0),
                _ => r.random_range(2.2..2.6),
            };
            ribs.push(Rib {
                z0,
                drop: r.random_range(30.0..55.0),
                end,
                radius: r.random_range(4.0..5.5),
            });
            z0 += rib_period;
            n += 1;
        }

        let paraspinal = [1.0, -1.0].map(|side: f64| {
            Blob::ellipsoid(
                [side * 32.0, canal_y - 12.0, 0.0],
                [
                    r.random_range(24.0..30.0),
                    r.random_range(20.0..26.0),
                    1.0e4,
                ],
                0.0,
            )
        });

        // The liver: a right lobe, a left lobe reaching across the midline
        // in front of the stomach, and sometimes a long inferior tip (a
        // Riedel lobe), each with its own smooth radial perturbation.
        let mut liver = Vec::new();
        let right = Blob::ellipsoid(
            [
                jitter(r, 0.42 * cx, 0.1),
                jitter(r, 0.12 * cy, 0.5),
                liver_z + r.random_range(5.0..25.0),
            ],
            [
                jitter(r, 0.52 * cx, 0.1),
                jitter(r, 0.85 * cy, 0.1),
                r.random_range(75.0..95.0),
            ],
            r.random_range(-0.25..0.25),
        )
        .perturbed(r, 4, 0.08);
        liver.push(right);
        let left = Blob::ellipsoid(
            [
                jitter(r, -0.08 * cx, 1.0),
                jitter(r, 0.45 * cy, 0.12),
                liver_z + r.random_range(25.0..45.0),
            ],
            [
                jitter(r, 0.42 * cx, 0.15),
                jitter(r, 0.4 * cy, 0.15),
                r.random_range(35.0..50.0),
            ],
            r.random_range(-0.3..0.3),
        )
        .perturbed(r, 3, 0.1);
        liver.push(left);
        if r.random_bool(0.5) {
            let tip = Blob::ellipsoid(
                [
                    jitter(r, 0.55 * cx, 0.1),
                    jitter(r, 0.0, 1.0) + r.random_range(-10.0..10.0),
                    liver_z - r.random_range(45.0..65.0),
                ],
                [
                    jitter(r, 0.22 * cx, 0.15),
                    jitter(r, 0.35 * cy, 0.15),
                    r.random_range(25.0..40.0),
                ],
                r.random_range(-0.3..0.3),
            )
            .perturbed(r, 3, 0.1);
            liver.push(tip);
        }
        let liver_hu = r.random_range(50.0..68.0);
        let liver_texture = [0; 3].map(|_| {
            let d = crate::shapes::unit_vector(r);
            let f = r.random_range(0.02..0.06);
            (
                [d[0] * f, d[1] * f, d[2] * f],
                r.random_range(0.0..std::f64::consts::TAU),
            )
        });

        let spleen = Blob::ellipsoid(
            [
                jitter(r, -0.62 * cx, 0.08),
                jitter(r, -0.3 * cy, 0.2),
                liver_z + r.random_range(10.0..35.0),
            ],
            [
                jitter(r, 0.2 * cx, 0.15),
                jitter(r, 0.35 * cy, 0.15),
                r.random_range(40.0..55.0),
            ],
            r.random_range(-0.8..-0.3),
        )
        .perturbed(r, 3, 0.08);
        let spleen_hu = liver_hu + r.random_range(-12.0..0.0);

        let kidney_z = [
            liver_z - r.random_range(50.0..70.0),
            liver_z - r.random_range(35.0..55.0),
        ];
        let kidneys = [(1.0, kidney_z[0]), (-1.0, kidney_z[1])].map(|(side, z): (f64, f64)| {
            Blob::ellipsoid(
                [
                    side * r.random_range(55.0..70.0),
                    vertebra_y + r.random_range(-5.0..10.0),
                    z,
                ],
                [
                    r.random_range(20.0..26.0),
                    r.random_range(28.0..34.0),
                    r.random_range(45.0..58.0),
                ],
                side * r.random_range(0.3..0.6),
            )
            .perturbed(r, 2, 0.05)
        });

        let stomach = Blob::ellipsoid(
            [
                jitter(r, -0.3 * cx, 0.15),
                jitter(r, 0.3 * cy, 0.2),
                liver_z + r.random_range(20.0..45.0),
            ],
            [
                jitter(r, 0.26 * cx, 0.15),
                jitter(r, 0.24 * cy, 0.15),
                r.random_range(35.0..50.0),
            ],
            r.random_range(-0.4..0.4),
        )
        .perturbed(r, 3, 0.08);

        let gallbladder = r.random_bool(0.8).then(|| {
            Blob::ellipsoid(
                [
                    jitter(r, 0.3 * cx, 0.15),
                    jitter(r, 0.25 * cy, 0.2),
                    liver_z - r.random_range(15.0..35.0),
                ],
                [
                    r.random_range(11.0..16.0),
                    r.random_range(14.0..20.0),
                    r.random_range(25.0..40.0),
                ],
                r.random_range(-0.5..0.5),
            )
        });

        let bowel = (0..r.random_range(6..12))
            .map(|_| {
                let rad = r.random_range(14.0..28.0);
                let b = Blob::ellipsoid(
                    [
                        r.random_range(-0.7..0.7) * cx,
                        r.random_range(-0.1..0.75) * cy,
                        liver_z - r.random_range(40.0..180.0),
                    ],
                    [rad, jitter(r, rad, 0.3), jitter(r, rad * 1.5, 0.3)],
                    r.random_range(0.0..PI),
                )
                .perturbed(r, 2, 0.1);
                (b, r.random_bool(0.4))
            })
            .collect();

        let aorta_r = r.random_range(9.0..13.0);
        let aorta = Tube {
            x: r.random_range(-18.0..-8.0),
            y: vertebra_y + 16.0 + aorta_r,
            rx: aorta_r,
            ry: aorta_r,
            z_min: -1.0e4,
            z_max: 1.0e4,
        };
        let ivc = Tube {
            x: r.random_range(18.0..28.0),
            y: vertebra_y + r.random_range(22.0..32.0),
            rx: r.random_range(11.0..15.0),
            ry: r.random_range(7.0..11.0),
            z_min: -1.0e4,
            z_max: liver_z + r.random_range(60.0..90.0),
        };

        Anatomy {
            body,
            fat,
            wall,
            table_y: -body[1] - r.random_range(3.0..10.0),
            canal_y,
            vertebra_y,
            vertebra_period,
            vertebra_phase: r.random_range(0.0..vertebra_period),
            disc_height: r.random_range(6.0..9.0),
            cancellous_hu: r.random_range(300.0..450.0),
            ribs,
            paraspinal,
            liver,
            liver_hu,
            liver_texture,
            spleen,
            spleen_hu,
            kidneys,
            stomach,
            gallbladder,
            bowel,
            aorta,
            ivc,
        }
    }

    /// The body outline's semi-axes at height `z`: the trunk widens slightly
    /// towards the lower ribs and narrows towards the pelvis.
    fn body_at(&self, z: f64) -> [f64; 2] {
        let s = 1.0 + 0.04 * (z / 120.0).sin();
        [self.body[0] * s, self.body[1] * s]
    }

    /// The tissue at world point `p` and its HU value before blur and
    /// noise. Structures are tested from the top of the painting order
    /// down, so the first hit is the tissue that remains visible.
    pub fn at(&self, p: [f64; 3]) -> (Tissue, f64) {
        let t = self.tissue(p);
        let hu = match t {
            Tissue::Liver => {
                let tex: f64 = self
                    .liver_texture
                    .iter()
                    .map(|(k, ph)| (k[0] * p[0] + k[1] * p[1] + k[2] * p[2] + ph).sin())
                    .sum();
                self.liver_hu + 2.0 * tex
            }
            Tissue::Spleen => self.spleen_hu,
            Tissue::Bone if self.in_cancellous(p) => self.cancellous_hu,
            t => base_hu(t),
        };
        (t, hu)
    }

    /// The tissue class at world point `p`.
    pub fn tissue(&self, p: [f64; 3]) -> Tissue {
        let [x, y, z] = p;
        let [ax, ay] = self.body_at(z);
        let outline = ellipse_r2(x, y, ax, ay);
        if outline > 1.0 {
            let on_table = y <= self.table_y && y >= self.table_y - 12.0 && x.abs() < 220.0;
            return if on_table { Tissue::Table } else { Tissue::Air };
        }
        if let Some(t) = self.spine(p) {
            return t;
        }
        if self.in_rib(p, ax, ay) {
            return Tissue::Bone;
        }
        if self.paraspinal.iter().any(|b| b.contains(p)) {
            return Tissue::Muscle;
        }
        if ellipse_r2(x, y, ax - self.fat, ay - self.fat) > 1.0 {
            return Tissue::Fat;
        }
        let (cx, cy) = (ax - self.fat - self.wall, ay - self.fat - self.wall);
        if ellipse_r2(x, y, cx, cy) > 1.0 {
            return Tissue::Muscle;
        }
        if self.aorta.contains(p) || self.ivc.contains(p) {
            return Tissue::Vessel;
        }
        if let Some(g) = &self.gallbladder
            && g.contains(p)
        {
            return Tissue::Gallbladder;
        }
        if self.stomach.contains(p) {
            // Gas rises to the anterior (upper, for a supine patient) part.
            let top = self.stomach.centre[1] + 0.45 * self.stomach.semi[1];
            return if y > top { Tissue::Gas } else { Tissue::Bowel };
        }
        if self.kidneys.iter().any(|k| k.contains(p)) {
            return Tissue::Kidney;
        }
        if self.spleen.contains(p) {
            return Tissue::Spleen;
        }
        if self.liver.iter().any(|b| b.spans_z(z) && b.contains(p)) {
            return Tissue::Liver;
        }
        for (b, gas) in &self.bowel {
            if b.spans_z(z) && b.contains(p) {
                let c = b.centre;
                let core = ellipse_r2(x - c[0], y - c[1], 0.45 * b.semi[0], 0.45 * b.semi[1]);
                return if *gas && core < 1.0 {
                    Tissue::Gas
                } else {
                    Tissue::Bowel
                };
            }
        }
        Tissue::VisceralFat
    }

    /// Vertebral body, disc, canal and posterior arch at `p`, if any.
    pub(crate) fn spine(&self, p: [f64; 3]) -> Option<Tissue> {
        let [x, y, z] = p;
        // Position within the current vertebra + disc period.
        let s = (z - self.vertebra_phase).rem_euclid(self.vertebra_period);
        let disc = s < self.disc_height;
        if ellipse_r2(x, y - self.vertebra_y, 21.0, 16.0) <= 1.0 {
            return Some(if disc { Tissue::Disc } else { Tissue::Bone });
        }
        let dc = ellipse_r2(x, y - self.canal_y, 8.5, 8.0);
        if dc <= 1.0 {
            return Some(Tissue::Canal);
        }
        if disc {
            return None;
        }
        // The neural arch: pedicles and laminae as a ring around the canal.
        if ellipse_r2(x, y - self.canal_y, 14.0, 13.0) <= 1.0 && y < self.vertebra_y {
            return Some(Tissue::Bone);
        }
        // The spinous process, pointing backwards.
        let tip = self.canal_y - 38.0;
        if x.abs() <= 4.0 && y < self.canal_y - 10.0 && y > tip && s < self.vertebra_period - 6.0 {
            return Some(Tissue::Bone);
        }
        None
    }

    /// True when `p` lies in cancellous (inner) bone of a vertebral body.
    pub(crate) fn in_cancellous(&self, p: [f64; 3]) -> bool {
        ellipse_r2(p[0], p[1] - self.vertebra_y, 18.0, 13.0) <= 1.0
    }

    /// True when `p` lies in a rib. Ribs follow an ellipse inside the body
    /// wall, from beside the spine round the flank towards the front,
    /// descending as they go.
    fn in_rib(&self, p: [f64; 3], ax: f64, ay: f64) -> bool {
        let [x, y, z] = p;
        let inset = self.fat + 0.5 * self.wall;
        let (rx, ry) = (ax - inset, ay - inset);
        let (u, v) = (x / rx, y / ry);
        let r = (u * u + v * v).sqrt();
        if r < 1e-9 {
            return false;
        }
        // Angle from the posterior midline (direction -y), 0..π.
        let phi = (-v / r).clamp(-1.0, 1.0).acos();
        if phi < RIB_START {
            return false;
        }
        let mean_radius = 0.5 * (rx + ry);
        let dr = (r - 1.0) * mean_radius;
        if dr.abs() > 6.0 {
            return false;
        }
        self.ribs.iter().any(|rib| {
            if phi > rib.end {
                return false;
            }
            let t = (phi - RIB_START) / (rib.end - RIB_START);
            // Ribs first run nearly level, then descend towards the front.
            let zc = rib.z0 - rib.drop * t * t.sqrt();
            let dz = z - zc;
            dr * dr + dz * dz <= rib.radius * rib.radius
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liver_lies_on_the_right_and_spleen_on_the_left() {
        for seed in 0..20 {
            let a = Anatomy::sample(seed);
            assert!(a.liver[0].centre[0] > 20.0, "seed {seed}");
            assert!(a.spleen.centre[0] < -20.0, "seed {seed}");
            assert!(a.ribs.len() >= 8, "seed {seed}");
        }
    }

    #[test]
    fn landmarks_classify_as_expected() {
        let a = Anatomy::sample(7);
        assert_eq!(a.tissue([0.0, 400.0, 0.0]), Tissue::Air);
        assert_eq!(a.tissue(a.liver[0].centre), Tissue::Liver);
        assert_eq!(a.tissue([a.aorta.x, a.aorta.y, -50.0]), Tissue::Vessel);
        let (t, hu) = a.at([0.0, a.canal_y, 0.0]);
        assert_eq!((t, hu), (Tissue::Canal, 15.0));
        // Just inside the skin at the front is subcutaneous fat.
        assert_eq!(a.tissue([0.0, a.body_at(0.0)[1] - 2.0, 0.0]), Tissue::Fat);
        let hu_ok = |h: f64| (-1000.0..=1000.0).contains(&h);
        assert!(hu_ok(a.at(a.spleen.centre).1));
    }
}
