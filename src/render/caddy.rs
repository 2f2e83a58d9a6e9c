//! Caddy. (Being written.)

use super::{Rendered, Templates};
use crate::cli::CaddyArgs;
use crate::model::Registry;
use crate::settings::{Common, FileConfig};
use anyhow::{Result, bail};

pub struct CaddySettings {
    pub listen: Option<String>,
    pub server_name: Option<String>,
    pub root_path: String,
}

impl CaddySettings {
    pub fn resolve(
        args: &CaddyArgs,
        file: &FileConfig,
        registry: &Registry,
    ) -> Result<CaddySettings> {
        Ok(CaddySettings {
            listen: args.listen.clone().or_else(|| file.caddy.listen.clone()),
            server_name: args
                .server_name
                .clone()
                .or_else(|| file.caddy.server_name.clone()),
            root_path: args
                .root_path
                .clone()
                .or_else(|| file.caddy.root_path.clone())
                .unwrap_or_else(|| registry.root.to_string_lossy().into_owned()),
        })
    }
}

pub fn render(
    _registry: &Registry,
    _common: &Common,
    _settings: &CaddySettings,
    _templates: &Templates,
) -> Result<Rendered> {
    bail!("registrish-gen caddy is not implemented yet")
}
