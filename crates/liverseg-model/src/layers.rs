//! Normalisation, activation and dropout layers for 5-D `(N, C, D, H, W)`
//! tensors, with PyTorch's parameter names and defaults.

use crate::fused::{GroupStats, LeakyReluOp, NormOp, PReluOp};
use crate::onnx::{Attr, Emit, Graph};
use crate::{Error, Result};
use candle_core::{D, DType, ModuleT, Tensor, Var};
use candle_nn::VarBuilder;

/// Normalises `x` with statistics computed from it, through the fused CPU
/// kernels: per channel over the batch (`per_sample == false`) or per
/// `(sample, channel)`. Returns the output and the per-group mean and
/// biased variance.
fn normalise_with_own_stats(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    per_sample: bool,
    eps: f64,
) -> candle_core::Result<(Tensor, Vec<f32>, Vec<f32>)> {
    let x = x.contiguous()?;
    let stats = x
        .apply_op1_no_bwd(&GroupStats { per_sample })?
        .to_vec2::<f32>()?;
    let (mean, var) = (stats[0].clone(), stats[1].clone());
    let invstd = var
        .iter()
        .map(|&v| (1.0 / (f64::from(v) + eps).sqrt()) as f32)
        .collect();
    let y = x.apply_op3(
        &gamma.contiguous()?,
        &beta.contiguous()?,
        NormOp {
            per_sample,
            batch_stats: true,
            mean: mean.clone(),
            invstd,
        },
    )?;
    Ok((y, mean, var))
}

/// Runs a normalisation in float32 when `x` is in another type (bfloat16
/// activations): statistics and reductions stay in float32, the result
/// returns in `x`'s type, and the gradient flows back through both casts.
fn in_f32(
    x: &Tensor,
    f: impl FnOnce(&Tensor) -> candle_core::Result<Tensor>,
) -> candle_core::Result<Tensor> {
    if x.dtype() == candle_core::DType::F32 {
        return f(x);
    }
    f(&x.to_dtype(candle_core::DType::F32)?)?.to_dtype(x.dtype())
}

/// Batch normalisation over `(N, D, H, W)` per channel (PyTorch's
/// `BatchNorm3d`: eps 1e-5, momentum 0.1, affine, running statistics).
/// Parameters: `weight`, `bias`, `running_mean`, `running_var`.
///
/// In training mode the batch statistics normalise the input and update
/// the running statistics in place (`running_var` with the unbiased
/// variance, as PyTorch does); in evaluation the running statistics are
/// used. On the CPU both run as fused kernels (`fused.rs`).
#[derive(Clone, Debug)]
pub struct BatchNorm3d {
    weight: Tensor,
    bias: Tensor,
    running_mean: Var,
    running_var: Var,
    /// candle's layer over the same tensors, for devices without the fused
    /// kernels.
    fallback: candle_nn::BatchNorm,
}

const BN_EPS: f64 = 1e-5;
const BN_MOMENTUM: f64 = 0.1;

impl BatchNorm3d {
    /// Builds the layer from (or initialises it into) `vb`.
    pub fn new(channels: usize, vb: VarBuilder<'_>) -> Result<Self> {
        use candle_nn::Init::Const;
        let running_mean = vb.get_with_hints(channels, "running_mean", Const(0.0))?;
        let running_var = vb.get_with_hints(channels, "running_var", Const(1.0))?;
        let weight = vb.get_with_hints(channels, "weight", Const(1.0))?;
        let bias = vb.get_with_hints(channels, "bias", Const(0.0))?;
        let running_mean = Var::from_tensor(&running_mean)?;
        let running_var = Var::from_tensor(&running_var)?;
        let fallback = candle_nn::BatchNorm::new_with_momentum(
            channels,
            running_mean.as_tensor().clone(),
            running_var.as_tensor().clone(),
            weight.clone(),
            bias.clone(),
            BN_EPS,
            BN_MOMENTUM,
        )?;
        Ok(BatchNorm3d {
            weight,
            bias,
            running_mean,
            running_var,
            fallback,
        })
    }
}

impl ModuleT for BatchNorm3d {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        in_f32(x, |x| self.forward_f32(x, train))
    }
}

impl BatchNorm3d {
    /// The normalisation with the running mean and `1/√(var + eps)` per
    /// channel (inference).
    fn running_norm(&self) -> candle_core::Result<NormOp> {
        let mean = self.running_mean.as_tensor().to_vec1::<f32>()?;
        let invstd = self
            .running_var
            .as_tensor()
            .to_vec1::<f32>()?
            .iter()
            .map(|&v| (1.0 / (f64::from(v) + BN_EPS).sqrt()) as f32)
            .collect();
        Ok(NormOp {
            per_sample: false,
            batch_stats: false,
            mean,
            invstd,
        })
    }

    /// Inference-mode batch norm then `act` in one pass over `x`, where the
    /// fused kernels run and `x` is float32 (`None` elsewhere): the same
    /// arithmetic as the two layers one after the other.
    pub(crate) fn forward_eval_prelu(
        &self,
        x: &Tensor,
        act: &PReLU,
    ) -> candle_core::Result<Option<Tensor>> {
        if !x.device().is_cpu() || x.dtype() != candle_core::DType::F32 {
            return Ok(None);
        }
        let op = crate::fused::AffinePreluOp {
            norm: self.running_norm()?,
            gamma: self.weight.to_vec1::<f32>()?,
            beta: self.bias.to_vec1::<f32>()?,
            slopes: act.weight.to_vec1::<f32>()?,
        };
        Ok(Some(x.contiguous()?.apply_op1(op)?))
    }

    fn forward_f32(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        if !crate::fused::supported(x.device()) {
            return self.fallback.forward_t(x, train);
        }
        let c = x.dim(1)?;
        if train {
            let (y, mean, var) =
                normalise_with_own_stats(x, &self.weight, &self.bias, false, BN_EPS)?;
            let count = (x.elem_count() / c.max(1)) as f64;
            let unbias = if count > 1.0 {
                count / (count - 1.0)
            } else {
                1.0
            };
            let dev = x.device();
            let mean = Tensor::from_vec(mean, c, dev)?;
            let var = (Tensor::from_vec(var, c, dev)? * unbias)?;
            let rm =
                ((self.running_mean.as_tensor() * (1.0 - BN_MOMENTUM))? + (mean * BN_MOMENTUM)?)?;
            let rv =
                ((self.running_var.as_tensor() * (1.0 - BN_MOMENTUM))? + (var * BN_MOMENTUM)?)?;
            self.running_mean.set(&rm)?;
            self.running_var.set(&rv)?;
            return Ok(y);
        }
        x.contiguous()?.apply_op3(
            &self.weight.contiguous()?,
            &self.bias.contiguous()?,
            self.running_norm()?,
        )
    }
}

/// Instance normalisation: each `(sample, channel)` normalised over its
/// voxels with the biased variance, as PyTorch's `InstanceNorm3d` (eps
/// 1e-5; `affine` adds `weight` and `bias`; no running statistics, so
/// training and evaluation agree). Equivalent to GroupNorm with one group
/// per channel.
#[derive(Clone, Debug)]
pub struct InstanceNorm3d {
    channels: usize,
    affine: Option<(Tensor, Tensor)>,
    eps: f64,
}

impl InstanceNorm3d {
    /// Builds the layer; with `affine` the parameters come from `vb`.
    pub fn new(channels: usize, affine: bool, vb: VarBuilder<'_>) -> Result<Self> {
        let affine = if affine {
            Some((
                vb.get_with_hints(channels, "weight", candle_nn::Init::Const(1.0))?,
                vb.get_with_hints(channels, "bias", candle_nn::Init::Const(0.0))?,
            ))
        } else {
            None
        };
        Ok(InstanceNorm3d {
            channels,
            affine,
            eps: 1e-5,
        })
    }
}

impl ModuleT for InstanceNorm3d {
    fn forward_t(&self, x: &Tensor, _train: bool) -> candle_core::Result<Tensor> {
        in_f32(x, |x| self.forward_f32(x))
    }
}

impl InstanceNorm3d {
    fn forward_f32(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if crate::fused::supported(x.device()) {
            let c = x.dim(1)?;
            let (gamma, beta) = match &self.affine {
                Some((w, b)) => (w.clone(), b.clone()),
                None => (
                    Tensor::ones(c, x.dtype(), x.device())?,
                    Tensor::zeros(c, x.dtype(), x.device())?,
                ),
            };
            return Ok(normalise_with_own_stats(x, &gamma, &beta, true, self.eps)?.0);
        }
        let (n, c, d, h, w) = x.dims5()?;
        let flat = x.reshape((n, c, d * h * w))?;
        let mean = flat.mean_keepdim(D::Minus1)?;
        let centred = flat.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = centred.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        let normed = match &self.affine {
            Some((wt, b)) => normed
                .broadcast_mul(&wt.reshape((1, c, 1))?)?
                .broadcast_add(&b.reshape((1, c, 1))?)?,
            None => normed,
        };
        normed.reshape((n, c, d, h, w))
    }
}

/// Parametric ReLU, `max(0, x) + a · min(0, x)`, with one slope shared by
/// all channels (PyTorch's default, used by MONAI) or one per channel.
/// Parameter: `weight`, initialised to 0.25.
#[derive(Clone, Debug)]
pub struct PReLU {
    weight: Tensor,
}

impl PReLU {
    /// `num_parameters` is 1 (shared) or the channel count.
    pub fn new(num_parameters: usize, vb: VarBuilder<'_>) -> Result<Self> {
        if num_parameters == 0 {
            return Err(Error::Config("PReLU needs at least one parameter".into()));
        }
        Ok(PReLU {
            weight: vb.get_with_hints(num_parameters, "weight", candle_nn::Init::Const(0.25))?,
        })
    }
}

impl ModuleT for PReLU {
    /// With bfloat16 activations it runs in float32 (the slope's gradient
    /// is a sum over every voxel).
    fn forward_t(&self, x: &Tensor, _train: bool) -> candle_core::Result<Tensor> {
        in_f32(x, |x| self.forward_f32(x))
    }
}

impl PReLU {
    fn forward_f32(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if crate::fused::supported(x.device()) {
            return x
                .contiguous()?
                .apply_op2(&self.weight.contiguous()?, PReluOp);
        }
        let pos = x.relu()?;
        let neg = (x - &pos)?;
        let c = self.weight.elem_count();
        let a = if c == 1 {
            self.weight.reshape((1, 1, 1, 1, 1))?
        } else {
            self.weight.reshape((1, c, 1, 1, 1))?
        };
        pos + neg.broadcast_mul(&a)?
    }
}

/// Leaky ReLU with a fixed negative slope (nnU-Net uses 0.01).
#[derive(Clone, Copy, Debug)]
pub struct LeakyReLU {
    /// Slope for negative inputs, in `[0, 1)`.
    pub negative_slope: f64,
}

impl ModuleT for LeakyReLU {
    /// One fused pass on the CPU and CUDA for `(N, C, …)` float32 input
    /// (bit for bit PyTorch's formula and gradient); composed candle ops
    /// elsewhere.
    fn forward_t(&self, x: &Tensor, _train: bool) -> candle_core::Result<Tensor> {
        if crate::fused::supported(x.device()) && x.dtype() == DType::F32 && x.rank() >= 2 {
            let op = LeakyReluOp {
                slope: self.negative_slope as f32,
            };
            return x.contiguous()?.apply_op1(op);
        }
        let pos = x.relu()?;
        let neg = (x - &pos)?;
        pos + (neg * self.negative_slope)?
    }
}

/// Element-wise dropout active only in training, scaling kept values by
/// `1 / (1 − p)` as PyTorch does.
#[derive(Clone, Copy, Debug)]
pub struct Dropout {
    /// Probability of zeroing an element, in `[0, 1)`.
    pub p: f32,
}

impl ModuleT for Dropout {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        if !train || self.p == 0.0 {
            return Ok(x.clone());
        }
        candle_nn::ops::dropout(x, self.p)
    }
}

impl Emit for BatchNorm3d {
    /// Evaluation mode: ONNX `BatchNormalization` over the running statistics.
    fn emit(&self, g: &mut Graph, x: &str) -> Result<String> {
        // The running statistics are copies (`Var`s); name them after the weight.
        let prefix = g
            .name_of(&self.weight)
            .and_then(|n| n.strip_suffix("weight").map(str::to_string))
            .unwrap_or_else(|| "bn.".into());
        let scale = g.param(&self.weight, &format!("{prefix}weight"), None)?;
        let bias = g.param(&self.bias, &format!("{prefix}bias"), None)?;
        let mean = g.param(
            self.running_mean.as_tensor(),
            &format!("{prefix}running_mean"),
            None,
        )?;
        let var = g.param(
            self.running_var.as_tensor(),
            &format!("{prefix}running_var"),
            None,
        )?;
        Ok(g.op(
            "BatchNormalization",
            &[x, &scale, &bias, &mean, &var],
            vec![("epsilon", Attr::Float(BN_EPS as f32))],
        ))
    }
}

impl Emit for InstanceNorm3d {
    /// ONNX `InstanceNormalization`; without affine parameters the scale is
    /// ones and the bias zeros.
    fn emit(&self, g: &mut Graph, x: &str) -> Result<String> {
        let (scale, bias) = match &self.affine {
            Some((w, b)) => (
                g.param(w, "norm.weight", None)?,
                g.param(b, "norm.bias", None)?,
            ),
            None => (
                g.constant(
                    "instance_norm.ones",
                    &[self.channels],
                    &vec![1.0; self.channels],
                ),
                g.constant(
                    "instance_norm.zeros",
                    &[self.channels],
                    &vec![0.0; self.channels],
                ),
            ),
        };
        Ok(g.op(
            "InstanceNormalization",
            &[x, &scale, &bias],
            vec![("epsilon", Attr::Float(self.eps as f32))],
        ))
    }
}

impl Emit for PReLU {
    /// ONNX `PRelu`; a per-channel slope is shaped `(C, 1, 1, 1)` to
    /// broadcast over `(N, C, X, Y, Z)`.
    fn emit(&self, g: &mut Graph, x: &str) -> Result<String> {
        let c = self.weight.elem_count();
        let dims: &[usize] = if c == 1 { &[1] } else { &[c, 1, 1, 1] };
        let slope = g.param(&self.weight, "prelu.weight", Some(dims))?;
        Ok(g.op("PRelu", &[x, &slope], Vec::new()))
    }
}

impl Emit for LeakyReLU {
    fn emit(&self, g: &mut Graph, x: &str) -> Result<String> {
        Ok(g.op(
            "LeakyRelu",
            &[x],
            vec![("alpha", Attr::Float(self.negative_slope as f32))],
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{max_diff, seeded};
    use candle_core::{DType, Device, Var};

    #[test]
    fn instance_norm_zero_mean_unit_variance() {
        let dev = Device::Cpu;
        let x = Tensor::arange(0f32, 2.0 * 3.0 * 8.0, &dev)
            .unwrap()
            .reshape((2, 3, 2, 2, 2))
            .unwrap();
        let vb = VarBuilder::zeros(DType::F32, &dev);
        let y = InstanceNorm3d::new(3, false, vb)
            .unwrap()
            .forward_t(&x, true)
            .unwrap();
        let flat: Vec<Vec<f32>> = y.reshape((6, 8)).unwrap().to_vec2().unwrap();
        for row in flat {
            let mean: f32 = row.iter().sum::<f32>() / 8.0;
            let var: f32 = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / 8.0;
            assert!(
                mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-3,
                "{mean} {var}"
            );
        }
    }

    /// Gradients of `Σ f(x)·r` with respect to `x` and `params`.
    fn grads(f: &dyn Fn(&Tensor) -> Tensor, x: &Var, params: &[&Tensor]) -> Vec<Tensor> {
        let y = f(x.as_tensor());
        let r = seeded(y.dims(), 99);
        let g = (y * r).unwrap().sum_all().unwrap().backward().unwrap();
        std::iter::once(x.as_tensor())
            .chain(params.iter().copied())
            .map(|t| g.get(t).unwrap().clone())
            .collect()
    }

    /// The fused batch norm against candle's composed `BatchNorm` on the
    /// same values: outputs, gradients of input, weight and bias, and the
    /// running statistics after a training step, in both modes.
    #[test]
    fn fused_batch_norm_matches_candles_composed_layer() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&seeded(&[2, 3, 4, 5, 6], 1)).unwrap();
        for train in [true, false] {
            let (ours_map, ref_map) = (candle_nn::VarMap::new(), candle_nn::VarMap::new());
            let ours =
                BatchNorm3d::new(3, VarBuilder::from_varmap(&ours_map, DType::F32, &dev)).unwrap();
            let cfg = candle_nn::BatchNormConfig {
                eps: 1e-5,
                remove_mean: true,
                affine: true,
                momentum: 0.1,
            };
            let reference =
                candle_nn::batch_norm(3, cfg, VarBuilder::from_varmap(&ref_map, DType::F32, &dev))
                    .unwrap();
            // Non-trivial parameters and running statistics, equal on both sides.
            for map in [&ours_map, &ref_map] {
                for (name, v) in map.data().lock().unwrap().iter() {
                    let seed = name.len() as u64;
                    let mut t = seeded(&[3], seed);
                    if name.contains("var") {
                        t = (t.abs().unwrap() + 0.5).unwrap();
                    }
                    v.set(&t).unwrap();
                }
            }
            let p_ours = [&ours.weight, &ours.bias];
            let (rw, rb) = reference.weight_and_bias().unwrap();
            let p_ref = [rw, rb];
            let g_ours = grads(&|x| ours.forward_t(x, train).unwrap(), &x, &p_ours);
            let g_ref = grads(&|x| reference.forward_t(x, train).unwrap(), &x, &p_ref);
            let y_ours = ours.forward_t(x.as_tensor(), false).unwrap();
            let y_ref = reference.forward_t(x.as_tensor(), false).unwrap();
            assert!(max_diff(&y_ours, &y_ref) < 1e-5, "train {train}");
            for (a, b) in g_ours.iter().zip(&g_ref) {
                assert!(max_diff(a, b) < 1e-4, "train {train}: {}", max_diff(a, b));
            }
            // Both sides ran two training forwards (gradient pass and
            // output pass use eval for the output) or none.
            assert!(max_diff(ours.running_mean.as_tensor(), reference.running_mean()) < 1e-6);
            assert!(max_diff(ours.running_var.as_tensor(), reference.running_var()) < 1e-6);
            if train {
                let moved = max_diff(ours.running_mean.as_tensor(), &seeded(&[3], 12));
                assert!(moved > 1e-3, "running mean not updated");
            }
        }
    }

    /// Inference-mode batch norm and PReLU fused into one pass give the two
    /// layers' output bit for bit, with one slope and one per channel.
    #[test]
    fn fused_eval_batch_norm_prelu_equals_the_two_layers() {
        let dev = Device::Cpu;
        let x = seeded(&[2, 3, 4, 5, 17], 3);
        let map = candle_nn::VarMap::new();
        let bn = BatchNorm3d::new(3, VarBuilder::from_varmap(&map, DType::F32, &dev)).unwrap();
        for (name, v) in map.data().lock().unwrap().iter() {
            let t = seeded(&[3], name.len() as u64 + 20);
            v.set(&if name.contains("var") {
                (t.abs().unwrap() + 0.5).unwrap()
            } else {
                t
            })
            .unwrap();
        }
        for slopes in [vec![0.25f32], vec![0.1, -0.3, 0.7]] {
            let prelu = PReLU {
                weight: Tensor::new(slopes.as_slice(), &dev).unwrap(),
            };
            let want = prelu
                .forward_t(&bn.forward_t(&x, false).unwrap(), false)
                .unwrap();
            let got = bn
                .forward_eval_prelu(&x, &prelu)
                .unwrap()
                .expect("fused on the CPU");
            let (want, got) = (
                want.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                got.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            );
            assert!(want.iter().any(|v| *v < 0.0) && want.iter().any(|v| *v > 0.0));
            assert_eq!(want, got);
        }
        // Not fused for other types.
        let half = x.to_dtype(DType::BF16).unwrap();
        let prelu = PReLU {
            weight: Tensor::new(&[0.25f32], &dev).unwrap(),
        };
        assert!(bn.forward_eval_prelu(&half, &prelu).unwrap().is_none());
    }

    /// The fused instance norm and PReLU against their composed
    /// definitions, forward and backward.
    #[test]
    fn fused_instance_norm_and_prelu_match_their_definitions() {
        let x = Var::from_tensor(&seeded(&[2, 3, 3, 4, 5], 5)).unwrap();
        let w = Var::from_tensor(&seeded(&[3], 6)).unwrap();
        let b = Var::from_tensor(&seeded(&[3], 7)).unwrap();
        let inorm = InstanceNorm3d {
            channels: 3,
            affine: Some((w.as_tensor().clone(), b.as_tensor().clone())),
            eps: 1e-5,
        };
        let composed = |x: &Tensor| {
            let flat = x.reshape((2, 3, 60)).unwrap();
            let mean = flat.mean_keepdim(D::Minus1).unwrap();
            let c = flat.broadcast_sub(&mean).unwrap();
            let var = c.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
            c.broadcast_div(&(var + 1e-5).unwrap().sqrt().unwrap())
                .unwrap()
                .broadcast_mul(&w.as_tensor().reshape((1, 3, 1)).unwrap())
                .unwrap()
                .broadcast_add(&b.as_tensor().reshape((1, 3, 1)).unwrap())
                .unwrap()
                .reshape((2, 3, 3, 4, 5))
                .unwrap()
        };
        let params = [w.as_tensor(), b.as_tensor()];
        let g_ours = grads(&|x| inorm.forward_t(x, true).unwrap(), &x, &params);
        let g_ref = grads(&composed, &x, &params);
        assert!(
            max_diff(
                &inorm.forward_t(x.as_tensor(), true).unwrap(),
                &composed(x.as_tensor())
            ) < 1e-5
        );
        for (a, r) in g_ours.iter().zip(&g_ref) {
            assert!(max_diff(a, r) < 1e-4, "{}", max_diff(a, r));
        }
        for slopes in [1, 3] {
            let a = Var::from_tensor(&(seeded(&[slopes], 8) * 0.3).unwrap()).unwrap();
            let prelu = PReLU {
                weight: a.as_tensor().clone(),
            };
            let composed = |x: &Tensor| {
                let pos = x.relu().unwrap();
                let neg = (x - &pos).unwrap();
                let a = a.as_tensor().reshape((1, slopes, 1, 1, 1)).unwrap();
                (pos + neg.broadcast_mul(&a).unwrap()).unwrap()
            };
            let g_ours = grads(&|x| prelu.forward_t(x, true).unwrap(), &x, &[a.as_tensor()]);
            let g_ref = grads(&composed, &x, &[a.as_tensor()]);
            assert_eq!(
                max_diff(
                    &prelu.forward_t(x.as_tensor(), true).unwrap(),
                    &composed(x.as_tensor())
                ),
                0.0
            );
            for (o, r) in g_ours.iter().zip(&g_ref) {
                assert!(max_diff(o, r) < 1e-4, "{slopes} slopes: {}", max_diff(o, r));
            }
        }
    }

    #[test]
    fn prelu_and_leaky_relu() {
        let dev = Device::Cpu;
        let x = Tensor::new(&[-2f32, -0.5, 0.0, 3.0], &dev)
            .unwrap()
            .reshape((1, 1, 1, 1, 4))
            .unwrap();
        let w = Tensor::new(&[0.25f32], &dev).unwrap();
        let y: Vec<f32> = PReLU { weight: w }
            .forward_t(&x, false)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(y, vec![-0.5, -0.125, 0.0, 3.0]);
        let y: Vec<f32> = LeakyReLU {
            negative_slope: 0.01,
        }
        .forward_t(&x, false)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
        assert_eq!(y, vec![-0.02, -0.005, 0.0, 3.0]);
    }
}
