//! Reading a `.nii.gz` held in memory: inflated whole by libdeflate when the
//! file allows it, else streamed through flate2 in blocks converted on the
//! rayon pool while the next one inflates.

use super::convert::{inexact_error, into_volume, layout, unsupported_datatype, wrap};
use super::locate::{Plan, check_budget, check_length, parse_header, volume_plan};
use super::{NiftiHeaderInfo, ReadOptions, data, header, inflate, nifti2};
use crate::{Error, Result, Volume, Voxel};
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes of decompressed data handed to one conversion task.
pub(super) const GZ_BLOCK: usize = 1 << 20;

/// Blocks waiting for or under conversion at most, before the inflating
/// thread converts the next one itself (bounds the memory held in blocks).
const MAX_IN_FLIGHT: usize = 4;

/// Deflate cannot expand input more than about 1032:1, so a gzip file of
/// `n` bytes decompresses to at most this many: a bound on what a header
/// may make us allocate before the data is seen.
pub(super) fn max_inflated_len(compressed_len: usize) -> u64 {
    (compressed_len as u64).saturating_mul(1032)
}

/// Fills `buf` from `r` as far as the stream allows; returns the bytes read
/// (less than `buf.len()` only at the end of the stream).
pub(super) fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Reads and discards the rest of `r`; returns how many bytes it held.
fn drain(r: &mut impl Read, scratch: &mut [u8]) -> std::io::Result<u64> {
    let mut n = 0u64;
    loop {
        let got = read_full(r, scratch)?;
        n += got as u64;
        if got < scratch.len() {
            return Ok(n);
        }
    }
}

/// Inflated files up to this size may always be inflated whole, whatever
/// part of them is read.
const WHOLE_ALWAYS: u64 = 64 << 20;

/// Whether a `.nii.gz` that inflates to `end` bytes is worth inflating
/// whole for `plan`: always when small, otherwise when the requested volume
/// is at least half of it, so that reading one volume of a large 4-D file
/// does not hold all of its volumes.
fn worth_inflating_whole(plan: &Plan, end: u64) -> bool {
    end <= WHOLE_ALWAYS.max((plan.len as u64).saturating_mul(2).saturating_add(1 << 20))
}

/// Inflates `compressed` whole with libdeflate into a buffer of `end`
/// bytes, the inflated length the header announces. `None` when that does
/// not work out exactly (damaged or truncated gzip, trailing bytes, a header
/// CRC, an inflated stream shorter or longer than `end`, no memory for the
/// decompressor): the caller then streams, which reports what is wrong.
fn inflate_whole(compressed: &[u8], end: u64) -> Option<Vec<u8>> {
    let end = usize::try_from(end).ok()?;
    let mut inflater = inflate::Inflater::new()?;
    // One byte more than announced, so that a longer stream is told apart
    // from one of exactly the announced length.
    let mut raw = data::alloc_voxels::<u8>(end.checked_add(1)?);
    match inflater.inflate_members(compressed, &mut raw) {
        Ok(n) if n == end => {
            raw.truncate(end);
            Some(raw)
        }
        _ => None,
    }
}

/// [`inflate_whole`] straight into the voxel buffer, when the file stores
/// `T` itself (little-endian, unscaled) and holds little besides the volume
/// read (at most 1 MiB: header, extensions): the voxels are then moved to
/// the front of the same buffer, so reading needs no second full-size
/// buffer and no conversion pass. `None` when that does not apply or the
/// inflate does not come out exactly (the caller goes on as before).
fn inflate_in_place<T: Voxel>(
    compressed: &[u8],
    end: u64,
    info: &NiftiHeaderInfo,
    plan: &Plan,
) -> Option<Vec<T>> {
    let size = std::mem::size_of::<T>();
    let end = usize::try_from(end).ok()?;
    let start = usize::try_from(plan.start).ok()?;
    if !data::is_identity::<T>(layout(info))
        || !start.is_multiple_of(size)
        || !plan.len.is_multiple_of(size)
        || end - plan.len > 1 << 20
    {
        return None;
    }
    let mut inflater = inflate::Inflater::new()?;
    // One byte more than announced, as in inflate_whole.
    let mut voxels = data::alloc_voxels::<T>((end + 1).div_ceil(size));
    let bytes = T::le_bytes_mut(&mut voxels)?;
    match inflater.inflate_members(compressed, &mut bytes[..end + 1]) {
        Ok(n) if n == end => {}
        _ => return None,
    }
    let (first, count) = (start / size, plan.len / size);
    voxels.copy_within(first..first + count, 0);
    voxels.truncate(count);
    Some(voxels)
}

/// Which way [`read_gz`] inflates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum GzMode {
    /// Whole with libdeflate when the file allows it, else streaming.
    Auto,
    /// Always streaming through flate2.
    Streaming,
    /// Whole or not at all (tests: proves the whole-file path was taken).
    #[cfg(test)]
    WholeOnly,
}

/// Reads a gzipped NIfTI file held in memory.
///
/// The header is inflated first (with flate2) and the volume located. Then,
/// when the header's announced end of data lies within what the compressed
/// size could inflate to, and the file is not a large 4-D one of which only
/// a small part is read ([`worth_inflating_whole`]), the whole file is
/// inflated in one go by libdeflate (member after member) into a buffer of
/// exactly that size, and the requested volume converted from it in
/// parallel. This holds the compressed file, the inflated file and the
/// voxels at once (for a 512x512x200 int16 file read as `f32`: 55 + 105 +
/// 210 MB), against the compressed file, the voxels and a few 1 MiB blocks
/// for the streaming path below, in exchange for a faster inflate.
///
/// Whenever that one-shot inflate does not produce exactly the announced
/// length (damage, truncation, trailing bytes, more or less data than the
/// header says, a member with a header CRC), the streaming path takes over
/// (its decoder has inflated only the header so far), so results and
/// errors are exactly those of the streaming reader. The one known
/// difference: libdeflate accepts a few deflate encodings that zlib rejects
/// and no encoder emits (distance codes 30–31 and length codes 286–287,
/// decoded as 29 and 285; more than 286/30 code lengths; incomplete Huffman
/// codes of one codeword, and an incomplete precode), so such a file, if its
/// members' CRC-32 and lengths check out, is read where the streaming
/// reader reports a corrupt gzip stream.
///
/// Streaming, the stream is inflated in blocks of [`GZ_BLOCK`] bytes
/// (concatenated gzip members read as one stream, as the writer emits them)
/// and each block of the requested volume is converted to `T` on the rayon
/// pool while the next one inflates, so the decompressed file is never held
/// whole.
///
/// Either way the whole stream is always inflated, so a corrupt or
/// truncated file fails however far into it the damage is, and errors are
/// reported in the order of a read of the fully decompressed file: gzip
/// damage, then the header, the volume request, the data length, inexact
/// values.
pub(super) fn read_gz<T: Voxel>(
    path: &Path,
    compressed: &[u8],
    opts: &ReadOptions,
    mode: GzMode,
) -> Result<Volume<T>> {
    let gz_error = |e: std::io::Error| {
        Error::invalid(path, format!("gzip stream is corrupt or truncated: {e}"))
    };
    let mut stream = flate2::bufread::MultiGzDecoder::new(compressed);
    let mut head = [0u8; nifti2::NIFTI2_HEADER_SIZE + 4];
    let head_len = read_full(&mut stream, &mut head).map_err(gz_error)?;
    let head = &head[..head_len];
    let mut scratch = vec![0u8; GZ_BLOCK];

    let planned = parse_header(path, head)
        .and_then(|info| volume_plan(path, &info, opts).map(|plan| (info, plan)));
    let (info, plan) = match planned {
        Ok(p) => p,
        Err(e) => {
            drain(&mut stream, &mut scratch).map_err(gz_error)?;
            return Err(e);
        }
    };
    let size = header::datatype_info(info.datatype)
        .ok_or_else(|| unsupported_datatype(path, &info))?
        .1;
    let fail_length = |stream: &mut flate2::bufread::MultiGzDecoder<&[u8]>,
                       scratch: &mut [u8],
                       pos: u64|
     -> Error {
        match drain(stream, scratch) {
            Err(e) => gz_error(e),
            Ok(rest) => match check_length(path, &plan, pos + rest) {
                Err(e) => e,
                Ok(()) => Error::invalid(path, "voxel data ends early"),
            },
        }
    };
    let end = plan.data_start.saturating_add(plan.total);
    if end > max_inflated_len(compressed.len()) {
        // The header announces more data than the file could inflate to:
        // report the length found without allocating for the claim.
        return Err(fail_length(&mut stream, &mut scratch, head_len as u64));
    }
    check_budget(path, &info, &plan)?;
    if mode != GzMode::Streaming && worth_inflating_whole(&plan, end) {
        // `plan.start + plan.len <= end`: the volume lies inside what is
        // inflated.
        let start = plan.start as usize;
        if let Some(voxels) = inflate_in_place::<T>(compressed, end, &info, &plan) {
            return wrap(path, &info, voxels);
        }
        if let Some(raw) = inflate_whole(compressed, end) {
            return into_volume(path, &info, &raw[start..start + plan.len]);
        }
    }
    #[cfg(test)]
    if mode == GzMode::WholeOnly {
        return Err(Error::invalid(path, "not inflated whole"));
    }

    // Stream position of the next byte `stream` yields.
    let mut pos = head_len as u64;
    let mut voxels = data::alloc_voxels::<T>(plan.len / size);
    let first_bad: std::sync::Mutex<Option<(usize, f64)>> = std::sync::Mutex::new(None);
    let spare: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());
    let layout = layout(&info);
    let block_elems = GZ_BLOCK / size;
    let in_flight = AtomicUsize::new(0);
    let (first_bad, spare, in_flight) = (&first_bad, &spare, &in_flight);

    let complete = rayon::scope(|s| -> std::io::Result<bool> {
        let mut rest: &mut [T] = &mut voxels;
        // Bytes of the volume already inflated into `head`.
        let skip_in_head = usize::try_from(plan.start).map_or(head_len, |st| st.min(head_len));
        let mut carry: &[u8] = &head[skip_in_head..];
        carry = &carry[..carry.len().min(plan.len)];
        // Skip the extensions and earlier volumes.
        while pos < plan.start {
            let want = (plan.start - pos).min(GZ_BLOCK as u64) as usize;
            let got = read_full(&mut stream, &mut scratch[..want])?;
            pos += got as u64;
            if got < want {
                return Ok(false);
            }
        }
        let mut block_no = 0;
        while !rest.is_empty() {
            let n = rest.len().min(block_elems);
            let bytes = n * size;
            let mut block = spare
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop()
                .unwrap_or_default();
            block.resize(bytes, 0);
            let from_head = carry.len().min(bytes);
            block[..from_head].copy_from_slice(&carry[..from_head]);
            carry = &carry[from_head..];
            let got = read_full(&mut stream, &mut block[from_head..])?;
            pos += got as u64;
            if from_head + got < bytes {
                return Ok(false);
            }
            let (out, tail) = std::mem::take(&mut rest).split_at_mut(n);
            rest = tail;
            let mut convert = move |block: Vec<u8>| {
                if let Err(v) = data::decode_into(&block, layout, out) {
                    let mut fb = first_bad.lock().unwrap_or_else(|p| p.into_inner());
                    if fb.is_none_or(|(b, _)| block_no < b) {
                        *fb = Some((block_no, v));
                    }
                }
                spare.lock().unwrap_or_else(|p| p.into_inner()).push(block);
            };
            // Backpressure without blocking (which could deadlock a
            // one-thread pool): when the pool lags, convert here.
            if in_flight.load(Ordering::Acquire) >= MAX_IN_FLIGHT {
                convert(block);
            } else {
                in_flight.fetch_add(1, Ordering::AcqRel);
                s.spawn(move |_| {
                    let mut convert = convert;
                    convert(block);
                    in_flight.fetch_sub(1, Ordering::AcqRel);
                });
            }
            block_no += 1;
        }
        Ok(true)
    });
    match complete {
        Err(e) => return Err(gz_error(e)),
        Ok(false) => return Err(fail_length(&mut stream, &mut scratch, pos)),
        Ok(true) => {}
    }
    // Later volumes, and whatever follows the data: inflated to check them.
    let rest = drain(&mut stream, &mut scratch).map_err(gz_error)?;
    check_length(path, &plan, pos + rest)?;
    let first_bad = *first_bad.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, bad)) = first_bad {
        return Err(inexact_error::<T>(path, bad));
    }
    wrap(path, &info, voxels)
}

#[cfg(test)]
mod tests;
