//! The probe's HTTP client: one [`ureq`] agent (rustls, verified by default) shared by every
//! worker thread, with redirects followed here rather than by ureq, so every hop is seen and
//! reported, credentials are dropped when a hop leaves the registry's origin (what
//! go-containerregistry does, shared/reference/peers.md), and at most [`MAX_REDIRECTS`] are
//! followed (what clients allow: distribution-spec main, "registries MAY redirect").
//!
//! Responses keep every header as sent, duplicates included: two Content-Type headers are a
//! finding of their own (Go clients read the first one only).

use crate::grammar::Digest;
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

/// Clients follow at most 10 redirects (Go's net/http default, which docker, containerd,
/// containers/image, go-containerregistry and oras-go all keep).
pub(crate) const MAX_REDIRECTS: usize = 10;

/// What the probe does with a response body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyMode {
    /// Keep up to this many bytes (and count the rest).
    Keep(usize),
    /// Stream it through SHA-256, keeping nothing (blobs of any size in bounded memory).
    Hash,
}

/// One redirect followed: the status and the URL it sent the request to.
#[derive(Clone, Debug)]
pub(crate) struct Hop {
    pub status: u16,
    pub location: String,
    /// Whether the hop leaves the origin of the probed URL.
    pub other_origin: bool,
}

/// A response, after any redirects.
#[derive(Debug, Default)]
pub(crate) struct Exchange {
    pub status: u16,
    /// Every header field, names lowercased, duplicates kept.
    pub headers: Vec<(String, String)>,
    /// The body's first bytes (all of it up to [`BodyMode::Keep`]'s limit).
    pub body: Vec<u8>,
    /// How many body bytes came in total.
    pub body_len: u64,
    /// With [`BodyMode::Hash`]: the digest of every byte.
    pub body_digest: Option<Digest>,
    pub hops: Vec<Hop>,
}

impl Exchange {
    /// Every value of a header (`name` lowercase), in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The first value of a header (`name` lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The digest of the kept body (the whole body when it was not truncated).
    pub fn digest(&self) -> Digest {
        self.body_digest
            .unwrap_or_else(|| crate::digest::of_bytes(&self.body))
    }
}

/// Why a request got no HTTP answer at all (not a finding: the probe cannot judge the path).
#[derive(Debug, Clone)]
pub(crate) enum NetError {
    Transport(String),
    TooManyRedirects(Vec<Hop>),
    BadRedirect(String),
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::Transport(e) => f.write_str(e),
            NetError::TooManyRedirects(h) => write!(
                f,
                "more than {MAX_REDIRECTS} redirects (last to {})",
                h.last().map(|h| h.location.as_str()).unwrap_or("?")
            ),
            NetError::BadRedirect(e) => f.write_str(e),
        }
    }
}

/// TLS and credentials, as the command line gave them.
#[derive(Clone, Debug, Default)]
pub(crate) struct Options {
    pub insecure: bool,
    /// PEM file of CA certificates to trust instead of the built-in roots.
    pub ca_cert: Option<std::path::PathBuf>,
    /// `user:password`.
    pub credentials: Option<(String, String)>,
    pub timeout: Duration,
}

#[derive(Clone)]
pub(crate) struct Client {
    agent: ureq::Agent,
    /// `scheme://host[:port]`, no trailing slash: the registry's origin.
    origin: String,
    auth: Option<Arc<str>>,
}

/// The manifest types the probe asks for, as docker and containerd do: every type the tool
/// serves, so a registry that negotiates (distribution converts or refuses what the client did
/// not list) answers with the stored bytes.
pub(crate) fn manifest_accept() -> String {
    crate::media::MediaType::ALL
        .iter()
        .map(|t| t.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Client {
    /// A client for the registry at `url` (`http://` or `https://`, host and port, no path).
    pub fn new(url: &str, options: &Options) -> anyhow::Result<Client> {
        let origin = parse_origin(url)?;
        let mut tls = ureq::tls::TlsConfig::builder().disable_verification(options.insecure);
        if let Some(path) = &options.ca_cert {
            let pem = std::fs::read(path)
                .map_err(|e| anyhow::anyhow!("cannot read --ca-cert {}: {e}", path.display()))?;
            let mut certs = Vec::new();
            for item in ureq::tls::parse_pem(&pem) {
                match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => certs.push(c),
                    Ok(_) => {}
                    Err(e) => anyhow::bail!("--ca-cert {}: {e}", path.display()),
                }
            }
            if certs.is_empty() {
                anyhow::bail!("--ca-cert {}: no PEM certificate in it", path.display());
            }
            tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
        }
        let timeout = Some(options.timeout);
        let config = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .allow_non_standard_methods(true)
            .user_agent(concat!("registrish-gen-probe/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls.build())
            .timeout_connect(timeout)
            .timeout_send_request(timeout)
            .timeout_recv_response(timeout)
            // Per read, not per body: a multi-GiB blob may take longer than any one timeout,
            // but a stalled one does not.
            .timeout_per_read(timeout)
            .max_idle_connections(64)
            .max_idle_connections_per_host(64)
            .build();
        let auth = options.credentials.as_ref().map(|(u, p)| {
            Arc::from(format!(
                "Basic {}",
                crate::auth::base64(format!("{u}:{p}").as_bytes())
            ))
        });
        Ok(Client {
            agent: config.into(),
            origin,
            auth,
        })
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn has_credentials(&self) -> bool {
        self.auth.is_some()
    }

    /// `METHOD path` (a path on the registry's origin), following redirects.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
        mode: BodyMode,
    ) -> Result<Exchange, NetError> {
        let mut url = format!("{}{path}", self.origin);
        let mut method = method.to_string();
        let mut hops = Vec::new();
        loop {
            let same_origin = origin_of(&url) == Some(self.origin.as_str());
            let mut builder = ureq::http::Request::builder()
                .method(method.as_str())
                .uri(url.as_str());
            for (name, value) in headers {
                builder = builder.header(*name, *value);
            }
            if same_origin && let Some(auth) = &self.auth {
                builder = builder.header("Authorization", auth.as_ref());
            }
            let result = match body {
                Some(b) if method != "GET" && method != "HEAD" => builder
                    .body(b)
                    .map_err(|e| NetError::Transport(e.to_string()))
                    .and_then(|r| self.run(r)),
                _ => builder
                    .body(())
                    .map_err(|e| NetError::Transport(e.to_string()))
                    .and_then(|r| self.run(r)),
            };
            let response = result?;
            let status = response.status().as_u16();
            let location = response
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .map(String::from);
            if matches!(status, 301 | 302 | 303 | 307 | 308) {
                let Some(location) = location else {
                    return Err(NetError::BadRedirect(format!(
                        "{status} without a Location header"
                    )));
                };
                let next = resolve(&url, &location)
                    .ok_or_else(|| NetError::BadRedirect(format!("{status} to {location:?}")))?;
                hops.push(Hop {
                    status,
                    other_origin: origin_of(&next) != Some(self.origin.as_str()),
                    location: next.clone(),
                });
                if hops.len() > MAX_REDIRECTS {
                    return Err(NetError::TooManyRedirects(hops));
                }
                // 303 (and, as browsers and Go do, 301/302 on POST) turn into GET.
                if status == 303 || (matches!(status, 301 | 302) && method == "POST") {
                    method = "GET".into();
                }
                url = next;
                continue;
            }
            return read(response, mode, hops, &method);
        }
    }

    /// A HEAD over a plain TCP connection, to see what HTTP libraries hide: bytes after the
    /// headers. `None` on https (the check needs the raw stream), else the number of bytes
    /// that followed the headers within half a second.
    pub fn raw_head_extra(&self, path: &str, timeout: Duration) -> Option<Result<usize, String>> {
        use std::io::Write;
        let authority = self.origin.strip_prefix("http://")?;
        let addr = if authority.contains(':') && !authority.ends_with(']') {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        let result = (|| -> std::io::Result<usize> {
            use std::net::ToSocketAddrs;
            let sock = addr
                .to_socket_addrs()?
                .next()
                .ok_or_else(|| std::io::Error::other("no address"))?;
            let mut stream = std::net::TcpStream::connect_timeout(&sock, timeout)?;
            stream.set_read_timeout(Some(timeout))?;
            let mut req = format!(
                "HEAD {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nAccept: {}\r\n",
                manifest_accept()
            );
            if let Some(auth) = &self.auth {
                req.push_str(&format!("Authorization: {auth}\r\n"));
            }
            req.push_str("\r\n");
            stream.write_all(req.as_bytes())?;
            let mut raw = Vec::new();
            let mut buf = [0u8; 4096];
            let end = loop {
                let n = stream.read(&mut buf)?;
                if n == 0 {
                    return Ok(0);
                }
                raw.extend_from_slice(&buf[..n]);
                if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
                if raw.len() > 1 << 20 {
                    return Err(std::io::Error::other("headers over 1 MiB"));
                }
            };
            // Some servers keep the connection open despite `Connection: close`: wait briefly.
            stream.set_read_timeout(Some(Duration::from_millis(500)))?;
            let mut extra = raw.len() - end;
            loop {
                match stream.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => extra += n,
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        break;
                    }
                    Err(e) if extra > 0 => return Err(e),
                    Err(_) => break,
                }
                if extra > 1 << 20 {
                    break;
                }
            }
            Ok(extra)
        })();
        Some(result.map_err(|e| e.to_string()))
    }

    fn run(
        &self,
        request: ureq::http::Request<impl ureq::AsSendBody>,
    ) -> Result<ureq::http::Response<ureq::Body>, NetError> {
        self.agent
            .run(request)
            .map_err(|e| NetError::Transport(e.to_string()))
    }
}

fn read(
    response: ureq::http::Response<ureq::Body>,
    mode: BodyMode,
    hops: Vec<Hop>,
    method: &str,
) -> Result<Exchange, NetError> {
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut ex = Exchange {
        status,
        headers,
        hops,
        ..Exchange::default()
    };
    if method == "HEAD" {
        return Ok(ex);
    }
    let mut reader = response.into_body().into_reader();
    let mut buf = vec![0u8; 64 * 1024];
    let mut hasher = (mode == BodyMode::Hash).then(Sha256::new);
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| NetError::Transport(format!("reading the body: {e}")))?;
        if n == 0 {
            break;
        }
        ex.body_len += n as u64;
        match (&mut hasher, mode) {
            (Some(h), _) => h.update(&buf[..n]),
            (None, BodyMode::Keep(limit)) => {
                let room = limit.saturating_sub(ex.body.len());
                ex.body.extend_from_slice(&buf[..n.min(room)]);
            }
            (None, BodyMode::Hash) => unreachable!("a hasher exists in Hash mode"),
        }
    }
    if let Some(h) = hasher {
        ex.body_digest = Some(Digest::from_sha256(h.finalize().into()));
    }
    Ok(ex)
}

/// `scheme://authority` of an absolute URL.
pub(crate) fn origin_of(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(&url[..url.len() - rest.len() + end])
}

/// The registry's origin from the command line's URL: a scheme is required (a registry at the
/// root of a host: clients accept no path prefix, shared/reference/hosts.md).
pub(crate) fn parse_origin(url: &str) -> anyhow::Result<String> {
    let trimmed = url.trim_end_matches('/');
    let trimmed = trimmed.strip_suffix("/v2").unwrap_or(trimmed);
    let origin = origin_of(trimmed).ok_or_else(|| {
        anyhow::anyhow!("URL {url:?}: give it with its scheme, e.g. https://registry.example.org")
    })?;
    if origin.len() != trimmed.len() {
        anyhow::bail!(
            "URL {url:?}: a registry is served at the root of a host (clients accept no path prefix); give only scheme://host[:port]"
        );
    }
    let authority = &origin[origin.find("://").map(|i| i + 3).unwrap_or(0)..];
    if authority.is_empty() || authority.contains('@') {
        anyhow::bail!(
            "URL {url:?}: no host, or credentials in it (use --user or REGISTRISH_PROBE_USER)"
        );
    }
    Ok(origin.to_string())
}

/// Where a `Location` leads from `current` (absolute, scheme-relative, absolute-path or
/// relative references, RFC 3986 section 5.2 without dot-segment removal).
pub(crate) fn resolve(current: &str, location: &str) -> Option<String> {
    if origin_of(location).is_some() {
        return Some(location.to_string());
    }
    let origin = origin_of(current)?;
    if let Some(rest) = location.strip_prefix("//") {
        let scheme = &current[..current.find("://")?];
        return Some(format!("{scheme}://{rest}"));
    }
    if location.starts_with('/') {
        return Some(format!("{origin}{location}"));
    }
    let path = &current[origin.len()..];
    let path = path.split(['?', '#']).next().unwrap_or("");
    let dir = &path[..path.rfind('/').map(|i| i + 1).unwrap_or(0)];
    let dir = if dir.is_empty() { "/" } else { dir };
    Some(format!("{origin}{dir}{location}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_and_redirect_targets() {
        assert_eq!(
            parse_origin("https://r.example.org/").unwrap(),
            "https://r.example.org"
        );
        assert_eq!(
            parse_origin("http://127.0.0.1:5000/v2/").unwrap(),
            "http://127.0.0.1:5000"
        );
        assert!(parse_origin("r.example.org").is_err());
        assert!(parse_origin("https://r.example.org/mirror").is_err());
        assert!(parse_origin("https://u:p@r.example.org").is_err());
        let from = "http://a:1/v2/x/blobs/sha256:00";
        assert_eq!(
            resolve(from, "https://cdn/b?sig=1").unwrap(),
            "https://cdn/b?sig=1"
        );
        assert_eq!(resolve(from, "//cdn/b").unwrap(), "http://cdn/b");
        assert_eq!(resolve(from, "/store/b").unwrap(), "http://a:1/store/b");
        assert_eq!(resolve(from, "c").unwrap(), "http://a:1/v2/x/blobs/c");
        assert_eq!(origin_of("http://a:1/v2/").unwrap(), "http://a:1");
        assert_eq!(origin_of("https://cdn?x").unwrap(), "https://cdn");
    }
}
