//! `probe`: proves a deployed registry from the outside, the way clients see it. It owns the
//! pull-protocol checks ([`checks`]), the HTTP client they go through ([`client`]) and the
//! walk that decides what to request ([`walk`]): every route of a TREE (from [`crate::routes`])
//! or what `/v2/_catalog` and the tag lists lead to. It reads the tree only through the scan
//! and writes nothing.
//!
//! Exit codes: 0 no failure, 1 failures, 2 usage or network errors (a verdict that could not
//! be reached: the registry unreachable, a path that got no answer).

mod checks;
mod client;
mod walk;

pub use checks::Profile;
use checks::{Check, Finding, Record};
use client::{BodyMode, Client};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use walk::{Item, Queue, Run};

use crate::grammar::{Digest, Name, Tag};
use crate::layout::ErrorCode;
use anyhow::{Context, Result, bail};

/// The environment variables that carry credentials, so they stay out of the process list.
pub(crate) const USER_ENV: &str = "REGISTRISH_PROBE_USER";
pub(crate) const PASSWORD_ENV: &str = "REGISTRISH_PROBE_PASSWORD";

#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProbeFormat {
    Text,
    Json,
}

/// `registrish-gen probe URL [TREE]`.
#[derive(clap::Args, Debug)]
pub struct ProbeArgs {
    /// The registry's origin: http(s)://host[:port], as clients reach it.
    pub url: String,
    /// The tree the registry serves: every route it must answer is probed. Without it, the
    /// probe discovers repositories through /v2/_catalog and each tags/list.
    pub tree: Option<PathBuf>,
    /// Probe N manifests and blobs spread over the whole registry (the same N on every run),
    /// besides every tag list and the fixed checks.
    #[arg(long, value_name = "N")]
    pub sample: Option<usize>,
    /// Download and hash every blob probed (streamed, in bounded memory).
    #[arg(long)]
    pub verify_blobs: bool,
    /// Do not verify TLS certificates.
    #[arg(long)]
    pub insecure: bool,
    /// Trust the CA certificates in FILE (PEM) instead of the built-in roots.
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Basic credentials; the password may come from REGISTRISH_PROBE_PASSWORD instead, and
    /// both from REGISTRISH_PROBE_USER / REGISTRISH_PROBE_PASSWORD.
    #[arg(long, value_name = "USER[:PASS]")]
    pub user: Option<String>,
    /// Requests in flight at once.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub jobs: usize,
    /// Seconds to wait for a connection, a response or the next bytes of a body.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub timeout: u64,
    /// What the host can do by design: `registry` (everything), `s3` (no Docker-Content-Digest,
    /// misses are the store's own 404: warnings rather than failures).
    #[arg(long, value_enum, value_name = "PROFILE", default_value_t = Profile::Registry)]
    pub expect: Profile,
    #[arg(long, value_enum, default_value_t = ProbeFormat::Text)]
    pub format: ProbeFormat,
}

/// Runs the probe; `Ok(true)` when nothing failed.
pub(crate) fn run(args: &ProbeArgs) -> Result<bool> {
    if args.jobs == 0 || args.jobs > 256 {
        bail!("--jobs must be between 1 and 256");
    }
    if args.timeout == 0 {
        bail!("--timeout must be at least 1 second");
    }
    if args.sample == Some(0) {
        bail!("--sample must be at least 1");
    }
    let options = client::Options {
        insecure: args.insecure,
        ca_cert: args.ca_cert.clone(),
        credentials: credentials(args.user.as_deref())?,
        timeout: Duration::from_secs(args.timeout),
    };
    let client = Client::new(&args.url, &options)?;
    // The tree first: a bad TREE is a usage error before any request.
    let registry = match &args.tree {
        Some(tree) => Some(crate::scan::scan(
            tree,
            crate::scan::Options {
                thorough: false,
                blob_sizes: true,
                drop_references: false,
            },
        )?),
        None => None,
    };
    let requests = Arc::new(AtomicU64::new(0));
    let run = Run {
        client: &client,
        profile: args.expect,
        verify_blobs: args.verify_blobs,
        requests: &requests,
        seen: Mutex::new(Default::default()),
    };
    let progress = Progress::start(&requests);
    let mut rec = Record::default();
    let result = (|| -> Result<()> {
        base(&run, &mut rec)?;
        let (repos, source): (Vec<Name>, Box<dyn Iterator<Item = Item> + Send + '_>) =
            match &registry {
                Some(registry) => {
                    let names: Vec<Name> = registry.repositories.keys().cloned().collect();
                    let expected: Vec<String> =
                        names.iter().map(|n| n.as_str().to_string()).collect();
                    if let Some(ex) = walk::send(
                        &run,
                        &mut rec,
                        "GET",
                        "/v2/_catalog",
                        &[],
                        None,
                        BodyMode::Keep(64 << 20),
                    ) {
                        rec.hops("/v2/_catalog", &ex, false);
                        checks::catalog(&mut rec, "/v2/_catalog", &ex, Some(&expected));
                    }
                    let total: usize = registry
                        .repositories
                        .values()
                        .map(|r| r.tags.len() + r.manifests.len() + r.blobs.len())
                        .sum();
                    let stride = walk::stride(total, args.sample);
                    (names, Box::new(walk::tree_items(registry, stride)))
                }
                None => {
                    let (names, tags) = discover(&run, &mut rec)?;
                    let stride = walk::stride(tags.len(), args.sample);
                    (names, Box::new(walk::tag_items(tags, stride)))
                }
            };
        once(&run, &mut rec, &repos, registry.as_ref());
        let queue = Queue::new(source);
        rec.merge(walk::run_all(&run, &queue, args.jobs));
        Ok(())
    })();
    progress.stop();
    result?;
    let report = Report::new(rec, &client, args);
    match args.format {
        ProbeFormat::Text => report.print_text(),
        ProbeFormat::Json => println!("{}", report.json()),
    }
    report.print_summary();
    if !report.record.errors.is_empty() {
        bail!(
            "{} requests got no answer (first: {}: {}); the verdict above is incomplete",
            report.record.errors.len(),
            report.record.errors[0].0,
            report.record.errors[0].1
        );
    }
    Ok(report.record.failures.is_empty())
}

/// `--user USER[:PASS]`, else the environment; a user without a password takes it from
/// REGISTRISH_PROBE_PASSWORD.
fn credentials(flag: Option<&str>) -> Result<Option<(String, String)>> {
    let given = match flag {
        Some(u) => Some(u.to_string()),
        None => std::env::var(USER_ENV).ok().filter(|u| !u.is_empty()),
    };
    let Some(given) = given else {
        return Ok(None);
    };
    let (user, password) = match given.split_once(':') {
        Some((u, p)) => (u.to_string(), p.to_string()),
        None => (
            given.clone(),
            std::env::var(PASSWORD_ENV).with_context(|| {
                format!("--user {given} has no password: give USER:PASS or set {PASSWORD_ENV}")
            })?,
        ),
    };
    if user.is_empty() {
        bail!("--user: the user name is empty");
    }
    Ok(Some((user, password)))
}

/// `GET /v2/`: the one request that must get an answer, or nothing else can be judged.
fn base(run: &Run, rec: &mut Record) -> Result<()> {
    let ex = match run
        .client
        .send("GET", "/v2/", &[], None, BodyMode::Keep(64 << 10))
    {
        Ok(ex) => ex,
        Err(e) => bail!(
            "{}/v2/: {e}{}",
            run.client.origin(),
            if run.client.origin().starts_with("https") {
                " (for a private CA use --ca-cert FILE, or --insecure)"
            } else {
                ""
            }
        ),
    };
    rec.requests += 1;
    rec.hops("/v2/", &ex, false);
    checks::base(rec, "/v2/", &ex, run.client.has_credentials());
    if ex.status == 401 {
        let challenge = ex.header("www-authenticate").unwrap_or("(no challenge)");
        if run.client.has_credentials() {
            bail!(
                "{}/v2/ refused the credentials (401, {challenge})",
                run.client.origin()
            );
        }
        if !challenge.to_ascii_lowercase().starts_with("basic") {
            bail!(
                "{}/v2/ asks for token authentication ({challenge}); probe speaks Basic only",
                run.client.origin()
            );
        }
        bail!(
            "{}/v2/ asks for credentials ({challenge}): give --user USER[:PASS] or set {USER_ENV} and {PASSWORD_ENV}",
            run.client.origin()
        );
    }
    Ok(())
}

/// Every page of a list that pages with `Link: <...>; rel="next"` (distribution's catalog):
/// static hosts send one page.
fn pages(run: &Run, rec: &mut Record, first: &str) -> Vec<client::Exchange> {
    let mut out = Vec::new();
    let mut path = first.to_string();
    for _ in 0..10_000 {
        let Some(ex) = walk::send(run, rec, "GET", &path, &[], None, BodyMode::Keep(64 << 20))
        else {
            break;
        };
        rec.hops(&path, &ex, false);
        let next = ex.header("link").and_then(|l| {
            let (target, rel) = l.split_once(';')?;
            rel.contains("rel=\"next\"")
                .then(|| target.trim().trim_start_matches('<').trim_end_matches('>'))
                .filter(|t| t.starts_with('/'))
                .map(String::from)
        });
        out.push(ex);
        match next {
            Some(n) => path = n,
            None => break,
        }
    }
    out
}

/// Discovery: the catalog, then each repository's tags (checked as lists on the way).
/// Repositories discovered, and every tag of each.
type Discovered = (Vec<Name>, Vec<(Name, Tag)>);

fn discover(run: &Run, rec: &mut Record) -> Result<Discovered> {
    let mut names = Vec::new();
    for ex in pages(run, rec, "/v2/_catalog") {
        match checks::catalog(rec, "/v2/_catalog", &ex, None) {
            Some(repos) => names.extend(repos),
            None => bail!(
                "{}/v2/_catalog answered {}: without it repositories cannot be discovered; give the TREE the registry serves",
                run.client.origin(),
                ex.status
            ),
        }
    }
    let mut repos = Vec::new();
    let mut tags = Vec::new();
    for n in names {
        let Some(name) = Name::parse(&n) else {
            rec.warn(
                "/v2/_catalog",
                Check::Catalog,
                "repository names in the OCI grammar".into(),
                format!("{n:?}"),
                "clients refuse the name; not probed",
            );
            continue;
        };
        let path = format!("/v2/{name}/tags/list");
        for ex in pages(run, rec, &path) {
            for t in checks::tags_list(rec, &path, &ex, name.as_str(), None).unwrap_or_default() {
                match Tag::parse(&t) {
                    Some(tag) => tags.push((name.clone(), tag)),
                    None => rec.warn(
                        &path,
                        Check::TagsList,
                        "tags in the OCI grammar".into(),
                        format!("{t:?}"),
                        "clients refuse the tag; not probed",
                    ),
                }
            }
        }
        repos.push(name);
    }
    Ok((repos, tags))
}

/// A digest nothing has: the sha256 of this string.
fn unknown_digest() -> Digest {
    crate::digest::of_bytes(b"registrish-gen probe: a digest no registry holds")
}

/// The checks made once per run: misses, writes, HEAD bodies, the referrers API.
fn once(run: &Run, rec: &mut Record, repos: &[Name], registry: Option<&crate::model::Registry>) {
    let zero = unknown_digest();
    let miss = |rec: &mut Record, path: &str, code: ErrorCode| {
        if let Some(ex) = walk::send(run, rec, "GET", path, &[], None, BodyMode::Keep(64 << 10)) {
            checks::miss(rec, run.profile, path, &ex, code.code());
        }
    };
    miss(
        rec,
        "/v2/registrish-probe/no-such-repository/tags/list",
        ErrorCode::NameUnknown,
    );
    let Some(name) = repos.first() else {
        return;
    };
    miss(
        rec,
        &format!("/v2/{name}/manifests/registrish-probe-no-such-tag"),
        ErrorCode::ManifestUnknown,
    );
    miss(
        rec,
        &format!("/v2/{name}/manifests/{zero}"),
        ErrorCode::ManifestUnknown,
    );
    miss(
        rec,
        &format!("/v2/{name}/blobs/{zero}"),
        ErrorCode::BlobUnknown,
    );

    // A tag and a blob to write to and to HEAD raw: from the tree, or the first tag listed.
    let (tag, blob) = match registry.and_then(|r| r.repositories.get(name)) {
        Some(repo) => (
            repo.tags.keys().next().map(|t| t.as_str().to_string()),
            repo.blobs.keys().next().copied(),
        ),
        None => (first_tag(run, rec, name), None),
    };
    let accept = client::manifest_accept();
    if let Some(tag) = &tag {
        let path = format!("/v2/{name}/manifests/{tag}");
        // PUT the tag's own bytes with its own type: a host that wrongly accepts it stores
        // what it already had, and a registry server re-tags the same manifest.
        if let Some(get) = walk::send(
            run,
            rec,
            "GET",
            &path,
            &[("Accept", accept.as_str())],
            None,
            BodyMode::Keep(crate::media::MAX_MANIFEST_BYTES as usize),
        ) && get.status == 200
        {
            let ct = get
                .header("content-type")
                .unwrap_or("application/json")
                .to_string();
            if let Some(ex) = walk::send(
                run,
                rec,
                "PUT",
                &path,
                &[("Content-Type", ct.as_str())],
                Some(&get.body),
                BodyMode::Keep(4096),
            ) {
                checks::write(rec, &path, "PUT", &ex);
            }
        }
        head_body(run, rec, &path);
        // Referrers of a digest the registry holds: an index, or a 404 for the tag fallback.
        if let Some(get) = walk::send(
            run,
            rec,
            "HEAD",
            &path,
            &[("Accept", accept.as_str())],
            None,
            BodyMode::Keep(0),
        ) && let Some(d) = get.header("docker-content-digest").and_then(Digest::parse)
        {
            referrers_api(run, rec, name, &d);
        }
    }
    if let Some(blob) = blob {
        head_body(run, rec, &crate::layout::blob_request(name, &blob));
    }
    let uploads = format!("/v2/{name}/blobs/uploads/");
    if let Some(ex) = walk::send(
        run,
        rec,
        "POST",
        &uploads,
        &[("Content-Length", "0")],
        Some(b""),
        BodyMode::Keep(4096),
    ) {
        checks::write(rec, &uploads, "POST", &ex);
        // A registry that opened an upload session: cancel it, leaving nothing behind.
        if ex.status == 202
            && let Some(location) = ex.header("location")
        {
            let target = location
                .strip_prefix(run.client.origin())
                .unwrap_or(location)
                .to_string();
            if target.starts_with('/') {
                let _ = walk::send(run, rec, "DELETE", &target, &[], None, BodyMode::Keep(0));
            }
        }
    }
    let delete = format!("/v2/{name}/manifests/{zero}");
    if let Some(ex) = walk::send(run, rec, "DELETE", &delete, &[], None, BodyMode::Keep(4096)) {
        checks::write(rec, &delete, "DELETE", &ex);
    }
}

fn first_tag(run: &Run, rec: &mut Record, name: &Name) -> Option<String> {
    let path = format!("/v2/{name}/tags/list");
    let ex = walk::send(run, rec, "GET", &path, &[], None, BodyMode::Keep(64 << 20))?;
    let v: serde_json::Value = serde_json::from_slice(&ex.body).ok()?;
    v.get("tags")?.get(0)?.as_str().map(String::from)
}

/// HEAD over a raw connection: no bytes may follow the headers.
fn head_body(run: &Run, rec: &mut Record, path: &str) {
    let Some(result) = run.client.raw_head_extra(path, Duration::from_secs(10)) else {
        return;
    };
    rec.requests += 1;
    rec.count(Check::HeadBody);
    match result {
        Ok(0) => {}
        Ok(n) => rec.fail(
            path,
            Check::HeadBody,
            "no body after a HEAD response".into(),
            format!("{n} bytes after the headers"),
            checks::HEAD_WITH_BODY,
        ),
        Err(e) => rec.errors.push((format!("HEAD {path} (raw)"), e)),
    }
}

/// `GET referrers/<digest>`: an OCI index (the API), or 404 (clients then use the tag schema).
fn referrers_api(run: &Run, rec: &mut Record, name: &Name, digest: &Digest) {
    let path = format!("/v2/{name}/referrers/{digest}");
    let index = crate::media::MediaType::OciIndex.as_str();
    let Some(ex) = walk::send(
        run,
        rec,
        "GET",
        &path,
        &[("Accept", index)],
        None,
        BodyMode::Keep(crate::media::MAX_MANIFEST_BYTES as usize),
    ) else {
        return;
    };
    rec.count(Check::Referrers);
    let is_index = ex.header("content-type").map(|t| t.trim()) == Some(index)
        && serde_json::from_slice::<serde_json::Value>(&ex.body)
            .is_ok_and(|v| v.get("manifests").is_some_and(|m| m.is_array()));
    let expected = format!("200 with an OCI index ({index}), or 404");
    let got = format!(
        "{} ({}, {} bytes{})",
        ex.status,
        ex.header("content-type").unwrap_or("no Content-Type"),
        ex.body_len,
        checks::error_code(&ex.body)
            .map(|c| format!(", {c}"))
            .unwrap_or_default()
    );
    match ex.status {
        200 if is_index => {}
        // A warning, not a failure: pulls never read referrers, and registries without the
        // API (distribution 2.8, a bare bucket behind a front that maps every miss) answer the
        // path with their repository-level 404. `oras discover` is what stops, and it is named.
        404 if checks::error_code(&ex.body).as_deref() == Some(ErrorCode::NameUnknown.code()) => {
            rec.fail_or_warn(true, &path, Check::Referrers, expected, got, checks::BAD_REFERRERS)
        }
        404 => {}
        _ => rec.warn(
            &path,
            Check::Referrers,
            expected,
            got,
            "oras falls back to the `sha256-<hex>` tag on an answer that is not an index (seen here); a client that trusts the API (cosign, containerd 2) may not",
        ),
    }
}

/// The merged record, sorted, and what the output needs.
struct Report {
    record: Record,
    origin: String,
    profile: Profile,
}

impl Report {
    fn new(mut record: Record, client: &Client, args: &ProbeArgs) -> Report {
        record.failures.sort();
        record.failures.dedup();
        record.warnings.sort();
        record.warnings.dedup();
        record.errors.sort();
        Report {
            record,
            origin: client.origin().to_string(),
            profile: args.expect,
        }
    }

    fn json(&self) -> String {
        let checks: serde_json::Map<String, serde_json::Value> = self
            .record
            .checks
            .iter()
            .map(|(c, n)| (c.name().to_string(), (*n).into()))
            .collect();
        let errors: Vec<serde_json::Value> = self
            .record
            .errors
            .iter()
            .map(|(r, e)| serde_json::json!({"request": r, "error": e}))
            .collect();
        serde_json::to_string_pretty(&serde_json::json!({
            "url": self.origin,
            "profile": format!("{:?}", self.profile).to_ascii_lowercase(),
            "requests": self.record.requests,
            "checks": checks,
            "failures": self.record.failures,
            "warnings": self.record.warnings,
            "errors": errors,
        }))
        .expect("serializable")
    }

    fn print_text(&self) {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let line = |f: &Finding| {
            let breaks = if f.breaks.is_empty() {
                format!("({})", f.why)
            } else {
                format!("breaks {}: {}", f.breaks.join(", "), f.why)
            };
            format!(
                "{} [{}] expected {}, got {}; {breaks}",
                escape(&f.path),
                f.check.name(),
                escape(&f.expected),
                escape(&f.got)
            )
        };
        for f in &self.record.failures {
            if writeln!(out, "FAIL {}", line(f)).is_err() {
                return; // `probe | head` is not an error.
            }
        }
        for f in &self.record.warnings {
            if writeln!(out, "warning: {}", line(f)).is_err() {
                return;
            }
        }
        for (r, e) in &self.record.errors {
            if writeln!(out, "error: {} got no answer: {}", escape(r), escape(e)).is_err() {
                return;
            }
        }
    }

    /// One line per check on stderr: how often it ran, failed and warned.
    fn print_summary(&self) {
        let r = &self.record;
        let mut lines = Vec::new();
        for check in Check::ALL {
            let ran = r.checks.get(&check).copied().unwrap_or(0);
            let failed = r.failures.iter().filter(|f| f.check == check).count();
            let warned = r.warnings.iter().filter(|f| f.check == check).count();
            if ran + failed as u64 + warned as u64 == 0 {
                continue;
            }
            lines.push(format!(
                "  {:<24} {ran:>8} checked {failed:>6} failed {warned:>6} warnings",
                check.name()
            ));
        }
        eprintln!(
            "registrish-gen probe {} ({} profile): {} requests; {} redirected ({} to another origin)",
            self.origin,
            format!("{:?}", self.profile).to_ascii_lowercase(),
            r.requests,
            r.redirected,
            r.redirected_away
        );
        for l in lines {
            eprintln!("{l}");
        }
        eprintln!(
            "registrish-gen probe: {} failures, {} warnings, {} requests without an answer",
            r.failures.len(),
            r.warnings.len(),
            r.errors.len()
        );
    }
}

/// Control characters escaped, so a hostile header value cannot forge output lines.
fn escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// Requests done so far on stderr, only when it is a terminal (never in a pipe or a CI log).
struct Progress {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    fn start(requests: &Arc<AtomicU64>) -> Progress {
        let stop = Arc::new(AtomicBool::new(false));
        if !std::io::stderr().is_terminal() {
            return Progress { stop, handle: None };
        }
        let (s, c) = (stop.clone(), requests.clone());
        let handle = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                eprint!("\rprobe: {} requests", c.load(Ordering::Relaxed));
                std::thread::sleep(Duration::from_millis(200));
            }
            eprint!("\r\x1b[K");
        });
        Progress {
            stop,
            handle: Some(handle),
        }
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle {
            let _ = h.join();
        }
    }
}
