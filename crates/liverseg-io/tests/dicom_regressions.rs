//! Inputs found by the `dicom_read` fuzz target (`fuzz/`), each with the
//! failure it caused. The files live in `tests/fixtures/regressions/`.

use liverseg_io::dicom::{self, ReadOptions};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/regressions")
        .join(name)
}

/// A JPEG 2000 frame with corrupt code-block data. With the `openjp2`
/// decoder (a Rust translation of OpenJPEG) freeing the half-built tile
/// dereferenced a null pointer, which aborted the process (undefined
/// behaviour in release builds). The C OpenJPEG behind `openjpeg-sys`
/// decodes what it can of the damaged code-blocks, as it does for damaged
/// streams in general, and the reader returns the 64×64 slice.
#[test]
fn corrupt_jpeg2000_codeblocks_do_not_abort() {
    let path = fixture("dicom_jp2k_bad_codeblocks.dcm");
    let v = dicom::read::<f32>(&path, &ReadOptions::default()).unwrap();
    assert_eq!(v.dims(), [64, 64, 1]);
}

/// An RLE Lossless frame whose segment overruns the row: the RLE adapter of
/// dicom-transfer-syntax-registry 0.10 indexes past its buffer and panics.
/// The reader catches codec panics and reports the file instead.
#[test]
fn rle_overrun_is_an_error_naming_the_file() {
    let path = fixture("dicom_rle_overrun.dcm");
    let err = dicom::read::<f32>(&path, &ReadOptions::default()).unwrap_err();
    assert!(err.to_string().contains("dicom_rle_overrun.dcm"), "{err}");
}

/// A damaged (FFFE,FFFF) element declaring a 4 GiB value in a 2.7 KB file:
/// dicom-parser reserved and zeroed the whole length before failing (4 GiB
/// resident in the fuzzer). The length pre-scan now rejects it up front.
#[test]
fn a_damaged_delimiter_length_is_rejected_before_any_allocation() {
    let path = fixture("dicom_delimiter_4gib_length.dcm");
    let err = dicom::read::<f32>(&path, &ReadOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("dicom_delimiter_4gib_length.dcm") && msg.contains("(FFFE,FFFF)"),
        "{msg}"
    );
}
