//! A minimal HTTP/1.1 client over std's TcpStream, so tests see exactly what a host sends:
//! every header in order with duplicates kept (a second Content-Type is a bug we test for).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(30);

thread_local! {
    /// Headers every request on this thread carries (see [`with_headers`]).
    static EXTRA: std::cell::RefCell<Vec<(String, String)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` with `headers` added to every request this thread sends: the shared contract
/// checks (written for open hosts) run against a private one with its credentials.
pub fn with_headers<T>(headers: &[(&str, &str)], f: impl FnOnce() -> T) -> T {
    EXTRA.with(|e| {
        *e.borrow_mut() = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    });
    let out = f();
    EXTRA.with(|e| e.borrow_mut().clear());
    out
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// All header fields in the order received, names as sent, duplicates kept.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every header with this name (case-insensitive), in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `METHOD path` against 127.0.0.1:`port`. Panics on connection or protocol errors (an HTTP
/// error status is a normal `Response`).
pub fn request(method: &str, port: u16, path: &str) -> Response {
    request_with(method, port, path, &[])
}

pub fn get(port: u16, path: &str) -> Response {
    request("GET", port, path)
}

pub fn head(port: u16, path: &str) -> Response {
    request("HEAD", port, path)
}

/// Like `request`, with extra request headers (e.g. `Range`, `Accept`).
///
/// A connection closed before a single byte came back is tried again (four times, waiting
/// 0.2, 0.4, 0.8 and 1.6 s): wrangler's dev server drops connections now and then when the
/// machine is loaded, most often just after it starts (CI, session 6: three tries 0.2 s apart
/// were not enough for the first request to a Pages worker while the suite ran beside it).
/// Anything that did answer is returned as it is.
pub fn request_with(method: &str, port: u16, path: &str, headers: &[(&str, &str)]) -> Response {
    for wait in [200, 400, 800, 1600] {
        if let Some(r) = attempt(method, port, path, headers) {
            return r;
        }
        std::thread::sleep(Duration::from_millis(wait));
    }
    attempt(method, port, path, headers).unwrap_or_else(|| {
        panic!(
            "{method} http://127.0.0.1:{port}{path}: connection closed with no response, five times"
        )
    })
}

fn attempt(method: &str, port: u16, path: &str, headers: &[(&str, &str)]) -> Option<Response> {
    let what = format!("{method} http://127.0.0.1:{port}{path}");
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)
        .unwrap_or_else(|e| panic!("{what}: cannot connect: {e}"));
    stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    stream.set_write_timeout(Some(TIMEOUT)).expect("timeout");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         User-Agent: registrish-tests\r\nAccept: */*\r\n"
    );
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    EXTRA.with(|e| {
        for (name, value) in e.borrow().iter() {
            req.push_str(&format!("{name}: {value}\r\n"));
        }
    });
    req.push_str("\r\n");
    stream
        .write_all(req.as_bytes())
        .unwrap_or_else(|e| panic!("{what}: cannot send: {e}"));
    // Read until the response is complete by its own framing: some servers
    // (wrangler's dev proxy) keep the connection open for seconds despite
    // `Connection: close`, so waiting for EOF would stall every request.
    let head = method.eq_ignore_ascii_case("HEAD");
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    while !is_complete(&raw, head) {
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            // Reset before any answer: the caller tries again.
            Err(e) if raw.is_empty() && e.kind() == std::io::ErrorKind::ConnectionReset => 0,
            Err(e) => panic!("{what}: cannot read the response: {e}"),
        };
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    if raw.is_empty() {
        return None;
    }
    Some(parse_response(&raw, head).unwrap_or_else(|e| {
        panic!(
            "{what}: bad response: {e}\n{}",
            String::from_utf8_lossy(&raw)
        )
    }))
}

/// Whether `raw` holds a whole response (headers, then a body framed by
/// Content-Length or chunked encoding; HEAD and bodiless statuses end at the headers).
fn is_complete(raw: &[u8], head: bool) -> bool {
    let Some(end) = find(raw, b"\r\n\r\n") else {
        return false;
    };
    let Ok(text) = std::str::from_utf8(&raw[..end]) else {
        return false;
    };
    let status: u16 = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if head || status / 100 == 1 || status == 204 || status == 304 {
        return true;
    }
    let rest = &raw[end + 4..];
    let header = |name: &str| {
        text.split("\r\n").skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_ascii_lowercase())
        })
    };
    if header("Transfer-Encoding").is_some_and(|te| te.contains("chunked")) {
        return rest.ends_with(b"0\r\n\r\n") && dechunk(rest).is_ok();
    }
    match header("Content-Length").and_then(|l| l.parse::<usize>().ok()) {
        Some(len) => rest.len() >= len,
        None => false,
    }
}

fn parse_response(raw: &[u8], head: bool) -> Result<Response, String> {
    let end = find(raw, b"\r\n\r\n").ok_or("no end of headers")?;
    let text = std::str::from_utf8(&raw[..end]).map_err(|_| "headers are not UTF-8")?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(format!("status line {status_line:?}"));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("status line {status_line:?}"))?;
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("header line {line:?}"))?;
        headers.push((name.to_string(), value.trim().to_string()));
    }
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    let rest = &raw[end + 4..];
    if head || status / 100 == 1 || status == 204 || status == 304 {
        return Ok(response);
    }
    let chunked = response
        .header("Transfer-Encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
    response.body = if chunked {
        dechunk(rest)?
    } else if let Some(len) = response.header("Content-Length") {
        let len: usize = len.parse().map_err(|_| format!("Content-Length {len:?}"))?;
        if rest.len() < len {
            return Err(format!(
                "body has {} bytes, Content-Length says {len}",
                rest.len()
            ));
        }
        rest[..len].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(response)
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let eol = find(rest, b"\r\n").ok_or("chunk size line without CRLF")?;
        let line = std::str::from_utf8(&rest[..eol]).map_err(|_| "chunk size not UTF-8")?;
        let hex = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(hex, 16).map_err(|_| format!("chunk size {line:?}"))?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Ok(body); // Trailers, if any, are ignored.
        }
        if rest.len() < size + 2 {
            return Err("truncated chunk".into());
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Sends `request` to 127.0.0.1:`port` byte for byte (hostile request lines are not valid
/// HTTP, so nothing here builds or checks them) and returns every byte that came back before
/// the response was complete by its own framing, the peer closed, or `timeout` passed.
pub fn exchange(port: u16, request: &[u8], head: bool, timeout: Duration) -> Vec<u8> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)
        .unwrap_or_else(|e| panic!("127.0.0.1:{port}: cannot connect: {e}"));
    stream.set_read_timeout(Some(timeout)).expect("timeout");
    stream.set_write_timeout(Some(timeout)).expect("timeout");
    // A server may close before reading all of a long request: what it answered counts.
    let _ = stream.write_all(request);
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    while !is_complete(&raw, head) {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
    raw
}

/// Parses what [`exchange`] returned.
pub fn parse(raw: &[u8], head: bool) -> Result<Response, String> {
    parse_response(raw, head)
}
