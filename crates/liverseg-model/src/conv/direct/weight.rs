//! The weight gradient of the direct convolution: the forward pass's
//! padded, phase-split input walked with output channels × taps held in
//! registers, summed over grid positions in fixed chunks whose partial sums
//! are combined in chunk order (so the result does not depend on the
//! thread count).

// `unsafe` appears only for the AVX-512 intrinsics and to call the
// `#[target_feature]` functions, each call guarded by the runtime detection
// in `available()`; every raw load is bounds-checked up front.
#![allow(unsafe_code)]

use super::place::{F32Planes, Placement};
use super::{CHUNK, L, Prepared, Term, WCHUNK, amx_weight, available, prepare};
use crate::conv::Math;
use crate::conv::geom::ConvGeom;
use rayon::prelude::*;

/// `Σ_q gy[co][q] · xc[q + off_t]` for `CB` output channels × `TB` terms
/// over `n` vectors from grid position `q0`, lane by lane (the 16 lanes
/// are summed later); `gy` rows are `gstride` floats apart. Every count is
/// a constant so that the sums stay in registers: `CB · TB + CB + TB ≤ 32`
/// even when the compiler issues every load of a step first.
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
    offs: &[Term; TB],
    co0: usize,
    q0: usize,
    n: usize,
) -> [[std::arch::x86_64::__m512; CB]; TB] {
    use std::arch::x86_64::*;
    let max_off = offs.iter().map(|t| t.1).max().unwrap_or(0);
    // Bounds, checked once for every load below.
    assert!((co0 + CB - 1) * gstride + q0 + n * L <= gyp.len());
    assert!(q0 + n * L + max_off <= xc.len());
    // SAFETY: the CPU has AVX-512F (contract); the loads are within the
    // slices by the asserts above.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); CB]; TB];
        let (g, x) = (gyp.as_ptr(), xc.as_ptr());
        let offs: [*const f32; TB] = std::array::from_fn(|t| x.add(offs[t].1));
        for v in 0..n {
            let q = q0 + v * L;
            let mut gv = [_mm512_setzero_ps(); CB];
            for (c, r) in gv.iter_mut().enumerate() {
                // (co0 + c)·gstride + q + L ≤ gyp.len().
                *r = _mm512_loadu_ps(g.add((co0 + c) * gstride + q));
            }
            for (a, xt) in acc.iter_mut().zip(offs) {
                // q + off + L ≤ q0 + n·L + max_off ≤ xc.len().
                let xv = _mm512_loadu_ps(xt.add(q));
                for c in 0..CB {
                    a[c] = _mm512_fmadd_ps(gv[c], xv, a[c]);
                }
            }
        }
        acc
    }
}

/// Grid positions a tile walks before its sums are set aside: short
/// enough that the tile's rows of `gy` and the input rows all its taps
/// read stay in the L1 cache while the tile moves on to the next taps
/// and channels (with the whole [`WCHUNK`] they came from L2, and the
/// kernel ran at half the forward's rate).
const SUB: usize = CHUNK;

/// Terms per weight tile for a kernel of `taps` taps: all of them up to 7,
/// else the block of 4 to 7 that wastes the fewest padded terms (the
/// larger on a tie): 7 for 3×3×3, 4 for 2×2×2.
fn terms_per_tile(taps: usize) -> usize {
    if taps <= 7 {
        return taps.max(1);
    }
    (4..=7)
        .rev()
        .min_by_key(|&tb| taps.div_ceil(tb) * tb)
        .unwrap_or(4)
}

/// One task of the weight gradient: `part[co][t]` (`cpad` output
/// channels) for input channel `ci`, summed over grid positions
/// `q0..q0 + WCHUNK` in pieces of [`SUB`]; each sum is kept in 16 lanes
/// until the end of the task.
///
/// # Safety
/// The CPU must support AVX-512F and FMA ([`available`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn weight_block(
    gyp: &[f32],
    gstride: usize,
    p: &Prepared,
    src: &[f32],
    ci: usize,
    cpad: usize,
    q0: usize,
    part: &mut [f32],
) {
    // SAFETY: AVX-512F and FMA are enabled here (this function's
    // contract), which is all the blocks require.
    unsafe {
        match terms_per_tile(p.terms.len()) {
            7 => weight_terms::<7>(gyp, gstride, p, src, ci, cpad, q0, part),
            6 => weight_terms::<6>(gyp, gstride, p, src, ci, cpad, q0, part),
            5 => weight_terms::<5>(gyp, gstride, p, src, ci, cpad, q0, part),
            4 => weight_terms::<4>(gyp, gstride, p, src, ci, cpad, q0, part),
            3 => weight_terms::<3>(gyp, gstride, p, src, ci, cpad, q0, part),
            2 => weight_terms::<2>(gyp, gstride, p, src, ci, cpad, q0, part),
            _ => weight_terms::<1>(gyp, gstride, p, src, ci, cpad, q0, part),
        }
    }
}

/// [`weight_block`] with tiles of `TB` terms.
///
/// # Safety
/// The CPU must support AVX-512F and FMA ([`available`]).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn weight_terms<const TB: usize>(
    gyp: &[f32],
    gstride: usize,
    p: &Prepared,
    src: &[f32],
    ci: usize,
    cpad: usize,
    q0: usize,
    part: &mut [f32],
) {
    use std::arch::x86_64::*;
    const CB: usize = 4;
    let taps = p.terms.len();
    let xc = &src[ci * p.phases * p.stride..];
    // SAFETY: the CPU has AVX-512F (contract), all the intrinsics need;
    // the tiles check their own bounds.
    unsafe {
        // The lanes of every sum, `(co, t)` at `co · taps + t`.
        let mut lanes = vec![_mm512_setzero_ps(); cpad * taps];
        for q in (q0..q0 + WCHUNK).step_by(SUB) {
            for co0 in (0..cpad).step_by(CB) {
                for t0 in (0..taps).step_by(TB) {
                    let tb = (taps - t0).min(TB);
                    // The last block's missing terms repeat its last one;
                    // their sums are dropped.
                    let o: [Term; TB] = std::array::from_fn(|t| p.terms[t0 + t.min(tb - 1)]);
                    let s = weight_tile::<CB, TB>(gyp, gstride, xc, &o, co0, q, SUB / L);
                    for (t, s) in s.iter().take(tb).enumerate() {
                        for (c, v) in s.iter().enumerate() {
                            let l = &mut lanes[(co0 + c) * taps + t0 + t];
                            *l = _mm512_add_ps(*l, *v);
                        }
                    }
                }
            }
        }
        for (p, l) in part.iter_mut().zip(&lanes) {
            *p += _mm512_reduce_add_ps(*l);
        }
    }
}

/// Weight gradient of a convolution for one sample, added into `gw`
/// (`(cout, cin, kd, kh, kw)`): `gw[co][ci][t] += Σ_o gy[co][o] ·
/// x[ci][s·o + tap t]`, on AMX tiles from bfloat16 operands when `math`
/// asks for it and the CPU has them (and `cin` is 8 or more). Panics
/// unless [`available`].
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
    math: Math,
) {
    // The intrinsics below are sound only on a CPU with AVX-512F and FMA;
    // this is a safe function, so it checks rather than trusts its caller.
    assert!(available(), "the direct kernels need AVX-512F and FMA");
    let p = prepare(din, g, dout);
    let cpad = cout.div_ceil(4) * 4;
    let x = F32Planes {
        x,
        channels: cin,
        vol: din.iter().product(),
    };
    let gy = F32Planes {
        x: gy,
        channels: cout,
        vol: dout.iter().product(),
    };
    // The output gradient at its grid positions (zero elsewhere).
    let gstride = p.stride;
    let gplace = Placement {
        din: dout,
        s: [1; 3],
        low: [0; 3],
        grid: p.plan.grid,
        stride: gstride,
    };
    if super::takes_amx(math, cin) {
        return amx_weight::conv_backward_weight(&p, x, &gplace, gy, gw);
    }
    let src = p.placement.place(&x);
    // Zero also for the channels added to reach `cpad`.
    let mut gyp = gplace.place(&gy);
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
                    &src,
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
