//! The checks: each has a stable name ([`Check`]), and each way it can fail knows the clients
//! it breaks and why, in words a user recognises from a failed pull ([`Break`]). The functions
//! here judge one response against what it should be; they do no I/O, so they are unit-tested
//! on hand-made responses.
//!
//! Sources of the client behaviour (re-read them before changing a verdict): the
//! project's shared/reference/hosts.md (the pull protocol, behaviour seen here with real
//! clients) and shared/reference/peers.md (what each client requires, from its source), and the
//! client matrix in tests/support/matrix.rs, which pins what each client does on each host.

use super::client::Exchange;
use crate::grammar::Digest;
use serde::Serialize;
use std::collections::BTreeMap;

/// Every check, by its stable name (the `check` field of a finding, the keys of `checks`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Check {
    ApiVersion,
    ManifestStatus,
    ManifestContentType,
    ManifestDigestHeader,
    ContentLength,
    HeadBody,
    ManifestBodyDigest,
    BlobHead,
    BlobDigestHeader,
    BlobRange,
    BlobBodyDigest,
    TagsList,
    Catalog,
    Miss404,
    WriteRefused,
    Redirect,
    CacheControl,
    Referrers,
}

impl Check {
    pub(crate) const ALL: [Check; 18] = [
        Check::ApiVersion,
        Check::ManifestStatus,
        Check::ManifestContentType,
        Check::ManifestDigestHeader,
        Check::ContentLength,
        Check::HeadBody,
        Check::ManifestBodyDigest,
        Check::BlobHead,
        Check::BlobDigestHeader,
        Check::BlobRange,
        Check::BlobBodyDigest,
        Check::TagsList,
        Check::Catalog,
        Check::Miss404,
        Check::WriteRefused,
        Check::Redirect,
        Check::CacheControl,
        Check::Referrers,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Check::ApiVersion => "api-version",
            Check::ManifestStatus => "manifest-status",
            Check::ManifestContentType => "manifest-content-type",
            Check::ManifestDigestHeader => "manifest-digest-header",
            Check::ContentLength => "content-length",
            Check::HeadBody => "head-body",
            Check::ManifestBodyDigest => "manifest-body-digest",
            Check::BlobHead => "blob-head",
            Check::BlobDigestHeader => "blob-digest-header",
            Check::BlobRange => "blob-range",
            Check::BlobBodyDigest => "blob-body-digest",
            Check::TagsList => "tags-list",
            Check::Catalog => "catalog",
            Check::Miss404 => "miss-404",
            Check::WriteRefused => "write-refused",
            Check::Redirect => "redirect",
            Check::CacheControl => "cache-control",
            Check::Referrers => "referrers",
        }
    }
}

impl Serialize for Check {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// What a host can do by design: what it cannot is a warning, not a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    /// Everything a registry answers (nginx, Apache, Caddy, the Pages worker, a real registry).
    Registry,
    /// A bare S3-style bucket (S3, R2, MinIO, Storj): objects carry Content-Type only, so no
    /// Docker-Content-Digest, and a miss is the store's own 404 (or 403) with an XML body.
    S3,
}

/// The clients a failure breaks, and why, as a user meets it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Break {
    pub clients: &'static [&'static str],
    pub why: &'static str,
}

const EVERY_CLIENT: &[&str] = &[
    "docker",
    "containerd",
    "podman",
    "skopeo",
    "crane",
    "oras",
    "helm",
    "regctl",
];

/// peers.md ("manifest Content-Type" row) and hosts.md (seen here: skopeo/podman "unsupported
/// schema version", ctr "not found", dockerd "missing signature key").
pub(crate) const WRONG_TYPE: Break = Break {
    clients: &["docker", "containerd", "podman", "skopeo", "crane"],
    why: "a manifest not typed exactly by its media type is read as Docker schema 1: docker fails \"missing signature key\", skopeo and podman \"unsupported schema version\", ctr \"not found\"; crane misreads an index as an image",
};
/// Go's `Header.Get` reads the first of two headers; nginx's `add_header Content-Type` adds
/// a second one after the default type (hosts.md).
pub(crate) const TWO_TYPES: Break = Break {
    clients: &["docker", "containerd", "podman", "skopeo", "crane"],
    why: "Go clients read only the first Content-Type; any but the exact media type is read as Docker schema 1 (docker: \"missing signature key\")",
};
/// tests/support/matrix.rs: on a bare bucket only `oras resolve` by tag fails, saying
/// `missing required header "Docker-Content-Digest"`; crane, regctl and helm fall back to GET.
pub(crate) const NO_DIGEST_HEADER: Break = Break {
    clients: &["oras"],
    why: "`oras resolve` by tag needs Docker-Content-Digest on HEAD (oras-go: missing required header \"Docker-Content-Digest\"); docker, containerd, skopeo, crane and helm fall back to GET and hash",
};
pub(crate) const WRONG_DIGEST_HEADER: Break = Break {
    clients: &["docker", "containerd", "crane", "oras"],
    why: "clients take the header as the manifest's digest and then refuse the bytes (\"digest mismatch\", \"manifest verification failed\")",
};
/// hosts.md: wrangler's static assets drop Content-Length on HEAD; dockerd then fails.
pub(crate) const NO_LENGTH_ON_HEAD: Break = Break {
    clients: &["docker"],
    why: "dockerd refuses a manifest HEAD without a length: \"missing or empty Content-Length header\" (skopeo and containerd fall back to GET)",
};
pub(crate) const WRONG_LENGTH: Break = Break {
    clients: EVERY_CLIENT,
    why: "a Content-Length that is not the size of the content: clients read a truncated body, wait for bytes that never come, or refuse a size that does not match the descriptor",
};
/// hosts.md: containerd HEADs the tag, then GETs `manifests/sha256:<hex>`.
pub(crate) const MANIFEST_MISSING: Break = Break {
    clients: &["containerd", "docker", "podman", "skopeo", "crane"],
    why: "clients fetch manifests by digest (containerd after resolving a tag, everyone for an index's platforms): without it `ctr pull` fails \"not found\" and docker \"manifest unknown\"",
};
pub(crate) const BAD_BODY: Break = Break {
    clients: EVERY_CLIENT,
    why: "the bytes do not hash to the digest they are served under: clients refuse them (\"digest mismatch\", \"manifest verification failed\")",
};
/// RFC 9110 section 9.3.2: a HEAD response has no content; extra bytes are read as the next
/// response on a kept-alive connection.
pub(crate) const HEAD_WITH_BODY: Break = Break {
    clients: EVERY_CLIENT,
    why: "bytes after a HEAD response are read as the start of the next response on the same connection",
};
pub(crate) const BLOB_MISSING: Break = Break {
    clients: &[
        "docker",
        "containerd",
        "podman",
        "skopeo",
        "crane",
        "oras",
        "helm",
    ],
    why: "a config or layer that does not answer 200 fails every pull of the images using it",
};
/// peers.md, "Range on blobs": containers/image resumes with Range and a 200 aborts it;
/// containerd accepts a 200.
pub(crate) const NO_RANGE: Break = Break {
    clients: &["skopeo", "podman"],
    why: "containers/image resumes an interrupted layer download with a Range request and aborts when it gets 200 instead of 206 with Content-Range (containerd accepts the whole body)",
};
/// hosts.md, tags/list: `skopeo inspect` fails on a 404 here.
pub(crate) const BAD_TAGS_LIST: Break = Break {
    clients: &["skopeo", "crane", "regctl", "helm"],
    why: "`skopeo inspect` reads the tag list and fails without it; `crane ls` and `regctl tag ls` print it; `helm pull` without --version picks the newest version from it",
};
pub(crate) const BAD_CATALOG: Break = Break {
    clients: &["crane", "regctl"],
    why: "`crane catalog` and `regctl repo ls` list repositories from /v2/_catalog",
};
/// hosts.md (an HTML 404 shows in docker as "invalid character '<'"); seen here with an SPA
/// fallback: `crane digest` of a missing tag prints the HTML page's digest and exits 0.
pub(crate) const MISS_ANSWERED: Break = Break {
    clients: &["crane", "skopeo", "regctl", "docker"],
    why: "a miss that does not answer 404 makes what does not exist look present: `crane digest` and `skopeo inspect --raw` of a missing tag answer with the page's digest or bytes (a script asking whether a tag exists always hears yes), cosign reads the page as its `sha256-<hex>.sig` tag, and docker fails \"missing signature key\" instead of \"manifest unknown\"",
};
pub(crate) const MISS_NOT_JSON: Break = Break {
    clients: &["docker"],
    why: "a 404 without the registry's JSON error: the pull still fails, but docker prints \"invalid character '<' looking for beginning of value\" instead of \"manifest unknown\"",
};
pub(crate) const WRITE_ACCEPTED: Break = Break {
    clients: &["docker push", "skopeo copy", "crane copy"],
    why: "a write answered 2xx looks accepted: a push \"succeeds\" or fails later with a confusing error, and the host may have changed what it serves",
};
pub(crate) const TOO_MANY_REDIRECTS: Break = Break {
    clients: EVERY_CLIENT,
    why: "clients follow at most 10 redirects (Go's default) and need a Location on each",
};
/// peers.md, /v2/ row: containers/image and go-containerregistry accept only 200 or 401.
pub(crate) const BAD_BASE: Break = Break {
    clients: &["podman", "skopeo", "crane", "oras", "helm"],
    why: "containers/image (skopeo, podman) and go-containerregistry (crane) accept only 200 or 401 from /v2/; oras and helm need a challenge on 401",
};
/// peers.md, referrers row; seen here: oras falls back to the tag schema on a 200 that is not
/// an index, but stops on a 404 whose code is NAME_UNKNOWN ("repository name not known").
pub(crate) const BAD_REFERRERS: Break = Break {
    clients: &["oras"],
    why: "`oras discover` stops at a referrers 404 that says NAME_UNKNOWN (oras-go reads it as the repository missing) instead of falling back to the `sha256-<hex>` tag; the API should answer an OCI index, or a 404 without that code",
};
pub(crate) const MISSING_REFERRER: Break = Break {
    clients: &["oras", "crane", "containerd"],
    why: "a manifest with a `subject` that neither the referrers API nor the `sha256-<hex>` tag lists is not found by `oras discover` or cosign",
};

/// One finding: a failure or a warning.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Finding {
    pub path: String,
    pub check: Check,
    pub expected: String,
    pub got: String,
    pub breaks: Vec<&'static str>,
    /// Why those clients fail (or, for a warning, why it still matters).
    pub why: String,
}

/// Counts and findings of one worker (merged at the end, so workers share no lock).
#[derive(Debug, Default)]
pub(crate) struct Record {
    pub checks: BTreeMap<Check, u64>,
    pub failures: Vec<Finding>,
    pub warnings: Vec<Finding>,
    /// Requests that got no HTTP answer: (path, error). The verdict is incomplete (exit 2).
    pub errors: Vec<(String, String)>,
    pub requests: u64,
    /// Requests redirected, and of those, to another origin.
    pub redirected: u64,
    pub redirected_away: u64,
}

impl Record {
    pub fn count(&mut self, check: Check) {
        *self.checks.entry(check).or_default() += 1;
    }

    pub fn fail(&mut self, path: &str, check: Check, expected: String, got: String, b: Break) {
        self.failures.push(finding(path, check, expected, got, b));
    }

    pub fn warn(&mut self, path: &str, check: Check, expected: String, got: String, why: &str) {
        self.warnings.push(Finding {
            path: path.to_string(),
            check,
            expected,
            got,
            breaks: Vec::new(),
            why: why.to_string(),
        });
    }

    /// A failure, or under a profile that cannot do better, a warning naming the same clients.
    pub fn fail_or_warn(
        &mut self,
        warn: bool,
        path: &str,
        check: Check,
        expected: String,
        got: String,
        b: Break,
    ) {
        let f = finding(path, check, expected, got, b);
        if warn {
            self.warnings.push(f);
        } else {
            self.failures.push(f);
        }
    }

    pub fn merge(&mut self, other: Record) {
        for (k, v) in other.checks {
            *self.checks.entry(k).or_default() += v;
        }
        self.failures.extend(other.failures);
        self.warnings.extend(other.warnings);
        self.errors.extend(other.errors);
        self.requests += other.requests;
        self.redirected += other.redirected;
        self.redirected_away += other.redirected_away;
    }

    /// Redirects seen on a response: counted, and a warning when what moved is not a blob
    /// (blobs redirected to storage or a CDN are how registries serve them; distribution
    /// 307s blobs to S3 or CloudFront, peers.md).
    pub fn hops(&mut self, path: &str, ex: &Exchange, blob: bool) {
        if ex.hops.is_empty() {
            return;
        }
        self.count(Check::Redirect);
        self.redirected += 1;
        let away = ex.hops.iter().any(|h| h.other_origin);
        if away {
            self.redirected_away += 1;
        }
        if !blob {
            let chain: Vec<String> = ex
                .hops
                .iter()
                .map(|h| format!("{} {}", h.status, h.location))
                .collect();
            self.warn(
                path,
                Check::Redirect,
                "an answer at the path itself".into(),
                format!("redirected: {}", chain.join(" -> ")),
                if away {
                    "followed; clients that drop credentials on another host (crane) pull it only while it is public"
                } else {
                    "followed; every client follows redirects, at a round trip each"
                },
            );
        }
    }
}

fn finding(path: &str, check: Check, expected: String, got: String, b: Break) -> Finding {
    Finding {
        path: path.to_string(),
        check,
        expected,
        got,
        breaks: b.clients.to_vec(),
        why: b.why.to_string(),
    }
}

/// `"a", "b"` for messages; `(none)` for no value.
pub(crate) fn shown(values: &[&str]) -> String {
    if values.is_empty() {
        "(none)".to_string()
    } else {
        values
            .iter()
            .map(|v| format!("{v:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What a manifest response must be.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ManifestExpect<'a> {
    pub media_type: &'a str,
    pub digest: Digest,
    pub size: u64,
    /// By digest: the content never changes (Cache-Control immutable); by tag: it moves.
    pub by_digest: bool,
}

/// A manifest's GET or HEAD, once its status is known to be 200.
pub(crate) fn manifest(
    rec: &mut Record,
    profile: Profile,
    path: &str,
    method: &str,
    ex: &Exchange,
    want: &ManifestExpect,
) {
    let types = ex.all("content-type");
    rec.count(Check::ManifestContentType);
    if types.len() > 1 {
        rec.fail(
            path,
            Check::ManifestContentType,
            format!("one Content-Type {:?} ({method})", want.media_type),
            format!("{} Content-Type headers: {}", types.len(), shown(&types)),
            TWO_TYPES,
        );
    } else if types.first().map(|t| t.trim()) != Some(want.media_type) {
        rec.fail(
            path,
            Check::ManifestContentType,
            format!("{:?} ({method})", want.media_type),
            shown(&types),
            WRONG_TYPE,
        );
    }
    digest_header(rec, profile, path, method, ex, &want.digest, false);
    length(rec, path, method, ex, Some(want.size), false);
    if method == "GET" {
        rec.count(Check::ManifestBodyDigest);
        let got = ex.digest();
        if got != want.digest || ex.body_len != want.size {
            rec.fail(
                path,
                Check::ManifestBodyDigest,
                format!("{} bytes hashing to {}", want.size, want.digest),
                format!("{} bytes hashing to {got}", ex.body_len),
                BAD_BODY,
            );
        }
    }
    cache_control(rec, path, ex, want.by_digest);
}

/// Docker-Content-Digest on a manifest or a blob.
pub(crate) fn digest_header(
    rec: &mut Record,
    profile: Profile,
    path: &str,
    method: &str,
    ex: &Exchange,
    digest: &Digest,
    blob: bool,
) {
    let check = if blob {
        Check::BlobDigestHeader
    } else {
        Check::ManifestDigestHeader
    };
    rec.count(check);
    let values = ex.all("docker-content-digest");
    let want = digest.to_string();
    let expected = format!("Docker-Content-Digest {want} ({method})");
    if values.is_empty() {
        if blob {
            // No pulling client reads it on blobs; distribution-spec main says SHOULD, and the
            // conformance suite at `dev` requires it (tests/support/matrix.rs).
            rec.warn(
                path,
                check,
                expected,
                "(none)".into(),
                "optional for every pulling client; the OCI conformance suite (dev) requires it",
            );
        } else {
            rec.fail_or_warn(
                profile == Profile::S3,
                path,
                check,
                expected,
                "(none)".into(),
                NO_DIGEST_HEADER,
            );
        }
    } else if values.len() > 1 || values[0].trim() != want {
        rec.fail(path, check, expected, shown(&values), WRONG_DIGEST_HEADER);
    }
}

/// Content-Length: on HEAD it must be there (dockerd); on GET a chunked body is allowed.
pub(crate) fn length(
    rec: &mut Record,
    path: &str,
    method: &str,
    ex: &Exchange,
    size: Option<u64>,
    blob: bool,
) {
    rec.count(Check::ContentLength);
    let values = ex.all("content-length");
    let expected = match size {
        Some(s) => format!("Content-Length {s} ({method})"),
        None => format!("a Content-Length ({method})"),
    };
    match values.as_slice() {
        [] if method == "HEAD" && !blob => rec.fail(
            path,
            Check::ContentLength,
            expected,
            "(none)".into(),
            NO_LENGTH_ON_HEAD,
        ),
        [] if method == "HEAD" => rec.warn(
            path,
            Check::ContentLength,
            expected,
            "(none)".into(),
            "no pulling client HEADs blobs; pushes (cross-repository mounts) and the conformance suite do",
        ),
        [] => {}
        [one] if size.is_none_or(|s| one.trim() == s.to_string()) => {}
        _ => rec.fail(
            path,
            Check::ContentLength,
            expected,
            shown(&values),
            WRONG_LENGTH,
        ),
    }
}

/// Cache-Control: immutable on what a digest names, short on what moves (tags, lists). A
/// warning at most: caching breaks no pull, it serves stale tags or re-fetches content.
pub(crate) fn cache_control(rec: &mut Record, path: &str, ex: &Exchange, immutable: bool) {
    rec.count(Check::CacheControl);
    let values = ex.all("cache-control");
    let joined = values.join(", ").to_ascii_lowercase();
    let max_age = joined.split(',').find_map(|d| {
        d.trim()
            .strip_prefix("max-age=")
            .and_then(|v| v.trim_matches('"').parse::<u64>().ok())
    });
    if immutable {
        if !joined.contains("immutable") && max_age.is_none_or(|a| a < 86_400) {
            rec.warn(
                path,
                Check::CacheControl,
                "Cache-Control with immutable or a long max-age (content named by its digest never changes)".into(),
                shown(&values),
                "caches and CDNs re-fetch or revalidate content that never changes",
            );
        }
    } else if joined.contains("immutable") || max_age.is_some_and(|a| a > 86_400) {
        rec.warn(
            path,
            Check::CacheControl,
            "a short Cache-Control (a tag moves on every publish)".into(),
            shown(&values),
            "a CDN or proxy keeps serving the old manifest or list after the tag moves",
        );
    }
}

/// The registry's JSON error body's first code, if the body is one.
pub(crate) fn error_code(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v.get("errors")?
        .get(0)?
        .get("code")?
        .as_str()
        .map(String::from)
}

/// A request for something that does not exist must answer 404 with the registry's JSON error.
pub(crate) fn miss(rec: &mut Record, profile: Profile, path: &str, ex: &Exchange, code: &str) {
    rec.count(Check::Miss404);
    let expected = format!("404 with the JSON error {code}");
    if (200..300).contains(&ex.status) {
        let kind = ex.header("content-type").unwrap_or("no Content-Type");
        rec.fail(
            path,
            Check::Miss404,
            expected,
            format!("{} ({kind}, {} bytes)", ex.status, ex.body_len),
            MISS_ANSWERED,
        );
        return;
    }
    let store_miss = matches!(ex.status, 403 | 404);
    if ex.status != 404 {
        rec.fail_or_warn(
            profile == Profile::S3 && store_miss,
            path,
            Check::Miss404,
            expected,
            format!("{}", ex.status),
            MISS_ANSWERED,
        );
        return;
    }
    match error_code(&ex.body) {
        Some(c) if c == code => {}
        Some(c) => rec.warn(
            path,
            Check::Miss404,
            expected,
            format!("404 with the JSON error {c}"),
            "clients print the code they get",
        ),
        None => rec.fail_or_warn(
            true,
            path,
            Check::Miss404,
            expected,
            format!(
                "404 without a JSON error ({})",
                ex.header("content-type").unwrap_or("no Content-Type")
            ),
            MISS_NOT_JSON,
        ),
    }
}

/// `GET /v2/`: 200, or 401 with a Basic challenge when no credentials were given.
pub(crate) fn base(rec: &mut Record, path: &str, ex: &Exchange, credentials: bool) {
    rec.count(Check::ApiVersion);
    let challenge = ex.header("www-authenticate").unwrap_or("");
    let ok = ex.status == 200 || (ex.status == 401 && !credentials && !challenge.is_empty());
    if !ok {
        rec.fail(
            path,
            Check::ApiVersion,
            if credentials {
                "200".into()
            } else {
                "200, or 401 with a WWW-Authenticate challenge".into()
            },
            format!("{}", ex.status),
            BAD_BASE,
        );
    }
    let version = ex.all("docker-distribution-api-version");
    if version != ["registry/2.0"] {
        rec.warn(
            path,
            Check::ApiVersion,
            "Docker-Distribution-API-Version: registry/2.0".into(),
            shown(&version),
            "no client here requires it; distribution sends it on every response",
        );
    }
}

/// A tags/list body: `{"name": NAME, "tags": [...]}`, sorted, and (with a tree) complete.
/// Returns the tags it lists.
pub(crate) fn tags_list(
    rec: &mut Record,
    path: &str,
    ex: &Exchange,
    name: &str,
    expected: Option<&[String]>,
) -> Option<Vec<String>> {
    rec.count(Check::TagsList);
    let fail = |rec: &mut Record, e: String, g: String| {
        rec.fail(path, Check::TagsList, e, g, BAD_TAGS_LIST);
    };
    if ex.status != 200 {
        fail(
            rec,
            "200 with the tag list".into(),
            format!("{}", ex.status),
        );
        return None;
    }
    let parsed: Option<(String, Vec<String>)> =
        serde_json::from_slice::<serde_json::Value>(&ex.body)
            .ok()
            .and_then(|v| {
                let n = v.get("name")?.as_str()?.to_string();
                let tags = match v.get("tags")? {
                    serde_json::Value::Null => Vec::new(),
                    t => t
                        .as_array()?
                        .iter()
                        .map(|t| t.as_str().map(String::from))
                        .collect::<Option<Vec<_>>>()?,
                };
                Some((n, tags))
            });
    let Some((listed_name, tags)) = parsed else {
        fail(
            rec,
            "JSON {\"name\": ..., \"tags\": [...]}".into(),
            format!(
                "{} bytes of {}",
                ex.body_len,
                ex.header("content-type").unwrap_or("no Content-Type")
            ),
        );
        return None;
    };
    if listed_name != name {
        fail(
            rec,
            format!("name {name:?}"),
            format!("name {listed_name:?}"),
        );
    }
    if !tags.is_sorted() {
        // distribution 2.8 lists tags in storage order; distribution-spec 1.1 asks for lexical
        // order, and no client here depends on it (helm sorts versions itself).
        rec.warn(
            path,
            Check::TagsList,
            "tags in lexical order".into(),
            "an unsorted list".into(),
            "no client depends on the order; distribution-spec 1.1 and its conformance suite ask for it",
        );
    }
    if let Some(want) = expected {
        let have: std::collections::BTreeSet<&str> = tags.iter().map(String::as_str).collect();
        let want_set: std::collections::BTreeSet<&str> = want.iter().map(String::as_str).collect();
        let missing: Vec<&str> = want_set.difference(&have).copied().collect();
        let extra: Vec<&str> = have.difference(&want_set).copied().collect();
        if !missing.is_empty() || !extra.is_empty() {
            fail(
                rec,
                format!("the tree's {} tags", want.len()),
                format!(
                    "{} tags; missing {}; not in the tree {}",
                    tags.len(),
                    shown(&missing[..missing.len().min(5)]),
                    shown(&extra[..extra.len().min(5)])
                ),
            );
        }
    }
    let essence = ex.header("content-type").map(|t| {
        t.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    });
    if essence.as_deref() != Some("application/json") {
        rec.warn(
            path,
            Check::TagsList,
            "Content-Type application/json".into(),
            shown(&ex.all("content-type")),
            "clients parse the body whatever its type; distribution sends application/json",
        );
    }
    cache_control(rec, path, ex, false);
    Some(tags)
}

/// `/v2/_catalog`: `{"repositories": [...]}` sorted, and (with a tree) listing every repository.
pub(crate) fn catalog(
    rec: &mut Record,
    path: &str,
    ex: &Exchange,
    expected: Option<&[String]>,
) -> Option<Vec<String>> {
    rec.count(Check::Catalog);
    let fail = |rec: &mut Record, e: String, g: String| {
        rec.fail(path, Check::Catalog, e, g, BAD_CATALOG);
    };
    if ex.status != 200 {
        fail(
            rec,
            "200 with the repository list".into(),
            format!("{}", ex.status),
        );
        return None;
    }
    let repos: Option<Vec<String>> = serde_json::from_slice::<serde_json::Value>(&ex.body)
        .ok()
        .and_then(|v| {
            v.get("repositories")?
                .as_array()?
                .iter()
                .map(|r| r.as_str().map(String::from))
                .collect()
        });
    let Some(repos) = repos else {
        fail(
            rec,
            "JSON {\"repositories\": [...]}".into(),
            format!("{} bytes", ex.body_len),
        );
        return None;
    };
    if !repos.is_sorted() {
        fail(
            rec,
            "repositories in lexical order".into(),
            "an unsorted list".into(),
        );
    }
    if let Some(want) = expected {
        let missing: Vec<&str> = want
            .iter()
            .filter(|w| repos.binary_search(w).is_err() && !repos.contains(w))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            fail(
                rec,
                format!("every one of the tree's {} repositories", want.len()),
                format!("missing {}", shown(&missing[..missing.len().min(5)])),
            );
        }
    }
    Some(repos)
}

/// A blob's HEAD: 200, its length and digest.
pub(crate) fn blob_head(
    rec: &mut Record,
    profile: Profile,
    path: &str,
    ex: &Exchange,
    digest: &Digest,
    size: Option<u64>,
) -> bool {
    rec.count(Check::BlobHead);
    if ex.status != 200 {
        rec.fail(
            path,
            Check::BlobHead,
            "200 (HEAD)".into(),
            format!("{}", ex.status),
            BLOB_MISSING,
        );
        return false;
    }
    length(rec, path, "HEAD", ex, size, true);
    digest_header(rec, profile, path, "HEAD", ex, digest, true);
    cache_control(rec, path, ex, true);
    true
}

/// `Range: bytes=0-9` on a blob of `size` bytes: 206, `Content-Range: bytes 0-LAST/SIZE` and
/// exactly those bytes.
pub(crate) fn blob_range(rec: &mut Record, path: &str, ex: &Exchange, size: u64) {
    rec.count(Check::BlobRange);
    let last = size.min(10) - 1;
    let want_range = format!("bytes 0-{last}/{size}");
    let expected = format!("206 with Content-Range {want_range}");
    let ranges = ex.all("content-range");
    if ex.status != 206 {
        rec.fail(
            path,
            Check::BlobRange,
            expected,
            format!("{} ({} bytes)", ex.status, ex.body_len),
            NO_RANGE,
        );
    } else if ranges.len() != 1 || ranges[0].trim() != want_range || ex.body_len != last + 1 {
        rec.fail(
            path,
            Check::BlobRange,
            expected,
            format!(
                "206 with Content-Range {} and {} bytes",
                shown(&ranges),
                ex.body_len
            ),
            NO_RANGE,
        );
    }
}

/// A blob's streamed GET (`--verify-blobs`).
pub(crate) fn blob_body(
    rec: &mut Record,
    path: &str,
    ex: &Exchange,
    digest: &Digest,
    size: Option<u64>,
) {
    rec.count(Check::BlobBodyDigest);
    let got = ex.digest();
    if ex.status != 200 {
        rec.fail(
            path,
            Check::BlobBodyDigest,
            "200 (GET)".into(),
            format!("{}", ex.status),
            BLOB_MISSING,
        );
    } else if got != *digest || size.is_some_and(|s| s != ex.body_len) {
        let size = size.map(|s| format!("{s} bytes ")).unwrap_or_default();
        rec.fail(
            path,
            Check::BlobBodyDigest,
            format!("{size}hashing to {digest}"),
            format!("{} bytes hashing to {got}", ex.body_len),
            BAD_BODY,
        );
    }
}

/// Write methods must not be accepted. A registry server that takes pushes answers like one
/// (202 with an upload Location, 201 with the digest): that is a warning (is it meant to be
/// writable without credentials?); any other 2xx is a static server answering a write with
/// content, an echo or a stored file.
pub(crate) fn write(rec: &mut Record, path: &str, method: &str, ex: &Exchange) {
    rec.count(Check::WriteRefused);
    if !(200..300).contains(&ex.status) {
        return;
    }
    let expected = format!("{method} refused (405, or any status but 2xx)");
    let registry_like = (ex.status == 202 && ex.header("docker-upload-uuid").is_some())
        || (ex.status == 201 && ex.header("docker-content-digest").is_some());
    if registry_like {
        rec.warn(
            path,
            Check::WriteRefused,
            expected,
            format!("{} (a registry accepting a push)", ex.status),
            "the registry accepts pushes from this client: fine for a registry server, not for a read-only mirror",
        );
    } else {
        rec.fail(
            path,
            Check::WriteRefused,
            expected,
            format!("{} ({} bytes)", ex.status, ex.body_len),
            WRITE_ACCEPTED,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Exchange {
        Exchange {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), v.to_string()))
                .collect(),
            body: body.to_vec(),
            body_len: body.len() as u64,
            ..Exchange::default()
        }
    }

    const OCI: &str = "application/vnd.oci.image.manifest.v1+json";

    fn want(body: &[u8]) -> ManifestExpect<'static> {
        ManifestExpect {
            media_type: OCI,
            digest: crate::digest::of_bytes(body),
            size: body.len() as u64,
            by_digest: true,
        }
    }

    fn checks(rec: &Record) -> Vec<&'static str> {
        rec.failures.iter().map(|f| f.check.name()).collect()
    }

    #[test]
    fn names_are_unique_and_kebab_case() {
        let names: std::collections::BTreeSet<&str> = Check::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(names.len(), Check::ALL.len());
        assert!(names.iter().all(|n| {
            n.chars()
                .all(|c| c.is_ascii_lowercase() || c == '-' || c.is_ascii_digit())
        }));
    }

    #[test]
    fn a_correct_manifest_passes_and_a_json_one_names_the_clients() {
        let body = br#"{"schemaVersion":2}"#;
        let w = want(body);
        let digest = w.digest.to_string();
        let len = body.len().to_string();
        let good = ex(
            200,
            &[
                ("Content-Type", OCI),
                ("Docker-Content-Digest", &digest),
                ("Content-Length", &len),
                ("Cache-Control", "public, max-age=31536000, immutable"),
            ],
            body,
        );
        let mut rec = Record::default();
        manifest(&mut rec, Profile::Registry, "/p", "GET", &good, &w);
        assert!(
            rec.failures.is_empty() && rec.warnings.is_empty(),
            "{rec:?}"
        );

        let json = ex(
            200,
            &[
                ("Content-Type", "application/json"),
                ("Content-Length", &len),
            ],
            body,
        );
        let mut rec = Record::default();
        manifest(&mut rec, Profile::Registry, "/p", "HEAD", &json, &w);
        assert_eq!(
            checks(&rec),
            ["manifest-content-type", "manifest-digest-header"]
        );
        assert!(rec.failures[0].breaks.contains(&"docker"));
        assert!(rec.failures[0].why.contains("missing signature key"));
        // Under the S3 profile the missing digest header is a warning.
        let mut rec = Record::default();
        manifest(&mut rec, Profile::S3, "/p", "HEAD", &json, &w);
        assert_eq!(checks(&rec), ["manifest-content-type"]);
        assert_eq!(rec.warnings[0].check, Check::ManifestDigestHeader);
    }

    #[test]
    fn two_content_types_and_a_missing_head_length_fail() {
        let body = b"{}";
        let w = want(body);
        let digest = w.digest.to_string();
        let r = ex(
            200,
            &[
                ("Content-Type", "application/octet-stream"),
                ("Content-Type", OCI),
                ("Docker-Content-Digest", &digest),
                ("Cache-Control", "max-age=31536000"),
            ],
            b"",
        );
        let mut rec = Record::default();
        manifest(&mut rec, Profile::Registry, "/p", "HEAD", &r, &w);
        assert_eq!(checks(&rec), ["manifest-content-type", "content-length"]);
        assert!(rec.failures[0].got.contains("2 Content-Type headers"));
        assert_eq!(rec.failures[1].breaks, ["docker"]);
    }

    #[test]
    fn body_digest_and_wrong_digest_header() {
        let w = want(b"right");
        let r = ex(
            200,
            &[
                ("Content-Type", OCI),
                ("Docker-Content-Digest", "sha256:00"),
                ("Content-Length", "5"),
            ],
            b"wrong",
        );
        let mut rec = Record::default();
        manifest(&mut rec, Profile::Registry, "/p", "GET", &r, &w);
        assert_eq!(
            checks(&rec),
            ["manifest-digest-header", "manifest-body-digest"]
        );
    }

    #[test]
    fn misses() {
        let json = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"x","detail":null}]}"#;
        let mut rec = Record::default();
        miss(
            &mut rec,
            Profile::Registry,
            "/m",
            &ex(404, &[], json),
            "MANIFEST_UNKNOWN",
        );
        assert!(rec.failures.is_empty() && rec.warnings.is_empty());
        // An SPA fallback: 200 with an HTML page.
        miss(
            &mut rec,
            Profile::Registry,
            "/m",
            &ex(200, &[("Content-Type", "text/html")], b"<html>"),
            "MANIFEST_UNKNOWN",
        );
        assert_eq!(checks(&rec), ["miss-404"]);
        assert!(rec.failures[0].got.starts_with("200 (text/html"));
        // A store's own 403 with XML: a failure for a registry, a warning for a bucket.
        let mut rec = Record::default();
        miss(
            &mut rec,
            Profile::Registry,
            "/m",
            &ex(403, &[], b"<Error/>"),
            "MANIFEST_UNKNOWN",
        );
        miss(
            &mut rec,
            Profile::S3,
            "/m",
            &ex(403, &[], b"<Error/>"),
            "MANIFEST_UNKNOWN",
        );
        assert_eq!(rec.failures.len(), 1);
        assert_eq!(rec.warnings.len(), 1);
        // An HTML 404: the pull fails anyway; only docker's message suffers.
        let mut rec = Record::default();
        miss(
            &mut rec,
            Profile::Registry,
            "/m",
            &ex(404, &[], b"<html>"),
            "MANIFEST_UNKNOWN",
        );
        assert!(rec.failures.is_empty());
        assert_eq!(rec.warnings[0].breaks, ["docker"]);
    }

    #[test]
    fn ranges() {
        let mut rec = Record::default();
        blob_range(
            &mut rec,
            "/b",
            &ex(206, &[("Content-Range", "bytes 0-9/100")], &[0; 10]),
            100,
        );
        blob_range(
            &mut rec,
            "/b",
            &ex(206, &[("Content-Range", "bytes 0-2/3")], &[0; 3]),
            3,
        );
        assert!(rec.failures.is_empty(), "{rec:?}");
        blob_range(&mut rec, "/b", &ex(200, &[], &[0; 100]), 100);
        assert_eq!(rec.failures[0].breaks, ["skopeo", "podman"]);
    }

    #[test]
    fn tag_lists_must_be_complete_and_should_be_sorted() {
        let mut rec = Record::default();
        let want = vec!["a".to_string(), "b".to_string()];
        let r = ex(
            200,
            &[
                ("Content-Type", "application/json"),
                ("Cache-Control", "max-age=300"),
            ],
            br#"{"name":"x/y","tags":["b","a"]}"#,
        );
        assert!(tags_list(&mut rec, "/t", &r, "x/y", Some(&want)).is_some());
        // Unsorted is a warning (distribution 2.8 does not sort; no client depends on it).
        assert!(rec.failures.is_empty());
        assert_eq!(rec.warnings[0].expected, "tags in lexical order");
        let r = ex(
            200,
            &[("Content-Type", "application/json")],
            br#"{"name":"x/y","tags":["a"]}"#,
        );
        let mut rec = Record::default();
        tags_list(&mut rec, "/t", &r, "x/y", Some(&want));
        assert!(rec.failures[0].got.contains("missing \"b\""), "{rec:?}");
    }

    #[test]
    fn writes() {
        let mut rec = Record::default();
        write(&mut rec, "/w", "PUT", &ex(405, &[], b""));
        assert!(rec.failures.is_empty());
        write(
            &mut rec,
            "/w",
            "POST",
            &ex(202, &[("Docker-Upload-UUID", "u")], b""),
        );
        assert_eq!(rec.warnings.len(), 1);
        write(&mut rec, "/w", "PUT", &ex(200, &[], b"{}"));
        assert_eq!(checks(&rec), ["write-refused"]);
    }

    #[test]
    fn cache_control_is_a_warning() {
        let mut rec = Record::default();
        cache_control(
            &mut rec,
            "/t",
            &ex(
                200,
                &[("Cache-Control", "public, max-age=31536000, immutable")],
                b"",
            ),
            false,
        );
        cache_control(&mut rec, "/d", &ex(200, &[], b""), true);
        cache_control(
            &mut rec,
            "/d",
            &ex(200, &[("Cache-Control", "max-age=31536000")], b""),
            true,
        );
        cache_control(
            &mut rec,
            "/t",
            &ex(200, &[("Cache-Control", "max-age=300")], b""),
            false,
        );
        assert!(rec.failures.is_empty());
        assert_eq!(rec.warnings.len(), 2);
    }

    #[test]
    fn base_accepts_a_challenge_only_without_credentials() {
        let mut rec = Record::default();
        let challenge = ex(
            401,
            &[
                ("WWW-Authenticate", "Basic realm=r"),
                ("Docker-Distribution-API-Version", "registry/2.0"),
            ],
            b"",
        );
        base(&mut rec, "/v2/", &challenge, false);
        assert!(rec.failures.is_empty());
        base(&mut rec, "/v2/", &challenge, true);
        assert_eq!(checks(&rec), ["api-version"]);
    }
}
