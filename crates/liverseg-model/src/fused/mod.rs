//! Fused CPU kernels for the element-wise layers around every convolution:
//! batch/instance normalisation, PReLU and leaky ReLU (`act.rs`), each one pass over the data
//! forward and (at most) two backward, with hand-written gradients.
//!
//! Composed from candle's element-wise ops these layers cost a dozen full
//! passes and as many temporaries per call, and their backward passes were
//! the largest item of a training step (see `docs/benchmarks.md`). The
//! layers in `layers.rs` use these ops on the CPU and on CUDA (the `cuda`
//! feature: `fused_cuda.rs`, the same formulas as GPU kernels; compiled
//! by NVRTC in a test, compared with the CPU by `liverseg device-check`,
//! not yet run on a GPU) and the composed candle ops elsewhere.
//!
//! Reductions run in a fixed order (per channel, then per sample, in 8
//! f64 lanes), so results do not depend on the thread count.

mod act;

use act::slopes;
pub(crate) use act::{LeakyReluOp, PReluOp};

use crate::buffers;
#[cfg(feature = "cuda")]
use crate::fused_cuda;
#[cfg(feature = "cuda")]
use candle_core::CudaStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::{Arc, OnceLock};

/// The contiguous f32 data of a storage, or an error naming the op.
pub(crate) fn f32_data<'a>(name: &str, s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let data = match s {
        CpuStorage::F32(v) => v.as_slice(),
        _ => candle_core::bail!("{name}: only f32 tensors are supported"),
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("{name}: operands must be contiguous"),
    }
}

/// `(N, C, M)` of an `(N, C, …)` tensor with `M` voxels per plane.
pub(super) fn ncm(name: &str, l: &Layout) -> Result<(usize, usize, usize)> {
    let d = l.shape().dims();
    if d.len() < 2 {
        candle_core::bail!("{name}: expected an (N, C, …) tensor, got shape {d:?}");
    }
    Ok((d[0], d[1], d[2..].iter().product()))
}

/// `(Σ a, Σ a·b)` over two equally long slices, in f64, in a fixed order.
///
/// On a CPU with AVX-512 the 8 lanes run as one vector (the portable
/// loop is not vectorised by the compiler); each lane's sum takes the same
/// operations in the same order, so the result is identical.
fn dot_sums(a: &[f32], b: &[f32]) -> (f64, f64) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU supports AVX-512F, the only feature the function
        // is compiled for (checked just above).
        #[allow(unsafe_code)]
        return unsafe { dot_sums_avx512(a, b) };
    }
    dot_sums_lanes(a, b)
}

/// [`dot_sums_lanes`] with its 8 lanes in one AVX-512 register: the same
/// widening, products and sums per lane, in the same order.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(unsafe_code)]
fn dot_sums_avx512(a: &[f32], b: &[f32]) -> (f64, f64) {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len()) / 8 * 8;
    let (mut sa, mut pa) = ([0f64; 8], [0f64; 8]);
    // SAFETY: AVX-512F is enabled for this function (callers check the
    // CPU); every load reads 8 floats at `i + 8 ≤ n ≤` both lengths, and
    // the stores write 8 doubles into 8-element arrays.
    unsafe {
        let (mut s, mut p) = (_mm512_setzero_pd(), _mm512_setzero_pd());
        let mut i = 0;
        while i < n {
            let x = _mm512_cvtps_pd(_mm256_loadu_ps(a.as_ptr().add(i)));
            let y = _mm512_cvtps_pd(_mm256_loadu_ps(b.as_ptr().add(i)));
            s = _mm512_add_pd(s, x);
            p = _mm512_add_pd(p, _mm512_mul_pd(x, y));
            i += 8;
        }
        _mm512_storeu_pd(sa.as_mut_ptr(), s);
        _mm512_storeu_pd(pa.as_mut_ptr(), p);
    }
    dot_sums_finish(&a[n..], &b[n..], sa, pa)
}

/// The loop of [`dot_sums`]: 8 independent f64 lanes, summed at the end.
fn dot_sums_lanes(a: &[f32], b: &[f32]) -> (f64, f64) {
    let (mut s, mut p) = ([0f64; 8], [0f64; 8]);
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            s[i] += f64::from(x[i]);
            p[i] += f64::from(x[i]) * f64::from(y[i]);
        }
    }
    dot_sums_finish(ra, rb, s, p)
}

/// The end of [`dot_sums`] in either form: the elements after the last
/// whole 8 added to lane 0, then the lanes summed in order.
fn dot_sums_finish(a: &[f32], b: &[f32], mut s: [f64; 8], mut p: [f64; 8]) -> (f64, f64) {
    for (x, y) in a.iter().zip(b) {
        s[0] += f64::from(*x);
        p[0] += f64::from(*x) * f64::from(*y);
    }
    (s.iter().sum(), p.iter().sum())
}

/// The planes `(sample, channel)` of group `g`: every sample of channel `g`
/// for batch statistics, the single plane `g` for instance statistics.
fn group_planes(g: usize, n: usize, c: usize, per_sample: bool) -> Vec<usize> {
    if per_sample {
        vec![g]
    } else {
        (0..n).map(|s| s * c + g).collect()
    }
}

/// `f(plane)` summed over the planes of every group (see [`group_planes`]),
/// in plane order, one parallel task per group.
fn group_sums(
    n: usize,
    c: usize,
    per_sample: bool,
    f: impl Fn(usize) -> (f64, f64) + Sync,
) -> Vec<(f64, f64)> {
    let groups = if per_sample { n * c } else { c };
    (0..groups)
        .into_par_iter()
        .map(|g| {
            group_planes(g, n, c, per_sample)
                .into_iter()
                .map(&f)
                .fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1))
        })
        .collect()
}

/// Whether the fused ops run on `device`: the CPU, and CUDA in a build
/// with the `cuda` feature.
pub(crate) fn supported(device: &candle_core::Device) -> bool {
    device.is_cpu() || (cfg!(feature = "cuda") && device.is_cuda())
}

/// Per-group mean and biased variance of an `(N, C, …)` tensor: one group
/// per channel (batch normalisation) or per `(sample, channel)` (instance
/// normalisation). Output: a `(2, groups)` tensor, means then variances.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GroupStats {
    pub per_sample: bool,
}

impl CustomOp1 for GroupStats {
    fn name(&self) -> &'static str {
        "norm-stats"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_data(self.name(), s, l)?;
        let (n, c, m) = ncm(self.name(), l)?;
        let plane = |p: usize| &x[p * m..(p + 1) * m];
        let (out, shape) = self.finish(n, c, m, |p| dot_sums(plane(p), plane(p)));
        Ok((CpuStorage::F32(out), shape))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
        let (n, c, m) = ncm(self.name(), l)?;
        let (s1, s2) = fused_cuda::plane_sums((s, l), (s, l), n * c, m, false)?;
        let (out, shape) = self.finish(n, c, m, |p| (s1[p], s2[p]));
        Ok((upload(s, &out)?, shape))
    }
}

impl GroupStats {
    /// Means then variances from each plane's `(Σ x, Σ x²)`.
    fn finish(
        &self,
        n: usize,
        c: usize,
        m: usize,
        plane_sums: impl Fn(usize) -> (f64, f64) + Sync,
    ) -> (Vec<f32>, Shape) {
        let groups = if self.per_sample { n * c } else { c };
        let count = (groups_len(n, self.per_sample) * m).max(1) as f64;
        let stats: Vec<(f32, f32)> = group_sums(n, c, self.per_sample, plane_sums)
            .into_iter()
            .map(|(s1, s2)| {
                let mean = s1 / count;
                (mean as f32, (s2 / count - mean * mean).max(0.0) as f32)
            })
            .collect();
        let mut out: Vec<f32> = stats.iter().map(|s| s.0).collect();
        out.extend(stats.iter().map(|s| s.1));
        (out, Shape::from((2, groups)))
    }
}

/// A small host vector as a device tensor's storage, on `like`'s device.
#[cfg(feature = "cuda")]
pub(super) fn upload(like: &CudaStorage, v: &[f32]) -> Result<CudaStorage> {
    use candle_core::backend::BackendStorage;
    let dev = like.device().clone();
    let slice = dev.clone_htod(v)?;
    Ok(CudaStorage::wrap_cuda_slice(slice, dev))
}

/// A small device operand on the host (affine parameters, slopes).
#[cfg(feature = "cuda")]
pub(super) fn download(s: &CudaStorage, l: &Layout, name: &str) -> Result<Vec<f32>> {
    use candle_core::backend::BackendStorage;
    let (a, b) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg(format!("{name}: operands must be contiguous")))?;
    s.device()
        .clone_dtoh(&s.as_cuda_slice::<f32>()?.slice(a..b))
}

fn groups_len(n: usize, per_sample: bool) -> usize {
    if per_sample { 1 } else { n }
}

/// The sum of every channel of an `(N, C, …)` tensor over samples and
/// voxels (a bias gradient), as a `(C)` tensor.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ChannelSums;

impl CustomOp1 for ChannelSums {
    fn name(&self) -> &'static str {
        "channel-sums"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_data(self.name(), s, l)?;
        let (n, c, m) = ncm(self.name(), l)?;
        // Σ a comes from one pass over the plane (the paired product is
        // discarded): no second operand to allocate or stream.
        let plane = |p: usize| &x[p * m..(p + 1) * m];
        let sums: Vec<f32> = group_sums(n, c, false, |p| dot_sums(plane(p), plane(p)))
            .into_iter()
            .map(|(sum, _)| sum as f32)
            .collect();
        Ok((CpuStorage::F32(sums), Shape::from(c)))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
        let (n, c, m) = ncm(self.name(), l)?;
        let (s1, _) = fused_cuda::plane_sums((s, l), (s, l), n * c, m, false)?;
        let sums: Vec<f32> = group_sums(n, c, false, |p| (s1[p], 0.0))
            .into_iter()
            .map(|(sum, _)| sum as f32)
            .collect();
        Ok((upload(s, &sums)?, Shape::from(c)))
    }
}

/// Normalisation with fixed statistics and a per-channel affine:
/// `y = (x − mean_g) · invstd_g · γ_c + β_c` over `(x, γ, β)`.
///
/// `batch_stats` says whether `mean`/`invstd` were computed from this very
/// input (training-mode batch norm, instance norm), which adds their
/// dependence on `x` to the input gradient; with running statistics
/// (evaluation) they are constants.
#[derive(Clone, Debug)]
pub(crate) struct NormOp {
    pub per_sample: bool,
    pub batch_stats: bool,
    pub mean: Vec<f32>,
    pub invstd: Vec<f32>,
}

impl NormOp {
    fn group(&self, plane: usize, c: usize) -> usize {
        if self.per_sample { plane } else { plane % c }
    }

    /// Fails unless `γ` and `β` have `c` entries and the statistics one
    /// per group of an `(n, c, …)` input.
    fn check_params(&self, n: usize, c: usize, gamma: &[f32], beta: &[f32]) -> Result<()> {
        let groups = if self.per_sample { n * c } else { c };
        if gamma.len() != c || beta.len() != c || self.mean.len() != groups {
            candle_core::bail!("norm: {c} channels but parameters of another size");
        }
        Ok(())
    }

    /// `(scale, shift)` of plane `p` (of `c` channels): the forward pass is
    /// `y = x·scale + shift` there.
    fn plane_affine(&self, p: usize, c: usize, gamma: &[f32], beta: &[f32]) -> (f32, f32) {
        let (ch, g) = (p % c, self.group(p, c));
        let scale = self.invstd[g] * gamma[ch];
        (scale, beta[ch] - self.mean[g] * scale)
    }
}

impl CustomOp3 for NormOp {
    fn name(&self) -> &'static str {
        "norm"
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
        let x = f32_data(name, s1, l1)?;
        let gamma = f32_data(name, s2, l2)?;
        let beta = f32_data(name, s3, l3)?;
        let (n, c, m) = ncm(name, l1)?;
        self.check_params(n, c, gamma, beta)?;
        let y = buffers::map_planes(x, m, |p, x| {
            let (scale, shift) = self.plane_affine(p, c, gamma, beta);
            x.iter().map(move |x| x * scale + shift)
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
        s3: &CudaStorage,
        l3: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let name = self.name();
        let (gamma, beta) = (download(s2, l2, name)?, download(s3, l3, name)?);
        let (n, c, m) = ncm(name, l1)?;
        self.check_params(n, c, &gamma, &beta)?;
        let (scale, shift): (Vec<f32>, Vec<f32>) = (0..n * c)
            .map(|p| self.plane_affine(p, c, &gamma, &beta))
            .unzip();
        let zero = vec![0f32; n * c];
        let y = fused_cuda::plane_affine((s1, l1), (s1, l1), [&scale, &zero, &shift], m)?;
        Ok((y, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let x = x.contiguous()?;
        let gamma = gamma.contiguous()?;
        // Both parts need the same group sums: the first computes them.
        let sums = Arc::new(OnceLock::new());
        let g = grad.apply_op3_no_bwd(
            &x,
            &gamma,
            &NormBackward {
                op: self.clone(),
                part: Part::Input,
                sums: sums.clone(),
            },
        )?;
        let gg = grad.apply_op3_no_bwd(
            &x,
            &gamma,
            &NormBackward {
                op: self.clone(),
                part: Part::Affine,
                sums,
            },
        )?;
        let c = gamma.elem_count();
        Ok((
            Some(g),
            Some(gg.narrow(0, 0, c)?),
            Some(gg.narrow(0, c, c)?),
        ))
    }
}

#[derive(Clone, Copy, Debug)]
enum Part {
    Input,
    Affine,
}

/// The gradients of [`NormOp`] over `(grad, x, γ)`: the input gradient, or
/// `(∂γ, ∂β)` stacked into one `2C` vector.
#[derive(Clone, Debug)]
struct NormBackward {
    op: NormOp,
    part: Part,
    /// The CPU's group sums, shared by the two parts of one backward pass
    /// (same gradient, same input).
    sums: Arc<OnceLock<Vec<(f64, f64)>>>,
}

impl NormBackward {
    /// `(Σ gy, Σ gy·x̂)` for every group, from each plane's
    /// `(Σ gy, Σ gy·x)`.
    fn group_sums(
        &self,
        n: usize,
        c: usize,
        plane_sums: impl Fn(usize) -> (f64, f64) + Sync,
    ) -> Vec<(f64, f64)> {
        group_sums(n, c, self.op.per_sample, plane_sums)
            .into_iter()
            .enumerate()
            .map(|(g, (sg, sgx))| {
                // Σ gy·x̂ = invstd · (Σ gy·x − mean · Σ gy).
                let (mean, invstd) = (f64::from(self.op.mean[g]), f64::from(self.op.invstd[g]));
                (sg, invstd * (sgx - mean * sg))
            })
            .collect()
    }
}

impl NormBackward {
    /// `(∂γ, ∂β)` stacked, from the group sums.
    fn affine(&self, sums: &[(f64, f64)], c: usize) -> Vec<f32> {
        let mut out = vec![0f32; 2 * c];
        for (g, (sg, sgx)) in sums.iter().enumerate() {
            let ch = if self.op.per_sample { g % c } else { g };
            out[ch] += *sgx as f32;
            out[c + ch] += *sg as f32;
        }
        out
    }
}

impl CustomOp3 for NormBackward {
    fn name(&self) -> &'static str {
        "norm-backward"
    }

    /// The same gradients as the CPU's, written `α·gy + β·x + γ` per plane.
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
        let gamma = download(s3, l3, name)?;
        let (n, c, m) = ncm(name, l1)?;
        let (sg, sgx) = fused_cuda::plane_sums((s1, l1), (s2, l2), n * c, m, false)?;
        let sums = self.group_sums(n, c, |p| (sg[p], sgx[p]));
        if let Part::Affine = self.part {
            return Ok((upload(s1, &self.affine(&sums, c))?, Shape::from(2 * c)));
        }
        let count = (groups_len(n, self.op.per_sample) * m).max(1) as f32;
        let (mut ka, mut kb, mut kc) = (vec![0f32; n * c], vec![0f32; n * c], vec![0f32; n * c]);
        for p in 0..n * c {
            let (ch, g) = (p % c, self.op.group(p, c));
            let (mean, invstd) = (self.op.mean[g], self.op.invstd[g]);
            let k = gamma[ch] * invstd;
            ka[p] = k;
            if self.op.batch_stats {
                // k·(gy − mg − (x − mean)·invstd·mgx)
                let mg = sums[g].0 as f32 / count;
                let mgx = sums[g].1 as f32 / count;
                kb[p] = -k * invstd * mgx;
                kc[p] = -k * mg + k * mean * invstd * mgx;
            }
        }
        let gx = fused_cuda::plane_affine((s1, l1), (s2, l2), [&ka, &kb, &kc], m)?;
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
        let gamma = f32_data(name, s3, l3)?;
        let (n, c, m) = ncm(name, l1)?;
        let span = |p: usize| p * m..(p + 1) * m;
        let sums = self
            .sums
            .get_or_init(|| self.group_sums(n, c, |p| dot_sums(&gy[span(p)], &x[span(p)])));
        match self.part {
            Part::Affine => Ok((CpuStorage::F32(self.affine(sums, c)), Shape::from(2 * c))),
            Part::Input => {
                let count = (groups_len(n, self.op.per_sample) * m).max(1) as f32;
                let batch_stats = self.op.batch_stats;
                let gx = buffers::map_planes(gy, m, |p, gy| {
                    let (ch, g) = (p % c, self.op.group(p, c));
                    let (mean, invstd) = (self.op.mean[g], self.op.invstd[g]);
                    let k = gamma[ch] * invstd;
                    // With batch statistics, gx = γ·invstd·(gy − Σgy/M −
                    // x̂·Σ(gy·x̂)/M); with running ones, γ·invstd·gy.
                    let (mg, mgx) = match batch_stats {
                        true => (sums[g].0 as f32 / count, sums[g].1 as f32 / count),
                        false => (0.0, 0.0),
                    };
                    gy.iter().zip(&x[span(p)]).map(move |(gy, x)| {
                        let xhat = (x - mean) * invstd;
                        k * (gy - mg - xhat * mgx)
                    })
                });
                Ok((CpuStorage::F32(gx), l1.shape().clone()))
            }
        }
    }
}

/// Batch normalisation with running statistics followed by PReLU, in one
/// pass (MONAI's ADN block at inference): `y = a·v` for `v = x·scale +
/// shift ≤ 0`, else `v`, per channel, with exactly the operations of
/// [`NormOp`] then [`PReluOp`], so the result is bit for bit theirs with
/// one pass over the activations instead of two. Inference only: it has
/// no gradient (candle reports one asked for as unsupported).
#[derive(Clone, Debug)]
pub(crate) struct AffinePreluOp {
    /// The normalisation, with running statistics.
    pub(crate) norm: NormOp,
    /// `γ` and `β`, per channel.
    pub(crate) gamma: Vec<f32>,
    pub(crate) beta: Vec<f32>,
    /// One slope, or one per channel.
    pub(crate) slopes: Vec<f32>,
}

impl CustomOp1 for AffinePreluOp {
    fn name(&self) -> &'static str {
        "affine-prelu"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_data(self.name(), s1, l1)?;
        let (n, c, m) = ncm(self.name(), l1)?;
        let (gamma, beta) = (&self.gamma, &self.beta);
        self.norm.check_params(n, c, gamma, beta)?;
        let a = slopes(self.name(), &self.slopes, c)?;
        let y = buffers::map_planes(x, m, |p, x| {
            let (scale, shift) = self.norm.plane_affine(p, c, gamma, beta);
            let a = a(p % c);
            x.iter().map(move |x| {
                let v = x * scale + shift;
                if v > 0.0 { v } else { a * v }
            })
        });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AVX-512 sums are the portable loop's, bit for bit.
    #[test]
    fn vector_dot_sums_equal_the_portable_loop() {
        let a: Vec<f32> = (0..1003).map(|i| ((i as f32) * 0.37).sin() * 1e3).collect();
        let b: Vec<f32> = (0..1003).map(|i| ((i as f32) * 0.11).cos()).collect();
        let want = dot_sums_lanes(&a, &b);
        assert_eq!(dot_sums(&a, &b), want);
        assert_ne!(want, (0.0, 0.0));
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            #[allow(unsafe_code)]
            // SAFETY: the CPU has AVX-512F (checked just above).
            let got = unsafe { dot_sums_avx512(&a, &b) };
            assert_eq!(got, want);
        } else {
            eprintln!("SKIPPED: no AVX-512F here; the vector dot sums are not tested");
        }
    }
}
