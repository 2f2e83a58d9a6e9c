//! Cloudflare Pages: an advanced-mode `_worker.js` and its `_routes.json`.
//!
//! The choice, by measurement (see the template's header and the README):
//! `_headers` alone cannot serve a registry on Pages (100 rules, `sha256:`
//! read as a placeholder, no Content-Length on HEAD under `wrangler pages
//! dev`), and a worker holding a table of every path outgrows the Free plan's
//! 3 MB limit near 70k manifests. So the worker is constant-size and checks
//! each manifest when it serves it, with the same rules the scan uses; this
//! renderer's own job is what Pages cannot host, reported before anything is
//! written: files over 25 MiB, more files than the plan allows, `_headers` or
//! `_redirects` lines over 2,000 characters, and tags Pages would redirect.

use super::{Ctx, Host, Site};
use crate::layout;
use crate::media::{MAX_MANIFEST_BYTES, MediaType};
use crate::model::Registry;
use crate::output::Outputs;
use crate::output::Shape;
use crate::problem::{Kind, Problem};
use crate::routes;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::Path;
use walkdir::WalkDir;

/// Pages refuses larger files (wrangler checks before upload).
pub(crate) const MAX_FILE_BYTES: u64 = 25 * 1024 * 1024;
/// The Free plan's file count; paid plans allow more (`--max-files`).
pub(crate) const DEFAULT_MAX_FILES: u64 = 20_000;
/// Pages ignores longer lines in `_headers` and `_redirects`.
pub(crate) const MAX_RULE_LINE: usize = 2_000;
/// Files in the output directory that Pages reads as configuration, not assets.
const NOT_ASSETS: &[&str] = &["_worker.js", "_routes.json", "_headers", "_redirects"];

pub(crate) struct Cloudflare;

/// `[cloudflare]` in registrish.toml, and the flags of `registrish-gen cloudflare`.
#[derive(clap::Args, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CloudflareOptions {
    /// Most files the Pages plan allows (Free: 20000).
    #[arg(long, value_name = "N")]
    pub max_files: Option<u64>,
    /// Private registry: the worker asks for credentials on every path under /v2/ and checks
    /// them against the Pages secret REGISTRISH_CREDENTIALS (`registrish-gen
    /// cloudflare-credentials USER` prints its value).
    #[arg(long, num_args = 0, default_missing_value = "true", value_name = "")]
    pub private: Option<bool>,
}

impl Host for Cloudflare {
    const READS_REFERENCES: bool = false;
    const NAME: &'static str = "cloudflare";
    const ABOUT: &'static str =
        "Render Cloudflare Pages' `_worker.js` and `_routes.json` (any registry size).";
    const TITLE: &'static str = "Cloudflare Pages";
    const TEMPLATES: &'static [&'static str] = &["cloudflare_worker.js.tera"];
    const OUTPUT: Shape = Shape::Directory(&["_worker.js", "_routes.json"]);
    const OUTPUT_HELP: &'static str = "The Pages output directory to write into (default: TREE).";
    const EXAMPLES: &'static [crate::cli::Example] = &[
        (
            "_worker.js and _routes.json into the directory you deploy (then `npx wrangler pages deploy site`)",
            "registrish-gen cloudflare site",
        ),
        (
            "On a paid plan, which allows more files",
            "registrish-gen cloudflare site --max-files 100000",
        ),
        (
            "Layers over 25 MiB: blobs redirected to another origin, a site without them",
            "registrish-gen cloudflare site --blobs-url https://blobs.example.org -o pages",
        ),
    ];
    const BLOBS_URL: bool = true;
    const CREDENTIALS: super::Credentials = super::Credentials::Refused(
        "Pages cannot read an htpasswd file: the worker checks PBKDF2 entries from a Pages secret; use `cloudflare --private` and `registrish-gen cloudflare-credentials USER`",
    );
    type Options = CloudflareOptions;
    /// Whether the registry is private.
    type Settings = bool;

    /// File sizes are Pages limits.
    fn scan_options(_: &CloudflareOptions) -> crate::scan::Options {
        crate::scan::Options {
            blob_sizes: true,
            ..crate::scan::Options::default()
        }
    }

    fn settings(o: CloudflareOptions, _: &CloudflareOptions, _: &Registry) -> Result<bool> {
        Ok(o.private.unwrap_or(false))
    }

    /// Everything Pages cannot host or serve: files over 25 MiB, more files
    /// than the plan allows, long rule lines and directory symlinks stop the
    /// command; `.html` tags are left out (file symlinks the scan leaves out).
    fn problems(registry: &Registry, options: &CloudflareOptions, site: &Site) -> Vec<Problem> {
        let max_files = options.max_files.unwrap_or(DEFAULT_MAX_FILES);
        let mut problems = limits(registry, site, max_files);
        for (name, repo) in &registry.repositories {
            for tag in repo.tags.keys().filter(|t| t.as_str().ends_with(".html")) {
                problems.push(Problem::error(
                    layout::manifest_file(name, tag),
                    Kind::HostUnservable,
                    "Pages redirects paths ending in .html, so this tag cannot be served there; left out",
                ));
            }
        }
        // wrangler follows a directory symlink (the hostile-request test saw `wrangler pages
        // dev` serve a blob behind `v2/extns -> /elsewhere`), and the worker holds no table of
        // repositories to leave one out: the tree is refused.
        for link in registry.facts.symlinks.iter().filter(|s| s.is_passable()) {
            problems.push(Problem::error(
                link.path.clone(),
                Kind::ForeignConfig,
                "a symlink to a directory, or where the layout has no file: wrangler follows it and would upload and serve what it points to; remove it, or copy what it points to",
            ));
        }
        problems
    }

    fn render(_registry: &Registry, private: &bool, ctx: &Ctx, out: &mut Outputs) -> Result<()> {
        if *private && ctx.common.blobs_url.is_some() {
            anyhow::bail!(
                "--private with --blobs-url: clients send no credentials to another origin, so the blobs there would be public"
            );
        }
        let context = json!({
            "media_types": MediaType::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
            "errors": layout::error_bodies(),
            "max_manifest_bytes": MAX_MANIFEST_BYTES,
            "tag_max_age": ctx.common.tag_max_age,
            "blobs_url": ctx.common.blobs_url.as_ref().map(|u| u.as_str()),
            "private": private,
            "realm": ctx.common.realm.as_str(),
            "immutable_max_age": ctx.common.immutable_max_age,
        });
        let worker = ctx
            .templates
            .render_value("cloudflare_worker.js.tera", context)?;
        // Every path runs the worker, which serves only the registry: Pages would serve any
        // other file of the deployed directory (a settings file, a backup beside v2/, a
        // dot-file) as a static asset, and it resolves `/v2/../x` to `/x` before routing.
        let routes = serde_json::to_string_pretty(&json!({
            "version": 1,
            "include": ["/*"],
            "exclude": [],
        }))? + "\n";
        out.put(0, &worker)?;
        out.put(1, &routes)
    }
}

/// What Pages cannot host at all. Errors here stop the command before it writes.
fn limits(registry: &Registry, site: &Site, max_files: u64) -> Vec<Problem> {
    let dir = site.dir;
    let mut problems = Vec::new();
    // Blobs redirected to another origin are not part of the site (`--blobs-url`).
    let blobs_here = site.blobs_url.is_none();
    for repo in registry.repositories.values().filter(|_| blobs_here) {
        for (digest, size) in &repo.blobs {
            if let Some(size) = size.filter(|s| *s > MAX_FILE_BYTES) {
                problems.push(Problem::error(
                    repo.blob_path(digest),
                    Kind::FileTooLarge,
                    format!(
                        "{:.1} MiB: Pages refuses files over 25 MiB; serve this registry from an object store instead (`registrish-gen s3` with R2, plus `cloudflare-rules`)",
                        size as f64 / 1048576.0
                    ),
                ));
            }
        }
    }
    // Everything Pages would upload: the tree as it is, plus what prepare adds.
    let mut files = 0u64;
    let walker = WalkDir::new(dir)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            let n = e.file_name().to_string_lossy();
            // v2/ was counted and sized by the scan: not walked twice.
            e.depth() == 0
                || !(n == ".git"
                    || n == "node_modules"
                    || n == ".wrangler"
                    || (e.depth() == 1 && (n == "functions" || n == "v2")))
        });
    for entry in walker.flatten() {
        if !entry.file_type().is_file() {
            continue;
        }
        let rel = entry.path().strip_prefix(dir).unwrap_or(entry.path());
        let top = rel.to_string_lossy();
        if NOT_ASSETS.contains(&top.as_ref()) {
            if top == "_headers" || top == "_redirects" {
                problems.extend(long_lines(entry.path(), &top));
            }
            continue;
        }
        files += 1;
        let large = entry.metadata().is_ok_and(|m| m.len() > MAX_FILE_BYTES);
        if large {
            problems.push(Problem::error(
                top.to_string(),
                Kind::FileTooLarge,
                "over 25 MiB: Pages refuses it",
            ));
        }
    }
    // The tree once prepared: its files, the digest copies and lists prepare adds.
    files += registry.facts.file_count
        + (routes::generated_files(registry).len() + routes::missing_digest_files(registry).len())
            as u64;
    if !blobs_here {
        files -= registry.blob_count() as u64;
    }
    if files > max_files {
        problems.push(Problem::error(
            dir.display().to_string(),
            Kind::TooManyFiles,
            format!("{files} files once prepared; Pages allows {max_files} on this plan (--max-files for paid plans, or an object store)"),
        ));
    }
    if dir.join("index.html").exists() && !dir.join("404.html").exists() {
        problems.push(Problem::warning(
            "index.html",
            Kind::HostUnservable,
            "with an index.html and no 404.html, Pages answers every unknown path with 200 and the home page; add a 404.html",
        ));
    }
    problems
}

fn long_lines(path: &Path, rel: &str) -> Vec<Problem> {
    use std::io::BufRead;
    // Line by line: a site's `_headers` can be tens of megabytes.
    let Ok(file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    std::io::BufReader::new(file)
        .lines()
        .map_while(|l| l.ok())
        .enumerate()
        .filter_map(|(i, l)| {
            let n = l.chars().count();
            (n > MAX_RULE_LINE).then(|| {
                Problem::error(
                    format!("{rel}:{}", i + 1),
                    Kind::LineTooLong,
                    format!("{n} characters: Pages ignores lines over {MAX_RULE_LINE}"),
                )
            })
        })
        .collect()
}
