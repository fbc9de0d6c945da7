//! The forward microkernel and the runs that drive it: packed operands
//! (float32, bfloat16 channel pairs, or AMX tiles), tasks of destination
//! channels × output planes, and a per-thread chunk buffer from which each
//! row of results is handed to the caller.

use super::amx::bf16_bits;
use super::lanes::{DotCpu, Kernel, pair};
#[cfg(target_arch = "x86_64")]
use super::lanes::{F32, Pairs, Splat};
use super::place::{Bf16Pairs, F32Planes, Placement};
use super::{CHUNK, Flat, L, Math, Term, amx};
use rayon::prelude::*;

/// The sources and packed weights of a run of the register-blocked
/// kernel: `buffers` source buffers (channels, or pairs of them) of
/// `stride` elements, and `wpk[buffer][tap][dest]`, dest padded to
/// `cpad`.
pub(super) struct Lines<'a, S> {
    src: &'a [S],
    buffers: usize,
    stride: usize,
    wpk: &'a [S],
}

/// Which kernel a run takes, with its operands.
enum Ops<'a> {
    F32(Lines<'a, f32>),
    Dot(Lines<'a, u32>, DotCpu),
    Amx(amx::AmxRun<'a>),
}

/// A run of the forward microkernel: the operands, the terms each output
/// position sums, and how destinations are blocked.
pub(super) struct Run<'a> {
    terms: &'a [Term],
    taps: usize,
    cpad: usize,
    cb: usize,
    ops: Ops<'a>,
}

/// Computes every destination channel of every run in `phases` (one run
/// per output phase, sharing its operands and so its blocking), each at
/// the positions of its box `outs` (`m0 × m1 × m2`) of `grid`, and hands
/// each row of results to `write(dst, k, c, m0 − first, m1, m2, values)`,
/// where `k` is the phase's index in `phases` and `dst` is channel `c`'s
/// part of `dest` holding output planes `first..` of one task.
///
/// `dest` holds `channels` channels of `chan_len` floats; in each, the
/// outputs of plane `m0` of every phase lie in `[m0·plane_len, (m0 +
/// 1)·plane_len)`. Tasks are (block of `cb` destination channels, run of
/// planes), each owning its planes of its channels, and compute a plane's
/// positions a [`CHUNK`] at a time into a buffer that stays in cache, so
/// no full-size intermediate is written, cleared or read back. A task
/// computes plane `m0` of every phase before plane `m0 + 1`, so the
/// source rows all phases read stay in cache between them (phase by
/// phase, a transposed 32→2 convolution read its 18 MB of sources eight
/// times). The sum at every position is the same whatever the tiling.
#[allow(clippy::too_many_arguments)]
pub(super) fn compute_into<W>(
    phases: &[(Run<'_>, [usize; 3])],
    grid: Flat,
    dest: &mut [f32],
    channels: usize,
    chan_len: usize,
    plane_len: usize,
    write: W,
) where
    W: Fn(&mut [f32], usize, usize, usize, usize, usize, &[f32]) + Sync,
{
    let live = |outs: &[usize; 3]| !outs.contains(&0);
    let Some((first_run, _)) = phases.iter().find(|(_, outs)| live(outs)) else {
        return;
    };
    if channels == 0 {
        return;
    }
    let (cb, cpad) = (first_run.cb, first_run.cpad);
    debug_assert!(phases.iter().all(|(r, _)| r.cb == cb && r.cpad == cpad));
    let planes_total = phases.iter().map(|(_, outs)| outs[0]).max().unwrap_or(0);
    // Planes per task: enough positions for the kernel's setup to pay,
    // while leaving several tasks per thread.
    let plane_positions = grid.ext[1] * grid.ext[2];
    let blocks = cpad / cb;
    let mut per_task = (2 * CHUNK / plane_positions.max(1)).max(1);
    while per_task > 1
        && blocks * planes_total.div_ceil(per_task) < 8 * rayon::current_num_threads()
    {
        per_task /= 2;
    }
    let mut planes: Vec<_> = dest[..channels * chan_len]
        .chunks_mut(chan_len.max(1))
        .map(|c| c.chunks_mut((per_task * plane_len).max(1)))
        .collect();
    let mut tasks = Vec::with_capacity(blocks * planes_total.div_ceil(per_task));
    for first in (0..planes_total).step_by(per_task) {
        for b in 0..blocks {
            let co0 = b * cb;
            let dsts: Vec<&mut [f32]> = planes[co0.min(channels)..(co0 + cb).min(channels)]
                .iter_mut()
                .map(|p| p.next().expect("a slice per run of planes"))
                .collect();
            tasks.push((co0, first, dsts));
        }
    }
    // Each thread's chunk buffer lives on between calls: rayon calls a
    // `for_each_init` initialiser once per split job, which cleared a
    // fresh buffer dozens of times per convolution. Every value read
    // from it was written by the kernel for the same chunk first.
    tasks.into_par_iter().for_each(|(co0, first, mut dsts)| {
        CHUNK_BUF.with_borrow_mut(|buf| {
            if buf.len() < cb * CHUNK {
                buf.resize(cb * CHUNK, 0.0);
            }
            for m0 in first..(first + per_task).min(planes_total) {
                for (k, (run, outs)) in phases.iter().enumerate() {
                    if !live(outs) || m0 >= outs[0] {
                        continue;
                    }
                    let last = (outs[1] - 1) * grid.ext[2] + outs[2];
                    let (start, end) = (grid.at([m0, 0, 0]), grid.at([m0, 0, 0]) + last);
                    let mut q = start;
                    while q < end {
                        let cols = (end - q).min(CHUNK);
                        run.block(co0, q, cols, buf);
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
                                let at = lo - start - r * e2;
                                write(dst, k, co0 + c, m0 - first, r, at, vals);
                            }
                        }
                        q += cols;
                    }
                }
            }
        })
    });
}

impl Run<'_> {
    /// Destination channels `co0..co0 + cb` at grid positions `q..q +
    /// cols` into `buf` (`cb` rows of [`CHUNK`]).
    fn block(&self, co0: usize, q: usize, cols: usize, buf: &mut [f32]) {
        match &self.ops {
            Ops::Amx(run) => amx::block(run, co0, q, cols, buf),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the public entry points are only chosen after
            // `available()` found AVX-512F and FMA.
            Ops::F32(lines) => unsafe { forward_f32(self, lines, co0, q, cols, buf) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: a `DotCpu` exists only where `DotCpu::detect` found
            // AVX-512F, FMA and AVX-512 BF16.
            Ops::Dot(lines, _cpu) => unsafe { forward_dot(self, lines, co0, q, cols, buf) },
            #[cfg(not(target_arch = "x86_64"))]
            _ => {}
        }
    }
}

thread_local! {
    /// A thread's chunk buffer for [`compute_into`] (`cb` rows of
    /// [`CHUNK`] floats, grown on demand).
    static CHUNK_BUF: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `CB` output channels × `NB` vectors at grid positions `q..q + NB·L`,
/// summed over every source buffer and term, written to `out` (`CB` rows
/// of [`CHUNK`] floats, starting at column `col`).
///
/// # Safety
/// The CPU must support the features of `K` (the caller is a
/// `target_feature` function reached only after they were detected).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn forward_tile<K: Splat, const CB: usize, const NB: usize>(
    run: &Run<'_>,
    lines: &Lines<'_, K::S>,
    co0: usize,
    q: usize,
    out: &mut [f32],
    col: usize,
) {
    use std::arch::x86_64::*;
    const { assert!(K::PER == L) };
    let (cpad, taps) = (run.cpad, run.taps);
    let max_off = run.terms.iter().map(|t| t.1).max().unwrap_or(0);
    let max_tap = run.terms.iter().map(|t| t.0).max().unwrap_or(0);
    let (src, buffers, stride, wpk) = (lines.src, lines.buffers, lines.stride, lines.wpk);
    // Bounds, checked once: every load and store below stays inside these.
    assert!((buffers - 1) * stride + q + max_off + NB * L <= src.len());
    assert!(max_tap < taps && buffers * taps * cpad <= wpk.len() && co0 + CB <= cpad);
    assert!((CB - 1) * CHUNK + col + NB * L <= out.len());
    // SAFETY: the CPU has K's features (contract); the pointer offsets are
    // within the slices by the asserts above.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); NB]; CB];
        for ci in 0..buffers {
            let xc = src.as_ptr().add(ci * stride + q);
            let wc = wpk.as_ptr().add(ci * taps * cpad + co0);
            for &(t, off) in run.terms {
                // (ci·taps + t)·cpad + co0 + c < buffers·taps·cpad.
                let wt = wc.add(t * cpad);
                // ci·stride + q + off + j·L + L ≤ src.len().
                let x = |j: usize| K::load(xc.add(off + j * L));
                if CB >= NB {
                    // The NB input vectors held, one weight at a time.
                    let xv: [__m512; NB] = std::array::from_fn(x);
                    for (c, a) in acc.iter_mut().enumerate() {
                        let wv = K::splat(wt.add(c));
                        for j in 0..NB {
                            a[j] = K::madd(wv, xv[j], a[j]);
                        }
                    }
                } else {
                    // The CB weights held, one input vector at a time: 2
                    // channels × 12 vectors held the other way need 24 sums,
                    // 12 inputs and a weight, 37 registers of AVX-512's 32,
                    // and the compiler moved six sums through the stack.
                    let wv: [__m512; CB] = std::array::from_fn(|c| K::splat(wt.add(c)));
                    for j in 0..NB {
                        let xj = x(j);
                        for c in 0..CB {
                            acc[c][j] = K::madd(wv[c], xj, acc[c][j]);
                        }
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
/// The CPU must support the features of `K`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn forward_cols<K: Splat, const CB: usize, const NB: usize>(
    run: &Run<'_>,
    lines: &Lines<'_, K::S>,
    co0: usize,
    q0: usize,
    cols: usize,
    out: &mut [f32],
) {
    let mut col = 0;
    while col < cols {
        // SAFETY: K's features are available (this function's contract).
        unsafe { forward_tile::<K, CB, NB>(run, lines, co0, q0 + col, out, col) };
        col += NB * L;
    }
}

/// [`forward_cols`] with the tile shape for `run.cb`.
///
/// # Safety
/// The CPU must support the features of `K`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn forward_any<K: Splat>(
    run: &Run<'_>,
    lines: &Lines<'_, K::S>,
    co0: usize,
    q0: usize,
    cols: usize,
    out: &mut [f32],
) {
    // SAFETY: K's features are available (this function's contract).
    unsafe {
        match run.cb {
            8 => forward_cols::<K, 8, 3>(run, lines, co0, q0, cols, out),
            4 => forward_cols::<K, 4, 6>(run, lines, co0, q0, cols, out),
            2 => forward_cols::<K, 2, 12>(run, lines, co0, q0, cols, out),
            _ => forward_cols::<K, 1, 16>(run, lines, co0, q0, cols, out),
        }
    }
}

/// One float32 piece of a forward run: destination channels `co0..co0 +
/// cb` at grid positions `q0..q0 + cols`.
///
/// # Safety
/// The CPU must support AVX-512F and FMA ([`super::available`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn forward_f32(
    run: &Run<'_>,
    lines: &Lines<'_, f32>,
    co0: usize,
    q0: usize,
    cols: usize,
    out: &mut [f32],
) {
    // SAFETY: AVX-512F and FMA are enabled here (this function's contract).
    unsafe { forward_any::<F32>(run, lines, co0, q0, cols, out) }
}

/// [`forward_f32`] on bfloat16 channel pairs.
///
/// # Safety
/// The CPU must support AVX-512F and AVX-512 BF16
/// ([`super::lanes::dot_available`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn forward_dot(
    run: &Run<'_>,
    lines: &Lines<'_, u32>,
    co0: usize,
    q0: usize,
    cols: usize,
    out: &mut [f32],
) {
    // SAFETY: AVX-512F and AVX-512 BF16 are enabled here (this function's
    // contract).
    unsafe { forward_any::<Pairs>(run, lines, co0, q0, cols, out) }
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

/// The packed operands of one convolution, per kernel.
enum Data {
    F32 {
        src: Vec<f32>,
        wpk: Vec<f32>,
    },
    Dot {
        src: Vec<u32>,
        wpk: Vec<u32>,
        cpu: DotCpu,
    },
    Amx {
        src: Vec<u32>,
        wt: Vec<u16>,
        blocks: amx::Blocks,
    },
}

/// The operands of the forward microkernel for one convolution: its
/// padded sources and packed weights, for the kernel [`Kernel::pick`]
/// chooses for the math asked for and the number of sources.
pub(super) struct Operands {
    row: usize,
    taps: usize,
    cb: usize,
    cpad: usize,
    /// Source buffers of the register-blocked kernels: channels in
    /// float32, channel pairs for the dot kernels (unused by AMX).
    buffers: usize,
    data: Data,
}

impl Operands {
    /// The sources `x` as `placement` places them; `weight(dest, source,
    /// tap)` is the weight of each term.
    pub(super) fn new(
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
        let (cb, cpad) = channel_block(dests);
        let operands = |cb, cpad, buffers, data| Operands {
            row,
            taps,
            cb,
            cpad,
            buffers,
            data,
        };
        match Kernel::pick(math, sources) {
            Kernel::Amx => {
                let blocks = amx::Blocks::new(sources, dests);
                let src = placement.place(&Bf16Pairs {
                    planes: x,
                    pairs: blocks.pairs(),
                });
                let wt = amx::pack_weights(dests, sources, taps, &blocks, weight);
                let cpad = dests.div_ceil(blocks.cb) * blocks.cb;
                operands(blocks.cb, cpad, 0, Data::Amx { src, wt, blocks })
            }
            Kernel::Dot(cpu) => {
                let pairs = sources.div_ceil(2);
                let src = placement.place(&Bf16Pairs { planes: x, pairs });
                // wpk[pair][t][dest]: the pairs of weights a tap
                // broadcasts (zero past `dests` and past the last source).
                let w = |d, s, t| {
                    if s < sources {
                        bf16_bits(weight(d, s, t))
                    } else {
                        0
                    }
                };
                let wpk = crate::buffers::written_chunks(pairs * taps * cpad, cpad, |i, out| {
                    let (k, t) = (i / taps, i % taps);
                    out.extend((0..dests).map(|d| pair(w(d, 2 * k, t), w(d, 2 * k + 1, t))));
                });
                operands(cb, cpad, pairs, Data::Dot { src, wpk, cpu })
            }
            Kernel::F32 => {
                let src = placement.place(&x);
                // wpk[source][t][dest]: the weights a tap broadcasts,
                // contiguous over the destination channel (zero past
                // `dests`).
                let wpk = crate::buffers::written_chunks(sources * taps * cpad, cpad, |i, w| {
                    let (s, t) = (i / taps, i % taps);
                    w.extend((0..dests).map(|d| weight(d, s, t)));
                });
                operands(cb, cpad, sources, Data::F32 { src, wpk })
            }
        }
    }

    /// A run of these operands over `terms`.
    pub(super) fn run<'a>(&'a self, terms: &'a [Term]) -> Run<'a> {
        let ops = match &self.data {
            Data::F32 { src, wpk } => Ops::F32(Lines {
                src,
                buffers: self.buffers,
                stride: self.row,
                wpk,
            }),
            Data::Dot { src, wpk, cpu } => Ops::Dot(
                Lines {
                    src,
                    buffers: self.buffers,
                    stride: self.row,
                    wpk,
                },
                *cpu,
            ),
            Data::Amx { src, wt, blocks } => Ops::Amx(amx::AmxRun {
                src,
                row: self.row,
                terms,
                wt,
                taps: self.taps,
                blocks: *blocks,
            }),
        };
        Run {
            terms,
            taps: self.taps,
            cpad: self.cpad,
            cb: self.cb,
            ops,
        }
    }
}
