//! Regression tests for the bugs issue 8 found, and those fuzzing found (issue 10); each failed
//! before its fix.

use crate::support::fixture;
use crate::support::{TempDir, run_bin, run_bin_ok};
use serde_json::Value;
use std::fs;
use std::process::Command;

/// The basic fixture, prepared.
fn prepared_basic() -> fixture::Fixture {
    let f = fixture::build("basic", &[]);
    run_bin_ok(["prepare", f.tree().to_str().unwrap()], f.dir.path());
    f
}

/// (path, kind) of every problem in a `check --format json` report.
fn path_and_kind(report: &Value) -> Vec<(&str, &str)> {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["path"].as_str().unwrap(), p["kind"].as_str().unwrap()))
        .collect()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Bug 1: a `docker save` archive whose manifest.json names a config the archive lacks made
/// `import` panic (exit 101). It must exit 2 with a message naming the member, and change nothing.
#[test]
fn import_of_an_archive_missing_its_config_is_an_error_not_a_panic() {
    let dir = TempDir::new("missing-config");
    let src = dir.join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(
        src.join("manifest.json"),
        r#"[{"Config":"cafe.json","RepoTags":["demo/x:1"],"Layers":[]}]"#,
    )
    .unwrap();
    let archive = dir.join("image.tar");
    crate::support::process::run(
        Command::new("tar")
            .arg("-cf")
            .arg(&archive)
            .arg("-C")
            .arg(&src)
            .arg("manifest.json"),
    );
    let (status, stderr) = import_into_a_new_tree(&dir, &archive);
    assert_eq!(status, Some(2), "{stderr}");
    assert!(
        stderr.contains("cafe.json is listed but not in the archive"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(fs::read_dir(dir.join("tree/v2")).unwrap().count(), 0);
}

/// A prepared basic tree plus `demo/hello:Latest`, a tag that differs from `latest` by case.
fn case_colliding_tree() -> fixture::Fixture {
    let f = fixture::build("basic", &[]);
    let manifests = f.tree().join("v2/demo/hello/manifests");
    fs::copy(manifests.join("latest"), manifests.join("Latest")).unwrap();
    run_bin_ok(["prepare", f.tree().to_str().unwrap()], f.dir.path());
    f
}

/// Bug 2: the Netlify-only case collision was an error for every host, so `nginx --strict`,
/// `s3 --strict` and `check` refused a tree those hosts serve, and `netlify` printed it three times.
#[test]
fn a_case_collision_is_an_error_for_netlify_alone() {
    let f = case_colliding_tree();
    let tree = f.tree();
    let tree = tree.to_str().unwrap();
    for args in [
        vec!["nginx", tree, "--strict"],
        vec!["s3", tree, "--strict", "--bucket", "b"],
    ] {
        let out = run_bin(&args, f.dir.path());
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(!out.stdout.is_empty());
        assert!(!text(&out.stderr).contains("case-collision"));
    }
    let nginx = text(&run_bin_ok(["nginx", tree], f.dir.path()).stdout);
    // nginx tells the two tags apart (in demo/hello's table, matched case-sensitively).
    let upper = crate::support::nginx_lists(&nginx, "demo/hello", "Latest").unwrap();
    let lower = crate::support::nginx_lists(&nginx, "demo/hello", "latest").unwrap();
    assert!(upper.1 && lower.1, "{nginx}");
    let check = run_bin(["check", tree], f.dir.path());
    assert_eq!(check.status.code(), Some(0), "{}", text(&check.stdout));
    assert!(text(&check.stdout).contains("see `check --host netlify`"));
    let netlify = run_bin(
        [
            "netlify",
            tree,
            "-o",
            f.dir.join("h/_headers").to_str().unwrap(),
        ],
        f.dir.path(),
    );
    let lines: Vec<String> = text(&netlify.stderr)
        .lines()
        .filter(|l| l.contains("[case-collision]"))
        .map(String::from)
        .collect();
    assert_eq!(lines.len(), 2, "one line per tag left out: {lines:#?}");
    assert!(lines[0].starts_with("error: v2/demo/hello/manifests/Latest: "));
    assert!(lines[1].starts_with("error: v2/demo/hello/manifests/latest: "));
    let strict = run_bin(["check", tree, "--host", "netlify"], f.dir.path());
    assert_eq!(strict.status.code(), Some(1));
}

/// Bug 3: `check` called an unprepared tree clean while every host command warned. Since
/// issue 10 the host commands refuse such a tree, and check calls it an error (exit 1).
#[test]
fn check_reports_an_unprepared_tree() {
    let f = fixture::build("basic", &[]);
    let tree = f.tree();
    let out = run_bin(
        ["check", tree.to_str().unwrap(), "--format", "json"],
        f.dir.path(),
    );
    assert_eq!(out.status.code(), Some(1), "not-prepared is an error");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let pending: Vec<&str> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["kind"] == "not-prepared" && p["severity"] == "error")
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    for fixed in [
        "v2/_catalog",
        "v2/index.html",
        "v2/_errors/manifest_unknown.json",
    ] {
        assert!(pending.contains(&fixed), "{fixed}: {pending:?}");
    }
    for (name, _) in f.repositories() {
        let list = format!("v2/{name}/tags/list");
        assert!(pending.contains(&list.as_str()), "{list}: {pending:?}");
    }
    // Every tag whose digest copy is missing (the builder made one for demo/hello only).
    for (name, _, digest, _, _) in f.tags() {
        let copy = format!("v2/{name}/manifests/{digest}");
        assert_eq!(
            pending.contains(&copy.as_str()),
            !tree.join(&copy).exists(),
            "{copy}"
        );
    }
    run_bin_ok(["prepare", tree.to_str().unwrap()], f.dir.path());
    let after = text(&run_bin_ok(["check", tree.to_str().unwrap()], f.dir.path()).stdout);
    assert!(!after.contains("not-prepared"), "{after}");
}

/// Bug 5: schema 1 got no warning although Docker 28 and containerd 2 refuse it, and an
/// unsigned schema 1 document was served as `...manifest.v1+prettyjws`.
#[test]
fn schema1_is_typed_by_its_signature_and_warned_about() {
    let f = fixture::build("basic", &[]);
    let repo = f.tree().join("v2/old/app");
    fs::create_dir_all(repo.join("manifests")).unwrap();
    fs::create_dir_all(repo.join("blobs")).unwrap();
    let layer = b"layer bytes";
    let layer_digest = fixture::sha256(layer);
    fs::write(repo.join("blobs").join(&layer_digest), layer).unwrap();
    let unsigned = format!(
        r#"{{"schemaVersion":1,"name":"old/app","tag":"v1","architecture":"amd64","fsLayers":[{{"blobSum":"{layer_digest}"}}],"history":[{{"v1Compatibility":"{{}}"}}],"signatures":[]}}"#
    );
    fs::write(repo.join("manifests/v1"), &unsigned).unwrap();
    let tree = f.tree();
    let tree = tree.to_str().unwrap();
    run_bin_ok(["prepare", tree], f.dir.path());
    let check = text(&run_bin_ok(["check", tree], f.dir.path()).stdout);
    let line = check
        .lines()
        .find(|l| l.contains("[schema1]"))
        .unwrap_or_else(|| panic!("no schema1 warning: {check}"));
    assert!(line.starts_with("warning: v2/old/app/manifests/"), "{line}");
    assert!(
        line.contains("Docker 28") && line.contains("containerd 2"),
        "{line}"
    );
    let headers: Value =
        serde_json::from_slice(&run_bin_ok(["headers", tree], f.dir.path()).stdout).unwrap();
    assert_eq!(
        headers["/v2/old/app/manifests/v1"]["headers"]["Content-Type"],
        "application/vnd.docker.distribution.manifest.v1+json"
    );
    assert_eq!(
        headers["/v2/old/app/manifests/v1"]["headers"]["Docker-Content-Digest"],
        fixture::sha256(unsigned.as_bytes())
    );
}

/// Issue 10: a FIFO named like a tag made `check` (and every host command) hang forever:
/// the scan opened it to read a manifest. It is now reported by its path and never opened.
#[test]
fn a_fifo_named_like_a_tag_is_reported_and_never_opened() {
    let f = prepared_basic();
    let tree = f.tree();
    let tree_s = tree.to_str().unwrap();
    let fifo = tree.join("v2/demo/hello/manifests/piped");
    crate::support::process::run(Command::new("mkfifo").arg(&fifo));
    let out = crate::support::process::output_timeout(
        Command::new(crate::support::bin())
            .args(["check", tree_s, "--format", "json"])
            .current_dir(f.dir.path()),
        std::time::Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let found = path_and_kind(&report);
    assert!(
        found.contains(&("v2/demo/hello/manifests/piped", "special-file")),
        "{found:?}"
    );
    let nginx = run_bin(["nginx", tree_s], f.dir.path());
    assert_eq!(nginx.status.code(), Some(0), "{}", text(&nginx.stderr));
    assert!(!text(&nginx.stdout).contains("piped"));
}

/// A dot-directory is never served but is walked: a symlink inside it is still found and
/// reported (a host that follows links could reach it), beside the dot-file warning.
#[test]
fn a_symlink_inside_a_dot_directory_is_found() {
    let f = prepared_basic();
    let tree = f.tree();
    let tree_s = tree.to_str().unwrap();
    let stash = tree.join("v2/demo/.stash");
    std::fs::create_dir_all(&stash).unwrap();
    std::os::unix::fs::symlink("/etc", stash.join("etc")).unwrap();
    let out = run_bin(["check", tree_s, "--format", "json"], f.dir.path());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let found = path_and_kind(&report);
    assert!(found.contains(&("v2/demo/.stash", "dot-file")), "{found:?}");
    assert!(
        found.iter().any(|(p, _)| *p == "v2/demo/.stash/etc"),
        "{found:?}"
    );
}

/// File and directory names that are not UTF-8 are judged by their own bytes: a tag file so
/// named is an invalid tag of a sound repository (which keeps serving its other tags), a
/// repository directory so named is an invalid name; neither reaches a host's output.
#[test]
fn names_that_are_not_utf8_are_reported_where_they_are() {
    use std::os::unix::ffi::OsStrExt;
    let f = prepared_basic();
    let tree = f.tree();
    let tree_s = tree.to_str().unwrap();
    let latest = tree.join("v2/demo/hello/manifests/latest");
    let bad_tag = tree
        .join("v2/demo/hello/manifests")
        .join(std::ffi::OsStr::from_bytes(b"v\xff1"));
    std::fs::copy(&latest, &bad_tag).unwrap();
    let bad_repo = tree
        .join("v2/demo")
        .join(std::ffi::OsStr::from_bytes(b"r\xffx"));
    std::fs::create_dir_all(bad_repo.join("manifests")).unwrap();
    std::fs::copy(&latest, bad_repo.join("manifests/latest")).unwrap();
    let out = run_bin(["check", tree_s, "--format", "json"], f.dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let found = path_and_kind(&report);
    assert!(
        found.contains(&("v2/demo/hello/manifests/v\u{fffd}1", "invalid-tag")),
        "{found:?}"
    );
    assert!(
        found.contains(&("v2/demo/r\u{fffd}x", "invalid-name")),
        "{found:?}"
    );
    // The repository with the bad tag is otherwise sound: no invalid-name for it.
    assert!(
        !found.contains(&("v2/demo/hello", "invalid-name")),
        "{found:?}"
    );
    let nginx = run_bin(["nginx", tree_s], f.dir.path());
    assert_eq!(nginx.status.code(), Some(0), "{}", text(&nginx.stderr));
    let conf = text(&nginx.stdout);
    assert!(
        crate::support::nginx_lists(&conf, "demo/hello", "latest").is_some(),
        "{conf}"
    );
    assert!(!conf.contains('\u{fffd}'), "{conf}");
}

/// A `docker save` archive: `members` in order, each (name, bytes, size the header claims).
fn save_archive(members: &[(&str, &[u8], u64)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data, claimed) in members {
        let mut header = tar::Header::new_ustar();
        header.set_path(name).unwrap();
        header.set_size(*claimed);
        header.set_mode(0o644);
        header.set_cksum();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(512), 0);
    }
    out
}

/// Issue 10 (fuzzing, `docker_save`): an archive cut short inside its last member was indexed
/// as if whole (the reader seeks past member data), so `import` wrote a layer of 10 bytes under
/// a manifest saying 1000 and `check` then failed the tree; and a header claiming 8 GiB made it
/// allocate 8 GiB to read a 2-byte config. Both must be refused, naming the member, with
/// nothing written.
#[test]
fn import_refuses_an_archive_cut_short_inside_a_member() {
    let manifest: &[u8] =
        br#"[{"Config":"config.json","RepoTags":["demo/x:1"],"Layers":["l.tar"]}]"#;
    let config: &[u8] = br#"{"architecture":"amd64","os":"linux"}"#;
    let cut_layer = save_archive(&[
        ("manifest.json", manifest, manifest.len() as u64),
        ("config.json", config, config.len() as u64),
        ("l.tar", b"0123456789", 1000),
    ]);
    let huge_config = save_archive(&[
        ("manifest.json", manifest, manifest.len() as u64),
        ("config.json", b"{}", 0o77777777777),
    ]);
    for (case, bytes, member) in [
        ("cut-layer", cut_layer, "l.tar"),
        ("huge-config", huge_config, "config.json"),
    ] {
        let dir = TempDir::new(case);
        let archive = dir.join("image.tar");
        fs::write(&archive, &bytes).unwrap();
        let (status, stderr) = import_into_a_new_tree(&dir, &archive);
        assert_eq!(status, Some(2), "{case}: {stderr}");
        assert!(
            stderr.contains(&format!("is truncated: member {member} claims")),
            "{case}: {stderr}"
        );
        assert_eq!(
            fs::read_dir(dir.join("tree/v2")).unwrap().count(),
            0,
            "{case}"
        );
    }
}

/// `import ARCHIVE --name demo/x` into a new empty tree under `dir`: (exit code, stderr).
fn import_into_a_new_tree(dir: &TempDir, archive: &std::path::Path) -> (Option<i32>, String) {
    let tree = dir.join("tree");
    fs::create_dir_all(tree.join("v2")).unwrap();
    let out = run_bin(
        [
            "import",
            archive.to_str().unwrap(),
            "--name",
            "demo/x",
            tree.to_str().unwrap(),
        ],
        dir.path(),
    );
    (out.status.code(), text(&out.stderr))
}
