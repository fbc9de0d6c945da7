//! CPU timing of the tutorial UNet: eval forward and one training step
//! (forward, Dice loss, backward, Adam) at input (1, 1, 128, 128, 64), the
//! shapes `../shared/bench/bench_monai.py` times for PyTorch + MONAI.
//!
//! A third case is `bench_monai.py sliding_window`: the same network over
//! (1, 1, 256, 256, 160) in windows of 128×128×64, overlap 0.25, Gaussian
//! blending. `LIVERSEG_BENCH_ONLY=forward|train|sliding` picks cases.
//!
//! `cargo bench -p liverseg-model --bench unet` prints one JSON line per
//! case: median and all repetition times, GFLOP/s against the forward's
//! 12.1 GFLOP (and 36.2 for a training step, MONAI's counts), and the
//! process peak RSS.

use candle_core::{DType, Device, ModuleT, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use liverseg_model::{
    BlendMode, DiceLossConfig, SlidingWindowConfig, UNet, UNetConfig, dice_loss,
    sliding_window_inference,
};
use std::time::Instant;

#[path = "common/alloc.rs"]
mod alloc;

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.to_string())
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    alloc::keep_freed_memory();
    let reps: usize = std::env::var("LIVERSEG_BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let only = std::env::var("LIVERSEG_BENCH_ONLY").unwrap_or_default();
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let net = UNet::new(
        &UNetConfig::default(),
        VarBuilder::from_varmap(&varmap, DType::F32, &dev),
    )?;
    let x = Tensor::randn(0f32, 1.0, (1, 1, 128, 128, 64), &dev)?;
    if only.is_empty() || only.contains("forward") {
        net.forward_t(&x, false)?;
        let mut times = Vec::new();
        for _ in 0..reps {
            let t = Instant::now();
            let y = net.forward_t(&x, false)?;
            y.sum_all()?.to_scalar::<f32>()?;
            times.push(t.elapsed().as_secs_f64());
        }
        let m = median(times.clone());
        println!(
            "{{\"name\":\"cpu_unet_eval_forward\",\"median_s\":{m:.4},\"gflops\":{:.1},\"all_s\":{times:?},\"peak_rss_mib\":{:.0},\"threads\":{}}}",
            12.1 / m,
            peak_rss_mib(),
            rayon::current_num_threads()
        );
    }
    if only.is_empty() || only.contains("train") {
        let target = Tensor::rand(0f32, 1.0, (1, 1, 128, 128, 64), &dev)?
            .ge(0.7)?
            .to_dtype(DType::F32)?;
        let params: Vec<_> = varmap
            .data()
            .lock()
            .map_err(|_| "poisoned")?
            .iter()
            .filter(|(k, _)| !k.contains("running_"))
            .map(|(_, v)| v.clone())
            .collect();
        let mut opt = AdamW::new(
            params,
            ParamsAdamW {
                lr: 1e-4,
                weight_decay: 0.0,
                ..Default::default()
            },
        )?;
        let mut step = || -> Result<(), Box<dyn std::error::Error>> {
            let y = net.forward_t(&x, true)?;
            let loss = dice_loss(&y, &target, &DiceLossConfig::default())?;
            opt.backward_step(&loss)?;
            Ok(())
        };
        step()?;
        let mut times = Vec::new();
        for _ in 0..reps {
            let t = Instant::now();
            step()?;
            times.push(t.elapsed().as_secs_f64());
        }
        let m = median(times.clone());
        println!(
            "{{\"name\":\"cpu_unet_train_step\",\"median_s\":{m:.4},\"gflops\":{:.1},\"all_s\":{times:?},\"peak_rss_mib\":{:.0},\"threads\":{}}}",
            36.2 / m,
            peak_rss_mib(),
            rayon::current_num_threads()
        );
    }
    if only.is_empty() || only.contains("sliding") {
        // `bench_monai.py sliding_window`: (1, 1, 256, 256, 160), roi
        // (128, 128, 64), one window per call, overlap 0.25, Gaussian.
        let big = Tensor::randn(0f32, 1.0, (1, 1, 256, 256, 160), &dev)?;
        let cfg = SlidingWindowConfig {
            roi_size: [128, 128, 64],
            sw_batch_size: 1,
            overlap: 0.25,
            mode: BlendMode::Gaussian { sigma_scale: 0.125 },
            cval: 0.0,
        };
        let windows = std::cell::Cell::new(0usize);
        let mut predictor = |w: &Tensor| -> liverseg_model::Result<Tensor> {
            windows.set(windows.get() + 1);
            Ok(net.forward_t(w, false)?)
        };
        sliding_window_inference(&big, &cfg, &mut predictor)?;
        let per_call = windows.get();
        let mut times = Vec::new();
        for _ in 0..reps {
            let t = Instant::now();
            let y = sliding_window_inference(&big, &cfg, &mut predictor)?;
            y.sum_all()?.to_scalar::<f32>()?;
            times.push(t.elapsed().as_secs_f64());
        }
        let m = median(times.clone());
        println!(
            "{{\"name\":\"cpu_sliding_window\",\"median_s\":{m:.4},\"windows\":{per_call},\"gflops\":{:.1},\"all_s\":{times:?},\"peak_rss_mib\":{:.0},\"threads\":{}}}",
            12.1 * per_call as f64 / m,
            peak_rss_mib(),
            rayon::current_num_threads()
        );
    }
    Ok(())
}
