//! `import`: turn an export (OCI layout, skopeo `dir:`, `docker save`) into
//! `v2/<name>/...` of a registry tree, for the whole graph of each image.
//!
//! Two phases, so a failure leaves the tree as it was. First every object is
//! staged in a directory inside TREE (same filesystem, so the final step is a
//! rename): each byte is hashed on the way and checked against the digest it
//! will be served under; a source file is hard-linked when it can be (after
//! hashing it), copied otherwise. Objects already in the tree are not staged
//! (content-addressed: importing the same image twice writes nothing). Only
//! when everything is staged are objects renamed into place, in an order that
//! never shows a client a tag before its blobs and manifests: blobs, digest
//! manifests (children first), tags. Then `prepare` completes the tree.

pub(crate) mod source;

use crate::grammar;
use crate::media::{self, Role};
use crate::parallel;
use anyhow::{Context, Result, bail};
use source::{Bytes, Source};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// What to import, checked before anything is read or written.
#[derive(Debug)]
pub struct Request {
    pub source: PathBuf,
    /// `oci:DIR:REF`-style selection of one image in a layout or archive.
    pub reference: Option<String>,
    pub name: String,
    pub tags: Vec<String>,
    pub tree: PathBuf,
}

impl Request {
    /// Parses `SOURCE[:REF]`, `NAME[:TAG]` and `--tag`s, checking the OCI grammar.
    pub fn parse(source: &str, name: &str, tags: &[String], tree: &Path) -> Result<Request> {
        let (source, reference) = if Path::new(source).exists() {
            (PathBuf::from(source), None)
        } else {
            match source.rsplit_once(':') {
                Some((path, r)) if Path::new(path).exists() && !r.is_empty() => {
                    (PathBuf::from(path), Some(r.to_string()))
                }
                _ => bail!("{source}: no such file or directory"),
            }
        };
        let (name, mut all_tags) = match name.rsplit_once(':') {
            Some((n, t)) if !t.contains('/') => (n.to_string(), vec![t.to_string()]),
            _ => (name.to_string(), Vec::new()),
        };
        if !grammar::is_valid_name(&name) {
            bail!(
                "--name {:?}: not a valid repository name (lowercase [a-z0-9] components joined by . _ __ - and /)",
                crate::problem::printable(&name)
            );
        }
        all_tags.extend(tags.iter().cloned());
        for t in &all_tags {
            if !grammar::is_valid_tag(t) {
                bail!(
                    "tag {:?}: not a valid tag ([a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}})",
                    crate::problem::printable(t)
                );
            }
        }
        all_tags.sort();
        all_tags.dedup();
        Ok(Request {
            source,
            reference,
            name,
            tags: all_tags,
            tree: tree.to_path_buf(),
        })
    }
}

#[derive(Debug, Default)]
pub struct Report {
    pub images: usize,
    pub tags: Vec<String>,
    pub linked: usize,
    pub copied: usize,
    pub present: usize,
    pub bytes_written: u64,
}

/// The tag a source's ref name stands for: itself when it is a tag, else
/// the part after the last `:` of a full image name (`docker.io/x/y:1.0`).
fn tag_of(ref_name: &str) -> Option<String> {
    if grammar::is_valid_tag(ref_name) {
        return Some(ref_name.to_string());
    }
    let (repo, tag) = ref_name.rsplit_once(':')?;
    (!tag.contains('/') && !repo.is_empty() && grammar::is_valid_tag(tag)).then(|| tag.to_string())
}

/// Which images, under which tags.
fn select(source: &Source, req: &Request) -> Result<BTreeMap<String, BTreeSet<String>>> {
    let available = || {
        source
            .images
            .iter()
            .filter_map(|i| i.ref_name.clone())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let chosen: Vec<&source::Image> = match &req.reference {
        Some(r) => {
            let found: Vec<_> = source
                .images
                .iter()
                .filter(|i| {
                    i.ref_name.as_deref() == Some(r.as_str())
                        || i.ref_name.as_deref().and_then(tag_of).as_deref() == Some(r.as_str())
                })
                .collect();
            if found.is_empty() {
                bail!(
                    "{} has no image named {r:?} (it has: {})",
                    source.path.display(),
                    available()
                );
            }
            found
        }
        None => source.images.iter().collect(),
    };
    if chosen.is_empty() {
        bail!("{} holds no image", source.path.display());
    }
    let digests: BTreeSet<&str> = chosen.iter().map(|i| i.digest.as_str()).collect();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    if !req.tags.is_empty() {
        if digests.len() > 1 {
            bail!(
                "{} holds {} images ({}); pick one with SOURCE:REF to give it tags, or import them all under their own names without a tag",
                source.path.display(),
                digests.len(),
                available()
            );
        }
        out.insert(chosen[0].digest.clone(), req.tags.iter().cloned().collect());
        return Ok(out);
    }
    for image in chosen {
        let Some(tag) = image.ref_name.as_deref().and_then(tag_of) else {
            bail!(
                "{} image {} has no tag to use: give one with --name {}:TAG",
                source.kind.describe(),
                image.digest,
                req.name
            );
        };
        out.entry(image.digest.clone()).or_default().insert(tag);
    }
    Ok(out)
}

struct Graph {
    /// Children before parents.
    manifests: Vec<(String, Vec<u8>, Bytes)>,
    blobs: BTreeMap<String, Bytes>,
}

/// Every manifest, config and layer reachable from the chosen images, with
/// each manifest's bytes checked against its digest.
fn walk(source: &Source, tops: &BTreeMap<String, BTreeSet<String>>) -> Result<Graph> {
    let mut graph = Graph {
        manifests: Vec::new(),
        blobs: BTreeMap::new(),
    };
    let mut seen = BTreeSet::new();
    for top in tops.keys() {
        visit(source, top, &mut graph, &mut seen)?;
    }
    Ok(graph)
}

fn visit(
    source: &Source,
    digest: &str,
    graph: &mut Graph,
    seen: &mut BTreeSet<String>,
) -> Result<()> {
    if !seen.insert(digest.to_string()) {
        return Ok(());
    }
    if !grammar::is_valid_digest(digest) {
        bail!(
            "{}: manifest digest {digest:?} is not sha256:<hex>",
            source.path.display()
        );
    }
    let bytes_at = source
        .locate(digest)
        .with_context(|| format!("{} lacks manifest {digest}", source.path.display()))?;
    let bytes = source
        .read_small(&bytes_at)
        .with_context(|| format!("reading manifest {digest}"))?;
    let actual = crate::digest::of_bytes(&bytes).to_string();
    if actual != digest {
        bail!(
            "{}: manifest {digest} holds bytes that hash to {actual}; nothing imported",
            source.path.display()
        );
    }
    let parsed = media::parse(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: manifest {digest}: {e:?}", source.path.display()))?;
    for r in parsed.references.iter() {
        let referenced = match &r.digest {
            Ok(d) => d.to_string(),
            Err(text) => text.to_string(),
        };
        match r.role {
            Role::Subject => {}
            Role::Child => visit(source, &referenced, graph, seen)?,
            Role::Config | Role::Layer => {
                if r.digest.is_err() {
                    bail!(
                        "{}: {} {:?} is not a sha256 digest",
                        source.path.display(),
                        r.role.as_str(),
                        referenced
                    );
                }
                match source.locate(&referenced) {
                    Some(b) => {
                        graph.blobs.insert(referenced.clone(), b);
                    }
                    // Foreign layers are fetched from their URLs by clients.
                    None if r.external => {}
                    None => bail!(
                        "{} lacks {} {} of manifest {digest}; export the image again (with --all for every platform)",
                        source.path.display(),
                        r.role.as_str(),
                        referenced
                    ),
                }
            }
        }
    }
    graph.manifests.push((digest.to_string(), bytes, bytes_at));
    Ok(())
}

enum Staged {
    Linked(PathBuf),
    Copied(PathBuf, u64),
}

/// Puts `digest`'s bytes at `dest` (a staging path), verified.
fn stage(
    source: &Source,
    bytes: &Bytes,
    digest: &str,
    dest: &Path,
    progress: &AtomicU64,
) -> Result<Staged> {
    // Link first, then hash what the link shares: every object is read once,
    // whether it ends up linked or (across filesystems) copied.
    if let Bytes::File(path) = bytes
        && fs::hard_link(path, dest).is_ok()
    {
        let (actual, _) =
            crate::digest::copy(fs::File::open(dest)?, std::io::sink(), Some(progress))?;
        if actual.to_string() != digest {
            bail!(
                "{} hashes to {actual}, not {digest}; nothing imported",
                path.display()
            );
        }
        return Ok(Staged::Linked(dest.to_path_buf()));
    }
    let (r, _) = source.open_bytes(bytes)?;
    let file =
        fs::File::create(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    let mut w = std::io::BufWriter::new(file);
    let (actual, len) = crate::digest::copy(r, &mut w, Some(progress))
        .with_context(|| format!("copying {digest}"))?;
    w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    if actual.to_string() != digest {
        bail!(
            "{} holds bytes for {digest} that hash to {actual}; nothing imported",
            source.path.display()
        );
    }
    Ok(Staged::Copied(dest.to_path_buf(), len))
}

/// Prints a progress line on stderr while a long import runs, only when
/// stderr is a terminal (CI logs stay clean).
struct Progress {
    done: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    fn start(counter: Arc<AtomicU64>, total: u64) -> Progress {
        let done = Arc::new(AtomicBool::new(false));
        let handle = (std::io::stderr().is_terminal() && total > 0).then(|| {
            let done = done.clone();
            std::thread::spawn(move || {
                let mib = |b: u64| b as f64 / 1048576.0;
                // Drawn at least once, and once more at the end (at 100%),
                // however short the import.
                loop {
                    let finished = done.load(Ordering::Relaxed);
                    let n = counter.load(Ordering::Relaxed).min(total);
                    let width = 30 * n / total;
                    eprint!(
                        "\r[{}{}] {:5.1}/{:.1} MiB",
                        "#".repeat(width as usize),
                        " ".repeat(30 - width as usize),
                        mib(n),
                        mib(total)
                    );
                    if finished {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(200));
                }
                eprint!("\r{}\r", " ".repeat(60));
            })
        });
        Progress { done, handle }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The staging directory, removed however the import ends, except by a kill. It holds `lock`,
/// locked (flock) for as long as the import runs: the kernel drops the lock when the process
/// dies however it dies, so the next import can tell a dead run's directory from a live one
/// (two imports into one tree at once each have their own) and remove it.
struct Staging {
    dir: PathBuf,
    _lock: Option<fs::File>,
}

const STAGING_PREFIX: &str = ".registrish-import.";

impl Staging {
    fn create(tree: &Path) -> Result<Staging> {
        let dir = tree.join(format!("{STAGING_PREFIX}{}", std::process::id()));
        fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        // From here on, dropping it removes the directory, whatever fails.
        let mut staging = Staging { dir, _lock: None };
        // Locked under another name and then renamed: `lock` is never seen unlocked while the
        // import lives, so no other import can take the directory for a dead one's.
        let new = staging.dir.join("lock.new");
        let lock = fs::File::create(&new)
            .and_then(|f| f.lock().map(|_| f))
            .and_then(|f| fs::rename(&new, staging.dir.join("lock")).map(|_| f))
            .with_context(|| format!("cannot lock {}", staging.dir.display()))?;
        staging._lock = Some(lock);
        Ok(staging)
    }
}

/// Removes what imports killed part-way left in TREE: staging directories whose lock nobody
/// holds. One without a `lock` is being created (or its run died in that instant): left alone.
fn remove_dead_staging(tree: &Path) {
    let Ok(entries) = fs::read_dir(tree) else {
        return;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let named = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(STAGING_PREFIX));
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if named
            && is_dir
            && fs::File::open(dir.join("lock")).is_ok_and(|lock| lock.try_lock().is_ok())
        {
            let _ = fs::remove_dir_all(&dir);
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

pub fn import(req: &Request) -> Result<Report> {
    let source = Source::open(&req.source)?;
    let chosen = select(&source, req)?;
    let graph = walk(&source, &chosen)?;

    let created_tree = !req.tree.exists();
    fs::create_dir_all(&req.tree)
        .with_context(|| format!("cannot create {}", req.tree.display()))?;
    let tree = fs::canonicalize(&req.tree)?;
    let repo = tree.join("v2").join(&req.name);
    remove_dead_staging(&tree);
    let result = (|| -> Result<Report> {
        let staging = Staging::create(&tree)?;
        // The tree lock (prepare's, and rm's and gc's) from the first look at what the tree
        // holds to the last rename: unlocked, a gc could delete a blob this import found
        // present and skipped, before the tag that needs it lands.
        fs::create_dir_all(tree.join("v2"))
            .with_context(|| format!("cannot create {}", tree.join("v2").display()))?;
        let _tree_lock = crate::prepare::lock_tree(&tree)?;
        let mut report = Report {
            images: chosen.len(),
            ..Report::default()
        };

        // Phase 1: stage what the tree lacks, verifying every byte.
        let exists = |p: &Path| p.symlink_metadata().is_ok();
        let mut jobs: Vec<(String, Bytes, PathBuf)> = Vec::new();
        for (digest, bytes) in &graph.blobs {
            if exists(&repo.join("blobs").join(digest)) {
                report.present += 1;
            } else {
                jobs.push((
                    digest.clone(),
                    bytes.clone(),
                    repo.join("blobs").join(digest),
                ));
            }
        }
        for (digest, _, bytes) in &graph.manifests {
            if exists(&repo.join("manifests").join(digest)) {
                report.present += 1;
            } else {
                jobs.push((
                    digest.clone(),
                    bytes.clone(),
                    repo.join("manifests").join(digest),
                ));
            }
        }
        let total: u64 = jobs.iter().map(|(_, b, _)| source.len(b)).sum();
        let counter = Arc::new(AtomicU64::new(0));
        let progress = Progress::start(counter.clone(), total);
        let staged = parallel::map(&jobs, |(digest, bytes, _)| {
            let name = digest.replace(':', "-");
            stage(&source, bytes, digest, &staging.dir.join(name), &counter)
        });
        drop(progress);
        let mut moves = Vec::new();
        for ((_, _, dest), s) in jobs.iter().zip(staged) {
            match s? {
                Staged::Linked(p) => {
                    report.linked += 1;
                    moves.push((p, dest.clone()));
                }
                Staged::Copied(p, n) => {
                    report.copied += 1;
                    report.bytes_written += n;
                    moves.push((p, dest.clone()));
                }
            }
        }
        // Tags: rewritten only when their bytes change.
        let mut tag_moves = Vec::new();
        let by_digest: BTreeMap<&str, &Vec<u8>> = graph
            .manifests
            .iter()
            .map(|(d, b, _)| (d.as_str(), b))
            .collect();
        for (digest, tags) in &chosen {
            for tag in tags {
                let dest = repo.join("manifests").join(tag);
                let Some(bytes) = by_digest.get(digest.as_str()).copied() else {
                    bail!("{}: image {digest} was not read", source.path.display());
                };
                report.tags.push(tag.clone());
                if fs::read(&dest).ok().as_ref() == Some(bytes) {
                    continue;
                }
                let tmp = staging.dir.join(format!("tag-{tag}"));
                fs::write(&tmp, bytes)?;
                report.bytes_written += bytes.len() as u64;
                tag_moves.push((tmp, dest));
            }
        }

        // Phase 2: into place, in an order that never exposes a broken image.
        if !moves.is_empty() || !tag_moves.is_empty() {
            fs::create_dir_all(repo.join("blobs"))?;
            fs::create_dir_all(repo.join("manifests"))?;
        }
        for (from, to) in moves.into_iter().chain(tag_moves) {
            fs::rename(&from, &to)
                .with_context(|| format!("cannot move {} into place", to.display()))?;
        }
        Ok(report)
    })();
    if result.is_err() && created_tree {
        let _ = fs::remove_dir_all(&tree);
    }
    result
}

#[cfg(test)]
mod tests {
    #[test]
    fn tags_from_ref_names() {
        assert_eq!(super::tag_of("latest").as_deref(), Some("latest"));
        assert_eq!(
            super::tag_of("docker.io/library/busybox:1.36").as_deref(),
            Some("1.36")
        );
        assert_eq!(super::tag_of("localhost:5000/x").as_deref(), None);
        assert_eq!(super::tag_of("x;y"), None);
    }
}
