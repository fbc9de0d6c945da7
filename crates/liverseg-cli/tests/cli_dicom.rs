//! `liverseg info` and `liverseg convert` on DICOM: every fixture agrees
//! with pydicom's reading (manifest.json), and NIfTI → DICOM → NIfTI and
//! label → SEG → label round trips through the binary are exact.

mod common;
use common::liverseg;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../liverseg-io/tests/fixtures")
        .join(rel)
}

fn manifest(rel: &str) -> Value {
    let text = std::fs::read_to_string(fixture("manifest.json")).unwrap();
    serde_json::from_str::<Value>(&text).unwrap()[rel].clone()
}

fn ok(args: &[&str]) -> Output {
    let o = liverseg(args);
    assert!(
        o.status.success(),
        "liverseg {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn info(path: &Path) -> Value {
    serde_json::from_slice(&ok(&["info", "--json", path.to_str().unwrap()]).stdout).unwrap()
}

fn close(a: &Value, b: f64, tol: f64) -> bool {
    (a.as_f64().unwrap() - b).abs() <= tol * b.abs().max(1.0)
}

#[test]
fn info_agrees_with_pydicom_on_every_image_fixture() {
    for rel in [
        "dicom/CT_small.dcm",
        "dicom/MR_small.dcm",
        "dicom/MR_small_RLE.dcm",
        "dicom/MR_small_bigendian.dcm",
        "dicom/MR_small_implicit.dcm",
        "dicom/MR_small_jp2klossless.dcm",
        "dicom/MR_small_jpeg_ls_lossless.dcm",
        "dicom/emri_small.dcm",
    ] {
        let m = manifest(rel);
        let v = info(&fixture(rel));
        let frames = m["frames"].as_u64().unwrap();
        let want_shape = serde_json::json!([m["columns"], m["rows"], frames]);
        assert_eq!(v["shape"], want_shape, "{rel}");
        let stats = if m.get("rescaled").is_some() {
            &m["rescaled"]
        } else {
            &m["stored"]
        };
        for k in ["min", "max", "mean"] {
            assert!(
                close(&v[k], stats[k].as_f64().unwrap(), 1e-3),
                "{rel} {k}: {} vs {}",
                v[k],
                stats[k]
            );
        }
        if let Some(ps) = m["PixelSpacing"].as_array() {
            // PixelSpacing is (row spacing, column spacing): x spacing is the second.
            assert!(
                close(&v["spacing"][0], ps[1].as_f64().unwrap(), 1e-4),
                "{rel}"
            );
            assert!(
                close(&v["spacing"][1], ps[0].as_f64().unwrap(), 1e-4),
                "{rel}"
            );
            let ipp = m["ImagePositionPatient"].as_array().unwrap();
            // RAS origin = (-x, -y, z) of the LPS position.
            assert!(
                close(&v["affine"][0][3], -ipp[0].as_f64().unwrap(), 1e-4),
                "{rel}"
            );
            assert!(
                close(&v["affine"][1][3], -ipp[1].as_f64().unwrap(), 1e-4),
                "{rel}"
            );
            assert!(
                close(&v["affine"][2][3], ipp[2].as_f64().unwrap(), 1e-4),
                "{rel}"
            );
        }
    }
}

#[test]
fn info_on_series_and_seg_fixtures() {
    let m = manifest("dicom/series_ct5n");
    let v = info(&fixture("dicom/series_ct5n"));
    assert_eq!(v["format"], "dicom-series");
    assert_eq!(v["shape"], m["shape_ijk"]);
    for r in 0..4 {
        for c in 0..4 {
            assert!(close(
                &v["affine"][r][c],
                m["affine_ras"][r][c].as_f64().unwrap(),
                1e-4
            ));
        }
    }
    assert!(close(&v["mean"], m["hu"]["mean"].as_f64().unwrap(), 1e-3));
    let seg = info(&fixture("dicom/liver_1frame.dcm"));
    assert_eq!(seg["format"], "dicom-seg");
    assert_eq!(
        seg["segments"],
        serde_json::json!([{"number": 1, "label": "Liver"}])
    );
    assert_eq!(seg["frames"], 1);
    let ms = manifest("dicom/liver_1frame.dcm");
    assert!(close(
        &seg["mean"],
        ms["stored"]["mean"].as_f64().unwrap(),
        1e-3
    ));
    for c in 0..4 {
        assert!(close(
            &seg["affine"][0][c],
            ms["affine_ras"][0][c].as_f64().unwrap(),
            1e-4
        ));
    }
}

#[test]
fn series_to_nifti_to_series_to_nifti_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (a, series, b) = (d.join("a.nii.gz"), d.join("series"), d.join("b.nii.gz"));
    let src = fixture("dicom/series_ct5n");
    ok(&["convert", src.to_str().unwrap(), a.to_str().unwrap()]);
    ok(&[
        "convert",
        a.to_str().unwrap(),
        series.to_str().unwrap(),
        "--reference",
        src.to_str().unwrap(),
    ]);
    ok(&["convert", series.to_str().unwrap(), b.to_str().unwrap()]);
    let (ia, ib) = (info(&a), info(&b));
    assert_eq!(ia["shape"], ib["shape"]);
    assert_eq!(ib["dtype"], "int16");
    for k in ["min", "max", "mean"] {
        assert_eq!(ia[k], ib[k], "{k}");
    }
    for r in 0..4 {
        for c in 0..4 {
            assert!(close(
                &ib["affine"][r][c],
                ia["affine"][r][c].as_f64().unwrap(),
                1e-5
            ));
        }
    }
    // The written series kept the reference's patient and study.
    let s = info(&series);
    assert_eq!(s["format"], "dicom-series");
    assert_eq!(s["images"], 5);
}

#[test]
fn label_to_seg_to_label_is_exact_and_needs_the_reference_grid() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let src = fixture("dicom/series_ct5n");
    let ct = d.join("ct.nii.gz");
    ok(&["convert", src.to_str().unwrap(), ct.to_str().unwrap()]);
    // A label built from the CT itself: 1 where HU > -200, 2 where HU > 40.
    let label = d.join("label.nii.gz");
    let py_free_label = {
        // Write the label with the library so the test needs no Python.
        use liverseg_io::{Volume, nifti};
        let v: Volume<f32> = nifti::read(&ct, &nifti::ReadOptions::default()).unwrap();
        let l = v.map(|hu| u8::from(hu > -200.0) + u8::from(hu > 40.0));
        nifti::write(&label, &l, &nifti::WriteOptions::default()).unwrap();
        l
    };
    assert!(
        py_free_label.data().contains(&2),
        "the test label must hold both classes"
    );
    let seg = d.join("seg.dcm");
    let o = liverseg(&[
        "convert",
        "--seg",
        label.to_str().unwrap(),
        seg.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "--seg without --reference is a usage error"
    );
    assert!(!seg.exists());
    ok(&[
        "convert",
        "--seg",
        label.to_str().unwrap(),
        seg.to_str().unwrap(),
        "--reference",
        src.to_str().unwrap(),
    ]);
    let s = info(&seg);
    assert_eq!(s["format"], "dicom-seg");
    assert_eq!(s["segments"][0]["label"], "Liver");
    assert_eq!(s["segments"][1]["label"], "Liver tumour");
    let back = d.join("back.nii.gz");
    ok(&[
        "convert",
        seg.to_str().unwrap(),
        back.to_str().unwrap(),
        "--reference",
        src.to_str().unwrap(),
    ]);
    use liverseg_io::{Volume, nifti};
    let b: Volume<u8> = nifti::read(&back, &nifti::ReadOptions::default()).unwrap();
    assert_eq!(b.dims(), py_free_label.dims());
    assert!(
        b.data() == py_free_label.data(),
        "label -> SEG -> label changed voxels"
    );
    assert!(b.affine().max_abs_diff(py_free_label.affine()) < 1e-4);
    // A label on another grid is refused, naming the file.
    let shifted = d.join("shifted.nii.gz");
    let moved = py_free_label
        .clone()
        .with_affine({
            let mut a = *py_free_label.affine();
            a.0[0][3] += 1.0;
            a
        })
        .unwrap();
    nifti::write(&shifted, &moved, &nifti::WriteOptions::default()).unwrap();
    let seg2 = d.join("seg2.dcm");
    let o = liverseg(&[
        "convert",
        "--seg",
        shifted.to_str().unwrap(),
        seg2.to_str().unwrap(),
        "--reference",
        src.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("shifted.nii.gz"));
    assert!(!seg2.exists());
}

#[test]
fn dicom_errors_exit_2_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.nii.gz");
    let o = liverseg(&[
        "convert",
        fixture("dicom/MR_truncated.dcm").to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let msg = String::from_utf8_lossy(&o.stderr);
    assert!(
        msg.contains("MR_truncated.dcm") && msg.contains("8130") && msg.contains("8192"),
        "{msg}"
    );
    assert!(!out.exists());
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let o = liverseg(&["info", empty.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = liverseg(&[
        "convert",
        fixture("dicom/series_ct5n").to_str().unwrap(),
        dir.path().join("x.dcm").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
}

/// A 2-D image that does not say where it lies (pydicom's
/// JPEGLSNearLossless_08.dcm: 10 x 45, pixel sum 25000): `info` describes it
/// with the geometry it assumed; `predict` refuses it (exit 2, nothing
/// written), since a mask of it could not be placed either.
#[test]
fn a_2d_image_without_position_is_described_but_not_segmented() {
    let f = fixture("dicom/JPEGLSNearLossless_08.dcm");
    let v = info(&f);
    assert_eq!(v["shape"], serde_json::json!([10, 45, 1]));
    assert!(close(&v["mean"], 25000.0 / 450.0, 1e-6), "{}", v["mean"]);
    let geometry = v["geometry"].as_str().unwrap();
    assert!(geometry.starts_with("assumed"), "{geometry}");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("mask.nii.gz");
    let o = liverseg(&[
        "predict",
        "--input",
        f.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("ImagePositionPatient"));
    assert!(!out.exists());
}
