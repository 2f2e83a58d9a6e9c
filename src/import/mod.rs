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

mod referrers;
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
    /// Referrers and cosign tags' manifests brought in with their subjects.
    pub referrers: usize,
    pub tags: Vec<String>,
    /// What the source lacks that it says exists (a fallback tag's referrer), left out.
    pub notes: Vec<String>,
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

/// Which images, under which tags (`tops`), and whether everything in the source comes along:
/// no REF and no `--tag`, so every entry of index.json is imported under its own name.
struct Selection {
    tops: BTreeMap<String, BTreeSet<String>>,
    everything: bool,
}

/// Picks the images: the ones REF names, else every entry that is an image of its own (not a
/// fallback or cosign tag, nor a referrer: those come with their subject, see [`referrers`]).
fn select(source: &Source, req: &Request, found: &referrers::Found) -> Result<Selection> {
    let available = || {
        source
            .images
            .iter()
            .filter_map(|i| i.ref_name.clone())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let own_tag = |i: &source::Image| i.ref_name.as_deref().and_then(tag_of);
    let chosen: Vec<&source::Image> = match &req.reference {
        Some(r) if referrers::fallback_subject(r).is_some() => bail!(
            "{r:?} is a referrers fallback tag: prepare writes it from the referrers in the tree; import its subject, and the referrers it lists come along"
        ),
        Some(r) => {
            let found: Vec<_> = source
                .images
                .iter()
                .filter(|i| {
                    i.ref_name.as_deref() == Some(r.as_str()) || own_tag(i).as_deref() == Some(r)
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
        None => {
            let images: Vec<_> = source
                .images
                .iter()
                .filter(|i| !found.is_attached(i, own_tag(i).as_deref()))
                .collect();
            if req.tags.is_empty() {
                images
                    .into_iter()
                    .filter(|i| own_tag(i).is_some())
                    .collect()
            } else {
                // One image to tag: an index's platform manifests, listed in index.json too
                // (oras-go lists every manifest it writes), are part of it, not images of
                // their own.
                let tops: BTreeMap<String, BTreeSet<String>> = images
                    .iter()
                    .map(|i| (i.digest.clone(), BTreeSet::new()))
                    .collect();
                let children = walk(source, &tops)?.children;
                images
                    .into_iter()
                    .filter(|i| !children.contains(&i.digest))
                    .collect()
            }
        }
    };
    let everything = req.reference.is_none() && req.tags.is_empty();
    if chosen.is_empty() && (!everything || source.images.is_empty()) {
        bail!("{} holds no image", source.path.display());
    }
    let digests: BTreeSet<&str> = chosen.iter().map(|i| i.digest.as_str()).collect();
    let mut tops: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    if !req.tags.is_empty() {
        if digests.len() > 1 {
            bail!(
                "{} holds {} images ({}); pick one with SOURCE:REF to give it tags, or import them all under their own names without a tag",
                source.path.display(),
                digests.len(),
                available()
            );
        }
        tops.insert(chosen[0].digest.clone(), req.tags.iter().cloned().collect());
        return Ok(Selection { tops, everything });
    }
    for image in chosen {
        let Some(tag) = own_tag(image) else {
            bail!(
                "{} image {} has no tag to use: give one with --name {}:TAG",
                source.kind.describe(),
                image.digest,
                req.name
            );
        };
        tops.entry(image.digest.clone()).or_default().insert(tag);
    }
    Ok(Selection { tops, everything })
}

/// Imports what a source holds that nothing chosen reaches, when everything in it is
/// imported: cosign tags and referrers whose subject is not there (still imported, under their
/// names; `check` reports a referrer whose subject is missing), and refuses an untagged image
/// nothing reaches, which no name would reach in the tree either.
fn the_rest(
    source: &Source,
    req: &Request,
    found: &referrers::Found,
    graph: &mut Graph,
    attached: &mut referrers::Attached,
) -> Result<()> {
    for image in &source.images {
        let tag = image.ref_name.as_deref().and_then(tag_of);
        match tag {
            Some(t) if referrers::fallback_subject(&t).is_some() => {}
            Some(t) if referrers::cosign_subject(&t).is_some() => {
                if !graph.seen.contains(&image.digest) {
                    attached.count += 1;
                    visit(source, &image.digest, graph)?;
                }
                attached
                    .tags
                    .entry(image.digest.clone())
                    .or_default()
                    .insert(t);
            }
            Some(_) => {}
            None if graph.seen.contains(&image.digest) => {}
            None if found.is_referrer(&image.digest) => {
                attached.count += 1;
                visit(source, &image.digest, graph)?;
            }
            None => bail!(
                "{} image {} has no tag to use: give one with --name {}:TAG",
                source.kind.describe(),
                image.digest,
                req.name
            ),
        }
    }
    Ok(())
}

pub(super) struct Graph {
    /// Children before parents.
    manifests: Vec<(String, Vec<u8>, Bytes)>,
    blobs: BTreeMap<String, Bytes>,
    /// Every manifest visited.
    seen: BTreeSet<String>,
    /// The manifests some visited index lists.
    children: BTreeSet<String>,
}

/// Every manifest, config and layer reachable from the chosen images, with
/// each manifest's bytes checked against its digest.
fn walk(source: &Source, tops: &BTreeMap<String, BTreeSet<String>>) -> Result<Graph> {
    let mut graph = Graph {
        manifests: Vec::new(),
        blobs: BTreeMap::new(),
        seen: BTreeSet::new(),
        children: BTreeSet::new(),
    };
    for top in tops.keys() {
        visit(source, top, &mut graph)?;
    }
    Ok(graph)
}

fn visit(source: &Source, digest: &str, graph: &mut Graph) -> Result<()> {
    if !graph.seen.insert(digest.to_string()) {
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
            Role::Child => {
                graph.children.insert(referenced.clone());
                visit(source, &referenced, graph)?
            }
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

/// Whether a source file may be linked into the tree: a link shares its mode, and a web server
/// running as its own user (Apache's `www-data`, nginx's workers) answers 403 for a file only
/// its owner can read. Layout writers make such files: `cosign save` and `regctl image copy`
/// leave blobs 0600 (seen here with cosign 2.6.5 and regctl 0.11.7). Those are copied, under
/// the umask like every file the tree gets.
fn readable_by_all(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o444 == 0o444)
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
        && readable_by_all(path)
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
    let found = referrers::find(&source)?;
    let selection = select(&source, req, &found)?;
    let mut graph = walk(&source, &selection.tops)?;
    let mut attached = referrers::Attached::default();
    referrers::attach(&source, &found, &mut graph, &mut attached)?;
    if selection.everything {
        the_rest(&source, req, &found, &mut graph, &mut attached)?;
        // What came last can have referrers too.
        referrers::attach(&source, &found, &mut graph, &mut attached)?;
    }
    let mut chosen = selection.tops.clone();
    for (digest, tags) in &attached.tags {
        chosen
            .entry(digest.clone())
            .or_default()
            .extend(tags.iter().cloned());
    }

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
            images: selection.tops.len(),
            referrers: attached.count,
            notes: attached.notes.clone(),
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
    use super::{Request, import};
    use serde_json::{Value, json};
    use std::collections::BTreeSet;
    use std::fs;
    use std::path::{Path, PathBuf};

    const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

    fn temp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("registrish-import-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// An OCI layout written the way the tools do, object by object.
    struct Layout(PathBuf);

    impl Layout {
        fn new(dir: &Path) -> Layout {
            let root = dir.join("layout");
            fs::create_dir_all(root.join("blobs/sha256")).unwrap();
            fs::write(root.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
            Layout(root)
        }

        /// Stores `bytes` under their digest: a descriptor of them.
        fn put(&self, media_type: &str, bytes: &[u8]) -> Value {
            let digest = crate::digest::of_bytes(bytes);
            fs::write(self.0.join("blobs/sha256").join(digest.hex()), bytes).unwrap();
            json!({"mediaType": media_type, "digest": digest.to_string(), "size": bytes.len()})
        }

        /// An image manifest over a config and a layer of its own.
        fn image(&self, name: &str) -> Value {
            let config = self.put(
                "application/vnd.oci.image.config.v1+json",
                format!(r#"{{"architecture":"amd64","os":"linux","n":"{name}"}}"#).as_bytes(),
            );
            let layer = self.put("application/vnd.oci.image.layer.v1.tar", name.as_bytes());
            let m = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [layer]});
            self.put(OCI_MANIFEST, &serde_json::to_vec(&m).unwrap())
        }

        /// An artifact (OCI 1.1) attached to `subject`, with a layer of its own.
        fn referrer(&self, subject: &Value, what: &str) -> Value {
            let empty = self.put("application/vnd.oci.empty.v1+json", b"{}");
            let layer = self.put("application/x-payload", what.as_bytes());
            let m = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "artifactType": format!("application/x-{what}"), "config": empty,
                "layers": [layer], "subject": subject});
            self.put(OCI_MANIFEST, &serde_json::to_vec(&m).unwrap())
        }

        /// A cosign signature manifest of the legacy scheme: no subject, the payload a layer.
        fn signature(&self, subject: &Value) -> Value {
            let config = self.put("application/vnd.oci.image.config.v1+json", b"{\"sig\":1}");
            let payload =
                json!({"critical": {"image": {"docker-manifest-digest": subject["digest"]}}});
            let layer = self.put(
                "application/vnd.dev.cosign.simplesigning.v1+json",
                &serde_json::to_vec(&payload).unwrap(),
            );
            let m = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [layer]});
            self.put(OCI_MANIFEST, &serde_json::to_vec(&m).unwrap())
        }

        /// A fallback tag's index (distribution-spec 1.1) listing `referrers`.
        fn fallback_index(&self, referrers: &[&Value]) -> Value {
            let m = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": referrers});
            self.put(
                "application/vnd.oci.image.index.v1+json",
                &serde_json::to_vec(&m).unwrap(),
            )
        }

        /// index.json: each descriptor with its annotations.
        fn index(&self, entries: &[(&Value, Value)]) {
            let manifests: Vec<Value> = entries
                .iter()
                .map(|(d, annotations)| {
                    let mut d = (*d).clone();
                    if annotations.as_object().is_some_and(|a| !a.is_empty()) {
                        d["annotations"] = annotations.clone();
                    }
                    d
                })
                .collect();
            let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests});
            fs::write(
                self.0.join("index.json"),
                serde_json::to_vec(&index).unwrap(),
            )
            .unwrap();
        }
    }

    fn tagged(tag: &str) -> Value {
        json!({"org.opencontainers.image.ref.name": tag})
    }

    fn digest_of(d: &Value) -> &str {
        d["digest"].as_str().unwrap()
    }

    fn fallback(d: &Value) -> String {
        format!("sha256-{}", digest_of(d).trim_start_matches("sha256:"))
    }

    /// Imports `source` into `tree` as `name` (with `--tag`s), as `import` does before prepare.
    fn run(source: &str, name: &str, tags: &[&str], tree: &Path) -> anyhow::Result<super::Report> {
        let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        import(&Request::parse(source, name, &tags, tree)?)
    }

    /// The tags and the digest manifests of `v2/<name>`, and whether each blob is there.
    fn stored(tree: &Path, name: &str) -> (BTreeSet<String>, BTreeSet<String>) {
        let mut tags = BTreeSet::new();
        let mut digests = BTreeSet::new();
        for e in fs::read_dir(tree.join("v2").join(name).join("manifests")).unwrap() {
            let n = e.unwrap().file_name().to_string_lossy().into_owned();
            if n.starts_with("sha256:") {
                digests.insert(n);
            } else {
                tags.insert(n);
            }
        }
        (tags, digests)
    }

    /// Every object of a manifest's graph (the manifest, its config and layers) is in the tree,
    /// byte for byte.
    fn assert_whole(layout: &Layout, tree: &Path, name: &str, manifest: &Value) {
        let digest = digest_of(manifest);
        let bytes = fs::read(layout.0.join("blobs/sha256").join(&digest[7..])).unwrap();
        let repo = tree.join("v2").join(name);
        assert_eq!(
            fs::read(repo.join("manifests").join(digest)).unwrap(),
            bytes
        );
        let parsed: Value = serde_json::from_slice(&bytes).unwrap();
        let blobs = parsed["layers"]
            .as_array()
            .unwrap()
            .iter()
            .chain([&parsed["config"]]);
        for b in blobs {
            let d = digest_of(b);
            assert_eq!(
                fs::read(repo.join("blobs").join(d)).unwrap(),
                fs::read(layout.0.join("blobs/sha256").join(&d[7..])).unwrap(),
                "{d} of {digest}"
            );
        }
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    /// oras-go's layout store lists every manifest it writes in index.json, untagged; a
    /// referrer of a referrer (a signature of an SBOM) can be a bare blob. Picked by REF or
    /// imported whole, the image comes with both, and an untagged referrer is no image
    /// without a tag. A referrer of an image not imported stays out.
    #[test]
    fn referrers_listed_untagged_or_only_stored_come_with_their_subject() {
        let dir = temp("oras");
        let layout = Layout::new(&dir);
        let image = layout.image("app");
        let other = layout.image("other");
        let sbom = layout.referrer(&image, "sbom");
        let sbom_sig = layout.referrer(&sbom, "sig");
        let of_other = layout.referrer(&other, "sbom");
        layout.index(&[
            (&image, tagged("v1")),
            (&other, tagged("other")),
            (&sbom, json!({})),
            (&of_other, json!({})),
        ]);
        let tree = dir.join("tree");
        let source = format!("{}:v1", layout.0.display());
        let report = run(&source, "team/app", &[], &tree).unwrap();
        assert_eq!((report.images, report.referrers), (1, 2));
        let (tags, digests) = stored(&tree, "team/app");
        assert_eq!(tags, set(&["v1"]));
        assert_eq!(
            digests,
            set(&[digest_of(&image), digest_of(&sbom), digest_of(&sbom_sig)])
        );
        for m in [&image, &sbom, &sbom_sig] {
            assert_whole(&layout, &tree, "team/app", m);
        }

        // Everything: both images, each with its referrers; no error for the untagged ones.
        let all = dir.join("all");
        let report = run(layout.0.to_str().unwrap(), "team/all", &[], &all).unwrap();
        assert_eq!((report.images, report.referrers), (2, 3));
        let (tags, digests) = stored(&all, "team/all");
        assert_eq!(tags, set(&["other", "v1"]));
        assert_eq!(digests.len(), 5);

        // One image tagged anew: the referrers are not images of their own.
        let one = dir.join("one");
        fs::remove_dir_all(layout.0.join("blobs/sha256").join(&digest_of(&other)[7..])).ok();
        fs::remove_file(layout.0.join("blobs/sha256").join(&digest_of(&other)[7..])).ok();
        layout.index(&[(&image, json!({})), (&sbom, json!({}))]);
        let report = run(layout.0.to_str().unwrap(), "team/one:1.0", &[], &one).unwrap();
        assert_eq!((report.images, report.referrers), (1, 2));
        assert_eq!(stored(&one, "team/one").0, set(&["1.0"]));
        let _ = fs::remove_dir_all(&dir);
    }

    /// regclient's `ocidir` keeps referrers as bare blobs and lists them in the fallback tag
    /// `sha256-<hex>`: the referrers come, the tag does not (prepare computes it, from every
    /// referrer in the tree), and what it lists that the layout lacks is named.
    #[test]
    fn a_fallback_tag_brings_its_referrers_and_prepare_writes_the_tag() {
        let dir = temp("fallback");
        let layout = Layout::new(&dir);
        let image = layout.image("app");
        let sig = layout.referrer(&image, "sig");
        let mut gone = sig.clone();
        gone["digest"] = json!(format!("sha256:{}", "0".repeat(64)));
        let index = layout.fallback_index(&[&sig, &gone]);
        layout.index(&[(&image, tagged("v1")), (&index, tagged(&fallback(&image)))]);
        let tree = dir.join("tree");
        let picked = format!("{}:{}", layout.0.display(), fallback(&image));
        let err = run(&picked, "app", &[], &tree).unwrap_err();
        assert!(
            err.to_string().contains("is a referrers fallback tag"),
            "{err}"
        );
        assert!(!tree.exists());
        let report = run(layout.0.to_str().unwrap(), "app", &[], &tree).unwrap();
        assert_eq!((report.images, report.referrers), (1, 1));
        assert_eq!(
            report.notes,
            vec![format!(
                "the referrers fallback tag of {} lists {}, which {} lacks: left out",
                digest_of(&image),
                digest_of(&gone),
                layout.0.display()
            )]
        );
        let (tags, digests) = stored(&tree, "app");
        assert_eq!(tags, set(&["v1"]));
        assert_eq!(digests, set(&[digest_of(&image), digest_of(&sig)]));
        assert_whole(&layout, &tree, "app", &sig);

        // prepare's fallback tag lists the referrer the tree holds, and nothing is foreign.
        let registry = crate::scan::scan(&tree, crate::scan::Options::default()).unwrap();
        crate::prepare::prepare(&registry).unwrap();
        let registry = crate::scan::scan(&tree, crate::scan::Options::default()).unwrap();
        assert!(
            registry
                .problems
                .iter()
                .all(|p| p.kind != crate::problem::Kind::ForeignFallbackTag),
            "{:?}",
            registry.problems
        );
        let written: Value = serde_json::from_slice(
            &fs::read(tree.join("v2/app/manifests").join(fallback(&image))).unwrap(),
        )
        .unwrap();
        let listed: Vec<&str> = written["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(digest_of)
            .collect();
        assert_eq!(listed, vec![digest_of(&sig)]);
        assert_eq!(written["manifests"][0]["artifactType"], "application/x-sig");
        let _ = fs::remove_dir_all(&dir);
    }

    /// cosign's legacy tags (`sha256-<hex>.sig`, `.att`, `.sbom`) come with the image they
    /// name, as tags, each with its graph; one naming an image not imported comes only when
    /// everything is imported.
    #[test]
    fn cosign_tags_come_with_their_image_as_tags() {
        let dir = temp("cosign-tags");
        let layout = Layout::new(&dir);
        let image = layout.image("app");
        let other = layout.image("other");
        let sig = layout.signature(&image);
        let att = layout.signature(&sig);
        let sbom = layout.referrer(&other, "sbom-ish");
        let other_sig = layout.signature(&other);
        let image_tag = |d: &Value, suffix: &str| format!("{}.{suffix}", fallback(d));
        layout.index(&[
            (&image, tagged("v1")),
            (&other, tagged("other")),
            (&sig, tagged(&image_tag(&image, "sig"))),
            (&att, tagged(&image_tag(&image, "att"))),
            (&sbom, tagged(&image_tag(&image, "sbom"))),
            (&other_sig, tagged(&image_tag(&other, "sig"))),
        ]);
        let tree = dir.join("tree");
        let report = run(&format!("{}:v1", layout.0.display()), "app", &[], &tree).unwrap();
        assert_eq!((report.images, report.referrers), (1, 3));
        let (tags, digests) = stored(&tree, "app");
        let want = [
            "v1".to_string(),
            image_tag(&image, "sig"),
            image_tag(&image, "att"),
            image_tag(&image, "sbom"),
        ];
        assert_eq!(tags, want.iter().cloned().collect());
        for (tag, m) in want[1..].iter().zip([&sig, &att, &sbom]) {
            assert_eq!(
                fs::read(tree.join("v2/app/manifests").join(tag)).unwrap(),
                fs::read(tree.join("v2/app/manifests").join(digest_of(m))).unwrap()
            );
            assert_whole(&layout, &tree, "app", m);
        }
        // The sbom-ish artifact's own subject (`other`) is not imported: only the tag brings it.
        assert!(!digests.contains(digest_of(&other)));
        let mut report_tags = report.tags.clone();
        report_tags.sort();
        let mut want_sorted = want.to_vec();
        want_sorted.sort();
        assert_eq!(report_tags, want_sorted);

        let all = dir.join("all");
        run(layout.0.to_str().unwrap(), "app", &[], &all).unwrap();
        assert!(stored(&all, "app").0.contains(&image_tag(&other, "sig")));
        let _ = fs::remove_dir_all(&dir);
    }

    /// `cosign save` writes no ref names: its entries say what they are in a `kind`
    /// annotation. The image takes the tag given; its signatures and attestations the tags
    /// cosign pushes them under. Without a tag the image has no name, and that is an error.
    #[test]
    fn cosign_save_layouts_become_the_cosign_tags() {
        let dir = temp("cosign-save");
        let layout = Layout::new(&dir);
        let image = layout.image("app");
        let sigs = layout.signature(&image);
        let atts = layout.signature(&sigs);
        let kind = |k: &str| json!({"kind": format!("dev.cosignproject.cosign/{k}")});
        layout.index(&[
            (&image, kind("image")),
            (&sigs, kind("sigs")),
            (&atts, kind("atts")),
        ]);
        let tree = dir.join("tree");
        let report = run(layout.0.to_str().unwrap(), "app:1.0", &[], &tree).unwrap();
        assert_eq!((report.images, report.referrers), (1, 2));
        let (tags, _) = stored(&tree, "app");
        let sig_tag = format!("{}.sig", fallback(&image));
        let att_tag = format!("{}.att", fallback(&image));
        assert_eq!(tags, set(&["1.0", &sig_tag, &att_tag]));
        for (tag, m) in [(&sig_tag, &sigs), (&att_tag, &atts)] {
            assert_eq!(
                fs::read(tree.join("v2/app/manifests").join(tag)).unwrap(),
                fs::read(layout.0.join("blobs/sha256").join(&digest_of(m)[7..])).unwrap()
            );
            assert_whole(&layout, &tree, "app", m);
        }
        let untagged = run(layout.0.to_str().unwrap(), "app", &[], &dir.join("none")).unwrap_err();
        assert!(
            untagged.to_string().contains("has no tag to use"),
            "{untagged}"
        );
        assert!(!dir.join("none").exists());

        // Two images: whose signatures these are is not known.
        let second = layout.image("second");
        layout.index(&[
            (&image, kind("image")),
            (&second, kind("image")),
            (&sigs, kind("sigs")),
        ]);
        let err = run(layout.0.to_str().unwrap(), "app:1.0", &[], &dir.join("two")).unwrap_err();
        assert!(
            err.to_string().contains("belongs to no single image"),
            "{err}"
        );
        let _ = fs::remove_dir_all(&dir);
    }

    /// A blob only its owner can read (cosign save and regctl write them so) is copied, not
    /// linked: the link would share its mode and a web server's user could not read it.
    #[test]
    fn a_source_file_only_its_owner_reads_is_copied() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = temp("modes");
        let layout = Layout::new(&dir);
        let image = layout.image("app");
        layout.index(&[(&image, tagged("v1"))]);
        let manifest: Value = serde_json::from_slice(
            &fs::read(layout.0.join("blobs/sha256").join(&digest_of(&image)[7..])).unwrap(),
        )
        .unwrap();
        let (private, public) = (&manifest["layers"][0], &manifest["config"]);
        let at = |d: &Value| layout.0.join("blobs/sha256").join(&digest_of(d)[7..]);
        fs::set_permissions(at(private), fs::Permissions::from_mode(0o600)).unwrap();
        let tree = dir.join("tree");
        let report = run(layout.0.to_str().unwrap(), "app", &[], &tree).unwrap();
        assert_eq!((report.linked, report.copied), (2, 1));
        let stored =
            |d: &Value| fs::metadata(tree.join("v2/app/blobs").join(digest_of(d))).unwrap();
        assert_ne!(
            stored(private).ino(),
            fs::metadata(at(private)).unwrap().ino()
        );
        assert_eq!(
            stored(public).ino(),
            fs::metadata(at(public)).unwrap().ino()
        );
        assert_eq!(fs::metadata(at(private)).unwrap().mode() & 0o777, 0o600);
        // What the umask gives a new file, as every file prepare writes.
        let fresh = dir.join("fresh");
        fs::write(&fresh, b"x").unwrap();
        assert_eq!(
            stored(private).mode() & 0o777,
            fs::metadata(&fresh).unwrap().mode() & 0o777
        );
        let _ = fs::remove_dir_all(&dir);
    }

    /// Docker 25+'s `docker save` is an OCI layout in a tar: its referrers are found the same.
    #[test]
    fn referrers_in_a_tarred_layout() {
        let dir = temp("tarred");
        let layout = Layout::new(&dir);
        let image = layout.image("app");
        let sig = layout.referrer(&image, "sig");
        layout.index(&[(&image, tagged("v1"))]);
        let archive = dir.join("layout.tar");
        let mut builder = tar::Builder::new(fs::File::create(&archive).unwrap());
        builder.append_dir_all(".", &layout.0).unwrap();
        builder.finish().unwrap();
        drop(builder);
        let tree = dir.join("tree");
        let report = run(archive.to_str().unwrap(), "app", &[], &tree).unwrap();
        assert_eq!((report.images, report.referrers), (1, 1));
        assert_eq!(
            stored(&tree, "app").1,
            set(&[digest_of(&image), digest_of(&sig)])
        );
        let _ = fs::remove_dir_all(&dir);
    }

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
