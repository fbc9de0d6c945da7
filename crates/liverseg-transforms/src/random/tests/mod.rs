//! Tests of the random transforms: shared fixtures, seed determinism,
//! thread independence and the fixed consumption of the random stream.

use liverseg_io::{Affine, Volume};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::*;

mod spatial;
mod values;

/// An oblique affine so that geometry mistakes show up in world positions.
fn oblique() -> Affine {
    let (s, c) = 0.3f64.sin_cos();
    Affine::from_columns(
        [
            [0.8 * c, 0.8 * s, 0.0],
            [-0.9 * s, 0.9 * c, 0.0],
            [0.0, 0.1, 2.5],
        ],
        [-40.0, 12.5, 7.0],
    )
}

/// An image whose value encodes the voxel index (so a crop can be traced
/// back to its source voxel) and a label with a background, a "liver" box
/// and a "tumour" inside it.
fn phantom(dims: [usize; 3]) -> Pair {
    let mut img = Vec::new();
    let mut lab = Vec::new();
    for k in 0..dims[2] {
        for j in 0..dims[1] {
            for i in 0..dims[0] {
                img.push((i + 100 * j + 10_000 * k) as f32);
                let inside =
                    |lo: usize, hi: usize, x: usize, n: usize| x >= n * lo / 10 && x < n * hi / 10;
                let liver = inside(3, 7, i, dims[0])
                    && inside(3, 8, j, dims[1])
                    && inside(2, 7, k, dims[2]);
                let tumour = inside(4, 6, i, dims[0])
                    && inside(5, 7, j, dims[1])
                    && inside(4, 6, k, dims[2]);
                lab.push(if tumour {
                    2u8
                } else if liver {
                    1
                } else {
                    0
                });
            }
        }
    }
    Pair {
        channels: Vec::new(),
        image: Volume::new(dims, oblique(), img).unwrap(),
        label: Some(Volume::new(dims, oblique(), lab).unwrap()),
    }
}

/// Bitwise equality of two sample lists (image bits, labels, affines).
fn same(a: &[Pair], b: &[Pair]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.image.dims() == y.image.dims()
                && x.image.affine() == y.image.affine()
                && x.image
                    .data()
                    .iter()
                    .zip(y.image.data())
                    .all(|(p, q)| p.to_bits() == q.to_bits())
                && x.label == y.label
        })
}

fn every_transform() -> Vec<RandomTransform> {
    vec![
        RandomTransform::RandCropByPosNegLabel {
            spatial_size: [16, 14, 12],
            pos: 2.0,
            neg: 1.0,
            num_samples: 2,
        },
        RandomTransform::RandSpatialCrop {
            roi_size: [14, 12, 10],
            random_center: true,
        },
        RandomTransform::RandFlip {
            prob: 0.5,
            axes: vec![0, 2],
        },
        RandomTransform::RandRotate90 {
            prob: 0.5,
            max_k: 3,
            spatial_axes: [0, 1],
        },
        RandomTransform::RandAffine {
            prob: 1.0,
            rotate_range: [0.2, 0.1, 0.3],
            scale_range: [0.1, 0.1, 0.1],
            shear_range: [0.05, 0.05, 0.05],
            translate_range: [1.0, 2.0, 1.0],
            padding: Padding::Zeros,
        },
        RandomTransform::RandZoom {
            prob: 1.0,
            min_zoom: 0.8,
            max_zoom: 1.2,
            keep_size: true,
        },
        RandomTransform::RandGaussianNoise {
            prob: 1.0,
            mean: 0.0,
            std: 5.0,
            sample_std: true,
        },
        RandomTransform::RandGaussianSmooth {
            prob: 1.0,
            sigma_x: (0.25, 1.5),
            sigma_y: (0.25, 1.5),
            sigma_z: (0.25, 1.5),
        },
        RandomTransform::RandScaleIntensity {
            prob: 1.0,
            factors: 0.1,
        },
        RandomTransform::RandShiftIntensity {
            prob: 1.0,
            offsets: 10.0,
        },
        RandomTransform::RandAdjustContrast {
            prob: 1.0,
            gamma: (0.7, 1.5),
        },
    ]
}

#[test]
fn same_seed_gives_the_same_output_and_another_seed_does_not() {
    let chain = every_transform();
    let input = phantom([24, 22, 20]);
    let run =
        |seed| apply_chain(&chain, input.clone(), &mut ChaCha8Rng::seed_from_u64(seed)).unwrap();
    let a = run(7);
    let b = run(7);
    let c = run(8);
    assert_eq!(a.len(), 2);
    assert!(same(&a, &b), "the same seed gave different outputs");
    assert!(!same(&a, &c), "different seeds gave the same outputs");
}

#[test]
fn thread_count_does_not_change_the_output() {
    let chain = vec![
        RandomTransform::RandCropByPosNegLabel {
            spatial_size: [24, 20, 16],
            pos: 1.0,
            neg: 1.0,
            num_samples: 3,
        },
        RandomTransform::RandAffine {
            prob: 1.0,
            rotate_range: [0.3, 0.2, 0.4],
            scale_range: [0.15, 0.1, 0.1],
            shear_range: [0.1, 0.0, 0.1],
            translate_range: [2.0, 1.0, 1.5],
            padding: Padding::Border,
        },
        RandomTransform::RandGaussianNoise {
            prob: 1.0,
            mean: 1.0,
            std: 20.0,
            sample_std: true,
        },
        RandomTransform::RandGaussianSmooth {
            prob: 1.0,
            sigma_x: (0.5, 1.5),
            sigma_y: (0.5, 1.5),
            sigma_z: (0.5, 1.5),
        },
    ];
    let input = phantom([40, 36, 30]);
    let run_with = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| {
                apply_chain(&chain, input.clone(), &mut ChaCha8Rng::seed_from_u64(42)).unwrap()
            })
    };
    let one = run_with(1);
    let three = run_with(3);
    assert_eq!(one.len(), 3);
    assert!(same(&one, &three), "1 and 3 threads disagree");
    // The chain really changed the data (noise alone guarantees that).
    assert!(one[0].image.data().iter().any(|v| v.fract() != 0.0));
}

#[test]
fn prob_zero_changes_nothing_and_every_transform_draws_a_fixed_count() {
    let input = phantom([20, 18, 16]);
    for t in every_transform() {
        let with_prob = |p: f64| -> RandomTransform {
            let mut t = t.clone();
            match &mut t {
                RandomTransform::RandFlip { prob, .. }
                | RandomTransform::RandRotate90 { prob, .. }
                | RandomTransform::RandAffine { prob, .. }
                | RandomTransform::RandZoom { prob, .. }
                | RandomTransform::RandGaussianNoise { prob, .. }
                | RandomTransform::RandGaussianSmooth { prob, .. }
                | RandomTransform::RandScaleIntensity { prob, .. }
                | RandomTransform::RandShiftIntensity { prob, .. }
                | RandomTransform::RandAdjustContrast { prob, .. } => *prob = p,
                RandomTransform::RandCropByPosNegLabel { .. }
                | RandomTransform::RandSpatialCrop { .. } => {}
            }
            t
        };
        let mut words = Vec::new();
        for p in [0.0, 1.0] {
            let mut rng = ChaCha8Rng::seed_from_u64(17);
            let out = with_prob(p).apply(input.clone(), &mut rng).unwrap();
            // ChaCha counts 32-bit words.
            words.push(rng.get_word_pos() / 2);
            let is_crop = matches!(
                t,
                RandomTransform::RandCropByPosNegLabel { .. }
                    | RandomTransform::RandSpatialCrop { .. }
            );
            if p == 0.0 && !is_crop {
                assert!(
                    same(&out, std::slice::from_ref(&input)),
                    "{} changed",
                    t.name()
                );
            }
            if p == 1.0 && !is_crop {
                assert!(
                    !same(&out, std::slice::from_ref(&input)),
                    "{} did nothing",
                    t.name()
                );
            }
        }
        assert_eq!(words[0], words[1], "{}", t.name());
        assert_eq!(words[0], t.words_per_sample() as u128, "{}", t.name());
    }
}
