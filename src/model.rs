//! The registry model every host renders from: repositories, tags, manifests
//! by digest and blobs, the problems every host shares, and the facts about
//! the tree that hosts judge for themselves ([`Facts`]).
//!
//! Everything in here has passed the OCI grammar (the keys are
//! [`Name`], [`Tag`] and [`Digest`], which only the grammar makes) and
//! parsed as a manifest of a known type; renderers never see a rejected name.
//! Collections are ordered (sorted) so every output is byte-for-byte
//! deterministic.

use crate::grammar::{Digest, Name, Tag};
use crate::layout;
use crate::media::{Artifact, MediaType, Reference};
use crate::problem::Problem;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// A repository's tags, manifests and blobs: a sorted vector, not a BTreeMap. At a million
/// tags most repositories hold a handful of each, and a BTreeMap's 11-entry leaf node per map
/// was most of the model (heaptrack at 400,000 tags: 79 MB of `manifests` leaves holding five
/// entries each; issue 16). Lookups are a binary search; inserting a new key is O(n), so
/// whatever adds many keys at once builds a BTreeMap or a Vec and converts (`extend` and
/// `collect` sort once).
pub(crate) type Map<K, V> = litemap::LiteMap<K, V>;

/// A BTreeMap's entries as a [`Map`], allocated at its exact size.
pub(crate) fn compact<K: Ord, V>(map: BTreeMap<K, V>) -> Map<K, V> {
    let mut entries = Vec::with_capacity(map.len());
    entries.extend(map);
    // A BTreeMap iterates in key order with each key once: the store's invariant.
    Map::from_sorted_store_unchecked(entries)
}

/// The key `map` holds equal to `key`, borrowed from the map (BTreeMap's `get_key_value`).
pub(crate) fn held_key<'m, K: Ord, V>(map: &'m Map<K, V>, key: &K) -> Option<&'m K> {
    let i = map.find_index(key).ok()?;
    map.get_indexed(i).map(|(k, _)| k)
}

#[derive(Debug, Default)]
pub(crate) struct Registry {
    /// Canonical absolute path of TREE.
    pub root: PathBuf,
    pub repositories: BTreeMap<Name, Repository>,
    /// What no host can serve: reported by every command.
    pub problems: Vec<Problem>,
    pub facts: Facts,
    /// Files an earlier prepare wrote that the tree no longer needs, relative to TREE: the
    /// referrers index of a subject nothing refers to any more, and its fallback tag where
    /// the tag still holds that index. `prepare` removes them.
    pub obsolete: Vec<String>,
}

/// What the scan saw that only some hosts care about: each host turns these
/// into its own problems (`Host::problems`).
#[derive(Debug, Default)]
pub(crate) struct Facts {
    /// Regular files under `v2/` other than the ones `prepare` writes.
    pub file_count: u64,
    /// Every symlink under `v2/` in a manifest or blob position, relative to TREE.
    pub symlinks: Vec<Symlink>,
    /// Manifest files opened and read (hard links of one file count once).
    pub manifest_reads: usize,
    /// Files and directories under `v2/` whose name starts with `.`, relative to TREE:
    /// never served by any host.
    pub dot_files: Vec<String>,
    /// Referrers indexes found on disk (`v2/<name>/referrers/sha256:<hex>`, regular files),
    /// relative to TREE: the ones no manifest asks for any more are prepare's to remove.
    pub referrers_files: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SymlinkKind {
    /// Resolves to a regular file inside TREE: still left out (nothing is served through
    /// a symlink), though it leads nowhere unsafe.
    Inside,
    /// Leads outside TREE: never followed, left out.
    Outside,
    /// Cannot be resolved: left out.
    Dangling,
    /// Points at a directory: not followed.
    Directory,
}

#[derive(Debug, Clone)]
pub(crate) struct Symlink {
    /// Relative to TREE, `/`-separated.
    pub path: String,
    pub kind: SymlinkKind,
}

impl Symlink {
    /// Whether a host that follows links could walk through this one to files under it: a
    /// link to a directory, or one where the layout has no file (a namespace, a repository's
    /// `blobs/`), whatever it points at now.
    pub fn is_passable(&self) -> bool {
        self.kind == SymlinkKind::Directory
            || !(self.path.contains("/manifests/") || self.path.contains("/blobs/"))
    }
}

#[derive(Debug)]
pub(crate) struct Repository {
    pub name: Name,
    /// Tag -> digest of the manifest the tag file holds.
    pub tags: Map<Tag, Digest>,
    /// Every manifest known by digest: from tag files and `manifests/sha256:*` files.
    pub manifests: Map<Digest, Manifest>,
    /// Blob digest -> size in bytes (when the scan stat'ed blobs), for blob files present.
    pub blobs: Map<Digest, Option<u64>>,
    /// Subject digest -> its referrers index, for every subject some manifest of this
    /// repository names (the subject itself need not be here: a referrer may come first).
    pub referrers: BTreeMap<Digest, Referrers>,
}

/// A subject's referrers index, as `prepare` writes it under `referrers/` and, when the tag
/// is its own, as the fallback tag `sha256-<hex>`.
#[derive(Debug, Clone)]
pub(crate) struct Referrers {
    pub bytes: std::sync::Arc<[u8]>,
    pub digest: Digest,
    /// Whether the fallback tag is prepare's to write: absent, already these bytes, or the
    /// bytes prepare wrote last time. A tag with anyone else's content is left alone.
    pub fallback: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Manifest {
    pub media_type: MediaType,
    pub size: u64,
    pub references: std::sync::Arc<[Reference]>,
    /// `Some` for a manifest with a `subject`: what its subject's referrers index says of it.
    pub artifact: Option<std::sync::Arc<Artifact>>,
    /// Whether `manifests/<digest>` exists with the right bytes (prepare creates it).
    pub digest_file: bool,
    /// The first tag holding these bytes, when no digest file exists yet.
    pub first_tag: Option<Tag>,
}

impl Manifest {
    /// The digest of the manifest this one refers to (OCI 1.1 `subject`), if any.
    pub fn subject(&self) -> Option<&Digest> {
        self.references
            .iter()
            .find(|r| r.role == crate::media::Role::Subject)
            .and_then(|r| r.digest.as_ref().ok())
    }
}

impl Facts {
    /// The paths (relative to TREE) of every symlink the scan found, for hosts that leave
    /// symlinked files out of their tables.
    pub fn symlinked(&self) -> std::collections::HashSet<&str> {
        self.symlinks.iter().map(|s| s.path.as_str()).collect()
    }
}

impl Registry {
    pub fn manifest_count(&self) -> usize {
        self.repositories.values().map(|r| r.manifests.len()).sum()
    }

    pub fn tag_count(&self) -> usize {
        self.repositories.values().map(|r| r.tags.len()).sum()
    }

    pub fn blob_count(&self) -> usize {
        self.repositories.values().map(|r| r.blobs.len()).sum()
    }
}

impl Repository {
    pub fn new(name: Name) -> Repository {
        Repository {
            name,
            tags: Map::new(),
            manifests: Map::new(),
            blobs: Map::new(),
            referrers: BTreeMap::new(),
        }
    }

    /// Where a manifest's bytes live, relative to TREE: its digest file, or
    /// the tag file prepare will link it from.
    pub fn manifest_source(&self, digest: &Digest) -> String {
        match self.manifests.get(digest) {
            Some(m) if !m.digest_file => match &m.first_tag {
                Some(tag) => layout::manifest_file(&self.name, tag),
                None => layout::manifest_file(&self.name, digest),
            },
            _ => layout::manifest_file(&self.name, digest),
        }
    }

    pub fn blob_path(&self, digest: &Digest) -> String {
        layout::blob_file(&self.name, digest)
    }

    /// Tags whose lowercase forms collide: hosts that match paths
    /// case-insensitively (nginx map keys, Netlify, Cloudflare `_headers`)
    /// cannot tell them apart by a plain key.
    pub fn case_colliding_tags(&self) -> BTreeSet<&Tag> {
        let mut by_lower: BTreeMap<String, Vec<&Tag>> = BTreeMap::new();
        for tag in self.tags.keys() {
            by_lower
                .entry(tag.as_str().to_ascii_lowercase())
                .or_default()
                .push(tag);
        }
        by_lower
            .into_values()
            .filter(|v| v.len() > 1)
            .flatten()
            .collect()
    }
}
