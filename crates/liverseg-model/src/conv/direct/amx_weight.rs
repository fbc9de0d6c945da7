//! The weight gradient on AMX tiles: `gw[co][ci][t] = Σ_q gy[co][q] ·
//! x[ci][q + off_t]` as a product whose long dimension, the one a tile
//! instruction sums over, is the grid position.
//!
//! The input's rows are the weight tiles' operand A: 32 consecutive
//! positions of one input channel per row, starting at the tap's offset,
//! so any offset works. The output gradient is operand B, which wants
//! its 32 positions as pairs: it is laid out `[position pair][channel][2]`,
//! so that a tile row is the pair of 16 output channels. The accumulators
//! hold input × output channels for one tap and sum a whole chunk of
//! positions before they are stored; chunk partial sums are combined in
//! chunk order, so the result does not depend on the thread count.

use super::amx::{TileConfig, available};
#[cfg(target_arch = "x86_64")]
use super::amx::{configure, release, store_accumulators, zero_accumulators};
use super::place::{Bf16Planes, F32Planes, Placement};
use super::{Prepared, WCHUNK};
use rayon::prelude::*;

/// Positions one tile instruction sums.
const K: usize = 32;

/// How the channels split into tiles: each step holds two tiles of `mr`
/// input channels and two of `nc` output channels.
#[derive(Clone, Copy)]
struct Split {
    mr: usize,
    nc: usize,
    ci_pad: usize,
    co_pad: usize,
}

impl Split {
    fn new(cin: usize, cout: usize) -> Self {
        let mr = cin.div_ceil(2).clamp(1, 16);
        let nc = cout.div_ceil(2).clamp(1, 16);
        Split {
            mr,
            nc,
            ci_pad: cin.div_ceil(2 * mr) * 2 * mr,
            co_pad: cout.div_ceil(2 * nc) * 2 * nc,
        }
    }
}

/// Weight gradient of one sample from the input `x`, placed as `p` says,
/// and the output gradient `gy`, placed by `gplace` on the same grid (zero
/// off the outputs), both rounded to bfloat16, added into `gw` (`(cout,
/// cin, taps)`).
pub(crate) fn conv_backward_weight(
    p: &Prepared,
    x: F32Planes<'_>,
    gplace: &Placement,
    gy: F32Planes<'_>,
    gw: &mut [f32],
) {
    assert!(
        available(),
        "the AMX kernels need AMX-BF16 and the OS's leave"
    );
    let (cin, cout) = (x.channels, gy.channels);
    let taps = p.terms.len();
    let row = p.phases * p.stride;
    let sp = Split::new(cin, cout);
    let xs = p.placement.place(&Bf16Planes {
        planes: x,
        buffers: sp.ci_pad,
    });
    let gyh = gplace.place(&Bf16Planes {
        planes: gy,
        buffers: cout,
    });
    let gyb = gy_pairs(&gyh, gplace.stride, cout, p.wspan / 2, sp.co_pad);
    let max_off = p.terms.iter().map(|t| t.1).max().unwrap_or(0);
    // Every A row read ends before its channel's row does; every B row
    // lies within the pairs of the summed positions.
    assert!(p.wspan.is_multiple_of(WCHUNK) && WCHUNK.is_multiple_of(K) && p.wspan + max_off <= row);
    assert!(xs.len() == sp.ci_pad * row && gyb.len() == p.wspan / 2 * sp.co_pad);
    let ci_steps = sp.ci_pad / (2 * sp.mr);
    let part_len = taps * 2 * sp.mr * sp.co_pad;
    let parts: Vec<Vec<f32>> = (0..(p.wspan / WCHUNK) * ci_steps)
        .into_par_iter()
        .map(|i| {
            let mut part = vec![0f32; part_len];
            let (chunk, ci0) = (i / ci_steps, (i % ci_steps) * 2 * sp.mr);
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `available()` holds (asserted above); the bounds of
            // every tile load and store were checked above and in `block`.
            unsafe {
                block(&xs, row, &gyb, p, sp, ci0, chunk * WCHUNK, &mut part)
            };
            part
        })
        .collect();
    for (i, part) in parts.iter().enumerate() {
        let ci0 = (i % ci_steps) * 2 * sp.mr;
        for (t, part) in part.chunks(2 * sp.mr * sp.co_pad).enumerate() {
            for (cl, line) in part.chunks(sp.co_pad).enumerate() {
                let ci = ci0 + cl;
                if ci >= cin {
                    break;
                }
                for (co, v) in line[..cout].iter().enumerate() {
                    gw[(co * cin + ci) * taps + t] += v;
                }
            }
        }
    }
}

/// `gy`'s first `pairs` position pairs as `[pair][channel]` words (low
/// half the even position), `co_pad` channels per pair (zero past `cout`).
fn gy_pairs(gyh: &[u16], gstride: usize, cout: usize, pairs: usize, co_pad: usize) -> Vec<u32> {
    const BLOCK: usize = 512;
    let mut out = vec![0u32; pairs * co_pad];
    out.par_chunks_mut(BLOCK * co_pad)
        .enumerate()
        .for_each(|(b, dst)| {
            let pp0 = b * BLOCK;
            for co in 0..cout {
                let src = &gyh[co * gstride + 2 * pp0..];
                for (d, pair) in dst.chunks_mut(co_pad).zip(src.chunks_exact(2)) {
                    d[co] = pair[0] as u32 | (pair[1] as u32) << 16;
                }
            }
        });
    out
}

/// One task: every tap's sums over positions `q0..q0 + WCHUNK` for input
/// channels `ci0..ci0 + 2·mr` and every output channel, stored into
/// `part` (`[tap][input channel][co_pad]`).
///
/// # Safety
/// AMX must be [`available`], `ci0 + 2·mr ≤ ci_pad`, and the bounds hold
/// as asserted by [`conv_backward_weight`].
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn block(
    xs: &[u16],
    row: usize,
    gyb: &[u32],
    p: &Prepared,
    sp: Split,
    ci0: usize,
    q0: usize,
    part: &mut [f32],
) {
    use std::arch::asm;
    let Split { mr, nc, co_pad, .. } = sp;
    assert!(ci0 + 2 * mr <= sp.ci_pad && part.len() == p.terms.len() * 2 * mr * co_pad);
    let acc = (mr as u8, (nc * 4) as u16);
    let a = (mr as u8, (K * 2) as u16);
    let b = ((K / 2) as u8, (nc * 4) as u16);
    let cfg = TileConfig::new(&[acc, acc, acc, acc, a, a, b, b]);
    let (astride, bstride, cstride) = (row * 2, co_pad * 4, co_pad * 4);
    // SAFETY: the caller's contract: A rows `ci0..ci0 + 2·mr` of `row`
    // positions, read at `q + off + 32 ≤ wspan + max_off ≤ row`; B rows
    // are pairs `q/2..q/2 + 16 ≤ wspan/2` of `co_pad` words; C tiles are
    // stored inside `part`, whose length is asserted above.
    unsafe {
        configure(&cfg);
        for (t, &(_, off)) in p.terms.iter().enumerate() {
            for co0 in (0..co_pad).step_by(2 * nc) {
                zero_accumulators();
                let a0 = xs.as_ptr().add(ci0 * row + off);
                let b0 = gyb.as_ptr().add(co0);
                for q in (q0..q0 + WCHUNK).step_by(K) {
                    let (x, g) = (a0.add(q), b0.add(q / 2 * co_pad));
                    asm!(
                        "tileloadd tmm4, [{a0} + {as}*1]",
                        "tileloadd tmm6, [{b0} + {bs}*1]",
                        "tdpbf16ps tmm0, tmm4, tmm6",
                        "tileloadd tmm7, [{b1} + {bs}*1]",
                        "tdpbf16ps tmm1, tmm4, tmm7",
                        "tileloadd tmm5, [{a1} + {as}*1]",
                        "tdpbf16ps tmm2, tmm5, tmm6",
                        "tdpbf16ps tmm3, tmm5, tmm7",
                        a0 = in(reg) x,
                        a1 = in(reg) x.add(mr * row),
                        b0 = in(reg) g,
                        b1 = in(reg) g.add(nc),
                        as = in(reg) astride,
                        bs = in(reg) bstride,
                        options(nostack, readonly)
                    );
                }
                let c = part.as_mut_ptr().add(t * 2 * mr * co_pad + co0);
                let at = [c, c.add(nc), c.add(mr * co_pad), c.add(mr * co_pad + nc)];
                store_accumulators(at, cstride);
            }
        }
        release();
    }
}
