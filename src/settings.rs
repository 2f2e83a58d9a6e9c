//! Checked settings: CLI flags over `registrish.toml` over defaults, resolved
//! once and passed by reference. Unknown keys in the file are an error (a
//! typo must not silently fall back to a default in a committed config).

use crate::cli::{RenderArgs, TreeArgs};
use anyhow::{Context, Result};
use serde::Deserialize;
use std::fs;
use std::path::{Path, PathBuf};

pub const CONFIG_FILE: &str = "registrish.toml";
/// Tags move; clients re-resolve them. Five minutes keeps a CDN useful.
pub const DEFAULT_TAG_MAX_AGE: u64 = 300;
/// Digest-addressed content never changes.
pub const IMMUTABLE_MAX_AGE: u64 = 31_536_000;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Directory of template overrides, relative to the config file.
    pub templates: Option<PathBuf>,
    #[serde(default)]
    pub cache: CacheConfig,
    #[serde(default)]
    pub nginx: NginxConfig,
    #[serde(default)]
    pub cloudflare: CloudflareConfig,
    #[serde(default)]
    pub s3: S3Config,
    #[serde(default)]
    pub storj: StorjConfig,
    #[serde(default)]
    pub apache: ServerConfig,
    #[serde(default)]
    pub caddy: ServerConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    pub bucket: Option<String>,
    pub prefix: Option<String>,
    pub endpoint: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorjConfig {
    pub bucket: Option<String>,
}

/// Address, name and root for web servers other than nginx.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: Option<String>,
    pub server_name: Option<String>,
    pub root_path: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudflareConfig {
    pub max_files: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    pub tag_max_age: Option<u64>,
    pub immutable_max_age: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NginxConfig {
    pub listen: Option<String>,
    pub server_name: Option<String>,
    pub root_path: Option<String>,
    pub ssl_certificate: Option<String>,
    pub ssl_certificate_key: Option<String>,
}

impl FileConfig {
    pub fn parse(text: &str) -> Result<FileConfig> {
        Ok(toml::from_str(text)?)
    }

    /// `--config FILE` must exist; TREE/registrish.toml is optional.
    pub fn load(args: &TreeArgs) -> Result<(FileConfig, PathBuf)> {
        let (path, required) = match &args.config {
            Some(p) => (p.clone(), true),
            None => (args.tree.join(CONFIG_FILE), false),
        };
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        match fs::read_to_string(&path) {
            Ok(text) => {
                let mut config = FileConfig::parse(&text)
                    .with_context(|| format!("invalid settings in {}", path.display()))?;
                config.templates = config.templates.map(|t| base.join(t));
                Ok((config, base))
            }
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                Ok((FileConfig::default(), base))
            }
            Err(e) => Err(e).with_context(|| format!("cannot read settings {}", path.display())),
        }
    }
}

/// What every renderer needs, resolved.
#[derive(Debug, Clone)]
pub struct Common {
    pub tree: PathBuf,
    pub templates: Option<PathBuf>,
    pub tag_max_age: u64,
    pub immutable_max_age: u64,
    pub strict: bool,
    pub check: Option<PathBuf>,
}

impl Common {
    pub fn resolve(args: &RenderArgs, file: &FileConfig) -> Common {
        Common {
            tree: args.tree.tree.clone(),
            templates: args.templates.clone().or_else(|| file.templates.clone()),
            tag_max_age: args
                .tag_max_age
                .or(file.cache.tag_max_age)
                .unwrap_or(DEFAULT_TAG_MAX_AGE),
            immutable_max_age: file.cache.immutable_max_age.unwrap_or(IMMUTABLE_MAX_AGE),
            strict: args.strict,
            check: args.check.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_errors() {
        assert!(FileConfig::parse("[nginx]\nlisten = \"1.2.3.4:80\"\n").is_ok());
        let err = FileConfig::parse("[nginx]\nlisen = \"x\"\n").unwrap_err();
        assert!(format!("{err:#}").contains("lisen"), "{err:#}");
        assert!(FileConfig::parse("colour = 1\n").is_err());
    }
}
