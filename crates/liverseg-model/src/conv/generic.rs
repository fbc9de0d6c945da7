//! Device-generic 3-D convolutions composed from candle's 2-D ones, for
//! devices without the CPU kernels of this module (CUDA today).
//!
//! A 3-D convolution is a sum over the depth taps `kd` of 2-D convolutions
//! of the depth slices it reads: the slices for tap `kd` (depths
//! `od·s + kd·d − p`) are gathered with `index_select`, folded into the
//! batch, convolved with the weight's `kd` plane, and the results summed.
//! The transposed convolution scatters the same way with `index_add`.
//! Everything is a candle op with its own backward pass, so these run and
//! differentiate on any device candle supports. They are slower than the
//! CPU kernels and only accept geometries whose height and width share
//! stride, padding, dilation (and output padding), which candle's 2-D ops
//! require; the tests compare them with the CPU kernels, values and
//! gradients.

use super::geom::ConvGeom;
use candle_core::{Result, Tensor};

/// `(padding, stride, dilation)` shared by height and width.
fn planar(g: &ConvGeom, output_padding: [usize; 3]) -> Result<(usize, usize, usize)> {
    if g.padding[1] != g.padding[2]
        || g.stride[1] != g.stride[2]
        || g.dilation[1] != g.dilation[2]
        || output_padding[1] != output_padding[2]
    {
        candle_core::bail!(
            "3-D convolution on this device needs equal height and width stride, padding and dilation, got {g:?}"
        );
    }
    Ok((g.padding[1], g.stride[1], g.dilation[1]))
}

fn indices(v: Vec<u32>, like: &Tensor) -> Result<Tensor> {
    let n = v.len();
    Tensor::from_vec(v, n, like.device())
}

/// `conv3d(x, w) (+ bias)` with `x (N, C, D, H, W)`, `w (O, C, kd, kh, kw)`.
pub(crate) fn conv3d(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    g: &ConvGeom,
) -> Result<Tensor> {
    let (p, s, dil) = planar(g, [0; 3])?;
    let (n, c, d, h, wd) = x.dims5()?;
    let (o, _, kd, _, _) = w.dims5()?;
    let dout = g.conv_out([d, h, wd]).ok_or_else(|| {
        candle_core::Error::Msg(format!(
            "conv3d: input {:?} smaller than the kernel",
            [d, h, wd]
        ))
    })?;
    let xp = x.pad_with_zeros(2, g.padding[0], g.padding[0])?;
    let mut acc: Option<Tensor> = None;
    for k in 0..kd {
        let idx: Vec<u32> = (0..dout[0])
            .map(|od| (od * g.stride[0] + k * g.dilation[0]) as u32)
            .collect();
        let slices = xp
            .index_select(&indices(idx, x)?, 2)?
            .permute((0, 2, 1, 3, 4))?
            .contiguous()?
            .reshape((n * dout[0], c, h, wd))?;
        let plane = w.narrow(2, k, 1)?.squeeze(2)?.contiguous()?;
        let y = slices.conv2d(&plane, p, s, dil, 1)?;
        acc = Some(match acc {
            None => y,
            Some(a) => (a + y)?,
        });
    }
    let acc = acc.ok_or_else(|| candle_core::Error::Msg("conv3d: empty kernel".into()))?;
    let y = acc
        .reshape((n, dout[0], o, dout[1], dout[2]))?
        .permute((0, 2, 1, 3, 4))?
        .contiguous()?;
    super::add_bias(y, bias)
}

/// `conv_transpose3d(x, w) (+ bias)` with `x (N, Ci, D, H, W)` and `w (Ci,
/// Co, kd, kh, kw)`.
pub(crate) fn conv_transpose3d(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    g: &ConvGeom,
    output_padding: [usize; 3],
) -> Result<Tensor> {
    let (p, s, dil) = planar(g, output_padding)?;
    let (n, ci, d, h, wd) = x.dims5()?;
    let (_, co, kd, _, _) = w.dims5()?;
    let dout = g
        .conv_transpose_out([d, h, wd], output_padding)
        .ok_or_else(|| candle_core::Error::Msg("conv_transpose3d: empty output".into()))?;
    let planes = x
        .permute((0, 2, 1, 3, 4))?
        .contiguous()?
        .reshape((n * d, ci, h, wd))?;
    let mut y = Tensor::zeros((n, co, dout[0], dout[1], dout[2]), x.dtype(), x.device())?;
    for k in 0..kd {
        // Input depth i lands on output depth i·s + k·d − p.
        let (src, dst): (Vec<u32>, Vec<u32>) = (0..d)
            .filter_map(|i| {
                let t = (i * g.stride[0] + k * g.dilation[0]) as isize - g.padding[0] as isize;
                (t >= 0 && (t as usize) < dout[0]).then_some((i as u32, t as u32))
            })
            .unzip();
        if src.is_empty() {
            continue;
        }
        let plane = w.narrow(2, k, 1)?.squeeze(2)?.contiguous()?;
        let z = planes.conv_transpose2d(&plane, p, output_padding[1], s, dil)?;
        let z = z
            .reshape((n, d, co, dout[1], dout[2]))?
            .permute((0, 2, 1, 3, 4))?
            .contiguous()?
            .index_select(&indices(src, x)?, 2)?;
        y = y.index_add(&indices(dst, x)?, &z, 2)?;
    }
    super::add_bias(y, bias)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::{Conv3d, ConvTranspose3d, ConvTranspose3dConfig};
    use crate::test_util::{compare_with_gradients as compare, seeded};
    use candle_core::Module;

    #[test]
    fn composed_convolutions_match_the_cpu_kernels_with_gradients() {
        for g in [
            ConvGeom::cubic(3, 1, 1, 1),
            ConvGeom::cubic(3, 2, 1, 1),
            ConvGeom {
                kernel: [3, 3, 3],
                stride: [1, 2, 2],
                padding: [2, 1, 1],
                dilation: [2, 1, 1],
            },
        ] {
            let generic =
                move |x: &Tensor, w: &Tensor, b: &Tensor| conv3d(x, w, Some(b), &g).unwrap();
            let kernels = move |x: &Tensor, w: &Tensor, b: &Tensor| {
                Conv3d::from_tensors(w.clone(), Some(b.clone()), g)
                    .unwrap()
                    .forward(x)
                    .unwrap()
            };
            compare(&[2, 3, 6, 5, 9], &[4, 3, 3, 3, 3], 4, &generic, &kernels);
        }
        let cfg = ConvTranspose3dConfig {
            geom: ConvGeom::cubic(3, 2, 1, 1),
            output_padding: [1; 3],
            bias: true,
        };
        let generic = move |x: &Tensor, w: &Tensor, b: &Tensor| {
            conv_transpose3d(x, w, Some(b), &cfg.geom, cfg.output_padding).unwrap()
        };
        let kernels = move |x: &Tensor, w: &Tensor, b: &Tensor| {
            ConvTranspose3d::from_tensors(w.clone(), Some(b.clone()), cfg)
                .unwrap()
                .forward(x)
                .unwrap()
        };
        compare(&[2, 4, 3, 4, 9], &[4, 3, 3, 3, 3], 3, &generic, &kernels);
    }

    #[test]
    fn unequal_height_and_width_geometry_is_refused() {
        let g = ConvGeom {
            kernel: [3, 3, 1],
            stride: [1, 1, 1],
            padding: [1, 1, 0],
            dilation: [1, 1, 1],
        };
        let x = seeded(&[1, 1, 4, 4, 4], 0);
        let w = seeded(&[1, 1, 3, 3, 1], 0);
        let err = conv3d(&x, &w, None, &g).unwrap_err().to_string();
        assert!(err.contains("equal height and width"), "{err}");
    }
}
