//! End-to-end tests of the `liverseg` binary: output, exit codes, and that
//! nothing is written over inputs or existing files.

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

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn info_json(path: &Path) -> Value {
    let out = liverseg(&["info", "--json", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn assert_close(got: &Value, want: &Value, tol: f64, what: &str) {
    let (g, w) = (got.as_f64().unwrap(), want.as_f64().unwrap());
    assert!(
        (g - w).abs() <= tol * w.abs().max(1.0),
        "{what}: {g} vs {w}"
    );
}

#[test]
fn info_json_matches_nibabel_for_every_nifti_fixture() {
    for rel in [
        "nifti/anatomical.nii",
        "nifti/example4d.nii.gz",
        "nifti/example_nifti2.nii.gz",
        "nifti/standard.nii.gz",
    ] {
        let m = manifest(rel);
        let v = info_json(&fixture(rel));
        assert_eq!(v["shape"], m["shape"], "{rel}");
        let version = m["version"].as_u64().unwrap();
        assert_eq!(v["format"], format!("nifti{version}"), "{rel}");
        let want_dtype = m["datatype"]
            .as_str()
            .unwrap()
            .trim_start_matches(['>', '<']);
        let want_dtype = if want_dtype == "i2" {
            "int16"
        } else {
            want_dtype
        };
        assert_eq!(v["dtype"], want_dtype, "{rel}");
        for r in 0..4 {
            for c in 0..4 {
                assert_close(&v["affine"][r][c], &m["affine"][r][c], 1e-4, rel);
            }
        }
        for k in ["min", "max", "mean"] {
            assert_close(&v[k], &m["scaled"][k], 1e-3, &format!("{rel} {k}"));
        }
        for i in 0..3 {
            assert_close(&v["spacing"][i], &m["pixdim"][i], 1e-4, rel);
        }
    }
}

#[test]
fn convert_nifti_to_nifti_keeps_voxels_geometry_and_dtype() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("copy.nii");
    let src = fixture("nifti/anatomical.nii");
    let o = liverseg(&["convert", src.to_str().unwrap(), out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (a, b) = (info_json(&src), info_json(&out));
    assert_eq!(a["shape"], b["shape"]);
    assert_eq!(b["dtype"], "int16");
    assert_eq!(a["affine"], b["affine"]);
    for k in ["min", "max", "mean"] {
        assert_eq!(a[k], b[k], "{k}");
    }
}

#[test]
fn refuses_to_overwrite_without_force_and_never_writes_over_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("in.nii.gz");
    std::fs::copy(fixture("nifti/standard.nii.gz"), &src).unwrap();
    let out = dir.path().join("out.nii.gz");
    std::fs::write(&out, b"keep me").unwrap();
    let o = liverseg(&["convert", src.to_str().unwrap(), out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("out.nii.gz"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me");
    let o = liverseg(&[
        "convert",
        "--force",
        src.to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(info_json(&out)["dtype"], "uint8");
    let before = std::fs::read(&src).unwrap();
    let o = liverseg(&[
        "convert",
        "--force",
        src.to_str().unwrap(),
        src.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("input"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&src).unwrap(), before);
    // Only the input, the output and nothing temporary.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
}

#[test]
fn bad_input_exits_2_with_a_message_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.nii");
    std::fs::write(&junk, vec![7u8; 400]).unwrap();
    let o = liverseg(&["info", junk.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let msg = stderr(&o);
    assert!(
        msg.contains("junk.nii") && msg.contains("sizeof_hdr"),
        "{msg}"
    );
    assert_eq!(msg.lines().count(), 1, "one-line message: {msg}");
    let o = liverseg(&["info", dir.path().join("missing.nii").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let o = liverseg(&["info"]);
    assert_eq!(o.status.code(), Some(2), "usage error");
    let out = dir.path().join("x.nii.gz");
    let o = liverseg(&["convert", junk.to_str().unwrap(), out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!out.exists(), "no output left behind");
}

#[test]
fn import_monai_writes_a_self_describing_model_file() {
    let pth =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../liverseg-model/tests/golden/unet_small.pth");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.safetensors");
    let p = pth.to_str().unwrap();
    let o = out.to_str().unwrap();
    // The tutorial defaults do not fit this small network: bad input.
    let r = liverseg(&["import-monai", p, "--out", o]);
    assert_eq!(r.status.code(), Some(2), "{}", stderr(&r));
    assert!(stderr(&r).contains("weights do not fit"), "{}", stderr(&r));
    assert!(!out.exists());
    let args = [
        "import-monai",
        p,
        "--out",
        o,
        "--channels",
        "4,8,16",
        "--strides",
        "2,2",
        "--norm",
        "instance",
    ];
    let r = liverseg(&args);
    assert!(r.status.success(), "{}", stderr(&r));
    let file = liverseg_model::ModelFile::load(&out, &candle_core::Device::Cpu).unwrap();
    match file.architecture {
        liverseg_model::Architecture::MonaiUnet(cfg) => assert_eq!(cfg.channels, vec![4, 8, 16]),
        other => panic!("unexpected architecture {other:?}"),
    }
    let r = liverseg(&args);
    assert_eq!(r.status.code(), Some(2), "no overwrite without --force");
}
