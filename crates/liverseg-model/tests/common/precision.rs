//! What the precision tests share: a small UNet, a deterministic input
//! and the gaps between two runs' outputs or gradients.

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use liverseg_model::{UNet, UNetConfig};

/// A three-level UNet (8, 16, 32 channels) with its weights in `varmap`.
pub fn small_unet(varmap: &VarMap) -> UNet {
    let cfg = UNetConfig {
        channels: vec![8, 16, 32],
        strides: vec![2, 2],
        ..UNetConfig::default()
    };
    UNet::new(
        &cfg,
        VarBuilder::from_varmap(varmap, DType::F32, &Device::Cpu),
    )
    .unwrap()
}

pub fn input(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|i| ((0.013 * i as f64).sin() + 0.5 * (0.071 * i as f64).cos()) as f32)
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

pub fn max_abs(t: &Tensor) -> f32 {
    t.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}

/// The largest difference between the two precisions' outputs, relative
/// to the float32 output's largest magnitude.
pub fn relative_gap(a: &Tensor, b: &Tensor) -> f32 {
    max_abs(&(a - b).unwrap()) / max_abs(a)
}

/// The cosine between two sets of gradients (flattened) and the L2 norm
/// of their difference relative to the first's.
pub fn relative_l2(a: &[Tensor], b: &[Tensor]) -> (f32, f32) {
    assert_eq!(a.len(), b.len());
    assert!(!a.is_empty());
    let flat = |g: &[Tensor]| {
        let parts: Vec<Tensor> = g.iter().map(|t| t.flatten_all().unwrap()).collect();
        Tensor::cat(&parts, 0).unwrap()
    };
    let (a, b) = (flat(a), flat(b));
    let dot = (&a * &b)
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let norm = |t: &Tensor| {
        t.sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
            .sqrt()
    };
    let cosine = dot / (norm(&a) * norm(&b));
    (cosine, norm(&(&a - &b).unwrap()) / norm(&a))
}
