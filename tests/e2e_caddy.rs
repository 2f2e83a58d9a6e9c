//! Caddy serving a generated site block, pulled by real clients.

use crate::support::fixture::{self, Fixture};
use crate::support::matrix::assert_every_client;
use crate::support::registry::{Expect, assert_hostile_refused, assert_http, assert_http_every};
use crate::support::servers::{Caddy, caddy_validate_config};
use crate::support::{Containerd, Dockerd, free_port, http, run_bin_ok};

fn serve(f: &Fixture) -> Caddy {
    let tree = f.tree();
    run_bin_ok(["prepare", tree.to_str().unwrap()], f.dir.path());
    let port = free_port();
    let site = f.dir.join("registry.caddy");
    let listen = format!("127.0.0.1:{port}");
    run_bin_ok(
        [
            "caddy",
            tree.to_str().unwrap(),
            "--listen",
            &listen,
            "-o",
            site.to_str().unwrap(),
        ],
        f.dir.path(),
    );
    Caddy::start(&site, port)
}

/// The generated block is already in `caddy fmt` form: Caddy warns about nothing.
fn assert_quiet(caddy: &Caddy) {
    let log = caddy.log();
    assert!(!log.contains("not formatted"), "{log}");
    assert!(!log.contains("\"level\":\"error\""), "{log}");
}

#[test]
fn caddy_serves_every_tag_and_digest_to_every_client() {
    let f = fixture::build("runnable", &[]);
    let caddy = serve(&f);
    assert_http(caddy.port(), &f, Expect::ALL);
    let containerd = Containerd::start();
    let dockerd = Dockerd::start();
    assert_every_client(caddy.port(), &f, &containerd, &dockerd);
    assert_quiet(&caddy);
}

#[test]
fn caddy_serves_the_sound_part_of_a_hostile_tree_and_nothing_else() {
    let f = fixture::build("hostile", &[]);
    // A symlink out of the tree inside a sound repository, and (issue 10, finding 2) one
    // inside the tree that leads to a file outside v2/: both refused by path.
    let planted = format!("/v2/demo/hello/blobs/{}", fixture::sha256(b"planted"));
    std::os::unix::fs::symlink("/etc/passwd", f.tree().join(&planted[1..])).unwrap();
    std::fs::create_dir_all(f.tree().join("backup")).unwrap();
    std::fs::write(f.tree().join("backup/credentials"), "canary-2").unwrap();
    let inside = format!("/v2/demo/hello/blobs/{}", fixture::sha256(b"canary-2"));
    std::os::unix::fs::symlink(
        "../../../../backup/credentials",
        f.tree().join(&inside[1..]),
    )
    .unwrap();
    let caddy = serve(&f);
    let port = caddy.port();
    assert_http(port, &f, Expect::ALL);
    assert_hostile_refused(port, &f);
    let r = http::get(port, &planted);
    assert_eq!(r.status, 404);
    assert!(!r.body_text().contains("root:"));
    let r = http::get(port, &inside);
    assert_eq!(r.status, 404, "{}", r.body_text());
    assert!(!r.body_text().contains("canary-2"));
    for path in [
        "/registrish.toml",
        "/",
        "/v2",
        "/v2/demo/",
        "/v2/index.html",
        "/v2/_errors/manifest_unknown.json",
        "/v2/_errors/manifest_unknown.json/x",
        // `path` matchers lowercase; these must not reach the lowercase files.
        "/V2/_catalog",
        "/v2/DEMO/hello/tags/list",
    ] {
        assert_eq!(http::get(port, path).status, 404, "{path}");
    }
    assert_quiet(&caddy);
}

#[test]
fn caddy_validate_accepts_the_site_block_from_a_hostile_tree() {
    let f = fixture::build("hostile", &[]);
    let tree = f.tree();
    run_bin_ok(["prepare", tree.to_str().unwrap()], f.dir.path());
    let site = f.dir.join("registry.caddy");
    run_bin_ok(
        [
            "caddy",
            tree.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "-o",
            site.to_str().unwrap(),
        ],
        f.dir.path(),
    );
    let (ok, log) = caddy_validate_config(&site);
    assert!(ok, "{log}");
}

#[test]
fn caddy_finds_every_path_of_a_2000_tag_registry() {
    let f = fixture::build("big", &["--manifests", "2000", "--repos", "4"]);
    let caddy = serve(&f);
    assert_http_every(caddy.port(), &f, Expect::ALL, 1);
}
