//! Issue 17: JPEG Extended with 12-bit samples (1.2.840.10008.1.2.4.51),
//! the lossy format of many CT archives, which `jpeg-decoder` refuses.
//! pydicom's JPGExtended.dcm decoded by our `jpeg12` decoder against what
//! pydicom + pylibjpeg-libjpeg give (`tools/golden/jpeg12_golden.py`). The
//! DCT is lossy and T.81 leaves the inverse transform's last bit to the
//! decoder: every value must be within 1 of libjpeg's, and almost all equal.

mod common;

use common::fixture;
use liverseg_io::dicom::{self, ReadOptions};
use serde_json::Value;

#[test]
fn twelve_bit_jpeg_extended_decodes_within_one_of_libjpeg() {
    let golden: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("jpeg12_golden.json")).unwrap())
            .unwrap();
    let opts = ReadOptions {
        assume_geometry: true,
        ..ReadOptions::default()
    };
    let v = dicom::read::<f32>(&fixture("dicom/JPGExtended.dcm"), &opts).unwrap();
    let (rows, cols) = (1024usize, 256usize);
    assert_eq!(golden["rows"], rows);
    assert_eq!(v.dims(), [cols, rows, 1]);
    let data = v.data();
    let (mut compared, mut equal) = (0usize, 0usize);
    for (gr, row) in golden["grid"].as_array().unwrap().iter().enumerate() {
        for (gc, want) in row.as_array().unwrap().iter().enumerate() {
            let (r, c) = (gr * 16, gc * 16);
            let got = f64::from(data[c + cols * r]);
            let want = want.as_f64().unwrap();
            assert!(
                (got - want).abs() <= 1.0,
                "({r},{c}): {got} vs libjpeg {want}"
            );
            compared += 1;
            equal += usize::from(got == want);
        }
    }
    assert!(equal * 100 >= compared * 95, "{equal} of {compared} equal");
    let sum: f64 = data.iter().map(|&x| f64::from(x)).sum();
    let want = golden["sum"].as_f64().unwrap();
    assert!((sum - want).abs() <= 0.002 * want, "sum {sum} vs {want}");
    let max = data.iter().copied().fold(f32::MIN, f32::max);
    assert!((f64::from(max) - golden["max"].as_f64().unwrap()).abs() <= 1.0);
}
