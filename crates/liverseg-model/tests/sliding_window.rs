//! Sliding-window inference against MONAI's `sliding_window_inference`
//! (golden file from `tools/golden/sliding_golden.py`, whose predictor is
//! reproduced by [`predictor`]), and mirror TTA properties.

mod common;

use candle_core::{Device, Tensor};
use liverseg_model::{BlendMode, SlidingWindowConfig, flip, mirror_tta, sliding_window_inference};
use std::path::Path;

fn predictor(w: &Tensor) -> liverseg_model::Result<Tensor> {
    let (_, _, a, b, c) = w.dims5()?;
    let r: Vec<f32> = (0..a * b * c)
        .map(|i| {
            let (x, y, z) = (i / (b * c), (i / c) % b, i % c);
            1.0 + 0.1 * x as f32 - 0.05 * y as f32 + 0.02 * z as f32
        })
        .collect();
    let r = Tensor::from_vec(r, (1, 1, a, b, c), &Device::Cpu)?;
    let first = w.broadcast_mul(&r)?;
    let second = w.sin()?.broadcast_add(&r)?;
    Ok(Tensor::cat(&[first, second], 1)?)
}

fn check(name: &str, roi: [usize; 3], sw: usize, overlap: f64, mode: BlendMode) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/sliding.safetensors");
    let g = candle_core::safetensors::load(path, &Device::Cpu).unwrap();
    let cfg = SlidingWindowConfig {
        roi_size: roi,
        sw_batch_size: sw,
        overlap,
        mode,
        cval: 0.0,
    };
    let y = sliding_window_inference(&g[&format!("{name}.input")], &cfg, &mut predictor).unwrap();
    let want = &g[&format!("{name}.output")];
    assert_eq!(y.dims(), want.dims(), "{name}");
    let d: f32 = common::max_diff(&y, want);
    assert!(d < 1e-4, "{name}: differs from MONAI by {d}");
}

#[test]
fn matches_monai_constant_gaussian_and_padded() {
    check("constant_025", [6, 5, 4], 3, 0.25, BlendMode::Constant);
    check(
        "gaussian_05",
        [6, 5, 4],
        1,
        0.5,
        BlendMode::Gaussian { sigma_scale: 0.125 },
    );
    check(
        "padded",
        [6, 5, 4],
        2,
        0.25,
        BlendMode::Gaussian { sigma_scale: 0.125 },
    );
}

#[test]
fn mirror_tta_of_a_flip_equivariant_predictor_is_the_identity() {
    let x = Tensor::arange(0f32, 60.0, &Device::Cpu)
        .unwrap()
        .reshape((1, 1, 3, 4, 5))
        .unwrap();
    // An element-wise predictor commutes with flips: TTA changes nothing.
    let mut f = |t: &Tensor| -> liverseg_model::Result<Tensor> { Ok(t.sin()?) };
    let y = mirror_tta(&x, &[2, 3, 4], &mut f).unwrap();
    let d: f32 = common::max_diff(&y, &x.sin().unwrap());
    assert!(d < 1e-6);
    // A position-dependent predictor is symmetrised along the mirrored axis.
    let mut g = |t: &Tensor| predictor(t);
    let y = mirror_tta(&x, &[2], &mut g).unwrap();
    let yf = flip(&mirror_tta(&flip(&x, 2).unwrap(), &[2], &mut g).unwrap(), 2).unwrap();
    let d: f32 = common::max_diff(&y, &yf);
    assert!(d < 1e-4);
}
