//! The weight gradient of the direct convolution: the forward pass's
//! padded, phase-split input walked with output channels × taps held in
//! registers, summed over grid positions in fixed chunks whose partial sums
//! are combined in chunk order (so the result does not depend on the
//! thread count).

// `unsafe` appears only for the AVX-512 intrinsics and to call the
// `#[target_feature]` functions, each call guarded by the runtime detection
// in `available()`; every raw load is bounds-checked up front.
#![allow(unsafe_code)]

use super::lanes::Kernel;
#[cfg(target_arch = "x86_64")]
use super::lanes::{F32, Lanes, Positions};
use super::place::{Bf16Planes, F32Planes, Padded, Placement, Planes};
use super::{CHUNK, Prepared, Term, WCHUNK, amx_weight, available, prepare};
use crate::conv::Math;
use crate::conv::geom::ConvGeom;
use rayon::prelude::*;

/// `Σ_q gy[co][q] · xc[q + off_t]` for `CB` output channels × `TB` terms
/// over `n` vectors of `K` from grid position `q0`, lane by lane (the 16
/// lanes are summed later); `gy` rows are `gstride` elements apart. Every
/// count is a constant so that the sums can stay in registers: `CB · TB`
/// sums, `CB` output-gradient vectors and one input vector at a time
/// (see [`weight_block`] for when that fits).
///
/// # Safety
/// The CPU must support the features of `K` (the caller is a
/// `target_feature` function reached only after they were detected).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn weight_tile<K: Lanes, const CB: usize, const TB: usize>(
    gyp: &[K::S],
    gstride: usize,
    xc: &[K::S],
    offs: &[Term; TB],
    co0: usize,
    q0: usize,
    n: usize,
) -> [[std::arch::x86_64::__m512; CB]; TB] {
    use std::arch::x86_64::*;
    let max_off = offs.iter().map(|t| t.1).max().unwrap_or(0);
    // Bounds, checked once for every load below.
    let per = K::PER;
    assert!((co0 + CB - 1) * gstride + q0 + n * per <= gyp.len());
    assert!(q0 + n * per + max_off <= xc.len());
    // SAFETY: the CPU has K's features (contract); the loads are within
    // the slices by the asserts above.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); CB]; TB];
        let (g, x) = (gyp.as_ptr(), xc.as_ptr());
        let offs: [*const K::S; TB] = std::array::from_fn(|t| x.add(offs[t].1));
        for v in 0..n {
            let q = q0 + v * per;
            let mut gv = [_mm512_setzero_ps(); CB];
            for (c, r) in gv.iter_mut().enumerate() {
                // (co0 + c)·gstride + q + per ≤ gyp.len().
                *r = K::load(g.add((co0 + c) * gstride + q));
            }
            for (a, xt) in acc.iter_mut().zip(offs) {
                // q + off + per ≤ q0 + n·per + max_off ≤ xc.len().
                let xv = K::load(xt.add(q));
                for c in 0..CB {
                    a[c] = K::madd(gv[c], xv, a[c]);
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

/// Terms per weight tile for a kernel of `taps` taps: all of them up to
/// `top`, else the block of 4 to `top` that wastes the fewest padded terms
/// (the larger on a tie): for 3×3×3, 7 with `top` 7 and 4 with `top` 6;
/// 4 for 2×2×2.
fn terms_per_tile(taps: usize, top: usize) -> usize {
    if taps <= top {
        return taps.max(1);
    }
    (4..=top)
        .rev()
        .min_by_key(|&tb| taps.div_ceil(tb) * tb)
        .unwrap_or(4)
}

/// The operands of the weight gradient: the input placed on the forward
/// grid and the output gradient placed on it (`cpad` channels, zero past
/// the real ones), both `K`'s elements.
struct WeightRun<'a, S> {
    gyp: &'a [S],
    src: &'a [S],
    cpad: usize,
}

/// One task of the weight gradient: `part[co][t]` (`cpad` output
/// channels) for input channel `ci`, summed over grid positions
/// `q0..q0 + WCHUNK` in pieces of [`SUB`]; each sum is kept in 16 lanes
/// until the end of the task.
///
/// # Safety
/// The CPU must support the features of `K`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn weight_block<K: Lanes>(
    w: &WeightRun<'_, K::S>,
    p: &Prepared,
    ci: usize,
    q0: usize,
    part: &mut [f32],
) {
    // SAFETY: K's features are available (this function's contract),
    // which is all the blocks require.
    unsafe {
        match terms_per_tile(p.terms.len(), K::WEIGHT_TERMS) {
            7 => weight_terms::<K, 7>(w, p, ci, q0, part),
            6 => weight_terms::<K, 6>(w, p, ci, q0, part),
            5 => weight_terms::<K, 5>(w, p, ci, q0, part),
            4 => weight_terms::<K, 4>(w, p, ci, q0, part),
            3 => weight_terms::<K, 3>(w, p, ci, q0, part),
            2 => weight_terms::<K, 2>(w, p, ci, q0, part),
            _ => weight_terms::<K, 1>(w, p, ci, q0, part),
        }
    }
}

/// [`weight_block`] on float32 operands.
///
/// # Safety
/// The CPU must support AVX-512F and FMA ([`available`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn weight_f32(w: &WeightRun<'_, f32>, p: &Prepared, ci: usize, q0: usize, part: &mut [f32]) {
    // SAFETY: AVX-512F and FMA are enabled here (this function's contract).
    unsafe { weight_block::<F32>(w, p, ci, q0, part) }
}

/// [`weight_block`] on bfloat16 operands, neighbouring positions paired.
///
/// # Safety
/// The CPU must support AVX-512F and AVX-512 BF16 ([`super::lanes::DotCpu`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn weight_dot(w: &WeightRun<'_, u16>, p: &Prepared, ci: usize, q0: usize, part: &mut [f32]) {
    // SAFETY: AVX-512F and AVX-512 BF16 are enabled here (this function's
    // contract).
    unsafe { weight_block::<Positions>(w, p, ci, q0, part) }
}

/// [`weight_block`] with tiles of `TB` terms.
///
/// # Safety
/// The CPU must support the features of `K`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn weight_terms<K: Lanes, const TB: usize>(
    w: &WeightRun<'_, K::S>,
    p: &Prepared,
    ci: usize,
    q0: usize,
    part: &mut [f32],
) {
    use std::arch::x86_64::*;
    const CB: usize = 4;
    let (taps, cpad, gstride) = (p.terms.len(), w.cpad, p.stride);
    let xc = &w.src[ci * p.phases * p.stride..];
    // SAFETY: the CPU has K's features (contract), all the intrinsics
    // need; the tiles check their own bounds.
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
                    let n = SUB / K::PER;
                    let s = weight_tile::<K, CB, TB>(w.gyp, gstride, xc, &o, co0, q, n);
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

/// The input `xs` placed as `p` says and the output gradient `gys` as
/// `gplace` says, then `task(operands, ci, q0, part)` for every chunk of
/// [`WCHUNK`] positions and input channel, in parallel, each into a
/// zeroed `part` of `cpad · taps` sums; the parts in task order (chunk by
/// chunk, channels within each).
fn placed_sums<X, G>(
    p: &Prepared,
    gplace: &Placement,
    xs: &X,
    gys: &G,
    cpad: usize,
    task: impl Fn(&WeightRun<'_, X::T>, usize, usize, &mut [f32]) + Sync,
) -> Vec<Vec<f32>>
where
    X: Planes,
    G: Planes<T = X::T>,
{
    let (src, gyp) = (p.placement.place(xs), gplace.place(gys));
    let w = WeightRun {
        gyp: &gyp,
        src: &src,
        cpad,
    };
    let cin = xs.buffers();
    (0..(p.wspan / WCHUNK) * cin)
        .into_par_iter()
        .map(|i| {
            let mut part = vec![0f32; cpad * p.terms.len()];
            task(&w, i % cin, (i / cin) * WCHUNK, &mut part);
            part
        })
        .collect()
}

/// Weight gradient of a convolution for one sample, added into `gw`
/// (`(cout, cin, kd, kh, kw)`): `gw[co][ci][t] += Σ_o gy[co][o] ·
/// x[ci][s·o + tap t]`, from bfloat16 operands when `math` asks for it
/// and [`Kernel::pick`] finds a bfloat16 kernel (AMX tiles, or AVX-512
/// BF16 dot products over pairs of positions). Panics
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
    let parts = match Kernel::pick(math, cin) {
        Kernel::Amx => return amx_weight::conv_backward_weight(&p, x, &gplace, gy, gw),
        Kernel::Dot(_cpu) => {
            let xs = Bf16Planes {
                buffers: cin,
                planes: x,
            };
            let gys = Bf16Planes {
                planes: gy,
                buffers: cpad,
            };
            placed_sums(&p, &gplace, &xs, &gys, cpad, |w, ci, q0, part| {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `Kernel::Dot` carries a `DotCpu`, made only where
                // AVX-512F and AVX-512 BF16 were found.
                unsafe {
                    weight_dot(w, &p, ci, q0, part)
                }
            })
        }
        Kernel::F32 => {
            let gys = Padded {
                planes: gy,
                buffers: cpad,
            };
            placed_sums(&p, &gplace, &x, &gys, cpad, |w, ci, q0, part| {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `available()` found AVX-512F and FMA (asserted
                // on entry).
                unsafe {
                    weight_f32(w, &p, ci, q0, part)
                }
            })
        }
    };
    let taps = g.taps();
    for (i, part) in parts.iter().enumerate() {
        let ci = i % cin;
        for co in 0..cout {
            for t in 0..taps {
                gw[(co * cin + ci) * taps + t] += part[co * taps + t];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::terms_per_tile;

    #[test]
    fn weight_tiles_waste_the_fewest_terms_within_their_limit() {
        assert_eq!(terms_per_tile(27, 7), 7);
        assert_eq!(terms_per_tile(27, 6), 4);
        assert_eq!(terms_per_tile(8, 7), 4);
        assert_eq!(terms_per_tile(7, 6), 4);
        assert_eq!(terms_per_tile(6, 6), 6);
        assert_eq!(terms_per_tile(1, 6), 1);
    }
}
