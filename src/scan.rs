//! Scanning: one sorted walk of `TREE/v2`, reading and classifying every
//! manifest, into a [`Registry`] model.
//!
//! What is read is what is needed. Tag files are read, hashed and parsed
//! (their digest is what hosts serve them under). Digest-named files are
//! already named by their digest: by default one that a tag of the same
//! repository already accounts for is not read again, and blobs are only
//! listed. [`Options::thorough`] (`check`) re-hashes every digest-named
//! manifest and stats every blob for size checks; `check --verify-blobs`
//! hashes blobs too. Stats, reads and the walk below its first levels run on
//! every core; repositories are read a part at a time, so the walk's record
//! and the model are never whole in memory together.

use crate::digest;
use crate::grammar::{Digest, Name, Tag};
use crate::layout;
use crate::media::{self, MAX_MANIFEST_BYTES, ParseError, Role};
use crate::model::{Manifest, Registry, Repository, Symlink, SymlinkKind};
use crate::parallel;
use crate::problem::{Kind, Problem};
use anyhow::{Context, Result, bail};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Options {
    /// Hash every digest-named manifest and stat every blob (for sizes).
    pub thorough: bool,
    /// Stat blobs for their sizes even when not thorough (hosts with size limits).
    pub blob_sizes: bool,
    /// Leave each manifest's references out of the returned model, but for an index's
    /// children (they are checked all the same): for hosts that render from routes, and the
    /// upload scripts' order.
    pub drop_references: bool,
}

impl Options {
    /// Whether the walk stats every blob for its size.
    fn blob_sizes(self) -> bool {
        self.thorough || self.blob_sizes
    }
}

/// A regular file found by the walk in `manifests/` or `blobs/`, its name parsed there (a tag
/// or digest costs no heap of its own beyond the tag's text, at a million of them).
enum Found {
    Tag(Tag),
    Digest(Digest),
    /// Neither (reported by [`build_repositories`]); the name as it reads, lossily.
    Other(Box<str>),
}

impl Found {
    fn manifest(name: &str) -> Found {
        let parsed = if name.starts_with("sha256:") {
            Digest::parse(name).map(Found::Digest)
        } else {
            Tag::parse(name).map(Found::Tag)
        };
        parsed.unwrap_or_else(|| Found::Other(name.into()))
    }

    fn blob(name: &str) -> Found {
        Digest::parse(name)
            .map(Found::Digest)
            .unwrap_or_else(|| Found::Other(name.into()))
    }

    fn file_name(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Found::Tag(t) => t.as_str().into(),
            Found::Digest(d) => d.to_string().into(),
            Found::Other(s) => (**s).into(),
        }
    }
}

#[derive(Default)]
struct RawRepo {
    manifests: Vec<Found>,
    blobs: Vec<Found>,
    /// Each blob's size, in `blobs`' order, when the walk was asked to stat them.
    blob_sizes: Vec<u64>,
}

enum Read {
    Ok {
        digest: Digest,
        size: u64,
        parsed: media::Parsed,
    },
    Bad(Kind, String),
}

/// Scans TREE. I/O errors on TREE itself are errors; everything wrong inside
/// it is a [`Problem`] in the returned model.
pub(crate) fn scan(tree: &Path, options: Options) -> Result<Registry> {
    let root = fs::canonicalize(tree)
        .with_context(|| format!("cannot open registry tree {}", tree.display()))?;
    let v2 = root.join(layout::V2);
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
    let Walked {
        raw,
        invalid_names,
        dot_files,
        symlinks,
        referrers_files,
        file_count,
        problems,
    } = walk(&root, options.blob_sizes())?;
    registry.facts.dot_files = dot_files;
    registry.facts.symlinks = symlinks;
    registry.facts.referrers_files = referrers_files;
    registry.facts.file_count = file_count;
    registry.problems = problems;

    for name in &invalid_names {
        registry.problems.push(Problem::error(
            format!("v2/{name}"),
            Kind::InvalidName,
            "repository name is not valid OCI grammar (lowercase [a-z0-9] components joined by . _ __ -); left out",
        ));
    }

    for path in &registry.facts.dot_files {
        registry.problems.push(Problem::warning(
            path.clone(),
            Kind::DotFile,
            "a dot-file under v2/: never served (web servers read some as configuration)",
        ));
    }

    build_repositories(&mut registry, raw, options)?;
    obsolete_referrers(&mut registry);
    // What goes is not reported (an old index may list a referrer removed since).
    let obsolete: HashSet<&str> = registry.obsolete.iter().map(String::as_str).collect();
    registry
        .problems
        .retain(|p| !obsolete.contains(p.path.as_str()));
    registry.problems.sort();
    crate::parallel::return_freed_memory();
    Ok(registry)
}

/// What the walk of `v2/` found, before any manifest is read. Parts of the tree walked on
/// different cores each fill one, and they merge.
#[derive(Default)]
struct Walked {
    /// In walk order, a repository possibly more than once (its `manifests/` and `blobs/`
    /// may be walked in different parts): small vectors, not a tree a part (one per
    /// repository at a million tags, each a 720-byte B-tree leaf, held until all were merged).
    raw: Vec<(Name, RawRepo)>,
    invalid_names: BTreeSet<String>,
    dot_files: Vec<String>,
    symlinks: Vec<Symlink>,
    referrers_files: Vec<String>,
    file_count: u64,
    problems: Vec<Problem>,
}

impl Walked {
    fn merge(&mut self, other: Walked) {
        self.raw.extend(other.raw);
        self.invalid_names.extend(other.invalid_names);
        self.dot_files.extend(other.dot_files);
        self.symlinks.extend(other.symlinks);
        self.referrers_files.extend(other.referrers_files);
        self.file_count += other.file_count;
        self.problems.extend(other.problems);
    }
}

/// A directory under `v2/` still to be listed: where it is, its path relative to TREE as
/// problems name it (`/`-separated, read lossily), and whether that path is valid UTF-8.
struct Dir {
    path: PathBuf,
    rel: String,
    utf8: bool,
}

/// The directories a walk hands out to the cores once it has this many; until then it lists
/// breadth-first on one (the top levels are few directories).
const SHARED_DIRS: usize = 256;

/// Walks `v2/` without following a symlink. The first levels are listed here; the
/// directories below them are walked on every core (the walk was a third of every command's
/// time at a million tags, issue 16). Each directory is listed once, by one core, sorted by
/// name, so every repository's files come in name order; the facts are put in the order of
/// a sorted depth-first walk, whichever core found them.
/// With `blob_sizes`, each blob is stat'ed as its directory is listed (relative to the
/// directory, on both cores: a path lookup from the root for each of 1.2 million blobs was
/// most of what `check` costs beyond the other commands at a million tags).
fn walk(root: &Path, blob_sizes: bool) -> Result<Walked> {
    let mut out = Walked::default();
    let mut frontier = vec![Dir {
        path: root.join(layout::V2),
        rel: layout::V2.to_string(),
        utf8: true,
    }];
    while !frontier.is_empty() && frontier.len() < SHARED_DIRS {
        let mut next = Vec::new();
        for dir in &frontier {
            list_dir(root, dir, blob_sizes, &mut out, &mut next)?;
        }
        frontier = next;
    }
    let parts = parallel::map(&frontier, |dir| {
        let mut walked = Walked::default();
        walk_tree(root, dir, blob_sizes, &mut walked).map(|_| walked)
    });
    for part in parts {
        out.merge(part?);
    }
    let walk_order = |a: &str, b: &str| a.split('/').cmp(b.split('/'));
    out.dot_files.sort_by(|a, b| walk_order(a, b));
    out.symlinks.sort_by(|a, b| walk_order(&a.path, &b.path));
    out.referrers_files.sort_by(|a, b| walk_order(a, b));
    Ok(out)
}

/// Walks `dir` and everything under it, depth first.
fn walk_tree(root: &Path, dir: &Dir, blob_sizes: bool, out: &mut Walked) -> Result<()> {
    let mut below = Vec::new();
    list_dir(root, dir, blob_sizes, out, &mut below)?;
    for sub in &below {
        walk_tree(root, sub, blob_sizes, out)?;
    }
    Ok(())
}

/// Lists one directory: each entry but a subdirectory is judged here, and the subdirectories
/// are pushed to `subdirs`, in name order.
fn list_dir(
    root: &Path,
    dir: &Dir,
    blob_sizes: bool,
    out: &mut Walked,
    subdirs: &mut Vec<Dir>,
) -> Result<()> {
    let context = || format!("cannot walk {}", root.join(layout::V2).display());
    let dir_parts: Vec<&str> = dir.rel.split('/').collect();
    let parent = dir_parts[dir_parts.len() - 1];
    // parts[0] == "v2"; a manifest or blob has at least one name component before its
    // directory.
    let position = match parent {
        "manifests" if dir_parts.len() >= 3 => Some(true),
        "blobs" if dir_parts.len() >= 3 => Some(false),
        _ => None,
    };
    let stat = blob_sizes && position == Some(false);
    let mut entries: Vec<(std::ffi::OsString, fs::FileType, u64)> = Vec::new();
    for entry in fs::read_dir(&dir.path).with_context(context)? {
        let entry = entry.with_context(context)?;
        // From the directory entry (d_type) where the filesystem gives it: no stat per file.
        let file_type = entry.file_type().with_context(context)?;
        // A blob's size: fstatat relative to this directory, never following a symlink.
        let size = if stat && file_type.is_file() {
            let meta = entry.metadata().with_context(|| {
                format!(
                    "cannot stat {}/{}",
                    dir.rel,
                    entry.file_name().to_string_lossy()
                )
            })?;
            meta.len()
        } else {
            0
        };
        entries.push((entry.file_name(), file_type, size));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    // The repository's name, judged once per directory.
    let name_text = || dir_parts[1..dir_parts.len() - 1].join("/");
    let mut name: Option<Option<Name>> = None;
    for (os_name, file_type, size) in entries {
        let utf8 = dir.utf8 && os_name.to_str().is_some();
        let file_name = os_name.to_string_lossy();
        let path = || dir.path.join(&os_name);
        let rel = format!("{}/{file_name}", dir.rel);
        // A dot-file is never served (web servers read some, like `.htaccess`, as config).
        // A dot-directory is walked all the same: what it holds is counted and judged (a
        // symlink in it, a file an upload would send).
        if file_name.starts_with('.') {
            out.dot_files.push(rel.clone());
        }
        if file_type.is_dir() {
            subdirs.push(Dir {
                path: path(),
                rel,
                utf8,
            });
            continue;
        }
        let mut parts = Vec::with_capacity(dir_parts.len() + 1);
        parts.extend_from_slice(&dir_parts);
        parts.push(&*file_name);
        // Regular files a static host would upload; prepare's own are counted
        // from what it writes, symlinks are not uploaded.
        if file_type.is_file() && !layout::is_generated(&parts) {
            out.file_count += 1;
        }
        let Some(is_manifest) = position else {
            if parent == layout::REFERRERS_DIR
                && file_type.is_file()
                && layout::is_generated(&parts)
            {
                out.referrers_files.push(rel);
            } else if file_type.is_symlink() {
                // A symlink anywhere else (a namespace, a repository's `blobs/`, a list)
                // is never followed by the scan; some servers would follow it.
                let kind = match resolve_symlink(&path(), root) {
                    Ok(_) => SymlinkKind::Inside,
                    Err((kind, _)) => kind,
                };
                out.symlinks.push(Symlink {
                    path: rel.clone(),
                    kind,
                });
                out.problems.push(Problem::warning(
                    rel,
                    Kind::SymlinkOutside,
                    "a symlink where the tree holds no file (a directory of the layout?): never followed; hosts that would follow it refuse the tree or leave it out",
                ));
            }
            continue;
        };
        // One rule for every host: nothing is served through a symlink. nginx, Apache, Caddy
        // and Pages refuse them at request time, and an upload would copy what one points at
        // today; so a symlinked tag, manifest or blob is reported and left out of the model,
        // and no tag list names it.
        if file_type.is_symlink() {
            let (kind, problem) = match resolve_symlink(&path(), root) {
                Ok(_) => (
                    SymlinkKind::Inside,
                    Problem::error(
                        "",
                        Kind::SymlinkInside,
                        "a symlink: no host serves a file through one (nginx, Apache, Caddy and Pages refuse them); use a hard link or a copy; left out",
                    ),
                ),
                Err(found) => found,
            };
            out.symlinks.push(Symlink {
                path: rel.clone(),
                kind,
            });
            out.problems.push(Problem {
                path: rel,
                ..problem
            });
            continue;
        }
        // A FIFO, socket or device: opening one could block the scan forever, and no host
        // should serve one.
        if !file_type.is_file() {
            out.problems.push(Problem::error(
                rel,
                Kind::SpecialFile,
                "not a regular file (a FIFO, socket or device): never opened, left out",
            ));
            continue;
        }
        let repo_name = name.get_or_insert_with(|| Name::parse(&name_text()).filter(|_| dir.utf8));
        let Some(repo_name) = repo_name else {
            out.invalid_names.insert(name_text());
            continue;
        };
        // Judged by its own name's bytes: a name that is not UTF-8 never parses.
        let found = match (is_manifest, utf8) {
            (_, false) => Found::Other(file_name.into()),
            (true, true) => Found::manifest(&file_name),
            (false, true) => Found::blob(&file_name),
        };
        if out.raw.last().is_none_or(|(last, _)| last != repo_name) {
            out.raw.push((repo_name.clone(), RawRepo::default()));
        }
        let repo = &mut out.raw.last_mut().expect("pushed above").1;
        if is_manifest {
            repo.manifests.push(found);
        } else {
            repo.blobs.push(found);
            if stat {
                repo.blob_sizes.push(size);
            }
        }
    }
    // Held until every manifest is read: no room to spare at a million files.
    if let Some(Some(name)) = &name
        && let Some((_, repo)) = out.raw.last_mut().filter(|(last, _)| last == name)
    {
        repo.manifests.shrink_to_fit();
        repo.blobs.shrink_to_fit();
        repo.blob_sizes.shrink_to_fit();
    }
    Ok(())
}

/// Puts every repository's referrers indexes into the model, and their fallback tags
/// `sha256-<hex>` where the tag is prepare's: absent, already the index, or holding the index
/// prepare wrote last time (the bytes of `referrers/sha256:<hex>` on disk). A tag with other
/// content (a client's own fallback index, or anything else) is reported and kept as it is.
fn complete_referrers(
    root: &Path,
    repo: &mut Repository,
    problems: &mut Vec<Problem>,
    obsolete: &mut Vec<String>,
) {
    let name = &repo.name.clone();
    // New tags and manifests wait here and go in together: a key new to a sorted vector
    // moves all after it, once per subject if inserted one by one.
    let mut new_tags: Vec<(Tag, Digest)> = Vec::new();
    let mut new_manifests: Vec<(Digest, Manifest)> = Vec::new();
    for (subject, bytes) in crate::routes::referrers_indexes(repo) {
        let digest = crate::digest::of_bytes(&bytes);
        let tag = layout::fallback_tag(&subject);
        // The index prepare wrote last time, if it differs from this one.
        let last = fs::read(root.join(layout::referrers_file(name, &subject)))
            .ok()
            .map(|b| crate::digest::of_bytes(&b))
            .filter(|d| *d != digest);
        let fallback = match repo.tags.get(&tag) {
            None => true,
            Some(d) if *d == digest => true,
            Some(d) => last.as_ref() == Some(d),
        };
        if fallback {
            let media = crate::media::parse(&bytes).expect("an index prepare makes parses");
            if !repo.manifests.contains_key(&digest) {
                new_manifests.push((
                    digest,
                    Manifest {
                        media_type: media.media_type,
                        size: bytes.len() as u64,
                        references: media.references,
                        artifact: None,
                        // prepare writes it (a generated file), so nothing is linked.
                        digest_file: true,
                        first_tag: None,
                    },
                ));
            }
            match repo.tags.get_mut(&tag) {
                Some(held) => *held = digest,
                None => new_tags.push((tag, digest)),
            }
        } else {
            // An error: clients without the referrers API read this tag, so they see other
            // referrers than the API lists (distribution-spec 1.1, "Referrers Tag Schema").
            problems.push(Problem::error(
                layout::manifest_file(name, &tag),
                Kind::ForeignFallbackTag,
                format!(
                    "the referrers fallback tag of {subject} disagrees with the referrers index of v2/{name}/referrers/{subject} and holds content prepare did not write; left as it is: remove the tag and run prepare to have it written"
                ),
            ));
        }
        if !repo.manifests.contains_key(&subject)
            && !new_manifests.iter().any(|(d, _)| *d == subject)
        {
            for (referrer, m) in &repo.manifests {
                if m.artifact.is_some() && m.subject() == Some(&subject) {
                    problems.push(Problem::warning(
                        repo.manifest_source(referrer),
                        Kind::MissingSubject,
                        format!(
                            "a referrer of {subject}, which is not in v2/{name}/manifests; its referrers index is served all the same (the subject may come later)"
                        ),
                    ));
                }
            }
        }
        repo.referrers.insert(
            subject,
            crate::model::Referrers {
                bytes: bytes.into(),
                digest,
                fallback,
            },
        );
        if let Some(last) = last {
            // retire_index reads every tag and manifest, so it sees the new ones too.
            repo.tags.extend(new_tags.drain(..));
            repo.manifests.extend(new_manifests.drain(..));
            retire_index(repo, &last, obsolete);
        }
    }
    repo.tags.extend(new_tags);
    repo.manifests.extend(new_manifests);
}

/// The digest file of a fallback index prepare wrote earlier (`last`), once the tag holds
/// another index or is gone: obsolete, unless a tag or another manifest still names it.
fn retire_index(repo: &mut Repository, last: &Digest, obsolete: &mut Vec<String>) {
    let named = repo.tags.values().any(|d| d == last)
        || repo.manifests.values().any(|m| {
            m.references
                .iter()
                .any(|r| r.role == Role::Child && r.digest.as_ref() == Ok(last))
        });
    if !named && repo.manifests.get(last).is_some_and(|m| m.digest_file) {
        repo.manifests.remove(last);
        obsolete.push(layout::manifest_file(&repo.name, last));
    }
}

/// Referrers indexes on disk that no manifest asks for any more (the last referrer of a subject
/// was removed, or the whole repository), with their fallback tags where the tag still holds
/// the index prepare wrote: out of the model (no tag list names them) and into
/// `Registry::obsolete` for prepare to remove. A tag holding anything else stays.
fn obsolete_referrers(registry: &mut Registry) {
    let root = registry.root.clone();
    for rel in std::mem::take(&mut registry.facts.referrers_files) {
        let parts: Vec<&str> = rel.split('/').collect();
        let (Some(name), Some(subject)) = (
            Name::parse(&parts[1..parts.len() - 2].join("/")),
            Digest::parse(parts[parts.len() - 1]),
        ) else {
            continue;
        };
        let repo = registry.repositories.get_mut(&name);
        if repo
            .as_ref()
            .is_some_and(|r| r.referrers.contains_key(&subject))
        {
            continue;
        }
        if let Some(repo) = repo {
            let tag = layout::fallback_tag(&subject);
            if let Ok(last) = fs::read(root.join(&rel)).map(|b| crate::digest::of_bytes(&b)) {
                if repo.tags.get(&tag) == Some(&last) {
                    repo.tags.remove(&tag);
                    registry.obsolete.push(layout::manifest_file(&name, &tag));
                }
                retire_index(repo, &last, &mut registry.obsolete);
            }
        }
        registry.obsolete.push(rel);
    }
    registry.obsolete.sort();
}

/// Resolves an in-tree symlink to its target; anything leading outside TREE,
/// dangling or pointing at a directory is a problem, never followed.
fn resolve_symlink(link: &Path, root: &Path) -> Result<PathBuf, (SymlinkKind, Problem)> {
    let target = fs::canonicalize(link).map_err(|e| {
        (
            SymlinkKind::Dangling,
            Problem::error(
                "",
                Kind::SymlinkDangling,
                format!("symlink cannot be resolved ({e}); left out"),
            ),
        )
    })?;
    if !target.starts_with(root) {
        return Err((
            SymlinkKind::Outside,
            Problem::error(
                "",
                Kind::SymlinkOutside,
                format!(
                    "symlink leads outside the tree (to {}); never followed, left out",
                    target.display()
                ),
            ),
        ));
    }
    if target.is_dir() {
        return Err((
            SymlinkKind::Directory,
            Problem::warning(
                "",
                Kind::SymlinkDirectory,
                "symlink to a directory is not followed",
            ),
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
    let too_large = || {
        Read::Bad(
            Kind::NotAManifest,
            format!("larger than any manifest (limit {MAX_MANIFEST_BYTES} bytes); left out"),
        )
    };
    let bytes = match fs::File::open(path).and_then(|f| {
        use std::io::Read as _;
        // A file too large to be a manifest (a 10 GiB sparse file named like a tag) is judged
        // by its size, on the open file, and never read.
        let len = f.metadata()?.len();
        if len > MAX_MANIFEST_BYTES {
            return Ok(None);
        }
        // Sized once (growing from empty was a tenth of `check`'s time in malloc and realloc).
        let mut bytes = Vec::with_capacity(len as usize + 1);
        // One byte over the limit is enough to know it is too large (it may grow meanwhile).
        f.take(MAX_MANIFEST_BYTES + 1)
            .read_to_end(&mut bytes)
            .map(|_| Some(bytes))
    }) {
        Ok(Some(b)) => b,
        Ok(None) => return too_large(),
        Err(e) => return Read::Bad(Kind::Unreadable, format!("cannot read: {e}")),
    };
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return too_large();
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

fn file_path(root: &Path, repo: &Name, dir: &str, found: &Found) -> PathBuf {
    root.join(format!("v2/{repo}/{dir}/{}", found.file_name()))
}

/// Reads the files of `items` in parallel, each path made where it is read (a million paths
/// held at once cost over 100 MB); with `dedupe`, hard links of one file (prepare's digest
/// copies of tags) are stat'ed and read once. Returns the reads and how many files were opened.
fn read_all<T: Sync>(
    items: &[T],
    path: impl Fn(&T) -> PathBuf + Sync,
    dedupe: bool,
) -> Result<(Vec<Arc<Read>>, usize)> {
    if !dedupe {
        let reads = parallel::map(items, |i| Arc::new(read_one(&path(i))));
        return Ok((reads, items.len()));
    }
    let ids = parallel::map(items, |i| fs::metadata(path(i)).map(|m| identity(&m)));
    let mut unique: Vec<&T> = Vec::new();
    let mut slot_of: HashMap<(u64, u64), usize> = HashMap::new();
    let mut slots = Vec::with_capacity(items.len());
    for (item, id) in items.iter().zip(ids) {
        let id = id.with_context(|| format!("cannot stat {}", path(item).display()))?;
        let slot = match id {
            Some(id) => *slot_of.entry(id).or_insert_with(|| {
                unique.push(item);
                unique.len() - 1
            }),
            None => {
                unique.push(item);
                unique.len() - 1
            }
        };
        slots.push(slot);
    }
    drop(slot_of);
    let results = parallel::map(&unique, |i| Arc::new(read_one(&path(i))));
    let opened = unique.len();
    Ok((
        slots.into_iter().map(|s| results[s].clone()).collect(),
        opened,
    ))
}

/// A manifest file whose name passed the grammar.
enum Named<'a> {
    Tag(&'a Name, &'a Tag, &'a Found),
    Digest(&'a Name, Digest, &'a Found),
}

/// Repositories read at a time: the walk's record of a part is dropped once its manifests are
/// read, so the two are never all in memory together (issue 16).
const REPOSITORIES_PER_PART: usize = 4096;

/// A repository while its part is read: BTreeMaps take keys in any order (a tag's manifest
/// comes in the order of the tags); `finish_repositories` turns each into the model's sorted
/// vectors, so the roomier maps only ever hold one part.
#[derive(Default)]
struct Building {
    tags: BTreeMap<Tag, Digest>,
    manifests: BTreeMap<Digest, Manifest>,
    blobs: BTreeMap<Digest, Option<u64>>,
}

/// One allocation per repository, not one per file.
fn repo_of<'r>(repos: &'r mut BTreeMap<Name, Building>, name: &Name) -> &'r mut Building {
    if !repos.contains_key(name) {
        repos.insert(name.clone(), Building::default());
    }
    repos.get_mut(name).expect("inserted above")
}

fn build_repositories(
    registry: &mut Registry,
    mut raw: Vec<(Name, RawRepo)>,
    options: Options,
) -> Result<()> {
    // By name, each repository once: the walk's entries of one repository merged, in walk
    // order (a stable sort keeps it).
    raw.sort_by(|a, b| a.0.cmp(&b.0));
    raw.dedup_by(|later, first| {
        let same = later.0 == first.0;
        if same {
            first.1.manifests.append(&mut later.1.manifests);
            first.1.blobs.append(&mut later.1.blobs);
            first.1.blob_sizes.append(&mut later.1.blob_sizes);
        }
        same
    });
    for part in raw.chunks_mut(REPOSITORIES_PER_PART) {
        let mut repos = BTreeMap::new();
        build_part(registry, part, options, &mut repos)?;
        // The part's file names are not needed again.
        part.iter_mut().for_each(|(_, r)| *r = RawRepo::default());
        finish_repositories(registry, repos, options);
    }
    Ok(())
}

/// Reads and judges the manifests and blobs of some repositories into `repos`.
fn build_part(
    registry: &mut Registry,
    raw: &[(Name, RawRepo)],
    options: Options,
    repos: &mut BTreeMap<Name, Building>,
) -> Result<()> {
    let root = registry.root.clone();
    let mut tags: Vec<Named> = Vec::new();
    let mut digests: Vec<Named> = Vec::new();
    for (name, repo) in raw {
        for f in &repo.manifests {
            match f {
                Found::Digest(d) => digests.push(Named::Digest(name, *d, f)),
                Found::Tag(t) => tags.push(Named::Tag(name, t, f)),
                Found::Other(text) if text.starts_with("sha256:") => {
                    registry.problems.push(Problem::error(
                        layout::manifest_file(name, text),
                        Kind::InvalidTag,
                        "neither a valid tag nor a sha256 digest; left out",
                    ))
                }
                Found::Other(text) => registry.problems.push(Problem::error(
                    layout::manifest_file(name, text),
                    Kind::InvalidTag,
                    "tag is not valid OCI grammar ([a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}); left out",
                )),
            }
        }
    }

    let path_of = |n: &Named| match n {
        Named::Tag(name, _, f) | Named::Digest(name, _, f) => {
            file_path(&root, name, "manifests", f)
        }
    };
    // Which digest files must be read: all when thorough (in the same pass as
    // the tags, so a tag and its hard-linked digest copy are read once), else
    // only those no tag of the same repository accounts for, known after the tags.
    let (tag_reads, digest_reads, to_read) = if options.thorough {
        let all: Vec<&Named> = tags.iter().chain(&digests).collect();
        let (mut reads, opened) = read_all(&all, |n| path_of(n), true)?;
        registry.facts.manifest_reads += opened;
        let digest_reads = reads.split_off(tags.len());
        (reads, digest_reads, digests.iter().collect::<Vec<_>>())
    } else {
        let (reads, opened) = read_all(&tags, path_of, false)?;
        registry.facts.manifest_reads += opened;
        (reads, Vec::new(), Vec::new())
    };

    let mut tag_digests: HashSet<(&Name, Digest)> = HashSet::new();
    for (named, read) in tags.iter().zip(&tag_reads) {
        let Named::Tag(name, tag, _) = named else {
            continue;
        };
        let repo = repo_of(repos, name);
        match read.as_ref() {
            Read::Bad(kind, message) => registry.problems.push(Problem::error(
                layout::manifest_file(name, tag),
                *kind,
                message.clone(),
            )),
            Read::Ok {
                digest,
                size,
                parsed,
            } => {
                repo.manifests.entry(*digest).or_insert_with(|| Manifest {
                    media_type: parsed.media_type,
                    size: *size,
                    references: parsed.references.clone(),
                    artifact: parsed.artifact.clone(),
                    digest_file: false,
                    first_tag: Some((*tag).clone()),
                });
                repo.tags.insert((*tag).clone(), *digest);
                tag_digests.insert((name, *digest));
            }
        }
    }
    drop(tag_reads);

    let (to_read, digest_reads) = if options.thorough {
        (to_read, digest_reads)
    } else {
        let mut to_read = Vec::new();
        for named in &digests {
            let Named::Digest(name, d, _) = named else {
                continue;
            };
            if tag_digests.contains(&(*name, *d)) {
                if let Some(m) = repos.get_mut(*name).and_then(|r| r.manifests.get_mut(d)) {
                    m.digest_file = true;
                }
            } else {
                to_read.push(named);
            }
        }
        let (reads, opened) = read_all(&to_read, |n| path_of(n), false)?;
        registry.facts.manifest_reads += opened;
        (to_read, reads)
    };
    for (named, read) in to_read.iter().zip(&digest_reads) {
        let Named::Digest(name, named_digest, _) = named else {
            continue;
        };
        let rel = || layout::manifest_file(name, named_digest);
        match read.as_ref() {
            Read::Bad(kind, message) => {
                registry
                    .problems
                    .push(Problem::error(rel(), *kind, message.clone()))
            }
            Read::Ok { digest, .. } if digest != named_digest => {
                registry.problems.push(Problem::error(
                    rel(),
                    Kind::DigestMismatch,
                    format!("bytes hash to {digest}, not to the file's name; left out"),
                ))
            }
            Read::Ok {
                digest,
                size,
                parsed,
            } => {
                let repo = repo_of(repos, name);
                let m = repo.manifests.entry(*digest).or_insert_with(|| Manifest {
                    media_type: parsed.media_type,
                    size: *size,
                    references: parsed.references.clone(),
                    artifact: parsed.artifact.clone(),
                    digest_file: true,
                    first_tag: None,
                });
                m.digest_file = true;
            }
        }
    }
    drop(digest_reads);

    // Blobs: listed; their sizes, when asked, stat'ed by the walk.
    for (name, repo) in raw {
        let sizes = options.blob_sizes().then_some(&repo.blob_sizes);
        for (i, f) in repo.blobs.iter().enumerate() {
            match f {
                Found::Digest(d) => {
                    let size = sizes.map(|s| s[i]);
                    repo_of(repos, name).blobs.insert(*d, size);
                }
                _ => registry.problems.push(Problem::error(
                    format!("v2/{name}/blobs/{}", f.file_name()),
                    Kind::InvalidBlobName,
                    "blob file name is not sha256:<64 lowercase hex>; left out",
                )),
            }
        }
    }
    Ok(())
}

/// Puts the repositories that hold anything into the model, judging what only a whole
/// repository shows.
fn finish_repositories(registry: &mut Registry, repos: BTreeMap<Name, Building>, options: Options) {
    for (name, b) in repos {
        let mut repo = Repository {
            tags: crate::model::compact(b.tags),
            manifests: crate::model::compact(b.manifests),
            blobs: crate::model::compact(b.blobs),
            ..Repository::new(name.clone())
        };
        if name.as_str() == layout::INDEX_FILE {
            registry.problems.push(Problem::error(
                format!("v2/{name}"),
                Kind::ReservedName,
                "repository name collides with v2/index.html, the /v2/ body; left out",
            ));
            continue;
        }
        for (digest, m) in &repo.manifests {
            if m.media_type.is_schema1() {
                registry.problems.push(Problem::warning(
                    repo.manifest_source(digest),
                    Kind::Schema1,
                    "Docker schema 1 manifest: Docker 28+ and containerd 2.0+ refuse to pull it (skopeo and podman still read it); convert it, e.g. `skopeo copy --format v2s2`",
                ));
            }
        }
        if !repo.manifests.is_empty() || !repo.blobs.is_empty() {
            // A repository's references are judged as its part finishes (they only ever name
            // its own manifests and blobs), so hosts that never read them hold them for one
            // part, not the tree: at a million manifests they were a fifth of the model and
            // the peak of every command (issue 16).
            check_references(&repo, &mut registry.problems);
            complete_referrers(
                &registry.root,
                &mut repo,
                &mut registry.problems,
                &mut registry.obsolete,
            );
            if options.drop_references {
                drop_references(&mut repo);
            }
            registry.repositories.insert(name, repo);
        }
    }
}

/// What hosts that never read references keep of them: an index keeps its children (the
/// upload scripts order indexes after what they list, and `retire_index` reads them);
/// configs, layers and subjects go. Every check that reads them has run.
fn drop_references(repo: &mut Repository) {
    for (_, m) in repo.manifests.iter_mut() {
        if m.references.iter().all(|r| r.role != Role::Child) {
            m.references = Arc::from([]);
        } else if m.references.iter().any(|r| r.role != Role::Child) {
            m.references = m
                .references
                .iter()
                .filter(|r| r.role == Role::Child)
                .cloned()
                .collect();
        }
    }
}

/// Every blob and child manifest a served manifest references must be in
/// the same repository (with the size its descriptor states, when sizes were
/// read), or a pull fails half-way. Reported, not left out: the rest of the
/// image may still be useful.
fn check_references(repo: &Repository, problems: &mut Vec<Problem>) {
    for (digest, manifest) in &repo.manifests {
        for r in manifest.references.iter() {
            let (found, what) = match (r.role, &r.digest) {
                (Role::Subject, _) => continue,
                (Role::Config | Role::Layer, _) if r.external => continue,
                (_, Err(_)) => (
                    None,
                    if r.role == Role::Child {
                        Kind::MissingManifest
                    } else {
                        Kind::MissingBlob
                    },
                ),
                (Role::Child, Ok(d)) => (
                    repo.manifests.get(d).map(|m| Some(m.size)),
                    Kind::MissingManifest,
                ),
                (Role::Config | Role::Layer, Ok(d)) => {
                    (repo.blobs.get(d).copied(), Kind::MissingBlob)
                }
            };
            let shown = match &r.digest {
                Ok(d) => d.to_string(),
                Err(s) => s.to_string(),
            };
            match (found, r.size) {
                (None, _) => problems.push(Problem::error(
                    repo.manifest_source(digest),
                    what,
                    format!(
                        "manifest {digest} references {} {shown} which is not in v2/{}/{}",
                        r.role.as_str(),
                        repo.name,
                        if what == Kind::MissingBlob { "blobs" } else { "manifests" }
                    ),
                )),
                (Some(Some(actual)), Some(stated)) if actual != stated => {
                    problems.push(Problem::error(
                        repo.manifest_source(digest),
                        Kind::SizeMismatch,
                        format!(
                            "manifest {digest} says {} {shown} has {stated} bytes; the file has {actual}",
                            r.role.as_str(),
                        ),
                    ))
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("registrish-scan-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("v2/a/manifests")).unwrap();
        fs::create_dir_all(dir.join("v2/a/blobs")).unwrap();
        dir
    }

    /// Issue 15: prepare writes each subject's referrers index and its fallback tag, a second
    /// prepare changes nothing, a new referrer rewrites both, and a fallback tag with content
    /// prepare did not write is reported and kept.
    #[test]
    fn referrers_indexes_and_fallback_tags() {
        let dir = tree("referrers");
        let config = br#"{"architecture":"amd64","os":"linux"}"#;
        let config_digest = digest::of_bytes(config);
        fs::write(dir.join(format!("v2/a/blobs/{config_digest}")), config).unwrap();
        let empty = b"{}";
        let empty_digest = digest::of_bytes(empty);
        fs::write(dir.join(format!("v2/a/blobs/{empty_digest}")), empty).unwrap();
        let image = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[]}}"#,
            config.len()
        );
        let subject = digest::of_bytes(image.as_bytes());
        fs::write(dir.join("v2/a/manifests/latest"), &image).unwrap();
        let referrer = |n: u8| {
            format!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/x-sig","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{empty_digest}","size":2}},"layers":[],"subject":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{subject}","size":{}}},"annotations":{{"n":"{n}"}}}}"#,
                image.len()
            )
        };
        let put = |m: &str| {
            let d = digest::of_bytes(m.as_bytes());
            fs::write(dir.join(format!("v2/a/manifests/{d}")), m).unwrap();
            d
        };
        let first = put(&referrer(1));
        let prepared = || {
            let registry = scan(&dir, Options::default()).unwrap();
            crate::prepare::prepare(&registry).unwrap();
            let again = scan(&dir, Options::default()).unwrap();
            assert_eq!(crate::routes::pending(&again), vec![]);
            again
        };
        let registry = prepared();
        let index_file = dir.join(format!("v2/a/referrers/{subject}"));
        let fallback = dir.join(format!("v2/a/manifests/sha256-{}", subject.hex()));
        let index: serde_json::Value =
            serde_json::from_slice(&fs::read(&index_file).unwrap()).unwrap();
        assert_eq!(
            index["mediaType"],
            "application/vnd.oci.image.index.v1+json"
        );
        assert_eq!(index["manifests"][0]["digest"], first.to_string());
        assert_eq!(index["manifests"][0]["artifactType"], "application/x-sig");
        assert_eq!(index["manifests"][0]["annotations"]["n"], "1");
        assert_eq!(fs::read(&fallback).unwrap(), fs::read(&index_file).unwrap());
        let tags = fs::read_to_string(dir.join("v2/a/tags/list")).unwrap();
        assert!(
            tags.contains(&format!("sha256-{}", subject.hex())),
            "{tags}"
        );
        let index_digest = registry.repositories.values().next().unwrap().tags
            [&crate::layout::fallback_tag(&subject)];
        assert!(dir.join(format!("v2/a/manifests/{index_digest}")).is_file());
        assert!(registry.problems.is_empty(), "{:?}", registry.problems);

        let second = put(&referrer(2));
        prepared();
        let index: serde_json::Value =
            serde_json::from_slice(&fs::read(&index_file).unwrap()).unwrap();
        let listed: Vec<String> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["digest"].as_str().unwrap().to_string())
            .collect();
        let mut want = vec![first.to_string(), second.to_string()];
        want.sort();
        assert_eq!(listed, want, "ordered by digest");
        assert_eq!(fs::read(&fallback).unwrap(), fs::read(&index_file).unwrap());

        // Someone else's fallback tag: reported, never replaced.
        fs::write(&fallback, &image).unwrap();
        let registry = scan(&dir, Options::default()).unwrap();
        assert!(
            registry
                .problems
                .iter()
                .any(|p| p.kind == Kind::ForeignFallbackTag),
            "{:?}",
            registry.problems
        );
        crate::prepare::prepare(&registry).unwrap();
        assert_eq!(fs::read(&fallback).unwrap(), image.as_bytes());

        // Prepare's own tag again; then the referrers go, one by one: the index shrinks, and
        // with the last one the index and the fallback tag go too (and leave the tag list).
        fs::remove_file(&fallback).unwrap();
        prepared();
        fs::remove_file(dir.join(format!("v2/a/manifests/{second}"))).unwrap();
        prepared();
        let index: serde_json::Value =
            serde_json::from_slice(&fs::read(&index_file).unwrap()).unwrap();
        assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
        assert_eq!(index["manifests"][0]["digest"], first.to_string());
        assert_eq!(fs::read(&fallback).unwrap(), fs::read(&index_file).unwrap());
        let last_index = digest::of_bytes(&fs::read(&index_file).unwrap());
        fs::remove_file(dir.join(format!("v2/a/manifests/{first}"))).unwrap();
        let registry = scan(&dir, Options::default()).unwrap();
        // Its digest file goes too: prepare wrote it, and it lists a referrer now gone.
        assert_eq!(
            crate::routes::pending(&registry),
            vec![
                (
                    format!("v2/a/manifests/sha256-{}", subject.hex()),
                    "obsolete"
                ),
                (format!("v2/a/manifests/{last_index}"), "obsolete"),
                (format!("v2/a/referrers/{subject}"), "obsolete"),
                ("v2/a/tags/list".to_string(), "stale"),
            ]
        );
        let registry = prepared();
        assert!(registry.problems.is_empty(), "{:?}", registry.problems);
        assert!(!index_file.exists() && !fallback.exists());
        assert!(!dir.join(format!("v2/a/manifests/{last_index}")).exists());
        let tags = fs::read_to_string(dir.join("v2/a/tags/list")).unwrap();
        assert!(!tags.contains("sha256-"), "{tags}");

        // A referrer whose subject is not there: a warning, and its index is still written.
        fs::remove_file(dir.join("v2/a/manifests/latest")).unwrap();
        fs::remove_file(dir.join(format!("v2/a/manifests/{subject}"))).unwrap();
        let orphan = put(&referrer(3));
        let registry = prepared();
        let missing: Vec<&Problem> = registry
            .problems
            .iter()
            .filter(|p| p.kind == Kind::MissingSubject)
            .collect();
        assert_eq!(missing.len(), 1, "{:?}", registry.problems);
        assert_eq!(missing[0].path, format!("v2/a/manifests/{orphan}"));
        assert_eq!(missing[0].severity, crate::problem::Severity::Warning);
        assert!(index_file.is_file());
        let _ = fs::remove_dir_all(&dir);
    }

    /// Regression (issue 8, bug 4): `check` reads a tag and its hard-linked
    /// digest copy once, across the tag and digest passes.
    #[test]
    fn each_inode_is_read_once() {
        let dir = tree("inodes");
        let config = br#"{"architecture":"amd64","os":"linux"}"#;
        let config_digest = digest::of_bytes(config);
        fs::write(dir.join(format!("v2/a/blobs/{config_digest}")), config).unwrap();
        let mut inodes = 0;
        for i in 0..3 {
            let m = format!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[],"annotations":{{"n":"{i}"}}}}"#,
                config.len()
            );
            let d = digest::of_bytes(m.as_bytes());
            let tag = dir.join(format!("v2/a/manifests/t{i}"));
            fs::write(&tag, &m).unwrap();
            fs::hard_link(&tag, dir.join(format!("v2/a/manifests/{d}"))).unwrap();
            fs::hard_link(&tag, dir.join(format!("v2/a/manifests/u{i}"))).unwrap();
            inodes += 1;
        }
        let thorough = scan(
            &dir,
            Options {
                thorough: true,
                blob_sizes: true,
                drop_references: false,
            },
        )
        .unwrap();
        assert_eq!(thorough.facts.manifest_reads, inodes);
        assert_eq!(thorough.tag_count(), 6);
        assert_eq!(thorough.manifest_count(), 3);
        assert!(thorough.problems.is_empty(), "{:?}", thorough.problems);
        let quick = scan(&dir, Options::default()).unwrap();
        // Not deduplicated by default (no stat per file): every tag file, no digest file.
        assert_eq!(quick.facts.manifest_reads, 6);
        fs::remove_dir_all(&dir).unwrap();
    }
}
