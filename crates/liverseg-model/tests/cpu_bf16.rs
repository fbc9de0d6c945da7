//! The CPU's form of `--precision bf16` (`Precision::on`): float32
//! activations with convolutions whose operands are rounded to bfloat16 and
//! summed in float32 (AMX tiles or AVX-512 BF16 dot products), against
//! float32, within the bounds `precision.rs` holds bfloat16 activations to;
//! and that form belonging to the call that asks for it, not to the
//! process.

use candle_core::{DType, Device, ModuleT, Tensor, Var};
use candle_nn::VarMap;
use liverseg_model::{
    Compute, DiceLossConfig, Precision, cpu_bf16_available, cpu_bf16_convolutions, dice_loss,
};

#[path = "common/precision.rs"]
mod gaps;
use gaps::{input, max_abs, relative_gap, relative_l2, small_unet};

#[test]
fn bf16_on_the_cpu_is_float32_activations_with_bfloat16_convolutions() {
    let f32_on_cpu = Precision::F32.on(&Device::Cpu);
    assert_eq!(f32_on_cpu, Compute::from(Precision::F32));
    let bf16_on_cpu = Precision::Bf16.on(&Device::Cpu);
    assert_eq!(bf16_on_cpu.precision(), Precision::Bf16);
    assert_eq!(
        bf16_on_cpu.dtype(),
        DType::F32,
        "activations stay float32 on the CPU"
    );
    assert!(bf16_on_cpu.bf16_convolutions());
    let varmap = VarMap::new();
    let net = small_unet(&varmap);
    let x = input(&[1, 1, 16, 16, 16]);
    let target = x.ge(0.2).unwrap().to_dtype(DType::F32).unwrap();
    // The loss's backward pass runs outside `run`: the convolutions keep
    // the arithmetic their forward pass chose.
    let run = |c: Compute| {
        let y = c.run(&x, |x| net.forward_t(x, true)).unwrap();
        assert!(!cpu_bf16_convolutions(), "the setting ends with the run");
        let loss = dice_loss(&y, &target, &DiceLossConfig::default()).unwrap();
        let g = loss.backward().unwrap();
        let grads: Vec<_> = varmap
            .all_vars()
            .iter()
            .filter_map(|v: &Var| g.get(v.as_tensor()).cloned())
            .collect();
        (y, grads)
    };
    let (y32, g32) = run(f32_on_cpu);
    let (y16, g16) = run(bf16_on_cpu);
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
            gap > 0.0 && rel > 0.0,
            "the convolutions and their gradients must actually round to bfloat16"
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

/// A float32 network keeps its exact result while another thread runs a
/// network in the CPU's bfloat16 form, and after it; a panic inside
/// `within` does not leave the setting on.
#[test]
fn two_networks_in_one_process_compute_each_in_its_own_precision() {
    let varmap = VarMap::new();
    let net = small_unet(&varmap);
    let x = input(&[1, 1, 16, 16, 16]);
    let forward = |c: Compute| -> Tensor { c.run(&x, |x| net.forward_t(x, false)).unwrap() };
    let f32_alone = forward(Compute::from(Precision::F32));
    let bf16_alone = forward(Precision::Bf16.on(&Device::Cpu));
    let same = |a: &Tensor, b: &Tensor| max_abs(&(a - b).unwrap()) == 0.0;
    std::thread::scope(|s| {
        let other = s.spawn(|| {
            (0..4)
                .map(|_| forward(Precision::Bf16.on(&Device::Cpu)))
                .collect::<Vec<_>>()
        });
        for _ in 0..4 {
            let y = forward(Compute::from(Precision::F32));
            assert!(
                same(&y, &f32_alone),
                "float32 disturbed by the other thread"
            );
        }
        for y in other.join().unwrap() {
            assert!(same(&y, &bf16_alone), "bfloat16 run not reproduced");
        }
    });
    let caught = std::panic::catch_unwind(|| {
        Precision::Bf16
            .on(&Device::Cpu)
            .within(|| panic!("inside a bfloat16 run"))
    });
    assert!(caught.is_err());
    assert!(!cpu_bf16_convolutions(), "a panic left bfloat16 on");
    assert!(same(&forward(Compute::from(Precision::F32)), &f32_alone));
    if cpu_bf16_available() {
        assert!(
            !same(&bf16_alone, &f32_alone),
            "the bfloat16 form must differ from float32 here"
        );
    } else {
        eprintln!(
            "SKIPPED in part: this CPU has neither AMX-BF16 nor AVX-512 BF16, so both forms are float32"
        );
    }
}
