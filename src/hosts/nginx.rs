//! nginx: one file for the http context (`conf.d/registry.conf`): lookup
//! tables plus one server block.
//!
//! Why maps: one exact `location` per file (registrish's way) makes `nginx -t`
//! take 10 s at 20k files and minutes at 100k; a `map $uri` of the same size
//! loads in well under a second (hosts.md, measured here). Manifests are only
//! served when their path is in the map, so a hostile or broken file on disk
//! is never served as a manifest.

use super::{Ctx, Host};
use crate::address::{Listen, check_root_path, check_server_name};
use crate::output::Outputs;

use crate::grammar::Digest;
use crate::layout;
use crate::media::MediaType;
use crate::model::{Registry, Repository};
use crate::output::Shape;
use crate::routes;
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashSet;

pub(crate) const DEFAULT_LISTEN: &str = "80";
pub(crate) const DEFAULT_SERVER_NAME: &str = "_";

pub(crate) struct Nginx;

/// `[nginx]` in registrish.toml, and the flags of `registrish-gen nginx`.
#[derive(clap::Args, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NginxOptions {
    /// `listen` address (default 80).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<String>,
    /// `server_name` (default `_`).
    #[arg(long, value_name = "NAME")]
    pub server_name: Option<String>,
    /// Where nginx finds TREE (default: TREE's absolute path).
    #[arg(long, value_name = "PATH")]
    pub root_path: Option<String>,
    /// Serve HTTPS with this certificate (PEM); clients want TLS from anything but localhost.
    #[arg(long, value_name = "FILE", requires = "ssl_certificate_key")]
    pub ssl_certificate: Option<String>,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "ssl_certificate")]
    pub ssl_certificate_key: Option<String>,
}

pub(crate) struct NginxSettings {
    pub listen: String,
    pub server_name: String,
    pub root_path: String,
    /// (certificate, key) for HTTPS.
    pub tls: Option<(String, String)>,
}

impl Host for Nginx {
    const READS_REFERENCES: bool = false;
    const NAME: &'static str = "nginx";
    const ABOUT: &'static str =
        "Render an nginx http-context config (maps + one server block), e.g. conf.d/registry.conf.";
    const TITLE: &'static str = "nginx";
    const TEMPLATES: &'static [&'static str] =
        &["nginx.conf.tera", "nginx_map.tera", "nginx_tables.tera"];
    const OUTPUT: Shape = Shape::Stdout;
    const OUTPUT_HELP: &'static str = "Write to FILE atomically instead of standard output.";
    const EXAMPLES: &'static [crate::cli::Example] = &[
        (
            "HTTPS for a host name (docker and containerd want TLS from anything but localhost)",
            "registrish-gen nginx /srv/registry --server-name registry.example.org --ssl-certificate /etc/letsencrypt/live/registry.example.org/fullchain.pem --ssl-certificate-key /etc/letsencrypt/live/registry.example.org/privkey.pem -o /etc/nginx/conf.d/registry.conf",
        ),
        (
            "Plain HTTP on this machine's port 5080 (then `nginx -s reload`)",
            "registrish-gen nginx /srv/registry --listen 127.0.0.1:5080 -o /etc/nginx/conf.d/registry.conf",
        ),
        (
            "In CI: exit 1 when the committed config is not what the tree gives now",
            "registrish-gen nginx /srv/registry --listen 127.0.0.1:5080 --check /etc/nginx/conf.d/registry.conf",
        ),
    ];
    const BLOBS_URL: bool = true;
    const CREDENTIALS: super::Credentials = super::Credentials::Htpasswd;
    type Options = NginxOptions;
    type Settings = NginxSettings;

    fn settings(
        o: NginxOptions,
        _flags: &NginxOptions,
        registry: &Registry,
    ) -> Result<NginxSettings> {
        if o.ssl_certificate.is_some() != o.ssl_certificate_key.is_some() {
            bail!("[nginx] ssl_certificate and ssl_certificate_key go together");
        }
        let tls = o.ssl_certificate.zip(o.ssl_certificate_key);
        let mut listen = o.listen.unwrap_or(if tls.is_some() {
            "443".into()
        } else {
            DEFAULT_LISTEN.into()
        });
        // HTTPS needs `ssl` on the listen line; the user may have written it already.
        if tls.is_some() && !listen.split_whitespace().any(|w| w == "ssl") {
            listen.push_str(" ssl");
        }
        let server_name = o.server_name.unwrap_or(DEFAULT_SERVER_NAME.into());
        let root_path = match o.root_path {
            Some(p) => p,
            None => registry.root.to_string_lossy().into_owned(),
        };
        // The same address, name and root checks as the other servers; nginx
        // adds flag words after the address (`443 ssl`, `default_server`,
        // `backlog=511`) and `_` as the catch-all server name.
        let mut words = listen.split_whitespace();
        let flags_ok = words.clone().skip(1).all(|w| {
            !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_=".contains(&b))
        });
        if words.next().map(Listen::parse).is_none_or(|l| l.is_err()) || !flags_ok {
            bail!(
                "--listen {:?}: expected PORT, ADDR:PORT or [IPv6]:PORT, optionally followed by words like `ssl`",
                crate::problem::printable(&listen)
            );
        }
        for name in server_name.split_whitespace().filter(|n| *n != "_") {
            check_server_name(name, true)?;
        }
        if server_name.trim().is_empty() {
            bail!("--server-name: expected host names separated by spaces, or _");
        }
        check_root_path(&root_path, true)?;
        Ok(NginxSettings {
            tls,
            listen,
            server_name,
            root_path,
        })
    }

    fn render(
        registry: &Registry,
        settings: &NginxSettings,
        ctx: &Ctx,
        out: &mut Outputs,
    ) -> Result<()> {
        render(registry, settings, ctx, out)
    }
}

/// The most entries one `map` block holds; larger tables are split into a chain of maps,
/// each falling through to the next by its `default`. nginx checks every key and every
/// value it adds to a map against the ones already added, in a table of 10,007 lists
/// (ngx_hash_add_key and ngx_http_map's value table, NGX_HASH_LARGE_HSIZE in
/// src/core/ngx_hash.h), so one map of n entries costs n²/10,007 string comparisons: at
/// 2,000,000 manifest paths that was most of `nginx -t`'s 9.6 s and 1 GB (measured with perf
/// on a synthetic config of that shape: 17 s and 1.0 GB on a busy machine, against 6.4 s and
/// 570 MB for the same entries in maps of 65,536). A lookup that misses walks the whole chain,
/// one hash lookup per map (31 at 2M paths).
const MAP_ENTRIES: usize = 65_536;

/// How many of `entries` rows each map of the chain holds: the fewest maps of at most
/// [`MAP_ENTRIES`], evenly (so the last is not a sliver that needs a hash size of its own);
/// always at least one, possibly empty.
fn split_maps(entries: usize) -> Vec<usize> {
    let maps = entries.div_ceil(MAP_ENTRIES).max(1);
    (0..maps)
        .map(|i| entries * (i + 1) / maps - entries * i / maps)
        .collect()
}

/// Sizes nginx's map hash so it is built on the first try. nginx starts its
/// search near `map_hash_max_size` when that is large (over 10,000 and under 100
/// slots a key), and every bucket must hold the keys that collide in it: with four
/// slots per key, six colliding keys in one bucket is vanishingly rare. The two
/// directives are http-wide, so they are sized for the largest map of the chain.
fn hash_sizes(keys: usize, longest_key: usize) -> (usize, usize) {
    let element = 8 + (longest_key + 2).div_ceil(8) * 8;
    let bucket = (6 * element + 8).next_power_of_two().clamp(128, 32768);
    let max_size = (keys * 4).max(2048);
    (max_size, bucket)
}

fn regex_escape(s: &str) -> String {
    s.replace('.', "\\.")
}

/// One row of the manifest table: the route's path, and whether it is a tag whose lowercase
/// form another tag of the repository shares.
enum Row<'a> {
    Plain(routes::ManifestRoute<'a>, String),
    CaseSensitive(routes::ManifestRoute<'a>, String),
}

/// The most bytes of a repository's table (`;REF=VALUE` for each of its manifest paths, see
/// [`table`]). Every repository with a table this short is one row of one map, keyed by its
/// name, instead of a row per manifest path: at a million tags in repositories of five, that
/// is a tenth of the map entries and two thirds of the bytes, which is what `nginx -t` costs
/// (perf: ngx_conf_parse 44%, ngx_hash_add_key and its string comparisons 25%; 4.4 s and
/// 570 MB for 2,000,000 path rows, 1.8 s and 490 MB as 200,000 tables). A request finds its
/// reference in the table with one regex (nginx's PCRE, a backreference), linear in the
/// table, so larger repositories keep a row a path, which a hash finds in constant time. An
/// nginx token must fit its 4,096-byte read buffer (ngx_conf_read_token, "too long
/// parameter"): the limit stays well under it with the name and quotes around.
const TABLE_BYTES: usize = 3000;

/// The entries of a small repository's table, in route order: every tag, and every digest no
/// tag in the table names (a request by digest finds its type code in the value of a tag
/// that names it: one entry a manifest, not two, for a third less config at a million tags).
/// Symlinked files are left out, as in the rows. `None` when the repository cannot be a table:
/// past [`TABLE_BYTES`], or a digest file is a symlink while a tag names its manifest (the
/// tag's value would answer for the digest's path).
fn table_entries<'r>(
    repo: &'r Repository,
    symlinked: &HashSet<&str>,
) -> Option<Vec<routes::ManifestRoute<'r>>> {
    // Each tag's entry is at least `;T=C` and 64 hex digits: many tags cannot fit.
    if repo.tags.len() * 68 > TABLE_BYTES {
        return None;
    }
    let listed = |route: &routes::ManifestRoute| {
        symlinked.is_empty() || !symlinked.contains(&route.path()[1..])
    };
    let named: HashSet<&Digest> = routes::manifests(repo)
        .filter(|route| route.tag().is_some() && listed(route))
        .map(|route| route.digest)
        .collect();
    let mut entries = Vec::new();
    let mut bytes = 0;
    for route in routes::manifests(repo) {
        let by_digest = route.tag().is_none();
        if !listed(&route) {
            // Not reached today (a tagged manifest's digest file that is a symlink is one
            // `prepare` owns, so every host refuses the tree first), kept so a table can
            // never list what the scan left out.
            if by_digest && named.contains(route.digest) {
                return None;
            }
            continue;
        }
        if by_digest && named.contains(route.digest) {
            continue;
        }
        bytes += entry_bytes(&route);
        if bytes > TABLE_BYTES {
            return None;
        }
        entries.push(route);
    }
    Some(entries)
}

/// `;REF=C`, and for a tag its manifest's 64 hex digits.
fn entry_bytes(route: &routes::ManifestRoute) -> usize {
    match route.tag() {
        Some(tag) => 3 + tag.as_str().len() + 64,
        None => 3 + 71,
    }
}

/// A small repository's table as one `;REF=VALUE` string (`VALUE` a type code, then for a tag
/// its manifest's hex digest), or `None` when it keeps rows (see [`table_entries`]).
fn table(repo: &Repository, symlinked: &HashSet<&str>) -> Option<String> {
    let entries = table_entries(repo, symlinked)?;
    let mut text = String::with_capacity(entries.iter().map(entry_bytes).sum());
    for route in entries {
        text.push(';');
        text.push_str(&route.reference.to_string());
        text.push('=');
        text.push(route.media_type.code());
        if route.tag().is_some() {
            text.push_str(&route.digest.hex());
        }
    }
    Some(text)
}

/// Whether a repository's manifests are one table row, without making the table.
fn is_tabled(repo: &Repository, symlinked: &HashSet<&str>) -> bool {
    table_entries(repo, symlinked).is_some()
}

/// Every row, in the table's order (repositories, then each one's tags and digests), of the
/// repositories too large for a table (`large`). Symlinked files are left out: nginx would
/// answer 403 for them (disable_symlinks).
fn rows<'a>(
    large: &'a [&'a Repository],
    symlinked: &'a HashSet<&'a str>,
) -> impl Iterator<Item = Row<'a>> + 'a {
    large.iter().flat_map(move |repo| {
        let colliding = repo.case_colliding_tags();
        routes::manifests(repo).filter_map(move |route| {
            let path = route.path();
            if symlinked.contains(&path[1..]) {
                return None;
            }
            // nginx map keys match case-insensitively: tags that differ only by case become
            // case-sensitive regex keys.
            Some(match route.tag() {
                Some(tag) if colliding.contains(tag) => Row::CaseSensitive(route, path),
                _ => Row::Plain(route, path),
            })
        })
    })
}

/// The row as `map_entry` prints it: `PATH CODE` for a digest, `PATH CODEDIGEST` for a tag
/// (the digest is its Docker-Content-Digest).
fn entry(route: &routes::ManifestRoute, path: &str) -> String {
    let code = route.media_type.code();
    match route.tag() {
        Some(_) => format!("{path} {code}{}", route.digest),
        None => format!("{path} {code}"),
    }
}

fn render(
    registry: &Registry,
    settings: &NginxSettings,
    ctx: &Ctx,
    out: &mut Outputs,
) -> Result<()> {
    // First the table's size (for the split and the hash sizes), then the rows map by map,
    // each rendered through nginx_map.tera straight into the output: at 2,000,000 rows, the
    // rows held as template values cost more than the whole scan (issue 16).
    let symlinked = registry.facts.symlinked();
    // Which repositories are a table and which a row a path, decided once: the rows are
    // walked twice and the tables once, all from these.
    let (tabled, large): (Vec<&Repository>, Vec<&Repository>) = registry
        .repositories
        .values()
        .partition(|r| is_tabled(r, &symlinked));
    let mut plain = 0;
    let mut longest = 0;
    let mut case_sensitive = Vec::new();
    for row in rows(&large, &symlinked) {
        match row {
            Row::Plain(_, path) => {
                plain += 1;
                longest = longest.max(path.len());
            }
            Row::CaseSensitive(route, path) => case_sensitive.push(Value::String(format!(
                "\"~^{}$\" {}{}",
                regex_escape(&path),
                route.media_type.code(),
                route.digest
            ))),
        }
    }
    let longest_name = tabled
        .iter()
        .map(|r| 1 + r.name.as_str().len())
        .max()
        .unwrap_or(0);
    let sizes = split_maps(plain);
    let largest_map = sizes.iter().copied().max().unwrap_or(0).max(tabled.len());
    let (map_hash_max_size, map_hash_bucket_size) =
        hash_sizes(largest_map, longest.max(longest_name));
    let table_parts = tabled.len().div_ceil(TABLES_PER_PART);
    // The slots, in the template's order: the tables' parts, then the maps' rows.
    let tables: Vec<String> = (0..table_parts).map(crate::templates::slot).collect();
    let manifest_maps: Vec<String> = (table_parts..table_parts + sizes.len())
        .map(crate::templates::slot)
        .collect();
    let common = ctx.common;
    let context = json!({
        "listen": settings.listen,
        "server_name": settings.server_name,
        "root": settings.root_path,
        "ssl_certificate": settings.tls.as_ref().map(|t| t.0.clone()),
        "ssl_certificate_key": settings.tls.as_ref().map(|t| t.1.clone()),
        "tag_max_age": common.tag_max_age,
        "blobs_url": common.blobs_url.as_ref().map(|u| u.as_str()),
        "auth": common.htpasswd.is_some(),
        "htpasswd": common.htpasswd_path(),
        "realm": common.realm.as_str(),
        "immutable_max_age": common.immutable_max_age,
        "map_hash_max_size": map_hash_max_size,
        "map_hash_bucket_size": map_hash_bucket_size,
        "repository_count": registry.repositories.len(),
        "manifest_maps": manifest_maps,
        "tables": tables,
        "case_sensitive": Value::Array(case_sensitive),
        "media_types": MediaType::ALL.iter().map(|t| [t.code().to_string(), t.as_str().to_string()]).collect::<Vec<_>>(),
        "errors": layout::error_bodies(),
    });
    let mut rows = rows(&large, &symlinked).filter_map(|row| match row {
        Row::Plain(route, path) => Some(entry(&route, &path)),
        Row::CaseSensitive(..) => None,
    });
    // Keyed by `/NAME`: a bare name can be one of map's parameters (`default`, `include`,
    // `hostnames`, `volatile`; nginx's ngx_http_map). A repository whose every path is a
    // symlink has no table.
    let mut tables = tabled.iter().filter_map(|repo| {
        let text = table(repo, &symlinked).expect("is_tabled made the same table");
        (!text.is_empty()).then(|| {
            Value::Array(vec![
                Value::String(format!("/{}", repo.name)),
                Value::String(text),
            ])
        })
    });
    ctx.templates.render_with_slots(
        "nginx.conf.tera",
        context,
        sizes.len() + table_parts,
        out.file(0),
        |i| match i.checked_sub(table_parts).and_then(|m| sizes.get(m)) {
            Some(size) => {
                let entries: Vec<Value> = rows.by_ref().take(*size).map(Value::String).collect();
                (
                    "nginx_map.tera",
                    crate::templates::part_context("entries", entries),
                )
            }
            None => {
                let part: Vec<Value> = tables.by_ref().take(TABLES_PER_PART).collect();
                (
                    "nginx_tables.tera",
                    crate::templates::part_context("tables", part),
                )
            }
        },
    )
}

/// Repository tables rendered at a time.
const TABLES_PER_PART: usize = 8192;

#[cfg(test)]
mod tests {
    #[test]
    fn maps_are_split_evenly() {
        let sizes = super::split_maps;
        assert_eq!(sizes(0), vec![0]);
        assert_eq!(sizes(3), vec![3]);
        assert_eq!(sizes(super::MAP_ENTRIES), vec![super::MAP_ENTRIES]);
        let split = sizes(super::MAP_ENTRIES + 1);
        assert_eq!(split.len(), 2);
        assert!(
            split
                .iter()
                .all(|&n| (super::MAP_ENTRIES / 2..=super::MAP_ENTRIES).contains(&n))
        );
        // Every row in exactly one map, none over the limit, none much smaller than another.
        let split = sizes(2_000_001);
        assert_eq!(split.iter().sum::<usize>(), 2_000_001);
        assert_eq!(split.len(), 2_000_001usize.div_ceil(super::MAP_ENTRIES));
        let (min, max) = (split.iter().min().unwrap(), split.iter().max().unwrap());
        assert!(*max <= super::MAP_ENTRIES && max - min <= 1, "{split:?}");
    }

    #[test]
    fn hash_sizes_scale() {
        let (max, bucket) = super::hash_sizes(200_000, 120);
        assert!(max >= 800_000 && bucket >= 512 && bucket.is_power_of_two());
        assert_eq!(super::hash_sizes(3, 40), (2048, 512));
    }
}
