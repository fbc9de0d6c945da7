//! NIfTI fixtures written by other software agree with what nibabel reads
//! (`tests/fixtures/manifest.json`), and bad files give errors, not panics.

mod common;
use common::fixture;

use liverseg_io::nifti::{self, AffineSource, ReadOptions};
use liverseg_io::{Error, Volume};
use serde_json::Value;

fn manifest(rel: &str) -> Value {
    let text = std::fs::read_to_string(fixture("manifest.json")).unwrap();
    let all: Value = serde_json::from_str(&text).unwrap();
    all[rel].clone()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1.0)
}

/// Reads every volume of a fixture and checks shape, affine, pixdim,
/// statistics over all volumes and the first voxels against nibabel.
fn check_against_nibabel(rel: &str) {
    let m = manifest(rel);
    let path = fixture(rel);
    let hdr = nifti::read_header(&path).unwrap();
    let shape: Vec<usize> = m["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(hdr.dims, shape, "{rel}: shape");
    assert_eq!(
        hdr.version as u64,
        m["version"].as_u64().unwrap(),
        "{rel}: version"
    );
    assert_eq!(i64::from(hdr.qform_code), m["qform_code"].as_i64().unwrap());
    assert_eq!(i64::from(hdr.sform_code), m["sform_code"].as_i64().unwrap());
    let pixdim = f64s(&m["pixdim"]);
    for (i, p) in pixdim.iter().enumerate() {
        assert!(
            (hdr.pixdim[i + 1] - p).abs() < 1e-4,
            "{rel}: pixdim[{}]",
            i + 1
        );
    }
    let expected_affine = m["affine"].as_array().unwrap();
    for (r, row) in expected_affine.iter().enumerate() {
        for (c, v) in f64s(row).iter().enumerate() {
            assert!(
                (hdr.affine.0[r][c] - v).abs() < 1e-4,
                "{rel}: affine[{r}][{c}] {} vs {v}",
                hdr.affine.0[r][c]
            );
        }
    }
    let nvol = hdr.volume_count();
    let (mut min, mut max, mut sum, mut n) = (f64::INFINITY, f64::NEG_INFINITY, 0.0, 0usize);
    for t in 0..nvol {
        let opts = ReadOptions {
            volume: (nvol > 1).then_some(t),
        };
        let v: Volume<f32> = nifti::read(&path, &opts).unwrap();
        assert_eq!(v.dims().to_vec(), shape[..3].to_vec());
        assert!(v.affine().max_abs_diff(&hdr.affine) == 0.0);
        let s = v.stats();
        min = min.min(s.min);
        max = max.max(s.max);
        sum += s.sum;
        n += v.len();
        if t == 0 {
            let first = f64s(&m["first_voxels_x_fastest"]);
            let got: Vec<f64> = v.data()[..first.len()]
                .iter()
                .map(|&x| f64::from(x))
                .collect();
            assert_eq!(got, first, "{rel}: first voxels");
        }
    }
    let s = &m["scaled"];
    assert!(
        close(min, s["min"].as_f64().unwrap(), 1e-3),
        "{rel}: min {min}"
    );
    assert!(
        close(max, s["max"].as_f64().unwrap(), 1e-3),
        "{rel}: max {max}"
    );
    assert!(
        close(sum, s["sum"].as_f64().unwrap(), 1e-3),
        "{rel}: sum {sum}"
    );
    assert!(
        close(sum / n as f64, s["mean"].as_f64().unwrap(), 1e-3),
        "{rel}: mean"
    );
}

#[test]
fn big_endian_int16_nifti1() {
    check_against_nibabel("nifti/anatomical.nii");
    assert!(
        nifti::read_header(&fixture("nifti/anatomical.nii"))
            .unwrap()
            .big_endian
    );
}

#[test]
fn gzipped_4d_nifti1_with_qform_and_sform() {
    check_against_nibabel("nifti/example4d.nii.gz");
    let hdr = nifti::read_header(&fixture("nifti/example4d.nii.gz")).unwrap();
    assert_eq!(hdr.affine_source, AffineSource::Sform);
    // The qform of this file encodes the same oblique geometry as its sform.
    let (q, s) = (hdr.qform.unwrap(), hdr.sform.unwrap());
    assert!(q.max_abs_diff(&s) < 1e-4, "{q:?} vs {s:?}");
}

#[test]
fn nifti2() {
    check_against_nibabel("nifti/example_nifti2.nii.gz");
}

#[test]
fn uint8_with_sform_only() {
    check_against_nibabel("nifti/standard.nii.gz");
    let labels: Volume<u8> =
        nifti::read(&fixture("nifti/standard.nii.gz"), &ReadOptions::default()).unwrap();
    assert_eq!(labels.data().iter().filter(|&&v| v == 255).count(), 30);
}

#[test]
fn four_d_needs_a_volume_index() {
    let path = fixture("nifti/example4d.nii.gz");
    let err = nifti::read::<f32>(&path, &ReadOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Request { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("example4d.nii.gz") && msg.contains("2 volumes"),
        "{msg}"
    );
    let err = nifti::read::<f32>(&path, &ReadOptions { volume: Some(2) }).unwrap_err();
    assert!(err.to_string().contains("volume 2 requested"), "{err}");
}

#[test]
fn int16_reads_exactly_and_u8_refuses_out_of_range_values() {
    let path = fixture("nifti/anatomical.nii");
    let v: Volume<i16> = nifti::read(&path, &ReadOptions::default()).unwrap();
    assert_eq!(v.get(0, 0, 0), Some(10712));
    let err = nifti::read::<u8>(&path, &ReadOptions::default()).unwrap_err();
    assert!(
        err.to_string().contains("cannot be stored as uint8"),
        "{err}"
    );
}

fn expect_invalid(name: &str, bytes: &[u8], needle: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    let err = nifti::read::<f32>(&path, &ReadOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(name) && msg.contains(needle), "{msg}");
    assert!(err.is_bad_input());
    let err = nifti::read_bytes::<f32>(&path, bytes, &ReadOptions::default()).unwrap_err();
    assert!(err.to_string().contains(needle), "{err}");
}

#[test]
fn truncated_and_foreign_files_are_errors() {
    let good = std::fs::read(fixture("nifti/anatomical.nii")).unwrap();
    expect_invalid("truncated.nii", &good[..good.len() - 100], "67650 expected");
    expect_invalid("header_only.nii", &good[..200], "truncated");
    expect_invalid("empty.nii", b"", "too short");
    expect_invalid(
        "text.nii",
        b"hello, this is not an image at all........",
        "sizeof_hdr",
    );
    let mut bad_magic = good.clone();
    bad_magic[344..348].copy_from_slice(b"abcd");
    expect_invalid("magic.nii", &bad_magic, "magic");
    let mut bad_dim = good.clone();
    // anatomical.nii is big-endian: dim[0] lives at bytes 40..42.
    bad_dim[40..42].copy_from_slice(&9i16.to_be_bytes());
    expect_invalid("dims.nii", &bad_dim, "dim[0] is 9");
    let gz = std::fs::read(fixture("nifti/example_nifti2.nii.gz")).unwrap();
    expect_invalid("cut.nii.gz", &gz[..gz.len() / 2], "gzip");
    let mut rgb = good;
    rgb[70..72].copy_from_slice(&128i16.to_be_bytes());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rgb.nii");
    std::fs::write(&path, &rgb).unwrap();
    let err = nifti::read::<f32>(&path, &ReadOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    let missing = dir.path().join("missing.nii");
    let err = nifti::read::<f32>(&missing, &ReadOptions::default()).unwrap_err();
    assert!(
        err.to_string().contains("missing.nii") && err.is_bad_input(),
        "{err}"
    );
}

/// `read_ct` keeps unscaled int16 as int16 (same values as a float read)
/// and reads other types, and scaled int16, as float32.
#[test]
fn read_ct_keeps_unscaled_int16_and_floats_the_rest() {
    let opts = ReadOptions::default();
    let path = fixture("nifti/anatomical.nii");
    let as_f32: Volume<f32> = nifti::read(&path, &opts).unwrap();
    match nifti::read_ct(&path, &opts).unwrap() {
        nifti::Ct::I16(v) => {
            assert_eq!(v.dims(), as_f32.dims());
            assert_eq!(v.affine(), as_f32.affine());
            assert!(
                v.data()
                    .iter()
                    .zip(as_f32.data())
                    .all(|(a, b)| f32::from(*a) == *b)
            );
        }
        other => panic!("big-endian int16 read as {other:?}"),
    }
    let u8_path = fixture("nifti/standard.nii.gz");
    assert!(matches!(
        nifti::read_ct(&u8_path, &opts).unwrap(),
        nifti::Ct::F32(_)
    ));
    // The same int16 data with a slope of 0.5: scaled, so float32.
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    // scl_slope is the big-endian float32 at byte 112 of a NIfTI-1 header.
    bytes[112..116].copy_from_slice(&0.5f32.to_be_bytes());
    let scaled = dir.path().join("scaled.nii");
    std::fs::write(&scaled, bytes).unwrap();
    match nifti::read_ct(&scaled, &opts).unwrap() {
        nifti::Ct::F32(v) => {
            assert!(
                v.data()
                    .iter()
                    .zip(as_f32.data())
                    .all(|(a, b)| *a == b * 0.5)
            );
        }
        other => panic!("scaled int16 read as {other:?}"),
    }
}
