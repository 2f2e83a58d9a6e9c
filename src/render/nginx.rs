//! nginx: one file for the http context (`conf.d/registry.conf`): lookup
//! tables plus one server block.
//!
//! Why maps: one exact `location` per file (registrish's way) makes `nginx -t`
//! take 10 s at 20k files and minutes at 100k; a `map $uri` of the same size
//! loads in well under a second (hosts.md, measured here). Manifests are only
//! served when their path is in the map, so a hostile or broken file on disk
//! is never served as a manifest.

use super::{ManifestPath, Templates, manifest_paths};
use crate::model::Registry;
use crate::output::OutputFile;
use crate::settings::{Common, FileConfig};
use anyhow::{Result, bail};
use serde::Serialize;

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
}

impl NginxSettings {
    pub fn resolve(
        listen: Option<String>,
        server_name: Option<String>,
        root_path: Option<String>,
        file: &FileConfig,
        registry: &Registry,
    ) -> Result<NginxSettings> {
        let listen = listen
            .or_else(|| file.nginx.listen.clone())
            .unwrap_or(DEFAULT_LISTEN.into());
        let server_name = server_name
            .or_else(|| file.nginx.server_name.clone())
            .unwrap_or(DEFAULT_SERVER_NAME.into());
        let root_path = match root_path.or_else(|| file.nginx.root_path.clone()) {
            Some(p) => p,
            None => registry.root.to_string_lossy().into_owned(),
        };
        // `listen` takes words like `443 ssl` or `[::1]:80`; server_name a list.
        let word_ok = |s: &str, extra: &[u8]| {
            !s.trim().is_empty()
                && s.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || b" .:-_*[]".contains(&b) || extra.contains(&b)
                })
        };
        if !word_ok(&listen, b"") {
            bail!(
                "--listen {listen:?}: expected ADDR:PORT, PORT or [IPv6]:PORT, optionally followed by words like `ssl`"
            );
        }
        if !word_ok(&server_name, b"~") {
            bail!("--server-name {server_name:?}: expected host names separated by spaces");
        }
        Ok(NginxSettings {
            listen,
            server_name,
            root_path,
        })
    }
}

#[derive(Serialize)]
struct Context<'a> {
    listen: &'a str,
    server_name: &'a str,
    root: &'a str,
    name_regex: &'static str,
    tag_max_age: u64,
    immutable_max_age: u64,
    map_hash_max_size: usize,
    map_hash_bucket_size: usize,
    repository_count: usize,
    /// `[uri, value]`: value is the media type code, followed by the digest for tags.
    manifests: Vec<[String; 2]>,
    /// `[regex, value]` for tags that differ only by case (map strings match
    /// case-insensitively, regexes do not).
    case_sensitive: Vec<[String; 2]>,
    media_types: Vec<[String; 2]>,
    errors: serde_json::Map<String, serde_json::Value>,
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
    let paths: Vec<ManifestPath> = manifest_paths(registry);
    let mut colliding = std::collections::HashSet::new();
    for (name, repo) in &registry.repositories {
        for tag in repo.case_colliding_tags() {
            colliding.insert(format!("/v2/{name}/manifests/{tag}"));
        }
    }
    let mut manifests = Vec::with_capacity(paths.len());
    let mut case_sensitive = Vec::new();
    let mut longest = 0;
    for p in paths {
        let value = if p.tag {
            format!("{}{}", p.code, p.digest)
        } else {
            p.code.to_string()
        };
        longest = longest.max(p.path.len());
        if colliding.contains(&p.path) {
            case_sensitive.push([format!("^{}$", regex_escape(&p.path)), value]);
        } else {
            manifests.push([p.path, value]);
        }
    }
    let (map_hash_max_size, map_hash_bucket_size) = hash_sizes(manifests.len(), longest);
    let context = Context {
        listen: &settings.listen,
        server_name: &settings.server_name,
        root: &settings.root_path,
        name_regex: NAME_REGEX,
        tag_max_age: common.tag_max_age,
        immutable_max_age: common.immutable_max_age,
        map_hash_max_size,
        map_hash_bucket_size,
        repository_count: registry.repositories.len(),
        manifests,
        case_sensitive,
        media_types: crate::media::MediaType::ALL
            .iter()
            .map(|t| [t.code().to_string(), t.as_str().to_string()])
            .collect(),
        errors: super::error_bodies(),
    };
    templates.render("nginx.conf.tera", &context)
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
