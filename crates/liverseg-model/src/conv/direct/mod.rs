//! Direct 3-D convolution on zero-padded, phase-split, flattened grids,
//! with output channels and 16-voxel vectors held in registers.
//!
//! A convolution with stride `s` reads input coordinate `s·o + k·d − p`
//! for output `o` and tap `k`. Splitting the input by phase (`c mod s`,
//! per axis) and padding each phase turns every tap into a constant
//! linear offset into one phase buffer: the output at grid position `q` is
//! `Σ_ci Σ_t w[co][ci][t] · src[ci][phase_t][q + off_t]`, each tap reading
//! a contiguous run of voxels whatever the row length. Outputs are computed
//! for every `q` of one span (the few positions in padding columns are
//! computed and dropped) and copied out at the end. The microkernel keeps
//! `CB` output channels × `NB` vectors of 16 voxels in registers and
//! streams taps through them: `NB` vector loads and `CB` broadcast weights
//! per `CB · NB` fused multiply-adds, with no column matrix at all.
//!
//! The input gradient of a convolution (the transposed convolution) splits
//! the *output* by phase instead: output phase `r` of an axis receives the
//! taps with `r + p − k·d ≡ 0 (mod s)`, each again a constant offset into
//! the padded output gradient, so each phase is one more run of the same
//! kernel. The weight gradient walks the forward grid with the roles
//! swapped (`CB` output channels × `TB` taps of one input channel, summed
//! over `q`).
//!
//! The kernels need AVX-512 (and FMA); [`available`] says whether this CPU
//! has them, and the callers fall back to the column-matrix kernels
//! otherwise. The order of every sum is fixed (tap by tap and channel by
//! channel; chunk partial sums combined in chunk order), so results do not
//! depend on the number of threads.
//!
//! With bfloat16 asked for ([`Math::Bf16`]) the same grids and terms run
//! on bfloat16 operands with float32 sums: on AMX tiles (`amx.rs`,
//! `amx_weight.rs`) where the CPU and OS allow them, else with AVX-512
//! BF16 dot products (`lanes.rs`: the same microkernels, summing a pair
//! of products per lane and instruction). `forward.rs` holds the forward
//! microkernel and the runs that drive it; `weight.rs` the weight
//! gradient.

// `unsafe` appears (in the submodules, which this allowance covers) only
// for the AVX-512 intrinsics, the AMX instructions and to call the
// `#[target_feature]` functions, each call guarded by the runtime
// detection of the features it needs; every raw load and store is
// bounds-checked up front.
#![allow(unsafe_code)]

use super::geom::ConvGeom;
use rayon::prelude::*;

mod amx;
mod amx_weight;
#[cfg(test)]
mod bf16_tests;
mod forward;
mod lanes;
mod place;
mod weight;
pub(crate) use amx::available as amx_available;
pub(crate) use lanes::{Kernel, dot_available};
pub(crate) use weight::conv_backward_weight;

use super::Math;
use forward::{Operands, compute_into};
use place::{F32Planes, Placement};

/// Lanes of one vector.
const L: usize = 16;

/// Grid positions per chunk of the forward kernels (a multiple of every
/// `NB · L`). Each (chunk, block of output channels) is one parallel task.
const CHUNK: usize = 48 * L;

/// Grid positions per chunk of the weight gradient (a multiple of
/// [`CHUNK`]): longer, so that the horizontal sums at the end of each run
/// stay cheap. Each (chunk, input channel) is one parallel task.
const WCHUNK: usize = 4 * CHUNK;

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

/// The arithmetic a convolution over `sources` channels with `weights`
/// weights producing `outputs` positions runs in when `math` is asked
/// for: float32 where [`Kernel::pick`] finds no bfloat16 kernel, or where
/// the output grid is too small for that kernel's fixed costs to pay.
///
/// On AMX tiles that is fewer than one position per 100 weights: there
/// the tiles' padding, the packing of the weights and the summing of
/// per-task weight gradients outweigh the products (the tutorial's
/// 8 × 8 × 4 layers: 256→256's weight gradient 0.0075 s in float32
/// against 0.0161 s on AMX, the transposed 384→64's 0.0029 against
/// 0.0092 s), while at 16 × 16 × 8 AMX is already faster (64→64: 0.0041
/// against 0.0016 s).
///
/// The dot kernels only convert their operands, so they pay from far
/// smaller grids: float32 below one position per 10 000 weights. On an
/// AMD Zen 4 (`benches/layers.rs`, 2 threads) they halve the plain
/// U-Net's 16³ layers (256→256 forward 0.078 → 0.039 s) and take its
/// 8³ ones from 0.0213 to 0.0133 s (320→320), while 320→320 at 4³
/// (64 positions, 2.8 M weights) stays float32, its forward 0.0025 s
/// against 0.0034 s.
pub(crate) fn worth_bf16(math: Math, sources: usize, outputs: usize, weights: usize) -> Math {
    let per_position = match Kernel::pick(math, sources) {
        Kernel::F32 => return Math::F32,
        Kernel::Amx => 100,
        Kernel::Dot(_) => 10_000,
    };
    if outputs.saturating_mul(per_position) < weights {
        Math::F32
    } else {
        math
    }
}

/// A flattened 3-D grid of extent `ext` (w fastest).
#[derive(Clone, Copy, Debug)]
struct Flat {
    ext: [usize; 3],
}

impl Flat {
    fn at(&self, i: [usize; 3]) -> usize {
        (i[0] * self.ext[1] + i[1]) * self.ext[2] + i[2]
    }

    fn len(&self) -> usize {
        self.ext.iter().product()
    }

    /// Positions computed for outputs `0..outs` on this grid: one past the
    /// last valid position, rounded up to whole chunks of `chunk`.
    fn span(&self, outs: [usize; 3], chunk: usize) -> usize {
        if outs.contains(&0) {
            return 0;
        }
        let last = self.at([outs[0] - 1, outs[1] - 1, 0]) + outs[2];
        last.div_ceil(chunk) * chunk
    }
}

/// One kernel term: the tap whose weight it uses and the offset (phase
/// buffer included) it reads at.
type Term = (usize, usize);

/// How a strided convolution reads its input along the three axes: the
/// phase grid's extent and low padding, and each tap's `(phase, offset)`
/// per axis.
struct ForwardPlan {
    grid: Flat,
    low: [usize; 3],
    taps: [Vec<(usize, usize)>; 3],
}

impl ForwardPlan {
    fn new(g: &ConvGeom, dout: [usize; 3]) -> Self {
        let mut ext = [0; 3];
        let mut low = [0; 3];
        let mut taps: [Vec<(usize, usize)>; 3] = Default::default();
        for a in 0..3 {
            let s = g.stride[a] as isize;
            let v: Vec<(usize, isize)> = (0..g.kernel[a])
                .map(|k| {
                    let v = (k * g.dilation[a]) as isize - g.padding[a] as isize;
                    (v.rem_euclid(s) as usize, v.div_euclid(s))
                })
                .collect();
            let min = v.iter().map(|t| t.1).min().unwrap_or(0);
            let max = v.iter().map(|t| t.1).max().unwrap_or(0);
            low[a] = (-min).max(0) as usize;
            ext[a] = (dout[a] as isize + max + low[a] as isize).max(1) as usize;
            taps[a] = v
                .iter()
                .map(|&(ph, sh)| (ph, (sh + low[a] as isize) as usize))
                .collect();
        }
        ForwardPlan {
            grid: Flat { ext },
            low,
            taps,
        }
    }

    /// Each tap's `(phase buffer, offset within it)`, taps in `(kd, kh,
    /// kw)` order.
    fn tap_offsets(&self, g: &ConvGeom) -> Vec<(usize, usize)> {
        let mut out = Vec::with_capacity(g.taps());
        for &(p0, o0) in &self.taps[0] {
            for &(p1, o1) in &self.taps[1] {
                for &(p2, o2) in &self.taps[2] {
                    let phase = (p0 * g.stride[1] + p1) * g.stride[2] + p2;
                    out.push((phase, self.grid.at([o0, o1, o2])));
                }
            }
        }
        out
    }
}

/// Where the input of a convolution goes on its padded, phase-split grid
/// and the terms that read it, for the forward pass and the weight
/// gradient.
struct Prepared {
    plan: ForwardPlan,
    /// Positions the weight gradient sums over (whole [`WCHUNK`]s).
    wspan: usize,
    stride: usize,
    phases: usize,
    placement: Placement,
    terms: Vec<Term>,
}

fn prepare(din: [usize; 3], g: &ConvGeom, dout: [usize; 3]) -> Prepared {
    let plan = ForwardPlan::new(g, dout);
    let offs = plan.tap_offsets(g);
    let span = plan.grid.span(dout, CHUNK);
    let wspan = plan.grid.span(dout, WCHUNK);
    let max_off = offs.iter().map(|t| t.1).max().unwrap_or(0);
    // The forward kernel may compute up to a tile past the last output.
    let stride = (wspan.max(span + CHUNK) + max_off).max(plan.grid.len());
    let phases = g.stride.iter().product();
    let placement = Placement {
        din,
        s: g.stride,
        low: plan.low,
        grid: plan.grid,
        stride,
    };
    let terms = offs
        .iter()
        .enumerate()
        .map(|(t, &(ph, off))| (t, ph * stride + off))
        .collect();
    Prepared {
        plan,
        wspan,
        stride,
        phases,
        placement,
        terms,
    }
}

/// Convolution of one sample, `y (cout × dout) = w ⋆ x (+ bias)`, with
/// `w` in PyTorch's `(cout, cin, kd, kh, kw)` layout. Panics unless
/// [`available`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_forward(
    x: &[f32],
    cin: usize,
    din: [usize; 3],
    w: &[f32],
    bias: Option<&[f32]>,
    cout: usize,
    g: &ConvGeom,
    dout: [usize; 3],
    y: &mut [f32],
    math: Math,
) {
    // The intrinsics below are sound only on a CPU with AVX-512F and FMA;
    // this is a safe function, so it checks rather than trusts its caller.
    assert!(available(), "the direct kernels need AVX-512F and FMA");
    let p = prepare(din, g, dout);
    let (vol, taps) = (din.iter().product(), g.taps());
    let operands = Operands::new(
        math,
        F32Planes {
            x,
            channels: cin,
            vol,
        },
        &p.placement,
        cout,
        taps,
        |co, ci, t| w[(co * cin + ci) * taps + t],
    );
    let vol: usize = dout.iter().product();
    let plane_len = dout[1] * dout[2];
    compute_into(
        &[(operands.run(&p.terms), dout)],
        p.plan.grid,
        y,
        cout,
        vol,
        plane_len,
        |dst, _, co, m0, m1, m2, vals| {
            let at = (m0 * dout[1] + m1) * dout[2] + m2;
            let dst = &mut dst[at..at + vals.len()];
            match bias {
                Some(b) => dst.iter_mut().zip(vals).for_each(|(d, v)| *d = v + b[co]),
                None => dst.copy_from_slice(vals),
            }
        },
    );
}

/// Gradient of a convolution with respect to its input for one sample,
/// `gx (cin × din) = wᵀ ⋆ gy`, which is also the forward pass of the
/// transposed convolution with weight `w` (and then `bias`, one per `cin`
/// channel, is added). Panics unless [`available`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_backward_input(
    gy: &[f32],
    cout: usize,
    dout: [usize; 3],
    w: &[f32],
    bias: Option<&[f32]>,
    cin: usize,
    g: &ConvGeom,
    din: [usize; 3],
    gx: &mut [f32],
    math: Math,
) {
    // The intrinsics below are sound only on a CPU with AVX-512F and FMA;
    // this is a safe function, so it checks rather than trusts its caller.
    assert!(available(), "the direct kernels need AVX-512F and FMA");
    // Per axis and output phase r: the number of outputs of that phase and
    // the taps reaching it with their (signed) offsets into gy.
    let mut phase_taps: [Vec<Vec<(usize, isize)>>; 3] = Default::default();
    let mut counts: [Vec<usize>; 3] = Default::default();
    let (mut low, mut ext) = ([0usize; 3], [0usize; 3]);
    for a in 0..3 {
        let s = g.stride[a];
        let mut min_sh = 0isize;
        for r in 0..s {
            counts[a].push(if r < din[a] {
                (din[a] - r).div_ceil(s)
            } else {
                0
            });
            let taps: Vec<(usize, isize)> = (0..g.kernel[a])
                .filter_map(|k| {
                    let v = (r + g.padding[a]) as isize - (k * g.dilation[a]) as isize;
                    (v.rem_euclid(s as isize) == 0).then_some((k, v.div_euclid(s as isize)))
                })
                .collect();
            min_sh = taps.iter().map(|t| t.1).fold(min_sh, isize::min);
            phase_taps[a].push(taps);
        }
        low[a] = (-min_sh) as usize;
        let mut e = dout[a] + low[a];
        for r in 0..s {
            let max_sh = phase_taps[a][r].iter().map(|t| t.1).max().unwrap_or(0);
            e = e.max((counts[a][r] as isize + max_sh + low[a] as isize).max(0) as usize);
        }
        ext[a] = e.max(1);
    }
    let grid = Flat { ext };
    let k = g.kernel;
    // The output phases, each with its outputs and terms (in-buffer offsets).
    let mut phases = Vec::new();
    for r0 in 0..g.stride[0] {
        for r1 in 0..g.stride[1] {
            for r2 in 0..g.stride[2] {
                let outs = [counts[0][r0], counts[1][r1], counts[2][r2]];
                let mut terms = Vec::new();
                for &(k0, s0) in &phase_taps[0][r0] {
                    for &(k1, s1) in &phase_taps[1][r1] {
                        for &(k2, s2) in &phase_taps[2][r2] {
                            let sh = [s0, s1, s2];
                            let at = [0, 1, 2].map(|a| (sh[a] + low[a] as isize) as usize);
                            terms.push(((k0 * k[1] + k1) * k[2] + k2, grid.at(at)));
                        }
                    }
                }
                phases.push(([r0, r1, r2], outs, terms));
            }
        }
    }
    let stride = phases
        .iter()
        .map(|(_, outs, terms)| {
            grid.span(*outs, CHUNK) + CHUNK + terms.iter().map(|t: &Term| t.1).max().unwrap_or(0)
        })
        .max()
        .unwrap_or(0)
        .max(grid.len());
    let placement = Placement {
        din: dout,
        s: [1; 3],
        low,
        grid,
        stride,
    };
    let gy = F32Planes {
        x: gy,
        channels: cout,
        vol: dout.iter().product(),
    };
    let taps = g.taps();
    let operands = Operands::new(math, gy, &placement, cin, taps, |ci, co, t| {
        w[(co * cin + ci) * taps + t]
    });
    let vol: usize = din.iter().product();
    let b = |ci: usize| bias.map_or(0.0, |b| b[ci]);
    // Phases that no tap reaches keep the bias; the others are written
    // whole below.
    if phases
        .iter()
        .any(|(_, outs, terms)| terms.is_empty() && !outs.contains(&0))
    {
        gx[..cin * vol]
            .par_chunks_mut(vol.max(1))
            .enumerate()
            .for_each(|(ci, plane)| plane.fill(b(ci)));
    }
    let live: Vec<_> = phases
        .iter()
        .filter(|(_, outs, terms)| !outs.contains(&0) && !terms.is_empty())
        .collect();
    let runs: Vec<_> = live
        .iter()
        .map(|(_, outs, terms)| (operands.run(terms), *outs))
        .collect();
    let s = g.stride;
    compute_into(
        &runs,
        grid,
        gx,
        cin,
        vol,
        s[0] * din[1] * din[2],
        |dst, k, ci, m0, m1, m2, vals| {
            let r = live[k].0;
            let (d, h) = (s[0] * m0 + r[0], s[1] * m1 + r[1]);
            let line = &mut dst[(d * din[1] + h) * din[2]..][..din[2]];
            let bias = b(ci);
            if s[2] == 1 {
                let out = &mut line[m2 + r[2]..][..vals.len()];
                out.iter_mut().zip(vals).for_each(|(o, v)| *o = v + bias);
                return;
            }
            let out = line[s[2] * m2 + r[2]..].iter_mut().step_by(s[2]);
            out.zip(vals).for_each(|(o, v)| *o = v + bias);
        },
    );
}
