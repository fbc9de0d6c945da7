//! A tiny HTTP/1.1 file server on 127.0.0.1 for the download tests: it
//! serves one body at any path ending in the served name's path, honours
//! `Range: bytes=N-`, records every request, and can cut a response short
//! to simulate a dropped connection.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// How the server misbehaves.
#[derive(Clone, Debug, Default)]
pub struct Behaviour {
    /// Close the connection after sending this many body bytes...
    pub drop_after: Option<usize>,
    /// ...for this many responses (then serve normally).
    pub drop_times: usize,
    /// Answer `200` with the whole body even to a `Range` request.
    pub ignore_range: bool,
}

/// One request as the server saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// The request target, such as `/Task03_Liver.tar`.
    pub path: String,
    /// The `Range` header, if any.
    pub range: Option<String>,
}

/// A running server; it lives until the test process ends.
#[derive(Debug)]
pub struct TestServer {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl TestServer {
    /// Serves `body` at `/x` (any path without `missing` in it) on a free
    /// port of 127.0.0.1.
    pub fn start(body: Vec<u8>, behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("local addr").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        std::thread::spawn(move || {
            let mut drops_left = behaviour.drop_times;
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                // A failed exchange only affects that one request.
                let _ = serve(stream, &body, &behaviour, &mut drops_left, &log);
            }
        });
        TestServer { port, seen }
    }

    /// The URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

fn serve(
    stream: TcpStream,
    body: &[u8],
    behaviour: &Behaviour,
    drops_left: &mut usize,
    log: &Mutex<Vec<Seen>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut range = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((name, value)) = h.split_once(':')
            && name.trim().eq_ignore_ascii_case("range")
        {
            range = Some(value.trim().to_string());
        }
    }
    if let Ok(mut v) = log.lock() {
        v.push(Seen {
            path: path.clone(),
            range: range.clone(),
        });
    }
    let mut out = stream;
    if path.contains("missing") {
        out.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
        return Ok(());
    }
    let total = body.len();
    let start = range
        .as_deref()
        .filter(|_| !behaviour.ignore_range)
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok());
    let (head, slice) = match start {
        Some(s) if s >= total => {
            let head = format!(
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{total}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            (head, &body[..0])
        }
        Some(s) => (
            format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {s}-{}/{total}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                total - 1,
                total - s
            ),
            &body[s..],
        ),
        None => (
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {total}\r\nAccept-Ranges: bytes\r\nConnection: close\r\n\r\n"
            ),
            body,
        ),
    };
    out.write_all(head.as_bytes())?;
    let cut = match behaviour.drop_after {
        Some(n) if *drops_left > 0 && n < slice.len() => {
            *drops_left -= 1;
            n
        }
        _ => slice.len(),
    };
    out.write_all(&slice[..cut])?;
    out.flush()?;
    out.shutdown(std::net::Shutdown::Both)
}
