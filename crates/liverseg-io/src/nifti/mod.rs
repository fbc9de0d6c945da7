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
pub mod nifti2;

pub use header::{AffineSource, NiftiHeaderInfo};

use crate::{Affine, DType, Error, Overwrite, Result, Volume, Voxel, write_file_atomic};
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

/// Options for [`read`].
#[derive(Clone, Debug, Default)]
pub struct ReadOptions {
    /// Which 3-D volume of a 4-D (or higher) file to read, counting from 0.
    /// A file with more than one volume is an error unless this is set.
    pub volume: Option<usize>,
}

/// Options for [`write`].
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

/// Decompresses a whole gzip file held in memory. Concatenated gzip members
/// (as written by parallel compressors) are read as one stream.
fn gunzip(path: &Path, compressed: &[u8]) -> Result<Vec<u8>> {
    // The gzip trailer holds the uncompressed size modulo 2³²: a good
    // capacity hint for files under 4 GiB, and harmless otherwise.
    let hint = compressed
        .len()
        .checked_sub(4)
        .map(|at| u32::from_le_bytes(compressed[at..].try_into().unwrap_or([0; 4])) as usize)
        .unwrap_or(0);
    let mut out = Vec::with_capacity(hint.min(compressed.len().saturating_mul(1032)));
    flate2::read::MultiGzDecoder::new(compressed)
        .read_to_end(&mut out)
        .map_err(|e| Error::invalid(path, format!("gzip stream is corrupt or truncated: {e}")))?;
    Ok(out)
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
    let mut file = File::open(path).map_err(|e| Error::io(path, "cannot open", e))?;
    let mut start = Vec::with_capacity(544);
    (&mut file)
        .take(544)
        .read_to_end(&mut start)
        .map_err(|e| Error::io(path, "cannot read", e))?;
    if start.starts_with(&GZIP_MAGIC) {
        let file = File::open(path).map_err(|e| Error::io(path, "cannot open", e))?;
        let mut head = Vec::with_capacity(544);
        flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file))
            .take(544)
            .read_to_end(&mut head)
            .map_err(|e| Error::invalid(path, format!("gzip stream is corrupt: {e}")))?;
        return parse_header(path, &head);
    }
    parse_header(path, &start)
}

/// The byte range of the requested volume inside the data block, after
/// checking the request and the file length.
fn volume_range(
    path: &Path,
    info: &NiftiHeaderInfo,
    file_len: u64,
    opts: &ReadOptions,
) -> Result<(u64, usize)> {
    let size = header::datatype_info(info.datatype).map_or(1, |d| d.1);
    let nvol = info.volume_count();
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
    let have = file_len.saturating_sub(data_start);
    if have < total {
        return Err(Error::invalid(
            path,
            format!("voxel data has {have} bytes, {total} expected"),
        ));
    }
    Ok((data_start + t as u64 * per_vol as u64, per_vol))
}

fn into_volume<T: Voxel>(path: &Path, info: &NiftiHeaderInfo, raw: &[u8]) -> Result<Volume<T>> {
    if let Some(bad) = data::first_inexact::<T>(raw, info.datatype, info.big_endian, info.scaling) {
        return Err(Error::request(
            path,
            format!(
                "value {bad} cannot be stored as {} without loss; read the file as float32",
                T::DTYPE.name()
            ),
        ));
    }
    let voxels = data::decode::<T>(raw, info.datatype, info.big_endian, info.scaling)
        .ok_or_else(|| Error::unsupported(path, format!("NIfTI datatype {}", info.datatype)))?;
    let d = |i: usize| info.dims.get(i).copied().unwrap_or(1);
    Volume::new([d(0), d(1), d(2)], info.affine, voxels)
        .map_err(|e| Error::invalid(path, e.to_string()))
}

/// Reads a NIfTI file already held in memory (gzipped or not). `path` only
/// names the source in errors. This is the entry point of the fuzz target.
pub fn read_bytes<T: Voxel>(path: &Path, bytes: &[u8], opts: &ReadOptions) -> Result<Volume<T>> {
    let owned;
    let bytes = if bytes.starts_with(&GZIP_MAGIC) {
        owned = gunzip(path, bytes)?;
        &owned[..]
    } else {
        bytes
    };
    let info = parse_header(path, bytes)?;
    let (start, len) = volume_range(path, &info, bytes.len() as u64, opts)?;
    into_volume(path, &info, &bytes[start as usize..start as usize + len])
}

/// Reads one 3-D volume from a NIfTI-1 or NIfTI-2 file, `.nii` or
/// `.nii.gz`, converting the scaled values to `T`.
///
/// Reading into `u8` or `i16` fails when a value would not survive the
/// conversion (a label file with 2.5 in it, CT with a fractional slope):
/// read as `f32` then. A 4-D file needs [`ReadOptions::volume`].
pub fn read<T: Voxel>(path: &Path, opts: &ReadOptions) -> Result<Volume<T>> {
    let mut file = File::open(path).map_err(|e| Error::io(path, "cannot open", e))?;
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
        let mut all = start;
        file.read_to_end(&mut all)
            .map_err(|e| Error::io(path, "cannot read", e))?;
        return read_bytes(path, &all, opts);
    }
    // Uncompressed: read just the requested volume, straight from the file.
    let info = parse_header(path, &start)?;
    let (offset, len) = volume_range(path, &info, file_len, opts)?;
    let raw = read_range(path, &file, offset, len)?;
    into_volume(path, &info, &raw)
}

/// Reads `len` bytes at `offset` with positioned reads spread over the
/// rayon pool (page-cache copies of large files are memory-bound, and two
/// threads copy faster than one).
fn read_range(path: &Path, file: &File, offset: u64, len: usize) -> Result<Vec<u8>> {
    use rayon::prelude::*;
    use std::os::unix::fs::FileExt;
    const BLOCK: usize = 4 << 20;
    let mut buf = vec![0u8; len];
    buf.par_chunks_mut(BLOCK)
        .enumerate()
        .try_for_each(|(n, chunk)| file.read_exact_at(chunk, offset + (n * BLOCK) as u64))
        .map_err(|e| Error::io(path, "cannot read voxel data", e))?;
    Ok(buf)
}

fn nifti_type_of(d: DType) -> (i16, i16) {
    match d {
        DType::Uint8 => (2, 8),
        DType::Int16 => (4, 16),
        DType::Float32 => (16, 32),
    }
}

/// Serialises volumes (one, or several stacked as the 4th dimension) as a
/// NIfTI-1 byte stream, gzipped when `gz`.
fn encode<T: Voxel>(
    path: &Path,
    vols: &[&Volume<T>],
    gz: bool,
    opts: &WriteOptions,
) -> Result<Vec<u8>> {
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
    let (datatype, bitpix) = nifti_type_of(T::DTYPE);
    let hdr = header::write_nifti1_header(&header::Nifti1Out {
        dims: &dims,
        datatype,
        bitpix,
        affine: first.affine(),
        qform_code: opts.qform_code,
        sform_code: opts.sform_code,
        description: &opts.description,
        pixdim4: 1.0,
    })
    .map_err(|e| Error::request(path, e))?;
    let payload: usize = vols.iter().map(|v| v.len()).sum::<usize>() * (bitpix as usize / 8);
    let mut raw = Vec::with_capacity(352 + payload);
    raw.extend_from_slice(&hdr);
    for v in vols {
        raw.extend_from_slice(&data::encode_le(v.data()));
    }
    if !gz {
        return Ok(raw);
    }
    Ok(gzip_parallel(&raw, opts.compression_level))
}

/// gzip-compresses `raw` as concatenated members, one per block, compressed
/// in parallel. Every gzip reader (zlib, Python's gzip, nibabel, ITK, 3D
/// Slicer) reads concatenated members as one stream.
fn gzip_parallel(raw: &[u8], level: u32) -> Vec<u8> {
    use rayon::prelude::*;
    const BLOCK: usize = 8 << 20;
    let level = flate2::Compression::new(level.min(9));
    let parts: Vec<Vec<u8>> = raw
        .par_chunks(BLOCK)
        .map(|chunk| {
            let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(chunk.len() / 2), level);
            // Writing to a Vec cannot fail.
            let _ = enc.write_all(chunk);
            enc.finish().unwrap_or_default()
        })
        .collect();
    parts.concat()
}

/// Writes a volume as a single-file NIfTI-1 (`.nii`, or gzipped when the
/// name ends in `.gz`) with both qform and sform set from its affine, the
/// datatype of `T` and no scaling. The file is written atomically.
pub fn write<T: Voxel>(path: &Path, vol: &Volume<T>, opts: &WriteOptions) -> Result<()> {
    let bytes = encode(path, &[vol], is_gz_name(path), opts)?;
    write_file_atomic(path, opts.overwrite, |w| w.write_all(&bytes))
}

/// Writes several volumes on one grid as a 4-D NIfTI-1, volume `t` at
/// index `t` of the 4th dimension (class probabilities, for example).
pub fn write_4d<T: Voxel>(path: &Path, vols: &[&Volume<T>], opts: &WriteOptions) -> Result<()> {
    let bytes = encode(path, vols, is_gz_name(path), opts)?;
    write_file_atomic(path, opts.overwrite, |w| w.write_all(&bytes))
}

/// The geometry-only affine of a header, for callers that need it without
/// the voxels (for example to compare grids).
pub fn read_affine(path: &Path) -> Result<Affine> {
    Ok(read_header(path)?.affine)
}
