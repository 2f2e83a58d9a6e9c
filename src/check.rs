//! `check`-only work: hashing blobs on request and the JSON report.

use crate::grammar::Digest;
use crate::model::Registry;
use crate::parallel;
use crate::problem::{Kind, Problem, Severity};

/// Hashes every blob on all cores and reports those whose bytes don't match
/// their name. Opt-in: it reads every byte of the tree.
pub(crate) fn verify_blobs(registry: &mut Registry) {
    let blobs: Vec<(Digest, String)> = registry
        .repositories
        .values()
        .flat_map(|r| r.blobs.keys().map(|d| (*d, r.blob_path(d))))
        .collect();
    let root = registry.root.clone();
    let results = parallel::map(&blobs, |(_, path)| crate::digest::of_file(&root.join(path)));
    for ((digest, path), result) in blobs.iter().zip(results) {
        match result {
            Ok((actual, _)) if &actual == digest => {}
            Ok((actual, _)) => registry.problems.push(Problem::error(
                path,
                Kind::BlobDigestMismatch,
                format!("bytes hash to {actual}, not to the file's name"),
            )),
            Err(e) => registry.problems.push(Problem::error(
                path,
                Kind::Unreadable,
                format!("cannot read: {e}"),
            )),
        }
    }
}

pub(crate) fn json_report(registry: &Registry) -> String {
    let errors = registry
        .problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .count();
    let value = serde_json::json!({
        "repositories": registry.repositories.len(),
        "tags": registry.tag_count(),
        "manifests": registry.manifest_count(),
        "blobs": registry.blob_count(),
        "errors": errors,
        "warnings": registry.problems.len() - errors,
        "problems": registry.problems,
    });
    serde_json::to_string_pretty(&value).expect("serializable")
}
