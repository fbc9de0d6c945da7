//! Issue 15: validation and prediction decide classes the same way. A
//! model with two foreground classes trained with a sigmoid loss scores
//! each class on its own; validation (`Decision::labels` on the logits, as
//! the trainer calls it) and `Predictor::predict` must give the same label
//! for every voxel, and the background probability written to disk must be
//! the decision's one formula.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use liverseg_infer::{
    Decision, ModelCard, PredictOptions, Predictor, PreprocessMode, tensor_to_volume,
    volumes_to_tensor,
};
use liverseg_io::{Affine, Volume};
use liverseg_model::{Architecture, Norm, UNetConfig};
use liverseg_transforms::{Grid, Preset};

/// Deterministic weights: small values from a hash of the element index.
fn weights(arch: &Architecture) -> HashMap<String, Tensor> {
    arch.parameter_shapes()
        .unwrap()
        .into_iter()
        .enumerate()
        .map(|(t, (name, shape))| {
            let n: usize = shape.iter().product();
            let data: Vec<f32> = (0..n)
                .map(|i| (((i * 7919 + t * 104_729) % 1000) as f32 / 1000.0 - 0.5) * 0.8)
                .collect();
            let tensor = Tensor::from_vec(data, shape.as_slice(), &Device::Cpu).unwrap();
            (name, tensor)
        })
        .collect()
}

#[test]
fn a_two_class_sigmoid_model_decides_the_same_in_validation_and_prediction() {
    let arch = Architecture::MonaiUnet(UNetConfig {
        out_channels: 3,
        channels: vec![4, 8],
        strides: vec![2],
        num_res_units: 0,
        norm: Norm::Instance,
        ..UNetConfig::default()
    });
    let tensors = weights(&arch);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    for decision in [Decision::Sigmoid, Decision::Argmax] {
        let card = ModelCard {
            architecture: arch.clone(),
            preset: Preset::seed(),
            decision,
            classes: vec!["background".into(), "liver".into(), "tumour".into()],
            values: vec![0, 1, 2],
            largest_component: vec![false, true, true],
            about: Default::default(),
        };
        card.write(&path, &tensors, true).unwrap();
        let predictor = Predictor::load(&path, &Device::Cpu).unwrap();
        let dims = [16, 12, 8];
        let data: Vec<f32> = (0..dims.iter().product::<usize>())
            .map(|i| ((i * 31 % 17) as f32 - 8.0) / 4.0)
            .collect();
        let image = Volume::new(dims, Affine::identity(), data).unwrap();
        let opts = PredictOptions {
            roi: Some(dims),
            preprocess: PreprocessMode::None,
            postprocess: false,
            keep_probabilities: true,
            ..PredictOptions::default()
        };
        let pred = predictor.predict(image.clone(), &opts).unwrap();

        // What validation computes: the network's logits over the whole
        // volume, decided by `Decision::labels`.
        let net = liverseg_model::ModelFile::load(&path, &Device::Cpu)
            .unwrap()
            .network(&Device::Cpu)
            .unwrap();
        let x = volumes_to_tensor(&[&image], &Device::Cpu).unwrap();
        let logits = net.forward_t(&x, false).unwrap();
        let flat = decision.labels(&logits).unwrap();
        let as_tensor = Tensor::from_vec(
            flat.iter().map(|&l| f32::from(l)).collect::<Vec<_>>(),
            (1, 1, dims[0], dims[1], dims[2]),
            &Device::Cpu,
        )
        .unwrap();
        let validation = tensor_to_volume(&as_tensor, 0, 0, &Grid::of(&image)).unwrap();
        let validation: Vec<u8> = validation.data().iter().map(|&v| v as u8).collect();
        assert_eq!(validation, pred.labels.data(), "{decision:?}");
        for class in [1u8, 2] {
            assert!(
                validation.contains(&class),
                "{decision:?}: class {class} never decided"
            );
        }

        // The saved background is the decision's formula of the saved
        // foreground, voxel by voxel.
        let probs = pred.probabilities.unwrap();
        for o in 0..image.len() {
            let fg = [probs[1].data()[o], probs[2].data()[o]];
            assert_eq!(probs[0].data()[o], decision.background(&fg));
        }
    }
}
