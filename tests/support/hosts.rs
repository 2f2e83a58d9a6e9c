//! Static web hosts serving a generated config.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::TempDir;
use super::daemon::Daemon;
use super::process;

/// nginx serving one file written for its `http` context (like `conf.d/registry.conf`, with its
/// own `server { listen 127.0.0.1:PORT; ... }`), as one foreground process; killed on drop.
pub struct Nginx {
    // Fields drop in order: the process goes before its directory.
    _daemon: Daemon,
    port: u16,
    _dir: TempDir,
}

impl Nginx {
    /// Validates with `nginx -t` (panics with its output if that fails), starts nginx and waits
    /// until `port` (the one the conf listens on) accepts connections.
    pub fn start(http_conf: &Path, port: u16) -> Nginx {
        assert!(
            !super::port_open(port),
            "127.0.0.1:{port} is already in use before nginx starts"
        );
        let dir = TempDir::new("nginx");
        let conf = write_main_conf(&dir, http_conf);
        let (ok, out) = test_main_conf(&dir, &conf);
        assert!(ok, "nginx -t rejects {}:\n{out}", http_conf.display());
        let mut cmd = nginx_cmd(&dir, &conf);
        let mut daemon = Daemon::spawn("nginx", &mut cmd, &dir.join("stderr.log"));
        daemon.wait_for_port(port, Duration::from_secs(20));
        Nginx {
            _daemon: daemon,
            port,
            _dir: dir,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

/// `nginx -t` on `http_conf` inside the same main config `Nginx::start` uses: (passed, output).
pub fn nginx_test_config(http_conf: &Path) -> (bool, String) {
    let dir = TempDir::new("nginx-t");
    let conf = write_main_conf(&dir, http_conf);
    test_main_conf(&dir, &conf)
}

/// The main config around the generated file. Besides isolation (pid, logs and temp paths in
/// `dir`, foreground, single process), it mirrors Debian's stock `http` block, which is where a
/// `conf.d/*.conf` gets included on a real server: mime.types and a default type are in force,
/// so a config that forgets to override them (a tag named `v1.json`) fails here as it would
/// there.
fn write_main_conf(dir: &TempDir, http_conf: &Path) -> PathBuf {
    let http_conf = fs::canonicalize(http_conf)
        .unwrap_or_else(|e| panic!("nginx conf {}: {e}", http_conf.display()));
    let d = dir.path().display();
    let text = [
        "daemon off;".to_string(),
        "master_process off;".to_string(),
        format!("pid {d}/nginx.pid;"),
        format!("error_log {d}/error.log;"),
        "events {}".to_string(),
        "http {".to_string(),
        "    access_log off;".to_string(),
        "    sendfile on;".to_string(),
        "    include /etc/nginx/mime.types;".to_string(),
        "    default_type application/octet-stream;".to_string(),
        format!("    client_body_temp_path {d}/client_body;"),
        format!("    proxy_temp_path {d}/proxy;"),
        format!("    fastcgi_temp_path {d}/fastcgi;"),
        format!("    uwsgi_temp_path {d}/uwsgi;"),
        format!("    scgi_temp_path {d}/scgi;"),
        format!("    include {};", http_conf.display()),
        "}".to_string(),
        String::new(),
    ]
    .join("\n");
    let conf = dir.join("nginx.conf");
    fs::write(&conf, text).unwrap_or_else(|e| panic!("write {}: {e}", conf.display()));
    conf
}

/// `-e` points the startup error log (compiled in as /var/log/nginx/error.log) into `dir`, so
/// nothing outside it is opened.
fn nginx_cmd(dir: &TempDir, conf: &Path) -> Command {
    let mut cmd = Command::new("nginx");
    cmd.arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(conf)
        .arg("-e")
        .arg(dir.join("error.log"));
    cmd
}

fn test_main_conf(dir: &TempDir, conf: &Path) -> (bool, String) {
    let mut cmd = nginx_cmd(dir, conf);
    cmd.arg("-t");
    let out = process::output(&mut cmd);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Cloudflare Pages, locally: `wrangler pages dev DIR` (npm wrangler, offline, no login), which
/// applies `_worker.js`, `_routes.json`, `_headers` and `_redirects` as Pages does. Stopped
/// (with its workerd children) on drop.
pub struct Wrangler {
    daemon: Daemon,
    proxy: PlainHttpOnly,
    _dir: TempDir,
}

impl Wrangler {
    pub fn start(site: &Path, port: u16) -> Wrangler {
        Wrangler::start_with_bindings(site, port, &[])
    }

    /// The same, with `--binding KEY=VALUE` for each pair (how `pages dev` takes what a
    /// deployment holds as secrets).
    pub fn start_with_bindings(site: &Path, port: u16, bindings: &[(&str, &str)]) -> Wrangler {
        let dir = TempDir::new("wrangler");
        let mut cmd = Command::new(super::node_bin("wrangler"));
        cmd.args(["pages", "dev"]).arg(site);
        for (key, value) in bindings {
            cmd.arg("--binding").arg(format!("{key}={value}"));
        }
        cmd.args(["--ip", "127.0.0.1", "--port", &port.to_string()])
            .args(["--compatibility-date", "2024-01-01", "--log-level", "info"])
            // Each instance its own devtools port: the default, 9229, is shared, and two
            // wranglers started at once (tests run in parallel) race for it.
            .args(["--inspector-port", &super::free_port().to_string()])
            // Offline: no telemetry, no fetch of the request.cf object, no state in $HOME.
            .env("WRANGLER_SEND_METRICS", "false")
            .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
            .env("HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .env("NO_COLOR", "1")
            .current_dir(dir.path());
        let mut daemon = Daemon::spawn("wrangler", &mut cmd, &dir.join("wrangler.log"));
        daemon.wait_for_port(port, Duration::from_secs(60));
        let proxy = PlainHttpOnly::start(port);
        Wrangler {
            daemon,
            proxy,
            _dir: dir,
        }
    }

    /// The port clients use: wrangler behind [`PlainHttpOnly`].
    pub fn port(&self) -> u16 {
        self.proxy.port
    }

    /// Everything wrangler printed so far.
    pub fn log(&self) -> String {
        self.daemon.log()
    }
}

/// A byte-for-byte TCP pass-through that closes connections opening with a TLS
/// handshake. skopeo and dockerd probe HTTPS before falling back to plain HTTP;
/// nginx answers the probe at once, but wrangler's dev server holds it for about
/// 15 s, which would make every skopeo call that slow. HTTP bytes pass unchanged.
pub struct PlainHttpOnly {
    pub port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl PlainHttpOnly {
    pub fn start(upstream: u16) -> PlainHttpOnly {
        use std::net::{Shutdown, TcpListener, TcpStream};
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().unwrap().port();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopping.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(client) = client else { continue };
                std::thread::spawn(move || {
                    let mut first = [0u8; 1];
                    // 0x16: a TLS handshake record.
                    if client
                        .peek(&mut first)
                        .map(|n| n == 0 || first[0] == 0x16)
                        .unwrap_or(true)
                    {
                        let _ = client.shutdown(Shutdown::Both);
                        return;
                    }
                    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                        return;
                    };
                    let (mut c_read, mut s_write) =
                        (client.try_clone().unwrap(), server.try_clone().unwrap());
                    let up = std::thread::spawn(move || {
                        let _ = std::io::copy(&mut c_read, &mut s_write);
                        let _ = s_write.shutdown(Shutdown::Write);
                    });
                    let (mut s_read, mut c_write) = (server, client);
                    let _ = std::io::copy(&mut s_read, &mut c_write);
                    let _ = c_write.shutdown(Shutdown::Both);
                    let _ = up.join();
                });
            }
        });
        PlainHttpOnly { port, stop }
    }
}

impl Drop for PlainHttpOnly {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// The reference registry (Debian's docker-registry, distribution 2.8), the control of the
/// client matrix: the same images pushed into it must pull the same way from it.
pub struct ReferenceRegistry {
    _daemon: Daemon,
    port: u16,
    _dir: TempDir,
}

impl ReferenceRegistry {
    pub fn start() -> ReferenceRegistry {
        let dir = TempDir::new("distribution");
        let port = super::free_port();
        let config = dir.join("config.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.join("data").display()
            ),
        )
        .unwrap();
        let mut cmd = Command::new("docker-registry");
        cmd.arg("serve").arg(&config);
        let mut daemon = Daemon::spawn("docker-registry", &mut cmd, &dir.join("registry.log"));
        daemon.wait_for_port(port, Duration::from_secs(20));
        ReferenceRegistry {
            _daemon: daemon,
            port,
            _dir: dir,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Copies every tag of the fixture from a host serving it (at `from`), digests kept:
    /// images with `skopeo copy --all --preserve-digests`, referrers fallback indexes (which
    /// list artifacts, and which skopeo will not copy unchanged: "must be converted") with
    /// `crane copy`, which copies any manifest as it is.
    pub fn load(&self, from: u16, f: &super::fixture::Fixture) {
        for (name, tag, digest, _, _) in f.tags() {
            let src = format!("127.0.0.1:{from}/{name}:{tag}");
            let dst = format!("127.0.0.1:{}/{name}:{tag}", self.port);
            let out = if f.is_generated(&name, &digest) {
                process::output(Command::new(super::tools::go_bin("crane")).args([
                    "copy",
                    "--insecure",
                    &src,
                    &dst,
                ]))
            } else {
                super::skopeo(&[
                    "copy",
                    "--all",
                    "--preserve-digests",
                    "--src-tls-verify=false",
                    "--dest-tls-verify=false",
                    &format!("docker://{src}"),
                    &format!("docker://{dst}"),
                ])
            };
            assert!(
                out.status.success(),
                "copy {src}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
