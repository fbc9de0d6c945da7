//! The direct kernels' bfloat16 variant on Intel AMX tiles: the same
//! padded, phase-split grids and terms as the float32 microkernel, with
//! the operands rounded to bfloat16 and every product accumulated in
//! float32 by `TDPBF16PS`.
//!
//! One tile instruction multiplies a 16 × K block of weights (16
//! destination channels, `K ≤ 32` source channels of one tap) by a K × 16
//! block of sources (16 grid positions) and adds the 16 × 16 products to
//! a float32 accumulator tile. The source tile wants its K rows as pairs
//! of channels, so the sources are laid out `[channel pair][position][2]`:
//! a row of the tile is the 16 positions of one channel pair, 64
//! contiguous bytes, and the rows of successive pairs lie one pair plane
//! apart. The weights are packed once per call as the tiles they are
//! loaded as. Accumulator rows are destination channels and columns grid
//! positions, so a finished tile is stored straight into the `CB` rows of
//! [`CHUNK`] floats that the float32 kernel fills.
//!
//! Linux hands the tile registers to a process only on request
//! (`arch_prctl(ARCH_REQ_XCOMP_PERM)`); [`available`] asks once and says
//! whether the CPU, the OS and that request all allow AMX-BF16.

use super::{CHUNK, Term};
use std::sync::OnceLock;

/// Positions of one tile row (16 float32 accumulators or 16 pairs).
const N: usize = 16;

/// Destination channels of one accumulator tile.
const M: usize = 16;

/// Most source channels one tile instruction sums (64 bytes of bfloat16).
const KMAX: usize = 32;

/// Whether this CPU and OS run the AMX kernels: AMX-TILE and AMX-BF16 by
/// CPUID, the tile state enabled in XCR0, and (on Linux) this process
/// granted the tile data state.
pub(crate) fn available() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(detect)
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn detect() -> bool {
    use std::arch::x86_64::{__cpuid, __cpuid_count};
    // Leaf 7 is read only when leaf 0 reports it.
    let max_leaf = __cpuid(0).eax;
    if max_leaf < 7 {
        return false;
    }
    let (leaf1, leaf7) = (__cpuid(1), __cpuid_count(7, 0));
    let amx = (leaf7.edx >> 22) & 1 == 1 && (leaf7.edx >> 24) & 1 == 1;
    let osxsave = (leaf1.ecx >> 27) & 1 == 1;
    if !amx || !osxsave || !super::available() {
        return false;
    }
    // SAFETY: XGETBV with ECX = 0 is valid once CPUID reports OSXSAVE
    // (checked above); it only reads XCR0.
    let xcr0 = unsafe { std::arch::x86_64::_xgetbv(0) };
    // XTILECFG (bit 17) and XTILEDATA (bit 18).
    if xcr0 & (0b11 << 17) != 0b11 << 17 {
        return false;
    }
    const ARCH_REQ_XCOMP_PERM: libc::c_ulong = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_ulong = 18;
    // SAFETY: arch_prctl with ARCH_REQ_XCOMP_PERM takes two integers and
    // touches no memory of ours; it fails cleanly on kernels without it.
    let granted = unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        )
    };
    granted == 0
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn detect() -> bool {
    false
}

/// `x` rounded to the nearest bfloat16, ties to even (NaN stays NaN).
pub(crate) fn bf16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    // A select, not a branch, so that loops over it vectorise. Only NaNs
    // can wrap, and they take the other arm.
    let rounded = b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16;
    let quiet = (b >> 16) | 0x40;
    (if x.is_nan() { quiet } else { rounded }) as u16
}

/// How the sources of one run are split into tile-sized channel blocks.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Blocks {
    /// Source channels per block (even, at most [`KMAX`]).
    pub kc: usize,
    /// Blocks, `kc` channels each (zeros past the real channels).
    pub kblocks: usize,
    /// Destination channels per accumulator tile row block: 16, or fewer
    /// when the run has fewer destinations.
    pub rows: usize,
    /// Destination channels per task (`rows`, or two tiles' 32).
    pub cb: usize,
}

impl Blocks {
    pub(crate) fn new(sources: usize, dests: usize) -> Self {
        let even = sources.div_ceil(2) * 2;
        let (kc, kblocks) = if even <= KMAX {
            (even.max(2), 1)
        } else {
            (KMAX, even.div_ceil(KMAX))
        };
        let rows = dests.clamp(1, M);
        let cb = if dests > M { 2 * M } else { rows };
        Blocks {
            kc,
            kblocks,
            rows,
            cb,
        }
    }

    /// Channel pairs, every block's included.
    pub(crate) fn pairs(&self) -> usize {
        self.kblocks * self.kc / 2
    }
}

/// The operands of one AMX run.
pub(crate) struct AmxRun<'a> {
    /// `[pair][position]`: two bfloat16 sources per `u32`, low half the
    /// even channel; `row` positions per pair.
    pub src: &'a [u32],
    pub row: usize,
    pub terms: &'a [Term],
    /// `[dest block][tap][k block][rows][kc]` bfloat16 weights.
    pub wt: &'a [u16],
    pub taps: usize,
    pub blocks: Blocks,
}

/// The weights as the tiles the kernel loads, `weight(dest, source, tap)`
/// rounded to bfloat16, for destinations up to a whole task's `cb`;
/// destinations past `dests` and sources past `sources` are zero.
pub(crate) fn pack_weights(
    dests: usize,
    sources: usize,
    taps: usize,
    b: &Blocks,
    weight: impl Fn(usize, usize, usize) -> f32 + Sync,
) -> Vec<u16> {
    let dblocks = dests.div_ceil(b.cb) * (b.cb / b.rows);
    let per_tap = b.kblocks * b.rows * b.kc;
    // One piece per (destination block, tap), written in order on the pool.
    crate::buffers::written_chunks(dblocks * taps * per_tap, per_tap.max(1), |i, w| {
        let (db, t) = (i / taps, i % taps);
        for kb in 0..b.kblocks {
            for r in 0..b.rows {
                let d = db * b.rows + r;
                w.extend((0..b.kc).map(|k| {
                    let s = kb * b.kc + k;
                    if d < dests && s < sources {
                        bf16_bits(weight(d, s, t))
                    } else {
                        0
                    }
                }));
            }
        }
    })
}

/// The 64-byte tile configuration `LDTILECFG` reads (palette 1).
#[repr(C, align(64))]
pub(super) struct TileConfig(pub(super) [u8; 64]);

impl TileConfig {
    pub(super) fn new(tiles: &[(u8, u16)]) -> Self {
        let mut c = [0u8; 64];
        c[0] = 1;
        for (i, &(rows, colsb)) in tiles.iter().enumerate() {
            c[16 + 2 * i..18 + 2 * i].copy_from_slice(&colsb.to_le_bytes());
            c[48 + i] = rows;
        }
        TileConfig(c)
    }
}

/// Destination channels `co0..co0 + cb` at grid positions `q0..q0 + cols`
/// (rounded up to whole steps, which [`CHUNK`] is a multiple of) into
/// `out` (`cb` rows of [`CHUNK`] floats).
///
/// Panics unless [`available`]; the bounds of every tile load and store
/// are checked before the first.
pub(crate) fn block(run: &AmxRun<'_>, co0: usize, q0: usize, cols: usize, out: &mut [f32]) {
    assert!(
        available(),
        "the AMX kernels need AMX-BF16 and the OS's leave"
    );
    let b = &run.blocks;
    let step = if b.cb > M { 2 * N } else { 4 * N };
    let end = q0 + cols.div_ceil(step) * step;
    let max_off = run.terms.iter().map(|t| t.1).max().unwrap_or(0);
    let max_tap = run.terms.iter().map(|t| t.0).max().unwrap_or(0);
    let tile = b.rows * b.kc;
    let dblock0 = co0 / b.rows;
    let dblocks = b.cb / b.rows;
    // Every B row read: the last pair's row, up to the step's end.
    assert!(co0.is_multiple_of(b.rows) && cols <= CHUNK && CHUNK.is_multiple_of(step));
    assert!((b.pairs() - 1) * run.row + end + max_off <= run.src.len() && end + max_off <= run.row);
    assert!(max_tap < run.taps);
    assert!(((dblock0 + dblocks) * run.taps * b.kblocks) * tile <= run.wt.len());
    assert!((b.cb - 1) * CHUNK + cols.div_ceil(step) * step <= out.len());
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `available()` holds (asserted above), so the CPU has AMX-TILE
    // and AMX-BF16 and this process may use the tile data; every address
    // the tile loads and stores touch was bounds-checked just above.
    unsafe {
        if b.cb > M {
            block_2x2(run, dblock0, q0, cols, out)
        } else {
            block_1x4(run, dblock0, q0, cols, out)
        }
    }
}

/// Loads `cfg` as this thread's tile configuration.
///
/// # Safety
/// AMX must be [`available`].
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(super) unsafe fn configure(cfg: &TileConfig) {
    // SAFETY: AMX is available (contract); LDTILECFG reads the 64 bytes of
    // `cfg`, which it borrows.
    unsafe {
        std::arch::asm!("ldtilecfg [{}]", in(reg) cfg.0.as_ptr(), options(nostack, readonly));
    }
}

/// Zeroes the four accumulator tiles tmm0–3.
///
/// # Safety
/// AMX must be [`available`] and configured ([`configure`]).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(super) unsafe fn zero_accumulators() {
    // SAFETY: the contract; TILEZERO touches registers only.
    unsafe {
        std::arch::asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            options(nostack, nomem)
        );
    }
}

/// Stores accumulator tiles tmm0–3 at `at[0..4]`, rows `stride` bytes
/// apart.
///
/// # Safety
/// AMX must be [`available`] and configured, and each tile's rows must lie
/// in memory the caller may write.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(super) unsafe fn store_accumulators(at: [*mut f32; 4], stride: usize) {
    // SAFETY: the contract.
    unsafe {
        std::arch::asm!(
            "tilestored [{o0} + {os}*1], tmm0",
            "tilestored [{o1} + {os}*1], tmm1",
            "tilestored [{o2} + {os}*1], tmm2",
            "tilestored [{o3} + {os}*1], tmm3",
            o0 = in(reg) at[0],
            o1 = in(reg) at[1],
            o2 = in(reg) at[2],
            o3 = in(reg) at[3],
            os = in(reg) stride,
            options(nostack)
        );
    }
}

/// Returns the tile state to its initial one (cheap to switch away from).
///
/// # Safety
/// AMX must be [`available`].
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(super) unsafe fn release() {
    // SAFETY: the contract; TILERELEASE touches registers only.
    unsafe { std::arch::asm!("tilerelease", options(nostack, nomem)) };
}

/// Walks positions `q0..q0 + cols` in steps of `step`: accumulators
/// zeroed, `product(weights, dest block length, sources)` called for every
/// source block and term, then the accumulators stored at `stores`
/// (offsets into `out` from the step's column, rows [`CHUNK`] apart).
///
/// # Safety
/// AMX must be [`available`] and the bounds checked as in [`block`];
/// `cfg` must configure the tiles `product` uses.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn walk(
    run: &AmxRun<'_>,
    dblock0: usize,
    q0: usize,
    cols: usize,
    out: &mut [f32],
    cfg: &TileConfig,
    (step, stores): (usize, [usize; 4]),
    product: impl Fn(*const u16, usize, *const u32),
) {
    let b = &run.blocks;
    let (kc, kb_n) = (b.kc, b.kblocks);
    let tile = b.rows * kc;
    let dblock_len = run.taps * kb_n * tile;
    // SAFETY: the caller's contract; the offsets below stay within the
    // ranges `block` checked.
    unsafe {
        configure(cfg);
        let mut col = 0;
        while col < cols {
            zero_accumulators();
            for kb in 0..kb_n {
                let src = run.src.as_ptr().add(kb * (kc / 2) * run.row + q0 + col);
                for &(t, off) in run.terms {
                    let a = run.wt.as_ptr();
                    let a = a.add(dblock0 * dblock_len + (t * kb_n + kb) * tile);
                    product(a, dblock_len, src.add(off));
                }
            }
            let o = out.as_mut_ptr().add(col);
            store_accumulators(stores.map(|at| o.add(at)), CHUNK * 4);
            col += step;
        }
        release();
    }
}

/// Two accumulator tiles of destinations × two of positions (tmm0–3), the
/// weight tiles in tmm4–5 and the source tiles in tmm6–7.
///
/// # Safety
/// AMX must be [`available`] and the bounds checked as in [`block`].
#[cfg(target_arch = "x86_64")]
unsafe fn block_2x2(run: &AmxRun<'_>, dblock0: usize, q0: usize, cols: usize, out: &mut [f32]) {
    let kc = run.blocks.kc;
    let acc = (M as u8, (N * 4) as u16);
    let wts = (M as u8, (kc * 2) as u16);
    let srcs = ((kc / 2) as u8, (N * 4) as u16);
    let cfg = TileConfig::new(&[acc, acc, acc, acc, wts, wts, srcs, srcs]);
    let (astride, bstride) = (kc * 2, run.row * 4);
    let stores = [0, N, M * CHUNK, M * CHUNK + N];
    // SAFETY: the caller's contract, which `walk` shares; `walk` hands
    // `product` addresses inside the checked ranges.
    unsafe {
        walk(
            run,
            dblock0,
            q0,
            cols,
            out,
            &cfg,
            (2 * N, stores),
            |a0, dblock_len, s| {
                std::arch::asm!(
                    "tileloadd tmm4, [{a0} + {as}*1]",
                    "tileloadd tmm5, [{a1} + {as}*1]",
                    "tileloadd tmm6, [{s0} + {bs}*1]",
                    "tileloadd tmm7, [{s1} + {bs}*1]",
                    "tdpbf16ps tmm0, tmm4, tmm6",
                    "tdpbf16ps tmm1, tmm4, tmm7",
                    "tdpbf16ps tmm2, tmm5, tmm6",
                    "tdpbf16ps tmm3, tmm5, tmm7",
                    a0 = in(reg) a0,
                    a1 = in(reg) a0.add(dblock_len),
                    s0 = in(reg) s,
                    s1 = in(reg) s.add(N),
                    as = in(reg) astride,
                    bs = in(reg) bstride,
                    options(nostack, readonly)
                );
            },
        )
    }
}

/// One accumulator tile of destinations × four of positions (tmm0–3),
/// the weight tile in tmm4 and the source tiles in tmm5–7.
///
/// # Safety
/// AMX must be [`available`] and the bounds checked as in [`block`].
#[cfg(target_arch = "x86_64")]
unsafe fn block_1x4(run: &AmxRun<'_>, dblock0: usize, q0: usize, cols: usize, out: &mut [f32]) {
    let (kc, rows) = (run.blocks.kc, run.blocks.rows);
    let acc = (rows as u8, (N * 4) as u16);
    let wts = (rows as u8, (kc * 2) as u16);
    let srcs = ((kc / 2) as u8, (N * 4) as u16);
    let cfg = TileConfig::new(&[acc, acc, acc, acc, wts, srcs, srcs, srcs]);
    let (astride, bstride) = (kc * 2, run.row * 4);
    let stores = [0, N, 2 * N, 3 * N];
    // SAFETY: the caller's contract, which `walk` shares; `walk` hands
    // `product` addresses inside the checked ranges.
    unsafe {
        walk(
            run,
            dblock0,
            q0,
            cols,
            out,
            &cfg,
            (4 * N, stores),
            |a, _, s| {
                std::arch::asm!(
                    "tileloadd tmm4, [{a} + {as}*1]",
                    "tileloadd tmm5, [{s0} + {bs}*1]",
                    "tileloadd tmm6, [{s1} + {bs}*1]",
                    "tdpbf16ps tmm0, tmm4, tmm5",
                    "tileloadd tmm7, [{s2} + {bs}*1]",
                    "tdpbf16ps tmm1, tmm4, tmm6",
                    "tileloadd tmm5, [{s3} + {bs}*1]",
                    "tdpbf16ps tmm2, tmm4, tmm7",
                    "tdpbf16ps tmm3, tmm4, tmm5",
                    a = in(reg) a,
                    s0 = in(reg) s,
                    s1 = in(reg) s.add(N),
                    s2 = in(reg) s.add(2 * N),
                    s3 = in(reg) s.add(3 * N),
                    as = in(reg) astride,
                    bs = in(reg) bstride,
                    options(nostack, readonly)
                );
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bfloat16_rounds_to_nearest_ties_to_even() {
        let cases = [
            (1.0f32, 0x3f80u16),
            (f32::from_bits(0x3f80_8000), 0x3f80), // tie, even below
            (f32::from_bits(0x3f81_8000), 0x3f82), // tie, odd below: up
            (f32::from_bits(0x3f80_8001), 0x3f81), // above the tie
            (-2.5, 0xc020),
            (f32::INFINITY, 0x7f80),
            (f32::MAX, 0x7f80), // rounds past the largest bfloat16
            (1e-40, 0x0001),    // subnormals keep their top bits
        ];
        for (x, want) in cases {
            assert_eq!(bf16_bits(x), want, "{x:e}");
        }
        let nan = bf16_bits(f32::NAN);
        assert!(nan & 0x7f80 == 0x7f80 && nan & 0x7f != 0, "{nan:#x}");
    }
}
