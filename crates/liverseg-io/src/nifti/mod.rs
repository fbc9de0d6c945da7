//! NIfTI-1 and NIfTI-2 reading and NIfTI-1 writing, `.nii` and `.nii.gz`.
//!
//! Headers are parsed by the `nifti` crate (NIfTI-1) and by [`nifti2`]
//! (NIfTI-2, which the crate does not read). The affine is chosen as
//! nibabel's `get_best_affine` does: the sform when `sform_code > 0`, else the
//! qform when `qform_code > 0`, else a diagonal from `pixdim` with x flipped
//! and the origin at the volume centre. Scaling (`scl_slope`, `scl_inter`) is
//! applied the way nibabel applies it.
//!
//! Compression is detected from the content (gzip magic), not from the name,
//! when reading; written files are gzipped exactly when the name ends in
//! `.gz`.

mod data;
mod header;
mod inflate;
pub mod nifti2;
mod stats;

pub use header::{AffineSource, NiftiHeaderInfo};
pub use stats::read_stats;

use crate::{Affine, DType, Error, Overwrite, Result, Volume, Voxel, write_file_atomic};
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Options for [`read`].
#[derive(Clone, Debug, Default)]
pub struct ReadOptions {
    /// Which 3-D volume of a 4-D (or higher) file to read, counting from 0.
    /// A file with more than one volume is an error unless this is set.
    pub volume: Option<usize>,
}

/// Options for [`write`](fn@write).
#[derive(Clone, Debug)]
pub struct WriteOptions {
    /// Whether an existing file may be replaced.
    pub overwrite: Overwrite,
    /// `qform_code` written (1 = scanner anatomical, the default; 0 leaves
    /// the qform unused).
    pub qform_code: i16,
    /// `sform_code` written (1 = scanner anatomical, the default).
    pub sform_code: i16,
    /// `descrip` (truncated to 79 bytes).
    pub description: String,
    /// gzip level 0–9 for `.nii.gz`. The default, 1, is nibabel's.
    pub compression_level: u32,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            overwrite: Overwrite::Never,
            qform_code: 1,
            sform_code: 1,
            description: "liverseg".into(),
            compression_level: 1,
        }
    }
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

fn is_gz_name(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"))
}

/// Parses and validates the header at the start of `bytes`.
fn parse_header(path: &Path, bytes: &[u8]) -> Result<NiftiHeaderInfo> {
    if bytes.len() < 4 {
        return Err(Error::invalid(
            path,
            format!(
                "file has {} bytes, too short for a NIfTI header",
                bytes.len()
            ),
        ));
    }
    let first4 = [bytes[0], bytes[1], bytes[2], bytes[3]];
    let info = if nifti2::is_nifti2(first4) {
        let raw: &[u8; nifti2::NIFTI2_HEADER_SIZE] = bytes
            .get(..nifti2::NIFTI2_HEADER_SIZE)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                Error::invalid(
                    path,
                    format!("NIfTI-2 header truncated at {} bytes", bytes.len()),
                )
            })?;
        let h = nifti2::Nifti2Header::from_bytes(raw)
            .map_err(|e| Error::invalid(path, e.to_string()))?;
        if &h.magic[..3] != b"n+2" {
            return Err(Error::unsupported(
                path,
                "header/image pairs (ni2: .hdr + .img)",
            ));
        }
        let ndim = h.dim[0];
        if !(1..=7).contains(&ndim) {
            return Err(Error::invalid(
                path,
                format!("NIfTI dim[0] is {ndim}, expected 1 to 7"),
            ));
        }
        let mut dims = Vec::new();
        for &d in &h.dim[1..=ndim as usize] {
            if d < 1 {
                return Err(Error::invalid(
                    path,
                    format!("NIfTI dimension {d} is not positive"),
                ));
            }
            dims.push(usize::try_from(d).map_err(|_| Error::invalid(path, "dimension too large"))?);
        }
        header::from_nifti2(&h, dims)
    } else {
        let le = i32::from_le_bytes(first4);
        let be = i32::from_be_bytes(first4);
        if le != 348 && be != 348 {
            return Err(Error::invalid(
                path,
                format!(
                    "not a NIfTI file: sizeof_hdr is {le}, expected 348 (NIfTI-1) or 540 (NIfTI-2)"
                ),
            ));
        }
        if bytes.len() < 348 {
            return Err(Error::invalid(
                path,
                format!("NIfTI-1 header truncated at {} bytes", bytes.len()),
            ));
        }
        let magic = &bytes[344..348];
        if magic == b"ni1\0" {
            return Err(Error::unsupported(
                path,
                "header/image pairs (ni1: .hdr + .img)",
            ));
        }
        if magic != b"n+1\0" {
            return Err(Error::invalid(
                path,
                format!("NIfTI-1 magic is {magic:?}, expected \"n+1\""),
            ));
        }
        let h = nifti::NiftiHeader::from_reader(&bytes[..348])
            .map_err(|e| Error::invalid(path, format!("bad NIfTI-1 header: {e}")))?;
        let ndim = h.dim[0] as i16;
        if !(1..=7).contains(&ndim) {
            return Err(Error::invalid(
                path,
                format!("NIfTI dim[0] is {ndim}, expected 1 to 7"),
            ));
        }
        let mut dims = Vec::new();
        for &d in &h.dim[1..=ndim as usize] {
            let d = d as i16;
            if d < 1 {
                return Err(Error::invalid(
                    path,
                    format!("NIfTI dimension {d} is not positive"),
                ));
            }
            dims.push(d as usize);
        }
        header::from_nifti1(&h, dims)
    };
    if header::datatype_info(info.datatype).is_none() {
        return Err(Error::unsupported(
            path,
            format!(
                "NIfTI datatype {} (only scalar integer and float types are read)",
                info.datatype
            ),
        ));
    }
    if !info.affine.is_valid() {
        return Err(Error::invalid(
            path,
            format!("header affine is singular or not finite: {:?}", info.affine),
        ));
    }
    Ok(info)
}

/// Reads only the header of a NIfTI file (decompressing just its start for
/// `.nii.gz`).
pub fn read_header(path: &Path) -> Result<NiftiHeaderInfo> {
    let mut file = crate::open_input(path)?;
    let mut start = Vec::with_capacity(544);
    (&mut file)
        .take(544)
        .read_to_end(&mut start)
        .map_err(|e| Error::io(path, "cannot read", e))?;
    if start.starts_with(&GZIP_MAGIC) {
        let file = crate::open_input(path)?;
        let mut head = Vec::with_capacity(544);
        flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file))
            .take(544)
            .read_to_end(&mut head)
            .map_err(|e| Error::invalid(path, format!("gzip stream is corrupt: {e}")))?;
        return parse_header(path, &head);
    }
    parse_header(path, &start)
}

/// Where the requested volume lies in the decompressed file.
#[derive(Clone, Copy, Debug)]
struct Plan {
    /// Offset of the first voxel of the data block.
    data_start: u64,
    /// Bytes of voxel data the header announces (all volumes).
    total: u64,
    /// Offset of the requested volume.
    start: u64,
    /// Its length in bytes.
    len: usize,
}

/// Checks the volume request against the header and locates the volume.
fn volume_plan(path: &Path, info: &NiftiHeaderInfo, opts: &ReadOptions) -> Result<Plan> {
    let size = header::datatype_info(info.datatype).map_or(1, |d| d.1);
    // NIfTI-2 dims are 64-bit: their product can overflow.
    let nvol = info
        .dims
        .iter()
        .skip(3)
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| Error::invalid(path, "volume too large"))?
        .max(1);
    let t = match (opts.volume, nvol) {
        (None, 1) => 0,
        (None, n) => {
            return Err(Error::request(
                path,
                format!(
                    "{}-D file holds {n} volumes (shape {:?}); choose one with a volume index 0..{}",
                    info.dims.len(),
                    info.dims,
                    n - 1
                ),
            ));
        }
        (Some(t), n) if t >= n => {
            return Err(Error::request(
                path,
                format!("volume {t} requested, the file holds {n}"),
            ));
        }
        (Some(t), _) => t,
    };
    let per_vol = info
        .voxels_per_volume()
        .and_then(|v| v.checked_mul(size))
        .ok_or_else(|| Error::invalid(path, "volume too large"))?;
    let min_offset = if info.version == 2 { 544 } else { 352 };
    let data_start = info.vox_offset.max(min_offset);
    let total = (per_vol as u64)
        .checked_mul(nvol as u64)
        .ok_or_else(|| Error::invalid(path, "volume too large"))?;
    // A NIfTI-1 vox_offset is a float and a NIfTI-2 one 64-bit: the
    // requested volume's offset can overflow u64.
    let start = (t as u64)
        .checked_mul(per_vol as u64)
        .and_then(|o| data_start.checked_add(o))
        .ok_or_else(|| Error::invalid(path, "volume too large"))?;
    Ok(Plan {
        data_start,
        total,
        start,
        len: per_vol,
    })
}

/// Checks the volume a plan reads against the memory budget, once the
/// file is known to hold it: it is decoded into at least 4 bytes a voxel
/// (float32), or its stored size when wider.
fn check_budget(path: &Path, info: &NiftiHeaderInfo, plan: &Plan) -> Result<()> {
    let size = header::datatype_info(info.datatype).map_or(1, |d| d.1);
    crate::budget::check(
        format!(
            "one volume of shape {:?}",
            &info.dims[..info.dims.len().min(3)]
        ),
        (plan.len / size.max(1)) as u128,
        size.max(4) as u64,
    )
    .map_err(|b| Error::over_budget(path, b))
}

/// Checks that a file of `file_len` bytes holds all the voxel data its
/// header announces.
fn check_length(path: &Path, plan: &Plan, file_len: u64) -> Result<()> {
    let have = file_len.saturating_sub(plan.data_start);
    if have < plan.total {
        return Err(Error::invalid(
            path,
            format!("voxel data has {have} bytes, {} expected", plan.total),
        ));
    }
    Ok(())
}

/// The byte range of the requested volume inside the data block, after
/// checking the request and the file length.
fn volume_range(
    path: &Path,
    info: &NiftiHeaderInfo,
    file_len: u64,
    opts: &ReadOptions,
) -> Result<Plan> {
    let plan = volume_plan(path, info, opts)?;
    check_length(path, &plan, file_len)?;
    check_budget(path, info, &plan)?;
    Ok(plan)
}

fn layout(info: &NiftiHeaderInfo) -> data::Layout {
    data::Layout {
        datatype: info.datatype,
        big_endian: info.big_endian,
        scale: info.scaling,
    }
}

fn inexact_error<T: Voxel>(path: &Path, bad: f64) -> Error {
    Error::request(
        path,
        format!(
            "value {bad} cannot be stored as {} without loss; read the file as float32",
            T::DTYPE.name()
        ),
    )
}

fn unsupported_datatype(path: &Path, info: &NiftiHeaderInfo) -> Error {
    Error::unsupported(path, format!("NIfTI datatype {}", info.datatype))
}

fn wrap<T: Voxel>(path: &Path, info: &NiftiHeaderInfo, voxels: Vec<T>) -> Result<Volume<T>> {
    let d = |i: usize| info.dims.get(i).copied().unwrap_or(1);
    Volume::new([d(0), d(1), d(2)], info.affine, voxels)
        .map_err(|e| Error::invalid(path, e.to_string()))
}

fn into_volume<T: Voxel>(path: &Path, info: &NiftiHeaderInfo, raw: &[u8]) -> Result<Volume<T>> {
    match data::decode::<T>(raw, layout(info)) {
        None => Err(unsupported_datatype(path, info)),
        Some(Err(bad)) => Err(inexact_error::<T>(path, bad)),
        Some(Ok(voxels)) => wrap(path, info, voxels),
    }
}

/// Bytes of decompressed data handed to one conversion task.
const GZ_BLOCK: usize = 1 << 20;

/// Blocks waiting for or under conversion at most, before the inflating
/// thread converts the next one itself (bounds the memory held in blocks).
const MAX_IN_FLIGHT: usize = 4;

/// Deflate cannot expand input more than about 1032:1, so a gzip file of
/// `n` bytes decompresses to at most this many: a bound on what a header
/// may make us allocate before the data is seen.
fn max_inflated_len(compressed_len: usize) -> u64 {
    (compressed_len as u64).saturating_mul(1032)
}

/// Fills `buf` from `r` as far as the stream allows; returns the bytes read
/// (less than `buf.len()` only at the end of the stream).
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
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
enum GzMode {
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
fn read_gz<T: Voxel>(
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

/// Reads a NIfTI file already held in memory (gzipped or not). `path` only
/// names the source in errors. This is the entry point of the fuzz target.
pub fn read_bytes<T: Voxel>(path: &Path, bytes: &[u8], opts: &ReadOptions) -> Result<Volume<T>> {
    if bytes.starts_with(&GZIP_MAGIC) {
        return read_gz(path, bytes, opts, GzMode::Auto);
    }
    let info = parse_header(path, bytes)?;
    let plan = volume_range(path, &info, bytes.len() as u64, opts)?;
    let start = plan.start as usize;
    into_volume(path, &info, &bytes[start..start + plan.len])
}

/// [`read_bytes`], but a gzipped file is always inflated by the streaming
/// decoder, never whole: for tests and fuzzing, which check that both ways
/// give the same volume or the same error.
#[doc(hidden)]
pub fn read_bytes_streaming<T: Voxel>(
    path: &Path,
    bytes: &[u8],
    opts: &ReadOptions,
) -> Result<Volume<T>> {
    if bytes.starts_with(&GZIP_MAGIC) {
        return read_gz(path, bytes, opts, GzMode::Streaming);
    }
    read_bytes(path, bytes, opts)
}

/// The case name of a NIfTI path as the Decathlon layout uses it: the last
/// path component (split at `/` or `\\`) without one `.nii.gz` or `.nii`
/// suffix. `./imagesTr/liver_7.nii.gz` → `liver_7`.
pub fn case_name(path: &str) -> String {
    let file = path.rsplit(['/', '\\']).next().unwrap_or(path);
    file.strip_suffix(".nii.gz")
        .or_else(|| file.strip_suffix(".nii"))
        .unwrap_or(file)
        .to_string()
}

/// A CT as stored: unscaled int16 files stay int16 (half the memory, and
/// the first resampling can read them without a float copy); every other
/// type is read as float32 with its scaling applied.
#[derive(Clone, Debug)]
pub enum Ct {
    /// Stored int16 with no scaling (slope 1, intercept 0, or none).
    I16(Volume<i16>),
    /// Any other type, scaled.
    F32(Volume<f32>),
}

impl Ct {
    /// Voxels per axis.
    pub fn dims(&self) -> [usize; 3] {
        match self {
            Ct::I16(v) => v.dims(),
            Ct::F32(v) => v.dims(),
        }
    }

    /// Voxel-to-RAS affine.
    pub fn affine(&self) -> &crate::Affine {
        match self {
            Ct::I16(v) => v.affine(),
            Ct::F32(v) => v.affine(),
        }
    }

    /// A float32 copy of the CT.
    pub fn to_f32(&self) -> Volume<f32> {
        match self {
            Ct::I16(v) => v.map(f32::from),
            Ct::F32(v) => v.clone(),
        }
    }

    /// The CT as float32.
    pub fn into_f32(self) -> Volume<f32> {
        match self {
            Ct::I16(v) => v.map(f32::from),
            Ct::F32(v) => v,
        }
    }
}

/// Reads a CT, keeping unscaled int16 data as int16 ([`Ct::I16`]) and
/// reading every other type as float32.
pub fn read_ct(path: &Path, opts: &ReadOptions) -> Result<Ct> {
    let header = read_header(path)?;
    Ok(if header.datatype == 4 && header.scaling.is_none() {
        Ct::I16(read(path, opts)?)
    } else {
        Ct::F32(read(path, opts)?)
    })
}

/// Reads one 3-D volume from a NIfTI-1 or NIfTI-2 file, `.nii` or
/// `.nii.gz`, converting the scaled values to `T`.
///
/// Reading into `u8` or `i16` fails when a value would not survive the
/// conversion (a label file with 2.5 in it, CT with a fractional slope):
/// read as `f32` then. A 4-D file needs [`ReadOptions::volume`].
pub fn read<T: Voxel>(path: &Path, opts: &ReadOptions) -> Result<Volume<T>> {
    let mut file = crate::open_input(path)?;
    let file_len = file
        .metadata()
        .map_err(|e| Error::io(path, "cannot stat", e))?
        .len();
    let mut start = Vec::with_capacity(544);
    (&mut file)
        .take(544)
        .read_to_end(&mut start)
        .map_err(|e| Error::io(path, "cannot read", e))?;
    if start.starts_with(&GZIP_MAGIC) {
        // The whole compressed file, in a buffer sized from its length (and
        // backed by huge pages when large), plus anything appended since.
        let expected = usize::try_from(file_len).unwrap_or(0).max(start.len());
        let mut all = data::alloc_voxels::<u8>(expected);
        all[..start.len()].copy_from_slice(&start);
        let got = read_full(&mut file, &mut all[start.len()..])
            .map_err(|e| Error::io(path, "cannot read", e))?;
        all.truncate(start.len() + got);
        file.read_to_end(&mut all)
            .map_err(|e| Error::io(path, "cannot read", e))?;
        return read_bytes(path, &all, opts);
    }
    // Uncompressed: read just the requested volume, straight from the file.
    let info = parse_header(path, &start)?;
    let plan = volume_range(path, &info, file_len, opts)?;
    let voxels = read_voxels(path, &file, &info, &plan)?;
    wrap(path, &info, voxels)
}

/// Reads and converts the requested volume of an uncompressed file in
/// blocks spread over the rayon pool: each task reads its block with a
/// positioned read into a small reused buffer and converts it straight
/// into the output, so the raw data is never held whole (page-cache copies
/// of large files are memory-bound, and two threads copy faster than one).
fn read_voxels<T: Voxel>(
    path: &Path,
    file: &File,
    info: &NiftiHeaderInfo,
    plan: &Plan,
) -> Result<Vec<T>> {
    use rayon::prelude::*;
    use std::os::unix::fs::FileExt;
    const BLOCK: usize = 1 << 20;
    let size = header::datatype_info(info.datatype)
        .ok_or_else(|| unsupported_datatype(path, info))?
        .1;
    let layout = layout(info);
    let block_elems = BLOCK / size;
    let mut voxels = data::alloc_voxels::<T>(plan.len / size);
    let outcome: Vec<std::io::Result<Option<f64>>> = voxels
        .par_chunks_mut(block_elems)
        .enumerate()
        .map_init(Vec::new, |buf: &mut Vec<u8>, (n, out)| {
            buf.resize(out.len() * size, 0);
            file.read_exact_at(buf, plan.start + (n * block_elems * size) as u64)?;
            Ok(data::decode_into(buf, layout, out).err())
        })
        .collect();
    let mut first_bad = None;
    for r in outcome {
        match r {
            Err(e) => return Err(Error::io(path, "cannot read voxel data", e)),
            Ok(Some(bad)) if first_bad.is_none() => first_bad = Some(bad),
            Ok(_) => {}
        }
    }
    match first_bad {
        Some(bad) => Err(inexact_error::<T>(path, bad)),
        None => Ok(voxels),
    }
}

fn nifti_type_of(d: DType) -> (i16, i16) {
    match d {
        DType::Uint8 => (2, 8),
        DType::Int16 => (4, 16),
        DType::Float32 => (16, 32),
    }
}

/// Validates volumes to be written (one, or several stacked as the 4th
/// dimension) and serialises their NIfTI-1 header.
fn prepare<T: Voxel>(path: &Path, vols: &[&Volume<T>], opts: &WriteOptions) -> Result<[u8; 352]> {
    let first = vols
        .first()
        .ok_or_else(|| Error::request(path, "nothing to write"))?;
    for v in vols {
        if !v.same_grid(first, 0.0) {
            return Err(Error::request(path, "4-D volumes must share one grid"));
        }
    }
    let mut dims = first.dims().to_vec();
    if vols.len() > 1 {
        dims.push(vols.len());
    }
    check_storable(path, first.affine())?;
    let (datatype, bitpix) = nifti_type_of(T::DTYPE);
    header::write_nifti1_header(&header::Nifti1Out {
        dims: &dims,
        datatype,
        bitpix,
        affine: first.affine(),
        qform_code: opts.qform_code,
        sform_code: opts.sform_code,
        description: &opts.description,
        pixdim4: 1.0,
    })
    .map_err(|e| Error::request(path, e))
}

/// Appends bytes `start..end` of the uncompressed NIfTI stream (`hdr`, then
/// the volumes' voxels, little-endian) to `out`, encoding only the voxels
/// in that range. `start` and `end` past the header must fall on voxel
/// boundaries (the header is 352 bytes and blocks are multiples of 4).
fn stream_range<T: Voxel>(
    hdr: &[u8],
    vols: &[&Volume<T>],
    start: usize,
    end: usize,
    out: &mut Vec<u8>,
) {
    let size = data::stored_size::<T>();
    if start < hdr.len() {
        out.extend_from_slice(&hdr[start..end.min(hdr.len())]);
    }
    let (lo, hi) = (
        start.saturating_sub(hdr.len()),
        end.saturating_sub(hdr.len()),
    );
    let mut vol_start = 0;
    for v in vols {
        let vol_end = vol_start + v.len() * size;
        let (a, b) = (lo.max(vol_start), hi.min(vol_end));
        if a < b {
            data::encode_le_into(
                &v.data()[(a - vol_start) / size..(b - vol_start) / size],
                out,
            );
        }
        vol_start = vol_end;
    }
}

/// Writes volumes as a NIfTI-1 file, gzipped when `gz`, never holding the
/// whole uncompressed file: `.nii` is encoded and written 1 MiB at a time;
/// `.nii.gz` is cut into 8 MiB blocks of the uncompressed stream, each
/// encoded and compressed in parallel into its own gzip member (every gzip
/// reader — zlib, Python's gzip, nibabel, ITK, 3D Slicer — reads
/// concatenated members as one stream).
fn write_nifti<T: Voxel>(
    path: &Path,
    vols: &[&Volume<T>],
    gz: bool,
    opts: &WriteOptions,
) -> Result<()> {
    use rayon::prelude::*;
    let hdr = prepare(path, vols, opts)?;
    let total = hdr.len() + vols.iter().map(|v| v.len()).sum::<usize>() * data::stored_size::<T>();
    if !gz {
        const BLOCK: usize = 1 << 20;
        return write_file_atomic(path, opts.overwrite, |w| {
            let mut buf = Vec::with_capacity(BLOCK);
            for start in (0..total).step_by(BLOCK) {
                buf.clear();
                stream_range(&hdr, vols, start, (start + BLOCK).min(total), &mut buf);
                w.write_all(&buf)?;
            }
            Ok(())
        });
    }
    const BLOCK: usize = 8 << 20;
    let level = flate2::Compression::new(opts.compression_level.min(9));
    let members: Vec<Vec<u8>> = (0..total.div_ceil(BLOCK))
        .into_par_iter()
        .map(|n| {
            let (start, end) = (n * BLOCK, ((n + 1) * BLOCK).min(total));
            let mut raw = Vec::with_capacity(end - start);
            stream_range(&hdr, vols, start, end, &mut raw);
            let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(raw.len() / 2), level);
            // Writing to a Vec cannot fail.
            let _ = enc.write_all(&raw);
            enc.finish().unwrap_or_default()
        })
        .collect();
    write_file_atomic(path, opts.overwrite, |w| {
        members.iter().try_for_each(|m| w.write_all(m))
    })
}

/// NIfTI-1 stores the affine (sform rows, qform offsets and voxel sizes) as
/// float32. A volume read from NIfTI-2 (float64) can hold an affine that
/// overflows float32 or becomes singular when rounded to it; writing it
/// would produce a file that cannot be read back, so it is refused.
fn check_storable(path: &Path, affine: &Affine) -> Result<()> {
    let mut stored = *affine;
    for row in stored.0.iter_mut().take(3) {
        for v in row.iter_mut() {
            *v = f64::from(*v as f32);
        }
    }
    let zooms_fit = affine.spacing().iter().all(|&z| (z as f32).is_finite());
    if !stored.is_valid() || !zooms_fit {
        return Err(Error::request(
            path,
            format!(
                "affine {:?} cannot be stored in NIfTI-1's float32 fields (it overflows or becomes singular)",
                affine.0
            ),
        ));
    }
    Ok(())
}

/// Writes a volume as a single-file NIfTI-1 (`.nii`, or gzipped when the
/// name ends in `.gz`) with both qform and sform set from its affine, the
/// datatype of `T` and no scaling. The file is written atomically.
pub fn write<T: Voxel>(path: &Path, vol: &Volume<T>, opts: &WriteOptions) -> Result<()> {
    write_nifti(path, &[vol], is_gz_name(path), opts)
}

/// Writes several volumes on one grid as a 4-D NIfTI-1, volume `t` at
/// index `t` of the 4th dimension (class probabilities, for example).
pub fn write_4d<T: Voxel>(path: &Path, vols: &[&Volume<T>], opts: &WriteOptions) -> Result<()> {
    write_nifti(path, vols, is_gz_name(path), opts)
}

/// The geometry-only affine of a header, for callers that need it without
/// the voxels (for example to compare grids).
pub fn read_affine(path: &Path) -> Result<Affine> {
    Ok(read_header(path)?.affine)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_names_drop_one_nifti_suffix() {
        assert_eq!(case_name("./imagesTr/liver_7.nii.gz"), "liver_7");
        assert_eq!(case_name("C:\\data\\a.nii"), "a");
        assert_eq!(case_name("b"), "b");
        assert_eq!(case_name("x.nii.gz.nii.gz"), "x.nii.gz");
        assert_eq!(case_name("scan.gz"), "scan.gz");
    }

    fn gz(raw: &[u8], members: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for part in raw.chunks(raw.len().div_ceil(members).max(1)) {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(part).unwrap();
            out.extend(enc.finish().unwrap());
        }
        out
    }

    /// A NIfTI-1 byte stream of `vols` volumes of `dims`, int16 values from
    /// `value(i)`, with `ext` extension bytes between header and data.
    fn nii(dims: [usize; 3], vols: usize, ext: usize, value: impl Fn(usize) -> i16) -> Vec<u8> {
        let n = dims.iter().product::<usize>();
        let v = Volume::new(dims, Affine::identity(), vec![0i16; n]).unwrap();
        let refs: Vec<&Volume<i16>> = (0..vols).map(|_| &v).collect();
        let hdr = prepare(Path::new("t.nii"), &refs, &WriteOptions::default()).unwrap();
        let mut raw = Vec::new();
        stream_range(&hdr, &refs, 0, 352 + vols * n * 2, &mut raw);
        for (i, c) in raw[352..].chunks_exact_mut(2).enumerate() {
            c.copy_from_slice(&value(i).to_le_bytes());
        }
        if ext > 0 {
            raw[108..112].copy_from_slice(&((352 + ext) as f32).to_le_bytes());
            raw.splice(352..352, std::iter::repeat_n(7u8, ext));
        }
        raw
    }

    fn outcome<T: Voxel>(
        bytes: &[u8],
        opts: &ReadOptions,
    ) -> std::result::Result<Volume<T>, String> {
        read_bytes::<T>(Path::new("t.nii"), bytes, opts).map_err(|e| e.to_string())
    }

    fn gz_outcome<T: Voxel>(
        bytes: &[u8],
        opts: &ReadOptions,
        mode: GzMode,
    ) -> std::result::Result<Volume<T>, String> {
        if !bytes.starts_with(&GZIP_MAGIC) {
            return outcome(bytes, opts);
        }
        read_gz::<T>(Path::new("t.nii"), bytes, opts, mode).map_err(|e| e.to_string())
    }

    /// The gzip reader, whichever way it inflates, gives what reading the
    /// inflated bytes gives.
    fn assert_same(raw: &[u8], members: usize, opts: &ReadOptions) {
        let gz = gz(raw, members);
        assert_eq!(outcome::<f32>(&gz, opts), outcome::<f32>(raw, opts));
        assert_eq!(outcome::<i16>(&gz, opts), outcome::<i16>(raw, opts));
        assert_eq!(outcome::<u8>(&gz, opts), outcome::<u8>(raw, opts));
        let streamed = gz_outcome::<f32>(&gz, opts, GzMode::Streaming);
        assert_eq!(streamed, outcome::<f32>(raw, opts));
        let streamed = gz_outcome::<u8>(&gz, opts, GzMode::Streaming);
        assert_eq!(streamed, outcome::<u8>(raw, opts));
    }

    /// Reads `gz` inflated whole (which must be possible) and streaming:
    /// both give `expected`.
    fn assert_whole_matches_streaming<T: Voxel>(
        gz: &[u8],
        opts: &ReadOptions,
        expected: &std::result::Result<Volume<T>, String>,
    ) {
        assert_eq!(&gz_outcome::<T>(gz, opts, GzMode::WholeOnly), expected);
        assert_eq!(&gz_outcome::<T>(gz, opts, GzMode::Streaming), expected);
        assert_eq!(&gz_outcome::<T>(gz, opts, GzMode::Auto), expected);
    }

    /// `gz` is not inflated whole, and reads (or fails) as streaming does.
    fn assert_falls_back(gz: &[u8], opts: &ReadOptions) {
        let declined = gz_outcome::<f32>(gz, opts, GzMode::WholeOnly);
        assert!(
            declined
                .as_ref()
                .is_err_and(|e| e.contains("not inflated whole") || e.contains("gzip")),
            "{declined:?}"
        );
        let streamed = gz_outcome::<f32>(gz, opts, GzMode::Streaming);
        assert_eq!(gz_outcome::<f32>(gz, opts, GzMode::Auto), streamed);
        let streamed = gz_outcome::<u8>(gz, opts, GzMode::Streaming);
        assert_eq!(gz_outcome::<u8>(gz, opts, GzMode::Auto), streamed);
    }

    /// `gz` (one member) with FHCRC set and a header CRC inserted, correct
    /// or not.
    fn with_header_crc(gz: &[u8], correct: bool) -> Vec<u8> {
        let mut out = gz[..10].to_vec();
        out[3] |= 1 << 1;
        let mut crc = flate2::Crc::new();
        crc.update(&out);
        let crc16 = crc.sum() as u16 ^ u16::from(!correct);
        out.extend_from_slice(&crc16.to_le_bytes());
        out.extend_from_slice(&gz[10..]);
        out
    }

    /// Inflates `gz` with flate2 and plans the read of volume `t`.
    fn plan_of(gz: &[u8], t: Option<usize>) -> (NiftiHeaderInfo, Plan, u64) {
        let mut raw = Vec::new();
        flate2::read::MultiGzDecoder::new(gz)
            .read_to_end(&mut raw)
            .unwrap();
        let info = parse_header(Path::new("t.nii"), &raw).unwrap();
        let plan = volume_plan(Path::new("t.nii"), &info, &ReadOptions { volume: t }).unwrap();
        let end = plan.data_start + plan.total;
        (info, plan, end)
    }

    #[test]
    fn files_of_the_read_type_inflate_straight_into_the_voxels() {
        let dir = tempfile::tempdir().unwrap();
        let dims = [70, 60, 50];
        let n = dims.iter().product::<usize>();
        let one = ReadOptions::default();
        // Each type read as itself: inflated in place, the same volume as
        // streaming gives.
        fn check<T: Voxel>(dir: &Path, vol: &Volume<T>, name: &str) {
            let path = dir.join(name);
            write(&path, vol, &WriteOptions::default()).unwrap();
            let gz = std::fs::read(&path).unwrap();
            let (info, plan, end) = plan_of(&gz, None);
            let voxels = inflate_in_place::<T>(&gz, end, &info, &plan).expect("in place");
            assert_eq!(voxels, vol.data());
            let expected = Ok(vol.clone());
            assert_whole_matches_streaming(&gz, &ReadOptions::default(), &expected);
        }
        let u8s = (0..n).map(|i| (i % 251) as u8).collect();
        check(
            dir.path(),
            &Volume::new(dims, Affine::identity(), u8s).unwrap(),
            "u.nii.gz",
        );
        let i16s = (0..n).map(|i| (i % 3001) as i16 - 1500).collect();
        check(
            dir.path(),
            &Volume::new(dims, Affine::identity(), i16s).unwrap(),
            "i.nii.gz",
        );
        let f32s = (0..n).map(|i| i as f32 * 0.25 - 7.5).collect();
        check(
            dir.path(),
            &Volume::new(dims, Affine::identity(), f32s).unwrap(),
            "f.nii.gz",
        );
        // Another type: not in place (the conversion path reads it).
        let int16 = std::fs::read(dir.path().join("i.nii.gz")).unwrap();
        let (info, plan, end) = plan_of(&int16, None);
        assert!(inflate_in_place::<f32>(&int16, end, &info, &plan).is_none());
        assert!(gz_outcome::<f32>(&int16, &one, GzMode::WholeOnly).is_ok());
        // A later volume of a 4-D int16 file behind an extension: moved to
        // the front of the buffer.
        let raw = nii([40, 30, 20], 3, 48, |i| (i % 911) as i16 - 400);
        let gz4 = gz(&raw, 2);
        for t in 0..3 {
            let opts = ReadOptions { volume: Some(t) };
            let (info, plan, end) = plan_of(&gz4, Some(t));
            assert!(inflate_in_place::<i16>(&gz4, end, &info, &plan).is_some());
            let expected = outcome::<i16>(&raw, &opts);
            assert!(expected.is_ok());
            assert_whole_matches_streaming(&gz4, &opts, &expected);
        }
        // A damaged stream is not read in place (streaming reports it).
        let mut bad = gz4.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 0xff;
        let (info, plan, end) = plan_of(&gz4, Some(0));
        assert!(inflate_in_place::<i16>(&bad, end, &info, &plan).is_none());
    }

    #[test]
    fn whole_file_inflate_matches_streaming() {
        let one = ReadOptions::default();
        let raw = nii([300, 70, 30], 1, 0, |i| (i % 5000) as i16 - 1000);
        let expected = outcome::<f32>(&raw, &one);
        assert!(expected.is_ok());
        // One member (as nibabel writes), several, and an empty last one.
        for members in [1, 3, 17] {
            assert_whole_matches_streaming(&gz(&raw, members), &one, &expected);
        }
        let mut with_empty = gz(&raw, 2);
        with_empty.extend(gz(&[], 1));
        assert_whole_matches_streaming(&with_empty, &one, &expected);
        // A file written by our writer: 8 MiB members.
        let dims = [256, 256, 80];
        let n = dims.iter().product::<usize>();
        let data = (0..n).map(|i| (i % 3001) as i16 - 1500).collect();
        let vol = Volume::new(dims, Affine::identity(), data).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.nii.gz");
        write(&path, &vol, &WriteOptions::default()).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.len() > 20 && gz_members(&bytes) > 1);
        let expected = Ok(vol.clone());
        assert_whole_matches_streaming(&bytes, &one, &expected);
        let expected = outcome::<f32>(&bytes, &one);
        assert!(expected.is_ok());
        assert_whole_matches_streaming(&bytes, &one, &expected);
        // An extension and a later volume of a 4-D file.
        let raw = nii([90, 80, 70], 3, 48, |i| (i % 7) as i16);
        for t in 0..3 {
            let opts = ReadOptions { volume: Some(t) };
            let expected = outcome::<u8>(&raw, &opts);
            assert!(expected.is_ok());
            assert_whole_matches_streaming(&gz(&raw, 4), &opts, &expected);
        }
        // An inexact value near the end: the same error either way.
        let mut late = nii([200, 100, 60], 1, 0, |i| (i % 100) as i16);
        let at = late.len() - 6;
        late[at..at + 2].copy_from_slice(&300i16.to_le_bytes());
        let expected = outcome::<u8>(&late, &one);
        assert!(expected.as_ref().is_err_and(|e| e.contains("300")));
        assert_whole_matches_streaming(&gz(&late, 1), &one, &expected);
    }

    /// Number of gzip members in a stream.
    fn gz_members(mut bytes: &[u8]) -> usize {
        let mut members = 0;
        while !bytes.is_empty() {
            let mut member = flate2::bufread::GzDecoder::new(bytes);
            std::io::copy(&mut member, &mut std::io::sink()).unwrap();
            bytes = member.into_inner();
            members += 1;
        }
        members
    }

    #[test]
    fn whole_file_inflate_falls_back_with_the_same_errors() {
        let one = ReadOptions::default();
        let raw = nii([200, 100, 60], 1, 0, |i| (i % 100) as i16);
        for members in [1, 3] {
            let good = gz(&raw, members);
            // Truncated anywhere, in the data or the trailer.
            for keep in [good.len() / 2, good.len() - 9, good.len() - 3] {
                let cut = &good[..keep];
                assert_falls_back(cut, &one);
                let e = gz_outcome::<f32>(cut, &one, GzMode::Auto).unwrap_err();
                assert!(e.contains("gzip stream is corrupt or truncated"), "{e}");
            }
            // Trailing garbage, a flipped byte in the data, a bad CRC-32.
            let mut trailing = good.clone();
            trailing.extend_from_slice(b"garbage after the last member");
            let mut flipped = good.clone();
            let mid = flipped.len() * 3 / 4;
            flipped[mid] ^= 0x55;
            let mut bad_crc = good.clone();
            let at = bad_crc.len() - 7;
            bad_crc[at] ^= 1;
            for bytes in [trailing, flipped, bad_crc] {
                assert_falls_back(&bytes, &one);
                let e = gz_outcome::<f32>(&bytes, &one, GzMode::Auto).unwrap_err();
                assert!(e.contains("gzip stream is corrupt or truncated"), "{e}");
            }
        }
        // Less voxel data than the header announces (a valid gzip of a
        // truncated file), and more (extra bytes after the data, which the
        // streaming reader accepts).
        let short = gz(&raw[..raw.len() - 10], 2);
        assert_falls_back(&short, &one);
        let e = gz_outcome::<f32>(&short, &one, GzMode::Auto).unwrap_err();
        assert!(e.contains("voxel data has"), "{e}");
        let long = gz(&[&raw[..], b"tail"].concat(), 2);
        assert_falls_back(&long, &one);
        assert_eq!(
            gz_outcome::<f32>(&long, &one, GzMode::Auto),
            outcome::<f32>(&raw, &one)
        );
        // A member with a header CRC, which libdeflate would not check:
        // left to flate2, which reads a correct one and rejects a wrong one.
        let single = gz(&raw, 1);
        let good_hcrc = with_header_crc(&single, true);
        assert_falls_back(&good_hcrc, &one);
        assert_eq!(
            gz_outcome::<f32>(&good_hcrc, &one, GzMode::Auto),
            outcome::<f32>(&raw, &one)
        );
        let bad_hcrc = with_header_crc(&single, false);
        assert_falls_back(&bad_hcrc, &one);
        let e = gz_outcome::<f32>(&bad_hcrc, &one, GzMode::Auto).unwrap_err();
        assert!(e.contains("gzip stream is corrupt or truncated"), "{e}");
    }

    #[test]
    fn one_volume_of_a_large_4d_file_is_streamed() {
        let plan = |len: usize, total: u64| Plan {
            data_start: 352,
            total,
            start: 352,
            len,
        };
        let mib = 1u64 << 20;
        // Small files: always whole.
        assert!(worth_inflating_whole(
            &plan(1000, 40 * 1000),
            352 + 40 * 1000
        ));
        assert!(worth_inflating_whole(&plan(1, 60 * mib), 352 + 60 * mib));
        // A large 3-D file, and one volume of two.
        let vol = 100 * mib as usize;
        assert!(worth_inflating_whole(
            &plan(vol, 100 * mib),
            352 + 100 * mib
        ));
        assert!(worth_inflating_whole(
            &plan(vol, 200 * mib),
            352 + 200 * mib
        ));
        // One volume of three large ones: streamed.
        assert!(!worth_inflating_whole(
            &plan(vol, 300 * mib),
            352 + 300 * mib
        ));
    }

    #[test]
    fn gzip_streaming_matches_plain_reading() {
        let one = ReadOptions::default();
        // Several conversion blocks, one or many gzip members.
        let raw = nii([300, 70, 30], 1, 0, |i| (i % 5000) as i16 - 1000);
        for members in [1, 3, 17] {
            assert_same(&raw, members, &one);
        }
        // uint8-compatible values, so reading as u8 succeeds too.
        assert_same(&nii([64, 64, 40], 1, 0, |i| (i % 200) as i16), 4, &one);
        // An extension before the data, and a later volume of a 4-D file.
        let raw = nii([90, 80, 70], 3, 48, |i| (i % 7) as i16);
        for t in 0..3 {
            assert_same(&raw, 5, &ReadOptions { volume: Some(t) });
        }
        assert_same(&raw, 2, &one); // 4-D without a volume index
        assert_same(&raw, 2, &ReadOptions { volume: Some(3) });
        // A tiny volume inside the header's first 544 bytes.
        assert_same(&nii([2, 3, 4], 1, 0, |i| i as i16), 1, &one);
    }

    #[test]
    fn gzip_streaming_reports_errors_like_plain_reading() {
        let one = ReadOptions::default();
        let raw = nii([200, 100, 60], 1, 0, |i| (i % 100) as i16);
        // Data cut short: the length error, whether the cut is in the first
        // block, a later one or the header.
        for keep in [
            400,
            352 + GZ_BLOCK + 5,
            352 + 2 * GZ_BLOCK - 3,
            raw.len() - 1,
            100,
        ] {
            assert_same(&raw[..keep], 2, &one);
        }
        // A value that does not fit u8 near the end.
        let mut late = raw.clone();
        let at = late.len() - 6;
        late[at..at + 2].copy_from_slice(&300i16.to_le_bytes());
        assert_same(&late, 3, &one);
        // Not a NIfTI file at all.
        assert_same(&[0u8; 1000], 1, &one);
        assert_same(&[], 1, &one);
    }

    #[test]
    fn damaged_gzip_fails_as_such() {
        let raw = nii([200, 100, 60], 1, 0, |i| (i % 100) as i16);
        let good = gz(&raw, 3);
        let mut cases = vec![
            good[..good.len() / 2].to_vec(),
            good[..good.len() - 3].to_vec(),
        ];
        let mut trailing = good.clone();
        trailing.extend_from_slice(b"garbage after the last member");
        cases.push(trailing);
        let mut flipped = good.clone();
        let mid = flipped.len() * 3 / 4;
        flipped[mid] ^= 0x55;
        cases.push(flipped);
        for bytes in cases {
            let e = outcome::<f32>(&bytes, &ReadOptions::default()).unwrap_err();
            assert!(e.contains("gzip stream is corrupt or truncated"), "{e}");
        }
    }

    #[test]
    fn huge_dims_in_a_tiny_gzip_do_not_allocate() {
        let mut raw = nii([2, 2, 2], 1, 0, |_| 1);
        // dim[1..4] = 32767: 70 TB of int16 announced by a ~100-byte file.
        for i in 1..4 {
            raw[40 + 2 * i..42 + 2 * i].copy_from_slice(&32767i16.to_le_bytes());
        }
        let e = outcome::<f32>(&gz(&raw, 1), &ReadOptions::default()).unwrap_err();
        assert!(e.contains("voxel data has 16 bytes"), "{e}");
    }

    #[test]
    fn written_blocks_cover_every_volume_exactly() {
        // 4-D float32 large enough for several 8 MiB gzip members, with
        // member boundaries falling inside volumes.
        let dims = [160, 128, 45];
        let n = dims.iter().product::<usize>();
        let vols: Vec<Volume<f32>> = (0..3)
            .map(|t| {
                let data = (0..n).map(|i| (i * 3 + t * 1000) as f32 * 0.5).collect();
                Volume::new(dims, Affine::identity(), data).unwrap()
            })
            .collect();
        let refs: Vec<&Volume<f32>> = vols.iter().collect();
        let dir = tempfile::tempdir().unwrap();
        for name in ["v.nii", "v.nii.gz"] {
            let path = dir.path().join(name);
            write_4d(&path, &refs, &WriteOptions::default()).unwrap();
            for (t, v) in vols.iter().enumerate() {
                let back: Volume<f32> = read(&path, &ReadOptions { volume: Some(t) }).unwrap();
                assert_eq!(back.data(), v.data(), "{name} volume {t}");
            }
        }
    }

    #[test]
    fn absurd_vox_offset_with_a_later_volume_is_an_error() {
        let mut raw = nii([2, 2, 2], 2, 0, |i| i as i16);
        raw[108..112].copy_from_slice(&1e30f32.to_le_bytes());
        let opts = ReadOptions { volume: Some(1) };
        for bytes in [raw.clone(), gz(&raw, 1)] {
            let e = outcome::<f32>(&bytes, &opts).unwrap_err();
            assert!(e.contains("volume too large"), "{e}");
        }
        // The first volume does not overflow: the data is simply missing.
        let e = outcome::<f32>(&raw, &ReadOptions { volume: Some(0) }).unwrap_err();
        assert!(e.contains("voxel data has 0 bytes"), "{e}");
    }
}
