//! Presets as data: serialisation, the `patch` preset end to end with its
//! augmentation, batches.

use liverseg_io::{Volume, nifti};
use liverseg_transforms::{Pair, Preset, Step, case_rng};
use std::path::Path;

fn golden_pair() -> Pair {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/transforms");
    let opts = nifti::ReadOptions::default();
    let image: Volume<f32> = nifti::read(&dir.join("ct.nii.gz"), &opts).unwrap();
    let label: Volume<u8> = nifti::read(&dir.join("label.nii.gz"), &opts).unwrap();
    Pair::new(image, Some(label)).unwrap()
}

#[test]
fn presets_round_trip_through_json() {
    for preset in [Preset::seed(), Preset::patch(), Preset::fast()] {
        let json = serde_json::to_string_pretty(&preset).unwrap();
        let back: Preset = serde_json::from_str(&json).unwrap();
        assert_eq!(back, preset);
    }
    // Defaults fill what a hand-written preset leaves out.
    let text = r#"{"name": "mine", "steps": [
        {"type": "spacing", "pixdim": [2.0, 2.0, 2.0]},
        {"type": "orientation", "axcodes": "LPS"},
        {"type": "resize", "size": [8, 8, 8]}]}"#;
    let p: Preset = serde_json::from_str(text).unwrap();
    assert!(p.augment.is_empty());
    let g = golden_pair();
    let out = p.run(g.image, g.label).unwrap();
    assert_eq!(out.pair.image.dims(), [8, 8, 8]);
    assert_eq!(out.pair.image.axcodes(), ['L', 'P', 'S']);
    assert!(
        serde_json::from_str::<Preset>(r#"{"name": "x", "steps": [{"type": "warp"}]}"#).is_err()
    );
}

#[test]
fn patch_preset_normalises_and_samples_reproducible_patches() {
    let preset = Preset::patch();
    let g = golden_pair();
    let out = preset.run(g.image, g.label).unwrap();
    let img = &out.pair.image;
    assert_eq!(img.axcodes(), ['R', 'A', 'S']);
    assert!(img.spacing().iter().all(|s| (s - 1.5).abs() < 1e-9));
    // Padded up to a whole patch.
    let d = img.dims();
    assert!(d[0] >= 128 && d[1] >= 128 && d[2] >= 64, "{d:?}");
    // Cropped to the body (above −500 HU) after resampling: the air
    // around the phantom is not slid over.
    // (Records are kept for the spatial steps, which prediction inverts.)
    let names: Vec<&str> = out.records.iter().map(|r| r.step.as_str()).collect();
    assert_eq!(
        names,
        ["spacing", "orientation", "crop_foreground", "spatial_pad"]
    );
    let crop = &out.records[2];
    assert!(crop.output.len() < crop.input.len(), "{crop:?}");
    // CT normalisation from the case's own labelled voxels: liver voxels
    // have mean 0 and std 1 after it.
    let label = out.pair.label.as_ref().unwrap();
    let fg: Vec<f64> = img
        .data()
        .iter()
        .zip(label.data())
        .filter(|(_, l)| **l > 0)
        .map(|(v, _)| f64::from(*v))
        .collect();
    let mean = fg.iter().sum::<f64>() / fg.len() as f64;
    assert!(mean.abs() < 0.05, "foreground mean {mean}");

    let a = preset
        .augment(out.pair.clone(), &mut case_rng(7, 0, 3))
        .unwrap();
    let b = preset
        .augment(out.pair.clone(), &mut case_rng(7, 0, 3))
        .unwrap();
    let c = preset
        .augment(out.pair.clone(), &mut case_rng(7, 1, 3))
        .unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].image.dims(), [128, 128, 64]);
    assert_eq!(a[0].image.data(), b[0].image.data());
    assert_ne!(a[0].image.data(), c[0].image.data());
    let labels: std::collections::BTreeSet<u8> = a[0]
        .label
        .as_ref()
        .unwrap()
        .data()
        .iter()
        .copied()
        .collect();
    assert!(labels.iter().all(|l| *l <= 2), "{labels:?}");
}

#[test]
fn batches_keep_order_and_report_each_case() {
    let good = golden_pair();
    let small = Pair::new(good.image.clone(), None).unwrap();
    let results = Preset::seed().run_batch(vec![good.clone(), small]);
    assert_eq!(results.len(), 2);
    let one = Preset::seed().run(good.image, good.label).unwrap();
    let first = results[0].as_ref().unwrap();
    assert_eq!(first.pair.image.data(), one.pair.image.data());
    assert!(results[1].as_ref().unwrap().pair.label.is_none());
}

#[test]
fn int16_input_gives_the_same_result_as_float() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/transforms");
    let opts = nifti::ReadOptions::default();
    let raw: Volume<i16> = nifti::read(&dir.join("ct.nii.gz"), &opts).unwrap();
    let pair = golden_pair();
    let label = pair.label.clone();
    let mut fast = Preset::fast();
    // The golden CT is too small for a 96 x 96 x 64 pad to show anything.
    fast.steps.pop();
    for preset in [Preset::seed(), Preset::patch(), fast] {
        let a = preset.run(pair.image.clone(), pair.label.clone()).unwrap();
        let b = preset.run(raw.clone(), label.clone()).unwrap();
        assert_eq!(a.pair.image.data(), b.pair.image.data(), "{}", preset.name);
        assert_eq!(
            a.pair.label.as_ref().unwrap().data(),
            b.pair.label.as_ref().unwrap().data()
        );
        assert_eq!(a.records, b.records);
        assert_eq!(a.original, b.original);
    }
}

/// The first most probable class, background first.
/// The most probable class, the background being one minus the foreground
/// (a softmax model's decision).
fn argmax(fg: &[f32]) -> u8 {
    let bg = fg.iter().fold(1.0f32, |b, v| b - v).clamp(0.0, 1.0);
    let mut best = (0u8, bg);
    for (k, &v) in fg.iter().enumerate() {
        if v > best.1 {
            best = (k as u8 + 1, v);
        }
    }
    best.0
}

#[test]
fn deciding_while_inverting_equals_deciding_on_inverted_probabilities() {
    for preset in [Preset::seed(), Preset::patch()] {
        let g = golden_pair();
        let done = preset.run(g.image, g.label).unwrap();
        let image = &done.pair.image;
        // Two foreground "probabilities" that vary across the volume and sum
        // to at most one, so all three classes win somewhere.
        let lo = image.data().iter().copied().fold(f32::INFINITY, f32::min);
        let hi = image
            .data()
            .iter()
            .copied()
            .fold(f32::NEG_INFINITY, f32::max);
        let unit = image.map(|v| (v - lo) / (hi - lo).max(1e-6));
        let liver = unit.map(|u| 0.9 * u * (1.0 - u) * 4.0 * 0.5);
        let tumour = unit.map(|u| 0.7 * u * u);
        let channels = vec![liver, tumour];
        let full = done.invert_probabilities(&channels).unwrap();
        let mut want = Volume::filled(done.original.dims, done.original.affine, 0u8).unwrap();
        for (o, w) in want.data_mut().iter_mut().enumerate() {
            *w = argmax(&[full[0].data()[o], full[1].data()[o]]);
        }
        let got = done.invert_decide(&channels, argmax).unwrap();
        assert_eq!(got.affine(), want.affine(), "{}", preset.name);
        assert_eq!(got.data(), want.data(), "{}", preset.name);
        for class in 0..3u8 {
            assert!(
                got.data().contains(&class),
                "{}: class {class}",
                preset.name
            );
        }
        // No foreground channel: every voxel is background.
        let only_bg = done.invert_decide(&[], argmax).unwrap();
        assert!(only_bg.data().iter().all(|&v| v == 0));
        assert_eq!(only_bg.dims(), done.original.dims);
    }
}

#[test]
fn fast_preset_is_three_millimetres_on_the_body() {
    for name in Preset::BUILT_IN {
        assert_eq!(Preset::by_name(name).unwrap().name, name);
    }
    assert!(Preset::by_name("fastest").is_err());
    assert_eq!(Preset::seed().window(), Some([128, 128, 64]));
    assert_eq!(Preset::patch().window(), Some([128, 128, 64]));
    assert_eq!(Preset::fast().window(), Some([96, 96, 64]));
    let mut preset = Preset::fast();
    preset
        .steps
        .retain(|s| !matches!(s, Step::CtNormalize { .. }));
    let pair = golden_pair();
    let original = pair.image.clone();
    let done = preset.run(pair.image, pair.label).unwrap();
    let image = &done.pair.image;
    assert_eq!(image.axcodes(), ['R', 'A', 'S']);
    for (a, s) in image.spacing().iter().enumerate() {
        assert!((s - 3.0).abs() < 1e-9, "axis {a}: {s} mm");
    }
    // Padded to one patch, and the pad is all that lies outside the body:
    // no voxel of the cropped part is below the -500 HU threshold's box.
    assert!(image.dims().iter().zip([96, 96, 64]).all(|(&d, p)| d >= p));
    let crop = done
        .records
        .iter()
        .find(|r| r.step == "crop_foreground")
        .expect("a CropForeground record");
    assert!(crop.output.len() < crop.input.len());
    // The mapped-back label lies on the input grid.
    let label = done.pair.label.as_ref().unwrap();
    let back = done.invert_labels(label).unwrap();
    assert!(back.same_grid(&original, 1e-4));
    assert!(back.data().iter().any(|&v| v > 0));
}

#[test]
fn modalities_choose_the_normalisation_as_nnunet_does() {
    let seed = Preset::seed();
    assert_eq!(seed.for_modality("CT"), seed);
    assert_eq!(seed.for_modality(" ct "), seed);
    let mr = seed.for_modality("MRI");
    assert_eq!(mr.name, "seed+zscore");
    let names: Vec<&str> = mr.steps.iter().map(|s| s.name()).collect();
    assert_eq!(
        names,
        [
            "spacing",
            "orientation",
            "crop_foreground",
            "resize",
            "normalize_intensity"
        ]
    );
    assert_eq!(mr.for_modality("T2"), mr, "z-scoring twice changes nothing");
    let patch = Preset::patch().for_modality("noNorm");
    assert_eq!(patch.name, "patch+nonorm");
    assert!(!patch.steps.iter().any(|s| !s.is_spatial()));
    assert_eq!(patch.augment, Preset::patch().augment);
}

/// Issue 17: further channels go through every step with the image's
/// geometry, and through the augmentation with the image's draws.
#[test]
fn channels_follow_the_image_through_steps_and_augmentation() {
    let pair = golden_pair();
    let image = pair.image.clone();
    // A second channel that is a multiple of the first: linear resampling
    // and area resizing commute with it, and it is above CropForeground's
    // threshold exactly where the first is, so the box is the same.
    let twice = image.map(|v| 2.0 * v);
    let preset = Preset {
        name: "geometry".into(),
        steps: vec![
            Step::Spacing {
                pixdim: [2.0, 2.5, 3.0],
                image_mode: liverseg_transforms::Interpolation::Linear,
            },
            Step::Orientation {
                axcodes: "LPS".into(),
            },
            Step::CropForeground(Default::default()),
            Step::Resize {
                size: [24, 20, 16],
                image_mode: liverseg_transforms::ResizeMode::Area,
                label_mode: liverseg_transforms::ResizeMode::NearestExact,
            },
            Step::NormalizeIntensity { nonzero: false },
        ],
        augment: liverseg_transforms::patch_augmentation([16, 16, 8]),
    };
    let one = preset.run(image.clone(), pair.label.clone()).unwrap();
    let two = preset
        .run_channels(vec![image.clone(), twice], pair.label.clone())
        .unwrap();
    // Channel 0 is what a one-channel run gives; channel 1, z-scored, is
    // the same picture (a scale disappears in a z-score).
    assert!(two.pair.image == one.pair.image, "channel 0 changed");
    assert_eq!(two.pair.label, one.pair.label);
    assert_eq!(two.pair.channels.len(), 1);
    let c1 = &two.pair.channels[0];
    assert!(c1.same_grid(&one.pair.image, 1e-9));
    let worst = c1
        .data()
        .iter()
        .zip(one.pair.image.data())
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst < 1e-3, "channel 1 differs by {worst}");
    // Augmentation moves both channels alike: same crop, same flips.
    let mut rng = case_rng(7, 1, 3);
    let samples = preset.augment(two.pair.clone(), &mut rng).unwrap();
    for s in &samples {
        assert_eq!(s.channels.len(), 1);
        assert!(s.channels[0].same_grid(&s.image, 1e-9));
        let d = s.channels[0]
            .data()
            .iter()
            .zip(s.image.data())
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(d < 0.05, "augmented channels differ by {d}");
    }
    // CropForeground keeps what any channel has above the threshold.
    let crop_only = Preset {
        name: "crop".into(),
        steps: vec![Step::CropForeground(Default::default())],
        augment: Vec::new(),
    };
    let alone = crop_only.run(image.clone(), None).unwrap();
    assert_ne!(alone.pair.image.dims(), image.dims());
    let bright = image.map(|_| 1.0);
    let both = crop_only
        .run_channels(vec![image.clone(), bright], None)
        .unwrap();
    assert_eq!(both.pair.image.dims(), image.dims());
    // Channels off the image's grid are refused.
    let a = image.affine();
    let o = a.origin();
    let moved = liverseg_io::Affine::from_columns(
        [a.column(0), a.column(1), a.column(2)],
        [o[0] + 1.0, o[1], o[2]],
    );
    let shifted = liverseg_io::Volume::new(image.dims(), moved, image.data().to_vec()).unwrap();
    let e = preset.run_channels(vec![image, shifted], None).unwrap_err();
    assert!(e.to_string().contains("channel 1"), "{e}");
}
