//! `rm` and `gc` (issue 14) on `fixtures/build.py gc` trees: what is deleted is judged against
//! the builder's record (each tag's graph), never against the tool's own plan, and the dry run
//! must name exactly the files the real run then deletes.

use crate::support::fixture::{self, Fixture};
use crate::support::{run_bin, run_bin_ok};
use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

/// Every regular file under TREE/v2, relative to TREE.
pub(crate) fn files(tree: &Path) -> BTreeSet<String> {
    walkdir::WalkDir::new(tree.join("v2"))
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            e.path()
                .strip_prefix(tree)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

/// The files of a tag's graph in the builder's record.
pub(crate) fn graph_files(f: &Fixture, name: &str, tag: &str) -> BTreeSet<String> {
    let manifests = &f.repositories()[name]["manifests"];
    let mut out = BTreeSet::new();
    let mut todo = vec![
        f.repositories()[name]["tags"][tag]["digest"]
            .as_str()
            .unwrap()
            .to_string(),
    ];
    while let Some(d) = todo.pop() {
        out.insert(format!("v2/{name}/manifests/{d}"));
        let m = &manifests[&d];
        for c in m["children"].as_array().unwrap() {
            todo.push(c.as_str().unwrap().to_string());
        }
        if let Some(c) = m["config"].as_str() {
            out.insert(format!("v2/{name}/blobs/{c}"));
        }
        for l in m["layers"].as_array().unwrap() {
            out.insert(format!("v2/{name}/blobs/{}", l.as_str().unwrap()));
        }
    }
    out
}

/// Every tag's graph, except the tags in `without`.
fn kept_graphs(f: &Fixture, without: &[(&str, &str)]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (name, tag, ..) in f.tags() {
        if !without.contains(&(name.as_str(), tag.as_str())) {
            out.extend(graph_files(f, &name, &tag));
        }
    }
    out
}

fn run(args: &[&str], cwd: &Path) -> (i32, String, String) {
    let out = run_bin(args, cwd);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// gc --dry-run, then gc: returns the dry run's lines, after checking that they are exactly
/// (in set and count) the files the real run deleted, and that it printed nothing else.
pub(crate) fn dry_run_then_gc(tree: &Path, extra: &[&str]) -> Vec<String> {
    let t = tree.to_str().unwrap();
    let mut args = vec!["gc", t, "--dry-run"];
    args.extend(extra);
    let (status, stdout, stderr) = run(&args, tree);
    assert_eq!(status, 0, "{stderr}");
    assert!(stderr.contains("gc --dry-run: "), "{stderr}");
    let listed: Vec<String> = stdout.lines().map(String::from).collect();
    let before = files(tree);
    for l in &listed {
        assert!(
            before.contains(l),
            "the dry run names {l}, which is not a file of the tree"
        );
    }
    let mut args = vec!["gc", t];
    args.extend(extra);
    let (status, stdout, stderr) = run(&args, tree);
    assert_eq!(status, 0, "{stderr}");
    assert_eq!(stdout, "", "gc prints nothing on stdout");
    assert!(
        stderr.contains(&format!("gc: {} files, ", listed.len())),
        "{stderr}"
    );
    let after = files(tree);
    let deleted: BTreeSet<String> = before.difference(&after).cloned().collect();
    let named: BTreeSet<String> = listed.iter().cloned().collect();
    assert_eq!(named.len(), listed.len(), "a file named twice: {listed:?}");
    assert_eq!(deleted, named, "gc deleted exactly what the dry run named");
    assert!(after.is_superset(&before.difference(&named).cloned().collect()));
    listed
}

fn assert_check_clean(tree: &Path) {
    let (status, stdout, stderr) = run(&["check", tree.to_str().unwrap()], tree);
    assert_eq!((status, stdout.as_str()), (0, ""), "check: {stderr}");
}

fn gc_fixture() -> Fixture {
    let f = fixture::build("gc", &[]);
    run_bin_ok(["prepare", f.tree().to_str().unwrap()], f.dir.path());
    f
}

#[test]
fn rm_then_gc_deletes_exactly_the_removed_tags_manifest_and_unshared_blobs() {
    let f = gc_fixture();
    let tree = f.tree();
    let t = tree.to_str().unwrap();
    assert_check_clean(&tree);
    let kept = kept_graphs(&f, &[("demo/shared", "app2")]);
    let app2 = graph_files(&f, "demo/shared", "app2");
    let only_app2: BTreeSet<String> = app2.difference(&kept).cloned().collect();
    // The shared base layer is in app2's graph, and is not its alone.
    assert_eq!(app2.len(), 4);
    assert_eq!(only_app2.len(), 3, "manifest, config and own layer");

    let (status, stdout, stderr) = run(&["rm", t, "demo/shared:app2"], &tree);
    assert_eq!((status, stdout.as_str()), (0, ""), "{stderr}");
    assert!(!tree.join("v2/demo/shared/manifests/app2").exists());
    let list = fs::read_to_string(tree.join("v2/demo/shared/tags/list")).unwrap();
    assert_eq!(
        list,
        r#"{"name":"demo/shared","tags":["app1","app3","multi"]}"#
    );

    // check: the three files as warnings, with the bytes gc frees.
    let (status, stdout, _) = run(&["check", t], &tree);
    assert_eq!(status, 0, "unreachable files are warnings");
    let bytes: u64 = only_app2
        .iter()
        .map(|p| fs::metadata(tree.join(p)).unwrap().len())
        .sum();
    for p in &only_app2 {
        assert!(
            stdout.contains(&format!("warning: {p}: unreachable")),
            "{stdout}"
        );
    }
    assert!(
        stdout.contains(&format!("1 manifests and 2 blobs are unreachable from every tag: `registrish-gen gc` would free {bytes} bytes")),
        "{stdout}"
    );

    let deleted = dry_run_then_gc(&tree, &[]);
    let deleted_set: BTreeSet<String> = deleted.iter().cloned().collect();
    assert_eq!(deleted_set, only_app2);
    // Manifests by digest before blobs.
    assert!(deleted[0].contains("/manifests/"), "{deleted:?}");
    // Everything every other tag needs is there, the index's digest-only children included.
    let now = files(&tree);
    assert!(now.is_superset(&kept));
    for child in f.repositories()["demo/shared"]["tags"]["multi"]["digest"]
        .as_str()
        .map(|d| &f.repositories()["demo/shared"]["manifests"][d]["children"])
        .unwrap()
        .as_array()
        .unwrap()
    {
        assert!(now.contains(&format!(
            "v2/demo/shared/manifests/{}",
            child.as_str().unwrap()
        )));
    }
    assert!(
        dry_run_then_gc(&tree, &[]).is_empty(),
        "a second gc deletes nothing"
    );
    assert_check_clean(&tree);
}

#[test]
fn rm_by_digest_removes_every_tag_of_the_manifest_and_gc_the_rest_of_the_repository() {
    let f = gc_fixture();
    let tree = f.tree();
    let t = tree.to_str().unwrap();
    let hello = &f.repositories()["demo/hello"];
    let digest = hello["tags"]["latest"]["digest"].as_str().unwrap();
    assert_eq!(hello["tags"]["v1.json"]["digest"].as_str().unwrap(), digest);
    let (status, _, stderr) = run(&["rm", t, &format!("demo/hello@{digest}")], &tree);
    assert_eq!(status, 0, "{stderr}");
    assert!(
        stderr.contains("removed 2 tags and 1 manifests by digest"),
        "{stderr}"
    );
    // Both tags, the digest file and the now empty repository's list are gone.
    assert!(
        !files(&tree)
            .iter()
            .any(|p| p.starts_with("v2/demo/hello/manifests/"))
    );
    assert!(!tree.join("v2/demo/hello/tags/list").exists());
    let deleted = dry_run_then_gc(&tree, &[]);
    assert_eq!(deleted.len(), 2, "config and layer: {deleted:?}");
    assert!(
        !tree.join("v2/demo/hello").exists(),
        "an empty repository leaves no directory"
    );
    let catalog = fs::read_to_string(tree.join("v2/_catalog")).unwrap();
    assert!(!catalog.contains("demo/hello"), "{catalog}");
    assert!(catalog.contains("demo/shared"), "{catalog}");
    assert_check_clean(&tree);
}

#[test]
fn rm_refuses_references_not_in_the_tree_and_children_of_a_kept_index() {
    let f = gc_fixture();
    let tree = f.tree();
    let t = tree.to_str().unwrap();
    let before = files(&tree);
    let (status, _, stderr) = run(&["rm", t, "demo/shared:app1", "demo/shared:nope"], &tree);
    assert_eq!(status, 1, "{stderr}");
    assert!(stderr.contains("demo/shared:nope is not in"), "{stderr}");
    let missing = format!("demo/shared@sha256:{}", "0".repeat(64));
    let (status, _, stderr) = run(&["rm", t, &missing], &tree);
    assert_eq!(status, 1, "{stderr}");
    let multi = &f.repositories()["demo/shared"];
    let index = multi["tags"]["multi"]["digest"].as_str().unwrap();
    let child = multi["manifests"][index]["children"][0].as_str().unwrap();
    let (status, _, stderr) = run(&["rm", t, &format!("demo/shared@{child}")], &tree);
    assert_eq!(status, 1, "{stderr}");
    assert!(stderr.contains("an index that stays"), "{stderr}");
    // With the index itself, both go.
    for (args, code) in [
        (vec!["rm", t, "Demo/x:1"], 2),
        (vec!["rm", t, "demo/shared"], 2),
        (vec!["rm", t], 2),
    ] {
        assert_eq!(run(&args, &tree).0, code, "{args:?}");
    }
    assert_eq!(files(&tree), before, "a refused rm changes nothing");
    let (status, _, stderr) = run(
        &[
            "rm",
            t,
            &format!("demo/shared@{child}"),
            &format!("demo/shared@{index}"),
        ],
        &tree,
    );
    assert_eq!(status, 0, "{stderr}");
    assert!(!tree.join("v2/demo/shared/manifests/multi").exists());
    dry_run_then_gc(&tree, &[]);
    assert_check_clean(&tree);
}

#[test]
fn retention_keeps_the_newest_matching_tags_by_mtime_then_version() {
    let f = gc_fixture();
    let tree = f.tree();
    let ci = &f.repositories()["ci/app"];
    assert_eq!(ci["tags"].as_object().unwrap().len(), 51);
    let deleted = dry_run_then_gc(&tree, &["--keep", "5", "--match", "ci-.*"]);
    // ci-0049 and ci-0050 share an mtime; the version puts ci-0050 first, so both are among
    // the five newest, with ci-0048, ci-0047 and ci-0046. `stable` does not match: kept.
    let list = fs::read_to_string(tree.join("v2/ci/app/tags/list")).unwrap();
    assert_eq!(
        list,
        r#"{"name":"ci/app","tags":["ci-0046","ci-0047","ci-0048","ci-0049","ci-0050","stable"]}"#
    );
    let mut kept = BTreeSet::new();
    for tag in [
        "ci-0046", "ci-0047", "ci-0048", "ci-0049", "ci-0050", "stable",
    ] {
        kept.extend(graph_files(&f, "ci/app", tag));
    }
    let now: BTreeSet<String> = files(&tree)
        .into_iter()
        .filter(|p| p.starts_with("v2/ci/app/") && !p.ends_with("/tags/list"))
        .collect();
    let tags: BTreeSet<String> = [
        "ci-0046", "ci-0047", "ci-0048", "ci-0049", "ci-0050", "stable",
    ]
    .iter()
    .map(|t| format!("v2/ci/app/manifests/{t}"))
    .collect();
    assert_eq!(
        now,
        kept.union(&tags).cloned().collect(),
        "exactly the closure"
    );
    // 45 tags dropped (ci-0002..ci-0045; ci-0001 is also stable's manifest: its tag goes, its
    // content stays), each with its manifest, config and own layer.
    let tags_deleted = deleted.iter().filter(|p| !p.contains("sha256:")).count();
    assert_eq!(tags_deleted, 45, "{deleted:?}");
    assert_eq!(deleted.len(), 45 + 44 * 3);
    // Tags go before any content.
    let first_content = deleted.iter().position(|p| p.contains("sha256:")).unwrap();
    assert!(
        deleted[first_content..]
            .iter()
            .all(|p| p.contains("sha256:"))
    );
    // Other repositories are untouched by a rule that matches none of their tags.
    assert!(tree.join("v2/demo/shared/manifests/app1").exists());
    assert!(dry_run_then_gc(&tree, &["--keep", "5", "--match", "ci-.*"]).is_empty());
    assert_check_clean(&tree);
    // --keep and --match go together.
    let t = tree.to_str().unwrap();
    assert_eq!(run(&["gc", t, "--keep", "1"], &tree).0, 2);
    assert_eq!(run(&["gc", t, "--keep", "1", "--match", "("], &tree).0, 2);
}

#[test]
fn gc_leaves_what_it_cannot_prove_unreachable_and_what_that_mentions() {
    let f = gc_fixture();
    let tree = f.tree();
    let t = tree.to_str().unwrap();
    let app3 = graph_files(&f, "demo/shared", "app3");
    let layer = f.repositories()["demo/shared"]["manifests"]
        [f.repositories()["demo/shared"]["tags"]["app3"]["digest"]
            .as_str()
            .unwrap()]["layers"][1]
        .as_str()
        .unwrap()
        .to_string();
    // A manifest of a type this tool does not know, naming app3's own layer; and bytes that
    // are no manifest at all under a digest name.
    let unknown = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/x-future","parts":[{{"digest":"{layer}"}}]}}"#
    );
    fs::write(tree.join("v2/demo/shared/manifests/future"), unknown).unwrap();
    let junk = format!("v2/demo/shared/manifests/sha256:{}", "e".repeat(64));
    fs::write(tree.join(&junk), b"not json").unwrap();
    run_bin_ok(["rm", t, "demo/shared:app3"], &tree);
    let (status, _, stderr) = run(&["gc", t], &tree);
    assert_eq!(status, 0, "{stderr}");
    assert!(
        stderr.contains("v2/demo/shared/manifests/future: gc cannot prove it unreachable"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{junk}: gc cannot prove it unreachable")),
        "{stderr}"
    );
    assert!(
        stderr.contains("2 files left that gc cannot prove unreachable"),
        "{stderr}"
    );
    let now = files(&tree);
    assert!(now.contains("v2/demo/shared/manifests/future"));
    assert!(now.contains(&junk));
    let layer_file = format!("v2/demo/shared/blobs/{layer}");
    assert!(
        now.contains(&layer_file),
        "mentioned by an unknown manifest: kept"
    );
    // The rest of app3's own graph went.
    let kept = kept_graphs(&f, &[("demo/shared", "app3")]);
    for p in app3.difference(&kept) {
        assert_eq!(now.contains(p), p == &layer_file, "{p}");
    }
}

/// Referrers (issue 15) live and go with their subject: gc on a prepared tree deletes nothing
/// (the fallback tag and the referrers are kept through the subject), and once the subject's
/// tag is removed, gc deletes the referrers, their blobs, the referrers index, the fallback
/// tag and its digest copy, and the tree is clean.
#[test]
fn gc_keeps_referrers_with_their_subject_and_deletes_them_after_it() {
    let f = fixture::build("basic", &[]);
    let tree = f.tree();
    let t = tree.to_str().unwrap();
    run_bin_ok(["prepare", t], f.dir.path());
    let (name, subject, descriptors) = f.referrers().into_iter().next().expect("a referrer");
    assert_eq!(dry_run_then_gc(&tree, &[]), Vec::<String>::new());
    assert_check_clean(&tree);

    run_bin_ok(["rm", t, &format!("{name}:latest")], f.dir.path());
    let deleted: BTreeSet<String> = dry_run_then_gc(&tree, &[]).into_iter().collect();
    let hex = &subject["sha256:".len()..];
    let fallback_index = f.repositories()[&name]["tags"][format!("sha256-{hex}")]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let mut want: BTreeSet<String> = graph_files(&f, &name, &format!("sha256-{hex}"));
    want.extend(graph_files(&f, &name, "latest"));
    want.insert(format!("v2/{name}/referrers/{subject}"));
    want.insert(format!("v2/{name}/manifests/sha256-{hex}"));
    for d in &descriptors {
        assert!(want.contains(&format!(
            "v2/{name}/manifests/{}",
            d["digest"].as_str().unwrap()
        )));
    }
    assert!(want.contains(&format!("v2/{name}/manifests/{fallback_index}")));
    // The repository had no other tag: its list goes too.
    want.insert(format!("v2/{name}/tags/list"));
    assert_eq!(deleted, want);
    assert_check_clean(&tree);
}
