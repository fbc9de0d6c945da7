//! CPU timing of one training step as `liverseg train` takes it (forward,
//! loss, backward, the trainer's own optimiser), beside the same step in
//! PyTorch:
//!
//! - `tutorial`: the tutorial UNet at (1, 1, 128, 128, 64), Dice loss,
//!   `Adam(lr=1e-5, weight_decay=1e-5, amsgrad=True)`, beside
//!   `tools/bench/bench_torch_unet.py`'s `train` case (MONAI's UNet, same
//!   loss and optimiser);
//! - `plain`: nnU-Net's 3d_fullres plain U-Net (six stages of 32 to 320
//!   features, deep supervision) at a (1, 1, 128, 128, 128) patch, nnU-Net's
//!   Dice + cross-entropy over the deep-supervision outputs and SGD
//!   (lr 0.01, momentum 0.99, Nesterov, weight decay 3e-5), beside
//!   `tools/bench/bench_torch_plain_unet.py` (nnU-Net's `PlainConvUNet` from
//!   `dynamic_network_architectures`, same loss and optimiser).
//!
//! ```text
//! cargo bench -p liverseg-train --bench step
//! LIVERSEG_BENCH_REPS=5 LIVERSEG_BENCH_ONLY=plain cargo bench -p liverseg-train --bench step
//! LIVERSEG_BENCH_PYTHON= cargo bench -p liverseg-train --bench step   # liverseg alone
//! LIVERSEG_BENCH_BF16=conv cargo bench -p liverseg-train --bench step   # bfloat16 convolutions
//! ```
//!
//! `LIVERSEG_BENCH_BF16` (`conv`: bfloat16 convolutions in the float32
//! network, beside PyTorch's oneDNN allowed the same; `net`: bfloat16
//! activations, beside PyTorch's CPU autocast; `LIVERSEG_BENCH_TORCH_BF16`
//! picks the PyTorch side's mode instead) is described in the harness.
//!
//! One JSON line per case (median and all repetition times after one
//! warm-up step, three for `plain`, `LIVERSEG_BENCH_REPS`, default 5; GFLOP/s against the fixed
//! counts below; peak RSS of the process so far), each followed, unless
//! `LIVERSEG_BENCH_PYTHON` is set empty, by the same case in PyTorch with
//! as many threads as rayon has here (after this process has handed the
//! case's freed memory back: with the plain case's 9 GiB still held, the
//! tutorial step in PyTorch took 1.08 s instead of 0.53 s); then a markdown table of ratios
//! (PyTorch / liverseg). The inputs are random tensors.

use candle_core::{DType, Device, ModuleT, Tensor};
use candle_nn::{VarBuilder, VarMap};
use liverseg_model::{
    Compute, DiceCeConfig, DiceLossConfig, PlainUNet, PlainUNetConfig, UNet, UNetConfig,
    deep_supervision, dice_ce_loss, dice_loss,
};
use liverseg_train::config::OptimizerConfig;
use liverseg_train::optim::{Optimizer, trainable};
use serde_json::{Value, json};
use std::time::Instant;

#[path = "../../liverseg-model/benches/common/alloc.rs"]
mod alloc;
#[path = "../../liverseg-model/benches/common/harness.rs"]
mod harness;

use harness::{python, ratio_table, record, run_reference};

/// MONAI's FlopCounterMode count of one tutorial training step (as the
/// model bench).
const TUTORIAL_GFLOP: f64 = 36.2;
/// torch's FlopCounterMode count of one plain U-Net training step at
/// (1, 1, 128, 128, 128) (forward and backward of `PlainConvUNet`), printed
/// by `bench_torch_plain_unet.py --count-flops`.
const PLAIN_GFLOP: f64 = 2860.0;

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

/// The network's outputs (full resolution first).
type Forward = Box<dyn Fn(&Tensor) -> candle_core::Result<Vec<Tensor>>>;
/// The loss of the outputs against a label.
type Loss = Box<dyn Fn(&[Tensor], &Tensor) -> liverseg_model::Result<Tensor>>;

/// A network under training, its loss and its optimiser: `step` is one
/// update.
struct Case {
    forward: Forward,
    loss: Loss,
    opt: Optimizer,
    lr: f64,
    x: Tensor,
    y: Tensor,
}

impl Case {
    fn step(&mut self) -> BoxResult<()> {
        let outputs = (self.forward)(&self.x)?;
        let loss = (self.loss)(&outputs, &self.y)?;
        let store = loss.backward()?;
        let grads: Vec<Option<Tensor>> = self
            .opt
            .params()
            .iter()
            .map(|(_, v)| store.get(v.as_tensor()).map(Tensor::detach))
            .collect();
        self.opt.step(&grads, self.lr)?;
        Ok(())
    }
}

/// A random binary label of `shape`, as class indices.
fn label(shape: (usize, usize, usize, usize, usize), dev: &Device) -> BoxResult<Tensor> {
    Ok(Tensor::rand(0f32, 1.0, shape, dev)?
        .ge(0.7)?
        .to_dtype(DType::F32)?)
}

fn tutorial(dev: &Device, compute: Compute) -> BoxResult<Case> {
    let varmap = VarMap::new();
    let net = UNet::new(
        &UNetConfig::default(),
        VarBuilder::from_varmap(&varmap, DType::F32, dev),
    )?;
    let shape = (1, 1, 128, 128, 64);
    let opt = Optimizer::new(
        OptimizerConfig::Adam {
            lr: 1e-5,
            weight_decay: 1e-5,
            betas: (0.9, 0.999),
            eps: 1e-8,
            amsgrad: true,
        },
        trainable(&varmap)?,
    );
    Ok(Case {
        forward: Box::new(move |x| Ok(vec![compute.run(x, |x| net.forward_t(x, true))?])),
        loss: Box::new(|o, y| dice_loss(&o[0], y, &DiceLossConfig::default())),
        opt,
        lr: 1e-5,
        x: Tensor::randn(0f32, 1.0, shape, dev)?,
        y: label(shape, dev)?,
    })
}

fn plain(dev: &Device, compute: Compute) -> BoxResult<Case> {
    let varmap = VarMap::new();
    let net = PlainUNet::new(
        &PlainUNetConfig::default(),
        VarBuilder::from_varmap(&varmap, DType::F32, dev),
    )?;
    let shape = (1, 1, 128, 128, 128);
    let opt = Optimizer::new(
        OptimizerConfig::Sgd {
            lr: 1e-2,
            momentum: 0.99,
            nesterov: true,
            weight_decay: 3e-5,
        },
        trainable(&varmap)?,
    );
    // nnU-Net's DC_and_CE_loss: soft Dice without the background over the
    // whole batch, smooth 1e-5, plus cross-entropy, weights 1 and 1.
    let cfg = DiceCeConfig {
        dice: DiceLossConfig {
            include_background: false,
            batch: true,
            ..DiceLossConfig::default()
        },
        class_weights: None,
        lambda_dice: 1.0,
        lambda_ce: 1.0,
    };
    Ok(Case {
        // In bfloat16, every output returns to float32 for the loss.
        forward: Box::new(move |x| {
            let x = x.to_dtype(compute.dtype())?;
            let outs = compute.within(|| net.forward_all(&x, true))?;
            outs.iter().map(|o| o.to_dtype(DType::F32)).collect()
        }),
        loss: Box::new(move |o, y| deep_supervision(o, y, |l, t| dice_ce_loss(l, t, &cfg))),
        opt,
        lr: 1e-2,
        x: Tensor::randn(0f32, 1.0, shape, dev)?,
        y: label(shape, dev)?,
    })
}

fn main() -> BoxResult<()> {
    alloc::keep_freed_memory();
    let reps: usize = std::env::var("LIVERSEG_BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let only = std::env::var("LIVERSEG_BENCH_ONLY").unwrap_or_default();
    let (torch_bf16, bf16) = harness::bf16_modes();
    let dev = Device::Cpu;
    let compute = harness::compute(bf16);
    type Make = fn(&Device, Compute) -> BoxResult<Case>;
    // (case, record name, network, GFLOP per step, warm-up steps): the
    // plain case warms up with 3 steps as its PyTorch side does.
    let cases: [(&str, &str, Make, f64, usize); 2] = [
        (
            "tutorial",
            "cpu_train_step_tutorial",
            tutorial,
            TUTORIAL_GFLOP,
            1,
        ),
        ("plain", "cpu_train_step_plain_128", plain, PLAIN_GFLOP, 3),
    ];
    let py = python();
    // (case, liverseg record, PyTorch record): each reference runs right
    // after its case, with the memory the case freed handed back first.
    let mut rows: Vec<(&str, Value, Option<Value>)> = Vec::new();
    for (case, name, make, gflop, warmup) in cases {
        if !(only.is_empty() || only.split(',').any(|c| c == case)) {
            continue;
        }
        let mut c = make(&dev, compute)?;
        for _ in 0..warmup {
            c.step()?;
        }
        let mut times = Vec::new();
        for _ in 0..reps {
            let t = Instant::now();
            c.step()?;
            times.push(t.elapsed().as_secs_f64());
        }
        drop(c);
        let r = record(name, &times, gflop, json!({ "bf16": bf16 }));
        println!("{r}");
        alloc::release_freed_memory();
        let theirs = py.as_deref().and_then(|py| match case {
            "tutorial" => run_reference(
                py,
                "bench_torch_unet.py",
                &["--only", "train", "--bf16", &torch_bf16],
                reps,
                "PyTorch",
            )
            .map(|v| v["train"].clone()),
            _ => run_reference(
                py,
                "bench_torch_plain_unet.py",
                &["--bf16", &torch_bf16],
                reps,
                "PyTorch",
            ),
        });
        if let Some(t) = &theirs {
            println!("PyTorch: {t}");
        }
        rows.push((case, r, theirs));
    }
    if py.is_none() {
        return Ok(());
    }
    let table: Vec<(&str, &Value, &Value)> = rows
        .iter()
        .filter_map(|(case, r, t)| Some((*case, r, t.as_ref()?)))
        .collect();
    ratio_table("training step", &table);
    Ok(())
}
