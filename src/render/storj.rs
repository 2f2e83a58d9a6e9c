//! Storj: an `uplink cp` upload script. (Being written.)

use super::{Rendered, Templates};
use crate::cli::StorjArgs;
use crate::model::Registry;
use crate::settings::{Common, FileConfig};
use anyhow::{Result, bail};

pub struct StorjSettings {
    pub bucket: String,
}

impl StorjSettings {
    pub fn resolve(args: &StorjArgs, file: &FileConfig) -> Result<StorjSettings> {
        let Some(bucket) = args.bucket.clone().or_else(|| file.storj.bucket.clone()) else {
            bail!("--bucket is required (or [storj] bucket in registrish.toml)");
        };
        Ok(StorjSettings { bucket })
    }
}

pub fn render(
    _registry: &Registry,
    _common: &Common,
    _settings: &StorjSettings,
    _templates: &Templates,
) -> Result<Rendered> {
    bail!("registrish-gen storj is not implemented yet")
}
