//! The registry model every host renders from: repositories, tags, manifests
//! by digest and blobs, plus the problems found while building it.
//!
//! Everything in here has passed the OCI grammar and parsed as a manifest of a
//! known type; renderers never see a rejected name. Collections are ordered
//! (BTreeMap) so every output is byte-for-byte deterministic.

use crate::media::{MediaType, Reference};
use crate::problem::Problem;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Default)]
pub struct Registry {
    /// Canonical absolute path of TREE.
    pub root: PathBuf,
    pub repositories: BTreeMap<String, Repository>,
    pub problems: Vec<Problem>,
    /// Regular files under `v2/` other than the ones `prepare` writes.
    pub file_count: u64,
    /// In-tree symlinks the model serves (relative to TREE): some hosts can't.
    pub symlinks: Vec<String>,
}

#[derive(Debug, Default)]
pub struct Repository {
    pub name: String,
    /// Tag -> digest of the manifest the tag file holds.
    pub tags: BTreeMap<String, String>,
    /// Every manifest known by digest: from tag files and `manifests/sha256:*` files.
    pub manifests: BTreeMap<String, Manifest>,
    /// Blob digest -> size in bytes (when the scan stat'ed blobs), for blob files present.
    pub blobs: BTreeMap<String, Option<u64>>,
}

#[derive(Debug, Clone)]
pub struct Manifest {
    pub media_type: MediaType,
    pub size: u64,
    pub references: std::sync::Arc<[Reference]>,
    /// Whether `manifests/<digest>` exists with the right bytes (prepare creates it).
    pub digest_file: bool,
    /// The first tag holding these bytes, when no digest file exists yet.
    pub first_tag: Option<String>,
}

impl Registry {
    pub fn manifest_count(&self) -> usize {
        self.repositories.values().map(|r| r.manifests.len()).sum()
    }

    pub fn tag_count(&self) -> usize {
        self.repositories.values().map(|r| r.tags.len()).sum()
    }

    pub fn has_errors(&self) -> bool {
        self.problems
            .iter()
            .any(|p| p.severity == crate::problem::Severity::Error)
    }
}

impl Repository {
    /// Where a manifest's bytes live, relative to TREE: its digest file, or
    /// the tag file prepare will link it from.
    pub fn manifest_source(&self, digest: &str) -> String {
        let reference = match self
            .manifests
            .get(digest)
            .and_then(|m| m.first_tag.as_deref())
        {
            Some(tag) if !self.manifests[digest].digest_file => tag,
            _ => digest,
        };
        format!("v2/{}/manifests/{reference}", self.name)
    }

    pub fn blob_path(&self, digest: &str) -> String {
        format!("v2/{}/blobs/{digest}", self.name)
    }

    /// Tags whose lowercase forms collide: hosts that match paths
    /// case-insensitively (nginx map keys, Netlify, Cloudflare `_headers`)
    /// cannot tell them apart by a plain key.
    pub fn case_colliding_tags(&self) -> std::collections::BTreeSet<&str> {
        let mut by_lower: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for tag in self.tags.keys() {
            by_lower
                .entry(tag.to_ascii_lowercase())
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
