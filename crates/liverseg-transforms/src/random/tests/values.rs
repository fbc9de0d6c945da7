//! Tests of the intensity transforms, the parameter checks and the serde
//! form.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::{every_transform, phantom};
use crate::random::intensity::{erf, gaussian_kernel};
use crate::random::*;

#[test]
fn smoothing_keeps_a_constant_volume_constant() {
    let mut pair = phantom([12, 11, 10]);
    pair.image.data_mut().fill(3.5);
    for sigma in [(0.0, 0.0), (1e-6, 1e-6)] {
        let t = RandomTransform::RandGaussianSmooth {
            prob: 1.0,
            sigma_x: sigma,
            sigma_y: sigma,
            sigma_z: sigma,
        };
        let out = t
            .apply(pair.clone(), &mut ChaCha8Rng::seed_from_u64(1))
            .unwrap();
        assert!(out[0].image.data().iter().all(|&v| v == 3.5), "{sigma:?}");
    }
    // A real blur keeps the interior constant; MONAI's zero padding darkens
    // the border.
    let t = RandomTransform::RandGaussianSmooth {
        prob: 1.0,
        sigma_x: (0.5, 0.5),
        sigma_y: (0.5, 0.5),
        sigma_z: (0.5, 0.5),
    };
    let out = t
        .apply(pair, &mut ChaCha8Rng::seed_from_u64(1))
        .unwrap()
        .remove(0);
    // sigma 0.5: tail 2, so voxels 2 away from every face are interior.
    assert!((out.image.get(5, 5, 5).unwrap() - 3.5).abs() < 1e-5);
    assert!((out.image.get(2, 2, 2).unwrap() - 3.5).abs() < 1e-5);
    assert!(out.image.get(0, 5, 5).unwrap() < 3.4);
}

#[test]
fn gaussian_kernel_follows_monai_erf_approximation() {
    for (x, e) in [
        (0.5, 0.520_499_877_813_046_5),
        (1.0, 0.842_700_792_949_714_9),
        (2.0, 0.995_322_265_018_952_7),
        (-0.3, -0.328_626_759_459_127_4),
        (4.0, 0.999_999_984_582_742_1),
    ] {
        assert!((erf(x) - e).abs() < 1e-15, "erf({x}) = {} not {e}", erf(x));
    }
    assert_eq!(erf(0.0), 0.0);
    // MONAI's gaussian_1d(1.0, truncated=4.0, approx="erf") in float32.
    let monai = [
        0.000_229_241_02,
        0.005_977_075_1,
        0.060_597_952,
        0.241_731_97,
        0.382_927_51,
    ];
    let k = gaussian_kernel(1.0);
    assert_eq!(k.len(), 9);
    assert!((k.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    for i in 0..9 {
        let m = monai[i.min(8 - i)];
        assert!((k[i] - m).abs() < 1e-7, "tap {i}: {} vs {m}", k[i]);
    }
    // tail = int(max(0.1 * 4, 0.5) + 0.5) = 1.
    assert_eq!(gaussian_kernel(0.1).len(), 3);
    assert_eq!(gaussian_kernel(0.0), vec![1.0]);
}

#[test]
fn gamma_one_is_the_identity() {
    let mut pair = phantom([9, 8, 7]);
    // Values in [−1, 1.5], where f32 resolution is well below 1e-6.
    for (o, v) in pair.image.data_mut().iter_mut().enumerate() {
        *v = ((o * 37) % 101) as f32 / 40.0 - 1.0;
    }
    let t = RandomTransform::RandAdjustContrast {
        prob: 1.0,
        gamma: (1.0, 1.0),
    };
    let out = t
        .apply(pair.clone(), &mut ChaCha8Rng::seed_from_u64(0))
        .unwrap();
    for (a, b) in out[0].image.data().iter().zip(pair.image.data()) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }
    // A gamma of 2 keeps the extremes and darkens the middle.
    let t2 = RandomTransform::RandAdjustContrast {
        prob: 1.0,
        gamma: (2.0, 2.0),
    };
    let out = t2.apply(pair, &mut ChaCha8Rng::seed_from_u64(0)).unwrap();
    let s = out[0].image.stats();
    assert!((s.min + 1.0).abs() < 1e-6 && (s.max - 1.5).abs() < 1e-6);
    assert!(s.mean < 0.25 - 0.1);
}

#[test]
fn invalid_parameters_name_the_transform_and_the_parameter() {
    let cases = [
        (
            RandomTransform::RandGaussianNoise {
                prob: 0.5,
                mean: 0.0,
                std: -1.0,
                sample_std: true,
            },
            "std",
        ),
        (
            RandomTransform::RandFlip {
                prob: 1.5,
                axes: vec![0],
            },
            "prob",
        ),
        (
            RandomTransform::RandFlip {
                prob: 0.5,
                axes: vec![],
            },
            "axes",
        ),
        (
            RandomTransform::RandFlip {
                prob: 0.5,
                axes: vec![3],
            },
            "axes",
        ),
        (
            RandomTransform::RandCropByPosNegLabel {
                spatial_size: [4, 0, 4],
                pos: 1.0,
                neg: 1.0,
                num_samples: 1,
            },
            "spatial_size",
        ),
        (
            RandomTransform::RandCropByPosNegLabel {
                spatial_size: [4, 4, 4],
                pos: 0.0,
                neg: 0.0,
                num_samples: 1,
            },
            "pos and neg",
        ),
        (
            RandomTransform::RandCropByPosNegLabel {
                spatial_size: [4, 4, 4],
                pos: 1.0,
                neg: 1.0,
                num_samples: 0,
            },
            "num_samples",
        ),
        (
            RandomTransform::RandSpatialCrop {
                roi_size: [0, 4, 4],
                random_center: true,
            },
            "roi_size",
        ),
        (
            RandomTransform::RandRotate90 {
                prob: 0.5,
                max_k: 0,
                spatial_axes: [0, 1],
            },
            "max_k",
        ),
        (
            RandomTransform::RandRotate90 {
                prob: 0.5,
                max_k: 3,
                spatial_axes: [1, 1],
            },
            "spatial_axes",
        ),
        (
            RandomTransform::RandAffine {
                prob: 0.5,
                rotate_range: [0.0, f64::NAN, 0.0],
                scale_range: [0.0; 3],
                shear_range: [0.0; 3],
                translate_range: [0.0; 3],
                padding: Padding::Zeros,
            },
            "rotate_range",
        ),
        (
            RandomTransform::RandZoom {
                prob: 0.5,
                min_zoom: 1.2,
                max_zoom: 0.9,
                keep_size: true,
            },
            "min_zoom",
        ),
        (
            RandomTransform::RandGaussianSmooth {
                prob: 0.5,
                sigma_x: (0.5, 1.0),
                sigma_y: (-0.5, 1.0),
                sigma_z: (0.5, 1.0),
            },
            "sigma_y",
        ),
        (
            RandomTransform::RandScaleIntensity {
                prob: f64::NAN,
                factors: 0.1,
            },
            "prob",
        ),
        (
            RandomTransform::RandShiftIntensity {
                prob: 0.5,
                offsets: f64::INFINITY,
            },
            "offsets",
        ),
        (
            RandomTransform::RandAdjustContrast {
                prob: 0.5,
                gamma: (0.0, 2.0),
            },
            "gamma",
        ),
    ];
    for (t, what) in cases {
        let e = t
            .apply(phantom([6, 6, 6]), &mut ChaCha8Rng::seed_from_u64(0))
            .unwrap_err();
        match e {
            Error::Param(m) => {
                assert!(m.contains(t.name()) && m.contains(what), "{m}");
            }
            other => panic!("{} gave {other}", t.name()),
        }
    }
    // A zoom that empties an axis is caught when applied.
    let shrink = RandomTransform::RandZoom {
        prob: 1.0,
        min_zoom: 0.1,
        max_zoom: 0.1,
        keep_size: true,
    };
    assert!(matches!(
        shrink.apply(phantom([6, 6, 6]), &mut ChaCha8Rng::seed_from_u64(0)),
        Err(Error::Param(_))
    ));
}

#[test]
fn serde_uses_snake_case_tags_and_monai_defaults() {
    let t: RandomTransform = serde_json::from_str(
        r#"{"type": "rand_affine", "prob": 1.0, "rotate_range": [0.1, 0, 0]}"#,
    )
    .unwrap();
    assert_eq!(
        t,
        RandomTransform::RandAffine {
            prob: 1.0,
            rotate_range: [0.1, 0.0, 0.0],
            scale_range: [0.0; 3],
            shear_range: [0.0; 3],
            translate_range: [0.0; 3],
            padding: Padding::Border,
        }
    );
    let z: RandomTransform = serde_json::from_str(r#"{"type": "rand_zoom"}"#).unwrap();
    assert_eq!(
        z,
        RandomTransform::RandZoom {
            prob: 0.1,
            min_zoom: 0.9,
            max_zoom: 1.1,
            keep_size: true
        }
    );
    let all = every_transform();
    let json = serde_json::to_string(&all).unwrap();
    assert!(json.contains(r#""type":"rand_crop_by_pos_neg_label""#));
    let back: Vec<RandomTransform> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, all);
}

#[test]
fn noise_has_the_requested_moments_and_varies_between_slabs() {
    let mut pair = phantom([32, 32, 32]);
    pair.image.data_mut().fill(0.0);
    let t = RandomTransform::RandGaussianNoise {
        prob: 1.0,
        mean: 3.0,
        std: 2.0,
        sample_std: false,
    };
    let out = t
        .apply(pair, &mut ChaCha8Rng::seed_from_u64(4))
        .unwrap()
        .remove(0);
    let d = out.image.data();
    let n = d.len() as f64;
    let mean = d.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = d
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / n;
    assert!((mean - 3.0).abs() < 0.03, "mean {mean}");
    assert!((var.sqrt() - 2.0).abs() < 0.03, "std {}", var.sqrt());
    let plane = 32 * 32;
    assert_ne!(&d[..plane], &d[plane..2 * plane]);
}
