//! Value statistics of a whole NIfTI file, every volume of a 4-D one, in
//! one pass that holds one block of data at a time (`liverseg info`).
//!
//! Reading a 4-D `.nii.gz` volume by volume inflates the file once per
//! volume; here it is inflated once, and the volume count is checked
//! against what the file can hold before any work starts.

use super::convert::{layout, unsupported_datatype};
use super::gz::{GZ_BLOCK, max_inflated_len, read_full};
use super::locate::{check_budget, check_length, parse_header, volume_plan};
use super::{GZIP_MAGIC, NiftiHeaderInfo, ReadOptions, header};
use crate::{Error, Result, Stats};
use std::io::{BufReader, Read};
use std::path::Path;

/// The header of the NIfTI file at `path` and the statistics of all its
/// scaled values (every volume, NaN skipped), as nibabel's `get_fdata()`
/// would give them.
pub fn read_stats(path: &Path) -> Result<(NiftiHeaderInfo, Stats)> {
    let file = crate::open_input(path)?;
    let file_len = file
        .metadata()
        .map_err(|e| Error::io(path, "cannot stat", e))?
        .len();
    let mut plain = BufReader::with_capacity(GZ_BLOCK, file);
    let mut magic = [0u8; 2];
    let got = read_full(&mut plain, &mut magic).map_err(|e| Error::io(path, "cannot read", e))?;
    let gz = got == 2 && magic == GZIP_MAGIC;
    let prefix = std::io::Cursor::new(magic[..got].to_vec());
    let mut stream: Box<dyn Read> = if gz {
        Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(
            prefix.chain(plain),
        )))
    } else {
        Box::new(prefix.chain(plain))
    };
    let read_error = |e: std::io::Error| {
        if gz {
            Error::invalid(path, format!("gzip stream is corrupt or truncated: {e}"))
        } else {
            Error::io(path, "cannot read", e)
        }
    };

    let mut head = [0u8; super::nifti2::NIFTI2_HEADER_SIZE + 4];
    let head_len = read_full(&mut stream, &mut head).map_err(read_error)?;
    let info = parse_header(path, &head[..head_len])?;
    let size = header::datatype_info(info.datatype)
        .ok_or_else(|| unsupported_datatype(path, &info))?
        .1;
    let plan = volume_plan(path, &info, &ReadOptions { volume: Some(0) })?;
    let end = plan.data_start.saturating_add(plan.total);
    if gz && end > max_inflated_len(usize::try_from(file_len).unwrap_or(usize::MAX)) {
        return Err(Error::invalid(
            path,
            format!(
                "the header announces {} bytes of voxel data (shape {:?}); a gzip file of {file_len} bytes cannot hold them",
                plan.total, info.dims
            ),
        ));
    }
    if !gz {
        check_length(path, &plan, file_len)?;
    }
    // Nothing here holds a volume, but what no reader can load is not
    // described either: the same budget as every other reader.
    check_budget(path, &info, &plan)?;

    // Skip to the data, then convert block by block.
    let mut pos = head_len as u64;
    let mut block = vec![0u8; GZ_BLOCK - GZ_BLOCK % size];
    let carry = usize::try_from(plan.data_start)
        .ok()
        .filter(|&s| s < head_len)
        .map(|s| head[s..head_len].to_vec())
        .unwrap_or_default();
    while pos < plan.data_start {
        let want = (plan.data_start - pos).min(block.len() as u64) as usize;
        let got = read_full(&mut stream, &mut block[..want]).map_err(read_error)?;
        pos += got as u64;
        if got < want {
            break;
        }
    }
    let mut values = vec![0f32; block.len() / size];
    let mut stats = Stats::from_parts(0.0, 0.0, 0.0, 0);
    let mut remaining = plan.total;
    let mut first = carry;
    while remaining > 0 {
        let want = (remaining.min(block.len() as u64)) as usize;
        let from_carry = first.len().min(want);
        block[..from_carry].copy_from_slice(&first[..from_carry]);
        first.drain(..from_carry);
        let got = read_full(&mut stream, &mut block[from_carry..want]).map_err(read_error)?;
        let have = from_carry + got;
        let whole = have - have % size;
        let n = whole / size;
        // `f32` takes every value: decoding cannot report an inexact one.
        let _ = super::data::decode_into(&block[..whole], layout(&info), &mut values[..n]);
        stats = stats.merge(Stats::of(values[..n].iter().map(|&v| f64::from(v))));
        remaining -= have as u64;
        if have < want {
            return Err(Error::invalid(
                path,
                format!(
                    "voxel data has {} bytes, {} expected",
                    plan.total - remaining,
                    plan.total
                ),
            ));
        }
    }
    Ok((info, stats))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Affine, Volume, nifti};

    fn write_4d(path: &Path, volumes: usize, nan_at: Option<usize>) -> Vec<Volume<f32>> {
        let a = Affine::from_spacing_origin([1.0, 2.0, 3.0], [0.0, 0.0, 0.0]);
        let vols: Vec<Volume<f32>> = (0..volumes)
            .map(|t| {
                let data = (0..60)
                    .map(|i| {
                        if Some(t * 60 + i) == nan_at {
                            f32::NAN
                        } else {
                            (t * 100 + i) as f32 - 50.0
                        }
                    })
                    .collect();
                Volume::new([5, 4, 3], a, data).unwrap()
            })
            .collect();
        let refs: Vec<&Volume<f32>> = vols.iter().collect();
        nifti::write_4d(path, &refs, &nifti::WriteOptions::default()).unwrap();
        vols
    }

    #[test]
    fn one_pass_equals_reading_every_volume() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["f.nii", "f.nii.gz"] {
            let p = dir.path().join(name);
            let vols = write_4d(&p, 7, Some(65));
            let (info, s) = read_stats(&p).unwrap();
            assert_eq!(info.dims, vec![5, 4, 3, 7]);
            let expect = vols
                .iter()
                .map(|v| v.stats())
                .fold(Stats::from_parts(0.0, 0.0, 0.0, 0), Stats::merge);
            assert_eq!(s, expect, "{name}");
            // The NaN voxel is not counted: the mean is over 419 values.
            assert_eq!(s.count, 7 * 60 - 1);
            assert_eq!(s.min, -50.0);
            assert_eq!(s.max, 609.0);
        }
    }

    /// A 2 KB `.nii.gz` whose header claims a million volumes is refused
    /// before any inflating, naming the figures.
    #[test]
    fn a_volume_count_the_file_cannot_hold_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.nii.gz");
        write_4d(&p, 2, None);
        // dim (offset 40) becomes [5, 5, 4, 3, 32767, 31]: over a million
        // volumes, in a file of a few hundred bytes.
        let mut raw = Vec::new();
        flate2::read::MultiGzDecoder::new(std::fs::File::open(&p).unwrap())
            .read_to_end(&mut raw)
            .unwrap();
        raw[40..42].copy_from_slice(&5i16.to_le_bytes()); // dim[0] = 5
        raw[48..50].copy_from_slice(&32767i16.to_le_bytes()); // dim[4]
        raw[50..52].copy_from_slice(&31i16.to_le_bytes()); // dim[5]
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, &raw).unwrap();
        std::fs::write(&p, gz.finish().unwrap()).unwrap();
        let t = std::time::Instant::now();
        let e = read_stats(&p).unwrap_err().to_string();
        assert!(e.contains("cannot hold them"), "{e}");
        assert!(t.elapsed().as_secs_f64() < 5.0);
    }
}
