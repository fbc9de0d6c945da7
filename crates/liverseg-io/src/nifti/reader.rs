//! Reading a NIfTI file into a volume: the entry points, and uncompressed
//! data read in parallel blocks straight from the file.

use super::convert::{inexact_error, into_volume, layout, unsupported_datatype, wrap};
use super::gz::{GzMode, read_full, read_gz};
use super::locate::{Plan, parse_header, volume_range};
use super::{GZIP_MAGIC, NiftiHeaderInfo, ReadOptions, data, header};
use crate::{Error, Result, Volume, Voxel};
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// A NIfTI file opened once: a `.nii.gz` held whole in memory, or a `.nii`
/// with its first bytes read and its descriptor kept for the voxels.
pub(super) enum Opened {
    /// The whole compressed file.
    Gz(Vec<u8>),
    /// The file, its first (up to) 544 bytes and its length.
    Plain {
        file: File,
        start: Vec<u8>,
        len: u64,
    },
}

/// Opens `path` for reading its header and voxels without a second open.
pub(super) fn open(path: &Path) -> Result<Opened> {
    let mut file = crate::open_input(path)?;
    let len = file
        .metadata()
        .map_err(|e| Error::io(path, "cannot stat", e))?
        .len();
    let mut start = Vec::with_capacity(544);
    (&mut file)
        .take(544)
        .read_to_end(&mut start)
        .map_err(|e| Error::io(path, "cannot read", e))?;
    if !start.starts_with(&GZIP_MAGIC) {
        return Ok(Opened::Plain { file, start, len });
    }
    // The whole compressed file, in a buffer sized from its length (and
    // backed by huge pages when large), plus anything appended since.
    let expected = usize::try_from(len).unwrap_or(0).max(start.len());
    let mut all = data::alloc_voxels::<u8>(expected);
    all[..start.len()].copy_from_slice(&start);
    let got = read_full(&mut file, &mut all[start.len()..])
        .map_err(|e| Error::io(path, "cannot read", e))?;
    all.truncate(start.len() + got);
    file.read_to_end(&mut all)
        .map_err(|e| Error::io(path, "cannot read", e))?;
    Ok(Opened::Gz(all))
}

/// The header of an opened file (for a `.nii.gz`, from inflating just its
/// start in memory).
pub(super) fn header_of(path: &Path, opened: &Opened) -> Result<NiftiHeaderInfo> {
    match opened {
        Opened::Plain { start, .. } => parse_header(path, start),
        Opened::Gz(all) => {
            let mut head = Vec::with_capacity(544);
            flate2::bufread::MultiGzDecoder::new(all.as_slice())
                .take(544)
                .read_to_end(&mut head)
                .map_err(|e| Error::invalid(path, format!("gzip stream is corrupt: {e}")))?;
            parse_header(path, &head)
        }
    }
}

/// Reads the requested volume of an opened file as `T`.
pub(super) fn read_opened<T: Voxel>(
    path: &Path,
    opened: Opened,
    opts: &ReadOptions,
) -> Result<Volume<T>> {
    match opened {
        Opened::Gz(all) => read_bytes(path, &all, opts),
        Opened::Plain { file, start, len } => {
            // Uncompressed: read just the requested volume, straight from
            // the file.
            let info = parse_header(path, &start)?;
            let plan = volume_range(path, &info, len, opts)?;
            let voxels = read_voxels(path, &file, &info, &plan)?;
            wrap(path, &info, voxels)
        }
    }
}

/// Reads one 3-D volume from a NIfTI-1 or NIfTI-2 file, `.nii` or
/// `.nii.gz`, converting the scaled values to `T`.
///
/// Reading into `u8` or `i16` fails when a value would not survive the
/// conversion (a label file with 2.5 in it, CT with a fractional slope):
/// read as `f32` then. A 4-D file needs [`ReadOptions::volume`].
pub fn read<T: Voxel>(path: &Path, opts: &ReadOptions) -> Result<Volume<T>> {
    read_opened(path, open(path)?, opts)
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
    const BLOCK: usize = 1 << 17;
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
