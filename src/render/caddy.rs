//! Caddy 2: one Caddyfile site block.
//!
//! The manifest table is a `map` (exact, case-sensitive string comparison;
//! Caddy's `path` matcher lowercases, so it cannot tell `Latest` from
//! `latest`). Measured here with Caddy 2.6 at 100,000 tags (200,000 manifest
//! paths; more in the template): Caddy has no hashed lookup, `map` searches
//! its entries in order and costs about 50 µs per entry to adapt and load
//! (every entry becomes a JSON object Caddy decodes again at each level of its
//! config). With three outputs per entry `caddy validate` took 10.4 s and
//! 800 MB and a request 6.2 ms (each placeholder searches again); one output,
//! read once per request into a `vars` snapshot, takes 9.7 s, 640 MB and
//! 3.1 ms. Digest paths in `path` matcher lists instead loaded in 6.4 s but
//! answered in 6.4 ms, with a second set of handlers: one table it is.
//!
//! Caddy follows symlinks and has no switch against it, so files read from
//! disk outside the table (blobs, tags/list) are served only under the
//! repositories of the model, and the symlinks the scan found leading out of
//! the tree are refused by path.

use super::address::{Listen, check_root_path, check_server_name};
use super::{Rendered, Templates};
use crate::cli::CaddyArgs;
use crate::media::MediaType;
use crate::model::Registry;
use crate::problem::Kind;
use crate::settings::{Common, FileConfig};
use anyhow::Result;
use serde_json::{Value, json};

pub const DEFAULT_PORT: u16 = 80;

pub struct CaddySettings {
    pub listen: Option<String>,
    pub server_name: Option<String>,
    pub root_path: String,
}

impl CaddySettings {
    pub fn resolve(
        args: &CaddyArgs,
        file: &FileConfig,
        registry: &Registry,
    ) -> Result<CaddySettings> {
        let listen = args.listen.clone().or_else(|| file.caddy.listen.clone());
        if let Some(l) = &listen {
            Listen::parse(l)?;
        }
        let server_name = args
            .server_name
            .clone()
            .or_else(|| file.caddy.server_name.clone());
        if let Some(name) = &server_name {
            check_server_name(name, true)?;
        }
        let root_path = args
            .root_path
            .clone()
            .or_else(|| file.caddy.root_path.clone())
            .unwrap_or_else(|| registry.root.to_string_lossy().into_owned());
        check_root_path(&root_path, true)?;
        Ok(CaddySettings {
            listen,
            server_name,
            root_path,
        })
    }

    /// (site address, `bind` host). A site address with a host name makes
    /// Caddy manage a certificate for it unless the port is 80; without one
    /// Caddy serves plain HTTP on the port.
    fn addresses(&self) -> Result<(String, Option<String>)> {
        let listen = self.listen.as_deref().map(Listen::parse).transpose()?;
        let port = listen.as_ref().map(|l| l.port);
        let site = match (&self.server_name, port) {
            (Some(name), Some(port)) => format!("{name}:{port}"),
            (Some(name), None) => name.clone(),
            (None, port) => format!(":{}", port.unwrap_or(DEFAULT_PORT)),
        };
        // Caddy takes an IPv6 `bind` address with or without brackets.
        let bind = listen.and_then(|l| l.host);
        Ok((site, bind))
    }
}

/// Symlinks the scan refused, as request paths: (files, directories).
fn refused_symlinks(registry: &Registry) -> (Vec<String>, Vec<String>) {
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    for p in &registry.problems {
        // Only paths a request can spell; the routes need the OCI grammar anyway.
        let plain = p.path.starts_with("v2/")
            && p.path.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/' | b':')
            });
        if !plain {
            continue;
        }
        match p.kind {
            Kind::SymlinkOutside | Kind::SymlinkDangling => files.push(format!("/{}", p.path)),
            Kind::SymlinkDirectory => dirs.push(format!("/{}", p.path)),
            _ => {}
        }
    }
    files.sort();
    files.dedup();
    dirs.sort();
    dirs.dedup();
    (files, dirs)
}

pub fn render(
    registry: &Registry,
    common: &Common,
    settings: &CaddySettings,
    templates: &Templates,
) -> Result<Rendered> {
    let (site_address, bind) = settings.addresses()?;
    // One string per entry, as for nginx: `PATH CODEsha256:HEX`.
    let mut manifests = Vec::with_capacity(registry.manifest_count() + registry.tag_count());
    for (name, repo) in &registry.repositories {
        for (tag, digest) in &repo.tags {
            let code = repo.manifests[digest].media_type.code();
            manifests.push(Value::String(format!(
                "/v2/{name}/manifests/{tag} {code}{digest}"
            )));
        }
        for (digest, m) in &repo.manifests {
            let code = m.media_type.code();
            manifests.push(Value::String(format!(
                "/v2/{name}/manifests/{digest} {code}{digest}"
            )));
        }
    }
    let (refused_files, refused_dirs) = refused_symlinks(registry);
    let context = json!({
        "site_address": site_address,
        "bind": bind,
        "root": settings.root_path,
        "tag_regex": super::apache::TAG_REGEX,
        "tag_max_age": common.tag_max_age,
        "immutable_max_age": common.immutable_max_age,
        "media_types": MediaType::ALL.iter().map(|t| [t.code().to_string(), t.as_str().to_string()]).collect::<Vec<_>>(),
        "repositories": registry.repositories.keys().collect::<Vec<_>>(),
        "repository_count": registry.repositories.len(),
        "manifest_path_count": manifests.len(),
        "manifests": Value::Array(manifests),
        "refused_files": refused_files,
        "refused_dirs": refused_dirs,
    });
    Ok(Rendered {
        text: templates.render_value("caddyfile.tera", context)?,
        problems: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(listen: Option<&str>, name: Option<&str>) -> CaddySettings {
        CaddySettings {
            listen: listen.map(String::from),
            server_name: name.map(String::from),
            root_path: "/srv".into(),
        }
    }

    #[test]
    fn site_addresses() {
        let a = |l, n| settings(l, n).addresses().unwrap();
        assert_eq!(a(None, None), (":80".into(), None));
        assert_eq!(
            a(Some("127.0.0.1:5080"), None),
            (":5080".into(), Some("127.0.0.1".into()))
        );
        assert_eq!(a(Some("[::1]:5080"), None).1.as_deref(), Some("[::1]"));
        assert_eq!(
            a(None, Some("registry.example.org")),
            ("registry.example.org".into(), None)
        );
        assert_eq!(
            a(Some("*:8443"), Some("registry.example.org")),
            ("registry.example.org:8443".into(), None)
        );
    }
}
