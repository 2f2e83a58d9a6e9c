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

/// A tree whose names and tags sit at the edges of the grammar (255-character names, every
/// separator, 128-character tags, tags that differ only by case, tags named like files nginx
/// would type by extension), drawn from a fixed seed; returns every tag as
/// (name, tag, manifest bytes, media type).
fn edge_of_grammar_tree(
    tree: &std::path::Path,
    seed: u64,
) -> Vec<(String, String, Vec<u8>, &'static str)> {
    // A fixed linear congruential generator: the same trees on every run.
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move |n: usize| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as usize % n
    };
    // Names that are map's own parameters (`default`, `include`, ...) if a key is a bare name.
    let mut names = vec![
        "a".repeat(255),
        format!("x{}y/z", "-".repeat(200)),
        "default".to_string(),
        "include".to_string(),
        "hostnames".to_string(),
        "volatile".to_string(),
    ];
    let seps = [".", "_", "__", "-", "---"];
    let pieces = ["a", "0", "z9", "v1", "abc", "r2d2"];
    while names.len() < 10 {
        let components = 1 + next(4);
        let name: Vec<String> = (0..components)
            .map(|_| {
                let mut c = pieces[next(pieces.len())].to_string();
                for _ in 0..next(3) {
                    c.push_str(seps[next(seps.len())]);
                    c.push_str(pieces[next(pieces.len())]);
                }
                c
            })
            .collect();
        let name = name.join("/");
        if !names.contains(&name) {
            names.push(name);
        }
    }
    let tag_chars = b"abcXYZ019._-";
    let mut out = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let repo = tree.join("v2").join(name);
        std::fs::create_dir_all(repo.join("manifests")).unwrap();
        std::fs::create_dir_all(repo.join("blobs")).unwrap();
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}},"n":{i}}}"#
        );
        std::fs::write(
            repo.join("blobs").join(fixture::sha256(config.as_bytes())),
            &config,
        )
        .unwrap();
        let mut tags = vec![
            "_".to_string(),
            "v1.json".to_string(),
            "index.html".to_string(),
            "Ab.c".to_string(),
            "ab.C".to_string(),
            format!("_{}", "-".repeat(127)),
        ];
        // The first repository is too large for a table (nginx.rs, TABLE_BYTES): a row a
        // path, its case-colliding tags case-sensitive regex rows; the others one table each.
        if i == 0 {
            tags.extend((0..30).map(|k| format!("many-{k:02}")));
        }
        for _ in 0..3 {
            let len = 1 + next(40);
            let mut t = String::from(['A', '9', '_', 'q'][next(4)]);
            t.extend((1..len).map(|_| tag_chars[next(tag_chars.len())] as char));
            if !tags.contains(&t) {
                tags.push(t);
            }
        }
        for (j, tag) in tags.iter().enumerate() {
            let (media_type, config_type) = if (i + j) % 2 == 0 {
                (
                    "application/vnd.oci.image.manifest.v1+json",
                    "application/vnd.oci.image.config.v1+json",
                )
            } else {
                (
                    "application/vnd.docker.distribution.manifest.v2+json",
                    "application/vnd.docker.container.image.v1+json",
                )
            };
            let manifest = format!(
                r#"{{"schemaVersion":2,"mediaType":"{media_type}","config":{{"mediaType":"{config_type}","digest":"{}","size":{}}},"layers":[],"annotations":{{"seed":"{seed}-{i}-{j}"}}}}"#,
                fixture::sha256(config.as_bytes()),
                config.len()
            );
            std::fs::write(repo.join("manifests").join(tag), &manifest).unwrap();
            out.push((name.clone(), tag.clone(), manifest.into_bytes(), media_type));
        }
    }
    out
}

/// Issue 10 (fuzzing), the renderer's sample: nginx accepts (`nginx -t`, run by
/// `Nginx::start`) the config made for trees of generated edge-of-grammar names, lists every
/// tag with its type and digest, and serves each tag and digest with the exact bytes and
/// headers.
#[test]
fn nginx_accepts_and_serves_configs_for_generated_edge_of_grammar_names() {
    for seed in 1..=3 {
        let dir = support::TempDir::new("nginx-edge");
        let tree = dir.join("tree");
        let tags = edge_of_grammar_tree(&tree, seed);
        run_bin_ok(["prepare", tree.to_str().unwrap()], dir.path());
        let port = free_port();
        let conf = dir.join("registry.conf");
        run_bin_ok(
            [
                "nginx",
                tree.to_str().unwrap(),
                "--listen",
                &format!("127.0.0.1:{port}"),
                "-o",
                conf.to_str().unwrap(),
            ],
            dir.path(),
        );
        let text = std::fs::read_to_string(&conf).unwrap();
        let first = &tags[0].0;
        for (name, tag, bytes, media_type) in &tags {
            let digest = fixture::sha256(bytes);
            let code = if media_type.contains("oci") { 'o' } else { 'd' };
            let listed = |reference: &str| {
                support::nginx_lists(&text, name, reference)
                    .unwrap_or_else(|| panic!("seed {seed}: {name} {reference} not listed"))
            };
            assert_eq!(listed(tag), (format!("{code}{digest}"), name != first));
            assert_eq!(listed(&digest), (code.to_string(), name != first));
            // Tags that differ only by case are case-sensitive regex keys (`.` escaped).
            if name == first && tag.eq_ignore_ascii_case("ab.c") {
                let path = format!("/v2/{name}/manifests/{tag}");
                let row = format!("    \"~^{}$\" {code}{digest};\n", path.replace('.', "\\."));
                assert!(text.contains(&row), "seed {seed}: no row {row:?}");
            }
        }
        let nginx = Nginx::start(&conf, port);
        for (name, tag, bytes, media_type) in &tags {
            let digest = fixture::sha256(bytes);
            for reference in [tag.as_str(), digest.as_str()] {
                let path = format!("/v2/{name}/manifests/{reference}");
                let r = http::get(nginx.port(), &path);
                assert_eq!(r.status, 200, "seed {seed}: {path}");
                assert_eq!(&r.body, bytes, "seed {seed}: {path}");
                assert_eq!(r.header_all("content-type"), vec![*media_type], "{path}");
                assert_eq!(
                    r.header("docker-content-digest"),
                    Some(digest.as_str()),
                    "{path}"
                );
            }
        }
    }
}

/// The referrers contract can fail: a plain static server over the same prepared tree serves
/// the index as a file of no registry type and answers a subject nothing refers to with 404.
#[test]
fn referrers_contract_fails_on_a_plain_static_server() {
    let f = fixture::build("basic", &[]);
    run_bin_ok(["prepare", f.tree().to_str().unwrap()], f.dir.path());
    let server = crate::support::servers::PlainStatic::start(&f.tree(), &f.dir.join("py.log"));
    let failure = std::panic::catch_unwind(|| {
        crate::support::registry::assert_referrers(server.port(), &f, Expect::ALL)
    })
    .expect_err("a plain static server passed the referrers contract");
    let message = failure
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(
        message.contains("/referrers/sha256:")
            && message.contains("application/vnd.oci.image.index.v1+json"),
        "{message}"
    );
}

/// Past 65,536 manifest paths the table is a chain of maps (issue 16: one map of millions of
/// entries made `nginx -t` quadratic). 33,000 tags are 66,000 paths, two maps: every 61st path
/// of both answers with its exact type and digest, and a tag in neither map (unknown, or an
/// existing one in upper case) is a 404, so a chain that drops or mixes entries fails here.
#[test]
fn nginx_serves_every_map_of_a_chained_table() {
    let f = fixture::build("big", &["--manifests", "33000", "--repos", "300"]);
    let nginx = serve(&f);
    let conf = std::fs::read_to_string(f.dir.join("registry.conf")).unwrap();
    assert!(
        conf.matches("map $uri $registrish_manifest").count() >= 2,
        "one map only"
    );
    crate::support::registry::assert_http_every(nginx.port(), &f, Expect::ALL, 61);
    let (name, tag, ..) = f.tags().into_iter().last().unwrap();
    for miss in [
        format!("/v2/{name}/manifests/{}", tag.to_uppercase()),
        format!("/v2/{name}/manifests/no-such-tag"),
    ] {
        let r = http::get(nginx.port(), &miss);
        assert_eq!(r.status, 404, "{miss}");
    }
}
