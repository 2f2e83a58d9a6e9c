//! Command-line surface. Flags here are raw; [`crate::settings`] turns them,
//! `registrish.toml` and defaults into checked settings once. The host
//! commands are not listed here: each host in [`crate::hosts::HOSTS`] adds
//! its own subcommand, made of [`crate::settings::CommonArgs`] and its options struct.

use crate::settings::TreeArgs;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Make a static host (nginx, Netlify, Cloudflare Pages, ...) serve an exported
/// registry tree (TREE/v2/<name>/{manifests,blobs}/...) to docker, containerd,
/// podman and skopeo, with no registry server running.
#[derive(Parser, Debug)]
#[command(name = "registrish-gen", version, about, max_term_width = 100)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Import an OCI layout, a skopeo dir: folder or a docker save archive into TREE, then prepare it.
    Import(ImportArgs),
    /// Report every problem in TREE at once (exit 0 clean, 1 problems, 2 usage or I/O error).
    Check(CheckArgs),
    /// Add what hosts need (digest-addressed manifests, tags/list, _catalog, /v2/ and error
    /// bodies); idempotent, never touches anything else.
    Prepare(TreeArgs),
    /// Check a deployed registry from the outside, as clients see it: every route of TREE, or
    /// what /v2/_catalog leads to (exit 0 clean, 1 failures, 2 usage or network error).
    Probe(crate::probe::ProbeArgs),
    /// Remove tags (a NAME@sha256:<hex> reference removes that manifest and every tag pointing
    /// at it) and bring tags/list and _catalog up to date; `gc` deletes what they alone held
    /// (exit 1 when a reference is not in TREE).
    Rm(RmArgs),
    /// Delete every manifest and blob no kept tag reaches, tags first and blobs last, so a pull
    /// of a kept tag never fails meanwhile; `--keep N --match REGEX` also drops old tags.
    Gc(GcArgs),
    /// Print the value of the Pages secret REGISTRISH_CREDENTIALS for `cloudflare --private`:
    /// one salted PBKDF2-SHA256 entry per USER, whose passwords are read from standard input,
    /// one line each, in order (pipe it to `wrangler pages secret put REGISTRISH_CREDENTIALS`).
    CloudflareCredentials(CredentialsArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish) to standard output.
    Completions(CompletionsArgs),
    /// Print the manual page (roff, section 1) to standard output: every command, its options
    /// and examples.
    Man,
}

#[derive(Args, Debug)]
pub(crate) struct CredentialsArgs {
    /// The users, each given a password line on standard input.
    #[arg(required = true, value_name = "USER")]
    pub users: Vec<String>,
}

#[derive(Args, Debug)]
pub(crate) struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// The whole command line: the commands above plus one per host.
pub(crate) fn command() -> clap::Command {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    for host in crate::hosts::HOSTS {
        cmd = cmd.subcommand(host.command());
    }
    // Every command's `--help` ends with its examples.
    let header = cmd.get_styles().get_header().to_owned();
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    for name in names {
        let help = examples_help(examples(Some(&name)), header);
        cmd = cmd.mut_subcommand(&name, |c| c.after_help(help));
    }
    cmd.after_help(examples_help(examples(None), header))
}

/// One `--help` example: what it does, and the command line a user types. `tests/ship.rs`
/// runs every one against a prepared fixture tree (`/srv/registry` and `site` stand for it).
pub(crate) type Example = (&'static str, &'static str);

const ROOT_EXAMPLES: &[Example] = &[
    (
        "Complete a tree, then write an nginx config for it",
        "registrish-gen prepare /srv/registry && registrish-gen nginx /srv/registry --listen 127.0.0.1:5080 -o /etc/nginx/conf.d/registry.conf",
    ),
    (
        "Every problem in the tree at once (exit 1 if any)",
        "registrish-gen check /srv/registry",
    ),
    (
        "Check the deployed registry from outside, route by route",
        "registrish-gen probe https://registry.example.org /srv/registry",
    ),
];

const IMPORT_EXAMPLES: &[Example] = &[
    (
        "One image of an OCI layout (`skopeo copy --all docker://alpine:3.20 oci:alpine:3.20`), tagged 3.20 and 3",
        "registrish-gen import alpine:3.20 --name library/alpine:3.20 --tag 3 /srv/registry",
    ),
    (
        "Every image of a `docker save myapp:1.0 -o myapp.tar` archive, under its own tag",
        "registrish-gen import myapp.tar --name team/myapp /srv/registry",
    ),
];

const CHECK_EXAMPLES: &[Example] = &[
    (
        "Every problem at once, one line each with its path",
        "registrish-gen check /srv/registry",
    ),
    (
        "Hash every blob too, and report as JSON",
        "registrish-gen check /srv/registry --verify-blobs --format json",
    ),
    (
        "What Cloudflare Pages could not host or serve of the tree",
        "registrish-gen check /srv/registry --host cloudflare",
    ),
];

const PREPARE_EXAMPLES: &[Example] = &[
    (
        "Add digest copies, tag lists, _catalog, /v2/ and error bodies (a second run changes nothing)",
        "registrish-gen prepare /srv/registry",
    ),
    (
        "The current directory is the tree by default",
        "cd /srv/registry && registrish-gen prepare",
    ),
];

const PROBE_EXAMPLES: &[Example] = &[
    (
        "Every route of the tree, as clients see it, after a deploy",
        "registrish-gen probe https://registry.example.org /srv/registry",
    ),
    (
        "Without the tree: discover through /v2/_catalog, 100 manifests and blobs, as JSON",
        "registrish-gen probe https://registry.example.org --sample 100 --format json",
    ),
    (
        "A bare bucket (S3, R2, MinIO): no digest header, its own 404s",
        "registrish-gen probe https://bucket.example.org /srv/registry --expect s3",
    ),
];

const RM_EXAMPLES: &[Example] = &[
    (
        "Remove one tag (its lists are rewritten at once; `gc` deletes what only it held)",
        "registrish-gen rm /srv/registry demo/hello:v1.json",
    ),
    (
        "Remove a manifest by digest, and every tag pointing at it",
        "registrish-gen rm /srv/registry demo/oci@sha256:31a4a585b759933663310c50187a1b5fd490a98d66f45e118042b2853a7cd365",
    ),
];

const GC_EXAMPLES: &[Example] = &[
    (
        "List, one path a line, what gc would delete (nothing is changed)",
        "registrish-gen gc /srv/registry --dry-run",
    ),
    (
        "Keep the 10 newest ci-* tags of each repository (and every other tag), delete the rest",
        "registrish-gen gc /srv/registry --keep 10 --match ci-.+",
    ),
];

const CREDENTIALS_EXAMPLES: &[Example] = &[
    (
        "One user's entry (the password on standard input, never in the process list)",
        "echo a-long-passphrase | registrish-gen cloudflare-credentials alice",
    ),
    (
        "Two users: one password line each, in order",
        "(echo first-passphrase; echo second-passphrase) | registrish-gen cloudflare-credentials alice bob",
    ),
];

const COMPLETIONS_EXAMPLES: &[Example] = &[
    (
        "bash (bash-completion loads it in new shells)",
        "registrish-gen completions bash > ~/.local/share/bash-completion/completions/registrish-gen",
    ),
    (
        "zsh (with `fpath=(~/.zfunc $fpath)` before `compinit` in ~/.zshrc)",
        "registrish-gen completions zsh > ~/.zfunc/_registrish-gen",
    ),
    (
        "fish",
        "registrish-gen completions fish > ~/.config/fish/completions/registrish-gen.fish",
    ),
];

const MAN_EXAMPLES: &[Example] = &[
    (
        "For your user (then `man registrish-gen`)",
        "registrish-gen man > ~/.local/share/man/man1/registrish-gen.1",
    ),
    (
        "For every user of the machine",
        "registrish-gen man | gzip > /usr/local/share/man/man1/registrish-gen.1.gz",
    ),
];

/// The examples of a subcommand, or of the whole command for `None`.
pub(crate) fn examples(command: Option<&str>) -> &'static [Example] {
    match command {
        None => ROOT_EXAMPLES,
        Some("import") => IMPORT_EXAMPLES,
        Some("check") => CHECK_EXAMPLES,
        Some("prepare") => PREPARE_EXAMPLES,
        Some("probe") => PROBE_EXAMPLES,
        Some("rm") => RM_EXAMPLES,
        Some("gc") => GC_EXAMPLES,
        Some("cloudflare-credentials") => CREDENTIALS_EXAMPLES,
        Some("completions") => COMPLETIONS_EXAMPLES,
        Some("man") => MAN_EXAMPLES,
        Some(name) => crate::hosts::find(name).map_or(&[], |h| h.examples()),
    }
}

fn examples_help(
    examples: &[Example],
    header: clap::builder::styling::Style,
) -> clap::builder::StyledStr {
    use std::fmt::Write;
    let mut s = clap::builder::StyledStr::new();
    let _ = write!(s, "{header}Examples:{header:#}");
    for (what, command) in examples {
        let _ = write!(s, "\n  # {what}\n  {command}\n");
    }
    s
}

#[derive(Args, Debug)]
pub(crate) struct ImportArgs {
    /// An OCI layout directory, a skopeo dir: folder or a docker save tar; `DIR:REF` picks one
    /// image of a layout or archive by its ref name (all of them are imported otherwise). What
    /// refers to an imported image comes with it: OCI 1.1 referrers, cosign's `.sig/.att/.sbom`
    /// tags (`cosign save` layouts too).
    pub source: String,
    /// Repository to import into, optionally with a tag (`team/app:1.0`).
    #[arg(long, value_name = "NAME[:TAG]")]
    pub name: String,
    /// More tags for the image (repeatable).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// The registry tree (created if missing).
    #[arg(default_value = ".")]
    pub tree: PathBuf,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    Text,
    Json,
}

#[derive(Args, Debug)]
pub(crate) struct CheckArgs {
    #[command(flatten)]
    pub tree: TreeArgs,
    /// Hash every blob (in parallel) and report those whose bytes don't match their name.
    #[arg(long)]
    pub verify_blobs: bool,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Also report, as errors, what this host cannot serve (e.g. Pages: files over 25 MiB,
    /// more than --max-files files, long rule lines, `.html` tags, symlinks; Netlify: tags
    /// that differ only by case).
    #[arg(long, value_name = "HOST", value_parser = clap::builder::PossibleValuesParser::new(crate::hosts::names()))]
    pub host: Option<String>,
    /// With --host cloudflare: the plan's file limit (`[cloudflare] max_files`).
    #[arg(long, value_name = "N")]
    pub max_files: Option<u64>,
    /// Judge the tree as served with its blobs on another origin (`[blobs] url`): then Pages'
    /// and Netlify's limits count only what the site holds.
    #[arg(long, value_name = "URL")]
    pub blobs_url: Option<String>,
}

#[derive(Args, Debug)]
pub(crate) struct RmArgs {
    /// The registry tree (the directory holding v2/).
    pub tree: PathBuf,
    /// What to remove: NAME:TAG, or NAME@sha256:<hex> for a manifest and all its tags.
    #[arg(required = true, value_name = "REFERENCE")]
    pub references: Vec<String>,
}

#[derive(Args, Debug)]
pub(crate) struct GcArgs {
    /// The registry tree (the directory holding v2/).
    #[arg(default_value = ".")]
    pub tree: PathBuf,
    /// Print each file gc would delete (relative to TREE, one a line) and delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Retention: in each repository keep only the N newest tags REGEX matches (newest by the
    /// tag file's mtime, then by version); tags it does not match are kept.
    #[arg(long, value_name = "N", requires = "pattern")]
    pub keep: Option<usize>,
    /// The tags --keep applies to: a regular expression the whole tag must match.
    #[arg(long = "match", value_name = "REGEX", requires = "keep")]
    pub pattern: Option<String>,
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        super::command().debug_assert();
    }

    /// Two or three examples for every command, each one running that command.
    #[test]
    fn every_command_has_two_or_three_examples_of_itself() {
        let cmd = super::command();
        let mut commands = vec![None];
        commands.extend(cmd.get_subcommands().map(|c| Some(c.get_name())));
        for name in commands {
            let examples = super::examples(name);
            assert!(
                (2..=3).contains(&examples.len()),
                "{name:?}: {} examples",
                examples.len()
            );
            let prefix = match name {
                Some(n) => format!("registrish-gen {n}"),
                None => "registrish-gen".to_string(),
            };
            for (what, command) in examples {
                assert!(!what.is_empty() && !what.contains('\n'));
                assert!(
                    command
                        .split(" && ")
                        .flat_map(|c| c.split(" | "))
                        .any(|c| c == prefix || c.starts_with(&format!("{prefix} "))),
                    "{name:?}: {command}"
                );
            }
        }
    }
}
