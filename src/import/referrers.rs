//! The referrers a source holds for the manifests `import` brings in (signatures, SBOMs,
//! attestations, any artifact attached to an image), in each form tools leave them in an OCI
//! layout, so that they land with their subject, each with its whole graph:
//!
//! - a manifest whose `subject` names an imported manifest (OCI image-spec 1.1), wherever it
//!   is: oras-go's layout store lists every manifest it writes in index.json, untagged
//!   (`oras copy -r --to-oci-layout`, `oras attach --oci-layout`); regclient's `ocidir` keeps
//!   referrers as bare blobs that only its fallback tag lists. Every object under
//!   `blobs/sha256/` small enough to be a manifest is read, so both are found;
//! - the referrers fallback tag `sha256-<hex>` (distribution-spec 1.1, "Referrers Tag Schema"),
//!   which regclient writes into layouts: its referrers are imported, the tag itself is not.
//!   `prepare` owns that tag in a tree: it computes it from the `subject` of every manifest
//!   there, so it lists the referrers of every import (a tag copied from one layout would list
//!   only that layout's, and being content prepare did not write, prepare would keep it and
//!   report it instead of keeping it current);
//! - cosign's tags `sha256-<hex>.sig`, `.att` and `.sbom` (its legacy scheme, from before
//!   referrers: cosign `pkg/oci/remote`, `SignatureTagSuffix` and the others): plain tags, kept
//!   under their names, whose manifests have no `subject`; `cosign save` writes them untagged,
//!   marked with a `kind` annotation instead (cosign `pkg/oci/layout`), and each becomes the tag
//!   cosign would push it under.

use super::Graph;
use super::source::{Image, Source};
use crate::grammar::Digest;
use crate::media;
use anyhow::{Result, bail};
use std::collections::{BTreeMap, BTreeSet};

/// cosign's legacy tag suffixes (`sha256-<hex>.<suffix>`).
const COSIGN_SUFFIXES: [&str; 3] = ["sig", "att", "sbom"];

/// `cosign save`'s `kind` annotations: the entry that is the image (or index), and the
/// entries holding its signatures and attestations, with the tag suffix cosign pushes them under.
const COSIGN_SUBJECT_KINDS: [&str; 2] = [
    "dev.cosignproject.cosign/image",
    "dev.cosignproject.cosign/imageIndex",
];
const COSIGN_ATTACHED_KINDS: [(&str, &str); 2] = [
    ("dev.cosignproject.cosign/sigs", "sig"),
    ("dev.cosignproject.cosign/atts", "att"),
];

/// `sha256-<hex>`: the subject whose referrers fallback tag this is.
pub(super) fn fallback_subject(tag: &str) -> Option<Digest> {
    tag.strip_prefix("sha256-")
        .and_then(|hex| Digest::parse(&format!("sha256:{hex}")))
}

/// `sha256-<hex>.sig` (`.att`, `.sbom`): the subject of a tag in cosign's legacy scheme.
pub(super) fn cosign_subject(tag: &str) -> Option<Digest> {
    let (fallback, suffix) = tag.rsplit_once('.')?;
    COSIGN_SUFFIXES
        .contains(&suffix)
        .then(|| fallback_subject(fallback))
        .flatten()
}

/// The cosign tag a `cosign save` entry stands for, if it is a signatures or attestations
/// entry of a layout with one image.
fn cosign_save_tag(image: &Image, subject: Option<&Digest>) -> Result<Option<String>> {
    let Some(kind) = image.cosign_kind.as_deref() else {
        return Ok(None);
    };
    let Some((_, suffix)) = COSIGN_ATTACHED_KINDS.iter().find(|(k, _)| *k == kind) else {
        return Ok(None);
    };
    let Some(subject) = subject else {
        bail!(
            "the layout's {kind} entry {} belongs to no single image (cosign save writes one image per layout)",
            image.digest
        );
    };
    Ok(Some(format!("sha256-{}.{suffix}", subject.hex())))
}

/// Everything in a source that attaches to a manifest, by subject digest.
#[derive(Debug, Default)]
pub(super) struct Found {
    /// Manifests with a `subject`: subject -> referrers.
    by_subject: BTreeMap<String, BTreeSet<String>>,
    /// cosign tags: subject -> (tag -> manifest).
    tagged: BTreeMap<String, BTreeMap<String, String>>,
    /// What fallback tags list: subject -> listed manifests.
    listed: BTreeMap<String, BTreeSet<String>>,
}

impl Found {
    /// Every referrer digest (what index.json lists untagged because it is one, not an image).
    pub(super) fn is_referrer(&self, digest: &str) -> bool {
        self.by_subject.values().any(|r| r.contains(digest))
    }

    /// Whether index.json's `entry` is attached to something rather than an image of its own:
    /// a fallback tag, a cosign tag, a `cosign save` signatures entry, an untagged referrer.
    pub(super) fn is_attached(&self, entry: &Image, tag: Option<&str>) -> bool {
        match tag {
            Some(t) => fallback_subject(t).is_some() || cosign_subject(t).is_some(),
            None => {
                self.tagged
                    .values()
                    .any(|t| t.values().any(|d| *d == entry.digest))
                    || self.is_referrer(&entry.digest)
            }
        }
    }
}

/// Reads what attaches to what: index.json's entries (their ref names and `kind`
/// annotations) and every object small enough to be a manifest.
pub(super) fn find(source: &Source) -> Result<Found> {
    let mut found = Found::default();
    let objects = source.objects()?;
    if objects.is_empty() {
        return Ok(found);
    }
    for (digest, bytes) in &objects {
        if source.len(bytes) > media::MAX_MANIFEST_BYTES {
            continue;
        }
        // Layers are most of the bytes: the first byte tells a JSON object from a tar or gzip
        // stream, before anything more is read.
        let Ok((mut r, _)) = source.open_bytes(bytes) else {
            continue;
        };
        let mut first = [0u8; 1];
        if std::io::Read::read(&mut r, &mut first).ok() != Some(1) || first[0] != b'{' {
            continue;
        }
        // Unreadable or not a manifest: not a referrer (if something needs it, the walk says so).
        let Ok(text) = source.read_small(bytes) else {
            continue;
        };
        let Ok(parsed) = media::parse(&text) else {
            continue;
        };
        for r in parsed.references.iter() {
            if let (media::Role::Subject, Ok(subject)) = (r.role, &r.digest) {
                found
                    .by_subject
                    .entry(subject.to_string())
                    .or_default()
                    .insert(digest.clone());
            }
        }
    }
    let cosign_subjects: BTreeSet<&str> = source
        .images
        .iter()
        .filter(|i| {
            i.cosign_kind
                .as_deref()
                .is_some_and(|k| COSIGN_SUBJECT_KINDS.contains(&k))
        })
        .map(|i| i.digest.as_str())
        .collect();
    let cosign_subject_digest = match cosign_subjects.len() {
        1 => cosign_subjects.first().and_then(|d| Digest::parse(d)),
        _ => None,
    };
    for image in &source.images {
        let tag = image.ref_name.as_deref().and_then(super::tag_of);
        match tag.as_deref() {
            Some(t) if fallback_subject(t).is_some() => {
                let subject = fallback_subject(t).expect("checked").to_string();
                let listed = found.listed.entry(subject).or_default();
                if let Some(bytes) = source.locate(&image.digest)
                    && let Ok(text) = source.read_small(&bytes)
                    && let Ok(parsed) = media::parse(&text)
                {
                    for r in parsed.references.iter() {
                        if let (media::Role::Child, Ok(d)) = (r.role, &r.digest) {
                            listed.insert(d.to_string());
                        }
                    }
                }
            }
            Some(t) => {
                if let Some(subject) = cosign_subject(t) {
                    found
                        .tagged
                        .entry(subject.to_string())
                        .or_default()
                        .insert(t.to_string(), image.digest.clone());
                }
            }
            None => {
                if let Some(tag) = cosign_save_tag(image, cosign_subject_digest.as_ref())? {
                    let subject = cosign_subject_digest.as_ref().expect("a tag names it");
                    found
                        .tagged
                        .entry(subject.to_string())
                        .or_default()
                        .insert(tag, image.digest.clone());
                }
            }
        }
    }
    Ok(found)
}

/// What [`attach`] added to an import.
#[derive(Debug, Default)]
pub(super) struct Attached {
    /// cosign tags to write: manifest -> tags.
    pub tags: BTreeMap<String, BTreeSet<String>>,
    /// Referrer manifests (and cosign tags' manifests) brought in for an imported subject.
    pub count: usize,
    /// What a fallback tag lists that the source lacks.
    pub notes: Vec<String>,
    /// How many of the graph's manifests were looked at: [`attach`] goes on from there.
    done: usize,
}

/// Adds to `graph`, until nothing more attaches, every referrer and cosign tag of a manifest
/// in it, each with its whole graph: a referrer can have referrers of its own (a signature of
/// an SBOM). Called again after more was visited, it goes on where it stopped.
pub(super) fn attach(
    source: &Source,
    found: &Found,
    graph: &mut Graph,
    attached: &mut Attached,
) -> Result<()> {
    while attached.done < graph.manifests.len() {
        let subject = graph.manifests[attached.done].0.clone();
        attached.done += 1;
        for referrer in found.by_subject.get(&subject).into_iter().flatten() {
            if !graph.seen.contains(referrer) {
                attached.count += 1;
                super::visit(source, referrer, graph)?;
            }
        }
        for (tag, digest) in found.tagged.get(&subject).into_iter().flatten() {
            if !graph.seen.contains(digest) {
                attached.count += 1;
                super::visit(source, digest, graph)?;
            }
            attached
                .tags
                .entry(digest.clone())
                .or_default()
                .insert(tag.clone());
        }
        for listed in found.listed.get(&subject).into_iter().flatten() {
            // What a fallback tag lists and the source holds is a referrer found above (its
            // `subject` names it); what the source lacks cannot come along.
            if source.locate(listed).is_none() {
                attached.notes.push(format!(
                    "the referrers fallback tag of {subject} lists {listed}, which {} lacks: left out",
                    source.path.display()
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_schemes() {
        let hex = "a".repeat(64);
        let subject = Digest::parse(&format!("sha256:{hex}")).unwrap();
        assert_eq!(fallback_subject(&format!("sha256-{hex}")), Some(subject));
        assert_eq!(fallback_subject(&format!("sha256-{hex}.sig")), None);
        assert_eq!(fallback_subject(&format!("sha512-{hex}")), None);
        assert_eq!(fallback_subject("latest"), None);
        for suffix in ["sig", "att", "sbom"] {
            assert_eq!(
                cosign_subject(&format!("sha256-{hex}.{suffix}")),
                Some(subject)
            );
        }
        assert_eq!(cosign_subject(&format!("sha256-{hex}.json")), None);
        assert_eq!(cosign_subject(&format!("sha256-{hex}")), None);
        assert_eq!(cosign_subject(&format!("sha256-{}.sig", &hex[1..])), None);
    }
}
