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
//!
//! `--delete` adds the reverse, after every phase succeeded: keys under `v2/` the plan does not
//! hold are deleted, tags and lists (and any other stray key) first, then manifests by digest
//! (each index before what it lists, read from the objects themselves, since the tree no
//! longer holds them), then blobs. A kept tag's graph is all in the plan, so no deletion ever
//! touches it. `--delete=dry-run` uploads and deletes nothing and prints those keys, one a
//! line, in that order.

use crate::grammar::Digest;
use crate::layout;
use crate::media::{MediaType, Role};
use crate::model::{Registry, Repository};
use crate::routes::{self, JSON, OCTET_STREAM};
use crate::settings::Common;
use crate::templates::Templates;
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};

/// `--delete`: what the script does with keys under `v2/` that the tree does not hold.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum DeleteMode {
    /// Delete them, after every upload succeeded.
    Yes,
    /// Print them (full keys, one a line, in deletion order) and upload or delete nothing.
    DryRun,
}

impl DeleteMode {
    fn as_str(self) -> &'static str {
        match self {
            DeleteMode::Yes => "yes",
            DeleteMode::DryRun => "dry-run",
        }
    }
}

/// One upload command's worth of files: same headers, same skip rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Phase {
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
    pub(crate) fn cache_control(&self, common: &Common) -> String {
        if self.content_addressed {
            common.immutable_cache()
        } else {
            common.tag_cache()
        }
    }
}

/// The ordered phases of an upload.
#[derive(Debug, Clone)]
struct Plan {
    phases: Vec<Phase>,
}

impl Plan {
    fn object_count(&self) -> usize {
        self.phases.iter().map(|p| p.paths.len()).sum()
    }
}

/// Builds the plan from the model. The tree must be prepared (every host command refuses
/// one that is not): the scripts upload files as they are on disk, and digest files,
/// `tags/list`, `_catalog`, the `/v2/` body and the error bodies come from `prepare`.
fn plan(registry: &Registry) -> Result<Plan> {
    let mut blobs = Vec::new();
    // (level, media type) -> digest paths; level 0 lists no manifest, level n
    // lists manifests of levels below n.
    let mut by_level: BTreeMap<(usize, MediaType), Vec<String>> = BTreeMap::new();
    let mut tags: BTreeMap<MediaType, Vec<String>> = BTreeMap::new();
    for repo in registry.repositories.values() {
        blobs.extend(repo.blobs.keys().map(|d| repo.blob_path(d)));
        let levels = levels(repo)?;
        for route in routes::manifests(repo) {
            // Keys are paths in the tree.
            let key = layout::manifest_file(route.name, &route.reference);
            match route.tag() {
                Some(_) => tags.entry(route.media_type).or_default().push(key),
                None => by_level
                    .entry((levels[route.digest], route.media_type))
                    .or_default()
                    .push(key),
            }
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
    // A referrers index names its referrers, so it goes after every manifest by digest; the
    // fallback tags `sha256-<hex>` are tags (in `routes::manifests`) and go with the tags. The
    // empty index goes too, typed as an index: a bucket answers a subject with no referrers
    // with its own 404, and a front (CDN rule, proxy) that maps those misses to this object
    // with 200 completes the API. Without one, oras stops at the first such 404 once a hit
    // told it the API exists ("failed to query referrers API: unsupported", seen with oras
    // 1.3 discover).
    phases.push(Phase {
        title: "referrers indexes, after their subjects and referrers".into(),
        content_type: MediaType::OciIndex.as_str(),
        content_addressed: false,
        paths: registry
            .repositories
            .iter()
            .flat_map(|(name, repo)| {
                repo.referrers
                    .keys()
                    .map(move |subject| layout::referrers_file(name, subject))
            })
            .chain(std::iter::once(layout::empty_referrers_file()))
            .collect(),
    });
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
        // Less the referrers indexes, the empty index and the fallback tags (their own phases
        // above).
        paths: {
            let mut paths = Vec::new();
            routes::for_each_generated_file(registry, |rel, _| {
                if !rel.contains("/manifests/")
                    && !routes::is_referrers_file(&rel)
                    && rel != layout::empty_referrers_file()
                {
                    paths.push(rel);
                }
            });
            paths
        },
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
fn levels(repo: &Repository) -> Result<HashMap<&Digest, usize>> {
    fn visit<'a>(
        repo: &'a Repository,
        digest: &'a Digest,
        done: &mut HashMap<&'a Digest, usize>,
        path: &mut Vec<&'a Digest>,
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
        let Some(manifest) = repo.manifests.get(digest) else {
            return Ok(0);
        };
        for r in manifest.references.iter() {
            if let (Role::Child, Ok(child)) = (r.role, &r.digest)
                && let Some(child) = crate::model::held_key(&repo.manifests, child)
            {
                level = level.max(1 + visit(repo, child, done, path)?);
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

/// What a store's script is made of, besides the plan (see [`render_script`]).
pub(crate) struct Script<'a> {
    pub template: &'a str,
    pub store: Value,
    pub only_blobs: bool,
    pub delete: Option<DeleteMode>,
}

/// Renders a store's script: `template` defines the store's commands and
/// includes the shared driver; `store` is its own settings (bucket, ...);
/// `upload_args` gives each phase's options for the store's upload command
/// (its headers), one shell word each. With `only_blobs` the plan is the blob phase alone:
/// the origin another host's `--blobs-url` redirects to.
pub(crate) fn render_script(
    registry: &Registry,
    templates: &Templates,
    script: Script,
    upload_args: impl Fn(&Phase) -> Vec<String>,
    out: &mut dyn std::io::Write,
) -> Result<()> {
    let Script {
        template,
        store,
        only_blobs,
        delete,
    } = script;
    if only_blobs && delete.is_some() {
        bail!(
            "--delete with --only blobs: a blob origin is pruned after the site that points at it is deployed; run the full script's --delete, or delete blobs by hand"
        );
    }
    let mut plan = plan(registry)?;
    if only_blobs {
        plan.phases.truncate(1);
    }
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
            })
        })
        .collect();
    let context = json!({
        "tree": tree,
        "store": store,
        // The `/v2/` body, which S3 website endpoints and Storj's
        // linksharing serve for `/v2/` (their index document).
        "index": layout::index_file(),
        "phase_count": phases.len(),
        "only_blobs": only_blobs,
        "delete": delete.map(DeleteMode::as_str),
        "object_count": plan.object_count(),
        "phases": phases,
        "plan": (0..plan.object_count().div_ceil(ROWS_PER_PART)).map(crate::templates::slot).collect::<Vec<_>>(),
    });
    // Rows made a part at a time: every path as a template value cost more than the model.
    let mut rows = plan.phases.iter().enumerate().flat_map(|(i, p)| {
        p.paths
            .iter()
            .map(move |path| Value::Array(vec![Value::from(i + 1), Value::String(path.clone())]))
    });
    let parts = plan.object_count().div_ceil(ROWS_PER_PART);
    templates.render_with_slots(template, context, parts, out, |_| {
        let rows: Vec<Value> = rows.by_ref().take(ROWS_PER_PART).collect();
        (
            "upload_plan_rows.tera",
            crate::templates::part_context("rows", rows),
        )
    })
}

/// Plan rows rendered at a time.
const ROWS_PER_PART: usize = 65_536;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::Reference;
    use crate::model::Manifest;
    use std::sync::Arc;

    fn digest(n: u8) -> Digest {
        Digest::parse(&format!("sha256:{}", format!("{n:02x}").repeat(32))).unwrap()
    }

    fn manifest(media_type: MediaType, children: &[&Digest]) -> Manifest {
        let references: Vec<Reference> = children
            .iter()
            .map(|d| Reference {
                digest: Ok(**d),
                size: Some(1),
                role: Role::Child,
                external: false,
            })
            .collect();
        Manifest {
            media_type,
            size: 1,
            references: Arc::from(references),
            artifact: None,
            digest_file: true,
            first_tag: None,
        }
    }

    #[test]
    fn indexes_come_after_everything_they_list() {
        let (a, b, inner, outer) = (digest(1), digest(2), digest(3), digest(4));
        let mut repo = Repository::new(crate::grammar::Name::parse("demo/x").unwrap());
        repo.manifests
            .insert(a, manifest(MediaType::OciManifest, &[]));
        repo.manifests
            .insert(b, manifest(MediaType::DockerManifest, &[]));
        repo.manifests
            .insert(inner, manifest(MediaType::OciIndex, &[&a, &b]));
        // An index of an index, and a child that is not in the tree.
        repo.manifests
            .insert(outer, manifest(MediaType::OciIndex, &[&inner, &digest(9)]));
        let levels = levels(&repo).unwrap();
        assert_eq!(levels[&a], 0);
        assert_eq!(levels[&b], 0);
        assert_eq!(levels[&inner], 1);
        assert_eq!(levels[&outer], 2);
    }

    #[test]
    fn a_cycle_is_refused() {
        let (a, b) = (digest(1), digest(2));
        let mut repo = Repository::new(crate::grammar::Name::parse("x").unwrap());
        repo.manifests
            .insert(a, manifest(MediaType::OciIndex, &[&b]));
        repo.manifests
            .insert(b, manifest(MediaType::OciIndex, &[&a]));
        assert!(levels(&repo).is_err());
    }
}
