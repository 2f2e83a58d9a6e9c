//! S3 and S3-compatible stores (AWS, Cloudflare R2, Storj's gateway, MinIO):
//! an AWS CLI upload script for the shared plan in [`super::upload`].
//!
//! S3 keeps only system metadata as real response headers, so each phase is
//! uploaded with its exact `--content-type` and a `--cache-control`; a
//! Docker-Content-Digest header cannot be stored (user metadata comes back as
//! `x-amz-meta-*`, hosts.md): a CDN rule in front adds it where needed
//! (`cloudflare-rules`).
//!
//! Why whole directories: one `aws` process per object costs about half a
//! second of start-up, hours at 100k objects. The script links each phase's
//! files into a scratch directory and uploads it with one `aws s3 cp
//! --recursive` (parallel requests inside one process), after one
//! `list-objects-v2` up front that tells which content-addressed keys exist.

use super::upload::{self, Phase};
use super::{Rendered, Templates};
use crate::cli::S3Args;
use crate::model::Registry;
use crate::settings::{Common, FileConfig};
use anyhow::{Result, bail};
use serde_json::json;

pub struct S3Settings {
    pub bucket: String,
    /// Empty, or `segment/.../` with a trailing slash: keys are prefix + path.
    pub prefix: String,
    pub endpoint: Option<String>,
}

impl S3Settings {
    pub fn resolve(args: &S3Args, file: &FileConfig) -> Result<S3Settings> {
        let Some(bucket) = args.bucket.clone().or_else(|| file.s3.bucket.clone()) else {
            bail!("--bucket is required (or [s3] bucket in registrish.toml)");
        };
        check_bucket(&bucket)?;
        let prefix = normalize_prefix(
            &args
                .prefix
                .clone()
                .or_else(|| file.s3.prefix.clone())
                .unwrap_or_default(),
        )?;
        let endpoint = args.endpoint.clone().or_else(|| file.s3.endpoint.clone());
        if let Some(url) = &endpoint {
            check_endpoint(url)?;
        }
        Ok(S3Settings {
            bucket,
            prefix,
            endpoint,
        })
    }
}

/// Bucket names of AWS (including legacy ones with capitals and `_`), R2,
/// MinIO and Storj all fit this alphabet; anything else is a typo or worse.
pub fn check_bucket(bucket: &str) -> Result<()> {
    let ok = (1..=255).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !ok {
        bail!("--bucket {bucket:?}: expected a bucket name ([a-z0-9.-], as the store allows)");
    }
    Ok(())
}

/// `a/b`, `/a/b/` and `a/b/` all mean keys under `a/b/`. Segments are plain
/// words: the prefix only exists for a proxy that maps a host's root to it
/// (clients need the registry at the root of a host).
fn normalize_prefix(prefix: &str) -> Result<String> {
    let trimmed = prefix.trim_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    let ok = trimmed.split('/').all(|s| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    });
    if !ok {
        bail!(
            "--prefix {prefix:?}: expected path segments of [A-Za-z0-9._-] separated by /, without . or .."
        );
    }
    Ok(format!("{trimmed}/"))
}

fn check_endpoint(url: &str) -> Result<()> {
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() > "https://".len()
        && url
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'\'' | b'"' | b'\\' | b'`'));
    if !ok {
        bail!("--endpoint {url:?}: expected an http:// or https:// URL without quotes or spaces");
    }
    Ok(())
}

pub fn render(
    registry: &Registry,
    common: &Common,
    settings: &S3Settings,
    templates: &Templates,
) -> Result<Rendered> {
    let store = json!({
        "bucket": settings.bucket,
        "prefix": settings.prefix,
        "endpoint": settings.endpoint,
        "index_cache_control": format!("public, max-age={}", common.tag_max_age),
    });
    upload::render_script(registry, templates, "s3.sh.tera", store, |p: &Phase| {
        vec![
            "--content-type".into(),
            p.content_type.into(),
            "--cache-control".into(),
            p.cache_control(common),
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_normalized_or_refused() {
        assert_eq!(normalize_prefix("").unwrap(), "");
        assert_eq!(normalize_prefix("/").unwrap(), "");
        assert_eq!(normalize_prefix("a/b").unwrap(), "a/b/");
        assert_eq!(normalize_prefix("/reg/").unwrap(), "reg/");
        for bad in ["a//b", "../x", "a/./b", "a b", "a'b", "$x", "a\nb"] {
            assert!(normalize_prefix(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn buckets_and_endpoints_are_checked() {
        assert!(check_bucket("my-registry.example").is_ok());
        for bad in ["", "a/b", "a'b", "a b", "s3://x"] {
            assert!(check_bucket(bad).is_err(), "{bad:?}");
        }
        assert!(check_endpoint("https://acc.r2.cloudflarestorage.com").is_ok());
        assert!(check_endpoint("http://127.0.0.1:9000").is_ok());
        for bad in [
            "ftp://x",
            "https://",
            "https://a b",
            "https://x/'",
            "127.0.0.1:9000",
        ] {
            assert!(check_endpoint(bad).is_err(), "{bad:?}");
        }
    }
}
