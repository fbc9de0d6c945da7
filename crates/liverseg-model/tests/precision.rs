//! bfloat16 mixed precision against float32: the same network (float32
//! master weights) run on the same input in both precisions. On the CPU the
//! bfloat16 convolutions take the CPU kernels on bfloat16 operands with
//! float32 sums (on AMX tiles or with AVX-512 BF16 dot products where the
//! CPU has them), the arithmetic
//! cuDNN's bfloat16 routines approximate on a GPU; these bounds are the
//! ones `--precision bf16` documents. `cpu_bf16.rs` checks the CPU's form
//! (float32 activations, bfloat16 convolutions) against the same bounds.

use candle_core::{DType, Device, ModuleT, Var};
use candle_nn::{VarBuilder, VarMap};
use liverseg_model::{Compute, DiceLossConfig, PlainUNet, PlainUNetConfig, Precision, dice_loss};

#[path = "common/precision.rs"]
mod gaps;
use gaps::{input, relative_gap, relative_l2, small_unet};

/// A three-stage plain U-Net (4, 8, 16 features) with its weights in
/// `varmap`.
fn small_plain_unet(varmap: &VarMap, deep_supervision: bool) -> PlainUNet {
    let cfg = PlainUNetConfig {
        features: vec![4, 8, 16],
        strides: vec![1, 2, 2],
        deep_supervision,
        ..PlainUNetConfig::default()
    };
    PlainUNet::new(
        &cfg,
        VarBuilder::from_varmap(varmap, DType::F32, &Device::Cpu),
    )
    .unwrap()
}

#[test]
fn bf16_forward_stays_within_its_bound() {
    let varmap = VarMap::new();
    let net = small_unet(&varmap);
    let x = input(&[1, 1, 16, 16, 16]);
    let f32_out = Precision::F32.run(&x, |x| net.forward_t(x, false)).unwrap();
    let bf16_out = Precision::Bf16
        .run(&x, |x| net.forward_t(x, false))
        .unwrap();
    assert_eq!(bf16_out.dtype(), DType::F32, "outputs return as float32");
    assert_eq!(bf16_out.dims(), f32_out.dims());
    let gap = relative_gap(&f32_out, &bf16_out);
    eprintln!("UNet bf16 forward: max |Δ| / max |y| = {gap:.2e}");
    // bfloat16 keeps 8 significant bits (relative step 2^-8 = 3.9e-3); a
    // few layers of rounding stay within a few steps of the output scale.
    assert!(gap < 3e-2, "bf16 forward gap {gap}");
    assert!(gap > 0.0, "bf16 must actually compute in bfloat16");
}

#[test]
fn bf16_training_step_gives_float32_gradients_close_to_float32s() {
    let varmap = VarMap::new();
    let net = small_plain_unet(&varmap, false);
    let x = input(&[1, 1, 16, 16, 16]);
    // Class indices (N, 1, ...), one-hot encoded by the loss.
    let target = x.ge(0.2).unwrap().to_dtype(DType::F32).unwrap();
    let grads = |p: Precision| {
        let logits = p.run(&x, |x| net.forward_t(x, true)).unwrap();
        let loss = dice_loss(&logits, &target, &DiceLossConfig::default()).unwrap();
        let g = loss.backward().unwrap();
        let vars: Vec<Var> = varmap.all_vars();
        vars.iter()
            .filter_map(|v| g.get(v.as_tensor()).cloned())
            .collect::<Vec<_>>()
    };
    let (g32, g16) = (grads(Precision::F32), grads(Precision::Bf16));
    assert_eq!(g32.len(), g16.len());
    assert!(!g16.is_empty());
    assert!(
        g16.iter().all(|t| t.dtype() == DType::F32),
        "master weights receive float32 gradients"
    );
    let (cosine, rel) = relative_l2(&g32, &g16);
    eprintln!("plain U-Net bf16 step: gradient cosine {cosine:.5}, relative L2 gap {rel:.2e}");
    assert!(cosine > 0.99, "gradient cosine {cosine}");
    assert!(rel < 0.08, "relative gradient gap {rel}");
}

#[test]
fn run_all_casts_every_deep_supervision_output() {
    let varmap = VarMap::new();
    let net = small_plain_unet(&varmap, true);
    let x = input(&[1, 1, 16, 16, 16]);
    let run = |p: Precision| {
        Compute::from(p)
            .run_all(&x, |x| net.forward_all(x, false))
            .unwrap()
    };
    let (y32, y16) = (run(Precision::F32), run(Precision::Bf16));
    assert_eq!(y32.len(), 2, "full resolution and one coarser head");
    assert_eq!(y16.len(), y32.len());
    for (a, b) in y32.iter().zip(&y16) {
        assert_eq!(b.dtype(), DType::F32, "every output returns as float32");
        assert_eq!(a.dims(), b.dims());
        let gap = relative_gap(a, b);
        assert!(gap > 0.0 && gap < 3e-2, "bf16 head gap {gap}");
    }
    // The single-output form is the first of these.
    let first = Compute::from(Precision::Bf16)
        .run(&x, |x| net.forward_t(x, false))
        .unwrap();
    assert_eq!(relative_gap(&first, &y16[0]), 0.0);
}

#[test]
fn precision_names() {
    assert_eq!(Precision::parse("bf16").unwrap(), Precision::Bf16);
    assert_eq!(Precision::parse("f32").unwrap(), Precision::F32);
    assert!(Precision::parse("fp8").is_err());
    assert_eq!(Precision::Bf16.to_string(), "bf16");
}
