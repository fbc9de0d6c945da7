//! The CPU's form of `--precision bf16` (`Precision::configure_for`):
//! float32 activations with convolutions whose operands are rounded to
//! bfloat16 and summed in float32 (AMX tiles or AVX-512 BF16 dot
//! products), against float32, within
//! the bounds `precision.rs` holds bfloat16 activations to. In its own
//! test binary: the setting it turns on is process-wide.

use candle_core::{DType, Device, ModuleT, Var};
use candle_nn::{VarBuilder, VarMap};
use liverseg_model::{
    DiceLossConfig, Precision, UNet, UNetConfig, cpu_bf16_available, cpu_bf16_convolutions,
    dice_loss, set_cpu_bf16_convolutions,
};

#[path = "common/precision.rs"]
mod gaps;
use gaps::{input, relative_gap, relative_l2};

#[test]
fn bf16_on_the_cpu_is_float32_activations_with_bfloat16_convolutions() {
    assert_eq!(Precision::F32.configure_for(&Device::Cpu), Precision::F32);
    assert!(!cpu_bf16_convolutions());
    let varmap = VarMap::new();
    let cfg = UNetConfig {
        channels: vec![8, 16, 32],
        strides: vec![2, 2],
        ..UNetConfig::default()
    };
    let net = UNet::new(
        &cfg,
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
    )
    .unwrap();
    let x = input(&[1, 1, 16, 16, 16]);
    let target = x.ge(0.2).unwrap().to_dtype(DType::F32).unwrap();
    let run = |p: Precision| {
        let y = p.run(&x, |x| net.forward_t(x, true)).unwrap();
        let loss = dice_loss(&y, &target, &DiceLossConfig::default()).unwrap();
        let g = loss.backward().unwrap();
        let grads: Vec<_> = varmap
            .all_vars()
            .iter()
            .filter_map(|v: &Var| g.get(v.as_tensor()).cloned())
            .collect();
        (y, grads)
    };
    let (y32, g32) = run(Precision::F32);
    let p = Precision::Bf16.configure_for(&Device::Cpu);
    assert_eq!(p, Precision::F32, "activations stay float32 on the CPU");
    assert!(cpu_bf16_convolutions());
    let (y16, g16) = run(p);
    set_cpu_bf16_convolutions(false);
    let gap = relative_gap(&y32, &y16);
    let (cosine, rel) = relative_l2(&g32, &g16);
    eprintln!(
        "bf16 convolutions: output gap {gap:.2e}, gradient cosine {cosine:.5}, L2 gap {rel:.2e}"
    );
    assert!(
        gap < 3e-2 && cosine > 0.99 && rel < 0.08,
        "{gap} {cosine} {rel}"
    );
    if cpu_bf16_available() {
        assert!(
            gap > 0.0,
            "the convolutions must actually round to bfloat16"
        );
    } else {
        assert_eq!(
            gap, 0.0,
            "without bfloat16 kernels the convolutions stay float32"
        );
        eprintln!(
            "SKIPPED in part: this CPU has neither AMX-BF16 nor AVX-512 BF16, so only the float32 fallback is tested"
        );
    }
}
