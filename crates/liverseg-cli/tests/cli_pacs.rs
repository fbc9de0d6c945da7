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

/// The node's settings for a test: Orthanc allowed and answered back.
fn node_toml(dir: &Path, port: u16, model: &Path, pacs: &Orthanc) -> PathBuf {
    let p = dir.join("node.toml");
    let text = format!(
        r#"ae_title = "LIVERSEG"
bind = "127.0.0.1"
port = {port}
spool = "{spool}"
model = "{model}"
formats = ["seg", "rtstruct"]
quiet_seconds = 1
retry_seconds = 1

[[allow]]
ae_title = "ORTHANC"
host = "127.0.0.1"
port = {pacs_port}
"#,
        spool = dir.join("spool").display(),
        model = model.display(),
        pacs_port = pacs.dicom_port,
    );
    std::fs::write(&p, text).unwrap();
    p
}

/// A running `liverseg serve`, killed (SIGKILL) when dropped.
struct Node(std::process::Child);

impl Node {
    fn start(config: &Path, port: u16) -> Node {
        let child = Command::new(env!("CARGO_BIN_EXE_liverseg"))
            .args(["serve", "--config", s(config)])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let t0 = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(t0.elapsed().as_secs() < 30, "the node did not start");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Node(child)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The spool's series states.
fn states(spool: &Path) -> Vec<serde_json::Value> {
    let Ok(dir) = std::fs::read_dir(spool.join("state")) else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let p = e.ok()?.path();
        (p.extension()? == "json").then(|| serde_json::from_slice(&std::fs::read(p).ok()?).ok())?
    })
    .collect()
}

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let t0 = std::time::Instant::now();
    while !f() {
        assert!(
            t0.elapsed().as_secs() < secs,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// One implicit VR little endian element.
fn element(out: &mut Vec<u8>, elem: u16, value: &[u8]) {
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&elem.to_le_bytes());
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(value);
}

/// A C-STORE-RQ command set, written by hand from PS3.7 §9.3.1.1.
fn c_store_rq(class: &str, instance: &str) -> Vec<u8> {
    let uid = |u: &str| {
        let mut v = u.as_bytes().to_vec();
        if v.len() % 2 == 1 {
            v.push(0);
        }
        v
    };
    let mut body = Vec::new();
    element(&mut body, 0x0002, &uid(class));
    element(&mut body, 0x0100, &1u16.to_le_bytes());
    element(&mut body, 0x0110, &1u16.to_le_bytes());
    element(&mut body, 0x0700, &0u16.to_le_bytes());
    element(&mut body, 0x0800, &0u16.to_le_bytes());
    element(&mut body, 0x1000, &uid(instance));
    let mut out = Vec::new();
    element(&mut out, 0x0000, &(body.len() as u32).to_le_bytes());
    out.extend(body);
    out
}

/// The Status (0000,0900) of a response command set.
fn status_of(cmd: &[u8]) -> u16 {
    let mut i = 0;
    while i + 8 <= cmd.len() {
        let elem = u16::from_le_bytes([cmd[i + 2], cmd[i + 3]]);
        let len = u32::from_le_bytes(cmd[i + 4..i + 8].try_into().unwrap()) as usize;
        if elem == 0x0900 {
            return u16::from_le_bytes([cmd[i + 8], cmd[i + 9]]);
        }
        i += 8 + len;
    }
    panic!("no status in the response");
}

/// An association to the node as ORTHANC, proposing CT image storage.
fn associate(port: u16) -> dicom_ul::ClientAssociation<std::net::TcpStream> {
    dicom_ul::ClientAssociationOptions::new()
        .calling_ae_title("ORTHANC")
        .called_ae_title("LIVERSEG")
        .with_presentation_context("1.2.840.10008.5.1.4.1.1.2", vec!["1.2.840.10008.1.2.1"])
        .establish_with(&format!("LIVERSEG@127.0.0.1:{port}"))
        .unwrap()
}

fn pdv(data: Vec<u8>, command: bool, is_last: bool) -> dicom_ul::pdu::Pdu {
    use dicom_ul::pdu::{PDataValue, PDataValueType, Pdu};
    Pdu::PData {
        data: vec![PDataValue {
            presentation_context_id: 1,
            value_type: if command {
                PDataValueType::Command
            } else {
                PDataValueType::Data
            },
            is_last,
            data,
        }],
    }
}

/// The SEG and RTSTRUCT instances in a study (Orthanc ID), by modality.
fn results_in_study(pacs: &Orthanc, study: &str) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = pacs
        .series_of_study(study)
        .into_iter()
        .filter(|(_, m)| m != "CT")
        .map(|(id, m)| {
            let n = pacs
                .get_json(&format!("/series/{id}/instances"))
                .unwrap()
                .as_array()
                .unwrap()
                .len();
            (m, n)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn the_dicom_node_segments_what_orthanc_sends_once_across_kills() {
    let port = common::orthanc::free_port();
    let Some(pacs) = Orthanc::start(port) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (model, series) = model_and_series(tmp.path());
    let config = node_toml(tmp.path(), port, &model, &pacs);
    let spool = tmp.path().join("spool");
    let study = pacs.upload_dir(&series);
    let ct_series = pacs.series_of_study(&study)[0].0.clone();

    // C-ECHO from an allowed AE; an unknown calling AE is rejected.
    let node = Node::start(&config, port);
    let echo = pacs.post("/modalities/LIVERSEG/echo", b"{}");
    assert!(echo.is_object(), "{echo}");
    if tool_available("echoscu (dcmtk)", Command::new("echoscu").arg("--version")) {
        let echo_as = |aet: &str| {
            Command::new("echoscu")
                .args([
                    "-aet",
                    aet,
                    "-aec",
                    "LIVERSEG",
                    "127.0.0.1",
                    &port.to_string(),
                ])
                .output()
                .unwrap()
                .status
                .success()
        };
        assert!(!echo_as("INTRUDER"), "an unknown AE was let in");
        assert!(echo_as("ORTHANC"));
    }

    // A bad object is refused with a DIMSE status; the node carries on.
    let mut a = associate(port);
    a.send(&pdv(
        c_store_rq("1.2.840.10008.5.1.4.1.1.2", "1.2.3.4"),
        true,
        true,
    ))
    .unwrap();
    a.send(&pdv(b"not a data set at all".to_vec(), false, true))
        .unwrap();
    let dicom_ul::pdu::Pdu::PData { data } = a.receive().unwrap() else {
        panic!()
    };
    assert_eq!(status_of(&data[0].data), 0xC000);
    let _ = a.release();

    // Kill the node while it segments: after a restart the series is
    // segmented again and its results sent once.
    pacs.post("/modalities/LIVERSEG/store", ct_series.as_bytes());
    wait_for("the series to be segmented", 60, || {
        states(&spool).iter().any(|s| s["stage"] == "running")
    });
    drop(node);
    assert_eq!(states(&spool)[0]["stage"], "running");
    assert!(results_in_study(&pacs, &study).is_empty());
    let node = Node::start(&config, port);
    wait_for("the results to be sent", 60, || {
        states(&spool).iter().all(|s| s["stage"] == "done")
    });
    assert_eq!(
        results_in_study(&pacs, &study),
        [("RTSTRUCT".to_string(), 1), ("SEG".to_string(), 1)]
    );
    assert_eq!(states(&spool)[0]["sent"].as_array().unwrap().len(), 2);

    // Kill the node during a transfer: half an instance in flight.
    let second = tmp.path().join("second");
    ok(&liverseg(&["convert", s(&golden("ct.nii.gz")), s(&second)]));
    let study2 = pacs.upload_dir(&second);
    let first_file = std::fs::read_dir(&second)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "dcm"))
        .unwrap();
    let bytes = std::fs::read(&first_file).unwrap();
    let mut f = std::io::Cursor::new(&bytes[128..]);
    let meta = dicom_object::FileMetaTable::from_reader(&mut f).unwrap();
    let data = bytes[128 + f.position() as usize..].to_vec();
    let mut a = associate(port);
    a.send(&pdv(
        c_store_rq(
            meta.media_storage_sop_class_uid(),
            meta.media_storage_sop_instance_uid(),
        ),
        true,
        true,
    ))
    .unwrap();
    a.send(&pdv(data[..data.len() / 2].to_vec(), false, false))
        .unwrap();
    wait_for("the partial instance", 30, || {
        std::fs::read_dir(spool.join("incoming")).unwrap().count() == 1
    });
    drop(node);
    drop(a);
    let node = Node::start(&config, port);
    assert_eq!(
        std::fs::read_dir(spool.join("incoming")).unwrap().count(),
        0
    );
    assert_eq!(states(&spool).len(), 1, "a partial instance was admitted");
    let series2 = pacs.series_of_study(&study2)[0].0.clone();
    pacs.post("/modalities/LIVERSEG/store", series2.as_bytes());
    wait_for("the second series", 60, || {
        let st = states(&spool);
        st.len() == 2 && st.iter().all(|s| s["stage"] == "done")
    });
    assert_eq!(
        results_in_study(&pacs, &study2),
        [("RTSTRUCT".to_string(), 1), ("SEG".to_string(), 1)]
    );
    // Nothing more is sent for the first study, and the results are
    // valid DICOM that highdicom reads.
    assert_eq!(results_in_study(&pacs, &study).len(), 2);
    let (seg_id, _) = pacs
        .series_of_study(&study2)
        .into_iter()
        .find(|(_, m)| m == "SEG")
        .unwrap();
    let (rt_id, _) = pacs
        .series_of_study(&study2)
        .into_iter()
        .find(|(_, m)| m == "RTSTRUCT")
        .unwrap();
    let seg = tmp.path().join("node_seg.dcm");
    let rt = tmp.path().join("node_rt.dcm");
    std::fs::write(&seg, pacs.first_instance(&seg_id)).unwrap();
    std::fs::write(&rt, pacs.first_instance(&rt_id)).unwrap();
    assert_eq!(dciodvfy_errors(&seg), Vec::<String>::new());
    assert_eq!(dciodvfy_errors(&rt), Vec::<String>::new());
    if let Some(h) = highdicom_reads(&seg, &rt) {
        assert_eq!(h["labels"], serde_json::json!(["Liver"]));
    }
    // The status lists both series as done.
    let o = liverseg(&["serve", "--config", s(&config), "--status"]);
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stdout).contains("2 series: 2 done"));
    drop(node);

    // Limits: an instance over max_object_mb is refused with 0xA700
    // (out of resources) and nothing is admitted.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("quiet_seconds = 1", "quiet_seconds = 1\nmax_object_mb = 0"),
    )
    .unwrap();
    let _node = Node::start(&config, port);
    let mut a = associate(port);
    a.send(&pdv(
        c_store_rq(meta.media_storage_sop_class_uid(), "1.2.999.1"),
        true,
        true,
    ))
    .unwrap();
    a.send(&pdv(data.clone(), false, true)).unwrap();
    let dicom_ul::pdu::Pdu::PData { data: answer } = a.receive().unwrap() else {
        panic!()
    };
    assert_eq!(status_of(&answer[0].data), 0xA700);
    let _ = a.release();
    assert_eq!(states(&spool).len(), 2);
    assert_eq!(
        std::fs::read_dir(spool.join("incoming")).unwrap().count(),
        0
    );
}

/// A test CA and a server certificate it signed for 127.0.0.1, made with
/// openssl: (server PEM with its key, CA PEM); `None` without openssl.
fn certificates(dir: &Path) -> Option<(PathBuf, PathBuf)> {
    if !tool_available("openssl", Command::new("openssl").arg("version")) {
        return None;
    }
    let run = |args: &[&str]| {
        let o = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=liverseg test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "srv.key",
        "-out",
        "srv.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "srv.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "srv.crt",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    let mut pem = std::fs::read(dir.join("srv.key")).unwrap();
    pem.extend(std::fs::read(dir.join("srv.crt")).unwrap());
    std::fs::write(dir.join("server.pem"), pem).unwrap();
    Some((dir.join("server.pem"), dir.join("ca.pem")))
}

#[test]
fn dicomweb_over_https_checks_the_server_against_the_given_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((server, ca)) = certificates(tmp.path()) else {
        return;
    };
    if !tool_available("socat", Command::new("socat").arg("-V")) {
        return;
    }
    let Some(pacs) = Orthanc::start_with(common::orthanc::free_port(), Some((&server, &ca))) else {
        return;
    };
    let (model, series) = model_and_series(tmp.path());
    let study_id = pacs.upload_dir(&series);
    let (study, series_uids) = pacs.uids(&study_id);
    let url = format!(
        "{}/studies/{study}/series/{}",
        pacs.dicomweb(),
        series_uids[0]
    );
    assert!(url.starts_with("https://127.0.0.1:"));
    let auth = format!("basic {USER}:{PASSWORD}");
    let run = |ca: Option<&Path>, out: &Path| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_liverseg"));
        c.args([
            "predict",
            "--model",
            s(&model),
            "--input",
            &url,
            "--output",
            s(out),
        ])
        .args(["--preprocess", "none", "--roi", "32,32,16"])
        .env("LIVERSEG_DICOMWEB_AUTH", &auth)
        .env_remove("LIVERSEG_DICOMWEB_CA");
        if let Some(ca) = ca {
            c.env("LIVERSEG_DICOMWEB_CA", ca);
        }
        c.output().unwrap()
    };
    // Mozilla's roots do not know the test CA: the server is refused.
    let o = run(None, &tmp.path().join("refused.nii.gz"));
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr).to_lowercase();
    assert!(
        err.contains("certificate") || err.contains("issuer"),
        "{err}"
    );
    assert!(!tmp.path().join("refused.nii.gz").exists());
    // With the hospital's CA it is trusted.
    let out = tmp.path().join("mask.nii.gz");
    ok(&run(Some(&ca), &out));
    let m: liverseg_io::Volume<u8> = liverseg_io::nifti::read(&out, &Default::default()).unwrap();
    assert!(m.data().contains(&1));
}

#[test]
fn bad_node_settings_exit_2_naming_the_file_and_the_setting() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("node.toml");
    let allow = "[[allow]]\nae_title = \"ORTHANC\"\nhost = \"127.0.0.1\"\nport = 4242\n";
    let spool = format!("spool = \"{}\"\n", tmp.path().join("spool").display());
    for (text, says) in [
        (spool.clone(), "allow"),
        (format!("{spool}colour = \"blue\"\n{allow}"), "colour"),
        (format!("{spool}formats = [\"nifti\"]\n{allow}"), "nifti"),
        (format!("{spool}device = \"gpu:9\"\n{allow}"), "gpu:9"),
        (
            format!("{spool}ae_title = \"A_TITLE_FAR_TOO_LONG\"\n{allow}"),
            "ae_title",
        ),
    ] {
        std::fs::write(&cfg, &text).unwrap();
        let o = liverseg(&["serve", "--config", s(&cfg)]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{text}: {err}");
        assert!(
            err.contains("node.toml") || err.contains("node settings"),
            "{err}"
        );
        assert!(err.contains(says), "{text}: {err}");
    }
    // The status of a spool that does not exist yet is empty, not an error.
    std::fs::write(&cfg, format!("{spool}{allow}")).unwrap();
    let o = liverseg(&["serve", "--config", s(&cfg), "--status"]);
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stdout).contains("0 series: none"));
    assert!(!tmp.path().join("spool").exists());
    // --json only changes --status's output; alone it is a usage error,
    // not a node started with the flag ignored.
    let o = liverseg(&["serve", "--config", s(&cfg), "--json"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--status"));
    assert!(!tmp.path().join("spool").exists());
}
