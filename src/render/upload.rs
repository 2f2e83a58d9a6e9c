//! The upload plan the object-store scripts share (`s3`, `storj`): which file
//! of the tree becomes which key, with which Content-Type, in which order, and
//! which uploads may be skipped. One plan, one shell driver
//! (`templates/upload_plan.sh.tera`); each store adds only its own commands
//! (how to list the bucket, how to upload a directory of files with headers).
//!
//! The order is what keeps a bucket consistent while it fills: a client that
//! pulls during an upload must never find a tag whose manifest or blobs are not
//! there yet (hand-made uploads get this wrong: hosts.md, issue 5). So:
//! blobs, then manifests by digest (an index only after every manifest it
//! lists), then tags, then `tags/list`, `_catalog`, `/v2/` and the error
//! bodies. Each phase is one upload command, and a phase starts only after the
//! previous one succeeded.
//!
//! Blobs and manifests by digest are content-addressed: a key that already
//! exists holds the right bytes (an object store writes an object whole or not
//! at all), so the script lists the bucket once and skips them. That is what
//! makes a re-run after an interruption finish the job, and a re-publish upload
//! only what is new. Tags and lists move, so they are always uploaded.

use super::{Rendered, Templates};
use crate::media::{MediaType, Role};
use crate::model::{Registry, Repository};
use crate::settings::Common;
use anyhow::{Result, bail};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};

pub const OCTET_STREAM: &str = "application/octet-stream";
pub const JSON: &str = "application/json";

/// One upload command's worth of files: same headers, same skip rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phase {
    /// What the script prints, e.g. "blobs" or "tags".
    pub title: String,
    pub content_type: &'static str,
    /// Content-addressed: skipped when the key exists, cached as immutable.
    pub content_addressed: bool,
    /// Paths relative to TREE, which are also the keys (after the prefix). Sorted.
    pub paths: Vec<String>,
}

impl Phase {
    /// The Cache-Control a store should keep with the objects, as nginx sends it.
    pub fn cache_control(&self, common: &Common) -> String {
        if self.content_addressed {
            format!("public, max-age={}, immutable", common.immutable_max_age)
        } else {
            format!("public, max-age={}", common.tag_max_age)
        }
    }
}

/// The ordered phases of an upload.
#[derive(Debug, Clone)]
pub struct Plan {
    pub phases: Vec<Phase>,
}

impl Plan {
    pub fn object_count(&self) -> usize {
        self.phases.iter().map(|p| p.paths.len()).sum()
    }
}

/// The `/v2/` body, which S3 website endpoints and Storj's linksharing serve
/// for `/v2/` (their index document).
pub fn index_path() -> String {
    format!("v2/{}", crate::scan::INDEX_FILE)
}

/// Builds the plan from the model. The tree must be prepared: the scripts
/// upload files as they are on disk, and digest files, `tags/list`,
/// `_catalog`, the `/v2/` body and the error bodies come from `prepare`.
pub fn plan(registry: &Registry) -> Result<Plan> {
    let missing = crate::prepare::pending(registry);
    if missing > 0 {
        bail!(
            "{missing} files the upload needs are missing or stale in {}: run `registrish-gen prepare {}` first (uploads send the tree's files as they are)",
            registry.root.display(),
            registry.root.display()
        );
    }
    let mut blobs = Vec::new();
    // (level, media type) -> digest paths; level 0 lists no manifest, level n
    // lists manifests of levels below n.
    let mut by_level: BTreeMap<(usize, MediaType), Vec<String>> = BTreeMap::new();
    let mut tags: BTreeMap<MediaType, Vec<String>> = BTreeMap::new();
    for (name, repo) in &registry.repositories {
        blobs.extend(repo.blobs.keys().map(|d| repo.blob_path(d)));
        let levels = levels(repo)?;
        for (digest, manifest) in &repo.manifests {
            by_level
                .entry((levels[digest.as_str()], manifest.media_type))
                .or_default()
                .push(format!("v2/{name}/manifests/{digest}"));
        }
        for (tag, digest) in &repo.tags {
            tags.entry(repo.manifests[digest].media_type)
                .or_default()
                .push(format!("v2/{name}/manifests/{tag}"));
        }
    }
    let mut phases = vec![Phase {
        title: "blobs".into(),
        content_type: OCTET_STREAM,
        content_addressed: true,
        paths: blobs,
    }];
    for ((level, media_type), paths) in by_level {
        phases.push(Phase {
            title: match level {
                0 => "manifests by digest".into(),
                1 => "indexes by digest, after the manifests they list".into(),
                n => format!("indexes by digest, level {n}, after what they list"),
            },
            content_type: media_type.as_str(),
            content_addressed: true,
            paths,
        });
    }
    for (media_type, paths) in tags {
        phases.push(Phase {
            title: "tags".into(),
            content_type: media_type.as_str(),
            content_addressed: false,
            paths,
        });
    }
    // Exactly what prepare writes, so the two never disagree.
    phases.push(Phase {
        title: "tags/list, _catalog, /v2/ and error bodies".into(),
        content_type: JSON,
        content_addressed: false,
        paths: crate::prepare::generated_files(registry)
            .into_iter()
            .map(|(rel, _)| rel)
            .collect(),
    });
    for phase in &mut phases {
        // Sorted paths keep each directory's files together (the script links
        // them a directory at a time) and the output byte-stable.
        phase.paths.sort();
    }
    phases.retain(|p| !p.paths.is_empty());
    Ok(Plan { phases })
}

/// Each manifest's level: 0 when it lists no manifest of this repository,
/// else one more than the highest level it lists. Uploading level by level
/// puts every index after its children, however deeply indexes nest.
fn levels(repo: &Repository) -> Result<HashMap<&str, usize>> {
    fn visit<'a>(
        repo: &'a Repository,
        digest: &'a str,
        done: &mut HashMap<&'a str, usize>,
        path: &mut Vec<&'a str>,
    ) -> Result<usize> {
        if let Some(&level) = done.get(digest) {
            return Ok(level);
        }
        if path.contains(&digest) {
            // Only possible when digest files lie about their bytes (a cycle
            // of hashes cannot be built); scan normally reports that first.
            bail!(
                "v2/{}/manifests/{digest}: manifests list each other in a cycle; cannot order the upload",
                repo.name
            );
        }
        path.push(digest);
        let mut level = 0;
        for r in repo.manifests[digest].references.iter() {
            if r.role == Role::Child && repo.manifests.contains_key(&r.digest) {
                level = level.max(1 + visit(repo, &r.digest, done, path)?);
            }
        }
        path.pop();
        done.insert(digest, level);
        Ok(level)
    }
    let mut done = HashMap::new();
    for digest in repo.manifests.keys() {
        visit(repo, digest, &mut done, &mut Vec::new())?;
    }
    Ok(done)
}

/// Renders a store's script: `template` defines the store's commands and
/// includes the shared driver; `store` is its own settings (bucket, ...);
/// `upload_args` gives each phase's options for the store's upload command
/// (its headers), one shell word each.
pub fn render_script(
    registry: &Registry,
    templates: &Templates,
    template: &str,
    store: Value,
    upload_args: impl Fn(&Phase) -> Vec<String>,
) -> Result<Rendered> {
    let plan = plan(registry)?;
    let Some(tree) = registry.root.to_str() else {
        bail!(
            "{} is not UTF-8; the script could not name it",
            registry.root.display()
        );
    };
    let phases: Vec<Value> = plan
        .phases
        .iter()
        .enumerate()
        .map(|(i, p)| {
            json!({
                "number": i + 1,
                "title": format!("{} ({})", p.title, p.content_type),
                "mode": if p.content_addressed { "new" } else { "all" },
                "args": upload_args(p),
                "paths": p.paths,
            })
        })
        .collect();
    let context = json!({
        "tree": tree,
        "store": store,
        "index": index_path(),
        "phase_count": phases.len(),
        "object_count": plan.object_count(),
        "phases": phases,
    });
    Ok(Rendered {
        text: templates.render_value(template, context)?,
        problems: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::Reference;
    use crate::model::Manifest;
    use std::sync::Arc;

    fn digest(n: u8) -> String {
        format!("sha256:{}", format!("{n:02x}").repeat(32))
    }

    fn manifest(media_type: MediaType, children: &[&str]) -> Manifest {
        let references: Vec<Reference> = children
            .iter()
            .map(|d| Reference {
                digest: d.to_string(),
                size: Some(1),
                role: Role::Child,
                external: false,
            })
            .collect();
        Manifest {
            media_type,
            size: 1,
            references: Arc::from(references),
            digest_file: true,
            first_tag: None,
        }
    }

    #[test]
    fn indexes_come_after_everything_they_list() {
        let (a, b, inner, outer) = (digest(1), digest(2), digest(3), digest(4));
        let mut repo = Repository {
            name: "demo/x".into(),
            ..Repository::default()
        };
        repo.manifests
            .insert(a.clone(), manifest(MediaType::OciManifest, &[]));
        repo.manifests
            .insert(b.clone(), manifest(MediaType::DockerManifest, &[]));
        repo.manifests
            .insert(inner.clone(), manifest(MediaType::OciIndex, &[&a, &b]));
        // An index of an index, and a child that is not in the tree.
        repo.manifests.insert(
            outer.clone(),
            manifest(MediaType::OciIndex, &[&inner, &digest(9)]),
        );
        let levels = levels(&repo).unwrap();
        assert_eq!(levels[a.as_str()], 0);
        assert_eq!(levels[b.as_str()], 0);
        assert_eq!(levels[inner.as_str()], 1);
        assert_eq!(levels[outer.as_str()], 2);
    }

    #[test]
    fn a_cycle_is_refused() {
        let (a, b) = (digest(1), digest(2));
        let mut repo = Repository::default();
        repo.manifests
            .insert(a.clone(), manifest(MediaType::OciIndex, &[&b]));
        repo.manifests
            .insert(b.clone(), manifest(MediaType::OciIndex, &[&a]));
        assert!(levels(&repo).is_err());
    }
}
