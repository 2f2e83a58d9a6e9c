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
use super::{Ctx, Host};
use crate::model::Registry;
use crate::output::Outputs;
use crate::output::Shape;
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

pub(crate) struct S3;

/// `[s3]` in registrish.toml, and the flags of `registrish-gen s3`.
#[derive(clap::Args, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct S3Options {
    /// The bucket to upload to.
    #[arg(long, value_name = "BUCKET")]
    pub bucket: Option<String>,
    /// Key prefix inside the bucket (the registry must still be served at a host's root).
    #[arg(long, value_name = "PREFIX")]
    pub prefix: Option<String>,
    /// S3-compatible endpoint URL (R2, MinIO, Storj's gateway, ...).
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Upload only part of the tree: `blobs`, for the origin another host's `--blobs-url`
    /// redirects to (same keys, same skip-what-exists).
    #[arg(long, value_enum, value_name = "PART")]
    pub only: Option<Part>,
    /// After every upload succeeded, delete the bucket's keys under v2/ that TREE does not hold
    /// (tags and lists, then manifests by digest, then blobs); `--delete=dry-run`: the script
    /// prints those keys and uploads and deletes nothing.
    #[arg(long, value_enum, value_name = "MODE", num_args = 0..=1, require_equals = true, default_missing_value = "yes")]
    pub delete: Option<upload::DeleteMode>,
}

/// What `--only` uploads.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Part {
    Blobs,
}

pub(crate) struct S3Settings {
    pub bucket: String,
    /// Empty, or `segment/.../` with a trailing slash: keys are prefix + path.
    pub prefix: String,
    pub endpoint: Option<String>,
    pub only_blobs: bool,
    pub delete: Option<upload::DeleteMode>,
}

impl Host for S3 {
    const NAME: &'static str = "s3";
    const ABOUT: &'static str = "Render an AWS CLI upload script for S3 and S3-compatible stores (R2, MinIO, Storj's gateway).";
    const TITLE: &'static str = "S3";
    // The plan's levels read only an index's children, which the scan keeps.
    const READS_REFERENCES: bool = false;
    const TEMPLATES: &'static [&'static str] =
        &["s3.sh.tera", "upload_plan.sh.tera", "upload_plan_rows.tera"];
    const OUTPUT: Shape = Shape::Stdout;
    const OUTPUT_HELP: &'static str = "Write to FILE atomically instead of standard output.";
    const EXAMPLES: &'static [crate::cli::Example] = &[
        (
            "An upload script for an AWS bucket (then `bash upload.sh`)",
            "registrish-gen s3 /srv/registry --bucket registry -o upload.sh",
        ),
        (
            "For Cloudflare R2",
            "registrish-gen s3 /srv/registry --bucket registry --endpoint https://ACCOUNT.r2.cloudflarestorage.com -o upload.sh",
        ),
        (
            "Only the blobs, for the origin another host's --blobs-url points at",
            "registrish-gen s3 /srv/registry --bucket blobs --only blobs -o blobs.sh",
        ),
    ];
    type Options = S3Options;
    type Settings = S3Settings;

    fn settings(o: S3Options, _: &S3Options, _: &Registry) -> Result<S3Settings> {
        let Some(bucket) = o.bucket else {
            bail!("--bucket is required (or [s3] bucket in registrish.toml)");
        };
        check_bucket(&bucket)?;
        let prefix = normalize_prefix(&o.prefix.unwrap_or_default())?;
        if let Some(url) = &o.endpoint {
            check_endpoint(url)?;
        }
        Ok(S3Settings {
            bucket,
            prefix,
            endpoint: o.endpoint,
            only_blobs: o.only == Some(Part::Blobs),
            delete: o.delete,
        })
    }

    fn render(
        registry: &Registry,
        settings: &S3Settings,
        ctx: &Ctx,
        out: &mut Outputs,
    ) -> Result<()> {
        let store = serde_json::json!({
            "bucket": settings.bucket,
            "prefix": settings.prefix,
            "endpoint": settings.endpoint,
            "index_cache_control": ctx.common.tag_cache(),
        });
        upload::render_script(
            registry,
            ctx.templates,
            upload::Script {
                template: "s3.sh.tera",
                store,
                only_blobs: settings.only_blobs,
                delete: settings.delete,
            },
            |p: &Phase| {
                vec![
                    "--content-type".into(),
                    p.content_type.into(),
                    "--cache-control".into(),
                    p.cache_control(ctx.common),
                ]
            },
            out.file(0),
        )
    }
}

/// Bucket names of AWS (including legacy ones with capitals and `_`), R2,
/// MinIO and Storj all fit this alphabet; anything else is a typo or worse.
pub(crate) fn check_bucket(bucket: &str) -> Result<()> {
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
