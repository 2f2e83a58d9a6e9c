//! The `apache` and `caddy` commands' output contracts: deterministic bytes, `--check`,
//! `-o`, hostile trees and hostile flag values. Serving lives in e2e_apache.rs and
//! e2e_caddy.rs.

use crate::support::servers::{ApacheSite, apache_test_config, caddy_validate_config};
use crate::support::{fixture, free_port, run_bin};
use std::fs;
use std::path::Path;

fn code(out: &std::process::Output) -> i32 {
    out.status.code().expect("exited")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn generate(tree: &Path, command: &[&str]) -> std::process::Output {
    let mut args = vec![command[0], tree.to_str().unwrap()];
    args.extend(&command[1..]);
    run_bin(&args, tree)
}

const COMMANDS: &[&[&str]] = &[
    &["apache"],
    &[
        "apache",
        "--vhost",
        "--listen",
        "127.0.0.1:5080",
        "--server-name",
        "registry.test",
    ],
    &["caddy", "--listen", "127.0.0.1:5080"],
];

#[test]
fn output_is_deterministic_written_atomically_and_checkable() {
    let f = fixture::build("basic", &[]);
    let tree = f.tree();
    run_bin(["prepare", tree.to_str().unwrap()], &tree);
    for (i, command) in COMMANDS.iter().enumerate() {
        let first = generate(&tree, command);
        assert_eq!(code(&first), 0, "{command:?}: {}", text(&first.stderr));
        assert_eq!(first.stdout, generate(&tree, command).stdout, "{command:?}");
        // Every manifest path of the fixture is in the table.
        let out = text(&first.stdout);
        for (name, tag, digest, _, _) in f.tags() {
            let hex = digest.trim_start_matches("sha256:");
            let listed = if command[0] == "caddy" {
                out.contains(&format!("/v2/{name}/manifests/{tag} "))
            } else {
                out.contains(&format!(";{tag}=")) && out.contains(&format!("={name}\n"))
            };
            assert!(listed, "{command:?} lacks {name}:{tag}");
            assert!(out.contains(hex), "{command:?} lacks {digest}");
        }

        let file = f.dir.join(format!("out{i}/config"));
        let mut args: Vec<&str> = command.to_vec();
        args.extend(["-o", file.to_str().unwrap()]);
        let out = generate(&tree, &args);
        assert_eq!(code(&out), 0, "{}", text(&out.stderr));
        assert!(out.stdout.is_empty());
        assert_eq!(fs::read(&file).unwrap(), first.stdout);

        let mut check: Vec<&str> = command.to_vec();
        check.extend(["--check", file.to_str().unwrap()]);
        assert_eq!(code(&generate(&tree, &check)), 0, "{command:?}");
        fs::write(&file, b"# edited\n").unwrap();
        let out = generate(&tree, &check);
        assert_eq!(code(&out), 1, "{command:?}");
        assert!(text(&out.stderr).contains("not what would be generated"));
        assert_eq!(fs::read(&file).unwrap(), b"# edited\n");
    }
    // Settings come from registrish.toml too; flags win.
    fs::write(
        tree.join("registrish.toml"),
        "[caddy]\nlisten = \"127.0.0.1:7001\"\n[apache]\nserver_name = \"from.toml\"\n[cache]\ntag_max_age = 60\n",
    )
    .unwrap();
    let caddy = text(&generate(&tree, &["caddy"]).stdout);
    assert!(caddy.contains("\n:7001 {\n\tbind 127.0.0.1\n"), "{caddy}");
    assert!(caddy.contains("max-age=60\""));
    let apache =
        text(&generate(&tree, &["apache", "--vhost", "--server-name", "flag.test"]).stdout);
    assert!(apache.contains("ServerName flag.test\n"), "{apache}");
    assert!(apache.contains("<VirtualHost *:80>") && !apache.contains("\nListen "));
}

#[test]
fn configs_from_a_hostile_tree_hold_no_hostile_name_and_load() {
    let f = fixture::build("hostile", &[]);
    let tree = f.tree();
    run_bin(["prepare", tree.to_str().unwrap()], &tree);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    for command in [
        vec!["apache"],
        vec!["apache", "--vhost", "--listen", &listen],
        vec!["caddy", "--listen", &listen],
    ] {
        let out = generate(&tree, &command);
        assert_eq!(code(&out), 0, "{}", text(&out.stderr));
        let conf = text(&out.stdout);
        for hostile in [
            // `t}` as a path or table entry (Caddy's own placeholders end in `}`).
            "pwned", "$host", "/t}", ";t}", "a\"b", "evil", "quo\"te", "dollar", "new\n", "Bad",
            "weird", "notjson",
        ] {
            assert!(!conf.contains(hostile), "{hostile:?} reached {command:?}");
        }
        // Tags that differ only by case are both listed, exactly.
        let (latest, upper) = if command[0] == "caddy" {
            (
                "/v2/demo/case/manifests/latest ",
                "/v2/demo/case/manifests/Latest ",
            )
        } else {
            (";latest=", ";Latest=")
        };
        assert!(conf.contains(latest) && conf.contains(upper), "{command:?}");
        assert!(
            text(&out.stderr).contains("v2/demo/badtags/manifests/x;return 200 pwned"),
            "{}",
            text(&out.stderr)
        );
        // --strict writes nothing.
        let mut strict = command.clone();
        strict.push("--strict");
        let out = generate(&tree, &strict);
        assert_eq!(code(&out), 1);
        assert!(out.stdout.is_empty());
        // The host itself accepts it.
        let path = f.dir.join("generated.conf");
        fs::write(&path, &conf).unwrap();
        let (ok, log) = match command[..] {
            ["apache"] => (true, String::new()),
            ["apache", ..] => apache_test_config(ApacheSite::Vhost { conf: &path }, port),
            _ => caddy_validate_config(&path),
        };
        assert!(ok, "{command:?}: {log}");
    }
}

#[test]
fn values_that_would_inject_config_are_refused() {
    let f = fixture::build("basic", &[]);
    let tree = f.tree();
    let cases: &[&[&str]] = &[
        &["apache", "--vhost", "--listen", "80\n<Directory />"],
        &["apache", "--vhost", "--listen", "127.0.0.1:80 https"],
        &["apache", "--vhost", "--listen", "${PORT}"],
        &["apache", "--vhost", "--server-name", "a b"],
        &["apache", "--vhost", "--server-name", "x>\n<Directory />"],
        &["apache", "--vhost", "--server-name", "*.example.org"],
        &["apache", "--vhost", "--root-path", "/srv/x\" \"/etc"],
        &["apache", "--vhost", "--root-path", "/srv/${HOME}"],
        &["apache", "--vhost", "--root-path", "/srv/*"],
        &["apache", "--vhost", "--root-path", "srv"],
        // Address and root only make sense for a <VirtualHost>.
        &["apache", "--listen", "127.0.0.1:80"],
        &["apache", "--root-path", "/srv"],
        &["caddy", "--listen", "80 {"],
        &["caddy", "--listen", ":80}"],
        &["caddy", "--listen", "{$PORT}"],
        &["caddy", "--server-name", "a{path}"],
        &["caddy", "--server-name", "a\nb"],
        &["caddy", "--root-path", "/srv/{path}"],
        &["caddy", "--root-path", "/srv/\"x"],
        &["caddy", "--root-path", "/srv/x\\"],
    ];
    for args in cases {
        let out = generate(&tree, args);
        assert_eq!(code(&out), 2, "{args:?}: {}", text(&out.stderr));
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}
