//! Timings on the device, with the same cases (names, shapes, networks,
//! optimiser) as `tools/device/torch_bench.py` times in PyTorch, and a
//! whole CT predicted with the built-in model.

use super::agree::{network_on, plain_config, unet_config};
use anyhow::Result;
use candle_core::{DType, Device, ModuleT, Tensor};
use candle_nn::{VarBuilder, VarMap};
use liverseg_infer::{PredictOptions, Predictor};
use liverseg_model::{
    BlendMode, DiceLossConfig, PlainUNet, Precision, SlidingWindowConfig, UNet, dice_loss,
    sliding_window_inference,
};
use liverseg_phantom::PhantomConfig;
use liverseg_train::TrainConfig;
use liverseg_train::optim::{Optimizer, trainable};
use serde::Serialize;
use std::time::Instant;

/// One timed case.
#[derive(Debug, Serialize)]
pub struct Timing {
    /// The case's name, shared with the PyTorch side.
    pub case: String,
    /// The network's precision.
    pub precision: Precision,
    /// The input shape.
    pub shape: Vec<usize>,
    /// Median seconds over `reps` timed runs after one warm-up.
    pub median_s: f64,
    /// Timed runs.
    pub reps: usize,
}

/// Median seconds of `reps` runs of `f` after a warm-up, the device
/// synchronised around each run (CUDA launches are asynchronous).
fn time(device: &Device, reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    device.synchronize()?;
    let mut t = Vec::with_capacity(reps);
    for _ in 0..reps {
        let start = Instant::now();
        f()?;
        device.synchronize()?;
        t.push(start.elapsed().as_secs_f64());
    }
    t.sort_by(f64::total_cmp);
    Ok(t[t.len() / 2])
}

/// Normal noise made on the CPU and copied: the device's own generator
/// (cuRAND) is not needed, so the fallback library of
/// `tools/device/build.sh` suffices where cuRAND is missing.
fn random(shape: &[usize], device: &Device) -> Result<Tensor> {
    Ok(Tensor::randn(0f32, 1.0, shape, &Device::Cpu)?.to_device(device)?)
}

/// The network timings: the tutorial UNet's forward, its training step,
/// its sliding window over a 256 × 256 × 160 volume, and the plain U-Net's
/// training step at a 128³ patch (smaller shapes when `quick`).
pub fn networks(
    device: &Device,
    precision: Precision,
    quick: bool,
    reps: usize,
) -> Result<Vec<Timing>> {
    let (fwd, unet_step, plain_step, volume, roi) = if quick {
        (
            vec![1, 1, 32, 32, 16],
            vec![2, 1, 16, 16, 16],
            vec![2, 1, 16, 16, 16],
            vec![1, 1, 48, 48, 24],
            [32, 32, 16],
        )
    } else {
        (
            vec![1, 1, 128, 128, 64],
            vec![2, 1, 128, 128, 128],
            vec![2, 1, 128, 128, 128],
            vec![1, 1, 256, 256, 160],
            [128, 128, 64],
        )
    };
    let mut out = Vec::new();
    let mut push = |case: &str, shape: &[usize], median_s: f64| {
        out.push(Timing {
            case: case.to_string(),
            precision,
            shape: shape.to_vec(),
            median_s,
            reps,
        })
    };
    let ucfg = unet_config(quick);
    let init = VarMap::new();
    UNet::new(
        &ucfg,
        VarBuilder::from_varmap(&init, DType::F32, &Device::Cpu),
    )?;
    let (unet, vars) = network_on(&init, device, Some(&ucfg), None)?;

    let x = random(&fwd, device)?;
    let s = time(device, reps, || {
        precision.run(&x, |x| unet.forward_t(x, false))?;
        Ok(())
    })?;
    push("unet_forward", &fwd, s);

    push(
        "unet_train_step",
        &unet_step,
        train_step(unet.as_ref(), &vars, &unet_step, device, precision, reps)?,
    );

    let v = random(&volume, device)?;
    let cfg = SlidingWindowConfig {
        roi_size: roi,
        sw_batch_size: 1,
        overlap: 0.25,
        mode: BlendMode::Constant,
        ..SlidingWindowConfig::default()
    };
    let s = time(device, reps, || {
        let mut window = |w: &Tensor| -> liverseg_model::Result<Tensor> {
            Ok(precision.run(w, |w| unet.forward_t(w, false))?)
        };
        sliding_window_inference(&v, &cfg, &mut window)?;
        Ok(())
    })?;
    push("unet_sliding_window", &volume, s);

    let pcfg = plain_config(quick);
    let init = VarMap::new();
    PlainUNet::new(
        &pcfg,
        VarBuilder::from_varmap(&init, DType::F32, &Device::Cpu),
    )?;
    let (plain, vars) = network_on(&init, device, None, Some(&pcfg))?;
    push(
        "plain_unet_train_step",
        &plain_step,
        train_step(plain.as_ref(), &vars, &plain_step, device, precision, reps)?,
    );
    Ok(out)
}

/// Median seconds of one training step: forward in train mode, Dice loss
/// (soft-max, one-hot targets), backward, Adam (the tutorial's: lr 1e-5,
/// weight decay 1e-5, AMSGrad).
fn train_step(
    net: &dyn ModuleT,
    vars: &VarMap,
    shape: &[usize],
    device: &Device,
    precision: Precision,
    reps: usize,
) -> Result<f64> {
    let x = random(shape, device)?;
    let target = x.ge(0.5)?.to_dtype(DType::F32)?;
    let params = trainable(vars)?;
    let mut opt = Optimizer::new(TrainConfig::default().optimizer, params.clone());
    time(device, reps, || {
        let logits = precision.run(&x, |x| net.forward_t(x, true))?;
        let loss = dice_loss(&logits, &target, &DiceLossConfig::default())?;
        let grads = loss.backward()?;
        let g: Vec<Option<Tensor>> = params
            .iter()
            .map(|(_, v)| grads.get(v.as_tensor()).cloned())
            .collect();
        opt.step(&g, 1e-5)?;
        Ok(())
    })
}

/// A whole CT predicted with the built-in model on the device and on the
/// CPU: seconds on the device (median), and the Dice of the two masks.
#[derive(Debug, Serialize)]
pub struct WholeCt {
    /// The CT's grid.
    pub shape: [usize; 3],
    /// The device's precision.
    pub precision: Precision,
    /// Median seconds of `predict` on the device (reading excluded).
    pub median_s: f64,
    /// Timed runs.
    pub reps: usize,
    /// Dice of the device's liver mask against the CPU's.
    pub dice_vs_cpu: f64,
    /// Dice of the device's liver mask against the phantom's label.
    pub dice_vs_label: f64,
}

pub fn whole_ct(
    device: &Device,
    precision: Precision,
    quick: bool,
    reps: usize,
) -> Result<WholeCt> {
    let (dims, spacing) = if quick {
        ([96, 96, 40], [4.0, 4.0, 8.0])
    } else {
        ([512, 512, 200], [0.75, 0.75, 1.6])
    };
    let cfg = PhantomConfig {
        dims,
        spacing,
        ..PhantomConfig::default()
    };
    let phantom = liverseg_phantom::generate(7, &cfg)?;
    let opts = PredictOptions::default();
    let on_device = Predictor::builtin(device)?.with_precision(precision);
    let mut mask = None;
    let median_s = time(device, reps, || {
        mask = Some(on_device.predict(phantom.image.clone(), &opts)?.labels);
        Ok(())
    })?;
    let mask = mask.ok_or_else(|| anyhow::anyhow!("no prediction"))?;
    let cpu = super::agree::cpu_reference(|| {
        Ok(Predictor::builtin(&Device::Cpu)?.predict(phantom.image.clone(), &opts)?)
    })?;
    Ok(WholeCt {
        shape: dims,
        precision,
        median_s,
        reps,
        dice_vs_cpu: liverseg_metrics::dice(mask.data(), cpu.labels.data(), &[1])?,
        dice_vs_label: liverseg_metrics::dice(mask.data(), phantom.label.data(), &[1])?,
    })
}
