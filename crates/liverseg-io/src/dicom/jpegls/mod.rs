//! A JPEG-LS decoder (ITU-T T.87 / ISO/IEC 14495-1) for greyscale images,
//! lossless and near-lossless, 2 to 16 bits per sample: DICOM transfer
//! syntaxes 1.2.840.10008.1.2.4.80 and .81.
//!
//! It is written here, in safe Rust, so that building the crate needs no
//! C++ toolchain or cmake (CharLS, which `dicom-pixeldata` would use, is
//! built with cmake), and so that a damaged stream is an error, never a
//! panic: every length, marker and parameter is checked before it is used,
//! and the scan decoder stops at the first code that cannot occur in a
//! valid stream.
//!
//! This file reads the marker segments (SOI, SOF55, LSE preset parameters,
//! DRI, SOS, EOI; APPn and COM are skipped) and derives the coding
//! parameters of T.87 Annex C; `scan.rs` decodes the samples.
//! Not supported, each with an error that says so: more than one component
//! (colour), mapping tables (palettes), a point transform, and images whose
//! height is only given later by a DNL marker.

mod scan;

use std::fmt;

/// A decoded image: `samples[column + width * row]`, values `0..=maxval`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Image {
    /// Samples along a row (X of the frame header).
    pub width: usize,
    /// Rows (Y of the frame header).
    pub height: usize,
    /// Bits per sample (P of the frame header), 2 to 16.
    pub precision: u8,
    /// The samples, row by row.
    pub samples: Vec<u16>,
}

/// Why a stream could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum JlsError {
    /// The stream is damaged or breaks T.87.
    Invalid(String),
    /// The stream is valid but uses a feature this decoder lacks.
    Unsupported(String),
}

impl fmt::Display for JlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JlsError::Invalid(why) | JlsError::Unsupported(why) => f.write_str(why),
        }
    }
}

/// Shorthand for a damaged stream.
fn invalid<T>(why: impl Into<String>) -> Result<T, JlsError> {
    Err(JlsError::Invalid(why.into()))
}

/// Shorthand for a feature this decoder lacks.
fn unsupported<T>(why: impl Into<String>) -> Result<T, JlsError> {
    Err(JlsError::Unsupported(why.into()))
}

/// Marker codes (the byte after 0xFF) of T.87 Table C.1 and T.81 B.1.
const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;
const DRI: u8 = 0xDD;
const SOF55: u8 = 0xF7;
const LSE: u8 = 0xF8;
const COM: u8 = 0xFE;

/// The frame header (SOF55) of a single-component image.
#[derive(Clone, Copy, Debug)]
struct Frame {
    precision: u8,
    height: usize,
    width: usize,
    component: u8,
}

/// Preset coding parameters of an LSE segment (ID 1); 0 means "default".
#[derive(Clone, Copy, Debug, Default)]
struct Presets {
    maxval: u16,
    t1: u16,
    t2: u16,
    t3: u16,
    reset: u16,
}

/// Decodes a JPEG-LS stream whose frame must be `rows` × `cols` samples:
/// the size is compared with the frame header before anything is
/// allocated, so a stream cannot ask for more memory than the DICOM header
/// (already checked against the memory budget) allows.
pub(crate) fn decode(data: &[u8], rows: usize, cols: usize) -> Result<Image, JlsError> {
    if data.get(..2) != Some(&[0xFF, SOI][..]) {
        return invalid("the stream does not start with an SOI marker");
    }
    let mut pos = 2;
    let mut frame: Option<Frame> = None;
    let mut presets = Presets::default();
    let mut restart_interval = 0usize;
    loop {
        let (code, body, next) = segment(data, pos)?;
        pos = next;
        match code {
            SOF55 => {
                if frame.is_some() {
                    return invalid("two frame headers (SOF55)");
                }
                let f = frame_header(body)?;
                if (f.height, f.width) != (rows, cols) {
                    return invalid(format!(
                        "the stream holds {}x{} samples, the DICOM header says {cols}x{rows}",
                        f.width, f.height
                    ));
                }
                frame = Some(f);
            }
            LSE => preset_parameters(body, &mut presets)?,
            DRI => restart_interval = restart_header(body)?,
            SOS => {
                let Some(f) = frame else {
                    return invalid("a scan (SOS) before the frame header (SOF55)");
                };
                let params = scan_header(body, &f, &presets, restart_interval)?;
                let mut samples = vec![0u16; f.width * f.height];
                scan::decode(&data[pos..], &params, &mut samples)?;
                return Ok(Image {
                    width: f.width,
                    height: f.height,
                    precision: f.precision,
                    samples,
                });
            }
            EOI => return invalid("the stream ends (EOI) before any scan"),
            0xE0..=0xEF | COM => {}
            0xF9 => return unsupported("JPEG-LS extensions (ITU-T T.870, SOF57)"),
            0xC0..=0xCF => {
                return unsupported(format!(
                    "marker 0xFF{code:02X}: a JPEG process other than JPEG-LS"
                ));
            }
            _ => return invalid(format!("unexpected marker 0xFF{code:02X}")),
        }
    }
}

/// Reads the marker at `pos` (after any 0xFF fill bytes) and, for markers
/// that carry a segment, its body. Returns the marker code, the body, and
/// where the next marker starts. SOI, EOI and RSTn carry no segment.
fn segment(data: &[u8], mut pos: usize) -> Result<(u8, &[u8], usize), JlsError> {
    if data.get(pos) != Some(&0xFF) {
        return invalid(format!("a marker is missing at byte {pos}"));
    }
    while data.get(pos + 1) == Some(&0xFF) {
        pos += 1;
    }
    let Some(&code) = data.get(pos + 1) else {
        return invalid("the stream ends inside a marker");
    };
    pos += 2;
    if matches!(code, SOI | EOI | 0xD0..=0xD7) {
        return Ok((code, &[], pos));
    }
    let Some(len) = data.get(pos..pos + 2) else {
        return invalid(format!("marker 0xFF{code:02X} has no segment length"));
    };
    let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
    match data.get(pos + 2..pos + len.max(2)) {
        Some(body) if len >= 2 => Ok((code, body, pos + len)),
        _ => invalid(format!(
            "marker 0xFF{code:02X} has a segment of {len} bytes, which the stream does not hold"
        )),
    }
}

/// The big-endian 16-bit value at byte `at` of a segment body; callers
/// check the body's length first.
fn be16(body: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([body[at], body[at + 1]])
}

/// SOF55 (T.87 C.2.2): P, Y, X, Nf, then (C, H×V, Tq) per component.
fn frame_header(body: &[u8]) -> Result<Frame, JlsError> {
    if body.len() < 6 {
        return invalid("the frame header (SOF55) is too short");
    }
    let (precision, height, width, components) = (
        body[0],
        usize::from(be16(body, 1)),
        usize::from(be16(body, 3)),
        body[5],
    );
    if body.len() != 6 + 3 * usize::from(components) {
        return invalid(format!(
            "the frame header (SOF55) has {} bytes, {} expected for {components} component(s)",
            body.len() + 2,
            8 + 3 * usize::from(components)
        ));
    }
    if !(2..=16).contains(&precision) {
        return invalid(format!(
            "sample precision {precision} bits; 2 to 16 allowed"
        ));
    }
    if components != 1 {
        return unsupported(format!(
            "{components} components; only single-component (greyscale) JPEG-LS is read"
        ));
    }
    if height == 0 {
        return unsupported("a frame whose height is given later (DNL marker)");
    }
    if width == 0 {
        return invalid("the frame header gives a width of 0");
    }
    Ok(Frame {
        precision,
        height,
        width,
        component: body[6],
    })
}

/// LSE (T.87 C.2.4.1): ID 1 sets preset coding parameters; mapping tables
/// (IDs 2 and 3) matter only to a scan that selects one, which
/// [`scan_header`] refuses, so they are skipped.
fn preset_parameters(body: &[u8], presets: &mut Presets) -> Result<(), JlsError> {
    match body.first() {
        Some(1) if body.len() == 11 => {
            *presets = Presets {
                maxval: be16(body, 1),
                t1: be16(body, 3),
                t2: be16(body, 5),
                t3: be16(body, 7),
                reset: be16(body, 9),
            };
            Ok(())
        }
        Some(1) => invalid(format!(
            "the preset parameters (LSE) have {} bytes, 13 expected",
            body.len() + 2
        )),
        Some(2 | 3) => Ok(()),
        Some(4) => unsupported("oversize image dimensions (LSE ID 4)"),
        Some(id) => invalid(format!("LSE segment of unknown ID {id}")),
        None => invalid("an empty LSE segment"),
    }
}

/// DRI: the restart interval, in lines for a single-component scan; its
/// field is 2, 3 or 4 bytes long (T.87 C.2.5).
fn restart_header(body: &[u8]) -> Result<usize, JlsError> {
    if !(2..=4).contains(&body.len()) {
        return invalid(format!(
            "the restart interval (DRI) has {} bytes, 4 to 6 expected",
            body.len() + 2
        ));
    }
    Ok(body.iter().fold(0usize, |v, &b| (v << 8) | usize::from(b)))
}

/// SOS (T.87 C.2.3): Ns, then (Cs, Tm) per component, NEAR, ILV, and the
/// point transform. Combines it with the frame and the presets into the
/// parameters of the scan (T.87 C.2.4.1.1 for the defaults).
fn scan_header(
    body: &[u8],
    frame: &Frame,
    presets: &Presets,
    restart_interval: usize,
) -> Result<scan::Params, JlsError> {
    if body.len() != 6 || body[0] != 1 {
        return match body.first() {
            Some(&n) if n != 1 => unsupported(format!(
                "a scan of {n} components; only single-component JPEG-LS is read"
            )),
            _ => invalid(format!(
                "the scan header (SOS) has {} bytes, 8 expected",
                body.len() + 2
            )),
        };
    }
    let (component, table, near, point_transform) = (body[1], body[2], body[3], body[5]);
    if component != frame.component {
        return invalid(format!(
            "the scan codes component {component}, the frame has component {}",
            frame.component
        ));
    }
    if table != 0 {
        return unsupported("a mapping table (palette)");
    }
    if point_transform & 0x0F != 0 {
        return unsupported("a point transform");
    }
    let full = (1i32 << frame.precision) - 1;
    let maxval = match i32::from(presets.maxval) {
        0 => full,
        m if m <= full => m,
        m => {
            return invalid(format!(
                "MAXVAL {m} does not fit in {} bits",
                frame.precision
            ));
        }
    };
    let near = i32::from(near);
    if near > (maxval / 2).min(255) {
        return invalid(format!("NEAR {near} is too large for MAXVAL {maxval}"));
    }
    let (t1, t2, t3) = thresholds(maxval, near, presets)?;
    let reset = match i32::from(presets.reset) {
        0 => 64,
        r if (3..=maxval.max(255)).contains(&r) => r,
        r => return invalid(format!("RESET {r} is outside 3..={}", maxval.max(255))),
    };
    Ok(scan::Params {
        width: frame.width,
        height: frame.height,
        maxval,
        near,
        t1,
        t2,
        t3,
        reset,
        restart_interval,
    })
}

/// The gradient thresholds T1, T2, T3: those of the LSE segment, or where
/// it gives 0 (or there is none) the defaults of T.87 C.2.4.1.1.1, which
/// scale BASIC_T1..3 = 3, 7, 21 (values for 8-bit lossless) with MAXVAL
/// and widen them by NEAR.
fn thresholds(maxval: i32, near: i32, presets: &Presets) -> Result<(i32, i32, i32), JlsError> {
    // CLAMP(i, j): i unless it lies outside j..=MAXVAL, then j.
    let clamp = |i: i32, j: i32| if i > maxval || i < j { j } else { i };
    let basic = |i: usize, basic: i32, near_mul: i32| -> i32 {
        if maxval >= 128 {
            let factor = (maxval.min(4095) + 128) / 256;
            factor * (basic - [2, 3, 4][i]) + [2, 3, 4][i] + near_mul * near
        } else {
            let factor = 256 / (maxval + 1);
            ([2, 3, 4][i]).max(basic / factor + near_mul * near)
        }
    };
    let given = [presets.t1, presets.t2, presets.t3].map(i32::from);
    let mut t = [0i32; 3];
    let mut low = near + 1;
    for i in 0..3 {
        t[i] = if given[i] == 0 {
            clamp(basic(i, [3, 7, 21][i], [3, 5, 7][i]), low)
        } else if (low..=maxval).contains(&given[i]) {
            given[i]
        } else {
            return invalid(format!(
                "threshold T{} = {} is outside {low}..={maxval}",
                i + 1,
                given[i]
            ));
        };
        low = t[i];
    }
    Ok((t[0], t[1], t[2]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packs a string of '0'/'1' into scan bytes, zero-padded to a whole
    /// byte, with a 0 bit stuffed at the top of every byte after 0xFF.
    fn pack(bits: &str) -> Vec<u8> {
        let mut bits = bits.bytes().map(|b| b == b'1');
        let mut out: Vec<u8> = Vec::new();
        loop {
            let width = if out.last() == Some(&0xFF) { 7 } else { 8 };
            let mut byte = 0u8;
            let mut any = false;
            for _ in 0..width {
                let bit = bits.next();
                any |= bit.is_some();
                byte = (byte << 1) | u8::from(bit.unwrap_or(false));
            }
            if !any {
                return out;
            }
            out.push(byte);
        }
    }

    /// SOI, SOF55 for one 8-bit component, an optional DRI, SOS with
    /// NEAR 0, the scan bytes, EOI.
    fn stream(rows: u16, cols: u16, restart: Option<u16>, scan: &[u8]) -> Vec<u8> {
        let mut s = vec![0xFF, SOI, 0xFF, SOF55, 0, 11, 8];
        s.extend(rows.to_be_bytes());
        s.extend(cols.to_be_bytes());
        s.extend([1, 1, 0x11, 0]);
        if let Some(r) = restart {
            s.extend([0xFF, DRI, 0, 4]);
            s.extend(r.to_be_bytes());
        }
        s.extend([0xFF, SOS, 0, 8, 1, 1, 0, 0, 0, 0]);
        s.extend(scan);
        s.extend([0xFF, EOI]);
        s
    }

    #[test]
    fn default_thresholds_follow_t87() {
        let t = |maxval, near| thresholds(maxval, near, &Presets::default()).unwrap();
        // 8-bit lossless is BASIC_T1..3 itself; 12 and 16 bits scale them
        // by 16 (the 16-bit values are those CharLS writes in the MR
        // fixture's LSE segment, 18, 67, 276); NEAR widens them.
        assert_eq!(t(255, 0), (3, 7, 21));
        assert_eq!(t(4095, 0), (18, 67, 276));
        assert_eq!(t(65535, 0), (18, 67, 276));
        assert_eq!(t(255, 2), (9, 17, 35));
        assert_eq!(t(65535, 2), (24, 77, 290));
        // Below 128 the basic values shrink, but not below 2, 3, 4.
        assert_eq!(t(15, 0), (2, 3, 4));
        // Never above MAXVAL.
        assert_eq!(t(3, 1), (3, 3, 3));
        // Given values are kept when in order, refused when not.
        let given = Presets {
            t1: 10,
            t2: 5,
            ..Presets::default()
        };
        assert!(thresholds(255, 0, &given).is_err());
    }

    #[test]
    fn interruption_and_regular_samples_decode_by_hand() {
        // A 2x1 image, 100 100. Sample 1: all neighbours 0, so run mode;
        // bit 0 ends the run at once (J[0] = 0 bits of length), and the
        // interruption sample (|Ra - Rb| = 0: predicted by Ra = 0, k = 2
        // from A = 4, N = 1) codes 2*100 - 1 = 199 by the escape: 22 zeros,
        // a 1, then 198 in 8 bits. Sample 2: D3 = -100 is context -4
        // (sign -1), the median predicts 100, k = 2, error 0: "1" "00".
        let scan = pack(&format!("0{}1{:08b}100", "0".repeat(22), 198));
        let image = decode(&stream(1, 2, None, &scan), 1, 2).unwrap();
        assert_eq!(image.samples, [100, 100]);
        assert_eq!((image.width, image.height, image.precision), (2, 1, 8));
        // One bit less and the data ends inside the image.
        let short = pack(&format!("0{}1{:08b}10", "0".repeat(22), 198));
        let cut = &short[..short.len() - 1];
        assert!(matches!(
            decode(&stream(1, 2, None, cut), 1, 2),
            Err(JlsError::Invalid(why)) if why.contains("ends in line 1")
        ));
    }

    #[test]
    fn restart_markers_separate_intervals() {
        // A 4x4 image of zeros, restart every 2 lines. Each interval starts
        // afresh: line 1 is four 1-sample run segments (RUNindex 0 to 4),
        // line 2 two 2-sample segments: six 1 bits, padded to 0xFC.
        let mut scan = vec![0xFC, 0xFF, 0xD0, 0xFC];
        let image = decode(&stream(4, 4, Some(2), &scan), 4, 4).unwrap();
        assert_eq!(image.samples, [0; 16]);
        // RST1 where RST0 belongs, or no marker, is an error.
        scan[2] = 0xD1;
        let e = decode(&stream(4, 4, Some(2), &scan), 4, 4).unwrap_err();
        assert_eq!(
            e,
            JlsError::Invalid("restart marker RST0 is missing".into())
        );
        let e = decode(&stream(4, 4, Some(2), &[0xFC, 0xFC]), 4, 4).unwrap_err();
        assert!(
            e.to_string().contains("where restart marker RST0 belongs"),
            "{e}"
        );
    }

    #[test]
    fn headers_are_checked_before_anything_is_allocated() {
        let ok = stream(4, 4, Some(2), &[0xFC, 0xFF, 0xD0, 0xFC]);
        // The frame must be the size the DICOM header gives.
        let e = decode(&ok, 4000, 4000).unwrap_err();
        assert!(e.to_string().contains("holds 4x4 samples"), "{e}");
        // Three components (colour) are not read.
        let mut colour = ok.clone();
        colour[11] = 3;
        assert!(matches!(decode(&colour, 4, 4), Err(JlsError::Invalid(_))));
        let mut colour = stream(4, 4, None, &[]);
        colour.splice(11..15, [3, 1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0]);
        colour[5] = 17;
        assert!(matches!(
            decode(&colour, 4, 4),
            Err(JlsError::Unsupported(why)) if why.contains("3 components")
        ));
        // Every prefix of a valid stream is an error, never a panic.
        for len in 0..ok.len() - 2 {
            assert!(decode(&ok[..len], 4, 4).is_err(), "{len} bytes");
        }
    }
}
