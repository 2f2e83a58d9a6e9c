//! Apache. (Being written.)

use super::{Rendered, Templates};
use crate::cli::ApacheArgs;
use crate::model::Registry;
use crate::settings::{Common, FileConfig};
use anyhow::{Result, bail};

pub struct ApacheSettings {
    pub listen: Option<String>,
    pub server_name: Option<String>,
    pub root_path: String,
}

impl ApacheSettings {
    pub fn resolve(
        args: &ApacheArgs,
        file: &FileConfig,
        registry: &Registry,
    ) -> Result<ApacheSettings> {
        Ok(ApacheSettings {
            listen: args.listen.clone().or_else(|| file.apache.listen.clone()),
            server_name: args
                .server_name
                .clone()
                .or_else(|| file.apache.server_name.clone()),
            root_path: args
                .root_path
                .clone()
                .or_else(|| file.apache.root_path.clone())
                .unwrap_or_else(|| registry.root.to_string_lossy().into_owned()),
        })
    }
}

pub fn render(
    _registry: &Registry,
    _common: &Common,
    _settings: &ApacheSettings,
    _templates: &Templates,
) -> Result<Rendered> {
    bail!("registrish-gen apache is not implemented yet")
}
