//! What every host must get right, asserted the same way for each: the
//! HTTP surface of the pull protocol (bytes, headers, digests, caching, ranges,
//! JSON errors) and real clients pulling every tag and digest.

use super::fixture::{Fixture, sha256};
use super::http::{self, Response};
use super::{Containerd, Dockerd, TempDir};
use serde_json::Value;
use std::collections::BTreeSet;

/// What a host can do; the rest is asserted exactly.
#[derive(Clone, Copy, Debug)]
pub struct Expect {
    /// Docker-Content-Digest on manifests and blobs.
    pub digest_headers: bool,
    /// Docker-Distribution-API-Version on every response.
    pub api_version: bool,
    /// Cache-Control: short for tags, tags/list and _catalog, immutable for digests and blobs.
    pub cache_control: bool,
}

impl Expect {
    pub const ALL: Expect = Expect {
        digest_headers: true,
        api_version: true,
        cache_control: true,
    };
}

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// OCI 1.1 referrers (distribution-spec "Listing Referrers"): for every subject the fixture
/// gave referrers, GET and HEAD of `/v2/<name>/referrers/<subject>`, with and without an
/// `artifactType` query, answer 200 with exactly one Content-Type, the index's, and an index
/// of exactly the expected descriptors (the builder's record, ordered by digest), never
/// OCI-Filters-Applied (the list is not filtered); the fallback tag `sha256-<hex>` holds the
/// same bytes. A subject nothing refers to gets the empty index with 200, and a malformed
/// digest is never an index.
pub fn assert_referrers(port: u16, f: &Fixture, expect: Expect) {
    let referrers = f.referrers();
    for (name, subject, descriptors) in &referrers {
        let path = format!("/v2/{name}/referrers/{subject}");
        let artifact_type = descriptors[0]["artifactType"].as_str().unwrap();
        let filtered = format!("{path}?artifactType={artifact_type}");
        let mut bodies = Vec::new();
        for (method, target) in [("GET", &path), ("HEAD", &path), ("GET", &filtered)] {
            let r = http::request(method, port, target);
            let c = || ctx(method, target, &r);
            assert_eq!(r.status, 200, "{}", c());
            assert_eq!(r.header_all("Content-Type"), vec![OCI_INDEX], "{}", c());
            assert!(r.header_all("OCI-Filters-Applied").is_empty(), "{}", c());
            assert_api_version(expect, target, &r);
            if method == "HEAD" {
                assert!(r.body.is_empty(), "{}", c());
                continue;
            }
            let index: Value =
                serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", c()));
            assert_eq!(index["schemaVersion"], 2, "{}", c());
            assert_eq!(index["mediaType"], OCI_INDEX, "{}", c());
            assert_eq!(
                index["manifests"],
                Value::Array(descriptors.clone()),
                "{}",
                c()
            );
            assert_eq!(
                r.header("Content-Length"),
                Some(r.body.len().to_string().as_str()),
                "{}",
                c()
            );
            bodies.push(r.body);
        }
        assert_eq!(bodies[0], bodies[1], "{path}: the query changes nothing");
        let tag = format!(
            "/v2/{name}/manifests/sha256-{}",
            &subject["sha256:".len()..]
        );
        let r = http::get(port, &tag);
        assert_eq!(r.status, 200, "{}", ctx("fallback tag", &tag, &r));
        assert_eq!(r.body, bodies[0], "{}", ctx("fallback tag", &tag, &r));
    }
    // Every repository, a subject nothing refers to (the digest of the empty string).
    let nothing = sha256(b"");
    for name in f.repositories().keys() {
        let path = format!("/v2/{name}/referrers/{nothing}");
        for method in ["GET", "HEAD"] {
            let r = http::request(method, port, &path);
            let c = || ctx(method, &path, &r);
            assert_eq!(r.status, 200, "{}", c());
            assert_eq!(r.header_all("Content-Type"), vec![OCI_INDEX], "{}", c());
            assert!(r.header_all("OCI-Filters-Applied").is_empty(), "{}", c());
            assert_api_version(expect, &path, &r);
            if method == "GET" {
                assert_eq!(
                    serde_json::from_slice::<Value>(&r.body)
                        .unwrap_or_else(|e| panic!("{e}: {}", c())),
                    serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}),
                    "{}",
                    c()
                );
            }
        }
    }
    let (name, ..) = f.tags().into_iter().next().expect("a tag");
    for bad in ["sha256:123", "latest", "sha256:ZZ"] {
        let path = format!("/v2/{name}/referrers/{bad}");
        let r = http::get(port, &path);
        assert_eq!(r.status, 404, "{}", ctx("malformed digest", &path, &r));
        assert!(
            !r.header_all("Content-Type").contains(&OCI_INDEX),
            "{}",
            ctx("malformed digest", &path, &r)
        );
    }
}

/// Methods a registry client writes with (push, delete, chunked upload) and others a static
/// server may answer with content or an echo.
const WRITE_METHODS: &[&str] = &[
    "PUT", "POST", "DELETE", "PATCH", "OPTIONS", "PROPFIND", "MKCOL",
];

/// No write is ever accepted: on `/v2/`, a manifest by tag, a blob, a list and the upload
/// path, every method but GET and HEAD answers 405 with `Allow: GET, HEAD` and the registry's
/// JSON error UNSUPPORTED, and the content on disk is the same afterwards.
pub fn assert_read_only(port: u16, f: &Fixture, expect: Expect) {
    let (name, tag, _, _, _) = f.tags().into_iter().next().expect("a tag");
    let (bname, blob, _) = f.blobs().into_iter().next().expect("a blob");
    let paths = [
        "/v2/".to_string(),
        format!("/v2/{name}/manifests/{tag}"),
        format!("/v2/{bname}/blobs/{blob}"),
        format!("/v2/{name}/tags/list"),
        format!("/v2/{name}/blobs/uploads/"),
    ];
    let before = std::fs::read(f.tree().join(format!("v2/{name}/manifests/{tag}"))).unwrap();
    for path in &paths {
        for method in WRITE_METHODS {
            let r = http::request_with(method, port, path, &[("Content-Length", "0")]);
            let what = format!("{method} {path}");
            assert!(!(200..300).contains(&r.status), "{}", ctx(&what, path, &r));
            assert_eq!(r.status, 405, "{}", ctx(&what, path, &r));
            assert_eq!(
                r.header_all("Allow"),
                vec!["GET, HEAD"],
                "{}",
                ctx(&what, path, &r)
            );
            assert_eq!(
                r.header_all("Content-Type"),
                vec!["application/json"],
                "{}",
                ctx(&what, path, &r)
            );
            let body: Value = serde_json::from_slice(&r.body)
                .unwrap_or_else(|e| panic!("{e}: {}", ctx(&what, path, &r)));
            assert_eq!(
                body["errors"][0]["code"],
                "UNSUPPORTED",
                "{}",
                ctx(&what, path, &r)
            );
            assert_api_version(expect, path, &r);
        }
    }
    let after = std::fs::read(f.tree().join(format!("v2/{name}/manifests/{tag}"))).unwrap();
    assert_eq!(before, after, "a write changed the tree");
}

fn ctx(what: &str, path: &str, r: &Response) -> String {
    format!(
        "{what} {path}: status {} headers {:?} body {:?}",
        r.status,
        r.headers,
        r.body_text().chars().take(300).collect::<String>()
    )
}

fn assert_api_version(expect: Expect, path: &str, r: &Response) {
    if expect.api_version {
        assert_eq!(
            r.header_all("Docker-Distribution-API-Version"),
            vec!["registry/2.0"],
            "{}",
            ctx("api version", path, r)
        );
    }
}

/// Exactly one Cache-Control: `immutable` for what a digest names, else short (the default
/// `tag_max_age`, 300 s) and never immutable.
fn assert_cache_control(expect: Expect, immutable: bool, path: &str, r: &Response) {
    if !expect.cache_control {
        return;
    }
    let all = r.header_all("Cache-Control");
    assert_eq!(all.len(), 1, "{}", ctx("cache-control", path, r));
    let cc = all[0];
    if immutable {
        assert!(
            cc.contains("immutable"),
            "{}",
            ctx("cache-control", path, r)
        );
    } else {
        assert!(
            cc.contains("max-age=300") && !cc.contains("immutable"),
            "{}",
            ctx("cache-control", path, r)
        );
    }
}

/// `Range: bytes=0-9` on a blob: 206, `Content-Range: bytes 0-9/SIZE` and exactly those bytes
/// (a blob shorter than 10 bytes: all of it, as RFC 9110 says). Clients resume pulls this way.
fn assert_range(port: u16, path: &str, blob: &[u8]) {
    let last = blob.len().min(10) - 1;
    let r = http::request_with("GET", port, path, &[("Range", "bytes=0-9")]);
    let c = || ctx("range 0-9", path, &r);
    assert_eq!(r.status, 206, "{}", c());
    assert_eq!(
        r.header_all("Content-Range"),
        vec![format!("bytes 0-{last}/{}", blob.len())],
        "{}",
        c()
    );
    assert_eq!(r.body, &blob[..=last], "{}", c());
}

fn assert_json_error(port: u16, path: &str, code: &str, expect: Expect) {
    let r = http::get(port, path);
    assert_eq!(r.status, 404, "{}", ctx("miss", path, &r));
    assert_eq!(
        r.header_all("Content-Type"),
        vec!["application/json"],
        "{}",
        ctx("miss", path, &r)
    );
    let body: Value = serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("{e}: {}", ctx("miss", path, &r)));
    assert_eq!(body["errors"][0]["code"], code, "{}", ctx("miss", path, &r));
    assert_api_version(expect, path, &r);
}

/// The HTTP surface, request by request, for every path.
pub fn assert_http(port: u16, f: &Fixture, expect: Expect) {
    assert_http_every(port, f, expect, 1);
    assert_read_only(port, f, expect);
    assert_manifest_ranges(port, f);
}

/// A manifest asked for in several ranges answers with the whole body, or one range, and
/// exactly one Content-Type, its own (never multipart/byteranges beside it).
pub fn assert_manifest_ranges(port: u16, f: &Fixture) {
    for (name, tag, digest, media_type, size) in f.tags().into_iter().take(3) {
        for reference in [tag.as_str(), digest.as_str()] {
            let path = format!("/v2/{name}/manifests/{reference}");
            let r = http::request_with("GET", port, &path, &[("Range", "bytes=0-1,4-5")]);
            let what = "multi-range";
            assert_eq!(
                r.header_all("Content-Type"),
                vec![media_type.as_str()],
                "{}",
                ctx(what, &path, &r)
            );
            match r.status {
                200 => {
                    assert_eq!(r.body.len() as u64, size, "{}", ctx(what, &path, &r));
                    assert_eq!(sha256(&r.body), digest, "{}", ctx(what, &path, &r));
                }
                206 => assert!(r.body.len() <= 6, "{}", ctx(what, &path, &r)),
                _ => panic!("{}", ctx(what, &path, &r)),
            }
        }
    }
}

/// The HTTP surface for every `stride`-th manifest and blob path (big trees).
pub fn assert_http_every(port: u16, f: &Fixture, expect: Expect, stride: usize) {
    let r = http::get(port, "/v2/");
    assert_eq!(r.status, 200, "{}", ctx("base", "/v2/", &r));
    assert_eq!(
        serde_json::from_slice::<Value>(&r.body).unwrap(),
        serde_json::json!({})
    );
    assert_eq!(
        r.header_all("Content-Type"),
        vec!["application/json"],
        "{}",
        ctx("base", "/v2/", &r)
    );
    assert_api_version(expect, "/v2/", &r);

    let mut paths = Vec::new();
    for (name, tag, digest, media_type, size) in f.tags() {
        paths.push((
            format!("/v2/{name}/manifests/{tag}"),
            digest,
            media_type,
            size,
            true,
        ));
    }
    for (name, digest, media_type, size) in f.manifests() {
        paths.push((
            format!("/v2/{name}/manifests/{digest}"),
            digest,
            media_type,
            size,
            false,
        ));
    }
    for (path, digest, media_type, size, is_tag) in paths.iter().step_by(stride) {
        for method in ["GET", "HEAD"] {
            let r = http::request(method, port, path);
            let c = || ctx(method, path, &r);
            assert_eq!(r.status, 200, "{}", c());
            // Exactly one Content-Type, exactly the media type.
            assert_eq!(
                r.header_all("Content-Type"),
                vec![media_type.as_str()],
                "{}",
                c()
            );
            assert_eq!(
                r.header("Content-Length"),
                Some(size.to_string().as_str()),
                "{}",
                c()
            );
            if expect.digest_headers {
                assert_eq!(
                    r.header_all("Docker-Content-Digest"),
                    vec![digest.as_str()],
                    "{}",
                    c()
                );
            }
            if method == "GET" {
                assert_eq!(&sha256(&r.body), digest, "{}", c());
            } else {
                assert!(r.body.is_empty(), "{}", c());
            }
            assert_cache_control(expect, !*is_tag, path, &r);
            assert_api_version(expect, path, &r);
        }
    }
    for (name, digest, size) in f.blobs().into_iter().step_by(stride) {
        let path = format!("/v2/{name}/blobs/{digest}");
        let mut blob = Vec::new();
        for method in ["GET", "HEAD"] {
            let r = http::request(method, port, &path);
            let c = || ctx(method, &path, &r);
            assert_eq!(r.status, 200, "{}", c());
            if method == "GET" {
                assert_eq!(sha256(&r.body), digest, "{}", c());
                blob = r.body.clone();
            }
            // Exactly one Content-Type: a blob is bytes, whatever its content looks like.
            assert_eq!(
                r.header_all("Content-Type"),
                vec!["application/octet-stream"],
                "{}",
                c()
            );
            assert_eq!(
                r.header("Content-Length"),
                Some(size.to_string().as_str()),
                "{}",
                c()
            );
            if expect.digest_headers {
                assert_eq!(
                    r.header_all("Docker-Content-Digest"),
                    vec![digest.as_str()],
                    "{}",
                    c()
                );
            }
            assert_cache_control(expect, true, &path, &r);
            assert_api_version(expect, &path, &r);
        }
        assert_range(port, &path, &blob);
    }
    for (name, repo) in f.repositories().iter().step_by(stride) {
        let path = format!("/v2/{name}/tags/list");
        let r = http::get(port, &path);
        assert_eq!(r.status, 200, "{}", ctx("tags", &path, &r));
        assert_eq!(
            r.header_all("Content-Type"),
            vec!["application/json"],
            "{}",
            ctx("tags", &path, &r)
        );
        let mut tags: Vec<&String> = repo["tags"].as_object().unwrap().keys().collect();
        tags.sort();
        assert_eq!(
            serde_json::from_slice::<Value>(&r.body).unwrap(),
            serde_json::json!({"name": name, "tags": tags})
        );
        assert_cache_control(expect, false, &path, &r);
        assert_api_version(expect, &path, &r);
    }
    let r = http::get(port, "/v2/_catalog");
    assert_eq!(r.status, 200, "{}", ctx("catalog", "/v2/_catalog", &r));
    assert_eq!(r.header_all("Content-Type"), vec!["application/json"]);
    assert_cache_control(expect, false, "/v2/_catalog", &r);
    // Every sound repository is listed (a tree may hold more: partly broken ones are still served).
    let catalog: Value = serde_json::from_slice(&r.body).unwrap();
    let listed: BTreeSet<&str> = catalog["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let mut sorted: Vec<&str> = listed.iter().copied().collect();
    sorted.sort();
    assert_eq!(
        catalog["repositories"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect::<Vec<_>>(),
        sorted
    );
    for name in f.repositories().keys() {
        assert!(
            listed.contains(name.as_str()),
            "{name} missing from {catalog}"
        );
    }

    let (name, ..) = f.tags().into_iter().next().expect("a tag");
    let zero = format!("sha256:{}", "0".repeat(64));
    assert_json_error(
        port,
        &format!("/v2/{name}/manifests/no-such-tag"),
        "MANIFEST_UNKNOWN",
        expect,
    );
    assert_json_error(
        port,
        &format!("/v2/{name}/manifests/{zero}"),
        "MANIFEST_UNKNOWN",
        expect,
    );
    assert_json_error(
        port,
        &format!("/v2/{name}/blobs/{zero}"),
        "BLOB_UNKNOWN",
        expect,
    );
    assert_json_error(port, "/v2/no/such/repo/tags/list", "NAME_UNKNOWN", expect);
    assert_referrers(port, f, expect);
}

/// The config digest docker reports as the image id: the linux/amd64 image's.
fn amd64_config(f: &Fixture, name: &str, digest: &str) -> String {
    let repo = &f.repositories()[name];
    let m = &repo["manifests"][digest];
    if let Some(c) = m["config"].as_str() {
        return c.to_string();
    }
    for child in m["children"].as_array().unwrap() {
        let c = &repo["manifests"][child.as_str().unwrap()];
        if c["platforms"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "linux/amd64")
        {
            return c["config"].as_str().unwrap().to_string();
        }
    }
    panic!("{name}@{digest} has no linux/amd64 image");
}

/// skopeo, containerd and dockerd pull every tag (and digests) and get
/// exactly the tree's bytes.
pub fn assert_clients(port: u16, f: &Fixture, containerd: &Containerd, dockerd: &Dockerd) {
    let host = format!("127.0.0.1:{port}");
    let scratch = TempDir::new("pull");
    // The referrers fallback tags are indexes of artifacts, not images: no puller reads them
    // (assert_referrers, oras discover and regctl artifact list do).
    let images = f
        .tags()
        .into_iter()
        .filter(|(name, _, digest, _, _)| !f.is_generated(name, digest));
    for (i, (name, tag, digest, _, _)) in images.enumerate() {
        let reference = format!("{host}/{name}:{tag}");
        // skopeo: the exact bytes, and the whole graph with --all.
        let raw = super::skopeo_inspect_raw(&reference);
        assert_eq!(sha256(&raw), digest, "skopeo inspect --raw {reference}");
        let out = scratch.join(format!("copy{i}"));
        super::skopeo_copy_all(&reference, &out);
        let top = std::fs::read(out.join("manifest.json")).unwrap();
        assert_eq!(sha256(&top), digest, "skopeo copy --all {reference}");
        for d in f.graph(&name, &tag) {
            let hex = d.trim_start_matches("sha256:");
            assert!(
                out.join(hex).exists()
                    || out.join(format!("{hex}.manifest.json")).exists()
                    || d == digest,
                "skopeo copy --all {reference} lacks {d}"
            );
        }
        // containerd: every manifest and blob of every platform.
        containerd.fetch_all(&reference);
        assert_eq!(
            containerd.image_target(&reference),
            digest,
            "ctr target {reference}"
        );
        let have = containerd.content_digests();
        let want = f.graph(&name, &tag);
        let missing: BTreeSet<_> = want.difference(&have).collect();
        assert!(
            missing.is_empty(),
            "ctr content fetch {reference} lacks {missing:?}"
        );
    }
    // Every manifest by digest too, children of indexes included.
    for (name, digest, _, _) in f.manifests() {
        let raw = super::skopeo_inspect_raw(&format!("{host}/{name}@{digest}"));
        assert_eq!(sha256(&raw), digest, "skopeo inspect --raw {name}@{digest}");
    }
    // `skopeo inspect` (not raw) reads tags/list too.
    let (name, tag) = f.runnable().into_iter().next().expect("a runnable image");
    let digest = f.repositories()[&name]["tags"][&tag]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let inspect: Value =
        serde_json::from_str(&super::skopeo_inspect(&format!("{host}/{name}:{tag}"))).unwrap();
    assert_eq!(inspect["Digest"], digest.as_str());

    for (name, tag) in f.runnable() {
        let digest = f.repositories()[&name]["tags"][&tag]["digest"]
            .as_str()
            .unwrap()
            .to_string();
        let reference = format!("{host}/{name}:{tag}");
        // containerd unpacks the default platform, by tag and by digest.
        containerd.pull(&reference);
        containerd.pull(&format!("{host}/{name}@{digest}"));
        // dockerd: the repo digest is the tag's manifest, the id the amd64 config.
        let (repo_digests, id) = dockerd.pull(&reference);
        assert!(
            repo_digests.contains(&format!("{host}/{name}@{digest}")),
            "docker pull {reference}: {repo_digests:?}"
        );
        assert_eq!(
            id,
            amd64_config(f, &name, &digest),
            "docker pull {reference}"
        );
    }
}

/// On the hostile fixture: tags that differ only by case are told apart, and
/// nothing outside the tree, hostile or broken is served.
pub fn assert_hostile_refused(port: u16, f: &Fixture) {
    let tree = f.tree();
    for dir in ["v2/.git", "v2/demo/hello/.git"] {
        std::fs::create_dir_all(tree.join(dir)).unwrap();
        std::fs::write(tree.join(dir).join("config"), "root:x:0:0 pwned").unwrap();
    }
    for tag in ["Latest", "latest"] {
        let bytes = std::fs::read(tree.join(format!("v2/demo/case/manifests/{tag}"))).unwrap();
        let r = http::get(port, &format!("/v2/demo/case/manifests/{tag}"));
        assert_eq!(r.status, 200, "{}", ctx("case", tag, &r));
        assert_eq!(
            r.header("Docker-Content-Digest"),
            Some(sha256(&bytes).as_str()),
            "{tag}"
        );
        assert_eq!(r.body, bytes);
    }
    assert_eq!(
        http::get(port, "/v2/demo/case/manifests/LATEST").status,
        404
    );
    for path in [
        "/v2/demo/escape/manifests/latest",
        "/v2/demo/escape/blobs/sha256:b3140286ac71ad2acf69681f4f2a907b0b83d8edfbffdd4e0a38c05a23180495",
        "/v2/demo/badtags/manifests/x;return%20200%20pwned",
        "/v2/demo/badtags/manifests/$host",
        "/v2/demo/badtags/manifests/t%7D",
        "/v2/demo/broken/manifests/notjson",
        "/v2/demo/broken/manifests/weird",
        "/v2/demo/broken/manifests/sha256:35b6a6f09fb9557e7da6c168abfe1c86318fc0a6c559f9eaff6da06e745c85ca",
        "/v2/demo/Bad/tags/list",
        "/v2/evil%7Dname/tags/list",
        "/v2/../etc/passwd",
        // Dot-files are never served: one the builder planted as a tag, one planted now.
        "/v2/demo/badtags/manifests/.dot",
        "/v2/.git/config",
        "/v2/demo/hello/.git/config",
    ] {
        let r = http::get(port, path);
        assert_eq!(r.status, 404, "{}", ctx("hostile", path, &r));
        let body = r.body_text();
        assert!(
            !body.contains("root:") && !body.contains("pwned"),
            "{path}: {body}"
        );
    }
}
