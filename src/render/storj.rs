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
use super::{Rendered, Templates};
use crate::cli::StorjArgs;
use crate::model::Registry;
use crate::settings::{Common, FileConfig};
use anyhow::{Result, bail};
use serde_json::json;

pub struct StorjSettings {
    pub bucket: String,
}

impl StorjSettings {
    pub fn resolve(args: &StorjArgs, file: &FileConfig) -> Result<StorjSettings> {
        let Some(bucket) = args.bucket.clone().or_else(|| file.storj.bucket.clone()) else {
            bail!("--bucket is required (or [storj] bucket in registrish.toml)");
        };
        super::s3::check_bucket(&bucket)?;
        Ok(StorjSettings { bucket })
    }
}

/// The `--metadata` value of `uplink cp` for a phase.
pub fn metadata(phase: &Phase) -> String {
    json!({"Content-Type": phase.content_type}).to_string()
}

pub fn render(
    registry: &Registry,
    _common: &Common,
    settings: &StorjSettings,
    templates: &Templates,
) -> Result<Rendered> {
    let store = json!({ "bucket": settings.bucket });
    upload::render_script(registry, templates, "storj.sh.tera", store, |p: &Phase| {
        vec!["--metadata".into(), metadata(p)]
    })
}
