//! A real Orthanc PACS for a test: started from `deploy/orthanc/orthanc.json`
//! with free ports and a temporary storage folder, stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The user and password `deploy/orthanc/orthanc.json` registers.
pub const USER: &str = "liverseg";
pub const PASSWORD: &str = "liverseg-test";

/// A running Orthanc.
pub struct Orthanc {
    child: Child,
    /// A TLS front (socat) and its port, when serving HTTPS.
    tls: Option<(Child, u16)>,
    _dir: tempfile::TempDir,
    /// Its HTTP port.
    pub http_port: u16,
    /// Its DICOM port.
    pub dicom_port: u16,
    agent: ureq::Agent,
}

/// A port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn binary() -> Option<PathBuf> {
    ["/usr/sbin/Orthanc", "/usr/bin/Orthanc"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

fn basic() -> String {
    // "liverseg:liverseg-test" in base64.
    "Basic bGl2ZXJzZWc6bGl2ZXJzZWctdGVzdA==".into()
}

impl Orthanc {
    /// Starts Orthanc with liverseg's node (AE title `LIVERSEG`) at
    /// `node_port`; `None` (having said so loudly, or failed under
    /// `LIVERSEG_REQUIRE_TOOLS=1`) when Orthanc or its DICOMweb plugin is
    /// not installed.
    pub fn start(node_port: u16) -> Option<Orthanc> {
        Orthanc::start_with(node_port, None)
    }

    /// [`Orthanc::start`], serving HTTPS with `tls`: the server's PEM
    /// (private key and certificate) and the PEM of the CA that signed it.
    /// Debian's Orthanc 1.10 resets its own TLS connections after the
    /// handshake, so socat terminates TLS in front of it.
    pub fn start_with(node_port: u16, tls: Option<(&Path, &Path)>) -> Option<Orthanc> {
        let plugin = Path::new("/usr/share/orthanc/plugins/libOrthancDicomWeb.so");
        let what = "Orthanc with orthanc-dicomweb";
        let Some(bin) = binary().filter(|_| plugin.exists()) else {
            // Reports the absence (or fails under LIVERSEG_REQUIRE_TOOLS=1).
            super::tool_available(what, &mut Command::new("/nonexistent/Orthanc"));
            return None;
        };
        if !super::tool_available(what, Command::new(&bin).arg("--version")) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/orthanc/orthanc.json");
        let mut cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(repo).unwrap()).unwrap();
        let (http_port, dicom_port) = (free_port(), free_port());
        let storage = dir.path().join("db");
        cfg["StorageDirectory"] = storage.to_str().unwrap().into();
        cfg["IndexDirectory"] = storage.to_str().unwrap().into();
        cfg["HttpPort"] = http_port.into();
        cfg["DicomPort"] = dicom_port.into();
        cfg["DicomModalities"]["LIVERSEG"] =
            serde_json::json!(["LIVERSEG", "127.0.0.1", node_port]);
        let path = dir.path().join("orthanc.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
        let log = std::fs::File::create(dir.path().join("orthanc.log")).unwrap();
        let child = Command::new(bin)
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut tls_config = ureq::tls::TlsConfig::builder();
        if let Some((_, ca)) = tls {
            let pem = std::fs::read(ca).unwrap();
            let certs: Vec<_> = ureq::tls::parse_pem(&pem)
                .filter_map(|i| match i.unwrap() {
                    ureq::tls::PemItem::Certificate(c) => Some(c),
                    _ => None,
                })
                .collect();
            tls_config = tls_config.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .tls_config(tls_config.build())
            .build()
            .into();
        let front = tls.map(|(server, _)| {
            let port = free_port();
            let front = Command::new("socat")
                .arg(format!(
                    "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert={},verify=0",
                    server.display()
                ))
                .arg(format!("TCP:127.0.0.1:{http_port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            (front, port)
        });
        let o = Orthanc {
            child,
            tls: front,
            _dir: dir,
            http_port,
            dicom_port,
            agent,
        };
        let t0 = Instant::now();
        while o.get_json("/system").is_none() {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "Orthanc did not start: {}",
                std::fs::read_to_string(o._dir.path().join("orthanc.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(o)
    }

    /// `http://127.0.0.1:PORT` (`https://` and the TLS front's port when
    /// serving HTTPS).
    pub fn url(&self) -> String {
        match &self.tls {
            Some((_, port)) => format!("https://127.0.0.1:{port}"),
            None => format!("http://127.0.0.1:{}", self.http_port),
        }
    }

    /// The DICOMweb root.
    pub fn dicomweb(&self) -> String {
        format!("{}/dicom-web", self.url())
    }

    /// GET a REST path as JSON; `None` on any failure.
    pub fn get_json(&self, path: &str) -> Option<serde_json::Value> {
        let mut r = self
            .agent
            .get(format!("{}{path}", self.url()))
            .header("Authorization", basic())
            .call()
            .ok()?;
        if r.status() != 200 {
            return None;
        }
        r.body_mut().read_json().ok()
    }

    /// GET a REST path's bytes.
    pub fn get_bytes(&self, path: &str) -> Vec<u8> {
        let mut r = self
            .agent
            .get(format!("{}{path}", self.url()))
            .header("Authorization", basic())
            .call()
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        r.body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_vec()
            .unwrap()
    }

    /// POST to a REST path; returns the JSON answer.
    pub fn post(&self, path: &str, body: &[u8]) -> serde_json::Value {
        let mut r = self
            .agent
            .post(format!("{}{path}", self.url()))
            .header("Authorization", basic())
            .send(body)
            .unwrap();
        let status = r.status();
        let text = r.body_mut().read_to_string().unwrap_or_default();
        assert_eq!(status, 200, "POST {path}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// Uploads every file of `dir` through the REST API; returns the
    /// study's Orthanc ID.
    pub fn upload_dir(&self, dir: &Path) -> String {
        let mut study = String::new();
        // Not the hidden marker liverseg leaves in folders it writes.
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
            .collect();
        files.sort();
        for f in files {
            let v = self.post("/instances", &std::fs::read(&f).unwrap());
            study = v["ParentStudy"].as_str().unwrap().to_string();
        }
        study
    }

    /// The series of a study (Orthanc IDs) with their modality.
    pub fn series_of_study(&self, study: &str) -> Vec<(String, String)> {
        let v = self.get_json(&format!("/studies/{study}/series")).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["ID"].as_str().unwrap().to_string(),
                    s["MainDicomTags"]["Modality"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                )
            })
            .collect()
    }

    /// The first instance file of a series (Orthanc ID).
    pub fn first_instance(&self, series: &str) -> Vec<u8> {
        let v = self
            .get_json(&format!("/series/{series}/instances"))
            .unwrap();
        let id = v[0]["ID"].as_str().unwrap().to_string();
        self.get_bytes(&format!("/instances/{id}/file"))
    }

    /// The DICOM UIDs of a study (Orthanc ID): (StudyInstanceUID, [SeriesInstanceUID]).
    pub fn uids(&self, study: &str) -> (String, Vec<String>) {
        let v = self.get_json(&format!("/studies/{study}")).unwrap();
        let uid = v["MainDicomTags"]["StudyInstanceUID"]
            .as_str()
            .unwrap()
            .to_string();
        let series = v["Series"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| {
                let s = self
                    .get_json(&format!("/series/{}", id.as_str().unwrap()))
                    .unwrap();
                s["MainDicomTags"]["SeriesInstanceUID"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        (uid, series)
    }
}

impl Drop for Orthanc {
    fn drop(&mut self) {
        if let Some((front, _)) = &mut self.tls {
            let _ = front.kill();
            let _ = front.wait();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
