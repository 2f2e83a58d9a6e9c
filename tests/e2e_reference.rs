//! The control of the client matrix: the reference registry (docker-registry 2.8) holding the
//! same images, copied from a static host (`ReferenceRegistry::load`), pulled by every client the same way.

use crate::support::fixture;
use crate::support::hosts::ReferenceRegistry;
use crate::support::matrix::{assert_every_client_of_the_reference, conformance_run};
use crate::support::{Containerd, Dockerd, Nginx, free_port, run_bin_ok};

#[test]
fn the_reference_registry_holding_the_same_images_serves_every_client() {
    let f = fixture::build("runnable", &[]);
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
    let nginx = Nginx::start(&conf, port);
    let registry = ReferenceRegistry::start();
    registry.load(nginx.port(), &f);
    // Manifests no tag reaches (the fixture has none outside indexes) need no push of their own.
    let containerd = Containerd::start();
    let dockerd = Dockerd::start();
    assert_every_client_of_the_reference(registry.port(), &f, &containerd, &dockerd);
}

/// The detector works: a plain static file server on the same tree (wrong Content-Type, no
/// digest headers) fails the suite at `dev` with failures no exception covers. At 1.1 the
/// read-only suite fails it only on the referrers' Content-Type (its pull tests check none),
/// which is why every host is also held to `registry::assert_http` and the client matrix,
/// which such a server fails.
#[test]
fn the_conformance_check_flags_a_plain_static_file_server() {
    let f = fixture::build("runnable", &[]);
    run_bin_ok(["prepare", f.tree().to_str().unwrap()], f.dir.path());
    let port = free_port();
    let mut cmd = std::process::Command::new("python3");
    cmd.args([
        "-m",
        "http.server",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
    ])
    .current_dir(f.tree());
    let mut server =
        crate::support::daemon::Daemon::spawn("http.server", &mut cmd, &f.dir.join("http.log"));
    server.wait_for_port(port, std::time::Duration::from_secs(20));
    let (bad, ran, report) = conformance_run(port, &f, "dev", "demo/hello", &[]);
    assert!(ran, "{report}");
    assert!(
        bad.iter()
            .any(|b| b.contains("blob") && b.contains("Docker-Content-Digest")),
        "{bad:#?}\n{report}"
    );
    // At 1.1 only the referrers tests see it (the index's Content-Type); the pull tests pass.
    let (bad, ran, report) = conformance_run(port, &f, "1.1", "demo/multi", &[]);
    assert!(
        ran && !bad.is_empty()
            && bad
                .iter()
                .all(|b| b.contains("referrers") && b.contains("Content-Type")),
        "the 1.1 read-only suite flags a plain server by its referrers only: {bad:#?}\n{report}"
    );
    // What the suite misses, the contract catches: the manifest's Content-Type.
    let (name, tag, _, media_type, _) = f.tags().into_iter().next().unwrap();
    let r = crate::support::http::get(port, &format!("/v2/{name}/manifests/{tag}"));
    assert_ne!(r.header("Content-Type"), Some(media_type.as_str()));
}
