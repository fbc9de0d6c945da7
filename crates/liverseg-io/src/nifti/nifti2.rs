//! The NIfTI-2 header (540 bytes), which the `nifti` crate does not parse.
//!
//! This module is self-contained on purpose, shaped like the `nifti` crate's
//! own `NiftiHeader` (public fields named as in `nifti2.h`, a `from_reader`
//! that detects byte order from `sizeof_hdr`), so that it can be offered
//! upstream as-is. It depends only on `std`.

use std::io::{self, Read};

/// Size of a NIfTI-2 header in bytes, the value of its `sizeof_hdr` field.
pub const NIFTI2_HEADER_SIZE: usize = 540;

/// Magic of a single-file NIfTI-2 (`.nii`).
pub const MAGIC_N_PLUS_2: &[u8; 8] = b"n+2\0\r\n\x1a\n";
/// Magic of a NIfTI-2 header/image pair (`.hdr` + `.img`).
pub const MAGIC_NI2: &[u8; 8] = b"ni2\0\r\n\x1a\n";

/// A parsed NIfTI-2 header. Fields keep the names and widths of `nifti2.h`
/// (64-bit dims and offsets, double precision geometry).
#[derive(Clone, Debug, PartialEq)]
#[allow(missing_docs)]
pub struct Nifti2Header {
    pub sizeof_hdr: i32,
    pub magic: [u8; 8],
    pub datatype: i16,
    pub bitpix: i16,
    pub dim: [i64; 8],
    pub intent_p1: f64,
    pub intent_p2: f64,
    pub intent_p3: f64,
    pub pixdim: [f64; 8],
    pub vox_offset: i64,
    pub scl_slope: f64,
    pub scl_inter: f64,
    pub cal_max: f64,
    pub cal_min: f64,
    pub slice_duration: f64,
    pub toffset: f64,
    pub slice_start: i64,
    pub slice_end: i64,
    pub descrip: [u8; 80],
    pub aux_file: [u8; 24],
    pub qform_code: i32,
    pub sform_code: i32,
    pub quatern_b: f64,
    pub quatern_c: f64,
    pub quatern_d: f64,
    pub qoffset_x: f64,
    pub qoffset_y: f64,
    pub qoffset_z: f64,
    pub srow_x: [f64; 4],
    pub srow_y: [f64; 4],
    pub srow_z: [f64; 4],
    pub slice_code: i32,
    pub xyzt_units: i32,
    pub intent_code: i32,
    pub intent_name: [u8; 16],
    pub dim_info: u8,
    /// True when the file is big-endian.
    pub big_endian: bool,
}

struct Cursor<'a> {
    buf: &'a [u8; NIFTI2_HEADER_SIZE],
    pos: usize,
    be: bool,
}

impl Cursor<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        out.copy_from_slice(&self.buf[self.pos..self.pos + N]);
        self.pos += N;
        if self.be {
            out.reverse();
        }
        out
    }
    fn raw<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        out.copy_from_slice(&self.buf[self.pos..self.pos + N]);
        self.pos += N;
        out
    }
    fn i16(&mut self) -> i16 {
        i16::from_le_bytes(self.take())
    }
    fn i32(&mut self) -> i32 {
        i32::from_le_bytes(self.take())
    }
    fn i64(&mut self) -> i64 {
        i64::from_le_bytes(self.take())
    }
    fn f64(&mut self) -> f64 {
        f64::from_le_bytes(self.take())
    }
    fn f64s<const N: usize>(&mut self) -> [f64; N] {
        std::array::from_fn(|_| self.f64())
    }
}

/// Tells whether the first four bytes of a header announce NIfTI-2
/// (`sizeof_hdr == 540` in either byte order).
pub fn is_nifti2(first4: [u8; 4]) -> bool {
    i32::from_le_bytes(first4) == NIFTI2_HEADER_SIZE as i32
        || i32::from_be_bytes(first4) == NIFTI2_HEADER_SIZE as i32
}

impl Nifti2Header {
    /// Reads a NIfTI-2 header from the start of `input`, detecting the byte
    /// order from `sizeof_hdr`. Fails with `InvalidData` when `sizeof_hdr`
    /// is not 540 in either order or the magic is not `n+2`/`ni2`.
    pub fn from_reader<R: Read>(mut input: R) -> io::Result<Self> {
        let mut buf = [0u8; NIFTI2_HEADER_SIZE];
        input.read_exact(&mut buf)?;
        Self::from_bytes(&buf)
    }

    /// Parses a NIfTI-2 header from its 540 bytes.
    pub fn from_bytes(buf: &[u8; NIFTI2_HEADER_SIZE]) -> io::Result<Self> {
        let first = [buf[0], buf[1], buf[2], buf[3]];
        let be = if i32::from_le_bytes(first) == NIFTI2_HEADER_SIZE as i32 {
            false
        } else if i32::from_be_bytes(first) == NIFTI2_HEADER_SIZE as i32 {
            true
        } else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "sizeof_hdr is not 540: not a NIfTI-2 header",
            ));
        };
        let mut c = Cursor { buf, pos: 0, be };
        let sizeof_hdr = c.i32();
        let magic: [u8; 8] = c.raw();
        if &magic[..3] != b"n+2" && &magic[..3] != b"ni2" {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "NIfTI-2 magic is neither \"n+2\" nor \"ni2\"",
            ));
        }
        let datatype = c.i16();
        let bitpix = c.i16();
        let dim = std::array::from_fn(|_| c.i64());
        let intent_p1 = c.f64();
        let intent_p2 = c.f64();
        let intent_p3 = c.f64();
        let pixdim = c.f64s::<8>();
        let vox_offset = c.i64();
        let scl_slope = c.f64();
        let scl_inter = c.f64();
        let cal_max = c.f64();
        let cal_min = c.f64();
        let slice_duration = c.f64();
        let toffset = c.f64();
        let slice_start = c.i64();
        let slice_end = c.i64();
        let descrip = c.raw();
        let aux_file = c.raw();
        let qform_code = c.i32();
        let sform_code = c.i32();
        let quatern_b = c.f64();
        let quatern_c = c.f64();
        let quatern_d = c.f64();
        let qoffset_x = c.f64();
        let qoffset_y = c.f64();
        let qoffset_z = c.f64();
        let srow_x = c.f64s::<4>();
        let srow_y = c.f64s::<4>();
        let srow_z = c.f64s::<4>();
        let slice_code = c.i32();
        let xyzt_units = c.i32();
        let intent_code = c.i32();
        let intent_name = c.raw();
        let dim_info = c.raw::<1>()[0];
        debug_assert_eq!(c.pos, 525);
        Ok(Nifti2Header {
            sizeof_hdr,
            magic,
            datatype,
            bitpix,
            dim,
            intent_p1,
            intent_p2,
            intent_p3,
            pixdim,
            vox_offset,
            scl_slope,
            scl_inter,
            cal_max,
            cal_min,
            slice_duration,
            toffset,
            slice_start,
            slice_end,
            descrip,
            aux_file,
            qform_code,
            sform_code,
            quatern_b,
            quatern_c,
            quatern_d,
            qoffset_x,
            qoffset_y,
            qoffset_z,
            srow_x,
            srow_y,
            srow_z,
            slice_code,
            xyzt_units,
            intent_code,
            intent_name,
            dim_info,
            big_endian: be,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(be: bool) -> [u8; NIFTI2_HEADER_SIZE] {
        let mut b = [0u8; NIFTI2_HEADER_SIZE];
        let put = |b: &mut [u8], at: usize, bytes: &[u8]| {
            let mut v = bytes.to_vec();
            if be {
                v.reverse();
            }
            b[at..at + v.len()].copy_from_slice(&v);
        };
        put(&mut b, 0, &540i32.to_le_bytes());
        b[4..12].copy_from_slice(MAGIC_N_PLUS_2);
        put(&mut b, 12, &4i16.to_le_bytes());
        put(&mut b, 14, &16i16.to_le_bytes());
        for (n, d) in [3i64, 32, 20, 12, 1, 1, 1, 1].iter().enumerate() {
            put(&mut b, 16 + 8 * n, &d.to_le_bytes());
        }
        put(&mut b, 104 + 8, &2.5f64.to_le_bytes());
        put(&mut b, 168, &544i64.to_le_bytes());
        put(&mut b, 348, &2i32.to_le_bytes());
        put(&mut b, 400 + 24, &(-7.25f64).to_le_bytes());
        b[524] = 57;
        b
    }

    #[test]
    fn parses_both_byte_orders() {
        for be in [false, true] {
            let h = Nifti2Header::from_bytes(&sample(be)).unwrap();
            assert_eq!(h.big_endian, be);
            assert_eq!(h.datatype, 4);
            assert_eq!(h.dim[..4], [3, 32, 20, 12]);
            assert_eq!(h.pixdim[1], 2.5);
            assert_eq!(h.vox_offset, 544);
            assert_eq!(h.sform_code, 2);
            assert_eq!(h.srow_x[3], -7.25);
            assert_eq!(h.dim_info, 57);
        }
    }

    #[test]
    fn rejects_nifti1_and_bad_magic() {
        let mut b = sample(false);
        b[0..4].copy_from_slice(&348i32.to_le_bytes());
        assert!(Nifti2Header::from_bytes(&b).is_err());
        let mut b = sample(false);
        b[4..8].copy_from_slice(b"n+1\0");
        assert!(Nifti2Header::from_bytes(&b).is_err());
    }
}
