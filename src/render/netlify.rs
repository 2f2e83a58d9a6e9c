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

use super::{Templates, manifest_paths};
use crate::model::Registry;
use crate::problem::{Kind, Problem};
use crate::scan::ERRORS_DIR;
use crate::settings::Common;
use anyhow::Result;
use serde::Serialize;

#[derive(Serialize)]
struct Rule {
    path: String,
    content_type: &'static str,
    digest: String,
    cache: String,
}

#[derive(Serialize)]
struct Context {
    rules: Vec<Rule>,
    json_paths: Vec<String>,
    errors_dir: &'static str,
    /// `/v2/:n1/.../:nK` prefixes for every name depth in the tree.
    name_patterns: Vec<String>,
}

pub struct Rendered {
    pub headers: String,
    pub redirects: String,
    pub problems: Vec<Problem>,
}

pub fn render(registry: &Registry, common: &Common, templates: &Templates) -> Result<Rendered> {
    let mut problems = Vec::new();
    let mut colliding = std::collections::HashSet::new();
    for (name, repo) in &registry.repositories {
        for tag in repo.case_colliding_tags() {
            colliding.insert(format!("/v2/{name}/manifests/{tag}"));
        }
    }
    let tag_cache = format!("public, max-age={}", common.tag_max_age);
    let immutable = format!("public, max-age={}, immutable", common.immutable_max_age);
    let mut rules = Vec::new();
    for p in manifest_paths(registry) {
        if colliding.contains(&p.path) {
            // Netlify matches rule paths case-insensitively: one rule would
            // give both tags the same digest. Leave them out, loudly.
            problems.push(Problem::error(
                p.path.trim_start_matches('/'),
                Kind::CaseCollision,
                "left out of _headers: Netlify matches paths case-insensitively",
            ));
            continue;
        }
        rules.push(Rule {
            cache: if p.tag {
                tag_cache.clone()
            } else {
                immutable.clone()
            },
            path: p.path,
            content_type: p.media_type,
            digest: p.digest,
        });
    }
    for (name, repo) in &registry.repositories {
        for digest in repo.blobs.keys() {
            rules.push(Rule {
                path: format!("/v2/{name}/blobs/{digest}"),
                content_type: "application/octet-stream",
                digest: digest.clone(),
                cache: immutable.clone(),
            });
        }
    }
    rules.sort_by(|a, b| a.path.cmp(&b.path));

    let mut json_paths = vec!["/v2/".to_string(), "/v2/_catalog".to_string()];
    json_paths.extend(
        registry
            .repositories
            .iter()
            .filter(|(_, r)| !r.tags.is_empty())
            .map(|(name, _)| format!("/v2/{name}/tags/list")),
    );
    let depth = registry
        .repositories
        .keys()
        .map(|n| n.split('/').count())
        .max()
        .unwrap_or(1);
    let name_patterns = (1..=depth)
        .rev()
        .map(|d| {
            let segs: Vec<String> = (1..=d).map(|i| format!(":n{i}")).collect();
            format!("/v2/{}", segs.join("/"))
        })
        .collect();
    let context = Context {
        rules,
        json_paths,
        errors_dir: ERRORS_DIR,
        name_patterns,
    };
    Ok(Rendered {
        headers: templates.render("netlify_headers.tera", &context)?,
        redirects: templates.render("netlify_redirects.tera", &context)?,
        problems,
    })
}
