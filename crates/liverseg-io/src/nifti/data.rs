//! Bulk conversion of raw NIfTI voxel bytes to and from [`Voxel`] values.

use crate::{DType, Voxel};
use rayon::prelude::*;

/// Voxels converted per rayon task: large enough to amortise scheduling,
/// small enough to balance two to sixteen cores.
const CHUNK: usize = 1 << 18;

/// How the stored bytes of a NIfTI data block map to values.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    /// NIfTI datatype code.
    pub datatype: i16,
    /// Byte order of the file.
    pub big_endian: bool,
    /// `(slope, inter)` when the header scales the values.
    pub scale: Option<(f64, f64)>,
}

impl Layout {
    /// Bytes per stored element, `None` for datatypes we do not decode.
    pub fn size(&self) -> Option<usize> {
        super::header::datatype_info(self.datatype).map(|d| d.1)
    }

    /// True when a stored value, after scaling, might not be exactly
    /// representable as `T` and each one must be checked.
    fn needs_check<T: Voxel>(&self) -> bool {
        let fits = match (T::DTYPE, self.datatype) {
            (DType::Float32, _) => true,
            // uint8, int8, int16 into int16; uint8 into uint8.
            (DType::Int16, 2 | 256 | 4) | (DType::Uint8, 2) => self.scale.is_none(),
            _ => false,
        };
        !fits
    }
}

/// True when decoding with `layout` into `T` copies each element's bytes
/// unchanged: the file stores `T` itself, little-endian, unscaled.
pub(crate) fn is_identity<T: Voxel>(layout: Layout) -> bool {
    let same = matches!(
        (T::DTYPE, layout.datatype),
        (DType::Uint8, 2) | (DType::Int16, 4) | (DType::Float32, 16)
    );
    same && !layout.big_endian && layout.scale.is_none()
}

/// A buffer of `n` default (zero) voxels for a reader to fill.
///
/// Large buffers are fresh anonymous memory whose first write page-faults
/// one 4 KiB page at a time: for a 512x512x200 `f32` volume that is 51 200
/// faults, which measured as most of the time of reading a `.nii`
/// (docs/benchmarks.md). Asking the kernel for transparent huge pages, as
/// numpy does for its arrays, cuts that 512-fold where THP is available in
/// `madvise` mode (the common default).
pub(crate) fn alloc_voxels<T: Voxel>(n: usize) -> Vec<T> {
    let mut v = vec![T::default(); n];
    advise_huge_pages(&mut v);
    v
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn advise_huge_pages<T>(buf: &mut [T]) {
    const PAGE: usize = 4096;
    const WORTH_IT: usize = 4 << 20;
    let len = std::mem::size_of_val(buf);
    if len < WORTH_IT {
        return;
    }
    let start = buf.as_mut_ptr() as usize;
    // The page-aligned part of the buffer: madvise wants a page-aligned
    // start, and the range must not reach outside memory we own.
    let first = start.next_multiple_of(PAGE);
    let end = (start + len) / PAGE * PAGE;
    if end <= first {
        return;
    }
    // SAFETY: `[first, end)` lies within `buf`, which we borrow mutably, so
    // no other reference observes it during the call. MADV_HUGEPAGE only
    // marks the range as eligible for transparent huge pages (madvise(2)):
    // it reads and writes no memory, and changes neither its contents, nor
    // its protection, nor whether it is mapped; when the kernel later backs
    // or collapses it with huge pages the contents are preserved. So no
    // value Rust can see changes and no aliasing or validity invariant is
    // affected. The result is ignored: on failure (EINVAL without THP
    // support) the buffer simply keeps 4 KiB pages.
    unsafe {
        libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE);
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages<T>(_buf: &mut [T]) {}

/// Converts the elements of `bytes` into `out`, one per `N` bytes, with
/// `read` giving the exact value of an element. With `check`, stops at the
/// first value `T` cannot hold exactly and returns it.
///
/// Monomorphised per source type, byte order and scaling so the inner loop
/// has no branches and LLVM vectorises the common cases.
#[inline(always)]
fn convert<T: Voxel, const N: usize>(
    bytes: &[u8],
    out: &mut [T],
    check: bool,
    read: impl Fn([u8; N]) -> f64,
) -> Result<(), f64> {
    let elems = out.iter_mut().zip(bytes.chunks_exact(N));
    let element = |c: &[u8]| {
        let mut a = [0u8; N];
        a.copy_from_slice(c);
        read(a)
    };
    if check {
        for (o, c) in elems {
            let v = element(c);
            if !T::holds_exactly(v) {
                return Err(v);
            }
            *o = T::from_f64(v);
        }
    } else {
        for (o, c) in elems {
            *o = T::from_f64(element(c));
        }
    }
    Ok(())
}

macro_rules! convert_as {
    ($bytes:expr, $out:expr, $layout:expr, $check:expr, $ty:ty, $n:literal) => {
        match ($layout.big_endian, $layout.scale) {
            (false, None) => {
                convert::<T, $n>($bytes, $out, $check, |a| <$ty>::from_le_bytes(a) as f64)
            }
            (true, None) => {
                convert::<T, $n>($bytes, $out, $check, |a| <$ty>::from_be_bytes(a) as f64)
            }
            (false, Some((s, i))) => convert::<T, $n>($bytes, $out, $check, move |a| {
                <$ty>::from_le_bytes(a) as f64 * s + i
            }),
            (true, Some((s, i))) => convert::<T, $n>($bytes, $out, $check, move |a| {
                <$ty>::from_be_bytes(a) as f64 * s + i
            }),
        }
    };
}

/// Decodes the whole elements of `bytes` into `out` (which holds
/// `bytes.len() / size` values) on the calling thread, applying the
/// layout's scaling.
///
/// Returns `Err(value)` with the first value that is not exactly
/// representable as `T` (checked for the integer types only; `f32` takes
/// every value as converted). Datatypes that are not scalar numbers decode
/// nothing: callers reject them with the header.
pub(crate) fn decode_into<T: Voxel>(
    bytes: &[u8],
    layout: Layout,
    out: &mut [T],
) -> Result<(), f64> {
    let check = layout.needs_check::<T>();
    match layout.datatype {
        2 => convert_as!(bytes, out, layout, check, u8, 1),
        4 => convert_as!(bytes, out, layout, check, i16, 2),
        8 => convert_as!(bytes, out, layout, check, i32, 4),
        16 => convert_as!(bytes, out, layout, check, f32, 4),
        64 => convert_as!(bytes, out, layout, check, f64, 8),
        256 => convert_as!(bytes, out, layout, check, i8, 1),
        512 => convert_as!(bytes, out, layout, check, u16, 2),
        768 => convert_as!(bytes, out, layout, check, u32, 4),
        1024 => convert_as!(bytes, out, layout, check, i64, 8),
        1280 => convert_as!(bytes, out, layout, check, u64, 8),
        _ => Ok(()),
    }
}

/// Decodes `bytes` (whole elements of the layout's datatype) into a new
/// vector of `T`, in parallel.
///
/// `None` for datatypes that are not scalar numbers; `Some(Err(value))`
/// with the first value (in file order) that `T` cannot hold exactly.
pub(crate) fn decode<T: Voxel>(bytes: &[u8], layout: Layout) -> Option<Result<Vec<T>, f64>> {
    let size = layout.size()?;
    let mut out = alloc_voxels::<T>(bytes.len() / size);
    let first_bad = out
        .par_chunks_mut(CHUNK)
        .zip(bytes.par_chunks(CHUNK * size))
        .enumerate()
        .filter_map(|(n, (o, b))| decode_into(b, layout, o).err().map(|v| (n, v)))
        .min_by_key(|&(n, _)| n);
    Some(match first_bad {
        Some((_, v)) => Err(v),
        None => Ok(out),
    })
}

/// Bytes per voxel of `T` as written (its own type, no scaling).
pub(crate) fn stored_size<T: Voxel>() -> usize {
    match T::DTYPE {
        DType::Uint8 => 1,
        DType::Int16 => 2,
        DType::Float32 => 4,
    }
}

/// Appends voxels as little-endian bytes of their own type.
pub(crate) fn encode_le_into<T: Voxel>(data: &[T], out: &mut Vec<u8>) {
    if let Some(bytes) = T::le_bytes(data) {
        out.extend_from_slice(bytes);
        return;
    }
    let at = out.len();
    out.resize(at + data.len() * stored_size::<T>(), 0);
    let bytes = &mut out[at..];
    match T::DTYPE {
        DType::Uint8 => bytes
            .iter_mut()
            .zip(data)
            .for_each(|(o, v)| *o = v.to_f64() as u8),
        DType::Int16 => bytes
            .chunks_exact_mut(2)
            .zip(data)
            .for_each(|(o, v)| o.copy_from_slice(&(v.to_f64() as i16).to_le_bytes())),
        DType::Float32 => bytes
            .chunks_exact_mut(4)
            .zip(data)
            .for_each(|(o, v)| o.copy_from_slice(&(v.to_f64() as f32).to_le_bytes())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(datatype: i16, big_endian: bool, scale: Option<(f64, f64)>) -> Layout {
        Layout {
            datatype,
            big_endian,
            scale,
        }
    }

    #[test]
    fn decodes_big_endian_and_scaling() {
        let bytes = [0x01u8, 0x02, 0xff, 0xfe];
        let v: Vec<f32> = decode(&bytes, layout(4, true, None)).unwrap().unwrap();
        assert_eq!(v, vec![258.0, -2.0]);
        let v: Vec<f32> = decode(&bytes, layout(4, false, Some((2.0, -1.0))))
            .unwrap()
            .unwrap();
        assert_eq!(v, vec![2.0 * 513.0 - 1.0, 2.0 * -257.0 - 1.0]);
        assert!(decode::<f32>(&bytes, layout(128, false, None)).is_none());
    }

    #[test]
    fn inexact_values_are_found() {
        let bytes = 2.5f32.to_le_bytes();
        assert_eq!(
            decode::<u8>(&bytes, layout(16, false, None)),
            Some(Err(2.5))
        );
        let bytes = 2.0f32.to_le_bytes();
        assert_eq!(
            decode::<u8>(&bytes, layout(16, false, None)),
            Some(Ok(vec![2]))
        );
        // int16 300 does not fit uint8; int16 into int16 needs no check.
        let bytes = [44u8, 1, 255, 127];
        assert_eq!(
            decode::<u8>(&bytes, layout(4, false, None)),
            Some(Err(300.0))
        );
        assert_eq!(
            decode::<i16>(&bytes, layout(4, false, None)),
            Some(Ok(vec![300, i16::MAX]))
        );
    }

    #[test]
    fn first_inexact_value_in_file_order_is_reported() {
        // Many chunks, bad values in the 2nd and the 5th: the 2nd wins.
        let mut vals = vec![1.0f32; CHUNK * 6];
        vals[CHUNK * 4 + 7] = 0.25;
        vals[CHUNK + 3] = 0.5;
        let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(
            decode::<u8>(&bytes, layout(16, false, None)),
            Some(Err(0.5))
        );
    }
}
