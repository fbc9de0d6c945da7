//! A DICOMweb client: QIDO-RS to find a study's series, WADO-RS to
//! retrieve a series into files, STOW-RS to store instances.

mod auth;
mod multipart;

pub use auth::{AUTH_ENV, AUTH_FILE_ENV, Credentials};
pub use multipart::{Limits, boundary, encode, split_into_files};

use crate::{Error, Result};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a DICOMweb URL names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resource {
    /// A service root (`https://pacs/dicom-web`): where STOW-RS stores.
    Root(String),
    /// A study, with a QIDO-RS filter for its series (`?Modality=CT`, the
    /// URL's own query if it has one).
    Study {
        /// The service root.
        root: String,
        /// Study Instance UID.
        study: String,
        /// QIDO-RS query parameters, as given (without `?`).
        query: String,
    },
    /// One series.
    Series(SeriesRef),
}

/// A series on a DICOMweb server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeriesRef {
    /// The service root.
    pub root: String,
    /// Study Instance UID.
    pub study: String,
    /// Series Instance UID.
    pub series: String,
}

impl SeriesRef {
    /// The series' WADO-RS URL.
    pub fn url(&self) -> String {
        format!(
            "{}/studies/{}/series/{}",
            self.root, self.study, self.series
        )
    }
}

/// True when `text` looks like a URL (`http://` or `https://`).
pub fn is_url(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.starts_with("http://") || t.starts_with("https://")
}

/// `url` without the user information of its authority (`user:pw@`),
/// for messages.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://<redacted>@{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

/// True when `url`'s host is this machine.
fn is_local(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.split(['/', '?']).next().unwrap_or("");
    let host = host.rsplit_once(':').map_or(host, |(h, p)| {
        if p.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    host.eq_ignore_ascii_case("localhost") || host == "[::1]" || host.starts_with("127.")
}

fn is_uid(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

impl Resource {
    /// Parses a DICOMweb URL: `ROOT`, `ROOT/studies/S[?filter]` or
    /// `ROOT/studies/S/series/R`. HTTPS anywhere; plain HTTP only to this
    /// machine (`localhost`, `127.x.x.x`, `[::1]`); no credentials in the
    /// URL (they belong in [`AUTH_ENV`]).
    pub fn parse(url: &str) -> Result<Resource> {
        let shown = redacted(url);
        let bad = |why: &str| Error::Request(format!("{shown}: {why}"));
        let lower = url.to_ascii_lowercase();
        let rest = if let Some(r) = lower.strip_prefix("https://") {
            r
        } else if let Some(r) = lower.strip_prefix("http://") {
            if !is_local(url) {
                return Err(bad("plain http is only for this machine; use https"));
            }
            r
        } else {
            return Err(bad("not an http(s) URL"));
        };
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        if authority.contains('@') {
            return Err(bad(&format!(
                "credentials do not belong in the URL; set {AUTH_ENV} or {AUTH_FILE_ENV}"
            )));
        }
        if authority.is_empty() {
            return Err(bad("no host"));
        }
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        let path = path.trim_end_matches('/');
        let Some(at) = path.find("/studies/") else {
            if path.ends_with("/studies") || !query.is_empty() {
                return Err(bad(
                    "expected ROOT, ROOT/studies/UID or ROOT/studies/UID/series/UID",
                ));
            }
            return Ok(Resource::Root(path.to_string()));
        };
        let root = path[..at].to_string();
        let parts: Vec<&str> = path[at + "/studies/".len()..].split('/').collect();
        match parts.as_slice() {
            [study] if is_uid(study) => Ok(Resource::Study {
                root,
                study: study.to_string(),
                query: query.to_string(),
            }),
            [study, "series", series] if is_uid(study) && is_uid(series) && query.is_empty() => {
                Ok(Resource::Series(SeriesRef {
                    root,
                    study: study.to_string(),
                    series: series.to_string(),
                }))
            }
            _ => Err(bad(
                "expected ROOT/studies/UID or ROOT/studies/UID/series/UID (UIDs are digits and dots)",
            )),
        }
    }
}

/// What a STOW-RS request stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    /// The URL the instances were sent to.
    pub url: String,
    /// Instances sent.
    pub instances: usize,
}

/// A DICOMweb client.
#[derive(Debug)]
pub struct Client {
    agent: ureq::Agent,
    local_agent: ureq::Agent,
    credentials: Credentials,
}

/// The first bytes of an error answer, as text, for the message.
fn detail(resp: ureq::http::Response<ureq::Body>) -> String {
    let mut body = resp.into_body();
    let text = body
        .with_config()
        .limit(4096)
        .lossy_utf8(true)
        .read_to_string()
        .unwrap_or_default();
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(300)
        .collect()
}

/// The environment variable naming a PEM file of the certificate
/// authorities HTTPS servers are checked against (a hospital's own CA), in
/// place of the Mozilla roots built in.
pub const CA_ENV: &str = "LIVERSEG_DICOMWEB_CA";

/// The certificates of a PEM file.
fn read_roots(path: &Path) -> Result<ureq::tls::RootCerts> {
    let bad = |why: String| Error::Request(format!("{}: {why}", path.display()));
    let pem = std::fs::read(path).map_err(|e| bad(format!("cannot read: {e}")))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        if let ureq::tls::PemItem::Certificate(c) = item.map_err(|e| bad(e.to_string()))? {
            certs.push(c);
        }
    }
    if certs.is_empty() {
        return Err(bad("no certificate in it".into()));
    }
    Ok(ureq::tls::RootCerts::new_with_certs(&certs))
}

impl Client {
    /// A client sending `credentials` with every request, checking HTTPS
    /// servers against Mozilla's roots.
    pub fn new(credentials: Credentials) -> Result<Self> {
        Client::with_roots(credentials, None)
    }

    /// [`Client::new`], checking HTTPS servers against the certificates of
    /// the PEM file `ca` instead when given.
    pub fn with_roots(credentials: Credentials, ca: Option<&Path>) -> Result<Self> {
        let roots = ca.map(read_roots).transpose()?;
        let config = || {
            let mut tls = ureq::tls::TlsConfig::builder();
            if let Some(r) = &roots {
                tls = tls.root_certs(r.clone());
            }
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_connect(Some(Duration::from_secs(30)))
                .timeout_recv_response(Some(Duration::from_secs(600)))
                .tls_config(tls.build())
        };
        Ok(Client {
            agent: config().build().into(),
            // This machine is never reached through a proxy.
            local_agent: config().proxy(None).build().into(),
            credentials,
        })
    }

    /// A client from the environment: credentials ([`AUTH_ENV`],
    /// [`AUTH_FILE_ENV`]) and certificate authorities ([`CA_ENV`]).
    pub fn from_env() -> Result<Self> {
        let ca = std::env::var_os(CA_ENV).map(PathBuf::from);
        Client::with_roots(Credentials::from_env()?, ca.as_deref())
    }

    fn agent(&self, url: &str) -> &ureq::Agent {
        if is_local(url) {
            &self.local_agent
        } else {
            &self.agent
        }
    }

    fn unreachable(url: &str, e: ureq::Error) -> Error {
        Error::Unreachable {
            url: url.to_string(),
            reason: e.to_string(),
        }
    }

    /// GETs `url` with `accept`; an answer other than 200 is an error.
    fn get(&self, url: &str, accept: &str) -> Result<ureq::http::Response<ureq::Body>> {
        let mut req = self.agent(url).get(url).header("Accept", accept);
        if let Some(h) = self.credentials.header() {
            req = req.header("Authorization", h);
        }
        let resp = req.call().map_err(|e| Self::unreachable(url, e))?;
        match resp.status().as_u16() {
            200 => Ok(resp),
            status => Err(Error::Status {
                url: url.to_string(),
                status,
                detail: detail(resp),
            }),
        }
    }

    /// QIDO-RS: the series of `study` matching `query` (default
    /// `Modality=CT` when the query names no modality).
    pub fn search_series(&self, root: &str, study: &str, query: &str) -> Result<Vec<SeriesRef>> {
        let mut q = query.to_string();
        if !q.split('&').any(|kv| {
            let k = kv.split('=').next().unwrap_or("");
            k.eq_ignore_ascii_case("Modality") || k == "00080060"
        }) {
            if !q.is_empty() {
                q.push('&');
            }
            q.push_str("Modality=CT");
        }
        let url = format!("{root}/studies/{study}/series?{q}");
        let resp = self.get(&url, "application/dicom+json")?;
        let json: serde_json::Value = resp
            .into_body()
            .with_config()
            .limit(64 << 20)
            .read_json()
            .map_err(|e| Error::Protocol {
                url: url.clone(),
                reason: format!("unreadable QIDO-RS answer: {e}"),
            })?;
        let list = json.as_array().map(Vec::as_slice).unwrap_or_default();
        let mut out = Vec::new();
        for item in list {
            let uid = item["0020000E"]["Value"][0]
                .as_str()
                .ok_or_else(|| Error::Protocol {
                    url: url.clone(),
                    reason: "a series without Series Instance UID (0020,000E)".into(),
                })?;
            out.push(SeriesRef {
                root: root.to_string(),
                study: study.to_string(),
                series: uid.to_string(),
            });
        }
        out.sort_by(|a, b| a.series.cmp(&b.series));
        out.dedup();
        Ok(out)
    }

    /// WADO-RS: retrieves every instance of `series` into `dir` (which
    /// must exist), as `00000.dcm`, `00001.dcm`, ..., streamed to disk and
    /// fsynced. Returns the files.
    pub fn retrieve_series(
        &self,
        series: &SeriesRef,
        dir: &Path,
        limits: &Limits,
    ) -> Result<Vec<PathBuf>> {
        let url = series.url();
        let resp = self.get(
            &url,
            "multipart/related; type=\"application/dicom\"; transfer-syntax=*",
        )?;
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let b = boundary(&ct).ok_or_else(|| Error::Protocol {
            url: url.clone(),
            reason: format!("expected a multipart/related answer, got {ct:?}"),
        })?;
        let files = split_into_files(resp.into_body().into_reader(), &b, dir, limits, &url)?;
        if files.is_empty() {
            return Err(Error::Protocol {
                url,
                reason: "the series has no instances".into(),
            });
        }
        tracing::info!(series = %series.series, instances = files.len(), "retrieved with WADO-RS");
        Ok(files)
    }

    /// STOW-RS: stores `files` (DICOM Part 10) under `study` at `root`.
    /// Every instance must be accepted: a partial answer (202) or a failed
    /// instance is an error.
    pub fn store(&self, root: &str, study: &str, files: &[PathBuf]) -> Result<Stored> {
        let url = format!("{root}/studies/{study}");
        let parts = files
            .iter()
            .map(|f| std::fs::read(f).map_err(|e| Error::io(f, "cannot read", e)))
            .collect::<Result<Vec<_>>>()?;
        let (body, content_type) = encode(&parts);
        let mut req = self
            .agent(&url)
            .post(&url)
            .header("Content-Type", &content_type)
            .header("Accept", "application/dicom+json");
        if let Some(h) = self.credentials.header() {
            req = req.header("Authorization", h);
        }
        let resp = req
            .send(&body[..])
            .map_err(|e| Self::unreachable(&url, e))?;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(Error::Status {
                url,
                status,
                detail: detail(resp),
            });
        }
        let answer: serde_json::Value = resp
            .into_body()
            .with_config()
            .limit(16 << 20)
            .read_json()
            .unwrap_or(serde_json::Value::Null);
        // Failed SOP Sequence (0008,1198).
        if let Some(failed) = answer["00081198"]["Value"].as_array()
            && !failed.is_empty()
        {
            return Err(Error::Protocol {
                url,
                reason: format!("{} of {} instances were refused", failed.len(), files.len()),
            });
        }
        tracing::info!(url = %url, instances = files.len(), "stored with STOW-RS");
        Ok(Stored {
            url,
            instances: files.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_roots_studies_and_series_and_insecure_ones_are_refused() {
        assert_eq!(
            Resource::parse("http://localhost:8042/dicom-web/").unwrap(),
            Resource::Root("http://localhost:8042/dicom-web".into())
        );
        assert_eq!(
            Resource::parse("https://pacs.example/dicom-web/studies/1.2.3?SeriesDescription=abd")
                .unwrap(),
            Resource::Study {
                root: "https://pacs.example/dicom-web".into(),
                study: "1.2.3".into(),
                query: "SeriesDescription=abd".into()
            }
        );
        let s = Resource::parse("http://127.0.0.1:8042/wado/studies/1.2/series/1.2.3").unwrap();
        let Resource::Series(s) = s else { panic!() };
        assert_eq!(
            s.url(),
            "http://127.0.0.1:8042/wado/studies/1.2/series/1.2.3"
        );
        for bad in [
            "http://pacs.example/dicom-web",
            "https://user:pw@pacs.example/dicom-web",
            "ftp://x/y",
            "https://pacs/dicom-web/studies/abc",
            "https://pacs/dicom-web/studies/1.2/instances/1.3",
        ] {
            let e = Resource::parse(bad).unwrap_err();
            assert!(e.is_bad_input());
            assert!(!e.to_string().contains("pw@"), "{e}");
        }
    }
}
