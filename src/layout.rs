//! The layout of a served tree: where manifests, blobs, `tags/list`, the
//! catalog, the `/v2/` body and the error bodies live under TREE, and the
//! bytes of the fixed files `prepare` writes. Every other module spells these
//! paths through here.
//!
//! A request path is `/` + the file's path, except `/v2/`, whose body is
//! `v2/index.html` (the index document every static host serves for a
//! directory).

use crate::grammar::{Digest, Name, Tag};
use std::fmt::Display;

pub(crate) const V2: &str = "v2";
/// The `/v2/` body: `{}`.
pub(crate) const INDEX_FILE: &str = "index.html";
pub(crate) const CATALOG_FILE: &str = "_catalog";
pub(crate) const ERRORS_DIR: &str = "_errors";
pub(crate) const INDEX_BODY: &[u8] = b"{}";
/// The directory of a repository holding its referrers indexes, one file per subject named
/// `sha256:<hex>`. No repository can own such a file: a colon is never in a name component.
pub(crate) const REFERRERS_DIR: &str = "referrers";
/// What every host answers for a subject nothing refers to: the OCI distribution-spec 1.1
/// ("Listing Referrers") asks for 200 and an empty index, never a 404. `_` never starts a
/// repository name, so no repository collides with it.
pub(crate) const EMPTY_REFERRERS_FILE: &str = "_referrers_empty.json";
pub(crate) const EMPTY_REFERRERS_BODY: &[u8] =
    br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;

/// `v2/<name>/manifests/<tag or digest>`, relative to TREE.
pub(crate) fn manifest_file(name: &Name, reference: &impl Display) -> String {
    format!("v2/{name}/manifests/{reference}")
}

/// The request path of a manifest: `/` + [`manifest_file`], in one allocation
/// (renderers make one per table row).
pub(crate) fn manifest_request(name: &Name, reference: &impl Display) -> String {
    format!("/v2/{name}/manifests/{reference}")
}

/// The request path of a blob: `/` + [`blob_file`].
pub(crate) fn blob_request(name: &Name, digest: &Digest) -> String {
    format!("/v2/{name}/blobs/{digest}")
}

pub(crate) fn blob_file(name: &Name, digest: &Digest) -> String {
    format!("v2/{name}/blobs/{digest}")
}

pub(crate) fn tags_list_file(name: &Name) -> String {
    format!("v2/{name}/tags/list")
}

/// `v2/<name>/referrers/sha256:<hex>`: the referrers index of one subject, relative to TREE.
pub(crate) fn referrers_file(name: &Name, subject: &Digest) -> String {
    format!("v2/{name}/{REFERRERS_DIR}/{subject}")
}

pub(crate) fn empty_referrers_file() -> String {
    format!("{V2}/{EMPTY_REFERRERS_FILE}")
}

/// The tag clients without the referrers API read and write instead (distribution-spec 1.1,
/// "Referrers Tag Schema"): `sha256-<hex>` of the subject.
pub(crate) fn fallback_tag(subject: &Digest) -> Tag {
    Tag::parse(&format!("sha256-{}", subject.hex())).expect("sha256-<64 hex> is a valid tag")
}

pub(crate) fn catalog_file() -> String {
    format!("{V2}/{CATALOG_FILE}")
}

pub(crate) fn index_file() -> String {
    format!("{V2}/{INDEX_FILE}")
}

pub(crate) fn error_file(code: ErrorCode) -> String {
    format!(
        "{V2}/{ERRORS_DIR}/{}.json",
        code.code().to_ascii_lowercase()
    )
}

/// The request path a file of the tree answers.
pub(crate) fn request_path(file: &str) -> String {
    if file == index_file() {
        "/v2/".to_string()
    } else {
        format!("/{file}")
    }
}

/// Whether a path under `v2/` (split at `/`, `parts[0] == "v2"`) is one
/// `prepare` writes: an output, never an input.
pub(crate) fn is_generated(parts: &[&str]) -> bool {
    let file_name = parts[parts.len() - 1];
    let parent = parts.get(parts.len().wrapping_sub(2)).copied();
    (parts.len() == 2
        && (file_name == INDEX_FILE
            || file_name == CATALOG_FILE
            || file_name == EMPTY_REFERRERS_FILE))
        || parts.get(1) == Some(&ERRORS_DIR)
        || (parts.len() >= 4 && parent == Some(REFERRERS_DIR) && Digest::parse(file_name).is_some())
        || (parent == Some("tags") && file_name == "list")
}

/// The registry errors a static host answers with, as distribution sends them.
/// (Named after the codes, which all end in `_UNKNOWN`.)
#[allow(clippy::enum_variant_names)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ErrorCode {
    ManifestUnknown,
    BlobUnknown,
    NameUnknown,
    /// Any method but GET and HEAD: the registry is read-only (answered with 405).
    Unsupported,
    /// No or wrong credentials on a private registry (answered with 401 and the challenge).
    Unauthorized,
}

impl ErrorCode {
    pub(crate) const ALL: [ErrorCode; 5] = [
        ErrorCode::ManifestUnknown,
        ErrorCode::BlobUnknown,
        ErrorCode::NameUnknown,
        ErrorCode::Unsupported,
        ErrorCode::Unauthorized,
    ];

    pub(crate) fn code(self) -> &'static str {
        match self {
            ErrorCode::ManifestUnknown => "MANIFEST_UNKNOWN",
            ErrorCode::BlobUnknown => "BLOB_UNKNOWN",
            ErrorCode::NameUnknown => "NAME_UNKNOWN",
            ErrorCode::Unsupported => "UNSUPPORTED",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
        }
    }

    pub(crate) fn message(self) -> &'static str {
        match self {
            ErrorCode::ManifestUnknown => "manifest unknown",
            ErrorCode::BlobUnknown => "blob unknown to registry",
            ErrorCode::NameUnknown => "repository name not known to registry",
            // distribution's wording for UNSUPPORTED.
            ErrorCode::Unsupported => "The operation is unsupported.",
            ErrorCode::Unauthorized => "authentication required",
        }
    }

    /// The JSON body, written by serde_json, never by template text.
    pub(crate) fn body(self) -> String {
        serde_json::json!({"errors": [{"code": self.code(), "message": self.message(), "detail": null}]})
            .to_string()
    }
}

/// The error bodies as `{code_lowercase: json}` for templates.
pub(crate) fn error_bodies() -> serde_json::Map<String, serde_json::Value> {
    ErrorCode::ALL
        .iter()
        .map(|c| {
            (
                c.code().to_ascii_lowercase(),
                serde_json::Value::String(c.body()),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_are_registry_json() {
        let v: serde_json::Value =
            serde_json::from_str(&ErrorCode::ManifestUnknown.body()).unwrap();
        assert_eq!(v["errors"][0]["code"], "MANIFEST_UNKNOWN");
        assert_eq!(v["errors"][0]["message"], "manifest unknown");
    }

    #[test]
    fn generated_paths() {
        for (path, generated) in [
            ("v2/index.html", true),
            ("v2/_catalog", true),
            ("v2/_errors/x.json", true),
            ("v2/a/tags/list", true),
            ("v2/a/index.html", false),
            ("v2/a/manifests/list", false),
            ("v2/_referrers_empty.json", true),
            (
                "v2/a/referrers/sha256:0000000000000000000000000000000000000000000000000000000000000000",
                true,
            ),
            ("v2/a/referrers/list", false),
            ("v2/referrers/sha256:x", false),
        ] {
            let parts: Vec<&str> = path.split('/').collect();
            assert_eq!(is_generated(&parts), generated, "{path}");
        }
        assert_eq!(request_path("v2/index.html"), "/v2/");
        assert_eq!(request_path("v2/_catalog"), "/v2/_catalog");
    }
}
