//! Parsing and validating a NIfTI header, and locating the requested volume
//! in the data block, checked against the file's length and the memory
//! budget before anything is allocated for it.

use super::{GZIP_MAGIC, NiftiHeaderInfo, ReadOptions, header, nifti2};
use crate::{Affine, Error, Result};
use std::io::Read;
use std::path::Path;

/// Parses and validates the header at the start of `bytes`.
pub(super) fn parse_header(path: &Path, bytes: &[u8]) -> Result<NiftiHeaderInfo> {
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

/// The geometry-only affine of a header, for callers that need it without
/// the voxels (for example to compare grids).
pub fn read_affine(path: &Path) -> Result<Affine> {
    Ok(read_header(path)?.affine)
}

/// Where the requested volume lies in the decompressed file.
#[derive(Clone, Copy, Debug)]
pub(super) struct Plan {
    /// Offset of the first voxel of the data block.
    pub(super) data_start: u64,
    /// Bytes of voxel data the header announces (all volumes).
    pub(super) total: u64,
    /// Offset of the requested volume.
    pub(super) start: u64,
    /// Its length in bytes.
    pub(super) len: usize,
}

/// Checks the volume request against the header and locates the volume.
pub(super) fn volume_plan(path: &Path, info: &NiftiHeaderInfo, opts: &ReadOptions) -> Result<Plan> {
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
pub(super) fn check_budget(path: &Path, info: &NiftiHeaderInfo, plan: &Plan) -> Result<()> {
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
pub(super) fn check_length(path: &Path, plan: &Plan, file_len: u64) -> Result<()> {
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
pub(super) fn volume_range(
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

#[cfg(test)]
mod tests {
    use super::super::test_support::{gz, nii, outcome};
    use super::*;

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
