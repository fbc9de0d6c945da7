//! The entropy-coded samples of a single-component JPEG-LS scan (T.87
//! Annex A): gradients and contexts, median edge prediction with bias
//! correction, limited-length Golomb codes, run mode with its interruption
//! samples, near-lossless reconstruction, and restart intervals.
//!
//! All arithmetic stays within its type for any input: samples are clamped
//! to `0..=MAXVAL`, a code value larger than any valid stream can hold is
//! an error, and context sums that can grow with RESET are `i64`.

use super::{JlsError, invalid};

/// Everything the scan decoder needs from the frame, scan and LSE headers.
#[derive(Clone, Copy, Debug)]
pub(super) struct Params {
    /// Samples per line.
    pub width: usize,
    /// Lines.
    pub height: usize,
    /// The largest sample value.
    pub maxval: i32,
    /// The largest error a near-lossless encoder allowed (0: lossless).
    pub near: i32,
    /// Gradient thresholds.
    pub t1: i32,
    pub t2: i32,
    pub t3: i32,
    /// Context counts are halved when they reach this.
    pub reset: i32,
    /// Lines per restart interval, 0 for none.
    pub restart_interval: usize,
}

/// J, the order of each run-length segment (T.87 A.7.1.1): a run segment
/// at RUNindex `i` stands for `2^J[i]` samples.
const J: [u32; 32] = [
    0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 9, 10, 11, 12, 13,
    14, 15,
];

/// Decodes the scan that starts at `data[0]` (just after the SOS segment)
/// into `out`, row by row. Restart markers are consumed between intervals;
/// whatever follows the last line (normally EOI) is left alone.
pub(super) fn decode(data: &[u8], p: &Params, out: &mut [u16]) -> Result<(), JlsError> {
    let w = p.width;
    let mut model = Model::new(p);
    let mut bits = Bits::new(data);
    // Lines with one extra sample on each side, as T.87 defines the
    // neighbours at the edges: left of a line's first sample stands the
    // first sample of the line above (index 0), right of the line above's
    // last sample a copy of it (index w + 1). Above the first line, and
    // above the first line of each restart interval, all samples are 0.
    let mut prev = vec![0i32; w + 2];
    let mut cur = vec![0i32; w + 2];
    let mut interval = 0u8;
    for (y, row) in out.chunks_exact_mut(w).enumerate() {
        if p.restart_interval > 0 && y > 0 && y % p.restart_interval == 0 {
            // After RSTm each interval is coded as if it began the image.
            bits.restart(interval)?;
            interval = (interval + 1) % 8;
            model.reset();
            prev.fill(0);
            cur.fill(0);
        }
        prev[w + 1] = prev[w];
        cur[0] = prev[1];
        let decoded = model.line(&mut bits, &prev, &mut cur);
        // Past the end of the data every bit reads 0, which soon makes an
        // impossible code: what went wrong is that the data ended.
        if bits.overrun() {
            return invalid(format!(
                "the scan data ends in line {} of {}",
                y + 1,
                p.height
            ));
        }
        decoded?;
        // Reconstructed samples are clamped to 0..=MAXVAL <= 65535.
        for (o, &v) in row.iter_mut().zip(&cur[1..=w]) {
            *o = v as u16;
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    Ok(())
}

/// The statistics of one regular-mode context (T.87 A.2).
#[derive(Clone, Copy, Debug)]
struct Regular {
    /// Sum of error magnitudes.
    a: i64,
    /// Sum of errors (bias), kept in `-n+1..=0`.
    b: i32,
    /// Bias correction of the prediction, `-128..=127`.
    c: i32,
    /// Occurrences.
    n: i32,
}

/// The statistics of the two run-interruption contexts.
#[derive(Clone, Copy, Debug)]
struct Interruption {
    a: i64,
    n: i32,
    /// Occurrences of negative errors.
    nn: i32,
}

/// The coding state of one scan.
#[derive(Debug)]
struct Model {
    p: Params,
    /// 2·NEAR + 1, the quantisation step of errors.
    step: i32,
    /// The number of distinct quantised errors.
    range: i32,
    /// Bits of an escaped code value.
    qbpp: u32,
    /// The longest code, in bits.
    limit: u32,
    /// No valid stream holds a mapped error above this (errors are reduced
    /// modulo RANGE, so they map below 2·RANGE).
    max_mapped: i64,
    /// Initial A of every context.
    a0: i64,
    /// Indexed by 81·Q1 + 9·Q2 + Q3 after the sign is folded out, which
    /// is 1..=364 (0 is run mode).
    regular: Vec<Regular>,
    /// Index 0 for interruptions with |Ra − Rb| > NEAR, 1 otherwise.
    interruption: [Interruption; 2],
    run_index: usize,
    /// [`Model::quantize`] of every gradient `-T3..=T3`, at index
    /// gradient + T3: a lookup instead of up to eight comparisons for each
    /// of the three gradients of a sample made the whole decoder a quarter
    /// faster on a 512x512 12-bit CT slice (8.5 to 6.2 ms, release build
    /// on the 2-core development machine). T3 is at most 276
    /// unless an LSE segment sets it, so the table is small to build.
    gradients: Vec<i8>,
}

/// ⌈log2 x⌉ for x ≥ 1.
fn ceil_log2(x: i32) -> u32 {
    32 - (x - 1).leading_zeros()
}

impl Model {
    fn new(p: &Params) -> Model {
        let step = 2 * p.near + 1;
        let range = (p.maxval + 2 * p.near) / step + 1;
        let bpp = ceil_log2(p.maxval + 1).max(2);
        let mut m = Model {
            p: *p,
            step,
            range,
            qbpp: ceil_log2(range),
            limit: 2 * (bpp + bpp.max(8)),
            max_mapped: 2 * i64::from(range) + 1,
            a0: i64::from(((range + 32) / 64).max(2)),
            regular: Vec::new(),
            interruption: [Interruption { a: 0, n: 1, nn: 0 }; 2],
            run_index: 0,
            // Values -4..=4.
            gradients: (-p.t3..=p.t3)
                .map(|d| Model::quantize(p, d) as i8)
                .collect(),
        };
        m.reset();
        m
    }

    /// The state at the start of a scan and after each restart marker.
    fn reset(&mut self) {
        let fresh = Regular {
            a: self.a0,
            b: 0,
            c: 0,
            n: 1,
        };
        self.regular = vec![fresh; 365];
        self.interruption = [Interruption {
            a: self.a0,
            n: 1,
            nn: 0,
        }; 2];
        self.run_index = 0;
    }

    /// A gradient quantised by the table; beyond ±T3 it is ±4, as at ±T3.
    fn quantized(&self, d: i32) -> i32 {
        let t3 = self.p.t3;
        i32::from(self.gradients[(d.clamp(-t3, t3) + t3) as usize])
    }

    /// A gradient quantised to -4..=4 by the thresholds (T.87 A.3.3).
    fn quantize(p: &Params, d: i32) -> i32 {
        if d <= -p.t3 {
            -4
        } else if d <= -p.t2 {
            -3
        } else if d <= -p.t1 {
            -2
        } else if d < -p.near {
            -1
        } else if d <= p.near {
            0
        } else if d < p.t1 {
            1
        } else if d < p.t2 {
            2
        } else if d < p.t3 {
            3
        } else {
            4
        }
    }

    /// Decodes `cur[1..=width]` given the line above in `prev`.
    fn line(&mut self, bits: &mut Bits<'_>, prev: &[i32], cur: &mut [i32]) -> Result<(), JlsError> {
        let w = self.p.width;
        let mut x = 1;
        while x <= w {
            // c b d
            // a x
            let (ra, rb, rc, rd) = (cur[x - 1], prev[x], prev[x - 1], prev[x + 1]);
            let q = 81 * self.quantized(rd - rb)
                + 9 * self.quantized(rb - rc)
                + self.quantized(rc - ra);
            if q == 0 {
                x = self.run(bits, prev, cur, x)?;
            } else {
                cur[x] = self.regular(bits, q, ra, rb, rc)?;
                x += 1;
            }
        }
        Ok(())
    }

    /// One sample in regular mode (T.87 A.4 to A.6); `q` is the signed
    /// context number, whose sign says whether errors are negated.
    fn regular(
        &mut self,
        bits: &mut Bits<'_>,
        q: i32,
        ra: i32,
        rb: i32,
        rc: i32,
    ) -> Result<i32, JlsError> {
        let (sign, q) = if q < 0 { (-1, -q) } else { (1, q) };
        // The median edge detector: min or max of a and b across an edge,
        // else the plane through a, b and c.
        let (lo, hi) = (ra.min(rb), ra.max(rb));
        let px = if rc >= hi {
            lo
        } else if rc <= lo {
            hi
        } else {
            ra + rb - rc
        };
        let ctx = &mut self.regular[q as usize];
        let px = (px + sign * ctx.c).clamp(0, self.p.maxval);
        let k = golomb_k(ctx.n, ctx.a);
        let m = bits.golomb(k, self.limit, self.qbpp, self.max_mapped)?;
        // Even codes are errors >= 0, odd ones negative (A.5.2); when the
        // context's bias is negative the encoder swapped the two (k = 0
        // and lossless only).
        let mut e = if m & 1 == 0 { m >> 1 } else { -((m + 1) >> 1) };
        if self.p.near == 0 && k == 0 && 2 * ctx.b <= -ctx.n {
            e = -(e + 1);
        }
        // A.6: update the statistics, halving them at RESET, then move the
        // bias correction C one step when the average bias passes ±1/2.
        ctx.b += e * self.step;
        ctx.a += i64::from(e.abs());
        if ctx.n == self.p.reset {
            ctx.a >>= 1;
            ctx.b = if ctx.b >= 0 {
                ctx.b >> 1
            } else {
                -((1 - ctx.b) >> 1)
            };
            ctx.n >>= 1;
        }
        ctx.n += 1;
        if ctx.b <= -ctx.n {
            ctx.b += ctx.n;
            ctx.c = (ctx.c - 1).max(-128);
            if ctx.b <= -ctx.n {
                ctx.b = -ctx.n + 1;
            }
        } else if ctx.b > 0 {
            ctx.b -= ctx.n;
            ctx.c = (ctx.c + 1).min(127);
            if ctx.b > 0 {
                ctx.b = 0;
            }
        }
        Ok(self.reconstruct(px + sign * e * self.step))
    }

    /// Run mode from sample `start` (T.87 A.7): runs of Ra coded in
    /// segments of growing length, ended by the end of the line or by an
    /// interruption sample. Returns the index after the last sample done.
    fn run(
        &mut self,
        bits: &mut Bits<'_>,
        prev: &[i32],
        cur: &mut [i32],
        start: usize,
    ) -> Result<usize, JlsError> {
        let w = self.p.width;
        let value = cur[start - 1];
        let mut x = start;
        // Each 1 is a whole segment of 2^J samples, or what is left of the
        // line when that is less.
        while bits.read(1) == 1 {
            let segment = 1usize << J[self.run_index];
            let n = segment.min(w + 1 - x);
            cur[x..x + n].fill(value);
            x += n;
            if n == segment {
                self.run_index = (self.run_index + 1).min(31);
            }
            if x > w {
                return Ok(x);
            }
        }
        // A 0: the run stops within the line after J more samples.
        let n = bits.read(J[self.run_index]) as usize;
        if x + n > w {
            return invalid("a run goes past the end of its line");
        }
        cur[x..x + n].fill(value);
        x += n;
        cur[x] = self.interruption(bits, value, prev[x])?;
        self.run_index = self.run_index.saturating_sub(1);
        Ok(x + 1)
    }

    /// The sample that ends a run inside a line (T.87 A.7.2), predicted by
    /// Ra when Ra and Rb agree within NEAR, else by Rb.
    fn interruption(&mut self, bits: &mut Bits<'_>, ra: i32, rb: i32) -> Result<i32, JlsError> {
        let same = (ra - rb).abs() <= self.p.near;
        let (px, sign) = match (same, ra > rb) {
            (true, _) => (ra, 1),
            (false, true) => (rb, -1),
            (false, false) => (rb, 1),
        };
        let t = i32::from(same);
        let limit = self.limit - J[self.run_index] - 1;
        let ctx = &mut self.interruption[usize::from(same)];
        let temp = if same {
            ctx.a + i64::from(ctx.n >> 1)
        } else {
            ctx.a
        };
        let k = golomb_k(ctx.n, temp);
        let m = bits.golomb(k, limit, self.qbpp, self.max_mapped)?;
        // The encoder sent 2|e| − t − map, where map (one bit) says which
        // sign it chose given k and how often errors were negative; the
        // low bit of m + t is that map bit.
        let s = m + t;
        let map = s & 1 == 1;
        let magnitude = (s + i32::from(map)) >> 1;
        let negative_if_mapped = k != 0 || 2 * ctx.nn >= ctx.n;
        let e = if map == negative_if_mapped {
            -magnitude
        } else {
            magnitude
        };
        if e < 0 {
            ctx.nn += 1;
        }
        ctx.a += i64::from((m + 1 - t) >> 1);
        if ctx.n == self.p.reset {
            ctx.a >>= 1;
            ctx.n >>= 1;
            ctx.nn >>= 1;
        }
        ctx.n += 1;
        Ok(self.reconstruct(px + sign * e * self.step))
    }

    /// Undoes the encoder's modulo-RANGE reduction and clamps to the
    /// sample range (T.87 A.4.2 and A.6).
    fn reconstruct(&self, rx: i32) -> i32 {
        let (near, maxval) = (self.p.near, self.p.maxval);
        let rx = if rx < -near {
            rx + self.range * self.step
        } else if rx > maxval + near {
            rx - self.range * self.step
        } else {
            rx
        };
        rx.clamp(0, maxval)
    }
}

/// The Golomb parameter: the least k with N·2^k ≥ A (T.87 A.5.1). Valid
/// streams keep k below 18; the cap keeps a damaged one in range.
fn golomb_k(n: i32, a: i64) -> u32 {
    let n = i64::from(n);
    let mut k = 0;
    while k < 30 && (n << k) < a {
        k += 1;
    }
    k
}

/// Reads the entropy-coded bits of a scan: most significant bit first,
/// with a 0 bit stuffed after every 0xFF byte (so a byte after 0xFF holds
/// 7 bits), up to the next marker (0xFF followed by a byte ≥ 0x80).
#[derive(Debug)]
struct Bits<'a> {
    data: &'a [u8],
    /// The next byte to load.
    pos: usize,
    /// Unread bits at the top; the bits below `avail` are zero.
    cache: u64,
    avail: u32,
    /// Zero bits loaded after the data ran out; reading any of them means
    /// the scan is shorter than the image.
    padding: u64,
    /// The last byte loaded was 0xFF.
    after_ff: bool,
    /// `pos` is at a marker: nothing more is loaded.
    at_marker: bool,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8]) -> Self {
        Bits {
            data,
            pos: 0,
            cache: 0,
            avail: 0,
            padding: 0,
            after_ff: false,
            at_marker: false,
        }
    }

    /// Loads bytes until more than 56 bits are available.
    fn fill(&mut self) {
        while self.avail <= 56 {
            let byte = if self.at_marker {
                None
            } else {
                self.data.get(self.pos).copied()
            };
            match byte {
                None => {
                    self.avail += 8;
                    self.padding += 8;
                }
                Some(b) if self.after_ff => {
                    self.cache |= u64::from(b & 0x7F) << (57 - self.avail);
                    self.avail += 7;
                    self.after_ff = false;
                    self.pos += 1;
                }
                Some(0xFF) if self.data.get(self.pos + 1).is_some_and(|&n| n >= 0x80) => {
                    self.at_marker = true;
                }
                Some(b) => {
                    self.cache |= u64::from(b) << (56 - self.avail);
                    self.avail += 8;
                    self.after_ff = b == 0xFF;
                    self.pos += 1;
                }
            }
        }
    }

    fn skip(&mut self, n: u32) {
        self.cache = if n >= 64 { 0 } else { self.cache << n };
        self.avail -= n;
    }

    /// The next `n` ≤ 32 bits as a number.
    fn read(&mut self, n: u32) -> u32 {
        if n == 0 {
            return 0;
        }
        if self.avail < n {
            self.fill();
        }
        let v = (self.cache >> (64 - n)) as u32;
        self.skip(n);
        v
    }

    /// Counts 0 bits up to and including the next 1; more than `max` zeros
    /// is not a code.
    fn unary(&mut self, max: u32) -> Result<u32, JlsError> {
        let mut q = 0;
        loop {
            if self.avail < 32 {
                self.fill();
            }
            let zeros = self.cache.leading_zeros().min(self.avail);
            let found = zeros < self.avail;
            // The bits are consumed even for an error, so that `overrun`
            // can tell a code cut off by the end of the data.
            self.skip(zeros + u32::from(found));
            q += zeros;
            if q > max {
                return invalid("a code longer than the longest code");
            }
            if found {
                return Ok(q);
            }
        }
    }

    /// A mapped error value in the limited-length Golomb code of T.87
    /// A.5.3: `q` zeros, a 1, then k bits of remainder, unless `q` reaches
    /// `limit − qbpp − 1`, which escapes to the value minus 1 in qbpp bits.
    fn golomb(&mut self, k: u32, limit: u32, qbpp: u32, max: i64) -> Result<i32, JlsError> {
        let escape = limit.saturating_sub(qbpp + 1);
        let q = self.unary(escape)?;
        let m = if q == escape {
            i64::from(self.read(qbpp)) + 1
        } else {
            (i64::from(q) << k) | i64::from(self.read(k))
        };
        if m > max {
            return invalid(format!("an error code of {m}, beyond the sample range"));
        }
        Ok(m as i32)
    }

    /// True once bits past the end of the scan data have been read.
    fn overrun(&self) -> bool {
        self.padding > u64::from(self.avail)
    }

    /// Ends a restart interval: the rest of the current byte is padding,
    /// then marker RSTm must follow (after any 0xFF fill bytes).
    fn restart(&mut self, m: u8) -> Result<(), JlsError> {
        let left = u64::from(self.avail).saturating_sub(self.padding);
        if left >= 8 {
            return invalid(format!(
                "{left} bits of scan data are left where restart marker RST{m} belongs"
            ));
        }
        let mut pos = self.pos;
        while self.data.get(pos) == Some(&0xFF) && self.data.get(pos + 1) == Some(&0xFF) {
            pos += 1;
        }
        if self.data.get(pos..pos + 2) != Some(&[0xFF, 0xD0 + m][..]) {
            return invalid(format!("restart marker RST{m} is missing"));
        }
        *self = Bits::new(&self.data[pos + 2..]);
        Ok(())
    }
}
