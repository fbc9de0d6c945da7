//! One-shot gzip inflate through libdeflate, for `.nii.gz` files whose inflated size the header tells in advance.
//!
//! libdeflate inflates a whole member into a caller-sized buffer, faster than
//! a streaming decoder (no window copies, no per-call state), but cannot
//! stream. `libdeflate_gzip_decompress_ex` reports how much input a member
//! used, so concatenated members (as liverseg's writer emits them) are
//! inflated one after another into consecutive parts of the output.
//!
//! This is one of the crate's two `unsafe` modules (the other is the
//! `madvise` call in `data.rs`); every call's soundness argument is beside it.

#![allow(unsafe_code)]

use libdeflate_sys as sys;
use std::ptr::NonNull;

/// FLG bit of a gzip member header announcing a CRC-16 of the header.
const FHCRC: u8 = 1 << 1;

/// Why [`Inflater::inflate_members`] gave up. The caller falls back to the
/// streaming decoder, which reports the reason in its own words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InflateFailure {
    /// Not a gzip stream as libdeflate reads it: corrupt, truncated, or
    /// followed by bytes that do not form another member.
    BadData,
    /// The stream inflates to more bytes than the output buffer holds.
    InsufficientSpace,
    /// A member carries a header CRC (FHCRC), which libdeflate skips
    /// without checking it (flate2 checks it).
    HeaderCrc,
}

/// An owned libdeflate decompressor.
///
/// It holds a raw pointer, so it is neither `Send` nor `Sync`: the
/// decompressor (which keeps mutable decode tables) is only ever used by the
/// thread that allocated it, through `&mut self`.
#[derive(Debug)]
pub(crate) struct Inflater {
    d: NonNull<sys::libdeflate_decompressor>,
}

impl Inflater {
    /// A new decompressor, `None` when libdeflate cannot allocate one.
    pub(crate) fn new() -> Option<Inflater> {
        // SAFETY: `libdeflate_alloc_decompressor` takes no arguments and
        // returns either NULL (allocation failure, handled by `NonNull::new`)
        // or a pointer to a freshly allocated decompressor that nothing else
        // refers to; from here on `Inflater` owns it and frees it once, in
        // `Drop`.
        let d = unsafe { sys::libdeflate_alloc_decompressor() };
        NonNull::new(d).map(|d| Inflater { d })
    }

    /// Inflates the concatenated gzip members of `input` (at least one, and
    /// nothing after the last) into the start of `out`, checking each
    /// member's CRC-32 and length; returns the number of bytes written.
    pub(crate) fn inflate_members(
        &mut self,
        input: &[u8],
        out: &mut [u8],
    ) -> Result<usize, InflateFailure> {
        let (mut read, mut written) = (0usize, 0usize);
        loop {
            let src = &input[read..];
            if src.get(3).is_some_and(|flg| flg & FHCRC != 0) {
                return Err(InflateFailure::HeaderCrc);
            }
            let dst = &mut out[written..];
            let (mut used_in, mut used_out) = (0usize, 0usize);
            // SAFETY: `self.d` is a live decompressor owned by `self` (non-null,
            // allocated in `new`, not yet freed) and borrowed mutably here, so
            // no other call uses it concurrently. `src` and `dst` are slices,
            // so their pointers are valid for reads of `src.len()` and writes
            // of `dst.len()` bytes respectively for the whole call, and they
            // do not overlap (`dst` is borrowed mutably). libdeflate reads
            // only within `[src, src + src.len())`, writes only within
            // `[dst, dst + dst.len())` (it returns INSUFFICIENT_SPACE rather
            // than write past the end) and keeps no pointer to either after
            // returning. The two out-parameters are valid, aligned,
            // exclusive `&mut usize`, written only on success.
            let result = unsafe {
                sys::libdeflate_gzip_decompress_ex(
                    self.d.as_ptr(),
                    src.as_ptr().cast(),
                    src.len(),
                    dst.as_mut_ptr().cast(),
                    dst.len(),
                    &mut used_in,
                    &mut used_out,
                )
            };
            match result {
                sys::libdeflate_result_LIBDEFLATE_SUCCESS => {}
                sys::libdeflate_result_LIBDEFLATE_INSUFFICIENT_SPACE => {
                    return Err(InflateFailure::InsufficientSpace);
                }
                // BAD_DATA, and SHORT_OUTPUT (only returned when the
                // output-length pointer is NULL, which it is not).
                _ => return Err(InflateFailure::BadData),
            }
            // libdeflate guarantees these bounds on success; checked anyway
            // so that a violation cannot turn into a panic or a loop.
            if used_in == 0 || used_in > src.len() || used_out > dst.len() {
                return Err(InflateFailure::BadData);
            }
            read += used_in;
            written += used_out;
            if read == input.len() {
                return Ok(written);
            }
        }
    }
}

impl Drop for Inflater {
    fn drop(&mut self) {
        // SAFETY: `self.d` came from `libdeflate_alloc_decompressor` and is
        // owned by this `Inflater` alone (it is never copied out), so this
        // frees it exactly once, and nothing can use it afterwards.
        unsafe { sys::libdeflate_free_decompressor(self.d.as_ptr()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(parts: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for part in parts {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(part).unwrap();
            out.extend(enc.finish().unwrap());
        }
        out
    }

    #[test]
    fn members_are_inflated_one_after_another() {
        let a: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let b = b"second member".to_vec();
        let input = gz(&[&a, &[], &b]);
        let mut out = vec![0u8; a.len() + b.len() + 1];
        let n = Inflater::new()
            .unwrap()
            .inflate_members(&input, &mut out)
            .unwrap();
        assert_eq!(n, a.len() + b.len());
        assert_eq!(&out[..a.len()], &a[..]);
        assert_eq!(&out[a.len()..n], &b[..]);
    }

    #[test]
    fn failures_are_reported() {
        let data = vec![7u8; 5000];
        let input = gz(&[&data, &data]);
        let mut inf = Inflater::new().unwrap();
        let mut out = vec![0u8; 2 * data.len()];
        assert_eq!(inf.inflate_members(&input, &mut out), Ok(2 * data.len()));
        // One byte too small.
        let mut small = vec![0u8; 2 * data.len() - 1];
        assert_eq!(
            inf.inflate_members(&input, &mut small),
            Err(InflateFailure::InsufficientSpace)
        );
        // Truncated, with trailing garbage, with a flipped CRC byte.
        for bad in [
            input[..input.len() - 1].to_vec(),
            [&input[..], b"x"].concat(),
            {
                let mut b = input.clone();
                let at = b.len() - 6;
                b[at] ^= 1;
                b
            },
        ] {
            assert_eq!(
                inf.inflate_members(&bad, &mut out),
                Err(InflateFailure::BadData)
            );
        }
        // A header CRC is left to the streaming decoder.
        let mut hcrc = input.clone();
        hcrc[3] |= FHCRC;
        assert_eq!(
            inf.inflate_members(&hcrc, &mut out),
            Err(InflateFailure::HeaderCrc)
        );
    }
}
