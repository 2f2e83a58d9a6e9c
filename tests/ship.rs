//! What a user gets besides the commands themselves (issue 17): shell completions, and the
//! examples every `--help` ends with, each run against a prepared fixture tree. The man page
//! rendered by `man` and the packaged crate are in e2e_ship.rs.

use crate::support::static_host::{Flaws, StaticHost};
use crate::support::{TempDir, bin, fixture, process, run_bin_ok};
use serde_json::json;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `bash -c SCRIPT` with the binary first on PATH, in `cwd`, with HOME = `home`.
fn bash(script: &str, cwd: &Path, home: &Path) -> std::process::Output {
    let dir = bin().parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(script)
        .current_dir(cwd)
        .env("PATH", path)
        .env("HOME", home);
    process::output(&mut cmd)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every subcommand `registrish-gen --help` lists (clap's own `help` aside).
fn subcommands() -> Vec<String> {
    let help = text(&run_bin_ok(["--help"], Path::new(".")).stdout);
    let list = help
        .split("Commands:\n")
        .nth(1)
        .expect("--help lists commands");
    list.lines()
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(String::from)
        .collect()
}

#[test]
fn bash_loads_the_completion_script_and_completes_subcommands_and_flags() {
    let dir = TempDir::new("ship-bash");
    let out = bash(
        "source <(registrish-gen completions bash) && complete -p registrish-gen",
        dir.path(),
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let spec = text(&out.stdout);
    assert!(
        spec.starts_with("complete ") && spec.trim_end().ends_with(" registrish-gen"),
        "{spec}"
    );
    assert!(spec.contains(" -F _registrish__gen "), "{spec}");
    // What TAB would offer: the function the spec names, called as bash calls it.
    let complete = |words: &str| {
        let script = format!(
            "source <(registrish-gen completions bash)\n\
             COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
             COMP_LINE=\"${{COMP_WORDS[*]}}\"; COMP_POINT=${{#COMP_LINE}}\n\
             _registrish__gen registrish-gen \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"\n\
             printf '%s\\n' \"${{COMPREPLY[@]}}\""
        );
        let out = bash(&script, dir.path(), dir.path());
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let offered = complete("registrish-gen ''");
    for name in subcommands() {
        assert!(
            offered.lines().any(|l| l == name),
            "{name} not offered:\n{offered}"
        );
    }
    assert_eq!(
        complete("registrish-gen cloudflare-r"),
        "cloudflare-rules\n"
    );
    let flags = complete("registrish-gen nginx --ssl");
    assert!(flags.contains("--ssl-certificate-key"), "{flags}");
    let shells = complete("registrish-gen completions ''");
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        assert!(shells.lines().any(|l| l == shell), "{shells}");
    }
}

#[test]
fn every_shell_gets_a_script_naming_every_subcommand() {
    let names = subcommands();
    for (shell, marker) in [
        ("bash", "complete -F _registrish__gen"),
        ("zsh", "#compdef registrish-gen"),
        ("fish", "complete -c registrish-gen"),
        ("powershell", "Register-ArgumentCompleter"),
        (
            "elvish",
            "set edit:completion:arg-completer[registrish-gen]",
        ),
    ] {
        let script = text(&run_bin_ok(["completions", shell], Path::new(".")).stdout);
        assert!(script.contains(marker), "{shell}: no {marker:?}");
        for name in &names {
            assert!(script.contains(name.as_str()), "{shell}: no {name}");
        }
    }
}

/// The examples `registrish-gen [COMMAND] --help` ends with, as printed: (what, command line).
fn help_examples(command: Option<&str>) -> Vec<(String, String)> {
    let mut args: Vec<&str> = command.into_iter().collect();
    args.push("--help");
    let help = text(&run_bin_ok(&args, Path::new(".")).stdout);
    let section = help
        .split("\nExamples:\n")
        .nth(1)
        .unwrap_or_else(|| panic!("{command:?}: --help has no examples:\n{help}"));
    let mut out = Vec::new();
    let mut what = None;
    for line in section.lines().filter(|l| !l.is_empty()) {
        let line = line
            .strip_prefix("  ")
            .unwrap_or_else(|| panic!("{command:?}: {line:?} is not indented"));
        match line.strip_prefix("# ") {
            Some(w) => what = Some(w.to_string()),
            None => out.push((
                what.take()
                    .unwrap_or_else(|| panic!("{command:?}: {line} says not what it does")),
                line.to_string(),
            )),
        }
    }
    out
}

/// An OCI image layout holding `repo:tag` of a prepared tree, under the ref name `reference`
/// (what `skopeo copy --all docker://... oci:DIR:REF` writes).
fn oci_layout(f: &fixture::Fixture, repo: &str, tag: &str, reference: &str, dir: &Path) {
    let (_, _, digest, media_type, size) = f
        .tags()
        .into_iter()
        .find(|t| t.0 == repo && t.1 == tag)
        .unwrap_or_else(|| panic!("fixture has no {repo}:{tag}"));
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    for part in ["manifests", "blobs"] {
        for entry in fs::read_dir(f.tree().join("v2").join(repo).join(part)).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(hex) = name.strip_prefix("sha256:") {
                fs::copy(entry.path(), blobs.join(hex)).unwrap();
            }
        }
    }
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": media_type, "digest": digest, "size": size,
            "annotations": {"org.opencontainers.image.ref.name": reference},
        }],
    });
    fs::write(dir.join("index.json"), index.to_string()).unwrap();
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

/// Where an example's placeholders point inside `sandbox`: its trees (`/srv/registry`, and
/// `site` relative to the working directory) are copies of the prepared fixture, system
/// paths (`/etc/...`, `/usr/local/...`) move into the sandbox, `~` is the sandbox's home, and
/// the deployment's URLs are a local host serving the same tree.
fn localize(command: &str, sandbox: &Path, url: &str) -> String {
    assert!(
        !command.contains(['"', '\'', '\\']),
        "{command}: the test splits examples on spaces and cannot read quotes"
    );
    command
        .split(' ')
        .map(|word| {
            if ["/srv/", "/etc/", "/usr/local/"]
                .iter()
                .any(|p| word.starts_with(p))
            {
                format!("{}{word}", sandbox.display())
            } else if ["https://registry.example.org", "https://bucket.example.org"].contains(&word)
            {
                url.to_string()
            } else {
                word.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The files an example writes (`-o FILE`, `--check FILE`, `> FILE`), as paths in the sandbox.
fn outputs(command: &str, sandbox: &Path, home: &Path) -> Vec<(PathBuf, &'static str)> {
    let words: Vec<&str> = command.split(' ').collect();
    let mut out = Vec::new();
    for pair in words.windows(2) {
        let role = match pair[0] {
            "-o" => "-o",
            ">" => ">",
            "--check" => "--check",
            _ => continue,
        };
        let path = match pair[1].strip_prefix("~/") {
            Some(rest) => home.join(rest),
            None => sandbox.join(pair[1]),
        };
        out.push((path, role));
    }
    out
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to.parent().unwrap()).unwrap();
    process::run(Command::new("cp").arg("-a").arg(from).arg(to));
}

/// Every command's `--help` examples, run as a user would type them (bash, the binary on
/// PATH), one sandbox per command so its examples run in order like a user following them.
/// Nothing is skipped: examples name no tool but registrish-gen (and gzip), the upload and
/// deploy steps are in the description, and the probe examples probe a real local HTTP host
/// (`support::static_host`, which serves the tree with exactly the headers `registrish-gen
/// headers` lists) in place of the deployment; their exit status 0 is probe's clean verdict.
#[test]
fn every_help_example_runs_against_a_prepared_fixture() {
    let f = fixture::build("basic", &[]);
    run_bin_ok(["prepare", f.tree().to_str().unwrap()], f.dir.path());
    let headers = f.dir.join("headers.json");
    run_bin_ok(
        [
            "headers",
            f.tree().to_str().unwrap(),
            "-o",
            headers.to_str().unwrap(),
        ],
        f.dir.path(),
    );
    let host = StaticHost::start(&f.tree(), &headers, Flaws::default());
    let url = format!("http://127.0.0.1:{}", host.port);

    let mut commands = vec![None];
    commands.extend(subcommands().into_iter().map(Some));
    let mut ran = 0;
    for command in &commands {
        let examples = help_examples(command.as_deref());
        assert!(
            (2..=3).contains(&examples.len()),
            "{command:?}: {} examples",
            examples.len()
        );
        let sandbox = TempDir::new("ship-ex");
        let home = sandbox.join("home");
        fs::create_dir_all(&home).unwrap();
        copy_tree(&f.tree(), &sandbox.join("srv/registry"));
        copy_tree(&f.tree(), &sandbox.join("site"));
        if command.as_deref() == Some("import") {
            // The sources the import examples name.
            oci_layout(&f, "demo/multi", "latest", "3.20", &sandbox.join("alpine"));
            let save = TempDir::new("ship-save");
            oci_layout(&f, "demo/hello", "latest", "1.0", save.path());
            process::run(
                Command::new("tar")
                    .arg("-cf")
                    .arg(sandbox.join("myapp.tar"))
                    .arg("-C")
                    .arg(save.path())
                    .args(["oci-layout", "index.json", "blobs"]),
            );
        }
        for (what, example) in &examples {
            let line = localize(example, sandbox.path(), &url);
            let written = outputs(&line, sandbox.path(), &home);
            for (path, role) in &written {
                if *role != "--check" {
                    fs::create_dir_all(path.parent().unwrap()).unwrap();
                }
            }
            let out = bash(&line, sandbox.path(), &home);
            assert!(
                out.status.success(),
                "{command:?} example {what:?} failed ({}):\n$ {line}\nstdout:\n{}\nstderr:\n{}",
                out.status,
                text(&out.stdout),
                text(&out.stderr)
            );
            for (path, _) in &written {
                let len = fs::metadata(path)
                    .unwrap_or_else(|e| panic!("{example}: {}: {e}", path.display()))
                    .len();
                assert!(len > 0, "{example}: {} is empty", path.display());
            }
            ran += 1;
        }
    }
    eprintln!("{ran} examples of {} commands ran", commands.len());
}

#[test]
fn import_examples_land_their_images_and_tags() {
    // The same sources as above, checked for what the examples say they do.
    let f = fixture::build("basic", &[]);
    run_bin_ok(["prepare", f.tree().to_str().unwrap()], f.dir.path());
    let sandbox = TempDir::new("ship-import");
    oci_layout(&f, "demo/multi", "latest", "3.20", &sandbox.join("alpine"));
    let tree = sandbox.join("srv/registry");
    let out = bash(
        &format!(
            "registrish-gen import alpine:3.20 --name library/alpine:3.20 --tag 3 {}",
            tree.display()
        ),
        sandbox.path(),
        sandbox.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let list: serde_json::Value =
        serde_json::from_slice(&fs::read(tree.join("v2/library/alpine/tags/list")).unwrap())
            .unwrap();
    // demo/multi's referrers came with it (the layout holds them as blobs): prepare lists them
    // at the subject's referrers path and under its fallback tag.
    let referrers: Vec<_> = f
        .referrers()
        .into_iter()
        .filter(|(name, ..)| name == "demo/multi")
        .collect();
    let [(_, subject, descriptors)] = &referrers[..] else {
        panic!("the fixture's demo/multi has one subject with referrers: {referrers:?}");
    };
    let fallback = format!("sha256-{}", subject.trim_start_matches("sha256:"));
    assert_eq!(list["tags"], json!(["3", "3.20", fallback]));
    let index: serde_json::Value = serde_json::from_slice(
        &fs::read(tree.join("v2/library/alpine/referrers").join(subject)).unwrap(),
    )
    .unwrap();
    assert_eq!(&index["manifests"], &json!(descriptors));
}
