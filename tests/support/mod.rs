//! End-to-end harness shared by the integration tests: `mod support;` in a test file.
//!
//! Every helper panics on failure with the command line and its output. A missing tool is a
//! failure, never a skip: `scripts/test` installs all of them, and CI starts from a bare machine.
//! Set `REGISTRISH_KEEP_TMP=1` to keep temp dirs (configs, daemon logs) after a test.

// Each integration test file compiles this module on its own and uses only part of it.
#![allow(dead_code, unused_imports)]

pub mod clients;
pub mod fixture;
pub mod hosts;
pub mod http;
pub mod process;
pub mod registry;
pub mod s3;
pub mod servers;

use std::ffi::OsStr;
use std::fs;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub use clients::{
    Containerd, Dockerd, skopeo, skopeo_copy, skopeo_copy_all, skopeo_inspect, skopeo_inspect_raw,
};
pub use hosts::{Nginx, Wrangler, nginx_test_config};
pub use http::Response;

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

/// A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0: {e}"));
    listener.local_addr().expect("local_addr").port()
}

/// True when something accepts connections on 127.0.0.1:`port`.
pub fn port_open(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// Waits until 127.0.0.1:`port` accepts connections; panics after `timeout`.
/// Prefer `process::Daemon::wait_for_port`, which also notices the server dying.
pub fn wait_for_port(port: u16, timeout: Duration) {
    let start = Instant::now();
    while !port_open(port) {
        if start.elapsed() > timeout {
            panic!("nothing listens on 127.0.0.1:{port} after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
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

/// Where `scripts/test` installs npm and Python tools (`.tools/` in the repo), unless
/// `REGISTRISH_TOOLS` points elsewhere.
pub fn tools_dir() -> PathBuf {
    match std::env::var_os("REGISTRISH_TOOLS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools"),
    }
}

/// An executable from the npm tools (`node_modules/.bin/NAME`), e.g. `wrangler`.
/// `REGISTRISH_NODE_MODULES` overrides the `node_modules` dir.
pub fn node_bin(name: &str) -> PathBuf {
    let modules = match std::env::var_os("REGISTRISH_NODE_MODULES") {
        Some(dir) => PathBuf::from(dir),
        None => tools_dir().join("node/node_modules"),
    };
    existing_tool(modules.join(".bin").join(name))
}

/// An executable from the Python venv (`bin/NAME`), e.g. `moto_server`, `aws`.
/// `REGISTRISH_VENV` overrides the venv dir.
pub fn venv_bin(name: &str) -> PathBuf {
    let venv = match std::env::var_os("REGISTRISH_VENV") {
        Some(dir) => PathBuf::from(dir),
        None => tools_dir().join("venv"),
    };
    existing_tool(venv.join("bin").join(name))
}

fn existing_tool(path: PathBuf) -> PathBuf {
    assert!(
        path.exists(),
        "{} is missing: run `scripts/test`, which installs the test tools",
        path.display()
    );
    path
}
