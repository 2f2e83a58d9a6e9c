//! Writing results: where a host's files go ([`Destination`]: standard
//! output, written atomically, or compared by `--check`), atomic writes (temp
//! file in the same directory, then rename), all-or-nothing for multi-file
//! outputs, and the `--check` comparison for configs committed to a site
//! repository.

use anyhow::{Context, Result, bail};
use std::fs::{self, File};
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

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

    /// Prints, writes or compares texts made whole; `Ok(false)` when `--check` found a
    /// stale file.
    pub(crate) fn deliver(&self, contents: Vec<String>) -> Result<bool> {
        let mut out = self.open(contents.len())?;
        for (i, text) in contents.iter().enumerate() {
            out.put(i, text)?;
        }
        out.commit()
    }

    /// Where a render writes `count` files as it makes them (see [`Outputs`]).
    pub(crate) fn open(&self, count: usize) -> Result<Outputs> {
        let sinks = match self {
            Destination::Stdout => (0..count).map(spool).collect(),
            Destination::Write(paths) => paths
                .iter()
                .map(|path| Sink::Temp {
                    tmp: temp_path(path),
                    path: path.clone(),
                    file: None,
                    made: Vec::new(),
                })
                .collect(),
            Destination::Check(paths) => paths
                .iter()
                .map(|path| Sink::Compare {
                    path: path.clone(),
                    old: File::open(path)
                        .ok()
                        .map(|f| BufReader::with_capacity(1 << 20, f)),
                    same: true,
                    scratch: Vec::new(),
                })
                .collect(),
        };
        Ok(Outputs { sinks })
    }
}

/// A host's output files while it renders them: each goes to its temp file, its spool or its
/// comparison as it is made, never held whole (at a million tags an nginx config is 200 MB,
/// and holding it doubled the generator's peak memory; issue 16). Nothing reaches a served
/// name or standard output before [`Outputs::commit`]: a render that fails, or output the
/// command then withholds (prepare pending, `--strict`), is dropped, temp files and all.
pub(crate) struct Outputs {
    sinks: Vec<Sink>,
}

enum Sink {
    /// Kept in memory (renders compared in tests and fuzzing, or standard output where the
    /// temp directory takes no spool file).
    Memory(Vec<u8>),
    /// Standard output, spooled to an unlinked temp file first.
    Spool(BufWriter<File>),
    /// A temp file beside `path`, renamed over it at commit; made (with `path`'s directory)
    /// at the first byte, so output withheld before any creates nothing.
    Temp {
        tmp: PathBuf,
        path: PathBuf,
        file: Option<BufWriter<File>>,
        /// The directories made for it, deepest first: removed again with the temp file
        /// when the output is withheld.
        made: Vec<PathBuf>,
    },
    /// `--check`: compared with `path` as it is read, `same` until a byte differs.
    Compare {
        path: PathBuf,
        old: Option<BufReader<File>>,
        same: bool,
        scratch: Vec<u8>,
    },
}

/// A temp file for `path`, its directory made first (those made go into `made`).
fn open_temp(tmp: &Path, path: &Path, made: &mut Vec<PathBuf>) -> std::io::Result<BufWriter<File>> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        made.extend(
            dir.ancestors()
                .take_while(|d| !d.as_os_str().is_empty() && fs::symlink_metadata(d).is_err())
                .map(Path::to_path_buf),
        );
        fs::create_dir_all(dir)?;
    }
    Ok(BufWriter::with_capacity(1 << 20, create_temp(tmp)?))
}

/// Standard output's spool: an unlinked file in the temp directory (page cache, not the
/// process's memory), else memory.
fn spool(i: usize) -> Sink {
    static SPOOLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = SPOOLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path =
        std::env::temp_dir().join(format!(".registrish-spool.{}.{n}.{i}", std::process::id()));
    // create_new never follows a symlink planted at the name; the name goes at once.
    match fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(file) if fs::remove_file(&path).is_ok() => {
            Sink::Spool(BufWriter::with_capacity(1 << 20, file))
        }
        _ => Sink::Memory(Vec::new()),
    }
}

/// An I/O error with the file it happened to (a full disk names the temp file).
fn at(what: impl std::fmt::Display, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{what}: {e}"))
}

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        match self {
            Sink::Memory(v) => v.extend_from_slice(data),
            Sink::Spool(f) => f.write_all(data).map_err(|e| {
                let dir = std::env::temp_dir();
                at(format!("standard output's spool in {}", dir.display()), e)
            })?,
            Sink::Temp {
                tmp, file: Some(f), ..
            } => f.write_all(data).map_err(|e| at(tmp.display(), e))?,
            Sink::Temp {
                tmp,
                path,
                file,
                made,
            } => {
                *file = Some(open_temp(tmp, path, made).map_err(|e| at(tmp.display(), e))?);
                return self.write(data);
            }
            Sink::Compare {
                old, same, scratch, ..
            } => {
                if *same {
                    scratch.resize(data.len(), 0);
                    *same = old
                        .as_mut()
                        .is_some_and(|f| f.read_exact(scratch).is_ok() && scratch[..] == *data);
                }
            }
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Spool(f) | Sink::Temp { file: Some(f), .. } => f.flush(),
            _ => Ok(()),
        }
    }
}

impl Outputs {
    /// Outputs kept in memory, for [`Outputs::into_texts`].
    #[cfg_attr(not(feature = "fuzzing"), allow(dead_code))]
    pub(crate) fn memory(count: usize) -> Outputs {
        Outputs {
            sinks: (0..count).map(|_| Sink::Memory(Vec::new())).collect(),
        }
    }

    /// File `i` (in [`Shape`] order), to write to.
    pub(crate) fn file(&mut self, i: usize) -> &mut dyn Write {
        &mut self.sinks[i]
    }

    /// Writes a whole text as file `i`'s next bytes.
    pub(crate) fn put(&mut self, i: usize, text: &str) -> Result<()> {
        self.sinks[i]
            .write_all(text.as_bytes())
            .context("cannot write the output")
    }

    /// The texts of memory outputs.
    #[cfg_attr(not(feature = "fuzzing"), allow(dead_code))]
    pub(crate) fn into_texts(mut self) -> Vec<String> {
        std::mem::take(&mut self.sinks)
            .into_iter()
            .map(|s| match s {
                Sink::Memory(v) => String::from_utf8(v).expect("renders are UTF-8"),
                _ => panic!("into_texts is for Outputs::memory"),
            })
            .collect()
    }

    /// Prints, moves into place or compares everything written; `Ok(false)` when `--check`
    /// found a stale file. Files are renamed only once all were written and synced, so a
    /// full disk leaves every old file as it was.
    pub(crate) fn commit(mut self) -> Result<bool> {
        let sinks = std::mem::take(&mut self.sinks);
        // Every temp file, removed unless it was moved into place.
        let mut unmoved = Unmoved(
            sinks
                .iter()
                .filter_map(|s| match s {
                    Sink::Temp { tmp, path, .. } => Some((tmp.clone(), path.clone())),
                    _ => None,
                })
                .collect(),
        );
        let mut stdout = std::io::stdout().lock();
        let mut stale = Vec::new();
        for sink in sinks {
            match sink {
                Sink::Memory(v) => {
                    if !print(&mut stdout, &mut &v[..])? {
                        return Ok(true);
                    }
                }
                Sink::Spool(f) => {
                    let mut f = f.into_inner().map_err(|e| e.into_error())?;
                    f.seek(std::io::SeekFrom::Start(0))?;
                    if !print(&mut stdout, &mut f)? {
                        return Ok(true);
                    }
                }
                Sink::Temp {
                    tmp,
                    path,
                    file,
                    mut made,
                } => {
                    let file = match file {
                        Some(f) => f,
                        // Nothing was written: an empty file.
                        None => open_temp(&tmp, &path, &mut made)
                            .with_context(|| format!("cannot write {}", tmp.display()))?,
                    };
                    file.into_inner()
                        .map_err(|e| e.into_error())
                        .and_then(|f| f.sync_all())
                        .with_context(|| format!("cannot write {}", tmp.display()))?;
                }
                Sink::Compare {
                    path, old, same, ..
                } => {
                    // Also the end: the file holds no more than was rendered.
                    let ended = old.is_some_and(|mut f| f.fill_buf().is_ok_and(|b| b.is_empty()));
                    if !(same && ended) {
                        stale.push(path);
                    }
                }
            }
        }
        let moved = unmoved.0.len();
        while let Some((tmp, path)) = unmoved.0.first() {
            fs::rename(tmp, path)
                .with_context(|| format!("cannot move {} into place", path.display()))?;
            eprintln!("registrish-gen: wrote {}", path.display());
            unmoved.0.remove(0);
        }
        debug_assert!(moved == 0 || stale.is_empty());
        for path in &stale {
            eprintln!(
                "registrish-gen: {} is not what would be generated now",
                path.display()
            );
        }
        Ok(stale.is_empty())
    }
}

/// Temp files not yet moved into place: removed if the commit stops part-way.
struct Unmoved(Vec<(PathBuf, PathBuf)>);

impl Drop for Unmoved {
    fn drop(&mut self) {
        for (tmp, _) in &self.0 {
            let _ = fs::remove_file(tmp);
        }
    }
}

impl Drop for Outputs {
    /// Outputs dropped uncommitted (a failed render, or output withheld) leave no temp file.
    fn drop(&mut self) {
        for sink in &self.sinks {
            if let Sink::Temp { tmp, .. } = sink {
                let _ = fs::remove_file(tmp);
            }
        }
        // Then the directories, once every temp file in them is gone.
        for sink in &self.sinks {
            if let Sink::Temp { made, .. } = sink {
                for dir in made {
                    let _ = fs::remove_dir(dir);
                }
            }
        }
    }
}

/// Copies to standard output; `Ok(false)` when the reader went away (`registrish-gen nginx |
/// head` is not an error).
fn print(stdout: &mut impl Write, from: &mut impl std::io::Read) -> Result<bool> {
    match std::io::copy(from, stdout).and_then(|_| stdout.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => bail!("cannot write to standard output: {e}"),
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

/// Writes one file atomically: readers see the old bytes or the new ones.
#[cfg(test)]
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_all_atomic(&[(path, bytes)])
}

/// Writes every file to a temp name first and renames only when all were
/// written: a full disk or a bad path leaves every old file as it was.
#[cfg(test)]
pub(crate) fn write_all_atomic(files: &[(&Path, &[u8])]) -> Result<()> {
    let paths = files.iter().map(|(p, _)| p.to_path_buf()).collect();
    let mut out = Destination::Write(paths).open(files.len())?;
    for (i, (_, bytes)) in files.iter().enumerate() {
        out.file(i).write_all(bytes)?;
    }
    out.commit().map(|_| ())
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

    /// `--check` compares as it renders: the same bytes pass; a file longer, shorter, other
    /// or missing is stale.
    #[test]
    fn check_compares_every_byte_and_the_end() {
        let dir = std::env::temp_dir().join(format!("registrish-cmp-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join("conf");
        fs::write(&file, "abc\ndef\n").unwrap();
        let check = |parts: &[&str], path: &Path| {
            let mut out = Destination::Check(vec![path.to_path_buf()])
                .open(1)
                .unwrap();
            for p in parts {
                out.put(0, p).unwrap();
            }
            out.commit().unwrap()
        };
        assert!(check(&["abc\n", "def\n"], &file));
        assert!(check(&["abc\ndef\n"], &file));
        assert!(!check(&["abc\n"], &file), "shorter");
        assert!(!check(&["abc\ndef\n", "g"], &file), "longer");
        assert!(!check(&["abc\nxef\n"], &file), "other");
        assert!(!check(&["abc\ndef\n"], &dir.join("missing")));
        assert_eq!(
            fs::read(&file).unwrap(),
            b"abc\ndef\n",
            "--check writes nothing"
        );

        // Written: nothing in place before the commit; dropped uncommitted, no temp file and
        // no directory it made is left.
        let new = dir.join("made/deeper/conf");
        let mut out = Destination::Write(vec![new.clone()]).open(1).unwrap();
        out.put(0, "x").unwrap();
        assert!(!new.exists());
        drop(out);
        assert!(!dir.join("made").exists());
        let mut out = Destination::Write(vec![new.clone(), dir.join("empty")])
            .open(2)
            .unwrap();
        out.put(0, "x").unwrap();
        assert!(out.commit().unwrap());
        assert_eq!(fs::read(&new).unwrap(), b"x");
        assert_eq!(
            fs::read(dir.join("empty")).unwrap(),
            b"",
            "a file with no bytes is made"
        );

        let mut mem = Outputs::memory(2);
        mem.put(1, "b").unwrap();
        mem.put(0, "a").unwrap();
        assert_eq!(mem.into_texts(), ["a", "b"]);
        fs::remove_dir_all(&dir).unwrap();
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
