//! The clinical mode: determinism, HU per phase, label rule (Decathlon
//! Task03 / LiTS), kernel noise texture, field of view and liver volume.

use liverseg_phantom::{
    ClinicalOptions, ClinicalRanges, Habitus, Kernel, LesionKind, LiverCondition, Phantom,
    PhantomConfig, Phase, Tissue, describe, generate, tissue_map,
};

/// A coarse grid over the liver region of the clinical patient frame:
/// 96 × 96 × 48 voxels of 4 × 4 × 5 mm, centred on the upper abdomen.
fn grid(opts: ClinicalOptions) -> PhantomConfig {
    PhantomConfig {
        dims: [96, 96, 48],
        spacing: [4.0, 4.0, 5.0],
        flips: [true, true, false],
        center: [0.0, 0.0, -20.0],
        noise_sigma: 0.0,
        blur_sigma: 0.0,
        clinical: Some(opts),
    }
}

fn mean_where(p: &Phantom, map: &[u8], t: Tissue) -> (f64, usize) {
    let (s, n) = p
        .image
        .data()
        .iter()
        .zip(map)
        .filter(|(_, m)| **m == t as u8)
        .fold((0.0, 0usize), |(s, n), (v, _)| (s + f64::from(*v), n + 1));
    (s / n.max(1) as f64, n)
}

#[test]
fn clinical_phantoms_are_deterministic_on_any_thread_count() {
    let mut cfg = PhantomConfig::clinical_in(5, &ClinicalRanges::coarse());
    cfg.dims = [72, 72, cfg.dims[2].min(40)];
    let a = generate(5, &cfg).unwrap();
    assert_eq!(a, generate(5, &cfg).unwrap());
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let b = one.install(|| generate(5, &cfg).unwrap());
    assert_eq!(a, b);
    assert_ne!(a, generate(6, &cfg).unwrap());
}

#[test]
fn portal_venous_liver_and_arterial_aorta_read_literature_values() {
    for seed in 0..3 {
        let cfg = grid(ClinicalOptions::default());
        let p = generate(seed, &cfg).unwrap();
        let map = tissue_map(seed, &cfg).unwrap();
        // Interior liver voxels: liver at the centre sample and its four
        // in-plane neighbours, so partial volume does not mix in.
        let [nx, ny, nz] = cfg.dims;
        let m = map.data();
        let mut v = Vec::new();
        for k in 1..nz - 1 {
            for j in 1..ny - 1 {
                for i in 1..nx - 1 {
                    let c = i + nx * (j + ny * k);
                    let liver = Tissue::Liver as u8;
                    if [c, c - 1, c + 1, c - nx, c + nx, c - nx * ny, c + nx * ny]
                        .iter()
                        .all(|&q| m[q] == liver)
                    {
                        v.push(f64::from(p.image.data()[c]));
                    }
                }
            }
        }
        assert!(v.len() > 1000, "{}", v.len());
        v.sort_by(f64::total_cmp);
        let median = v[v.len() / 2];
        // Liver 95–125 HU in the portal venous phase, ± texture.
        assert!((90.0..=130.0).contains(&median), "seed {seed}: {median}");

        let art = grid(ClinicalOptions {
            phase: Phase::Arterial,
            ..ClinicalOptions::default()
        });
        let p = generate(seed, &art).unwrap();
        let (aorta, na) = mean_where(&p, m, Tissue::Artery);
        let (liver, _) = mean_where(&p, m, Tissue::Liver);
        assert!(na > 50, "{na}");
        assert!(
            aorta > liver + 120.0,
            "seed {seed}: aorta {aorta} liver {liver}"
        );
    }
}

#[test]
fn lungs_lie_above_the_liver_never_below_it() {
    for seed in 0..3 {
        let mut cfg = grid(ClinicalOptions::default());
        cfg.dims[2] = 80;
        cfg.center[2] = 40.0;
        let map = tissue_map(seed, &cfg).unwrap();
        let [nx, ny, nz] = cfg.dims;
        let m = map.data();
        let (lung, liver) = (Tissue::Lung as u8, Tissue::Liver as u8);
        let slice_has = |k: usize, t: u8| m[k * nx * ny..(k + 1) * nx * ny].contains(&t);
        let liver_top = (0..nz).filter(|&k| slice_has(k, liver)).max().unwrap();
        let liver_bottom = (0..nz).filter(|&k| slice_has(k, liver)).min().unwrap();
        assert!(
            liver_top + 3 < nz && slice_has(liver_top + 3, lung),
            "seed {seed}"
        );
        let lowest_lung = (0..nz).filter(|&k| slice_has(k, lung)).min().unwrap();
        assert!(lowest_lung > (liver_bottom + liver_top) / 2, "seed {seed}");
        // In every column, the lung lies above the liver (the diaphragm
        // separates them).
        for j in 0..ny {
            for i in 0..nx {
                let col = |t: u8| (0..nz).filter(move |&k| m[i + nx * (j + ny * k)] == t);
                if let (Some(top), Some(low)) = (col(liver).max(), col(lung).min()) {
                    assert!(low > top, "seed {seed} column {i},{j}");
                }
            }
        }
    }
}

#[test]
fn label_rule_includes_intrahepatic_vessels_and_excludes_gallbladder_and_ivc() {
    let mut seen_vessel = false;
    let mut seen_gb = false;
    for seed in 0..6 {
        let cfg = grid(ClinicalOptions {
            liver: LiverCondition::Cirrhotic,
            ..ClinicalOptions::default()
        });
        let p = generate(seed, &cfg).unwrap();
        let map = tissue_map(seed, &cfg).unwrap();
        for (&l, &t) in p.label.data().iter().zip(map.data()) {
            let t = Tissue::ALL[t as usize];
            match t {
                Tissue::Gallbladder | Tissue::Vessel | Tissue::Fluid | Tissue::Spleen => {
                    assert_eq!(l, 0, "{t:?}")
                }
                Tissue::Liver => assert_eq!(l, 1),
                Tissue::HepaticVein if l == 1 => seen_vessel = true,
                _ => {}
            }
            if l == 1 {
                assert!(
                    matches!(t, Tissue::Liver | Tissue::PortalVein | Tissue::HepaticVein),
                    "{t:?}"
                );
            }
            seen_gb |= t == Tissue::Gallbladder;
        }
        // The extrahepatic portal vein is not liver, its intrahepatic
        // branches are.
        let pv: Vec<u8> = p
            .label
            .data()
            .iter()
            .zip(map.data())
            .filter(|(_, t)| **t == Tissue::PortalVein as u8)
            .map(|(l, _)| *l)
            .collect();
        assert!(pv.contains(&0) && pv.contains(&1), "seed {seed}");
    }
    assert!(seen_vessel && seen_gb);
}

#[test]
fn tumour_label_marks_metastases_two() {
    let opts = ClinicalOptions {
        lesions: vec![
            LesionKind::Metastasis,
            LesionKind::Metastasis,
            LesionKind::Cyst,
        ],
        tumour_label: true,
        ..ClinicalOptions::default()
    };
    let seed = 3;
    let cfg = grid(opts.clone());
    let p = generate(seed, &cfg).unwrap();
    let map = tissue_map(seed, &cfg).unwrap();
    let mut twos = 0;
    for (&l, &t) in p.label.data().iter().zip(map.data()) {
        if t == Tissue::Metastasis as u8 {
            assert_eq!(l, 2);
            twos += 1;
        }
        if t == Tissue::Cyst as u8 {
            assert_eq!(l, 1);
        }
        if l == 2 {
            assert_eq!(t, Tissue::Metastasis as u8);
        }
    }
    assert!(twos > 0);
    let off = grid(ClinicalOptions {
        tumour_label: false,
        ..opts
    });
    let q = generate(seed, &off).unwrap();
    assert!(!q.label.data().contains(&2));
    assert!(q.liver_ml() > p.liver_ml());
}

#[test]
fn fatty_liver_reads_below_the_spleen_before_contrast() {
    for seed in 0..3 {
        let cfg = grid(ClinicalOptions {
            phase: Phase::Native,
            liver: LiverCondition::Fatty,
            ..ClinicalOptions::default()
        });
        let p = generate(seed, &cfg).unwrap();
        let map = tissue_map(seed, &cfg).unwrap();
        let (liver, _) = mean_where(&p, map.data(), Tissue::Liver);
        let (spleen, ns) = mean_where(&p, map.data(), Tissue::Spleen);
        assert!(ns > 100);
        assert!(liver < spleen - 5.0, "seed {seed}: {liver} vs {spleen}");
        assert!(liver < 42.0, "{liver}");
    }
}

/// Lag-1 autocorrelation along x of the noise alone (the difference of a
/// noisy and a noise-free image of the same case), inside the body.
fn noise_lag1(kernel: Kernel) -> (f64, f64) {
    let opts = ClinicalOptions {
        kernel,
        ..ClinicalOptions::default()
    };
    let mut cfg = grid(opts);
    cfg.dims = [96, 96, 6];
    let clean = generate(1, &cfg).unwrap();
    cfg.noise_sigma = 20.0;
    let noisy = generate(1, &cfg).unwrap();
    let nx = cfg.dims[0];
    let d: Vec<f64> = noisy
        .image
        .data()
        .iter()
        .zip(clean.image.data())
        .map(|(a, b)| f64::from(*a) - f64::from(*b))
        .collect();
    let inside: Vec<bool> = clean.image.data().iter().map(|v| *v > -900).collect();
    let (mut num, mut den, mut n) = (0.0, 0.0, 0.0);
    for m in 0..d.len() - 1 {
        if m % nx != nx - 1 && inside[m] && inside[m + 1] {
            num += d[m] * d[m + 1];
            den += d[m] * d[m];
            n += 1.0;
        }
    }
    (num / den, (den / n).sqrt())
}

#[test]
fn kernels_shape_the_noise_texture() {
    let (soft, sd_soft) = noise_lag1(Kernel::Soft);
    let (std, _) = noise_lag1(Kernel::Standard);
    let (sharp, sd_sharp) = noise_lag1(Kernel::Sharp);
    assert!(soft > 0.6, "{soft}");
    assert!(soft > std && std > sharp, "{soft} {std} {sharp}");
    assert!(sharp < 0.0, "{sharp}");
    for sd in [sd_soft, sd_sharp] {
        assert!((17.0..23.0).contains(&sd), "{sd}");
    }
}

#[test]
fn circular_fov_pads_the_corners() {
    let mut cfg = grid(ClinicalOptions {
        circular_fov: Some(-2048),
        ..ClinicalOptions::default()
    });
    cfg.dims[2] = 4;
    let p = generate(2, &cfg).unwrap();
    let [nx, ny, _] = cfg.dims;
    let d = p.image.data();
    assert_eq!(d[0], -2048);
    assert_eq!(d[nx - 1], -2048);
    assert_eq!(d[nx * ny - 1], -2048);
    assert!(d[nx / 2 + nx * (ny / 2)] > -1024);
    assert!(d.iter().all(|&v| v == -2048 || v >= -1024));
}

#[test]
fn normal_livers_have_plausible_volumes() {
    let ranges = ClinicalRanges {
        habitus: [0.0, 1.0, 0.0, 0.0],
        fatty: 0.0,
        cirrhotic: 0.0,
        variant: 0.0,
        lesions: 0.0,
        scan_ranges: [0.0, 1.0, 0.0, 0.0],
        ..ClinicalRanges::coarse()
    };
    for seed in 0..6 {
        let cfg = PhantomConfig::clinical_in(seed, &ranges);
        assert_eq!(cfg.clinical.as_ref().unwrap().habitus, Habitus::Normal);
        let ml = generate(seed, &cfg).unwrap().liver_ml();
        assert!((1000.0..=2500.0).contains(&ml), "seed {seed}: {ml} mL");
    }
}

#[test]
fn describe_reports_the_case() {
    assert!(describe(0, &PhantomConfig::default()).is_none());
    let cfg = grid(ClinicalOptions {
        phase: Phase::Arterial,
        lesions: vec![LesionKind::Hcc],
        ..ClinicalOptions::default()
    });
    let d = describe(4, &cfg).unwrap();
    assert_eq!(d.slice_thickness, 5.0);
    assert_eq!(d.lesions, vec![LesionKind::Hcc]);
    assert!((5.0..=50.0 * 1.2).contains(&d.lesion_diameters_mm[0]));
    let line = d.to_string();
    assert!(
        line.starts_with("arterial, abdomen, standard kernel, 5.0 mm"),
        "{line}"
    );
    assert!(line.contains("HCC"), "{line}");
}
