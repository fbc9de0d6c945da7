//! Loss values and gradients against MONAI's `DiceLoss` and `DiceCELoss`
//! (golden file from `tools/golden/loss_golden.py`, whose logits and
//! targets are the closed formulas below).

mod common;

use candle_core::{Device, Tensor, Var};
use liverseg_model::{DiceCeConfig, DiceLossConfig, LossActivation, dice_ce_loss, dice_loss};
use std::path::Path;

const SHAPE: [usize; 5] = [2, 3, 4, 5, 6];

fn logits() -> Tensor {
    let n: usize = SHAPE.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|i| (2.0 * (0.13 * i as f64).sin() + (0.029 * i as f64).cos()) as f32)
        .collect();
    Tensor::from_vec(v, &SHAPE[..], &Device::Cpu).unwrap()
}

fn target() -> Tensor {
    let n = SHAPE[0] * SHAPE[2] * SHAPE[3] * SHAPE[4];
    let v: Vec<f32> = (0..n)
        .map(|i| {
            (((0.05 * i as f64).sin() + 1.0) * 1.5)
                .floor()
                .clamp(0.0, 2.0) as f32
        })
        .collect();
    Tensor::from_vec(v, (SHAPE[0], 1, SHAPE[2], SHAPE[3], SHAPE[4]), &Device::Cpu).unwrap()
}

fn check(name: &str, loss: &dyn Fn(&Tensor) -> Tensor) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/losses.safetensors");
    let g = candle_core::safetensors::load(path, &Device::Cpu).unwrap();
    let x = Var::from_tensor(&logits()).unwrap();
    let l = loss(x.as_tensor());
    let got: f32 = l.to_scalar().unwrap();
    let want: f32 = g[&format!("{name}.loss")]
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()[0];
    assert!(
        (got - want).abs() < 1e-5,
        "{name}: loss {got} vs MONAI {want}"
    );
    let grads = l.backward().unwrap();
    let gx = grads.get(x.as_tensor()).unwrap();
    let d: f32 = common::max_diff(gx, &g[&format!("{name}.grad")]);
    assert!(d < 1e-6, "{name}: gradient differs from MONAI by {d}");
}

#[test]
fn dice_losses_match_monai() {
    let t = target();
    check("dice_default", &|x| {
        dice_loss(x, &t, &DiceLossConfig::default()).unwrap()
    });
    let cfg = DiceLossConfig {
        include_background: false,
        squared_pred: true,
        ..Default::default()
    };
    check("dice_nobg_squared", &|x| dice_loss(x, &t, &cfg).unwrap());
    let cfg = DiceLossConfig {
        activation: LossActivation::Sigmoid,
        batch: true,
        smooth_nr: 0.0,
        smooth_dr: 1e-6,
        ..Default::default()
    };
    check("dice_sigmoid_batch", &|x| dice_loss(x, &t, &cfg).unwrap());
    let cfg = DiceLossConfig {
        jaccard: true,
        ..Default::default()
    };
    check("dice_jaccard", &|x| dice_loss(x, &t, &cfg).unwrap());
}

#[test]
fn dice_ce_losses_match_monai() {
    let t = target();
    check("dicece_default", &|x| {
        dice_ce_loss(x, &t, &DiceCeConfig::default()).unwrap()
    });
    let cfg = DiceCeConfig {
        class_weights: Some(vec![0.2, 1.0, 3.0]),
        lambda_dice: 0.5,
        lambda_ce: 2.0,
        ..Default::default()
    };
    check("dicece_weighted", &|x| dice_ce_loss(x, &t, &cfg).unwrap());
}
