//! Issue 17: clinical phantoms can label the organs around the liver
//! (`ClinicalOptions::organ_labels`, values in `Organ`), for multi-organ
//! datasets; the image and the liver's label stay what they are without.

use liverseg_phantom::{ClinicalOptions, Organ, PhantomConfig, Tissue, generate, tissue_map};

/// 96 × 96 × 60 voxels of 4 × 4 × 4 mm over the upper abdomen.
fn grid(organ_labels: bool, tumour_label: bool) -> PhantomConfig {
    PhantomConfig {
        dims: [96, 96, 60],
        spacing: [4.0, 4.0, 4.0],
        flips: [true, true, false],
        center: [0.0, 0.0, -60.0],
        noise_sigma: 0.0,
        blur_sigma: 0.0,
        clinical: Some(ClinicalOptions {
            organ_labels,
            tumour_label,
            lesions: vec![liverseg_phantom::LesionKind::Metastasis],
            ..ClinicalOptions::default()
        }),
    }
}

fn count(v: &[u8], value: u8) -> usize {
    v.iter().filter(|&&x| x == value).count()
}

#[test]
fn organs_get_their_own_labels_and_nothing_else_changes() {
    for seed in [1, 6] {
        let plain = generate(seed, &grid(false, true)).unwrap();
        let organs = generate(seed, &grid(true, true)).unwrap();
        assert!(
            plain.image.data() == organs.image.data(),
            "seed {seed}: the image changed"
        );
        let (p, o) = (plain.label.data(), organs.label.data());
        // Liver and tumour voxels are the same; organs fill only voxels
        // that were background.
        for (a, b) in p.iter().zip(o) {
            if *a != 0 || *b <= 2 {
                assert_eq!(a, b, "seed {seed}");
            }
        }
        assert!(p.iter().all(|&v| v <= 2));
        // Every organ is in this field of view, with a size in proportion
        // to its tissue (sampled at the voxel centres, noise-free).
        let map = tissue_map(seed, &grid(true, true)).unwrap();
        let tissues = |ts: &[Tissue]| {
            map.data()
                .iter()
                .filter(|&&t| ts.iter().any(|x| *x as u8 == t))
                .count()
        };
        for (organ, ts) in [
            (Organ::Spleen, &[Tissue::Spleen][..]),
            (Organ::Pancreas, &[Tissue::Pancreas][..]),
        ] {
            let n = count(o, organ.value());
            let want = tissues(ts);
            assert!(want > 50, "seed {seed} {organ:?}: {want} voxels of tissue");
            let ratio = n as f64 / want as f64;
            assert!(
                (0.8..1.25).contains(&ratio),
                "seed {seed} {organ:?}: {n} labelled, {want} tissue"
            );
        }
        for organ in [
            Organ::Kidney,
            Organ::Stomach,
            Organ::Aorta,
            Organ::InferiorVenaCava,
        ] {
            assert!(count(o, organ.value()) > 20, "seed {seed} {organ:?}");
        }
        // The spleen lies on the patient's left (RAS x < 0), the liver
        // on the right.
        let mean_x = |value: u8| {
            let a = organs.label.affine();
            let [nx, ny, _] = organs.label.dims();
            let xs: Vec<f64> = o
                .iter()
                .enumerate()
                .filter(|(_, v)| **v == value)
                .map(|(i, _)| {
                    a.apply([
                        (i % nx) as f64,
                        ((i / nx) % ny) as f64,
                        (i / (nx * ny)) as f64,
                    ])[0]
                })
                .collect();
            xs.iter().sum::<f64>() / xs.len() as f64
        };
        assert!(mean_x(Organ::Spleen.value()) < -40.0);
        assert!(mean_x(Organ::Liver.value()) > 20.0);
    }
}

#[test]
fn organ_values_and_names_are_distinct() {
    let mut values: Vec<u8> = Organ::ALL.iter().map(|o| o.value()).collect();
    values.dedup();
    assert_eq!(values, (1..=9).collect::<Vec<u8>>());
    assert_eq!(Organ::Liver.name(), "liver");
    assert_eq!(Organ::InferiorVenaCava.name(), "inferior_vena_cava");
}
