//! `multipart/related` bodies (RFC 2387) as DICOMweb uses them: WADO-RS
//! answers a series as one part per instance, STOW-RS takes instances the
//! same way. Reading streams each part into its own file, so a series
//! never sits in memory whole.

use crate::{Error, Result};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The `boundary` parameter of a `multipart/related` Content-Type, quoted
/// or not; `None` for another type or a missing boundary.
pub fn boundary(content_type: &str) -> Option<String> {
    let mut parts = content_type.split(';');
    let kind = parts.next()?.trim();
    if !kind.eq_ignore_ascii_case("multipart/related") {
        return None;
    }
    parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        if !k.trim().eq_ignore_ascii_case("boundary") {
            return None;
        }
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(v);
        (!v.is_empty() && v.len() <= 70).then(|| v.to_string())
    })
}

/// Limits on what a server may send.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The largest instance accepted, bytes.
    pub max_object_bytes: u64,
    /// The largest series accepted, bytes (all instances together).
    pub max_series_bytes: u64,
    /// The most instances accepted in one series.
    pub max_instances: usize,
}

impl Default for Limits {
    /// 1 GiB per instance, 16 GiB and 100,000 instances per series.
    fn default() -> Self {
        Limits {
            max_object_bytes: 1 << 30,
            max_series_bytes: 16 << 30,
            max_instances: 100_000,
        }
    }
}

/// A buffered reader with look-ahead, for finding delimiters in a stream:
/// `buf[start..end]` is read and not yet consumed.
struct Stream<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
}

const CHUNK: usize = 1 << 20;

impl<R: Read> Stream<R> {
    fn new(inner: R) -> Self {
        Stream {
            inner,
            buf: vec![0; 2 * CHUNK],
            start: 0,
            end: 0,
            eof: false,
        }
    }

    fn available(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Reads more; false at the end of the stream (or with the buffer
    /// full, which the callers prevent by consuming first).
    fn fill(&mut self) -> std::io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.start > 0 && self.end + CHUNK / 2 > self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            return Ok(false);
        }
        let n = loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        self.end += n;
        self.eof = n == 0;
        Ok(n > 0)
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
    }
}

/// Splits a `multipart/related` body into files `dir/00000.dcm`,
/// `00001.dcm`, ... (one per part, in order; the part headers are not
/// kept) and returns their paths. A part over `limits.max_object_bytes`,
/// a body over `limits.max_series_bytes`, a truncated body or one without
/// its closing delimiter is an error; `url` names the source in messages.
pub fn split_into_files(
    body: impl Read,
    boundary: &str,
    dir: &Path,
    limits: &Limits,
    url: &str,
) -> Result<Vec<PathBuf>> {
    let protocol = |reason: String| Error::Protocol {
        url: url.to_string(),
        reason,
    };
    let broken = |e: std::io::Error| Error::Unreachable {
        url: url.to_string(),
        reason: format!("transfer broke: {e}"),
    };
    // Seen as "\r\n--boundary" everywhere, the first delimiter included:
    // the stream starts with a virtual CRLF.
    let delimiter = format!("\r\n--{boundary}").into_bytes();
    let finder = memchr::memmem::Finder::new(&delimiter);
    let mut s = Stream::new(std::io::Cursor::new(b"\r\n".to_vec()).chain(body));
    // The preamble, up to the first delimiter.
    loop {
        if let Some(at) = finder.find(s.available()) {
            s.consume(at + delimiter.len());
            break;
        }
        let keep = s.available().len().saturating_sub(delimiter.len());
        s.consume(keep);
        if s.available().len() > 64 << 10 || !s.fill().map_err(broken)? {
            return Err(protocol(format!(
                "no multipart delimiter --{boundary} in the answer"
            )));
        }
    }
    let mut files = Vec::new();
    let mut total = 0u64;
    loop {
        // After a delimiter: "--" ends the body, else transport padding
        // and CRLF, then the part's headers up to an empty line.
        while s.available().len() < 4 {
            if !s.fill().map_err(broken)? {
                return Err(protocol("the answer ends inside a delimiter".into()));
            }
        }
        if s.available().starts_with(b"--") {
            return Ok(files);
        }
        let headers_end = loop {
            if let Some(at) = memchr::memmem::find(s.available(), b"\r\n\r\n") {
                break at;
            }
            if s.available().len() > 64 << 10 || !s.fill().map_err(broken)? {
                return Err(protocol("a part's headers do not end".into()));
            }
        };
        s.consume(headers_end + 4);
        if files.len() >= limits.max_instances {
            return Err(protocol(format!(
                "more than {} instances in one series",
                limits.max_instances
            )));
        }
        let path = dir.join(format!("{:05}.dcm", files.len()));
        let file =
            std::fs::File::create(&path).map_err(|e| Error::io(&path, "cannot create", e))?;
        let mut out = std::io::BufWriter::with_capacity(CHUNK, file);
        let mut size = 0u64;
        // The part's body, up to the next delimiter.
        loop {
            let (n, done) = match finder.find(s.available()) {
                Some(at) => (at, true),
                None => (s.available().len().saturating_sub(delimiter.len()), false),
            };
            size += n as u64;
            total += n as u64;
            if size > limits.max_object_bytes {
                return Err(protocol(format!(
                    "an instance is larger than the {} bytes allowed",
                    limits.max_object_bytes
                )));
            }
            if total > limits.max_series_bytes {
                return Err(protocol(format!(
                    "the series is larger than the {} bytes allowed",
                    limits.max_series_bytes
                )));
            }
            out.write_all(&s.available()[..n])
                .map_err(|e| Error::io(&path, "cannot write", e))?;
            s.consume(n);
            if done {
                s.consume(delimiter.len());
                break;
            }
            if !s.fill().map_err(broken)? {
                return Err(protocol("the answer ends inside a part".into()));
            }
        }
        out.into_inner()
            .map_err(|e| Error::io(&path, "cannot write", e.into_error()))?
            .sync_all()
            .map_err(|e| Error::io(&path, "cannot sync", e))?;
        files.push(path);
    }
}

/// A `multipart/related; type="application/dicom"` body of `parts` and its
/// Content-Type header.
pub fn encode(parts: &[Vec<u8>]) -> (Vec<u8>, String) {
    // A boundary that occurs in no part.
    let mut n = 0u64;
    let boundary = loop {
        let b = format!(
            "liverseg-{:016x}",
            0x9e37_79b9_7f4a_7c15u64.wrapping_mul(n + 1)
        );
        let delim = format!("--{b}");
        if parts
            .iter()
            .all(|p| memchr::memmem::find(p, delim.as_bytes()).is_none())
        {
            break b;
        }
        n += 1;
    };
    let mut body = Vec::with_capacity(parts.iter().map(|p| p.len() + 96).sum());
    for p in parts {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(p);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let content_type =
        format!("multipart/related; type=\"application/dicom\"; boundary={boundary}");
    (body, content_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads at most `step` bytes per call, so delimiters straddle reads.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(self.1).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn encoded_bodies_split_back_into_their_parts_whatever_the_read_sizes() {
        // Parts holding CR, LF, dashes and an almost-delimiter.
        let parts = vec![
            b"DICM\r\n--liverseg\r\n-".to_vec(),
            Vec::new(),
            (0..1_500_000u32).map(|i| (i % 251) as u8).collect(),
        ];
        let (body, ct) = encode(&parts);
        let b = boundary(&ct).unwrap();
        for step in [1, 7, 4096, 1 << 22] {
            let dir = tempfile::tempdir().unwrap();
            let files = split_into_files(
                Trickle(&body, step),
                &b,
                dir.path(),
                &Limits::default(),
                "test",
            )
            .unwrap();
            let got: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
            assert_eq!(got, parts, "read size {step}");
        }
    }

    #[test]
    fn a_preamble_quoted_boundaries_and_limits_are_handled() {
        assert_eq!(
            boundary("multipart/related; type=\"application/dicom\"; boundary=\"a b\"").as_deref(),
            Some("a b")
        );
        assert_eq!(boundary("application/dicom+json"), None);
        let body = b"preamble\r\n--B\r\nContent-Type: application/dicom\r\n\r\nabc\r\n--B--\r\n";
        let dir = tempfile::tempdir().unwrap();
        let files = split_into_files(&body[..], "B", dir.path(), &Limits::default(), "u").unwrap();
        assert_eq!(std::fs::read(&files[0]).unwrap(), b"abc");
        let small = Limits {
            max_object_bytes: 2,
            ..Limits::default()
        };
        let e = split_into_files(&body[..], "B", dir.path(), &small, "u").unwrap_err();
        assert!(e.to_string().contains("larger than the 2 bytes"), "{e}");
        // Truncated: no closing delimiter.
        let e = split_into_files(
            &body[..body.len() - 9],
            "B",
            dir.path(),
            &Limits::default(),
            "u",
        )
        .unwrap_err();
        assert!(e.to_string().contains("ends inside a part"), "{e}");
    }
}
