//! End-to-end properties of generated phantoms: determinism, label sanity,
//! intensities and world-space consistency across grids.

use liverseg_phantom::{Phantom, PhantomConfig, Tissue, generate, tissue_map};

/// A coarse grid covering the whole trunk: 40 × 40 × 20 voxels of
/// 9 × 9 × 12 mm.
fn small() -> PhantomConfig {
    PhantomConfig {
        dims: [40, 40, 20],
        spacing: [9.0, 9.0, 12.0],
        ..PhantomConfig::default()
    }
}

fn liver_mean_hu(p: &Phantom) -> f64 {
    let (sum, n) = p
        .image
        .data()
        .iter()
        .zip(p.label.data())
        .filter(|(_, l)| **l == 1)
        .fold((0.0, 0usize), |(s, n), (v, _)| (s + f64::from(*v), n + 1));
    sum / n as f64
}

#[test]
fn same_seed_gives_identical_bytes_on_any_thread_count() {
    let cfg = small();
    let a = generate(11, &cfg).unwrap();
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(|| generate(11, &cfg).unwrap());
    let three = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap()
        .install(|| generate(11, &cfg).unwrap());
    assert_eq!(a, one);
    assert_eq!(a, three);
    let b = generate(12, &cfg).unwrap();
    assert_ne!(a.image.data(), b.image.data());
    assert_ne!(a.label.data(), b.label.data());
}

#[test]
fn labels_are_binary_liver_only_and_inside_the_body() {
    for seed in 0..6 {
        let cfg = small();
        let p = generate(seed, &cfg).unwrap();
        let tissues = tissue_map(seed, &cfg).unwrap();
        assert!(p.label.data().iter().all(|&v| v <= 1));
        let mut liver = 0usize;
        for (l, t) in p.label.data().iter().zip(tissues.data()) {
            assert_eq!(*l == 1, *t == Tissue::Liver as u8, "seed {seed}");
            if *l == 1 {
                liver += 1;
            }
        }
        let body = tissues
            .data()
            .iter()
            .filter(|&&t| t != Tissue::Air as u8 && t != Tissue::Table as u8)
            .count();
        let fraction = liver as f64 / p.label.len() as f64;
        assert!((0.005..0.15).contains(&fraction), "seed {seed}: {fraction}");
        assert!(liver < body / 4, "seed {seed}: {liver} of {body}");
        let ml = p.liver_ml();
        assert!((500.0..3000.0).contains(&ml), "seed {seed}: {ml} mL");
    }
}

#[test]
fn intensities_look_like_ct() {
    let cfg = PhantomConfig {
        noise_sigma: 15.0,
        ..small()
    };
    for seed in 0..4 {
        let p = generate(seed, &cfg).unwrap();
        let mean = liver_mean_hu(&p);
        assert!((40.0..80.0).contains(&mean), "seed {seed}: {mean}");
        let s = p.image.stats();
        assert!(s.min <= -990.0, "air present: {}", s.min);
        assert!(s.max >= 300.0, "bone present: {}", s.max);
        // The corner voxel is air far from the body.
        let corner = f64::from(p.image.get(0, 0, 0).unwrap());
        assert!(corner < -900.0, "{corner}");
    }
}

#[test]
fn flips_change_the_grid_not_the_anatomy() {
    let lps = small();
    let ras = PhantomConfig {
        flips: [false, false, false],
        ..small()
    };
    let lpi = PhantomConfig {
        flips: [true, true, true],
        ..small()
    };
    let a = generate(5, &lps).unwrap();
    let b = generate(5, &ras).unwrap();
    let c = generate(5, &lpi).unwrap();
    assert_eq!(a.image.axcodes(), ['L', 'P', 'S']);
    assert_eq!(b.image.axcodes(), ['R', 'A', 'S']);
    assert_eq!(c.image.axcodes(), ['L', 'P', 'I']);
    // The grids sample the same world points, so the masks are mirror
    // images of each other and their volumes agree exactly.
    assert_eq!(a.liver_ml(), b.liver_ml());
    assert_eq!(a.liver_ml(), c.liver_ml());
    let [nx, ny, nz] = lps.dims;
    for k in 0..nz {
        for j in 0..ny {
            for i in 0..nx {
                let l = a.label.get(i, j, k).unwrap();
                assert_eq!(l, b.label.get(nx - 1 - i, ny - 1 - j, k).unwrap());
                assert_eq!(l, c.label.get(i, j, nz - 1 - k).unwrap());
            }
        }
    }
    // The liver lies on the patient's right: world x > 0 on average.
    let mut x_sum = 0.0;
    let mut n = 0.0;
    for k in 0..nz {
        for j in 0..ny {
            for i in 0..nx {
                if a.label.get(i, j, k) == Some(1) {
                    x_sum += a.label.world(i as f64, j as f64, k as f64)[0];
                    n += 1.0;
                }
            }
        }
    }
    assert!(x_sum / n > 20.0, "mean liver x {}", x_sum / n);
}

#[test]
fn liver_volume_agrees_across_spacings() {
    let fine = PhantomConfig {
        dims: [64, 64, 40],
        spacing: [6.0, 6.0, 6.0],
        noise_sigma: 0.0,
        ..PhantomConfig::default()
    };
    let coarse = PhantomConfig {
        dims: [48, 48, 48],
        spacing: [8.0, 8.0, 5.0],
        flips: [false, false, true],
        center: [3.0, -2.0, 1.0],
        ..fine.clone()
    };
    let a = generate(21, &fine).unwrap().liver_ml();
    let b = generate(21, &coarse).unwrap().liver_ml();
    let rel = (a - b).abs() / a;
    assert!(rel < 0.05, "{a} mL vs {b} mL");
}

#[test]
fn random_configs_generate_and_round_trip_through_nifti() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = PhantomConfig::random(3);
    // Keep the test fast: the same geometry at a quarter of the matrix.
    cfg.dims = [cfg.dims[0] / 4, cfg.dims[1] / 4, cfg.dims[2] / 4];
    cfg.spacing = [
        cfg.spacing[0] * 4.0,
        cfg.spacing[1] * 4.0,
        cfg.spacing[2] * 4.0,
    ];
    let p = generate(3, &cfg).unwrap();
    let path = dir.path().join("ct.nii.gz");
    liverseg_io::nifti::write(&path, &p.image, &Default::default()).unwrap();
    let back: liverseg_io::Volume<i16> =
        liverseg_io::nifti::read(&path, &Default::default()).unwrap();
    assert_eq!(back.data(), p.image.data());
    assert!(back.affine().max_abs_diff(p.image.affine()) < 1e-3);
    assert_eq!(back.axcodes(), cfg.affine().axcodes());
}

#[test]
fn invalid_configs_are_errors() {
    let cfg = PhantomConfig {
        dims: [0, 10, 10],
        ..PhantomConfig::default()
    };
    let e = generate(0, &cfg).unwrap_err().to_string();
    assert!(e.contains("dims"), "{e}");
}
