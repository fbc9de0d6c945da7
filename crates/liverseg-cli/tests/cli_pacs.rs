//! liverseg against a real PACS (Debian's Orthanc with its DICOMweb
//! plugin, started per test from `deploy/orthanc/orthanc.json`): a
//! synthetic CT series uploaded through Orthanc's REST API is segmented
//! from Orthanc's DICOMweb into Orthanc's DICOMweb, and the SEG and RT
//! Structure Set appear in the same study, valid for `dciodvfy` and
//! readable by highdicom.

mod common;

use common::orthanc::{Orthanc, PASSWORD, USER};
use common::{liverseg, ok, s, tool_available};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/predict")
        .join(name)
}

/// The golden small MONAI model (4, 8, 16 channels) and the golden CT as a
/// DICOM series, in `dir`.
fn model_and_series(dir: &Path) -> (PathBuf, PathBuf) {
    let model = dir.join("model.safetensors");
    let pth = golden("unet.pth");
    ok(&liverseg(&[
        "import-monai",
        s(&pth),
        "--out",
        s(&model),
        "--channels",
        "4,8,16",
        "--strides",
        "2,2",
    ]));
    let series = dir.join("series");
    ok(&liverseg(&["convert", s(&golden("ct.nii.gz")), s(&series)]));
    (model, series)
}

/// `liverseg predict` with the small model and DICOMweb credentials.
fn predict(model: &Path, input: &str, output: &str, auth: &str, extra: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_liverseg"));
    c.args([
        "predict",
        "--model",
        s(model),
        "--input",
        input,
        "--output",
        output,
    ])
    .args(["--preprocess", "none", "--roi", "32,32,16"])
    .args(extra)
    .env("LIVERSEG_DICOMWEB_AUTH", auth)
    .env_remove("LIVERSEG_DICOMWEB_AUTH_FILE");
    c.output().unwrap()
}

/// `dciodvfy`'s errors on a file (none expected).
fn dciodvfy_errors(file: &Path) -> Vec<String> {
    if !tool_available("dciodvfy", Command::new("dciodvfy").arg("-version")) {
        return Vec::new();
    }
    let out = Command::new("dciodvfy").arg(file).output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter(|l| l.starts_with("Error"))
        .map(str::to_string)
        .collect()
}

/// highdicom's reading of a SEG: its referenced series and segment labels.
fn highdicom_reads(seg: &Path, rtstruct: &Path) -> Option<serde_json::Value> {
    let probe = &mut Command::new("python3");
    probe.args(["-c", "import highdicom, pydicom"]);
    if !tool_available("python3 with highdicom", probe) {
        return None;
    }
    let script = r#"
import json, sys, highdicom, pydicom
seg = highdicom.seg.segread(sys.argv[1])
rt = pydicom.dcmread(sys.argv[2])
print(json.dumps({
  "study": seg.StudyInstanceUID,
  "series": [s.SeriesInstanceUID for s in seg.ReferencedSeriesSequence],
  "labels": [d.SegmentLabel for d in seg.SegmentSequence],
  "frames": int(seg.NumberOfFrames),
  "rt_study": rt.StudyInstanceUID,
  "rt_series": rt.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0].RTReferencedSeriesSequence[0].SeriesInstanceUID,
  "rois": [r.ROIName for r in rt.StructureSetROISequence],
}))
"#;
    let out = Command::new("python3")
        .args(["-c", script, s(seg), s(rtstruct)])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

#[test]
fn dicomweb_in_and_out_puts_seg_and_rtstruct_into_the_study() {
    let Some(pacs) = Orthanc::start(common::orthanc::free_port()) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (model, series) = model_and_series(tmp.path());
    let study_id = pacs.upload_dir(&series);
    let (study, series_uids) = pacs.uids(&study_id);
    assert_eq!(series_uids.len(), 1);
    let auth = format!("basic {USER}:{PASSWORD}");
    let series_url = format!(
        "{}/studies/{study}/series/{}",
        pacs.dicomweb(),
        series_uids[0]
    );

    // Series in, SEG and RTSTRUCT stored back with STOW-RS.
    let o = predict(
        &model,
        &series_url,
        &pacs.dicomweb(),
        &auth,
        &["--format", "seg,rtstruct"],
    );
    ok(&o);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("stored 2 instance(s)"), "{stdout}");
    let by_modality: Vec<(String, String)> = pacs.series_of_study(&study_id);
    let mut modalities: Vec<&str> = by_modality.iter().map(|(_, m)| m.as_str()).collect();
    modalities.sort();
    assert_eq!(modalities, ["CT", "RTSTRUCT", "SEG"]);
    let fetch = |modality: &str, name: &str| {
        let (id, _) = by_modality.iter().find(|(_, m)| m == modality).unwrap();
        let p = tmp.path().join(name);
        std::fs::write(&p, pacs.first_instance(id)).unwrap();
        p
    };
    let seg = fetch("SEG", "seg.dcm");
    let rt = fetch("RTSTRUCT", "rt.dcm");
    assert_eq!(dciodvfy_errors(&seg), Vec::<String>::new());
    assert_eq!(dciodvfy_errors(&rt), Vec::<String>::new());
    if let Some(h) = highdicom_reads(&seg, &rt) {
        assert_eq!(h["study"], study.as_str());
        assert_eq!(h["series"], serde_json::json!([series_uids[0]]));
        assert_eq!(h["rt_study"], study.as_str());
        assert_eq!(h["rt_series"], series_uids[0].as_str());
        assert_eq!(h["labels"], serde_json::json!(["Liver"]));
        assert_eq!(h["rois"], serde_json::json!(["Liver"]));
    }
    // The SEG from the PACS is the mask a local run writes.
    let local_seg = tmp.path().join("local.dcm");
    ok(&predict(
        &model,
        s(&series),
        s(&local_seg),
        &auth,
        &["--format", "seg"],
    ));
    let ct: liverseg_io::Volume<f32> =
        liverseg_io::dicom::read(&series, &Default::default()).unwrap();
    let grid = Some((ct.dims(), ct.affine()));
    let a = liverseg_io::dicom::read_seg(&seg, grid)
        .unwrap()
        .label_map()
        .unwrap()
        .unwrap();
    let b = liverseg_io::dicom::read_seg(&local_seg, grid)
        .unwrap()
        .label_map()
        .unwrap()
        .unwrap();
    assert_eq!(a.data(), b.data());
    assert!(a.data().contains(&1));

    // A study URL finds its CT series with QIDO-RS (the SEG and RTSTRUCT
    // now in it are not CT); the mask is written locally.
    let nii = tmp.path().join("from_study.nii.gz");
    let study_url = format!("{}/studies/{study}", pacs.dicomweb());
    ok(&predict(&model, &study_url, s(&nii), &auth, &[]));
    let m: liverseg_io::Volume<u8> = liverseg_io::nifti::read(&nii, &Default::default()).unwrap();
    assert_eq!(m.data(), a.data());
    // A filter that matches nothing is bad input.
    let o = predict(
        &model,
        &format!("{study_url}?Modality=MR"),
        s(&tmp.path().join("x.nii.gz")),
        &auth,
        &[],
    );
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // Wrong credentials: a runtime failure naming the status, never the
    // password; nothing is stored.
    let o = predict(
        &model,
        &series_url,
        &pacs.dicomweb(),
        "basic liverseg:wrong-secret",
        &["--format", "seg"],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("HTTP 401"), "{err}");
    assert!(!err.contains("wrong-secret"), "{err}");
    assert_eq!(pacs.series_of_study(&study_id).len(), 3);
    // A NIfTI cannot go to a PACS; plain http to another machine is refused.
    let o = predict(
        &model,
        &series_url,
        &pacs.dicomweb(),
        &auth,
        &["--format", "nifti"],
    );
    assert_eq!(o.status.code(), Some(2));
    let o = predict(
        &model,
        "http://pacs.example/dicom-web/studies/1.2/series/1.3",
        s(&nii),
        &auth,
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("use https"));
}
