//! Real registry clients: containerd (via ctr), dockerd (via the docker CLI) and skopeo, each
//! isolated in its own temp dir so tests can run in parallel threads.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use super::TempDir;
use super::daemon::{self, Daemon};
use super::process;

/// Tests check the registry protocol, not storage. `native` copies layers instead of mounting
/// overlays, so it works on any filesystem the temp dir lands on and a killed test can't leave
/// overlay mounts behind (overlayfs also works on the project machine).
const CONTAINERD_SNAPSHOTTER: &str = "native";
/// Same reasoning for dockerd: `vfs` needs no overlay mounts (overlay2 also works here).
const DOCKER_STORAGE_DRIVER: &str = "vfs";
/// The docker.io package's CLI, which matches its dockerd (20.10); another `docker` may come
/// first in PATH.
const DOCKER_CLI: &str = "/usr/bin/docker";
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Unix socket paths must fit in sun_path (108 bytes including the NUL).
const MAX_SOCKET_PATH: usize = 100;

fn check_socket_path(path: &Path) {
    let len = path.as_os_str().len();
    assert!(
        len <= MAX_SOCKET_PATH,
        "socket path {} is {len} bytes, too long for a unix socket: set TMPDIR to a short dir",
        path.display()
    );
}

/// A private containerd daemon (config as in shared/reference/clients.md) driven with `ctr`.
/// It caches content: use a fresh instance for each negative test.
pub struct Containerd {
    // Fields drop in order: the daemon goes before its directory.
    daemon: Daemon,
    sock: PathBuf,
    dir: TempDir,
}

impl Containerd {
    pub fn start() -> Containerd {
        let dir = TempDir::new("ctd");
        let d = dir.path().display();
        let sock = dir.join("containerd.sock");
        check_socket_path(&dir.join("containerd.sock.ttrpc"));
        // CRI and the snapshotters that need special filesystems are off; `opt` would otherwise
        // install into /opt/containerd.
        let config = format!(
            r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
"#
        );
        let config_path = dir.join("config.toml");
        fs::write(&config_path, config).expect("write containerd config");
        let mut cmd = Command::new("containerd");
        cmd.arg("--config").arg(&config_path);
        let daemon = Daemon::spawn("containerd", &mut cmd, &dir.join("containerd.log"));
        // Built before waiting, so a failed start still gets the full cleanup of Drop.
        let mut ctd = Containerd { daemon, sock, dir };
        ctd.daemon.wait_for_path(&ctd.sock, START_TIMEOUT);
        // The socket file appears just before the server answers: wait for a real round trip.
        let sock = &ctd.sock;
        ctd.daemon
            .wait_until("an answer to `ctr version`", START_TIMEOUT, || {
                process::output(ctr_cmd(sock).arg("version"))
                    .status
                    .success()
            });
        ctd
    }

    /// `ctr -a SOCK` (namespace `default`); add a subcommand and run it with `support::process`.
    pub fn ctr(&self) -> Command {
        ctr_cmd(&self.sock)
    }

    fn ctr_with(&self, args: &[&str]) -> Command {
        let mut cmd = self.ctr();
        cmd.args(args);
        cmd
    }

    fn run_ctr(&self, args: &[&str]) -> Output {
        let mut cmd = self.ctr_with(args);
        let out = process::output(&mut cmd);
        if !out.status.success() {
            panic!(
                "ctr failed\n{}\n--- containerd log ---\n{}",
                process::report(&cmd, &out),
                self.daemon.log_tail()
            );
        }
        out
    }

    /// `ctr content fetch --plain-http --all-platforms REF`: every manifest and blob, no unpack.
    pub fn fetch_all(&self, reference: &str) {
        self.run_ctr(&fetch_all_args(reference));
    }

    /// `ctr images pull --plain-http REF`: the host platform's image, fetched and unpacked.
    pub fn pull(&self, reference: &str) {
        self.run_ctr(&pull_args(reference));
    }

    /// Digests of every blob in the content store (manifests, configs, layers).
    pub fn content_digests(&self) -> BTreeSet<String> {
        let out = self.run_ctr(&["content", "ls", "--quiet"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    }

    /// The target digest containerd recorded for the image named `reference` (as given to
    /// `pull`/`fetch_all`, both of which create the image record).
    pub fn image_target(&self, reference: &str) -> String {
        let out = self.run_ctr(&["images", "ls"]);
        let listing = String::from_utf8_lossy(&out.stdout);
        // Columns: REF TYPE DIGEST SIZE PLATFORMS LABELS (the header line never matches a ref).
        listing
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|cols| cols.first() == Some(&reference))
            .and_then(|cols| cols.get(2).map(|d| d.to_string()))
            .unwrap_or_else(|| panic!("containerd has no image {reference}:\n{listing}"))
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.daemon.stop(Duration::ZERO);
        daemon::unmount_under(self.dir.path());
    }
}

fn ctr_cmd(sock: &Path) -> Command {
    let mut cmd = Command::new("ctr");
    cmd.arg("--address").arg(sock);
    cmd
}

fn fetch_all_args(reference: &str) -> Vec<&str> {
    vec![
        "content",
        "fetch",
        "--plain-http",
        "--all-platforms",
        reference,
    ]
}

fn pull_args(reference: &str) -> Vec<&str> {
    vec![
        "images",
        "pull",
        "--plain-http",
        "--snapshotter",
        CONTAINERD_SNAPSHOTTER,
        reference,
    ]
}

/// A private dockerd (it starts its own containerd under the exec root), no networking set up.
/// 127.0.0.0/8 registries count as insecure by default, so plain HTTP works without config.
pub struct Dockerd {
    daemon: Daemon,
    dir: TempDir,
}

impl Dockerd {
    pub fn start() -> Dockerd {
        let dir = TempDir::new("dkd");
        let sock = dir.join("docker.sock");
        check_socket_path(&dir.join("exec/containerd/containerd.sock.ttrpc"));
        // An empty daemon.json instead of /etc/docker/daemon.json: the host's settings stay out.
        fs::write(dir.join("daemon.json"), "{}\n").expect("write daemon.json");
        fs::create_dir(dir.join("cli")).expect("mkdir cli config dir");
        let mut cmd = Command::new("dockerd");
        cmd.arg("--config-file")
            .arg(dir.join("daemon.json"))
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            .arg("-H")
            .arg(format!("unix://{}", sock.display()))
            .args(["--storage-driver", DOCKER_STORAGE_DRIVER])
            .args(["--iptables=false", "--ip6tables=false", "--bridge=none"]);
        let daemon = Daemon::spawn("dockerd", &mut cmd, &dir.join("dockerd.log"));
        // Built before waiting, so a failed start still gets the full cleanup of Drop.
        let mut dockerd = Dockerd { daemon, dir };
        dockerd.daemon.wait_for_path(&sock, START_TIMEOUT);
        let dir = dockerd.dir.path();
        dockerd
            .daemon
            .wait_until("an answer to `docker version`", START_TIMEOUT, || {
                process::output(docker_cmd(dir).arg("version"))
                    .status
                    .success()
            });
        dockerd
    }

    /// The docker CLI talking to this daemon, with its own (empty) client config dir so no
    /// credential helper or context from the host applies.
    pub fn docker(&self) -> Command {
        docker_cmd(self.dir.path())
    }

    fn docker_with(&self, args: &[&str]) -> Command {
        let mut cmd = self.docker();
        cmd.args(args);
        cmd
    }

    fn run_docker(&self, args: &[&str]) -> Output {
        let mut cmd = self.docker_with(args);
        let out = process::output(&mut cmd);
        if !out.status.success() {
            panic!(
                "docker failed\n{}\n--- dockerd log ---\n{}",
                process::report(&cmd, &out),
                self.daemon.log_tail()
            );
        }
        out
    }

    /// `docker pull REF`, then (RepoDigests, Id) from `docker image inspect`.
    pub fn pull(&self, reference: &str) -> (Vec<String>, String) {
        self.run_docker(&["pull", reference]);
        let out = self.run_docker(&[
            "image",
            "inspect",
            "--format",
            "{{.Id}}{{range .RepoDigests}} {{.}}{{end}}",
            reference,
        ]);
        let text = String::from_utf8_lossy(&out.stdout);
        let mut fields = text.split_whitespace().map(String::from);
        let id = fields
            .next()
            .unwrap_or_else(|| panic!("docker image inspect printed nothing for {reference}"));
        (fields.collect(), id)
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // A clean stop lets dockerd stop its containerd and undo its own mounts (about 3 s).
        self.daemon.stop(Duration::from_secs(30));
        // Belt and braces: its containerd must not outlive it (Daemon::stop kills descendants,
        // but a containerd orphaned earlier has no parent link left).
        let pid_file = self.dir.join("exec/containerd/containerd.pid");
        if let Some(pid) = fs::read_to_string(pid_file)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
            && process_mentions(pid, self.dir.path())
        {
            daemon::send_signal(pid, daemon::SIGKILL);
        }
        daemon::unmount_under(self.dir.path());
    }
}

fn docker_host(dir: &Path) -> String {
    format!("unix://{}", dir.join("docker.sock").display())
}

/// The docker CLI for the daemon in `dir`, with its own (empty) client config dir so no
/// credential helper or context from the host applies.
fn docker_cmd(dir: &Path) -> Command {
    let mut cmd = Command::new(DOCKER_CLI);
    cmd.env("DOCKER_HOST", docker_host(dir))
        .env("DOCKER_CONFIG", dir.join("cli"))
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH");
    cmd
}

/// Whether process `pid` is alive and its command line names `dir` (so it's one of ours).
fn process_mentions(pid: i32, dir: &Path) -> bool {
    fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&*dir.to_string_lossy()))
}

/// Runs skopeo with ARGS, isolated from the host: no signature policy (`--insecure-policy`), an
/// empty registries.conf, a throwaway HOME/XDG dirs (no auth.json) and temp dir. Returns the
/// output whatever the exit status.
pub fn skopeo(args: &[&str]) -> Output {
    let home = TempDir::new("skopeo");
    let registries = home.join("registries.conf");
    fs::write(&registries, "").expect("write registries.conf");
    let tmp = home.join("tmp");
    fs::create_dir(&tmp).expect("mkdir skopeo tmp");
    let mut cmd = Command::new("skopeo");
    cmd.env("HOME", home.path())
        .env("XDG_RUNTIME_DIR", home.path())
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("CONTAINERS_REGISTRIES_CONF", &registries)
        .env_remove("REGISTRY_AUTH_FILE")
        .arg("--insecure-policy")
        .arg("--tmpdir")
        .arg(&tmp)
        .args(args);
    process::output(&mut cmd)
}

fn skopeo_ok(args: &[&str]) -> Output {
    let out = skopeo(args);
    if !out.status.success() {
        panic!(
            "skopeo failed: skopeo --insecure-policy {}\nstatus: {}\n--- stderr ---\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// The manifest (or index) bytes exactly as served: `skopeo inspect --raw`.
pub fn skopeo_inspect_raw(reference: &str) -> Vec<u8> {
    let image = format!("docker://{reference}");
    skopeo_ok(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--no-creds",
        &image,
    ])
    .stdout
}

/// `skopeo inspect` JSON (Digest, RepoTags, Layers, ...); this one also reads `tags/list`.
pub fn skopeo_inspect(reference: &str) -> String {
    let image = format!("docker://{reference}");
    let out = skopeo_ok(&["inspect", "--tls-verify=false", "--no-creds", &image]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `skopeo copy --all docker://REF dir:OUT`: an index with every platform's image.
pub fn skopeo_copy_all(reference: &str, out_dir: &Path) {
    let src = format!("docker://{reference}");
    let dest = format!("dir:{}", out_dir.display());
    skopeo_ok(&[
        "copy",
        "--src-tls-verify=false",
        "--src-no-creds",
        "--all",
        &src,
        &dest,
    ]);
}
