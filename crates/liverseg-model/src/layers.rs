//! Normalisation, activation and dropout layers for 5-D `(N, C, D, H, W)`
//! tensors, with PyTorch's parameter names and defaults.

use crate::{Error, Result};
use candle_core::{D, ModuleT, Tensor};
use candle_nn::VarBuilder;

/// Batch normalisation over `(N, D, H, W)` per channel (PyTorch's
/// `BatchNorm3d`: eps 1e-5, momentum 0.1, affine, running statistics).
/// Parameters: `weight`, `bias`, `running_mean`, `running_var`.
#[derive(Clone, Debug)]
pub struct BatchNorm3d {
    inner: candle_nn::BatchNorm,
}

impl BatchNorm3d {
    /// Builds the layer from (or initialises it into) `vb`.
    pub fn new(channels: usize, vb: VarBuilder<'_>) -> Result<Self> {
        let cfg = candle_nn::BatchNormConfig {
            eps: 1e-5,
            remove_mean: true,
            affine: true,
            momentum: 0.1,
        };
        Ok(BatchNorm3d {
            inner: candle_nn::batch_norm(channels, cfg, vb)?,
        })
    }
}

impl ModuleT for BatchNorm3d {
    fn forward_t(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        self.inner.forward_t(x, train)
    }
}

/// Instance normalisation: each `(sample, channel)` normalised over its
/// voxels with the biased variance, as PyTorch's `InstanceNorm3d` (eps
/// 1e-5; `affine` adds `weight` and `bias`; no running statistics, so
/// training and evaluation agree). Equivalent to GroupNorm with one group
/// per channel.
#[derive(Clone, Debug)]
pub struct InstanceNorm3d {
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
        Ok(InstanceNorm3d { affine, eps: 1e-5 })
    }
}

impl ModuleT for InstanceNorm3d {
    fn forward_t(&self, x: &Tensor, _train: bool) -> candle_core::Result<Tensor> {
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
    fn forward_t(&self, x: &Tensor, _train: bool) -> candle_core::Result<Tensor> {
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
    fn forward_t(&self, x: &Tensor, _train: bool) -> candle_core::Result<Tensor> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

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
