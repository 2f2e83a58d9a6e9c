//! Cloudflare Pages, run locally with `wrangler pages dev` on the prepared tree
//! plus the generated `_worker.js`, pulled by real clients, at fixture size and
//! past the 100-rule `_headers` limit.

use crate::support::fixture::{self, Fixture};
use crate::support::matrix::assert_every_client;
use crate::support::registry::{Expect, assert_hostile_refused, assert_http, assert_http_every};
use crate::support::{self, Containerd, Dockerd, Wrangler, free_port, http, run_bin_ok};

// Pages answers a range request with 200 and the whole file: "Pages currently returns `200`
// responses for HTTP range requests" (developers.cloudflare.com/pages/configuration/serving-pages,
// Behavior), and `wrangler pages dev` does the same for a plain asset. The worker answers a
// single range on a blob itself, so Pages is held to the whole contract (`Expect::ALL`).

fn serve(f: &Fixture) -> Wrangler {
    let tree = f.tree();
    run_bin_ok(["prepare", tree.to_str().unwrap()], f.dir.path());
    run_bin_ok(["cloudflare", tree.to_str().unwrap()], f.dir.path());
    Wrangler::start(&tree, free_port())
}

fn assert_no_rule_warnings(w: &Wrangler) {
    let log = w.log();
    let bad = wrangler_complaints(&log);
    // The offending lines first: the whole log runs to hundreds of lines and CI keeps only
    // part of a failure's output.
    assert!(
        bad.is_empty(),
        "wrangler complained:\n{}\n\nwhole log:\n{log}",
        bad.join("\n")
    );
}

/// The lines of a wrangler log that name a fault of the worker or of the Pages rules: rule
/// limits, errors, uncaught exceptions. One error is the client's doing and is left out:
/// workerd logs kj's `disconnected: ... Broken pipe` (or `Connection reset`) when a client hangs
/// up before the answer is written, which the client matrix does under load (seen in CI: every
/// client had pulled and every assertion held).
fn wrangler_complaints(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| {
            l.contains("Maximum number of rules") || l.contains("✘") || l.contains("[ERROR]")
        })
        .filter(|l| {
            !(l.contains("disconnected: ")
                && (l.contains("Broken pipe") || l.contains("Connection reset")))
        })
        .collect()
}

#[test]
fn wrangler_complaints_name_worker_faults_and_not_client_hang_ups() {
    // Lines as wrangler prints them (colour codes included).
    let hang_up = "\u{1b}[31m✘ \u{1b}[41;31m[\u{1b}[41;97mERROR\u{1b}[41;31m]\u{1b}[0m \u{1b}[1mkj::getCaughtExceptionAsKj() = kj/async-io-unix.c++:186: disconnected: ::write(fd, buffer.begin(), buffer.size()): Broken pipe\u{1b}[0m";
    let uncaught = "\u{1b}[31m✘ \u{1b}[41;31m[\u{1b}[41;97mERROR\u{1b}[41;31m]\u{1b}[0m \u{1b}[1mUncaught TypeError: Cannot read properties of undefined (reading 'get')\u{1b}[0m";
    let rules =
        "▲ [WARNING] Maximum number of rules supported is 100. Skipping remaining 3 lines of file.";
    let ok = "[wrangler:info] GET /v2/ 200 OK (152ms)";
    let log = [ok, hang_up, uncaught, ok, rules].join("\n");
    assert_eq!(wrangler_complaints(&log), vec![uncaught, rules]);
    assert!(wrangler_complaints(&[ok, hang_up].join("\n")).is_empty());
}

#[test]
fn pages_serves_every_tag_and_digest_to_every_client() {
    let f = fixture::build("runnable", &[]);
    let pages = serve(&f);
    assert_http(pages.port(), &f, Expect::ALL);
    // HEAD on a manifest carries its length (dockerd refuses a HEAD without one).
    let (name, tag, _, _, size) = f.tags().into_iter().next().unwrap();
    let head = http::head(pages.port(), &format!("/v2/{name}/manifests/{tag}"));
    assert_eq!(
        head.header("Content-Length"),
        Some(size.to_string().as_str())
    );
    curl_checks(pages.port(), &f);
    let containerd = Containerd::start();
    let dockerd = Dockerd::start();
    assert_every_client(pages.port(), &f, &containerd, &dockerd);
    assert_no_rule_warnings(&pages);
}

/// The same through curl, as an operator would check a deployment.
fn curl_checks(port: u16, f: &Fixture) {
    let curl = |args: &[&str]| {
        let out = support::process::run(
            std::process::Command::new("curl")
                .args(["-s", "--max-time", "20"])
                .args(args),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let base = format!("http://127.0.0.1:{port}");
    let head = curl(&["-I", &format!("{base}/v2/")]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_lowercase()
            .contains("docker-distribution-api-version: registry/2.0"),
        "{head}"
    );
    assert_eq!(curl(&[&format!("{base}/v2/")]), "{}");
    let (name, tag, digest, media_type, size) = f.tags().into_iter().next().unwrap();
    let head = curl(&["-I", &format!("{base}/v2/{name}/manifests/{tag}")]).to_lowercase();
    for want in [
        format!("content-type: {media_type}"),
        format!("docker-content-digest: {digest}"),
        format!("content-length: {size}"),
    ] {
        assert!(head.contains(&want), "{want} not in {head}");
    }
    let tags: serde_json::Value =
        serde_json::from_str(&curl(&[&format!("{base}/v2/{name}/tags/list")])).unwrap();
    assert_eq!(tags["name"], name.as_str());
    let miss = curl(&[
        "-w",
        "\n%{http_code}",
        &format!("{base}/v2/{name}/manifests/no-such-tag"),
    ]);
    let (body, status) = miss.rsplit_once('\n').unwrap();
    assert_eq!(status, "404");
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["errors"][0]["code"], "MANIFEST_UNKNOWN");
}

#[test]
fn pages_serves_a_registry_past_the_rule_limit() {
    // 2,000 tags, 4,000 manifest paths and 2,020 blobs: a `_headers` file with a rule per
    // path would be 60 times over Pages' 100-rule limit.
    let f = fixture::build("big", &["--manifests", "2000", "--repos", "20"]);
    let pages = serve(&f);
    assert_http_every(pages.port(), &f, Expect::ALL, 37);
    let host = format!("127.0.0.1:{}", pages.port());
    let containerd = Containerd::start();
    let dockerd = Dockerd::start();
    for (name, tag, digest, _, _) in f.tags().into_iter().step_by(499) {
        let reference = format!("{host}/{name}:{tag}");
        assert_eq!(
            support::fixture::sha256(&support::skopeo_inspect_raw(&reference)),
            digest
        );
        containerd.pull(&reference);
        assert_eq!(containerd.image_target(&reference), digest);
        let (repo_digests, _) = dockerd.pull(&reference);
        assert!(
            repo_digests.contains(&format!("{host}/{name}@{digest}")),
            "{repo_digests:?}"
        );
    }
    assert_no_rule_warnings(&pages);
}

#[test]
fn pages_serves_the_sound_part_of_a_hostile_tree_and_nothing_else() {
    let f = fixture::build("hostile", &[]);
    // Files beside v2/ in the deployed directory, which Pages would serve as static assets
    // (a symlink as a 502, a `.html` page as a 308 to `/page`): the worker runs for every
    // path and answers none of them.
    let tree = f.tree();
    std::os::unix::fs::symlink("v2/index.html", tree.join("linked.json")).unwrap();
    std::fs::write(tree.join("page.html"), "<p>hi</p>").unwrap();
    let pages = serve(&f);
    for path in [
        "/linked.json",
        "/page.html",
        "/page",
        "/_routes.json",
        "/_worker.js",
    ] {
        let r = http::get(pages.port(), path);
        assert_eq!(
            (r.status, r.header("Content-Type")),
            (404, Some("application/json")),
            "{path}: {:?}",
            r.headers
        );
        assert_eq!(
            r.body_text(),
            std::fs::read_to_string(tree.join("v2/_errors/name_unknown.json")).unwrap(),
            "{path}"
        );
    }
    assert_http(pages.port(), &f, Expect::ALL);
    assert_hostile_refused(pages.port(), &f);
    assert_eq!(http::get(pages.port(), "/nothing-here").status, 404);
}
