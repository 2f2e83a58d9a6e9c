//! Outputs for hosts that cannot run here, checked against their documented formats: the Storj
//! upload script (uplink's `cp`/`ls` as documented and as its source reads) and the Cloudflare
//! Transform Rules body (the Rulesets API). Golden files in tests/golden/ pin the exact text (the
//! s3 script too, which e2e_s3 also runs for real); `REGISTRISH_UPDATE_GOLDEN=1 cargo test
//! golden::` rewrites them after an intended change. Structural tests say what the text must hold
//! whatever its wording.

use crate::support::fixture::{self, Fixture};
use crate::support::{self, process, run_bin, run_bin_ok};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::process::Command;

/// Where the golden files say the tree is: the real path is a temp dir.
const GOLDEN_TREE: &str = "/srv/registry";
const OCTET_STREAM: &str = "application/octet-stream";
const JSON: &str = "application/json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

fn prepared(kind: &str) -> Fixture {
    let f = fixture::build(kind, &[]);
    run_bin_ok(["prepare", f.tree().to_str().unwrap()], f.dir.path());
    f
}

/// `registrish-gen ARGS` on stdout, with the tree's temp path replaced by GOLDEN_TREE.
fn generate(f: &Fixture, args: &[&str]) -> String {
    let tree = fs::canonicalize(f.tree()).unwrap();
    let mut all = vec![args[0], tree.to_str().unwrap()];
    all.extend(&args[1..]);
    let out = run_bin_ok(&all, f.dir.path());
    String::from_utf8(out.stdout)
        .unwrap()
        .replace(tree.to_str().unwrap(), GOLDEN_TREE)
}

fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("REGISTRISH_UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, actual).unwrap();
        return;
    }
    let expected = fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (REGISTRISH_UPDATE_GOLDEN=1 writes it)",
            path.display()
        )
    });
    if expected != actual {
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(expected.lines().count().min(actual.lines().count()));
        panic!(
            "{} differs from the output from line {}:\n  golden: {:?}\n  now:    {:?}\n(REGISTRISH_UPDATE_GOLDEN=1 rewrites it after an intended change)",
            path.display(),
            line + 1,
            expected.lines().nth(line),
            actual.lines().nth(line)
        );
    }
}

/// The origin the `--blobs-url` goldens redirect blobs to.
const BLOBS_URL: &str = "https://blobs.example.org/mirror";

const S3_ARGS: &[&str] = &[
    "s3",
    "--bucket",
    "registry",
    "--prefix",
    "mirror",
    "--endpoint",
    "https://ACCOUNT.r2.cloudflarestorage.com",
];
const STORJ_ARGS: &[&str] = &["storj", "--bucket", "registry"];

#[test]
fn generated_texts_equal_the_golden_files() {
    let f = prepared("basic");
    golden("s3.sh.txt", &generate(&f, S3_ARGS));
    golden("storj.sh.txt", &generate(&f, STORJ_ARGS));
    golden(
        "cloudflare-rules.json",
        &generate(&f, &["cloudflare-rules"]),
    );
}

/// One `phase` call of an upload script: number, mode and the upload options as words.
#[derive(Debug)]
struct PhaseCall {
    mode: String,
    options: Vec<String>,
}

/// Reads an upload script back: the plan (path -> phase) and the phase calls, un-quoting the
/// single-quoted words the generator writes.
fn parse_script(script: &str) -> (BTreeMap<String, usize>, BTreeMap<usize, PhaseCall>) {
    // The data after the code: every line after the marker.
    let marker = "\nREGISTRISH_PLAN\n";
    let start = script.find(marker).expect("plan marker") + marker.len();
    let mut plan = BTreeMap::new();
    for line in script[start..].lines() {
        let (n, path) = line.split_once(' ').expect("phase and path");
        assert!(
            plan.insert(path.to_string(), n.parse().unwrap()).is_none(),
            "{path} twice in the plan"
        );
    }
    let mut calls = BTreeMap::new();
    for line in script.lines().filter(|l| l.starts_with("phase ")) {
        let words = shell_words(line);
        let n: usize = words[1].parse().unwrap();
        calls.insert(
            n,
            PhaseCall {
                mode: words[3].clone(),
                options: words[4..].to_vec(),
            },
        );
    }
    (plan, calls)
}

/// Splits a line of unquoted and single-quoted words (all the generator writes).
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut rest = line.trim();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('\'') {
            let end = r.find('\'').expect("closing quote");
            words.push(r[..end].to_string());
            rest = r[end + 1..].trim_start();
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            words.push(rest[..end].to_string());
            rest = rest[end..].trim_start();
        }
    }
    words
}

/// The Content-Type each path must be uploaded with, from the fixture builder's record, and
/// whether it is content-addressed.
fn expected_objects(f: &Fixture) -> BTreeMap<String, (String, bool)> {
    let mut out = BTreeMap::new();
    for (name, digest, _) in f.blobs() {
        out.insert(
            format!("v2/{name}/blobs/{digest}"),
            (OCTET_STREAM.to_string(), true),
        );
    }
    for (name, digest, media_type, _) in f.manifests() {
        out.insert(format!("v2/{name}/manifests/{digest}"), (media_type, true));
    }
    for (name, tag, _, media_type, _) in f.tags() {
        out.insert(format!("v2/{name}/manifests/{tag}"), (media_type, false));
        out.insert(format!("v2/{name}/tags/list"), (JSON.to_string(), false));
    }
    for (name, subject, _) in f.referrers() {
        out.insert(
            format!("v2/{name}/referrers/{subject}"),
            (OCI_INDEX.to_string(), false),
        );
    }
    out.insert(
        "v2/_referrers_empty.json".to_string(),
        (OCI_INDEX.to_string(), false),
    );
    for path in [
        "v2/index.html",
        "v2/_catalog",
        "v2/_errors/manifest_unknown.json",
        "v2/_errors/blob_unknown.json",
        "v2/_errors/name_unknown.json",
        "v2/_errors/unsupported.json",
        "v2/_errors/unauthorized.json",
    ] {
        out.insert(path.to_string(), (JSON.to_string(), false));
    }
    out
}

/// What every upload script must hold, whatever the store: each object of the registry exactly
/// once, with its exact Content-Type (read by `content_type` from a phase's options), skipped
/// when present only if content-addressed, in an order where nothing a tag needs comes after
/// it: blobs < manifests by digest (children before indexes) < tags < lists.
fn assert_plan(f: &Fixture, script: &str, content_type: impl Fn(&[String]) -> String) {
    let (plan, calls) = parse_script(script);
    let expected = expected_objects(f);
    assert_eq!(
        plan.keys().collect::<BTreeSet<_>>(),
        expected.keys().collect::<BTreeSet<_>>()
    );
    for (path, (media_type, immutable)) in &expected {
        let call = &calls[&plan[path]];
        assert_eq!(&content_type(&call.options), media_type, "{path}");
        assert_eq!(call.mode == "new", *immutable, "{path}: {call:?}");
    }
    let phase = |p: &str| plan[p];
    let of_kind = |pred: &dyn Fn(&str) -> bool| -> Vec<usize> {
        plan.iter()
            .filter(|(p, _)| pred(p))
            .map(|(_, n)| *n)
            .collect()
    };
    let is_digest = |p: &str| p.contains("/manifests/sha256:");
    let blobs = of_kind(&|p| p.contains("/blobs/"));
    let digests = of_kind(&is_digest);
    let tags = of_kind(&|p| p.contains("/manifests/") && !is_digest(p));
    let lists = of_kind(&|p| expected[p].0 == JSON);
    let max = |v: &[usize]| *v.iter().max().unwrap();
    let min = |v: &[usize]| *v.iter().min().unwrap();
    assert!(max(&blobs) < min(&digests), "blobs before manifests");
    assert!(max(&digests) < min(&tags), "manifests before tags");
    assert!(max(&tags) < min(&lists), "tags before lists");
    for (name, repo) in f.repositories() {
        for (digest, m) in repo["manifests"].as_object().unwrap() {
            for child in m["children"].as_array().unwrap() {
                let child = child.as_str().unwrap();
                assert!(
                    phase(&format!("v2/{name}/manifests/{child}"))
                        < phase(&format!("v2/{name}/manifests/{digest}")),
                    "{name}: {child} must come before its index {digest}"
                );
            }
        }
    }
}

/// `bash -n`: the script parses.
fn assert_bash_syntax(f: &Fixture, script: &str) {
    let path = f.dir.join("syntax.sh");
    fs::write(&path, script).unwrap();
    process::run(Command::new("bash").arg("-n").arg(&path));
}

#[test]
fn storj_script_sends_every_object_with_its_type_in_metadata_children_first() {
    let f = prepared("basic");
    let script = generate(&f, STORJ_ARGS);
    assert_bash_syntax(&f, &script);
    assert_plan(&f, &script, |options| {
        assert_eq!(options.len(), 2, "{options:?}");
        assert_eq!(options[0], "--metadata");
        // uplink takes a single-level JSON object of strings (cmd_cp.go: parseJSON).
        let meta: BTreeMap<String, String> = serde_json::from_str(&options[1])
            .unwrap_or_else(|e| panic!("--metadata {:?}: {e}", options[1]));
        assert_eq!(meta.len(), 1, "{meta:?}");
        meta["Content-Type"].clone()
    });
    // The hint from Storj's guide: linksharing on the user's own domain, read-only.
    assert!(
        script.contains("uplink share --dns registry.example.org sj://registry/"),
        "{script}"
    );
    for used in [
        "uplink ls --recursive",
        "uplink cp --recursive --transfers",
        "--progress=false",
    ] {
        assert!(script.contains(used), "{used}");
    }
}

#[test]
fn s3_script_sends_every_object_with_its_type_children_first() {
    let f = prepared("basic");
    let script = generate(&f, S3_ARGS);
    assert_bash_syntax(&f, &script);
    assert_plan(&f, &script, |options| {
        let at = |flag: &str| {
            let i = options.iter().position(|o| o == flag).expect(flag);
            options[i + 1].clone()
        };
        let cache = at("--cache-control");
        assert!(cache.starts_with("public, max-age="), "{cache}");
        at("--content-type")
    });
    assert!(script.contains("set -euo pipefail"));
    assert!(script.contains("--endpoint-url 'https://ACCOUNT.r2.cloudflarestorage.com'"));
    assert!(script.contains("PREFIX='mirror/'"));
    assert!(script.contains(&format!("TREE=${{REGISTRISH_TREE:-'{GOLDEN_TREE}'}}")));
}

/// A stand-in for `uplink`, written from its documented behaviour and its source (cmd/uplink
/// cmd_ls.go, cmd_cp.go): `ls --recursive sj://B/PREFIX` prints `KIND CREATED SIZE KEY` rows
/// with full keys; `cp --recursive SRC/ sj://B/` uploads every file under SRC (following
/// symlinks) to the key of its relative path, each with the `--metadata` JSON. Unknown flags
/// fail, as they do in uplink. Objects land in $FAKE_STORJ/objects, metadata in
/// $FAKE_STORJ/meta, and each upload's key in $FAKE_STORJ/log, in order.
const FAKE_UPLINK: &str = r#"#!/usr/bin/env bash
set -euo pipefail
store=$FAKE_STORJ
cmd=$1
shift
case "$cmd" in
ls)
    [ "$1" = --recursive ] || { echo "fake uplink: ls needs --recursive" >&2; exit 2; }
    loc=${2#sj://}
    bucket=${loc%%/*}
    prefix=${loc#*/}
    echo "KIND CREATED              SIZE KEY"
    [ -d "$store/objects/$bucket" ] || exit 0
    (cd "$store/objects/$bucket" && find . -type f | sed 's|^\./||' | sort) |
        while IFS= read -r key; do
            case "$key" in "$prefix"*)
                echo "OBJ  2026-01-01 00:00:00 $(wc -c <"$store/objects/$bucket/$key") $key";;
            esac
        done
    ;;
cp)
    meta='' recursive=0 args=()
    while [ $# -gt 0 ]; do
        case "$1" in
        --recursive|-r) recursive=1 ;;
        --transfers|-t) shift ;;
        --progress=false) ;;
        --metadata) meta=$2; shift ;;
        -*) echo "fake uplink: unknown flag $1" >&2; exit 2 ;;
        *) args+=("$1") ;;
        esac
        shift
    done
    [ "$recursive" = 1 ] && [ "${#args[@]}" = 2 ] || { echo "fake uplink: cp ${args[*]}" >&2; exit 2; }
    src=${args[0]%/}
    dest=${args[1]#sj://}
    bucket=${dest%%/*}
    (cd "$src" && find -L . -type f | sed 's|^\./||' | sort) | while IFS= read -r rel; do
        mkdir -p "$(dirname "$store/objects/$bucket/$rel")" "$(dirname "$store/meta/$bucket/$rel")"
        cp -L "$src/$rel" "$store/objects/$bucket/$rel"
        printf '%s' "$meta" >"$store/meta/$bucket/$rel"
        echo "$rel" >>"$store/log"
    done
    ;;
*) echo "fake uplink: $cmd" >&2; exit 2 ;;
esac
"#;

#[test]
fn storj_script_runs_against_a_stand_in_uplink_and_a_rerun_sends_no_blob() {
    let f = prepared("basic");
    let script = f.dir.join("storj.sh");
    fs::write(&script, generate(&f, STORJ_ARGS)).unwrap();
    let bin = f.dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    let uplink = bin.join("uplink");
    fs::write(&uplink, FAKE_UPLINK).unwrap();
    process::run(Command::new("chmod").arg("+x").arg(&uplink));
    let store = f.dir.join("storj");
    fs::create_dir_all(&store).unwrap();
    // The golden text names /srv/registry; the real tree comes from the override.
    let tree = fs::canonicalize(f.tree()).unwrap();
    let run = || {
        let out = process::run(
            Command::new("bash")
                .arg(&script)
                .env(
                    "PATH",
                    format!(
                        "{}:{}",
                        bin.display(),
                        std::env::var("PATH").unwrap_or_default()
                    ),
                )
                .env("FAKE_STORJ", &store)
                .env("REGISTRISH_TREE", &tree),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let first = run();
    let expected = expected_objects(&f);
    let log = |store: &Path| -> Vec<String> {
        fs::read_to_string(store.join("log"))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    };
    let sent = log(&store);
    assert_eq!(
        sent.iter().collect::<BTreeSet<_>>(),
        expected.keys().collect::<BTreeSet<_>>(),
        "{first}"
    );
    for (key, (media_type, _)) in &expected {
        assert_eq!(
            fs::read(store.join("objects/registry").join(key)).unwrap(),
            fs::read(tree.join(key)).unwrap(),
            "{key}"
        );
        let meta: Value = serde_json::from_str(
            &fs::read_to_string(store.join("meta/registry").join(key)).unwrap(),
        )
        .unwrap();
        assert_eq!(
            meta,
            serde_json::json!({"Content-Type": media_type}),
            "{key}"
        );
    }
    // A rerun lists the bucket and sends tags and lists only.
    let second = run();
    let again: BTreeSet<String> = log(&store)[sent.len()..].iter().cloned().collect();
    let mutable: BTreeSet<String> = expected
        .iter()
        .filter(|(_, (_, immutable))| !immutable)
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(again, mutable, "{second}");
}

#[test]
fn cloudflare_rules_are_a_response_header_transform_ruleset() {
    let f = prepared("basic");
    let body: Value = serde_json::from_str(&generate(&f, &["cloudflare-rules"])).unwrap();
    // The body of PUT /zones/{zone_id}/rulesets/phases/http_response_headers_transform/entrypoint.
    let rules = body["rules"].as_array().expect("rules");
    let mut set: BTreeMap<String, Vec<(String, Value)>> = BTreeMap::new();
    for rule in rules {
        assert_eq!(rule["action"], "rewrite", "{rule}");
        let expression = rule["expression"].as_str().expect("expression");
        // Regular expressions (`matches`) need a Business plan; nothing here uses them.
        assert!(!expression.contains("matches"), "{expression}");
        assert!(
            expression.starts_with(r#"starts_with(http.request.uri.path, "/v2/")"#),
            "{expression}"
        );
        for (name, header) in rule["action_parameters"]["headers"].as_object().unwrap() {
            assert_eq!(header["operation"], "set", "{rule}");
            // Exactly one of a static value and an expression.
            assert!(
                header["value"].is_string() ^ header["expression"].is_string(),
                "{rule}"
            );
            set.entry(name.clone())
                .or_default()
                .push((expression.to_string(), header.clone()));
        }
    }
    assert_eq!(
        set["Docker-Distribution-API-Version"],
        vec![(
            r#"starts_with(http.request.uri.path, "/v2/")"#.to_string(),
            serde_json::json!({"operation": "set", "value": "registry/2.0"})
        )]
    );
    let digest_rules = &set["Docker-Content-Digest"];
    for part in ["/blobs/sha256:", "/manifests/sha256:"] {
        let (expression, header) = digest_rules
            .iter()
            .find(|(e, _)| e.contains(&format!(r#"contains "{part}""#)))
            .unwrap_or_else(|| panic!("no digest rule for {part}"));
        assert!(expression.contains("http.response.code in {200 206}"));
        assert_eq!(
            header["expression"],
            "substring(http.request.uri.path, -71)"
        );
    }
}

#[test]
fn upload_scripts_refuse_what_they_cannot_do_safely() {
    // An unprepared tree: the scripts send files as they are, so the digest files must exist
    // (refused like every host refuses it).
    let f = fixture::build("basic", &[]);
    let tree = f.tree();
    for args in [S3_ARGS, STORJ_ARGS] {
        let mut all = vec![args[0], tree.to_str().unwrap()];
        all.extend(&args[1..]);
        let out = run_bin(&all, f.dir.path());
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("registrish-gen prepare"), "{err}");
        assert!(out.stdout.is_empty());
    }
    // A tree whose path holds a single quote cannot be quoted for the shell: refused.
    let quoted = f.dir.join("it's");
    fs::create_dir_all(&quoted).unwrap();
    let moved = quoted.join("tree");
    fs::rename(&tree, &moved).unwrap();
    run_bin_ok(["prepare", moved.to_str().unwrap()], f.dir.path());
    let out = run_bin(
        ["s3", moved.to_str().unwrap(), "--bucket", "registry"],
        f.dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    // Settings that would leave the alphabet are refused before anything is rendered.
    for bad in [
        &["--bucket", "a'b"][..],
        &["--bucket", "registry", "--prefix", "../x"],
        &["--bucket", "registry", "--endpoint", "https://x/$(id)'"],
    ] {
        let mut all = vec!["s3", moved.to_str().unwrap()];
        all.extend(bad);
        let out = run_bin(&all, f.dir.path());
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }
}

#[test]
fn upload_scripts_from_a_hostile_tree_name_only_sound_objects() {
    let f = prepared("hostile");
    for args in [S3_ARGS, STORJ_ARGS] {
        let script = generate(&f, args);
        assert_bash_syntax(&f, &script);
        let (plan, _) = parse_script(&script);
        let sound: BTreeSet<String> = expected_objects(&f).into_keys().collect();
        let extra: Vec<&String> = plan.keys().filter(|p| !sound.contains(*p)).collect();
        // What scan keeps beyond the builder's sound record is what every host serves: the
        // valid parts of demo/badtags and demo/broken, both case-colliding tags (object keys
        // are case-sensitive). The in-tree symlink tag is left out like on every host.
        for p in &extra {
            assert!(
                ["v2/demo/case/", "v2/demo/broken/", "v2/demo/badtags/"]
                    .iter()
                    .any(|ok| p.starts_with(ok)),
                "{p} uploaded from a hostile tree"
            );
        }
        for bad in [
            "pwned", "a\"b", "$host", "t}", "-dash", ".dot", "demo/Bad", "evil", "quo", "dollar",
            "new\n", "notjson", "weird", "escape",
        ] {
            assert!(!script.contains(bad), "{bad:?} in\n{script}");
        }
    }
}

/// Every host's output on the basic and the hostile tree, pinned byte for byte, with the
/// problem lines the command prints. Written before the host table existed: a refactor that
/// changes any byte shows up here.
#[test]
fn every_host_equals_its_golden_on_every_fixture() {
    for kind in ["basic", "hostile"] {
        let f = prepared(kind);
        let tree = fs::canonicalize(f.tree()).unwrap();
        let tree_s = tree.to_str().unwrap().to_string();
        let scrub = |s: &str| s.replace(&tree_s, GOLDEN_TREE);
        let stdout_cases: &[(&str, &[&str])] = &[
            ("nginx.conf", &["nginx"]),
            ("apache.htaccess", &["apache"]),
            ("apache.vhost.conf", &["apache", "--vhost"]),
            ("Caddyfile", &["caddy"]),
            ("s3.sh", S3_ARGS),
            ("storj.sh", STORJ_ARGS),
            ("cloudflare-rules.json", &["cloudflare-rules"]),
            ("nginx.blobs-url.conf", &["nginx", "--blobs-url", BLOBS_URL]),
            (
                "apache.blobs-url.htaccess",
                &["apache", "--blobs-url", BLOBS_URL],
            ),
            (
                "apache.vhost.blobs-url.conf",
                &["apache", "--vhost", "--blobs-url", BLOBS_URL],
            ),
            ("Caddyfile.blobs-url", &["caddy", "--blobs-url", BLOBS_URL]),
            (
                "s3.only-blobs.sh",
                &["s3", "--bucket", "registry", "--only", "blobs"],
            ),
        ];
        for (name, args) in stdout_cases {
            let mut all = vec![args[0], tree_s.as_str()];
            all.extend(&args[1..]);
            let out = support::run_bin(&all, f.dir.path());
            golden(
                &format!("{kind}/{name}"),
                &scrub(&String::from_utf8(out.stdout).unwrap()),
            );
            golden(
                &format!("{kind}/{name}.stderr"),
                &format!(
                    "exit {:?}\n{}",
                    out.status.code(),
                    scrub(&String::from_utf8_lossy(&out.stderr))
                ),
            );
        }
        let out_dir = f.dir.join("site");
        fs::create_dir_all(&out_dir).unwrap();
        let site = out_dir.to_str().unwrap().to_string();
        let dir_cases: &[(&str, Vec<&str>, &[&str])] = &[
            (
                "netlify",
                vec!["netlify", tree_s.as_str(), "-o", site.as_str()],
                &["_headers", "_redirects"],
            ),
            (
                "cloudflare",
                vec!["cloudflare", tree_s.as_str(), "-o", site.as_str()],
                &["_worker.js", "_routes.json"],
            ),
            (
                "netlify-blobs-url",
                vec![
                    "netlify",
                    tree_s.as_str(),
                    "--blobs-url",
                    BLOBS_URL,
                    "-o",
                    site.as_str(),
                ],
                &["_headers", "_redirects"],
            ),
            (
                "cloudflare-blobs-url",
                vec![
                    "cloudflare",
                    tree_s.as_str(),
                    "--blobs-url",
                    BLOBS_URL,
                    "-o",
                    site.as_str(),
                ],
                &["_worker.js", "_routes.json"],
            ),
        ];
        for (name, args, files) in dir_cases {
            let out = support::run_bin(args, f.dir.path());
            golden(
                &format!("{kind}/{name}.stderr"),
                &format!(
                    "exit {:?}\n{}",
                    out.status.code(),
                    scrub(&String::from_utf8_lossy(&out.stderr)).replace(&site, "/srv/site")
                ),
            );
            for file in *files {
                let text = fs::read_to_string(out_dir.join(file)).unwrap_or_default();
                golden(&format!("{kind}/{name}/{file}"), &scrub(&text));
                let _ = fs::remove_file(out_dir.join(file));
            }
            // The site `--blobs-url` mirrors (tests/cli.rs checks what it holds).
            let _ = fs::remove_dir_all(out_dir.join("v2"));
        }
        for (name, args) in [
            ("check.txt", vec!["check", tree_s.as_str()]),
            (
                "check.json",
                vec!["check", tree_s.as_str(), "--format", "json"],
            ),
            (
                "check-cloudflare.txt",
                vec!["check", tree_s.as_str(), "--host", "cloudflare"],
            ),
        ] {
            let out = support::run_bin(&args, f.dir.path());
            golden(
                &format!("{kind}/{name}"),
                &format!(
                    "exit {:?}\n{}--- stderr\n{}",
                    out.status.code(),
                    scrub(&String::from_utf8(out.stdout).unwrap()),
                    scrub(&String::from_utf8_lossy(&out.stderr))
                ),
            );
        }
    }
}
