//! Optimisers (Adam with AMSGrad, AdamW, SGD with Nesterov momentum),
//! learning-rate schedules, gradient clipping, and seeded initialisation.
//!
//! The update rules are PyTorch's (`torch.optim.Adam`, `AdamW`, `SGD` with
//! dampening 0), written on candle tensors. candle's own `SGD` has no
//! momentum and its `AdamW` has no AMSGrad and no L2-style decay, and
//! neither exposes its state for checkpoints, which resuming needs.

use std::collections::HashMap;

use candle_core::{Tensor, Var};
use candle_nn::VarMap;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::adam_cpu::AdamStep;
use crate::config::{OptimizerConfig, ScheduleConfig};
use crate::sgd_cpu::SgdStep;
use crate::{Error, Result};

/// Per-parameter optimiser state.
#[derive(Debug, Default, Clone)]
struct Slot {
    /// Adam first moment, or the SGD momentum buffer.
    m: Option<Tensor>,
    /// Adam second moment.
    v: Option<Tensor>,
    /// AMSGrad running maximum of `v`.
    vmax: Option<Tensor>,
}

/// An optimiser over named variables, in a fixed (name) order.
#[derive(Debug)]
pub struct Optimizer {
    cfg: OptimizerConfig,
    params: Vec<(String, Var)>,
    slots: Vec<Slot>,
    step: u64,
}

/// True for variables that are statistics, not trainable parameters.
pub fn is_buffer(name: &str) -> bool {
    name.ends_with("running_mean")
        || name.ends_with("running_var")
        || name.ends_with("num_batches_tracked")
}

/// The trainable variables of a `VarMap`, sorted by name.
pub fn trainable(varmap: &VarMap) -> Result<Vec<(String, Var)>> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| Error::Config("variable map poisoned".into()))?;
    let mut v: Vec<(String, Var)> = data
        .iter()
        .filter(|(k, _)| !is_buffer(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(v)
}

/// Re-initialises every convolution weight and bias from a ChaCha8 stream
/// seeded by `seed`, in name order, with PyTorch's default
/// `U(−1/√fan_in, 1/√fan_in)` (`fan_in = dims[1] · kernel volume`, for
/// convolutions and transposed convolutions alike). Other variables keep
/// their constant initialisation (norm weights 1, biases 0, PReLU 0.25).
/// candle's CPU generator cannot be seeded, so this is what makes a run
/// reproducible from its seed.
pub fn seeded_init(varmap: &VarMap, seed: u64) -> Result<()> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| Error::Config("variable map poisoned".into()))?;
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut bounds: HashMap<String, f64> = HashMap::new();
    for name in &names {
        let var = &data[*name];
        let dims = var.as_tensor().dims().to_vec();
        if name.ends_with(".weight") && dims.len() >= 3 {
            let fan_in: usize = dims[1] * dims[2..].iter().product::<usize>();
            let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
            bounds.insert(name.trim_end_matches(".weight").to_string(), bound);
        }
    }
    for name in names {
        let var = &data[name];
        let prefix = name.rsplit_once('.').map_or("", |(p, _)| p);
        let is_weight = name.ends_with(".weight") && var.as_tensor().dims().len() >= 3;
        let is_bias = name.ends_with(".bias") && bounds.contains_key(prefix);
        if !(is_weight || is_bias) {
            continue;
        }
        let bound = bounds[prefix];
        let n = var.as_tensor().elem_count();
        let values: Vec<f32> = (0..n)
            .map(|_| rng.random_range(-bound..bound) as f32)
            .collect();
        let t = Tensor::from_vec(values, var.as_tensor().dims(), var.as_tensor().device())?;
        var.set(&t)?;
    }
    Ok(())
}

impl Optimizer {
    /// An optimiser for `params` (use [`trainable`]).
    pub fn new(cfg: OptimizerConfig, params: Vec<(String, Var)>) -> Optimizer {
        let slots = vec![Slot::default(); params.len()];
        Optimizer {
            cfg,
            params,
            slots,
            step: 0,
        }
    }

    /// Optimiser steps taken.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// The parameters, in update order.
    pub fn params(&self) -> &[(String, Var)] {
        &self.params
    }

    /// One update with learning rate `lr`; `grads[i]` belongs to
    /// `params()[i]` (`None`: the parameter did not take part and is left
    /// alone, as PyTorch skips parameters whose `.grad` is `None`).
    pub fn step(&mut self, grads: &[Option<Tensor>], lr: f64) -> Result<()> {
        if grads.len() != self.params.len() {
            return Err(Error::Config(format!(
                "{} gradients for {} parameters",
                grads.len(),
                self.params.len()
            )));
        }
        self.step += 1;
        let t = self.step as i32;
        for ((_, var), (g, slot)) in self
            .params
            .iter()
            .zip(grads.iter().zip(self.slots.iter_mut()))
        {
            let Some(g) = g else { continue };
            let p = var.as_tensor();
            let new = match self.cfg {
                OptimizerConfig::Adam {
                    weight_decay,
                    betas,
                    eps,
                    amsgrad,
                    ..
                } => {
                    let g = if weight_decay != 0.0 {
                        (g + (p * weight_decay)?)?
                    } else {
                        g.clone()
                    };
                    adam_update(p, &g, slot, AdamStep::new(lr, betas, eps, amsgrad, t))?
                }
                OptimizerConfig::AdamW {
                    weight_decay,
                    betas,
                    eps,
                    ..
                } => {
                    let decayed = (p * (1.0 - lr * weight_decay))?;
                    adam_update(&decayed, g, slot, AdamStep::new(lr, betas, eps, false, t))?
                }
                OptimizerConfig::Sgd {
                    momentum,
                    nesterov,
                    weight_decay,
                    ..
                } => sgd_update(
                    p,
                    g,
                    slot,
                    SgdStep {
                        lr,
                        momentum,
                        nesterov,
                        weight_decay,
                    },
                )?,
            };
            var.set(&new)?;
        }
        Ok(())
    }

    /// The state as named tensors (`<param>.m`, `.v`, `.vmax`), for a
    /// checkpoint.
    pub fn state_tensors(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for ((name, _), slot) in self.params.iter().zip(&self.slots) {
            for (suffix, t) in [("m", &slot.m), ("v", &slot.v), ("vmax", &slot.vmax)] {
                if let Some(t) = t {
                    out.insert(format!("{name}.{suffix}"), t.clone());
                }
            }
        }
        out
    }

    /// Restores [`Optimizer::state_tensors`] and the step count.
    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>, steps: u64) -> Result<()> {
        for ((name, var), slot) in self.params.iter().zip(self.slots.iter_mut()) {
            let get = |suffix: &str| -> Result<Option<Tensor>> {
                match tensors.get(&format!("{name}.{suffix}")) {
                    None => Ok(None),
                    Some(t) if t.dims() == var.as_tensor().dims() => {
                        Ok(Some(t.to_device(var.as_tensor().device())?))
                    }
                    Some(t) => Err(Error::Config(format!(
                        "optimizer state {name}.{suffix} has shape {:?}, the parameter {:?}",
                        t.dims(),
                        var.as_tensor().dims()
                    ))),
                }
            };
            slot.m = get("m")?;
            slot.v = get("v")?;
            slot.vmax = get("vmax")?;
        }
        self.step = steps;
        Ok(())
    }
}

/// PyTorch's SGD step for one parameter (dampening 0): one pass on the
/// CPU where it applies, candle's ops elsewhere.
fn sgd_update(p: &Tensor, g: &Tensor, slot: &mut Slot, k: SgdStep) -> Result<Tensor> {
    if let Some((p, buf)) = crate::sgd_cpu::sgd_step(p, g, slot.m.as_ref(), k)? {
        if buf.is_some() {
            slot.m = buf;
        }
        return Ok(p);
    }
    sgd_update_composed(p, g, slot, k)
}

/// [`sgd_update`] with candle's element-wise ops (any device and type).
fn sgd_update_composed(p: &Tensor, g: &Tensor, slot: &mut Slot, k: SgdStep) -> Result<Tensor> {
    let SgdStep {
        lr,
        momentum,
        nesterov,
        weight_decay,
    } = k;
    let g = if weight_decay != 0.0 {
        (g + (p * weight_decay)?)?
    } else {
        g.clone()
    };
    let d = if momentum != 0.0 {
        let buf = match &slot.m {
            None => g.clone(),
            Some(b) => ((b * momentum)? + &g)?,
        };
        slot.m = Some(buf.detach());
        if nesterov {
            (&g + (buf * momentum)?)?
        } else {
            buf
        }
    } else {
        g
    };
    Ok((p - (d * lr)?)?)
}

/// PyTorch's Adam step for one parameter (without weight decay): one
/// pass on the CPU where it applies, candle's ops elsewhere.
fn adam_update(p: &Tensor, g: &Tensor, slot: &mut Slot, k: AdamStep) -> Result<Tensor> {
    let state = (slot.m.as_ref(), slot.v.as_ref(), slot.vmax.as_ref());
    if let Some((p, m, v, vmax)) = crate::adam_cpu::adam_step(p, g, state.0, state.1, state.2, k)? {
        slot.m = Some(m);
        slot.v = Some(v);
        if vmax.is_some() {
            slot.vmax = vmax;
        }
        return Ok(p);
    }
    adam_update_composed(p, g, slot, k)
}

/// [`adam_update`] with candle's element-wise ops (any device and type).
fn adam_update_composed(p: &Tensor, g: &Tensor, slot: &mut Slot, k: AdamStep) -> Result<Tensor> {
    let AdamStep {
        b1,
        b2,
        eps,
        bc1,
        bc2,
        lr,
        amsgrad,
    } = k;
    let m = match &slot.m {
        None => (g * (1.0 - b1))?,
        Some(m) => ((m * b1)? + (g * (1.0 - b1))?)?,
    };
    let g2 = g.sqr()?;
    let v = match &slot.v {
        None => (g2 * (1.0 - b2))?,
        Some(v) => ((v * b2)? + (g2 * (1.0 - b2))?)?,
    };
    let second = if amsgrad {
        let vmax = match &slot.vmax {
            None => v.clone(),
            Some(x) => x.maximum(&v)?,
        };
        slot.vmax = Some(vmax.detach());
        vmax
    } else {
        v.clone()
    };
    let denom = ((second.sqrt()? / bc2.sqrt())? + eps)?;
    let update = ((&m / denom)? * (lr / bc1))?;
    slot.m = Some(m.detach());
    slot.v = Some(v.detach());
    Ok((p - update)?.detach())
}

/// The learning rate of `epoch` (0-based) of `epochs`.
pub fn learning_rate(schedule: &ScheduleConfig, base: f64, epoch: usize, epochs: usize) -> f64 {
    let e = epoch as f64;
    let n = epochs.max(1) as f64;
    match *schedule {
        ScheduleConfig::Constant => base,
        ScheduleConfig::Poly { exponent } => base * (1.0 - e / n).max(0.0).powf(exponent),
        ScheduleConfig::Cosine {
            warmup_epochs,
            min_lr,
        } => {
            if epoch < warmup_epochs {
                base * (e + 1.0) / warmup_epochs as f64
            } else {
                let span = (epochs.saturating_sub(warmup_epochs)).max(1) as f64;
                let progress = ((e - warmup_epochs as f64) / span).min(1.0);
                min_lr + (base - min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        }
    }
}

/// Scales the gradients so their global L2 norm is at most `max_norm`
/// (`torch.nn.utils.clip_grad_norm_`, factor `max_norm / (norm + 1e-6)`).
/// Returns the norm before clipping.
pub fn clip_grad_norm(grads: &mut [Option<Tensor>], max_norm: f64) -> Result<f64> {
    let mut total = 0.0f64;
    for g in grads.iter().flatten() {
        total += f64::from(g.sqr()?.sum_all()?.to_scalar::<f32>()?);
    }
    let norm = total.sqrt();
    if max_norm > 0.0 && norm > max_norm {
        let factor = max_norm / (norm + 1e-6);
        for g in grads.iter_mut().flatten() {
            *g = (&*g * factor)?;
        }
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn var(values: &[f32]) -> Var {
        Var::from_tensor(&Tensor::new(values, &Device::Cpu).unwrap()).unwrap()
    }

    fn values(v: &Var) -> Vec<f32> {
        v.as_tensor().to_vec1::<f32>().unwrap()
    }

    /// Reference values from torch 2.15 (`torch.optim.*` on the same
    /// parameter and gradients, three steps).
    #[test]
    fn adam_amsgrad_adamw_and_nesterov_sgd_match_torch() {
        let grads = [[0.5f32, -1.0], [0.25, 2.0], [-0.75, 0.5]];
        let cases = [
            (
                OptimizerConfig::Adam {
                    lr: 0.1,
                    weight_decay: 0.01,
                    betas: (0.9, 0.999),
                    eps: 1e-8,
                    amsgrad: true,
                },
                [0.0f32; 2],
            ),
            (
                OptimizerConfig::AdamW {
                    lr: 0.1,
                    weight_decay: 0.01,
                    betas: (0.9, 0.999),
                    eps: 1e-8,
                },
                [0.0; 2],
            ),
            (
                OptimizerConfig::Sgd {
                    lr: 0.1,
                    momentum: 0.9,
                    nesterov: true,
                    weight_decay: 0.01,
                },
                [0.0; 2],
            ),
        ];
        let expected: [[f32; 2]; 3] = TORCH_REFERENCE;
        for ((cfg, _), want) in cases.iter().zip(expected) {
            let p = var(&[1.0, -2.0]);
            let mut opt = Optimizer::new(*cfg, vec![("p".into(), p.clone())]);
            for g in grads {
                opt.step(&[Some(Tensor::new(&g, &Device::Cpu).unwrap())], cfg.lr())
                    .unwrap();
            }
            let got = values(&p);
            for (a, b) in got.iter().zip(want) {
                assert!((a - b).abs() < 1e-6, "{cfg:?}: {got:?} vs {want:?}");
            }
        }
    }

    /// `python -c` with torch: p = [1, -2], grads as above, three steps.
    const TORCH_REFERENCE: [[f32; 2]; 3] = [
        [0.813_085_3, -1.975_809_6],
        [0.812_275_8, -1.972_344_8],
        [0.895_369_8, -2.277_336_8],
    ];

    /// The one-pass CPU update is candle's composed ops bit for bit, moments
    /// included, with and without AMSGrad, over blocks of the parameter.
    #[test]
    fn fused_adam_equals_the_composed_ops() {
        let n = 70_001;
        let wave = |k: f32| -> Vec<f32> {
            (0..n)
                .map(|i| {
                    let x = ((i as f32) * k).sin();
                    if i % 97 == 0 { 0.0 } else { x }
                })
                .collect()
        };
        let t = |v: Vec<f32>| Tensor::from_vec(v, n, &Device::Cpu).unwrap();
        for amsgrad in [false, true] {
            // The fused pass does take these tensors.
            let k = AdamStep::new(1e-3, (0.9, 0.999), 1e-8, amsgrad, 1);
            let p = t(wave(0.3));
            assert!(
                crate::adam_cpu::adam_step(&p, &p, None, None, None, k)
                    .unwrap()
                    .is_some()
            );
            let (mut fused, mut composed) = (Slot::default(), Slot::default());
            let (mut pf, mut pc) = (t(wave(0.3)), t(wave(0.3)));
            for step in 1..=3 {
                let g = t(wave(0.7 + step as f32));
                let k = AdamStep::new(1e-3, (0.9, 0.999), 1e-8, amsgrad, step);
                pf = adam_update(&pf, &g, &mut fused, k).unwrap();
                pc = adam_update_composed(&pc, &g, &mut composed, k).unwrap();
                let bits = |t: &Tensor| -> Vec<u32> {
                    t.to_vec1::<f32>()
                        .unwrap()
                        .iter()
                        .map(|v| v.to_bits())
                        .collect()
                };
                assert_eq!(bits(&pf), bits(&pc), "p, step {step}, amsgrad {amsgrad}");
                for (a, b) in [
                    (&fused.m, &composed.m),
                    (&fused.v, &composed.v),
                    (&fused.vmax, &composed.vmax),
                ] {
                    assert_eq!(a.is_some(), b.is_some());
                    if let (Some(a), Some(b)) = (a, b) {
                        assert_eq!(bits(a), bits(b), "state, step {step}");
                    }
                }
            }
        }
    }

    /// The one-pass CPU SGD update is candle's composed ops bit for bit,
    /// momentum buffer included, with and without momentum, Nesterov and
    /// weight decay, over blocks of the parameter.
    #[test]
    fn fused_sgd_equals_the_composed_ops() {
        let n = 70_001;
        let wave = |k: f32| -> Vec<f32> {
            (0..n)
                .map(|i| {
                    let x = ((i as f32) * k).sin();
                    if i % 97 == 0 { 0.0 } else { x }
                })
                .collect()
        };
        let t = |v: Vec<f32>| Tensor::from_vec(v, n, &Device::Cpu).unwrap();
        let bits = |t: &Tensor| -> Vec<u32> {
            t.to_vec1::<f32>()
                .unwrap()
                .iter()
                .map(|v| v.to_bits())
                .collect()
        };
        for (momentum, nesterov, weight_decay) in
            [(0.99, true, 3e-5), (0.9, false, 0.0), (0.0, false, 1e-4)]
        {
            let k = SgdStep {
                lr: 0.01,
                momentum,
                nesterov,
                weight_decay,
            };
            let p = t(wave(0.3));
            // The fused pass does take these tensors.
            assert!(crate::sgd_cpu::sgd_step(&p, &p, None, k).unwrap().is_some());
            let (mut fused, mut composed) = (Slot::default(), Slot::default());
            let (mut pf, mut pc) = (p.clone(), p);
            for step in 1..=3 {
                let g = t(wave(0.7 + step as f32));
                pf = sgd_update(&pf, &g, &mut fused, k).unwrap();
                pc = sgd_update_composed(&pc, &g, &mut composed, k).unwrap();
                assert_eq!(bits(&pf), bits(&pc), "p, step {step}, {k:?}");
                assert_eq!(fused.m.is_some(), composed.m.is_some());
                if let (Some(a), Some(b)) = (&fused.m, &composed.m) {
                    assert_eq!(bits(a), bits(b), "momentum, step {step}, {k:?}");
                }
            }
            assert_ne!(bits(&pf), bits(&t(wave(0.3))), "the parameter moved");
        }
    }

    #[test]
    fn state_round_trips() {
        let p = var(&[1.0, 2.0]);
        let cfg = OptimizerConfig::Adam {
            lr: 0.01,
            weight_decay: 0.0,
            betas: (0.9, 0.999),
            eps: 1e-8,
            amsgrad: true,
        };
        let mut a = Optimizer::new(cfg, vec![("p".into(), p.clone())]);
        let g = Tensor::new(&[0.3f32, -0.1], &Device::Cpu).unwrap();
        a.step(&[Some(g.clone())], 0.01).unwrap();
        let q = var(&values(&p));
        let mut b = Optimizer::new(cfg, vec![("p".into(), q.clone())]);
        b.load_state(&a.state_tensors(), a.steps()).unwrap();
        a.step(&[Some(g.clone())], 0.01).unwrap();
        b.step(&[Some(g)], 0.01).unwrap();
        assert_eq!(values(&p), values(&q));
    }

    #[test]
    fn schedules_and_clipping() {
        let poly = ScheduleConfig::Poly { exponent: 0.9 };
        assert_eq!(learning_rate(&poly, 0.01, 0, 100), 0.01);
        assert!((learning_rate(&poly, 0.01, 50, 100) - 0.01 * 0.5f64.powf(0.9)).abs() < 1e-12);
        let cos = ScheduleConfig::Cosine {
            warmup_epochs: 2,
            min_lr: 0.0,
        };
        assert_eq!(learning_rate(&cos, 1.0, 0, 10), 0.5);
        assert_eq!(learning_rate(&cos, 1.0, 2, 10), 1.0);
        assert!(learning_rate(&cos, 1.0, 9, 10) < 0.05);
        let mut g = vec![
            Some(Tensor::new(&[3.0f32, 4.0], &Device::Cpu).unwrap()),
            None,
        ];
        let norm = clip_grad_norm(&mut g, 1.0).unwrap();
        assert_eq!(norm, 5.0);
        let clipped = g[0].as_ref().unwrap().to_vec1::<f32>().unwrap();
        assert!((clipped[0] - 0.6).abs() < 1e-5 && (clipped[1] - 0.8).abs() < 1e-5);
    }
}
