//! The CUDA side of the fused norm and PReLU ops (`fused.rs`): three
//! kernels, compiled once per process by NVRTC and loaded per device.
//!
//! - `plane_dot`: per `(sample, channel)` plane, `(Σ a, Σ a·b)` (or
//!   `Σ a·b` over `b ≤ 0`, PReLU's slope gradient) in double precision, one
//!   block per plane, reduced in a fixed tree order (deterministic).
//! - `plane_affine`: `out = α_p·a + β_p·b + γ_p` with one coefficient
//!   triple per plane: normalisation forward (`b` unused, `β = 0`) and its
//!   input gradient (`gy`, `x`).
//! - `prelu`: `out = x > 0 ? g : slope_p·g`, forward (`g = x`) and input
//!   gradient (`g = gy`).
//!
//! Statistics are combined from the per-plane sums on the host, in plane
//! order, as the CPU ops combine theirs; the per-plane coefficients are
//! computed there too (a few hundred numbers), so each op is one or two
//! passes over the voxels on the GPU.

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::CudaDevice;
use candle_core::cuda_backend::cudarc::driver::{CudaView, LaunchConfig, PushKernelArg};
use candle_core::{CudaStorage, Layout, Result};
use std::sync::OnceLock;

/// The kernels' CUDA C source.
pub(crate) const SOURCE: &str = r#"
#define THREADS 256
extern "C" __global__ void plane_dot(const float* a, const float* b, double* s1, double* s2,
                                     unsigned long long m, int masked) {
    const unsigned long long p = blockIdx.x;
    const float* pa = a + p * m;
    const float* pb = b + p * m;
    double t1 = 0.0, t2 = 0.0;
    for (unsigned long long i = threadIdx.x; i < m; i += THREADS) {
        const double x = (double)pa[i], y = (double)pb[i];
        if (masked) {
            if (y <= 0.0) t2 += x * y;
        } else {
            t1 += x;
            t2 += x * y;
        }
    }
    __shared__ double r1[THREADS];
    __shared__ double r2[THREADS];
    r1[threadIdx.x] = t1;
    r2[threadIdx.x] = t2;
    __syncthreads();
    for (unsigned int s = THREADS / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) {
            r1[threadIdx.x] += r1[threadIdx.x + s];
            r2[threadIdx.x] += r2[threadIdx.x + s];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        s1[p] = r1[0];
        s2[p] = r2[0];
    }
}

extern "C" __global__ void plane_affine(const float* a, const float* b, float* out,
                                        const float* ka, const float* kb, const float* kc,
                                        unsigned long long m, unsigned long long n) {
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (unsigned long long)gridDim.x * blockDim.x) {
        const unsigned long long p = i / m;
        out[i] = ka[p] * a[i] + kb[p] * b[i] + kc[p];
    }
}

extern "C" __global__ void prelu(const float* g, const float* x, float* out, const float* slope,
                                 unsigned long long m, unsigned long long n) {
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (unsigned long long)gridDim.x * blockDim.x) {
        out[i] = x[i] > 0.0f ? g[i] : slope[i / m] * g[i];
    }
}
"#;

const MODULE: &str = "liverseg_fused";
const THREADS: u32 = 256;

/// The PTX of [`SOURCE`], compiled by NVRTC on first use.
pub(crate) fn ptx() -> Result<&'static str> {
    static PTX: OnceLock<std::result::Result<String, String>> = OnceLock::new();
    PTX.get_or_init(|| {
        candle_core::cuda_backend::cudarc::nvrtc::compile_ptx(SOURCE)
            .map(|p| p.to_src())
            .map_err(|e| format!("NVRTC cannot compile the fused kernels: {e:?}"))
    })
    .as_deref()
    .map_err(|e| candle_core::Error::Msg(e.clone()))
}

/// A contiguous f32 view of an operand.
fn view<'a>(s: &'a CudaStorage, l: &Layout, name: &str) -> Result<CudaView<'a, f32>> {
    let (a, b) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg(format!("{name}: operands must be contiguous")))?;
    Ok(s.as_cuda_slice::<f32>()?.slice(a..b))
}

fn elementwise(n: usize) -> LaunchConfig {
    let blocks = n.div_ceil(THREADS as usize).clamp(1, 65_535) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Per plane of `m` voxels: `(Σ a, Σ a·b)`, or `(0, Σ a·b over b ≤ 0)`
/// when `masked`.
#[allow(unsafe_code)]
pub(crate) fn plane_sums(
    a: (&CudaStorage, &Layout),
    b: (&CudaStorage, &Layout),
    planes: usize,
    m: usize,
    masked: bool,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let dev = a.0.device().clone();
    let (va, vb) = (view(a.0, a.1, "plane_dot")?, view(b.0, b.1, "plane_dot")?);
    if va.len() != planes * m || vb.len() != planes * m {
        candle_core::bail!(
            "plane_dot: operands of {} and {} values for {planes} planes of {m}",
            va.len(),
            vb.len()
        );
    }
    let mut s1 = dev.alloc_zeros::<f64>(planes.max(1))?;
    let mut s2 = dev.alloc_zeros::<f64>(planes.max(1))?;
    if planes > 0 {
        let f = dev.get_or_load_custom_func("plane_dot", MODULE, ptx()?)?;
        let (m64, mask) = (m as u64, i32::from(masked));
        let mut args = f.builder();
        args.arg(&va)
            .arg(&vb)
            .arg(&mut s1)
            .arg(&mut s2)
            .arg(&m64)
            .arg(&mask);
        let cfg = LaunchConfig {
            grid_dim: (planes as u32, 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: one block per plane reads `m` values of `a` and `b` at
        // `plane · m` (both hold `planes · m`, checked above) and writes
        // `s1[plane]`, `s2[plane]` (both hold `planes`); the kernel's
        // arguments match its signature in order and type.
        unsafe { args.launch(cfg) }.map_err(candle_core::Error::wrap)?;
    }
    let mut s1 = dev.clone_dtoh(&s1)?;
    let mut s2 = dev.clone_dtoh(&s2)?;
    s1.truncate(planes);
    s2.truncate(planes);
    Ok((s1, s2))
}

/// `out = ka_p·a + kb_p·b + kc_p` over planes of `m` voxels (`b` may be
/// `a` with `kb = 0`).
#[allow(unsafe_code)]
pub(crate) fn plane_affine(
    a: (&CudaStorage, &Layout),
    b: (&CudaStorage, &Layout),
    k: [&[f32]; 3],
    m: usize,
) -> Result<CudaStorage> {
    let dev: CudaDevice = a.0.device().clone();
    let (va, vb) = (
        view(a.0, a.1, "plane_affine")?,
        view(b.0, b.1, "plane_affine")?,
    );
    let n = va.len();
    let planes = k[0].len();
    if vb.len() != n || planes * m != n || k.iter().any(|k| k.len() != planes) {
        candle_core::bail!("plane_affine: {n} values, {planes} planes of {m}");
    }
    let mut out = dev.alloc_zeros::<f32>(n.max(1))?;
    if n > 0 {
        let (ka, kb, kc) = (
            dev.clone_htod(k[0])?,
            dev.clone_htod(k[1])?,
            dev.clone_htod(k[2])?,
        );
        let f = dev.get_or_load_custom_func("plane_affine", MODULE, ptx()?)?;
        let (m64, n64) = (m as u64, n as u64);
        let mut args = f.builder();
        args.arg(&va)
            .arg(&vb)
            .arg(&mut out)
            .arg(&ka)
            .arg(&kb)
            .arg(&kc)
            .arg(&m64)
            .arg(&n64);
        // SAFETY: the grid-stride loop touches indices below `n`, which `a`,
        // `b` and `out` all hold, and coefficient `i / m < planes`, which
        // the three coefficient buffers hold; arguments match the kernel.
        unsafe { args.launch(elementwise(n)) }.map_err(candle_core::Error::wrap)?;
    }
    Ok(CudaStorage::wrap_cuda_slice(out, dev))
}

/// `out = x > 0 ? g : slope_p·g` over planes of `m` voxels.
#[allow(unsafe_code)]
pub(crate) fn prelu(
    g: (&CudaStorage, &Layout),
    x: (&CudaStorage, &Layout),
    slope: &[f32],
    m: usize,
) -> Result<CudaStorage> {
    let dev: CudaDevice = g.0.device().clone();
    let (vg, vx) = (view(g.0, g.1, "prelu")?, view(x.0, x.1, "prelu")?);
    let n = vg.len();
    if vx.len() != n || slope.len() * m != n {
        candle_core::bail!("prelu: {n} values, {} planes of {m}", slope.len());
    }
    let mut out = dev.alloc_zeros::<f32>(n.max(1))?;
    if n > 0 {
        let s = dev.clone_htod(slope)?;
        let f = dev.get_or_load_custom_func("prelu", MODULE, ptx()?)?;
        let (m64, n64) = (m as u64, n as u64);
        let mut args = f.builder();
        args.arg(&vg)
            .arg(&vx)
            .arg(&mut out)
            .arg(&s)
            .arg(&m64)
            .arg(&n64);
        // SAFETY: as for `plane_affine`: indices below `n` in `g`, `x`,
        // `out`, slope index `i / m` below `slope.len()`.
        unsafe { args.launch(elementwise(n)) }.map_err(candle_core::Error::wrap)?;
    }
    Ok(CudaStorage::wrap_cuda_slice(out, dev))
}

#[cfg(test)]
mod tests {
    /// NVRTC compiles the kernels without a GPU: a CUDA build's tests
    /// (run by CI through the driver stub) catch a kernel that does not
    /// compile.
    #[test]
    fn the_kernels_compile_to_ptx() {
        let ptx = super::ptx().expect("NVRTC compiles the fused kernels");
        for k in ["plane_dot", "plane_affine", "prelu"] {
            assert!(
                ptx.contains(&format!(".entry {k}(")),
                "{k} missing from the PTX"
            );
        }
    }
}
