//! `registrish-gen headers` against the fixture builder's independent record: every path, its
//! Content-Type, digest, length and cache class; nothing more; the same bytes on every run.

use crate::support::fixture;
use crate::support::run_bin_ok;
use serde_json::Value;
use std::collections::BTreeSet;
use std::fs;

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const TAG: &str = "public, max-age=300";

#[test]
fn headers_name_every_path_with_what_the_builder_recorded() {
    let f = fixture::build("basic", &[]);
    let tree = f.tree();
    let tree = tree.to_str().unwrap();
    run_bin_ok(["prepare", tree], f.dir.path());
    let first = run_bin_ok(["headers", tree], f.dir.path()).stdout;
    let second = run_bin_ok(["headers", tree], f.dir.path()).stdout;
    assert_eq!(first, second, "deterministic");
    let out = f.dir.join("headers.json");
    run_bin_ok(["headers", tree, "-o", out.to_str().unwrap()], f.dir.path());
    assert_eq!(fs::read(&out).unwrap(), first);

    let all: Value = serde_json::from_slice(&first).unwrap();
    let all = all.as_object().unwrap();
    let keys: Vec<&String> = all.keys().collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "keys are sorted");
    let text = String::from_utf8(first.clone()).unwrap();
    assert!(text.find("\"/v2/\"").unwrap() < text.find("\"/v2/_catalog\"").unwrap());

    let mut expected: BTreeSet<String> = BTreeSet::new();
    let entry = |path: &str| -> &serde_json::Map<String, Value> {
        let e = &all[path];
        assert_eq!(e["status"], 200, "{path}");
        e["headers"].as_object().unwrap()
    };
    let check =
        |path: &str, content_type: &str, digest: Option<&str>, len: u64, cache: Option<&str>| {
            let h = entry(path);
            assert_eq!(h["Content-Type"], content_type, "{path}");
            assert_eq!(h["Content-Length"], len.to_string(), "{path}");
            assert_eq!(
                h["Docker-Distribution-API-Version"], "registry/2.0",
                "{path}"
            );
            assert_eq!(
                h.get("Docker-Content-Digest").and_then(|v| v.as_str()),
                digest,
                "{path}"
            );
            assert_eq!(
                h.get("Cache-Control").and_then(|v| v.as_str()),
                cache,
                "{path}"
            );
        };
    for (name, tag, digest, media_type, size) in f.tags() {
        let path = format!("/v2/{name}/manifests/{tag}");
        check(&path, &media_type, Some(&digest), size, Some(TAG));
        expected.insert(path);
    }
    for (name, digest, media_type, size) in f.manifests() {
        let path = format!("/v2/{name}/manifests/{digest}");
        check(&path, &media_type, Some(&digest), size, Some(IMMUTABLE));
        expected.insert(path);
    }
    for (name, digest, size) in f.blobs() {
        let path = format!("/v2/{name}/blobs/{digest}");
        check(
            &path,
            "application/octet-stream",
            Some(&digest),
            size,
            Some(IMMUTABLE),
        );
        expected.insert(path);
    }
    for (name, subject, descriptors) in f.referrers() {
        let path = format!("/v2/{name}/referrers/{subject}");
        let body = fs::read(f.tree().join(&path[1..])).unwrap();
        let index: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(index["manifests"], Value::Array(descriptors), "{path}");
        check(
            &path,
            "application/vnd.oci.image.index.v1+json",
            None,
            body.len() as u64,
            Some(TAG),
        );
        expected.insert(path);
    }
    for (name, repo) in f.repositories() {
        let path = format!("/v2/{name}/tags/list");
        let body = fs::read(f.tree().join(&path[1..])).unwrap();
        let list: Value = serde_json::from_slice(&body).unwrap();
        let tags: BTreeSet<&str> = list["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        assert_eq!(
            tags,
            repo["tags"]
                .as_object()
                .unwrap()
                .keys()
                .map(|k| k.as_str())
                .collect()
        );
        check(
            &path,
            "application/json",
            None,
            body.len() as u64,
            Some(TAG),
        );
        expected.insert(path);
    }
    let catalog = fs::read(f.tree().join("v2/_catalog")).unwrap();
    check(
        "/v2/_catalog",
        "application/json",
        None,
        catalog.len() as u64,
        Some(TAG),
    );
    check("/v2/", "application/json", None, 2, None);
    expected.insert("/v2/_catalog".into());
    expected.insert("/v2/".into());
    assert_eq!(
        all.keys().cloned().collect::<BTreeSet<_>>(),
        expected,
        "exactly the routes"
    );
}
