//! Apache serving generated configs, pulled by real clients: the `.htaccess` a shared host
//! reads, and the `--vhost` form a server config includes.

use crate::support::fixture::{self, Fixture};
use crate::support::matrix::assert_every_client;
use crate::support::registry::{Expect, assert_hostile_refused, assert_http, assert_http_every};
use crate::support::servers::{Apache, ApacheSite, apache_test_config};
use crate::support::{Containerd, Dockerd, free_port, http, run_bin_ok};

fn prepare(f: &Fixture) {
    run_bin_ok(["prepare", f.tree().to_str().unwrap()], f.dir.path());
}

/// `registrish-gen apache TREE -o TREE/.htaccess`, served with `AllowOverride FileInfo`.
fn serve_htaccess(f: &Fixture) -> Apache {
    prepare(f);
    let tree = f.tree();
    let htaccess = tree.join(".htaccess");
    run_bin_ok(
        [
            "apache",
            tree.to_str().unwrap(),
            "-o",
            htaccess.to_str().unwrap(),
        ],
        f.dir.path(),
    );
    Apache::start(ApacheSite::Htaccess { tree: &tree }, free_port())
}

/// `registrish-gen apache TREE --vhost --listen 127.0.0.1:PORT`, included by the main config.
fn serve_vhost(f: &Fixture) -> Apache {
    prepare(f);
    let tree = f.tree();
    let port = free_port();
    let conf = f.dir.join("registry-vhost.conf");
    let listen = format!("127.0.0.1:{port}");
    run_bin_ok(
        [
            "apache",
            tree.to_str().unwrap(),
            "--vhost",
            "--listen",
            &listen,
            "--server-name",
            "registry.test",
            "-o",
            conf.to_str().unwrap(),
        ],
        f.dir.path(),
    );
    Apache::start(ApacheSite::Vhost { conf: &conf }, port)
}

fn assert_nothing_outside_v2(port: u16) {
    for path in [
        "/registrish.toml",
        "/",
        "/v2",
        "/v2/demo/",
        "/v2/index.html",
        "/v2/_errors/manifest_unknown.json",
        "/v2/_errors/manifest_unknown.json/x",
    ] {
        assert_eq!(http::get(port, path).status, 404, "{path}");
    }
}

#[test]
fn apache_htaccess_serves_every_tag_and_digest_to_every_client() {
    let f = fixture::build("runnable", &[]);
    let apache = serve_htaccess(&f);
    assert_http(apache.port(), &f, Expect::ALL);
    assert_nothing_outside_v2(apache.port());
    let containerd = Containerd::start();
    let dockerd = Dockerd::start();
    assert_every_client(apache.port(), &f, &containerd, &dockerd);
    let log = apache.error_log();
    assert!(!log.contains("[core:alert]"), "{log}");
}

#[test]
fn apache_vhost_serves_every_tag_and_digest_to_every_client() {
    let f = fixture::build("runnable", &[]);
    let apache = serve_vhost(&f);
    assert_http(apache.port(), &f, Expect::ALL);
    assert_nothing_outside_v2(apache.port());
    let containerd = Containerd::start();
    let dockerd = Dockerd::start();
    assert_every_client(apache.port(), &f, &containerd, &dockerd);
}

/// The `.htaccess` from a hostile tree is loaded (Apache reads it on every request) by
/// `apache_serves_the_sound_part_of_a_hostile_tree_and_nothing_else`; the vhost is checked here.
#[test]
fn apache2_accepts_the_vhost_from_a_hostile_tree() {
    let f = fixture::build("hostile", &[]);
    prepare(&f);
    let port = free_port();
    let conf = f.dir.join("registry-vhost.conf");
    run_bin_ok(
        [
            "apache",
            f.tree().to_str().unwrap(),
            "--vhost",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "-o",
            conf.to_str().unwrap(),
        ],
        f.dir.path(),
    );
    let (ok, log) = apache_test_config(ApacheSite::Vhost { conf: &conf }, port);
    assert!(ok, "{log}");
}

/// A blob path in a sound repository that is a symlink to /etc/passwd.
fn plant_symlinked_blob(f: &Fixture, content: &[u8]) -> String {
    let digest = fixture::sha256(content);
    let link = f.tree().join(format!("v2/demo/hello/blobs/{digest}"));
    std::os::unix::fs::symlink("/etc/passwd", link).unwrap();
    format!("/v2/demo/hello/blobs/{digest}")
}

fn assert_refused(port: u16, path: &str) {
    let r = http::get(port, path);
    assert_eq!(r.status, 404, "{path}");
    assert!(!r.body_text().contains("root:"), "{path}");
}

#[test]
fn apache_serves_the_sound_part_of_a_hostile_tree_and_nothing_else() {
    let f = fixture::build("hostile", &[]);
    // Planted before generation: the scan reports it.
    let before = plant_symlinked_blob(&f, b"before");
    for apache in [serve_htaccess(&f), serve_vhost(&f)] {
        assert_http(apache.port(), &f, Expect::ALL);
        assert_hostile_refused(apache.port(), &f);
        assert_nothing_outside_v2(apache.port());
        assert_refused(apache.port(), &before);
    }
    // Planted after generation: Apache refuses symlinked files when it serves them
    // (mod_rewrite's -l), not only those the scan saw.
    let apache = serve_vhost(&f);
    let after = plant_symlinked_blob(&f, b"after");
    assert_refused(apache.port(), &after);
    let list = f.tree().join("v2/demo/oci/tags/list");
    std::fs::remove_file(&list).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", &list).unwrap();
    assert_refused(apache.port(), "/v2/demo/oci/tags/list");
}

#[test]
fn apache_finds_every_path_of_a_table_split_into_many_chunks() {
    // 2,000 tags in 4 repositories: 1,000 table entries each, about ten 8 KB chunks per
    // repository, so lookups walk both levels of the search tree.
    let f = fixture::build("big", &["--manifests", "2000", "--repos", "4"]);
    let vhost = serve_vhost(&f);
    assert_http_every(vhost.port(), &f, Expect::ALL, 1);
    drop(vhost);
    let htaccess = serve_htaccess(&f);
    assert_http_every(htaccess.port(), &f, Expect::ALL, 5);
}
