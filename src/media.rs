//! Manifest media types: reading a manifest's bytes, deciding its exact type
//! and listing what it references.
//!
//! Clients fail on a wrong or missing Content-Type (skopeo "unsupported schema
//! version", ctr "not found", dockerd "missing signature key"), so the type is
//! taken from `mediaType`, inferred only the way containers/image's
//! `GuessMIMEType` does, and anything else is refused rather than guessed.

use crate::grammar::Digest;
use serde::Deserialize;

/// Largest manifest accepted. distribution rejects manifests over 4 MiB; a
/// bigger file under `manifests/` is almost certainly a misplaced blob.
pub(crate) const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;

/// The manifest types registries serve, each with a one-letter code used as a
/// compact value in host lookup tables (nginx maps, worker tables).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MediaType {
    DockerManifest,
    DockerManifestList,
    OciManifest,
    OciIndex,
    DockerSchema1Signed,
    DockerSchema1,
}

impl MediaType {
    pub const ALL: [MediaType; 6] = [
        MediaType::DockerManifest,
        MediaType::DockerManifestList,
        MediaType::OciManifest,
        MediaType::OciIndex,
        MediaType::DockerSchema1Signed,
        MediaType::DockerSchema1,
    ];

    pub fn is_schema1(self) -> bool {
        matches!(
            self,
            MediaType::DockerSchema1 | MediaType::DockerSchema1Signed
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MediaType::DockerManifest => "application/vnd.docker.distribution.manifest.v2+json",
            MediaType::DockerManifestList => {
                "application/vnd.docker.distribution.manifest.list.v2+json"
            }
            MediaType::OciManifest => "application/vnd.oci.image.manifest.v1+json",
            MediaType::OciIndex => "application/vnd.oci.image.index.v1+json",
            MediaType::DockerSchema1Signed => {
                "application/vnd.docker.distribution.manifest.v1+prettyjws"
            }
            MediaType::DockerSchema1 => "application/vnd.docker.distribution.manifest.v1+json",
        }
    }

    /// One ASCII letter, stable across releases: committed configs embed it.
    pub fn code(self) -> char {
        match self {
            MediaType::DockerManifest => 'd',
            MediaType::DockerManifestList => 'l',
            MediaType::OciManifest => 'o',
            MediaType::OciIndex => 'i',
            MediaType::DockerSchema1Signed => 's',
            MediaType::DockerSchema1 => 'u',
        }
    }

    pub fn parse(s: &str) -> Option<MediaType> {
        MediaType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// What a manifest points at, as far as serving and checking need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// The descriptor's digest, or its text when that is not `sha256:<hex>`
    /// (reported as missing: nothing can be stored under such a name).
    pub digest: Result<Digest, Box<str>>,
    /// `None` for schema 1 `fsLayers`, which carry no size.
    pub size: Option<u64>,
    pub role: Role,
    /// Foreign layers (with `urls`) may legitimately be absent from the tree.
    pub external: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Config,
    Layer,
    Child,
    Subject,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Config => "config",
            Role::Layer => "layer",
            Role::Child => "child manifest",
            Role::Subject => "subject",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Parsed {
    pub media_type: MediaType,
    /// Shared: hard-linked tag and digest files parse to one list.
    pub references: std::sync::Arc<[Reference]>,
    /// What a referrers index says of this manifest; `Some` only when it has a `subject`.
    pub artifact: Option<std::sync::Arc<Artifact>>,
}

/// The fields of a manifest with a `subject` that its descriptor in the subject's referrers
/// index carries (OCI distribution-spec 1.1, "Listing Referrers"): `artifactType` is the
/// manifest's own, else its config's `mediaType`; the annotations are copied as they are.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Artifact {
    pub artifact_type: Option<String>,
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
}

/// Why bytes under `manifests/` cannot be served as a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    NotAManifest(String),
    UnknownMediaType(String),
}

#[derive(Deserialize)]
struct RawManifest {
    #[serde(rename = "schemaVersion")]
    schema_version: Option<serde_json::Value>,
    #[serde(rename = "mediaType")]
    media_type: Option<serde_json::Value>,
    config: Option<RawDescriptor>,
    layers: Option<Vec<RawDescriptor>>,
    manifests: Option<Vec<RawDescriptor>>,
    subject: Option<RawDescriptor>,
    #[serde(rename = "artifactType")]
    artifact_type: Option<String>,
    annotations: Option<std::collections::BTreeMap<String, String>>,
    #[serde(rename = "fsLayers")]
    fs_layers: Option<Vec<RawFsLayer>>,
    signatures: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawDescriptor {
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    digest: String,
    size: u64,
    urls: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct RawFsLayer {
    #[serde(rename = "blobSum")]
    blob_sum: String,
}

pub(crate) fn parse(bytes: &[u8]) -> Result<Parsed, ParseError> {
    // serde reads a struct from a JSON array too (its fields in order), but every manifest
    // format is an object, and clients (Go structs) refuse an array. Checked before parsing,
    // so the answer does not depend on how many fields the struct has.
    if bytes.iter().find(|b| !b" \t\n\r".contains(b)) == Some(&b'[') {
        return Err(ParseError::NotAManifest(
            "a JSON array, not an object".into(),
        ));
    }
    let raw: RawManifest = serde_json::from_slice(bytes)
        .map_err(|e| ParseError::NotAManifest(format!("not a JSON manifest ({e})")))?;
    let media_type = match &raw.media_type {
        Some(serde_json::Value::String(s)) => MediaType::parse(s)
            .ok_or_else(|| ParseError::UnknownMediaType(format!("unknown mediaType {s:?}")))?,
        Some(other) => {
            return Err(ParseError::NotAManifest(format!(
                "mediaType is not a string: {other}"
            )));
        }
        None => infer(&raw)?,
    };
    let mut references = Vec::new();
    fn push(references: &mut Vec<Reference>, d: &RawDescriptor, role: Role) {
        references.push(Reference {
            digest: parse_digest(&d.digest),
            size: Some(d.size),
            role,
            external: d.urls.as_ref().is_some_and(|u| !u.is_empty()),
        })
    }
    match media_type {
        MediaType::DockerManifestList | MediaType::OciIndex => {
            for d in raw.manifests.iter().flatten() {
                push(&mut references, d, Role::Child);
            }
        }
        MediaType::DockerManifest | MediaType::OciManifest => {
            match &raw.config {
                Some(c) => push(&mut references, c, Role::Config),
                None => {
                    return Err(ParseError::NotAManifest(
                        "image manifest without config".into(),
                    ));
                }
            }
            for d in raw.layers.iter().flatten() {
                push(&mut references, d, Role::Layer);
            }
        }
        MediaType::DockerSchema1 | MediaType::DockerSchema1Signed => {
            for l in raw.fs_layers.iter().flatten() {
                references.push(Reference {
                    digest: parse_digest(&l.blob_sum),
                    size: None,
                    role: Role::Layer,
                    external: false,
                });
            }
            // Schema 1 repeats layers; one reference each is enough.
            let mut seen = std::collections::HashSet::new();
            references.retain(|r| seen.insert(r.digest.clone()));
        }
    }
    let artifact = raw.subject.as_ref().map(|s| {
        push(&mut references, s, Role::Subject);
        std::sync::Arc::new(Artifact {
            artifact_type: raw
                .artifact_type
                .clone()
                .or_else(|| raw.config.as_ref().and_then(|c| c.media_type.clone())),
            annotations: raw.annotations.clone(),
        })
    });
    Ok(Parsed {
        media_type,
        references: references.into(),
        artifact,
    })
}

fn parse_digest(s: &str) -> Result<Digest, Box<str>> {
    Digest::parse(s).ok_or_else(|| s.into())
}

/// Follows containers/image `manifest.GuessMIMEType`: schema 1 by version,
/// OCI manifest by `config`, OCI index by `manifests`.
fn infer(raw: &RawManifest) -> Result<MediaType, ParseError> {
    let version = raw.schema_version.as_ref().and_then(|v| v.as_u64());
    if version == Some(1) {
        // GuessMIMEType calls it signed only when a JWS signature parses
        // (libtrust.ParsePrettySignature), which needs at least one; an
        // empty or absent `signatures` is the unsigned `v1+json`.
        let signed = raw
            .signatures
            .as_ref()
            .and_then(|s| s.as_array())
            .is_some_and(|s| !s.is_empty());
        return Ok(if signed {
            MediaType::DockerSchema1Signed
        } else {
            MediaType::DockerSchema1
        });
    }
    if version != Some(2) {
        return Err(ParseError::NotAManifest(
            "no mediaType and no schemaVersion 1 or 2".into(),
        ));
    }
    match (&raw.config, &raw.manifests) {
        (Some(_), None) => Ok(MediaType::OciManifest),
        (None, Some(_)) => Ok(MediaType::OciIndex),
        (Some(_), Some(_)) => Err(ParseError::NotAManifest(
            "no mediaType and both config and manifests".into(),
        )),
        (None, None) => Err(ParseError::NotAManifest(
            "no mediaType, config or manifests".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn explicit_type_wins() {
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
            "config":{{"mediaType":"x","digest":"{D}","size":3}},"layers":[{{"mediaType":"y","digest":"{D}","size":4}}]}}"#
        );
        let p = parse(m.as_bytes()).unwrap();
        assert_eq!(p.media_type, MediaType::DockerManifest);
        assert_eq!(p.references.len(), 2);
        assert_eq!(p.references[1].size, Some(4));
    }

    #[test]
    fn oci_inferred() {
        let m =
            format!(r#"{{"schemaVersion":2,"config":{{"digest":"{D}","size":1}},"layers":[]}}"#);
        assert_eq!(
            parse(m.as_bytes()).unwrap().media_type,
            MediaType::OciManifest
        );
        let i = format!(r#"{{"schemaVersion":2,"manifests":[{{"digest":"{D}","size":1}}]}}"#);
        assert_eq!(parse(i.as_bytes()).unwrap().media_type, MediaType::OciIndex);
    }

    #[test]
    fn schema1_is_signed_only_with_a_signature() {
        let layers = format!(r#""fsLayers":[{{"blobSum":"{D}"}},{{"blobSum":"{D}"}}]"#);
        let signed = format!(
            r#"{{"schemaVersion":1,{layers},"signatures":[{{"header":{{}},"signature":"x","protected":"y"}}]}}"#
        );
        let p = parse(signed.as_bytes()).unwrap();
        assert_eq!(p.media_type, MediaType::DockerSchema1Signed);
        assert_eq!(p.references.len(), 1);
        // Regression (issue 8, bug 5): an empty or absent `signatures` is unsigned.
        for unsigned in [
            format!(r#"{{"schemaVersion":1,{layers},"signatures":[]}}"#),
            format!(r#"{{"schemaVersion":1,{layers}}}"#),
        ] {
            assert_eq!(
                parse(unsigned.as_bytes()).unwrap().media_type.as_str(),
                "application/vnd.docker.distribution.manifest.v1+json",
                "{unsigned}"
            );
        }
    }

    #[test]
    fn refusals() {
        assert!(matches!(parse(b"hello"), Err(ParseError::NotAManifest(_))));
        assert!(matches!(parse(b"{}"), Err(ParseError::NotAManifest(_))));
        assert!(matches!(
            parse(br#"{"schemaVersion":2,"mediaType":"application/x-unknown"}"#),
            Err(ParseError::UnknownMediaType(_))
        ));
    }

    /// Found by the `manifest` fuzz target's invariant (issue 10): an array holding the
    /// struct's fields in order parsed as an OCI index.
    #[test]
    fn a_json_array_is_not_a_manifest() {
        let array = br#"[2,"application/vnd.oci.image.index.v1+json",null,null,[],null,null,null]"#;
        assert_eq!(
            parse(array).unwrap_err(),
            ParseError::NotAManifest("a JSON array, not an object".into())
        );
        // Leading whitespace before an object is still JSON.
        let object = format!(r#" {{"schemaVersion":2,"manifests":[{{"digest":"{D}","size":1}}]}}"#);
        assert_eq!(
            parse(object.as_bytes()).unwrap().media_type,
            MediaType::OciIndex
        );
    }

    #[test]
    fn a_subject_makes_an_artifact() {
        let with_type = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/x-sig",
            "config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{D}","size":2}},"layers":[],
            "subject":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{D}","size":9}},
            "annotations":{{"b":"2","a":"1"}}}}"#
        );
        let a = parse(with_type.as_bytes()).unwrap().artifact.unwrap();
        assert_eq!(a.artifact_type.as_deref(), Some("application/x-sig"));
        assert_eq!(a.annotations.as_ref().map(|m| m.len()), Some(2));
        // No artifactType: the config's mediaType stands in.
        let from_config = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"application/x-cfg","digest":"{D}","size":2}},"layers":[],
            "subject":{{"digest":"{D}","size":9}}}}"#
        );
        let a = parse(from_config.as_bytes()).unwrap().artifact.unwrap();
        assert_eq!(a.artifact_type.as_deref(), Some("application/x-cfg"));
        assert_eq!(a.annotations, None);
        let plain =
            format!(r#"{{"schemaVersion":2,"config":{{"digest":"{D}","size":1}},"layers":[]}}"#);
        assert!(parse(plain.as_bytes()).unwrap().artifact.is_none());
    }

    #[test]
    fn codes_are_unique() {
        let codes: std::collections::HashSet<char> =
            MediaType::ALL.iter().map(|t| t.code()).collect();
        assert_eq!(codes.len(), MediaType::ALL.len());
    }
}
