//! candle custom ops wrapping the 3-D convolution kernels, with backward
//! passes so the layers take part in autograd.

use super::Math;
#[cfg(feature = "cudnn")]
use super::cudnn::Routine;
use super::geom::ConvGeom;
use super::kernels;
use crate::fused::f32_data;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Dimensions of a contiguous `(N, C, D, H, W)` f32 tensor, checked.
fn dims5(name: &str, layout: &Layout) -> Result<(usize, usize, [usize; 3])> {
    let d = layout.shape().dims();
    if d.len() != 5 {
        candle_core::bail!("{name}: expected a 5-D (N, C, D, H, W) tensor, got shape {d:?}");
    }
    Ok((d[0], d[1], [d[2], d[3], d[4]]))
}

/// The operand and result dimensions of one op, `(N, C, D, H, W)` for
/// tensors and `(K, C, kd, kh, kw)` for filters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Dims {
    /// The convolution's input `x` (or its gradient).
    pub x: [usize; 5],
    /// The filter (or its gradient).
    pub w: [usize; 5],
    /// The convolution's output `y` (or its gradient).
    pub y: [usize; 5],
}

/// Which kernel an op runs on its two operands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// `(x, w) → y`: a convolution.
    Forward,
    /// `(gy, w) → gx` with the input extent given: the input gradient of a
    /// convolution, equal to a transposed convolution's forward pass.
    BackwardInput { din: [usize; 3] },
    /// `(x, gy) → gw` with the weight's `(cout, cin)` given.
    BackwardWeight { cout: usize, cin: usize },
}

/// One step of the 3-D convolution family as a candle op.
#[derive(Clone, Debug)]
pub(crate) struct ConvOp {
    geom: ConvGeom,
    kind: Kind,
    /// When this op is the forward pass of a transposed convolution, its
    /// backward pass differs from that of a plain `BackwardInput`.
    transposed: bool,
    /// The arithmetic of the kernels, its gradients' included.
    math: Math,
}

impl ConvOp {
    pub(crate) fn conv(geom: ConvGeom) -> Self {
        ConvOp {
            geom,
            kind: Kind::Forward,
            transposed: false,
            math: Math::F32,
        }
    }

    pub(crate) fn conv_transpose(geom: ConvGeom, dout: [usize; 3]) -> Self {
        ConvOp {
            geom,
            kind: Kind::BackwardInput { din: dout },
            transposed: true,
            math: Math::F32,
        }
    }

    /// The op computing in `math`, its backward passes too.
    pub(crate) fn with_math(self, math: Math) -> Self {
        ConvOp { math, ..self }
    }
}

impl ConvOp {
    /// The op with a per-output-channel bias as a third operand, added
    /// inside the kernel (no extra pass over the output).
    pub(crate) fn with_bias(self) -> ConvBiasOp {
        ConvBiasOp(self)
    }

    /// The operand and result dimensions of this op on operands of layouts
    /// `l1` and `l2`, checked against each other and the geometry, in
    /// cuDNN's terms: `x` the convolution's input, `w` its filter, `y` its
    /// output (whichever of them is being computed).
    fn dims(&self, l1: &Layout, l2: &Layout) -> Result<Dims> {
        let name = self.name();
        let g = &self.geom;
        let (n, c1, e1) = dims5(name, l1)?;
        let conv_out = |din: [usize; 3]| {
            g.conv_out(din).ok_or_else(|| {
                candle_core::Error::Msg(format!("{name}: input {din:?} smaller than the kernel"))
            })
        };
        let weight = |cout: usize, cin: usize| -> Result<[usize; 5]> {
            let wd = l2.shape().dims();
            if wd.len() != 5 || wd[0] != cout || wd[1] != cin || wd[2..] != g.kernel {
                candle_core::bail!(
                    "{name}: weight shape {wd:?} does not match ({cout}, {cin}) channels, kernel {:?}",
                    g.kernel
                );
            }
            Ok([cout, cin, g.kernel[0], g.kernel[1], g.kernel[2]])
        };
        let five = |n: usize, c: usize, e: [usize; 3]| [n, c, e[0], e[1], e[2]];
        match self.kind {
            Kind::Forward => {
                let cout = l2.shape().dims().first().copied().unwrap_or(0);
                let w = weight(cout, c1)?;
                Ok(Dims {
                    x: five(n, c1, e1),
                    w,
                    y: five(n, cout, conv_out(e1)?),
                })
            }
            Kind::BackwardInput { din } => {
                let cin = l2.shape().dims().get(1).copied().unwrap_or(0);
                let w = weight(c1, cin)?;
                Ok(Dims {
                    x: five(n, cin, din),
                    w,
                    y: five(n, c1, e1),
                })
            }
            Kind::BackwardWeight { cout, cin } => {
                let (n2, cout_y, dout) = dims5(name, l2)?;
                if c1 != cin || cout_y != cout || n != n2 {
                    candle_core::bail!("{name}: operand shapes disagree");
                }
                let k = g.kernel;
                Ok(Dims {
                    x: five(n, cin, e1),
                    w: [cout, cin, k[0], k[1], k[2]],
                    y: five(n, cout, dout),
                })
            }
        }
    }

    /// The CPU kernel over both operands, adding `bias` to every output
    /// channel of the `Forward` and `BackwardInput` kinds.
    fn run_cpu(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        bias: Option<&[f32]>,
    ) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        let a = f32_data(name, s1, l1)?;
        let b = f32_data(name, s2, l2)?;
        let g = &self.geom;
        let dims = self.dims(l1, l2)?;
        let spatial = |d: [usize; 5]| [d[2], d[3], d[4]];
        let (n, cin, din) = (dims.x[0], dims.x[1], spatial(dims.x));
        let (cout, dout) = (dims.y[1], spatial(dims.y));
        let (xs, ys) = (
            cin * din.iter().product::<usize>(),
            cout * dout.iter().product::<usize>(),
        );
        let bias_len = match self.kind {
            Kind::Forward => cout,
            _ => cin,
        };
        if let Some(bias) = bias {
            if matches!(self.kind, Kind::BackwardWeight { .. }) {
                candle_core::bail!("{name}: no bias for a weight gradient");
            }
            if bias.len() != bias_len {
                candle_core::bail!("{name}: bias length differs from {bias_len} output channels");
            }
        }
        match self.kind {
            Kind::Forward => {
                let mut y = crate::buffers::zeros(n * ys);
                // Samples run one after another; each kernel parallelises
                // internally (column fill and gemm).
                for (s, y) in y.chunks_mut(ys.max(1)).enumerate() {
                    kernels::conv_forward(
                        &a[s * xs..(s + 1) * xs],
                        cin,
                        din,
                        b,
                        bias,
                        cout,
                        g,
                        dout,
                        y,
                        self.math,
                    );
                }
                Ok((CpuStorage::F32(y), Shape::from(dims.y.to_vec())))
            }
            Kind::BackwardInput { .. } => {
                let mut gx = crate::buffers::zeros(n * xs);
                for (s, gx) in gx.chunks_mut(xs.max(1)).enumerate() {
                    kernels::conv_backward_input(
                        &a[s * ys..(s + 1) * ys],
                        cout,
                        dout,
                        b,
                        bias,
                        cin,
                        g,
                        din,
                        gx,
                        self.math,
                    );
                }
                Ok((CpuStorage::F32(gx), Shape::from(dims.x.to_vec())))
            }
            Kind::BackwardWeight { .. } => {
                let wlen = cout * cin * g.taps();
                // Per-sample partial gradients, summed: samples are
                // independent, so this parallelises across the batch too.
                let gw = (0..n)
                    .into_par_iter()
                    .map(|s| {
                        let mut gw = vec![0.0f32; wlen];
                        kernels::conv_backward_weight(
                            &a[s * xs..(s + 1) * xs],
                            cin,
                            din,
                            &b[s * ys..(s + 1) * ys],
                            cout,
                            g,
                            dout,
                            &mut gw,
                            self.math,
                        );
                        gw
                    })
                    .reduce(
                        || vec![0.0f32; wlen],
                        |mut acc, v| {
                            acc.iter_mut().zip(v).for_each(|(a, b)| *a += b);
                            acc
                        },
                    );
                Ok((CpuStorage::F32(gw), Shape::from(dims.w.to_vec())))
            }
        }
    }

    /// The cuDNN routine that computes this op.
    #[cfg(feature = "cudnn")]
    fn routine(&self) -> Routine {
        match self.kind {
            Kind::Forward => Routine::Forward,
            Kind::BackwardInput { .. } => Routine::BackwardData,
            Kind::BackwardWeight { .. } => Routine::BackwardFilter,
        }
    }
}

impl CustomOp2 for ConvOp {
    fn name(&self) -> &'static str {
        match (self.kind, self.transposed) {
            (Kind::Forward, _) => "conv3d",
            (Kind::BackwardInput { .. }, true) => "conv_transpose3d",
            (Kind::BackwardInput { .. }, false) => "conv3d-backward-input",
            (Kind::BackwardWeight { .. }, _) => "conv3d-backward-weight",
        }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.run_cpu(s1, l1, s2, l2, None)
    }

    #[cfg(feature = "cudnn")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let dims = self.dims(l1, l2)?;
        super::cudnn::run(self.routine(), &self.geom, &dims, (s1, l1), (s2, l2))
    }

    fn bwd(
        &self,
        arg1: &Tensor,
        arg2: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = self.geom;
        let grad = grad.contiguous()?;
        match (self.kind, self.transposed) {
            (Kind::Forward, _) => {
                // arg1 = x (N, cin, din), arg2 = w (cout, cin, k).
                let (_, _, d, h, w) = arg1.dims5()?;
                let (cout, cin, ..) = arg2.dims5()?;
                // A gradient nothing will read (the network's input, a
                // frozen weight) is not computed.
                let gx = needed(arg1, || {
                    grad.apply_op2_no_bwd(
                        arg2,
                        &ConvOp {
                            geom: g,
                            kind: Kind::BackwardInput { din: [d, h, w] },
                            transposed: false,
                            math: self.math,
                        },
                    )
                })?;
                let gw = needed(arg2, || {
                    arg1.apply_op2_no_bwd(
                        &grad,
                        &ConvOp {
                            geom: g,
                            kind: Kind::BackwardWeight { cout, cin },
                            transposed: false,
                            math: self.math,
                        },
                    )
                })?;
                Ok((gx, gw))
            }
            (Kind::BackwardInput { .. }, true) => {
                // Transposed convolution: arg1 = x on the small grid
                // (N, c_small, ...), arg2 = w (c_small, c_big, k); the result
                // lives on the big grid. The input gradient is a plain
                // convolution of the output gradient; the weight gradient is
                // that of a convolution from the big grid to the small one.
                let (c_small, c_big, ..) = arg2.dims5()?;
                let gx = needed(arg1, || {
                    grad.apply_op2_no_bwd(arg2, &ConvOp::conv(g).with_math(self.math))
                })?;
                let gw = needed(arg2, || {
                    grad.apply_op2_no_bwd(
                        arg1,
                        &ConvOp {
                            geom: g,
                            kind: Kind::BackwardWeight {
                                cout: c_small,
                                cin: c_big,
                            },
                            transposed: false,
                            math: self.math,
                        },
                    )
                })?;
                Ok((gx, gw))
            }
            _ => Err(candle_core::Error::BackwardNotSupported { op: self.name() }),
        }
    }
}

/// `f()`, the gradient of `arg`, where candle's backward pass will use it:
/// `arg` is a variable or the result of an op (`track_op`); candle drops
/// the gradients of other operands unread.
fn needed(arg: &Tensor, f: impl FnOnce() -> Result<Tensor>) -> Result<Option<Tensor>> {
    if arg.track_op() {
        f().map(Some)
    } else {
        Ok(None)
    }
}

/// A [`ConvOp`] (convolution or transposed convolution) with its bias as a
/// third operand `(x, w, b)`.
#[derive(Clone, Debug)]
pub(crate) struct ConvBiasOp(ConvOp);

impl CustomOp3 for ConvBiasOp {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let bias = f32_data(self.name(), s3, l3)?;
        self.0.run_cpu(s1, l1, s2, l2, Some(bias))
    }

    fn bwd(
        &self,
        arg1: &Tensor,
        arg2: &Tensor,
        _arg3: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (gx, gw) = self.0.bwd(arg1, arg2, res, grad)?;
        // The op only runs on the CPU (other devices take conv/generic.rs);
        // candle's multi-axis sum would run on one thread over strided data.
        let gb = grad
            .contiguous()?
            .apply_op1_no_bwd(&crate::fused::ChannelSums)?;
        Ok((gx, gw, Some(gb)))
    }
}
