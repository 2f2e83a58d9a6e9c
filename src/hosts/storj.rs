//! Storj: an `uplink` upload script for the shared plan in
//! [`super::upload`], served afterwards by Storj's linksharing on a domain
//! (`uplink share --dns`).
//!
//! Linksharing takes an object's Content-Type from its custom metadata, which
//! `uplink cp --metadata '{"Content-Type":"..."}'` sets (Storj's container
//! registry guide), and serves `v2/index.html` for `/v2/`. The metadata JSON
//! is written by serde_json here, never by template text. Only Content-Type is
//! set: the guide documents no other header linksharing sends.

use super::upload::{self, Phase};
use super::{Ctx, Host};
use crate::model::Registry;
use crate::output::Outputs;
use crate::output::Shape;
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::json;

pub(crate) struct Storj;

/// `[storj]` in registrish.toml, and the flags of `registrish-gen storj`.
#[derive(clap::Args, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StorjOptions {
    /// The bucket to upload to.
    #[arg(long, value_name = "BUCKET")]
    pub bucket: Option<String>,
    /// After every upload succeeded, delete the bucket's keys under v2/ that TREE does not hold
    /// (tags and lists, then manifests by digest, then blobs); `--delete=dry-run`: the script
    /// prints those keys and uploads and deletes nothing.
    #[arg(long, value_enum, value_name = "MODE", num_args = 0..=1, require_equals = true, default_missing_value = "yes")]
    pub delete: Option<upload::DeleteMode>,
}

impl Host for Storj {
    const NAME: &'static str = "storj";
    const ABOUT: &'static str = "Render an `uplink` upload script for Storj.";
    const TITLE: &'static str = "Storj";
    // The plan's levels read only an index's children, which the scan keeps.
    const READS_REFERENCES: bool = false;
    const TEMPLATES: &'static [&'static str] = &[
        "storj.sh.tera",
        "upload_plan.sh.tera",
        "upload_plan_rows.tera",
    ];
    const OUTPUT: Shape = Shape::Stdout;
    const OUTPUT_HELP: &'static str = "Write to FILE atomically instead of standard output.";
    const EXAMPLES: &'static [crate::cli::Example] = &[
        (
            "An uplink upload script (then `bash upload-storj.sh`)",
            "registrish-gen storj /srv/registry --bucket registry -o upload-storj.sh",
        ),
        (
            "Tags and tag lists cached for one minute",
            "registrish-gen storj /srv/registry --bucket registry --tag-max-age 60 -o upload-storj.sh",
        ),
    ];
    type Options = StorjOptions;
    /// The bucket and `--delete`.
    type Settings = (String, Option<upload::DeleteMode>);

    fn settings(
        o: StorjOptions,
        _: &StorjOptions,
        _: &Registry,
    ) -> Result<(String, Option<upload::DeleteMode>)> {
        let Some(bucket) = o.bucket else {
            bail!("--bucket is required (or [storj] bucket in registrish.toml)");
        };
        super::s3::check_bucket(&bucket)?;
        Ok((bucket, o.delete))
    }

    fn render(
        registry: &Registry,
        (bucket, delete): &(String, Option<upload::DeleteMode>),
        ctx: &Ctx,
        out: &mut Outputs,
    ) -> Result<()> {
        let store = json!({ "bucket": bucket });
        upload::render_script(
            registry,
            ctx.templates,
            upload::Script {
                template: "storj.sh.tera",
                store,
                only_blobs: false,
                delete: *delete,
            },
            |p: &Phase| vec!["--metadata".into(), metadata(p)],
            out.file(0),
        )
    }
}

/// The `--metadata` value of `uplink cp` for a phase.
fn metadata(phase: &Phase) -> String {
    json!({"Content-Type": phase.content_type}).to_string()
}
