//! `registrish-gen headers` against the fixture builder's independent record: every path, its
//! Content-Type, digest, length and cache class; nothing more; the same bytes on every run.

use crate::support::fixture;
use crate::support::run_bin_ok;
use serde_json::Value;
use std::collections::BTreeSet;
use std::fs;

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const TAG: &str = "public, max-age=300";

/// The keys in the order the text has them (serde_json's map sorts them on reading, so a
/// parsed object cannot tell).
fn keys_as_written(json: &[u8]) -> Vec<String> {
    let text = std::str::from_utf8(json).unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("  "))
        .map(|l| {
            let end = l.find(": {\"headers\"").expect("one entry a line");
            serde_json::from_str::<String>(&l[..end]).unwrap()
        })
        .collect()
}

fn assert_sorted(keys: &[String]) {
    for pair in keys.windows(2) {
        assert!(
            pair[0] < pair[1],
            "{} is written before {}",
            pair[0],
            pair[1]
        );
    }
}

/// Repositories nested in one another interleave their paths (`/v2/demo/hello/a/...` sorts
/// between `/v2/demo/hello/` and its `blobs/`; `/v2/demo-x/` before `/v2/demo/`): headers
/// makes its routes a repository group at a time, and the whole still comes out sorted.
/// Copies of demo/hello nested around it and in it.
const NESTED: [&str; 5] = [
    "demo",
    "demo-x",
    "demo/hello/a",
    "demo/hello/c",
    "demo/hello/z",
];

#[test]
fn headers_keys_are_sorted_across_nested_repositories() {
    let f = fixture::build("basic", &[]);
    let v2 = f.tree().join("v2");
    for nested in NESTED {
        let to = v2.join(nested);
        fs::create_dir_all(&to).unwrap();
        for part in ["manifests", "blobs"] {
            let status = std::process::Command::new("cp")
                .arg("-r")
                .arg(v2.join("demo/hello").join(part))
                .arg(&to)
                .status()
                .unwrap();
            assert!(status.success());
        }
    }
    let tree = f.tree();
    let tree = tree.to_str().unwrap();
    run_bin_ok(["prepare", tree], f.dir.path());
    let out = run_bin_ok(["headers", tree], f.dir.path()).stdout;
    let keys = keys_as_written(&out);
    assert_sorted(&keys);
    let all: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(keys.len(), all.as_object().unwrap().len());
    let hello = keys
        .iter()
        .filter(|k| k.starts_with("/v2/demo/hello/manifests/"))
        .count();
    for nested in NESTED {
        let prefix = format!("/v2/{nested}/manifests/");
        assert_eq!(
            keys.iter().filter(|k| k.starts_with(&prefix)).count(),
            hello,
            "{nested}: every manifest path"
        );
        assert!(keys.contains(&format!("/v2/{nested}/tags/list")));
    }
}

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
    let keys = keys_as_written(&first);
    assert_sorted(&keys);
    assert_eq!(keys.len(), all.len());
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
