//! The routes view of the model: every request path a host must answer, with
//! what it answers (kind, Content-Type, digest, size, cache class), and the
//! files `prepare` owns. Renderers consume these instead of walking the model
//! their own way, so every host serves the same set of paths.

use crate::grammar::{Digest, Name, Tag};
use crate::layout::{self, ErrorCode};
use crate::media::MediaType;
use crate::model::{Registry, Repository};
use std::fmt;
use std::fs;

pub(crate) const OCTET_STREAM: &str = "application/octet-stream";
pub(crate) const JSON: &str = "application/json";

/// How long a response may be cached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cache {
    /// `/v2/`: no Cache-Control at all.
    None,
    /// Tags and lists move: `--tag-max-age`.
    Mutable,
    /// Digest-addressed content never changes.
    Immutable,
}

/// A manifest reference: a tag or a digest.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Reference<'a> {
    Tag(&'a Tag),
    Digest(&'a Digest),
}

impl fmt::Display for Reference<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => t.fmt(f),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}

/// `/v2/<name>/manifests/<reference>`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ManifestRoute<'a> {
    pub name: &'a Name,
    pub reference: Reference<'a>,
    pub media_type: MediaType,
    pub digest: &'a Digest,
    pub size: u64,
}

impl ManifestRoute<'_> {
    pub fn path(&self) -> String {
        layout::manifest_request(self.name, &self.reference)
    }

    pub fn tag(&self) -> Option<&Tag> {
        match self.reference {
            Reference::Tag(t) => Some(t),
            Reference::Digest(_) => None,
        }
    }

    pub fn cache(&self) -> Cache {
        match self.reference {
            Reference::Tag(_) => Cache::Mutable,
            Reference::Digest(_) => Cache::Immutable,
        }
    }
}

/// Every manifest path of a repository: its tags (sorted), then its manifests
/// by digest (sorted).
pub(crate) fn manifests(repo: &Repository) -> impl Iterator<Item = ManifestRoute<'_>> {
    let tags = repo.tags.iter().filter_map(move |(tag, digest)| {
        let m = repo.manifests.get(digest)?;
        Some(ManifestRoute {
            name: &repo.name,
            reference: Reference::Tag(tag),
            media_type: m.media_type,
            digest,
            size: m.size,
        })
    });
    let digests = repo.manifests.iter().map(move |(digest, m)| ManifestRoute {
        name: &repo.name,
        reference: Reference::Digest(digest),
        media_type: m.media_type,
        digest,
        size: m.size,
    });
    tags.chain(digests)
}

/// `/v2/<name>/blobs/<digest>`: (path, digest, size when the scan stat'ed it).
pub(crate) fn blobs(repo: &Repository) -> impl Iterator<Item = (String, &Digest, Option<u64>)> {
    repo.blobs
        .iter()
        .map(move |(d, size)| (layout::blob_request(&repo.name, d), d, *size))
}

/// What a route is, for exports that describe every path (`headers`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Route {
    pub path: String,
    pub content_type: &'static str,
    pub digest: Option<Digest>,
    /// `None` when the scan did not measure it (blob sizes are opt-in).
    pub size: Option<u64>,
    pub cache: Cache,
}

/// Every path a host must answer with 200: `/v2/`, the catalog, each
/// `tags/list`, every manifest by tag and by digest and every blob, sorted by
/// path. Lists are sized by the bytes `prepare` writes for them.
///
/// Made a few repositories at a time: a repository's paths sort among those of the
/// repositories nested under it (`/v2/a/` begins `/v2/a/b/...`), and apart from every other's
/// (`a/` and `a-b/` differ before any path goes on), so only a repository and the ones nested
/// in it are ever held and sorted together. The whole list at once was half a gigabyte at a
/// million tags (issue 16).
pub(crate) fn all(registry: &Registry) -> impl Iterator<Item = Route> + '_ {
    // Each group's key is what its paths begin with after `/v2/`: `<name>/` for a repository,
    // `_catalog` for the catalog, nothing for `/v2/` itself.
    let mut keys: Vec<(String, Option<&Repository>)> = registry
        .repositories
        .values()
        .map(|r| (format!("{}/", r.name), Some(r)))
        .collect();
    keys.push((String::new(), None));
    keys.push(("_catalog".to_string(), None));
    keys.sort_by(|a, b| a.0.cmp(&b.0));
    let mut next = 0;
    std::iter::from_fn(move || {
        let (key, repo) = keys.get(next)?;
        let mut group = Vec::new();
        let Some(repo) = repo else {
            next += 1;
            let (file, bytes) = if key.is_empty() {
                (layout::index_file(), layout::INDEX_BODY.len())
            } else {
                (layout::catalog_file(), catalog_body(registry).len())
            };
            group.push(json_route(&file, bytes));
            return Some(group);
        };
        repo_routes(repo, &mut group);
        next += 1;
        while let Some((nested, Some(r))) = keys.get(next)
            && nested.starts_with(key.as_str())
        {
            repo_routes(r, &mut group);
            next += 1;
        }
        group.sort_by(|a, b| a.path.cmp(&b.path));
        Some(group)
    })
    .flatten()
}

/// A generated file's route: the lists, `/v2/` and referrers indexes.
fn json_route(file: &str, size: usize) -> Route {
    let path = layout::request_path(file);
    Route {
        cache: if path == "/v2/" {
            Cache::None
        } else {
            Cache::Mutable
        },
        content_type: if is_referrers_file(file) {
            MediaType::OciIndex.as_str()
        } else {
            JSON
        },
        path,
        digest: None,
        size: Some(size as u64),
    }
}

/// One repository's routes, unsorted.
fn repo_routes(repo: &Repository, out: &mut Vec<Route>) {
    let mut files = Vec::new();
    repo_files(repo, &mut files);
    for (file, bytes) in files {
        // Fallback tags and their digest files are manifests, listed with the others below.
        if !file.contains("/manifests/") {
            out.push(json_route(&file, bytes.len()));
        }
    }
    for m in manifests(repo) {
        out.push(Route {
            path: m.path(),
            content_type: m.media_type.as_str(),
            digest: Some(*m.digest),
            size: Some(m.size),
            cache: m.cache(),
        });
    }
    for (path, digest, size) in blobs(repo) {
        out.push(Route {
            path,
            content_type: OCTET_STREAM,
            digest: Some(*digest),
            size,
            cache: Cache::Immutable,
        });
    }
}

/// Every file, relative to TREE, that a host serving the blobs from another origin must hold:
/// what `prepare` writes (lists, the `/v2/` body, error bodies) and every manifest by tag and
/// by digest. Sorted.
pub(crate) fn files_without_blobs(registry: &Registry) -> Vec<String> {
    let mut out: Vec<String> = generated_files(registry)
        .into_iter()
        .map(|(rel, _)| rel)
        .collect();
    for repo in registry.repositories.values() {
        out.extend(manifests(repo).map(|m| m.path()[1..].to_string()));
    }
    out.sort();
    out.dedup();
    out
}

/// Whether a file of the tree (relative to TREE) is a referrers index.
pub(crate) fn is_referrers_file(file: &str) -> bool {
    let parts: Vec<&str> = file.split('/').collect();
    parts.len() >= 4
        && parts[parts.len() - 2] == layout::REFERRERS_DIR
        && layout::is_generated(&parts)
}

/// One descriptor of a referrers index, fields in the order the distribution-spec shows them.
#[derive(serde::Serialize)]
struct Descriptor<'a> {
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    digest: &'a Digest,
    size: u64,
    #[serde(rename = "artifactType", skip_serializing_if = "Option::is_none")]
    artifact_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<&'a std::collections::BTreeMap<String, String>>,
}

#[derive(serde::Serialize)]
struct Index<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u8,
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    manifests: Vec<Descriptor<'a>>,
}

/// The bytes of every referrers index of a repository, by subject: one descriptor for each
/// manifest of the repository whose `subject` is that digest, ordered by the referrer's digest
/// (the spec leaves the order open; a fixed one keeps re-prepares byte-stable).
pub(crate) fn referrers_indexes(repo: &Repository) -> std::collections::BTreeMap<Digest, Vec<u8>> {
    let mut by_subject: std::collections::BTreeMap<Digest, Vec<Descriptor<'_>>> =
        Default::default();
    for (digest, m) in &repo.manifests {
        let Some(artifact) = &m.artifact else {
            continue;
        };
        if let Some(subject) = m.subject() {
            by_subject.entry(*subject).or_default().push(Descriptor {
                media_type: m.media_type.as_str(),
                digest,
                size: m.size,
                artifact_type: artifact.artifact_type.as_deref(),
                annotations: artifact.annotations.as_ref(),
            });
        }
    }
    by_subject
        .into_iter()
        .map(|(subject, manifests)| {
            let index = Index {
                schema_version: 2,
                media_type: MediaType::OciIndex.as_str(),
                manifests,
            };
            (subject, serde_json::to_vec(&index).expect("serializable"))
        })
        .collect()
}

/// The files `prepare` owns, (path relative to TREE, bytes): `tags/list` per
/// repository with tags, `_catalog`, the `/v2/` body, the error bodies, the empty referrers
/// index, and per subject with referrers its index under `referrers/` and, when the tag is
/// prepare's, the fallback tag `sha256-<hex>` and its digest file.
pub(crate) fn generated_files(registry: &Registry) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for_each_generated_file(registry, |path, bytes| files.push((path, bytes)));
    files
}

/// [`generated_files`] one at a time, for who needs only their names (a million tags' lists
/// are a few hundred MB held together with their bytes).
pub(crate) fn for_each_generated_file(registry: &Registry, mut each: impl FnMut(String, Vec<u8>)) {
    let mut files = Vec::new();
    for repo in registry.repositories.values() {
        repo_files(repo, &mut files);
        for (path, bytes) in files.drain(..) {
            each(path, bytes);
        }
    }
    files.push((layout::catalog_file(), catalog_body(registry)));
    files.push((layout::index_file(), layout::INDEX_BODY.to_vec()));
    files.push((
        layout::empty_referrers_file(),
        layout::EMPTY_REFERRERS_BODY.to_vec(),
    ));
    for code in ErrorCode::ALL {
        files.push((layout::error_file(code), code.body().into_bytes()));
    }
    for (path, bytes) in files {
        each(path, bytes);
    }
}

/// The catalog's bytes.
fn catalog_body(registry: &Registry) -> Vec<u8> {
    let names: Vec<&Name> = registry.repositories.keys().collect();
    serde_json::json!({"repositories": names})
        .to_string()
        .into_bytes()
}

/// The files `prepare` owns in one repository (see [`generated_files`]).
fn repo_files(repo: &Repository, files: &mut Vec<(String, Vec<u8>)>) {
    let name = &repo.name;
    for (subject, r) in &repo.referrers {
        files.push((layout::referrers_file(name, subject), r.bytes.to_vec()));
        if r.fallback {
            let tag = layout::fallback_tag(subject);
            // The digest file first: a pull that reads the tag finds what it names.
            files.push((layout::manifest_file(name, &r.digest), r.bytes.to_vec()));
            files.push((layout::manifest_file(name, &tag), r.bytes.to_vec()));
        }
    }
    if repo.tags.is_empty() {
        return;
    }
    let tags: Vec<&Tag> = repo.tags.keys().collect();
    let body = serde_json::json!({"name": name, "tags": tags});
    files.push((layout::tags_list_file(name), body.to_string().into_bytes()));
}

/// Digest files prepare would create: (source manifest, destination), relative to TREE.
pub(crate) fn missing_digest_files(registry: &Registry) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, repo) in &registry.repositories {
        for (digest, manifest) in &repo.manifests {
            if !manifest.digest_file {
                out.push((
                    repo.manifest_source(digest),
                    layout::manifest_file(name, digest),
                ));
            }
        }
    }
    out
}

/// Why a file `prepare` owns is not served as it is: a symlink or another non-regular file
/// in its place (a server that follows it would serve whatever it points at).
pub(crate) const NOT_REGULAR: &str = "not a regular file";

/// What `prepare` would still change, as (path relative to TREE, why).
pub(crate) fn pending(registry: &Registry) -> Vec<(String, &'static str)> {
    let mut out: Vec<(String, &'static str)> = generated_files(registry)
        .into_iter()
        .filter_map(|(rel, bytes)| {
            let path = registry.root.join(&rel);
            match fs::symlink_metadata(&path) {
                Ok(m) if !m.file_type().is_file() => return Some((rel, NOT_REGULAR)),
                Err(_) => return Some((rel, "missing")),
                Ok(_) => {}
            }
            match fs::read(&path) {
                Ok(b) if b == bytes => None,
                Ok(_) => Some((rel, "stale")),
                Err(_) => Some((rel, "missing")),
            }
        })
        .collect();
    out.extend(
        missing_digest_files(registry)
            .into_iter()
            .map(|(_, dest)| (dest, "missing")),
    );
    out.extend(
        registry
            .obsolete
            .iter()
            .map(|rel| (rel.clone(), "obsolete")),
    );
    out.sort();
    out
}
