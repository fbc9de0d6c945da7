//! Decoding DICOM pixel data into stored values, frame by frame.
//!
//! Native (uncompressed) pixel data is unpacked here, with every length
//! checked against what Rows × Columns × BitsAllocated × NumberOfFrames
//! promise, so that a truncated file is an error that says how many bytes
//! are missing. Encapsulated JPEG-LS is decoded by our own decoder
//! (`jpegls/`, so that no build step needs cmake), other encapsulated pixel
//! data (RLE, JPEG, JPEG 2000) is handed to `dicom-pixeldata`, and its
//! output is checked the same way.
//!
//! The values returned are *stored* values (after masking to BitsStored and
//! sign extension); the Modality LUT (RescaleSlope/RescaleIntercept, a
//! Modality LUT Sequence, DoseGridScaling) is applied by the caller because
//! Enhanced multi-frame objects may give it per frame.
//!
//! Explicit VR Big Endian needs care: the parser turns OW pixel data into
//! 16-bit words in host order, which is right for 16-bit samples and for
//! 8- and 1-bit samples packed into words, but a 32-bit sample is two such
//! words, most significant first; OB (or UN) pixel data stays as raw bytes
//! in the file's order. [`native_le_bytes`] turns every case into
//! little-endian samples.

use super::attrs::{Attrs, error_chain, tag_name};
use super::jpeg12;
use super::own_codecs::{
    JPEG_2000, JPEG_EXTENDED, JPEG_LS_LOSSLESS, JPEG_LS_NEAR_LOSSLESS, decode_jpeg_ls,
    decode_jpeg12, decode_jpeg2000_bits,
};
use crate::{Error, Result};
use dicom_core::value::{DicomValueType, PrimitiveValue, Value};
use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;
use std::borrow::Cow;
use std::path::Path;

/// The Image Pixel module attributes that decide how to unpack a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PixelFormat {
    /// (0028,0010) Rows: pixels down a column.
    pub rows: usize,
    /// (0028,0011) Columns: pixels along a row.
    pub cols: usize,
    /// (0028,0008) NumberOfFrames, 1 when absent.
    pub frames: usize,
    /// (0028,0100) BitsAllocated: 1, 8, 16 or 32.
    pub bits_allocated: u16,
    /// (0028,0101) BitsStored.
    pub bits_stored: u16,
    /// (0028,0102) HighBit.
    pub high_bit: u16,
    /// (0028,0103) PixelRepresentation is 1 (two's complement).
    pub signed: bool,
}

impl PixelFormat {
    /// Reads and validates the Image Pixel attributes of a data set.
    pub fn from_attrs(a: &Attrs<'_>) -> Result<Self> {
        let samples = a.uint(tags::SAMPLES_PER_PIXEL)?.unwrap_or(1);
        if samples != 1 {
            return Err(Error::unsupported(
                a.path,
                format!("colour images (SamplesPerPixel {samples}); only greyscale is read"),
            ));
        }
        let photometric = a.string(tags::PHOTOMETRIC_INTERPRETATION);
        if !photometric.is_empty() && !photometric.starts_with("MONOCHROME") {
            return Err(Error::unsupported(
                a.path,
                format!("PhotometricInterpretation {photometric}; only MONOCHROME1/2 is read"),
            ));
        }
        let rows = a.require_uint(tags::ROWS)? as usize;
        let cols = a.require_uint(tags::COLUMNS)? as usize;
        let frames = a.uint(tags::NUMBER_OF_FRAMES)?.unwrap_or(1) as usize;
        if rows == 0 || cols == 0 || frames == 0 {
            return Err(Error::invalid(
                a.path,
                format!("image has {rows} rows, {cols} columns and {frames} frames; none may be 0"),
            ));
        }
        let bits_allocated = a.require_uint(tags::BITS_ALLOCATED)?;
        if ![1, 8, 16, 32].contains(&bits_allocated) {
            return Err(Error::unsupported(
                a.path,
                format!("BitsAllocated {bits_allocated}; 1, 8, 16 or 32 are read"),
            ));
        }
        let bits_stored = a.uint(tags::BITS_STORED)?.unwrap_or(bits_allocated);
        let high_bit = a
            .uint(tags::HIGH_BIT)?
            .unwrap_or(bits_stored.saturating_sub(1));
        if bits_stored == 0
            || bits_stored > bits_allocated
            || high_bit >= bits_allocated
            || high_bit + 1 < bits_stored
        {
            return Err(Error::invalid(
                a.path,
                format!(
                    "BitsStored {bits_stored} and HighBit {high_bit} do not fit in BitsAllocated {bits_allocated}"
                ),
            ));
        }
        let signed = a.uint(tags::PIXEL_REPRESENTATION)?.unwrap_or(0) == 1;
        // The checks above bound all three values by 32, so these casts keep them.
        let fmt = PixelFormat {
            rows,
            cols,
            frames,
            bits_allocated: bits_allocated as u16,
            bits_stored: bits_stored as u16,
            high_bit: high_bit as u16,
            signed,
        };
        fmt.total_bytes(a.path)?;
        // Frames are decoded into stored values and then voxels of up to 4
        // bytes each: a header may not ask for more than the budget.
        crate::budget::check_grid(
            format!("{frames} frame(s) of {cols}x{rows} pixels"),
            &[rows, cols, frames],
            4,
        )
        .map_err(|b| Error::over_budget(a.path, b))?;
        Ok(fmt)
    }

    /// Pixels in one frame.
    pub fn frame_pixels(&self) -> usize {
        self.rows * self.cols
    }

    /// Bytes the native pixel data of all frames needs (bits packed for
    /// BitsAllocated 1, where frames need not start on a byte boundary).
    pub fn total_bytes(&self, path: &Path) -> Result<usize> {
        self.rows
            .checked_mul(self.cols)
            .and_then(|n| n.checked_mul(self.frames))
            .and_then(|n| n.checked_mul(usize::from(self.bits_allocated)))
            .map(|bits| bits.div_ceil(8))
            .ok_or_else(|| Error::invalid(path, "image dimensions overflow"))
    }

    /// Turns sample number `pixel` of `bytes` into its stored value.
    /// The caller guarantees the sample lies inside `bytes`.
    fn sample(&self, bytes: &[u8], pixel: usize) -> f64 {
        let raw: u32 = match self.bits_allocated {
            1 => u32::from((bytes[pixel / 8] >> (pixel % 8)) & 1),
            8 => u32::from(bytes[pixel]),
            16 => u32::from(u16::from_le_bytes([bytes[2 * pixel], bytes[2 * pixel + 1]])),
            _ => u32::from_le_bytes([
                bytes[4 * pixel],
                bytes[4 * pixel + 1],
                bytes[4 * pixel + 2],
                bytes[4 * pixel + 3],
            ]),
        };
        self.stored(raw)
    }

    /// Turns a raw sample of BitsAllocated bits into its stored value:
    /// the BitsStored bits below HighBit, sign-extended when signed.
    pub(super) fn stored(&self, raw: u32) -> f64 {
        let shift = u32::from(self.high_bit + 1 - self.bits_stored);
        let bits = u32::from(self.bits_stored);
        let v = if bits >= 32 {
            raw
        } else {
            (raw >> shift) & ((1u32 << bits) - 1)
        };
        // Two's complement in `bits` bits: a set top bit means v - 2^bits.
        if self.signed && v >> (bits - 1) & 1 == 1 {
            (i64::from(v) - (1i64 << bits)) as f64
        } else {
            f64::from(v)
        }
    }
}

/// True when the data set is encoded in Explicit VR Big Endian, the one
/// big-endian transfer syntax (retired, but still found in archives).
pub(crate) fn big_endian(obj: &DefaultDicomObject) -> bool {
    obj.meta().transfer_syntax().trim_end_matches('\0') == "1.2.840.10008.1.2.2"
}

/// Native pixel data as the parser holds it, turned into little-endian
/// samples of `bits_allocated` bits.
///
/// The parser decodes OW (and OL) values into host-order numbers, so in a
/// big-endian file a 16-bit word is already right, but a 32-bit sample is
/// two words, most significant first: they are swapped here. OB or UN data
/// stays as the file's bytes, so in a big-endian file each 16- or 32-bit
/// sample has its bytes reversed. 8- and 1-bit samples are bytes in either
/// form: words hold their first sample in the low byte, as DICOM packs them
/// (PS3.5 Annex D), and raw bytes are already in order.
pub(crate) fn native_le_bytes<'a>(
    path: &Path,
    value: &'a PrimitiveValue,
    big_endian: bool,
    bits_allocated: u16,
) -> Result<Cow<'a, [u8]>> {
    let words32 = big_endian && bits_allocated == 32;
    Ok(match value {
        PrimitiveValue::U8(b) if big_endian && matches!(bits_allocated, 16 | 32) => {
            let n = usize::from(bits_allocated / 8);
            Cow::Owned(b.chunks(n).flat_map(|c| c.iter().rev().copied()).collect())
        }
        PrimitiveValue::U8(b) => Cow::Borrowed(&b[..]),
        PrimitiveValue::U16(w) if words32 => Cow::Owned(swap_word_pairs(w.iter().copied())),
        PrimitiveValue::I16(w) if words32 => {
            Cow::Owned(swap_word_pairs(w.iter().map(|&x| x as u16)))
        }
        PrimitiveValue::U16(w) => Cow::Owned(w.iter().flat_map(|x| x.to_le_bytes()).collect()),
        PrimitiveValue::I16(w) => Cow::Owned(w.iter().flat_map(|x| x.to_le_bytes()).collect()),
        PrimitiveValue::U32(w) => Cow::Owned(w.iter().flat_map(|x| x.to_le_bytes()).collect()),
        PrimitiveValue::Empty => Cow::Borrowed(&[][..]),
        other => {
            return Err(Error::invalid(
                path,
                format!(
                    "pixel data has an unexpected value type {:?}",
                    other.value_type()
                ),
            ));
        }
    })
}

/// Joins host-order 16-bit words, most significant first, into
/// little-endian 32-bit samples. An odd last word (a length the caller
/// rejects as too short) stays two bytes, so the length is kept.
fn swap_word_pairs(words: impl Iterator<Item = u16>) -> Vec<u8> {
    let words: Vec<u16> = words.collect();
    let mut out = Vec::with_capacity(2 * words.len());
    for pair in words.chunks(2) {
        match *pair {
            [hi, lo] => out.extend(((u32::from(hi) << 16) | u32::from(lo)).to_le_bytes()),
            [last] => out.extend(last.to_le_bytes()),
            _ => {}
        }
    }
    out
}

/// Where the pixel data of an object is and how it is encoded.
#[derive(Debug)]
pub(crate) enum PixelSource<'a> {
    /// Native pixel data as little-endian samples, whatever the transfer
    /// syntax (see [`native_le_bytes`]).
    Native(Cow<'a, [u8]>),
    /// Encapsulated (compressed) fragments, decoded by `dicom-pixeldata`.
    Encapsulated,
}

impl<'a> PixelSource<'a> {
    /// Finds the pixel data of a file, checking that native data is long
    /// enough for every frame.
    pub fn of(path: &Path, obj: &'a DefaultDicomObject, fmt: &PixelFormat) -> Result<Self> {
        for tag in [tags::FLOAT_PIXEL_DATA, tags::DOUBLE_FLOAT_PIXEL_DATA] {
            if obj.get(tag).is_some() {
                return Err(Error::unsupported(
                    path,
                    format!("{} (floating-point pixels)", tag_name(tag)),
                ));
            }
        }
        let Some(elem) = obj.get(tags::PIXEL_DATA) else {
            return Err(Error::invalid(path, "no pixel data (7FE0,0010)"));
        };
        let bytes = match elem.value() {
            Value::PixelSequence(_) => return Ok(PixelSource::Encapsulated),
            Value::Primitive(v) => native_le_bytes(path, v, big_endian(obj), fmt.bits_allocated)?,
            other => {
                return Err(Error::invalid(
                    path,
                    format!(
                        "pixel data has an unexpected value type {:?}",
                        other.value_type()
                    ),
                ));
            }
        };
        let expected = fmt.total_bytes(path)?;
        if bytes.len() < expected {
            return Err(Error::invalid(
                path,
                format!("pixel data has {} bytes, {expected} expected", bytes.len()),
            ));
        }
        Ok(PixelSource::Native(bytes))
    }

    /// Frame `frame` through the Modality LUT into `out` (one value per
    /// pixel): native samples go straight from the file's bytes into the
    /// voxels, with no intermediate buffer.
    pub(crate) fn frame_into<T: crate::Voxel>(
        &self,
        path: &Path,
        obj: &DefaultDicomObject,
        fmt: &PixelFormat,
        frame: usize,
        modality: &super::planes::Modality,
        out: &mut [T],
    ) -> Result<()> {
        let n = fmt.frame_pixels();
        if out.len() != n {
            return Err(Error::invalid(
                path,
                format!("frame of {n} pixels for a slice of {}", out.len()),
            ));
        }
        match self {
            PixelSource::Native(bytes) if frame < fmt.frames => {
                // Lengths were checked in `of`, so every sample is in bounds.
                let first = frame * n;
                // The common CT case, 16 of 16 bits through a rescale into
                // float32 (which holds every such value): a loop the compiler
                // vectorises, computing exactly what the general path does.
                if let super::planes::Modality::Linear { slope, intercept } = *modality
                    && fmt.bits_allocated == 16
                    && fmt.bits_stored == 16
                    && fmt.high_bit == 15
                    && T::DTYPE == crate::DType::Float32
                {
                    let src = bytes[2 * first..2 * (first + n)].chunks_exact(2);
                    let raw = |b: &[u8]| u16::from_le_bytes([b[0], b[1]]);
                    if fmt.signed {
                        for (o, b) in out.iter_mut().zip(src) {
                            *o = T::from_f64(f64::from(raw(b) as i16) * slope + intercept);
                        }
                    } else {
                        for (o, b) in out.iter_mut().zip(src) {
                            *o = T::from_f64(f64::from(raw(b)) * slope + intercept);
                        }
                    }
                    return Ok(());
                }
                let stored = (first..first + n).map(|p| fmt.sample(bytes, p));
                super::read::apply_modality_into(path, stored, modality, out)
            }
            _ => {
                let stored = self.frame(path, obj, fmt, frame)?;
                super::read::apply_modality_into(path, stored.into_iter(), modality, out)
            }
        }
    }

    /// The stored values of frame `frame` (0-based), row by row, column
    /// index fastest.
    pub fn frame(
        &self,
        path: &Path,
        obj: &DefaultDicomObject,
        fmt: &PixelFormat,
        frame: usize,
    ) -> Result<Vec<f64>> {
        if frame >= fmt.frames {
            return Err(Error::invalid(
                path,
                format!("frame {} requested, the file has {}", frame + 1, fmt.frames),
            ));
        }
        let n = fmt.frame_pixels();
        match self {
            PixelSource::Native(bytes) => {
                // Lengths were checked in `of`, so every sample is in bounds.
                let first = frame * n;
                Ok((first..first + n).map(|p| fmt.sample(bytes, p)).collect())
            }
            PixelSource::Encapsulated => decode_encapsulated(path, obj, fmt, frame),
        }
    }
}

/// Decodes one compressed frame with `dicom-pixeldata` and unpacks it.
fn decode_encapsulated(
    path: &Path,
    obj: &DefaultDicomObject,
    fmt: &PixelFormat,
    frame: usize,
) -> Result<Vec<f64>> {
    use dicom_pixeldata::PixelDecoder;
    let ts = obj.meta().transfer_syntax().trim_end_matches('\0');
    // dicom-transfer-syntax-registry 0.10's RLE adapter refuses 32-bit
    // samples (RT Dose grids are stored so), so those are decoded here.
    if ts == RLE_LOSSLESS && fmt.bits_allocated == 32 {
        return decode_rle(path, obj, fmt, frame);
    }
    if ts == JPEG_LS_LOSSLESS || ts == JPEG_LS_NEAR_LOSSLESS {
        return decode_jpeg_ls(path, obj, fmt, frame);
    }
    // dicom-pixeldata refuses BitsAllocated 1 whatever the codec; a
    // binary SEG's JPEG 2000 frames hold one 0/1 sample per pixel.
    if fmt.bits_allocated == 1 && JPEG_2000.contains(&ts) {
        return decode_jpeg2000_bits(path, obj, fmt, frame);
    }
    // `jpeg-decoder` reads no 12-bit DCT stream (lossy CT archives).
    if ts == JPEG_EXTENDED {
        let label = format!("frame {}: JPEG Extended", frame + 1);
        let data = frame_fragments(obj, fmt, frame)
            .map_err(|why| Error::invalid(path, format!("{label}: {why}")))?;
        if jpeg12::precision(&data) == Some(12) {
            return decode_jpeg12(path, fmt, &data, &label);
        }
    }
    let frame_u32 =
        u32::try_from(frame).map_err(|_| Error::invalid(path, "frame index too large"))?;
    // The codecs are third-party code run on untrusted bytes; a panic in
    // one of them must become an error about this file, not end the program.
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        obj.decode_pixel_data_frame(frame_u32)
    }))
    .map_err(|_| {
        Error::invalid(
            path,
            format!(
                "frame {}: the pixel data decoder failed on corrupt data",
                frame + 1
            ),
        )
    })?
    .map_err(|e| {
        let ts = obj.meta().transfer_syntax().trim_end_matches('\0');
        Error::invalid(
            path,
            format!(
                "frame {}: cannot decode pixel data (transfer syntax {ts}): {}",
                frame + 1,
                error_chain(&e)
            ),
        )
    })?;
    // The decoder reports the layout of what it produced, which for some
    // codecs differs from the header (JPEG baseline always gives 8 bits).
    let out = PixelFormat {
        rows: decoded.rows() as usize,
        cols: decoded.columns() as usize,
        frames: 1,
        bits_allocated: decoded.bits_allocated(),
        bits_stored: decoded
            .bits_stored()
            .clamp(1, decoded.bits_allocated().max(1)),
        high_bit: decoded
            .high_bit()
            .min(decoded.bits_allocated().saturating_sub(1)),
        signed: fmt.signed,
    };
    if out.rows != fmt.rows || out.cols != fmt.cols || ![8, 16, 32].contains(&out.bits_allocated) {
        return Err(Error::invalid(
            path,
            format!(
                "frame {}: decoder produced {}x{} pixels of {} bits, header says {}x{} of {} bits",
                frame + 1,
                out.cols,
                out.rows,
                out.bits_allocated,
                fmt.cols,
                fmt.rows,
                fmt.bits_allocated
            ),
        ));
    }
    let out = PixelFormat {
        high_bit: out.high_bit.max(out.bits_stored - 1),
        ..out
    };
    let bytes = decoded.data();
    let expected = out.total_bytes(path)?;
    if bytes.len() < expected {
        return Err(Error::invalid(
            path,
            format!(
                "frame {}: decoded pixel data has {} bytes, {expected} expected",
                frame + 1,
                bytes.len()
            ),
        ));
    }
    Ok((0..out.frame_pixels())
        .map(|p| out.sample(bytes, p))
        .collect())
}

/// Transfer syntax UID of RLE Lossless (PS3.5 Annex G).
const RLE_LOSSLESS: &str = "1.2.840.10008.1.2.5";

/// The bytes of frame `frame` of encapsulated pixel data (PS3.5 A.4):
/// every fragment for a single frame; one fragment per frame when the
/// counts agree; else the fragments the Basic Offset Table assigns to the
/// frame, or without one, those from the fragment that starts the frame's
/// stream (JPEG SOI, 0xFFD8) up to the next such fragment.
pub(super) fn frame_fragments<'a>(
    obj: &'a DefaultDicomObject,
    fmt: &PixelFormat,
    frame: usize,
) -> std::result::Result<Cow<'a, [u8]>, String> {
    let value = obj.get(tags::PIXEL_DATA).map(|e| e.value());
    let fragments = value.and_then(|v| v.fragments()).unwrap_or(&[]);
    let table = value.and_then(|v| v.offset_table()).unwrap_or(&[]);
    let joined = |range: std::ops::Range<usize>| -> Cow<'a, [u8]> {
        match &fragments[range.clone()] {
            [one] => Cow::Borrowed(&one[..]),
            many => Cow::Owned(many.concat()),
        }
    };
    if fragments.is_empty() {
        return Err("the pixel data holds no fragments".into());
    }
    if fmt.frames == 1 {
        return Ok(joined(0..fragments.len()));
    }
    if fragments.len() == fmt.frames {
        return Ok(joined(frame..frame + 1));
    }
    // Where each frame's first fragment is: from the offset table (byte
    // offsets of item headers, each fragment taking 8 bytes more than its
    // data), or by looking for the start of a JPEG stream.
    let firsts: Vec<usize> = if table.len() == fmt.frames {
        let mut starts = Vec::with_capacity(fragments.len());
        let mut offset = 0u64;
        for f in fragments {
            starts.push(offset);
            offset += 8 + f.len() as u64;
        }
        let found: Option<Vec<usize>> = table
            .iter()
            .map(|&t| starts.binary_search(&u64::from(t)).ok())
            .collect();
        found.ok_or("the Basic Offset Table points between fragments")?
    } else {
        (0..fragments.len())
            .filter(|&i| fragments[i].starts_with(&[0xFF, 0xD8]))
            .collect()
    };
    if firsts.len() != fmt.frames || firsts[0] != 0 || !firsts.is_sorted() {
        return Err(format!(
            "{} fragments for {} frames, and neither the Basic Offset Table nor the JPEG \
             markers tell which belong to which frame",
            fragments.len(),
            fmt.frames
        ));
    }
    let end = firsts.get(frame + 1).copied().unwrap_or(fragments.len());
    Ok(joined(firsts[frame]..end))
}

/// Decodes one RLE Lossless frame of greyscale samples (PS3.5 Annex G):
/// a 64-byte header (the number of segments, then up to 15 segment
/// offsets, little-endian `u32`), then one PackBits segment per byte of a
/// sample, most significant byte first.
fn decode_rle(
    path: &Path,
    obj: &DefaultDicomObject,
    fmt: &PixelFormat,
    frame: usize,
) -> Result<Vec<f64>> {
    let bad = |why: String| Error::invalid(path, format!("frame {}: RLE: {why}", frame + 1));
    let fragments = obj
        .get(tags::PIXEL_DATA)
        .and_then(|e| e.value().fragments())
        .unwrap_or(&[]);
    // PS3.5 A.4.2: each RLE frame is one fragment.
    let data: &[u8] = if fragments.len() == fmt.frames {
        &fragments[frame]
    } else {
        return Err(bad(format!(
            "{} fragments for {} frames; each frame must be one fragment",
            fragments.len(),
            fmt.frames
        )));
    };
    let word = |i: usize| -> Option<usize> {
        let b = data.get(4 * i..4 * i + 4)?;
        usize::try_from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])).ok()
    };
    let bytes_per_sample = usize::from(fmt.bits_allocated / 8);
    let segments = word(0).ok_or_else(|| bad("shorter than its 64-byte header".into()))?;
    if segments != bytes_per_sample {
        return Err(bad(format!(
            "{segments} segments, {bytes_per_sample} expected for {}-bit samples",
            fmt.bits_allocated
        )));
    }
    let n = fmt.frame_pixels();
    let mut le = vec![0u8; n * bytes_per_sample];
    for s in 0..segments {
        let start = word(1 + s).unwrap_or(0);
        let end = if s + 1 < segments {
            word(2 + s).unwrap_or(0)
        } else {
            data.len()
        };
        let segment = data
            .get(start..end)
            .filter(|_| start >= 64)
            .ok_or_else(|| bad(format!("segment {} lies outside the fragment", s + 1)))?;
        let bytes = unpack_bits(segment, n)
            .ok_or_else(|| bad(format!("segment {} decodes to fewer than {n} bytes", s + 1)))?;
        // Segment 0 holds the most significant bytes.
        let shift = bytes_per_sample - 1 - s;
        for (p, b) in bytes.into_iter().enumerate() {
            le[p * bytes_per_sample + shift] = b;
        }
    }
    Ok((0..n).map(|p| fmt.sample(&le, p)).collect())
}

/// PackBits (PS3.5 G.3.2): a header byte `h` followed by `h + 1` literal
/// bytes when `h` is 0..=127, or by one byte repeated `1 − h` times when it
/// is −127..=−1 (−128 is skipped). Returns the first `n` bytes, or `None`
/// when the segment holds fewer or breaks off inside a run.
fn unpack_bits(segment: &[u8], n: usize) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(n);
    let mut i = 0;
    while out.len() < n && i < segment.len() {
        let h = segment[i] as i8;
        i += 1;
        match h {
            0..=127 => {
                let len = h as usize + 1;
                out.extend_from_slice(segment.get(i..i + len)?);
                i += len;
            }
            -127..=-1 => {
                let b = *segment.get(i)?;
                out.extend(std::iter::repeat_n(b, (1 - i16::from(h)) as usize));
                i += 1;
            }
            -128 => {}
        }
    }
    (out.len() >= n).then(|| {
        out.truncate(n);
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(bits_allocated: u16, bits_stored: u16, high_bit: u16, signed: bool) -> PixelFormat {
        PixelFormat {
            rows: 1,
            cols: 4,
            frames: 1,
            bits_allocated,
            bits_stored,
            high_bit,
            signed,
        }
    }

    #[test]
    fn the_sixteen_bit_rescale_path_computes_what_the_general_one_does() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dicom/CT_small.dcm");
        let obj = super::super::planes::open(&path, true).unwrap();
        // Every 16-bit pattern, through an uneven rescale.
        let bytes: Vec<u8> = (0..=u16::MAX).flat_map(u16::to_le_bytes).collect();
        let m = super::super::planes::Modality::Linear {
            slope: 0.37,
            intercept: -1024.5,
        };
        for signed in [true, false] {
            let f = PixelFormat {
                rows: 256,
                cols: 256,
                ..fmt(16, 16, 15, signed)
            };
            let src = PixelSource::Native(Cow::Borrowed(&bytes));
            let mut fast = vec![0f32; 65536];
            src.frame_into(&path, &obj, &f, 0, &m, &mut fast).unwrap();
            let general: Vec<f32> = (0..65536)
                .map(|p| m.apply(f.sample(&bytes, p)) as f32)
                .collect();
            assert_eq!(fast, general, "signed {signed}");
            // Integer voxels take the general path, refusing inexact values.
            let mut ints = vec![0i16; 65536];
            assert!(src.frame_into(&path, &obj, &f, 0, &m, &mut ints).is_err());
        }
    }

    #[test]
    fn sixteen_bit_samples_are_masked_and_sign_extended() {
        // 0xF800 with 12 bits stored is 0x800 = -2048 signed, 2048 unsigned;
        // the top 4 bits are overlay garbage that must be ignored.
        let bytes = [0x00, 0xF8, 0xFF, 0x0F, 0x01, 0x00, 0xFF, 0x07];
        let s = fmt(16, 12, 11, true);
        let v: Vec<f64> = (0..4).map(|p| s.sample(&bytes, p)).collect();
        assert_eq!(v, [-2048.0, -1.0, 1.0, 2047.0]);
        let u = fmt(16, 12, 11, false);
        let v: Vec<f64> = (0..4).map(|p| u.sample(&bytes, p)).collect();
        assert_eq!(v, [2048.0, 4095.0, 1.0, 2047.0]);
        // With all 16 bits stored, 0x0FFF is positive and 0xF800 is not.
        let full = fmt(16, 16, 15, true);
        assert_eq!(full.sample(&bytes, 1), 4095.0);
        assert_eq!(full.sample(&bytes, 0), -2048.0);
    }

    #[test]
    fn one_bit_samples_are_packed_lsb_first_across_frames() {
        let s = PixelFormat {
            rows: 1,
            cols: 3,
            frames: 2,
            ..fmt(1, 1, 0, false)
        };
        // Frame 0 is bits 0..3 (1,0,1), frame 1 is bits 3..6 (1,1,0).
        let bytes = [0b0001_1101];
        let v: Vec<f64> = (0..6).map(|p| s.sample(&bytes, p)).collect();
        assert_eq!(v, [1.0, 0.0, 1.0, 1.0, 1.0, 0.0]);
        assert_eq!(s.total_bytes(Path::new("x")).unwrap(), 1);
    }

    #[test]
    fn big_endian_native_data_becomes_little_endian_samples() {
        let p = Path::new("x.dcm");
        // 0x0102_0304 and 0xFFFE_FDFC as the parser gives OW in a
        // big-endian file: host-order words, most significant first.
        let words = PrimitiveValue::U16(vec![0x0102, 0x0304, 0xFFFE, 0xFDFC].into());
        let le = native_le_bytes(p, &words, true, 32).unwrap();
        let w = fmt(32, 32, 31, false);
        assert_eq!(w.sample(&le, 0), f64::from(0x0102_0304u32));
        assert_eq!(w.sample(&le, 1), f64::from(0xFFFE_FDFCu32));
        // 16-bit words are already right in either byte order.
        let le = native_le_bytes(p, &words, true, 16).unwrap();
        assert_eq!(fmt(16, 16, 15, false).sample(&le, 1), f64::from(0x0304u16));
        // OB bytes stay in file order: big-endian samples are reversed.
        let raw = PrimitiveValue::U8(vec![0x01, 0x02, 0x03, 0x04].into());
        let le = native_le_bytes(p, &raw, true, 32).unwrap();
        assert_eq!(w.sample(&le, 0), f64::from(0x0102_0304u32));
        let le = native_le_bytes(p, &raw, true, 16).unwrap();
        let h = fmt(16, 16, 15, false);
        assert_eq!((h.sample(&le, 0), h.sample(&le, 1)), (258.0, 772.0));
        // Little endian is taken as it is.
        let le = native_le_bytes(p, &raw, false, 32).unwrap();
        assert_eq!(w.sample(&le, 0), f64::from(0x0403_0201u32));
        let le = native_le_bytes(p, &words, false, 32).unwrap();
        assert_eq!(w.sample(&le, 0), f64::from(0x0304_0102u32));
    }

    #[test]
    fn packbits_runs_and_literals() {
        // A literal run of 2, a repeat of 3, a no-op, a literal run of 1.
        let seg = [1, 10, 11, (-2i8) as u8, 7, 0x80, 0, 9];
        assert_eq!(unpack_bits(&seg, 6), Some(vec![10, 11, 7, 7, 7, 9]));
        // Extra output (encoders pad segments to even lengths) is cut off.
        assert_eq!(unpack_bits(&seg, 4), Some(vec![10, 11, 7, 7]));
        // Too short, or a run that breaks off, is None.
        assert_eq!(unpack_bits(&seg, 7), None);
        assert_eq!(unpack_bits(&[3, 1, 2], 4), None);
    }

    #[test]
    fn eight_and_thirty_two_bit_samples() {
        let s = fmt(8, 8, 7, true);
        assert_eq!(s.sample(&[0x80, 0x7F], 0), -128.0);
        assert_eq!(s.sample(&[0x80, 0x7F], 1), 127.0);
        let w = fmt(32, 32, 31, false);
        assert_eq!(w.sample(&[0xFF, 0xFF, 0xFF, 0xFF], 0), 4294967295.0);
        let w = fmt(32, 32, 31, true);
        assert_eq!(w.sample(&[0xFF, 0xFF, 0xFF, 0xFF], 0), -1.0);
    }
}
