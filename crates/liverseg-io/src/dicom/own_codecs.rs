//! The adapters to the decoders dicom-pixeldata does not provide or
//! refuses: our own JPEG-LS (`jpegls/`) and 12-bit JPEG (`jpeg12.rs`)
//! decoders, and the `jpeg2k` crate for 1-bit (binary SEG) JPEG 2000
//! frames. Each takes one frame's bytes and gives its stored values.

use super::jpeg12;
use super::jpegls;
use super::pixels::{PixelFormat, frame_fragments};
use crate::{Error, Result};
use dicom_object::DefaultDicomObject;
use std::path::Path;

/// Transfer syntax UIDs of JPEG 2000 (lossless only, and lossy).
pub(super) const JPEG_2000: [&str; 2] = ["1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"];

/// Decodes one JPEG 2000 frame of 1-bit samples (a binary SEG's) with the
/// `jpeg2k` crate that dicom-pixeldata itself uses for JPEG 2000.
pub(super) fn decode_jpeg2000_bits(
    path: &Path,
    obj: &DefaultDicomObject,
    fmt: &PixelFormat,
    frame: usize,
) -> Result<Vec<f64>> {
    let label = format!("frame {}: JPEG 2000", frame + 1);
    let data = frame_fragments(obj, fmt, frame)
        .map_err(|why| Error::invalid(path, format!("{label}: {why}")))?;
    // Third-party code run on untrusted bytes: a panic becomes an error.
    // The header is read first, so a codestream claiming a size other than
    // the DICOM header's (checked against the memory budget) is refused
    // before anything is decoded.
    let guarded = |f: &dyn Fn() -> std::result::Result<(), String>| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
            .map_err(|_| {
                Error::invalid(path, format!("{label}: the decoder failed on corrupt data"))
            })?
            .map_err(|e| Error::invalid(path, format!("{label}: {e}")))
    };
    let image = std::cell::RefCell::new(None);
    guarded(&|| {
        let dump = jpeg2k::DumpImage::from_bytes(&data).map_err(|e| e.to_string())?;
        let (w, h) = (dump.img.width() as usize, dump.img.height() as usize);
        let n = dump.img.components().len();
        if (w, h) != (fmt.cols, fmt.rows) || n != 1 {
            return Err(format!(
                "{n} component(s) of {w}x{h}, the header says one of {}x{}",
                fmt.cols, fmt.rows
            ));
        }
        dump.decode().map_err(|e| e.to_string())?;
        *image.borrow_mut() = Some(dump.img);
        Ok(())
    })?;
    let image = image
        .into_inner()
        .ok_or_else(|| Error::invalid(path, format!("{label}: nothing decoded")))?;
    let Some(c) = image.components().first() else {
        return Err(Error::invalid(path, format!("{label}: no component")));
    };
    if c.data().len() != fmt.rows * fmt.cols {
        return Err(Error::invalid(
            path,
            format!(
                "{label}: {} samples decoded, {}x{} expected",
                c.data().len(),
                fmt.cols,
                fmt.rows
            ),
        ));
    }
    c.data()
        .iter()
        .map(|&v| match v {
            0 | 1 => Ok(f64::from(v)),
            other => Err(Error::invalid(
                path,
                format!("{label}: sample {other} in a 1-bit frame"),
            )),
        })
        .collect()
}

/// Transfer syntax UID of JPEG Extended (processes 2 and 4: 12-bit DCT).
pub(super) const JPEG_EXTENDED: &str = "1.2.840.10008.1.2.4.51";

/// Decodes one 12-bit JPEG Extended frame with [`jpeg12::decode`].
pub(super) fn decode_jpeg12(
    path: &Path,
    fmt: &PixelFormat,
    data: &[u8],
    label: &str,
) -> Result<Vec<f64>> {
    let image = jpeg12::decode(data, fmt.rows, fmt.cols).map_err(|e| match e {
        jpeg12::JpegError::Invalid(why) => Error::invalid(path, format!("{label}: {why}")),
        jpeg12::JpegError::Unsupported(why) => Error::unsupported(path, format!("{label}: {why}")),
    })?;
    stored_samples(path, fmt, label, image.precision, &image.samples)
}

/// The stored values of samples our own decoders produced, `precision`
/// bits each: they hold the BitsAllocated-bit sample patterns (signed
/// values in two's complement), masked and sign-extended as native data.
fn stored_samples(
    path: &Path,
    fmt: &PixelFormat,
    label: &str,
    precision: u8,
    samples: &[u16],
) -> Result<Vec<f64>> {
    if u16::from(precision) > fmt.bits_allocated {
        return Err(Error::invalid(
            path,
            format!(
                "{label}: samples of {precision} bits do not fit BitsAllocated {}",
                fmt.bits_allocated
            ),
        ));
    }
    Ok(samples.iter().map(|&v| fmt.stored(u32::from(v))).collect())
}

/// Transfer syntax UIDs of JPEG-LS (PS3.5 A.4.3), lossless and
/// near-lossless: one decoder reads both, NEAR is in the stream.
pub(super) const JPEG_LS_LOSSLESS: &str = "1.2.840.10008.1.2.4.80";
pub(super) const JPEG_LS_NEAR_LOSSLESS: &str = "1.2.840.10008.1.2.4.81";

/// Decodes one JPEG-LS frame with [`jpegls::decode`].
pub(super) fn decode_jpeg_ls(
    path: &Path,
    obj: &DefaultDicomObject,
    fmt: &PixelFormat,
    frame: usize,
) -> Result<Vec<f64>> {
    let label = format!("frame {}: JPEG-LS", frame + 1);
    let data = frame_fragments(obj, fmt, frame)
        .map_err(|why| Error::invalid(path, format!("{label}: {why}")))?;
    let image = jpegls::decode(&data, fmt.rows, fmt.cols).map_err(|e| match e {
        jpegls::JlsError::Invalid(why) => Error::invalid(path, format!("{label}: {why}")),
        jpegls::JlsError::Unsupported(why) => Error::unsupported(path, format!("{label}: {why}")),
    })?;
    stored_samples(path, fmt, &label, image.precision, &image.samples)
}
