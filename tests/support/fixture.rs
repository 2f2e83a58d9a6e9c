//! Fixture trees made by `fixtures/build.py`, a builder that is independent of
//! the code under test: its `--expected` record is ground truth for digests,
//! media types, sizes and the problems a hostile tree must produce.

use super::TempDir;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Fixture {
    pub dir: TempDir,
    pub expected: Value,
}

/// Builds `kind` (`basic`, `hostile`, `big`) with extra builder arguments.
pub fn build(kind: &str, extra: &[&str]) -> Fixture {
    let dir = TempDir::new(kind);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/build.py");
    let expected = dir.join("expected.json");
    let out = Command::new("python3")
        .arg(&script)
        .arg(kind)
        .arg(dir.join("tree"))
        .arg("--expected")
        .arg(&expected)
        .args(extra)
        .output()
        .expect("python3 must be installed to build fixtures");
    assert!(
        out.status.success(),
        "build.py {kind} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = serde_json::from_slice(&std::fs::read(&expected).unwrap()).unwrap();
    Fixture { dir, expected }
}

impl Fixture {
    pub fn tree(&self) -> PathBuf {
        self.dir.join("tree")
    }

    pub fn repositories(&self) -> &serde_json::Map<String, Value> {
        self.expected["repositories"]
            .as_object()
            .expect("repositories")
    }

    /// (name, tag, digest, mediaType, size) for every tag.
    pub fn tags(&self) -> Vec<(String, String, String, String, u64)> {
        let mut out = Vec::new();
        for (name, repo) in self.repositories() {
            for (tag, t) in repo["tags"].as_object().unwrap() {
                out.push((
                    name.clone(),
                    tag.clone(),
                    t["digest"].as_str().unwrap().to_string(),
                    t["mediaType"].as_str().unwrap().to_string(),
                    t["size"].as_u64().unwrap(),
                ));
            }
        }
        out
    }

    /// (name, digest, mediaType, size) for every manifest.
    pub fn manifests(&self) -> Vec<(String, String, String, u64)> {
        let mut out = Vec::new();
        for (name, repo) in self.repositories() {
            for (digest, m) in repo["manifests"].as_object().unwrap() {
                out.push((
                    name.clone(),
                    digest.clone(),
                    m["mediaType"].as_str().unwrap().to_string(),
                    m["size"].as_u64().unwrap(),
                ));
            }
        }
        out
    }

    /// (name, subject digest, the descriptors its referrers index must hold, in order) for
    /// every subject the builder gave OCI 1.1 referrers; the index is also the fallback tag
    /// `sha256-<hex>` in [`Fixture::tags`].
    pub fn referrers(&self) -> Vec<(String, String, Vec<Value>)> {
        let mut out = Vec::new();
        for (name, repo) in self.repositories() {
            let Some(subjects) = repo.get("referrers").and_then(Value::as_object) else {
                continue;
            };
            for (subject, descriptors) in subjects {
                out.push((
                    name.clone(),
                    subject.clone(),
                    descriptors.as_array().unwrap().clone(),
                ));
            }
        }
        out
    }

    /// Whether prepare, not the builder, writes this manifest (a referrers fallback index).
    #[cfg(feature = "e2e")]
    pub fn is_generated(&self, name: &str, digest: &str) -> bool {
        self.repositories()[name]["manifests"][digest]["generated"] == Value::Bool(true)
    }

    /// (name, digest, size) for every blob.
    pub fn blobs(&self) -> Vec<(String, String, u64)> {
        let mut out = Vec::new();
        for (name, repo) in self.repositories() {
            for (digest, size) in repo["blobs"].as_object().unwrap() {
                out.push((name.clone(), digest.clone(), size.as_u64().unwrap()));
            }
        }
        out
    }

    /// Every digest reachable from a tag: the manifest, its children, configs and layers.
    #[cfg(feature = "e2e")]
    pub fn graph(&self, name: &str, tag: &str) -> std::collections::BTreeSet<String> {
        let repo = &self.repositories()[name];
        let mut out = std::collections::BTreeSet::new();
        let mut todo = vec![repo["tags"][tag]["digest"].as_str().unwrap().to_string()];
        while let Some(d) = todo.pop() {
            let m = &repo["manifests"][&d];
            out.insert(d.clone());
            for c in m["children"].as_array().unwrap() {
                todo.push(c.as_str().unwrap().to_string());
            }
            if let Some(c) = m["config"].as_str() {
                out.insert(c.to_string());
            }
            for l in m["layers"].as_array().unwrap() {
                out.insert(l.as_str().unwrap().to_string());
            }
        }
        out
    }

    /// Tags `docker pull` / `ctr images pull` can unpack on linux/amd64.
    #[cfg(feature = "e2e")]
    pub fn runnable(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (name, repo) in self.repositories() {
            for tag in repo["docker_pull"].as_array().unwrap() {
                out.push((name.clone(), tag.as_str().unwrap().to_string()));
            }
        }
        out
    }

    /// (path, kind, needs) of every problem the builder planted.
    pub fn problems(&self) -> Vec<(String, String, Option<String>)> {
        self.expected["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["path"].as_str().unwrap().to_string(),
                    p["kind"].as_str().unwrap().to_string(),
                    p.get("needs").and_then(|n| n.as_str()).map(String::from),
                )
            })
            .collect()
    }
}

/// sha256:<hex> of bytes, computed independently of the tool's own digest module.
pub fn sha256(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("sha256:{:x}", Sha256::digest(bytes))
}
