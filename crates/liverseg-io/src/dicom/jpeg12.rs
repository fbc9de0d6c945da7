//! A decoder for greyscale sequential-DCT JPEG with Huffman coding at 8 or
//! 12 bits (ITU-T T.81 processes 1 and 2: DICOM's JPEG Baseline and JPEG
//! Extended, 1.2.840.10008.1.2.4.51), for the 12-bit streams lossy CT
//! archives hold, which `jpeg-decoder` refuses ("SamplePrecision(12)").
//!
//! One component; any restart interval; 8- or 16-bit quantisation tables.
//! The inverse DCT is the separable floating-point one of T.81 A.3.3,
//! rounded to the nearest integer: a lossy stream decodes within ±1 of other
//! conforming decoders (T.81 leaves the IDCT's last bit to the
//! implementation), exactly where their IDCTs agree.

use std::f64::consts::PI;

/// Why a stream could not be decoded.
#[derive(Debug)]
pub(crate) enum JpegError {
    /// The bytes break the standard.
    Invalid(String),
    /// Valid JPEG that this decoder does not read (progressive,
    /// arithmetic coding, colour).
    Unsupported(String),
}

fn invalid<T>(why: impl Into<String>) -> Result<T, JpegError> {
    Err(JpegError::Invalid(why.into()))
}

/// A decoded image: `rows × cols` samples, row by row.
pub(crate) struct Image {
    /// Bits per sample (8 or 12).
    pub precision: u8,
    /// The samples.
    pub samples: Vec<u16>,
}

/// The sample precision of the stream's frame header, if it has one.
pub(crate) fn precision(data: &[u8]) -> Option<u8> {
    let mut at = 2;
    while at + 4 <= data.len() {
        if data[at] != 0xFF {
            return None;
        }
        let marker = data[at + 1];
        if marker == 0xFF {
            at += 1;
            continue;
        }
        let len = usize::from(u16::from_be_bytes([data[at + 2], data[at + 3]]));
        if (0xC0..=0xCF).contains(&marker) && ![0xC4, 0xC8, 0xCC].contains(&marker) {
            return data.get(at + 4).copied();
        }
        at += 2 + len;
    }
    None
}

/// Zig-zag order: `ZIGZAG[k]` is the natural (row-major) index of the
/// `k`-th coefficient in the stream.
const ZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

/// A Huffman table in the form of T.81 F.2.2.3: per code length, the
/// largest code, and where its values start.
#[derive(Clone, Default)]
struct Huffman {
    maxcode: [i32; 17],
    valptr: [i32; 17],
    mincode: [i32; 17],
    values: Vec<u8>,
}

impl Huffman {
    fn new(counts: &[u8; 16], values: Vec<u8>) -> Result<Huffman, JpegError> {
        let mut h = Huffman {
            maxcode: [-1; 17],
            values,
            ..Huffman::default()
        };
        let (mut code, mut k) = (0i32, 0i32);
        for len in 1..=16 {
            let n = i32::from(counts[len - 1]);
            if n > 0 {
                h.valptr[len] = k;
                h.mincode[len] = code;
                code += n;
                k += n;
                h.maxcode[len] = code - 1;
            }
            if code > (1 << len) {
                return invalid("a Huffman table has more codes than its lengths allow");
            }
            code <<= 1;
        }
        Ok(h)
    }
}

/// Entropy-coded bits, with 0xFF00 stuffing removed; a marker ends them.
struct Bits<'a> {
    data: &'a [u8],
    at: usize,
    acc: u64,
    n: u32,
    /// Zero bytes fed past the end of the data (not before a marker).
    past_end: usize,
}

impl Bits<'_> {
    fn fill(&mut self) {
        while self.n <= 56 {
            let mut byte = 0u8;
            if self.at >= self.data.len() {
                self.past_end += 1;
            } else {
                let b = self.data[self.at];
                if b == 0xFF {
                    // Stuffed 0xFF; anything else is a marker: feed zeros
                    // and leave it for the caller.
                    if self.data.get(self.at + 1) == Some(&0x00) {
                        byte = 0xFF;
                        self.at += 2;
                    }
                } else {
                    byte = b;
                    self.at += 1;
                }
            }
            self.acc |= u64::from(byte) << (56 - self.n);
            self.n += 8;
        }
    }

    fn bits(&mut self, k: u32) -> u32 {
        if k == 0 {
            return 0;
        }
        self.fill();
        let v = (self.acc >> (64 - k)) as u32;
        self.acc <<= k;
        self.n -= k;
        v
    }

    fn decode(&mut self, h: &Huffman) -> Result<u8, JpegError> {
        let mut code = 0i32;
        for len in 1..=16 {
            code = (code << 1) | self.bits(1) as i32;
            if code <= h.maxcode[len] {
                let i = h.valptr[len] + code - h.mincode[len];
                return h
                    .values
                    .get(i as usize)
                    .copied()
                    .ok_or_else(|| JpegError::Invalid("Huffman value out of its table".into()));
            }
        }
        invalid("a Huffman code longer than 16 bits")
    }

    /// `s` bits read as a signed difference (T.81 F.2.2.1 EXTEND).
    fn receive_extend(&mut self, s: u8) -> i32 {
        if s == 0 {
            return 0;
        }
        let v = self.bits(u32::from(s)) as i32;
        if v < 1 << (s - 1) {
            v - (1 << s) + 1
        } else {
            v
        }
    }

    /// Drops buffered bits and steps over the restart marker at the
    /// current byte, if there is one.
    fn restart(&mut self) {
        self.acc = 0;
        self.n = 0;
        if self.at + 1 < self.data.len()
            && self.data[self.at] == 0xFF
            && (0xD0..=0xD7).contains(&self.data[self.at + 1])
        {
            self.at += 2;
        }
    }
}

/// `cos((2x + 1) u π / 16) · C(u) / 2` for the separable inverse DCT.
fn idct_table() -> [[f64; 8]; 8] {
    let mut t = [[0.0; 8]; 8];
    for (x, row) in t.iter_mut().enumerate() {
        for (u, v) in row.iter_mut().enumerate() {
            let c = if u == 0 { 1.0 / 2f64.sqrt() } else { 1.0 };
            *v = 0.5 * c * ((2 * x + 1) as f64 * u as f64 * PI / 16.0).cos();
        }
    }
    t
}

/// Decodes a greyscale sequential-DCT stream of `rows × cols` samples.
pub(crate) fn decode(data: &[u8], rows: usize, cols: usize) -> Result<Image, JpegError> {
    if !data.starts_with(&[0xFF, 0xD8]) {
        return invalid("no JPEG start-of-image marker");
    }
    let mut quant = [[0u16; 64]; 4];
    let mut dc: [Huffman; 4] = Default::default();
    let mut ac: [Huffman; 4] = Default::default();
    let mut frame: Option<(u8, usize, usize, u8)> = None; // precision, rows, cols, quant id
    let mut restart_interval = 0usize;
    let mut at = 2;
    loop {
        while at < data.len() && data[at] == 0xFF && data.get(at + 1) == Some(&0xFF) {
            at += 1;
        }
        if at + 4 > data.len() || data[at] != 0xFF {
            return invalid("the stream ends before its scan");
        }
        let marker = data[at + 1];
        let len = usize::from(u16::from_be_bytes([data[at + 2], data[at + 3]]));
        let Some(seg) = data.get(at + 4..at + 2 + len).filter(|_| len >= 2) else {
            return invalid(format!(
                "marker 0xFF{marker:02X}: its segment runs past the stream"
            ));
        };
        match marker {
            0xDB => {
                let mut s = seg;
                while let [pq_tq, rest @ ..] = s {
                    let (wide, id) = (pq_tq >> 4, usize::from(pq_tq & 15));
                    let n = if wide == 1 { 128 } else { 64 };
                    if id > 3 || rest.len() < n {
                        return invalid("a quantisation table is cut short");
                    }
                    for k in 0..64 {
                        quant[id][k] = if wide == 1 {
                            u16::from_be_bytes([rest[2 * k], rest[2 * k + 1]])
                        } else {
                            u16::from(rest[k])
                        };
                    }
                    s = &rest[n..];
                }
            }
            0xC4 => {
                let mut s = seg;
                while s.len() >= 17 {
                    let (class, id) = (s[0] >> 4, usize::from(s[0] & 15));
                    let counts: [u8; 16] = s[1..17].try_into().unwrap_or([0; 16]);
                    let total: usize = counts.iter().map(|&c| usize::from(c)).sum();
                    if id > 3 || s.len() < 17 + total {
                        return invalid("a Huffman table is cut short");
                    }
                    let table = Huffman::new(&counts, s[17..17 + total].to_vec())?;
                    if class == 0 {
                        dc[id] = table;
                    } else {
                        ac[id] = table;
                    }
                    s = &s[17 + total..];
                }
            }
            0xDD if seg.len() >= 2 => {
                restart_interval = usize::from(u16::from_be_bytes([seg[0], seg[1]]));
            }
            0xC0 | 0xC1 => {
                if seg.len() < 6 {
                    return invalid("the frame header is cut short");
                }
                let (p, y, x, nf) = (
                    seg[0],
                    usize::from(u16::from_be_bytes([seg[1], seg[2]])),
                    usize::from(u16::from_be_bytes([seg[3], seg[4]])),
                    seg[5],
                );
                if nf != 1 {
                    return Err(JpegError::Unsupported(format!(
                        "{nf} components; only greyscale is read"
                    )));
                }
                if p != 8 && p != 12 {
                    return invalid(format!("sample precision {p} in a DCT frame"));
                }
                let q = seg.get(8).copied().unwrap_or(0) & 3;
                if (y, x) != (rows, cols) && y != 0 {
                    return invalid(format!(
                        "the stream is {x}x{y}, the header says {cols}x{rows}"
                    ));
                }
                frame = Some((p, rows, cols, q));
            }
            0xC2 | 0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => {
                return Err(JpegError::Unsupported(format!(
                    "JPEG process of marker 0xFF{marker:02X} (progressive, lossless, hierarchical or arithmetic)"
                )));
            }
            0xDA => {
                let Some((p, rows, cols, q)) = frame else {
                    return invalid("a scan before the frame header");
                };
                let (td, ta) = match seg {
                    [1, _, t, ..] => (usize::from(t >> 4), usize::from(t & 15)),
                    _ => {
                        return Err(JpegError::Unsupported(
                            "a scan of several components".into(),
                        ));
                    }
                };
                if td > 3 || ta > 3 {
                    return invalid("a scan names a Huffman table beyond 3");
                }
                let bits = Bits {
                    data,
                    at: at + 2 + len,
                    acc: 0,
                    n: 0,
                    past_end: 0,
                };
                let samples = scan(
                    bits,
                    &dc[td],
                    &ac[ta],
                    &quant[usize::from(q)],
                    p,
                    rows,
                    cols,
                    restart_interval,
                )?;
                return Ok(Image {
                    precision: p,
                    samples,
                });
            }
            _ => {}
        }
        at += 2 + len;
    }
}

/// Decodes the blocks of the one scan and places them.
#[allow(clippy::too_many_arguments)]
fn scan(
    mut bits: Bits<'_>,
    dc: &Huffman,
    ac: &Huffman,
    q: &[u16; 64],
    precision: u8,
    rows: usize,
    cols: usize,
    restart_interval: usize,
) -> Result<Vec<u16>, JpegError> {
    let (bw, bh) = (cols.div_ceil(8), rows.div_ceil(8));
    let mut out = vec![0u16; rows * cols];
    let cosines = idct_table();
    let (shift, max) = (
        f64::from(1u32 << (precision - 1)),
        f64::from((1u32 << precision) - 1),
    );
    let mut pred = 0i32;
    for mcu in 0..bw * bh {
        if restart_interval > 0 && mcu > 0 && mcu % restart_interval == 0 {
            bits.restart();
            pred = 0;
        }
        let mut coef = [0f64; 64];
        let t = bits.decode(dc)?;
        if t > 16 {
            return invalid("a DC difference category above 16");
        }
        // At most 16-bit differences: a crafted stream could still drive
        // the sum out of range over many blocks.
        pred = pred.saturating_add(bits.receive_extend(t));
        coef[0] = f64::from(pred) * f64::from(q[0]);
        let mut k = 1;
        while k < 64 {
            let rs = bits.decode(ac)?;
            let (r, s) = (usize::from(rs >> 4), rs & 15);
            if s == 0 {
                if r == 15 {
                    k += 16;
                    continue;
                }
                break;
            }
            k += r;
            if k > 63 {
                return invalid("AC coefficients run past the block");
            }
            coef[ZIGZAG[k]] = f64::from(bits.receive_extend(s)) * f64::from(q[k]);
            k += 1;
        }
        // Rows, then columns.
        let mut tmp = [0f64; 64];
        for v in 0..8 {
            for x in 0..8 {
                tmp[v * 8 + x] = (0..8).map(|u| cosines[x][u] * coef[v * 8 + u]).sum();
            }
        }
        let (bx, by) = (mcu % bw, mcu / bw);
        for y in 0..8 {
            let row = by * 8 + y;
            if row >= rows {
                break;
            }
            for x in 0..8 {
                let col = bx * 8 + x;
                if col >= cols {
                    break;
                }
                let v: f64 = (0..8).map(|v| cosines[y][v] * tmp[v * 8 + x]).sum();
                out[row * cols + col] = (v + shift).round().clamp(0.0, max) as u16;
            }
        }
        // The lookahead may run a few bytes past the data; whole blocks
        // decoded from nothing mean the stream was cut short.
        if bits.past_end > 16 {
            return invalid("the entropy-coded data ends before the image does");
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_idct_of_a_lone_dc_is_flat() {
        // A DC of 8·d gives d everywhere (T.81's scaling).
        let t = idct_table();
        let v: f64 = t[3][0] * t[5][0] * 80.0;
        assert!((v - 10.0).abs() < 1e-12, "{v}");
    }

    #[test]
    fn huffman_tables_follow_the_canonical_codes() {
        // Two codes of length 2 (00, 01), one of length 3 (100).
        let mut counts = [0u8; 16];
        counts[1] = 2;
        counts[2] = 1;
        let h = Huffman::new(&counts, vec![7, 8, 9]).unwrap();
        let data = [0b0110_0000, 0, 0, 0, 0, 0, 0, 0];
        let mut b = Bits {
            data: &data,
            at: 0,
            acc: 0,
            n: 0,
            past_end: 0,
        };
        assert_eq!(b.decode(&h).unwrap(), 8);
        assert_eq!(b.decode(&h).unwrap(), 9);
        assert!(
            Huffman::new(
                &[3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                vec![1, 2, 3]
            )
            .is_err()
        );
    }

    /// The JPEG stream inside pydicom's JPGExtended.dcm (256 x 1024,
    /// 12-bit): it starts at the first SOI marker and ends with EOI.
    fn jpg_extended() -> &'static [u8] {
        let file: &'static [u8] = include_bytes!("../../tests/fixtures/dicom/JPGExtended.dcm");
        let start = file
            .windows(3)
            .position(|w| w == [0xFF, 0xD8, 0xFF])
            .unwrap();
        let end = file.windows(2).rposition(|w| w == [0xFF, 0xD9]).unwrap() + 2;
        &file[start..end]
    }

    #[test]
    fn cut_streams_and_wrong_sizes_are_errors() {
        let data = jpg_extended();
        assert_eq!(precision(data), Some(12));
        let whole = decode(data, 1024, 256).unwrap();
        assert_eq!(whole.samples.len(), 1024 * 256);
        let cut = decode(&data[..data.len() / 2], 1024, 256);
        assert!(
            matches!(cut, Err(JpegError::Invalid(_))),
            "a cut stream decoded"
        );
        assert!(decode(data, 1024, 255).is_err());
        assert!(decode(data, 1023, 256).is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for data in [
            &[][..],
            &[0xFF, 0xD8],
            &[0xFF, 0xD8, 0xFF, 0xC1, 0, 2],
            &[1, 2, 3],
        ] {
            assert!(decode(data, 8, 8).is_err());
        }
    }
}
