//! The weight gradient of the direct convolution: the forward pass's
//! padded, phase-split input walked with output channels × taps held in
//! registers, summed over grid positions in fixed chunks whose partial sums
//! are combined in chunk order (so the result does not depend on the
//! thread count).

// `unsafe` appears only for the AVX-512 intrinsics and to call the
// `#[target_feature]` functions, each call guarded by the runtime detection
// in `available()`; every raw load is bounds-checked up front.
#![allow(unsafe_code)]

use super::{L, Prepared, Term, WCHUNK, available, place, prepare};
use crate::conv::geom::ConvGeom;
use rayon::prelude::*;

/// `Σ_q gy[co][q] · xc[q + off_t]` for `CB` output channels × `TB` terms
/// (the first `offs.len() ≤ TB` of them) over `n` vectors from grid
/// position `q0`; `gy` rows are `gstride` floats apart.
///
/// # Safety
/// The CPU must support AVX-512F (the caller is a `target_feature`
/// function reached only after [`available`]).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn weight_tile<const CB: usize, const TB: usize>(
    gyp: &[f32],
    gstride: usize,
    xc: &[f32],
    offs: &[Term],
    co0: usize,
    q0: usize,
    n: usize,
) -> [[f32; TB]; CB] {
    use std::arch::x86_64::*;
    let tb = offs.len().min(TB);
    let max_off = offs.iter().map(|t| t.1).max().unwrap_or(0);
    // Bounds, checked once for every load below.
    assert!((co0 + CB - 1) * gstride + q0 + n * L <= gyp.len());
    assert!(q0 + n * L + max_off <= xc.len());
    // SAFETY: the CPU has AVX-512F (contract); the loads are within the
    // slices by the asserts above.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); TB]; CB];
        let (g, x) = (gyp.as_ptr(), xc.as_ptr());
        for v in 0..n {
            let q = q0 + v * L;
            let mut gv = [_mm512_setzero_ps(); CB];
            for (c, r) in gv.iter_mut().enumerate() {
                // (co0 + c)·gstride + q + L ≤ gyp.len().
                *r = _mm512_loadu_ps(g.add((co0 + c) * gstride + q));
            }
            for t in 0..tb {
                // q + off + L ≤ q0 + n·L + max_off ≤ xc.len().
                let xv = _mm512_loadu_ps(x.add(q + offs[t].1));
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

/// One task of the weight gradient: `part[co][t]` (`cpad` output
/// channels) for input channel `ci`, summed over grid positions
/// `q0..q0 + WCHUNK`.
///
/// # Safety
/// The CPU must support AVX-512F and FMA ([`available`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn weight_block(
    gyp: &[f32],
    gstride: usize,
    p: &Prepared,
    ci: usize,
    cpad: usize,
    q0: usize,
    part: &mut [f32],
) {
    const CB: usize = 4;
    const TB: usize = 6;
    let taps = p.terms.len();
    let xc = &p.src[ci * p.phases * p.stride..];
    let mut co0 = 0;
    while co0 < cpad {
        let mut t0 = 0;
        while t0 < taps {
            let tb = (taps - t0).min(TB);
            let o = &p.terms[t0..t0 + tb];
            // SAFETY: AVX-512F is available (this function's contract).
            let s = unsafe { weight_tile::<CB, TB>(gyp, gstride, xc, o, co0, q0, WCHUNK / L) };
            for c in 0..CB {
                for t in 0..tb {
                    part[(co0 + c) * taps + t0 + t] += s[c][t];
                }
            }
            t0 += tb;
        }
        co0 += CB;
    }
}

/// Weight gradient of a convolution for one sample, added into `gw`
/// (`(cout, cin, kd, kh, kw)`): `gw[co][ci][t] += Σ_o gy[co][o] ·
/// x[ci][s·o + tap t]`. Panics unless [`available`].
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
    // The intrinsics below are sound only on a CPU with AVX-512F and FMA;
    // this is a safe function, so it checks rather than trusts its caller.
    assert!(available(), "the direct kernels need AVX-512F and FMA");
    let p = prepare(x, cin, din, g, dout);
    let cpad = cout.div_ceil(4) * 4;
    // The output gradient placed at its grid positions (zero elsewhere,
    // and for the channels added to reach `cpad`).
    let gstride = p.stride;
    let mut gyp = place(gy, cout, dout, [1; 3], [0; 3], p.plan.grid, gstride);
    gyp.resize(cpad * gstride, 0.0);
    let taps = g.taps();
    // Task i: chunk i / cin, input channel i % cin; partial sums combined
    // below in task order.
    let parts: Vec<Vec<f32>> = (0..(p.wspan / WCHUNK) * cin)
        .into_par_iter()
        .map(|i| {
            let mut part = vec![0f32; cpad * taps];
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the entry points are only chosen after `available()`
            // found AVX-512F and FMA.
            unsafe {
                weight_block(
                    &gyp,
                    gstride,
                    &p,
                    i % cin,
                    cpad,
                    (i / cin) * WCHUNK,
                    &mut part,
                )
            };
            part
        })
        .collect();
    for (i, part) in parts.iter().enumerate() {
        let ci = i % cin;
        for co in 0..cout {
            for t in 0..taps {
                gw[(co * cin + ci) * taps + t] += part[co * taps + t];
            }
        }
    }
}
