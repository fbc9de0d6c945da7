//! Issue 18: an ensemble averages its members' class probabilities (as
//! nnU-Net averages its folds), refuses members that do not match, and a
//! cancelled prediction stops with `Error::Cancelled`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use candle_core::{Device, Tensor};
use liverseg_infer::{Decision, Error, ModelCard, PredictOptions, Predictor, PreprocessMode};
use liverseg_io::{Affine, Volume};
use liverseg_model::{Architecture, Norm, UNetConfig};
use liverseg_transforms::Preset;

fn arch() -> Architecture {
    Architecture::MonaiUnet(UNetConfig {
        out_channels: 3,
        channels: vec![4, 8],
        strides: vec![2],
        num_res_units: 0,
        norm: Norm::Instance,
        ..UNetConfig::default()
    })
}

/// Deterministic weights that differ with `seed`.
fn weights(arch: &Architecture, seed: usize) -> HashMap<String, Tensor> {
    arch.parameter_shapes()
        .unwrap()
        .into_iter()
        .enumerate()
        .map(|(t, (name, shape))| {
            let n: usize = shape.iter().product();
            let data: Vec<f32> = (0..n)
                .map(|i| {
                    (((i * 7919 + t * 104_729 + seed * 31_337) % 1000) as f32 / 1000.0 - 0.5) * 0.8
                })
                .collect();
            (
                name,
                Tensor::from_vec(data, shape.as_slice(), &Device::Cpu).unwrap(),
            )
        })
        .collect()
}

fn model(dir: &std::path::Path, seed: usize, classes: &[&str]) -> Predictor {
    let card = ModelCard {
        architecture: arch(),
        preset: Preset::seed(),
        decision: Decision::Argmax,
        classes: classes.iter().map(|c| c.to_string()).collect(),
        values: (0..classes.len() as u8).collect(),
        largest_component: vec![false, true, true],
        about: Default::default(),
    };
    let path = dir.join(format!("model_{seed}_{}.safetensors", classes.join("_")));
    card.write(&path, &weights(&arch(), seed), true).unwrap();
    Predictor::load(&path, &Device::Cpu).unwrap()
}

fn image() -> Volume<f32> {
    let dims = [16, 12, 8];
    let data: Vec<f32> = (0..dims.iter().product::<usize>())
        .map(|i| ((i * 31 % 17) as f32 - 8.0) / 4.0)
        .collect();
    Volume::new(dims, Affine::identity(), data).unwrap()
}

fn opts() -> PredictOptions {
    PredictOptions {
        roi: Some([16, 12, 8]),
        preprocess: PreprocessMode::None,
        postprocess: false,
        keep_probabilities: true,
        ..PredictOptions::default()
    }
}

const CLASSES: [&str; 3] = ["background", "liver", "tumour"];

#[test]
fn an_ensemble_averages_its_members_probabilities() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        model(dir.path(), 1, &CLASSES),
        model(dir.path(), 2, &CLASSES),
    );
    let pa = a.predict(image(), &opts()).unwrap();
    let pb = b.predict(image(), &opts()).unwrap();
    let both = Predictor::ensemble(vec![a, b]).unwrap();
    assert_eq!(both.members(), 2);
    let pe = both.predict(image(), &opts()).unwrap();
    let (qa, qb, qe) = (
        pa.probabilities.unwrap(),
        pb.probabilities.unwrap(),
        pe.probabilities.unwrap(),
    );
    let mut differ = 0;
    for c in 0..3 {
        for o in 0..qe[c].len() {
            let mean = (qa[c].data()[o] + qb[c].data()[o]) / 2.0;
            assert!((qe[c].data()[o] - mean).abs() < 1e-5, "class {c} voxel {o}");
            differ += usize::from((qa[c].data()[o] - qb[c].data()[o]).abs() > 1e-3);
        }
    }
    assert!(
        differ > 100,
        "the members must differ for the test to mean anything"
    );
    // The labels are the argmax of the mean.
    for o in 0..qe[0].len() {
        let p = [qe[0].data()[o], qe[1].data()[o], qe[2].data()[o]];
        let best = (0..3).max_by(|&i, &j| p[i].total_cmp(&p[j])).unwrap() as u8;
        assert_eq!(pe.labels.data()[o], best, "voxel {o}");
    }
}

#[test]
fn members_of_other_labels_are_refused_and_cancelling_stops() {
    let dir = tempfile::tempdir().unwrap();
    let a = model(dir.path(), 1, &CLASSES);
    let other = model(dir.path(), 2, &["background", "spleen", "kidney"]);
    let e = Predictor::ensemble(vec![a, other]).unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e}");
    assert!(e.to_string().contains("model 2 of the ensemble"), "{e}");
    assert!(Predictor::ensemble(Vec::new()).is_err());

    let a = model(dir.path(), 1, &CLASSES);
    let cancel = Arc::new(AtomicBool::new(true));
    let opts = PredictOptions {
        cancel: Some(cancel),
        ..opts()
    };
    assert!(matches!(a.predict(image(), &opts), Err(Error::Cancelled)));
}
