//! Direct stride-1 3-D convolution on a zero-padded, flattened grid, with
//! the output channels and 16-voxel vectors held in registers.
//!
//! The input is copied once into a zero-padded volume (`Dp × Hp × Wp` per
//! channel). On that grid every kernel tap is a constant linear offset, so
//! the output at padded position `q` is `Σ_ci Σ_t w[co][ci][t] ·
//! xp[ci][q + off_t]`: each tap reads a contiguous run of voxels, whatever
//! the row length. Outputs are computed for every `q` in one span (the few
//! positions in the padding columns are computed and dropped) and copied
//! out at the end. A microkernel keeps `CB` output channels × `NB` vectors of
//! 16 voxels in registers and streams taps through them: 1 vector load and
//! `CB` broadcast weights per `CB · NB` fused multiply-adds, with no column
//! matrix at all. The weight gradient walks the same grid with the roles
//! swapped (`CB` output channels × `TB` taps of one input channel, summed
//! over `q`).
//!
//! The input gradient of a stride-1 convolution is itself a stride-1
//! convolution (the output gradient against the flipped, transposed
//! kernel), so the same kernel serves it.
//!
//! These kernels need AVX-512 (and FMA); [`available`] says whether this
//! CPU has them, and the callers fall back to the column-matrix kernels
//! otherwise. The numerical order of every sum is fixed (tap by tap, input
//! channel by channel; chunk partial sums combined in chunk order), so
//! results do not depend on the number of threads.

// `unsafe` appears only to call the `#[target_feature]` chunk functions,
// each call guarded by the runtime detection in `available()`.
#![allow(unsafe_code)]

use super::geom::ConvGeom;
use rayon::prelude::*;

/// Lanes of one vector.
const L: usize = 16;

/// Padded positions per parallel chunk of the forward pass and of the
/// weight gradient (a multiple of every `NB · L`).
const CHUNK: usize = 48 * L * 4;

/// Whether this CPU runs the direct kernels (AVX-512F and FMA).
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The zero-padded grid of a stride-1 convolution and the flat offsets of
/// its taps.
struct Grid {
    /// Padded extent.
    dp: [usize; 3],
    /// Flat offset of every tap, `(kd, kh, kw)` order.
    offs: Vec<usize>,
    /// Number of padded positions computed (a multiple of [`CHUNK`]).
    span: usize,
    /// Floats per padded channel buffer (span plus the largest offset).
    stride: usize,
}

impl Grid {
    fn new(g: &ConvGeom, din: [usize; 3], dout: [usize; 3]) -> Self {
        let dp = [0, 1, 2].map(|a| din[a] + 2 * g.padding[a]);
        let (plane, row) = (dp[1] * dp[2], dp[2]);
        let mut offs = Vec::with_capacity(g.taps());
        for kd in 0..g.kernel[0] {
            for kh in 0..g.kernel[1] {
                for kw in 0..g.kernel[2] {
                    offs.push(
                        kd * g.dilation[0] * plane + kh * g.dilation[1] * row + kw * g.dilation[2],
                    );
                }
            }
        }
        let last = (dout[0] - 1) * plane + (dout[1] - 1) * row + dout[2];
        let span = last.div_ceil(CHUNK) * CHUNK;
        let max_off = offs.iter().copied().max().unwrap_or(0);
        Grid {
            dp,
            offs,
            span,
            stride: span + max_off,
        }
    }

    /// Padded flat position of output voxel `(d, h, 0)`.
    fn row_start(&self, d: usize, h: usize) -> usize {
        (d * self.dp[1] + h) * self.dp[2]
    }

    /// `channels` planes of `x` (extent `din`) copied into zero-padded
    /// buffers of `self.stride` floats, the voxel `(d, h, w)` at padded
    /// position `((d + p0)·Hp + h + p1)·Wp + w + p2`.
    fn pad(&self, x: &[f32], channels: usize, din: [usize; 3], pad: [usize; 3]) -> Vec<f32> {
        let vol: usize = din.iter().product();
        let mut out = vec![0f32; channels * self.stride];
        out.par_chunks_mut(self.stride)
            .zip(x[..channels * vol].par_chunks(vol.max(1)))
            .for_each(|(dst, src)| {
                for d in 0..din[0] {
                    for h in 0..din[1] {
                        let at = self.row_start(d + pad[0], h + pad[1]) + pad[2];
                        let line = &src[(d * din[1] + h) * din[2]..][..din[2]];
                        dst[at..at + din[2]].copy_from_slice(line);
                    }
                }
            });
        out
    }
}

/// `CB` output channels × `NB` vectors at padded positions `q..q + NB·L`,
/// summed over every input channel and tap, written to `out` (`CB` rows of
/// `row` floats, starting at column `col`).
///
/// # Safety
/// The CPU must support AVX-512F (the caller is a `target_feature`
/// function reached only after [`available`]).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn forward_tile<const CB: usize, const NB: usize>(
    xp: &[f32],
    stride: usize,
    cin: usize,
    offs: &[usize],
    wpk: &[f32],
    cpad: usize,
    co0: usize,
    q: usize,
    out: &mut [f32],
    row: usize,
    col: usize,
) {
    use std::arch::x86_64::*;
    // SAFETY: see the function's contract and the comments at each load.
    unsafe {
        let taps = offs.len();
        // Bounds, checked once: every load below reads inside these slices.
        let x_need = (cin - 1) * stride + q + offs.iter().copied().max().unwrap_or(0) + NB * L;
        assert!(x_need <= xp.len() && cin * taps * cpad <= wpk.len() && co0 + CB <= cpad);
        assert!((CB - 1) * row + col + NB * L <= out.len());
        let mut acc = [[_mm512_setzero_ps(); NB]; CB];
        for ci in 0..cin {
            let xc = xp.as_ptr().add(ci * stride + q);
            let wc = wpk.as_ptr().add(ci * taps * cpad + co0);
            for (t, &off) in offs.iter().enumerate() {
                let mut xv = [_mm512_setzero_ps(); NB];
                for (j, v) in xv.iter_mut().enumerate() {
                    // SAFETY: ci·stride + q + off + j·L + L ≤ x_need ≤ xp.len().
                    *v = _mm512_loadu_ps(xc.add(off + j * L));
                }
                let wt = wc.add(t * cpad);
                for (c, a) in acc.iter_mut().enumerate() {
                    // SAFETY: (ci·taps + t)·cpad + co0 + c < cin·taps·cpad.
                    let wv = _mm512_set1_ps(*wt.add(c));
                    for j in 0..NB {
                        a[j] = _mm512_fmadd_ps(wv, xv[j], a[j]);
                    }
                }
            }
        }
        for (c, a) in acc.iter().enumerate() {
            let dst = out.as_mut_ptr().add(c * row + col);
            for (j, v) in a.iter().enumerate() {
                // SAFETY: c·row + col + j·L + L ≤ out.len(), asserted above.
                _mm512_storeu_ps(dst.add(j * L), *v);
            }
        }
    }
}

/// One chunk of the forward pass: all output channels at padded positions
/// `q0..q0 + CHUNK`, into `out` (`cpad` rows of `CHUNK`).
///
/// # Safety
/// The CPU must support AVX-512F and FMA ([`available`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn forward_chunk(
    xp: &[f32],
    stride: usize,
    cin: usize,
    offs: &[usize],
    wpk: &[f32],
    cpad: usize,
    cb: usize,
    q0: usize,
    out: &mut [f32],
) {
    // SAFETY: this function runs with AVX-512F enabled (its own
    // contract), which is all the tiles require.
    unsafe {
        match cb {
            8 => forward_rows::<8, 3>(xp, stride, cin, offs, wpk, cpad, q0, out),
            4 => forward_rows::<4, 6>(xp, stride, cin, offs, wpk, cpad, q0, out),
            2 => forward_rows::<2, 12>(xp, stride, cin, offs, wpk, cpad, q0, out),
            _ => forward_rows::<1, 16>(xp, stride, cin, offs, wpk, cpad, q0, out),
        }
    }
}

/// Every tile of one chunk with `CB × NB` register blocks.
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn forward_rows<const CB: usize, const NB: usize>(
    xp: &[f32],
    stride: usize,
    cin: usize,
    offs: &[usize],
    wpk: &[f32],
    cpad: usize,
    q0: usize,
    out: &mut [f32],
) {
    let mut co0 = 0;
    while co0 < cpad {
        let rows = &mut out[co0 * CHUNK..];
        let mut col = 0;
        while col < CHUNK {
            // SAFETY: AVX-512F is available (this function's contract).
            unsafe {
                forward_tile::<CB, NB>(
                    xp,
                    stride,
                    cin,
                    offs,
                    wpk,
                    cpad,
                    co0,
                    q0 + col,
                    rows,
                    CHUNK,
                    col,
                )
            };
            col += NB * L;
        }
        co0 += CB;
    }
}

/// Output channels per microkernel tile, and `cout` rounded up to it.
fn channel_block(cout: usize) -> (usize, usize) {
    let cb = match cout {
        c if c >= 8 => 8,
        c if c >= 4 => 4,
        c if c >= 2 => 2,
        _ => 1,
    };
    (cb, cout.div_ceil(cb) * cb)
}

/// Stride-1 convolution of one sample, `y (cout × dout) = w ⋆ x`, with `w`
/// in PyTorch's `(cout, cin, kd, kh, kw)` layout. Requires [`available`]
/// and `g.stride == [1, 1, 1]`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_forward(
    x: &[f32],
    cin: usize,
    din: [usize; 3],
    w: &[f32],
    cout: usize,
    g: &ConvGeom,
    dout: [usize; 3],
    y: &mut [f32],
) {
    debug_assert!(g.stride == [1, 1, 1]);
    let grid = Grid::new(g, din, dout);
    let xp = grid.pad(x, cin, din, g.padding);
    let taps = g.taps();
    let (cb, cpad) = channel_block(cout);
    // wpk[ci][t][co]: the weights a tap broadcasts, contiguous over co.
    let mut wpk = vec![0f32; cin * taps * cpad];
    for co in 0..cout {
        for ci in 0..cin {
            for t in 0..taps {
                wpk[(ci * taps + t) * cpad + co] = w[(co * cin + ci) * taps + t];
            }
        }
    }
    let chunks = grid.span / CHUNK;
    let mut yp = vec![0f32; chunks * cpad * CHUNK];
    yp.par_chunks_mut(cpad * CHUNK)
        .enumerate()
        .for_each(|(k, out)| {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: callers check `available()` (AVX-512F and FMA)
            // before choosing this kernel; the function only indexes
            // slices, with bounds checks.
            unsafe {
                forward_chunk(
                    &xp,
                    grid.stride,
                    cin,
                    &grid.offs,
                    &wpk,
                    cpad,
                    cb,
                    k * CHUNK,
                    out,
                )
            };
            #[cfg(not(target_arch = "x86_64"))]
            let _ = (k, out);
        });
    // Copy the valid positions out of the chunked padded layout.
    let vol: usize = dout.iter().product();
    y[..cout * vol]
        .par_chunks_mut(vol.max(1))
        .enumerate()
        .for_each(|(co, dst)| {
            for d in 0..dout[0] {
                for h in 0..dout[1] {
                    let line = &mut dst[(d * dout[1] + h) * dout[2]..][..dout[2]];
                    let mut q = grid.row_start(d, h);
                    let mut at = 0;
                    while at < line.len() {
                        let (k, c) = (q / CHUNK, q % CHUNK);
                        let n = (CHUNK - c).min(line.len() - at);
                        let src = &yp[(k * cpad + co) * CHUNK + c..][..n];
                        line[at..at + n].copy_from_slice(src);
                        at += n;
                        q += n;
                    }
                }
            }
        });
}

/// The input gradient of a stride-1 convolution, `gx = wᵀ ⋆ gy`, as the
/// stride-1 convolution of `gy` with the flipped, transposed kernel and
/// padding `d·(k − 1) − p`. `None` (nothing written) when that padding
/// would be negative.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_backward_input(
    gy: &[f32],
    cout: usize,
    dout: [usize; 3],
    w: &[f32],
    cin: usize,
    g: &ConvGeom,
    din: [usize; 3],
    gx: &mut [f32],
) -> Option<()> {
    let mut flipped = *g;
    for a in 0..3 {
        flipped.padding[a] = (g.dilation[a] * (g.kernel[a] - 1)).checked_sub(g.padding[a])?;
    }
    let taps = g.taps();
    // wf[ci][co][t'] = w[co][ci][taps − 1 − t'].
    let mut wf = vec![0f32; cin * cout * taps];
    for co in 0..cout {
        for ci in 0..cin {
            for t in 0..taps {
                wf[(ci * cout + co) * taps + (taps - 1 - t)] = w[(co * cin + ci) * taps + t];
            }
        }
    }
    conv_forward(gy, cout, dout, &wf, cin, &flipped, din, gx);
    Some(())
}

/// `Σ_q gy[co][q] · xp[ci][q + off_t]` for `CB` output channels × `TB` taps
/// (the first `offs.len() ≤ TB` of them) over `n` vectors from padded
/// position `q0`.
///
/// # Safety
/// The CPU must support AVX-512F (the caller is a `target_feature`
/// function reached only after [`available`]).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn weight_tile<const CB: usize, const TB: usize>(
    gyp: &[f32],
    xc: &[f32],
    stride: usize,
    offs: &[usize],
    co0: usize,
    q0: usize,
    n: usize,
) -> [[f32; TB]; CB] {
    use std::arch::x86_64::*;
    // SAFETY: see the function's contract and the comments at each load.
    unsafe {
        let tb = offs.len().min(TB);
        let max_off = offs.iter().copied().max().unwrap_or(0);
        // Bounds, checked once for every load below.
        assert!((co0 + CB - 1) * stride + q0 + n * L <= gyp.len());
        assert!(q0 + n * L + max_off <= xc.len());
        let mut acc = [[_mm512_setzero_ps(); TB]; CB];
        let (g, x) = (gyp.as_ptr(), xc.as_ptr());
        for v in 0..n {
            let q = q0 + v * L;
            let mut gv = [_mm512_setzero_ps(); CB];
            for (c, r) in gv.iter_mut().enumerate() {
                // SAFETY: (co0 + c)·stride + q + L ≤ gyp.len().
                *r = _mm512_loadu_ps(g.add((co0 + c) * stride + q));
            }
            for t in 0..tb {
                // SAFETY: q + off + L ≤ q0 + n·L + max_off ≤ xc.len().
                let xv = _mm512_loadu_ps(x.add(q + offs[t]));
                for c in 0..CB {
                    acc[c][t] = _mm512_fmadd_ps(gv[c], xv, acc[c][t]);
                }
            }
        }
        let mut out = [[0f32; TB]; CB];
        for c in 0..CB {
            for t in 0..TB {
                out[c][t] = _mm512_reduce_add_ps(acc[c][t]);
            }
        }
        out
    }
}

/// One chunk of the weight gradient: `part[co][ci][t]` (`cpad` output
/// channels) summed over padded positions `q0..q0 + CHUNK`.
///
/// # Safety
/// The CPU must support AVX-512F and FMA ([`available`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn weight_chunk(
    gyp: &[f32],
    xp: &[f32],
    stride: usize,
    cin: usize,
    offs: &[usize],
    cpad: usize,
    q0: usize,
    part: &mut [f32],
) {
    const CB: usize = 4;
    const TB: usize = 6;
    let taps = offs.len();
    for ci in 0..cin {
        let xc = &xp[ci * stride..];
        let mut co0 = 0;
        while co0 < cpad {
            let mut t0 = 0;
            while t0 < taps {
                let tb = (taps - t0).min(TB);
                let o = &offs[t0..t0 + tb];
                // SAFETY: AVX-512F is available (this function's contract).
                let s = unsafe { weight_tile::<CB, TB>(gyp, xc, stride, o, co0, q0, CHUNK / L) };
                for c in 0..CB {
                    for t in 0..tb {
                        part[((co0 + c) * cin + ci) * taps + t0 + t] += s[c][t];
                    }
                }
                t0 += tb;
            }
            co0 += CB;
        }
    }
}

/// Weight gradient of a stride-1 convolution for one sample, added into
/// `gw` (`(cout, cin, kd, kh, kw)`): `gw[co][ci][t] += Σ_p gy[co][p] ·
/// x[ci][p + tap t]`. Requires [`available`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_backward_weight(
    x: &[f32],
    cin: usize,
    din: [usize; 3],
    gy: &[f32],
    cout: usize,
    g: &ConvGeom,
    dout: [usize; 3],
    gw: &mut [f32],
) {
    let grid = Grid::new(g, din, dout);
    let xp = grid.pad(x, cin, din, g.padding);
    let cpad = cout.div_ceil(4) * 4;
    // The output gradient placed at the output positions of the padded
    // grid (zero elsewhere, and for the channels added to reach `cpad`).
    let gyp = {
        let mut gyp = grid.pad(gy, cout, dout, [0; 3]);
        gyp.resize(cpad * grid.stride, 0.0);
        gyp
    };
    let taps = g.taps();
    let chunks = grid.span / CHUNK;
    let parts: Vec<Vec<f32>> = (0..chunks)
        .into_par_iter()
        .map(|k| {
            let mut part = vec![0f32; cpad * cin * taps];
            #[cfg(target_arch = "x86_64")]
            // SAFETY: callers check `available()` (AVX-512F and FMA)
            // before choosing this kernel; the function only indexes
            // slices, with bounds checks.
            unsafe {
                weight_chunk(
                    &gyp,
                    &xp,
                    grid.stride,
                    cin,
                    &grid.offs,
                    cpad,
                    k * CHUNK,
                    &mut part,
                )
            };
            part
        })
        .collect();
    let n = cout * cin * taps;
    for part in &parts {
        for (a, b) in gw[..n].iter_mut().zip(&part[..n]) {
            *a += b;
        }
    }
}
