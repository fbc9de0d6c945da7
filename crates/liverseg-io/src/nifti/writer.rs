//! NIfTI-1 writing of one volume or a 4-D stack, `.nii` or `.nii.gz`,
//! encoded (and compressed) block by block without the whole file in
//! memory, and written atomically.

use super::{data, header};
use crate::{Affine, DType, Error, Overwrite, Result, Volume, Voxel, write_file_atomic};
use std::io::Write;
use std::path::Path;

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

fn is_gz_name(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"))
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
pub(super) fn prepare<T: Voxel>(
    path: &Path,
    vols: &[&Volume<T>],
    opts: &WriteOptions,
) -> Result<[u8; 352]> {
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
pub(super) fn stream_range<T: Voxel>(
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
        // The voxels' memory is their encoding (little-endian machines):
        // written as it is, with no copy.
        if vols.iter().all(|v| T::le_bytes(v.data()).is_some()) {
            return write_file_atomic(path, opts.overwrite, |w| {
                w.write_all(&hdr)?;
                for v in vols {
                    w.write_all(T::le_bytes(v.data()).unwrap_or_default())?;
                }
                Ok(())
            });
        }
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

#[cfg(test)]
mod tests {
    use super::super::{ReadOptions, read};
    use super::*;
    use crate::Affine;

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
}
