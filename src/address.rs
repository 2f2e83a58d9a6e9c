//! What server configs (nginx, Apache, Caddy) accept for a listen address,
//! a host name, a document root and the origin blobs are redirected to:
//! checked once here, before any template, so every renderer refuses the same
//! values the same way.

use anyhow::{Result, bail};

/// Whether `s` is a listen address or host name a server config can take
/// as one word: `PORT`, `:PORT`, `HOST`, `HOST:PORT`, `[IPv6]:PORT`, `*:PORT`, where
/// HOST is `*`, a DNS name (optionally `*.`-prefixed) or an IPv4 address.
pub fn is_host_port(s: &str) -> bool {
    let port_ok = |p: &str| {
        !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) && {
            let n: u32 = p.parse().unwrap_or(0);
            (1..=65535).contains(&n)
        }
    };
    let name_ok = |h: &str| {
        let h = h.strip_prefix("*.").unwrap_or(h);
        h == "*"
            || (!h.is_empty()
                && h.len() <= 253
                && h.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                }))
    };
    if let Some(rest) = s.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        let v6_ok = v6.contains(':')
            && v6
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        return v6_ok && (after.is_empty() || after.strip_prefix(':').is_some_and(port_ok));
    }
    match s.rsplit_once(':') {
        Some((host, port)) => (host.is_empty() || host == "*" || name_ok(host)) && port_ok(port),
        // All digits is a port, never a host name.
        None if s.bytes().all(|b| b.is_ascii_digit()) => port_ok(s),
        None => name_ok(s),
    }
}

/// An address to listen on: `PORT`, `HOST:PORT`, `*:PORT` or `[IPv6]:PORT`.
#[derive(Debug, PartialEq, Eq)]
pub struct Listen {
    /// `None` for every address (`PORT` or `*:PORT`); IPv6 keeps its brackets.
    pub host: Option<String>,
    pub port: u16,
}

impl Listen {
    pub fn parse(s: &str) -> Result<Listen> {
        let bad = || {
            anyhow::anyhow!(
                "--listen {:?}: expected PORT, ADDR:PORT or [IPv6]:PORT",
                crate::problem::printable(s)
            )
        };
        if !is_host_port(s) {
            return Err(bad());
        }
        if s.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(Listen {
                host: None,
                port: s.parse().map_err(|_| bad())?,
            });
        }
        let (host, port) = match s.rsplit_once(':') {
            // `[::1]` alone has colons but no port.
            Some((host, port)) if !port.contains(']') => (host, port),
            _ => return Err(bad()),
        };
        Ok(Listen {
            host: (!host.is_empty() && host != "*").then(|| host.to_string()),
            port: port.parse().map_err(|_| bad())?,
        })
    }

    /// `HOST:PORT`, or `*:PORT` for every address.
    pub fn with_wildcard(&self) -> String {
        format!("{}:{}", self.host.as_deref().unwrap_or("*"), self.port)
    }
}

/// A host name for a server block: DNS characters only.
pub fn check_server_name(name: &str, allow_wildcard: bool) -> Result<()> {
    let plain = is_host_port(name)
        && !name.contains(':')
        && !name.bytes().all(|b| b.is_ascii_digit())
        && (allow_wildcard || !name.contains('*'));
    if !plain {
        bail!(
            "--server-name {:?}: expected one host name like registry.example.org",
            crate::problem::printable(name)
        );
    }
    Ok(())
}

/// An absolute path the config quotes; the `quoted_path` filter refuses the
/// characters that quoting cannot make literal.
pub fn check_root_path(path: &str, glob_chars: bool) -> Result<()> {
    if !path.starts_with('/') {
        bail!(
            "--root-path {:?}: expected an absolute path",
            crate::problem::printable(path)
        );
    }
    // `<Directory>` reads `*`, `?` and `[...]` as wildcards.
    if !glob_chars && path.contains(['*', '?', '[', ']']) {
        bail!(
            "--root-path {:?}: Apache would read *, ? or [ ] in <Directory> as a wildcard",
            crate::problem::printable(path)
        );
    }
    Ok(())
}

/// The origin blob requests are redirected to (`--blobs-url`, `[blobs] url`): `http://` or
/// `https://`, a host name or IPv4 address with an optional port, and an optional path of
/// plain segments; no query, fragment, user info, IPv6 literal, quote, space or `$`. It is
/// written unquoted into nginx, Apache and Caddy configs, Netlify's `_redirects` and a
/// JavaScript string, so only characters that mean nothing in any of them pass (the
/// templates' `token` alphabet). Kept without a trailing `/`: the
/// redirect appends the request's path (`/v2/<name>/blobs/sha256:<hex>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobsUrl(String);

impl BlobsUrl {
    pub fn parse(s: &str) -> Result<BlobsUrl> {
        let bad = |why: &str| {
            anyhow::anyhow!(
                "--blobs-url {:?}: {why} (expected like https://blobs.example.org or https://bucket.example.org/prefix)",
                crate::problem::printable(s)
            )
        };
        let rest = s
            .strip_prefix("https://")
            .or_else(|| s.strip_prefix("http://"))
            .ok_or_else(|| bad("not an http:// or https:// URL"))?;
        let (host, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if host.is_empty()
            || host.contains(['*', '['])
            || !is_host_port(host)
            || host.parse::<u16>().is_ok()
        {
            return Err(bad("not a host name or address, with an optional port"));
        }
        let path = path.trim_end_matches('/');
        let segment_ok = |seg: &str| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        };
        if !path.is_empty() && !path[1..].split('/').all(segment_ok) {
            return Err(bad(
                "the path may hold only letters, digits and . _ - between slashes",
            ));
        }
        Ok(BlobsUrl(format!(
            "{host_scheme}{host}{path}",
            host_scheme = &s[..s.len() - rest.len()]
        )))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for BlobsUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod blobs_url_tests {
    use super::BlobsUrl;

    #[test]
    fn takes_an_origin_with_an_optional_plain_path() {
        for (given, kept) in [
            ("https://blobs.example.org", "https://blobs.example.org"),
            ("https://blobs.example.org/", "https://blobs.example.org"),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            (
                "https://pub-1.r2.dev/mirror/",
                "https://pub-1.r2.dev/mirror",
            ),
            (
                "http://registry-blobs:9000/a/b",
                "http://registry-blobs:9000/a/b",
            ),
        ] {
            assert_eq!(BlobsUrl::parse(given).unwrap().as_str(), kept, "{given}");
        }
    }

    #[test]
    fn refuses_what_a_config_or_script_could_read_as_syntax() {
        for bad in [
            "blobs.example.org",
            "ftp://blobs.example.org",
            "https://",
            "https://8080",
            "https://*.example.org",
            "https://user@blobs.example.org",
            "https://blobs.example.org/a b",
            "https://blobs.example.org/a;return 200",
            "https://blobs.example.org/$host",
            "https://blobs.example.org/\"x",
            "https://blobs.example.org/a?x=1",
            "https://blobs.example.org/a#f",
            "https://blobs.example.org/../x",
            "https://blobs.example.org/a//b",
            "https://blobs.example.org/{x}",
            "https://blobs.example.org/a%20b",
            "https://blobs.example.org\n",
            "http://[::1]:9000",
            "https://blobs.example.org/~me",
        ] {
            assert!(BlobsUrl::parse(bad).is_err(), "{bad:?}");
        }
    }
}
