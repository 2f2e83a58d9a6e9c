//! S3 and S3-compatible stores: an AWS CLI upload script. (Being written.)

use super::{Rendered, Templates};
use crate::cli::S3Args;
use crate::model::Registry;
use crate::settings::{Common, FileConfig};
use anyhow::{Result, bail};

pub struct S3Settings {
    pub bucket: String,
    pub prefix: String,
    pub endpoint: Option<String>,
}

impl S3Settings {
    pub fn resolve(args: &S3Args, file: &FileConfig) -> Result<S3Settings> {
        let Some(bucket) = args.bucket.clone().or_else(|| file.s3.bucket.clone()) else {
            bail!("--bucket is required (or [s3] bucket in registrish.toml)");
        };
        Ok(S3Settings {
            bucket,
            prefix: args
                .prefix
                .clone()
                .or_else(|| file.s3.prefix.clone())
                .unwrap_or_default(),
            endpoint: args.endpoint.clone().or_else(|| file.s3.endpoint.clone()),
        })
    }
}

pub fn render(
    _registry: &Registry,
    _common: &Common,
    _settings: &S3Settings,
    _templates: &Templates,
) -> Result<Rendered> {
    bail!("registrish-gen s3 is not implemented yet")
}
