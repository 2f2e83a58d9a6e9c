//! S3: the generated upload script, run with the AWS CLI against moto, and the bucket served at a
//! host's root through an nginx proxy (as a CDN or a proxy fronts a bucket), pulled by skopeo,
//! containerd and dockerd. Plus the script's promises, checked against the fixture builder's
//! record rather than the script's own plan: no tag is ever readable before everything it points
//! at, even when the upload is killed part-way; a re-run completes it; a re-run uploads nothing
//! content-addressed again.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::support::fixture::{self, Fixture};
use crate::support::matrix::assert_every_client_without_digest_header;
use crate::support::registry::{Expect, assert_http};
use crate::support::s3::{Moto, ScriptRun, run_script};
use crate::support::{Containerd, Dockerd, Nginx, free_port, run_bin_ok};

/// Not `v2`: moto (like S3) refuses it, and a path-style URL would read ambiguously.
pub(crate) const BUCKET: &str = "registry";

/// A fixture (`basic`, `runnable`), prepared, and an s3 upload script for it pointed at moto.
pub(crate) fn prepared(moto: &Moto, kind: &str, prefix: Option<&str>) -> (Fixture, PathBuf) {
    let f = fixture::build(kind, &[]);
    let tree = f.tree();
    run_bin_ok(["prepare", tree.to_str().unwrap()], f.dir.path());
    let script = f.dir.join("upload.sh");
    let endpoint = moto.endpoint();
    let mut args = vec![
        "s3",
        tree.to_str().unwrap(),
        "--bucket",
        BUCKET,
        "--endpoint",
        &endpoint,
        "-o",
        script.to_str().unwrap(),
    ];
    if let Some(p) = prefix {
        args.extend(["--prefix", p]);
    }
    run_bin_ok(args, f.dir.path());
    (f, script)
}

/// The keys a complete upload holds, from the fixture builder's record: (content-addressed,
/// everything else).
fn expected_keys(f: &Fixture) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut immutable = BTreeSet::new();
    let mut mutable: BTreeSet<String> = [
        "v2/",
        "v2/index.html",
        "v2/_catalog",
        "v2/_errors/manifest_unknown.json",
        "v2/_errors/blob_unknown.json",
        "v2/_errors/name_unknown.json",
        "v2/_errors/unsupported.json",
        "v2/_errors/unauthorized.json",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    for (name, digest, _) in f.blobs() {
        immutable.insert(format!("v2/{name}/blobs/{digest}"));
    }
    for (name, digest, _, _) in f.manifests() {
        immutable.insert(format!("v2/{name}/manifests/{digest}"));
    }
    for (name, tag, ..) in f.tags() {
        mutable.insert(format!("v2/{name}/manifests/{tag}"));
        mutable.insert(format!("v2/{name}/tags/list"));
    }
    // Referrers indexes are uploaded, and the empty index a front answers misses with.
    mutable.insert("v2/_referrers_empty.json".into());
    for (name, subject, _) in f.referrers() {
        mutable.insert(format!("v2/{name}/referrers/{subject}"));
    }
    (immutable, mutable)
}

/// The key of every object a tag needs: its manifest, children, configs and layers.
fn graph_keys(f: &Fixture, name: &str, tag: &str) -> BTreeSet<String> {
    let manifests = &f.repositories()[name]["manifests"];
    f.graph(name, tag)
        .into_iter()
        .map(|d| {
            let kind = if manifests.get(&d).is_some() {
                "manifests"
            } else {
                "blobs"
            };
            format!("v2/{name}/{kind}/{d}")
        })
        .collect()
}

/// What a client could read at this moment is never broken: every tag present has its whole
/// graph present, and a repository's tags/list only lists tags that are there.
fn broken_tags(f: &Fixture, keys: &BTreeSet<String>) -> Vec<String> {
    let mut broken = Vec::new();
    for (name, tag, ..) in f.tags() {
        let tag_key = format!("v2/{name}/manifests/{tag}");
        if keys.contains(&tag_key) {
            let missing: Vec<String> = graph_keys(f, &name, &tag)
                .into_iter()
                .filter(|k| !keys.contains(k))
                .collect();
            if !missing.is_empty() {
                broken.push(format!("{tag_key} is there without {missing:?}"));
            }
        }
        if keys.contains(&format!("v2/{name}/tags/list")) && !keys.contains(&tag_key) {
            broken.push(format!("v2/{name}/tags/list is there without {tag_key}"));
        }
    }
    broken
}

struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Starts the script and kills it (the script and its `aws` processes, at once) as soon as moto
/// has stored `after` objects in the bucket in total; panics if it finished first.
fn run_and_kill(moto: &Moto, script: &Path, after: usize, log: PathBuf) -> String {
    let mut run = ScriptRun::spawn(script, moto, log);
    let start = Instant::now();
    loop {
        let puts = moto
            .requests()
            .iter()
            .filter(|r| r.put_key(BUCKET).is_some())
            .count();
        if puts >= after {
            run.kill();
            return run.output();
        }
        if let Some(status) = run.try_wait() {
            panic!(
                "the upload ended ({status}) before {after} objects were stored, so it could not be interrupted\n{}",
                run.output()
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "upload stalled\n{}",
            run.output()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// An nginx that puts the bucket (under `root`, e.g. `/registry`) at the root of a host, as a
/// CDN or proxy in front of a bucket does: misses become the registry's JSON errors (the bodies
/// the script uploaded), and it adds the API-version header S3 cannot store.
pub(crate) fn proxy(dir: &Path, moto: &Moto, root: &str) -> Nginx {
    let port = free_port();
    let up = moto.endpoint();
    let miss = |code: &str| {
        format!(
            "    location @{code} {{\n        rewrite ^ {root}/v2/_errors/{code}.json break;\n        proxy_pass {up};\n    }}\n"
        )
    };
    let conf = format!(
        r#"server {{
    listen 127.0.0.1:{port};
    add_header Docker-Distribution-API-Version registry/2.0 always;
    # S3 answers a missing key with 404 (403 without list permission) and an XML body.
    proxy_intercept_errors on;
    # A read-only front, as a CDN in front of a public bucket would be: moto, unlike S3,
    # does not enforce the bucket policy and takes an anonymous PUT.
    error_page 405 @unsupported;
    if ($request_method !~ ^(?:GET|HEAD)$) {{
        return 405;
    }}
    location @unsupported {{
        add_header Allow "GET, HEAD" always;
        add_header Docker-Distribution-API-Version registry/2.0 always;
        rewrite ^ {root}/v2/_errors/unsupported.json break;
        proxy_method GET;
        proxy_pass {up};
        proxy_hide_header Content-Type;
        add_header Content-Type application/json always;
    }}
    location ~ ^/v2/.+/manifests/ {{
        proxy_pass {up}{root}$uri;
        error_page 403 404 =404 @manifest_unknown;
    }}
    # A subject with no referrers has no object: the front answers the empty index the
    # script uploaded, with 200, as the referrers API does (the README's S3 section).
    location ~ "^/v2/.+/referrers/sha256:[a-f0-9]{{64}}$" {{
        proxy_pass {up}{root}$uri;
        error_page 403 404 =200 @referrers_empty;
    }}
    location @referrers_empty {{
        rewrite ^ {root}/v2/_referrers_empty.json break;
        proxy_pass {up};
    }}
    location ~ ^/v2/.+/blobs/ {{
        proxy_pass {up}{root}$uri;
        error_page 403 404 =404 @blob_unknown;
    }}
    # /v2/ itself is the key v2/, which the script stores for fronts like this one.
    location /v2/ {{
        proxy_pass {up}{root}$uri;
        error_page 403 404 =404 @name_unknown;
    }}
{}{}{}}}
"#,
        miss("manifest_unknown"),
        miss("blob_unknown"),
        miss("name_unknown"),
    );
    let path = dir.join("proxy.conf");
    std::fs::write(&path, conf).unwrap();
    Nginx::start(&path, port)
}

#[test]
fn s3_upload_killed_part_way_never_exposes_a_broken_tag_and_a_rerun_completes_it() {
    let moto = Moto::start();
    moto.create_public_bucket(BUCKET);
    let (f, script) = prepared(&moto, "basic", None);
    let (immutable, mutable) = expected_keys(&f);
    let all: BTreeSet<String> = immutable.union(&mutable).cloned().collect();

    let done = AtomicBool::new(false);
    let (outputs, last, (snapshots, violations)) = std::thread::scope(|s| {
        // Stops the observer however this closure ends: the scope waits for it, even on a panic.
        let _stop = StopOnDrop(&done);
        // A client's view while the upload runs: the bucket listed over and over, every
        // listing checked for a tag that is there before what it points at.
        let observer = s.spawn(|| {
            let (mut snapshots, mut violations) = (0, Vec::new());
            while !done.load(Ordering::Relaxed) {
                let keys = moto.keys(BUCKET);
                snapshots += 1;
                for b in broken_tags(&f, &keys) {
                    violations.push(format!("listing {snapshots}: {b}"));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            (snapshots, violations)
        });
        // Killed among the blobs, then among the manifests or tags (the fixture has 22 blobs,
        // 13 manifests by digest and 9 tags), then run to the end.
        let mut outputs = Vec::new();
        for (i, after) in [8, 38].into_iter().enumerate() {
            let out = run_and_kill(&moto, &script, after, f.dir.join(format!("run{i}.log")));
            let keys = moto.keys(BUCKET);
            let broken = broken_tags(&f, &keys);
            assert!(
                broken.is_empty(),
                "after a kill at {after} objects: {broken:#?}\n{out}"
            );
            assert!(
                keys.len() >= after && keys.len() < all.len(),
                "kill at {after}: {} of {} keys\n{out}",
                keys.len(),
                all.len()
            );
            outputs.push(out);
        }
        let last = run_script(&script, &moto);
        done.store(true, Ordering::Relaxed);
        (outputs, last, observer.join().expect("observer"))
    });
    assert!(violations.is_empty(), "{violations:#?}");
    assert!(
        snapshots > 10,
        "only {snapshots} listings during the upload"
    );

    // The re-run completed the upload: exactly the registry's objects, nothing else.
    assert_eq!(moto.keys(BUCKET), all, "{last}");

    // In moto's own order of stores, every tag came after its whole graph, and no
    // content-addressed object was sent twice over the three runs.
    let mut stored = BTreeSet::new();
    for key in moto.requests().iter().filter_map(|r| r.put_key(BUCKET)) {
        if let Some((name, tag)) = key
            .strip_prefix("v2/")
            .and_then(|k| k.rsplit_once("/manifests/"))
            .filter(|(_, t)| !t.starts_with("sha256:"))
        {
            let missing: Vec<String> = graph_keys(&f, name, tag)
                .into_iter()
                .filter(|k| !stored.contains(k))
                .collect();
            assert!(missing.is_empty(), "{key} stored before {missing:?}");
        }
        let again = !stored.insert(key.clone()) && immutable.contains(&key);
        assert!(!again, "{key} was uploaded twice\n{outputs:#?}\n{last}");
    }
    // The runs after a kill said so: the blobs stored before it were skipped.
    let blobs_line = outputs[1]
        .lines()
        .find(|l| l.starts_with("[1/"))
        .unwrap_or_else(|| panic!("no blob phase in\n{}", outputs[1]));
    let skipped: usize = blobs_line
        .split(", ")
        .find_map(|part| part.strip_suffix(" already there"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{blobs_line}"));
    assert!(skipped >= 8, "{blobs_line}");
}

#[test]
fn s3_bucket_behind_a_proxy_serves_every_tag_to_every_client() {
    let moto = Moto::start();
    moto.create_public_bucket(BUCKET);
    // Under a prefix, as in a bucket shared with other content.
    let (f, script) = prepared(&moto, "runnable", Some("/mirror/v1/"));
    let (immutable, mutable) = expected_keys(&f);
    let prefixed = |keys: &BTreeSet<String>| -> BTreeSet<String> {
        keys.iter().map(|k| format!("mirror/v1/{k}")).collect()
    };

    let first = run_script(&script, &moto);
    let all: BTreeSet<String> = prefixed(&immutable)
        .union(&prefixed(&mutable))
        .cloned()
        .collect();
    assert_eq!(moto.keys(BUCKET), all, "{first}");

    // A second run sends tags and lists again, and nothing content-addressed.
    let before = moto.requests().len();
    let second = run_script(&script, &moto);
    let puts: BTreeSet<String> = moto.requests()[before..]
        .iter()
        .filter_map(|r| r.put_key(BUCKET))
        .collect();
    assert_eq!(puts, prefixed(&mutable), "{second}");
    assert!(
        second.contains(&format!(
            "done: {} objects uploaded, {} already there",
            mutable.len() - 1,
            immutable.len()
        )),
        "{second}"
    );

    let nginx = proxy(f.dir.path(), &moto, &format!("/{BUCKET}/mirror/v1"));
    // Content-Type and Cache-Control are stored with each object; the digest header cannot be.
    let expect = Expect {
        digest_headers: false,
        ..Expect::ALL
    };
    assert_http(nginx.port(), &f, expect);
    let containerd = Containerd::start();
    let dockerd = Dockerd::start();
    assert_every_client_without_digest_header(nginx.port(), &f, &containerd, &dockerd);
}
