//! The real binary over fixture trees: check, prepare, and the host
//! commands' output contracts (determinism, --check, -o, settings, hostile
//! input). Serving through real hosts and clients lives in the e2e_* files.

use crate::support;

use crate::support::fixture::{self, sha256};
use crate::support::{TempDir, run_bin};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

fn code(out: &std::process::Output) -> i32 {
    out.status.code().expect("exited")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every file under `dir` with its bytes and mtime, for "nothing changed" assertions.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, SystemTime)> {
    let mut out = BTreeMap::new();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry.unwrap();
        if entry.file_type().is_file() {
            let meta = entry.metadata().unwrap();
            out.insert(
                entry.path().to_path_buf(),
                (fs::read(entry.path()).unwrap(), meta.modified().unwrap()),
            );
        }
    }
    out
}

#[test]
fn check_clean_fixture_exits_zero_and_counts_everything() {
    let f = fixture::build("basic", &[]);
    let out = run_bin(
        ["check", "--format", "json", f.tree().to_str().unwrap()],
        f.dir.path(),
    );
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["errors"], 0);
    assert_eq!(
        report["repositories"].as_u64().unwrap() as usize,
        f.repositories().len()
    );
    assert_eq!(report["tags"].as_u64().unwrap() as usize, f.tags().len());
    assert_eq!(
        report["manifests"].as_u64().unwrap() as usize,
        f.manifests().len()
    );
    assert_eq!(report["blobs"].as_u64().unwrap() as usize, f.blobs().len());
}

#[test]
fn check_reports_every_planted_problem_at_once() {
    let f = fixture::build("hostile", &[]);
    let tree = f.tree();
    for verify in [false, true] {
        let mut args = vec!["check", "--format", "json", tree.to_str().unwrap()];
        if verify {
            args.push("--verify-blobs");
        }
        let out = run_bin(&args, f.dir.path());
        assert_eq!(code(&out), 1, "{}", text(&out.stderr));
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        let found: Vec<(String, String)> = report["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["path"].as_str().unwrap().to_string(),
                    p["kind"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        for (path, kind, needs) in f.problems() {
            let expect = needs.is_none() || verify;
            let present = found.contains(&(path.clone(), kind.clone()));
            assert_eq!(
                present, expect,
                "{kind} at {path:?} (verify_blobs={verify}); found {found:#?}"
            );
        }
        // Nothing reported that the builder did not plant (warnings aside).
        for p in report["problems"].as_array().unwrap() {
            if p["severity"] == "error" {
                let key = (
                    p["path"].as_str().unwrap().to_string(),
                    p["kind"].as_str().unwrap().to_string(),
                );
                assert!(
                    f.problems()
                        .iter()
                        .any(|(a, b, _)| (a, b) == (&key.0, &key.1)),
                    "unexpected {p}"
                );
            }
        }
    }
}

#[test]
fn check_text_is_one_line_per_problem_even_for_newline_names() {
    let f = fixture::build("hostile", &[]);
    let out = run_bin(["check", f.tree().to_str().unwrap()], f.dir.path());
    assert_eq!(code(&out), 1);
    let stdout = text(&out.stdout);
    let planted = f.problems().iter().filter(|p| p.2.is_none()).count();
    let errors = stdout.lines().filter(|l| l.starts_with("error: ")).count();
    assert_eq!(errors, planted, "{stdout}");
    assert!(stdout.contains("v2/demo/new\\nline"), "{stdout}");
    for line in stdout.lines() {
        assert!(
            line.starts_with("error: v2/") || line.starts_with("warning: v2/"),
            "{line}"
        );
    }
}

#[test]
fn usage_and_io_errors_exit_two() {
    let tmp = TempDir::new("usage");
    assert_eq!(code(&run_bin(["check", "--no-such-flag"], tmp.path())), 2);
    let out = run_bin(["check", tmp.join("missing").to_str().unwrap()], tmp.path());
    assert_eq!(code(&out), 2);
    assert!(
        text(&out.stderr).contains("missing"),
        "{}",
        text(&out.stderr)
    );
    // A tree without v2/ is not a registry.
    let out = run_bin(["nginx", tmp.path().to_str().unwrap()], tmp.path());
    assert_eq!(code(&out), 2);
    assert!(text(&out.stderr).contains("v2/"), "{}", text(&out.stderr));
}

#[test]
fn prepare_completes_the_tree_and_is_idempotent() {
    let f = fixture::build("basic", &[]);
    let tree = f.tree();
    let before = snapshot(&tree);
    let out = run_bin(["prepare", tree.to_str().unwrap()], f.dir.path());
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let after = snapshot(&tree);
    // Nothing that existed was touched.
    for (path, old) in &before {
        assert_eq!(after.get(path), Some(old), "{} changed", path.display());
    }
    // Every tag has its digest-addressed copy, byte for byte.
    for (name, tag, digest, _, _) in f.tags() {
        let by_tag = fs::read(tree.join(format!("v2/{name}/manifests/{tag}"))).unwrap();
        let by_digest = fs::read(tree.join(format!("v2/{name}/manifests/{digest}"))).unwrap();
        assert_eq!(by_tag, by_digest);
        assert_eq!(sha256(&by_digest), digest);
    }
    for (name, repo) in f.repositories() {
        let list: Value =
            serde_json::from_slice(&fs::read(tree.join(format!("v2/{name}/tags/list"))).unwrap())
                .unwrap();
        let mut tags: Vec<&String> = repo["tags"].as_object().unwrap().keys().collect();
        tags.sort();
        assert_eq!(list, serde_json::json!({"name": name, "tags": tags}));
    }
    let catalog: Value =
        serde_json::from_slice(&fs::read(tree.join("v2/_catalog")).unwrap()).unwrap();
    let names: Vec<&String> = f.repositories().keys().collect();
    assert_eq!(catalog, serde_json::json!({"repositories": names}));
    assert_eq!(fs::read(tree.join("v2/index.html")).unwrap(), b"{}");
    for (file, code_name) in [
        ("manifest_unknown", "MANIFEST_UNKNOWN"),
        ("blob_unknown", "BLOB_UNKNOWN"),
        ("name_unknown", "NAME_UNKNOWN"),
    ] {
        let body: Value = serde_json::from_slice(
            &fs::read(tree.join(format!("v2/_errors/{file}.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(body["errors"][0]["code"], code_name);
    }
    // Second run: not one byte or mtime changes.
    let out = run_bin(["prepare", tree.to_str().unwrap()], f.dir.path());
    assert_eq!(code(&out), 0);
    assert_eq!(snapshot(&tree), after);
}

#[test]
fn prepare_never_overwrites_a_wrong_digest_file_and_leaves_hostile_names_out() {
    let f = fixture::build("hostile", &[]);
    let tree = f.tree();
    let bad = tree.join(
        "v2/demo/broken/manifests/sha256:35b6a6f09fb9557e7da6c168abfe1c86318fc0a6c559f9eaff6da06e745c85ca",
    );
    let bad_before = fs::read(&bad).unwrap();
    let out = run_bin(["prepare", tree.to_str().unwrap()], f.dir.path());
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert_eq!(fs::read(&bad).unwrap(), bad_before);
    let badtags = text(&fs::read(tree.join("v2/demo/badtags/tags/list")).unwrap_or_default());
    assert!(
        !badtags.contains("pwned") && !badtags.contains('$'),
        "{badtags}"
    );
    let catalog = text(&fs::read(tree.join("v2/_catalog")).unwrap());
    for hostile in ["evil", "quo", "dollar", "Bad", "new", "escape"] {
        assert!(!catalog.contains(hostile), "{hostile} in {catalog}");
    }
    assert!(!tree.join("v2/evil}name/tags").exists());
}

fn nginx_conf(tree: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "nginx",
        tree.to_str().unwrap(),
        "--listen",
        "127.0.0.1:8080",
    ];
    args.extend_from_slice(extra);
    run_bin(&args, tree)
}

#[test]
fn nginx_output_is_deterministic_and_lists_every_manifest_path() {
    let f = fixture::build("basic", &[]);
    let tree = f.tree();
    let first = nginx_conf(&tree, &[]);
    assert_eq!(code(&first), 0, "{}", text(&first.stderr));
    // Unprepared trees get a warning, the same config.
    assert!(
        text(&first.stderr).contains("prepare"),
        "{}",
        text(&first.stderr)
    );
    run_bin(["prepare", tree.to_str().unwrap()], &tree);
    let second = nginx_conf(&tree, &[]);
    assert_eq!(first.stdout, second.stdout);
    assert!(
        !text(&second.stderr).contains("warning"),
        "{}",
        text(&second.stderr)
    );
    // A copy elsewhere, with the same --root-path, renders the same bytes.
    let copy = TempDir::new("copy");
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(&tree)
        .arg(copy.join("t"))
        .status()
        .unwrap();
    assert!(status.success());
    let root = tree.to_str().unwrap();
    let a = nginx_conf(&tree, &["--root-path", root]);
    let b = nginx_conf(&copy.join("t"), &["--root-path", root]);
    assert_eq!(a.stdout, b.stdout);

    let conf = text(&second.stdout);
    let codes: BTreeMap<&str, char> = [
        ("application/vnd.docker.distribution.manifest.v2+json", 'd'),
        (
            "application/vnd.docker.distribution.manifest.list.v2+json",
            'l',
        ),
        ("application/vnd.oci.image.manifest.v1+json", 'o'),
        ("application/vnd.oci.image.index.v1+json", 'i'),
    ]
    .into_iter()
    .collect();
    for (name, tag, digest, media_type, _) in f.tags() {
        let line = format!(
            "    /v2/{name}/manifests/{tag} {}{digest};\n",
            codes[media_type.as_str()]
        );
        assert!(conf.contains(&line), "missing {line}");
    }
    for (name, digest, media_type, _) in f.manifests() {
        let line = format!(
            "    /v2/{name}/manifests/{digest} {};\n",
            codes[media_type.as_str()]
        );
        assert!(conf.contains(&line), "missing {line}");
    }
    assert!(conf.contains(&format!(
        "root \"{}\";",
        fs::canonicalize(&tree).unwrap().display()
    )));
    assert!(conf.contains("listen 127.0.0.1:8080;"));
}

#[test]
fn nginx_config_from_a_hostile_tree_holds_no_hostile_name_and_loads() {
    let f = fixture::build("hostile", &[]);
    let tree = f.tree();
    let out = nginx_conf(&tree, &[]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let conf = text(&out.stdout);
    for hostile in [
        "pwned", "$host", "t}", "a\"b", "evil", "quo\"te", "dollar", "new\n", "Bad", "escape",
        "weird", "notjson",
    ] {
        assert!(!conf.contains(hostile), "{hostile:?} reached the config");
    }
    // Tags that differ only by case become case-sensitive regex keys.
    assert!(
        conf.contains("\"~^/v2/demo/case/manifests/Latest$\""),
        "{conf}"
    );
    assert!(conf.contains("\"~^/v2/demo/case/manifests/latest$\""));
    // The problems were reported with their paths.
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("v2/demo/badtags/manifests/x;return 200 pwned"),
        "{stderr}"
    );
    // --strict refuses to write anything.
    let strict = nginx_conf(&tree, &["--strict"]);
    assert_eq!(code(&strict), 1);
    assert!(strict.stdout.is_empty());
    // nginx itself accepts it.
    let path = f.dir.join("registry.conf");
    fs::write(&path, &out.stdout).unwrap();
    let (ok, log) = support::nginx_test_config(&path);
    assert!(ok, "{log}");
}

#[test]
fn check_flag_and_atomic_output() {
    let f = fixture::build("basic", &[]);
    let tree = f.tree();
    run_bin(["prepare", tree.to_str().unwrap()], &tree);
    let conf = f.dir.join("out/registry.conf");
    let out = nginx_conf(&tree, &["-o", conf.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    let written = fs::read(&conf).unwrap();
    assert_eq!(written, nginx_conf(&tree, &[]).stdout);
    // Up to date.
    assert_eq!(
        code(&nginx_conf(&tree, &["--check", conf.to_str().unwrap()])),
        0
    );
    // Stale: exit 1, and the file is left alone.
    fs::write(&conf, b"# edited\n").unwrap();
    let out = nginx_conf(&tree, &["--check", conf.to_str().unwrap()]);
    assert_eq!(code(&out), 1);
    assert!(text(&out.stderr).contains("not what would be generated"));
    assert_eq!(fs::read(&conf).unwrap(), b"# edited\n");
    // A path that cannot be written: exit 2, the old file intact, no temp left.
    let blocked = f.dir.join("out/registry.conf/inner");
    let out = nginx_conf(&tree, &["-o", blocked.to_str().unwrap()]);
    assert_eq!(code(&out), 2);
    assert_eq!(fs::read(&conf).unwrap(), b"# edited\n");
    assert_eq!(fs::read_dir(f.dir.join("out")).unwrap().count(), 1);
}

#[test]
fn settings_file_is_read_strictly_and_flags_win() {
    let f = fixture::build("basic", &[]);
    let tree = f.tree();
    fs::write(tree.join("registrish.toml"), "[nginx]\nlisten = \"127.0.0.1:9999\"\nserver_name = \"registry.example\"\n[cache]\ntag_max_age = 60\n").unwrap();
    let out = run_bin(["nginx", tree.to_str().unwrap()], &tree);
    let conf = text(&out.stdout);
    assert!(
        conf.contains("listen 127.0.0.1:9999;") && conf.contains("server_name registry.example;")
    );
    assert!(conf.contains("max-age=60\""));
    let out = run_bin(
        [
            "nginx",
            tree.to_str().unwrap(),
            "--listen",
            "127.0.0.1:7777",
        ],
        &tree,
    );
    assert!(text(&out.stdout).contains("listen 127.0.0.1:7777;"));
    fs::write(tree.join("registrish.toml"), "[nginx]\nlisen = \"x\"\n").unwrap();
    let out = run_bin(["nginx", tree.to_str().unwrap()], &tree);
    assert_eq!(code(&out), 2);
    assert!(text(&out.stderr).contains("lisen"), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
}

#[test]
fn values_that_would_inject_config_are_refused() {
    let f = fixture::build("basic", &[]);
    let tree = f.tree();
    for (flag, value) in [
        ("--root-path", "/srv/$document_root"),
        ("--root-path", "/srv/x\"; return 200 pwned; #"),
        ("--listen", "80; return 200 pwned"),
        ("--server-name", "a;b"),
    ] {
        let out = nginx_conf(&tree, &[flag, value]);
        assert_eq!(code(&out), 2, "{flag} {value}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn templates_can_be_overridden_by_file_name() {
    let f = fixture::build("basic", &[]);
    let tree = f.tree();
    let dir = f.dir.join("templates");
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("nginx.conf.tera"),
        "# custom\n{% for e in manifests %}{{ e | map_entry }}\n{% endfor %}",
    )
    .unwrap();
    let out = nginx_conf(&tree, &["--templates", dir.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let conf = text(&out.stdout);
    assert!(
        conf.starts_with("# custom\n/v2/charts/hello/manifests/0.1.0 osha256:"),
        "{conf}"
    );
    // A custom template still cannot print an unsafe value through `token`.
    fs::write(dir.join("nginx.conf.tera"), "{{ \"a;b\" | token }}").unwrap();
    let out = nginx_conf(&tree, &["--templates", dir.to_str().unwrap()]);
    assert_eq!(code(&out), 2);
    assert!(
        text(&out.stderr).contains("refusing"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn netlify_writes_headers_and_redirects_into_the_tree() {
    let f = fixture::build("basic", &[]);
    let tree = f.tree();
    let out = run_bin(["netlify", tree.to_str().unwrap()], &tree);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let headers = text(&fs::read(tree.join("_headers")).unwrap());
    let redirects = text(&fs::read(tree.join("_redirects")).unwrap());
    assert!(headers.contains("/v2/*\n  Docker-Distribution-API-Version: registry/2.0\n"));
    assert!(
        redirects.contains(
            "/v2/:n1/:n2/:n3/manifests/:reference  /v2/_errors/manifest_unknown.json  404"
        )
    );
    // --check against what was written passes; against an edited file fails.
    let check = run_bin(
        [
            "netlify",
            tree.to_str().unwrap(),
            "--check",
            tree.join("_headers").to_str().unwrap(),
        ],
        &tree,
    );
    assert_eq!(code(&check), 0, "{}", text(&check.stderr));
    fs::write(tree.join("_redirects"), "").unwrap();
    let check = run_bin(
        [
            "netlify",
            tree.to_str().unwrap(),
            "--check",
            tree.join("_headers").to_str().unwrap(),
        ],
        &tree,
    );
    assert_eq!(code(&check), 1);
}

#[test]
fn committed_fixture_equals_the_builder_output() {
    let f = fixture::build("basic", &[]);
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/registry");
    let rel = |snap: BTreeMap<PathBuf, (Vec<u8>, SystemTime)>,
               base: &Path|
     -> BTreeMap<PathBuf, Vec<u8>> {
        snap.into_iter()
            .map(|(p, (b, _))| (p.strip_prefix(base).unwrap().to_path_buf(), b))
            .collect()
    };
    let built = rel(snapshot(&f.tree()), &f.tree());
    assert!(!built.is_empty());
    assert_eq!(
        rel(snapshot(&committed), &committed),
        built,
        "rebuild with: python3 fixtures/build.py basic fixtures/registry"
    );
}

#[test]
fn cloudflare_reports_what_pages_cannot_host_and_writes_nothing() {
    let f = fixture::build("hostile", &[]);
    let tree = f.tree();
    // Served elsewhere, reported here: the symlinked tag.
    let out = run_bin(["cloudflare", tree.to_str().unwrap()], &tree);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("v2/demo/hello/manifests/alias: a symlink"),
        "{}",
        text(&out.stderr)
    );
    fs::remove_file(tree.join("_worker.js")).unwrap();
    fs::remove_file(tree.join("_routes.json")).unwrap();

    // Fatal: a blob over 25 MiB, too many files, an overlong `_headers` line.
    let f = fixture::build("basic", &[]);
    let tree = f.tree();
    let big = tree.join("v2/demo/hello/blobs/sha256:4444444444444444444444444444444444444444444444444444444444444444");
    fs::File::create(&big)
        .unwrap()
        .set_len(26 * 1024 * 1024)
        .unwrap();
    let out = run_bin(["cloudflare", tree.to_str().unwrap()], &tree);
    assert_eq!(code(&out), 1, "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("26.0 MiB"),
        "{}",
        text(&out.stderr)
    );
    assert!(!tree.join("_worker.js").exists() && !tree.join("_routes.json").exists());
    fs::remove_file(&big).unwrap();

    let out = run_bin(
        ["cloudflare", tree.to_str().unwrap(), "--max-files", "10"],
        &tree,
    );
    assert_eq!(code(&out), 1);
    assert!(
        text(&out.stderr).contains("too-many-files"),
        "{}",
        text(&out.stderr)
    );
    assert!(!tree.join("_worker.js").exists());

    fs::write(
        tree.join("_headers"),
        format!("/x\n  X-Long: {}\n", "a".repeat(2001)),
    )
    .unwrap();
    let out = run_bin(["cloudflare", tree.to_str().unwrap()], &tree);
    assert_eq!(code(&out), 1);
    assert!(
        text(&out.stderr).contains("_headers:2"),
        "{}",
        text(&out.stderr)
    );
    assert!(!tree.join("_worker.js").exists());
    fs::remove_file(tree.join("_headers")).unwrap();

    // Clean: written, deterministic, and --check agrees.
    let out = run_bin(["cloudflare", tree.to_str().unwrap()], &tree);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let first = fs::read(tree.join("_worker.js")).unwrap();
    let check = run_bin(
        [
            "cloudflare",
            tree.to_str().unwrap(),
            "--check",
            tree.to_str().unwrap(),
        ],
        &tree,
    );
    assert_eq!(code(&check), 0, "{}", text(&check.stderr));
    fs::write(tree.join("_routes.json"), "{}").unwrap();
    let check = run_bin(
        [
            "cloudflare",
            tree.to_str().unwrap(),
            "--check",
            tree.to_str().unwrap(),
        ],
        &tree,
    );
    assert_eq!(code(&check), 1);
    let out = run_bin(
        [
            "cloudflare",
            tree.to_str().unwrap(),
            "-o",
            f.dir.join("site").to_str().unwrap(),
        ],
        &tree,
    );
    assert_eq!(code(&out), 0);
    assert_eq!(fs::read(f.dir.join("site/_worker.js")).unwrap(), first);
}

#[test]
fn check_reports_pages_limits_on_request() {
    let f = fixture::build("basic", &[]);
    let tree = f.tree();
    let big = tree.join("v2/demo/hello/blobs/sha256:4444444444444444444444444444444444444444444444444444444444444444");
    fs::File::create(&big)
        .unwrap()
        .set_len(26 * 1024 * 1024)
        .unwrap();
    // Fine for nginx: a hint, exit 0.
    let out = run_bin(["check", tree.to_str().unwrap()], &tree);
    assert_eq!(code(&out), 0, "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("check --host cloudflare"),
        "{}",
        text(&out.stdout)
    );
    // For Pages: the file, as an error.
    let out = run_bin(
        ["check", tree.to_str().unwrap(), "--host", "cloudflare"],
        &tree,
    );
    assert_eq!(code(&out), 1);
    assert!(
        text(&out.stdout).contains("sha256:4444") && text(&out.stdout).contains("[file-too-large]"),
        "{}",
        text(&out.stdout)
    );
}
