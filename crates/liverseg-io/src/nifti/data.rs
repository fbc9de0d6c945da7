//! Bulk conversion of raw NIfTI voxel bytes to and from [`Voxel`] values.

use crate::Voxel;
use rayon::prelude::*;

/// Voxels converted per rayon task: large enough to amortise scheduling,
/// small enough to balance two to sixteen cores.
const CHUNK: usize = 1 << 18;

/// Reads one element of `N` bytes in the file's byte order.
#[inline(always)]
fn arr<const N: usize>(b: &[u8], be: bool) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(b);
    if be {
        a.reverse();
    }
    a
}

macro_rules! decode_as {
    ($bytes:expr, $out:expr, $be:expr, $scale:expr, $ty:ty, $n:literal) => {{
        $out.par_chunks_mut(CHUNK)
            .zip($bytes.par_chunks(CHUNK * $n))
            .for_each(|(o, b)| {
                let raw = b
                    .chunks_exact($n)
                    .map(|c| <$ty>::from_le_bytes(arr::<$n>(c, $be)));
                match $scale {
                    None => o
                        .iter_mut()
                        .zip(raw)
                        .for_each(|(o, v)| *o = T::from_f64(v as f64)),
                    Some((s, i)) => o
                        .iter_mut()
                        .zip(raw)
                        .for_each(|(o, v)| *o = T::from_f64(v as f64 * s + i)),
                }
            });
    }};
}

/// Decodes `bytes` (exactly `count` elements of NIfTI datatype `datatype`)
/// into `T`, applying `scale = (slope, inter)` when present.
///
/// Returns `None` for datatypes that are not scalar numbers.
pub(crate) fn decode<T: Voxel>(
    bytes: &[u8],
    datatype: i16,
    big_endian: bool,
    scale: Option<(f64, f64)>,
) -> Option<Vec<T>> {
    let size = super::header::datatype_info(datatype)?.1;
    let count = bytes.len() / size;
    let mut out = vec![T::default(); count];
    // The common unscaled cases convert without the f64 round trip; LLVM
    // vectorises these loops.
    match (datatype, scale, T::DTYPE) {
        (4, None, crate::DType::Float32) | (4, None, crate::DType::Int16) => {
            out.par_chunks_mut(CHUNK)
                .zip(bytes.par_chunks(CHUNK * 2))
                .for_each(|(o, b)| {
                    for (o, c) in o.iter_mut().zip(b.chunks_exact(2)) {
                        let v = i16::from_le_bytes(arr::<2>(c, big_endian));
                        *o = T::from_f64(f64::from(v));
                    }
                });
            return Some(out);
        }
        _ => {}
    }
    match datatype {
        2 => decode_as!(bytes, out, big_endian, scale, u8, 1),
        4 => decode_as!(bytes, out, big_endian, scale, i16, 2),
        8 => decode_as!(bytes, out, big_endian, scale, i32, 4),
        16 => decode_as!(bytes, out, big_endian, scale, f32, 4),
        64 => decode_as!(bytes, out, big_endian, scale, f64, 8),
        256 => decode_as!(bytes, out, big_endian, scale, i8, 1),
        512 => decode_as!(bytes, out, big_endian, scale, u16, 2),
        768 => decode_as!(bytes, out, big_endian, scale, u32, 4),
        1024 => decode_as!(bytes, out, big_endian, scale, i64, 8),
        1280 => decode_as!(bytes, out, big_endian, scale, u64, 8),
        _ => return None,
    }
    Some(out)
}

/// Checks that every value of the stored data, after scaling, is exactly
/// representable as `T` (used before reading into an integer type).
/// Returns the first offending value.
pub(crate) fn first_inexact<T: Voxel>(
    bytes: &[u8],
    datatype: i16,
    big_endian: bool,
    scale: Option<(f64, f64)>,
) -> Option<f64> {
    if T::DTYPE == crate::DType::Float32 {
        return None;
    }
    let wide: Vec<f64> = decode::<F64>(bytes, datatype, big_endian, scale)?
        .into_iter()
        .map(|v| v.0)
        .collect();
    wide.into_par_iter().find_first(|&v| !T::holds_exactly(v))
}

/// A private f64 carrier so `decode` can produce exact wide values for
/// validation without making `f64` a public voxel type.
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd)]
pub(crate) struct F64(f64);

impl Voxel for F64 {
    const DTYPE: crate::DType = crate::DType::Float32;
    fn to_f64(self) -> f64 {
        self.0
    }
    fn from_f64(v: f64) -> Self {
        F64(v)
    }
    fn holds_exactly(_: f64) -> bool {
        true
    }
}

/// Encodes voxels as little-endian bytes of their own type.
pub(crate) fn encode_le<T: Voxel>(data: &[T]) -> Vec<u8> {
    let size = match T::DTYPE {
        crate::DType::Uint8 => 1,
        crate::DType::Int16 => 2,
        crate::DType::Float32 => 4,
    };
    let mut out = vec![0u8; data.len() * size];
    out.par_chunks_mut(CHUNK * size)
        .zip(data.par_chunks(CHUNK))
        .for_each(|(o, d)| {
            for (o, v) in o.chunks_exact_mut(size).zip(d) {
                let v = v.to_f64();
                match T::DTYPE {
                    crate::DType::Uint8 => o[0] = v as u8,
                    crate::DType::Int16 => o.copy_from_slice(&(v as i16).to_le_bytes()),
                    crate::DType::Float32 => o.copy_from_slice(&(v as f32).to_le_bytes()),
                }
            }
        });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_big_endian_and_scaling() {
        let bytes = [0x01u8, 0x02, 0xff, 0xfe];
        let v: Vec<f32> = decode(&bytes, 4, true, None).unwrap();
        assert_eq!(v, vec![258.0, -2.0]);
        let v: Vec<f32> = decode(&bytes, 4, false, Some((2.0, -1.0))).unwrap();
        assert_eq!(v, vec![2.0 * 513.0 - 1.0, 2.0 * -257.0 - 1.0]);
        assert!(decode::<f32>(&bytes, 128, false, None).is_none());
    }

    #[test]
    fn inexact_values_are_found() {
        let bytes = 2.5f32.to_le_bytes();
        assert_eq!(first_inexact::<u8>(&bytes, 16, false, None), Some(2.5));
        let bytes = 2.0f32.to_le_bytes();
        assert_eq!(first_inexact::<u8>(&bytes, 16, false, None), None);
    }
}
