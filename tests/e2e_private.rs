//! Private registries (issue 13): nginx, Apache (`.htaccess` and vhost) and Caddy checking an
//! htpasswd file, and the Pages worker checking PBKDF2 entries from a secret. One function
//! holds every host to the same rule: without credentials, with a wrong password or an
//! unknown user, every path under `/v2/` (hits and misses alike) answers 401 with the Basic
//! challenge and the registry's JSON error, never content; with them the shared HTTP contract
//! passes and every client logs in and pulls.

use crate::support::fixture::{self, Fixture};
use crate::support::matrix::assert_clients_with_credentials;
use crate::support::registry::{Expect, assert_http};
use crate::support::servers::{Apache, ApacheSite, Caddy};
use crate::support::{
    Containerd, Dockerd, Nginx, TempDir, Wrangler, free_port, http, process, run_bin, run_bin_ok,
};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const USER: &str = "alice";
const PASSWORD: &str = "correct horse battery";

/// A bcrypt htpasswd file outside the tree, made by Apache's own `htpasswd -B`.
fn htpasswd(dir: &Path) -> PathBuf {
    let file = dir.join("registry.htpasswd");
    process::run(
        Command::new("htpasswd")
            .args(["-c", "-b", "-B", "-C", "5"])
            .arg(&file)
            .args([USER, PASSWORD]),
    );
    file
}

fn basic(user: &str, password: &str) -> String {
    let raw = format!("{user}:{password}");
    // The test's own base64, independent of the product's.
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = raw.as_bytes();
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        out.push(A[(n >> 18) as usize & 63] as char);
        out.push(A[(n >> 12) as usize & 63] as char);
        out.push(if c.len() > 1 {
            A[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if c.len() > 2 {
            A[n as usize & 63] as char
        } else {
            '='
        });
    }
    format!("Basic {out}")
}

/// Every path a client could ask for: each tag and digest, blob, list, referrers index, the
/// catalog, `/v2/`, and a miss of each kind (a subject nothing refers to included).
fn every_path(f: &Fixture) -> Vec<String> {
    let mut paths = vec!["/v2/".to_string(), "/v2/_catalog".to_string()];
    for (name, tag, digest, _, _) in f.tags() {
        paths.push(format!("/v2/{name}/manifests/{tag}"));
        paths.push(format!("/v2/{name}/manifests/{digest}"));
        paths.push(format!("/v2/{name}/tags/list"));
    }
    for (name, digest, _) in f.blobs() {
        paths.push(format!("/v2/{name}/blobs/{digest}"));
    }
    for (name, subject, _) in f.referrers() {
        paths.push(format!("/v2/{name}/referrers/{subject}"));
    }
    let zero = format!("sha256:{}", "0".repeat(64));
    paths.extend([
        // The empty referrers index is an answer too: it says the subject exists.
        format!("/v2/demo/hello/referrers/{zero}"),
        "/v2/demo/hello/manifests/no-such-tag".to_string(),
        format!("/v2/demo/hello/manifests/{zero}"),
        format!("/v2/demo/hello/blobs/{zero}"),
        "/v2/no/such/repo/tags/list".to_string(),
        "/v2/_errors/unauthorized.json".to_string(),
        "/v2".to_string(),
    ]);
    paths.sort();
    paths.dedup();
    paths
}

fn assert_private(port: u16, f: &Fixture, secret_file: Option<&Path>) {
    let unauthorized = fs::read(f.tree().join("v2/_errors/unauthorized.json")).unwrap();
    let strangers: [Option<String>; 3] = [
        None,
        Some(basic(USER, "wrong")),
        Some(basic("mallory", PASSWORD)),
    ];
    let paths = every_path(f);
    for path in &paths {
        for who in &strangers {
            for method in ["GET", "HEAD"] {
                let headers: Vec<(&str, &str)> =
                    who.iter().map(|h| ("Authorization", h.as_str())).collect();
                let r = http::request_with(method, port, path, &headers);
                let what = format!("{method} {path} as {who:?}");
                assert_eq!(r.status, 401, "{what}: {:?}", r.headers);
                assert_eq!(
                    r.header_all("WWW-Authenticate"),
                    vec![r#"Basic realm="registry""#],
                    "{what}"
                );
                if method == "GET" {
                    assert_eq!(r.body, unauthorized, "{what}: {}", r.body_text());
                    assert_eq!(r.header("Content-Type"), Some("application/json"), "{what}");
                }
            }
        }
    }
    // The credentials file is never served, whatever the path.
    if let Some(file) = secret_file {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let auth = basic(USER, PASSWORD);
        for path in [
            format!("/{name}"),
            format!("/v2/{name}"),
            format!("/v2/../{name}"),
            format!("/v2/%2e%2e/{name}"),
            format!("/v2/../../{name}"),
        ] {
            for headers in [vec![], vec![("Authorization", auth.as_str())]] {
                let r = http::request_with("GET", port, &path, &headers);
                assert!(
                    !r.body_text().contains("$2y$"),
                    "{path}: the htpasswd file was served"
                );
            }
        }
    }
    // With the credentials: the whole contract, as for an open host.
    let auth = basic(USER, PASSWORD);
    http::with_headers(&[("Authorization", &auth)], || {
        assert_http(port, f, Expect::ALL)
    });
    // The probe sees the deployment as a client with the credentials does: no failure.
    let probe = run_bin(
        [
            "probe",
            &format!("http://127.0.0.1:{port}"),
            f.tree().to_str().unwrap(),
            "--user",
            &format!("{USER}:{PASSWORD}"),
            "--format",
            "json",
        ],
        f.dir.path(),
    );
    let report: serde_json::Value = serde_json::from_slice(&probe.stdout)
        .unwrap_or_else(|_| panic!("probe: {}", String::from_utf8_lossy(&probe.stderr)));
    assert_eq!(probe.status.code(), Some(0), "probe --user: {report}");
    assert_eq!(report["failures"], serde_json::json!([]), "{report}");
    let containerd = Containerd::start();
    let dockerd = Dockerd::start();
    assert_clients_with_credentials(port, f, USER, PASSWORD, &containerd, &dockerd);
}

/// The runnable fixture, prepared, and an htpasswd file beside (not inside) its tree.
fn private_tree() -> (Fixture, PathBuf) {
    let f = fixture::build("runnable", &[]);
    run_bin_ok(["prepare", f.tree().to_str().unwrap()], f.dir.path());
    let file = htpasswd(f.dir.path());
    (f, file)
}

#[test]
fn nginx_private_registry_answers_only_with_credentials() {
    let (f, file) = private_tree();
    let port = free_port();
    let conf = f.dir.join("registry.conf");
    let listen = format!("127.0.0.1:{port}");
    run_bin_ok(
        [
            "nginx",
            f.tree().to_str().unwrap(),
            "--listen",
            &listen,
            "--htpasswd",
            file.to_str().unwrap(),
            "-o",
            conf.to_str().unwrap(),
        ],
        f.dir.path(),
    );
    let nginx = Nginx::start(&conf, port);
    assert_private(nginx.port(), &f, Some(&file));
}

#[test]
fn apache_htaccess_private_registry_answers_only_with_credentials() {
    let (f, file) = private_tree();
    let tree = f.tree();
    let htaccess = tree.join(".htaccess");
    run_bin_ok(
        [
            "apache",
            tree.to_str().unwrap(),
            "--htpasswd",
            file.to_str().unwrap(),
            "-o",
            htaccess.to_str().unwrap(),
        ],
        f.dir.path(),
    );
    let apache = Apache::start(ApacheSite::Htaccess { tree: &tree }, free_port());
    assert_private(apache.port(), &f, Some(&file));
}

#[test]
fn apache_vhost_private_registry_answers_only_with_credentials() {
    let (f, file) = private_tree();
    let port = free_port();
    let conf = f.dir.join("registry-vhost.conf");
    let listen = format!("127.0.0.1:{port}");
    run_bin_ok(
        [
            "apache",
            f.tree().to_str().unwrap(),
            "--vhost",
            "--listen",
            &listen,
            "--htpasswd",
            file.to_str().unwrap(),
            "-o",
            conf.to_str().unwrap(),
        ],
        f.dir.path(),
    );
    let apache = Apache::start(ApacheSite::Vhost { conf: &conf }, port);
    assert_private(apache.port(), &f, Some(&file));
}

#[test]
fn caddy_private_registry_answers_only_with_credentials() {
    let (f, file) = private_tree();
    let port = free_port();
    let site = f.dir.join("registry.caddy");
    let listen = format!("127.0.0.1:{port}");
    run_bin_ok(
        [
            "caddy",
            f.tree().to_str().unwrap(),
            "--listen",
            &listen,
            "--htpasswd",
            file.to_str().unwrap(),
            "-o",
            site.to_str().unwrap(),
        ],
        f.dir.path(),
    );
    let caddy = Caddy::start(&site, port);
    assert_private(caddy.port(), &f, Some(&file));
}

#[test]
fn pages_private_registry_answers_only_with_credentials() {
    let (f, _) = private_tree();
    let tree = f.tree();
    run_bin_ok(
        ["cloudflare", tree.to_str().unwrap(), "--private"],
        f.dir.path(),
    );
    let mut cmd = Command::new(crate::support::bin());
    cmd.args(["cloudflare-credentials", USER])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    use std::io::Write;
    writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let secret = String::from_utf8(out.stdout).unwrap();
    assert!(
        secret.starts_with("alice:pbkdf2-sha256$100000$"),
        "{secret}"
    );
    assert!(!secret.contains(PASSWORD));
    let pages = Wrangler::start_with_bindings(
        &tree,
        free_port(),
        &[("REGISTRISH_CREDENTIALS", secret.trim())],
    );
    assert_private(pages.port(), &f, None);
}

/// A worker deployed without its secret lets no one in (it fails closed).
#[test]
fn pages_private_registry_without_its_secret_refuses_everyone() {
    let (f, _) = private_tree();
    let tree = f.tree();
    run_bin_ok(
        ["cloudflare", tree.to_str().unwrap(), "--private"],
        f.dir.path(),
    );
    let pages = Wrangler::start(&tree, free_port());
    let auth = basic(USER, PASSWORD);
    for path in ["/v2/", "/v2/_catalog"] {
        let r = http::request_with("GET", pages.port(), path, &[("Authorization", &auth)]);
        assert_eq!(r.status, 401, "{path}");
    }
}

/// What is refused before anything is written: a credentials file inside the tree, MD5 and
/// plain entries, hosts that cannot check credentials, and a private registry whose blobs
/// would be public elsewhere.
#[test]
fn private_registry_settings_that_cannot_be_kept_are_refused() {
    let (f, file) = private_tree();
    let tree = f.tree();
    let tree_s = tree.to_str().unwrap();
    let inside = tree.join("users.htpasswd");
    fs::copy(&file, &inside).unwrap();
    let out = run_bin(
        ["nginx", tree_s, "--htpasswd", inside.to_str().unwrap()],
        f.dir.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("[credentials-in-tree]"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    fs::remove_file(&inside).unwrap();
    let scratch = TempDir::new("htpasswd");
    for (entry, says) in [
        ("alice:$apr1$Zk3y6Jw8$5d2Zc0sJ2mR5q0mYkQeXh/", "MD5"),
        ("alice:{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=", "SHA-1"),
        ("alice:hunter2", "plain password"),
    ] {
        let bad = scratch.join("bad.htpasswd");
        fs::write(&bad, format!("{entry}\n")).unwrap();
        let out = run_bin(
            ["caddy", tree_s, "--htpasswd", bad.to_str().unwrap()],
            f.dir.path(),
        );
        assert_eq!(out.status.code(), Some(2), "{entry}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(says),
            "{entry}"
        );
        assert!(out.stdout.is_empty());
    }
    let file_s = file.to_str().unwrap();
    for (args, says) in [
        (
            vec!["netlify", tree_s, "--htpasswd", file_s],
            "clear-text passwords",
        ),
        (
            vec!["cloudflare", tree_s, "--htpasswd", file_s],
            "cloudflare --private",
        ),
        (
            vec!["s3", tree_s, "--bucket", "b", "--htpasswd", file_s],
            "bucket private",
        ),
        (
            vec![
                "nginx",
                tree_s,
                "--htpasswd",
                file_s,
                "--blobs-url",
                "https://blobs.example.org",
            ],
            "would be public",
        ),
    ] {
        let out = run_bin(&args, f.dir.path());
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(says),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(!tree.join("_worker.js").exists() && !tree.join("_headers").exists());
}
