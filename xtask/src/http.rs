//! Resumable HTTP(S) downloads: the partial file is kept as `<name>.part`
//! and continued with a `Range` request after an interruption, in the same
//! run (a few retries) or in the next one.

use crate::progress::{Progress, Unit};
use anyhow::{Context, Result, bail};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::time::Duration;

/// How [`download`] behaves on a flaky connection.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    /// How many times an interrupted or failed request is retried (each
    /// retry resumes from the bytes already on disk).
    pub retries: u32,
    /// Pause before retry `n` is `n` times this.
    pub retry_delay: Duration,
    /// Limit for establishing a connection.
    pub connect_timeout: Duration,
    /// Also require free space for the whole resource once more (room to
    /// extract the archive after downloading it), checked before the
    /// first byte is received.
    pub reserve_for_extraction: bool,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            retries: 5,
            retry_delay: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(30),
            reserve_for_extraction: false,
        }
    }
}

/// A failure to reach the server at all (as opposed to a refusal or a
/// broken transfer): the caller turns it into "download it elsewhere and
/// pass --archive" advice.
#[derive(Debug, thiserror::Error)]
#[error("cannot reach {url}: {reason}")]
pub struct Unreachable {
    /// The URL.
    pub url: String,
    /// What the client reported.
    pub reason: String,
}

fn agent_for(url: &str, opts: &HttpOptions) -> ureq::Agent {
    let mut cfg = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(opts.connect_timeout))
        .timeout_recv_response(Some(Duration::from_secs(120)));
    // A local server is never reached through the environment's proxy.
    let local = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
        .iter()
        .any(|p| url.starts_with(p));
    if local {
        cfg = cfg.proxy(None);
    }
    cfg.build().into()
}

/// `bytes START-END/TOTAL` from a `Content-Range` header, as
/// `(start, total)`; `bytes */TOTAL` gives `(None, total)`.
fn parse_content_range(v: &str) -> Option<(Option<u64>, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes")?.trim();
    let (range, total) = rest.split_once('/')?;
    let total = total.trim().parse().ok();
    if range.trim() == "*" {
        return Some((None, total));
    }
    let start = range.split_once('-')?.0.trim().parse().ok()?;
    Some((Some(start), total))
}

fn header<'a>(resp: &'a ureq::http::Response<ureq::Body>, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Downloads `url` into `part`, continuing from `part`'s current length
/// with a `Range: bytes=N-` request. A `206 Partial Content` answer is
/// appended; a `200 OK` answer (a server that ignores ranges) restarts the
/// file from zero. Returns once the file holds the whole resource (its
/// length equals the advertised total when the server gives one).
///
/// Before receiving, the free space of the folder is compared with the
/// bytes still to come (plus the whole size again with
/// [`HttpOptions::reserve_for_extraction`]); a shortfall is an error that
/// names both numbers.
pub fn download(url: &str, part: &Path, opts: &HttpOptions) -> Result<u64> {
    let agent = agent_for(url, opts);
    let dir = part.parent().unwrap_or(Path::new("."));
    let mut failures = 0u32;
    let mut progress: Option<Progress> = None;
    loop {
        let have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
        let mut req = agent.get(url);
        if have > 0 {
            tracing::info!("resuming {} from byte {have}", part.display());
            req = req.header("Range", format!("bytes={have}-"));
        }
        let resp = match req.call() {
            Ok(r) => r,
            Err(e) => {
                let unreachable = matches!(
                    e,
                    ureq::Error::HostNotFound
                        | ureq::Error::ConnectionFailed
                        | ureq::Error::Timeout(_)
                        | ureq::Error::Io(_)
                );
                failures += 1;
                if failures > opts.retries || !unreachable {
                    if unreachable {
                        return Err(Unreachable {
                            url: url.to_string(),
                            reason: e.to_string(),
                        }
                        .into());
                    }
                    return Err(e).with_context(|| format!("GET {url}"));
                }
                tracing::warn!(
                    "GET {url} failed ({e}); retry {failures} of {}",
                    opts.retries
                );
                std::thread::sleep(opts.retry_delay * failures);
                continue;
            }
        };
        let status = resp.status().as_u16();
        let length: Option<u64> =
            header(&resp, "content-length").and_then(|v| v.trim().parse().ok());
        let range = header(&resp, "content-range").and_then(parse_content_range);
        let (append, total) = match status {
            200 => {
                if have > 0 {
                    tracing::warn!(
                        "server ignored the Range request; restarting {} from zero",
                        part.display()
                    );
                }
                (false, length)
            }
            206 => match range {
                Some((Some(start), total)) if start == have => {
                    (true, total.or(length.map(|l| l + have)))
                }
                _ => {
                    tracing::warn!(
                        "unexpected Content-Range {range:?} for a resume at {have}; restarting"
                    );
                    std::fs::remove_file(part).ok();
                    failures += 1;
                    if failures > opts.retries {
                        bail!("GET {url}: server keeps answering with unusable ranges");
                    }
                    continue;
                }
            },
            416 => {
                // Nothing left to send: the part file may already be whole.
                if let Some((None, Some(total))) = range
                    && total == have
                {
                    return Ok(have);
                }
                tracing::warn!(
                    "range {have}- not satisfiable; restarting {} from zero",
                    part.display()
                );
                std::fs::remove_file(part).ok();
                failures += 1;
                if failures > opts.retries {
                    bail!("GET {url}: HTTP 416 Range Not Satisfiable");
                }
                continue;
            }
            s => bail!(
                "GET {url}: HTTP {s} {}",
                resp.status().canonical_reason().unwrap_or("")
            ),
        };
        let start = if append { have } else { 0 };
        if let Some(total) = total {
            let remaining = total.saturating_sub(start);
            if opts.reserve_for_extraction {
                check_space(
                    dir,
                    remaining + total,
                    "download the archive and then extract it (its size is the estimate)",
                )?;
            } else {
                check_space(dir, remaining, "download")?;
            }
        }
        let p = progress.get_or_insert_with(|| Progress::new("download", total, Unit::Bytes));
        p.set(start);
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(part)
            .with_context(|| format!("{}: cannot open", part.display()))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let mut body = resp.into_body().into_reader();
        let mut buf = vec![0u8; 1 << 16];
        let mut pos = start;
        let read_result: std::io::Result<()> = loop {
            match body.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    out.write_all(&buf[..n])
                        .with_context(|| format!("{}: cannot write", part.display()))?;
                    pos += n as u64;
                    p.set(pos);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        let file = out
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("{}: cannot write", part.display()))?;
        file.sync_all()
            .with_context(|| format!("{}: cannot sync", part.display()))?;
        let complete = match total {
            Some(t) => pos == t,
            None => read_result.is_ok(),
        };
        if complete {
            if let Some(p) = progress.take() {
                p.finish();
            }
            return Ok(pos);
        }
        failures += 1;
        let why = match read_result {
            Err(e) => e.to_string(),
            Ok(()) => format!("connection closed at byte {pos} of {}", total.unwrap_or(0)),
        };
        if failures > opts.retries {
            bail!(
                "GET {url}: transfer interrupted ({why}); {} keeps the {pos} bytes received, run again to resume",
                part.display()
            );
        }
        tracing::warn!(
            "transfer interrupted ({why}); resuming, retry {failures} of {}",
            opts.retries
        );
        std::thread::sleep(opts.retry_delay * failures);
    }
}

/// Fails with a clear message when the file system holding `dir` has less
/// than `needed` bytes free.
pub fn check_space(dir: &Path, needed: u64, what: &str) -> Result<()> {
    let free = fs4::available_space(dir)
        .with_context(|| format!("{}: cannot query free space", dir.display()))?;
    if free < needed {
        let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
        bail!(
            "{}: not enough disk space to {what}: {:.2} GiB needed, {:.2} GiB free",
            dir.display(),
            gib(needed),
            gib(free)
        );
    }
    Ok(())
}

/// The lowercase hexadecimal MD5 of a whole file, with progress.
pub fn md5_file(path: &Path) -> Result<String> {
    use md5::{Digest, Md5};
    let mut file = File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let len = file.metadata().map(|m| m.len()).ok();
    let mut progress = Progress::new("md5", len, Unit::Bytes);
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("{}: cannot read", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        done += n as u64;
        progress.set(done);
    }
    progress.finish();
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_server::{Behaviour, TestServer};

    #[test]
    fn parses_content_range() {
        assert_eq!(
            parse_content_range("bytes 100-199/200"),
            Some((Some(100), Some(200)))
        );
        assert_eq!(parse_content_range("bytes */200"), Some((None, Some(200))));
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((Some(5), None)));
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }

    #[test]
    fn space_shortfall_names_both_numbers() {
        let dir = tempfile::tempdir().unwrap();
        check_space(dir.path(), 1, "download").unwrap();
        let e = check_space(dir.path(), u64::MAX / 2, "download")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not enough disk space to download") && e.contains("GiB free"),
            "{e}"
        );
    }

    #[test]
    fn md5_matches_the_reference_digest() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"The quick brown fox jumps over the lazy dog").unwrap();
        assert_eq!(md5_file(&p).unwrap(), "9e107d9d372bb6826bd81d3542a419d6");
    }

    fn quick() -> HttpOptions {
        HttpOptions {
            retries: 3,
            retry_delay: Duration::from_millis(10),
            connect_timeout: Duration::from_secs(5),
            reserve_for_extraction: false,
        }
    }

    #[test]
    fn resumes_after_a_dropped_connection() {
        let body: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
        let server = TestServer::start(
            body.clone(),
            Behaviour {
                drop_after: Some(12_345),
                drop_times: 1,
                ..Behaviour::default()
            },
        );
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("x.part");
        let n = download(&server.url("/x"), &part, &quick()).unwrap();
        assert_eq!(n, 50_000);
        assert_eq!(std::fs::read(&part).unwrap(), body);
        let reqs = server.requests();
        assert_eq!(reqs.len(), 2);
        assert_eq!(reqs[0].range, None);
        assert_eq!(reqs[1].range.as_deref(), Some("bytes=12345-"));
    }

    #[test]
    fn restarts_when_the_server_ignores_ranges() {
        let body = vec![7u8; 3000];
        let server = TestServer::start(
            body.clone(),
            Behaviour {
                ignore_range: true,
                ..Behaviour::default()
            },
        );
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("x.part");
        std::fs::write(&part, [1u8; 1000]).unwrap();
        download(&server.url("/x"), &part, &quick()).unwrap();
        assert_eq!(std::fs::read(&part).unwrap(), body);
        assert_eq!(server.requests()[0].range.as_deref(), Some("bytes=1000-"));
    }

    #[test]
    fn already_complete_part_file_is_accepted() {
        let body = vec![3u8; 500];
        let server = TestServer::start(body.clone(), Behaviour::default());
        let dir = tempfile::tempdir().unwrap();
        let part = dir.path().join("x.part");
        std::fs::write(&part, &body).unwrap();
        assert_eq!(download(&server.url("/x"), &part, &quick()).unwrap(), 500);
        assert_eq!(std::fs::read(&part).unwrap(), body);
    }

    #[test]
    fn http_errors_and_unreachable_hosts_are_reported() {
        let server = TestServer::start(vec![1, 2, 3], Behaviour::default());
        let dir = tempfile::tempdir().unwrap();
        let e = download(
            &server.url("/missing"),
            &dir.path().join("a.part"),
            &quick(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("HTTP 404"), "{e}");
        // A port nobody listens on: bind, learn the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let opts = HttpOptions {
            retries: 0,
            ..quick()
        };
        let url = format!("http://127.0.0.1:{port}/x");
        let e = download(&url, &dir.path().join("b.part"), &opts).unwrap_err();
        assert!(e.downcast_ref::<Unreachable>().is_some(), "{e:#}");
    }
}
