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

use super::{Ctx, Host};
use crate::address::{Listen, check_root_path, check_server_name};
use crate::output::Outputs;

use crate::media::MediaType;
use crate::model::{Registry, SymlinkKind};
use crate::output::Shape;
use crate::routes;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub(crate) const DEFAULT_PORT: u16 = 80;

pub(crate) struct Caddy;

/// `[caddy]` in registrish.toml, and the flags of `registrish-gen caddy`.
#[derive(clap::Args, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CaddyOptions {
    /// PORT or ADDR:PORT to serve on (default :80; ADDR becomes a `bind`); the host name goes
    /// in --server-name.
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<String>,
    /// Host name matched by the site block (default: any).
    #[arg(long, value_name = "NAME")]
    pub server_name: Option<String>,
    /// `root` directive (default: TREE's absolute path).
    #[arg(long, value_name = "PATH")]
    pub root_path: Option<String>,
}

pub(crate) struct CaddySettings {
    pub listen: Option<String>,
    pub server_name: Option<String>,
    pub root_path: String,
}

impl Host for Caddy {
    const READS_REFERENCES: bool = false;
    const NAME: &'static str = "caddy";
    const ABOUT: &'static str = "Render a Caddyfile site block.";
    const TITLE: &'static str = "Caddy";
    const TEMPLATES: &'static [&'static str] = &["caddyfile.tera", "caddy_map.tera"];
    const OUTPUT: Shape = Shape::Stdout;
    const OUTPUT_HELP: &'static str = "Write to FILE atomically instead of standard output.";
    const EXAMPLES: &'static [crate::cli::Example] = &[
        (
            "A site block with Caddy's automatic HTTPS (import it from your Caddyfile)",
            "registrish-gen caddy /srv/registry --server-name registry.example.org -o /etc/caddy/registry.caddy",
        ),
        (
            "Plain HTTP on this machine's port 8080, to standard output",
            "registrish-gen caddy /srv/registry --listen 127.0.0.1:8080",
        ),
    ];
    const BLOBS_URL: bool = true;
    const CREDENTIALS: super::Credentials = super::Credentials::Htpasswd;
    type Options = CaddyOptions;
    type Settings = CaddySettings;

    fn settings(o: CaddyOptions, _: &CaddyOptions, registry: &Registry) -> Result<CaddySettings> {
        if let Some(l) = &o.listen {
            Listen::parse(l)?;
        }
        if let Some(name) = &o.server_name {
            check_server_name(name, true)?;
        }
        let root_path = o
            .root_path
            .unwrap_or_else(|| registry.root.to_string_lossy().into_owned());
        check_root_path(&root_path, true)?;
        Ok(CaddySettings {
            listen: o.listen,
            server_name: o.server_name,
            root_path,
        })
    }

    fn render(
        registry: &Registry,
        settings: &CaddySettings,
        ctx: &Ctx,
        out: &mut Outputs,
    ) -> Result<()> {
        render(registry, settings, ctx, out)
    }
}

impl CaddySettings {
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
    for s in &registry.facts.symlinks {
        // Only paths a request can spell; the routes need the OCI grammar anyway.
        let plain = s.path.starts_with("v2/")
            && s.path.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/' | b':')
            });
        if !plain {
            continue;
        }
        match s.kind {
            // Caddy follows symlinks and has no switch against it: an in-tree one may
            // lead to a file outside v2/ (TREE/backup/credentials), so every one is refused.
            SymlinkKind::Outside | SymlinkKind::Dangling | SymlinkKind::Inside => {
                files.push(format!("/{}", s.path))
            }
            SymlinkKind::Directory => dirs.push(format!("/{}", s.path)),
        }
    }
    files.sort();
    files.dedup();
    dirs.sort();
    dirs.dedup();
    (files, dirs)
}

fn render(
    registry: &Registry,
    settings: &CaddySettings,
    ctx: &Ctx,
    out: &mut Outputs,
) -> Result<()> {
    let (site_address, bind) = settings.addresses()?;
    // One string per entry, as for nginx: `PATH CODEsha256:HEX`, made a part at a time as the
    // rows are rendered (all of them as template values cost more than the model; issue 16).
    // Refused by path below: not in the table either.
    let symlinked = registry.facts.symlinked();
    let rows = || {
        registry.repositories.values().flat_map(|repo| {
            routes::manifests(repo).filter_map(|route| {
                let path = route.path();
                (!symlinked.contains(&path[1..]))
                    .then(|| format!("{path} {}{}", route.media_type.code(), route.digest))
            })
        })
    };
    let row_count = rows().count();
    let parts = row_count.div_ceil(ROWS_PER_PART);
    let (refused_files, refused_dirs) = refused_symlinks(registry);
    let context = json!({
        "site_address": site_address,
        "bind": bind,
        "root": settings.root_path,
        "tag_max_age": ctx.common.tag_max_age,
        "blobs_url": ctx.common.blobs_url.as_ref().map(|u| u.as_str()),
        "auth": ctx.common.htpasswd.is_some(),
        "htpasswd": ctx.common.htpasswd_path(),
        "realm": ctx.common.realm.as_str(),
        // Caddy cannot read an htpasswd file: the config holds each user's bcrypt hash,
        // base64-encoded as Caddy 2.6's basicauth takes it.
        "users": ctx.common.htpasswd.iter().flat_map(|h| &h.entries).map(|e| [e.user.clone(), crate::auth::base64(e.hash.as_bytes())]).collect::<Vec<_>>(),
        "immutable_max_age": ctx.common.immutable_max_age,
        "media_types": MediaType::ALL.iter().map(|t| [t.code().to_string(), t.as_str().to_string()]).collect::<Vec<_>>(),
        "repositories": registry.repositories.keys().collect::<Vec<_>>(),
        "repository_count": registry.repositories.len(),
        "manifest_path_count": row_count,
        "manifests": (0..parts).map(crate::templates::slot).collect::<Vec<_>>(),
        "refused_files": refused_files,
        "refused_dirs": refused_dirs,
        "errors": crate::layout::error_bodies(),
    });
    let mut table = rows();
    ctx.templates
        .render_with_slots("caddyfile.tera", context, parts, out.file(0), |_| {
            let entries: Vec<Value> = table
                .by_ref()
                .take(ROWS_PER_PART)
                .map(Value::String)
                .collect();
            (
                "caddy_map.tera",
                crate::templates::part_context("entries", entries),
            )
        })
}

/// Rows rendered at a time.
const ROWS_PER_PART: usize = 65_536;

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
