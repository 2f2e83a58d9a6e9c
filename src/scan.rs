//! Scanning: one sorted walk of `TREE/v2`, reading and classifying every
//! manifest, into a [`Registry`] model.
//!
//! What is read is what is needed. Tag files are read, hashed and parsed
//! (their digest is what hosts serve them under). Digest-named files are
//! already named by their digest: by default one that a tag of the same
//! repository already accounts for is not read again, and blobs are only
//! listed. [`Options::thorough`] (`check`) re-hashes every digest-named
//! manifest and stats every blob for size checks; `check --verify-blobs`
//! hashes blobs too. Stats and reads run on every core; the walk only lists.

use crate::digest;
use crate::grammar;
use crate::media::{self, MAX_MANIFEST_BYTES, ParseError, Role};
use crate::model::{Manifest, Registry, Repository};
use crate::parallel;
use crate::problem::{Kind, Problem};
use anyhow::{Context, Result, bail};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use walkdir::WalkDir;

/// Files under `v2/` that `prepare` writes; they are outputs, not inputs.
pub const INDEX_FILE: &str = "index.html";
pub const CATALOG_FILE: &str = "_catalog";
pub const ERRORS_DIR: &str = "_errors";

#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Hash every digest-named manifest and stat every blob (for sizes).
    pub thorough: bool,
    /// Stat blobs for their sizes even when not thorough (hosts with size limits).
    pub blob_sizes: bool,
}

/// A file found by the walk: its name in `manifests/` or `blobs/`, and for
/// an in-tree symlink, the resolved target.
struct Found {
    name: String,
    target: Option<PathBuf>,
}

#[derive(Default)]
struct RawRepo {
    manifests: Vec<Found>,
    blobs: Vec<Found>,
}

enum Read {
    Ok {
        digest: String,
        size: u64,
        parsed: media::Parsed,
    },
    Bad(Kind, String),
}

/// Scans TREE. I/O errors on TREE itself are errors; everything wrong inside
/// it is a [`Problem`] in the returned model.
pub fn scan(tree: &Path, options: Options) -> Result<Registry> {
    let root = fs::canonicalize(tree)
        .with_context(|| format!("cannot open registry tree {}", tree.display()))?;
    let v2 = root.join("v2");
    let meta = fs::symlink_metadata(&v2).with_context(|| {
        format!(
            "{} has no v2/ directory: not a registry tree",
            root.display()
        )
    })?;
    if meta.file_type().is_symlink() {
        bail!(
            "{} is a symlink; the tree's v2/ must be a real directory",
            v2.display()
        );
    }
    if !meta.is_dir() {
        bail!("{} is not a directory", v2.display());
    }

    let mut registry = Registry {
        root: root.clone(),
        ..Registry::default()
    };
    let mut raw: BTreeMap<String, RawRepo> = BTreeMap::new();
    let mut invalid_names: BTreeSet<String> = BTreeSet::new();

    let walker = WalkDir::new(&v2)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter();
    for entry in walker {
        let entry = entry.with_context(|| format!("cannot walk {}", v2.display()))?;
        if entry.depth() == 0 || entry.file_type().is_dir() {
            continue;
        }
        let rel_path = entry
            .path()
            .strip_prefix(&root)
            .expect("walk stays under root");
        let utf8 = rel_path.to_str().is_some();
        let rel = rel_path.to_string_lossy();
        let parts: Vec<&str> = rel.split('/').collect();
        // parts[0] == "v2"
        let file_name = parts[parts.len() - 1];
        let parent = parts[parts.len() - 2];
        let generated = (parts.len() == 2
            && (file_name == INDEX_FILE || file_name == CATALOG_FILE))
            || parts[1] == ERRORS_DIR
            || (parent == "tags" && file_name == "list");
        // Regular files a static host would upload; prepare's own are counted
        // from what it writes, symlinks are not uploaded.
        if entry.file_type().is_file() && !generated {
            registry.file_count += 1;
        }
        let is_manifest = match parent {
            "manifests" if parts.len() >= 4 => true,
            "blobs" if parts.len() >= 4 => false,
            _ => continue,
        };
        let name = parts[1..parts.len() - 2].join("/");
        let target = if entry.file_type().is_symlink() {
            match resolve_symlink(entry.path(), &root) {
                Ok(target) => Some(target),
                Err(problem) => {
                    registry.problems.push(Problem {
                        path: rel.into_owned(),
                        ..problem
                    });
                    continue;
                }
            }
        } else {
            None
        };
        if !utf8 || !grammar::is_valid_name(&name) {
            invalid_names.insert(name);
            continue;
        }
        if target.is_some() {
            registry.symlinks.push(rel.to_string());
        }
        let found = Found {
            name: file_name.to_string(),
            target,
        };
        let repo = raw.entry(name).or_default();
        if is_manifest {
            repo.manifests.push(found);
        } else {
            repo.blobs.push(found);
        }
    }

    for name in &invalid_names {
        registry.problems.push(Problem::error(
            format!("v2/{name}"),
            Kind::InvalidName,
            "repository name is not valid OCI grammar (lowercase [a-z0-9] components joined by . _ __ -); left out",
        ));
    }

    build_repositories(&mut registry, &raw, options)?;
    check_references(&mut registry);
    registry.problems.sort();
    Ok(registry)
}

/// Resolves an in-tree symlink to its target; anything leading outside TREE,
/// dangling or pointing at a directory is a problem, never followed.
fn resolve_symlink(link: &Path, root: &Path) -> Result<PathBuf, Problem> {
    let target = fs::canonicalize(link).map_err(|e| {
        Problem::error(
            "",
            Kind::SymlinkDangling,
            format!("symlink cannot be resolved ({e}); left out"),
        )
    })?;
    if !target.starts_with(root) {
        return Err(Problem::error(
            "",
            Kind::SymlinkOutside,
            format!(
                "symlink leads outside the tree (to {}); never followed, left out",
                target.display()
            ),
        ));
    }
    if target.is_dir() {
        return Err(Problem::warning(
            "",
            Kind::SymlinkDirectory,
            "symlink to a directory is not followed",
        ));
    }
    Ok(target)
}

#[cfg(unix)]
fn identity(meta: &fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn identity(_meta: &fs::Metadata) -> Option<(u64, u64)> {
    None
}

fn read_one(path: &Path) -> Read {
    let bytes = match fs::File::open(path).and_then(|f| {
        use std::io::Read as _;
        let mut bytes = Vec::new();
        // One byte over the limit is enough to know it is too large.
        f.take(MAX_MANIFEST_BYTES + 1)
            .read_to_end(&mut bytes)
            .map(|_| bytes)
    }) {
        Ok(b) => b,
        Err(e) => return Read::Bad(Kind::Unreadable, format!("cannot read: {e}")),
    };
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Read::Bad(
            Kind::NotAManifest,
            format!("larger than any manifest (limit {MAX_MANIFEST_BYTES} bytes); left out"),
        );
    }
    match media::parse(&bytes) {
        Ok(parsed) => Read::Ok {
            digest: digest::of_bytes(&bytes),
            size: bytes.len() as u64,
            parsed,
        },
        Err(ParseError::NotAManifest(m)) => Read::Bad(Kind::NotAManifest, format!("{m}; left out")),
        Err(ParseError::UnknownMediaType(m)) => Read::Bad(
            Kind::UnknownMediaType,
            format!("{m}: no exact Content-Type can be sent; left out"),
        ),
    }
}

fn file_path(root: &Path, repo: &str, dir: &str, found: &Found) -> PathBuf {
    match &found.target {
        Some(t) => t.clone(),
        None => root.join(format!("v2/{repo}/{dir}/{}", found.name)),
    }
}

/// Reads files in parallel; with `dedupe`, hard links of one file (prepare's
/// digest copies of tags) are stat'ed and read once.
fn read_all(paths: Vec<PathBuf>, dedupe: bool) -> Result<Vec<std::sync::Arc<Read>>> {
    use std::sync::Arc;
    if !dedupe {
        return Ok(parallel::map(&paths, |p| Arc::new(read_one(p))));
    }
    let ids = parallel::map(&paths, |p| fs::metadata(p).map(|m| identity(&m)));
    let mut unique: Vec<&PathBuf> = Vec::new();
    let mut slot_of: HashMap<(u64, u64), usize> = HashMap::new();
    let mut slots = Vec::with_capacity(paths.len());
    for (path, id) in paths.iter().zip(ids) {
        let id = id.with_context(|| format!("cannot stat {}", path.display()))?;
        let slot = match id {
            Some(id) => *slot_of.entry(id).or_insert_with(|| {
                unique.push(path);
                unique.len() - 1
            }),
            None => {
                unique.push(path);
                unique.len() - 1
            }
        };
        slots.push(slot);
    }
    let results = parallel::map(&unique, |p| Arc::new(read_one(p)));
    Ok(slots.into_iter().map(|s| results[s].clone()).collect())
}

fn build_repositories(
    registry: &mut Registry,
    raw: &BTreeMap<String, RawRepo>,
    options: Options,
) -> Result<()> {
    let root = registry.root.clone();
    // Tags and digest files whose names pass the grammar, as (repo, file).
    let mut tags: Vec<(&str, &Found)> = Vec::new();
    let mut digests: Vec<(&str, &Found)> = Vec::new();
    for (name, repo) in raw {
        for f in &repo.manifests {
            let is_digest = f.name.starts_with("sha256:");
            let valid = if is_digest {
                grammar::is_valid_digest(&f.name)
            } else {
                grammar::is_valid_tag(&f.name)
            };
            match (valid, is_digest) {
                (true, true) => digests.push((name, f)),
                (true, false) => tags.push((name, f)),
                (false, _) => registry.problems.push(Problem::error(
                    format!("v2/{name}/manifests/{}", f.name),
                    Kind::InvalidTag,
                    if is_digest {
                        "neither a valid tag nor a sha256 digest; left out"
                    } else {
                        "tag is not valid OCI grammar ([a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}); left out"
                    },
                )),
            }
        }
    }

    // Tags first: their digests tell which digest files need no reading.
    let tag_paths = tags
        .iter()
        .map(|(n, f)| file_path(&root, n, "manifests", f))
        .collect();
    let tag_reads = read_all(tag_paths, options.thorough)?;
    let mut tag_digests: HashSet<(&str, &str)> = HashSet::new();
    let mut repos: BTreeMap<String, Repository> = BTreeMap::new();
    let ensure = |repos: &mut BTreeMap<String, Repository>, name: &str| {
        if !repos.contains_key(name) {
            repos.insert(
                name.to_string(),
                Repository {
                    name: name.to_string(),
                    ..Repository::default()
                },
            );
        }
    };
    for ((name, f), read) in tags.iter().zip(&tag_reads) {
        ensure(&mut repos, name);
        let repo = repos.get_mut(*name).expect("ensured");
        match read.as_ref() {
            Read::Bad(kind, message) => registry.problems.push(Problem::error(
                format!("v2/{name}/manifests/{}", f.name),
                *kind,
                message.clone(),
            )),
            Read::Ok {
                digest,
                size,
                parsed,
            } => {
                repo.manifests
                    .entry(digest.clone())
                    .or_insert_with(|| Manifest {
                        media_type: parsed.media_type,
                        size: *size,
                        references: parsed.references.clone(),
                        digest_file: false,
                        first_tag: Some(f.name.clone()),
                    });
                repo.tags.insert(f.name.clone(), digest.clone());
                tag_digests.insert((name, digest.as_str()));
            }
        }
    }

    // Digest files: known from a tag (unless thorough), or read now.
    let mut to_read: Vec<(&str, &Found)> = Vec::new();
    for (name, f) in &digests {
        if !options.thorough && tag_digests.contains(&(*name, f.name.as_str())) {
            if let Some(m) = repos
                .get_mut(*name)
                .and_then(|r| r.manifests.get_mut(&f.name))
            {
                m.digest_file = true;
            }
        } else {
            to_read.push((name, f));
        }
    }
    let paths = to_read
        .iter()
        .map(|(n, f)| file_path(&root, n, "manifests", f))
        .collect();
    let digest_reads = read_all(paths, options.thorough)?;
    for ((name, f), read) in to_read.iter().zip(&digest_reads) {
        let rel = || format!("v2/{name}/manifests/{}", f.name);
        match read.as_ref() {
            Read::Bad(kind, message) => {
                registry
                    .problems
                    .push(Problem::error(rel(), *kind, message.clone()))
            }
            Read::Ok { digest, .. } if digest != &f.name => registry.problems.push(Problem::error(
                rel(),
                Kind::DigestMismatch,
                format!("bytes hash to {digest}, not to the file's name; left out"),
            )),
            Read::Ok {
                digest,
                size,
                parsed,
            } => {
                ensure(&mut repos, name);
                let repo = repos.get_mut(*name).expect("ensured");
                let m = repo
                    .manifests
                    .entry(digest.clone())
                    .or_insert_with(|| Manifest {
                        media_type: parsed.media_type,
                        size: *size,
                        references: parsed.references.clone(),
                        digest_file: true,
                        first_tag: None,
                    });
                m.digest_file = true;
            }
        }
    }
    drop(tag_reads);
    drop(digest_reads);

    // Blobs: listed; stat'ed for sizes only when asked.
    let mut blob_list: Vec<(&str, &Found)> = Vec::new();
    for (name, repo) in raw {
        for f in &repo.blobs {
            if grammar::is_valid_digest(&f.name) {
                blob_list.push((name, f));
            } else {
                registry.problems.push(Problem::error(
                    format!("v2/{name}/blobs/{}", f.name),
                    Kind::InvalidBlobName,
                    "blob file name is not sha256:<64 lowercase hex>; left out",
                ));
            }
        }
    }
    let sizes: Vec<Option<u64>> = if options.thorough || options.blob_sizes {
        let stats = parallel::map(&blob_list, |(name, f)| {
            fs::metadata(file_path(&root, name, "blobs", f)).map(|m| m.len())
        });
        let mut sizes = Vec::with_capacity(stats.len());
        for ((name, f), s) in blob_list.iter().zip(stats) {
            sizes.push(Some(s.with_context(|| {
                format!("cannot stat v2/{name}/blobs/{}", f.name)
            })?));
        }
        sizes
    } else {
        vec![None; blob_list.len()]
    };
    for ((name, f), size) in blob_list.iter().zip(sizes) {
        if f.target.is_some() {
            registry.problems.push(Problem::warning(
                format!("v2/{name}/blobs/{}", f.name),
                Kind::SymlinkInside,
                "blob is a symlink: nginx's config refuses symlinked blobs (disable_symlinks); use a hard link",
            ));
        }
        ensure(&mut repos, name);
        repos
            .get_mut(*name)
            .expect("ensured")
            .blobs
            .insert(f.name.clone(), size);
    }

    for (name, repo) in repos {
        if name == INDEX_FILE {
            registry.problems.push(Problem::error(
                format!("v2/{name}"),
                Kind::ReservedName,
                "repository name collides with v2/index.html, the /v2/ body; left out",
            ));
            continue;
        }
        let colliding: Vec<&str> = repo.case_colliding_tags().into_iter().collect();
        if !colliding.is_empty() {
            registry.problems.push(Problem::error(
                format!("v2/{name}/manifests/{}", colliding[0]),
                Kind::CaseCollision,
                format!(
                    "tags {} differ only by case: Netlify matches paths case-insensitively and cannot serve them apart (nginx, Pages and S3 can)",
                    colliding.join(", ")
                ),
            ));
        }
        if !repo.manifests.is_empty() || !repo.blobs.is_empty() {
            registry.repositories.insert(name, repo);
        }
    }
    Ok(())
}

/// Every blob and child manifest a served manifest references must be in
/// the same repository (with the size its descriptor states, when sizes were
/// read), or a pull fails half-way. Reported, not left out: the rest of the
/// image may still be useful.
fn check_references(registry: &mut Registry) {
    let mut problems = Vec::new();
    for repo in registry.repositories.values() {
        for (digest, manifest) in &repo.manifests {
            for r in manifest.references.iter() {
                let (found, what) = match r.role {
                    Role::Subject => continue,
                    Role::Child => (
                        repo.manifests.get(&r.digest).map(|m| Some(m.size)),
                        Kind::MissingManifest,
                    ),
                    Role::Config | Role::Layer => {
                        if r.external {
                            continue;
                        }
                        (repo.blobs.get(&r.digest).copied(), Kind::MissingBlob)
                    }
                };
                match (found, r.size) {
                    (None, _) => problems.push(Problem::error(
                        repo.manifest_source(digest),
                        what,
                        format!(
                            "manifest {digest} references {} {} which is not in v2/{}/{}",
                            r.role.as_str(),
                            r.digest,
                            repo.name,
                            if what == Kind::MissingBlob { "blobs" } else { "manifests" }
                        ),
                    )),
                    (Some(Some(actual)), Some(stated)) if actual != stated => {
                        problems.push(Problem::error(
                            repo.manifest_source(digest),
                            Kind::SizeMismatch,
                            format!(
                                "manifest {digest} says {} {} has {stated} bytes; the file has {actual}",
                                r.role.as_str(),
                                r.digest
                            ),
                        ))
                    }
                    _ => {}
                }
            }
        }
    }
    registry.problems.extend(problems);
}
