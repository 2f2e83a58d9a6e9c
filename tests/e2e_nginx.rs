//! nginx serving generated configs, pulled by real clients.

mod support;

use support::fixture;
use support::registry::{Expect, assert_clients, assert_hostile_refused, assert_http};
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
    assert_hostile_refused(port, &f);
    // Nothing outside /v2/ either (the settings file, the tree root).
    for path in [
        "/registrish.toml",
        "/",
        "/v2/_errors/manifest_unknown.json/x",
    ] {
        assert_eq!(http::get(port, path).status, 404, "{path}");
    }
}
