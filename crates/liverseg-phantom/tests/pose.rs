//! Issue 16's patients beyond the supine adult: positions (the table and
//! the way gas settles), any storage order, children and liver resections,
//! and `ClinicalRanges::varied`, which draws them.

use liverseg_io::Volume;
use liverseg_phantom::{
    ClinicalOptions, ClinicalRanges, Phantom, PhantomConfig, Position, Resection, Storage, Tissue,
    describe, generate, tissue_map,
};
use liverseg_transforms::spatial::orient::orientation;

/// 96 × 96 × 48 voxels of 5 × 5 × 5 mm around the upper abdomen: wide
/// enough in-plane to hold the table in every position.
fn grid(opts: ClinicalOptions) -> PhantomConfig {
    PhantomConfig {
        dims: [96, 96, 48],
        spacing: [5.0, 5.0, 5.0],
        flips: [true, true, false],
        center: [0.0, 0.0, -20.0],
        noise_sigma: 0.0,
        blur_sigma: 0.0,
        clinical: Some(opts),
    }
}

/// Mean world position of the voxels of tissue `t`, and their count.
fn centroid(map: &Volume<u8>, t: Tissue) -> ([f64; 3], usize) {
    let [nx, ny, _] = map.dims();
    let a = map.affine();
    let (mut s, mut n) = ([0.0; 3], 0usize);
    for (idx, _) in map
        .data()
        .iter()
        .enumerate()
        .filter(|(_, v)| **v == t as u8)
    {
        let w = a.apply([
            (idx % nx) as f64,
            ((idx / nx) % ny) as f64,
            (idx / (nx * ny)) as f64,
        ]);
        (0..3).for_each(|k| s[k] += w[k]);
        n += 1;
    }
    (s.map(|v| v / n.max(1) as f64), n)
}

fn with_position(position: Position) -> ClinicalOptions {
    ClinicalOptions {
        position,
        ..ClinicalOptions::default()
    }
}

#[test]
fn the_table_lies_under_the_patient_in_every_position() {
    let seed = 3;
    let body = centroid(
        &tissue_map(seed, &grid(ClinicalOptions::default())).unwrap(),
        Tissue::Liver,
    )
    .0;
    // (axis, sign) of the table's side of the patient in the RAS frame.
    for (pos, axis, sign) in [
        (Position::Supine, 1, -1.0),
        (Position::Prone, 1, 1.0),
        (Position::LeftDecubitus, 0, -1.0),
        (Position::RightDecubitus, 0, 1.0),
    ] {
        let map = tissue_map(seed, &grid(with_position(pos))).unwrap();
        let (table, n) = centroid(&map, Tissue::Table);
        assert!(n > 100, "{pos:?}: {n} table voxels");
        // The table is a slab beyond the body on the lower side.
        assert!(
            (table[axis] - body[axis]) * sign > 100.0,
            "{pos:?}: table at {table:?}, liver at {body:?}"
        );
        let other = 1 - axis;
        assert!(table[other].abs() < 40.0, "{pos:?}: {table:?}");
        // The organs stay where they are in the patient frame.
        let liver = centroid(&map, Tissue::Liver).0;
        assert!((0..3).all(|k| (liver[k] - body[k]).abs() < 1e-9), "{pos:?}");
    }
}

#[test]
fn bowel_gas_rises_away_from_the_table() {
    // Gas fills the upper part of each loop: anterior when supine,
    // posterior when prone, the right side when lying on the left.
    let gas = |pos| {
        let mut cfg = grid(with_position(pos));
        cfg.center[2] = -120.0;
        centroid(&tissue_map(11, &cfg).unwrap(), Tissue::Gas)
    };
    let (supine, n) = gas(Position::Supine);
    assert!(n > 50, "{n} gas voxels");
    let (prone, _) = gas(Position::Prone);
    assert!(prone[1] < supine[1] - 5.0, "{prone:?} vs {supine:?}");
    let (left_down, _) = gas(Position::LeftDecubitus);
    let (right_down, _) = gas(Position::RightDecubitus);
    assert!(
        left_down[0] > right_down[0] + 5.0,
        "{left_down:?} vs {right_down:?}"
    );
}

/// `p` brought to RAS order (voxels move, world positions do not).
fn ras(p: &Phantom) -> (Volume<i16>, Volume<u8>) {
    (
        orientation(&p.image, ['R', 'A', 'S']).unwrap(),
        orientation(&p.label, ['R', 'A', 'S']).unwrap(),
    )
}

#[test]
fn any_storage_order_keeps_every_voxel_at_its_world_position() {
    let seed = 8;
    let mut plain = grid(ClinicalOptions::default());
    plain.dims = [40, 36, 20];
    plain.noise_sigma = 12.0;
    let reference = ras(&generate(seed, &plain).unwrap());
    let mut codes = std::collections::BTreeSet::new();
    for (axes, flips) in [
        ([2, 0, 1], [false, true, false]),
        ([1, 0, 2], [true, false, true]),
        ([0, 2, 1], [false, false, true]),
        ([2, 1, 0], [true, true, true]),
    ] {
        let mut cfg = plain.clone();
        cfg.clinical.as_mut().unwrap().storage = Storage { axes, flips };
        let p = generate(seed, &cfg).unwrap();
        assert_eq!(p.image.dims(), axes.map(|a| plain.dims[a]));
        codes.insert(p.image.affine().axcodes_string());
        let (img, lab) = ras(&p);
        assert_eq!(img.dims(), reference.0.dims());
        assert!(img.affine().max_abs_diff(reference.0.affine()) < 1e-9);
        assert!(img.data() == reference.0.data(), "{axes:?} {flips:?}");
        assert!(lab.data() == reference.1.data(), "{axes:?} {flips:?}");
        let d = describe(seed, &cfg).unwrap();
        assert_eq!(d.axcodes, p.image.affine().axcodes_string());
    }
    assert_eq!(codes.len(), 4, "{codes:?}");
}

#[test]
fn a_child_is_the_adult_anatomy_scaled() {
    let seed = 5;
    let adult = grid(ClinicalOptions::default());
    let mut child = grid(ClinicalOptions {
        body_scale: 0.6,
        ..ClinicalOptions::default()
    });
    // The same grid shrunk by the same factor samples the same anatomy.
    child.spacing = adult.spacing.map(|s| s * 0.6);
    child.center = adult.center.map(|c| c * 0.6);
    let a = generate(seed, &adult).unwrap();
    let c = generate(seed, &child).unwrap();
    // Equal but for voxels whose centre rounding moved across a surface.
    let differ = a
        .label
        .data()
        .iter()
        .zip(c.label.data())
        .filter(|(x, y)| x != y)
        .count();
    assert!(differ * 1000 < a.label.len(), "{differ} voxels differ");
    let ratio = c.liver_ml() / a.liver_ml();
    assert!((ratio - 0.216).abs() < 0.002, "{ratio}");
    assert!(a.liver_ml() > 900.0, "{}", a.liver_ml());
    // The table is furniture: 12 mm thick for a child too.
    let thickness = |body_scale: f64| {
        let cfg = PhantomConfig {
            dims: [8, 200, 2],
            spacing: [2.0, 2.0, 4.0],
            ..grid(ClinicalOptions {
                body_scale,
                ..ClinicalOptions::default()
            })
        };
        let map = tissue_map(seed, &cfg).unwrap();
        let a = map.affine();
        let ys: Vec<f64> = (map.data().iter().enumerate())
            .filter(|(_, t)| **t == Tissue::Table as u8)
            .map(|(i, _)| a.apply([(i % 8) as f64, ((i / 8) % 200) as f64, 0.0])[1])
            .collect();
        assert!(!ys.is_empty(), "scale {body_scale}: no table");
        ys.iter().copied().fold(f64::MIN, f64::max) - ys.iter().copied().fold(f64::MAX, f64::min)
    };
    let (adult_mm, child_mm) = (thickness(1.0), thickness(0.6));
    assert!((adult_mm - 10.0).abs() <= 2.0, "{adult_mm}");
    assert!(
        (child_mm - adult_mm).abs() <= 2.0,
        "{child_mm} vs {adult_mm}"
    );
    let d = describe(seed, &child).unwrap();
    assert_eq!(d.age_group(), "child");
    assert!(d.to_string().contains("child (scale 0.60)"), "{d}");
}

/// Liver voxels whose world x satisfies `keep`.
fn liver_where(map: &Volume<u8>, keep: impl Fn(f64) -> bool) -> usize {
    let [nx, ny, _] = map.dims();
    let a = map.affine();
    (map.data().iter().enumerate())
        .filter(|(idx, v)| {
            **v == Tissue::Liver as u8
                && keep(
                    a.apply([
                        (idx % nx) as f64,
                        ((idx / nx) % ny) as f64,
                        (idx / (nx * ny)) as f64,
                    ])[0],
                )
        })
        .count()
}

#[test]
fn a_resection_removes_a_lobe_and_leaves_clips() {
    let seed = 2;
    let whole = tissue_map(seed, &grid(ClinicalOptions::default())).unwrap();
    // +x is the patient's right: the right lobe reaches far right, the
    // left lobe far left.
    let far_right = |x: f64| x > 70.0;
    let far_left = |x: f64| x < -40.0;
    for (kind, gone, kept) in [
        (
            Resection::RightHepatectomy,
            &far_right as &dyn Fn(f64) -> bool,
            &far_left as &dyn Fn(f64) -> bool,
        ),
        (Resection::LeftHepatectomy, &far_left, &far_right),
    ] {
        let cfg = grid(ClinicalOptions {
            resection: Some(kind),
            ..ClinicalOptions::default()
        });
        let map = tissue_map(seed, &cfg).unwrap();
        let before = liver_where(&whole, gone);
        assert!(before > 100, "{kind:?}: {before}");
        let after = liver_where(&map, gone);
        assert!(
            after * 20 < before,
            "{kind:?}: {after} of {before} voxels left"
        );
        // The remnant regrows.
        assert!(
            liver_where(&map, kept) > liver_where(&whole, kept),
            "{kind:?}"
        );
        // The clips, a few mm across, need a finer grid around the cut.
        let fine = PhantomConfig {
            dims: [100, 100, 100],
            spacing: [1.5; 3],
            center: centroid(&whole, Tissue::Liver).0,
            ..cfg.clone()
        };
        let (_, clips) = centroid(&tissue_map(seed, &fine).unwrap(), Tissue::Metal);
        assert!(clips > 0, "{kind:?}: no clip");
        assert!(
            describe(seed, &cfg)
                .unwrap()
                .to_string()
                .contains(kind.name())
        );
    }
}

#[test]
fn varied_ranges_draw_the_new_patients_and_default_ranges_never_do() {
    let varied = ClinicalRanges::coarse().varied();
    let mut positions = std::collections::BTreeSet::new();
    let (mut children, mut resections, mut stored) = (0, 0, 0);
    for seed in 0..60 {
        let plain = PhantomConfig::clinical_in(seed, &ClinicalRanges::coarse());
        let o = plain.clinical.as_ref().unwrap();
        assert_eq!(o.position, Position::Supine);
        assert_eq!((o.body_scale, o.resection), (1.0, None));
        assert_eq!(o.storage, Storage::IDENTITY);
        let cfg = PhantomConfig::clinical_in(seed, &varied);
        cfg.validate().unwrap();
        assert_eq!(cfg, PhantomConfig::clinical_in(seed, &varied));
        let v = cfg.clinical.as_ref().unwrap();
        positions.insert(v.position.name());
        children += usize::from(v.body_scale < 1.0);
        resections += usize::from(v.resection.is_some());
        stored += usize::from(v.storage != v.position.scanner_storage());
        // Everything else about the case is drawn as without `varied`.
        assert_eq!((v.phase, v.habitus, v.liver), (o.phase, o.habitus, o.liver));
        assert_eq!(v.lesions, o.lesions);
    }
    assert_eq!(positions.len(), 4, "{positions:?}");
    assert!((5..=30).contains(&children), "{children}");
    assert!((3..=20).contains(&resections), "{resections}");
    assert!((15..=45).contains(&stored), "{stored}");
}

#[test]
fn bad_body_scales_and_storages_are_errors() {
    for opts in [
        ClinicalOptions {
            body_scale: 0.1,
            ..ClinicalOptions::default()
        },
        ClinicalOptions {
            storage: Storage {
                axes: [0, 0, 1],
                flips: [false; 3],
            },
            ..ClinicalOptions::default()
        },
    ] {
        assert!(generate(0, &grid(opts)).is_err());
    }
}
