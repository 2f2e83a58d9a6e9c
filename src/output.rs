//! Writing results: atomically (temp file in the same directory, then
//! rename), all-or-nothing for multi-file outputs, and `--check` comparison
//! for configs committed to a site repository.

use anyhow::{Context, Result};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// One generated file and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    pub path: PathBuf,
    pub contents: String,
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.registrish-tmp.{}", std::process::id()))
}

fn write_temp(path: &Path, bytes: &[u8]) -> Result<PathBuf> {
    let tmp = temp_path(path);
    let result = (|| -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
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
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_all_atomic(&[(path, bytes)])
}

/// Writes every file to a temp name first and renames only when all were
/// written: a full disk or a bad path leaves every old file as it was.
pub fn write_all_atomic(files: &[(&Path, &[u8])]) -> Result<()> {
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

/// Writes only when the bytes differ, so a second run changes nothing (not
/// even mtimes) and a static host's sync tool sees no change.
pub fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<bool> {
    match fs::read(path) {
        Ok(old) if old == bytes => Ok(false),
        _ => write_atomic(path, bytes).map(|_| true),
    }
}

pub fn write_outputs(files: &[OutputFile]) -> Result<()> {
    let pairs: Vec<(&Path, &[u8])> = files
        .iter()
        .map(|f| (f.path.as_path(), f.contents.as_bytes()))
        .collect();
    write_all_atomic(&pairs)
}

/// The files whose current bytes differ from what would be generated.
pub fn stale(files: &[OutputFile]) -> Vec<&Path> {
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
        fs::remove_dir_all(&dir).unwrap();
    }
}
