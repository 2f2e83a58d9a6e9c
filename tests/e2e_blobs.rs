//! Blobs on another origin (`--blobs-url`, issue 12): an image with a 40 MiB layer, more than
//! Cloudflare Pages takes, served as a Pages site without blobs (`wrangler pages dev`) whose
//! worker redirects every blob to a plain static origin holding the tree; and nginx, Apache
//! and Caddy redirecting the same way. Real clients pull through the redirects and get the
//! digests the builder recorded.

use crate::support::fixture::{self, Fixture, sha256};
use crate::support::matrix::{assert_crane, assert_every_client_with_blobs_elsewhere};
use crate::support::registry::assert_clients;
use crate::support::servers::{Apache, ApacheSite, Caddy, PlainStatic};
use crate::support::{Containerd, Dockerd, Nginx, Wrangler, free_port, http, run_bin_ok};
use std::path::Path;

const LARGE_MIB: &str = "40";
const PAGES_LIMIT: u64 = 25 * 1024 * 1024;

/// The runnable fixture plus demo/large, prepared, and a plain origin serving its blobs.
fn large_tree() -> (Fixture, PlainStatic, String) {
    let f = fixture::build("runnable", &["--large-layer-mib", LARGE_MIB]);
    run_bin_ok(["prepare", f.tree().to_str().unwrap()], f.dir.path());
    let origin = PlainStatic::start(&f.tree(), &f.dir.join("origin.log"));
    let url = format!("http://127.0.0.1:{}", origin.port());
    (f, origin, url)
}

/// Every blob of the tree answers 307 to the same key on the origin, GET and HEAD, with its
/// digest and the API version on the redirect; the origin has exactly those bytes. A blob the
/// registry lacks is a miss, here (`local_miss`) or at the origin.
fn assert_blob_redirects(port: u16, f: &Fixture, origin: &str, local_miss: bool) {
    for (name, digest, size) in f.blobs() {
        let path = format!("/v2/{name}/blobs/{digest}");
        for method in ["GET", "HEAD"] {
            let r = http::request(method, port, &path);
            assert_eq!(r.status, 307, "{method} {path}: {:?}", r.headers);
            assert_eq!(
                r.header("Location"),
                Some(format!("{origin}{path}").as_str()),
                "{method} {path}"
            );
            assert_eq!(r.header("Docker-Content-Digest"), Some(digest.as_str()));
            assert_eq!(
                r.header("Docker-Distribution-API-Version"),
                Some("registry/2.0")
            );
        }
        if size < 1024 * 1024 {
            let o = http::get(
                origin
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap(),
                &path,
            );
            assert_eq!((o.status, sha256(&o.body)), (200, digest.clone()), "{path}");
        }
    }
    let (name, ..) = f.blobs().into_iter().next().unwrap();
    let missing = format!("/v2/{name}/blobs/sha256:{}", "0".repeat(64));
    let r = http::get(port, &missing);
    if local_miss {
        assert_eq!(r.status, 404, "{missing}: {:?}", r.headers);
        assert!(r.body_text().contains("BLOB_UNKNOWN"), "{}", r.body_text());
    } else {
        assert_eq!(r.status, 307, "{missing}");
    }
}

fn files_over(dir: &Path, limit: u64) -> Vec<String> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file() && e.metadata().unwrap().len() > limit)
        .map(|e| e.path().display().to_string())
        .collect()
}

#[test]
fn pages_serves_a_40_mib_layer_through_a_redirect_to_every_client() {
    let (f, _origin, url) = large_tree();
    let tree = f.tree();
    let site = f.dir.join("site");
    let (_, big, size) = f
        .blobs()
        .into_iter()
        .max_by_key(|(_, _, size)| *size)
        .unwrap();
    assert!(size > PAGES_LIMIT, "the fixture's layer is {size} bytes");
    run_bin_ok(
        [
            "cloudflare",
            tree.to_str().unwrap(),
            "--blobs-url",
            &url,
            "-o",
            site.to_str().unwrap(),
        ],
        f.dir.path(),
    );
    // The site holds no blob and no file Pages would refuse.
    assert_eq!(files_over(&site, PAGES_LIMIT), Vec::<String>::new());
    assert!(
        !walkdir::WalkDir::new(site.join("v2")).into_iter().any(|e| e
            .unwrap()
            .path()
            .to_string_lossy()
            .contains("/blobs/")),
        "a blob in the site"
    );
    assert!(
        !files_over(&tree, PAGES_LIMIT).is_empty(),
        "{big} not in TREE"
    );
    let pages = Wrangler::start(&site, free_port());
    assert_blob_redirects(pages.port(), &f, &url, false);
    let containerd = Containerd::start();
    let dockerd = Dockerd::start();
    assert_every_client_with_blobs_elsewhere(pages.port(), &f, &containerd, &dockerd);
}

fn through_each_client(port: u16, f: &Fixture) {
    let containerd = Containerd::start();
    let dockerd = Dockerd::start();
    assert_clients(port, f, &containerd, &dockerd);
    assert_crane(port, f);
}

#[test]
fn nginx_redirects_blobs_and_clients_pull_through() {
    let (f, _origin, url) = large_tree();
    let port = free_port();
    let conf = f.dir.join("registry.conf");
    let listen = format!("127.0.0.1:{port}");
    let tree = f.tree();
    run_bin_ok(
        [
            "nginx",
            tree.to_str().unwrap(),
            "--listen",
            &listen,
            "--blobs-url",
            &url,
            "-o",
            conf.to_str().unwrap(),
        ],
        f.dir.path(),
    );
    let nginx = Nginx::start(&conf, port);
    assert_blob_redirects(nginx.port(), &f, &url, true);
    through_each_client(nginx.port(), &f);
}

#[test]
fn apache_redirects_blobs_and_clients_pull_through() {
    let (f, _origin, url) = large_tree();
    let tree = f.tree();
    let htaccess = tree.join(".htaccess");
    run_bin_ok(
        [
            "apache",
            tree.to_str().unwrap(),
            "--blobs-url",
            &url,
            "-o",
            htaccess.to_str().unwrap(),
        ],
        f.dir.path(),
    );
    let apache = Apache::start(ApacheSite::Htaccess { tree: &tree }, free_port());
    assert_blob_redirects(apache.port(), &f, &url, true);
    through_each_client(apache.port(), &f);
}

#[test]
fn caddy_redirects_blobs_and_clients_pull_through() {
    let (f, _origin, url) = large_tree();
    let port = free_port();
    let site = f.dir.join("registry.caddy");
    let listen = format!("127.0.0.1:{port}");
    run_bin_ok(
        [
            "caddy",
            f.tree().to_str().unwrap(),
            "--listen",
            &listen,
            "--blobs-url",
            &url,
            "-o",
            site.to_str().unwrap(),
        ],
        f.dir.path(),
    );
    let caddy = Caddy::start(&site, port);
    assert_blob_redirects(caddy.port(), &f, &url, true);
    through_each_client(caddy.port(), &f);
}

/// The redirect rules as Netlify's own parser reads them: one forced 307 per blob, before
/// the JSON 404 for the repository's blobs, so the first match for a blob is the redirect.
#[test]
fn netlify_redirects_every_blob_by_its_own_rule() {
    let f = fixture::build("basic", &[]);
    let tree = f.tree();
    run_bin_ok(["prepare", tree.to_str().unwrap()], f.dir.path());
    let site = f.dir.join("site");
    let url = "https://blobs.example.org/mirror";
    run_bin_ok(
        [
            "netlify",
            tree.to_str().unwrap(),
            "--blobs-url",
            url,
            "-o",
            site.to_str().unwrap(),
        ],
        f.dir.path(),
    );
    let answer = crate::e2e_netlify::netlify_answer(&site, &[]);
    assert_eq!(answer["redirect_errors"], serde_json::json!([]), "{answer}");
    let redirects = answer["redirects"].as_array().unwrap();
    let first_blob_miss = redirects
        .iter()
        .position(|r| r["status"] == 404 && r["from"].as_str().unwrap().contains("/blobs/"))
        .expect("a JSON 404 rule for blobs");
    for (name, digest, _) in f.blobs() {
        let path = format!("/v2/{name}/blobs/{digest}");
        let rules: Vec<(usize, &serde_json::Value)> = redirects
            .iter()
            .enumerate()
            .filter(|(_, r)| r["from"] == path.as_str())
            .collect();
        assert_eq!(rules.len(), 1, "{path}: {rules:?}");
        let (at, rule) = rules[0];
        assert!(at < first_blob_miss, "{path}: after the miss rule");
        assert_eq!(rule["status"], 307, "{rule}");
        assert_eq!(rule["force"], true, "{rule}");
        assert_eq!(rule["to"], format!("{url}{path}").as_str(), "{rule}");
        assert!(!site.join(&path[1..]).exists(), "{path} deployed");
    }
    assert!(site.join("v2/_catalog").is_file());
}
