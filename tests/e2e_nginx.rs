//! nginx serving generated configs, pulled by real clients.

mod support;

use std::fs;
use support::fixture::{self, sha256};
use support::registry::{Expect, assert_clients, assert_http};
use support::{Containerd, Dockerd, Nginx, free_port, http, run_bin_ok};

fn serve(f: &fixture::Fixture) -> Nginx {
    let tree = f.tree();
    run_bin_ok(["prepare", tree.to_str().unwrap()], f.dir.path());
    let port = free_port();
    let conf = f.dir.join("registry.conf");
    let listen = format!("127.0.0.1:{port}");
    run_bin_ok(
        [
            "nginx",
            tree.to_str().unwrap(),
            "--listen",
            &listen,
            "-o",
            conf.to_str().unwrap(),
        ],
        f.dir.path(),
    );
    Nginx::start(&conf, port)
}

#[test]
fn nginx_serves_every_tag_and_digest_to_skopeo_containerd_and_docker() {
    let f = fixture::build("basic", &[]);
    let nginx = serve(&f);
    assert_http(nginx.port(), &f, Expect::ALL);
    let containerd = Containerd::start();
    let dockerd = Dockerd::start();
    assert_clients(nginx.port(), &f, &containerd, &dockerd);
}

#[test]
fn nginx_serves_the_sound_part_of_a_hostile_tree_and_nothing_else() {
    let f = fixture::build("hostile", &[]);
    let nginx = serve(&f);
    let port = nginx.port();
    // Everything the builder calls sound is served exactly.
    assert_http(port, &f, Expect::ALL);
    // Tags that differ only by case are told apart (nginx map strings are not).
    let tree = f.tree();
    for tag in ["Latest", "latest"] {
        let bytes = fs::read(tree.join(format!("v2/demo/case/manifests/{tag}"))).unwrap();
        let r = http::get(port, &format!("/v2/demo/case/manifests/{tag}"));
        assert_eq!(r.status, 200, "{tag}");
        assert_eq!(
            r.header("Docker-Content-Digest"),
            Some(sha256(&bytes).as_str()),
            "{tag}"
        );
        assert_eq!(r.body, bytes);
    }
    assert_eq!(
        http::get(port, "/v2/demo/case/manifests/LATEST").status,
        404
    );
    // Nothing outside the tree, nothing hostile, nothing broken is served.
    let zero_blob = "/v2/demo/escape/blobs/sha256:b3140286ac71ad2acf69681f4f2a907b0b83d8edfbffdd4e0a38c05a23180495";
    for path in [
        "/v2/demo/escape/manifests/latest",
        zero_blob,
        "/v2/demo/badtags/manifests/x;return%20200%20pwned",
        "/v2/demo/badtags/manifests/$host",
        "/v2/demo/badtags/manifests/t%7D",
        "/v2/demo/broken/manifests/notjson",
        "/v2/demo/broken/manifests/weird",
        "/v2/demo/broken/manifests/sha256:35b6a6f09fb9557e7da6c168abfe1c86318fc0a6c559f9eaff6da06e745c85ca",
        "/v2/demo/Bad/tags/list",
        "/v2/evil%7Dname/tags/list",
        "/registrish.toml",
        "/v2/../etc/passwd",
    ] {
        let r = http::get(port, path);
        assert_eq!(r.status, 404, "{path}: {:?}", r.body_text());
        let body = r.body_text();
        assert!(
            !body.contains("root:") && !body.contains("pwned"),
            "{path}: {body}"
        );
    }
}
