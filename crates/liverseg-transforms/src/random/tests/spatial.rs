//! Tests of the geometric transforms: crops, flips, quarter turns, affine
//! warps and zooms.

use liverseg_io::{Affine, Volume};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::phantom;
use crate::random::geometry::{AffineParams, affine_map, pad_crop_edge};
use crate::random::*;

#[test]
fn affine_and_zoom_never_invent_label_values() {
    let input = phantom([26, 24, 20]);
    let allowed = [0u8, 1, 2];
    let mut changed = 0;
    for seed in 0..6 {
        for t in [
            RandomTransform::RandAffine {
                prob: 1.0,
                rotate_range: [0.6, 0.6, 0.6],
                scale_range: [0.3, 0.3, 0.3],
                shear_range: [0.2, 0.2, 0.2],
                translate_range: [3.0, 3.0, 3.0],
                padding: if seed % 2 == 0 {
                    Padding::Zeros
                } else {
                    Padding::Border
                },
            },
            RandomTransform::RandZoom {
                prob: 1.0,
                min_zoom: 0.6,
                max_zoom: 1.5,
                keep_size: seed % 3 != 0,
            },
        ] {
            let out = t
                .apply(input.clone(), &mut ChaCha8Rng::seed_from_u64(seed))
                .unwrap();
            let label = out[0].label.as_ref().unwrap();
            assert!(
                label.data().iter().all(|v| allowed.contains(v)),
                "{} invented a label value",
                t.name()
            );
            assert_eq!(label.dims(), out[0].image.dims());
            if Some(label) != input.label.as_ref() {
                changed += 1;
            }
        }
    }
    assert!(changed >= 10, "only {changed} of 12 runs changed the label");
}

#[test]
fn positive_crops_are_centred_on_foreground_and_keep_world_positions() {
    let dims = [30, 28, 26];
    let mut pair = phantom(dims);
    // Foreground only well inside the volume, so that no centre needs
    // correcting and the crop's central voxel must be foreground.
    let label = pair.label.as_mut().unwrap();
    for (o, v) in label.data_mut().iter_mut().enumerate() {
        let (i, j, k) = (o % 30, (o / 30) % 28, o / (30 * 28));
        *v = u8::from((10..20).contains(&i) && (9..19).contains(&j) && (8..18).contains(&k));
    }
    let size = [8, 8, 6];
    let t = RandomTransform::RandCropByPosNegLabel {
        spatial_size: size,
        pos: 1.0,
        neg: 0.0,
        num_samples: 20,
    };
    let out = t
        .apply(pair.clone(), &mut ChaCha8Rng::seed_from_u64(5))
        .unwrap();
    assert_eq!(out.len(), 20);
    let mut centres = std::collections::HashSet::new();
    for s in &out {
        let l = s.label.as_ref().unwrap();
        assert_eq!(s.image.dims(), size);
        assert_eq!(l.dims(), size);
        assert_eq!(l.get(4, 4, 3), Some(1), "crop centre is not foreground");
        // Trace voxels back through the encoded index and compare worlds.
        for (i, j, k) in [(0, 0, 0), (7, 0, 5), (3, 6, 2), (4, 4, 3)] {
            let v = s.image.get(i, j, k).unwrap() as usize;
            let src = [v % 100, (v / 100) % 100, v / 10_000];
            let w_out = s.image.world(i as f64, j as f64, k as f64);
            let w_src = pair
                .image
                .world(src[0] as f64, src[1] as f64, src[2] as f64);
            assert!((0..3).all(|a| (w_out[a] - w_src[a]).abs() < 1e-9));
            assert_eq!(
                l.get(i, j, k),
                pair.label.as_ref().unwrap().get(src[0], src[1], src[2])
            );
        }
        centres.insert(s.image.get(4, 4, 3).unwrap().to_bits());
    }
    assert!(
        centres.len() > 10,
        "centres are not spread over the foreground"
    );
}

#[test]
fn small_volumes_are_padded_and_missing_classes_fall_back() {
    // Axis 0 is shorter than the crop: padded symmetrically with zeros.
    let pair = phantom([6, 20, 20]);
    let t = RandomTransform::RandCropByPosNegLabel {
        spatial_size: [10, 8, 8],
        pos: 1.0,
        neg: 1.0,
        num_samples: 4,
    };
    let out = t
        .apply(pair.clone(), &mut ChaCha8Rng::seed_from_u64(1))
        .unwrap();
    for s in &out {
        assert_eq!(s.image.dims(), [10, 8, 8]);
        for (j, k) in [(0, 0), (3, 5), (7, 7)] {
            // Two voxels of padding before, two after.
            for i in [0, 1, 8, 9] {
                assert_eq!(s.image.get(i, j, k), Some(0.0));
                assert_eq!(s.label.as_ref().unwrap().get(i, j, k), Some(0));
            }
        }
        // Source voxel 0 along axis 0 lands at output index 2.
        let v = s.image.get(2, 0, 0).unwrap() as usize;
        assert_eq!(v % 100, 0);
    }
    // No foreground: every crop is a background crop, even with neg = 0.
    let mut empty = phantom([12, 12, 12]);
    empty.label.as_mut().unwrap().data_mut().fill(0);
    let fg_only = RandomTransform::RandCropByPosNegLabel {
        spatial_size: [4, 4, 4],
        pos: 1.0,
        neg: 0.0,
        num_samples: 3,
    };
    let out = fg_only
        .apply(empty, &mut ChaCha8Rng::seed_from_u64(2))
        .unwrap();
    assert_eq!(out.len(), 3);
    // No background: every crop is a foreground crop, even with pos = 0.
    let mut full = phantom([12, 12, 12]);
    full.label.as_mut().unwrap().data_mut().fill(1);
    let bg_only = RandomTransform::RandCropByPosNegLabel {
        spatial_size: [4, 4, 4],
        pos: 0.0,
        neg: 1.0,
        num_samples: 3,
    };
    let out = bg_only
        .apply(full, &mut ChaCha8Rng::seed_from_u64(3))
        .unwrap();
    assert!(
        out.iter()
            .all(|s| s.label.as_ref().unwrap().data().iter().all(|&v| v == 1))
    );
    // No label at all is a parameter error.
    let no_label = Pair::image_only(phantom([12, 12, 12]).image);
    let e = fg_only
        .apply(no_label, &mut ChaCha8Rng::seed_from_u64(4))
        .unwrap_err();
    assert!(
        matches!(e, Error::Param(ref m) if m.contains("RandCropByPosNegLabel")),
        "{e}"
    );
}

#[test]
fn spatial_crop_is_inside_and_central_when_asked() {
    let pair = phantom([10, 12, 14]);
    let random = RandomTransform::RandSpatialCrop {
        roi_size: [5, 5, 40],
        random_center: true,
    };
    let mut starts = std::collections::HashSet::new();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for _ in 0..30 {
        let out = random.apply(pair.clone(), &mut rng).unwrap();
        assert_eq!(out[0].image.dims(), [5, 5, 14]);
        let v = out[0].image.get(0, 0, 0).unwrap() as usize;
        let start = [v % 100, (v / 100) % 100, v / 10_000];
        assert!(start[0] <= 5 && start[1] <= 7 && start[2] == 0, "{start:?}");
        starts.insert(start);
    }
    assert!(starts.len() > 10);
    let central = RandomTransform::RandSpatialCrop {
        roi_size: [4, 5, 14],
        random_center: false,
    };
    let out = central.apply(pair, &mut rng).unwrap();
    // CenterSpatialCrop: start = n / 2 − size / 2 → (3, 4, 0).
    assert_eq!(out[0].image.get(0, 0, 0), Some((3 + 100 * 4) as f32));
}

#[test]
fn flips_twice_and_quarter_turns_four_times_give_the_input_back() {
    let input = phantom([7, 6, 5]);
    let check = |t: RandomTransform, times: usize| {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut p = input.clone();
        let mut changed = false;
        for _ in 0..times {
            p = t.apply(p, &mut rng).unwrap().remove(0);
            changed |= p.image.data() != input.image.data();
        }
        assert!(changed, "{} never changed the data", t.name());
        assert_eq!(p.image.dims(), input.image.dims());
        assert_eq!(p.image.data(), input.image.data());
        let (l, l0) = (p.label.as_ref().unwrap(), input.label.as_ref().unwrap());
        assert_eq!(l.data(), l0.data());
        assert!(p.image.affine().max_abs_diff(input.image.affine()) < 1e-9);
        assert!(l.affine().max_abs_diff(l0.affine()) < 1e-9);
    };
    check(
        RandomTransform::RandFlip {
            prob: 1.0,
            axes: vec![0, 1, 2],
        },
        2,
    );
    check(
        RandomTransform::RandRotate90 {
            prob: 1.0,
            max_k: 1,
            spatial_axes: [2, 0],
        },
        4,
    );
}

#[test]
fn affine_map_composes_like_monai() {
    let dims = [5, 7, 9];
    let c = [2.0, 3.0, 4.0];
    let at = |m: &Affine, p: [f64; 3]| m.apply(p);
    let ident = AffineParams {
        rotate: [0.0; 3],
        shear: [0.0; 3],
        translate: [0.0; 3],
        scale: [1.0; 3],
    };
    assert!(affine_map(&ident, dims).max_abs_diff(&Affine::identity()) < 1e-15);
    // A quarter turn about z: the output voxel one step along x from the
    // centre samples the input one step along y (MONAI's
    // [[cos, −sin], [sin, cos]]).
    let rz = AffineParams {
        rotate: [0.0, 0.0, std::f64::consts::FRAC_PI_2],
        ..ident
    };
    let s = at(&affine_map(&rz, dims), [c[0] + 1.0, c[1], c[2]]);
    assert!((s[0] - c[0]).abs() < 1e-12 && (s[1] - c[1] - 1.0).abs() < 1e-12);
    // Scale then translate: centre + 2 · 1 + 0.5 along x.
    let st = AffineParams {
        scale: [2.0, 1.0, 1.0],
        translate: [0.5, 0.0, 0.0],
        ..ident
    };
    let s = at(&affine_map(&st, dims), [c[0] + 1.0, c[1], c[2]]);
    assert!((s[0] - (c[0] + 2.5)).abs() < 1e-12);
    // Shear coefficient 0 is entry (0, 1): x picks up y.
    let sh = AffineParams {
        shear: [0.5, 0.0, 0.0],
        ..ident
    };
    let s = at(&affine_map(&sh, dims), [c[0], c[1] + 2.0, c[2]]);
    assert!((s[0] - (c[0] + 1.0)).abs() < 1e-12 && (s[1] - (c[1] + 2.0)).abs() < 1e-12);
}

#[test]
fn zoom_keeps_the_shape_and_the_world_position_of_the_content() {
    let pair = phantom([20, 18, 16]);
    let t = RandomTransform::RandZoom {
        prob: 1.0,
        min_zoom: 1.3,
        max_zoom: 1.3,
        keep_size: true,
    };
    let out = t
        .apply(pair.clone(), &mut ChaCha8Rng::seed_from_u64(0))
        .unwrap()
        .remove(0);
    assert_eq!(out.image.dims(), [20, 18, 16]);
    // Voxels shrink by n / floor(1.3 n), the zoom torch actually applies.
    let (a, b) = (out.image.spacing(), pair.image.spacing());
    for (i, n) in [20.0f64, 18.0, 16.0].into_iter().enumerate() {
        assert!((a[i] - b[i] * n / (1.3 * n).floor()).abs() < 1e-9);
    }
    // The image encodes i + 100 j + 10000 k, linear in the index, so its
    // trilinear zoom maps each output voxel to the source index at the same
    // world position (away from the clamped border).
    let inv = pair.image.affine().inverse().unwrap();
    for p in [[10.0, 9.0, 8.0], [5.0, 4.0, 6.0], [14.0, 12.0, 10.0]] {
        let w = out.image.world(p[0], p[1], p[2]);
        let s = inv.apply(w);
        let expected = s[0] + 100.0 * s[1] + 10_000.0 * s[2];
        let got = f64::from(
            out.image
                .get(p[0] as usize, p[1] as usize, p[2] as usize)
                .unwrap(),
        );
        assert!((got - expected).abs() < 0.05, "{p:?}: {got} vs {expected}");
    }
    let free = RandomTransform::RandZoom {
        prob: 1.0,
        min_zoom: 0.75,
        max_zoom: 0.75,
        keep_size: false,
    };
    let out = free
        .apply(pair, &mut ChaCha8Rng::seed_from_u64(0))
        .unwrap()
        .remove(0);
    assert_eq!(out.image.dims(), [15, 13, 12]);
}

#[test]
fn edge_padding_replicates_and_centre_cropping_follows_monai() {
    let v = Volume::new([3, 1, 1], Affine::identity(), vec![1u8, 2, 3]).unwrap();
    let p = pad_crop_edge(&v, [6, 1, 1]).unwrap();
    // One before, two after (the odd voxel after), edge values.
    assert_eq!(p.data(), &[1, 1, 2, 3, 3, 3]);
    assert_eq!(p.affine().origin(), [-1.0, 0.0, 0.0]);
    let w = Volume::new([5, 1, 1], Affine::identity(), vec![1u8, 2, 3, 4, 5]).unwrap();
    let c = pad_crop_edge(&w, [2, 1, 1]).unwrap();
    // CenterSpatialCrop: start 5 / 2 − 2 / 2 = 1.
    assert_eq!(c.data(), &[2, 3]);
    assert_eq!(c.affine().origin(), [1.0, 0.0, 0.0]);
}
