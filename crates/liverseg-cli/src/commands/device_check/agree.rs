//! Agreement of a device with the CPU kernels: every layer's output and
//! gradients, and the two networks' logits and training gradients.
//!
//! Each check builds the same parameters and input on the CPU and on the
//! device, runs the same computation (output, then the gradients of
//! `sum(output · g)` for a fixed `g`), and reports the largest difference
//! relative to the CPU result's largest magnitude.

use anyhow::Result;
use candle_core::{DType, Device, Module, ModuleT, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use liverseg_model::{
    BatchNorm3d, Conv3d, ConvGeom, ConvTranspose3d, ConvTranspose3dConfig, DiceLossConfig,
    InstanceNorm3d, PReLU, PlainUNet, PlainUNetConfig, Precision, UNet, UNetConfig, dice_loss,
};
use serde::Serialize;

/// One comparison with the CPU.
#[derive(Debug, Serialize)]
pub struct Agreement {
    /// What was compared, e.g. `conv3d k3 s2: grad weight`.
    pub check: String,
    /// The device side's precision (the CPU side is always float32).
    pub precision: Precision,
    /// How `relative` is measured: `max` (largest difference over the CPU
    /// result's largest magnitude) or `l2` (norm of the difference over the
    /// CPU result's norm, for whole gradient vectors).
    pub metric: &'static str,
    /// Largest absolute difference.
    pub max_abs: f64,
    /// The difference relative to the CPU result's scale (see `metric`).
    pub relative: f64,
    /// The bound `relative` must stay within.
    pub tolerance: f64,
    /// `relative <= tolerance`.
    pub passed: bool,
}

/// The bound a precision is held to, relative to the result's scale: 1e-4
/// for float32 (the goal); for bfloat16, 3e-2 of the largest
/// value (8 significant bits through a few layers; `tests/precision.rs`
/// measures 8e-3 on a UNet's logits) and 1e-1 of the norm of a network's
/// whole gradient: each layer's backward pass rounds its input gradient to
/// bfloat16, as under PyTorch's autocast, and batch norm over few voxels
/// amplifies that (the CPU's emulation, over initial-weight seeds 0 to 5,
/// measures 1.7–3.0e-2 on the small plain U-Net of `--quick` and 2.2–7.8e-2
/// on its small tutorial UNet).
pub fn tolerance(precision: Precision, metric: &str) -> f64 {
    match (precision, metric) {
        (Precision::F32, _) => 1e-4,
        (Precision::Bf16, "l2") => 1e-1,
        (Precision::Bf16, _) => 3e-2,
    }
}

fn compare(check: String, precision: Precision, cpu: &Tensor, dev: &Tensor) -> Result<Agreement> {
    measure(check, precision, cpu, dev, "max")
}

fn measure(
    check: String,
    precision: Precision,
    cpu: &Tensor,
    dev: &Tensor,
    metric: &'static str,
) -> Result<Agreement> {
    let cpu = cpu.to_dtype(DType::F64)?;
    let dev = dev.to_device(&Device::Cpu)?.to_dtype(DType::F64)?;
    anyhow::ensure!(
        cpu.dims() == dev.dims(),
        "{check}: shapes differ ({:?} on the CPU, {:?} on the device)",
        cpu.dims(),
        dev.dims()
    );
    let diff = (&cpu - &dev)?.flatten_all()?;
    let max_abs = diff.abs()?.max(0)?.to_scalar::<f64>()?;
    let (gap, scale) = if metric == "l2" {
        let norm =
            |t: &Tensor| -> Result<f64> { Ok(t.sqr()?.sum_all()?.to_scalar::<f64>()?.sqrt()) };
        (norm(&diff)?, norm(&cpu)?)
    } else {
        (
            max_abs,
            cpu.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>()?,
        )
    };
    let relative = if scale > 0.0 { gap / scale } else { gap };
    let tolerance = tolerance(precision, metric);
    Ok(Agreement {
        check,
        precision,
        metric,
        max_abs,
        relative,
        tolerance,
        passed: relative <= tolerance && relative.is_finite(),
    })
}

/// A deterministic tensor of `shape`: a smooth pattern in about `[-1, 1]`
/// times `scale`, different per `key`.
fn pattern(shape: &[usize], key: f64, scale: f64) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|i| (scale * ((0.37 * i as f64 + key).sin() + 0.3 * (0.011 * i as f64).cos())) as f32)
        .collect();
    Ok(Tensor::from_vec(v, shape, &Device::Cpu)?)
}

/// A layer under test, built over given parameter tensors.
type Build = dyn Fn(&[Tensor]) -> Result<Box<dyn ModuleT>>;

struct LayerCase {
    name: &'static str,
    /// Input `(N, C, D, H, W)`.
    input: [usize; 5],
    /// Parameter shapes, in the order `build` takes them.
    params: Vec<Vec<usize>>,
    build: Box<Build>,
    train: bool,
}

struct Wrap<M: Module>(M);

impl<M: Module> ModuleT for Wrap<M> {
    fn forward_t(&self, x: &Tensor, _train: bool) -> candle_core::Result<Tensor> {
        self.0.forward(x)
    }
}

fn conv_case(
    name: &'static str,
    c: [usize; 2],
    geom: ConvGeom,
    input: [usize; 3],
    batch: usize,
) -> LayerCase {
    let k = geom.kernel;
    LayerCase {
        name,
        input: [batch, c[0], input[0], input[1], input[2]],
        params: vec![vec![c[1], c[0], k[0], k[1], k[2]], vec![c[1]]],
        build: Box::new(move |p| {
            let conv = Conv3d::from_tensors(p[0].clone(), Some(p[1].clone()), geom)?;
            Ok(Box::new(Wrap(conv)) as Box<dyn ModuleT>)
        }),
        train: false,
    }
}

fn transposed_case(
    name: &'static str,
    c: [usize; 2],
    cfg: ConvTranspose3dConfig,
    input: [usize; 3],
) -> LayerCase {
    let k = cfg.geom.kernel;
    LayerCase {
        name,
        input: [2, c[0], input[0], input[1], input[2]],
        params: vec![vec![c[0], c[1], k[0], k[1], k[2]], vec![c[1]]],
        build: Box::new(move |p| {
            let conv = ConvTranspose3d::from_tensors(p[0].clone(), Some(p[1].clone()), cfg)?;
            Ok(Box::new(Wrap(conv)) as Box<dyn ModuleT>)
        }),
        train: false,
    }
}

/// Parameters named as the layers' `VarBuilder` asks for them.
fn named(names: &[&str], p: &[Tensor]) -> std::collections::HashMap<String, Tensor> {
    names
        .iter()
        .zip(p)
        .map(|(n, t)| (n.to_string(), t.clone()))
        .collect()
}

fn layer_cases(quick: bool) -> Vec<LayerCase> {
    let s = if quick { 8 } else { 32 };
    let c = if quick { 4 } else { 16 };
    let cubic = |k, st, p| ConvGeom::cubic(k, st, p, 1);
    let mut cases = vec![
        conv_case("conv3d k3 s1", [c, c], cubic(3, 1, 1), [s; 3], 2),
        conv_case("conv3d k3 s2", [c, 2 * c], cubic(3, 2, 1), [s; 3], 2),
        conv_case(
            "conv3d k1x3x3",
            [c, c],
            ConvGeom {
                kernel: [1, 3, 3],
                stride: [1, 1, 1],
                padding: [0, 1, 1],
                dilation: [1, 1, 1],
            },
            [s / 2, s, s],
            2,
        ),
        conv_case("conv3d k1 (head)", [c, 2], cubic(1, 1, 0), [s; 3], 2),
        transposed_case(
            "conv_transpose3d k3 s2 op1 (MONAI)",
            [2 * c, c],
            ConvTranspose3dConfig {
                geom: cubic(3, 2, 1),
                output_padding: [1; 3],
                bias: true,
            },
            [s / 2; 3],
        ),
        transposed_case(
            "conv_transpose3d k2 s2 (nnU-Net)",
            [2 * c, c],
            ConvTranspose3dConfig {
                geom: cubic(2, 2, 0),
                output_padding: [0; 3],
                bias: true,
            },
            [s / 2; 3],
        ),
    ];
    cases.push(LayerCase {
        name: "batch_norm3d (train)",
        input: [2, c, s, s, s],
        params: vec![vec![c], vec![c]],
        build: Box::new(move |p| {
            let mut t = named(&["weight", "bias"], p);
            let dev = p[0].device();
            t.insert("running_mean".into(), Tensor::zeros(c, DType::F32, dev)?);
            t.insert("running_var".into(), Tensor::ones(c, DType::F32, dev)?);
            let vb = VarBuilder::from_tensors(t, DType::F32, dev);
            Ok(Box::new(BatchNorm3d::new(c, vb)?) as Box<dyn ModuleT>)
        }),
        train: true,
    });
    cases.push(LayerCase {
        name: "instance_norm3d (affine)",
        input: [2, c, s, s, s],
        params: vec![vec![c], vec![c]],
        build: Box::new(move |p| {
            let vb =
                VarBuilder::from_tensors(named(&["weight", "bias"], p), DType::F32, p[0].device());
            Ok(Box::new(InstanceNorm3d::new(c, true, vb)?) as Box<dyn ModuleT>)
        }),
        train: true,
    });
    cases.push(LayerCase {
        name: "prelu",
        input: [2, c, s, s, s],
        params: vec![vec![1]],
        build: Box::new(move |p| {
            let vb = VarBuilder::from_tensors(named(&["weight"], p), DType::F32, p[0].device());
            Ok(Box::new(PReLU::new(1, vb)?) as Box<dyn ModuleT>)
        }),
        train: true,
    });
    cases
}

/// Output and gradients (input first, then each parameter) of one case on
/// one device.
fn run_case(
    case: &LayerCase,
    device: &Device,
    precision: Precision,
) -> Result<(Tensor, Vec<Tensor>)> {
    let x = Var::from_tensor(&pattern(&case.input, 0.5, 1.0)?.to_device(device)?)?;
    let params = case
        .params
        .iter()
        .enumerate()
        .map(|(i, shape)| {
            let fan: usize = shape.iter().skip(1).product::<usize>().max(1);
            let t = pattern(shape, 1.0 + i as f64, 1.0 / (fan as f64).sqrt())?;
            // Norm scales and PReLU slopes near their usual values.
            let t = if shape.len() == 1 && i == 0 && case.train {
                ((t * 0.1)? + 1.0)?
            } else {
                t
            };
            Ok(Var::from_tensor(&t.to_device(device)?)?)
        })
        .collect::<Result<Vec<_>>>()?;
    let tensors: Vec<Tensor> = params.iter().map(|v| v.as_tensor().clone()).collect();
    let layer = (case.build)(&tensors)?;
    let y = precision.run(x.as_tensor(), |x| layer.forward_t(x, case.train))?;
    let g = pattern(y.dims(), 2.0, 1.0)?.to_device(device)?;
    let grads = (&y * &g)?.sum_all()?.backward()?;
    let mut out = vec![
        grads
            .get(x.as_tensor())
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("{}: no gradient for the input", case.name))?,
    ];
    for (i, p) in params.iter().enumerate() {
        out.push(
            grads
                .get(p.as_tensor())
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("{}: no gradient for parameter {i}", case.name))?,
        );
    }
    Ok((y, out))
}

/// Every layer's output and gradients on `device` in `precision` against
/// the CPU kernels in float32.
pub fn layers(device: &Device, precision: Precision, quick: bool) -> Result<Vec<Agreement>> {
    let mut out = Vec::new();
    for case in layer_cases(quick) {
        let (y_cpu, g_cpu) = cpu_reference(|| run_case(&case, &Device::Cpu, Precision::F32))?;
        let (y_dev, g_dev) = run_case(&case, device, precision)?;
        out.push(compare(
            format!("{}: output", case.name),
            precision,
            &y_cpu,
            &y_dev,
        )?);
        for (i, (a, b)) in g_cpu.iter().zip(&g_dev).enumerate() {
            let what = if i == 0 {
                "grad input".to_string()
            } else {
                format!("grad param {i}")
            };
            out.push(compare(format!("{}: {what}", case.name), precision, a, b)?);
        }
    }
    Ok(out)
}

/// Runs `f` on the CPU kernels, even while the CPU plays the device (see
/// [`liverseg_model::set_composed_convolutions_on_cpu`]).
pub(super) fn cpu_reference<R>(f: impl FnOnce() -> Result<R>) -> Result<R> {
    let composed = super::COMPOSED.load(std::sync::atomic::Ordering::Relaxed);
    liverseg_model::set_composed_convolutions_on_cpu(false);
    let r = f();
    liverseg_model::set_composed_convolutions_on_cpu(composed);
    r
}

/// The seed of the networks' initial weights (`LIVERSEG_CHECK_SEED`, else
/// 0), so a failure can be reproduced and other draws tried.
fn seed() -> u64 {
    std::env::var("LIVERSEG_CHECK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The networks the checks and timings use: the tutorial UNet and a plain
/// U-Net, smaller when `quick`.
pub fn unet_config(quick: bool) -> UNetConfig {
    if quick {
        UNetConfig {
            channels: vec![4, 8, 16],
            strides: vec![2, 2],
            ..UNetConfig::default()
        }
    } else {
        UNetConfig::default()
    }
}

/// nnU-Net's 3d_fullres network for a 128³ patch (6 stages, 32 to 320
/// features), without deep supervision; smaller when `quick`.
pub fn plain_config(quick: bool) -> PlainUNetConfig {
    PlainUNetConfig {
        deep_supervision: false,
        ..if quick {
            PlainUNetConfig {
                features: vec![4, 8, 16],
                strides: vec![1, 2, 2],
                ..PlainUNetConfig::default()
            }
        } else {
            PlainUNetConfig::default()
        }
    }
}

/// The parameter counts of the two networks (`quick` or not), as the
/// PyTorch side counts them (running statistics excluded).
pub fn parameter_counts(quick: bool) -> Result<[usize; 2]> {
    let count = |varmap: &VarMap| -> Result<usize> {
        Ok(liverseg_train::optim::trainable(varmap)?
            .iter()
            .map(|(_, v)| v.elem_count())
            .sum())
    };
    let (u, p) = (VarMap::new(), VarMap::new());
    UNet::new(
        &unet_config(quick),
        VarBuilder::from_varmap(&u, DType::F32, &Device::Cpu),
    )?;
    PlainUNet::new(
        &plain_config(quick),
        VarBuilder::from_varmap(&p, DType::F32, &Device::Cpu),
    )?;
    Ok([count(&u)?, count(&p)?])
}

/// A network over the parameters of `varmap`, as fresh variables on
/// `device` (so the same weights run on both sides).
pub fn network_on(
    varmap: &VarMap,
    device: &Device,
    unet: Option<&UNetConfig>,
    plain: Option<&PlainUNetConfig>,
) -> Result<(Box<dyn ModuleT>, VarMap)> {
    let copy = VarMap::new();
    {
        let src = varmap
            .data()
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?;
        let mut dst = copy
            .data()
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?;
        for (name, var) in src.iter() {
            dst.insert(
                name.clone(),
                Var::from_tensor(&var.as_tensor().to_device(device)?)?,
            );
        }
    }
    let vb = VarBuilder::from_varmap(&copy, DType::F32, device);
    let net: Box<dyn ModuleT> = match (unet, plain) {
        (Some(c), _) => Box::new(UNet::new(c, vb)?),
        (None, Some(c)) => Box::new(PlainUNet::new(c, vb)?),
        (None, None) => anyhow::bail!("network_on: no network"),
    };
    Ok((net, copy))
}

/// What one training step gives: logits, loss, and every parameter's
/// gradient by name (in name order).
struct Step {
    logits: Tensor,
    loss: Tensor,
    grads: Vec<(String, Tensor)>,
}

/// One training step's logits, loss and gradients.
fn step(
    net: &dyn ModuleT,
    vars: &VarMap,
    x: &Tensor,
    target: &Tensor,
    precision: Precision,
) -> Result<Step> {
    let logits = precision.run(x, |x| net.forward_t(x, true))?;
    let loss = dice_loss(&logits, target, &DiceLossConfig::default())?;
    let grads = loss.backward()?;
    let data = vars
        .data()
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?;
    let mut named: Vec<(String, Tensor)> = data
        .iter()
        .filter_map(|(n, v)| grads.get(v.as_tensor()).map(|g| (n.clone(), g.clone())))
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Step {
        logits,
        loss,
        grads: named,
    })
}

/// The two networks' evaluation logits and training-step gradients on
/// `device` in `precision` against the CPU in float32. The gradients are
/// compared as one vector (the worst parameter is named).
pub fn networks(device: &Device, precision: Precision, quick: bool) -> Result<Vec<Agreement>> {
    let s = if quick { [16, 16, 16] } else { [64, 64, 32] };
    let x = pattern(&[1, 1, s[0], s[1], s[2]], 0.25, 1.0)?;
    let target = x.ge(0.2)?.to_dtype(DType::F32)?;
    let mut out = Vec::new();
    let (u, p) = (unet_config(quick), plain_config(quick));
    for (name, unet, plain) in [
        ("tutorial UNet", Some(&u), None),
        ("plain U-Net", None, Some(&p)),
    ] {
        let init = VarMap::new();
        let vb = VarBuilder::from_varmap(&init, DType::F32, &Device::Cpu);
        match (unet, plain) {
            (Some(c), _) => drop(UNet::new(c, vb)?),
            (_, Some(c)) => drop(PlainUNet::new(c, vb)?),
            _ => {}
        }
        // The same weights on every run, so the bounds hold run to run.
        liverseg_train::optim::seeded_init(&init, seed())?;
        let (cpu_net, cpu_vars) = network_on(&init, &Device::Cpu, unet, plain)?;
        let (dev_net, dev_vars) = network_on(&init, device, unet, plain)?;
        let (xd, td) = (x.to_device(device)?, target.to_device(device)?);
        let eval_cpu = cpu_reference(|| Ok(cpu_net.forward_t(&x, false)?))?;
        let eval_dev = precision.run(&xd, |x| dev_net.forward_t(x, false))?;
        out.push(compare(
            format!("{name}: eval logits"),
            precision,
            &eval_cpu,
            &eval_dev,
        )?);
        let cpu = cpu_reference(|| step(cpu_net.as_ref(), &cpu_vars, &x, &target, Precision::F32))?;
        let dev = step(dev_net.as_ref(), &dev_vars, &xd, &td, precision)?;
        let (l_cpu, loss_cpu, g_cpu) = (cpu.logits, cpu.loss, cpu.grads);
        let (l_dev, loss_dev, g_dev) = (dev.logits, dev.loss, dev.grads);
        out.push(compare(
            format!("{name}: train logits"),
            precision,
            &l_cpu,
            &l_dev,
        )?);
        out.push(compare(
            format!("{name}: loss"),
            precision,
            &loss_cpu,
            &loss_dev,
        )?);
        anyhow::ensure!(g_cpu.len() == g_dev.len(), "{name}: gradient counts differ");
        let flat = |g: &[(String, Tensor)]| -> Result<Tensor> {
            let parts = g
                .iter()
                .map(|(_, t)| Ok(t.to_device(&Device::Cpu)?.flatten_all()?))
                .collect::<Result<Vec<_>>>()?;
            Ok(Tensor::cat(&parts, 0)?)
        };
        let mut all = measure(
            format!("{name}: train gradients ({} tensors)", g_cpu.len()),
            precision,
            &flat(&g_cpu)?,
            &flat(&g_dev)?,
            "l2",
        )?;
        // The tensor holding the largest difference (biases before a
        // normalisation have gradients near zero, so each tensor's own
        // scale would mislead; the bound is on the whole vector's).
        let worst = g_cpu
            .iter()
            .zip(&g_dev)
            .map(|((n, a), (_, b))| Ok((n, compare(n.clone(), precision, a, b)?.max_abs)))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((n, _)) = worst {
            all.check.push_str(&format!("; largest difference in {n}"));
        }
        out.push(all);
    }
    Ok(out)
}
