//! NIfTI byte streams built in memory for the readers' tests: NIfTI-1 files
//! of chosen shape, volumes and extension, their gzip, and the outcome of
//! reading them.

use super::writer::{prepare, stream_range};
use super::{ReadOptions, WriteOptions, read_bytes};
use crate::{Affine, Volume, Voxel};
use std::io::Write;
use std::path::Path;

pub(super) fn gz(raw: &[u8], members: usize) -> Vec<u8> {
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
pub(super) fn nii(
    dims: [usize; 3],
    vols: usize,
    ext: usize,
    value: impl Fn(usize) -> i16,
) -> Vec<u8> {
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

pub(super) fn outcome<T: Voxel>(
    bytes: &[u8],
    opts: &ReadOptions,
) -> std::result::Result<Volume<T>, String> {
    read_bytes::<T>(Path::new("t.nii"), bytes, opts).map_err(|e| e.to_string())
}
