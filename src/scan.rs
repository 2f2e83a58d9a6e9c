//! Scanning: one sorted walk of `TREE/v2`, reading and classifying every
//! manifest, into a [`Registry`] model. Blobs are only stat'ed: they are named
//! by their digest, and hashing gigabytes on every run is what makes the shell
//! scripts this tool replaces slow (`check --verify-blobs` hashes on request).

use crate::digest;
use crate::grammar;
use crate::media::{self, MAX_MANIFEST_BYTES, ParseError, Role};
use crate::model::{Blob, Manifest, Registry, Repository};
use crate::parallel;
use crate::problem::{Kind, Problem};
use anyhow::{Context, Result, bail};
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use walkdir::WalkDir;

/// Files under `v2/` that `prepare` writes; they are outputs, not inputs.
pub const INDEX_FILE: &str = "index.html";
pub const CATALOG_FILE: &str = "_catalog";
pub const ERRORS_DIR: &str = "_errors";

struct FileEntry {
    /// Relative to TREE, `/`-separated.
    rel: String,
    /// The file to read: the entry itself, or a symlink's in-tree target.
    path: PathBuf,
    size: u64,
    /// (device, inode): hard links of one manifest are read once.
    identity: (u64, u64),
    symlink: bool,
}

#[derive(Default)]
struct RawRepo {
    manifests: Vec<(String, FileEntry)>,
    blobs: Vec<(String, FileEntry)>,
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
pub fn scan(tree: &Path) -> Result<Registry> {
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
    let mut invalid_names: BTreeMap<String, ()> = BTreeMap::new();

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
        let rel = rel_path.to_string_lossy().replace('\\', "/");
        let parts: Vec<&str> = rel.split('/').collect();
        // parts[0] == "v2"
        let file_name = parts[parts.len() - 1];
        let parent = if parts.len() >= 2 {
            parts[parts.len() - 2]
        } else {
            ""
        };
        let is_generated = (parts.len() == 2
            && (file_name == INDEX_FILE || file_name == CATALOG_FILE))
            || (parts.len() >= 2 && parts[1] == ERRORS_DIR)
            || (parent == "tags" && file_name == "list");
        let role = match parent {
            "manifests" if parts.len() >= 4 => Some(true),
            "blobs" if parts.len() >= 4 => Some(false),
            _ => None,
        };
        let Some(is_manifest) = role else {
            if !is_generated && !entry.file_type().is_symlink() {
                registry.file_count += 1;
            }
            continue;
        };
        let name = parts[1..parts.len() - 2].join("/");
        let file_name = file_name.to_string();

        let (path, symlink) = if entry.file_type().is_symlink() {
            match resolve_symlink(entry.path(), &root) {
                Ok(target) => (target, true),
                Err(problem) => {
                    registry.problems.push(Problem {
                        path: rel.clone(),
                        ..problem
                    });
                    continue;
                }
            }
        } else {
            (entry.path().to_path_buf(), false)
        };
        registry.file_count += 1;

        if std::str::from_utf8(rel_path.as_os_str().as_encoded_bytes()).is_err()
            || !grammar::is_valid_name(&name)
        {
            invalid_names.entry(name).or_default();
            continue;
        }
        let meta =
            fs::metadata(&path).with_context(|| format!("cannot stat {}", path.display()))?;
        let file = FileEntry {
            rel,
            path,
            size: meta.len(),
            identity: identity(&meta),
            symlink,
        };
        let repo = raw.entry(name).or_default();
        if is_manifest {
            repo.manifests.push((file_name, file));
        } else {
            repo.blobs.push((file_name, file));
        }
    }

    for name in invalid_names.keys() {
        registry.problems.push(Problem::error(
            format!("v2/{name}"),
            Kind::InvalidName,
            "repository name is not valid OCI grammar (lowercase [a-z0-9] components joined by . _ __ -); left out",
        ));
    }

    read_manifests(&mut registry, raw);
    check_references(&mut registry);
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
fn identity(meta: &fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

#[cfg(not(unix))]
fn identity(_meta: &fs::Metadata) -> (u64, u64) {
    (0, 0)
}

fn read_one(path: &Path, size: u64) -> Read {
    if size > MAX_MANIFEST_BYTES {
        return Read::Bad(
            Kind::NotAManifest,
            format!(
                "{size} bytes is larger than any manifest (limit {MAX_MANIFEST_BYTES}); left out"
            ),
        );
    }
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) => return Read::Bad(Kind::Unreadable, format!("cannot read: {e}")),
    };
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

fn read_manifests(registry: &mut Registry, raw: BTreeMap<String, RawRepo>) {
    // Read every distinct file once, in parallel; hard links (prepare's digest
    // copies) share an inode and are not read twice.
    let mut unique: Vec<(&Path, u64)> = Vec::new();
    let mut slot_of: HashMap<(u64, u64), usize> = HashMap::new();
    let mut slots: Vec<Vec<usize>> = Vec::new();
    for repo in raw.values() {
        let mut repo_slots = Vec::new();
        for (_, file) in &repo.manifests {
            let slot = if file.identity == (0, 0) {
                unique.push((&file.path, file.size));
                unique.len() - 1
            } else {
                *slot_of.entry(file.identity).or_insert_with(|| {
                    unique.push((&file.path, file.size));
                    unique.len() - 1
                })
            };
            repo_slots.push(slot);
        }
        slots.push(repo_slots);
    }
    let results = parallel::map(&unique, |(path, size)| read_one(path, *size));

    for ((name, repo), repo_slots) in raw.iter().zip(slots) {
        let mut out = Repository {
            name: name.clone(),
            ..Repository::default()
        };
        // Digest files first, so a tag's manifest knows its digest file exists.
        let order = repo.manifests.iter().zip(repo_slots).collect::<Vec<_>>();
        for pass_digests in [true, false] {
            for ((reference, file), slot) in &order {
                let is_digest = reference.starts_with("sha256:");
                if is_digest != pass_digests {
                    continue;
                }
                if is_digest && !grammar::is_valid_digest(reference) {
                    registry.problems.push(Problem::error(
                        &file.rel,
                        Kind::InvalidTag,
                        "neither a valid tag nor a sha256 digest; left out",
                    ));
                    continue;
                }
                if !is_digest && !grammar::is_valid_tag(reference) {
                    registry.problems.push(Problem::error(
                        &file.rel,
                        Kind::InvalidTag,
                        "tag is not valid OCI grammar ([a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}); left out",
                    ));
                    continue;
                }
                match &results[*slot] {
                    Read::Bad(kind, message) => {
                        registry
                            .problems
                            .push(Problem::error(&file.rel, *kind, message.clone()));
                    }
                    Read::Ok {
                        digest,
                        size,
                        parsed,
                    } => {
                        if is_digest && digest != reference {
                            registry.problems.push(Problem::error(
                                &file.rel,
                                Kind::DigestMismatch,
                                format!("bytes hash to {digest}, not to the file's name; left out"),
                            ));
                            continue;
                        }
                        let manifest =
                            out.manifests
                                .entry(digest.clone())
                                .or_insert_with(|| Manifest {
                                    media_type: parsed.media_type,
                                    size: *size,
                                    references: parsed.references.clone(),
                                    source: file.rel.clone(),
                                    digest_file: false,
                                });
                        if is_digest {
                            manifest.digest_file = true;
                        } else {
                            out.tags.insert(reference.clone(), digest.clone());
                        }
                    }
                }
            }
        }
        for (file_name, file) in &repo.blobs {
            if !grammar::is_valid_digest(file_name) {
                registry.problems.push(Problem::error(
                    &file.rel,
                    Kind::InvalidBlobName,
                    "blob file name is not sha256:<64 lowercase hex>; left out",
                ));
                continue;
            }
            if file.symlink {
                registry.problems.push(Problem::warning(
                    &file.rel,
                    Kind::SymlinkInside,
                    "blob is a symlink: nginx's config refuses symlinked blobs (disable_symlinks); use a hard link",
                ));
            }
            out.blobs.insert(
                file_name.clone(),
                Blob {
                    size: file.size,
                    path: file.rel.clone(),
                },
            );
        }
        if name == INDEX_FILE {
            registry.problems.push(Problem::error(
                format!("v2/{name}"),
                Kind::ReservedName,
                "repository name collides with v2/index.html, the /v2/ body; left out",
            ));
            continue;
        }
        let colliding = out.case_colliding_tags();
        if !colliding.is_empty() {
            let list: Vec<&str> = colliding.iter().copied().collect();
            registry.problems.push(Problem::error(
                format!("v2/{name}/manifests/{}", list[0]),
                Kind::CaseCollision,
                format!(
                    "tags {} differ only by case: Netlify and Cloudflare Pages match paths case-insensitively and cannot serve them apart (nginx can)",
                    list.join(", ")
                ),
            ));
        }
        if !out.manifests.is_empty() || !out.blobs.is_empty() {
            registry.repositories.insert(name.clone(), out);
        }
    }
}

/// Every blob and child manifest a served manifest references must be in
/// the same repository with the size its descriptor states, or a pull fails
/// half-way. Reported, not left out: the rest of the image may still be useful.
fn check_references(registry: &mut Registry) {
    let mut problems = Vec::new();
    for repo in registry.repositories.values() {
        for (digest, manifest) in &repo.manifests {
            for r in &manifest.references {
                let (found, what) = match r.role {
                    Role::Subject => continue,
                    Role::Child => (
                        repo.manifests.get(&r.digest).map(|m| m.size),
                        Kind::MissingManifest,
                    ),
                    Role::Config | Role::Layer => {
                        if r.external {
                            continue;
                        }
                        (repo.blobs.get(&r.digest).map(|b| b.size), Kind::MissingBlob)
                    }
                };
                match (found, r.size) {
                    (None, _) => problems.push(Problem::error(
                        &manifest.source,
                        what,
                        format!(
                            "manifest {digest} references {} {} which is not in v2/{}/{}",
                            r.role.as_str(),
                            r.digest,
                            repo.name,
                            if what == Kind::MissingBlob { "blobs" } else { "manifests" }
                        ),
                    )),
                    (Some(actual), Some(stated)) if actual != stated => problems.push(Problem::error(
                        &manifest.source,
                        Kind::SizeMismatch,
                        format!(
                            "manifest {digest} says {} {} has {stated} bytes; the file has {actual}",
                            r.role.as_str(),
                            r.digest
                        ),
                    )),
                    _ => {}
                }
            }
        }
    }
    registry.problems.extend(problems);
}
