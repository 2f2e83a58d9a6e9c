//! `prepare`: completes a tree with what static hosts need and nothing else.
//!
//! It adds `manifests/sha256:<hex>` for every tag (containerd HEADs the tag,
//! then GETs the digest), `tags/list` per repository, `v2/_catalog`, the
//! `/v2/` body (`v2/index.html`, which static hosts serve for `/v2/`) and the
//! JSON error bodies under `v2/_errors/`, and for every subject some manifest names (OCI 1.1
//! referrers, issue 15) its referrers index `v2/<name>/referrers/sha256:<hex>`, the fallback tag
//! `sha256-<hex>` with the same bytes (unless that tag holds content prepare did not write) and
//! the empty index `v2/_referrers_empty.json`; an index no manifest asks for any more goes, with
//! its fallback tag where the tag still holds it. Existing user files are never
//! overwritten: a digest file with the wrong bytes is reported, not replaced.
//! Every write is skipped when the bytes are already right, so a second run
//! changes nothing.

use crate::layout;
use crate::model::Registry;
use crate::output::{is_temp_name, write_if_changed};
use crate::problem::Kind;
use crate::routes::{generated_files, missing_digest_files};
use anyhow::{Context, Result};
use std::fs;
use std::path::{Path, PathBuf};

#[derive(Debug, Default)]
pub(crate) struct Report {
    pub linked: usize,
    pub copied: usize,
    pub written: usize,
    pub unchanged: usize,
    pub removed: usize,
}

pub(crate) fn prepare(registry: &Registry) -> Result<Report> {
    let mut report = Report::default();
    for (source, dest) in missing_digest_files(registry) {
        let dest = registry.root.join(dest);
        // The scan resolved in-tree symlinks; link the real file, not the link.
        let source: PathBuf = fs::canonicalize(registry.root.join(&source))
            .with_context(|| format!("cannot resolve {source}"))?;
        if dest.symlink_metadata().is_ok() {
            // Present but not a valid copy: scan reported it; never overwrite.
            continue;
        }
        match fs::hard_link(&source, &dest) {
            Ok(()) => report.linked += 1,
            Err(_) => {
                // Another filesystem, or one without hard links: copy atomically.
                let bytes = fs::read(&source)
                    .with_context(|| format!("cannot read {}", source.display()))?;
                crate::output::write_atomic(&dest, &bytes)?;
                report.copied += 1;
            }
        }
    }
    for (rel, bytes) in generated_files(registry) {
        let path = registry.root.join(&rel);
        refuse_symlinked_parent(&registry.root, &path)?;
        if write_if_changed(&path, &bytes)? {
            report.written += 1;
        } else {
            report.unchanged += 1;
        }
    }
    // Last, once the lists no longer name them. A fallback tag sorts before its subject's
    // index (`manifests/` < `referrers/`), and the scan knows the tag for prepare's only
    // while that index is on disk: a run killed in between finds the rest on the next run.
    for rel in &registry.obsolete {
        let path = registry.root.join(rel);
        refuse_symlinked_parent(&registry.root, &path)?;
        match fs::remove_file(&path) {
            Ok(()) => report.removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot remove {}", path.display())),
        }
    }
    Ok(report)
}

/// One prepare at a time per tree, from its scan to its last write (an exclusive flock on
/// `v2/`, dropped with the file, or by the kernel when the process dies). Two imports into one
/// tree each end with a prepare: unlocked, the one that scanned before the other's tag landed
/// could write its tags/list (or `_catalog`) last, without that tag. Locked, the last prepare to
/// scan sees every tag in place. `None` when `v2/` cannot be opened: the scan says why.
pub(crate) fn lock_tree(tree: &Path) -> Result<Option<fs::File>> {
    let Ok(v2) = fs::File::open(tree.join(layout::V2)) else {
        return Ok(None);
    };
    v2.lock()
        .with_context(|| format!("cannot lock {}", tree.join(layout::V2).display()))?;
    Ok(Some(v2))
}

/// Removes the temp files of prepare runs killed part-way (`.<name>.registrish-tmp.<pid>`,
/// dot-files the scan listed), and their warnings. Called under [`lock_tree`], so no live
/// prepare is writing one.
pub(crate) fn remove_dead_temps(registry: &mut Registry) {
    let root = registry.root.clone();
    let mut removed = Vec::new();
    registry.facts.dot_files.retain(|rel| {
        let name = rel.rsplit('/').next().unwrap_or_default();
        let path = root.join(rel);
        let dead = is_temp_name(name)
            && fs::symlink_metadata(&path).is_ok_and(|m| m.is_file())
            && fs::remove_file(&path).is_ok();
        if dead {
            removed.push(rel.clone());
        }
        !dead
    });
    registry
        .problems
        .retain(|p| !(p.kind == Kind::DotFile && removed.contains(&p.path)));
}

/// `v2/<name>/tags` could be a symlink planted to make prepare write outside
/// the tree; the file itself is replaced by rename, which never follows it.
fn refuse_symlinked_parent(root: &Path, path: &Path) -> Result<()> {
    let mut dir = path.parent();
    while let Some(d) = dir {
        if d == root {
            return Ok(());
        }
        if d.symlink_metadata()
            .map(|m| m.file_type().is_symlink())
            .unwrap_or(false)
        {
            anyhow::bail!("{} is a symlink; refusing to write through it", d.display());
        }
        dir = d.parent();
    }
    Ok(())
}
