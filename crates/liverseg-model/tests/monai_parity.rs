//! Parity with MONAI's `UNet`: the same parameters and input give the same
//! logits within 1e-4, in evaluation and training mode, and a MONAI
//! `state_dict` saved with `torch.save` loads by name with no renaming.
//!
//! Golden files come from `tools/golden/unet_golden.py` (MONAI 1.6, torch
//! 2.x): parameters and inputs there are closed formulas of each tensor's
//! name and element index, reproduced by [`fill`] and [`input`] here, so no
//! weights are committed.

mod common;

use candle_core::{DType, Device, ModuleT, Tensor};
use candle_nn::{VarBuilder, VarMap};
use liverseg_model::{Norm, UNet, UNetConfig};
use std::collections::HashMap;

/// The formula of `unet_golden.py::fill`.
fn fill(name: &str, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let key = f64::from(name.bytes().map(u32::from).sum::<u32>() % 97);
    let leaf = name.rsplit('.').next().unwrap_or("");
    let fan = (n / shape[0]).max(1) as f64;
    let v: Vec<f32> = (0..n)
        .map(|i| {
            let s = (0.37 * i as f64 + key).sin();
            let v = if leaf == "running_var" {
                1.0 + 0.25 * (s + 1.0)
            } else if leaf == "running_mean" || leaf == "bias" {
                0.1 * s
            } else if name.contains(".adn.A.") {
                0.25 + 0.05 * s
            } else if name.contains(".adn.N.") {
                1.0 + 0.1 * s
            } else {
                s * (1.0 / fan).sqrt()
            };
            v as f32
        })
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn input(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|i| ((0.011 * i as f64).sin() + 0.5 * (0.07 * i as f64).cos()) as f32)
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// Builds the network once to learn its parameter names and shapes, then
/// again from formula-filled tensors.
fn formula_unet(cfg: &UNetConfig) -> UNet {
    let varmap = VarMap::new();
    UNet::new(
        cfg,
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
    )
    .unwrap();
    let tensors: HashMap<String, Tensor> = varmap
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), fill(k, v.as_tensor().dims())))
        .collect();
    UNet::new(
        cfg,
        VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu),
    )
    .unwrap()
}

#[test]
fn tutorial_unet_matches_monai_in_eval_and_train_mode() {
    let g =
        candle_core::safetensors::load(common::golden("unet_tutorial.safetensors"), &Device::Cpu)
            .unwrap();
    let x = input(&[1, 1, 32, 32, 32]);
    assert!(
        common::max_diff(&x, &g["input"]) == 0.0,
        "input formula differs from the golden input"
    );
    let net = formula_unet(&UNetConfig::default());
    let eval = net.forward_t(&x, false).unwrap();
    let d = common::max_diff(&eval, &g["eval"]);
    eprintln!("tutorial UNet: max |liverseg - MONAI| eval logits {d:e}");
    assert!(d < 1e-4, "eval logits differ from MONAI by {d}");
    let train = net.forward_t(&x, true).unwrap();
    let d = common::max_diff(&train, &g["train"]);
    eprintln!("tutorial UNet: max |liverseg - MONAI| train-mode logits {d:e}");
    assert!(d < 1e-4, "train-mode logits differ from MONAI by {d}");
}

#[test]
fn monai_state_dict_pth_loads_by_name() {
    let cfg = UNetConfig {
        channels: vec![4, 8, 16],
        strides: vec![2, 2],
        norm: Norm::Instance,
        ..UNetConfig::default()
    };
    let vb =
        VarBuilder::from_pth(common::golden("unet_small.pth"), DType::F32, &Device::Cpu).unwrap();
    let net = UNet::new(&cfg, vb).unwrap();
    let g = candle_core::safetensors::load(common::golden("unet_small.safetensors"), &Device::Cpu)
        .unwrap();
    let y = net.forward_t(&g["input"], false).unwrap();
    let d = common::max_diff(&y, &g["eval"]);
    assert!(d < 1e-4, "logits differ from MONAI by {d}");
}
