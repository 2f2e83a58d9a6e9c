//! The harness the test modules share (`crate::support`).
//!
//! Every helper panics on failure with the command line and its output. A missing tool is a
//! failure, never a skip: `scripts/test` installs all of them, and CI starts from a bare machine.
//! Set `REGISTRISH_KEEP_TMP=1` to keep temp dirs (configs, daemon logs) after a test.

pub mod case;
pub mod fixture;
pub mod process;
// A static host in a thread, no tool needed: the fast set's help examples probe it too.
pub mod static_host;

// The end-to-end harness: hosts, clients and the HTTP contract they are held to.
#[cfg(feature = "e2e")]
pub mod clients;
#[cfg(feature = "e2e")]
pub mod daemon;
#[cfg(feature = "e2e")]
pub mod hosts;
#[cfg(feature = "e2e")]
pub mod http;
#[cfg(feature = "e2e")]
pub mod matrix;
#[cfg(feature = "e2e")]
pub mod net;
#[cfg(feature = "e2e")]
pub mod registry;
#[cfg(feature = "e2e")]
pub mod s3;
#[cfg(feature = "e2e")]
pub mod servers;
#[cfg(feature = "e2e")]
pub mod tools;

use std::ffi::OsStr;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

#[cfg(feature = "e2e")]
pub use clients::{
    Containerd, Dockerd, skopeo, skopeo_copy_all, skopeo_inspect, skopeo_inspect_raw,
};
#[cfg(feature = "e2e")]
pub use hosts::{Nginx, Wrangler, nginx_test_config};
#[cfg(feature = "e2e")]
pub use net::{free_port, port_open};
#[cfg(feature = "e2e")]
pub use tools::{node_bin, venv_bin};

/// A directory under the system temp dir, removed on drop unless `REGISTRISH_KEEP_TMP=1`.
///
/// Names stay short on purpose: unix socket paths (containerd, dockerd) must fit in 108 bytes.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        // Canonical, so mount points read back from /proc match it textually.
        let base = fs::canonicalize(std::env::temp_dir())
            .unwrap_or_else(|e| panic!("temp dir {:?}: {e}", std::env::temp_dir()));
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = base.join(format!("rg-{prefix}-{}-{n}", std::process::id()));
            match fs::create_dir(&path) {
                Ok(()) => return TempDir { path },
                // Left behind by an earlier run whose pid was the same: take the next number.
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => panic!("cannot create temp dir {}: {e}", path.display()),
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.path.join(rel)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if keep_tmp() {
            eprintln!("REGISTRISH_KEEP_TMP: keeping {}", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

pub fn keep_tmp() -> bool {
    std::env::var_os("REGISTRISH_KEEP_TMP").is_some_and(|v| v == "1")
}

/// The `registrish-gen` binary built by cargo for this test run.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_registrish-gen"))
}

/// Runs `registrish-gen ARGS` in `cwd`; the caller judges the exit status.
pub fn run_bin<I, S>(args: I, cwd: &Path) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(bin());
    cmd.args(args).current_dir(cwd);
    process::output(&mut cmd)
}

/// Runs `registrish-gen ARGS` in `cwd` and panics (with its stderr) unless it succeeds.
pub fn run_bin_ok<I, S>(args: I, cwd: &Path) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(bin());
    cmd.args(args).current_dir(cwd);
    process::run(&mut cmd)
}

/// Every path under `dir`, sorted, with what it is: a file's bytes, a link's target (never
/// followed), or a directory: "nothing changed" assertions see a swapped link too.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            let what = if e.path_is_symlink() {
                fs::read_link(e.path())
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes()
            } else if e.file_type().is_file() {
                fs::read(e.path()).unwrap()
            } else {
                b"<dir>".to_vec()
            };
            (e.path().to_path_buf(), what)
        })
        .collect()
}

/// What an nginx config answers for `/v2/<name>/manifests/<reference>`, as the config holds
/// it: `CODE` for a digest, `CODEsha256:HEX` for a tag; from the repository's table (one row,
/// `/NAME ";REF=VALUE..."`), its own row `PATH VALUE`, or its case-sensitive row. `None` when
/// the config does not list it. `tabled` says where it was found.
pub fn nginx_lists(conf: &str, name: &str, reference: &str) -> Option<(String, bool)> {
    let path = format!("/v2/{name}/manifests/{reference}");
    for line in conf.lines().map(str::trim_start) {
        if let Some(value) = line
            .strip_prefix(&format!("{path} "))
            .or_else(|| line.strip_prefix(&format!("\"~^{}$\" ", path.replace('.', "\\."))))
        {
            return Some((value.trim_end_matches(';').to_string(), false));
        }
        if let Some(table) = line.strip_prefix(&format!("/{name} \"")) {
            let table = table
                .strip_suffix("\";")
                .expect("a table row ends with \";");
            let entry = format!(";{reference}=");
            let Some(at) = table.find(&entry).map(|at| at + entry.len()) else {
                // A manifest a tag names has no entry: nginx finds `=CODE<hex>;` in the
                // tag's value (the last regex of $registrish_tabled).
                let hex = reference.strip_prefix("sha256:")?;
                let at = table.find(&format!("{hex};"))?;
                let code = &table[at - 1..at];
                assert_eq!(&table[at - 2..at - 1], "=", "a digest inside a value");
                return Some((code.to_string(), true));
            };
            let value = table[at..].split(';').next().unwrap_or_default();
            let value = match value.split_at_checked(1) {
                Some((code, hex)) if !hex.is_empty() => format!("{code}sha256:{hex}"),
                _ => value.to_string(),
            };
            return Some((value, true));
        }
    }
    None
}
