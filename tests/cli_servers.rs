//! The `apache` and `caddy` commands' output contracts: deterministic bytes, `--check`, `-o`,
//! settings, hostile trees and hostile flag values, one behaviour a test. Loading and serving
//! the output lives in e2e_apache.rs and e2e_caddy.rs.

use crate::support::case::{Case, TREE};
use crate::support::fixture::{self, Fixture};
use std::fs;

/// Each form of output: the `.htaccess`, the `<VirtualHost>` and the Caddy site block.
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

/// `registrish-gen COMMAND[0] TREE COMMAND[1..]`.
fn generate(f: &Fixture, command: &[&str]) -> Case {
    Case::new()
        .tree(f.tree())
        .args([command[0], TREE])
        .args(&command[1..])
}

fn prepared(kind: &str) -> Fixture {
    let f = fixture::build(kind, &[]);
    Case::new().tree(f.tree()).args(["prepare", TREE]).run();
    f
}

#[test]
fn apache_and_caddy_print_the_same_bytes_every_run() {
    let f = prepared("basic");
    for command in COMMANDS {
        let first = generate(&f, command).run();
        generate(&f, command).stdout(first.stdout).run();
    }
}

#[test]
fn apache_and_caddy_tables_list_every_tag_with_its_digest() {
    let f = prepared("basic");
    for command in COMMANDS {
        let mut case = generate(&f, command);
        for (name, tag, digest, _, _) in f.tags() {
            case = case.stdout_contains(digest.trim_start_matches("sha256:"));
            case = if command[0] == "caddy" {
                case.stdout_contains(format!("/v2/{name}/manifests/{tag} "))
            } else {
                case.stdout_contains(format!(";{tag}="))
                    .stdout_contains(format!("={name}\n"))
            };
        }
        case.run();
    }
}

#[test]
fn apache_and_caddy_output_flag_writes_what_stdout_would_get_and_prints_nothing() {
    let f = prepared("basic");
    for (i, command) in COMMANDS.iter().enumerate() {
        let file = f.dir.join(format!("out{i}/config"));
        generate(&f, command).arg("-o").arg(&file).stdout("").run();
        let printed = generate(&f, command).run();
        assert_eq!(
            fs::read_to_string(&file).unwrap(),
            printed.stdout,
            "{command:?}"
        );
    }
}

#[test]
fn apache_and_caddy_check_flag_passes_on_an_up_to_date_file() {
    let f = prepared("basic");
    for (i, command) in COMMANDS.iter().enumerate() {
        let file = f.dir.join(format!("config{i}"));
        fs::write(&file, generate(&f, command).run().stdout).unwrap();
        generate(&f, command).arg("--check").arg(&file).run();
    }
}

#[test]
fn apache_and_caddy_check_flag_fails_on_a_stale_file_and_leaves_it_alone() {
    let f = prepared("basic");
    for (i, command) in COMMANDS.iter().enumerate() {
        let file = f.dir.join(format!("config{i}"));
        fs::write(&file, b"# edited\n").unwrap();
        generate(&f, command)
            .arg("--check")
            .arg(&file)
            .status(1)
            .stderr_contains("not what would be generated")
            .run();
        assert_eq!(fs::read(&file).unwrap(), b"# edited\n", "{command:?}");
    }
}

fn with_settings() -> Fixture {
    let f = prepared("basic");
    fs::write(
        f.tree().join("registrish.toml"),
        "[caddy]\nlisten = \"127.0.0.1:7001\"\n[apache]\nserver_name = \"from.toml\"\n[cache]\ntag_max_age = 60\n",
    )
    .unwrap();
    f
}

#[test]
fn caddy_takes_listen_and_tag_max_age_from_the_settings_file() {
    let f = with_settings();
    generate(&f, &["caddy"])
        .stdout_contains("\n:7001 {\n\tbind 127.0.0.1\n")
        .stdout_contains("max-age=60\"")
        .run();
}

#[test]
fn apache_server_name_flag_wins_over_the_settings_file() {
    let f = with_settings();
    generate(&f, &["apache", "--vhost", "--server-name", "flag.test"])
        .stdout_contains("ServerName flag.test\n")
        .run();
}

#[test]
fn apache_vhost_without_listen_is_a_port_80_virtual_host_with_no_listen_line() {
    let f = with_settings();
    generate(&f, &["apache", "--vhost"])
        .stdout_contains("<VirtualHost *:80>")
        .stdout_lacks("\nListen ")
        .run();
}

#[test]
fn apache_and_caddy_configs_from_a_hostile_tree_hold_no_hostile_name() {
    let f = prepared("hostile");
    for command in COMMANDS {
        let mut case = generate(&f, command);
        for hostile in [
            // `t}` as a path or table entry (Caddy's own placeholders end in `}`).
            "pwned", "$host", "/t}", ";t}", "a\"b", "evil", "quo\"te", "dollar", "new\n", "Bad",
            "weird", "notjson",
        ] {
            case = case.stdout_lacks(hostile);
        }
        case.run();
    }
}

#[test]
fn apache_and_caddy_list_both_tags_that_differ_only_by_case() {
    let f = prepared("hostile");
    for command in COMMANDS {
        let (latest, upper) = if command[0] == "caddy" {
            (
                "/v2/demo/case/manifests/latest ",
                "/v2/demo/case/manifests/Latest ",
            )
        } else {
            (";latest=", ";Latest=")
        };
        generate(&f, command)
            .stdout_contains(latest)
            .stdout_contains(upper)
            .run();
    }
}

#[test]
fn apache_and_caddy_report_the_problems_of_a_hostile_tree_with_their_paths() {
    let f = prepared("hostile");
    for command in COMMANDS {
        generate(&f, command)
            .stderr_contains("v2/demo/badtags/manifests/x;return 200 pwned")
            .run();
    }
}

#[test]
fn apache_and_caddy_strict_refuse_a_hostile_tree_and_print_no_config() {
    let f = prepared("hostile");
    for command in COMMANDS {
        generate(&f, command)
            .arg("--strict")
            .status(1)
            .stdout("")
            .run();
    }
}

#[test]
fn values_that_would_inject_config_are_refused() {
    let f = fixture::build("basic", &[]);
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
        generate(&f, args).status(2).stdout("").run();
    }
}
