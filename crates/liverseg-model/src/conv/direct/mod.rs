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

// `unsafe` appears only for the AVX-512 intrinsics and to call the
// `#[target_feature]` functions, each call guarded by the runtime detection
// in `available()`; every raw load and store is bounds-checked up front.
#![allow(unsafe_code)]

use super::geom::ConvGeom;
use rayon::prelude::*;

mod amx;
mod amx_weight;
mod place;
mod weight;
pub(crate) use amx::available as amx_available;
pub(crate) use weight::conv_backward_weight;

use super::Math;
use place::{Bf16Pairs, F32Planes, Placement};

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

/// Whether a run of `sources` channels in `math` takes the AMX kernels:
/// bfloat16 asked for, the CPU and OS ready for AMX, and enough channels
/// (8) to fill a tile's rows.
pub(crate) fn takes_amx(math: Math, sources: usize) -> bool {
    math == Math::Bf16 && sources >= 8 && amx::available()
}

/// The arithmetic a convolution with `weights` weights producing `outputs`
/// positions runs in when `math` is asked for: float32 where its output
/// grid holds fewer than one position per 100 weights. There the tiles'
/// padding, the packing of the weights and the summing of per-task weight
/// gradients outweigh the products (the tutorial's 8 × 8 × 4 layers:
/// 256→256's weight gradient 0.0075 s in float32 against 0.0161 s on AMX,
/// the transposed 384→64's 0.0029 against 0.0092 s), while at 16 × 16 × 8
/// AMX is already faster (64→64: 0.0041 against 0.0016 s).
pub(crate) fn worth_amx(math: Math, outputs: usize, weights: usize) -> Math {
    if math == Math::Bf16 && outputs.saturating_mul(100) < weights {
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

/// A run of the forward microkernel: the source buffers, the terms each
/// output position sums, and the packed weights.
struct Run<'a> {
    /// Source channels, `ci_stride` floats apart.
    src: &'a [f32],
    sources: usize,
    ci_stride: usize,
    terms: &'a [Term],
    /// `wpk[source][tap][dest]`, dest padded to `cpad`.
    wpk: &'a [f32],
    taps: usize,
    cpad: usize,
    cb: usize,
    /// The bfloat16 operands when the run takes the AMX kernel (the float32
    /// ones above are then unused).
    amx: Option<amx::AmxRun<'a>>,
}

impl Run<'_> {
    /// Computes every destination channel at the positions of the box
    /// `outs` (`m0 × m1 × m2`) of `grid` and hands each row of results to
    /// `write(dst, c, m0 − first, m1, m2, values)`, where `dst` is channel
    /// `c`'s part of `dest` holding output planes `first..` of one task.
    ///
    /// `dest` holds `channels` channels of `chan_len` floats; in each, the
    /// outputs of plane `m0` lie in `[m0·plane_len, (m0 + 1)·plane_len)`.
    /// Tasks are (block of `cb` destination channels, run of planes), each
    /// owning its planes of its channels, and compute a plane's positions
    /// a [`CHUNK`] at a time into a buffer that stays in cache, so no
    /// full-size intermediate is written, cleared or read back. The sum at
    /// every position is the same whatever the tiling.
    #[allow(clippy::too_many_arguments)]
    fn compute_into<W>(
        &self,
        grid: Flat,
        outs: [usize; 3],
        dest: &mut [f32],
        channels: usize,
        chan_len: usize,
        plane_len: usize,
        write: W,
    ) where
        W: Fn(&mut [f32], usize, usize, usize, usize, &[f32]) + Sync,
    {
        if outs.contains(&0) || channels == 0 {
            return;
        }
        // Planes per task: enough positions for the kernel's setup to pay,
        // while leaving several tasks per thread.
        let plane_positions = grid.ext[1] * grid.ext[2];
        let blocks = self.cpad / self.cb;
        let mut per_task = (2 * CHUNK / plane_positions.max(1)).max(1);
        while per_task > 1 && blocks * outs[0].div_ceil(per_task) < 8 * rayon::current_num_threads()
        {
            per_task /= 2;
        }
        let mut planes: Vec<_> = dest[..channels * chan_len]
            .chunks_mut(chan_len.max(1))
            .map(|c| c.chunks_mut((per_task * plane_len).max(1)))
            .collect();
        let mut tasks = Vec::with_capacity(blocks * outs[0].div_ceil(per_task));
        for first in (0..outs[0]).step_by(per_task) {
            for b in 0..blocks {
                let co0 = b * self.cb;
                let dsts: Vec<&mut [f32]> = planes
                    [co0.min(channels)..(co0 + self.cb).min(channels)]
                    .iter_mut()
                    .map(|p| p.next().expect("a slice per run of planes"))
                    .collect();
                tasks.push((co0, first, dsts));
            }
        }
        let last = (outs[1] - 1) * grid.ext[2] + outs[2];
        // Each thread's chunk buffer lives on between calls: rayon calls a
        // `for_each_init` initialiser once per split job, which cleared a
        // fresh buffer dozens of times per convolution. Every value read
        // from it was written by the kernel for the same chunk first.
        tasks.into_par_iter().for_each(|(co0, first, mut dsts)| {
            CHUNK_BUF.with_borrow_mut(|buf| {
                if buf.len() < self.cb * CHUNK {
                    buf.resize(self.cb * CHUNK, 0.0);
                }
                for m0 in first..(first + per_task).min(outs[0]) {
                    let (start, end) = (grid.at([m0, 0, 0]), grid.at([m0, 0, 0]) + last);
                    let mut q = start;
                    while q < end {
                        let cols = (end - q).min(CHUNK);
                        match &self.amx {
                            Some(run) => amx::block(run, co0, q, cols, buf),
                            #[cfg(target_arch = "x86_64")]
                            // SAFETY: the public entry points are only
                            // chosen after `available()` found AVX-512F
                            // and FMA.
                            None => unsafe { forward_block(self, co0, q, cols, buf) },
                            #[cfg(not(target_arch = "x86_64"))]
                            None => {}
                        }
                        // Rows of plane m0 that meet [q, q + cols).
                        let e2 = grid.ext[2];
                        for r in (q - start) / e2..=(q + cols - 1 - start) / e2 {
                            let lo = q.max(start + r * e2);
                            let hi = (q + cols).min(start + r * e2 + outs[2]);
                            if lo >= hi {
                                continue;
                            }
                            for (c, dst) in dsts.iter_mut().enumerate() {
                                let vals = &buf[c * CHUNK + lo - q..][..hi - lo];
                                write(dst, co0 + c, m0 - first, r, lo - start - r * e2, vals);
                            }
                        }
                        q += cols;
                    }
                }
            })
        });
    }
}

thread_local! {
    /// A thread's chunk buffer for [`Run::compute_into`] (`cb` rows of
    /// [`CHUNK`] floats, grown on demand).
    static CHUNK_BUF: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `CB` output channels × `NB` vectors at grid positions `q..q + NB·L`,
/// summed over every source channel and term, written to `out` (`CB` rows
/// of [`CHUNK`] floats, starting at column `col`).
///
/// # Safety
/// The CPU must support AVX-512F (the caller is a `target_feature`
/// function reached only after [`available`]).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn forward_tile<const CB: usize, const NB: usize>(
    run: &Run<'_>,
    co0: usize,
    q: usize,
    out: &mut [f32],
    col: usize,
) {
    use std::arch::x86_64::*;
    let (cpad, taps) = (run.cpad, run.taps);
    let max_off = run.terms.iter().map(|t| t.1).max().unwrap_or(0);
    let max_tap = run.terms.iter().map(|t| t.0).max().unwrap_or(0);
    // Bounds, checked once: every load and store below stays inside these.
    assert!((run.sources - 1) * run.ci_stride + q + max_off + NB * L <= run.src.len());
    assert!(max_tap < taps && run.sources * taps * cpad <= run.wpk.len() && co0 + CB <= cpad);
    assert!((CB - 1) * CHUNK + col + NB * L <= out.len());
    // SAFETY: the CPU has AVX-512F (contract); the pointer offsets are
    // within the slices by the asserts above.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); NB]; CB];
        for ci in 0..run.sources {
            let xc = run.src.as_ptr().add(ci * run.ci_stride + q);
            let wc = run.wpk.as_ptr().add(ci * taps * cpad + co0);
            for &(t, off) in run.terms {
                let mut xv = [_mm512_setzero_ps(); NB];
                for (j, v) in xv.iter_mut().enumerate() {
                    // ci·ci_stride + q + off + j·L + L ≤ src.len().
                    *v = _mm512_loadu_ps(xc.add(off + j * L));
                }
                let wt = wc.add(t * cpad);
                for (c, a) in acc.iter_mut().enumerate() {
                    // (ci·taps + t)·cpad + co0 + c < sources·taps·cpad.
                    let wv = _mm512_set1_ps(*wt.add(c));
                    for j in 0..NB {
                        a[j] = _mm512_fmadd_ps(wv, xv[j], a[j]);
                    }
                }
            }
        }
        for (c, a) in acc.iter().enumerate() {
            let dst = out.as_mut_ptr().add(c * CHUNK + col);
            for (j, v) in a.iter().enumerate() {
                // c·CHUNK + col + j·L + L ≤ out.len().
                _mm512_storeu_ps(dst.add(j * L), *v);
            }
        }
    }
}

/// Every tile of positions `q0..q0 + cols` (`cols ≤` [`CHUNK`], rounded up
/// to whole tiles) for the `CB` destination channels from `co0`, into
/// `out` (`CB` rows of [`CHUNK`]).
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn forward_cols<const CB: usize, const NB: usize>(
    run: &Run<'_>,
    co0: usize,
    q0: usize,
    cols: usize,
    out: &mut [f32],
) {
    let mut col = 0;
    while col < cols {
        // SAFETY: AVX-512F is available (this function's contract).
        unsafe { forward_tile::<CB, NB>(run, co0, q0 + col, out, col) };
        col += NB * L;
    }
}

/// One piece of a forward run: destination channels `co0..co0 + cb` at
/// grid positions `q0..q0 + cols`.
///
/// # Safety
/// The CPU must support AVX-512F and FMA ([`available`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn forward_block(run: &Run<'_>, co0: usize, q0: usize, cols: usize, out: &mut [f32]) {
    // SAFETY: this function runs with AVX-512F enabled (its own
    // contract), which is all the tiles require.
    unsafe {
        match run.cb {
            8 => forward_cols::<8, 3>(run, co0, q0, cols, out),
            4 => forward_cols::<4, 6>(run, co0, q0, cols, out),
            2 => forward_cols::<2, 12>(run, co0, q0, cols, out),
            _ => forward_cols::<1, 16>(run, co0, q0, cols, out),
        }
    }
}

/// Destination channels per microkernel tile, and `n` rounded up to it.
fn channel_block(n: usize) -> (usize, usize) {
    let cb = match n {
        c if c >= 8 => 8,
        c if c >= 4 => 4,
        c if c >= 2 => 2,
        _ => 1,
    };
    (cb, n.div_ceil(cb) * cb)
}

/// The operands of the forward microkernel for one convolution: its
/// padded sources and packed weights, in float32, or in bfloat16 for the
/// AMX kernel when [`Math::Bf16`] asks for it, the CPU has AMX-BF16 and
/// the sources are enough channels to fill a tile's rows (8 or more).
struct Operands {
    sources: usize,
    row: usize,
    taps: usize,
    cb: usize,
    cpad: usize,
    src: Vec<f32>,
    wpk: Vec<f32>,
    amx: Option<(Vec<u32>, Vec<u16>, amx::Blocks)>,
}

impl Operands {
    /// The sources `x` as `placement` places them; `weight(dest, source,
    /// tap)` is the weight of each term.
    fn new(
        math: Math,
        x: F32Planes<'_>,
        placement: &Placement,
        dests: usize,
        taps: usize,
        weight: impl Fn(usize, usize, usize) -> f32 + Sync,
    ) -> Self {
        let sources = x.channels;
        let s = placement.s;
        let row = s[0] * s[1] * s[2] * placement.stride;
        if takes_amx(math, sources) {
            let blocks = amx::Blocks::new(sources, dests);
            let pairs = placement.place(&Bf16Pairs {
                planes: x,
                pairs: blocks.pairs(),
            });
            let wt = amx::pack_weights(dests, sources, taps, &blocks, weight);
            return Operands {
                sources,
                row,
                taps,
                cb: blocks.cb,
                cpad: dests.div_ceil(blocks.cb) * blocks.cb,
                src: Vec::new(),
                wpk: Vec::new(),
                amx: Some((pairs, wt, blocks)),
            };
        }
        let src = placement.place(&x);
        let (cb, cpad) = channel_block(dests);
        // wpk[source][t][dest]: the weights a tap broadcasts, contiguous
        // over the destination channel (zero past `dests`).
        let wpk = crate::buffers::written_chunks(sources * taps * cpad, cpad, |i, w| {
            let (s, t) = (i / taps, i % taps);
            w.extend((0..dests).map(|d| weight(d, s, t)));
        });
        Operands {
            sources,
            row,
            taps,
            cb,
            cpad,
            src,
            wpk,
            amx: None,
        }
    }

    /// A run of these operands over `terms`.
    fn run<'a>(&'a self, terms: &'a [Term]) -> Run<'a> {
        Run {
            src: &self.src,
            sources: self.sources,
            ci_stride: self.row,
            terms,
            wpk: &self.wpk,
            taps: self.taps,
            cpad: self.cpad,
            cb: self.cb,
            amx: self.amx.as_ref().map(|(src, wt, blocks)| amx::AmxRun {
                src,
                row: self.row,
                terms,
                wt,
                taps: self.taps,
                blocks: *blocks,
            }),
        }
    }
}

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
    let run = operands.run(&p.terms);
    let vol: usize = dout.iter().product();
    let plane_len = dout[1] * dout[2];
    run.compute_into(
        p.plan.grid,
        dout,
        y,
        cout,
        vol,
        plane_len,
        |dst, co, m0, m1, m2, vals| {
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
    for (r, outs, terms) in &phases {
        if outs.contains(&0) || terms.is_empty() {
            continue;
        }
        let run = operands.run(terms);
        let s = g.stride;
        run.compute_into(
            grid,
            *outs,
            gx,
            cin,
            vol,
            s[0] * din[1] * din[2],
            |dst, ci, m0, m1, m2, vals| {
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
}
