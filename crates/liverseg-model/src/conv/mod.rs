//! 3-D convolution and transposed convolution layers with autograd.
//!
//! candle has no 3-D convolution. On the CPU these layers run either
//! register-blocked direct kernels on padded, phase-split grids (AVX-512,
//! `direct/`) or tiled column matrices fed to `gemm` (`kernels.rs`
//! chooses per call); the backward passes use the same kernels. On other
//! devices 1 × 1 × 1 convolutions and transposed convolutions whose kernel
//! equals their stride are matrix products (`matmul.rs`); the others run
//! cuDNN's N-d convolutions on CUDA (`cudnn.rs`, the `cudnn` feature) or
//! compose candle's 2-D convolutions (`generic.rs`, any device; the oracle
//! the faster paths are tested against).

#[cfg(feature = "cudnn")]
mod cudnn;
mod direct;
mod gemm;
mod generic;
mod geom;
mod kernels;
mod matmul;
mod op;

pub use geom::ConvGeom;

use crate::{Error, Result};
use candle_core::{DType, Module, Tensor};
use candle_nn::VarBuilder;
use op::ConvOp;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

static CUDNN_DETERMINISTIC: AtomicBool = AtomicBool::new(false);
static COMPOSED_ON_CPU: AtomicBool = AtomicBool::new(false);

/// Runs float32 convolutions on the CPU through the candle compositions
/// other devices use (`matmul.rs`, `generic.rs`) instead of the CPU
/// kernels, for as long as it is on: the CPU then plays a device whose
/// results `liverseg device-check` compares with the kernels'. Process-wide;
/// never needed for anything else.
pub fn set_composed_convolutions_on_cpu(on: bool) {
    COMPOSED_ON_CPU.store(on, Ordering::Relaxed);
}

/// The arithmetic of one convolution on the CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Math {
    /// float32 operands and sums.
    F32,
    /// Operands rounded to bfloat16, products summed in float32: on AMX
    /// tiles where the CPU has them, else with AVX-512 BF16 dot products
    /// where it has those, else float32.
    Bf16,
    /// As [`Math::Bf16`], with the AVX-512 BF16 dot products even on a CPU
    /// with AMX (so that tests and benchmarks can compare the two).
    #[cfg_attr(not(test), allow(dead_code))]
    Bf16Dot,
}

thread_local! {
    /// Whether float32 convolutions created on this thread round their
    /// operands to bfloat16 ([`with_cpu_bf16_convolutions`]).
    static BF16_ON_CPU: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with float32 convolutions on the CPU rounding their operands
/// to bfloat16 (`on`) or not, then restores this thread's previous setting,
/// also when `f` panics. The choice is made when a convolution runs forward
/// and travels with it into its backward passes, so a loss's `backward()`
/// outside `f` keeps it: the forward pass (input and weight), the input
/// gradient (output gradient and weight) and the weight gradient (input
/// and output gradient) round as PyTorch's CPU autocast to bfloat16 rounds
/// a convolution's operands, and sum in float32 on AMX tiles or with
/// AVX-512 BF16 dot products. Activations, outputs, gradients and
/// everything outside the convolutions stay float32. It holds for the
/// calling thread only, so networks run elsewhere in the process keep
/// their own arithmetic. A CPU with neither AMX-BF16 nor AVX-512 BF16 (see
/// [`cpu_bf16_available`]) keeps float32, and so do convolutions with a
/// single input channel, on AMX fewer than 8 (too few to fill a tile), and
/// those whose grid is too small to pay (`direct::worth_bf16`).
/// Networks whose activations are bfloat16 take the bfloat16 kernels
/// whatever this says. `Precision::on` is the usual way in.
pub(crate) fn with_cpu_bf16_convolutions<T>(on: bool, f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            BF16_ON_CPU.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(BF16_ON_CPU.with(|c| c.replace(on)));
    f()
}

/// Whether float32 convolutions run forward on this thread now round their
/// operands to bfloat16 (inside a bfloat16 [`crate::Compute`]'s `run` or
/// `within`).
pub fn cpu_bf16_convolutions() -> bool {
    BF16_ON_CPU.with(Cell::get)
}

/// Whether this CPU (and OS) runs bfloat16 convolution kernels: AVX-512
/// with AMX-BF16 (the tile state granted to the process) or with AVX-512
/// BF16.
pub fn cpu_bf16_available() -> bool {
    direct::available() && (direct::amx_available() || direct::dot_available())
}

/// Asks for deterministic cuDNN algorithms from now on (the same result for
/// the same input on the same GPU, at some cost in speed), as PyTorch's
/// `torch.backends.cudnn.deterministic`. The CPU kernels are always
/// deterministic; without the `cudnn` feature this only records the wish.
pub fn set_cudnn_deterministic(on: bool) {
    CUDNN_DETERMINISTIC.store(on, Ordering::Relaxed);
}

/// Whether deterministic cuDNN algorithms are asked for.
pub fn cudnn_deterministic() -> bool {
    CUDNN_DETERMINISTIC.load(Ordering::Relaxed)
}

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

    /// This convolution and `other` on the same input `x`, as one
    /// convolution with their output channels stacked where they share
    /// their geometry and both have a bias or neither has: `x` is padded
    /// and packed once, and the kernels get twice the output channels to
    /// block. On the direct kernels each output channel's sum is computed
    /// exactly as alone, so the two results are bit for bit those of two
    /// calls; the column kernels (output rows shorter than 8) may sum in
    /// another order once the channels are stacked. Through autograd, the
    /// input's gradient is then one sum over both convolutions' channels,
    /// not two sums added. A MONAI residual unit with a stride convolves
    /// its input twice this way (its first subunit and its residual path).
    pub fn forward_pair(
        &self,
        other: &Conv3d,
        x: &Tensor,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        if self.geom != other.geom || self.bias.is_some() != other.bias.is_some() {
            return Ok((self.forward(x)?, other.forward(x)?));
        }
        let cout = self.weight.dim(0)?;
        let bias = match (&self.bias, &other.bias) {
            (Some(a), Some(b)) => Some(Tensor::cat(&[a, b], 0)?),
            _ => None,
        };
        let both = Conv3d {
            weight: Tensor::cat(&[&self.weight, &other.weight], 0)?,
            bias,
            geom: self.geom,
        };
        let y = both.forward(x)?;
        let rest = y.dim(1)? - cout;
        Ok((y.narrow(1, 0, cout)?, y.narrow(1, cout, rest)?))
    }
}

/// Which implementation a convolution of `x` takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    /// The CPU kernels.
    Cpu,
    /// The conv ops on the device itself: cuDNN on CUDA.
    Native,
    /// candle compositions (`matmul.rs` where they are products, else
    /// `generic.rs`): other devices.
    Composed,
}

fn route(x: &Tensor) -> Route {
    let device = x.device();
    let composed_on_cpu = COMPOSED_ON_CPU.load(Ordering::Relaxed) && x.dtype() == DType::F32;
    if device.is_cpu() && !composed_on_cpu {
        Route::Cpu
    } else if cfg!(feature = "cudnn") && device.is_cuda() {
        Route::Native
    } else {
        Route::Composed
    }
}

/// The weight and bias in `x`'s type: float32 master weights cast for
/// bfloat16 activations (the cast's gradient returns in float32).
fn in_type_of(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
) -> candle_core::Result<(Tensor, Option<Tensor>)> {
    let cast = |t: &Tensor| t.to_dtype(x.dtype());
    Ok((cast(weight)?, bias.map(cast).transpose()?))
}

/// Runs a CPU kernel `f`, which is float32, on operands of another type
/// (bfloat16) as cuDNN's bfloat16 routines compute: the operands hold
/// bfloat16 values, products accumulate in float32, and the result is
/// rounded to bfloat16. Candle's CPU matmul has no bfloat16, so this is
/// also the only way to run bfloat16 networks on the CPU (tests).
fn on_cpu(
    x: &Tensor,
    w: &Tensor,
    b: &Option<Tensor>,
    f: impl FnOnce(&Tensor, &Tensor, &Option<Tensor>) -> candle_core::Result<Tensor>,
) -> candle_core::Result<Tensor> {
    use candle_core::DType::F32;
    if x.dtype() == F32 {
        return f(x, w, b);
    }
    let b32 = b.as_ref().map(|b| b.to_dtype(F32)).transpose()?;
    f(&x.to_dtype(F32)?, &w.to_dtype(F32)?, &b32)?.to_dtype(x.dtype())
}

/// The CPU kernels' arithmetic for input `x`: bfloat16 operands for
/// bfloat16 activations (exact: they already are bfloat16) or when asked
/// for on this thread ([`with_cpu_bf16_convolutions`]), float32 otherwise.
fn cpu_math(x: &Tensor) -> Math {
    if x.dtype() != DType::F32 || cpu_bf16_convolutions() {
        Math::Bf16
    } else {
        Math::F32
    }
}

/// Applies `op` to `x` and `weight` on a device other than the CPU: the op
/// (cuDNN) then a broadcast bias, whose gradient candle derives.
fn apply_device(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    op: ConvOp,
) -> candle_core::Result<Tensor> {
    add_bias(x.contiguous()?.apply_op2(&weight.contiguous()?, op)?, bias)
}

/// `y + bias` per channel of `y (N, C, D, H, W)`, off the CPU kernels. With
/// bfloat16 activations the addition runs in float32, so the bias's
/// gradient (a sum over every voxel of the batch) is reduced in float32.
fn add_bias(y: Tensor, bias: Option<&Tensor>) -> candle_core::Result<Tensor> {
    let Some(b) = bias else { return Ok(y) };
    let b = b.reshape((1, (), 1, 1, 1))?;
    if y.dtype() == DType::F32 {
        return y.broadcast_add(&b);
    }
    y.to_dtype(DType::F32)?
        .broadcast_add(&b.to_dtype(DType::F32)?)?
        .to_dtype(y.dtype())
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
        let (w, b) = in_type_of(x, &self.weight, self.bias.as_ref())?;
        match route(x) {
            Route::Cpu => {
                let op = ConvOp::conv(self.geom).with_math(cpu_math(x));
                on_cpu(x, &w, &b, |x, w, b| apply(x, w, b, op))
            }
            _ if matmul::is_pointwise(&self.geom) => matmul::pointwise(x, &w, b.as_ref()),
            Route::Native => apply_device(x, &w, b.as_ref(), ConvOp::conv(self.geom)),
            Route::Composed => generic::conv3d(x, &w, b.as_ref(), &self.geom),
        }
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

impl ConvTranspose3d {
    /// The output extent for input `x`.
    fn transposed_out(&self, x: &Tensor) -> candle_core::Result<[usize; 3]> {
        let (_, _, d, h, w) = x.dims5()?;
        self.cfg
            .geom
            .conv_transpose_out([d, h, w], self.cfg.output_padding)
            .ok_or_else(|| {
                candle_core::Error::Msg(format!(
                    "conv_transpose3d: empty output for input {:?}",
                    [d, h, w]
                ))
            })
    }
}

impl Module for ConvTranspose3d {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (w, b) = in_type_of(x, &self.weight, self.bias.as_ref())?;
        let (geom, pad) = (self.cfg.geom, self.cfg.output_padding);
        match route(x) {
            Route::Cpu => {
                let op = ConvOp::conv_transpose(geom, self.transposed_out(x)?);
                let op = op.with_math(cpu_math(x));
                on_cpu(x, &w, &b, |x, w, b| apply(x, w, b, op))
            }
            _ if matmul::is_tiling(&geom, pad) => matmul::tiling_transpose(x, &w, b.as_ref()),
            // cuDNN derives the output extent from the input's, which an
            // output padding past the stride (dilation > stride) breaks.
            Route::Native if (0..3).all(|a| pad[a] < geom.stride[a]) => {
                let op = ConvOp::conv_transpose(geom, self.transposed_out(x)?);
                apply_device(x, &w, b.as_ref(), op)
            }
            _ => generic::conv_transpose3d(x, &w, b.as_ref(), &geom, pad),
        }
    }
}

/// The parameters of a (transposed) convolution as ONNX inputs.
fn onnx_inputs(
    g: &mut crate::onnx::Graph,
    x: &str,
    weight: &Tensor,
    bias: Option<&Tensor>,
) -> Result<Vec<String>> {
    let mut inputs = vec![x.to_string(), g.param(weight, "conv.weight", None)?];
    if let Some(b) = bias {
        inputs.push(g.param(b, "conv.bias", None)?);
    }
    Ok(inputs)
}

impl crate::onnx::Emit for Conv3d {
    fn emit(&self, g: &mut crate::onnx::Graph, x: &str) -> Result<String> {
        let inputs = onnx_inputs(g, x, &self.weight, self.bias.as_ref())?;
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let mut attrs = crate::onnx::geometry_attrs(&self.geom);
        attrs.push(("group", crate::onnx::Attr::Int(1)));
        Ok(g.op("Conv", &inputs, attrs))
    }
}

impl crate::onnx::Emit for ConvTranspose3d {
    fn emit(&self, g: &mut crate::onnx::Graph, x: &str) -> Result<String> {
        let inputs = onnx_inputs(g, x, &self.weight, self.bias.as_ref())?;
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let mut attrs = crate::onnx::geometry_attrs(&self.cfg.geom);
        let op = self.cfg.output_padding.iter().map(|&p| p as i64).collect();
        attrs.push(("output_padding", crate::onnx::Attr::Ints(op)));
        attrs.push(("group", crate::onnx::Attr::Int(1)));
        Ok(g.op("ConvTranspose", &inputs, attrs))
    }
}
