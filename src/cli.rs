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
}

#[derive(Args, Debug)]
pub(crate) struct CredentialsArgs {
    /// The users, each given a password line on standard input.
    #[arg(required = true, value_name = "USER")]
    pub users: Vec<String>,
}

/// The whole command line: the commands above plus one per host.
pub(crate) fn command() -> clap::Command {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    for host in crate::hosts::HOSTS {
        cmd = cmd.subcommand(host.command());
    }
    cmd
}

#[derive(Args, Debug)]
pub(crate) struct ImportArgs {
    /// An OCI layout directory, a skopeo dir: folder or a docker save tar; `DIR:REF` picks one
    /// image of a layout or archive by its ref name (all of them are imported otherwise).
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
}
