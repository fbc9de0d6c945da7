//! CPU timing of the tutorial UNet: eval forward and one training step
//! (forward, Dice loss, backward, Adam) at input (1, 1, 128, 128, 64), and a
//! sliding-window pass over (1, 1, 256, 256, 160) in windows of 128×128×64
//! (overlap 0.25, Gaussian blending), each followed by the same case in
//! PyTorch + MONAI (`tools/bench/bench_torch_unet.py`); the forward case
//! also beside ONNX Runtime running the same network exported to ONNX
//! (`tools/bench/bench_onnxruntime.py`).
//!
//! ```text
//! cargo bench -p liverseg-model --bench unet
//! LIVERSEG_BENCH_REPS=11 LIVERSEG_BENCH_ONLY=forward,train cargo bench -p liverseg-model --bench unet
//! LIVERSEG_BENCH_PYTHON= cargo bench -p liverseg-model --bench unet   # liverseg alone
//! LIVERSEG_BENCH_BF16=conv cargo bench -p liverseg-model --bench unet   # bfloat16 convolutions
//! ```
//!
//! `LIVERSEG_BENCH_BF16=conv` runs the float32 network with bfloat16
//! convolutions beside PyTorch's oneDNN allowed the same, `net` the network
//! in `Precision::Bf16` beside PyTorch's CPU autocast (see
//! `common/harness.rs`, and `LIVERSEG_BENCH_TORCH_BF16` to pick the
//! PyTorch side's mode).
//!
//! Prints one JSON line per case: median and all repetition times after one
//! warm-up (`LIVERSEG_BENCH_REPS`, default 5), GFLOP/s against the forward's
//! 12.1 GFLOP (and 36.2 for a training step, MONAI's counts), and the
//! process peak RSS (one process for all cases, so a later case's peak
//! includes the earlier ones'). `LIVERSEG_BENCH_ONLY` picks cases among
//! `forward`, `train` and `sliding`. The inputs are random tensors.
//!
//! The PyTorch side runs with `LIVERSEG_BENCH_PYTHON` (default `python3`;
//! set it empty to skip it), each case in a fresh process with as many torch
//! threads as rayon has here, and a markdown table of ratios (PyTorch /
//! liverseg) is printed. A Python without torch or monai makes the script
//! say SKIPPED.

use candle_core::{DType, Device, ModuleT, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use liverseg_model::{
    BlendMode, DiceLossConfig, SlidingWindowConfig, UNet, UNetConfig, dice_loss,
    sliding_window_inference,
};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Instant;

#[path = "common/alloc.rs"]
mod alloc;
#[path = "common/harness.rs"]
mod harness;

use harness::{python, ratio_table, record, run_reference};

/// Exports the network to ONNX (`liverseg export-onnx`'s exporter) and
/// times ONNX Runtime's CPU forward on the same window beside liverseg's
/// record `ours`.
fn onnx_runtime_beside(
    python: &Path,
    varmap: &VarMap,
    ours: &Value,
    reps: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let tensors = varmap
        .data()
        .lock()
        .map_err(|_| "poisoned")?
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect();
    let file = liverseg_model::ModelFile {
        architecture: liverseg_model::Architecture::MonaiUnet(UNetConfig::default()),
        tensors,
        metadata: Default::default(),
    };
    let path = std::env::temp_dir().join(format!("liverseg-bench-{}.onnx", std::process::id()));
    std::fs::write(&path, liverseg_model::export_onnx(&file)?)?;
    let ort = run_reference(
        python,
        "bench_onnxruntime.py",
        &[
            path.to_str().unwrap_or_default(),
            "--shape",
            "1,1,128,128,64",
        ],
        reps,
        "ONNX Runtime",
    );
    let _ = std::fs::remove_file(&path);
    if let Some(t) = ort {
        let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        println!("ONNX Runtime: {t}");
        println!(
            "| forward, ONNX Runtime {} | {:.3} s ({:.3}) | {:.3} s ({:.3}) | **{:.2}x** | {:.0} MiB | {:.0} MiB |",
            t["versions"]["onnxruntime"].as_str().unwrap_or("?"),
            f(ours, "median_s"),
            f(ours, "min_s"),
            f(&t, "median_s"),
            f(&t, "min_s"),
            f(&t, "median_s") / f(ours, "median_s"),
            f(ours, "peak_rss_mib"),
            f(&t, "peak_rss_mib"),
        );
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    alloc::keep_freed_memory();
    let reps: usize = std::env::var("LIVERSEG_BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let only = std::env::var("LIVERSEG_BENCH_ONLY").unwrap_or_default();
    let (torch_bf16, bf16) = harness::bf16_modes();
    let compute = harness::compute(bf16);
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let net = UNet::new(
        &UNetConfig::default(),
        VarBuilder::from_varmap(&varmap, DType::F32, &dev),
    )?;
    let x = Tensor::randn(0f32, 1.0, (1, 1, 128, 128, 64), &dev)?;
    // (PyTorch case name, liverseg record)
    let mut ours: Vec<(&str, Value)> = Vec::new();
    if only.is_empty() || only.contains("forward") {
        let forward = |x: &Tensor| compute.run(x, |x| net.forward_t(x, false));
        forward(&x)?;
        let mut times = Vec::new();
        for _ in 0..reps {
            let t = Instant::now();
            let y = forward(&x)?;
            y.sum_all()?.to_scalar::<f32>()?;
            times.push(t.elapsed().as_secs_f64());
        }
        let r = record(
            "cpu_unet_eval_forward",
            &times,
            12.1,
            json!({ "bf16": bf16 }),
        );
        println!("{r}");
        if let Some(py) = python() {
            onnx_runtime_beside(&py, &varmap, &r, reps)?;
        }
        ours.push(("forward", r));
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
            let y = compute.run(&x, |x| net.forward_t(x, true))?;
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
        let r = record("cpu_unet_train_step", &times, 36.2, json!({ "bf16": bf16 }));
        println!("{r}");
        ours.push(("train", r));
    }
    if only.is_empty() || only.contains("sliding") {
        // As `bench_torch_unet.py sliding`: (1, 1, 256, 256, 160), roi
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
            Ok(compute.run(w, |w| net.forward_t(w, false))?)
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
        let r = record(
            "cpu_sliding_window",
            &times,
            12.1 * per_call as f64,
            json!({ "windows": per_call, "bf16": bf16 }),
        );
        println!("{r}");
        ours.push(("sliding", r));
    }
    let cases: Vec<&str> = ours.iter().map(|(c, _)| *c).collect();
    let torch = python().and_then(|py| {
        let only = cases.join(",");
        run_reference(
            &py,
            "bench_torch_unet.py",
            &["--only", &only, "--bf16", &torch_bf16],
            reps,
            "PyTorch",
        )
    });
    let Some(torch) = torch else {
        return Ok(());
    };
    println!("PyTorch: {torch}");
    let rows: Vec<(&str, &Value, &Value)> = ours
        .iter()
        .map(|(case, r)| (*case, r, &torch[*case]))
        .collect();
    ratio_table("benchmark", &rows);
    Ok(())
}
