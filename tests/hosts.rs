//! What the host table promises: every host is judged by `check --host`, a template override
//! breaks only its own host, and the grammar reaches the Cloudflare worker spelled exactly.

use crate::support::{fixture, run_bin, run_bin_ok};
use std::fs;
use std::process::Command;

/// Every host command, as `registrish-gen --help` lists them.
fn host_commands() -> Vec<String> {
    let help = String::from_utf8(run_bin_ok(["--help"], std::path::Path::new(".")).stdout).unwrap();
    let mut out = Vec::new();
    let mut in_commands = false;
    for line in help.lines() {
        if line.starts_with("Commands:") {
            in_commands = true;
            continue;
        }
        if in_commands {
            let Some(word) = line.split_whitespace().next() else {
                break;
            };
            if ![
                "import",
                "check",
                "prepare",
                "probe",
                "rm",
                "gc",
                "cloudflare-credentials",
                "completions",
                "man",
                "help",
            ]
            .contains(&word)
            {
                out.push(word.to_string());
            }
        }
    }
    out
}

#[test]
fn check_host_judges_the_tree_for_every_host() {
    let hosts = host_commands();
    for expected in [
        "nginx",
        "netlify",
        "cloudflare",
        "s3",
        "storj",
        "apache",
        "caddy",
        "headers",
    ] {
        assert!(
            hosts.iter().any(|h| h == expected),
            "{expected} in {hosts:?}"
        );
    }
    let f = fixture::build("basic", &[]);
    let tree = f.tree();
    let tree = tree.to_str().unwrap();
    run_bin_ok(["prepare", tree], f.dir.path());
    for host in &hosts {
        let out = run_bin(["check", tree, "--host", host], f.dir.path());
        assert_eq!(
            out.status.code(),
            Some(0),
            "check --host {host}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let out = run_bin(["check", tree, "--host", "nosuchhost"], f.dir.path());
    assert_eq!(out.status.code(), Some(2));
}

/// One rule for every host, tested once: a tree whose prepared files are missing (never
/// prepared), stale (a tag added since) or swapped for a symlink gets no output from any
/// host, exit 1, with the path and the command that fixes it; and nothing in the tree or
/// the output directory is written.
#[test]
fn every_host_refuses_a_tree_prepare_has_not_completed_and_writes_nothing() {
    let f = fixture::build("basic", &[]);
    let tree = f.tree();
    let tree_s = tree.to_str().unwrap();
    let (name, tag, ..) = f.tags().into_iter().next().unwrap();
    let list = format!("v2/{name}/tags/list");
    // The upload hosts need a bucket before they judge anything.
    fs::write(
        tree.join("registrish.toml"),
        "[s3]\nbucket = \"b\"\n[storj]\nbucket = \"b\"\n",
    )
    .unwrap();
    let cases: [(&str, &dyn Fn(), String); 3] = [
        (
            "never prepared",
            &|| {},
            "error: v2/_catalog: missing".to_string(),
        ),
        (
            "a tag added after prepare",
            &|| {
                run_bin_ok(["prepare", tree_s], f.dir.path());
                let m = tree.join("v2").join(&name).join("manifests");
                fs::copy(m.join(&tag), m.join("added-later")).unwrap();
            },
            format!("error: {list}: stale"),
        ),
        (
            "a tag list swapped for a symlink",
            &|| {
                run_bin_ok(["prepare", tree_s], f.dir.path());
                fs::remove_file(tree.join(&list)).unwrap();
                std::os::unix::fs::symlink("/etc/passwd", tree.join(&list)).unwrap();
            },
            format!("error: {list}: not a regular file"),
        ),
    ];
    for (what, setup, expected) in cases {
        setup();
        let before = crate::support::snapshot(&tree);
        for host in host_commands() {
            let site = f.dir.join(format!("site-{host}"));
            let out = run_bin(
                [host.as_str(), tree_s, "-o", site.to_str().unwrap()],
                f.dir.path(),
            );
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{host}, {what}: {stderr}");
            assert!(out.stdout.is_empty(), "{host}, {what}: printed output");
            assert!(stderr.contains(&expected), "{host}, {what}: {stderr}");
            assert!(
                stderr.contains(&format!("run `registrish-gen prepare {tree_s}` first")),
                "{host}, {what}: {stderr}"
            );
            assert!(!site.exists(), "{host}, {what}: wrote {}", site.display());
            assert_eq!(
                crate::support::snapshot(&tree),
                before,
                "{host}, {what}: wrote into TREE"
            );
        }
        // Undo the case's planting for the next one.
        let m = tree.join("v2").join(&name).join("manifests");
        let _ = fs::remove_file(m.join("added-later"));
        let _ = fs::remove_file(tree.join(&list));
    }
}

#[test]
fn a_broken_template_override_breaks_only_its_own_host() {
    let f = fixture::build("basic", &[]);
    let tree = f.tree();
    let tree = tree.to_str().unwrap();
    run_bin_ok(["prepare", tree], f.dir.path());
    let templates = f.dir.join("templates");
    fs::create_dir_all(&templates).unwrap();
    fs::write(templates.join("caddyfile.tera"), "{% if %}broken").unwrap();
    let dir = templates.to_str().unwrap();
    let nginx = run_bin(["nginx", tree, "--templates", dir], f.dir.path());
    assert_eq!(
        nginx.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&nginx.stderr)
    );
    assert!(String::from_utf8_lossy(&nginx.stdout).contains("map $uri $registrish_manifest"));
    let caddy = run_bin(["caddy", tree, "--templates", dir], f.dir.path());
    assert_eq!(caddy.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&caddy.stderr).contains("invalid template"));
}

/// The worker spells the grammar as JavaScript regex literals; node runs them over strings
/// whose verdicts are known from the distribution spec.
#[test]
fn the_worker_regexes_accept_exactly_the_grammar() {
    let f = fixture::build("basic", &[]);
    let tree = f.tree();
    let site = f.dir.join("site");
    run_bin_ok(["prepare", tree.to_str().unwrap()], f.dir.path());
    run_bin_ok(
        [
            "cloudflare",
            tree.to_str().unwrap(),
            "-o",
            site.to_str().unwrap(),
        ],
        f.dir.path(),
    );
    let worker = fs::read_to_string(site.join("_worker.js")).unwrap();
    let regex = |name: &str| -> String {
        let prefix = format!("const {name} = ");
        let line = worker
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no {name} in the worker"));
        line[prefix.len()..].trim_end_matches(';').to_string()
    };
    let hex = "a".repeat(64);
    // (string, name, tag, digest)
    let vectors: Vec<(String, bool, bool, bool)> = vec![
        ("demo/hello".into(), true, false, false),
        ("a.b_c__d---e/x0".into(), true, false, false),
        ("latest".into(), true, true, false),
        ("Latest".into(), false, true, false),
        ("_x".into(), false, true, false),
        ("a___b".into(), false, true, false),
        ("a//b".into(), false, false, false),
        ("-a".into(), false, false, false),
        (".x".into(), false, false, false),
        ("a;b".into(), false, false, false),
        ("a\nb".into(), false, false, false),
        (format!("a{}", "b".repeat(127)), true, true, false),
        (format!("a{}", "b".repeat(128)), true, false, false),
        (format!("sha256:{hex}"), false, false, true),
        (format!("sha256:{}", "A".repeat(64)), false, false, false),
        (format!("sha256:{hex}0"), false, false, false),
    ];
    let script = format!(
        "const NAME = {}; const TAG = {}; const DIGEST = {};\n\
         const v = {};\n\
         const bad = v.filter(([s, n, t, d]) => NAME.test(s) !== n || TAG.test(s) !== t || DIGEST.test(s) !== d);\n\
         console.log(JSON.stringify(bad)); process.exit(bad.length ? 1 : 0);\n",
        regex("NAME"),
        regex("TAG"),
        regex("DIGEST"),
        serde_json::to_string(&vectors).unwrap()
    );
    let path = f.dir.join("grammar.mjs");
    fs::write(&path, script).unwrap();
    let out = crate::support::process::run(Command::new("node").arg(&path));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
}

/// Apache in `.htaccess` mode reads every `.htaccess` on a request's way: one planted under
/// the tree (or a `.htpasswd`) makes `apache` refuse to write; `--vhost` reads none.
#[test]
fn apache_htaccess_mode_refuses_a_tree_holding_another_htaccess() {
    for planted in [
        "v2/demo/hello/.htaccess",
        "v2/.htpasswd",
        "static/.htaccess",
    ] {
        let f = fixture::build("basic", &[]);
        let tree = f.tree();
        let tree_s = tree.to_str().unwrap();
        run_bin_ok(["prepare", tree_s], f.dir.path());
        let file = tree.join(planted);
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        fs::write(&file, "RewriteEngine Off\n").unwrap();
        let out_file = tree.join(".htaccess");
        let out = run_bin(
            ["apache", tree_s, "-o", out_file.to_str().unwrap()],
            f.dir.path(),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{planted}: {stderr}");
        assert!(stderr.contains(&format!("error: {planted}: ")), "{stderr}");
        assert!(
            stderr.contains("[foreign-config]") && stderr.contains("nothing written"),
            "{stderr}"
        );
        assert!(!out_file.exists(), "{planted}: wrote the .htaccess anyway");
        // Its own output at TREE/.htaccess is no reason to refuse, and --vhost reads none.
        fs::remove_file(&file).unwrap();
        run_bin_ok(
            ["apache", tree_s, "-o", out_file.to_str().unwrap()],
            f.dir.path(),
        );
        run_bin_ok(
            ["apache", tree_s, "-o", out_file.to_str().unwrap()],
            f.dir.path(),
        );
        fs::write(&file, "RewriteEngine Off\n").unwrap();
        run_bin_ok(["apache", tree_s, "--vhost"], f.dir.path());
        let check = run_bin(["check", tree_s, "--host", "apache"], f.dir.path());
        assert_eq!(check.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&check.stdout).contains("[foreign-config]"));
    }
}

/// Issue 10, finding 1: Apache follows a directory symlink anywhere on a path (its `-l` test
/// sees only the last component), so a tree holding one is refused in both modes; hosts that
/// check every component at request time (nginx) serve the rest.
#[test]
fn apache_refuses_a_tree_holding_a_directory_symlink() {
    let f = fixture::build("basic", &[]);
    let tree = f.tree();
    let tree_s = tree.to_str().unwrap();
    run_bin_ok(["prepare", tree_s], f.dir.path());
    let elsewhere = f.dir.join("elsewhere");
    fs::create_dir_all(elsewhere.join("secret/blobs")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, tree.join("v2/extns")).unwrap();
    for args in [vec!["apache", tree_s], vec!["apache", tree_s, "--vhost"]] {
        let out = run_bin(&args, f.dir.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("error: v2/extns: ") && stderr.contains("nothing written"),
            "{stderr}"
        );
        assert!(out.stdout.is_empty());
    }
    let nginx = run_bin_ok(["nginx", tree_s], f.dir.path());
    assert!(!nginx.stdout.is_empty());
    let check = run_bin(["check", tree_s], f.dir.path());
    assert!(String::from_utf8_lossy(&check.stdout).contains("warning: v2/extns: a symlink"));
}

/// Issue 10, finding 4: a file prepare owns swapped for a symlink out of the tree makes every
/// host command refuse to write (a host that follows symlinks would serve its target), `check`
/// calls it an error, and `prepare` replaces the link with the real file.
#[test]
fn a_prepared_file_swapped_for_a_symlink_stops_every_host_until_prepare() {
    let f = fixture::build("basic", &[]);
    let tree = f.tree();
    let tree_s = tree.to_str().unwrap();
    run_bin_ok(["prepare", tree_s], f.dir.path());
    let secret = f.dir.join("secret");
    fs::write(&secret, "canary-4").unwrap();
    let catalog = tree.join("v2/_catalog");
    fs::remove_file(&catalog).unwrap();
    std::os::unix::fs::symlink(&secret, &catalog).unwrap();
    for host in ["nginx", "caddy", "apache", "headers"] {
        let out = run_bin([host, tree_s], f.dir.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{host}: {stderr}");
        assert!(
            stderr.contains("error: v2/_catalog: not a regular file"),
            "{host}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{host} wrote output");
    }
    let check = run_bin(["check", tree_s], f.dir.path());
    assert_eq!(check.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&check.stdout).contains("[not-regular-file]"));
    run_bin_ok(["prepare", tree_s], f.dir.path());
    let meta = fs::symlink_metadata(&catalog).unwrap();
    assert!(meta.file_type().is_file(), "prepare replaced the link");
    assert_eq!(
        fs::read_to_string(&secret).unwrap(),
        "canary-4",
        "the target is untouched"
    );
    run_bin_ok(["nginx", tree_s], f.dir.path());
}
