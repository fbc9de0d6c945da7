//! The U-Net's two convolutions that are matrix products, for devices
//! without the CPU kernels (CUDA, where they run as one cuBLAS GEMM
//! instead of a sum of 2-D convolutions per depth tap).
//!
//! A 1 × 1 × 1 convolution (the output head) multiplies the weight
//! `(O, C)` with each sample's `(C, D·H·W)` voxels. A transposed
//! convolution whose kernel equals its stride, without padding (the
//! U-Net's up-sampling), writes each input voxel's `(O, kd, kh, kw)` block
//! into its own corner of the output: one product `(O·kd·kh·kw, C) ×
//! (C, D·H·W)` and a permutation interleave the blocks. Both are candle
//! ops with their own backward passes; the tests compare them with the CPU
//! kernels, values and gradients.

use super::geom::ConvGeom;
use candle_core::{Result, Tensor};

/// True when `g` is a 1 × 1 × 1 convolution without stride or padding.
pub(crate) fn is_pointwise(g: &ConvGeom) -> bool {
    g.kernel == [1; 3] && g.stride == [1; 3] && g.padding == [0; 3]
}

/// True when a transposed convolution of `g` (and `output_padding`)
/// tiles its output: kernel equal to stride, no padding, no dilation.
pub(crate) fn is_tiling(g: &ConvGeom, output_padding: [usize; 3]) -> bool {
    g.kernel == g.stride && g.padding == [0; 3] && g.dilation == [1; 3] && output_padding == [0; 3]
}

/// A 1 × 1 × 1 convolution: `x (N, C, D, H, W)`, `w (O, C, 1, 1, 1)`.
pub(crate) fn pointwise(x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let (n, c, d, h, wd) = x.dims5()?;
    let o = w.dim(0)?;
    let w = w.reshape((o, c))?;
    let y = w
        .broadcast_matmul(&x.reshape((n, c, d * h * wd))?)?
        .reshape((n, o, d, h, wd))?;
    super::add_bias(y, bias)
}

/// A transposed convolution whose kernel `k` equals its stride:
/// `x (N, C, D, H, W)`, `w (C, O, kd, kh, kw)`, output
/// `(N, O, D·kd, H·kh, W·kw)`.
pub(crate) fn tiling_transpose(x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let (n, c, d, h, wd) = x.dims5()?;
    let (_, o, kd, kh, kw) = w.dims5()?;
    // (O·kd·kh·kw, C) × (N, C, D·H·W) → (N, O·kd·kh·kw, D·H·W).
    let wt = w.reshape((c, o * kd * kh * kw))?.t()?.contiguous()?;
    let blocks = wt.broadcast_matmul(&x.reshape((n, c, d * h * wd))?)?;
    // (N, O, kd, kh, kw, D, H, W) → (N, O, D, kd, H, kh, W, kw).
    let y = blocks
        .reshape(vec![n, o, kd, kh, kw, d, h, wd])?
        .permute(vec![0, 1, 5, 2, 6, 3, 7, 4])?
        .contiguous()?
        .reshape((n, o, d * kd, h * kh, wd * kw))?;
    super::add_bias(y, bias)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::{Conv3d, ConvTranspose3d, ConvTranspose3dConfig};
    use crate::test_util::compare_with_gradients;
    use candle_core::Module;

    #[test]
    fn pointwise_convolutions_match_the_cpu_kernels_with_gradients() {
        let g = ConvGeom::cubic(1, 1, 0, 1);
        assert!(is_pointwise(&g));
        assert!(!is_pointwise(&ConvGeom::cubic(1, 2, 0, 1)));
        let product = |x: &Tensor, w: &Tensor, b: &Tensor| pointwise(x, w, Some(b)).unwrap();
        let kernels = move |x: &Tensor, w: &Tensor, b: &Tensor| {
            Conv3d::from_tensors(w.clone(), Some(b.clone()), g)
                .unwrap()
                .forward(x)
                .unwrap()
        };
        compare_with_gradients(&[2, 5, 4, 3, 6], &[3, 5, 1, 1, 1], 3, &product, &kernels);
    }

    #[test]
    fn tiling_transposed_convolutions_match_the_cpu_kernels_with_gradients() {
        // The U-Net's cubic up-sampling, and nnU-Net's anisotropic one
        // (no up-sampling along the first axis).
        for (kernel, ws) in [([2, 2, 2], [4, 3, 2, 2, 2]), ([1, 2, 2], [4, 3, 1, 2, 2])] {
            let cfg = ConvTranspose3dConfig {
                geom: ConvGeom {
                    kernel,
                    stride: kernel,
                    padding: [0; 3],
                    dilation: [1; 3],
                },
                output_padding: [0; 3],
                bias: true,
            };
            assert!(is_tiling(&cfg.geom, cfg.output_padding));
            let product =
                |x: &Tensor, w: &Tensor, b: &Tensor| tiling_transpose(x, w, Some(b)).unwrap();
            let kernels = move |x: &Tensor, w: &Tensor, b: &Tensor| {
                ConvTranspose3d::from_tensors(w.clone(), Some(b.clone()), cfg)
                    .unwrap()
                    .forward(x)
                    .unwrap()
            };
            compare_with_gradients(&[2, 4, 3, 5, 6], &ws, 3, &product, &kernels);
        }
        assert!(!is_tiling(&ConvGeom::cubic(3, 2, 1, 1), [1; 3]));
    }
}
