//! nginx serving generated configs, pulled by real clients.

use crate::support::fixture;
use crate::support::matrix::assert_every_client;
use crate::support::registry::{Expect, assert_hostile_refused, assert_http};
use crate::support::{
    self, Containerd, Dockerd, Nginx, free_port, http, nginx_test_config, run_bin_ok,
};

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
fn nginx_serves_every_tag_and_digest_to_every_client() {
    let f = fixture::build("runnable", &[]);
    let nginx = serve(&f);
    assert_http(nginx.port(), &f, Expect::ALL);
    let containerd = Containerd::start();
    let dockerd = Dockerd::start();
    assert_every_client(nginx.port(), &f, &containerd, &dockerd);
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

#[test]
fn nginx_accepts_the_config_from_a_hostile_tree() {
    let f = fixture::build("hostile", &[]);
    run_bin_ok(["prepare", f.tree().to_str().unwrap()], f.dir.path());
    let conf = f.dir.join("registry.conf");
    run_bin_ok(
        [
            "nginx",
            f.tree().to_str().unwrap(),
            "--listen",
            "127.0.0.1:8080",
            "-o",
            conf.to_str().unwrap(),
        ],
        f.dir.path(),
    );
    let (ok, log) = nginx_test_config(&conf);
    assert!(ok, "{log}");
}

#[test]
fn nginx_serves_https_with_the_given_certificate() {
    let f = fixture::build("basic", &[]);
    let tree = f.tree();
    let (cert, key) = (f.dir.join("cert.pem"), f.dir.join("key.pem"));
    support::process::run(
        std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
            ])
            .arg(&key)
            .arg("-out")
            .arg(&cert),
    );
    run_bin_ok(["prepare", tree.to_str().unwrap()], f.dir.path());
    let port = free_port();
    let conf = f.dir.join("tls.conf");
    run_bin_ok(
        [
            "nginx",
            tree.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--ssl-certificate",
            cert.to_str().unwrap(),
            "--ssl-certificate-key",
            key.to_str().unwrap(),
            "-o",
            conf.to_str().unwrap(),
        ],
        f.dir.path(),
    );
    assert!(
        std::fs::read_to_string(&conf)
            .unwrap()
            .contains(&format!("listen 127.0.0.1:{port} ssl;"))
    );
    let nginx = Nginx::start(&conf, port);
    let curl = |args: &[&str]| {
        let out = support::process::run(
            std::process::Command::new("curl")
                .args(["-sk", "--max-time", "20"])
                .args(args),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let base = format!("https://127.0.0.1:{}", nginx.port());
    assert_eq!(curl(&[&format!("{base}/v2/")]), "{}");
    let (name, tag, digest, media_type, _) = f.tags().into_iter().next().unwrap();
    let head = curl(&["-I", &format!("{base}/v2/{name}/manifests/{tag}")]).to_lowercase();
    assert!(
        head.contains(&format!("content-type: {media_type}")) && head.contains(&digest),
        "{head}"
    );
    // Clients over TLS (the certificate is self-signed: verification off).
    let raw = support::skopeo_inspect_raw(&format!("127.0.0.1:{}/{name}:{tag}", nginx.port()));
    assert_eq!(fixture::sha256(&raw), digest);
    let dockerd = Dockerd::start();
    let (multi, multi_tag) = ("demo/multi", "latest");
    let want = f.repositories()[multi]["tags"][multi_tag]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let (digests, _) = dockerd.pull(&format!("127.0.0.1:{}/{multi}:{multi_tag}", nginx.port()));
    assert!(digests.iter().any(|d| d.ends_with(&want)), "{digests:?}");
}

/// Finding 5 of issue 10: a tag replaced by a symlink out of the tree after the config was
/// generated is not served (nginx checks every path component at request time).
#[test]
fn nginx_refuses_a_tag_turned_into_a_symlink_after_generation() {
    let f = fixture::build("basic", &[]);
    let nginx = serve(&f);
    let (name, tag, _, _, _) = f.tags().into_iter().next().unwrap();
    let path = format!("/v2/{name}/manifests/{tag}");
    assert_eq!(http::get(nginx.port(), &path).status, 200);
    let secret = f.dir.join("secret.json");
    std::fs::write(&secret, r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[],"secret":"canary-5"}"#).unwrap();
    let file = f.tree().join(&path[1..]);
    std::fs::remove_file(&file).unwrap();
    std::os::unix::fs::symlink(&secret, &file).unwrap();
    let r = http::get(nginx.port(), &path);
    assert_eq!(r.status, 404, "{}", r.body_text());
    assert!(!r.body_text().contains("canary-5"));
}
