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
use crate::media::MediaType;
use crate::model::Registry;
use crate::output::Shape;
use crate::problem::{Kind, Problem};
use crate::routes;
use anyhow::Result;
use serde_json::{Value, json};

/// The rule-row code for blobs (media type codes are letters from [`MediaType::code`]).
const BLOB_CODE: char = 'b';

pub(crate) struct Netlify;

impl Host for Netlify {
    const READS_REFERENCES: bool = false;
    const NAME: &'static str = "netlify";
    const ABOUT: &'static str = "Render Netlify's `_headers` and `_redirects` into TREE (the publish directory) or -o SITE.";
    const TITLE: &'static str = "Netlify";
    const TEMPLATES: &'static [&'static str] = &["netlify_headers.tera", "netlify_redirects.tera"];
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

    fn render(registry: &Registry, _: &(), ctx: &Ctx) -> Result<Vec<String>> {
        render(registry, ctx)
    }
}

fn render(registry: &Registry, ctx: &Ctx) -> Result<Vec<String>> {
    // One `[path, type code, digest]` per rule ("b" for blobs): at 300k rules
    // a compact row per rule keeps peak memory in check.
    let mut rules: Vec<Value> = Vec::new();
    // With --blobs-url: blob paths, each redirected (one rule a path, so a blob the registry
    // lacks is still the JSON 404 below).
    let mut blob_redirects: Vec<Value> = Vec::new();
    let row = |path: String, code: char, digest: &dyn std::fmt::Display| {
        Value::Array(vec![
            Value::String(path),
            Value::String(code.to_string()),
            Value::String(digest.to_string()),
        ])
    };
    for repo in registry.repositories.values() {
        let colliding = repo.case_colliding_tags();
        for route in routes::manifests(repo) {
            if route.tag().is_some_and(|t| colliding.contains(t)) {
                continue;
            }
            rules.push(row(route.path(), route.media_type.code(), route.digest));
        }
        for (path, digest, _) in routes::blobs(repo) {
            if ctx.common.blobs_url.is_some() {
                blob_redirects.push(Value::String(path));
            } else {
                rules.push(row(path, BLOB_CODE, digest));
            }
        }
    }

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
    let mut types: serde_json::Map<String, Value> = MediaType::ALL
        .iter()
        .map(|t| (t.code().to_string(), Value::from(t.as_str())))
        .collect();
    types.insert(BLOB_CODE.to_string(), Value::from(routes::OCTET_STREAM));
    let context = json!({
        "rules": Value::Array(rules),
        "blob_redirects": Value::Array(blob_redirects),
        "blobs_url": ctx.common.blobs_url.as_ref().map(|u| u.as_str()),
        "media_types": types,
        "json_paths": json_paths,
        "errors_dir": ERRORS_DIR,
        "name_patterns": name_patterns,
        "repositories": repositories,
        "tag_cache": ctx.common.tag_cache(),
        "immutable_cache": ctx.common.immutable_cache(),
    });
    let redirects = ctx.templates.render("netlify_redirects.tera", &context)?;
    let headers = ctx
        .templates
        .render_value("netlify_headers.tera", context)?;
    Ok(vec![headers, redirects])
}
