//! `headers`: the answer each request path must get, as one JSON object
//! keyed by path, for every host this tool has no renderer for (a CDN's edge
//! rules, another static host). Asked for on skopeo's tracker as "a JSON of
//! the headers each file needs".
//!
//! Written entry by entry from the routes as they are made (no JSON value of the whole
//! registry, nor the whole text, is held), keys sorted, headers in canonical capitalisation and
//! sorted: `{"/v2/": {"status": 200, "headers": {...}}, ...}`.

use super::{Ctx, Host, NoOptions};
use crate::model::Registry;
use crate::output::Outputs;
use crate::output::Shape;
use crate::routes::{self, Cache};
use anyhow::Result;

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

    fn render(registry: &Registry, _: &(), ctx: &Ctx, output: &mut Outputs) -> Result<()> {
        let (tag_cache, immutable_cache) = (ctx.common.tag_cache(), ctx.common.immutable_cache());
        // Written out every megabyte: the whole text was half a gigabyte at a million tags.
        let mut out = String::with_capacity(1 << 21);
        let quoted = |out: &mut String, s: &str| -> Result<()> {
            out.push_str(&serde_json::to_string(s)?);
            Ok(())
        };
        out.push('{');
        for (i, route) in routes::all(registry).enumerate() {
            if i > 0 {
                out.push(',');
            }
            if out.len() > 1 << 20 {
                output.put(0, &out)?;
                out.clear();
            }
            out.push_str("\n  ");
            quoted(&mut out, &route.path)?;
            // `{"headers": {...}, "status": 200}`: keys in the order serde_json sorts them,
            // headers sorted by name (a JSON object of a BTreeMap, written by hand: one map and
            // one value per path cost a fifth of the time at a million tags).
            out.push_str(": {\"headers\":{");
            let cache = match route.cache {
                Cache::None => None,
                Cache::Mutable => Some(&tag_cache),
                Cache::Immutable => Some(&immutable_cache),
            };
            if let Some(cache) = cache {
                out.push_str("\"Cache-Control\":");
                quoted(&mut out, cache)?;
                out.push(',');
            }
            if let Some(size) = route.size {
                out.push_str(&format!("\"Content-Length\":\"{size}\","));
            }
            out.push_str("\"Content-Type\":");
            quoted(&mut out, route.content_type)?;
            if let Some(digest) = &route.digest {
                out.push_str(&format!(",\"Docker-Content-Digest\":\"{digest}\""));
            }
            out.push_str(",\"Docker-Distribution-API-Version\":\"registry/2.0\"},\"status\":200}");
        }
        out.push_str("\n}\n");
        output.put(0, &out)
    }
}
