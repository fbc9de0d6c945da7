//! Which tissue lies at a world point of a clinical patient, its label
//! and its HU value, with per-plane candidate lists for speed.

use super::contrast::Contrast;
use super::options::LesionKind;
use super::patient::{Item, Patient, Role};
use super::vessels::{Segment, deepest};
use crate::Tissue;
use crate::anatomy::RIB_START;
use crate::shapes::{Blob, ellipse_r2};

/// What modifies a tissue's HU at a point.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Mark {
    None,
    /// A lesion's rim, capsule or peripheral nodules.
    Rim(LesionKind),
    /// Excreted contrast layering in the bladder.
    Layer,
    /// A calcified spot in costal cartilage.
    Calcified,
}

/// The classification of one point.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Hit {
    pub t: Tissue,
    pub label: u8,
    pub mark: Mark,
}

impl Hit {
    fn of(t: Tissue) -> Self {
        Hit {
            t,
            label: 0,
            mark: Mark::None,
        }
    }
}

/// The structures of `Patient` that may reach one plane z.
#[derive(Debug)]
pub(crate) struct Plane<'a> {
    pat: &'a Patient,
    z: f64,
    body: (f64, f64, f64),
    cavity: (f64, f64, f64),
    hard: Vec<&'a Item>,
    vessels: Vec<&'a Item>,
    above: Vec<&'a Item>,
    below: Vec<&'a Item>,
    thorax: Vec<&'a Item>,
    liver: Vec<&'a Blob>,
    lesions: Vec<usize>,
    portal: Vec<&'a Segment>,
    hepatic: Vec<&'a Segment>,
    lung: Vec<&'a Segment>,
    spine: bool,
    /// The highest the diaphragm can be anywhere.
    dia_top: f64,
    dia_bottom: f64,
}

fn active(items: &[Item], z: f64) -> Vec<&Item> {
    items.iter().filter(|i| i.spans_z(z)).collect()
}

impl<'a> Plane<'a> {
    pub fn new(pat: &'a Patient, z: f64) -> Self {
        let cavity = pat.cavity_at(z);
        let extra = pat.wall + pat.fat;
        let body = (cavity.0, cavity.1 + extra, cavity.2 + extra);
        let d = &pat.dia;
        Plane {
            pat,
            z,
            body,
            cavity,
            hard: active(&pat.hard, z),
            vessels: active(&pat.vessels, z),
            above: active(&pat.above_liver, z),
            below: active(&pat.below_liver, z),
            thorax: active(&pat.thorax, z),
            liver: pat.liver.iter().filter(|b| b.spans_z(z)).collect(),
            lesions: (0..pat.lesions.len())
                .filter(|&i| pat.lesions[i].blob.spans_z(z))
                .collect(),
            portal: pat.portal_tree.at_z(z),
            hepatic: pat.hepatic_tree.at_z(z),
            lung: pat.lung_tree.at_z(z),
            spine: z > pat.sacrum_top,
            dia_top: d.right[2].max(d.left[2]),
            dia_bottom: d.right[2].min(d.left[2]) - 2.0 * d.drop,
        }
    }

    /// The classification of point `(x, y)` of this plane.
    pub fn classify(&self, x: f64, y: f64) -> Hit {
        let pat = self.pat;
        let z = self.z;
        let p = [x, y, z];
        let (by, bx, bry) = self.body;
        if ellipse_r2(x, y - by, bx, bry) > 1.0 {
            return Hit::of(if pat.table.holds(x, y) {
                Tissue::Table
            } else {
                Tissue::Air
            });
        }
        for it in &self.hard {
            if let Some(h) = paint(it, p, self.pat.up) {
                return h;
            }
        }
        if self.spine
            && let Some(t) = self.spine_at(x, y)
        {
            return Hit::of(t);
        }
        if let Some(h) = self.rib(x, y) {
            return h;
        }
        // Paraspinal muscles.
        let pm = (self.cavity.2 / pat.core[1]).min(1.0);
        if ellipse_r2(x.abs() - 32.0 * pm, y - pat.canal_y + 12.0, 26.0 * pm, 22.0) <= 1.0 {
            return Hit::of(Tissue::Muscle);
        }
        if ellipse_r2(x, y - by, bx - pat.fat, bry - pat.fat) > 1.0 {
            return Hit::of(Tissue::Fat);
        }
        let (cyc, cax, cay) = self.cavity;
        if ellipse_r2(x, y - cyc, cax, cay) > 1.0 {
            return Hit::of(Tissue::Muscle);
        }
        for it in &self.vessels {
            if let Some(h) = paint(it, p, self.pat.up) {
                return h;
            }
        }
        let m = &pat.marks;
        if z > m.apex || z < m.symphysis - 5.0 {
            // The neck above the apices; the thighs' muscles below.
            return Hit::of(Tissue::Muscle);
        }
        if z > self.dia_bottom && z < self.dia_top + pat.dia.thickness + 1.0 {
            let zd = pat.dia.z(x, y);
            if z > zd + pat.dia.thickness {
                return self.thorax(p);
            }
            if z > zd {
                return Hit::of(Tissue::Muscle);
            }
        } else if z >= self.dia_top {
            return self.thorax(p);
        }
        self.abdomen(p)
    }

    fn thorax(&self, p: [f64; 3]) -> Hit {
        for it in &self.thorax {
            if let Some(h) = paint(it, p, self.pat.up) {
                return h;
            }
        }
        if deepest(&self.lung, p).is_some() {
            return Hit::of(Tissue::HeartBlood);
        }
        Hit::of(Tissue::Lung)
    }

    fn abdomen(&self, p: [f64; 3]) -> Hit {
        let pat = self.pat;
        for it in &self.above {
            if let Some(h) = paint(it, p, self.pat.up) {
                return h;
            }
        }
        if self.liver.iter().any(|b| b.contains(p)) {
            for &i in &self.lesions {
                let les = &pat.lesions[i];
                let l = les.blob.level(p);
                if l <= 1.0 {
                    let label = if pat.tumour_label && les.kind.is_tumour() {
                        2
                    } else {
                        1
                    };
                    let rim = match les.kind {
                        LesionKind::Cyst => false,
                        LesionKind::Metastasis => l > 0.75,
                        LesionKind::Hcc => l > 0.88,
                        LesionKind::Haemangioma => {
                            let c = les.blob.centre;
                            let a = (p[1] - c[1]).atan2(p[0] - c[0]);
                            let n = les.nodules;
                            l > 0.72
                                && (3.0 * a + n[0]).sin()
                                    + (5.0 * a + n[1]).sin()
                                    + (0.3 * (p[2] - c[2]) + n[2]).sin()
                                    > 0.8
                        }
                    };
                    let t = match les.kind {
                        LesionKind::Cyst => Tissue::Cyst,
                        LesionKind::Metastasis => Tissue::Metastasis,
                        LesionKind::Hcc => Tissue::Hcc,
                        LesionKind::Haemangioma => Tissue::Haemangioma,
                    };
                    return Hit {
                        t,
                        label,
                        mark: if rim { Mark::Rim(les.kind) } else { Mark::None },
                    };
                }
            }
            let t = if deepest(&self.hepatic, p).is_some() {
                Tissue::HepaticVein
            } else if deepest(&self.portal, p).is_some() {
                Tissue::PortalVein
            } else {
                Tissue::Liver
            };
            return Hit {
                t,
                label: 1,
                mark: Mark::None,
            };
        }
        for it in &self.below {
            if let Some(h) = paint(it, p, self.pat.up) {
                return h;
            }
        }
        Hit::of(Tissue::VisceralFat)
    }

    /// Vertebral body (cortex, cancellous core, disc), canal and arch.
    fn spine_at(&self, x: f64, y: f64) -> Option<Tissue> {
        let pat = self.pat;
        let s = (self.z - pat.vertebra_phase).rem_euclid(pat.vertebra_period);
        let disc = s < pat.disc_height;
        // Thoracic vertebrae are smaller than lumbar ones.
        let k = if self.z > pat.marks.dome - 60.0 {
            0.82
        } else {
            1.0
        };
        let dy = y - pat.vertebra_y;
        if ellipse_r2(x, dy, 21.0 * k, 16.0 * k) <= 1.0 {
            return Some(if disc {
                Tissue::Disc
            } else if ellipse_r2(x, dy, 18.0 * k, 13.0 * k) <= 1.0 {
                Tissue::CancellousBone
            } else {
                Tissue::Bone
            });
        }
        let dc = y - pat.canal_y;
        if ellipse_r2(x, dc, 8.5, 8.0) <= 1.0 {
            return Some(Tissue::Canal);
        }
        if disc {
            return None;
        }
        if ellipse_r2(x, dc, 14.0, 13.0) <= 1.0 && y < pat.vertebra_y {
            return Some(Tissue::Bone);
        }
        // Transverse processes and the spinous process.
        if dc.abs() < 4.0 && x.abs() < 34.0 * k && s > pat.vertebra_period - 9.0 {
            return Some(Tissue::Bone);
        }
        let tip = pat.canal_y - 38.0;
        if x.abs() <= 4.0 && y < pat.canal_y - 10.0 && y > tip && s < pat.vertebra_period - 6.0 {
            return Some(Tissue::Bone);
        }
        None
    }

    /// Ribs in the wall, their costal cartilages and the sternum.
    fn rib(&self, x: f64, y: f64) -> Option<Hit> {
        let pat = self.pat;
        let z = self.z;
        let m = &pat.marks;
        if z < pat.ribs.first().map_or(f64::INFINITY, |r| r.z0 - 80.0) || z > m.apex + 20.0 {
            return None;
        }
        let (cyc, cax, cay) = self.cavity;
        let (rx, ry) = (cax + 0.5 * pat.wall, cay + 0.5 * pat.wall);
        let yy = y - cyc;
        let (u, v) = (x / rx, yy / ry);
        let rr = (u * u + v * v).sqrt();
        if rr < 1e-9 {
            return None;
        }
        let dr = (rr - 1.0) * 0.5 * (rx + ry);
        if dr.abs() > 7.0 {
            return None;
        }
        let phi = (-v / rr).clamp(-1.0, 1.0).acos();
        // The sternum, from the xiphoid up to the manubrium.
        if phi > PI_STERNUM && z > m.dome - 40.0 && z < m.apex - 10.0 && dr.abs() < 6.0 {
            return Some(Hit::of(if dr.abs() < 3.5 && x.abs() < 8.0 {
                Tissue::CancellousBone
            } else {
                Tissue::Bone
            }));
        }
        if phi < RIB_START {
            return None;
        }
        for (n, rib) in pat.ribs.iter().enumerate() {
            let end = rib.end;
            let t = ((phi - RIB_START) / (end - RIB_START)).min(1.0);
            let zc = rib.z0 - rib.drop * t * t.sqrt();
            if phi <= end {
                let dz = z - zc;
                if dr * dr + dz * dz <= rib.radius * rib.radius {
                    return Some(Hit::of(Tissue::Bone));
                }
            } else if n >= 2 && zc > m.dome - 90.0 && phi < PI_STERNUM + 0.05 {
                // Costal cartilage runs on to the sternum, rising a little.
                let s = (phi - end) / (PI_STERNUM + 0.05 - end);
                let zcart = zc + 25.0 * s;
                let dz = z - zcart;
                let rc = 0.9 * rib.radius;
                if dr * dr + dz * dz <= rc * rc {
                    let spot = ((0.9 * x).sin() * (1.1 * z).cos()) > 0.85;
                    return Some(Hit {
                        t: Tissue::Cartilage,
                        label: 0,
                        mark: if spot { Mark::Calcified } else { Mark::None },
                    });
                }
            }
        }
        None
    }
}

/// Angle from the posterior midline beyond which the sternum lies.
const PI_STERNUM: f64 = std::f64::consts::PI - 0.12;

/// The tissue `it` paints at `p`, if it holds `p`.
#[inline]
fn paint(it: &Item, p: [f64; 3], up: (usize, f64)) -> Option<Hit> {
    let (depth, rel, size) = it.probe(p, up)?;
    let hit = match it.role {
        Role::Plain(t) => Hit::of(t),
        Role::Bone { cortex } => Hit::of(if depth > cortex {
            Tissue::Bone
        } else {
            Tissue::CancellousBone
        }),
        Role::Hollow { wall, fill, gas } => Hit::of(if depth > 1.0 - wall / size.max(1.0) {
            Tissue::BowelWall
        } else if rel > gas {
            Tissue::Gas
        } else {
            fill
        }),
        Role::Kidney => Hit::of(if depth > 0.78 {
            Tissue::Kidney
        } else {
            Tissue::KidneyMedulla
        }),
        Role::Heart { split_x } => Hit::of(if depth > 0.8 {
            Tissue::Heart
        } else if p[0] < split_x {
            Tissue::Artery
        } else {
            Tissue::HeartBlood
        }),
        Role::Bladder { layer } => {
            if depth > 0.94 {
                Hit::of(Tissue::Muscle)
            } else {
                Hit {
                    t: Tissue::Bladder,
                    label: 0,
                    mark: if rel < layer { Mark::Layer } else { Mark::None },
                }
            }
        }
    };
    Some(Hit {
        label: it.label,
        ..hit
    })
}

impl Patient {
    /// The HU value of `hit` at `p` before blur and noise.
    pub fn hu(&self, hit: Hit, p: [f64; 3], c: &Contrast) -> f64 {
        match hit.mark {
            Mark::Rim(kind) => return c.rim[kind as usize],
            Mark::Layer => return c.bladder_layer,
            Mark::Calcified => return c.of(Tissue::Cartilage) + c.calcification,
            Mark::None => {}
        }
        let base = c.of(hit.t);
        match hit.t {
            Tissue::Liver => {
                let tex: f64 = self
                    .liver_texture
                    .iter()
                    .map(|(k, ph)| (k[0] * p[0] + k[1] * p[1] + k[2] * p[2] + ph).sin())
                    .sum();
                let n = self.nodule_phase;
                let w = std::f64::consts::TAU / 9.0;
                let nod =
                    (w * p[0] + n[0]).sin() * (w * p[1] + n[1]).sin() * (w * p[2] + n[2]).sin();
                base + c.liver_texture * tex / 3.0 + c.nodules * nod
            }
            Tissue::Spleen if c.spleen_moire > 0.0 => {
                let m = (0.12 * p[0] + 0.1 * p[2]).sin() * (0.09 * p[1] - 0.11 * p[2]).sin();
                base + 0.5 * c.spleen_moire * m
            }
            _ => base,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clinical::options::ClinicalOptions;

    #[test]
    fn lungs_sit_above_the_dome_and_the_liver_below_it() {
        for seed in 0..10 {
            let pat = Patient::sample(seed, &ClinicalOptions::default());
            let m = pat.landmarks();
            let count = |z: f64, t: Tissue| {
                let pl = Plane::new(&pat, z);
                let mut n = 0;
                for j in -60..60 {
                    for i in -60..60 {
                        n += usize::from(pl.classify(4.0 * i as f64, 4.0 * j as f64).t == t);
                    }
                }
                n
            };
            assert!(count(m.dome + 20.0, Tissue::Lung) > 300, "seed {seed}");
            assert_eq!(count(m.dome + 20.0, Tissue::Liver), 0, "seed {seed}");
            assert_eq!(count(m.dome - 100.0, Tissue::Lung), 0, "seed {seed}");
            assert_eq!(count(m.liver_bottom + 20.0, Tissue::Lung), 0, "seed {seed}");
            // Just under the right dome is liver, just over it diaphragm
            // muscle, then lung base.
            let [x, y, _] = pat.dia.right;
            let at = |z: f64| Plane::new(&pat, z).classify(x, y).t;
            assert_eq!(at(m.dome - 8.0), Tissue::Liver, "seed {seed}");
            assert_eq!(at(m.dome + 2.0), Tissue::Muscle, "seed {seed}");
            assert!(
                matches!(at(m.dome + 15.0), Tissue::Lung | Tissue::HeartBlood),
                "seed {seed}: {:?}",
                at(m.dome + 15.0)
            );
        }
    }

    #[test]
    fn metal_is_painted_when_asked() {
        let opts = ClinicalOptions {
            metal: true,
            ..ClinicalOptions::default()
        };
        let pat = Patient::sample(1, &opts);
        assert!(!pat.hard.is_empty());
        let m = pat.landmarks();
        let mut found = false;
        let mut z = m.symphysis;
        while z < m.dome && !found {
            let pl = Plane::new(&pat, z);
            for j in -100..100 {
                for i in -100..100 {
                    found |= pl.classify(2.0 * i as f64, 2.0 * j as f64).t == Tissue::Metal;
                }
            }
            z += 5.0;
        }
        assert!(found);
    }
}
