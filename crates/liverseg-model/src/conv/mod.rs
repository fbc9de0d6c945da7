//! 3-D convolution and transposed convolution layers with autograd.
//!
//! candle has no 3-D convolution. On the CPU these layers run either
//! register-blocked direct kernels on padded, phase-split grids (AVX-512,
//! `direct.rs`) or tiled column matrices fed to `gemm` (`kernels.rs`
//! chooses per call); the backward passes use the same kernels. On other
//! devices 1 × 1 × 1 convolutions and transposed convolutions whose kernel
//! equals their stride are matrix products (`matmul.rs`), and the others
//! compose candle's 2-D convolutions (`generic.rs`).

mod direct;
mod gemm;
mod generic;
mod geom;
mod kernels;
mod matmul;
mod op;

pub use geom::ConvGeom;

use crate::{Error, Result};
use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;
use op::ConvOp;

/// Configuration of a [`Conv3d`] layer (PyTorch's `nn.Conv3d` arguments).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv3dConfig {
    /// Kernel, stride, padding and dilation.
    pub geom: ConvGeom,
    /// Whether the layer adds a per-channel bias.
    pub bias: bool,
}

fn check_geom(geom: &ConvGeom) -> Result<()> {
    if !geom.is_valid() || geom.kernel.iter().any(|&k| k > kernels::MAX_KERNEL) {
        return Err(Error::Config(format!(
            "invalid convolution geometry {geom:?} (stride and dilation ≥ 1, kernel 1..={})",
            kernels::MAX_KERNEL
        )));
    }
    Ok(())
}

/// The weight (and bias) of a convolution layer with PyTorch's default
/// Kaiming-uniform initialisation, `U(−1/√fan_in, 1/√fan_in)`.
fn weight_and_bias(
    shape: (usize, usize, usize, usize, usize),
    fan_in: usize,
    out_channels: usize,
    bias: bool,
    vb: VarBuilder<'_>,
) -> Result<(Tensor, Option<Tensor>)> {
    let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
    let init = candle_nn::Init::Uniform {
        lo: -bound,
        up: bound,
    };
    let weight = vb.get_with_hints(shape, "weight", init)?;
    let bias = if bias {
        Some(vb.get_with_hints(out_channels, "bias", init)?)
    } else {
        None
    };
    Ok((weight, bias))
}

/// Geometry checks of a transposed convolution, for every constructor.
fn check_transposed(cfg: &ConvTranspose3dConfig) -> Result<()> {
    check_geom(&cfg.geom)?;
    if (0..3).any(|a| cfg.output_padding[a] >= cfg.geom.stride[a].max(cfg.geom.dilation[a])) {
        return Err(Error::Config(format!(
            "output_padding {:?} must be smaller than stride or dilation",
            cfg.output_padding
        )));
    }
    Ok(())
}

/// A 3-D convolution over `(N, C, D, H, W)` tensors, parameters named
/// `weight` `(out, in, kd, kh, kw)` and `bias` `(out)` as in PyTorch.
#[derive(Clone, Debug)]
pub struct Conv3d {
    weight: Tensor,
    bias: Option<Tensor>,
    geom: ConvGeom,
}

impl Conv3d {
    /// Builds the layer from (or, when training, initialises into) `vb`,
    /// with PyTorch's default Kaiming-uniform initialisation.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        cfg: Conv3dConfig,
        vb: VarBuilder<'_>,
    ) -> Result<Self> {
        check_geom(&cfg.geom)?;
        let k = cfg.geom.kernel;
        let (weight, bias) = weight_and_bias(
            (out_channels, in_channels, k[0], k[1], k[2]),
            in_channels * cfg.geom.taps(),
            out_channels,
            cfg.bias,
            vb,
        )?;
        Ok(Conv3d {
            weight,
            bias,
            geom: cfg.geom,
        })
    }

    /// Wraps existing tensors (weight `(out, in, kd, kh, kw)`).
    pub fn from_tensors(weight: Tensor, bias: Option<Tensor>, geom: ConvGeom) -> Result<Self> {
        check_geom(&geom)?;
        Ok(Conv3d { weight, bias, geom })
    }

    /// The weight tensor.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }
}

/// Applies `op` to `x` and `weight`, with the bias added inside the kernel.
fn apply(
    x: &Tensor,
    weight: &Tensor,
    bias: &Option<Tensor>,
    op: ConvOp,
) -> candle_core::Result<Tensor> {
    let (x, w) = (x.contiguous()?, weight.contiguous()?);
    match bias {
        Some(b) => x.apply_op3(&w, &b.contiguous()?, op.with_bias()),
        None => x.apply_op2(&w, op),
    }
}

impl Module for Conv3d {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if !x.device().is_cpu() {
            if matmul::is_pointwise(&self.geom) {
                return matmul::pointwise(x, &self.weight, self.bias.as_ref());
            }
            return generic::conv3d(x, &self.weight, self.bias.as_ref(), &self.geom);
        }
        apply(x, &self.weight, &self.bias, ConvOp::conv(self.geom))
    }
}

/// Configuration of a [`ConvTranspose3d`] layer (PyTorch's
/// `nn.ConvTranspose3d` arguments).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvTranspose3dConfig {
    /// Kernel, stride, padding and dilation.
    pub geom: ConvGeom,
    /// Extra size added to one side of each output axis.
    pub output_padding: [usize; 3],
    /// Whether the layer adds a per-channel bias.
    pub bias: bool,
}

/// A 3-D transposed convolution, parameters named `weight`
/// `(in, out, kd, kh, kw)` and `bias` `(out)` as in PyTorch.
#[derive(Clone, Debug)]
pub struct ConvTranspose3d {
    weight: Tensor,
    bias: Option<Tensor>,
    cfg: ConvTranspose3dConfig,
}

impl ConvTranspose3d {
    /// Builds the layer from (or initialises it into) `vb`.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        cfg: ConvTranspose3dConfig,
        vb: VarBuilder<'_>,
    ) -> Result<Self> {
        check_transposed(&cfg)?;
        let k = cfg.geom.kernel;
        // PyTorch computes fan_in from weight.size(1) · taps for transposed convs.
        let (weight, bias) = weight_and_bias(
            (in_channels, out_channels, k[0], k[1], k[2]),
            out_channels * cfg.geom.taps(),
            out_channels,
            cfg.bias,
            vb,
        )?;
        Ok(ConvTranspose3d { weight, bias, cfg })
    }

    /// Wraps existing tensors (weight `(in, out, kd, kh, kw)`).
    pub fn from_tensors(
        weight: Tensor,
        bias: Option<Tensor>,
        cfg: ConvTranspose3dConfig,
    ) -> Result<Self> {
        check_transposed(&cfg)?;
        Ok(ConvTranspose3d { weight, bias, cfg })
    }
}

impl Module for ConvTranspose3d {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if !x.device().is_cpu() {
            if matmul::is_tiling(&self.cfg.geom, self.cfg.output_padding) {
                return matmul::tiling_transpose(x, &self.weight, self.bias.as_ref());
            }
            return generic::conv_transpose3d(
                x,
                &self.weight,
                self.bias.as_ref(),
                &self.cfg.geom,
                self.cfg.output_padding,
            );
        }
        let (_, _, d, h, w) = x.dims5()?;
        let dout = self
            .cfg
            .geom
            .conv_transpose_out([d, h, w], self.cfg.output_padding)
            .ok_or_else(|| {
                candle_core::Error::Msg(format!(
                    "conv_transpose3d: empty output for input {:?}",
                    [d, h, w]
                ))
            })?;
        apply(
            x,
            &self.weight,
            &self.bias,
            ConvOp::conv_transpose(self.cfg.geom, dout),
        )
    }
}
