//! A tiny static host written here, for deployments no packaged server reproduces on demand:
//! it serves a prepared tree with exactly the headers `registrish-gen headers` lists for each
//! path, and can be given one flaw at a time (an SPA fallback, HEAD without Content-Length,
//! ranges ignored) so a test knows the one thing that is wrong. HTTP/1.1, one request per
//! connection; stopped on drop.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What the host gets wrong.
#[derive(Clone, Copy, Debug, Default)]
pub struct Flaws {
    /// Misses answer 200 with an HTML page (a single-page-app fallback, Pages without 404.html).
    pub spa_fallback: bool,
    /// HEAD answers carry no Content-Length (wrangler's static assets without the worker).
    pub no_head_length: bool,
    /// Range is ignored: 200 with the whole body (Pages and plain servers).
    pub ignore_range: bool,
}

pub struct StaticHost {
    pub port: u16,
    stop: Arc<AtomicBool>,
}

type Table = BTreeMap<String, BTreeMap<String, String>>;

impl StaticHost {
    /// Serves `tree` (prepared) with the headers `registrish-gen headers` wrote to `headers`.
    pub fn start(tree: &Path, headers: &Path, flaws: Flaws) -> StaticHost {
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(headers).unwrap()).unwrap();
        let mut table = Table::new();
        for (path, v) in json.as_object().unwrap() {
            let h = v["headers"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            table.insert(path.clone(), h);
        }
        let table = Arc::new(table);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let tree = tree.to_path_buf();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopping.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (table, tree) = (table.clone(), tree.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &table, &tree, flaws);
                });
            }
        });
        StaticHost { port, stop }
    }
}

impl Drop for StaticHost {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn error_body(code: &str) -> Vec<u8> {
    format!(r#"{{"errors":[{{"code":"{code}","message":"{code}","detail":null}}]}}"#).into_bytes()
}

fn serve(conn: TcpStream, table: &Table, tree: &Path, flaws: Flaws) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    let mut range = None;
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((n, v)) = h.split_once(':') {
            if n.eq_ignore_ascii_case("range") {
                range = Some(v.trim().to_string());
            }
            if n.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; length];
    std::io::Read::read_exact(&mut reader, &mut body)?;
    let head = method == "HEAD";
    let mut out = conn;
    let mut respond = |status: &str, headers: Vec<(String, String)>, body: &[u8]| {
        let mut text = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
        for (n, v) in headers {
            text.push_str(&format!("{n}: {v}\r\n"));
        }
        text.push_str("\r\n");
        out.write_all(text.as_bytes())?;
        if !head {
            out.write_all(body)?;
        }
        out.flush()
    };
    let api = (
        "Docker-Distribution-API-Version".to_string(),
        "registry/2.0".to_string(),
    );
    if method != "GET" && !head {
        let b = error_body("UNSUPPORTED");
        return respond(
            "405 Method Not Allowed",
            vec![
                ("Allow".into(), "GET, HEAD".into()),
                ("Content-Type".into(), "application/json".into()),
                ("Content-Length".into(), b.len().to_string()),
                api,
            ],
            &b,
        );
    }
    let Some(headers) = table.get(&path) else {
        if flaws.spa_fallback {
            let b = b"<!doctype html><html><body><div id=app></div></body></html>";
            return respond(
                "200 OK",
                vec![
                    ("Content-Type".into(), "text/html; charset=utf-8".into()),
                    ("Content-Length".into(), b.len().to_string()),
                ],
                b,
            );
        }
        let code = if path.contains("/blobs/") {
            "BLOB_UNKNOWN"
        } else if path.contains("/manifests/") || path.contains("/referrers/") {
            "MANIFEST_UNKNOWN"
        } else {
            "NAME_UNKNOWN"
        };
        let b = error_body(code);
        return respond(
            "404 Not Found",
            vec![
                ("Content-Type".into(), "application/json".into()),
                ("Content-Length".into(), b.len().to_string()),
                api,
            ],
            &b,
        );
    };
    let file: PathBuf = if path == "/v2/" {
        tree.join("v2/index.html")
    } else {
        tree.join(&path[1..])
    };
    let bytes = std::fs::read(&file)?;
    let mut hs: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if head && flaws.no_head_length {
        hs.retain(|(k, _)| !k.eq_ignore_ascii_case("content-length"));
    }
    let blob = path.contains("/blobs/");
    if let (Some(r), true, false) = (range, blob, flaws.ignore_range)
        && let Some((a, b)) = r.strip_prefix("bytes=").and_then(|r| r.split_once('-'))
        && let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>())
        && a <= b
        && a < bytes.len()
    {
        let b = b.min(bytes.len() - 1);
        hs.retain(|(k, _)| !k.eq_ignore_ascii_case("content-length"));
        hs.push(("Content-Length".into(), (b - a + 1).to_string()));
        hs.push((
            "Content-Range".into(),
            format!("bytes {a}-{b}/{}", bytes.len()),
        ));
        return respond("206 Partial Content", hs, &bytes[a..=b]);
    }
    respond("200 OK", hs, &bytes)
}
