//! Writing results: where a host's files go ([`Destination`]: standard
//! output, written atomically, or compared by `--check`), atomic writes (temp
//! file in the same directory, then rename), all-or-nothing for multi-file
//! outputs, and the `--check` comparison for configs committed to a site
//! repository.

use anyhow::{Context, Result, bail};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// One generated file and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutputFile {
    pub path: PathBuf,
    pub contents: String,
}

/// How a host's files are placed: the meaning of `-o` and `--check`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Shape {
    /// One text: standard output by default, or `-o FILE`.
    Stdout,
    /// Files in a directory: `-o DIR` (default TREE).
    Directory(&'static [&'static str]),
}

impl Shape {
    /// The files this shape places, in the order a host renders them.
    pub(crate) fn file_count(self) -> usize {
        match self {
            Shape::Stdout => 1,
            Shape::Directory(names) => names.len(),
        }
    }
}

/// Where a command's output goes.
#[derive(Debug, Clone)]
pub(crate) enum Destination {
    Stdout,
    Write(Vec<PathBuf>),
    /// `--check`: compare, write nothing.
    Check(Vec<PathBuf>),
}

impl Destination {
    pub(crate) fn new(
        shape: Shape,
        output: Option<&Path>,
        check: Option<&Path>,
        tree: &Path,
    ) -> Destination {
        let target = check.or(output);
        let paths = match shape {
            Shape::Stdout => match target {
                Some(p) => vec![p.to_path_buf()],
                None => return Destination::Stdout,
            },
            Shape::Directory(names) => {
                let dir = target.unwrap_or(tree);
                names.iter().map(|n| dir.join(n)).collect()
            }
        };
        if check.is_some() {
            Destination::Check(paths)
        } else {
            Destination::Write(paths)
        }
    }

    /// Prints, writes or compares; `Ok(false)` when `--check` found a stale file.
    pub(crate) fn deliver(&self, contents: Vec<String>) -> Result<bool> {
        // Moved, not copied: a config of a million tags is hundreds of MB (issue 16).
        let files = |paths: &[PathBuf], contents: Vec<String>| -> Vec<OutputFile> {
            paths
                .iter()
                .cloned()
                .zip(contents)
                .map(|(path, contents)| OutputFile { path, contents })
                .collect()
        };
        match self {
            Destination::Check(paths) => {
                let files = files(paths, contents);
                let stale = stale(&files);
                for path in &stale {
                    eprintln!(
                        "registrish-gen: {} is not what would be generated now",
                        path.display()
                    );
                }
                Ok(stale.is_empty())
            }
            Destination::Stdout => {
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                for text in &contents {
                    if let Err(e) = out.write_all(text.as_bytes()) {
                        // `registrish-gen nginx | head` is not an error.
                        if e.kind() == std::io::ErrorKind::BrokenPipe {
                            return Ok(true);
                        }
                        bail!("cannot write to standard output: {e}");
                    }
                }
                Ok(true)
            }
            Destination::Write(paths) => {
                let files = files(paths, contents);
                write_outputs(&files)?;
                for f in &files {
                    eprintln!("registrish-gen: wrote {}", f.path.display());
                }
                Ok(true)
            }
        }
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.registrish-tmp.{}", std::process::id()))
}

/// Whether `name` is one of [`temp_path`]'s names (`.<name>.registrish-tmp.<pid>`).
pub(crate) fn is_temp_name(name: &str) -> bool {
    name.starts_with('.')
        && name
            .rsplit_once(".registrish-tmp.")
            .is_some_and(|(_, pid)| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
}

/// Creates a temp file afresh: whatever has its name goes first (a dead run's file, or a
/// symlink planted there, which `File::create` would follow and truncate its target), and the
/// file is made with O_EXCL, which never follows a symlink: one planted in between is an error.
fn create_temp(tmp: &Path) -> std::io::Result<File> {
    match fs::remove_file(tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(tmp)
}

fn write_temp(path: &Path, bytes: &[u8]) -> Result<PathBuf> {
    let tmp = temp_path(path);
    let result = (|| -> std::io::Result<()> {
        let mut f = create_temp(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", tmp.display()));
    }
    Ok(tmp)
}

/// Writes one file atomically: readers see the old bytes or the new ones.
#[cfg(test)]
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_all_atomic(&[(path, bytes)])
}

/// Writes every file to a temp name first and renames only when all were
/// written: a full disk or a bad path leaves every old file as it was.
pub(crate) fn write_all_atomic(files: &[(&Path, &[u8])]) -> Result<()> {
    let mut temps = Vec::new();
    for (path, bytes) in files {
        let written = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
            Some(dir) => fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))
                .and_then(|_| write_temp(path, bytes)),
            None => write_temp(path, bytes),
        };
        match written {
            Ok(tmp) => temps.push(tmp),
            Err(e) => {
                for t in &temps {
                    let _ = fs::remove_file(t);
                }
                return Err(e);
            }
        }
    }
    for ((path, _), tmp) in files.iter().zip(&temps) {
        fs::rename(tmp, path)
            .with_context(|| format!("cannot move {} into place", path.display()))?;
    }
    Ok(())
}

/// Whether `path` already holds exactly `bytes` as a regular file. A symlink in the file's
/// place never does (rename replaces it without following it): the bytes it reads through
/// are not the file's own.
fn holds(path: &Path, bytes: &[u8]) -> bool {
    !fs::symlink_metadata(path).is_ok_and(|m| !m.file_type().is_file())
        && fs::read(path).is_ok_and(|old| old == bytes)
}

/// Writes only when the bytes differ, so a second run changes nothing (not
/// even mtimes) and a static host's sync tool sees no change.
#[cfg(test)]
pub(crate) fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<bool> {
    if holds(path, bytes) {
        return Ok(false);
    }
    write_atomic(path, bytes).map(|_| true)
}

/// Many files replaced together (prepare's lists, indexes and digest copies) with one
/// durability step for all of them instead of an fsync per file, which at 200,000 lists was
/// most of prepare's time (issue 16).
///
/// Each file is written unsynced to a temp name beside its destination; [`Batch::commit`]
/// then makes every temp file durable at once, renames them in the order they were added, and
/// makes the renames durable. The order is the guarantee: a rename is only issued once the
/// data it points to is on disk, so a crash at any moment leaves each served name with its old
/// bytes or its new ones, never a torn file. On Linux the step is syncfs(2) on the tree's
/// filesystem (syncfs(2): it flushes the data and metadata of that one filesystem, and
/// reports writeback errors since Linux 5.8), once before the renames and once after. The
/// ext4 `auto_da_alloc` heuristic (ext4(5): data of a file renamed over another is flushed
/// with the rename) is not relied on: it is ext4's alone, and can be turned off. Elsewhere,
/// each temp file is fsynced before any rename, which gives the same order.
pub(crate) struct Batch {
    /// Any path on the filesystem being written (the tree's root).
    anchor: PathBuf,
    /// (temp file, destination), in the order the renames happen.
    temps: Vec<(PathBuf, PathBuf)>,
}

impl Batch {
    pub(crate) fn new(anchor: &Path) -> Batch {
        Batch {
            anchor: anchor.to_path_buf(),
            temps: Vec::new(),
        }
    }

    /// Adds `bytes` for `path` unless the file already holds them (so a second run changes
    /// nothing, not even mtimes); `true` when it will be written.
    pub(crate) fn write_if_changed(&mut self, path: &Path, bytes: &[u8]) -> Result<bool> {
        if holds(path, bytes) {
            return Ok(false);
        }
        self.write(path, bytes)?;
        Ok(true)
    }

    /// Adds `bytes` for `path`, creating its directory.
    pub(crate) fn write(&mut self, path: &Path, bytes: &[u8]) -> Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let tmp = temp_path(path);
        // Pushed first, so a failed write's temp file is removed with the rest.
        self.temps.push((tmp.clone(), path.to_path_buf()));
        let mut f = create_temp(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
        f.write_all(bytes)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        Ok(())
    }

    /// Makes every file durable, renames each into place, makes the renames durable.
    pub(crate) fn commit(mut self) -> Result<()> {
        if self.temps.is_empty() {
            return Ok(());
        }
        sync_before_renames(&self.anchor, &self.temps)?;
        let temps = std::mem::take(&mut self.temps);
        for (i, (tmp, path)) in temps.iter().enumerate() {
            if let Err(e) = fs::rename(tmp, path) {
                for (t, _) in &temps[i..] {
                    let _ = fs::remove_file(t);
                }
                return Err(e)
                    .with_context(|| format!("cannot move {} into place", path.display()));
            }
        }
        sync_after_renames(&self.anchor, &temps)
    }
}

impl Drop for Batch {
    /// A batch dropped before its commit (an error part-way) leaves no temp file behind.
    fn drop(&mut self) {
        for (tmp, _) in &self.temps {
            let _ = fs::remove_file(tmp);
        }
    }
}

#[cfg(target_os = "linux")]
fn sync_before_renames(anchor: &Path, _temps: &[(PathBuf, PathBuf)]) -> Result<()> {
    sync_filesystem(anchor)
}

#[cfg(target_os = "linux")]
fn sync_after_renames(anchor: &Path, _temps: &[(PathBuf, PathBuf)]) -> Result<()> {
    sync_filesystem(anchor)
}

/// syncfs(2) on the filesystem holding `anchor`. It also flushes other programs' pending
/// writes to that filesystem: one call costs what the disk needs, not a journal commit per file.
#[cfg(target_os = "linux")]
fn sync_filesystem(anchor: &Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    let dir = File::open(anchor).with_context(|| format!("cannot open {}", anchor.display()))?;
    // SAFETY: syncfs only reads the descriptor, which `dir` keeps open for the call.
    if unsafe { libc::syncfs(dir.as_raw_fd()) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("cannot sync the filesystem of {}", anchor.display()));
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn sync_before_renames(_anchor: &Path, temps: &[(PathBuf, PathBuf)]) -> Result<()> {
    for (tmp, _) in temps {
        File::open(tmp)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("cannot sync {}", tmp.display()))?;
    }
    Ok(())
}

/// Without syncfs, each directory that gained a name is fsynced once (where the platform
/// can open a directory at all).
#[cfg(not(target_os = "linux"))]
fn sync_after_renames(_anchor: &Path, temps: &[(PathBuf, PathBuf)]) -> Result<()> {
    let dirs: std::collections::BTreeSet<&Path> =
        temps.iter().filter_map(|(_, p)| p.parent()).collect();
    for dir in dirs {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

pub(crate) fn write_outputs(files: &[OutputFile]) -> Result<()> {
    let pairs: Vec<(&Path, &[u8])> = files
        .iter()
        .map(|f| (f.path.as_path(), f.contents.as_bytes()))
        .collect();
    write_all_atomic(&pairs)
}

/// The files whose current bytes differ from what would be generated.
pub(crate) fn stale(files: &[OutputFile]) -> Vec<&Path> {
    files
        .iter()
        .filter(|f| {
            fs::read(&f.path)
                .map(|b| b != f.contents.as_bytes())
                .unwrap_or(true)
        })
        .map(|f| f.path.as_path())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names() {
        let tmp = temp_path(Path::new("v2/a/tags/list"));
        assert!(is_temp_name(&tmp.file_name().unwrap().to_string_lossy()));
        for other in [
            ".list",
            "list.registrish-tmp.1",
            ".list.registrish-tmp.",
            ".x.registrish-tmp.1a",
        ] {
            assert!(!is_temp_name(other), "{other}");
        }
    }

    /// A symlink planted at the temp name (it is predictable: the pid) is never written
    /// through, by the one-file path or by prepare's batch.
    #[test]
    fn a_symlink_at_the_temp_name_is_not_followed() {
        let dir = std::env::temp_dir().join(format!("registrish-tmplink-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("tree")).unwrap();
        let outside = dir.join("outside");
        fs::write(&outside, b"keep me").unwrap();
        for batch in [false, true] {
            let target = dir.join("tree/list");
            std::os::unix::fs::symlink(&outside, temp_path(&target)).unwrap();
            if batch {
                let mut b = Batch::new(&dir);
                b.write(&target, b"new").unwrap();
                b.commit().unwrap();
            } else {
                write_all_atomic(&[(&target, b"new")]).unwrap();
            }
            assert_eq!(fs::read(&outside).unwrap(), b"keep me", "batch: {batch}");
            assert_eq!(fs::read(&target).unwrap(), b"new");
            assert!(
                !fs::symlink_metadata(&target)
                    .unwrap()
                    .file_type()
                    .is_symlink()
            );
            fs::remove_file(&target).unwrap();
        }
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn atomic_and_idempotent() {
        let dir = std::env::temp_dir().join(format!("registrish-out-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let a = dir.join("sub/a");
        assert!(write_if_changed(&a, b"one").unwrap());
        assert!(!write_if_changed(&a, b"one").unwrap());
        assert!(write_if_changed(&a, b"two").unwrap());
        assert_eq!(fs::read(&a).unwrap(), b"two");
        // A failing member (its parent is a file) leaves the others untouched.
        let bad = a.join("child");
        assert!(write_all_atomic(&[(&a, b"three"), (&bad, b"x")]).is_err());
        assert_eq!(fs::read(&a).unwrap(), b"two");
        let leftovers: Vec<_> = fs::read_dir(dir.join("sub")).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "temp files cleaned up");

        // A batch: nothing in place before the commit, everything after; unchanged files are
        // not rewritten; a batch dropped uncommitted leaves no temp file.
        let b = dir.join("batch/b");
        let mut batch = Batch::new(&dir);
        assert!(batch.write_if_changed(&a, b"two").is_ok_and(|w| !w));
        assert!(batch.write_if_changed(&b, b"new").unwrap());
        assert!(!b.exists());
        batch.commit().unwrap();
        assert_eq!(fs::read(&b).unwrap(), b"new");
        let mut batch = Batch::new(&dir);
        assert!(batch.write_if_changed(&b, b"newer").unwrap());
        drop(batch);
        assert_eq!(fs::read(&b).unwrap(), b"new");
        assert_eq!(fs::read_dir(dir.join("batch")).unwrap().count(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }
}
