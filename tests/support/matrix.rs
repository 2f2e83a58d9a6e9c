//! The rest of the client matrix, run against every host the same way: podman, crane, oras,
//! helm and regctl (built from the Go module proxy by `scripts/test` into `.tools/go/bin`),
//! `docker run` of the runnable fixture, and the OCI distribution-spec conformance suite in its
//! read-only mode. Every digest a client reports is compared with the fixture builder's record.

use super::TempDir;
use super::clients::Dockerd;
use super::fixture::{Fixture, sha256};
use super::process;
use super::tools::go_bin;
use serde_json::Value;
use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::{Command, Output};

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A command with HOME (and the XDG dirs) in `home`, so clients write no config outside it.
pub fn isolated(program: &Path, home: &Path) -> Command {
    for dir in ["config", "cache", "data", "docker"] {
        fs::create_dir_all(home.join(dir)).unwrap();
    }
    let mut cmd = Command::new(program);
    cmd.env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("DOCKER_CONFIG", home.join("docker"));
    cmd
}

/// What the fixture says about one tag: (name, tag, digest).
fn tags(f: &Fixture) -> Vec<(String, String, String)> {
    f.tags()
        .into_iter()
        .map(|(name, tag, digest, _, _)| (name, tag, digest))
        .collect()
}

/// crane `digest`, `manifest` and `ls` on every tag and repository, `export` of the default
/// platform of every runnable tag (its filesystem holds what the layers hold).
pub fn assert_crane(port: u16, f: &Fixture) {
    let host = format!("127.0.0.1:{port}");
    let home = TempDir::new("crane");
    let crane = |args: &[&str]| {
        process::run(
            isolated(&go_bin("crane"), home.path())
                .args(args)
                .arg("--insecure"),
        )
    };
    for (name, tag, digest) in tags(f) {
        let reference = format!("{host}/{name}:{tag}");
        assert_eq!(
            text(&crane(&["digest", &reference])),
            digest,
            "crane digest {reference}"
        );
        let manifest = crane(&["manifest", &reference]).stdout;
        assert_eq!(sha256(&manifest), digest, "crane manifest {reference}");
    }
    for (name, digest, _, _) in f.manifests() {
        let reference = format!("{host}/{name}@{digest}");
        assert_eq!(
            sha256(&crane(&["manifest", &reference]).stdout),
            digest,
            "crane manifest {reference}"
        );
    }
    for (name, repo) in f.repositories() {
        let listed: BTreeSet<String> = text(&crane(&["ls", &format!("{host}/{name}")]))
            .lines()
            .map(String::from)
            .collect();
        let want: BTreeSet<String> = repo["tags"].as_object().unwrap().keys().cloned().collect();
        assert_eq!(listed, want, "crane ls {name}");
    }
    for (name, tag) in f.runnable() {
        let reference = format!("{host}/{name}:{tag}");
        let out = home.join(format!("{}-{tag}.tar", name.replace('/', "_")));
        crane(&["export", &reference, out.to_str().unwrap()]);
        let listing = text(&process::run(Command::new("tar").arg("-tf").arg(&out)));
        let expect = match name.as_str() {
            "tools/busybox" => "bin/busybox",
            "demo/large" => "large/payload.bin",
            _ => "hello/message.txt",
        };
        assert!(
            listing
                .lines()
                .any(|l| l.trim_start_matches("./") == expect),
            "crane export {reference} lacks {expect}: {listing}"
        );
    }
}

/// regctl `image digest`, `manifest get` and `tag ls`.
pub fn assert_regctl(port: u16, f: &Fixture) {
    let host = format!("127.0.0.1:{port}");
    let home = TempDir::new("regctl");
    let regctl = |args: &[&str]| {
        process::run(
            isolated(&go_bin("regctl"), home.path())
                .arg("--host")
                .arg(format!("reg={host},tls=disabled"))
                .args(args),
        )
    };
    for (name, tag, digest) in tags(f) {
        let reference = format!("{host}/{name}:{tag}");
        assert_eq!(
            text(&regctl(&["image", "digest", &reference])),
            digest,
            "regctl image digest {reference}"
        );
        let raw = regctl(&["manifest", "get", "--format", "raw-body", &reference]).stdout;
        assert_eq!(sha256(&raw), digest, "regctl manifest get {reference}");
    }
    for (name, repo) in f.repositories() {
        let listed: BTreeSet<String> = text(&regctl(&["tag", "ls", &format!("{host}/{name}")]))
            .lines()
            .map(String::from)
            .collect();
        let want: BTreeSet<String> = repo["tags"].as_object().unwrap().keys().cloned().collect();
        assert_eq!(listed, want, "regctl tag ls {name}");
    }
    for (name, subject, descriptors) in f.referrers() {
        let reference = format!("{host}/{name}@{subject}");
        let list: Value = serde_json::from_slice(
            &regctl(&["artifact", "list", &reference, "--format", "{{json .}}"]).stdout,
        )
        .unwrap_or_else(|e| panic!("regctl artifact list {reference}: {e}"));
        assert_eq!(
            descriptors_of(&list["descriptors"]),
            descriptors,
            "regctl artifact list {reference}: {list}"
        );
    }
}

/// oras `resolve` and `manifest fetch` on every tag; `pull` of the fixture's OCI artifact writes
/// its titled layer, byte for byte. Without a digest header on HEAD, `resolve` must fail saying so.
pub fn assert_oras(port: u16, f: &Fixture, digest_header: bool) {
    let host = format!("127.0.0.1:{port}");
    let home = TempDir::new("oras");
    let oras = |args: &[&str]| {
        process::run(
            isolated(&go_bin("oras"), home.path())
                .args(args)
                .arg("--plain-http"),
        )
    };
    for (name, tag, digest) in tags(f) {
        let reference = format!("{host}/{name}:{tag}");
        if digest_header {
            assert_eq!(
                text(&oras(&["resolve", &reference])),
                digest,
                "oras resolve {reference}"
            );
        } else {
            let mut cmd = isolated(&go_bin("oras"), home.path());
            cmd.args(["resolve", &reference, "--plain-http"]);
            let out = process::output(&mut cmd);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success()
                    && stderr.contains("missing required header \"Docker-Content-Digest\""),
                "oras resolve {reference} without a digest header\n{}",
                process::report(&cmd, &out)
            );
        }
        let raw = oras(&["manifest", "fetch", &reference]).stdout;
        assert_eq!(sha256(&raw), digest, "oras manifest fetch {reference}");
    }
    let out = home.join("artifact");
    oras(&[
        "pull",
        &format!("{host}/demo/artifact:v1"),
        "-o",
        out.to_str().unwrap(),
    ]);
    let pulled = fs::read(out.join("hello.txt")).expect("oras pull wrote hello.txt");
    let layer = &f.repositories()["demo/artifact"]["manifests"];
    let (_, m) = layer.as_object().unwrap().iter().next().unwrap();
    assert_eq!(
        sha256(&pulled),
        m["layers"][0].as_str().unwrap(),
        "oras pull demo/artifact:v1"
    );
    // OCI 1.1 referrers: `oras discover` lists exactly the fixture's referrers of each subject.
    for (name, subject, descriptors) in f.referrers() {
        let reference = format!("{host}/{name}@{subject}");
        let tree: Value =
            serde_json::from_slice(&oras(&["discover", "--format", "json", &reference]).stdout)
                .unwrap_or_else(|e| panic!("oras discover {reference}: {e}"));
        assert_eq!(
            descriptors_of(&tree["referrers"]),
            descriptors,
            "oras discover {reference}: {tree}"
        );
    }
}

/// The descriptor fields a referrers index holds, from a client's listing of one.
fn descriptors_of(list: &Value) -> Vec<Value> {
    let mut out: Vec<Value> = list
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|d| {
            let mut kept = serde_json::Map::new();
            for field in ["mediaType", "digest", "size", "artifactType", "annotations"] {
                if let Some(v) = d.get(field) {
                    kept.insert(field.to_string(), v.clone());
                }
            }
            Value::Object(kept)
        })
        .collect();
    out.sort_by(|a, b| a["digest"].as_str().cmp(&b["digest"].as_str()));
    out
}

/// `helm pull oci://HOST/charts/hello` with `--version`, and without it (Helm lists the tags
/// and takes the newest semver): the chart archive is the chart layer, byte for byte.
pub fn assert_helm(port: u16, f: &Fixture) {
    let host = format!("127.0.0.1:{port}");
    let home = TempDir::new("helm");
    let chart_layer = {
        let repo = &f.repositories()["charts/hello"];
        let digest = repo["tags"]["0.1.0"]["digest"].as_str().unwrap();
        repo["manifests"][digest]["layers"][0]
            .as_str()
            .unwrap()
            .to_string()
    };
    for (i, version) in [Some("0.1.0"), None].into_iter().enumerate() {
        let dest = home.join(format!("pull{i}"));
        fs::create_dir_all(&dest).unwrap();
        let mut cmd = isolated(&go_bin("helm"), home.path());
        cmd.env("HELM_CACHE_HOME", home.join("helm-cache"))
            .env("HELM_CONFIG_HOME", home.join("helm-config"))
            .env("HELM_DATA_HOME", home.join("helm-data"))
            .args([
                "pull",
                &format!("oci://{host}/charts/hello"),
                "--plain-http",
                "-d",
            ])
            .arg(&dest);
        if let Some(v) = version {
            cmd.args(["--version", v]);
        }
        process::run(&mut cmd);
        let archive = fs::read(dest.join("hello-0.1.0.tgz")).expect("helm pull wrote the chart");
        assert_eq!(
            sha256(&archive),
            chart_layer,
            "helm pull (version {version:?})"
        );
    }
}

/// podman pulls every runnable tag into its own storage (the image it records is the tag's),
/// then runs the busybox image.
///
/// `podman run` here: podman sets RLIMIT_NOFILE and RLIMIT_NPROC in every container by default
/// (containers.conf `default_ulimits`), which this machine's runc refuses ("error setting
/// rlimits", shared/reference/clients.md); an empty `default_ulimits` leaves the limits as they
/// are, and runc then runs it. crun fails on the hybrid cgroup layout instead.
pub fn assert_podman(port: u16, f: &Fixture) {
    let host = format!("127.0.0.1:{port}");
    let dir = TempDir::new("podman");
    let conf = dir.join("containers.conf");
    fs::write(&conf, "[containers]\ndefault_ulimits = []\n").unwrap();
    let podman = |args: &[&str]| {
        let mut cmd = isolated(Path::new("podman"), dir.path());
        // podman reads DOCKER_CONFIG/config.json when the variable is set, and fails without it.
        cmd.env_remove("DOCKER_CONFIG")
            .env("CONTAINERS_CONF", &conf)
            .arg("--root")
            .arg(dir.join("root"))
            .arg("--runroot")
            .arg(dir.join("runroot"))
            .args([
                "--storage-driver",
                "vfs",
                "--events-backend",
                "none",
                "--cgroup-manager",
                "cgroupfs",
            ])
            .args(args);
        process::run(&mut cmd)
    };
    for (name, tag) in f.runnable() {
        let reference = format!("{host}/{name}:{tag}");
        podman(&["pull", "--tls-verify=false", "-q", &reference]);
        let digest = f.repositories()[&name]["tags"][&tag]["digest"]
            .as_str()
            .unwrap()
            .to_string();
        // Images that share a config are one image with several repo digests.
        let recorded = text(&podman(&[
            "image",
            "inspect",
            "--format",
            "{{json .RepoDigests}}",
            &reference,
        ]));
        let recorded: Vec<String> = serde_json::from_str(&recorded).unwrap();
        assert!(
            recorded.contains(&format!("{host}/{name}@{digest}")),
            "podman pull {reference}: {recorded:?}"
        );
    }
    for tag in ["latest", "docker"] {
        let reference = format!("{host}/tools/busybox:{tag}");
        let out = podman(&[
            "--runtime",
            "runc",
            "run",
            "--rm",
            "--network",
            "none",
            "--tls-verify=false",
            &reference,
            "echo",
            "hello",
            "there",
        ]);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "hello there\n",
            "podman run {reference}"
        );
    }
}

/// `docker run --rm --network none HOST/tools/busybox echo hello there`, by the index tag and by
/// the Docker schema 2 tag: the line, exactly.
pub fn assert_docker_run(port: u16, dockerd: &Dockerd) {
    for tag in ["latest", "docker"] {
        let reference = format!("127.0.0.1:{port}/tools/busybox:{tag}");
        let mut cmd = dockerd.docker();
        cmd.args([
            "run",
            "--rm",
            "--network",
            "none",
            &reference,
            "echo",
            "hello",
            "there",
        ]);
        let out = process::run(&mut cmd);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "hello there\n",
            "docker run {reference}"
        );
    }
}

/// The repositories the conformance suite reads, one of each kind: a Docker schema 2 image, an
/// OCI index with children and an attestation, a nested name.
pub const CONFORMANCE_REPOS: &[&str] = &["demo/hello", "demo/multi", "team/app/api"];

/// What the suite asks that no static host serves, each with its reason. (The referrers API is
/// on: OCI_RO_DATA_REFERRERS names each subject the fixture gave referrers.)
pub const CONFORMANCE_DISABLED: &[(&str, &str)] = &[
    (
        "OCI_API_PUSH",
        "a static host is read-only; content is preloaded (OCI_RO_DATA_*)",
    ),
    ("OCI_API_BLOBS_DELETE", "read-only"),
    ("OCI_API_MANIFESTS_DELETE", "read-only"),
    ("OCI_API_TAGS_DELETE", "read-only"),
];

/// Failures of the suite that are not the host's, each cited: (OCI_VERSION, test name, what
/// the failure says, why).
pub const CONFORMANCE_EXCEPTIONS: &[Exception] = &[
    (
        "*",
        "read-only/tag-list",
        "when last set to",
        "tag-list pagination (`?last=`, `?n=`, distribution-spec \"Listing Tags\"): a static file \
         cannot filter by query string, so every host answers the whole list; clients that page \
         (crane, regctl) stop at a response without a Link header; the reference registry \
         (distribution 2.8) fails this test the same way",
    ),
    (
        "dev",
        "/manifest-",
        "did not return a Docker-Content-Digest header",
        "a bug in the suite at this version: with preloaded data it never captures the response \
         (conformance/api.go ManifestHeadExists and ManifestGetExists add apiReturnResponse only \
         when the manifest's bytes are known, which they are not in read-only mode), so the \
         header is always missing; the reference registry fails the same way, and \
         registry::assert_http checks the header on every manifest itself",
    ),
];

/// One failing test of the suite's report: its name and the reasons printed under it.
#[derive(Debug)]
pub struct ConformanceFailure {
    pub name: String,
    pub reasons: Vec<String>,
}

/// The failing leaves of the suite's text report (`  OCI Conformance Test/a/b: FAIL`, then
/// `   - reason` lines), and how many tests passed.
pub fn parse_conformance_report(report: &str) -> (Vec<ConformanceFailure>, usize) {
    let mut failures: Vec<ConformanceFailure> = Vec::new();
    let mut passed = 0;
    let mut current: Option<ConformanceFailure> = None;
    for line in report.lines() {
        let trimmed = line.trim();
        if let Some(reason) = trimmed.strip_prefix("- ") {
            if let Some(c) = current.as_mut() {
                c.reasons.push(reason.to_string());
            }
            continue;
        }
        if let Some(c) = current.take().filter(|c| !c.reasons.is_empty()) {
            failures.push(c);
        }
        let Some(rest) = trimmed.strip_prefix("OCI Conformance Test/") else {
            continue;
        };
        if let Some(name) = rest.strip_suffix(": FAIL") {
            current = Some(ConformanceFailure {
                name: name.to_string(),
                reasons: Vec::new(),
            });
        } else if rest.ends_with(": Pass") {
            passed += 1;
        }
    }
    if let Some(c) = current.filter(|c| !c.reasons.is_empty()) {
        failures.push(c);
    }
    (failures, passed)
}

/// On a host that cannot send Docker-Content-Digest (a bare S3 bucket: objects keep only
/// system metadata as headers, hosts.md), `dev` requires it on blobs too
/// (OCI_API_BLOBS_DIGEST_HEADER defaults to true there).
pub const CONFORMANCE_NO_DIGEST_HEADER: Exception = (
    "dev",
    "/blob-",
    "did not return a Docker-Content-Digest header",
    "S3 cannot store the header; `cloudflare-rules` adds it on R2 behind Cloudflare",
);

/// The reference registry's own failures (it is the control, not under test).
pub const CONFORMANCE_REFERENCE: &[Exception] = &[
    (
        "*",
        "invalid-digest-format/manifest-get",
        "received 500",
        "distribution 2.8 answers 500 to a malformed digest",
    ),
    (
        "*",
        "referrers",
        "header value mismatch for \"Content-Type\"",
        "distribution 2.8 has no referrers API (a 404 in text/plain); clients fall back to the tag",
    ),
];

/// A conformance exception: (OCI_VERSION or `*`, test name part, failure text part, why).
pub type Exception = (&'static str, &'static str, &'static str, &'static str);

/// The failures no exception covers.
pub fn unexcused(
    version: &str,
    failures: &[ConformanceFailure],
    host_exceptions: &[Exception],
) -> Vec<String> {
    let mut out = Vec::new();
    for f in failures {
        for reason in &f.reasons {
            let excused =
                CONFORMANCE_EXCEPTIONS
                    .iter()
                    .chain(host_exceptions)
                    .any(|(v, name, says, _)| {
                        (*v == "*" || *v == version)
                            && f.name.contains(name)
                            && reason.contains(says)
                    });
            if !excused {
                out.push(format!("{}: {reason}", f.name));
            }
        }
    }
    out
}

/// One run of the conformance suite, read-only, on repository `name` with every tag,
/// manifest and blob the builder recorded for it: (failures no exception covers, whether the
/// pull tests ran and something passed, the report).
pub fn conformance_run(
    port: u16,
    f: &Fixture,
    version: &str,
    name: &str,
    host_exceptions: &[Exception],
) -> (Vec<String>, bool, String) {
    let results = TempDir::new("oci");
    let repo = &f.repositories()[name];
    let keys = |field: &str| -> String {
        repo[field]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut cmd = Command::new(go_bin("conformance"));
    cmd.current_dir(results.path())
        .env("OCI_REGISTRY", format!("127.0.0.1:{port}"))
        .env("OCI_TLS", "disabled")
        .env("OCI_VERSION", version)
        .env("OCI_REPO1", name)
        .env("OCI_REPO2", name)
        .env("OCI_RESULTS_DIR", results.join("results"))
        .env("OCI_RO_DATA_TAGS", keys("tags"))
        .env("OCI_RO_DATA_MANIFESTS", keys("manifests"))
        .env("OCI_RO_DATA_BLOBS", keys("blobs"))
        .env(
            "OCI_RO_DATA_REFERRERS",
            f.referrers()
                .into_iter()
                .filter(|(n, ..)| n == name)
                .map(|(_, subject, _)| subject)
                .collect::<Vec<_>>()
                .join(" "),
        );
    for (var, _) in CONFORMANCE_DISABLED {
        cmd.env(var, "false");
    }
    // The suite's own exit status is not the verdict: it also exits non-zero when its YAML
    // report panics after printing the text report (seen at this version).
    let out = process::output(&mut cmd);
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    let (failures, passed) = parse_conformance_report(&report);
    // The referrers tests ran too: the empty list on every repository, and the subjects'
    // lists where the fixture has some.
    let ran = report.contains("read-only/pull/blob-get:")
        && report.contains("read-only/pull/manifest-by-digest:")
        && report.contains("empty/referrers:")
        && (!f.referrers().iter().any(|(n, ..)| n == name)
            || report.contains("read-only/referrers:"))
        && passed > 0;
    (
        unexcused(version, &failures, host_exceptions),
        ran,
        process::report(&cmd, &out),
    )
}

/// The conformance suite, read-only, at OCI_VERSION 1.1 and dev, over each repository of
/// [`CONFORMANCE_REPOS`]. Every failure must be one of [`CONFORMANCE_EXCEPTIONS`] or the
/// host's own; the pull tests must have run.
pub fn assert_conformance(port: u16, f: &Fixture, host_exceptions: &[Exception]) {
    for version in ["1.1", "dev"] {
        for name in CONFORMANCE_REPOS {
            let (bad, ran, report) = conformance_run(port, f, version, name, host_exceptions);
            assert!(
                bad.is_empty() && ran,
                "conformance {version} on {name}: {bad:#?}\n{report}"
            );
        }
    }
}

/// Every client of the matrix on one host serving the runnable fixture: skopeo, containerd and
/// dockerd (`registry::assert_clients`), then podman, crane, regctl, oras, helm, `docker run`
/// and the conformance suite.
pub fn assert_every_client(
    port: u16,
    f: &Fixture,
    containerd: &super::Containerd,
    dockerd: &Dockerd,
) {
    every_client(port, f, containerd, dockerd, true, &[], true);
}

/// The same, for a host that redirects blobs (`--blobs-url`) to a plain origin that sends no
/// Docker-Content-Digest: every client pulls through the redirect; the conformance suite
/// follows it and misses the header on the origin's answer (as it would from S3 behind
/// distribution's own storage redirect).
pub fn assert_every_client_with_blobs_elsewhere(
    port: u16,
    f: &Fixture,
    containerd: &super::Containerd,
    dockerd: &Dockerd,
) {
    let origin = (
        "dev",
        "/blob-",
        "did not return a Docker-Content-Digest header",
        "blobs are redirected to a plain origin; the redirect carries the header, the origin's 200 cannot",
    );
    every_client(port, f, containerd, dockerd, true, &[origin], true);
}

/// The same, for a host that sends no Docker-Content-Digest (a bare S3 bucket): every client
/// still pulls except `oras resolve` by tag, which needs the header on HEAD; that it fails, and
/// how, is asserted too, so a change either way shows.
pub fn assert_every_client_without_digest_header(
    port: u16,
    f: &Fixture,
    containerd: &super::Containerd,
    dockerd: &Dockerd,
) {
    every_client(port, f, containerd, dockerd, false, &[], true);
}

/// The same for the reference registry, the control: its own conformance failures are
/// [`CONFORMANCE_REFERENCE`].
pub fn assert_every_client_of_the_reference(
    port: u16,
    f: &Fixture,
    containerd: &super::Containerd,
    dockerd: &Dockerd,
) {
    every_client(
        port,
        f,
        containerd,
        dockerd,
        true,
        CONFORMANCE_REFERENCE,
        false,
    );
}

fn every_client(
    port: u16,
    f: &Fixture,
    containerd: &super::Containerd,
    dockerd: &Dockerd,
    digest_header: bool,
    extra_exceptions: &[Exception],
    read_only: bool,
) {
    super::registry::assert_clients(port, f, containerd, dockerd);
    assert_podman(port, f);
    assert_crane(port, f);
    assert_regctl(port, f);
    assert_oras(port, f, digest_header);
    assert_helm(port, f);
    assert_docker_run(port, dockerd);
    // The reference registry accepts pushes; every static host refuses them.
    if read_only {
        assert_push_refused(port, f, dockerd);
    }
    let mut exceptions: Vec<Exception> = Vec::new();
    if !digest_header {
        exceptions.push(CONFORMANCE_NO_DIGEST_HEADER);
    }
    exceptions.extend_from_slice(extra_exceptions);
    assert_conformance(port, f, &exceptions);
}

/// Pushes fail, saying why, and leave the tree as it was: `skopeo copy`, `crane copy` (a push
/// of the host's own image under a new name) and `docker push`: the host answers 405
/// UNSUPPORTED, which the clients' errors name.
pub fn assert_push_refused(port: u16, f: &Fixture, dockerd: &Dockerd) {
    let host = format!("127.0.0.1:{port}");
    let home = TempDir::new("push");
    let (name, tag) = f.runnable().into_iter().next().expect("a runnable tag");
    let source = format!("{host}/{name}:{tag}");
    let target = format!("{host}/pushed/image:1");
    let says_why = |what: &str, out: &Output| {
        let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase()
            + &String::from_utf8_lossy(&out.stdout).to_lowercase();
        assert!(!out.status.success(), "{what} succeeded: {stderr}");
        assert!(
            stderr.contains("405")
                || stderr.contains("unsupported")
                || stderr.contains("not allowed"),
            "{what}: the error does not say the registry refuses writes: {stderr}"
        );
    };
    let skopeo = super::skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{source}"),
        &format!("docker://{target}"),
    ]);
    says_why("skopeo copy", &skopeo);
    let mut crane = isolated(&go_bin("crane"), home.path());
    crane.args(["copy", &source, &target, "--insecure"]);
    says_why("crane copy", &process::output(&mut crane));
    let mut pull = dockerd.docker();
    process::run(pull.args(["pull", &source]));
    let mut retag = dockerd.docker();
    process::run(retag.args(["tag", &source, &target]));
    let mut push = dockerd.docker();
    says_why(
        "docker push",
        &process::output(push.args(["push", &target])),
    );
    assert!(
        !f.tree().join("v2/pushed").exists(),
        "a push wrote into the tree"
    );
}

/// A private registry, as each client meets it: without credentials (or with a wrong password)
/// skopeo is refused; with them `docker login` + pull, `podman pull --creds`, `skopeo --creds`,
/// `ctr --user`, `crane auth login` + digest, `helm registry login` + pull and `oras login` +
/// pull all get the builder's digests.
pub fn assert_clients_with_credentials(
    port: u16,
    f: &Fixture,
    user: &str,
    password: &str,
    containerd: &super::Containerd,
    dockerd: &Dockerd,
) {
    let host = format!("127.0.0.1:{port}");
    let creds = format!("{user}:{password}");
    let (name, tag) = f.runnable().into_iter().next().expect("a runnable tag");
    let digest = f.repositories()[&name]["tags"][&tag]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let reference = format!("{host}/{name}:{tag}");
    let image = format!("docker://{reference}");
    // skopeo: refused without credentials and with a wrong password, the bytes with them.
    for bad in [
        None,
        Some(format!("{user}:wrong")),
        Some("nobody:x".to_string()),
    ] {
        let mut args = vec!["inspect", "--raw", "--tls-verify=false"];
        if let Some(c) = bad.as_deref() {
            args.extend(["--creds", c]);
        }
        args.push(&image);
        let out = super::skopeo(&args);
        let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
        assert!(
            !out.status.success(),
            "skopeo {args:?} pulled without credentials"
        );
        assert!(
            err.contains("unauthorized") || err.contains("authentication required"),
            "skopeo {args:?}: {err}"
        );
    }
    let out = super::skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        &creds,
        &image,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(sha256(&out.stdout), digest, "skopeo --creds {reference}");

    // docker login, then pull.
    let mut login = dockerd.docker();
    login
        .args(["login", &host, "-u", user, "--password-stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = login.spawn().expect("docker login");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(password.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "docker login: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (repo_digests, _) = dockerd.pull(&reference);
    assert!(
        repo_digests.contains(&format!("{host}/{name}@{digest}")),
        "docker pull {reference}: {repo_digests:?}"
    );

    // ctr --user.
    process::run(containerd.ctr().args([
        "images",
        "pull",
        "--plain-http",
        "--user",
        &creds,
        &reference,
    ]));
    assert_eq!(containerd.image_target(&reference), digest, "ctr --user");

    // podman --creds.
    let dir = TempDir::new("podman-creds");
    let conf = dir.join("containers.conf");
    fs::write(&conf, "[containers]\ndefault_ulimits = []\n").unwrap();
    let mut podman = isolated(Path::new("podman"), dir.path());
    podman
        .env_remove("DOCKER_CONFIG")
        .env("CONTAINERS_CONF", &conf)
        .arg("--root")
        .arg(dir.join("root"))
        .arg("--runroot")
        .arg(dir.join("runroot"))
        .args([
            "--storage-driver",
            "vfs",
            "--events-backend",
            "none",
            "--cgroup-manager",
            "cgroupfs",
            "pull",
            "--tls-verify=false",
            "-q",
            "--creds",
            &creds,
            &reference,
        ]);
    process::run(&mut podman);

    // crane auth login, then digest.
    let home = TempDir::new("crane-creds");
    process::run(
        isolated(&go_bin("crane"), home.path())
            .args(["auth", "login", &host, "-u", user, "-p", password]),
    );
    let out = process::run(isolated(&go_bin("crane"), home.path()).args([
        "digest",
        &reference,
        "--insecure",
    ]));
    assert_eq!(text(&out), digest, "crane digest after crane auth login");

    // helm registry login, then pull.
    let home = TempDir::new("helm-creds");
    let helm = |args: &[&str]| {
        let mut cmd = isolated(&go_bin("helm"), home.path());
        cmd.env("HELM_CACHE_HOME", home.join("helm-cache"))
            .env("HELM_CONFIG_HOME", home.join("helm-config"))
            .env("HELM_DATA_HOME", home.join("helm-data"))
            .args(args);
        process::run(&mut cmd)
    };
    helm(&[
        "registry",
        "login",
        &host,
        "--username",
        user,
        "--password",
        password,
        "--plain-http",
    ]);
    let dest = home.join("chart");
    fs::create_dir_all(&dest).unwrap();
    helm(&[
        "pull",
        &format!("oci://{host}/charts/hello"),
        "--version",
        "0.1.0",
        "--plain-http",
        "-d",
        dest.to_str().unwrap(),
    ]);
    let chart = &f.repositories()["charts/hello"];
    let chart_digest = chart["tags"]["0.1.0"]["digest"].as_str().unwrap();
    let layer = chart["manifests"][chart_digest]["layers"][0]
        .as_str()
        .unwrap();
    assert_eq!(
        sha256(&fs::read(dest.join("hello-0.1.0.tgz")).unwrap()),
        layer,
        "helm pull after helm registry login"
    );

    // oras login, then pull of the artifact.
    let home = TempDir::new("oras-creds");
    process::run(isolated(&go_bin("oras"), home.path()).args([
        "login",
        &host,
        "-u",
        user,
        "-p",
        password,
        "--plain-http",
    ]));
    let out_dir = home.join("pulled");
    fs::create_dir_all(&out_dir).unwrap();
    process::run(
        isolated(&go_bin("oras"), home.path())
            .args([
                "pull",
                &format!("{host}/demo/artifact:v1"),
                "--plain-http",
                "-o",
            ])
            .arg(&out_dir),
    );
    assert!(
        out_dir.join("hello.txt").is_file(),
        "oras pull after oras login"
    );
}
