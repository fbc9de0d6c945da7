//! The organs, vessels and bones around the liver of a clinical patient.

use super::labels::Organ;
use super::options::{ClinicalOptions, LiverCondition, ScanRange};
use super::patient::{Item, Patient, Role, WALL_MM};
use super::vessels::Segment;
use crate::Tissue;
use crate::shapes::{Blob, jitter};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::f64::consts::PI;

/// Fills the item lists of `p`. Draws come in a fixed order; options only
/// decide what is kept.
pub(crate) fn add_organs(
    p: &mut Patient,
    r: &mut ChaCha8Rng,
    opts: &ClinicalOptions,
    ivc: [f64; 2],
    porta: [f64; 3],
) {
    let [cx, cy] = p.core;
    let m = p.marks;
    let (dome, crest, sym) = (m.dome, m.iliac_crest, m.symphysis);
    let vy = p.vertebra_y;
    // The label an organ's voxels get: its own with organ labels, else none.
    let tag = |o: Organ| if opts.organ_labels { o.value() } else { 0 };

    // --- Bones and back muscles -------------------------------------
    let mut hard = Vec::new();
    let mut metal = Vec::new();
    let hip_side = if r.random_bool(0.5) { 1.0 } else { -1.0 };
    let hip = opts.metal
        && matches!(
            opts.scan_range,
            ScanRange::AbdomenPelvis | ScanRange::ChestAbdomenPelvis
        )
        && r.random_bool(0.5);
    let head_r = r.random_range(22.0..26.0);
    let head_x = r.random_range(0.68..0.76) * cx;
    let head_y = vy + r.random_range(35.0..50.0);
    let head_z = sym + r.random_range(5.0..15.0);
    for side in [1.0, -1.0] {
        let head = [side * head_x, head_y, head_z];
        let troch = [side * (head_x + 40.0), head_y - 10.0, head_z - 25.0];
        let knee = [side * (head_x + 25.0), head_y, head_z - 400.0];
        if hip && side == hip_side {
            metal.push(Item::blob(
                Blob::ellipsoid(head, [head_r; 3], 0.0),
                Role::Plain(Tissue::Metal),
            ));
            metal.push(Item::path(
                &[(head, 7.0), (troch, 8.0), (knee_at(troch, knee, 0.4), 5.0)],
                Role::Plain(Tissue::Metal),
            ));
        }
        hard.push(Item::blob(
            Blob::ellipsoid(head, [head_r; 3], 0.0),
            Role::Bone { cortex: 0.88 },
        ));
        hard.push(Item::path(
            &[(head, 15.0), (troch, 20.0), (knee, 14.0)],
            Role::Bone { cortex: 0.7 },
        ));
        // Iliac wing, its body down to the acetabulum, pubic and ischial
        // rami.
        let wing = Blob::ellipsoid(
            [
                side * 0.62 * cx,
                vy + r.random_range(0.0..10.0),
                crest - 48.0,
            ],
            [11.0, r.random_range(50.0..60.0), 50.0],
            -side * r.random_range(0.45..0.7),
        )
        .perturbed(r, 2, 0.05);
        hard.push(Item::blob(wing, Role::Bone { cortex: 0.55 }));
        let acetab = [side * (head_x - 12.0), head_y - 5.0, head_z + 10.0];
        hard.push(Item::path(
            &[
                ([side * 0.6 * cx, vy + 5.0, crest - 85.0], 16.0),
                (acetab, 22.0),
            ],
            Role::Bone { cortex: 0.7 },
        ));
        let pubis_y = head_y + r.random_range(30.0..45.0);
        hard.push(Item::path(
            &[(acetab, 10.0), ([side * 12.0, pubis_y, sym - 10.0], 9.0)],
            Role::Bone { cortex: 0.6 },
        ));
        hard.push(Item::path(
            &[
                (acetab, 14.0),
                ([side * 45.0, head_y - 15.0, sym - 35.0], 12.0),
            ],
            Role::Bone { cortex: 0.6 },
        ));
        // Psoas from the upper lumbar spine to the groin.
        hard.push(Item::path(
            &[
                ([side * 28.0, vy + 2.0, dome - 150.0], 8.0),
                ([side * 50.0, vy + 15.0, crest - 30.0], 22.0),
                ([side * (head_x - 25.0), head_y + 20.0, sym + 20.0], 16.0),
            ],
            Role::Plain(Tissue::Muscle),
        ));
    }
    hard.push(Item::blob(
        Blob::ellipsoid(
            [0.0, vy - 15.0, p.sacrum_top - 55.0],
            [r.random_range(45.0..55.0), 20.0, 55.0],
            0.0,
        ),
        Role::Bone { cortex: 0.7 },
    ));
    if opts.metal && !hip {
        // Posterior lumbar fixation: two rods with pedicle screws.
        let z0 = crest + r.random_range(10.0..40.0);
        let len = r.random_range(70.0..110.0);
        for side in [1.0, -1.0] {
            let x = side * 22.0;
            metal.push(Item::path(
                &[
                    ([x, p.canal_y - 8.0, z0], 3.0),
                    ([x, p.canal_y - 8.0, z0 + len], 3.0),
                ],
                Role::Plain(Tissue::Metal),
            ));
            let mut z = z0 + 5.0;
            while z < z0 + len {
                metal.push(Item::path(
                    &[
                        ([x, p.canal_y - 8.0, z], 3.0),
                        ([side * 10.0, vy + 8.0, z], 2.7),
                    ],
                    Role::Plain(Tissue::Metal),
                ));
                z += p.vertebra_period;
            }
        }
    }
    metal.extend(hard);
    p.hard = metal;

    // --- Great vessels (pass the diaphragm) --------------------------
    let aorta_r = r.random_range(9.0..13.0);
    let ax = r.random_range(-20.0..-10.0);
    let ay = vy + 16.0 + aorta_r;
    let bif = crest + r.random_range(0.0..20.0);
    let mut arteries = vec![
        Segment::new(
            [ax, ay, bif],
            [ax, ay, m.apex - 40.0],
            0.85 * aorta_r,
            aorta_r,
        ),
        Segment::new(
            [ax, ay, m.apex - 40.0],
            [ax + 20.0, ay + 50.0, m.apex - 5.0],
            aorta_r,
            aorta_r,
        ),
    ];
    for side in [1.0, -1.0] {
        let iliac = [side * 45.0, vy + 25.0, crest - 70.0];
        arteries.push(Segment::new([ax, ay, bif], iliac, 6.5, 5.5));
        arteries.push(Segment::new(
            iliac,
            [side * (head_x - 20.0), head_y + 30.0, sym],
            5.5,
            4.5,
        ));
    }
    let kz = [
        dome - r.random_range(160.0..180.0),
        dome - r.random_range(140.0..160.0),
    ];
    let kx = [r.random_range(58.0..70.0), -r.random_range(58.0..70.0)];
    for i in 0..2 {
        arteries.push(Segment::new(
            [ax, ay, kz[i] + 15.0],
            [kx[i] * 0.7, vy + 15.0, kz[i]],
            3.0,
            2.5,
        ));
    }
    let sma = [ax + 5.0, ay + 40.0, dome - 240.0];
    arteries.push(Segment::new(
        [ax, ay, dome - 140.0],
        [ax + 3.0, ay + 20.0, dome - 160.0],
        4.0,
        3.5,
    ));
    arteries.push(Segment::new(
        [ax + 3.0, ay + 20.0, dome - 160.0],
        sma,
        3.5,
        3.0,
    ));
    let ivc_top = dome + r.random_range(5.0..15.0);
    let mut veins = vec![Segment::new(
        [ivc[0], ivc[1], crest - 5.0],
        [ivc[0], ivc[1], ivc_top],
        r.random_range(10.0..13.0),
        r.random_range(11.0..14.0),
    )];
    for side in [1.0, -1.0] {
        let iliac = [side * 40.0, vy + 18.0, crest - 75.0];
        veins.push(Segment::new([ivc[0], ivc[1], crest - 5.0], iliac, 8.0, 7.0));
        veins.push(Segment::new(
            iliac,
            [side * (head_x - 28.0), head_y + 28.0, sym],
            7.0,
            6.0,
        ));
    }
    for i in 0..2 {
        veins.push(Segment::new(
            [ivc[0], ivc[1], kz[i] + 10.0],
            [kx[i] * 0.7, vy + 22.0, kz[i]],
            5.0,
            4.5,
        ));
    }
    p.vessels = vec![
        Item::tubes(arteries, Role::Plain(Tissue::Artery)).labelled(tag(Organ::Aorta)),
        Item::tubes(veins, Role::Plain(Tissue::Vessel)).labelled(tag(Organ::InferiorVenaCava)),
    ];

    // --- Above the liver: extrahepatic portal system, gallbladder,
    // kidneys ----------------------------------------------------------
    let conf = [
        5.0,
        vy + r.random_range(40.0..50.0),
        dome - r.random_range(135.0..150.0),
    ];
    let spleen = Blob::ellipsoid(
        [
            jitter(r, -0.62 * cx, 0.06),
            jitter(r, -0.3 * cy, 0.2),
            dome - r.random_range(55.0..80.0),
        ],
        [
            jitter(r, 0.2 * cx, 0.12),
            jitter(r, 0.36 * cy, 0.12),
            r.random_range(45.0..58.0),
        ],
        r.random_range(-0.8..-0.3),
    )
    .perturbed(r, 3, 0.08);
    let spleen = if opts.liver == LiverCondition::Cirrhotic {
        spleen.scaled([1.35, 1.4, 1.5])
    } else {
        spleen
    };
    let hilum = [
        spleen.centre[0] + 0.6 * spleen.semi[0],
        spleen.centre[1] + 0.3 * spleen.semi[1],
        spleen.centre[2] - 10.0,
    ];
    let mut above = vec![Item::path(
        &[(conf, 7.0), (porta, 6.5)],
        Role::Plain(Tissue::PortalVein),
    )];
    above.push(Item::path(
        &[
            (hilum, 4.0),
            ([-20.0, conf[1] + 2.0, conf[2] + 10.0], 4.5),
            (conf, 5.0),
        ],
        Role::Plain(Tissue::PortalVein),
    ));
    above.push(Item::path(
        &[(conf, 5.5), ([8.0, conf[1] + 12.0, dome - 240.0], 4.5)],
        Role::Plain(Tissue::PortalVein),
    ));
    let gb = Blob::ellipsoid(
        [
            jitter(r, 0.3 * cx, 0.12),
            jitter(r, 0.32 * cy, 0.15),
            dome - r.random_range(120.0..140.0),
        ],
        [
            r.random_range(12.0..18.0),
            r.random_range(14.0..20.0),
            r.random_range(28.0..40.0),
        ],
        r.random_range(-0.5..0.5),
    );
    if r.random_bool(0.85) {
        above.push(
            Item::blob(gb, Role::Plain(Tissue::Gallbladder)).labelled(tag(Organ::Gallbladder)),
        );
    }
    for i in 0..2 {
        let side = kx[i].signum();
        let k = Blob::ellipsoid(
            [kx[i], vy + r.random_range(0.0..12.0), kz[i]],
            [
                r.random_range(22.0..27.0),
                r.random_range(28.0..34.0),
                r.random_range(48.0..58.0),
            ],
            side * r.random_range(0.3..0.6),
        )
        .perturbed(r, 2, 0.04);
        let pelvis = Blob::ellipsoid(
            [
                k.centre[0] - side * 0.45 * k.semi[0],
                k.centre[1] + 5.0,
                kz[i],
            ],
            [7.0, 11.0, 18.0],
            0.0,
        );
        above.push(
            Item::blob(pelvis, Role::Plain(Tissue::RenalPelvis)).labelled(tag(Organ::Kidney)),
        );
        above.push(Item::blob(k, Role::Kidney).labelled(tag(Organ::Kidney)));
    }
    p.above_liver = above;

    // --- Below the liver ----------------------------------------------
    let mut below =
        vec![Item::blob(spleen.clone(), Role::Plain(Tissue::Spleen)).labelled(tag(Organ::Spleen))];
    below.push(
        Item::path(
            &[
                (
                    [0.22 * cx, conf[1] - 2.0, conf[2] - 15.0],
                    r.random_range(13.0..17.0),
                ),
                ([5.0, conf[1] + 14.0, conf[2] + 5.0], 10.0),
                ([-25.0, conf[1] + 14.0, conf[2] + 15.0], 10.0),
                ([hilum[0] + 5.0, hilum[1] + 5.0, hilum[2]], 8.0),
            ],
            Role::Plain(Tissue::Pancreas),
        )
        .labelled(tag(Organ::Pancreas)),
    );
    let fill = |oral: bool| {
        if oral {
            Tissue::OralContrast
        } else {
            Tissue::Bowel
        }
    };
    let stomach = Blob::ellipsoid(
        [
            jitter(r, -0.33 * cx, 0.12),
            jitter(r, 0.25 * cy, 0.2),
            dome - r.random_range(45.0..65.0),
        ],
        [
            jitter(r, 0.27 * cx, 0.12),
            jitter(r, 0.25 * cy, 0.12),
            r.random_range(40.0..55.0),
        ],
        r.random_range(-0.4..0.4),
    )
    .perturbed(r, 3, 0.08);
    let stomach_oral = opts.oral_contrast && r.random_bool(0.6);
    below.push(
        Item::blob(
            stomach,
            Role::Hollow {
                wall: 4.0,
                fill: fill(stomach_oral),
                gas: r.random_range(0.2..0.6),
            },
        )
        .labelled(tag(Organ::Stomach)),
    );
    // The colon frame: caecum, ascending, transverse, descending, sigmoid
    // and rectum.
    let cr = r.random_range(18.0..25.0);
    let colon = [
        ([0.55 * cx, 0.1 * cy, crest - 30.0], cr),
        ([0.62 * cx, -0.15 * cy, dome - 165.0], cr),
        ([0.45 * cx, 0.5 * cy, dome - 150.0], 0.8 * cr),
        ([-0.3 * cx, 0.55 * cy, dome - 130.0], 0.8 * cr),
        ([-0.62 * cx, 0.0, dome - 105.0], 0.7 * cr),
        ([-0.64 * cx, -0.2 * cy, crest + 10.0], 0.7 * cr),
        ([-0.35 * cx, 0.25 * cy, sym + 60.0], 0.7 * cr),
        ([0.0, vy - 10.0, sym + 25.0], 0.8 * cr),
        ([0.0, vy - 5.0, sym - 30.0], 0.6 * cr),
    ];
    let colon_gas = r.random_range(-0.2..0.5);
    below.push(Item::path(
        &colon,
        Role::Hollow {
            wall: WALL_MM,
            fill: Tissue::Bowel,
            gas: colon_gas,
        },
    ));
    let loops = r.random_range(8..14);
    for _ in 0..loops {
        let rad = r.random_range(11.0..17.0);
        let a = r.random_range(0.0..2.0 * PI);
        let rr = r.random_range(0.0..0.6);
        let z = r.random_range(sym + 40.0..dome - 160.0);
        let pts: Vec<([f64; 3], f64)> = (0..4)
            .map(|k| {
                let t = k as f64 * r.random_range(0.8..1.2);
                let c = [
                    (rr * a.cos() + 0.15 * (t + a).sin()) * cx,
                    (rr * a.sin() * 0.6 + 0.2 + 0.12 * (1.7 * t).cos()) * cy,
                    z + 25.0 * (t * 0.9 + a).sin(),
                ];
                (c, rad)
            })
            .collect();
        let gas = if r.random_bool(0.3) { 0.3 } else { 2.0 };
        let oral = opts.oral_contrast && r.random_bool(0.7);
        below.push(Item::path(
            &pts,
            Role::Hollow {
                wall: WALL_MM,
                fill: fill(oral),
                gas,
            },
        ));
    }
    let bladder = Blob::ellipsoid(
        [0.0, 0.3 * cy, sym + r.random_range(25.0..40.0)],
        [
            r.random_range(30.0..50.0),
            r.random_range(25.0..40.0),
            r.random_range(25.0..40.0),
        ],
        0.0,
    );
    below.push(Item::blob(
        bladder,
        Role::Bladder {
            layer: r.random_range(-0.6..-0.2),
        },
    ));
    // Ascites of a cirrhotic liver: perihepatic, perisplenic and pelvic.
    let ascites = r.random_range(5.0..18.0);
    if opts.liver == LiverCondition::Cirrhotic && r.random_bool(0.7) {
        let rl = &p.liver[0];
        let f = |b: &Blob| [0, 1, 2].map(|a| 1.0 + ascites / b.semi[a].max(10.0));
        below.push(Item::blob(rl.scaled(f(rl)), Role::Plain(Tissue::Fluid)));
        below.push(Item::blob(
            spleen.scaled(f(&spleen)),
            Role::Plain(Tissue::Fluid),
        ));
        below.push(Item::blob(
            Blob::ellipsoid(
                [0.0, -0.1 * cy, sym + 50.0],
                [45.0 + ascites, 25.0 + ascites, 25.0 + ascites],
                0.0,
            ),
            Role::Plain(Tissue::Fluid),
        ));
    }
    p.below_liver = below;

    // --- Thorax --------------------------------------------------------
    let heart = Blob::ellipsoid(
        [-0.15 * cx, 0.28 * cy, dome + r.random_range(45.0..60.0)],
        [
            jitter(r, 0.48 * cx, 0.08),
            jitter(r, 0.5 * cy, 0.08),
            r.random_range(55.0..65.0),
        ],
        r.random_range(0.4..0.7),
    )
    .perturbed(r, 2, 0.04);
    let split_x = heart.centre[0];
    // Pulmonary vessels branching from each hilum through the lung.
    let mut lung = Vec::new();
    {
        let pat: &Patient = p;
        let inside = |q: [f64; 3]| {
            let (cyc, ax, ay) = pat.cavity_at(q[2]);
            q[2] > pat.dia.z(q[0], q[1]) + pat.dia.thickness + 3.0
                && q[2] < m.apex - 10.0
                && crate::shapes::ellipse_r2(q[0], q[1] - cyc, 0.92 * ax, 0.92 * ay) < 1.0
                && (q[0] + 8.0).abs() > 30.0
                && !heart.contains(q)
        };
        for side in [1.0, -1.0] {
            let hilum = [side * 55.0 - 8.0, 0.0, dome + r.random_range(110.0..125.0)];
            for dir in [
                [1.0, 0.0, -0.8],
                [0.5, 0.3, -1.0],
                [1.0, 0.2, 0.6],
                [0.6, -0.8, -0.5],
            ] {
                let d = super::vessels::normalise([
                    side * dir[0] + r.random_range(-0.15..0.15),
                    dir[1] + r.random_range(-0.15..0.15),
                    dir[2],
                ]);
                lung.extend(super::vessels::grow_tree(
                    r, hilum, d, 5.0, 40.0, 7, &inside,
                ));
            }
        }
    }
    p.lung_tree = super::vessels::Tubes::new(lung);
    p.thorax = vec![
        Item::blob(heart, Role::Heart { split_x }),
        // The mediastinum: fat round the great vessels and oesophagus.
        Item::blob(
            Blob::ellipsoid([-8.0, 0.0, m.apex - 60.0], [28.0, 1.1 * cy, 1.0e4], 0.0),
            Role::Plain(Tissue::VisceralFat),
        ),
    ];
}

fn knee_at(a: [f64; 3], b: [f64; 3], t: f64) -> [f64; 3] {
    [0, 1, 2].map(|i| a[i] + t * (b[i] - a[i]))
}
