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

use super::Templates;
use crate::media::MediaType;
use crate::model::Registry;
use crate::problem::{Kind, Problem};
use crate::scan::ERRORS_DIR;
use crate::settings::Common;
use anyhow::Result;
use serde_json::{Value, json};

/// The rule-row code for blobs (media type codes are letters from [`MediaType::code`]).
const BLOB_CODE: char = 'b';

pub struct Rendered {
    pub headers: String,
    pub redirects: String,
    pub problems: Vec<Problem>,
}

pub fn render(registry: &Registry, common: &Common, templates: &Templates) -> Result<Rendered> {
    let mut problems = Vec::new();
    // One `[path, type code, digest]` per rule ("b" for blobs): at 300k rules
    // a compact row per rule keeps peak memory in check.
    let mut rules: Vec<Value> = Vec::new();
    let row = |path: String, code: char, digest: &str| {
        Value::Array(vec![
            Value::String(path),
            Value::String(code.to_string()),
            Value::String(digest.to_string()),
        ])
    };
    for (name, repo) in &registry.repositories {
        let colliding = repo.case_colliding_tags();
        for (tag, digest) in &repo.tags {
            let path = format!("/v2/{name}/manifests/{tag}");
            if colliding.contains(tag.as_str()) {
                // Netlify matches rule paths case-insensitively: one rule would
                // give both tags the same digest. Leave them out, loudly.
                problems.push(Problem::error(
                    path.trim_start_matches('/'),
                    Kind::CaseCollision,
                    "left out of _headers: Netlify matches paths case-insensitively",
                ));
                continue;
            }
            rules.push(row(path, repo.manifests[digest].media_type.code(), digest));
        }
        for (digest, m) in &repo.manifests {
            rules.push(row(
                format!("/v2/{name}/manifests/{digest}"),
                m.media_type.code(),
                digest,
            ));
        }
        for digest in repo.blobs.keys() {
            rules.push(row(format!("/v2/{name}/blobs/{digest}"), BLOB_CODE, digest));
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
    let depth = registry
        .repositories
        .keys()
        .map(|n| n.split('/').count())
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
    types.insert(
        BLOB_CODE.to_string(),
        Value::from("application/octet-stream"),
    );
    let context = json!({
        "rules": Value::Array(rules),
        "media_types": types,
        "json_paths": json_paths,
        "errors_dir": ERRORS_DIR,
        "name_patterns": name_patterns,
        "tag_cache": format!("public, max-age={}", common.tag_max_age),
        "immutable_cache": format!("public, max-age={}, immutable", common.immutable_max_age),
    });
    let redirects = templates.render("netlify_redirects.tera", &context)?;
    let headers = templates.render_value("netlify_headers.tera", context)?;
    Ok(Rendered {
        headers,
        redirects,
        problems,
    })
}
