//! Apache and Caddy serving generated configs, each as one foreground process killed on drop.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::TempDir;
use super::daemon::Daemon;
use super::process;

const APACHE_MODULES: &str = "/usr/lib/apache2/modules";

/// Apache 2.4 (`apache2 -f CONF -DFOREGROUND`) with a main config written here.
pub struct Apache {
    // Fields drop in order: the process goes before its directory.
    _daemon: Daemon,
    port: u16,
    dir: TempDir,
}

/// What the main config around the generated text looks like.
pub enum ApacheSite<'a> {
    /// `TREE` is the document root, `.htaccess` in it is read with `AllowOverride FileInfo`
    /// (what shared hosts grant), on 127.0.0.1:`port`.
    Htaccess { tree: &'a Path },
    /// The generated `<VirtualHost>` file is included as is (it has its own `Listen`).
    Vhost { conf: &'a Path },
}

impl Apache {
    /// Validates with `apache2 -t` (panics with its output if that fails), starts Apache and
    /// waits until `port` accepts connections.
    pub fn start(site: ApacheSite, port: u16) -> Apache {
        assert!(
            !super::port_open(port),
            "127.0.0.1:{port} is already in use before Apache starts"
        );
        let dir = TempDir::new("apache");
        let conf = write_apache_conf(&dir, &site, port);
        let (ok, out) = apache_test(&conf);
        assert!(ok, "apache2 -t rejects the config:\n{out}");
        let mut cmd = Command::new("apache2");
        cmd.arg("-f").arg(&conf).arg("-DFOREGROUND");
        let mut daemon = Daemon::spawn("apache2", &mut cmd, &dir.join("stderr.log"));
        daemon.wait_for_port(port, Duration::from_secs(20));
        Apache {
            _daemon: daemon,
            port,
            dir,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Apache's error log so far (useful in assertion messages).
    pub fn error_log(&self) -> String {
        fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

/// `apache2 -t` on `site` inside the same main config `Apache::start` uses: (passed, output).
pub fn apache_test_config(site: ApacheSite, port: u16) -> (bool, String) {
    let dir = TempDir::new("apache-t");
    let conf = write_apache_conf(&dir, &site, port);
    apache_test(&conf)
}

fn apache_test(conf: &Path) -> (bool, String) {
    let mut cmd = Command::new("apache2");
    cmd.arg("-t").arg("-f").arg(conf);
    let out = process::output(&mut cmd);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The main config. Besides isolation (pid, logs and runtime files in `dir`), it mirrors
/// Debian's stock apache2.conf and the modules Debian enables by default (mime.types typing
/// by extension, mod_dir, mod_autoindex with `Options Indexes`, mod_deflate's types, a
/// denied `/`), plus mod_rewrite and mod_headers, so a config that forgets to override a
/// default (a tag named `v1.json`, a directory listing) fails here as it would there.
fn write_apache_conf(dir: &TempDir, site: &ApacheSite, port: u16) -> PathBuf {
    let d = dir.path().display();
    let mut lines = vec![
        format!("ServerRoot {d}"),
        format!("DefaultRuntimeDir {d}"),
        format!("PidFile {d}/apache2.pid"),
        format!("ErrorLog {d}/error.log"),
        "LogLevel warn".to_string(),
        "ServerName 127.0.0.1".to_string(),
        // Ignored unless started as root, which then drops to Debian's usual user.
        "User www-data".to_string(),
        "Group www-data".to_string(),
        // Two workers' worth of threads: enough for the clients, quick to start.
        "StartServers 1".to_string(),
        "ServerLimit 2".to_string(),
        "ThreadsPerChild 16".to_string(),
        "MaxRequestWorkers 32".to_string(),
    ];
    for module in [
        "mpm_event",
        "authz_core",
        "authz_host",
        // Private registries (--htpasswd): Basic authentication from a file.
        "auth_basic",
        "authn_core",
        "authn_file",
        "authz_user",
        "alias",
        "dir",
        "autoindex",
        "env",
        "mime",
        "negotiation",
        "setenvif",
        "filter",
        "deflate",
        "headers",
        "rewrite",
    ] {
        lines.push(format!(
            "LoadModule {module}_module {APACHE_MODULES}/mod_{module}.so"
        ));
    }
    lines.extend(
        [
            "TypesConfig /etc/mime.types",
            "DirectoryIndex index.html",
            "AddOutputFilterByType DEFLATE text/html text/plain text/xml text/css text/javascript",
            "AddOutputFilterByType DEFLATE application/x-javascript application/javascript application/ecmascript",
            "AddOutputFilterByType DEFLATE application/rss+xml application/wasm application/xml",
            "AccessFileName .htaccess",
            "<FilesMatch \"^\\.ht\">",
            "    Require all denied",
            "</FilesMatch>",
            "<Directory />",
            "    Options FollowSymLinks",
            "    AllowOverride None",
            "    Require all denied",
            "</Directory>",
        ]
        .map(String::from),
    );
    match site {
        ApacheSite::Htaccess { tree } => {
            let tree =
                fs::canonicalize(tree).unwrap_or_else(|e| panic!("tree {}: {e}", tree.display()));
            let t = tree.display();
            lines.extend([
                format!("Listen 127.0.0.1:{port}"),
                format!("DocumentRoot \"{t}\""),
                format!("<Directory \"{t}\">"),
                // Debian's /var/www defaults, and the override classes .htaccess needs
                // (AuthConfig only for a private registry).
                "    Options Indexes FollowSymLinks".to_string(),
                "    AllowOverride FileInfo AuthConfig".to_string(),
                "    Require all granted".to_string(),
                "</Directory>".to_string(),
            ]);
        }
        ApacheSite::Vhost { conf } => {
            let conf = fs::canonicalize(conf)
                .unwrap_or_else(|e| panic!("vhost conf {}: {e}", conf.display()));
            lines.push(format!("Include \"{}\"", conf.display()));
        }
    }
    lines.push(String::new());
    let conf = dir.join("apache2.conf");
    fs::write(&conf, lines.join("\n")).unwrap_or_else(|e| panic!("write {}: {e}", conf.display()));
    conf
}

/// Caddy 2 (`caddy run --config Caddyfile --adapter caddyfile`) serving a generated site
/// block, with the global options a local test needs (no admin endpoint, no certificates)
/// and its state (autosave, storage) in its own directory.
pub struct Caddy {
    daemon: Daemon,
    port: u16,
    _dir: TempDir,
}

impl Caddy {
    /// Validates with `caddy validate` (panics with its output if that fails), starts Caddy
    /// and waits until `port` accepts connections.
    pub fn start(site_block: &Path, port: u16) -> Caddy {
        assert!(
            !super::port_open(port),
            "127.0.0.1:{port} is already in use before Caddy starts"
        );
        let dir = TempDir::new("caddy");
        let conf = write_caddyfile(&dir, site_block);
        let (ok, out) = caddy_validate(&dir, &conf);
        assert!(
            ok,
            "caddy validate rejects {}:\n{out}",
            site_block.display()
        );
        let mut cmd = caddy_cmd(&dir);
        cmd.args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&conf);
        let mut daemon = Daemon::spawn("caddy", &mut cmd, &dir.join("caddy.log"));
        daemon.wait_for_port(port, Duration::from_secs(30));
        Caddy {
            daemon,
            port,
            _dir: dir,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Everything Caddy logged so far.
    pub fn log(&self) -> String {
        self.daemon.log()
    }
}

/// `caddy validate` on `site_block` with the same global options `Caddy::start` uses:
/// (passed, output).
pub fn caddy_validate_config(site_block: &Path) -> (bool, String) {
    let dir = TempDir::new("caddy-v");
    let conf = write_caddyfile(&dir, site_block);
    caddy_validate(&dir, &conf)
}

fn write_caddyfile(dir: &TempDir, site_block: &Path) -> PathBuf {
    let block = fs::read_to_string(site_block)
        .unwrap_or_else(|e| panic!("read {}: {e}", site_block.display()));
    let conf = dir.join("Caddyfile");
    let text = format!("{{\n\tadmin off\n\tauto_https off\n}}\n\n{block}");
    fs::write(&conf, text).unwrap_or_else(|e| panic!("write {}: {e}", conf.display()));
    conf
}

/// Caddy with $HOME and the XDG dirs in `dir`, so it writes nothing elsewhere.
fn caddy_cmd(dir: &TempDir) -> Command {
    let mut cmd = Command::new("caddy");
    cmd.env("HOME", dir.path())
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .current_dir(dir.path());
    cmd
}

fn caddy_validate(dir: &TempDir, conf: &Path) -> (bool, String) {
    let mut cmd = caddy_cmd(dir);
    cmd.args(["validate", "--adapter", "caddyfile", "--config"])
        .arg(conf);
    let out = process::output(&mut cmd);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Python's static file server on `dir` (it knows nothing of registries): the hostile-request
/// control, and a plain origin for blobs redirected with `--blobs-url`. Killed on drop.
pub struct PlainStatic {
    _daemon: Daemon,
    port: u16,
}

impl PlainStatic {
    pub fn start(dir: &Path, log: &Path) -> PlainStatic {
        let port = super::free_port();
        let mut cmd = Command::new("python3");
        cmd.args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .arg("--directory")
        .arg(dir);
        let mut daemon = Daemon::spawn("python3 -m http.server", &mut cmd, log);
        daemon.wait_for_port(port, Duration::from_secs(20));
        PlainStatic {
            _daemon: daemon,
            port,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}
