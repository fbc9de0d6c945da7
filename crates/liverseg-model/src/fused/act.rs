//! The activations around the convolutions as fused ops: PReLU (one
//! slope or one per channel, with the slopes' gradient) and leaky ReLU
//! (a fixed slope), each one pass forward and one per gradient backward.
//! Composed from candle's element-wise ops, leaky ReLU took four passes
//! and four temporaries forward and about ten backward; in nnU-Net's plain
//! U-Net it follows every convolution, at up to 32 × 128³ voxels.

#[cfg(feature = "cuda")]
use super::download;
#[cfg(feature = "cuda")]
use super::upload;
use super::{f32_data, ncm};
use crate::buffers;
#[cfg(feature = "cuda")]
use crate::fused_cuda;
#[cfg(feature = "cuda")]
use candle_core::CudaStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// `Σ g·x` over the elements with `x ≤ 0` (the PReLU slope's gradient),
/// in 8 f64 lanes (element `i` in lane `i mod 8`) summed at the end; as
/// one AVX-512 vector where the CPU has it, with the same result.
fn neg_dot_sum(g: &[f32], x: &[f32]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU supports AVX-512F, the only feature the function
        // is compiled for (checked just above).
        #[allow(unsafe_code)]
        return unsafe { neg_dot_sum_avx512(g, x) };
    }
    neg_dot_sum_lanes(g, x, 0, [0.0; 8])
}

/// The loop of [`neg_dot_sum`] from element `from`, into lanes `s`.
fn neg_dot_sum_lanes(g: &[f32], x: &[f32], from: usize, mut s: [f64; 8]) -> f64 {
    for (i, (g, x)) in g.iter().zip(x).enumerate().skip(from) {
        if *x <= 0.0 {
            s[i % 8] += f64::from(*g) * f64::from(*x);
        }
    }
    s.iter().sum()
}

/// [`neg_dot_sum_lanes`] with its 8 lanes in one AVX-512 register.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(unsafe_code)]
fn neg_dot_sum_avx512(g: &[f32], x: &[f32]) -> f64 {
    use std::arch::x86_64::*;
    let n = g.len().min(x.len()) / 8 * 8;
    let mut s = [0f64; 8];
    // SAFETY: AVX-512F is enabled for this function (callers check the
    // CPU); every load reads 8 floats at `i + 8 ≤ n ≤` both lengths, and
    // the store writes 8 doubles into an 8-element array.
    unsafe {
        let mut acc = _mm512_setzero_pd();
        let mut i = 0;
        while i < n {
            let xv = _mm512_cvtps_pd(_mm256_loadu_ps(x.as_ptr().add(i)));
            let gv = _mm512_cvtps_pd(_mm256_loadu_ps(g.as_ptr().add(i)));
            let neg = _mm512_cmp_pd_mask::<_CMP_LE_OQ>(xv, _mm512_setzero_pd());
            acc = _mm512_mask_add_pd(acc, neg, acc, _mm512_mul_pd(gv, xv));
            i += 8;
        }
        _mm512_storeu_pd(s.as_mut_ptr(), acc);
    }
    // `n` is a multiple of 8, so the tail's lanes continue as the loop's.
    neg_dot_sum_lanes(g, x, n, s)
}

/// PReLU over `(x, a)`: `y = x` where `x > 0`, else `a·x`, with `a` one
/// shared slope or one per channel.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PReluOp;

pub(super) fn slopes<'a>(name: &str, a: &'a [f32], c: usize) -> Result<impl Fn(usize) -> f32 + 'a> {
    if a.len() != 1 && a.len() != c {
        candle_core::bail!("{name}: {} slopes for {c} channels", a.len());
    }
    Ok(move |ch: usize| if a.len() == 1 { a[0] } else { a[ch] })
}

impl CustomOp2 for PReluOp {
    fn name(&self) -> &'static str {
        "prelu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = f32_data(self.name(), s1, l1)?;
        let (_, c, m) = ncm(self.name(), l1)?;
        let a = slopes(self.name(), f32_data(self.name(), s2, l2)?, c)?;
        let y = buffers::map_planes(x, m, |p, x| {
            let a = a(p % c);
            x.iter().map(move |&x| if x > 0.0 { x } else { a * x })
        });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let (n, c, m) = ncm(self.name(), l1)?;
        let a_raw = download(s2, l2, self.name())?;
        let a = slopes(self.name(), &a_raw, c)?;
        let per_plane: Vec<f32> = (0..n * c).map(|p| a(p % c)).collect();
        let y = fused_cuda::prelu((s1, l1), (s1, l1), &per_plane, m)?;
        Ok((y, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        a: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (grad, x, a) = (grad.contiguous()?, x.contiguous()?, a.contiguous()?);
        let gx = grad.apply_op3_no_bwd(&x, &a, &PReluBackward { slope: false })?;
        let ga = grad.apply_op3_no_bwd(&x, &a, &PReluBackward { slope: true })?;
        Ok((Some(gx), Some(ga)))
    }
}

/// The gradients of [`PReluOp`] over `(grad, x, a)`: `gy` or `a·gy` for
/// the input, `Σ gy·x` over `x ≤ 0` for each slope.
#[derive(Clone, Copy, Debug)]
struct PReluBackward {
    slope: bool,
}

impl CustomOp3 for PReluBackward {
    fn name(&self) -> &'static str {
        "prelu-backward"
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
        s3: &CudaStorage,
        l3: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let name = self.name();
        let (n, c, m) = ncm(name, l1)?;
        let a_raw = download(s3, l3, name)?;
        if self.slope {
            let (_, dots) = fused_cuda::plane_sums((s1, l1), (s2, l2), n * c, m, true)?;
            let mut out = vec![0f64; a_raw.len()];
            for (p, s) in dots.iter().enumerate() {
                out[if a_raw.len() == 1 { 0 } else { p % c }] += s;
            }
            let out: Vec<f32> = out.iter().map(|&v| v as f32).collect();
            return Ok((upload(s1, &out)?, l3.shape().clone()));
        }
        let a = slopes(name, &a_raw, c)?;
        let per_plane: Vec<f32> = (0..n * c).map(|p| a(p % c)).collect();
        let gx = fused_cuda::prelu((s1, l1), (s2, l2), &per_plane, m)?;
        Ok((gx, l1.shape().clone()))
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
        let name = self.name();
        let gy = f32_data(name, s1, l1)?;
        let x = f32_data(name, s2, l2)?;
        let a_raw = f32_data(name, s3, l3)?;
        let (_, c, m) = ncm(name, l1)?;
        let a = slopes(name, a_raw, c)?;
        let m = m.max(1);
        if self.slope {
            // Per-plane sums in f64, then combined in plane order.
            let sums: Vec<f64> = gy
                .par_chunks(m)
                .zip(x.par_chunks(m))
                .map(|(gy, x)| neg_dot_sum(gy, x))
                .collect();
            let mut out = vec![0f64; a_raw.len()];
            for (p, s) in sums.iter().enumerate() {
                out[if a_raw.len() == 1 { 0 } else { p % c }] += s;
            }
            let out: Vec<f32> = out.iter().map(|&v| v as f32).collect();
            return Ok((CpuStorage::F32(out), l3.shape().clone()));
        }
        let gx = buffers::map_planes(gy, m, |p, gy| {
            let a = a(p % c);
            let x = &x[p * m..(p + 1) * m];
            gy.iter()
                .zip(x)
                .map(move |(g, x)| if *x > 0.0 { *g } else { a * g })
        });
        Ok((CpuStorage::F32(gx), l1.shape().clone()))
    }
}

/// Leaky ReLU with a fixed slope: `y = x` where `x > 0`, else `slope·x`,
/// as `torch.nn.LeakyReLU`; its gradient is `gy` where `x > 0`, else
/// `slope·gy`, as PyTorch's.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LeakyReluOp {
    pub(crate) slope: f32,
}

/// The planes of `l` and their length: one slope per plane for the CUDA
/// kernel.
#[cfg(feature = "cuda")]
fn planes(name: &str, l: &Layout) -> Result<(usize, usize)> {
    let (n, c, m) = ncm(name, l)?;
    Ok((n * c, m))
}

impl CustomOp1 for LeakyReluOp {
    fn name(&self) -> &'static str {
        "leaky-relu"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_data(self.name(), s1, l1)?;
        let a = self.slope;
        // One slope for every element: fixed-size pieces, whatever the
        // planes (an (N, C) input has planes of one element).
        let y = buffers::map_planes(x, buffers::GRAIN, |_, x| {
            x.iter().map(move |&x| if x > 0.0 { x } else { a * x })
        });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(&self, s1: &CudaStorage, l1: &Layout) -> Result<(CudaStorage, Shape)> {
        let (planes, m) = planes(self.name(), l1)?;
        let y = fused_cuda::prelu((s1, l1), (s1, l1), &vec![self.slope; planes], m)?;
        Ok((y, l1.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let backward = LeakyReluBackward { slope: self.slope };
        let gx = grad
            .contiguous()?
            .apply_op2_no_bwd(&x.contiguous()?, &backward)?;
        Ok(Some(gx))
    }
}

/// The input gradient of [`LeakyReluOp`] over `(gy, x)`.
#[derive(Clone, Copy, Debug)]
struct LeakyReluBackward {
    slope: f32,
}

impl CustomOp2 for LeakyReluBackward {
    fn name(&self) -> &'static str {
        "leaky-relu-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        let (gy, x) = (f32_data(name, s1, l1)?, f32_data(name, s2, l2)?);
        if gy.len() != x.len() {
            candle_core::bail!("{name}: {} gradients for {} inputs", gy.len(), x.len());
        }
        let (a, m) = (self.slope, buffers::GRAIN);
        let gx = buffers::map_planes(gy, m, |p, gy| {
            let x = &x[p * m..(p * m + gy.len())];
            gy.iter()
                .zip(x)
                .map(move |(g, x)| if *x > 0.0 { *g } else { a * g })
        });
        Ok((CpuStorage::F32(gx), l1.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let (planes, m) = planes(self.name(), l1)?;
        let gx = fused_cuda::prelu((s1, l1), (s2, l2), &vec![self.slope; planes], m)?;
        Ok((gx, l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// The AVX-512 masked sum is the portable loop's, bit for bit.
    #[test]
    fn vector_negative_dot_sum_equals_the_portable_loop() {
        let x: Vec<f32> = (0..1003).map(|i| ((i as f32) * 0.37).sin() * 1e3).collect();
        let g: Vec<f32> = (0..1003).map(|i| ((i as f32) * 0.11).cos()).collect();
        let want = neg_dot_sum_lanes(&g, &x, 0, [0.0; 8]);
        assert_ne!(want, 0.0);
        assert_eq!(neg_dot_sum(&g, &x), want);
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked just above).
            #[allow(unsafe_code)]
            let got = unsafe { neg_dot_sum_avx512(&g, &x) };
            assert_eq!(got, want);
        } else {
            eprintln!("SKIPPED: no AVX-512F here; the vector sum is not tested");
        }
    }

    /// Leaky ReLU and its gradient are PyTorch's formulas, element by
    /// element, over planes of uneven length (7 × 3 × 5 voxels).
    #[test]
    fn leaky_relu_and_its_gradient_follow_pytorch() -> Result<()> {
        let dev = Device::Cpu;
        let vals: Vec<f32> = (0..2 * 3 * 105)
            .map(|i| ((i as f32) * 0.731).sin() * 3.0 - 0.2)
            .collect();
        let x = Var::from_vec(vals.clone(), (2, 3, 7, 3, 5), &dev)?;
        let op = LeakyReluOp { slope: 0.01 };
        let y = x.as_tensor().apply_op1(op)?;
        let weights: Vec<f32> = (0..vals.len()).map(|i| 1.0 + (i % 13) as f32).collect();
        let w = Tensor::from_vec(weights.clone(), (2, 3, 7, 3, 5), &dev)?;
        let grads = (&y * &w)?.sum_all()?.backward()?;
        let gx = grads.get(x.as_tensor()).expect("x takes part");
        let y = y.flatten_all()?.to_vec1::<f32>()?;
        let gx = gx.flatten_all()?.to_vec1::<f32>()?;
        let mut negatives = 0;
        for (i, &v) in vals.iter().enumerate() {
            let (want_y, want_g) = if v > 0.0 {
                (v, weights[i])
            } else {
                negatives += 1;
                (0.01 * v, 0.01 * weights[i])
            };
            assert_eq!(y[i], want_y, "y at {i}");
            assert_eq!(gx[i], want_g, "gradient at {i}");
        }
        assert!(negatives > 100 && negatives < vals.len() - 100);
        Ok(())
    }
}
