//! Placing a tensor's channels on the padded, phase-split grid the direct
//! kernels read: as float32 planes, as bfloat16 planes, or as bfloat16
//! channel pairs interleaved position by position (the AMX kernels'
//! source tiles).

use super::Flat;
use super::amx::bf16_bits;
use crate::buffers;

/// Where a tensor's samples go: the extent `din` split by phase (`c mod
/// s` per axis) and placed on `grid` at `c / s + low`, `s0·s1·s2` phase
/// buffers of `stride` elements per channel (or pair), zero elsewhere.
/// Samples that land past the grid are not read by any output and are
/// dropped.
#[derive(Clone, Copy, Debug)]
pub(super) struct Placement {
    pub din: [usize; 3],
    pub s: [usize; 3],
    pub low: [usize; 3],
    pub grid: Flat,
    pub stride: usize,
}

/// The buffers a tensor is placed as, and the values of their rows.
pub(super) trait Planes: Sync {
    /// One element of a buffer.
    type T: Copy + Default + Send + Sync;
    /// How many buffers (channels, or pairs of them).
    fn buffers(&self) -> usize;
    /// Values `i..i + n` (row-major within the extent) of buffer `b`.
    fn row(&self, b: usize, i: usize, n: usize) -> impl Iterator<Item = Self::T> + Clone + '_;
}

/// `channels` float32 planes of `vol` samples each.
pub(super) struct F32Planes<'a> {
    pub x: &'a [f32],
    pub channels: usize,
    pub vol: usize,
}

impl Planes for F32Planes<'_> {
    type T = f32;
    fn buffers(&self) -> usize {
        self.channels
    }
    fn row(&self, b: usize, i: usize, n: usize) -> impl Iterator<Item = f32> + Clone + '_ {
        self.x[b * self.vol + i..][..n].iter().copied()
    }
}

/// The same planes rounded to bfloat16, and zero planes after them up to
/// `buffers`.
pub(super) struct Bf16Planes<'a> {
    pub planes: F32Planes<'a>,
    pub buffers: usize,
}

impl Planes for Bf16Planes<'_> {
    type T = u16;
    fn buffers(&self) -> usize {
        self.buffers
    }
    fn row(&self, b: usize, i: usize, n: usize) -> impl Iterator<Item = u16> + Clone + '_ {
        padded_row(&self.planes, b, i, n).map(bf16_bits)
    }
}

/// Values `i..i + n` of plane `b` of `p`, or zeros for a plane past the
/// last (which reads the last one, masked: the loop stays free of
/// branches).
fn padded_row<'a>(
    p: &'a F32Planes<'_>,
    b: usize,
    i: usize,
    n: usize,
) -> impl Iterator<Item = f32> + Clone + 'a {
    let keep = b < p.channels;
    p.row(b.min(p.channels.saturating_sub(1)), i, n)
        .map(move |v| if keep { v } else { 0.0 })
}

/// The float32 planes, and zero planes after them up to `buffers`.
pub(super) struct Padded<'a> {
    pub planes: F32Planes<'a>,
    pub buffers: usize,
}

impl Planes for Padded<'_> {
    type T = f32;
    fn buffers(&self) -> usize {
        self.buffers
    }
    fn row(&self, b: usize, i: usize, n: usize) -> impl Iterator<Item = f32> + Clone + '_ {
        padded_row(&self.planes, b, i, n)
    }
}

/// The planes rounded to bfloat16 in pairs: buffer `b` holds channels
/// `2b` (low half) and `2b + 1` (high half) at each position; channels
/// past the last are zero, and so are the `pairs` buffers past them.
pub(super) struct Bf16Pairs<'a> {
    pub planes: F32Planes<'a>,
    pub pairs: usize,
}

impl Planes for Bf16Pairs<'_> {
    type T = u32;
    fn buffers(&self) -> usize {
        self.pairs
    }
    fn row(&self, b: usize, i: usize, n: usize) -> impl Iterator<Item = u32> + Clone + '_ {
        let p = &self.planes;
        // A channel past the last reads the last one, masked to zero: the
        // loop stays free of branches.
        let last = p.channels.saturating_sub(1);
        let plane = |c: usize| &p.x[c.min(last) * p.vol + i..][..n];
        let mask = |c: usize| if c < p.channels { u32::MAX } else { 0 };
        let (lo, hi) = (plane(2 * b), plane(2 * b + 1));
        let (ml, mh) = (mask(2 * b), mask(2 * b + 1));
        lo.iter()
            .zip(hi)
            .map(move |(l, h)| (bf16_bits(*l) as u32 & ml) | (bf16_bits(*h) as u32 & mh) << 16)
    }
}

impl Placement {
    /// Every buffer of `x` placed: `buffers · phases` blocks of `stride`
    /// elements.
    pub(super) fn place<P: Planes>(&self, x: &P) -> Vec<P::T> {
        let Placement {
            din,
            s,
            low,
            grid,
            stride,
        } = *self;
        let phases = s[0] * s[1] * s[2];
        let e = grid.ext;
        let buffers = x.buffers();
        if phases == 1 && (0..3).all(|a| low[a] < e[a]) {
            let n: [usize; 3] = std::array::from_fn(|a| din[a].min(e[a] - low[a]));
            // One buffer per channel, written in order: each element once.
            return buffers::written_chunks(buffers * stride, stride.max(1), |b, w| {
                w.zeros(low[0] * e[1] * e[2]);
                for d in 0..n[0] {
                    w.zeros(low[1] * e[2]);
                    for h in 0..n[1] {
                        w.zeros(low[2]);
                        w.extend(x.row(b, (d * din[1] + h) * din[2], n[2]));
                        w.zeros(e[2] - low[2] - n[2]);
                    }
                    w.zeros((e[1] - low[1] - n[1]) * e[2]);
                }
                // The planes after the data, and the buffer's tail, are
                // the zeros `written_chunks` ends every chunk with.
            });
        }
        buffers::zeroed_chunks(
            buffers * phases * stride,
            (phases * stride).max(1),
            |b, dst| {
                // One input row at a time, converted into `line` first so
                // that the phase split reads a slice (for stride 2, pairs).
                let mut line = Vec::with_capacity(din[2]);
                for d in 0..din[0] {
                    let g0 = d / s[0] + low[0];
                    if g0 >= e[0] {
                        continue;
                    }
                    for h in 0..din[1] {
                        let g1 = h / s[1] + low[1];
                        if g1 >= e[1] {
                            continue;
                        }
                        line.clear();
                        line.extend(x.row(b, (d * din[1] + h) * din[2], din[2]));
                        let ph01 = (d % s[0]) * s[1] + h % s[1];
                        let row = |r: usize, dst: &mut [P::T]| -> std::ops::Range<usize> {
                            let at = (ph01 * s[2] + r) * stride + grid.at([g0, g1, low[2]]);
                            let n = (din[2] - r).div_ceil(s[2]).min(e[2] - low[2]);
                            debug_assert!(at + n <= dst.len());
                            at..at + n
                        };
                        match s[2] {
                            1 => {
                                let at = row(0, dst);
                                let n = at.len();
                                dst[at].copy_from_slice(&line[..n]);
                            }
                            2 if din[2] >= 2 => {
                                let (r0, r1) = (row(0, dst), row(1, dst));
                                let pairs = line.chunks_exact(2);
                                let n = pairs.len();
                                // Two passes, each vectorisable; an odd
                                // row's last sample ends phase 0.
                                if let (Some(&v), true) = (pairs.remainder().first(), r0.len() > n)
                                {
                                    dst[r0.start + n] = v;
                                }
                                for (slot, p) in dst[r0].iter_mut().zip(pairs.clone()) {
                                    *slot = p[0];
                                }
                                for (slot, p) in dst[r1].iter_mut().zip(pairs) {
                                    *slot = p[1];
                                }
                            }
                            _ => {
                                for r in 0..s[2].min(din[2]) {
                                    let at = row(r, dst);
                                    let vals = line[r..].iter().step_by(s[2]);
                                    for (slot, v) in dst[at].iter_mut().zip(vals) {
                                        *slot = *v;
                                    }
                                }
                            }
                        }
                    }
                }
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind of buffer holds the same samples at the same places:
    /// pairs are the planes two by two, bfloat16 the planes rounded.
    #[test]
    fn the_buffer_kinds_place_the_same_samples() {
        let (din, channels) = ([3, 4, 7], 3);
        let vol: usize = din.iter().product();
        let x: Vec<f32> = (0..channels * vol).map(|i| i as f32 * 0.37 + 0.5).collect();
        for (s, low) in [
            ([1, 1, 1], [1, 1, 1]),
            ([2, 1, 2], [1, 0, 1]),
            ([1; 3], [0; 3]),
        ] {
            let grid = Flat {
                ext: std::array::from_fn(|a| din[a].div_ceil(s[a]) + 2),
            };
            let pl = Placement {
                din,
                s,
                low,
                grid,
                stride: grid.len() + 5,
            };
            let planes = || F32Planes {
                x: &x,
                channels,
                vol,
            };
            let f = pl.place(&planes());
            let h = pl.place(&Bf16Planes {
                planes: planes(),
                buffers: channels,
            });
            let p = pl.place(&Bf16Pairs {
                planes: planes(),
                pairs: 3,
            });
            let row = f.len() / channels;
            assert_eq!((h.len(), p.len()), (f.len(), 3 * row));
            assert!(
                f.iter().filter(|v| **v != 0.0).count() == channels * vol,
                "{s:?}"
            );
            for (i, v) in f.iter().enumerate() {
                assert_eq!(h[i], bf16_bits(*v));
                let (c, at) = (i / row, i % row);
                let word = p[c / 2 * row + at];
                assert_eq!((word >> (16 * (c % 2))) as u16, bf16_bits(*v), "{s:?} {i}");
            }
            // Channel 3 does not exist: the high half of pair 1 and all of
            // pair 2 are zero.
            assert!(p[row..].iter().all(|w| w >> 16 == 0) && p[2 * row..].iter().all(|w| *w == 0));
        }
    }
}
