//! What the probe requests, and in what order: the work items (a tag list, a manifest, a blob,
//! a referrer), their sources (the tree's routes, or the discovery walk from `/v2/_catalog`),
//! and the worker threads that run them.
//!
//! Memory stays bounded at any size: items come from a lazy source (the routes of one
//! repository at a time, or the chosen tags) plus a queue of what responses led to (an
//! index's children, a manifest's blobs), which is drained first, depth first; bodies are
//! judged and dropped, blobs are hashed as they stream.

use super::checks::{self, Check, ManifestExpect, Profile, Record};
use super::client::{BodyMode, Client, Exchange, NetError, manifest_accept};
use crate::grammar::{Digest, Name, Tag};
use crate::layout;
use crate::media::{self, MAX_MANIFEST_BYTES, MediaType, Role};
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};

/// What is known about a manifest before it is fetched (from the tree or a descriptor).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Known {
    pub media_type: Option<MediaType>,
    pub digest: Option<Digest>,
    pub size: Option<u64>,
}

#[derive(Clone, Debug)]
pub(crate) enum Item {
    /// `tags/list`, compared with the tree's tags when there is a tree.
    TagsList {
        name: Name,
        expected: Option<Vec<String>>,
    },
    Manifest {
        name: Name,
        /// A tag or `sha256:<hex>`.
        reference: String,
        known: Known,
        /// Queue what it references (discovery); with a tree, every path is already planned.
        follow: bool,
    },
    Blob {
        name: Name,
        digest: Digest,
        size: Option<u64>,
    },
    /// A manifest whose `subject` is `subject`: the referrers API, or its tag fallback, must
    /// list it.
    Referrer {
        name: Name,
        subject: Digest,
        referrer: Digest,
    },
}

/// Settings every worker reads.
pub(crate) struct Run<'a> {
    pub client: &'a Client,
    pub profile: Profile,
    pub verify_blobs: bool,
    /// Requests made so far (for the progress line).
    pub requests: &'a AtomicU64,
    /// Discovery: what was already queued, so a blob or manifest shared by many tags is
    /// probed once per repository.
    pub seen: Mutex<HashSet<(Name, Digest, bool)>>,
}

/// Work items: a lazy source, then what responses led to.
pub(crate) struct Queue<'a> {
    state: Mutex<QueueState<'a>>,
    ready: Condvar,
}

struct QueueState<'a> {
    source: Box<dyn Iterator<Item = Item> + Send + 'a>,
    found: VecDeque<Item>,
    in_flight: usize,
}

impl<'a> Queue<'a> {
    pub fn new(source: impl Iterator<Item = Item> + Send + 'a) -> Queue<'a> {
        Queue {
            state: Mutex::new(QueueState {
                source: Box::new(source),
                found: VecDeque::new(),
                in_flight: 0,
            }),
            ready: Condvar::new(),
        }
    }

    /// The next item, or None when the source is dry, the queue empty and no worker busy
    /// (a busy one may still queue more).
    fn pop(&self) -> Option<Item> {
        let mut s = self.state.lock().expect("queue lock");
        loop {
            if let Some(item) = s.found.pop_back().or_else(|| s.source.next()) {
                s.in_flight += 1;
                return Some(item);
            }
            if s.in_flight == 0 {
                self.ready.notify_all();
                return None;
            }
            s = self.ready.wait(s).expect("queue lock");
        }
    }

    fn push(&self, items: Vec<Item>) {
        if items.is_empty() {
            return;
        }
        let mut s = self.state.lock().expect("queue lock");
        s.found.extend(items);
        self.ready.notify_all();
    }

    fn done(&self) {
        let mut s = self.state.lock().expect("queue lock");
        s.in_flight -= 1;
        self.ready.notify_all();
    }
}

/// Runs every item on `jobs` threads; returns the merged record.
pub(crate) fn run_all(run: &Run, queue: &Queue, jobs: usize) -> Record {
    let records: Vec<Record> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..jobs.max(1))
            .map(|_| {
                s.spawn(|| {
                    let mut rec = Record::default();
                    while let Some(item) = queue.pop() {
                        let found = probe_item(run, &mut rec, item);
                        queue.push(found);
                        queue.done();
                    }
                    rec
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("probe worker panicked"))
            .collect()
    });
    let mut out = Record::default();
    for r in records {
        out.merge(r);
    }
    out
}

/// One request, counted; a transport error is recorded and ends the item.
pub(crate) fn send(
    run: &Run,
    rec: &mut Record,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    mode: BodyMode,
) -> Option<Exchange> {
    rec.requests += 1;
    run.requests.fetch_add(1, Ordering::Relaxed);
    match run.client.send(method, path, headers, body, mode) {
        Ok(ex) => Some(ex),
        Err(NetError::TooManyRedirects(hops)) => {
            rec.count(Check::Redirect);
            rec.fail(
                path,
                Check::Redirect,
                format!("at most {} redirects", super::client::MAX_REDIRECTS),
                format!(
                    "{} redirects, the last to {}",
                    hops.len(),
                    hops.last().map(|h| h.location.as_str()).unwrap_or("?")
                ),
                checks::TOO_MANY_REDIRECTS,
            );
            None
        }
        Err(NetError::BadRedirect(why)) => {
            rec.count(Check::Redirect);
            rec.fail(
                path,
                Check::Redirect,
                "a redirect with a Location clients can follow".into(),
                why,
                checks::TOO_MANY_REDIRECTS,
            );
            None
        }
        Err(NetError::Transport(e)) => {
            rec.errors.push((format!("{method} {path}"), e));
            None
        }
    }
}

fn probe_item(run: &Run, rec: &mut Record, item: Item) -> Vec<Item> {
    match item {
        Item::TagsList { name, expected } => {
            let path = format!("/{}", layout::tags_list_file(&name));
            if let Some(ex) = send(run, rec, "GET", &path, &[], None, BodyMode::Keep(64 << 20)) {
                rec.hops(&path, &ex, false);
                checks::tags_list(rec, &path, &ex, name.as_str(), expected.as_deref());
            }
            Vec::new()
        }
        Item::Manifest {
            name,
            reference,
            known,
            follow,
        } => manifest(run, rec, name, &reference, known, follow),
        Item::Blob { name, digest, size } => {
            blob(run, rec, &name, &digest, size);
            Vec::new()
        }
        Item::Referrer {
            name,
            subject,
            referrer,
        } => {
            referrer_listed(run, rec, &name, &subject, &referrer);
            Vec::new()
        }
    }
}

fn manifest(
    run: &Run,
    rec: &mut Record,
    name: Name,
    reference: &str,
    known: Known,
    follow: bool,
) -> Vec<Item> {
    let path = format!("/v2/{name}/manifests/{reference}");
    let accept = manifest_accept();
    let headers = [("Accept", accept.as_str())];
    let Some(get) = send(
        run,
        rec,
        "GET",
        &path,
        &headers,
        None,
        BodyMode::Keep(MAX_MANIFEST_BYTES as usize + 1),
    ) else {
        return Vec::new();
    };
    rec.hops(&path, &get, false);
    rec.count(Check::ManifestStatus);
    if get.status != 200 {
        rec.fail(
            &path,
            Check::ManifestStatus,
            "200 (GET)".into(),
            format!("{}", get.status),
            checks::MANIFEST_MISSING,
        );
        return Vec::new();
    }
    let by_digest = Digest::parse(reference);
    let parsed = media::parse(&get.body);
    let media_type = match (known.media_type, &parsed) {
        (Some(t), _) => t,
        (None, Ok(p)) => p.media_type,
        (None, Err(e)) => {
            let why = match e {
                media::ParseError::NotAManifest(w) | media::ParseError::UnknownMediaType(w) => w,
            };
            rec.fail(
                &path,
                Check::ManifestBodyDigest,
                "a manifest".into(),
                format!("{} bytes that are not one: {why}", get.body_len),
                checks::BAD_BODY,
            );
            return Vec::new();
        }
    };
    let want = ManifestExpect {
        media_type: media_type.as_str(),
        digest: known.digest.or(by_digest).unwrap_or_else(|| get.digest()),
        size: known.size.unwrap_or(get.body_len),
        by_digest: by_digest.is_some(),
    };
    checks::manifest(rec, run.profile, &path, "GET", &get, &want);
    if let Some(head) = send(run, rec, "HEAD", &path, &headers, None, BodyMode::Keep(0)) {
        rec.count(Check::ManifestStatus);
        if head.status != 200 {
            rec.fail(
                &path,
                Check::ManifestStatus,
                "200 (HEAD)".into(),
                format!("{}", head.status),
                checks::MANIFEST_MISSING,
            );
        } else {
            checks::manifest(rec, run.profile, &path, "HEAD", &head, &want);
        }
    }
    if !follow {
        return Vec::new();
    }
    let Ok(parsed) = parsed else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let mut seen = run.seen.lock().expect("seen lock");
    let digest = get.digest();
    if by_digest.is_none() && seen.insert((name.clone(), digest, false)) {
        // The same manifest by digest: what containerd fetches after resolving the tag.
        found.push(Item::Manifest {
            name: name.clone(),
            reference: digest.to_string(),
            known: Known {
                media_type: Some(media_type),
                digest: Some(digest),
                size: Some(get.body_len),
            },
            follow: false,
        });
    }
    for r in parsed.references.iter() {
        let Ok(d) = r.digest.clone() else { continue };
        match r.role {
            Role::Child if seen.insert((name.clone(), d, false)) => found.push(Item::Manifest {
                name: name.clone(),
                reference: d.to_string(),
                known: Known {
                    media_type: None,
                    digest: Some(d),
                    size: r.size,
                },
                follow: true,
            }),
            // Foreign layers (with `urls`) live elsewhere by design.
            Role::Config | Role::Layer if !r.external && seen.insert((name.clone(), d, true)) => {
                found.push(Item::Blob {
                    name: name.clone(),
                    digest: d,
                    size: r.size,
                })
            }
            Role::Subject => found.push(Item::Referrer {
                name: name.clone(),
                subject: d,
                referrer: digest,
            }),
            _ => {}
        }
    }
    found
}

fn blob(run: &Run, rec: &mut Record, name: &Name, digest: &Digest, size: Option<u64>) {
    let path = layout::blob_request(name, digest);
    let Some(head) = send(run, rec, "HEAD", &path, &[], None, BodyMode::Keep(0)) else {
        return;
    };
    rec.hops(&path, &head, true);
    if !checks::blob_head(rec, run.profile, &path, &head, digest, size) {
        return;
    }
    let size = size.or_else(|| {
        head.header("content-length")
            .and_then(|l| l.trim().parse().ok())
    });
    if let Some(size) = size.filter(|s| *s > 0)
        && let Some(range) = send(
            run,
            rec,
            "GET",
            &path,
            &[("Range", "bytes=0-9")],
            None,
            BodyMode::Keep(16),
        )
    {
        checks::blob_range(rec, &path, &range, size);
    }
    if run.verify_blobs
        && let Some(get) = send(run, rec, "GET", &path, &[], None, BodyMode::Hash)
    {
        checks::blob_body(rec, &path, &get, digest, size);
    }
}

/// The index at `referrers/<subject>` (or, on a 404, at the `sha256-<hex>` tag) lists
/// `referrer` (distribution-spec 1.1, "Listing Referrers" and its tag schema fallback).
fn referrer_listed(run: &Run, rec: &mut Record, name: &Name, subject: &Digest, referrer: &Digest) {
    rec.count(Check::Referrers);
    let index = MediaType::OciIndex.as_str();
    let api = format!("/v2/{name}/referrers/{subject}");
    let tag = format!("/v2/{name}/manifests/sha256-{}", subject.hex());
    let mut listed = false;
    let mut got = Vec::new();
    for path in [&api, &tag] {
        let Some(ex) = send(
            run,
            rec,
            "GET",
            path,
            &[("Accept", index)],
            None,
            BodyMode::Keep(MAX_MANIFEST_BYTES as usize),
        ) else {
            return;
        };
        got.push(format!("{path}: {}", ex.status));
        if ex.status == 200 && lists(&ex.body, referrer) {
            listed = true;
            break;
        }
    }
    if !listed {
        rec.fail(
            &api,
            Check::Referrers,
            format!(
                "an index listing {referrer} (the API, or the tag sha256-{})",
                subject.hex()
            ),
            got.join("; "),
            checks::MISSING_REFERRER,
        );
    }
}

fn lists(body: &[u8], digest: &Digest) -> bool {
    let want = digest.to_string();
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("manifests")?.as_array().map(|m| {
                m.iter()
                    .any(|d| d.get("digest").and_then(|x| x.as_str()) == Some(want.as_str()))
            })
        })
        .unwrap_or(false)
}

/// Every `stride`-th of `total` items, the first always: a sample that is the same on every
/// run and spread over the whole tree.
pub(crate) fn stride(total: usize, sample: Option<usize>) -> usize {
    match sample {
        Some(n) if n > 0 && n < total => total.div_ceil(n),
        _ => 1,
    }
}

/// The tree's items, one repository at a time: its tag list, every manifest by tag and by
/// digest, every blob (every `stride`-th manifest and blob when sampling), and every manifest
/// with a `subject` (its referrer).
pub(crate) fn tree_items(
    registry: &crate::model::Registry,
    stride: usize,
) -> impl Iterator<Item = Item> + Send + '_ {
    let mut n = 0usize;
    registry.repositories.values().flat_map(move |repo| {
        let mut items = Vec::new();
        if !repo.tags.is_empty() {
            items.push(Item::TagsList {
                name: repo.name.clone(),
                expected: Some(repo.tags.keys().map(|t| t.as_str().to_string()).collect()),
            });
        }
        for m in crate::routes::manifests(repo) {
            n += 1;
            if !(n - 1).is_multiple_of(stride) {
                continue;
            }
            items.push(Item::Manifest {
                name: repo.name.clone(),
                reference: m.reference.to_string(),
                known: Known {
                    media_type: Some(m.media_type),
                    digest: Some(*m.digest),
                    size: Some(m.size),
                },
                follow: false,
            });
        }
        for (_, digest, size) in crate::routes::blobs(repo) {
            n += 1;
            if !(n - 1).is_multiple_of(stride) {
                continue;
            }
            items.push(Item::Blob {
                name: repo.name.clone(),
                digest: *digest,
                size,
            });
        }
        for (digest, m) in &repo.manifests {
            for r in m.references.iter() {
                if let (Role::Subject, Ok(subject)) = (r.role, &r.digest) {
                    items.push(Item::Referrer {
                        name: repo.name.clone(),
                        subject: *subject,
                        referrer: *digest,
                    });
                }
            }
        }
        items
    })
}

/// Discovery's items: the chosen tags (every `stride`-th over all repositories), followed.
pub(crate) fn tag_items(
    tags: Vec<(Name, Tag)>,
    stride: usize,
) -> impl Iterator<Item = Item> + Send {
    tags.into_iter()
        .step_by(stride)
        .map(|(name, tag)| Item::Manifest {
            name,
            reference: tag.as_str().to_string(),
            known: Known::default(),
            follow: true,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_spread_and_stable() {
        assert_eq!(stride(100, None), 1);
        assert_eq!(stride(100, Some(1000)), 1);
        assert_eq!(stride(300_000, Some(1000)), 300);
        assert_eq!(stride(1001, Some(1000)), 2);
    }

    #[test]
    fn an_index_lists_a_referrer() {
        let d = crate::digest::of_bytes(b"x");
        let body = format!(r#"{{"manifests":[{{"digest":"{d}"}}]}}"#);
        assert!(lists(body.as_bytes(), &d));
        assert!(!lists(b"<html>", &d));
    }
}
