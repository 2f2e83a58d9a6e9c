//! `headers`: the answer each request path must get, as one JSON object
//! keyed by path, for every host this tool has no renderer for (a CDN's edge
//! rules, another static host). Asked for on skopeo's tracker as "a JSON of
//! the headers each file needs".
//!
//! Written entry by entry from the routes (no JSON value of the whole
//! registry is built), keys sorted, headers in canonical capitalisation and
//! sorted: `{"/v2/": {"status": 200, "headers": {...}}, ...}`.

use super::{Ctx, Host, NoOptions};
use crate::model::Registry;
use crate::output::Shape;
use crate::routes::{self, Cache};
use anyhow::Result;
use std::collections::BTreeMap;

pub(crate) struct Headers;

impl Host for Headers {
    const READS_REFERENCES: bool = false;
    const NAME: &'static str = "headers";
    const ABOUT: &'static str = "Write the status and headers every registry path must be served with, as JSON keyed by path (for hosts without a renderer).";
    const TITLE: &'static str = "A static host";
    const TEMPLATES: &'static [&'static str] = &[];
    const OUTPUT: Shape = Shape::Stdout;
    const OUTPUT_HELP: &'static str = "Write to FILE atomically instead of standard output.";
    const EXAMPLES: &'static [crate::cli::Example] = &[
        (
            "Every path's status and headers, for a host without a renderer",
            "registrish-gen headers /srv/registry -o headers.json",
        ),
        (
            "With tags cached for one minute",
            "registrish-gen headers /srv/registry --tag-max-age 60 -o headers.json",
        ),
    ];
    type Options = NoOptions;
    type Settings = ();

    /// Blob sizes are Content-Length.
    fn scan_options(_: &NoOptions) -> crate::scan::Options {
        crate::scan::Options {
            blob_sizes: true,
            ..crate::scan::Options::default()
        }
    }

    fn settings(_: NoOptions, _: &NoOptions, _: &Registry) -> Result<()> {
        Ok(())
    }

    fn render(registry: &Registry, _: &(), ctx: &Ctx) -> Result<Vec<String>> {
        let (tag_cache, immutable_cache) = (ctx.common.tag_cache(), ctx.common.immutable_cache());
        let routes = routes::all(registry);
        let mut out = String::with_capacity(routes.len() * 400);
        out.push('{');
        for (i, route) in routes.iter().enumerate() {
            let mut headers = BTreeMap::new();
            headers.insert("Content-Type", route.content_type.to_string());
            headers.insert("Docker-Distribution-API-Version", "registry/2.0".into());
            if let Some(size) = route.size {
                headers.insert("Content-Length", size.to_string());
            }
            if let Some(digest) = &route.digest {
                headers.insert("Docker-Content-Digest", digest.to_string());
            }
            match route.cache {
                Cache::None => {}
                Cache::Mutable => {
                    headers.insert("Cache-Control", tag_cache.clone());
                }
                Cache::Immutable => {
                    headers.insert("Cache-Control", immutable_cache.clone());
                }
            }
            if i > 0 {
                out.push(',');
            }
            out.push_str("\n  ");
            out.push_str(&serde_json::to_string(&route.path)?);
            out.push_str(": ");
            out.push_str(&serde_json::to_string(
                &serde_json::json!({"status": 200, "headers": headers}),
            )?);
        }
        out.push_str("\n}\n");
        Ok(vec![out])
    }
}
