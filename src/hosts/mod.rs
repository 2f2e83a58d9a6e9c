//! Hosts: what a host is ([`Host`]) and the one table of them ([`HOSTS`]).
//!
//! A host is one module here plus its templates. It declares its name (the
//! subcommand and its `registrish.toml` section), its templates, the shape of
//! its output, one options struct that is both its flags and its section
//! (merged once by [`crate::settings::merge`]), its own judgement of the tree
//! ([`Host::problems`], from the scan's facts) and its render function. The
//! generic path in [`crate::commands`] runs every host the same way.
//!
//! To add a host: write `hosts/<name>.rs` implementing [`Host`], add its
//! templates to [`crate::templates::BUILTIN`], and add one line to [`HOSTS`].

pub(crate) mod apache;
pub(crate) mod caddy;
pub(crate) mod cloudflare;
pub(crate) mod cloudflare_rules;
pub(crate) mod headers;
pub(crate) mod netlify;
pub(crate) mod nginx;
pub(crate) mod s3;
pub(crate) mod storj;
pub(crate) mod upload;

use crate::address::BlobsUrl;
use crate::model::Registry;
use crate::output::{Outputs, Shape};
use crate::problem::Problem;
use crate::scan;
use crate::settings::Common;
use crate::templates::Templates;
use anyhow::Result;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;
use std::path::Path;

/// Where the host's output will be served from, as far as judging it needs: the directory
/// it is deployed from (TREE, or `-o SITE`), and the origin blobs are redirected to, if any
/// (then blobs are not part of the site).
pub(crate) struct Site<'a> {
    pub dir: &'a Path,
    pub blobs_url: Option<&'a BlobsUrl>,
}

/// How a host meets a private registry's htpasswd file.
pub(crate) enum Credentials {
    /// It checks them (nginx, Apache, Caddy).
    Htpasswd,
    /// It cannot, and serving the registry there would publish it: refused even when the
    /// file comes from `[auth]` in the settings file. The text says why and what to do.
    Refused(&'static str),
    /// Credentials mean nothing to it (an upload script): the flag is refused with the text,
    /// the settings file's `[auth]` is ignored.
    NotApplicable(&'static str),
}

/// What a render gets besides the model and its settings.
pub(crate) struct Ctx<'a> {
    pub common: &'a Common,
    pub templates: &'a Templates,
}

pub(crate) trait Host: 'static {
    /// The subcommand, and the `registrish.toml` section.
    const NAME: &'static str;
    /// One line for `--help`.
    const ABOUT: &'static str;
    /// Who serves it, for messages ("Cloudflare Pages cannot host ...").
    const TITLE: &'static str;
    /// The built-in templates it renders (and so compiles), by file name.
    const TEMPLATES: &'static [&'static str];
    /// Where its files go, and what `-o` names.
    const OUTPUT: Shape;
    /// `--help` of `-o`.
    const OUTPUT_HELP: &'static str;
    /// Whether it can answer blob requests with a redirect (`--blobs-url`).
    const BLOBS_URL: bool = false;
    /// What it does with a private registry's htpasswd file (`--htpasswd`, `[auth]`).
    const CREDENTIALS: Credentials = Credentials::NotApplicable(
        "an upload script cannot make a bucket private: its policy (or the CDN in front) must; --htpasswd is for nginx, apache and caddy",
    );
    /// The examples its `--help` ends with (two or three; `/srv/registry` or `site` for the
    /// tree), each run against a fixture by `tests/ship.rs`.
    const EXAMPLES: &'static [crate::cli::Example] = &[];
    /// Its flags and its `registrish.toml` section, in one struct.
    type Options: clap::Args
        + clap::FromArgMatches
        + Serialize
        + DeserializeOwned
        + Default
        + std::fmt::Debug;
    /// Its options checked, with defaults applied.
    type Settings;

    /// Whether its render reads manifests' references beyond an index's children (configs,
    /// layers, subjects): when not, the scan leaves those out of the model, once checked (a
    /// fifth of it at a million tags).
    const READS_REFERENCES: bool = true;

    /// What the scan must measure for this host.
    fn scan_options(_options: &Self::Options) -> scan::Options {
        scan::Options::default()
    }

    /// Checks the merged options. `flags` are the command line's alone, for
    /// a flag that only makes sense in some modes.
    fn settings(
        options: Self::Options,
        flags: &Self::Options,
        registry: &Registry,
    ) -> Result<Self::Settings>;

    /// What this host cannot serve of the tree, beyond what no host can (the
    /// scan's problems): `check --host NAME` reports these, and the command
    /// leaves those parts out.
    fn problems(_registry: &Registry, _options: &Self::Options, _site: &Site) -> Vec<Problem> {
        Vec::new()
    }

    /// Writes the output files, one per file of [`Host::OUTPUT`] in its order, into `out` as
    /// they are made (nothing is shown or moved into place until the command commits them).
    fn render(
        registry: &Registry,
        settings: &Self::Settings,
        ctx: &Ctx,
        out: &mut Outputs,
    ) -> Result<()>;
}

/// A host behind a pointer: what the command line, `check` and the settings
/// file need of every host, without knowing its types.
pub(crate) trait AnyHost: Sync {
    fn name(&self) -> &'static str;
    fn title(&self) -> &'static str;
    /// Its subcommand: the shared flags plus its options.
    fn command(&self) -> clap::Command;
    /// Runs the subcommand (see [`crate::commands::run_host`]).
    fn run(&self, matches: &clap::ArgMatches) -> Result<crate::commands::Outcome>;
    /// Its judgement of a tree, with options from `registrish.toml` alone.
    fn problems(
        &self,
        registry: &Registry,
        section: Option<&toml::Value>,
        site: &Site,
    ) -> Result<Vec<Problem>>;
    /// Whether it can redirect blobs.
    fn blobs_url(&self) -> bool;
    /// Its `--help` examples.
    fn examples(&self) -> &'static [crate::cli::Example];
    /// Whether a `registrish.toml` section is valid for it.
    fn check_section(&self, section: Option<&toml::Value>) -> Result<()>;

    /// Its output from TREE with `section` as its settings, from a scan that keeps every
    /// reference and from one that drops what [`Host::READS_REFERENCES`] says it never reads.
    #[cfg(test)]
    fn render_with_and_without_references(
        &self,
        tree: &std::path::Path,
        section: &str,
    ) -> Result<(Vec<String>, Vec<String>)>;
}

pub(crate) struct Entry<H>(PhantomData<fn() -> H>);

impl<H: Host> AnyHost for Entry<H> {
    fn name(&self) -> &'static str {
        H::NAME
    }

    fn title(&self) -> &'static str {
        H::TITLE
    }

    fn command(&self) -> clap::Command {
        use clap::Args;
        let cmd = clap::Command::new(H::NAME).about(H::ABOUT);
        let cmd = crate::settings::CommonArgs::augment_args(cmd);
        let value_name = match H::OUTPUT {
            Shape::Directory(_) => "DIR",
            _ => "FILE",
        };
        // `augment_args` sets the options struct's doc comment as the command's about; the
        // host's own line goes last so `--help` shows it.
        H::Options::augment_args(cmd)
            .about(H::ABOUT)
            .mut_arg("output", |a| a.help(H::OUTPUT_HELP).value_name(value_name))
    }

    fn run(&self, matches: &clap::ArgMatches) -> Result<crate::commands::Outcome> {
        use clap::FromArgMatches;
        let common = crate::settings::CommonArgs::from_arg_matches(matches)?;
        let flags = H::Options::from_arg_matches(matches)?;
        crate::commands::run_host::<H>(common, flags)
    }

    fn problems(
        &self,
        registry: &Registry,
        section: Option<&toml::Value>,
        site: &Site,
    ) -> Result<Vec<Problem>> {
        let options: H::Options = crate::settings::from_section(section)?;
        Ok(H::problems(registry, &options, site))
    }

    fn blobs_url(&self) -> bool {
        H::BLOBS_URL
    }

    fn examples(&self) -> &'static [crate::cli::Example] {
        H::EXAMPLES
    }

    fn check_section(&self, section: Option<&toml::Value>) -> Result<()> {
        crate::settings::from_section::<H::Options>(section).map(|_| ())
    }

    #[cfg(test)]
    fn render_with_and_without_references(
        &self,
        tree: &std::path::Path,
        section: &str,
    ) -> Result<(Vec<String>, Vec<String>)> {
        let section = toml::Value::Table(toml::from_str(section)?);
        let templates = Templates::load(None, H::TEMPLATES)?;
        let common = crate::settings::Common {
            tree: tree.to_path_buf(),
            templates: None,
            tag_max_age: 300,
            immutable_max_age: crate::settings::IMMUTABLE_MAX_AGE,
            strict: false,
            check: None,
            output: None,
            blobs_url: None,
            htpasswd: None,
            realm: crate::auth::Realm::parse(crate::auth::DEFAULT_REALM)?,
        };
        let render = |drop_references: bool| -> Result<Vec<String>> {
            let options: H::Options = crate::settings::from_section(Some(&section))?;
            let registry = scan::scan(
                tree,
                scan::Options {
                    drop_references,
                    ..H::scan_options(&options)
                },
            )?;
            let settings = H::settings(options, &H::Options::default(), &registry)?;
            let mut out = crate::output::Outputs::memory(H::OUTPUT.file_count());
            let ctx = Ctx {
                common: &common,
                templates: &templates,
            };
            H::render(&registry, &settings, &ctx, &mut out)?;
            Ok(out.into_texts())
        };
        Ok((render(false)?, render(!H::READS_REFERENCES)?))
    }
}

/// Every host, in `--help` order.
pub(crate) static HOSTS: &[&dyn AnyHost] = &[
    &Entry::<nginx::Nginx>(PhantomData),
    &Entry::<netlify::Netlify>(PhantomData),
    &Entry::<cloudflare::Cloudflare>(PhantomData),
    &Entry::<s3::S3>(PhantomData),
    &Entry::<storj::Storj>(PhantomData),
    &Entry::<cloudflare_rules::CloudflareRules>(PhantomData),
    &Entry::<apache::Apache>(PhantomData),
    &Entry::<caddy::Caddy>(PhantomData),
    &Entry::<headers::Headers>(PhantomData),
];

pub(crate) fn names() -> Vec<&'static str> {
    HOSTS.iter().map(|h| h.name()).collect()
}

pub(crate) fn find(name: &str) -> Option<&'static dyn AnyHost> {
    HOSTS.iter().copied().find(|h| h.name() == name)
}

/// Host options structs with no option of their own.
#[derive(clap::Args, Debug, Default, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoOptions {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn copy_tree(from: &Path, to: &Path) {
        for entry in walkdir::WalkDir::new(from) {
            let entry = entry.unwrap();
            let target = to.join(entry.path().strip_prefix(from).unwrap());
            if entry.file_type().is_dir() {
                std::fs::create_dir_all(&target).unwrap();
            } else {
                std::fs::copy(entry.path(), &target).unwrap();
            }
        }
    }

    /// `READS_REFERENCES = false` is a promise the scan acts on: it drops configs, layers and
    /// subjects once checked. Every host that makes it renders the same bytes with and
    /// without them, on the fixture (indexes, referrers and their fallback tags included).
    #[test]
    fn hosts_that_drop_references_render_the_same_bytes_without_them() {
        let dir = std::env::temp_dir().join(format!("registrish-refs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/registry");
        copy_tree(&fixture, &dir);
        let registry = scan::scan(&dir, scan::Options::default()).unwrap();
        crate::prepare::prepare(&registry).unwrap();
        let registry = scan::scan(&dir, scan::Options::default()).unwrap();
        let dropped = scan::scan(
            &dir,
            scan::Options {
                drop_references: true,
                ..Default::default()
            },
        )
        .unwrap();
        // The detector: the scan does drop something here.
        let count = |r: &Registry| -> usize {
            r.repositories
                .values()
                .flat_map(|repo| repo.manifests.values())
                .map(|m| m.references.len())
                .sum()
        };
        assert!(count(&dropped) < count(&registry), "nothing was dropped");
        for host in HOSTS {
            let section = match host.name() {
                "s3" | "storj" => "bucket = \"b\"",
                _ => "",
            };
            let (kept, without) = host
                .render_with_and_without_references(&dir, section)
                .unwrap_or_else(|e| panic!("{}: {e:#}", host.name()));
            assert!(
                !kept.concat().is_empty(),
                "{} rendered nothing",
                host.name()
            );
            assert!(
                kept == without,
                "{} reads references the scan dropped for it",
                host.name()
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
