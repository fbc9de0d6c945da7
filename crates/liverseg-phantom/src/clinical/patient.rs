//! The clinical patient: body build, thorax, abdomen and pelvis, drawn from
//! a seed (ChaCha8 stream 2) in the patient-centred RAS frame of
//! `anatomy.rs` (mm; +x right, +y anterior, +z superior).
//!
//! Sizes follow adult anatomy: a liver about 15–17 cm tall whose dome sits
//! under the right hemidiaphragm, the iliac crest 23–27 cm below the dome,
//! the pubic symphysis 15–18 cm below the crest and the lung apices 20–25
//! cm above it.

use super::options::{ClinicalOptions, Habitus, LesionKind, LiverCondition, LiverVariant};
use super::pose::{Position, Resection};
use super::vessels::{Segment, Tubes, grow_tree, normalise};
use crate::Tissue;
use crate::anatomy::Rib;
use crate::shapes::{Blob, ellipse_r2, jitter};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::f64::consts::PI;

/// Heights (z, mm) that decide where a scan range starts and ends.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Landmarks {
    /// Top of the right hemidiaphragm (the liver dome).
    pub dome: f64,
    /// Lung apices.
    pub apex: f64,
    /// Lowest point of the liver.
    pub liver_bottom: f64,
    /// Top of the iliac crests.
    pub iliac_crest: f64,
    /// Upper edge of the pubic symphysis.
    pub symphysis: f64,
}

impl Landmarks {
    /// The heights of a body scaled by `s` about the origin.
    pub fn scaled(self, s: f64) -> Landmarks {
        Landmarks {
            dome: self.dome * s,
            apex: self.apex * s,
            liver_bottom: self.liver_bottom * s,
            iliac_crest: self.iliac_crest * s,
            symphysis: self.symphysis * s,
        }
    }
}

/// The table top: a 12 mm slab, 440 mm wide, whose surface is the plane
/// where patient-frame `axis` equals `at`; it extends from there away from
/// the body, towards `side` (−1 or 1).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Table {
    pub axis: usize,
    pub side: f64,
    pub at: f64,
    /// The body scale: the table is placed by the anatomy, whose points
    /// come in divided by it, but it is 12 mm thick and 440 mm wide in
    /// the world whatever the patient's size.
    pub scale: f64,
}

impl Table {
    /// True when `(x, y)` is inside the table.
    #[inline]
    pub fn holds(&self, x: f64, y: f64) -> bool {
        let (d, t) = if self.axis == 1 { (y, x) } else { (x, y) };
        // World millimetres (exactly the anatomy's for an adult, scale 1).
        let (d, t, at) = (d * self.scale, t * self.scale, self.at * self.scale);
        let (lo, hi) = if self.side < 0.0 {
            (at - 12.0, at)
        } else {
            (at, at + 12.0)
        };
        d <= hi && d >= lo && t.abs() < 220.0
    }
}

/// A shape that a tissue fills.
#[derive(Clone, Debug)]
pub(crate) enum Shape {
    Blob(Blob),
    Tubes(Vec<Segment>),
}

/// How the inside of a shape is painted, from the depth of a point (0 on
/// the axis or at the centre, 1 on the surface).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Role {
    /// One tissue throughout.
    Plain(Tissue),
    /// Cortical bone outside `cortex` depth, cancellous inside.
    Bone { cortex: f64 },
    /// A wall of `wall` mm, filled with `fill`, gas where the relative
    /// height (anterior is up for a supine patient) exceeds `gas`.
    Hollow { wall: f64, fill: Tissue, gas: f64 },
    /// Renal cortex around the medulla.
    Kidney,
    /// Myocardium around the blood; left of `split_x` is the left heart.
    Heart { split_x: f64 },
    /// Bladder wall and urine; excreted contrast layers below `layer`.
    Bladder { layer: f64 },
}

/// A painted structure with its z extent.
#[derive(Clone, Debug)]
pub(crate) struct Item {
    pub shape: Shape,
    pub role: Role,
    pub z_lo: f64,
    pub z_hi: f64,
    /// The label its voxels get (0: background).
    pub label: u8,
}

impl Item {
    pub fn blob(b: Blob, role: Role) -> Self {
        Item {
            z_lo: b.bottom(),
            z_hi: b.top(),
            shape: Shape::Blob(b),
            role,
            label: 0,
        }
    }

    pub fn tubes(segs: Vec<Segment>, role: Role) -> Self {
        let z_lo = segs
            .iter()
            .map(|s| s.a[2].min(s.b[2]) - s.ra.max(s.rb))
            .fold(f64::INFINITY, f64::min);
        let z_hi = segs
            .iter()
            .map(|s| s.a[2].max(s.b[2]) + s.ra.max(s.rb))
            .fold(f64::NEG_INFINITY, f64::max);
        Item {
            shape: Shape::Tubes(segs),
            role,
            z_lo,
            z_hi,
            label: 0,
        }
    }

    /// The same item with its voxels labelled `label`.
    pub fn labelled(self, label: u8) -> Self {
        Item { label, ..self }
    }

    pub fn path(points: &[([f64; 3], f64)], role: Role) -> Self {
        Item::tubes(Tubes::path(points).segs, role)
    }

    #[inline]
    pub fn spans_z(&self, z: f64) -> bool {
        z >= self.z_lo && z <= self.z_hi
    }

    /// `(depth, relative height, size mm)` when `p` is inside; the height
    /// runs along `up` (axis and sign, see [`Patient::up`]).
    #[inline]
    pub fn probe(&self, p: [f64; 3], up: (usize, f64)) -> Option<(f64, f64, f64)> {
        let (a, sign) = up;
        match &self.shape {
            Shape::Blob(b) => {
                let l = b.level(p);
                (l <= 1.0).then(|| {
                    let size = 0.5 * (b.semi[0] + b.semi[1]);
                    (l, sign * ((p[a] - b.centre[a]) / b.semi[a]), size)
                })
            }
            Shape::Tubes(segs) => {
                let mut best: Option<(f64, f64, f64)> = None;
                for s in segs {
                    if let Some((d, r, c)) = s.probe(p)
                        && d <= r
                    {
                        let f = d / r.max(1e-9);
                        if best.is_none_or(|b| f < b.0) {
                            best = Some((f, sign * ((p[a] - c[a]) / r.max(1e-9)), r));
                        }
                    }
                }
                best
            }
        }
    }
}

/// The diaphragm: two domes, the right one higher.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Diaphragm {
    pub right: [f64; 3],
    pub left: [f64; 3],
    pub scale: [f64; 2],
    /// How far the surface drops per unit squared normalised distance, mm.
    pub drop: f64,
    /// Muscle thickness, mm.
    pub thickness: f64,
}

impl Diaphragm {
    /// Height of the diaphragm's lower surface above `(x, y)`.
    #[inline]
    pub fn z(&self, x: f64, y: f64) -> f64 {
        let d = |c: [f64; 3]| {
            c[2] - self.drop * ellipse_r2(x - c[0], y - c[1], self.scale[0], self.scale[1])
        };
        d(self.right).max(d(self.left))
    }
}

/// A focal liver lesion.
#[derive(Clone, Debug)]
pub(crate) struct Lesion {
    pub kind: LesionKind,
    pub blob: Blob,
    /// Angular phase of a haemangioma's peripheral nodules.
    pub nodules: [f64; 3],
}

/// One clinical patient.
#[derive(Clone, Debug)]
pub(crate) struct Patient {
    pub marks: Landmarks,
    /// Semi-axes of the abdominal cavity without visceral fat.
    pub core: [f64; 2],
    /// Extra anterior-posterior cavity from visceral fat, mm.
    pub visceral: f64,
    pub fat: f64,
    pub wall: f64,
    pub table: Table,
    /// The patient-frame axis pointing up and its sign (gas rises, fluid
    /// and excreted contrast settle the other way).
    pub up: (usize, f64),
    pub canal_y: f64,
    pub vertebra_y: f64,
    pub vertebra_period: f64,
    pub vertebra_phase: f64,
    pub disc_height: f64,
    /// Top of the sacrum, where the lumbar spine ends.
    pub sacrum_top: f64,
    pub ribs: Vec<Rib>,
    pub dia: Diaphragm,
    pub liver: Vec<Blob>,
    pub lesions: Vec<Lesion>,
    pub portal_tree: Tubes,
    pub hepatic_tree: Tubes,
    /// Pulmonary arteries and veins.
    pub lung_tree: Tubes,
    /// Painted before everything inside the body outline: metal, bones,
    /// back and psoas muscles.
    pub hard: Vec<Item>,
    /// Vessels that pass the diaphragm (aorta, IVC and branches).
    pub vessels: Vec<Item>,
    /// Abdominal structures painted over the liver.
    pub above_liver: Vec<Item>,
    /// Abdominal and pelvic structures the liver covers.
    pub below_liver: Vec<Item>,
    /// The heart and mediastinum.
    pub thorax: Vec<Item>,
    pub liver_texture: [([f64; 3], f64); 3],
    pub nodule_phase: [f64; 3],
    pub tumour_label: bool,
}

const MM: f64 = 1.0;

impl Patient {
    /// Draws the patient of `seed` for `opts` (ChaCha8 stream 2). The
    /// random draws come in a fixed order, so the options change the organs
    /// they concern and leave the rest of the patient in place.
    pub fn sample(seed: u64, opts: &ClinicalOptions) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(2);
        let r = &mut rng;
        let (fat_r, visc_r) = match opts.habitus {
            Habitus::Thin => ((3.0, 10.0), (0.0, 5.0)),
            Habitus::Normal => ((10.0, 25.0), (5.0, 15.0)),
            Habitus::Overweight => ((25.0, 40.0), (15.0, 35.0)),
            Habitus::Obese => ((40.0, 80.0), (35.0, 70.0)),
        };
        let fat = r.random_range(fat_r.0..fat_r.1);
        let visceral = r.random_range(visc_r.0..visc_r.1);
        let wall = r.random_range(8.0..14.0);
        let cx = r.random_range(115.0..135.0);
        let cy = r.random_range(78.0..92.0);
        let dome = r.random_range(80.0..110.0);
        let crest = dome - r.random_range(230.0..270.0);
        let symphysis = crest - r.random_range(150.0..180.0);
        let apex = dome + r.random_range(200.0..250.0);
        let canal_y = -cy + r.random_range(35.0..42.0);
        let vertebra_y = canal_y + 26.0;
        let vertebra_period = r.random_range(30.0..35.0);
        let vertebra_phase = r.random_range(0.0..vertebra_period);
        let disc_height = r.random_range(6.0..9.0);
        let sacrum_top = crest - r.random_range(20.0..35.0);
        let table_gap = r.random_range(3.0..10.0);
        let table_y = -(cy + wall + fat) - table_gap;
        let up = opts.position.up();
        // The table under the body's widest extent on the lower side (the
        // most the visceral fat can bulge it; see `cavity_at`).
        let table = match opts.position {
            Position::Supine => Table {
                axis: 1,
                side: -1.0,
                at: table_y,
                scale: opts.body_scale,
            },
            Position::Prone => Table {
                axis: 1,
                side: 1.0,
                at: visceral + cy + wall + fat + table_gap,
                scale: opts.body_scale,
            },
            Position::LeftDecubitus | Position::RightDecubitus => Table {
                axis: 0,
                side: -up.1,
                at: -up.1 * (1.05 * cx + 0.25 * visceral + wall + fat + table_gap),
                scale: opts.body_scale,
            },
        };

        let dia = Diaphragm {
            right: [0.45 * cx, 0.05 * cy, dome],
            left: [-0.45 * cx, 0.0, dome - r.random_range(10.0..20.0)],
            scale: [cx, cy],
            drop: r.random_range(50.0..65.0),
            thickness: r.random_range(4.0..6.0),
        };

        // Ribs from the floating ribs below the liver up to the apex.
        let mut ribs = Vec::new();
        let rib_period = r.random_range(22.0..27.0);
        let mut z0 = dome - r.random_range(95.0..115.0);
        let mut n = 0;
        while z0 < apex + 10.0 {
            let end = match n {
                0 => r.random_range(1.3..1.6),
                1 => r.random_range(1.7..2.0),
                _ => r.random_range(2.3..2.6),
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

        // Liver: right lobe, left lobe, caudate, and the draws for the
        // variants and cirrhosis whether or not they are used.
        let right = Blob::ellipsoid(
            [
                jitter(r, 0.42 * cx, 0.08),
                jitter(r, 0.1 * cy, 0.5),
                dome - r.random_range(70.0..82.0),
            ],
            [
                jitter(r, 0.52 * cx, 0.08),
                jitter(r, 0.8 * cy, 0.08),
                r.random_range(82.0..97.0),
            ],
            r.random_range(-0.2..0.2),
        )
        .perturbed(r, 3, 0.07);
        let left = Blob::ellipsoid(
            [
                -0.1 * cx * r.random_range(0.5..1.5),
                jitter(r, 0.42 * cy, 0.1),
                dome - r.random_range(35.0..50.0),
            ],
            [
                jitter(r, 0.4 * cx, 0.12),
                jitter(r, 0.32 * cy, 0.12),
                r.random_range(35.0..48.0),
            ],
            r.random_range(-0.3..0.3),
        )
        .perturbed(r, 3, 0.08);
        let ivc_x = r.random_range(18.0..28.0);
        let ivc_y = vertebra_y + r.random_range(22.0..30.0);
        let caudate = Blob::ellipsoid(
            [
                ivc_x - r.random_range(12.0..22.0),
                ivc_y + r.random_range(22.0..30.0),
                dome - r.random_range(60.0..75.0),
            ],
            [
                r.random_range(18.0..24.0),
                r.random_range(18.0..24.0),
                r.random_range(30.0..40.0),
            ],
            r.random_range(-0.4..0.4),
        )
        .perturbed(r, 2, 0.06);
        let riedel = Blob::ellipsoid(
            [
                jitter(r, 0.5 * cx, 0.1),
                r.random_range(-10.0..10.0),
                dome - r.random_range(175.0..200.0),
            ],
            [
                jitter(r, 0.2 * cx, 0.15),
                jitter(r, 0.3 * cy, 0.15),
                r.random_range(40.0..55.0),
            ],
            r.random_range(-0.3..0.3),
        )
        .perturbed(r, 2, 0.08);
        let mut nodular = ChaCha8Rng::seed_from_u64(r.random());
        let has = |v: LiverVariant| opts.variants.contains(&v);
        let (mut fr, mut fl, mut fc) = ([1.0; 3], [1.0; 3], [1.0; 3]);
        if opts.liver == LiverCondition::Cirrhotic {
            fr = [0.8, 0.85, 0.88];
            fl = [1.2, 1.15, 1.1];
            fc = [1.5, 1.45, 1.3];
        }
        if has(LiverVariant::RightLobeAtrophy) {
            fr = [fr[0] * 0.75, fr[1] * 0.8, fr[2] * 0.85];
            fl = [fl[0] * 1.15, fl[1] * 1.1, fl[2]];
        }
        if has(LiverVariant::LeftLobeAtrophy) {
            fl = [fl[0] * 0.55, fl[1] * 0.6, fl[2] * 0.7];
        }
        match opts.resection {
            // The remnant regrows to about 80 % of the former volume.
            Some(Resection::RightHepatectomy) => {
                fl = fl.map(|f| f * 1.3);
                fc = fc.map(|f| f * 1.25);
            }
            Some(Resection::LeftHepatectomy) => fr = fr.map(|f| f * 1.1),
            None => {}
        }
        let mut liver = vec![right.scaled(fr), left.scaled(fl), caudate.scaled(fc)];
        if has(LiverVariant::RiedelLobe) {
            liver.push(riedel);
        }
        let clips = match opts.resection {
            Some(kind) => resect(&mut liver, kind, seed),
            None => Vec::new(),
        };
        if opts.liver == LiverCondition::Cirrhotic {
            liver = liver
                .into_iter()
                .map(|b| b.with_waves(&mut nodular, 10, (6.0, 12.0), 0.025))
                .collect();
        }
        let liver_texture = [0; 3].map(|_| {
            let d = crate::shapes::unit_vector(r);
            let f = r.random_range(0.02..0.06);
            (
                [d[0] * f, d[1] * f, d[2] * f],
                r.random_range(0.0..std::f64::consts::TAU),
            )
        });
        let nodule_phase = [0; 3].map(|_| r.random_range(0.0..std::f64::consts::TAU));

        let in_liver = |p: [f64; 3]| {
            p[2] < dia.z(p[0], p[1]) && liver.iter().any(|b| b.spans_z(p[2]) && b.contains(p))
        };

        // Intrahepatic vessels: the portal tree from the porta hepatis and
        // three hepatic veins from the IVC below the dome.
        let porta = [
            jitter(r, 0.25 * cx, 0.15),
            ivc_y + r.random_range(20.0..30.0),
            dome - r.random_range(100.0..115.0),
        ];
        let mut portal = Vec::new();
        for dir in [[1.0, 0.1, 0.35], [-1.0, 0.5, 0.3], [0.3, -0.3, 0.8]] {
            let d = normalise([
                dir[0] + r.random_range(-0.2..0.2),
                dir[1] + r.random_range(-0.2..0.2),
                dir[2],
            ]);
            portal.extend(grow_tree(r, porta, d, 5.5, 32.0, 6, &in_liver));
        }
        let hv_root = [ivc_x, ivc_y, dome - r.random_range(20.0..30.0)];
        let mut hepatic = Vec::new();
        for dir in [[1.0, 0.1, -0.45], [0.35, 1.0, -0.45], [-0.7, 0.9, -0.3]] {
            let d = normalise([
                dir[0] + r.random_range(-0.15..0.15),
                dir[1] + r.random_range(-0.15..0.15),
                dir[2],
            ]);
            hepatic.extend(grow_tree(r, hv_root, d, 5.0, 30.0, 5, &in_liver));
        }

        // Lesions inside the liver, 5–50 mm across.
        let mut lesions = Vec::new();
        let mut lr = ChaCha8Rng::seed_from_u64(r.random());
        for &kind in &opts.lesions {
            let radius = 0.5 * lr.random_range(5.0..50.0);
            let mut centre = liver[0].centre;
            for _ in 0..60 {
                let b = &liver[lr.random_range(0..2usize)];
                let c = [0, 1, 2].map(|a| b.centre[a] + b.semi[a] * lr.random_range(-0.8..0.8));
                if in_liver(c) {
                    centre = c;
                    break;
                }
            }
            let amp = if kind == LesionKind::Metastasis {
                0.12
            } else {
                0.04
            };
            let blob = Blob::ellipsoid(
                centre,
                [
                    jitter(&mut lr, radius, 0.12),
                    jitter(&mut lr, radius, 0.12),
                    jitter(&mut lr, radius, 0.12),
                ],
                lr.random_range(0.0..PI),
            )
            .perturbed(&mut lr, 3, amp);
            let nodules = [0; 3].map(|_| lr.random_range(0.0..std::f64::consts::TAU));
            lesions.push(Lesion {
                kind,
                blob,
                nodules,
            });
        }

        let marks = Landmarks {
            dome,
            apex,
            liver_bottom: liver.iter().map(Blob::bottom).fold(f64::INFINITY, f64::min),
            iliac_crest: crest,
            symphysis,
        };
        let mut p = Patient {
            marks,
            core: [cx, cy],
            visceral,
            fat,
            wall,
            table,
            up,
            canal_y,
            vertebra_y,
            vertebra_period,
            vertebra_phase,
            disc_height,
            sacrum_top,
            ribs,
            dia,
            liver,
            lesions,
            portal_tree: Tubes::new(portal),
            hepatic_tree: Tubes::new(hepatic),
            lung_tree: Tubes::default(),
            hard: Vec::new(),
            vessels: Vec::new(),
            above_liver: Vec::new(),
            below_liver: Vec::new(),
            thorax: Vec::new(),
            liver_texture,
            nodule_phase,
            tumour_label: opts.tumour_label,
        };
        super::organs::add_organs(&mut p, r, opts, [ivc_x, ivc_y], porta);
        p.hard.extend(clips);
        p
    }

    /// The heights that decide the scan ranges.
    pub fn landmarks(&self) -> Landmarks {
        self.marks
    }

    /// Where the visceral fat bulges the cavity: full over the abdomen,
    /// none in the chest and at the symphysis.
    pub fn visceral_at(&self, z: f64) -> f64 {
        let m = &self.marks;
        let up = ((m.dome + 20.0 - z) / 80.0).clamp(0.0, 1.0);
        let down = ((z - m.symphysis) / 60.0).clamp(0.0, 1.0);
        self.visceral * up.min(down)
    }

    /// The cavity inside the muscle wall at height `z`: `(centre y,
    /// semi-axis x, semi-axis y)`. The chest narrows towards the apex.
    pub fn cavity_at(&self, z: f64) -> (f64, f64, f64) {
        let m = &self.marks;
        let e = self.visceral_at(z);
        let top = m.dome + 60.0;
        let s = if z > top {
            let t = ((z - top) / (m.apex + 30.0 - top)).clamp(0.0, 1.0);
            (1.0 - 0.45 * t * t).max(0.5)
        } else {
            1.0
        };
        let sx = if z < m.iliac_crest { 1.05 } else { 1.0 };
        (
            0.5 * e,
            self.core[0] * s * sx + 0.25 * e,
            self.core[1] * s.sqrt() + 0.5 * e,
        )
    }

    /// True when `p` is inside the liver surface (below the diaphragm).
    #[cfg(test)]
    pub fn in_liver(&self, p: [f64; 3]) -> bool {
        p[2] < self.dia.z(p[0], p[1]) && self.liver.iter().any(|b| b.spans_z(p[2]) && b.contains(p))
    }
}

/// Removes the resected lobe from `liver` (and a Riedel lobe with the right
/// lobe) and returns the surgical clips along the cut, 3 mm titanium clips
/// that streak like any metal.
fn resect(liver: &mut Vec<Blob>, kind: Resection, seed: u64) -> Vec<Item> {
    // The list is right lobe, left lobe, caudate, then a Riedel lobe.
    let (gone, kept) = match kind {
        Resection::RightHepatectomy => (liver[0].clone(), liver[1].clone()),
        Resection::LeftHepatectomy => (liver[1].clone(), liver[0].clone()),
    };
    match kind {
        Resection::RightHepatectomy => {
            liver.truncate(3);
            liver.remove(0);
        }
        Resection::LeftHepatectomy => {
            liver.remove(1);
        }
    }
    // Stream 6: the clips do not move the rest of the patient.
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(6);
    let n = r.random_range(3..9usize);
    // The cut lies between the two lobes' centres, nearer the one kept.
    let mid = [0, 1, 2].map(|a| 0.4 * gone.centre[a] + 0.6 * kept.centre[a]);
    (0..n)
        .map(|_| {
            let c = [
                mid[0] + r.random_range(-8.0..8.0),
                mid[1] + r.random_range(-35.0..35.0),
                mid[2] + r.random_range(-40.0..40.0),
            ];
            Item::blob(
                Blob::ellipsoid(c, [1.2, 1.2, 2.5], r.random_range(0.0..PI)),
                Role::Plain(Tissue::Metal),
            )
        })
        .collect()
}

/// Distances used by the organ builder, in mm.
pub(crate) const WALL_MM: f64 = 2.5 * MM;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn landmarks_are_ordered_and_anatomical() {
        for seed in 0..20 {
            let p = Patient::sample(seed, &ClinicalOptions::default());
            let m = p.landmarks();
            assert!(m.apex > m.dome + 150.0, "{m:?}");
            assert!(
                m.dome > m.liver_bottom && m.liver_bottom > m.iliac_crest,
                "{m:?}"
            );
            assert!(m.iliac_crest > m.symphysis + 100.0, "{m:?}");
            assert!(!p.portal_tree.segs.is_empty() && !p.hepatic_tree.segs.is_empty());
            assert!(p.liver[0].centre[0] > 20.0);
            assert!(p.in_liver(p.liver[0].centre) || p.in_liver(p.liver[1].centre));
        }
    }
}
