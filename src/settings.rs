//! Checked settings: CLI flags over `registrish.toml` over defaults, resolved
//! once and passed by reference. The file's top level holds what every host
//! shares (`templates`, `[cache]`); each host's section (`[nginx]`, ...) is
//! that host's options struct, the same one clap fills from its flags, merged
//! by [`merge`]. Unknown keys are an error (a typo must not silently fall back
//! to a default in a committed config).

use crate::address::BlobsUrl;
use crate::auth::{DEFAULT_REALM, Htpasswd, Realm};
use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Deserialize;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fs;
use std::path::{Path, PathBuf};

pub(crate) const CONFIG_FILE: &str = "registrish.toml";
/// Tags move; clients re-resolve them. Five minutes keeps a CDN useful.
pub(crate) const DEFAULT_TAG_MAX_AGE: u64 = 300;
/// Digest-addressed content never changes.
pub(crate) const IMMUTABLE_MAX_AGE: u64 = 31_536_000;

#[derive(Args, Debug, Clone)]
pub(crate) struct TreeArgs {
    /// The registry tree (the directory holding v2/).
    #[arg(default_value = ".")]
    pub tree: PathBuf,
    /// Settings file; default: TREE/registrish.toml when present.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Flags every host command shares.
#[derive(Args, Debug, Clone)]
pub(crate) struct CommonArgs {
    #[command(flatten)]
    pub tree: TreeArgs,
    /// Exit 1 (writing nothing) when the output differs from what would be generated now.
    #[arg(long, value_name = "FILE")]
    pub check: Option<PathBuf>,
    /// Use templates from DIR, by file name, instead of the built-in ones.
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,
    /// Cache-Control max-age, in seconds, for tags, tags/list and _catalog.
    #[arg(long, value_name = "SECONDS")]
    pub tag_max_age: Option<u64>,
    /// Exit 1 when the tree has problems, instead of leaving the bad parts out.
    #[arg(long)]
    pub strict: bool,
    /// Where to write (each host says what; standard output by default for one file).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Answer every blob request with a 307 to URL/v2/<name>/blobs/sha256:<hex> (a bucket or
    /// any static origin holding the same keys); manifests, lists and errors stay here.
    #[arg(long, value_name = "URL")]
    pub blobs_url: Option<String>,
    /// Private registry: every path under /v2/ needs credentials from this htpasswd file
    /// (bcrypt entries only; outside TREE). nginx, apache and caddy.
    #[arg(long, value_name = "FILE")]
    pub htpasswd: Option<PathBuf>,
    /// The realm of the Basic challenge (default: registry).
    #[arg(long, value_name = "REALM")]
    pub realm: Option<String>,
}

/// The shared part of `registrish.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Shared {
    /// Directory of template overrides, relative to the config file.
    templates: Option<PathBuf>,
    #[serde(default)]
    cache: CacheConfig,
    #[serde(default)]
    blobs: BlobsConfig,
    #[serde(default)]
    auth: AuthConfig,
}

/// `[auth]`: a private registry's credentials.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuthConfig {
    /// Relative to the settings file.
    pub htpasswd: Option<PathBuf>,
    pub realm: Option<String>,
}

/// `[blobs]`: where blobs are served from when not from this host.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BlobsConfig {
    pub url: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CacheConfig {
    pub tag_max_age: Option<u64>,
    pub immutable_max_age: Option<u64>,
}

/// `registrish.toml`, checked: the shared keys, and each host's section kept
/// as TOML until that host reads it into its options.
#[derive(Debug, Default)]
pub(crate) struct FileConfig {
    pub templates: Option<PathBuf>,
    pub cache: CacheConfig,
    pub blobs: BlobsConfig,
    pub auth: AuthConfig,
    sections: toml::Table,
}

impl FileConfig {
    /// Parses the file; `hosts` are the section names it may hold (each
    /// host checks its own section's keys when it reads it).
    pub(crate) fn parse(text: &str, hosts: &[&str]) -> Result<FileConfig> {
        let mut table: toml::Table = toml::from_str(text)?;
        let mut sections = toml::Table::new();
        for host in hosts {
            if let Some(section) = table.remove(*host) {
                sections.insert(host.to_string(), section);
            }
        }
        let shared: Shared = toml::Value::Table(table).try_into()?;
        Ok(FileConfig {
            templates: shared.templates,
            cache: shared.cache,
            blobs: shared.blobs,
            auth: shared.auth,
            sections,
        })
    }

    /// `--config FILE` must exist; TREE/registrish.toml is optional.
    pub(crate) fn load(args: &TreeArgs, hosts: &[&str]) -> Result<FileConfig> {
        let (path, required) = match &args.config {
            Some(p) => (p.clone(), true),
            None => (args.tree.join(CONFIG_FILE), false),
        };
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        match fs::read_to_string(&path) {
            Ok(text) => {
                let mut config = FileConfig::parse(&text, hosts)
                    .with_context(|| format!("invalid settings in {}", path.display()))?;
                config.templates = config.templates.map(|t| base.join(t));
                config.auth.htpasswd = config.auth.htpasswd.map(|h| base.join(h));
                Ok(config)
            }
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                Ok(FileConfig::default())
            }
            Err(e) => Err(e).with_context(|| format!("cannot read settings {}", path.display())),
        }
    }

    /// A host's section, or nothing.
    pub(crate) fn section(&self, host: &str) -> Option<&toml::Value> {
        self.sections.get(host)
    }

    /// Sets one key of a host's section (a flag of another command that
    /// stands for it, like `check --max-files`).
    pub(crate) fn set(&mut self, host: &str, key: &str, value: toml::Value) {
        let section = self
            .sections
            .entry(host.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let toml::Value::Table(t) = section {
            t.insert(key.to_string(), value);
        }
    }
}

/// Reads a host's section into its options (unknown keys are errors).
pub(crate) fn from_section<T: DeserializeOwned + Default>(
    section: Option<&toml::Value>,
) -> Result<T> {
    match section {
        Some(v) => Ok(v.clone().try_into()?),
        None => Ok(T::default()),
    }
}

/// Flag > file, for any options struct: every field the flags set (not
/// `None`, not a `false` switch) replaces the file's. Defaults are the host's
/// to apply, on what is still unset.
pub(crate) fn merge<T: Serialize + DeserializeOwned>(flags: &T, file: &T) -> Result<T> {
    let mut merged = serde_json::to_value(file).context("settings")?;
    let flags = serde_json::to_value(flags).context("settings")?;
    let (Some(merged_map), Some(flag_map)) = (merged.as_object_mut(), flags.as_object()) else {
        bail!("host options must be a struct");
    };
    for (key, value) in flag_map {
        if !value.is_null() && value != &serde_json::Value::Bool(false) {
            merged_map.insert(key.clone(), value.clone());
        }
    }
    serde_json::from_value(merged).context("settings")
}

/// What every renderer needs, resolved.
#[derive(Debug, Clone)]
pub(crate) struct Common {
    pub tree: PathBuf,
    pub templates: Option<PathBuf>,
    pub tag_max_age: u64,
    pub immutable_max_age: u64,
    pub strict: bool,
    pub check: Option<PathBuf>,
    pub output: Option<PathBuf>,
    /// Where blob requests are redirected (`--blobs-url`, else `[blobs] url`).
    pub blobs_url: Option<BlobsUrl>,
    /// The htpasswd file of a private registry (`--htpasswd`, else `[auth] htpasswd`), read.
    pub htpasswd: Option<Htpasswd>,
    /// The Basic challenge's realm.
    pub realm: Realm,
}

/// `--blobs-url`, else `[blobs] url`, checked (host commands and `check` alike).
pub(crate) fn blobs_url(flag: Option<&str>, file: &FileConfig) -> Result<Option<BlobsUrl>> {
    flag.or(file.blobs.url.as_deref())
        .map(BlobsUrl::parse)
        .transpose()
}

impl Common {
    pub(crate) fn resolve(args: &CommonArgs, file: &FileConfig) -> Result<Common> {
        let blobs_url = blobs_url(args.blobs_url.as_deref(), file)?;
        let htpasswd = args
            .htpasswd
            .as_deref()
            .or(file.auth.htpasswd.as_deref())
            .map(Htpasswd::load)
            .transpose()?;
        let realm = Realm::parse(
            args.realm
                .as_deref()
                .or(file.auth.realm.as_deref())
                .unwrap_or(DEFAULT_REALM),
        )?;
        Ok(Common {
            tree: args.tree.tree.clone(),
            templates: args.templates.clone().or_else(|| file.templates.clone()),
            tag_max_age: args
                .tag_max_age
                .or(file.cache.tag_max_age)
                .unwrap_or(DEFAULT_TAG_MAX_AGE),
            immutable_max_age: file.cache.immutable_max_age.unwrap_or(IMMUTABLE_MAX_AGE),
            strict: args.strict,
            check: args.check.clone(),
            output: args.output.clone(),
            blobs_url,
            htpasswd,
            realm,
        })
    }

    /// The htpasswd file's absolute path, for the configs that read it.
    pub(crate) fn htpasswd_path(&self) -> Option<String> {
        self.htpasswd
            .as_ref()
            .map(|h| h.path.to_string_lossy().into_owned())
    }

    pub(crate) fn tag_cache(&self) -> String {
        format!("public, max-age={}", self.tag_max_age)
    }

    pub(crate) fn immutable_cache(&self) -> String {
        format!("public, max-age={}, immutable", self.immutable_max_age)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_errors() {
        let hosts = &["nginx"];
        let config = FileConfig::parse("[nginx]\nlisten = \"1.2.3.4:80\"\n", hosts).unwrap();
        assert!(config.section("nginx").is_some());
        assert!(FileConfig::parse("colour = 1\n", hosts).is_err());
        assert!(FileConfig::parse("[nosuchhost]\nx = 1\n", hosts).is_err());
        assert!(FileConfig::parse("[cache]\ntag_max_ag = 1\n", hosts).is_err());
    }

    #[derive(Debug, Default, PartialEq, Serialize, serde::Deserialize)]
    struct Opts {
        a: Option<String>,
        b: Option<u64>,
        on: bool,
    }

    #[test]
    fn flags_win_over_the_file_field_by_field() {
        let file = Opts {
            a: Some("file".into()),
            b: Some(1),
            on: true,
        };
        let flags = Opts {
            a: Some("flag".into()),
            b: None,
            on: false,
        };
        assert_eq!(
            merge(&flags, &file).unwrap(),
            Opts {
                a: Some("flag".into()),
                b: Some(1),
                on: true
            }
        );
        assert_eq!(
            merge(&Opts::default(), &Opts::default()).unwrap(),
            Opts::default()
        );
    }
}
