//! nginx: one file for the http context (`conf.d/registry.conf`): lookup
//! tables plus one server block.
//!
//! Why maps: one exact `location` per file (registrish's way) makes `nginx -t`
//! take 10 s at 20k files and minutes at 100k; a `map $uri` of the same size
//! loads in well under a second (hosts.md, measured here). Manifests are only
//! served when their path is in the map, so a hostile or broken file on disk
//! is never served as a manifest.

use super::Templates;
use super::address::{Listen, check_root_path, check_server_name};
use crate::media::MediaType;
use crate::model::Registry;
use crate::output::OutputFile;
use crate::settings::{Common, FileConfig};
use anyhow::{Result, bail};
use serde_json::{Value, json};

pub const DEFAULT_LISTEN: &str = "80";
pub const DEFAULT_SERVER_NAME: &str = "_";

/// The repository-name grammar as a PCRE, for the locations that serve files
/// straight from disk (blobs, tags/list): a directory whose name fails the
/// grammar is never reachable.
pub const NAME_REGEX: &str =
    "[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*";

pub struct NginxSettings {
    pub listen: String,
    pub server_name: String,
    pub root_path: String,
    /// (certificate, key) for HTTPS.
    pub tls: Option<(String, String)>,
}

impl NginxSettings {
    pub fn resolve(
        listen: Option<String>,
        server_name: Option<String>,
        root_path: Option<String>,
        tls: Option<(String, String)>,
        file: &FileConfig,
        registry: &Registry,
    ) -> Result<NginxSettings> {
        if file.nginx.ssl_certificate.is_some() != file.nginx.ssl_certificate_key.is_some() {
            bail!("[nginx] ssl_certificate and ssl_certificate_key go together");
        }
        let tls = tls.or_else(|| {
            let (cert, key) = (&file.nginx.ssl_certificate, &file.nginx.ssl_certificate_key);
            cert.clone().zip(key.clone())
        });
        let mut listen = listen
            .or_else(|| file.nginx.listen.clone())
            .unwrap_or(if tls.is_some() {
                "443".into()
            } else {
                DEFAULT_LISTEN.into()
            });
        // HTTPS needs `ssl` on the listen line; the user may have written it already.
        if tls.is_some() && !listen.split_whitespace().any(|w| w == "ssl") {
            listen.push_str(" ssl");
        }
        let server_name = server_name
            .or_else(|| file.nginx.server_name.clone())
            .unwrap_or(DEFAULT_SERVER_NAME.into());
        let root_path = match root_path.or_else(|| file.nginx.root_path.clone()) {
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
}

/// Sizes nginx's map hash so it is built on the first try. nginx starts its
/// search near `map_hash_max_size` when that is large, and every bucket must
/// hold the keys that collide in it: with four slots per key, six colliding
/// keys in one bucket is vanishingly rare.
fn hash_sizes(keys: usize, longest_key: usize) -> (usize, usize) {
    let element = 8 + (longest_key + 2).div_ceil(8) * 8;
    let bucket = (6 * element + 8).next_power_of_two().clamp(128, 32768);
    let max_size = (keys * 4).max(2048);
    (max_size, bucket)
}

fn regex_escape(s: &str) -> String {
    s.replace('.', "\\.")
}

pub fn render(
    registry: &Registry,
    common: &Common,
    settings: &NginxSettings,
    templates: &Templates,
) -> Result<String> {
    // Built straight into template values, one string per entry: at 200k
    // manifest paths, per-field objects would double peak memory.
    let mut manifests = Vec::with_capacity(registry.manifest_count() + registry.tag_count());
    let mut case_sensitive = Vec::new();
    let mut longest = 0;
    for (name, repo) in &registry.repositories {
        let colliding = repo.case_colliding_tags();
        for (tag, digest) in &repo.tags {
            let code = repo.manifests[digest].media_type.code();
            let path = format!("/v2/{name}/manifests/{tag}");
            longest = longest.max(path.len());
            if colliding.contains(tag.as_str()) {
                case_sensitive.push(Value::String(format!(
                    "\"~^{}$\" {code}{digest}",
                    regex_escape(&path)
                )));
            } else {
                manifests.push(Value::String(format!("{path} {code}{digest}")));
            }
        }
        for (digest, m) in &repo.manifests {
            let entry = format!("/v2/{name}/manifests/{digest} {}", m.media_type.code());
            longest = longest.max(entry.len() - 2);
            manifests.push(Value::String(entry));
        }
    }
    let (map_hash_max_size, map_hash_bucket_size) = hash_sizes(manifests.len(), longest);
    let context = json!({
        "listen": settings.listen,
        "server_name": settings.server_name,
        "root": settings.root_path,
        "ssl_certificate": settings.tls.as_ref().map(|t| t.0.clone()),
        "ssl_certificate_key": settings.tls.as_ref().map(|t| t.1.clone()),
        "name_regex": NAME_REGEX,
        "tag_max_age": common.tag_max_age,
        "immutable_max_age": common.immutable_max_age,
        "map_hash_max_size": map_hash_max_size,
        "map_hash_bucket_size": map_hash_bucket_size,
        "repository_count": registry.repositories.len(),
        "manifests": Value::Array(manifests),
        "case_sensitive": Value::Array(case_sensitive),
        "media_types": MediaType::ALL.iter().map(|t| [t.code().to_string(), t.as_str().to_string()]).collect::<Vec<_>>(),
        "errors": super::error_bodies(),
    });
    templates.render_value("nginx.conf.tera", context)
}

pub fn outputs(
    contents: String,
    output: Option<&std::path::Path>,
    check: Option<&std::path::Path>,
) -> Vec<OutputFile> {
    let path = check
        .or(output)
        .map(|p| p.to_path_buf())
        .unwrap_or_default();
    vec![OutputFile { path, contents }]
}

#[cfg(test)]
mod tests {
    #[test]
    fn hash_sizes_scale() {
        let (max, bucket) = super::hash_sizes(200_000, 120);
        assert!(max >= 800_000 && bucket >= 512 && bucket.is_power_of_two());
        assert_eq!(super::hash_sizes(3, 40), (2048, 512));
    }
}
