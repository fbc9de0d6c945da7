//! Issue 13: 32-bit pixels in Explicit VR Big Endian were decoded with
//! their two 16-bit halves swapped (pydicom's `rtdose_expb.dcm` gave a
//! minimum of 23068690 where pydicom reads 795000).
//!
//! The parser turns big-endian OW pixel data into host-order 16-bit words,
//! which is right for 16-bit samples but leaves each 32-bit sample as two
//! words, most significant first; the reader read them least significant
//! first. `rtdose_expb.dcm` and `rtdose.dcm` (implicit VR little endian)
//! hold the same 15 frames of 10x10 unsigned 32-bit values.
//!
//! Golden numbers: pydicom 3.0.2, `tools/golden/rtdose_golden.py`:
//!
//! ```python
//! ds = pydicom.dcmread(get_testdata_file("rtdose_expb.dcm"))
//! a = ds.pixel_array          # dtype >u4, shape (15, 10, 10)
//! a.min(), a.max(), a.astype(np.int64).sum()
//! # (795000, 1254000, 1519910000), identical for rtdose.dcm
//! ds.DoseGridScaling          # 1e-06
//! ```

use liverseg_io::dicom::{self, ReadOptions};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/dicom")
        .join(name)
}

/// pydicom's stored values of both files.
const STORED_MIN: i64 = 795_000;
const STORED_MAX: i64 = 1_254_000;
const STORED_SUM: i64 = 1_519_910_000;
/// The file's DoseGridScaling, which the reader applies.
const SCALING: f64 = 1e-6;

/// The stored value behind a dose read as `f32`: the dose is at most 1.254,
/// where an `f32` is exact to 1.2e-7, so stored = dose / 1e-6 is within
/// 0.12 of an integer and rounding gives it back exactly.
fn stored(dose: f32) -> i64 {
    (f64::from(dose) / SCALING).round() as i64
}

#[test]
fn issue_13_big_endian_32_bit_pixels_match_little_endian_and_pydicom() {
    let le = dicom::read_frames::<f32>(&fixture("rtdose.dcm")).unwrap();
    let be = dicom::read_frames::<f32>(&fixture("rtdose_expb.dcm")).unwrap();
    assert_eq!((be.frames, be.rows, be.columns), (15, 10, 10));
    // Every one of the 1500 values, bit for bit. Before the fix all 1500
    // differed: each was pydicom's value with its 16-bit halves swapped.
    let differ = be.data.iter().zip(&le.data).filter(|(a, b)| a != b).count();
    assert_eq!(differ, 0, "{differ} of 1500 values differ");

    // Before the fix (stored values, no scaling applied then): min
    // 23068690, max 4292345870, sum 2980647557090.
    let values: Vec<i64> = be.data.iter().map(|&d| stored(d)).collect();
    assert_eq!(values.iter().min(), Some(&STORED_MIN));
    assert_eq!(values.iter().max(), Some(&STORED_MAX));
    assert_eq!(values.iter().sum::<i64>(), STORED_SUM);

    // The same through the volume reader, which places the frames.
    let vol = dicom::read::<f32>(&fixture("rtdose_expb.dcm"), &ReadOptions::default()).unwrap();
    let le_vol = dicom::read::<f32>(&fixture("rtdose.dcm"), &ReadOptions::default()).unwrap();
    assert_eq!(vol, le_vol);
}

#[test]
fn issue_13_big_endian_16_bit_pixels_still_match() {
    // 16-bit OW words were already right; the fix must keep them so.
    let le = dicom::read::<i16>(&fixture("MR_small.dcm"), &ReadOptions::default()).unwrap();
    let be =
        dicom::read::<i16>(&fixture("MR_small_bigendian.dcm"), &ReadOptions::default()).unwrap();
    assert_eq!(be.data(), le.data());
    // pydicom: MR_small_bigendian.dcm pixel_array min 127, max 2145.
    let s = be.stats();
    assert_eq!((s.min, s.max), (127.0, 2145.0));
}
