//! `registrish-gen probe` against real deployments: it passes (exit 0, no failures) on every
//! host serving the fixtures and on the reference registry in discovery mode, and it fails,
//! naming the path and the check, on broken deployments built here; the clients it names as
//! broken do fail there, and pull where it passes.

use crate::support::fixture::{self, Fixture};
use crate::support::hosts::ReferenceRegistry;
use crate::support::servers::{Apache, ApacheSite, Caddy};
use crate::support::static_host::{Flaws, StaticHost};
use crate::support::tools::go_bin;
use crate::support::{Dockerd, Nginx, Wrangler, free_port, process, run_bin, run_bin_ok, skopeo};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// `registrish-gen probe http://127.0.0.1:PORT ARGS --format json`: (exit code, report).
fn probe(port: u16, args: &[&str]) -> (i32, Value) {
    let url = format!("http://127.0.0.1:{port}");
    let mut all = vec!["probe", url.as_str(), "--format", "json"];
    all.extend_from_slice(args);
    let out = run_bin(&all, Path::new("/"));
    let code = out.status.code().unwrap_or(-1);
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "probe {args:?} printed no JSON ({e}), exit {code}\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code, report)
}

/// (path, check) of every failure.
fn failures(report: &Value) -> BTreeSet<(String, String)> {
    report["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["check"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn assert_passes(what: &str, port: u16, args: &[&str]) -> Value {
    let (code, report) = probe(port, args);
    assert!(
        code == 0 && failures(&report).is_empty() && report["errors"] == serde_json::json!([]),
        "probe {what} {args:?}: exit {code}\n{report:#}"
    );
    // The walk did reach manifests and blobs, not just /v2/.
    for check in [
        "manifest-content-type",
        "blob-head",
        "tags-list",
        "miss-404",
    ] {
        assert!(
            report["checks"][check].as_u64().unwrap_or(0) > 0,
            "{what}: no {check} check ran\n{report:#}"
        );
    }
    report
}

/// The failures of one check, with the clients they name.
fn failing(report: &Value, check: &str) -> Vec<(String, Vec<String>)> {
    report["failures"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == check)
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["breaks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect()
}

fn assert_fails(what: &str, port: u16, args: &[&str], path: &str, check: &str) -> Value {
    let (code, report) = probe(port, args);
    assert_eq!(code, 1, "probe {what}: exit {code}\n{report:#}");
    assert!(
        failures(&report).contains(&(path.to_string(), check.to_string())),
        "probe {what}: no {check} failure at {path}\n{report:#}"
    );
    report
}

fn prepared(kind: &str) -> Fixture {
    let f = fixture::build(kind, &[]);
    run_bin_ok(["prepare", f.tree().to_str().unwrap()], f.dir.path());
    f
}

fn nginx_conf(f: &Fixture, port: u16, name: &str) -> std::path::PathBuf {
    let conf = f.dir.join(name);
    run_bin_ok(
        [
            "nginx",
            f.tree().to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "-o",
            conf.to_str().unwrap(),
        ],
        f.dir.path(),
    );
    conf
}

fn serve_nginx(f: &Fixture) -> Nginx {
    let port = free_port();
    Nginx::start(&nginx_conf(f, port, "registry.conf"), port)
}

/// `skopeo copy docker://REF dir:` — the quickest whole pull (manifest, config, layers).
fn skopeo_pull(reference: &str, out: &Path) -> std::process::Output {
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{reference}"),
        &format!("dir:{}", out.display()),
    ])
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout)
}

fn oras(args: &[&str], home: &Path) -> std::process::Output {
    let mut cmd = Command::new(go_bin("oras"));
    cmd.env("HOME", home).args(args).arg("--plain-http");
    process::output(&mut cmd)
}

#[test]
fn probe_passes_on_nginx_apache_and_caddy_and_clients_pull_there() {
    let f = prepared("basic");
    let tree = f.tree();
    let tree = tree.to_str().unwrap();
    let nginx = serve_nginx(&f);
    let report = assert_passes("nginx", nginx.port(), &[tree, "--verify-blobs"]);
    assert!(report["checks"]["blob-body-digest"].as_u64().unwrap() > 0);
    // Discovery finds the same paths: every manifest by tag and digest, every blob.
    let discovered = assert_passes("nginx (discovery)", nginx.port(), &[]);
    assert_eq!(
        discovered["checks"]["blob-head"],
        report["checks"]["blob-head"]
    );
    // A sample is smaller, and the same on every run.
    let sampled = assert_passes("nginx (sample)", nginx.port(), &[tree, "--sample", "5"]);
    assert!(
        sampled["requests"].as_u64().unwrap() < report["requests"].as_u64().unwrap(),
        "{sampled:#}"
    );
    assert_eq!(
        sampled,
        assert_passes("nginx (sample)", nginx.port(), &[tree, "--sample", "5"])
    );
    // Where the probe passes, clients pull.
    let (name, tag, digest, _, _) = f.tags().into_iter().next().unwrap();
    let out = skopeo_pull(
        &format!("127.0.0.1:{}/{name}:{tag}", nginx.port()),
        &f.dir.join("pulled"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let mut crane = Command::new(go_bin("crane"));
    crane.env("HOME", f.dir.path()).args([
        "digest",
        "--insecure",
        &format!("127.0.0.1:{}/{name}:{tag}", nginx.port()),
    ]);
    let out = process::run(&mut crane);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), digest);
    drop(nginx);

    let port = free_port();
    let vhost = f.dir.join("vhost.conf");
    run_bin_ok(
        [
            "apache",
            tree,
            "--vhost",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "-o",
            vhost.to_str().unwrap(),
        ],
        f.dir.path(),
    );
    let apache = Apache::start(ApacheSite::Vhost { conf: &vhost }, port);
    assert_passes("apache", apache.port(), &[tree]);
    drop(apache);

    let port = free_port();
    let site = f.dir.join("registry.caddy");
    run_bin_ok(
        [
            "caddy",
            tree,
            "--listen",
            &format!("127.0.0.1:{port}"),
            "-o",
            site.to_str().unwrap(),
        ],
        f.dir.path(),
    );
    let caddy = Caddy::start(&site, port);
    assert_passes("caddy", caddy.port(), &[tree]);
}

#[test]
fn probe_passes_on_pages_with_the_worker() {
    let f = prepared("basic");
    let tree = f.tree();
    run_bin_ok(["cloudflare", tree.to_str().unwrap()], f.dir.path());
    let pages = Wrangler::start(&tree, free_port());
    assert_passes("wrangler", pages.port(), &[tree.to_str().unwrap()]);
}

#[test]
fn probe_passes_on_a_bucket_with_the_s3_profile_and_names_oras_without_it() {
    use crate::support::s3::{Moto, run_script};
    let moto = Moto::start();
    moto.create_public_bucket(crate::e2e_s3::BUCKET);
    let (f, script) = crate::e2e_s3::prepared(&moto, "basic", None);
    run_script(&script, &moto);
    let front = crate::e2e_s3::proxy(f.dir.path(), &moto, &format!("/{}", crate::e2e_s3::BUCKET));
    let tree = f.tree();
    let tree = tree.to_str().unwrap();
    let report = assert_passes("s3", front.port(), &[tree, "--expect", "s3"]);
    // What a bucket cannot do stays visible, as warnings.
    assert!(
        report["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["check"] == "manifest-digest-header"),
        "{report:#}"
    );
    // Held to a registry's contract, the missing header fails and names oras, which fails.
    let (name, tag, ..) = f.tags().into_iter().next().unwrap();
    let report = assert_fails(
        "s3 as a registry",
        front.port(),
        &[tree],
        &format!("/v2/{name}/manifests/{tag}"),
        "manifest-digest-header",
    );
    let named = failing(&report, "manifest-digest-header");
    assert!(named.iter().all(|(_, b)| b == &["oras"]), "{named:?}");
    let out = oras(
        &[
            "resolve",
            &format!("127.0.0.1:{}/{name}:{tag}", front.port()),
        ],
        f.dir.path(),
    );
    assert!(
        !out.status.success() && stderr(&out).contains("Docker-Content-Digest"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn probe_discovers_the_reference_registry_without_false_alarms() {
    let f = prepared("basic");
    let nginx = serve_nginx(&f);
    let registry = ReferenceRegistry::start();
    registry.load(nginx.port(), &f);
    let report = assert_passes("docker-registry", registry.port(), &["--verify-blobs"]);
    // The same graph as the tree: every manifest and blob of every tag.
    assert_eq!(
        report["checks"]["blob-body-digest"].as_u64().unwrap(),
        f.blobs().len() as u64,
        "{report:#}"
    );
}

#[test]
fn probe_names_the_path_and_the_check_on_broken_deployments_and_clients_agree() {
    let f = prepared("basic");
    let tree = f.tree();
    let tree_arg = tree.to_str().unwrap();
    let (name, tag, digest, _, _) = f
        .tags()
        .into_iter()
        .find(|(n, t, ..)| n == "demo/hello" && t == "latest")
        .unwrap();
    let tag_path = format!("/v2/{name}/manifests/{tag}");
    let pull = |port: u16, i: &str| {
        skopeo_pull(
            &format!("127.0.0.1:{port}/{name}:{tag}"),
            &f.dir.join(format!("pull-{i}")),
        )
    };

    // 1. A plain static file server on the tree: manifests typed by file extension.
    let port = free_port();
    let mut cmd = Command::new("python3");
    cmd.args([
        "-m",
        "http.server",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
    ])
    .current_dir(&tree);
    let mut server =
        crate::support::daemon::Daemon::spawn("http.server", &mut cmd, &f.dir.join("http.log"));
    server.wait_for_port(port, std::time::Duration::from_secs(20));
    let report = assert_fails(
        "http.server",
        port,
        &[tree_arg],
        &tag_path,
        "manifest-content-type",
    );
    assert!(
        failing(&report, "manifest-content-type")[0]
            .1
            .contains(&"skopeo".to_string())
    );
    let out = pull(port, "plain");
    assert!(
        !out.status.success() && stderr(&out).contains("unsupported schema version"),
        "{}",
        stderr(&out)
    );
    drop(server);

    // 2. nginx sending two Content-Type headers: the generated config without its
    // `default_type ""`, so the server's default type comes first (hosts.md).
    let port = free_port();
    let conf = nginx_conf(&f, port, "two-types.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    assert!(text.contains("default_type \"\";"));
    std::fs::write(&conf, text.replace("default_type \"\";", "")).unwrap();
    let nginx = Nginx::start(&conf, port);
    let report = assert_fails(
        "two types",
        port,
        &[tree_arg],
        &tag_path,
        "manifest-content-type",
    );
    assert!(
        report["failures"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["got"]
                .as_str()
                .unwrap()
                .contains("2 Content-Type headers")),
        "{report:#}"
    );
    let out = pull(port, "two");
    assert!(!out.status.success(), "{}", stderr(&out));
    drop(nginx);

    // 3. The tiny static host, correct: the control for the flawed ones below.
    let headers = f.dir.join("headers.json");
    run_bin_ok(
        ["headers", tree_arg, "-o", headers.to_str().unwrap()],
        f.dir.path(),
    );
    let good = StaticHost::start(&tree, &headers, Flaws::default());
    assert_passes("static host", good.port, &[tree_arg]);
    assert!(pull(good.port, "good").status.success());
    let crane_digest = |port: u16, reference: &str| {
        let mut crane = Command::new(go_bin("crane"));
        crane.env("HOME", f.dir.path()).args([
            "digest",
            "--insecure",
            &format!("127.0.0.1:{port}/{reference}"),
        ]);
        process::output(&mut crane)
    };
    let missing = format!("{name}:no-such-tag");
    assert!(!crane_digest(good.port, &missing).status.success());

    // 4. An SPA fallback: misses answer 200 with an HTML page: a missing tag looks present
    // (`crane digest` prints the page's digest and succeeds).
    let spa = StaticHost::start(
        &tree,
        &headers,
        Flaws {
            spa_fallback: true,
            ..Flaws::default()
        },
    );
    // Misses are asked of the first repository.
    let first = f.repositories().keys().next().unwrap().clone();
    let report = assert_fails(
        "spa",
        spa.port,
        &[tree_arg],
        &format!("/v2/{first}/manifests/registrish-probe-no-such-tag"),
        "miss-404",
    );
    assert!(
        failing(&report, "miss-404")[0]
            .1
            .contains(&"crane".to_string())
    );
    let out = crane_digest(spa.port, &missing);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).starts_with("sha256:"),
        "crane digest of a missing tag on an SPA fallback: {}",
        stderr(&out)
    );

    // 5. HEAD without Content-Length (wrangler's static assets): docker refuses it, and
    // pulls from the correct host.
    let no_length = StaticHost::start(
        &tree,
        &headers,
        Flaws {
            no_head_length: true,
            ..Flaws::default()
        },
    );
    let report = assert_fails(
        "no length",
        no_length.port,
        &[tree_arg],
        &tag_path,
        "content-length",
    );
    assert!(
        failing(&report, "content-length")
            .iter()
            .all(|(_, b)| b == &["docker"])
    );
    let dockerd = Dockerd::start();
    let docker_pull = |port: u16| {
        let mut cmd = dockerd.docker();
        cmd.args(["pull", &format!("127.0.0.1:{port}/{name}:{tag}")]);
        process::output(&mut cmd)
    };
    let out = docker_pull(no_length.port);
    assert!(
        !out.status.success() && stderr(&out).contains("Content-Length"),
        "{}",
        stderr(&out)
    );
    let out = docker_pull(good.port);
    assert!(out.status.success(), "{}", stderr(&out));

    // 6. Range answered with 200: named as breaking containers/image's resumed downloads.
    // No client here shows it on a fresh pull (skopeo 1.9 predates resuming, containerd
    // takes the whole body), so the verdict rests on the source (peers.md, "Range on blobs").
    let no_range = StaticHost::start(
        &tree,
        &headers,
        Flaws {
            ignore_range: true,
            ..Flaws::default()
        },
    );
    let (bname, blob, _) = f.blobs().into_iter().next().unwrap();
    let report = assert_fails(
        "no range",
        no_range.port,
        &[tree_arg],
        &format!("/v2/{bname}/blobs/{blob}"),
        "blob-range",
    );
    assert!(
        failing(&report, "blob-range")[0]
            .1
            .contains(&"skopeo".to_string())
    );

    // 7. A digest copy missing (the tag is there, `manifests/sha256:<hex>` is not): the
    // probe names the digest path; skopeo by digest fails, by tag still works.
    let port = free_port();
    let conf = nginx_conf(&f, port, "missing.conf");
    std::fs::remove_file(tree.join(format!("v2/{name}/manifests/{digest}"))).unwrap();
    let nginx = Nginx::start(&conf, port);
    assert_fails(
        "missing digest copy",
        port,
        &[tree_arg],
        &format!("/v2/{name}/manifests/{digest}"),
        "manifest-status",
    );
    let out = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://127.0.0.1:{port}/{name}@{digest}"),
    ]);
    assert!(!out.status.success(), "{}", stderr(&out));
    drop(nginx);
}
