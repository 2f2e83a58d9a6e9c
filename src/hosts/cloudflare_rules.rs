//! Cloudflare Response Header Transform rules (JSON) for a registry in an R2
//! bucket behind a custom domain (uploaded by the `s3` script pointed at R2).
//!
//! R2 sends each object's stored Content-Type and Cache-Control but none of the
//! registry headers. The rules add, on the domain:
//! - `Docker-Distribution-API-Version: registry/2.0` on every `/v2/` response;
//! - `Docker-Content-Digest` on blobs and manifests by digest, taken from the
//!   path itself: `substring(path, -71)` is the trailing `sha256:<hex>`
//!   (7 + 64 characters). Only digest paths can contain `/blobs/sha256:` or
//!   `/manifests/sha256:`: names and tags cannot hold `:` (OCI grammar).
//!
//! Tags get no digest header on purpose: a tag's digest changes on every
//! publish, and a rule updated later than the objects would send a wrong
//! digest, which clients treat as corruption; without the header they hash
//! the manifest themselves. `contains` and `starts_with` work on every plan;
//! `matches` (regular expressions) would need a Business plan.
//!
//! The output is the body of `PUT /zones/{zone_id}/rulesets/phases/
//! http_response_headers_transform/entrypoint`, written with serde_json.

use super::{Ctx, Host, NoOptions};
use crate::model::Registry;
use crate::output::Outputs;
use crate::output::Shape;
use anyhow::Result;
use serde_json::{Value, json};
/// `sha256:` plus 64 hex digits: the end of every digest path.
const DIGEST_LEN: usize = 71;

fn rule(description: &str, expression: String, header: &str, value: Value) -> Value {
    json!({
        "description": description,
        "expression": expression,
        "action": "rewrite",
        "action_parameters": {"headers": {header: value}},
        "enabled": true,
    })
}

/// The ruleset body. It depends on no file of the tree (every rule matches by
/// path shape), so it stays valid when the registry changes.
pub(crate) fn ruleset() -> Value {
    let v2 = r#"starts_with(http.request.uri.path, "/v2/")"#;
    // 200 and 206 (Range): an error page must not claim a digest.
    let found = "http.response.code in {200 206}";
    let digest = json!({
        "operation": "set",
        "expression": format!("substring(http.request.uri.path, -{DIGEST_LEN})"),
    });
    json!({
        "description": "registrish-gen: container registry headers for a bucket served at this zone's root",
        "rules": [
            rule(
                "Docker-Distribution-API-Version on every registry response",
                v2.to_string(),
                "Docker-Distribution-API-Version",
                json!({"operation": "set", "value": "registry/2.0"}),
            ),
            rule(
                "Docker-Content-Digest on blobs, from the path",
                format!(r#"{v2} and http.request.uri.path contains "/blobs/sha256:" and {found}"#),
                "Docker-Content-Digest",
                digest.clone(),
            ),
            rule(
                "Docker-Content-Digest on manifests by digest, from the path",
                format!(r#"{v2} and http.request.uri.path contains "/manifests/sha256:" and {found}"#),
                "Docker-Content-Digest",
                digest,
            ),
        ],
    })
}

pub(crate) struct CloudflareRules;

impl Host for CloudflareRules {
    const READS_REFERENCES: bool = false;
    const NAME: &'static str = "cloudflare-rules";
    const ABOUT: &'static str =
        "Render a Cloudflare Response Header Transform ruleset (JSON) for an R2 bucket's domain.";
    const TITLE: &'static str = "Cloudflare Transform Rules";
    const TEMPLATES: &'static [&'static str] = &[];
    const OUTPUT: Shape = Shape::Stdout;
    const OUTPUT_HELP: &'static str = "Write to FILE atomically instead of standard output.";
    const EXAMPLES: &'static [crate::cli::Example] = &[
        (
            "The Transform Rules body for an R2 bucket behind a domain (PUT it to the zone's ruleset)",
            "registrish-gen cloudflare-rules /srv/registry -o rules.json",
        ),
        (
            "In CI: exit 1 when the committed rules are stale",
            "registrish-gen cloudflare-rules /srv/registry --check rules.json",
        ),
    ];
    type Options = NoOptions;
    type Settings = ();

    fn settings(_: NoOptions, _: &NoOptions, _: &Registry) -> Result<()> {
        Ok(())
    }

    fn render(_registry: &Registry, _: &(), _: &Ctx, out: &mut Outputs) -> Result<()> {
        let mut text = serde_json::to_string_pretty(&ruleset())?;
        text.push('\n');
        out.put(0, &text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `substring(path, -DIGEST_LEN)` must be exactly the digest of every digest path, for
    /// the longest and shortest names the grammar allows.
    #[test]
    fn the_digest_length_is_that_of_a_digest() {
        use crate::grammar::{Digest, Name};
        let digest = crate::digest::of_bytes(b"x");
        for name in ["a", &"a".repeat(255)] {
            let name = Name::parse(name).unwrap();
            for path in [
                crate::layout::blob_file(&name, &digest),
                crate::layout::manifest_file(&name, &digest),
            ] {
                let tail = &path[path.len() - DIGEST_LEN..];
                assert_eq!(Digest::parse(tail), Some(digest), "{path}");
                assert!(path[..path.len() - DIGEST_LEN].ends_with('/'));
            }
        }
    }

    #[test]
    fn rules_have_the_documented_shape() {
        let r = ruleset();
        for rule in r["rules"].as_array().unwrap() {
            assert_eq!(rule["action"], "rewrite");
            let headers = rule["action_parameters"]["headers"].as_object().unwrap();
            for h in headers.values() {
                assert_eq!(h["operation"], "set");
                assert!(h["value"].is_string() != h["expression"].is_string());
            }
            assert!(!rule["expression"].as_str().unwrap().contains("matches"));
        }
    }
}
