//! The deployable site of a host whose blobs live on another origin (`--blobs-url` with
//! `cloudflare -o SITE` or `netlify -o SITE`): every file under `v2/` the host must serve
//! except blobs, hard-linked from TREE (copied across filesystems), and nothing else under
//! `SITE/v2/`, so the platform's file-size and file-count limits count manifests only.

use crate::model::Registry;
use crate::routes;
use anyhow::{Context, Result, bail};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// What [`mirror`] did.
#[derive(Debug, Default)]
pub(crate) struct Mirrored {
    pub linked: usize,
    pub copied: usize,
    pub unchanged: usize,
    pub removed: usize,
}

/// Refuses a SITE that is TREE or lies inside its `v2/` (the mirror would delete the tree's
/// own files), or whose `v2/` is a symlink (writes would land wherever it points).
pub(crate) fn check_site(registry: &Registry, site: &Path) -> Result<()> {
    let root = &registry.root;
    let canonical = fs::canonicalize(site).unwrap_or_else(|_| site.to_path_buf());
    if canonical == *root || canonical.starts_with(root.join("v2")) {
        bail!(
            "-o {}: the site must be a directory of its own, not TREE or inside TREE/v2 (it gets every file but the blobs)",
            site.display()
        );
    }
    if fs::symlink_metadata(site.join("v2")).is_ok_and(|m| m.file_type().is_symlink()) {
        bail!(
            "{}/v2 is a symlink: refusing to write through it",
            site.display()
        );
    }
    Ok(())
}

fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(a), fs::symlink_metadata(b)) {
        (Ok(x), Ok(y)) if y.file_type().is_file() => {
            (x.dev(), x.ino()) == (y.dev(), y.ino())
                || (x.len() == y.len() && fs::read(a).ok() == fs::read(b).ok())
        }
        _ => false,
    }
}

/// The site's files that differ from what [`mirror`] would make (for `--check`): missing,
/// other bytes, or not routes at all.
pub(crate) fn stale(registry: &Registry, site: &Path) -> Vec<PathBuf> {
    let wanted = routes::files_without_blobs(registry);
    let mut out: Vec<PathBuf> = wanted
        .iter()
        .filter(|rel| !same_file(&registry.root.join(rel), &site.join(rel)))
        .map(|rel| site.join(rel))
        .collect();
    out.extend(extra(site, &wanted.into_iter().collect()));
    out
}

/// Files under SITE/v2/ that are no route of the site.
fn extra(site: &Path, wanted: &BTreeSet<String>) -> Vec<PathBuf> {
    walkdir::WalkDir::new(site.join("v2"))
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .flatten()
        .filter(|e| !e.file_type().is_dir())
        .filter(|e| {
            let rel = e.path().strip_prefix(site).unwrap_or(e.path());
            !wanted.contains(rel.to_string_lossy().as_ref())
        })
        .map(|e| e.path().to_path_buf())
        .collect()
}

/// Makes SITE/v2/ hold exactly the site's files. Each file is linked (or copied) to a temp
/// name and renamed into place, so a deployment reading SITE meanwhile never sees a torn
/// manifest; files that are no route any more (a deleted tag, a blob) are removed.
pub(crate) fn mirror(registry: &Registry, site: &Path) -> Result<Mirrored> {
    check_site(registry, site)?;
    let mut done = Mirrored::default();
    let wanted = routes::files_without_blobs(registry);
    for rel in &wanted {
        let source = registry.root.join(rel);
        let dest = site.join(rel);
        if same_file(&source, &dest) {
            done.unchanged += 1;
            continue;
        }
        let dir = dest.parent().expect("a route file has a directory");
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let name = dest.file_name().unwrap_or_default().to_string_lossy();
        let tmp = dir.join(format!(".{name}.registrish-tmp.{}", std::process::id()));
        let _ = fs::remove_file(&tmp);
        if fs::hard_link(&source, &tmp).is_ok() {
            done.linked += 1;
        } else {
            fs::copy(&source, &tmp).with_context(|| {
                format!("cannot copy {} to {}", source.display(), tmp.display())
            })?;
            done.copied += 1;
        }
        fs::rename(&tmp, &dest).with_context(|| format!("cannot write {}", dest.display()))?;
    }
    for path in extra(site, &wanted.into_iter().collect()) {
        fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
        done.removed += 1;
    }
    Ok(done)
}
