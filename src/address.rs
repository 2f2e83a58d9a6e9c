//! What server configs (nginx, Apache, Caddy) accept for a listen address,
//! a host name and a document root: checked once here, before any template,
//! so every server renderer refuses the same values the same way.

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
