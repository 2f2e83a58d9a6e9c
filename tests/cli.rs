//! The real binary over fixture trees: check, prepare, and the host commands' output contracts
//! (determinism, --check, -o, settings, hostile input), one behaviour a test. Serving through
//! real hosts and clients lives in the e2e_* modules.

use crate::support::TempDir;
use crate::support::case::{Case, TREE};
use crate::support::fixture::{self, Fixture, sha256};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

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

fn prepare(tree: &Path) {
    Case::new().tree(tree).args(["prepare", TREE]).run();
}

fn prepared(kind: &str) -> Fixture {
    let f = fixture::build(kind, &[]);
    prepare(&f.tree());
    f
}

/// `registrish-gen nginx TREE --listen 127.0.0.1:8080`, more arguments to come.
fn nginx(tree: &Path) -> Case {
    Case::new()
        .tree(tree)
        .args(["nginx", TREE, "--listen", "127.0.0.1:8080"])
}

// check

#[test]
fn check_counts_every_repository_tag_manifest_and_blob_of_a_clean_tree() {
    let f = prepared("basic");
    let ran = Case::new()
        .tree(f.tree())
        .args(["check", "--format", "json", TREE])
        .run();
    let report: Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(report["errors"], 0);
    assert_eq!(report["repositories"], f.repositories().len());
    assert_eq!(report["tags"], f.tags().len());
    assert_eq!(report["manifests"], f.manifests().len());
    assert_eq!(report["blobs"], f.blobs().len());
}

/// `check --format json` on the hostile tree reports what the builder planted (the problems that
/// need `--verify-blobs` only with it) and no error it did not plant.
fn assert_check_reports_the_planted_problems(verify_blobs: bool) {
    // Unprepared, so each problem is reported at the path the builder planted it (after
    // prepare a manifest's problem may be reported at its digest copy, read first).
    let f = fixture::build("hostile", &[]);
    let mut case = Case::new()
        .tree(f.tree())
        .args(["check", "--format", "json", TREE])
        .status(1);
    if verify_blobs {
        case = case.arg("--verify-blobs");
    }
    let report: Value = serde_json::from_str(&case.run().stdout).unwrap();
    let problems = report["problems"].as_array().unwrap();
    let key = |p: &Value| {
        (
            p["path"].as_str().unwrap().to_string(),
            p["kind"].as_str().unwrap().to_string(),
        )
    };
    let found: Vec<(String, String)> = problems.iter().map(key).collect();
    for (path, kind, needs) in f.problems() {
        let expect = match needs.as_deref() {
            None => true,
            Some("--verify-blobs") => verify_blobs,
            // `--host NAME`: that host's own judgement, not plain `check`'s.
            Some(_) => false,
        };
        let present = found.contains(&(path.clone(), kind.clone()));
        assert_eq!(
            present, expect,
            "{kind} at {path:?} (verify_blobs={verify_blobs}); found {found:#?}"
        );
    }
    // The tree was never prepared: check says so, as errors, for the files prepare owns.
    assert!(
        found.contains(&("v2/_catalog".to_string(), "not-prepared".to_string())),
        "{found:#?}"
    );
    // Nothing reported that the builder did not plant (warnings and not-prepared aside).
    let planted: Vec<(String, String)> = f.problems().into_iter().map(|(p, k, _)| (p, k)).collect();
    for p in problems
        .iter()
        .filter(|p| p["severity"] == "error" && p["kind"] != "not-prepared")
    {
        assert!(planted.contains(&key(p)), "unexpected {p}");
    }
}

#[test]
fn check_reports_every_planted_problem_at_once() {
    assert_check_reports_the_planted_problems(false);
}

#[test]
fn check_verify_blobs_also_reports_blobs_whose_bytes_do_not_match_their_digest() {
    assert_check_reports_the_planted_problems(true);
}

/// Problems only one host has are reported by `check --host` for that host, and as one hint
/// line by plain `check`.
#[test]
fn check_host_reports_what_only_that_host_cannot_serve() {
    let f = fixture::build("hostile", &[]);
    let mut hosts_seen = 0;
    for (path, kind, needs) in f.problems() {
        let Some(host) = needs.as_deref().and_then(|n| n.strip_prefix("--host ")) else {
            continue;
        };
        hosts_seen += 1;
        let ran = Case::new()
            .tree(f.tree())
            .args(["check", TREE, "--host", host])
            .status(1)
            .run();
        assert!(
            ran.stdout
                .lines()
                .any(|l| l.starts_with(&format!("error: {path}: "))
                    && l.ends_with(&format!("[{kind}]"))),
            "{}",
            ran.stdout
        );
        Case::new()
            .tree(f.tree())
            .args(["check", TREE])
            .status(1)
            .stdout_lacks(format!("[{kind}]"))
            .stdout_contains(format!("see `check --host {host}`"))
            .run();
    }
    assert!(
        hosts_seen > 0,
        "the hostile tree plants a host-only problem"
    );
}

#[test]
fn check_text_is_one_line_per_problem_even_for_newline_names() {
    let f = prepared("hostile");
    let ran = Case::new()
        .tree(f.tree())
        .args(["check", TREE])
        .status(1)
        .stdout_contains("v2/demo/new\\nline")
        .run();
    let planted = f.problems().iter().filter(|p| p.2.is_none()).count();
    let errors = ran
        .stdout
        .lines()
        .filter(|l| l.starts_with("error: "))
        .count();
    assert_eq!(errors, planted, "{}", ran.stdout);
    for line in ran.stdout.lines() {
        assert!(
            line.starts_with("error: v2/") || line.starts_with("warning: v2/"),
            "{line}"
        );
    }
}

/// A basic tree with a 26 MiB blob: fine for most hosts, over the Pages limit.
fn plant_big_blob(f: &Fixture) -> PathBuf {
    let big = f.tree().join(
        "v2/demo/hello/blobs/sha256:4444444444444444444444444444444444444444444444444444444444444444",
    );
    fs::File::create(&big)
        .unwrap()
        .set_len(26 * 1024 * 1024)
        .unwrap();
    big
}

#[test]
fn check_only_hints_at_pages_limits_for_a_blob_over_25_mib() {
    let f = prepared("basic");
    plant_big_blob(&f);
    Case::new()
        .tree(f.tree())
        .args(["check", TREE])
        .stdout_contains("check --host cloudflare")
        .run();
}

#[test]
fn check_host_cloudflare_reports_a_blob_over_25_mib_as_an_error() {
    let f = fixture::build("basic", &[]);
    plant_big_blob(&f);
    Case::new()
        .tree(f.tree())
        .args(["check", TREE, "--host", "cloudflare"])
        .status(1)
        .stdout_contains("sha256:4444")
        .stdout_contains("[file-too-large]")
        .run();
}

// Usage and I/O errors

#[test]
fn an_unknown_flag_exits_two() {
    Case::new()
        .args(["check", "--no-such-flag"])
        .status(2)
        .run();
}

#[test]
fn a_missing_tree_exits_two_and_names_it() {
    let tmp = TempDir::new("usage");
    Case::new()
        .arg("check")
        .arg(tmp.join("missing"))
        .status(2)
        .stderr_contains("missing")
        .run();
}

#[test]
fn a_tree_without_v2_is_refused_with_exit_two() {
    let tmp = TempDir::new("usage");
    Case::new()
        .tree(tmp.path())
        .args(["nginx", TREE])
        .status(2)
        .stderr_contains("v2/")
        .run();
}

// prepare

#[test]
fn prepare_changes_no_file_that_was_there() {
    let f = fixture::build("basic", &[]);
    let before = snapshot(&f.tree());
    prepare(&f.tree());
    let after = snapshot(&f.tree());
    for (path, old) in &before {
        assert_eq!(after.get(path), Some(old), "{} changed", path.display());
    }
}

#[test]
fn prepare_writes_a_digest_addressed_copy_of_every_tag() {
    let f = prepared("basic");
    let tree = f.tree();
    for (name, tag, digest, _, _) in f.tags() {
        let by_tag = fs::read(tree.join(format!("v2/{name}/manifests/{tag}"))).unwrap();
        let by_digest = fs::read(tree.join(format!("v2/{name}/manifests/{digest}"))).unwrap();
        assert_eq!(by_tag, by_digest, "{name}:{tag}");
        assert_eq!(sha256(&by_digest), digest, "{name}@{digest}");
    }
}

#[test]
fn prepare_writes_tags_lists_the_catalog_the_base_and_the_error_bodies() {
    let f = prepared("basic");
    let tree = f.tree();
    let json = |rel: &str| -> Value {
        serde_json::from_slice(&fs::read(tree.join(rel)).unwrap())
            .unwrap_or_else(|e| panic!("{rel}: {e}"))
    };
    for (name, repo) in f.repositories() {
        let mut tags: Vec<&String> = repo["tags"].as_object().unwrap().keys().collect();
        tags.sort();
        assert_eq!(
            json(&format!("v2/{name}/tags/list")),
            serde_json::json!({"name": name, "tags": tags})
        );
    }
    let names: Vec<&String> = f.repositories().keys().collect();
    assert_eq!(
        json("v2/_catalog"),
        serde_json::json!({"repositories": names})
    );
    assert_eq!(fs::read(tree.join("v2/index.html")).unwrap(), b"{}");
    for (file, code) in [
        ("manifest_unknown", "MANIFEST_UNKNOWN"),
        ("blob_unknown", "BLOB_UNKNOWN"),
        ("name_unknown", "NAME_UNKNOWN"),
    ] {
        assert_eq!(
            json(&format!("v2/_errors/{file}.json"))["errors"][0]["code"],
            code
        );
    }
}

#[test]
fn prepare_a_second_time_changes_no_byte_and_no_mtime() {
    let f = prepared("basic");
    let once = snapshot(&f.tree());
    prepare(&f.tree());
    assert_eq!(snapshot(&f.tree()), once);
}

#[test]
fn prepare_leaves_a_digest_file_with_other_bytes_as_it_is() {
    let f = fixture::build("hostile", &[]);
    let bad = f.tree().join(
        "v2/demo/broken/manifests/sha256:35b6a6f09fb9557e7da6c168abfe1c86318fc0a6c559f9eaff6da06e745c85ca",
    );
    let before = fs::read(&bad).unwrap();
    prepare(&f.tree());
    assert_eq!(fs::read(&bad).unwrap(), before);
}

#[test]
fn prepare_lists_no_hostile_tag_or_repository() {
    let f = prepared("hostile");
    let tree = f.tree();
    let badtags =
        String::from_utf8(fs::read(tree.join("v2/demo/badtags/tags/list")).unwrap()).unwrap();
    assert!(
        !badtags.contains("pwned") && !badtags.contains('$'),
        "{badtags}"
    );
    let catalog = String::from_utf8(fs::read(tree.join("v2/_catalog")).unwrap()).unwrap();
    for hostile in ["evil", "quo", "dollar", "Bad", "new", "escape"] {
        assert!(!catalog.contains(hostile), "{hostile} in {catalog}");
    }
    assert!(!tree.join("v2/evil}name/tags").exists());
}

// nginx

#[test]
fn nginx_refuses_an_unprepared_tree_names_what_is_missing_and_writes_nothing() {
    let f = fixture::build("basic", &[]);
    let out = f.dir.join("registry.conf");
    nginx(&f.tree())
        .args(["-o", out.to_str().unwrap()])
        .status(1)
        .stdout("")
        .stderr_contains("error: v2/_catalog: missing: `prepare` writes it")
        .stderr_contains("run `registrish-gen prepare")
        .stderr_contains("nothing written")
        .run();
    assert!(!out.exists());
    prepare(&f.tree());
    nginx(&f.tree()).stderr_lacks("prepare").run();
}

#[test]
fn nginx_refuses_a_tree_whose_tag_list_went_stale_after_prepare() {
    let f = prepared("basic");
    let tree = f.tree();
    let (name, tag, ..) = f.tags().into_iter().next().unwrap();
    let manifests = tree.join("v2").join(&name).join("manifests");
    fs::copy(manifests.join(&tag), manifests.join("added-later")).unwrap();
    nginx(&tree)
        .status(1)
        .stdout("")
        .stderr_contains(format!(
            "error: v2/{name}/tags/list: stale: `prepare` writes it"
        ))
        .run();
    prepare(&tree);
    let ran = nginx(&tree).run();
    assert!(ran.stdout.contains("added-later"), "{}", ran.stdout);
}

#[test]
fn nginx_renders_the_same_bytes_from_a_copy_of_the_tree_with_the_same_root_path() {
    let f = prepared("basic");
    let tree = f.tree();
    let copy = TempDir::new("copy");
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(&tree)
        .arg(copy.join("t"))
        .status()
        .unwrap();
    assert!(status.success());
    let root = tree.to_str().unwrap();
    let original = nginx(&tree).args(["--root-path", root]).run();
    nginx(&copy.join("t"))
        .args(["--root-path", root])
        .stdout(original.stdout)
        .run();
}

#[test]
fn nginx_lists_every_tag_and_digest_path_with_its_type_code() {
    let f = prepared("basic");
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
    // A repository too large for a table (see nginx.rs): 60 more tags of demo/hello's
    // manifest, so demo/hello has a row a path and the others a table each.
    let hello = f.tree().join("v2/demo/hello/manifests");
    for i in 0..60 {
        fs::copy(hello.join("latest"), hello.join(format!("extra-{i:02}"))).unwrap();
    }
    crate::support::run_bin_ok(["prepare", f.tree().to_str().unwrap()], f.dir.path());
    let conf = nginx(&f.tree()).run().stdout;
    let lists = |name: &str, reference: &str| {
        crate::support::nginx_lists(&conf, name, reference)
            .unwrap_or_else(|| panic!("{name} {reference} is not listed:\n{conf}"))
    };
    let mut found = BTreeSet::new();
    for (name, tag, digest, media_type, _) in f.tags() {
        let (value, tabled) = lists(&name, &tag);
        assert_eq!(
            value,
            format!("{}{digest}", codes[media_type.as_str()]),
            "{name}:{tag}"
        );
        assert_eq!(tabled, name != "demo/hello", "{name}:{tag}");
        found.insert(tabled);
    }
    for (name, digest, media_type, _) in f.manifests() {
        let (value, tabled) = lists(&name, &digest);
        assert_eq!(
            value,
            codes[media_type.as_str()].to_string(),
            "{name}@{digest}"
        );
        assert_eq!(tabled, name != "demo/hello", "{name}@{digest}");
    }
    assert_eq!(found.len(), 2, "tables and rows both");
    let (_, tabled) = lists("demo/hello", "extra-59");
    assert!(!tabled);
    assert_eq!(
        crate::support::nginx_lists(&conf, "demo/hello", "extra-60"),
        None
    );
    assert_eq!(
        crate::support::nginx_lists(&conf, "demo/oci", "latest"),
        None
    );
}

#[test]
fn nginx_serves_the_canonical_tree_on_the_listen_address() {
    let f = prepared("basic");
    let root = fs::canonicalize(f.tree()).unwrap();
    nginx(&f.tree())
        .stdout_contains(format!("root \"{}\";", root.display()))
        .stdout_contains("listen 127.0.0.1:8080;")
        .run();
}

#[test]
fn nginx_config_from_a_hostile_tree_holds_no_hostile_name() {
    let f = prepared("hostile");
    let mut case = nginx(&f.tree());
    for hostile in [
        "pwned", "$host", "t}", "a\"b", "evil", "quo\"te", "dollar", "new\n", "Bad", "escape",
        "weird", "notjson",
    ] {
        case = case.stdout_lacks(hostile);
    }
    case.run();
}

#[test]
fn nginx_keeps_tags_that_differ_only_by_case_apart_with_case_sensitive_keys() {
    let f = prepared("hostile");
    // demo/case is small: its table matches references exactly, case and all.
    let conf = nginx(&f.tree()).run().stdout;
    let upper = crate::support::nginx_lists(&conf, "demo/case", "Latest").unwrap();
    let lower = crate::support::nginx_lists(&conf, "demo/case", "latest").unwrap();
    assert!(upper.1 && lower.1);
    assert_ne!(upper.0, lower.0, "two manifests");
    assert_eq!(
        crate::support::nginx_lists(&conf, "demo/case", "LATEST"),
        None
    );
}

#[test]
fn nginx_reports_the_problems_of_a_hostile_tree_with_their_paths() {
    let f = prepared("hostile");
    nginx(&f.tree())
        .stderr_contains("v2/demo/badtags/manifests/x;return 200 pwned")
        .run();
}

#[test]
fn nginx_strict_refuses_a_hostile_tree_and_prints_no_config() {
    let f = fixture::build("hostile", &[]);
    nginx(&f.tree()).arg("--strict").status(1).stdout("").run();
}

// -o and --check

#[test]
fn output_flag_writes_the_config_to_the_file_and_prints_nothing() {
    let f = prepared("basic");
    let conf = f.dir.join("out/registry.conf");
    nginx(&f.tree()).arg("-o").arg(&conf).stdout("").run();
    let printed = nginx(&f.tree()).run();
    assert_eq!(fs::read_to_string(&conf).unwrap(), printed.stdout);
}

#[test]
fn check_flag_passes_on_an_up_to_date_file() {
    let f = prepared("basic");
    let conf = f.dir.join("registry.conf");
    fs::write(&conf, nginx(&f.tree()).run().stdout).unwrap();
    nginx(&f.tree()).arg("--check").arg(&conf).run();
}

#[test]
fn check_flag_fails_on_a_stale_file_and_leaves_it_alone() {
    let f = prepared("basic");
    let conf = f.dir.join("registry.conf");
    fs::write(&conf, b"# edited\n").unwrap();
    nginx(&f.tree())
        .arg("--check")
        .arg(&conf)
        .status(1)
        .stderr_contains("not what would be generated")
        .run();
    assert_eq!(fs::read(&conf).unwrap(), b"# edited\n");
}

#[test]
fn output_to_a_path_that_cannot_be_written_exits_two_and_keeps_the_old_file() {
    let f = prepared("basic");
    let out = f.dir.join("out");
    fs::create_dir_all(&out).unwrap();
    let conf = out.join("registry.conf");
    fs::write(&conf, b"# edited\n").unwrap();
    // A file where a directory should be.
    nginx(&f.tree())
        .arg("-o")
        .arg(conf.join("inner"))
        .status(2)
        .run();
    assert_eq!(fs::read(&conf).unwrap(), b"# edited\n");
    // No temp file left next to it.
    assert_eq!(fs::read_dir(&out).unwrap().count(), 1);
}

// registrish.toml

fn write_settings(f: &Fixture, text: &str) {
    fs::write(f.tree().join("registrish.toml"), text).unwrap();
}

#[test]
fn settings_file_sets_listen_server_name_and_tag_max_age() {
    let f = prepared("basic");
    write_settings(
        &f,
        "[nginx]\nlisten = \"127.0.0.1:9999\"\nserver_name = \"registry.example\"\n[cache]\ntag_max_age = 60\n",
    );
    Case::new()
        .tree(f.tree())
        .args(["nginx", TREE])
        .stdout_contains("listen 127.0.0.1:9999;")
        .stdout_contains("server_name registry.example;")
        .stdout_contains("max-age=60\"")
        .run();
}

#[test]
fn a_flag_wins_over_the_settings_file() {
    let f = prepared("basic");
    write_settings(&f, "[nginx]\nlisten = \"127.0.0.1:9999\"\n");
    Case::new()
        .tree(f.tree())
        .args(["nginx", TREE, "--listen", "127.0.0.1:7777"])
        .stdout_contains("listen 127.0.0.1:7777;")
        .run();
}

#[test]
fn an_unknown_settings_key_exits_two_names_it_and_prints_nothing() {
    let f = fixture::build("basic", &[]);
    write_settings(&f, "[nginx]\nlisen = \"x\"\n");
    Case::new()
        .tree(f.tree())
        .args(["nginx", TREE])
        .status(2)
        .stdout("")
        .stderr_contains("lisen")
        .run();
}

#[test]
fn values_that_would_inject_config_are_refused() {
    let f = prepared("basic");
    for (flag, value) in [
        ("--root-path", "/srv/$document_root"),
        ("--root-path", "/srv/x\"; return 200 pwned; #"),
        ("--listen", "80; return 200 pwned"),
        ("--server-name", "a;b"),
    ] {
        nginx(&f.tree())
            .args([flag, value])
            .status(2)
            .stdout("")
            .run();
    }
}

// --templates

fn templates_dir(f: &Fixture, nginx_template: &str) -> PathBuf {
    let dir = f.dir.join("templates");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("nginx.conf.tera"), nginx_template).unwrap();
    dir
}

#[test]
fn a_template_of_the_same_file_name_replaces_the_builtin_one() {
    let f = prepared("basic");
    // The frame prints each map's rows where it wants them; the rows have a template of
    // their own (nginx_map.tera), replaced the same way.
    let dir = templates_dir(
        &f,
        "# custom\n{% for rows in tables %}{{ rows | safe }}{% endfor %}{% for rows in manifest_maps %}{{ rows | safe }}{% endfor %}",
    );
    fs::write(
        dir.join("nginx_tables.tera"),
        "{% for t in tables %}{{ t.0 | token }} {{ t.1 | rewrite_table }}\n{% endfor %}",
    )
    .unwrap();
    let ran = nginx(&f.tree()).arg("--templates").arg(&dir).run();
    assert!(
        ran.stdout.starts_with("# custom\n/charts/hello ;0.1.0=o"),
        "{}",
        ran.stdout
    );
}

#[test]
fn a_custom_template_that_leaves_out_the_manifest_table_is_refused() {
    let f = prepared("basic");
    // Without the table nginx would serve no manifest; printed twice, a map would be defined
    // twice. Either way nothing is written.
    for frame in [
        "# custom\n",
        "{% for rows in manifest_maps %}{{ rows | safe }}{{ rows | safe }}{% endfor %}",
    ] {
        let dir = templates_dir(&f, frame);
        nginx(&f.tree())
            .arg("--templates")
            .arg(&dir)
            .status(2)
            .stdout("")
            .stderr_contains("must print each table once")
            .run();
    }
}

#[test]
fn a_custom_template_cannot_print_an_unsafe_value_through_token() {
    let f = prepared("basic");
    let dir = templates_dir(&f, "{{ \"a;b\" | token }}");
    nginx(&f.tree())
        .arg("--templates")
        .arg(&dir)
        .status(2)
        .stderr_contains("refusing")
        .run();
}

// netlify

#[test]
fn netlify_writes_headers_and_redirects_into_the_tree() {
    let f = prepared("basic");
    Case::new().tree(f.tree()).args(["netlify", TREE]).run();
    let headers = fs::read_to_string(f.tree().join("_headers")).unwrap();
    let redirects = fs::read_to_string(f.tree().join("_redirects")).unwrap();
    assert!(
        headers.contains("/v2/*\n  Docker-Distribution-API-Version: registry/2.0\n"),
        "{headers}"
    );
    assert!(
        redirects.contains(
            "/v2/:n1/:n2/:n3/manifests/:reference  /v2/_errors/manifest_unknown.json  404"
        ),
        "{redirects}"
    );
}

fn netlify_check(f: &Fixture) -> Case {
    Case::new()
        .tree(f.tree())
        .args(["netlify", TREE, "--check", TREE])
}

#[test]
fn netlify_check_passes_on_the_files_it_wrote() {
    let f = prepared("basic");
    Case::new().tree(f.tree()).args(["netlify", TREE]).run();
    netlify_check(&f).run();
}

#[test]
fn netlify_check_fails_when_the_redirects_differ() {
    let f = prepared("basic");
    Case::new().tree(f.tree()).args(["netlify", TREE]).run();
    fs::write(f.tree().join("_redirects"), "").unwrap();
    netlify_check(&f).status(1).run();
}

// cloudflare

fn cloudflare(tree: &Path) -> Case {
    Case::new().tree(tree).args(["cloudflare", TREE])
}

fn assert_no_site_written(tree: &Path) {
    for file in ["_worker.js", "_routes.json"] {
        assert!(!tree.join(file).exists(), "{file} written");
    }
}

#[test]
fn cloudflare_reports_a_symlinked_tag_and_still_writes_the_site() {
    let f = prepared("hostile");
    cloudflare(&f.tree())
        .stderr_contains(
            "v2/demo/hello/manifests/alias: a symlink: no host serves a file through one",
        )
        .run();
    for file in ["_worker.js", "_routes.json"] {
        assert!(f.tree().join(file).is_file(), "{file} not written");
    }
}

#[test]
fn cloudflare_refuses_a_blob_over_25_mib_and_writes_nothing() {
    let f = fixture::build("basic", &[]);
    plant_big_blob(&f);
    cloudflare(&f.tree())
        .status(1)
        .stderr_contains("26.0 MiB")
        .run();
    assert_no_site_written(&f.tree());
}

#[test]
fn cloudflare_refuses_more_files_than_max_files_and_writes_nothing() {
    let f = fixture::build("basic", &[]);
    cloudflare(&f.tree())
        .args(["--max-files", "10"])
        .status(1)
        .stderr_contains("too-many-files")
        .run();
    assert_no_site_written(&f.tree());
}

#[test]
fn cloudflare_refuses_a_headers_line_over_2000_characters_and_writes_nothing() {
    let f = fixture::build("basic", &[]);
    fs::write(
        f.tree().join("_headers"),
        format!("/x\n  X-Long: {}\n", "a".repeat(2001)),
    )
    .unwrap();
    cloudflare(&f.tree())
        .status(1)
        .stderr_contains("_headers:2")
        .run();
    assert_no_site_written(&f.tree());
}

#[test]
fn cloudflare_check_passes_on_the_files_it_wrote() {
    let f = prepared("basic");
    cloudflare(&f.tree()).run();
    cloudflare(&f.tree()).args(["--check", TREE]).run();
}

#[test]
fn cloudflare_check_fails_when_the_routes_differ() {
    let f = prepared("basic");
    cloudflare(&f.tree()).run();
    fs::write(f.tree().join("_routes.json"), "{}").unwrap();
    cloudflare(&f.tree())
        .args(["--check", TREE])
        .status(1)
        .run();
}

#[test]
fn cloudflare_output_dir_gets_the_worker_the_tree_gets() {
    let f = prepared("basic");
    cloudflare(&f.tree()).run();
    let site = f.dir.join("site");
    cloudflare(&f.tree()).arg("-o").arg(&site).run();
    assert_eq!(
        fs::read(site.join("_worker.js")).unwrap(),
        fs::read(f.tree().join("_worker.js")).unwrap()
    );
}

// The fixture

#[test]
fn committed_fixture_equals_the_builder_output() {
    let f = fixture::build("basic", &[]);
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/registry");
    let rel = |base: &Path| -> BTreeMap<PathBuf, Vec<u8>> {
        snapshot(base)
            .into_iter()
            .map(|(p, (b, _))| (p.strip_prefix(base).unwrap().to_path_buf(), b))
            .collect()
    };
    let built = rel(&f.tree());
    assert!(!built.is_empty());
    assert_eq!(
        rel(&committed),
        built,
        "rebuild with: python3 fixtures/build.py basic fixtures/registry"
    );
}

// --blobs-url (issue 12)

const BLOBS: &str = "https://blobs.example.org/mirror";

/// Every regular file under `dir`, relative, with its size.
fn files_under(dir: &Path) -> BTreeMap<String, u64> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e
                .path()
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (rel, e.metadata().unwrap().len())
        })
        .collect()
}

#[test]
fn cloudflare_blobs_url_writes_a_site_of_every_file_but_the_blobs() {
    use std::os::unix::fs::MetadataExt;
    let f = prepared("basic");
    let big = plant_big_blob(&f);
    let site = f.dir.join("site");
    let site_s = site.to_str().unwrap().to_string();
    // Without the redirect, the 26 MiB blob is more than Pages takes.
    cloudflare(&f.tree())
        .args(["-o", &site_s])
        .status(1)
        .stderr_contains("Pages refuses files over 25 MiB")
        .run();
    cloudflare(&f.tree())
        .args(["--blobs-url", BLOBS, "-o", &site_s])
        .stderr_contains("no blobs (they are served from https://blobs.example.org/mirror)")
        .run();
    let files = files_under(&site);
    assert!(files.values().all(|&n| n <= 25 * 1024 * 1024), "{files:?}");
    assert!(!files.keys().any(|p| p.contains("/blobs/")), "{files:?}");
    assert!(!site.join(big.strip_prefix(f.tree()).unwrap()).exists());
    // Every manifest by tag and by digest, the lists, the bodies: hard links of the tree's.
    let mut want = vec![
        "v2/_catalog".to_string(),
        "v2/index.html".into(),
        "v2/_errors/manifest_unknown.json".into(),
        "_worker.js".into(),
        "_routes.json".into(),
    ];
    for (name, tag, digest, _, _) in f.tags() {
        want.push(format!("v2/{name}/manifests/{tag}"));
        want.push(format!("v2/{name}/manifests/{digest}"));
        want.push(format!("v2/{name}/tags/list"));
    }
    for (name, digest, _, _) in f.manifests() {
        want.push(format!("v2/{name}/manifests/{digest}"));
    }
    for (name, subject, _) in f.referrers() {
        want.push(format!("v2/{name}/referrers/{subject}"));
    }
    want.push("v2/_referrers_empty.json".into());
    for rel in &want {
        assert!(files.contains_key(rel), "{rel} not in the site: {files:?}");
        if rel.starts_with("v2/") {
            let (a, b) = (
                fs::metadata(f.tree().join(rel)).unwrap(),
                fs::metadata(site.join(rel)).unwrap(),
            );
            assert_eq!(
                (a.dev(), a.ino()),
                (b.dev(), b.ino()),
                "{rel} is not a hard link"
            );
        }
    }
    let worker = fs::read_to_string(site.join("_worker.js")).unwrap();
    assert!(worker.contains(r#"const BLOBS_URL = "https://blobs.example.org/mirror";"#));
    // The site as Pages would judge it: no blob counts.
    Case::new()
        .tree(f.tree())
        .args(["check", TREE, "--host", "cloudflare", "--blobs-url", BLOBS])
        .stdout_lacks("file-too-large")
        .run();
    // A second run changes nothing; a stale or extra file in the site is fixed, and
    // `--check` sees both.
    cloudflare(&f.tree())
        .args(["--blobs-url", BLOBS, "-o", &site_s])
        .stderr_contains(format!(
            "0 files linked, 0 copied, {} unchanged, 0 removed",
            files.keys().filter(|p| p.starts_with("v2/")).count()
        ))
        .run();
    let (name, tag, ..) = f.tags().into_iter().next().unwrap();
    fs::remove_file(site.join(format!("v2/{name}/manifests/{tag}"))).unwrap();
    fs::write(site.join(format!("v2/{name}/blobs-leftover")), "x").unwrap();
    cloudflare(&f.tree())
        .args(["--blobs-url", BLOBS, "--check", &site_s])
        .status(1)
        .stderr_contains("is out of date")
        .run();
    cloudflare(&f.tree())
        .args(["--blobs-url", BLOBS, "-o", &site_s])
        .stderr_contains(format!(
            "1 files linked, 0 copied, {} unchanged, 1 removed",
            files.keys().filter(|p| p.starts_with("v2/")).count() - 1
        ))
        .run();
    cloudflare(&f.tree())
        .args(["--blobs-url", BLOBS, "--check", &site_s])
        .run();
}

#[test]
fn blobs_url_needs_a_site_of_its_own_on_hosts_that_deploy_a_directory() {
    let f = prepared("basic");
    for host in ["cloudflare", "netlify"] {
        Case::new()
            .tree(f.tree())
            .args([host, TREE, "--blobs-url", BLOBS])
            .status(2)
            .stderr_contains("give -o SITE")
            .run();
        Case::new()
            .tree(f.tree())
            .args([
                host,
                TREE,
                "--blobs-url",
                BLOBS,
                "-o",
                &format!("{TREE}/v2/site"),
            ])
            .status(2)
            .stderr_contains("not TREE or inside TREE/v2")
            .run();
    }
    assert!(!f.tree().join("v2/site").exists());
}

#[test]
fn blobs_url_is_refused_where_blobs_cannot_be_redirected_and_checked_everywhere() {
    let f = prepared("basic");
    Case::new()
        .tree(f.tree())
        .args(["s3", TREE, "--bucket", "b", "--blobs-url", BLOBS])
        .status(2)
        .stderr_contains("s3 serves blobs itself; the hosts that redirect them are nginx, netlify, cloudflare, apache, caddy")
        .run();
    for bad in [
        "blobs.example.org",
        "https://blobs.example.org/a;return 200 x",
        "https://blobs.example.org/$uri",
        "https://b.example.org/\"x",
    ] {
        nginx(&f.tree())
            .args(["--blobs-url", bad])
            .status(2)
            .stdout("")
            .stderr_contains("--blobs-url")
            .run();
    }
    // `[blobs] url` in the settings file: used by the hosts that redirect, ignored by the
    // upload scripts (which may be what fills that origin).
    fs::write(
        f.tree().join("registrish.toml"),
        format!("[blobs]\nurl = \"{BLOBS}\"\n"),
    )
    .unwrap();
    nginx(&f.tree())
        .stdout_contains(format!("return 307 {BLOBS}$uri;"))
        .run();
    Case::new()
        .tree(f.tree())
        .args(["s3", TREE, "--bucket", "b"])
        .stdout_contains("order across two origins")
        .run();
}

#[test]
fn s3_only_blobs_uploads_the_blobs_alone() {
    let f = prepared("basic");
    let ran = Case::new()
        .tree(f.tree())
        .args(["s3", TREE, "--bucket", "b", "--only", "blobs"])
        .run();
    let plan: Vec<&str> = ran
        .stdout
        .split("REGISTRISH_PLAN\n")
        .nth(1)
        .unwrap()
        .lines()
        .collect();
    let blobs: usize = f.blobs().len();
    assert_eq!(plan.len(), blobs, "{plan:?}");
    assert!(
        plan.iter()
            .all(|l| l.starts_with("1 v2/") && l.contains("/blobs/sha256:"))
    );
    assert!(
        ran.stdout
            .contains("next: deploy the site that redirects blobs here")
    );
    assert!(!ran.stdout.contains("\nfinish_upload\n"));
}
