//! The crate as users get it (issue 17): `cargo package` of this repository, then `cargo
//! install` from the packaged sources alone, and the installed binary run on the committed
//! fixture; and the man page rendered by `man`. (Completions and the help examples are in the
//! fast set, tests/ship.rs.)

use crate::support::{TempDir, process, run_bin_ok};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The cargo running this suite, in the repository, with its own target directory given by
/// each call (never the suite's, which the running `cargo test` holds).
fn cargo(args: &[&str]) -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.args(args)
        .current_dir(repo())
        .env_remove("CARGO_TARGET_DIR");
    cmd
}

/// `cargo package` (of the working tree: `--allow-dirty`, so uncommitted work is what gets
/// packaged and tested; CI packages a clean clone), then `cargo install --path` on the
/// extracted `.crate`, offline and `--locked` (the registry sources are in cargo's cache once
/// the suite is built). `--debug`: the dev profile builds the packaged sources in about a
/// fifth of the release build's time here (99 s against 489 s from scratch on 2 shared
/// cores); the dependencies are built once into `CARGO_TARGET_TMPDIR` and reused by later
/// runs, while the packaged crate itself, at a new path every run, is always built again.
#[test]
fn the_packaged_crate_installs_from_its_own_sources_and_runs() {
    let list = text(
        &process::run(&mut cargo(&[
            "package",
            "--list",
            "--allow-dirty",
            "--offline",
        ]))
        .stdout,
    );
    let files: Vec<&str> = list.lines().collect();
    for needed in [
        "Cargo.toml",
        "Cargo.lock",
        "README.md",
        "LICENSE-MIT",
        "LICENSE-APACHE",
        "src/main.rs",
        "src/docs.rs",
        "templates/nginx.conf.tera",
    ] {
        assert!(files.contains(&needed), "package lacks {needed}:\n{list}");
    }
    for file in &files {
        assert!(
            !file.starts_with("fixtures/") && !file.starts_with("tests/") && !file.contains(':'),
            "package holds {file}"
        );
    }

    let work = TempDir::new("ship-pkg");
    let target = work.join("target");
    process::run(&mut cargo(&[
        "package",
        "--allow-dirty",
        "--no-verify",
        "--offline",
        "--target-dir",
        target.to_str().unwrap(),
    ]));
    let crate_file = target.join(format!("package/registrish-gen-{VERSION}.crate"));
    let sources = work.join("src");
    fs::create_dir_all(&sources).unwrap();
    // `-m`: the files get the time of extraction, not the tarball's. The install's target dir
    // is kept between runs (for the dependencies), and a temp path seen before with sources
    // older than its last build would make cargo keep a stale binary (seen here).
    process::run(
        Command::new("tar")
            .arg("-mxzf")
            .arg(&crate_file)
            .arg("-C")
            .arg(&sources),
    );
    let unpacked = sources.join(format!("registrish-gen-{VERSION}"));
    // Nothing outside the package: the build cannot reach the repository.
    assert!(!unpacked.join("fixtures").exists() && !unpacked.join("tests").exists());

    let root = work.join("root");
    let build_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ship-install");
    process::run(&mut cargo(&[
        "install",
        "--debug",
        "--offline",
        "--locked",
        "--path",
        unpacked.to_str().unwrap(),
        "--root",
        root.to_str().unwrap(),
        "--target-dir",
        build_dir.to_str().unwrap(),
    ]));
    let installed = root.join("bin/registrish-gen");
    let run = |args: &[&str], cwd: &Path| {
        process::output(Command::new(&installed).args(args).current_dir(cwd))
    };

    let version = run(&["--version"], work.path());
    assert!(version.status.success());
    assert_eq!(text(&version.stdout), format!("registrish-gen {VERSION}\n"));

    // The committed fixture as it is: unprepared, so check lists what prepare writes.
    let committed = repo().join("fixtures/registry");
    let check = run(&["check", committed.to_str().unwrap()], work.path());
    assert_eq!(check.status.code(), Some(1), "{}", text(&check.stderr));
    assert!(text(&check.stdout).contains("error: v2/_catalog: missing"));
    // The same verdict, line for line, as the binary under test gives.
    let ours = crate::support::run_bin(["check", committed.to_str().unwrap()], work.path());
    assert_eq!(text(&check.stdout), text(&ours.stdout));
    assert_eq!(text(&check.stderr), text(&ours.stderr));
    // The counts are the builder's record of the same fixture (the committed tree is its output).
    let record = crate::support::fixture::build("basic", &[]);
    let counts = format!(
        "{} repositories, {} tags, {} manifests, {} blobs;",
        record.repositories().len(),
        record.tags().len(),
        record.manifests().len(),
        record.blobs().len()
    );
    assert!(
        text(&check.stderr).contains(&counts),
        "{counts}: {}",
        text(&check.stderr)
    );

    // A prepared copy checks clean, and the installed binary writes what this suite's does.
    let tree = work.join("registry");
    process::run(Command::new("cp").arg("-a").arg(&committed).arg(&tree));
    let prepare = run(&["prepare", tree.to_str().unwrap()], work.path());
    assert!(prepare.status.success(), "{}", text(&prepare.stderr));
    let check = run(&["check", tree.to_str().unwrap()], work.path());
    assert!(check.status.success(), "{}", text(&check.stdout));
    assert!(
        text(&check.stderr).contains(&format!("{counts} 0 errors, 0 warnings")),
        "{}",
        text(&check.stderr)
    );
    let args = [
        "nginx",
        tree.to_str().unwrap(),
        "--listen",
        "127.0.0.1:5080",
    ];
    let config = run(&args, work.path());
    assert!(config.status.success());
    assert_eq!(
        text(&config.stdout),
        text(&run_bin_ok(args, work.path()).stdout)
    );
    let page = run(&["man"], work.path());
    assert_eq!(page.stdout, run_bin_ok(["man"], work.path()).stdout);
}

/// `man -l` renders the page with no groff warning, and it holds every command's section,
/// options and examples.
#[test]
fn man_renders_one_page_with_every_command_its_options_and_examples() {
    let dir = TempDir::new("ship-man");
    let page = dir.join("registrish-gen.1");
    fs::write(&page, run_bin_ok(["man"], dir.path()).stdout).unwrap();
    let out = process::output(
        Command::new("man")
            .args(["--warnings", "-l"])
            .arg(&page)
            .env("LC_ALL", "C")
            .env("MANWIDTH", "100")
            .env("MANPAGER", "cat"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "", "groff warnings");
    let rendered = text(&out.stdout);
    assert!(
        !rendered.contains('\u{8}'),
        "formatting left in (not a terminal)"
    );
    for section in [
        "NAME",
        "SYNOPSIS",
        "COMMANDS",
        "EXIT STATUS",
        "EXAMPLES",
        "VERSION",
    ] {
        assert!(
            rendered.lines().any(|l| l == section),
            "no {section} section:\n{rendered}"
        );
    }
    // (Filled text is justified: compare it with its spaces collapsed.)
    let words = rendered.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(words.contains("NAME registrish-gen - Make static hosts"));
    let help = text(&run_bin_ok(["--help"], dir.path()).stdout);
    let commands: Vec<&str> = help
        .split("Commands:\n")
        .nth(1)
        .unwrap()
        .lines()
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.len() >= 15, "{commands:?}");
    for command in commands {
        let header = format!("REGISTRISH-GEN {}", command.to_uppercase());
        let section = rendered
            .split(&format!("\n{header}\n"))
            .nth(1)
            .unwrap_or_else(|| panic!("no section {header}:\n{rendered}"))
            .split("\nREGISTRISH-GEN ")
            .next()
            .unwrap();
        let section = format!("\n{section}");
        for sub in ["Synopsis", "Options", "Examples"] {
            assert!(
                section.contains(&format!("\n   {sub}\n")),
                "{header}: no {sub}"
            );
        }
        assert!(section.contains(&format!("registrish-gen {command} ")));
        // Each example's command line, unbroken (no-fill), as --help prints it.
        let help = text(&run_bin_ok([command, "--help"], dir.path()).stdout);
        let examples = help.split("\nExamples:\n").nth(1).unwrap();
        for line in examples
            .lines()
            .filter(|l| l.starts_with("  ") && !l.starts_with("  #"))
        {
            assert!(section.contains(line.trim()), "{header}: no {line:?}");
        }
    }
    // Flags of host commands are there too, with their help.
    assert!(rendered.contains("--ssl-certificate-key"));
}

/// `scripts/demo` ends with a client pulling from nginx serving the generated config (skopeo
/// here; scripts/test installs it). The build is skipped (REGISTRISH_GEN: the binary under
/// test) since the running suite holds the target directory.
#[test]
fn the_demo_ends_with_a_pull_from_nginx() {
    let dir = TempDir::new("ship-demo");
    let port = crate::support::free_port();
    let out = process::output(
        Command::new("bash")
            .arg(repo().join("scripts/demo"))
            .env("REGISTRISH_GEN", crate::support::bin())
            .env("DEMO_DIR", dir.join("demo"))
            .env("PORT", port.to_string()),
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    // check's summary is on standard error.
    assert!(text(&out.stderr).contains("; 0 errors, 0 warnings"));
    assert!(
        stdout.contains("Content-Type: application/vnd.oci.image.index.v1+json"),
        "{stdout}"
    );
    assert!(stdout.contains("Copying 3 of 3 images in list"), "{stdout}");
    assert!(
        stdout.contains("Writing manifest list to image destination"),
        "{stdout}"
    );
    let last = stdout.trim_end().lines().last().unwrap_or_default();
    assert!(last.starts_with("Pulled from nginx serving "), "{stdout}");
}
