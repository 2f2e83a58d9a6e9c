//! Netlify: the generated `_headers` and `_redirects`, parsed by Netlify's own
//! parsers (npm @netlify/headers-parser and @netlify/redirect-parser), must
//! give every manifest path exactly one exact Content-Type and its digest.
//! (`netlify dev` cannot prove Content-Type: its proxy overrides it.)

use crate::support::fixture::{self, Fixture};
use crate::support::{node_bin, run_bin_ok};
use serde_json::Value;
use std::io::Write;
use std::process::{Command, Stdio};

/// Asks Netlify's parsers which headers apply to each path.
pub(crate) fn netlify_answer(dir: &std::path::Path, paths: &[String]) -> Value {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js/netlify_rules.mjs");
    let modules = node_bin("wrangler")
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let mut child = Command::new("node")
        .arg(script)
        .arg(dir)
        .env("REGISTRISH_NODE_MODULES", &modules)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node must be installed (scripts/test installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(paths).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "netlify parsers failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn generate(f: &Fixture) -> std::path::PathBuf {
    let tree = f.tree();
    run_bin_ok(["prepare", tree.to_str().unwrap()], f.dir.path());
    run_bin_ok(["netlify", tree.to_str().unwrap()], f.dir.path());
    tree
}

fn assert_one(answer: &Value, path: &str, header: &str, value: &str) {
    let a = &answer["paths"][path];
    assert_eq!(
        a["setters"][header.to_lowercase()],
        1,
        "{path}: {header} set by {} rules: {a}",
        a["setters"][header.to_lowercase()]
    );
    assert_eq!(a["values"][header], value, "{path}: {a}");
}

#[test]
fn netlify_rules_give_every_path_exact_headers() {
    let f = fixture::build("basic", &[]);
    let tree = generate(&f);
    let mut expected: Vec<(String, &str, String, String)> = Vec::new();
    for (name, tag, digest, media_type, _) in f.tags() {
        expected.push((
            format!("/v2/{name}/manifests/{tag}"),
            "tag",
            digest,
            media_type,
        ));
    }
    for (name, digest, media_type, _) in f.manifests() {
        expected.push((
            format!("/v2/{name}/manifests/{digest}"),
            "digest",
            digest,
            media_type,
        ));
    }
    for (name, digest, _) in f.blobs() {
        expected.push((
            format!("/v2/{name}/blobs/{digest}"),
            "blob",
            digest,
            "application/octet-stream".into(),
        ));
    }
    let mut paths: Vec<String> = expected.iter().map(|e| e.0.clone()).collect();
    let json_paths: Vec<String> = [
        "/v2/",
        "/v2/_catalog",
        "/v2/_errors/manifest_unknown.json",
        "/v2/_errors/blob_unknown.json",
        "/v2/_errors/name_unknown.json",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(
        f.repositories()
            .keys()
            .map(|n| format!("/v2/{n}/tags/list")),
    )
    .collect();
    paths.extend(json_paths.iter().cloned());
    // OCI 1.1 referrers: each subject's index (a file), and a subject nothing refers to (the
    // rewrite to the empty index below): both typed as an OCI index by one rule.
    let nothing = format!("sha256:{}", "e".repeat(64));
    let referrer_paths: Vec<String> = f
        .referrers()
        .into_iter()
        .map(|(name, subject, _)| format!("/v2/{name}/referrers/{subject}"))
        .chain(
            f.repositories()
                .keys()
                .map(|n| format!("/v2/{n}/referrers/{nothing}")),
        )
        .collect();
    assert!(!f.referrers().is_empty());
    paths.extend(referrer_paths.iter().cloned());
    let answer = netlify_answer(&tree, &paths);
    assert_eq!(answer["header_errors"], serde_json::json!([]), "{answer}");
    assert_eq!(answer["redirect_errors"], serde_json::json!([]), "{answer}");
    for (path, kind, digest, media_type) in &expected {
        assert_one(&answer, path, "Content-Type", media_type);
        assert_one(&answer, path, "Docker-Content-Digest", digest);
        assert_one(
            &answer,
            path,
            "Docker-Distribution-API-Version",
            "registry/2.0",
        );
        let cache = answer["paths"][path]["values"]["Cache-Control"]
            .as_str()
            .unwrap();
        assert_eq!(
            cache.contains("immutable"),
            *kind != "tag",
            "{path}: {cache}"
        );
    }
    for path in &json_paths {
        assert_one(&answer, path, "Content-Type", "application/json");
        assert!(
            tree.join(path.trim_start_matches('/').trim_end_matches('/'))
                .exists()
                || path == "/v2/",
            "{path} not in the tree"
        );
    }
    for path in &referrer_paths {
        assert_one(
            &answer,
            path,
            "Content-Type",
            "application/vnd.oci.image.index.v1+json",
        );
        let cache = answer["paths"][path]["values"]["Cache-Control"]
            .as_str()
            .unwrap();
        assert!(!cache.contains("immutable"), "{path}: {cache}");
    }
    // Misses: 404 rules without `!` (shadowing), to JSON bodies prepare wrote; and for
    // referrers a 200 rewrite to the empty index, which applies only where no index file is.
    let redirects = answer["redirects"].as_array().unwrap();
    assert!(!redirects.is_empty());
    let (rewrites, redirects): (Vec<&Value>, Vec<&Value>) = redirects
        .iter()
        .partition(|r| r["from"].as_str().unwrap().ends_with("/referrers/:digest"));
    assert!(!rewrites.is_empty());
    for r in &rewrites {
        assert_eq!(r["status"], 200, "{r}");
        assert_eq!(r["force"], false, "{r}");
        assert_eq!(r["to"], "/v2/_referrers_empty.json", "{r}");
        assert_eq!(
            serde_json::from_slice::<Value>(
                &std::fs::read(tree.join("v2/_referrers_empty.json")).unwrap()
            )
            .unwrap(),
            serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []})
        );
    }
    for r in &redirects {
        assert_eq!(r["status"], 404, "{r}");
        assert_eq!(r["force"], false, "{r}");
        let to = r["to"].as_str().unwrap();
        assert!(
            tree.join(to.trim_start_matches('/')).is_file(),
            "{to} missing"
        );
    }
    let froms: Vec<&str> = redirects
        .iter()
        .map(|r| r["from"].as_str().unwrap())
        .collect();
    for depth_pattern in [
        "/v2/:n1/manifests/:reference",
        "/v2/:n1/:n2/:n3/manifests/:reference",
        "/v2/:n1/:n2/blobs/:digest",
        "/v2/*",
    ] {
        assert!(
            froms.contains(&depth_pattern),
            "{depth_pattern} not in {froms:?}"
        );
    }
}

#[test]
fn netlify_rules_leave_hostile_and_case_colliding_paths_out() {
    let f = fixture::build("hostile", &[]);
    let tree = generate(&f);
    let headers = std::fs::read_to_string(tree.join("_headers")).unwrap();
    for hostile in [
        "pwned",
        "$host",
        "t}",
        "evil",
        "quo",
        "dollar",
        "Bad",
        "escape",
        "weird",
        "notjson",
        "/v2/demo/case/manifests/Latest",
        "/v2/demo/case/manifests/latest",
    ] {
        assert!(!headers.contains(hostile), "{hostile:?} reached _headers");
    }
    let answer = netlify_answer(&tree, &["/v2/demo/hello/manifests/latest".to_string()]);
    assert_eq!(answer["header_errors"], serde_json::json!([]));
    let digest = f.repositories()["demo/hello"]["tags"]["latest"]["digest"]
        .as_str()
        .unwrap();
    assert_one(
        &answer,
        "/v2/demo/hello/manifests/latest",
        "Docker-Content-Digest",
        digest,
    );
}
