//! Per-layer CPU timing of the tutorial UNet's convolutions and
//! normalisation blocks at their real shapes (input 128×128×64), and of the
//! top stages of nnU-Net's plain U-Net at a 128³ patch, forward, backward
//! (input and weight gradients) and the weight gradient alone, with
//! achieved GFLOP/s. `cargo bench -p liverseg-model --bench
//! layers`; `LIVERSEG_BENCH_REPS` (default 5), `LIVERSEG_BENCH_ONLY` (a
//! substring of the layer names to run, such as `T 32→2`),
//! `LIVERSEG_BENCH_BF16=conv` (the convolutions in bfloat16).

use candle_core::{DType, Device, Module, ModuleT, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use liverseg_model::{
    BatchNorm3d, Compute, Conv3d, Conv3dConfig, ConvGeom, ConvTranspose3d, ConvTranspose3dConfig,
    PReLU, Precision,
};
use std::time::Instant;

#[path = "common/alloc.rs"]
mod alloc;

fn time<F: FnMut() -> candle_core::Result<()>>(reps: usize, mut f: F) -> candle_core::Result<f64> {
    f()?;
    let mut v = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        f()?;
        v.push(t.elapsed().as_secs_f64());
    }
    v.sort_by(f64::total_cmp);
    Ok(v[v.len() / 2])
}

/// `(cin, cout, input extent, stride, kernel, transposed)`.
type Case = (usize, usize, [usize; 3], usize, usize, bool);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    alloc::keep_freed_memory();
    let reps: usize = std::env::var("LIVERSEG_BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let dev = Device::Cpu;
    // `LIVERSEG_BENCH_BF16=conv`: the convolutions round their operands to
    // bfloat16 (on AMX tiles or with AVX-512 BF16 dot products where the
    // CPU has them).
    let compute = if std::env::var("LIVERSEG_BENCH_BF16").is_ok_and(|v| v == "conv") {
        Precision::Bf16.on(&dev)
    } else {
        Compute::from(Precision::F32)
    };
    compute.within(|| layers(reps, &dev))
}

/// Times every case's forward pass, input gradient and weight gradient.
fn layers(reps: usize, dev: &Device) -> Result<(), Box<dyn std::error::Error>> {
    let cases: &[Case] = &[
        (1, 16, [128, 128, 64], 2, 3, false),
        (16, 16, [64, 64, 32], 1, 3, false),
        (16, 32, [64, 64, 32], 2, 3, false),
        (32, 32, [32, 32, 16], 1, 3, false),
        (32, 64, [32, 32, 16], 2, 3, false),
        (64, 64, [16, 16, 8], 1, 3, false),
        (128, 256, [8, 8, 4], 1, 3, false),
        (256, 256, [8, 8, 4], 1, 3, false),
        (384, 64, [8, 8, 4], 2, 3, true),
        (64, 16, [32, 32, 16], 2, 3, true),
        (32, 2, [64, 64, 32], 2, 3, true),
        (2, 2, [128, 128, 64], 1, 3, false),
        // The plain U-Net's top stages at a 128³ patch.
        (1, 32, [128, 128, 128], 1, 3, false),
        (32, 32, [128, 128, 128], 1, 3, false),
        (32, 64, [128, 128, 128], 2, 3, false),
        (64, 64, [64, 64, 64], 1, 3, false),
        (64, 128, [64, 64, 64], 2, 3, false),
        (128, 128, [32, 32, 32], 1, 3, false),
        (128, 64, [32, 32, 32], 2, 2, true),
        (128, 64, [64, 64, 64], 1, 3, false),
        (64, 32, [64, 64, 64], 2, 2, true),
        (64, 32, [128, 128, 128], 1, 3, false),
        (32, 2, [128, 128, 128], 1, 1, false),
        // Its deeper stages, on grids of 16³ and smaller.
        (128, 256, [32, 32, 32], 2, 3, false),
        (256, 256, [16, 16, 16], 1, 3, false),
        (256, 320, [16, 16, 16], 2, 3, false),
        (320, 320, [8, 8, 8], 1, 3, false),
        (320, 320, [8, 8, 8], 2, 3, false),
        (320, 320, [4, 4, 4], 1, 3, false),
        (320, 320, [4, 4, 4], 2, 2, true),
        (320, 256, [8, 8, 8], 2, 2, true),
        (256, 128, [16, 16, 16], 2, 2, true),
        (512, 256, [16, 16, 16], 1, 3, false),
    ];
    println!(
        "| layer | forward s | GFLOP/s | backward s | GFLOP/s | weight gradient s | GFLOP/s |"
    );
    let only = std::env::var("LIVERSEG_BENCH_ONLY").unwrap_or_default();
    for &(cin, cout, ext, stride, k, transposed) in cases {
        let name = format!(
            "{}{cin}→{cout} s{stride}{}",
            if transposed { "T " } else { "" },
            if k == 3 {
                String::new()
            } else {
                format!(" k{k}")
            }
        );
        if !name.contains(only.as_str()) {
            continue;
        }
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, dev);
        let geom = ConvGeom::cubic(k, stride, (k - 1) / 2, 1);
        let x = Var::from_tensor(&Tensor::randn(
            0f32,
            1.0,
            (1, cin, ext[0], ext[1], ext[2]),
            dev,
        )?)?;
        let layer: Box<dyn Module> = if transposed {
            Box::new(ConvTranspose3d::new(
                cin,
                cout,
                ConvTranspose3dConfig {
                    geom,
                    // The output is `stride` times the input.
                    output_padding: [stride + 2 * ((k - 1) / 2) - k; 3],
                    bias: true,
                },
                vb,
            )?)
        } else {
            Box::new(Conv3d::new(
                cin,
                cout,
                Conv3dConfig { geom, bias: true },
                vb,
            )?)
        };
        let y = layer.forward(x.as_tensor())?;
        let small: usize = if transposed {
            ext.iter().product()
        } else {
            y.dims()[2..].iter().product()
        };
        let flops = 2.0 * (small * cin * cout * k * k * k) as f64 / 1e9;
        let tf = time(reps, || layer.forward(x.as_tensor()).map(|_| ()))?;
        let tb = time(reps, || {
            let y = layer.forward(x.as_tensor())?;
            y.sum_all()?.backward().map(|_| ())
        })? - tf;
        // The input untracked: the weight (and bias) gradient alone, as
        // for a network's first layer.
        let plain = x.as_tensor().detach();
        let tw = time(reps, || {
            let y = layer.forward(&plain)?;
            y.sum_all()?.backward().map(|_| ())
        })? - tf;
        println!(
            "| {name} @{ext:?} | {tf:.4} | {:.0} | {tb:.4} | {:.0} | {tw:.4} | {:.0} |",
            flops / tf,
            2.0 * flops / tb,
            flops / tw
        );
    }
    for &(c, ext) in &[
        (16usize, [64usize, 64, 32]),
        (2, [128, 128, 64]),
        (32, [32, 32, 16]),
    ] {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, dev);
        let bn = BatchNorm3d::new(c, vb.pp("bn"))?;
        let act = PReLU::new(1, vb.pp("a"))?;
        let x = Var::from_tensor(&Tensor::randn(
            0f32,
            1.0,
            (1, c, ext[0], ext[1], ext[2]),
            dev,
        )?)?;
        let te = time(reps, || {
            act.forward_t(&bn.forward_t(x.as_tensor(), false)?, false)
                .map(|_| ())
        })?;
        let tt = time(reps, || {
            act.forward_t(&bn.forward_t(x.as_tensor(), true)?, true)
                .map(|_| ())
        })?;
        let tb = time(reps, || {
            let y = act.forward_t(&bn.forward_t(x.as_tensor(), true)?, true)?;
            y.sum_all()?.backward().map(|_| ())
        })? - tt;
        println!("| BN+PReLU {c} @{ext:?} | eval {te:.4} | train {tt:.4} | backward {tb:.4} | |");
    }
    Ok(())
}
