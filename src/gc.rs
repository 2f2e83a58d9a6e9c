//! `rm` and `gc`: what a tree keeps (every tag, after the retention rule, and the closure of
//! the manifests they name) and the deletions that follow, in an order safe for pulls in
//! flight. `check` reports the same unreachable set as warnings.
//!
//! One model, one plan: [`plan`] turns a scan into the files to delete, grouped in the order
//! they go (tags/list of repositories left without tags, then tags, then manifests by digest
//! with parents before children, then blobs), and the kept registry whose lists and catalog
//! are written before anything is deleted. `gc --dry-run` prints that plan; `gc` carries it out.
//! A pull of a kept tag never needs a deleted file, whenever it runs: every file it reads is
//! in the closure, and the closure is never deleted.
//!
//! Only what the scan proved is garbage is deleted: a manifest it parsed that no kept manifest
//! reaches, a blob named by its digest that no kept manifest lists. Anything under
//! `manifests/` the scan could not read as a manifest (not JSON, an unknown type, bytes that
//! do not hash to the name, a name that is neither tag nor digest, an in-tree symlink) is
//! left and reported, and every `sha256:<hex>` its bytes mention is kept with its closure: it
//! could be a manifest of a type this tool does not know.

use crate::grammar::{Digest, Name, Tag};
use crate::layout;
use crate::media::{MAX_MANIFEST_BYTES, Role};
use crate::model::{Registry, Repository};
use crate::problem::{Kind, Problem};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::Path;
use std::time::SystemTime;

/// `--keep N --match REGEX`: in each repository, of the tags REGEX matches (the whole tag),
/// keep the N newest; tags it does not match are all kept.
pub(crate) struct Retention {
    pub keep: usize,
    pub pattern: regex::Regex,
}

impl Retention {
    pub(crate) fn new(keep: usize, pattern: &str) -> anyhow::Result<Retention> {
        // Anchored: `--match ci` must not also match `stable-ci-2`.
        let pattern = regex::Regex::new(&format!("^(?:{pattern})$"))
            .map_err(|e| anyhow::anyhow!("--match {pattern:?}: {e}"))?;
        Ok(Retention { keep, pattern })
    }
}

/// One file gc deletes, relative to TREE, with its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Doomed {
    pub path: String,
    pub bytes: u64,
}

/// What gc does to a tree, in the order it does it.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// `tags/list` of repositories left without tags (the lists of the others are rewritten).
    pub lists: Vec<Doomed>,
    /// Tag files the retention rule drops.
    pub tags: Vec<Doomed>,
    /// Manifests by digest no kept manifest reaches, every parent before its children.
    pub manifests: Vec<Doomed>,
    pub blobs: Vec<Doomed>,
    /// Files gc cannot prove unreachable: reported, left, and what they mention kept.
    pub left: Vec<Problem>,
}

impl Plan {
    /// Every file, in deletion order.
    pub(crate) fn files(&self) -> impl Iterator<Item = &Doomed> {
        self.lists
            .iter()
            .chain(&self.tags)
            .chain(&self.manifests)
            .chain(&self.blobs)
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.files().map(|d| d.bytes).sum()
    }
}

/// Sizes the scan did not measure are read from disk; a file that vanished counts 0.
fn size_of(root: &Path, rel: &str) -> u64 {
    fs::symlink_metadata(root.join(rel))
        .map(|m| m.len())
        .unwrap_or(0)
}

/// The kept set and the deletions, and the registry as it is once they are done (what
/// `prepare` writes lists and the catalog from).
pub(crate) fn plan(registry: &Registry, retention: Option<&Retention>) -> (Plan, Registry) {
    let (plan, kept) = plan_and_keep(registry, retention, true);
    (plan, kept.expect("asked for"))
}

/// The plan, and with `keep` the registry it leaves. `check` wants the plan alone: the kept
/// registry is a second model, as large as the first at a million tags (issue 16).
fn plan_and_keep(
    registry: &Registry,
    retention: Option<&Retention>,
    keep: bool,
) -> (Plan, Option<Registry>) {
    let root = &registry.root;
    let mut plan = Plan::default();
    let mentions = unprovable(registry, &mut plan.left);
    let mut kept_repos = BTreeMap::new();
    for (name, repo) in &registry.repositories {
        let mut tags = kept_tags(root, repo, retention);
        // prepare's referrers fallback tags `sha256-<hex>` are no roots: each stays (whatever
        // the retention rule says) exactly while its subject does, and otherwise goes with its
        // referrers index, which would list referrers about to be deleted.
        let fallback: BTreeMap<Tag, Digest> = repo
            .referrers
            .iter()
            .filter(|(_, r)| r.fallback)
            .map(|(subject, _)| (layout::fallback_tag(subject), *subject))
            .collect();
        let mut roots: Vec<Digest> = tags
            .iter()
            .filter(|(t, _)| !fallback.contains_key(*t))
            .map(|(_, d)| *d)
            .collect();
        roots.extend(mentions.get(name).into_iter().flatten().copied());
        let (mut manifests, mut blobs) = closure(repo, &roots);
        let mut indexes = Vec::new();
        for (tag, subject) in &fallback {
            match repo.tags.get(tag) {
                Some(index) if manifests.contains(subject) => {
                    tags.insert(tag.clone(), *index);
                    indexes.push(*index);
                }
                _ => {
                    tags.remove(tag);
                    let index = layout::referrers_file(name, subject);
                    if fs::symlink_metadata(root.join(&index)).is_ok() {
                        plan.lists.push(Doomed {
                            bytes: size_of(root, &index),
                            path: index,
                        });
                    }
                }
            }
        }
        if !indexes.is_empty() {
            roots.extend(indexes);
            (manifests, blobs) = closure(repo, &roots);
        }
        for tag in repo.tags.keys().filter(|t| !tags.contains_key(*t)) {
            let path = layout::manifest_file(name, tag);
            plan.tags.push(Doomed {
                bytes: size_of(root, &path),
                path,
            });
        }
        let doomed: Vec<&Digest> = repo
            .manifests
            .keys()
            .filter(|d| !manifests.contains(*d))
            .collect();
        for digest in parents_first(repo, &doomed) {
            if repo.manifests[digest].digest_file {
                plan.manifests.push(Doomed {
                    path: layout::manifest_file(name, digest),
                    bytes: repo.manifests[digest].size,
                });
            }
        }
        for (digest, size) in &repo.blobs {
            if !blobs.contains(digest) {
                let path = repo.blob_path(digest);
                plan.blobs.push(Doomed {
                    bytes: size.unwrap_or_else(|| size_of(root, &path)),
                    path,
                });
            }
        }
        if tags.is_empty() {
            let list = layout::tags_list_file(name);
            if fs::symlink_metadata(root.join(&list)).is_ok() {
                plan.lists.push(Doomed {
                    bytes: size_of(root, &list),
                    path: list,
                });
            }
        }
        if !keep {
            continue;
        }
        let mut kept = Repository::new(name.clone());
        kept.manifests = repo
            .manifests
            .iter()
            .filter(|(d, _)| manifests.contains(*d))
            .map(|(d, m)| {
                let mut m = m.clone();
                // prepare links a missing digest file from a tag that stays.
                if !m.digest_file {
                    // Else from a tag that goes: still on disk when prepare runs.
                    m.first_tag = tags
                        .iter()
                        .chain(&repo.tags)
                        .find(|(_, t)| *t == d)
                        .map(|(t, _)| t.clone());
                }
                (*d, m)
            })
            .collect();
        kept.blobs = repo
            .blobs
            .iter()
            .filter(|(d, _)| blobs.contains(*d))
            .map(|(d, s)| (*d, *s))
            .collect();
        kept.tags = tags.into_iter().collect();
        // The referrers indexes of kept subjects (their referrers are all kept).
        kept.referrers = repo
            .referrers
            .iter()
            .filter(|(subject, _)| manifests.contains(*subject))
            .map(|(subject, r)| (*subject, r.clone()))
            .collect();
        if !kept.tags.is_empty() || !kept.manifests.is_empty() || !kept.blobs.is_empty() {
            kept_repos.insert(name.clone(), kept);
        }
    }
    let kept = Registry {
        root: root.clone(),
        repositories: kept_repos,
        ..Registry::default()
    };
    (plan, keep.then_some(kept))
}

/// The tags a repository keeps: all of them, or those the retention rule keeps.
fn kept_tags(
    root: &Path,
    repo: &Repository,
    retention: Option<&Retention>,
) -> BTreeMap<Tag, Digest> {
    let Some(rule) = retention else {
        return repo.tags.iter().map(|(t, d)| (t.clone(), *d)).collect();
    };
    let mut matching: Vec<(Option<SystemTime>, &Tag)> = repo
        .tags
        .keys()
        .filter(|t| rule.pattern.is_match(t.as_str()))
        .map(|t| {
            let mtime = fs::symlink_metadata(root.join(layout::manifest_file(&repo.name, t)))
                .and_then(|m| m.modified())
                .ok();
            (mtime, t)
        })
        .collect();
    matching.sort_by(newer);
    let dropped: BTreeSet<&Tag> = matching.iter().skip(rule.keep).map(|(_, t)| *t).collect();
    repo.tags
        .iter()
        .filter(|(t, _)| !dropped.contains(t))
        .map(|(t, d)| (t.clone(), *d))
        .collect()
}

/// Newest first: the later tag file mtime, then the higher version, then the greater tag.
fn newer(a: &(Option<SystemTime>, &Tag), b: &(Option<SystemTime>, &Tag)) -> Ordering {
    b.0.cmp(&a.0)
        .then_with(|| version_order(b.1.as_str(), a.1.as_str()))
        .then_with(|| b.1.cmp(a.1))
}

/// How two tags compare as versions, a total order: by semver precedence when both read as
/// one (`1.2.3`, `v1.2`, `1.2.3-rc.1`, missing parts 0, a release after its pre-releases);
/// a version after a tag that is none; else in natural order (runs of digits compared as
/// numbers: `build-10` after `build-9`).
pub(crate) fn version_order(a: &str, b: &str) -> Ordering {
    match (semver(a), semver(b)) {
        (Some((ca, pa)), Some((cb, pb))) => ca.cmp(&cb).then_with(|| match (pa, pb) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(x), Some(y)) => natural(x, y),
        }),
        (Some(_), None) => Ordering::Greater,
        (None, Some(_)) => Ordering::Less,
        (None, None) => natural(a, b),
    }
}

fn semver(tag: &str) -> Option<([u64; 3], Option<&str>)> {
    let s = tag.strip_prefix('v').unwrap_or(tag);
    let (core, pre) = match s.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (s, None),
    };
    let mut parts = [0u64; 3];
    for (n, part) in core.split('.').enumerate() {
        if n == 3 || part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        parts[n] = part.parse().ok()?;
    }
    Some((parts, pre))
}

fn natural(a: &str, b: &str) -> Ordering {
    fn runs(s: &str) -> Vec<&str> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[i - 1].is_ascii_digit() {
                out.push(&s[start..i]);
                start = i;
            }
        }
        out
    }
    let (ra, rb) = (runs(a), runs(b));
    for (x, y) in ra.iter().zip(&rb) {
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        let o = if digits(x) && digits(y) {
            let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
            x.len().cmp(&y.len()).then_with(|| x.cmp(y))
        } else {
            x.cmp(y)
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    ra.len().cmp(&rb.len())
}

/// The manifests and blobs reachable from `roots`: index children, configs and layers,
/// referrers of kept manifests (a manifest whose `subject` is kept), and the subject of a
/// kept referrer (deleting less is the safe side).
fn closure(repo: &Repository, roots: &[Digest]) -> (BTreeSet<Digest>, BTreeSet<Digest>) {
    let mut referrers: HashMap<Digest, Vec<Digest>> = HashMap::new();
    for (digest, m) in &repo.manifests {
        for r in m.references.iter() {
            if let (Role::Subject, Ok(subject)) = (r.role, &r.digest) {
                referrers.entry(*subject).or_default().push(*digest);
            }
        }
    }
    let (mut manifests, mut blobs) = (BTreeSet::new(), BTreeSet::new());
    let mut todo: Vec<Digest> = roots.to_vec();
    while let Some(d) = todo.pop() {
        // A mention may name a blob: keep it either way.
        blobs.insert(d);
        let Some(m) = repo.manifests.get(&d) else {
            continue;
        };
        if !manifests.insert(d) {
            continue;
        }
        for r in m.references.iter() {
            let Ok(target) = &r.digest else { continue };
            match r.role {
                Role::Child | Role::Subject => todo.push(*target),
                Role::Config | Role::Layer => {
                    blobs.insert(*target);
                }
            }
        }
        todo.extend(referrers.get(&d).into_iter().flatten().copied());
    }
    // Manifest digests are not blobs unless a blob file has that name too.
    blobs.retain(|d| repo.blobs.contains_key(d));
    (manifests, blobs)
}

/// `doomed`, each index before the manifests it lists (deepest parents first), so a pull of
/// a doomed index by digest meanwhile finds its children until the index itself is gone.
fn parents_first<'a>(repo: &'a Repository, doomed: &[&'a Digest]) -> Vec<&'a Digest> {
    let set: BTreeSet<&Digest> = doomed.iter().copied().collect();
    fn height<'a>(
        repo: &'a Repository,
        set: &BTreeSet<&'a Digest>,
        d: &'a Digest,
        memo: &mut HashMap<&'a Digest, usize>,
        depth: usize,
    ) -> usize {
        if let Some(h) = memo.get(d) {
            return *h;
        }
        let mut h = 0;
        // A cycle is impossible for hashed content; the depth bound only stops a loop.
        if depth < 64
            && let Some(m) = repo.manifests.get(d)
        {
            for r in m.references.iter() {
                if let (Role::Child, Ok(c)) = (r.role, &r.digest)
                    && let Some(c) = set.get(c)
                {
                    h = h.max(1 + height(repo, set, c, memo, depth + 1));
                }
            }
        }
        memo.insert(d, h);
        h
    }
    let mut memo = HashMap::new();
    let mut out: Vec<(usize, &Digest)> = doomed
        .iter()
        .map(|d| (height(repo, &set, d, &mut memo, 0), *d))
        .collect();
    out.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    out.into_iter().map(|(_, d)| d).collect()
}

/// A reference `rm` takes: `NAME:TAG` or `NAME@sha256:<hex>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RmRef {
    Tag(Name, Tag),
    Digest(Name, Digest),
}

impl RmRef {
    /// `None` when it is no reference at all (a usage error, unlike one not in the tree).
    pub(crate) fn parse(s: &str) -> Option<RmRef> {
        if let Some((name, digest)) = s.split_once('@') {
            return Some(RmRef::Digest(Name::parse(name)?, Digest::parse(digest)?));
        }
        // Names hold no `:`, so the first one starts the tag.
        let (name, tag) = s.split_once(':')?;
        Some(RmRef::Tag(Name::parse(name)?, Tag::parse(tag)?))
    }
}

impl std::fmt::Display for RmRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RmRef::Tag(n, t) => write!(f, "{n}:{t}"),
            RmRef::Digest(n, d) => write!(f, "{n}@{d}"),
        }
    }
}

/// What `rm` deletes (tags, digest files of removed manifests, lists of repositories left
/// without tags) and the registry after it, or why it refuses, changing nothing: a
/// reference not in the tree, or a manifest an index that stays still lists.
pub(crate) fn removal(
    registry: &Registry,
    refs: &[RmRef],
) -> Result<(Plan, Registry), Vec<String>> {
    let root = &registry.root;
    let mut errors = Vec::new();
    let mut tags: BTreeSet<(&Name, &Tag)> = BTreeSet::new();
    let mut manifests: BTreeSet<(&Name, &Digest)> = BTreeSet::new();
    for r in refs {
        match r {
            RmRef::Tag(name, tag) => match registry.repositories.get(name) {
                Some(repo) if repo.tags.contains_key(tag) => {
                    let t = crate::model::held_key(&repo.tags, tag).expect("checked");
                    tags.insert((&repo.name, t));
                }
                _ => errors.push(format!("{r} is not in {}", root.display())),
            },
            RmRef::Digest(name, digest) => match registry.repositories.get(name) {
                Some(repo) if repo.manifests.contains_key(digest) => {
                    let d = crate::model::held_key(&repo.manifests, digest).expect("checked");
                    manifests.insert((&repo.name, d));
                    for (t, td) in &repo.tags {
                        if td == digest {
                            tags.insert((&repo.name, t));
                        }
                    }
                }
                _ => errors.push(format!("{r} is not in {}", root.display())),
            },
        }
    }
    // A manifest an index that stays lists cannot go: the index would break.
    for (name, digest) in &manifests {
        let repo = &registry.repositories[*name];
        for (parent, m) in &repo.manifests {
            let lists_it = m
                .references
                .iter()
                .any(|r| r.role == Role::Child && r.digest.as_ref() == Ok(*digest));
            if lists_it && !manifests.contains(&(*name, parent)) {
                errors.push(format!(
                    "{name}@{digest} is listed by {} (an index that stays): remove that first, or let gc delete both once no tag reaches them",
                    layout::manifest_file(name, parent)
                ));
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut plan = Plan::default();
    let mut repositories = BTreeMap::new();
    for (name, repo) in &registry.repositories {
        let mut kept = Repository::new(name.clone());
        kept.blobs = repo.blobs.clone();
        kept.tags = repo
            .tags
            .iter()
            .filter(|(t, _)| !tags.contains(&(name, *t)))
            .map(|(t, d)| (t.clone(), *d))
            .collect();
        for (digest, m) in &repo.manifests {
            if manifests.contains(&(name, digest)) {
                if m.digest_file {
                    plan.manifests.push(Doomed {
                        path: layout::manifest_file(name, digest),
                        bytes: m.size,
                    });
                }
                continue;
            }
            let mut m = m.clone();
            if !m.digest_file {
                // prepare links it from a tag that stays; one whose only tags go keeps its
                // bytes in a digest file for gc to judge.
                m.first_tag = kept
                    .tags
                    .iter()
                    .find(|(_, d)| *d == digest)
                    .map(|(t, _)| t.clone());
                if m.first_tag.is_none() {
                    // Linked from a tag that is still on disk: prepare runs before deletions.
                    m.first_tag = repo
                        .tags
                        .iter()
                        .find(|(_, d)| *d == digest)
                        .map(|(t, _)| t.clone());
                }
            }
            kept.manifests.insert(*digest, m);
        }
        for t in repo.tags.keys().filter(|t| tags.contains(&(name, *t))) {
            let path = layout::manifest_file(name, t);
            plan.tags.push(Doomed {
                bytes: size_of(root, &path),
                path,
            });
        }
        if kept.tags.is_empty() && !repo.tags.is_empty() {
            let list = layout::tags_list_file(name);
            if fs::symlink_metadata(root.join(&list)).is_ok() {
                plan.lists.push(Doomed {
                    bytes: size_of(root, &list),
                    path: list,
                });
            }
        }
        if !kept.tags.is_empty() || !kept.manifests.is_empty() || !kept.blobs.is_empty() {
            repositories.insert(name.clone(), kept);
        }
    }
    Ok((
        plan,
        Registry {
            root: root.clone(),
            repositories,
            ..Registry::default()
        },
    ))
}

/// Problems that mean a file under `manifests/` may be a manifest gc cannot read.
fn is_unprovable(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::NotAManifest
            | Kind::UnknownMediaType
            | Kind::DigestMismatch
            | Kind::InvalidTag
            | Kind::Unreadable
            | Kind::SymlinkInside
    )
}

/// Files under `v2/<name>/manifests/` that the scan could not take for manifests, reported
/// into `left`; returns the digests each repository's such files mention.
fn unprovable(registry: &Registry, left: &mut Vec<Problem>) -> HashMap<Name, BTreeSet<Digest>> {
    let mut mentions: HashMap<Name, BTreeSet<Digest>> = HashMap::new();
    for p in &registry.problems {
        if !is_unprovable(p.kind) {
            continue;
        }
        let Some((name, _)) = p
            .path
            .strip_prefix("v2/")
            .and_then(|rest| rest.rsplit_once("/manifests/"))
        else {
            continue;
        };
        let Some(name) = Name::parse(name) else {
            continue;
        };
        // Never through a symlink, never a FIFO or device, and a file too large to be a
        // manifest is judged by its size and never read (a 10 GiB file named like a tag):
        // then it mentions nothing.
        let path = registry.root.join(&p.path);
        let readable = fs::symlink_metadata(&path)
            .is_ok_and(|m| m.file_type().is_file() && m.len() <= MAX_MANIFEST_BYTES);
        let bytes = fs::File::open(&path)
            .and_then(|f| {
                if !readable {
                    return Ok(Vec::new());
                }
                use std::io::Read;
                let mut b = Vec::new();
                f.take(MAX_MANIFEST_BYTES).read_to_end(&mut b).map(|_| b)
            })
            .unwrap_or_default();
        let found = digests_in(&bytes);
        left.push(Problem::warning(
            p.path.clone(),
            p.kind,
            format!(
                "gc cannot prove it unreachable ({}): left, with the {} digests it mentions",
                p.kind.as_str(),
                found.len()
            ),
        ));
        mentions.entry(name).or_default().extend(found);
    }
    left.sort();
    left.dedup_by(|a, b| a.path == b.path);
    mentions
}

/// Every `sha256:<64 hex>` in some bytes.
fn digests_in(bytes: &[u8]) -> BTreeSet<Digest> {
    const PREFIX: &[u8] = b"sha256:";
    let mut out = BTreeSet::new();
    let mut i = 0;
    while i + PREFIX.len() + 64 <= bytes.len() {
        if &bytes[i..i + PREFIX.len()] == PREFIX
            && let Ok(s) = std::str::from_utf8(&bytes[i..i + PREFIX.len() + 64])
            && let Some(d) = Digest::parse(s)
        {
            out.insert(d);
            i += PREFIX.len() + 64;
        } else {
            i += 1;
        }
    }
    out
}

/// The unreachable manifests and blobs as `check` warnings, and one line with the total.
pub(crate) fn check_warnings(registry: &Registry) -> Vec<Problem> {
    let (plan, _) = plan_and_keep(registry, None, false);
    let mut out: Vec<Problem> = plan
        .manifests
        .iter()
        .chain(&plan.blobs)
        .map(|d| {
            Problem::warning(
                d.path.clone(),
                Kind::Unreachable,
                format!(
                    "unreachable from every tag: `registrish-gen gc` deletes it ({} bytes)",
                    d.bytes
                ),
            )
        })
        .collect();
    if !out.is_empty() {
        let bytes: u64 = plan
            .manifests
            .iter()
            .chain(&plan.blobs)
            .map(|d| d.bytes)
            .sum();
        out.push(Problem::warning(
            "v2/",
            Kind::Unreachable,
            format!(
                "{} manifests and {} blobs are unreachable from every tag: `registrish-gen gc` would free {bytes} bytes",
                plan.manifests.len(),
                plan.blobs.len()
            ),
        ));
    }
    out
}

/// Deletes `files` in order. A file already gone is fine (another gc, a user).
pub(crate) fn delete(root: &Path, files: &[&Doomed]) -> anyhow::Result<()> {
    for d in files {
        match fs::remove_file(root.join(&d.path)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => anyhow::bail!("cannot delete {}: {e}", d.path),
        }
    }
    Ok(())
}

/// Removes the directories deletions left empty, from each file's directory up to `v2/`
/// (never `v2/` itself): a repository with nothing left is gone from the tree too.
pub(crate) fn prune_dirs(root: &Path, files: &[&Doomed]) {
    let v2 = root.join(layout::V2);
    let dirs: BTreeSet<std::path::PathBuf> = files
        .iter()
        .filter_map(|d| root.join(&d.path).parent().map(|p| p.to_path_buf()))
        .collect();
    // Deepest first, so a repository's manifests/ goes before the repository.
    for dir in dirs.iter().rev() {
        let mut d = dir.as_path();
        while d.starts_with(&v2) && d != v2 {
            if fs::remove_dir(d).is_err() {
                break;
            }
            match d.parent() {
                Some(p) => d = p,
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order_like_releases() {
        let mut tags = vec![
            "1.10.0",
            "1.2.0",
            "v1.9",
            "1.10.0-rc.2",
            "1.10.0-rc.10",
            "build-9",
            "build-10",
        ];
        tags.sort_by(|a, b| version_order(a, b));
        assert_eq!(
            tags,
            [
                "build-9",
                "build-10",
                "1.2.0",
                "v1.9",
                "1.10.0-rc.2",
                "1.10.0-rc.10",
                "1.10.0"
            ]
        );
        assert_eq!(natural("ci-0042", "ci-42"), Ordering::Equal);
        assert_eq!(natural("a", "a1"), Ordering::Less);
    }

    #[test]
    fn digests_are_found_in_any_bytes() {
        let hex = "ab".repeat(32);
        let text = format!("x\"sha256:{hex}\" sha256:short sha256:{}", "c".repeat(64));
        assert_eq!(digests_in(text.as_bytes()).len(), 2);
        assert!(digests_in(b"\xff\xfe sha256:").is_empty());
    }
}
