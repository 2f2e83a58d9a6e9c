//! Netlify: `_headers` (one rule per manifest and blob path) and
//! `_redirects` (JSON 404 bodies where no file exists).
//!
//! Netlify has no placeholders in header values, so each blob gets its own
//! rule for Docker-Content-Digest. Every header is set by exactly one rule:
//! when two matching rules set the same header, netlify-cli keeps the later
//! one and Netlify's edge behaviour is undocumented, so the API-version header
//! lives alone in a `/v2/*` rule and nothing else sets it. Names are written
//! capitalized (`Content-Type`): a lowercase one was reported to produce two
//! headers. Rules without `!` in `_redirects` only apply where no file
//! matches ("shadowing"), which is what a registry miss is.

use super::{Ctx, Host, NoOptions, Site};
use crate::layout::ERRORS_DIR;
use crate::model::{Registry, Repository};
use crate::output::Outputs;
use crate::output::Shape;
use crate::problem::{Kind, Problem};
use crate::routes;
use anyhow::Result;
use serde_json::{Value, json};

pub(crate) struct Netlify;

impl Host for Netlify {
    const READS_REFERENCES: bool = false;
    const NAME: &'static str = "netlify";
    const ABOUT: &'static str = "Render Netlify's `_headers` and `_redirects` into TREE (the publish directory) or -o SITE.";
    const TITLE: &'static str = "Netlify";
    const TEMPLATES: &'static [&'static str] = &[
        "netlify_headers.tera",
        "netlify_rules.tera",
        "netlify_redirects.tera",
    ];
    const OUTPUT: Shape = Shape::Directory(&["_headers", "_redirects"]);
    const OUTPUT_HELP: &'static str = "The publish directory to write `_headers` and `_redirects` into (default: TREE; with --blobs-url, a site of its own that gets every file but the blobs).";
    const EXAMPLES: &'static [crate::cli::Example] = &[
        (
            "_headers and _redirects into the publish directory (then `netlify deploy --dir site`)",
            "registrish-gen netlify site",
        ),
        (
            "Blobs on another origin: a site of its own, every file but the blobs",
            "registrish-gen netlify site --blobs-url https://blobs.example.org -o public",
        ),
    ];
    const BLOBS_URL: bool = true;
    // Netlify's Basic-Auth header rules keep the passwords themselves in the deployed file.
    const CREDENTIALS: super::Credentials = super::Credentials::Refused(
        "Netlify's Basic-Auth header rules hold clear-text passwords in the deployed _headers (Pro plans and above), so registrish-gen does not offer a private registry there; serve it from nginx, Apache, Caddy or Pages",
    );
    type Options = NoOptions;
    type Settings = ();

    fn settings(_: NoOptions, _: &NoOptions, _: &Registry) -> Result<()> {
        Ok(())
    }

    /// Netlify matches rule paths case-insensitively: one rule would give
    /// two tags that differ only by case the same digest, so they are left out.
    fn problems(registry: &Registry, _: &NoOptions, _: &Site) -> Vec<Problem> {
        let mut problems = Vec::new();
        for repo in registry.repositories.values() {
            for tag in repo.case_colliding_tags() {
                problems.push(Problem::error(
                    crate::layout::manifest_file(&repo.name, tag),
                    Kind::CaseCollision,
                    "left out of _headers: Netlify matches paths case-insensitively",
                ));
            }
        }
        problems
    }

    fn render(registry: &Registry, _: &(), ctx: &Ctx, out: &mut Outputs) -> Result<()> {
        render(registry, ctx, out)
    }
}

/// Rules rendered at a time by netlify_rules.tera: at 1,000,000 tags `_headers` holds 3.2
/// million rules, too many to hold as template values at once (issue 16).
const RULES_PER_PART: usize = 65_536;

/// One `[path, Content-Type, digest, immutable]` per rule, in `_headers`' order:
/// repositories, each one's manifest routes (tags colliding by case left out: Netlify matches
/// paths case-insensitively), then its blobs (unless they are on another origin).
/// A repository's manifest routes that get a rule: all but the tags colliding by case.
fn served_manifests(repo: &Repository) -> impl Iterator<Item = routes::ManifestRoute<'_>> {
    let colliding = repo.case_colliding_tags();
    routes::manifests(repo).filter(move |route| !route.tag().is_some_and(|t| colliding.contains(t)))
}

fn rules<'a>(registry: &'a Registry, blobs_here: bool) -> impl Iterator<Item = Value> + 'a {
    let row = |path: String, content_type: &str, digest: &dyn std::fmt::Display, immutable| {
        Value::Array(vec![
            Value::String(path),
            Value::String(content_type.to_string()),
            Value::String(digest.to_string()),
            Value::Bool(immutable),
        ])
    };
    registry.repositories.values().flat_map(move |repo| {
        let manifests = served_manifests(repo).map(move |route| {
            let immutable = route.cache() == routes::Cache::Immutable;
            row(
                route.path(),
                route.media_type.as_str(),
                route.digest,
                immutable,
            )
        });
        let blobs = routes::blobs(repo)
            .filter(move |_| blobs_here)
            .map(move |(path, digest, _)| row(path, routes::OCTET_STREAM, digest, true));
        manifests.chain(blobs)
    })
}

fn render(registry: &Registry, ctx: &Ctx, out: &mut Outputs) -> Result<()> {
    let blobs_here = ctx.common.blobs_url.is_none();
    let rule_count: usize = registry
        .repositories
        .values()
        .map(|repo| served_manifests(repo).count() + if blobs_here { repo.blobs.len() } else { 0 })
        .sum();
    let parts = rule_count.div_ceil(RULES_PER_PART);
    // With --blobs-url: blob paths, each redirected (one rule a path, so a blob the registry
    // lacks is still the JSON 404 below).
    let blob_redirects: Vec<Value> = if blobs_here {
        Vec::new()
    } else {
        registry
            .repositories
            .values()
            .flat_map(|repo| routes::blobs(repo).map(|(path, _, _)| Value::String(path)))
            .collect()
    };

    let mut json_paths = vec!["/v2/".to_string(), "/v2/_catalog".to_string()];
    json_paths.extend(
        registry
            .repositories
            .iter()
            .filter(|(_, r)| !r.tags.is_empty())
            .map(|(name, _)| format!("/v2/{name}/tags/list")),
    );
    // OCI 1.1 referrers: one rule a repository (Netlify's `_headers` paths take a splat, and a
    // fixed prefix keeps each header set by exactly one rule).
    let repositories: Vec<&str> = registry.repositories.keys().map(|n| n.as_str()).collect();
    let depth = registry
        .repositories
        .keys()
        .map(|n| n.as_str().split('/').count())
        .max()
        .unwrap_or(1);
    let name_patterns: Vec<String> = (1..=depth)
        .rev()
        .map(|d| {
            let segs: Vec<String> = (1..=d).map(|i| format!(":n{i}")).collect();
            format!("/v2/{}", segs.join("/"))
        })
        .collect();
    let redirects = ctx.templates.render_value(
        "netlify_redirects.tera",
        json!({
            "blob_redirects": Value::Array(blob_redirects),
            "blobs_url": ctx.common.blobs_url.as_ref().map(|u| u.as_str()),
            "errors_dir": ERRORS_DIR,
            "name_patterns": name_patterns,
        }),
    )?;
    let caches = |mut context: Value| {
        context["tag_cache"] = ctx.common.tag_cache().into();
        context["immutable_cache"] = ctx.common.immutable_cache().into();
        context
    };
    let context = caches(json!({
        "rules": (0..parts).map(crate::templates::slot).collect::<Vec<_>>(),
        "json_paths": json_paths,
        "errors_dir": ERRORS_DIR,
        "repositories": repositories,
    }));
    let mut table = rules(registry, blobs_here);
    ctx.templates
        .render_with_slots("netlify_headers.tera", context, parts, out.file(0), |_| {
            let rules: Vec<Value> = table.by_ref().take(RULES_PER_PART).collect();
            (
                "netlify_rules.tera",
                caches(crate::templates::part_context("rules", rules)),
            )
        })?;
    out.put(1, &redirects)
}
