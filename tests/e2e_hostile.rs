//! The hostile-request test (issue 10): one function sends the same few hundred request lines,
//! byte for byte, to every web-server host serving a tree full of planted canaries, and to a
//! plain static file server on the same tree, the control, which must leak (so the detector is
//! shown to see a leak when there is one). For the hosts: zero leaks, zero accepted writes,
//! zero mistyped manifests, and nothing served that is not one of the registry's own files.
//!
//! Canaries are planted twice. Before generation: what every host must leave out or refuse
//! when it writes its config. After generation and start: what each host claims, in the
//! README's security model, to refuse at request time (nginx: symlinks in any component;
//! Apache: a symlink as the last component, dot-files; every host: dot-files and files that
//! are not routes). What a host checks at generation time only is planted only before.

use crate::support::fixture::{self, Fixture, sha256};
use crate::support::servers::{Apache, ApacheSite, Caddy, PlainStatic};
use crate::support::{Nginx, Wrangler, free_port, http, run_bin, run_bin_ok};
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Every canary's bytes hold this; no registry file does.
const MARK: &[u8] = b"CANARY-";

/// The private runs' user (`registry.htpasswd` beside the tree holds it, and a canary comment).
const USER: &str = "alice";
const PASSWORD: &str = "hostile-test";

thread_local! {
    /// Set while a private run goes: generation adds `--htpasswd`, requests carry credentials.
    static PRIVATE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// `Authorization` for the private runs (the test's own base64: "alice:hostile-test").
const AUTHORIZATION: &str = "Basic YWxpY2U6aG9zdGlsZS10ZXN0";

/// The same test against the host serving the tree privately: every hostile line carries the
/// right credentials (so the rules are checked past the 401), and the credentials file beside
/// the tree must never be served.
fn assert_private_serves_nothing_but_the_registry(plan: &Plan) {
    PRIVATE.with(|p| p.set(true));
    let result = std::panic::catch_unwind(|| assert_serves_nothing_but_the_registry(plan));
    PRIVATE.with(|p| p.set(false));
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

/// What a host is asked to refuse after it started.
#[derive(Clone, Copy, PartialEq)]
enum Late {
    /// `_catalog`, a real tag and a real blob swapped for symlinks to a canary; a new tag
    /// that is a symlink.
    FileSymlinks,
    /// A namespace directory that is a symlink out of the tree.
    DirSymlink,
    /// Dot-files under `v2/` and at the root.
    DotFiles,
    /// A file with a valid tag name under `manifests/` that is no manifest.
    NonManifest,
    /// `.htaccess` files under `v2/` turning mod_rewrite off and listings on.
    NestedHtaccess,
}

const ALL_LATE: &[Late] = &[
    Late::FileSymlinks,
    Late::DirSymlink,
    Late::DotFiles,
    Late::NonManifest,
    Late::NestedHtaccess,
];

/// A running server and the port requests go to.
struct Served {
    port: u16,
    _guard: Box<dyn std::any::Any>,
}

struct Plan {
    host: &'static str,
    /// The claims of the README's security model this host makes at request time.
    late: &'static [Late],
    /// The host refuses to write for a tree holding a directory symlink (it would follow it).
    refuses_dir_symlinks: bool,
    /// Apache in `.htaccess` mode echoes TRACE: its core answers before reading any
    /// per-directory file, and only the server config's `TraceEnable off` stops it
    /// (httpd.apache.org/docs/2.4/mod/core.html#traceenable). Counted apart, never a write.
    trace_echo: bool,
    start: fn(&Fixture) -> Served,
}

/// The tree's sound part, as a builder made it, and where the canaries point.
struct Tree {
    f: Fixture,
    name: String,
    tag: String,
    /// The tag's digest: its digest path is a manifest every host serves, also after the tag
    /// itself is swapped for a symlink.
    digest: String,
    blob: String,
    outside: PathBuf,
    /// sha256 of every regular file under `v2/` before any canary: what may be served.
    registry_files: BTreeSet<String>,
}

fn write(path: &Path, bytes: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}

fn replace_with_symlink(target: &Path, link: &Path) {
    let _ = fs::remove_file(link);
    fs::create_dir_all(link.parent().unwrap()).unwrap();
    symlink(target, link).unwrap();
}

/// The digest of a canary file's bytes, so a symlink to it carries a valid blob name.
fn digest_of(bytes: &[u8]) -> String {
    sha256(bytes)
}

const BACKUP: &[u8] = b"CANARY-backup credentials";
const OUTSIDE_SECRET: &[u8] = b"CANARY-outside the tree";
const DIR_LINK_BLOB: &[u8] = b"CANARY-behind a directory symlink";

fn canary_tree() -> Tree {
    let f = fixture::build("basic", &[]);
    let tree = f.tree();
    run_bin_ok(["prepare", tree.to_str().unwrap()], f.dir.path());
    let (name, tag, digest, ..) = f.tags().into_iter().next().unwrap();
    let (_, blob, _) = f
        .blobs()
        .into_iter()
        .find(|(n, ..)| *n == name)
        .expect("a blob in the first tag's repository");
    let registry_files = walkdir::WalkDir::new(tree.join("v2"))
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| sha256(&fs::read(e.path()).unwrap()))
        .collect();
    let outside = f.dir.join("outside");
    write(&outside.join("secret"), OUTSIDE_SECRET);
    write(
        &outside.join(format!("ns/x/blobs/{}", digest_of(DIR_LINK_BLOB))),
        DIR_LINK_BLOB,
    );
    write(
        &outside.join("ns/x/manifests/latest"),
        b"CANARY-a manifest behind a directory symlink",
    );
    // Before generation: beside v2/, under it, dot-files, a non-manifest, symlinks of each kind.
    write(&tree.join("secret.txt"), b"CANARY-root file");
    // Credentials beside the tree (used by the private runs), with a canary comment line.
    crate::support::process::run(
        std::process::Command::new("htpasswd")
            .args(["-c", "-b", "-B", "-C", "5"])
            .arg(f.dir.join("registry.htpasswd"))
            .args([USER, PASSWORD]),
    );
    let mut credentials = b"# CANARY-credentials file\n".to_vec();
    credentials.extend(fs::read(f.dir.join("registry.htpasswd")).unwrap());
    fs::write(f.dir.join("registry.htpasswd"), credentials).unwrap();
    write(&tree.join("registrish.toml"), b"# CANARY-settings file\n");
    write(&tree.join("backup/credentials"), BACKUP);
    write(&tree.join(".env"), b"CANARY-dot-file at the root");
    let repo = tree.join("v2").join(&name);
    write(
        &repo.join("manifests/notes.txt"),
        b"CANARY-not a manifest, named like a tag",
    );
    write(&repo.join("manifests/.hidden"), b"CANARY-dot tag");
    write(&repo.join("blobs/.secret"), b"CANARY-dot blob");
    write(&tree.join("v2/.git/config"), b"CANARY-git config");
    replace_with_symlink(&outside.join("secret"), &repo.join("manifests/leak"));
    replace_with_symlink(
        &tree.join("backup/credentials"),
        &repo.join(format!("blobs/{}", digest_of(BACKUP))),
    );
    replace_with_symlink(&outside.join("ns"), &tree.join("v2/extns"));
    Tree {
        f,
        name,
        tag,
        digest,
        blob,
        outside,
        registry_files,
    }
}

fn plant_late(t: &Tree, late: &[Late]) {
    let tree = t.f.tree();
    let repo = tree.join("v2").join(&t.name);
    let secret = t.outside.join("secret");
    for kind in late {
        match kind {
            Late::FileSymlinks => {
                replace_with_symlink(&secret, &tree.join("v2/_catalog"));
                replace_with_symlink(&secret, &repo.join("manifests").join(&t.tag));
                replace_with_symlink(&secret, &repo.join("blobs").join(&t.blob));
                replace_with_symlink(&secret, &repo.join("manifests/late-link"));
            }
            Late::DirSymlink => replace_with_symlink(&t.outside.join("ns"), &tree.join("v2/late")),
            Late::DotFiles => {
                write(&tree.join("v2/.late"), b"CANARY-late dot-file");
                write(&repo.join("manifests/.late-tag"), b"CANARY-late dot tag");
                write(&tree.join(".late-root"), b"CANARY-late root dot-file");
            }
            Late::NonManifest => write(
                &repo.join("manifests/late-notes"),
                b"CANARY-late non-manifest named like a tag",
            ),
            Late::NestedHtaccess => {
                let off = b"RewriteEngine Off\nOptions +Indexes +FollowSymLinks\n";
                write(&tree.join("v2/.htaccess"), off);
                write(&repo.join(".htaccess"), off);
            }
        }
    }
}

/// One request line as sent, and whether its answer has a body to read.
struct Request {
    bytes: Vec<u8>,
    method: String,
}

fn req(method: &str, target: &str, extra: &str) -> Request {
    let auth = if PRIVATE.with(|p| p.get()) {
        format!("Authorization: {AUTHORIZATION}\r\n")
    } else {
        String::new()
    };
    let extra = format!("{extra}{auth}");
    let body = if ["PUT", "POST", "PATCH"].contains(&method) {
        "Content-Length: 5\r\n\r\nhello"
    } else {
        "\r\n"
    };
    Request {
        bytes: format!(
            "{method} {target} HTTP/1.1\r\nHost: registry.test\r\nConnection: close\r\nUser-Agent: hostile\r\n{extra}{body}"
        )
        .into_bytes(),
        method: method.to_string(),
    }
}

fn raw(method: &str, bytes: &[u8]) -> Request {
    Request {
        bytes: bytes.to_vec(),
        method: method.to_string(),
    }
}

/// The hostile request lines: every canary by its own path and through traversal in every
/// encoding, case and suffix variants, absolute-form targets, every method on every kind of
/// route, multi-range requests on manifests, CRLF in targets, long paths, and HTTP/1.0 and 0.9.
fn requests(t: &Tree) -> Vec<Request> {
    let (name, tag, blob) = (&t.name, &t.tag, &t.blob);
    let canaries: Vec<String> = vec![
        "/secret.txt".into(),
        "/backup/credentials".into(),
        "/registrish.toml".into(),
        "/.env".into(),
        "/.late-root".into(),
        "/.htaccess".into(),
        "/../registry.htpasswd".into(),
        "/v2/../../registry.htpasswd".into(),
        "/v2/%2e%2e/%2e%2e/registry.htpasswd".into(),
        "/registry.htpasswd".into(),
        format!("/v2/{name}/manifests/notes.txt"),
        format!("/v2/{name}/manifests/.hidden"),
        format!("/v2/{name}/manifests/leak"),
        format!("/v2/{name}/manifests/late-link"),
        format!("/v2/{name}/manifests/late-notes"),
        format!("/v2/{name}/manifests/.late-tag"),
        format!("/v2/{name}/blobs/.secret"),
        format!("/v2/{name}/blobs/{}", digest_of(BACKUP)),
        format!("/v2/extns/x/blobs/{}", digest_of(DIR_LINK_BLOB)),
        "/v2/extns/x/manifests/latest".into(),
        format!("/v2/late/x/blobs/{}", digest_of(DIR_LINK_BLOB)),
        "/v2/late/x/manifests/latest".into(),
        "/v2/.git/config".into(),
        "/v2/.late".into(),
        "/v2/.htaccess".into(),
        format!("/v2/{name}/.htaccess"),
        // Swapped for symlinks after generation where the host claims to notice.
        "/v2/_catalog".into(),
        format!("/v2/{name}/manifests/{tag}"),
        format!("/v2/{name}/blobs/{blob}"),
        // Sound routes, served with their media type.
        "/v2/".into(),
        format!("/v2/{name}/tags/list"),
        format!("/v2/{name}/manifests/{}", t.digest),
        format!("/v2/{name}/referrers/{}", t.digest),
        format!(
            "/v2/{name}/referrers/{}?artifactType=../../secret.txt",
            t.digest
        ),
        format!("/v2/{name}/referrers/../../../secret.txt"),
        format!(
            "/v2/{name}/referrers/sha256:{}/../../../../secret.txt",
            "0".repeat(64)
        ),
        // Listings.
        "/".into(),
        "/v2/extns/".into(),
        format!("/v2/{name}/"),
        format!("/v2/{name}/manifests/"),
        format!("/v2/{name}/blobs/"),
        "/backup/".into(),
    ];
    let mut out: Vec<Request> = Vec::new();
    for c in &canaries {
        out.push(req("GET", c, ""));
        out.push(req("HEAD", c, ""));
    }
    // Traversal from under /v2/ to the files beside it, in every spelling.
    let depth = 3 + name.matches('/').count();
    let ups = |sep: &str, dots: &str| format!("{dots}{sep}").repeat(depth);
    for target in [
        "secret.txt",
        "backup/credentials",
        "registrish.toml",
        ".env",
    ] {
        for prefix in [
            "/v2/../".to_string(),
            "/v2/%2e%2e/".into(),
            "/v2/%2E%2E/".into(),
            "/v2/..%2f".into(),
            "/v2/..%2F".into(),
            "/v2/%2e%2e%2f".into(),
            "/v2/%252e%252e/".into(),
            "/v2/..%5c".into(),
            "/v2/..\\".into(),
            "/v2/..;/".into(),
            "/v2/%c0%ae%c0%ae/".into(),
            "/v2/.%2e/".into(),
            "/v2//../".into(),
            "/v2/./../".into(),
            "//".into(),
            "/./".into(),
            "/%2e/".into(),
            format!("/v2/{name}/manifests/{}", ups("/", "..")),
            format!("/v2/{name}/manifests/{}", ups("%2f", "..")),
            format!("/v2/{name}/blobs/{}", ups("/", "%2e%2e")),
            format!("/v2/{name}/manifests/{tag}/{}", ups("/", "..")),
            format!("/v2/{name}/manifests/{tag}%2f{}", ups("%2f", "..")),
        ] {
            out.push(req("GET", &format!("{prefix}{target}"), ""));
        }
    }
    // Spelling variants of canaries under v2/ and of the swapped files.
    for c in canaries.iter().filter(|c| c.starts_with("/v2/")) {
        let (dir, file) = c.rsplit_once('/').unwrap();
        if file.is_empty() {
            continue;
        }
        let first = file.chars().next().unwrap();
        for variant in [
            format!("{dir}/%{:02X}{}", first as u32, &file[1..]),
            format!("{dir}//{file}"),
            format!("{dir}/./{file}"),
            format!("{dir}/{file}/"),
            format!("{dir}/{file}%00"),
            format!("{dir}/{file}%20"),
            format!("{dir}/{file};x=1"),
            format!("{dir}/{file}?x=1"),
            c.replacen("/v2/", "/V2/", 1),
            c.replacen("/v2/", "/v2/x/../", 1),
        ] {
            out.push(req("GET", &variant, ""));
        }
    }
    // Absolute-form targets.
    for target in [
        "http://registry.test/secret.txt".to_string(),
        "http://127.0.0.1/v2/../secret.txt".into(),
        "http://evil.example/backup/credentials".into(),
        format!("http://registry.test/v2/{name}/manifests/leak"),
        "file:///etc/passwd".into(),
        "*".into(),
    ] {
        out.push(req("GET", &target, ""));
    }
    // Every method on every kind of route, with and without a body.
    let routes = [
        "/v2/".to_string(),
        "/v2/_catalog".into(),
        format!("/v2/{name}/tags/list"),
        format!("/v2/{name}/manifests/{tag}"),
        format!("/v2/{name}/manifests/sha256:{}", "0".repeat(64)),
        format!("/v2/{name}/blobs/{blob}"),
        format!("/v2/{name}/blobs/uploads/"),
        format!("/v2/{name}/referrers/sha256:{}", "0".repeat(64)),
        "/secret.txt".into(),
    ];
    for route in &routes {
        for method in [
            "PUT",
            "POST",
            "DELETE",
            "PATCH",
            "OPTIONS",
            "TRACE",
            "CONNECT",
            "PROPFIND",
            "PROPPATCH",
            "MKCOL",
            "COPY",
            "MOVE",
            "LOCK",
            "UNLOCK",
            "FOO",
            "get",
        ] {
            let extra = if ["COPY", "MOVE"].contains(&method) {
                "Destination: http://registry.test/v2/copied\r\n"
            } else {
                ""
            };
            out.push(req(method, route, extra));
        }
    }
    // Ranges: manifests whole or one range, never multipart beside their own type.
    for path in [
        format!("/v2/{name}/manifests/{tag}"),
        format!("/v2/{name}/blobs/{blob}"),
        "/v2/_catalog".into(),
    ] {
        for range in [
            "bytes=0-1,3-4",
            "bytes=0-0,-1",
            "bytes=0-",
            "bytes=-5",
            "bytes=9999999-",
        ] {
            out.push(req("GET", &path, &format!("Range: {range}\r\n")));
        }
    }
    // CRLF and header injection through the target.
    for target in [
        "/v2/%0d%0aX-Injected:%20yes".to_string(),
        format!("/v2/{name}/manifests/{tag}%0d%0aX-Injected:%20yes"),
        "/v2/%0aX-Injected:%20yes".into(),
        "/v2/_errors/manifest_unknown.json%0d%0a%0d%0aCANARY".into(),
    ] {
        out.push(req("GET", &target, ""));
    }
    // Long paths.
    out.push(req(
        "GET",
        &format!("/v2/{}secret.txt", "../".repeat(300)),
        "",
    ));
    out.push(req(
        "GET",
        &format!("/v2/{}/manifests/x", "a/".repeat(3000)),
        "",
    ));
    out.push(req(
        "GET",
        &format!("/v2/{name}/manifests/{}", "a".repeat(10_000)),
        "",
    ));
    // Old protocol versions, no Host header.
    out.push(raw("GET", b"GET /secret.txt HTTP/1.0\r\n\r\n"));
    out.push(raw("GET", b"GET /v2/../secret.txt HTTP/1.0\r\n\r\n"));
    out.push(raw("GET", b"GET /secret.txt\r\n"));
    out.push(raw(
        "GET",
        format!("GET /v2/{name}/manifests/leak HTTP/1.0\r\n\r\n").as_bytes(),
    ));
    out
}

/// What a response did wrong, by the test's rules.
#[derive(Default, Debug)]
struct Findings {
    leaks: Vec<String>,
    writes: Vec<String>,
    mistyped: Vec<String>,
    foreign: Vec<String>,
    injected: Vec<String>,
    /// TRACE answered with an echo of the request (and nothing else), where allowed.
    trace_echoes: Vec<String>,
}

impl Findings {
    fn total(&self) -> usize {
        self.leaks.len()
            + self.writes.len()
            + self.mistyped.len()
            + self.foreign.len()
            + self.injected.len()
    }
}

fn line(r: &Request) -> String {
    let end = r
        .bytes
        .iter()
        .position(|&b| b == b'\r')
        .unwrap_or(r.bytes.len());
    let mut l = String::from_utf8_lossy(&r.bytes[..end.min(160)]).into_owned();
    if end > 160 {
        l.push('…');
    }
    l
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn judge(t: &Tree, port: u16, requests: &[Request], trace_echo: bool) -> Findings {
    let mut found = Findings::default();
    for r in requests {
        let head = r.method == "HEAD";
        let answer = http::exchange(port, &r.bytes, head, Duration::from_secs(5));
        let what = line(r);
        let status = |p: &Option<http::Response>| p.as_ref().map_or(0, |p| p.status);
        let parsed = http::parse(&answer, head).ok();
        let body = parsed.as_ref().map(|p| p.body.clone()).unwrap_or_default();
        if contains(&answer, MARK) || contains(&body, MARK) {
            found.leaks.push(format!("{what} -> {}", status(&parsed)));
        }
        let Some(p) = parsed else { continue };
        if p.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("X-Injected"))
        {
            found.injected.push(what.clone());
        }
        let ok = (200..300).contains(&p.status);
        if trace_echo && ok && r.method == "TRACE" && body == r.bytes {
            found.trace_echoes.push(what.clone());
            continue;
        }
        if ok && !["GET", "HEAD"].contains(&r.method.as_str()) {
            found.writes.push(format!("{what} -> {}", p.status));
        }
        let types = p.header_all("Content-Type");
        if types.len() > 1 {
            found.mistyped.push(format!(
                "{what}: {} Content-Type headers {types:?}",
                types.len()
            ));
        }
        if !ok || head || body.is_empty() {
            continue;
        }
        let manifest = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .filter(|v| v.get("schemaVersion").is_some());
        if let Some(m) = manifest
            && let Some(media_type) = m["mediaType"].as_str()
            && types != [media_type]
        {
            found
                .mistyped
                .push(format!("{what}: a {media_type} manifest sent as {types:?}"));
        }
        if p.status == 200 && !t.registry_files.contains(&sha256(&body)) {
            found.foreign.push(format!(
                "{what}: 200 with {} bytes that are no registry file: {:?}",
                body.len(),
                String::from_utf8_lossy(&body[..body.len().min(80)])
            ));
        }
    }
    found
}

/// The one function every host is held to.
fn assert_serves_nothing_but_the_registry(plan: &Plan) {
    let t = canary_tree();
    if plan.refuses_dir_symlinks {
        // The generation-time check: the command refuses, then the link goes.
        let tree = t.f.tree();
        let out = run_bin([plan.host, tree.to_str().unwrap()], t.f.dir.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {stderr}", plan.host);
        assert!(
            stderr.contains("error: v2/extns: "),
            "{}: {stderr}",
            plan.host
        );
        fs::remove_file(tree.join("v2/extns")).unwrap();
    }
    let served = (plan.start)(&t.f);
    plant_late(&t, plan.late);
    let requests = requests(&t);
    assert!(requests.len() >= 300, "{} requests", requests.len());
    let before = crate::support::snapshot(t.f.dir.path());
    let found = judge(&t, served.port, &requests, plan.trace_echo);
    let traces = requests.iter().filter(|r| r.method == "TRACE").count();
    assert!(
        found.trace_echoes.is_empty() || found.trace_echoes.len() == traces,
        "{}: {found:#?}",
        plan.host
    );
    assert_eq!(
        crate::support::snapshot(t.f.dir.path()),
        before,
        "{}: a request changed the tree",
        plan.host
    );
    assert_eq!(
        found.total(),
        0,
        "{} failed {} of {} hostile requests: {found:#?}",
        plan.host,
        found.total(),
        requests.len()
    );
}

fn generate(f: &Fixture, args: &[&str]) {
    let tree = f.tree();
    let htpasswd = f.dir.join("registry.htpasswd");
    let mut all = vec![args[0], tree.to_str().unwrap()];
    all.extend(&args[1..]);
    if PRIVATE.with(|p| p.get()) {
        if args[0] == "cloudflare" {
            all.push("--private");
        } else {
            all.extend(["--htpasswd", htpasswd.to_str().unwrap()]);
        }
    }
    let out = run_bin(&all, f.dir.path());
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn start_nginx(f: &Fixture) -> Served {
    let port = free_port();
    let conf = f.dir.join("registry.conf");
    let listen = format!("127.0.0.1:{port}");
    generate(
        f,
        &["nginx", "--listen", &listen, "-o", conf.to_str().unwrap()],
    );
    Served {
        port,
        _guard: Box::new(Nginx::start(&conf, port)),
    }
}

fn start_apache_htaccess(f: &Fixture) -> Served {
    let tree = f.tree();
    let htaccess = tree.join(".htaccess");
    generate(f, &["apache", "-o", htaccess.to_str().unwrap()]);
    let apache = Apache::start(ApacheSite::Htaccess { tree: &tree }, free_port());
    Served {
        port: apache.port(),
        _guard: Box::new(apache),
    }
}

fn start_apache_vhost(f: &Fixture) -> Served {
    let port = free_port();
    let conf = f.dir.join("registry-vhost.conf");
    let listen = format!("127.0.0.1:{port}");
    generate(
        f,
        &[
            "apache",
            "--vhost",
            "--listen",
            &listen,
            "--server-name",
            "registry.test",
            "-o",
            conf.to_str().unwrap(),
        ],
    );
    Served {
        port,
        _guard: Box::new(Apache::start(ApacheSite::Vhost { conf: &conf }, port)),
    }
}

fn start_caddy(f: &Fixture) -> Served {
    let port = free_port();
    let site = f.dir.join("registry.caddy");
    let listen = format!("127.0.0.1:{port}");
    generate(
        f,
        &["caddy", "--listen", &listen, "-o", site.to_str().unwrap()],
    );
    Served {
        port,
        _guard: Box::new(Caddy::start(&site, port)),
    }
}

fn start_worker(f: &Fixture) -> Served {
    generate(f, &["cloudflare"]);
    let wrangler = Wrangler::start(&f.tree(), free_port());
    Served {
        port: wrangler.port(),
        _guard: Box::new(wrangler),
    }
}

/// The control: Python's static file server on the tree, which knows nothing of registries.
fn start_plain_static_server(f: &Fixture) -> Served {
    let server = PlainStatic::start(&f.tree(), &f.dir.join("py.log"));
    Served {
        port: server.port(),
        _guard: Box::new(server),
    }
}

/// Each host's claims, one plan a host: its public and private runs use the same one.
const NGINX: Plan = Plan {
    host: "nginx",
    late: ALL_LATE,
    refuses_dir_symlinks: false,
    trace_echo: false,
    start: start_nginx,
};

// A nested `.htaccess` is refused when the config is written; planted later, Apache would
// read it (AllowOverride), so it is not a request-time claim in this mode.
const APACHE_HTACCESS: Plan = Plan {
    host: "apache",
    late: &[Late::FileSymlinks, Late::DotFiles, Late::NonManifest],
    refuses_dir_symlinks: true,
    trace_echo: true,
    start: start_apache_htaccess,
};

const APACHE_VHOST: Plan = Plan {
    host: "apache",
    late: &[
        Late::FileSymlinks,
        Late::DotFiles,
        Late::NonManifest,
        Late::NestedHtaccess,
    ],
    refuses_dir_symlinks: true,
    trace_echo: false,
    start: start_apache_vhost,
};

// Caddy follows symlinks and cannot be told not to: those are refused by path when the
// config is written, so only files that are no routes are planted later.
const CADDY: Plan = Plan {
    host: "caddy",
    late: &[Late::DotFiles, Late::NonManifest],
    refuses_dir_symlinks: false,
    trace_echo: false,
    start: start_caddy,
};

const WORKER: Plan = Plan {
    host: "cloudflare",
    late: &[Late::DotFiles, Late::NonManifest],
    refuses_dir_symlinks: true,
    trace_echo: false,
    start: start_worker,
};

#[test]
fn hostile_requests_get_nothing_but_the_registry_from_nginx() {
    assert_serves_nothing_but_the_registry(&NGINX);
}

#[test]
fn hostile_requests_get_nothing_but_the_registry_from_apache_htaccess() {
    assert_serves_nothing_but_the_registry(&APACHE_HTACCESS);
}

#[test]
fn hostile_requests_get_nothing_but_the_registry_from_apache_vhost() {
    assert_serves_nothing_but_the_registry(&APACHE_VHOST);
}

#[test]
fn hostile_requests_get_nothing_but_the_registry_from_caddy() {
    assert_serves_nothing_but_the_registry(&CADDY);
}

#[test]
fn hostile_requests_get_nothing_but_the_registry_from_the_pages_worker() {
    assert_serves_nothing_but_the_registry(&WORKER);
}

/// The detector works: the same requests against a plain static server on the same tree find
/// leaks of each kind of canary and mistyped manifests.
#[test]
fn hostile_requests_find_leaks_in_a_plain_static_server() {
    let t = canary_tree();
    let served = start_plain_static_server(&t.f);
    plant_late(&t, ALL_LATE);
    let requests = requests(&t);
    let found = judge(&t, served.port, &requests, false);
    let name = &t.name;
    for leak in [
        "GET /secret.txt HTTP/1.1".to_string(),
        "GET /backup/credentials HTTP/1.1".into(),
        "GET /.env HTTP/1.1".into(),
        "GET /v2/.git/config HTTP/1.1".into(),
        format!("GET /v2/{name}/manifests/leak HTTP/1.1"),
        format!("GET /v2/{name}/manifests/notes.txt HTTP/1.1"),
        format!("GET /v2/{name}/blobs/{} HTTP/1.1", digest_of(BACKUP)),
        format!(
            "GET /v2/extns/x/blobs/{} HTTP/1.1",
            digest_of(DIR_LINK_BLOB)
        ),
        "GET /v2/_catalog HTTP/1.1".into(),
    ] {
        assert!(
            found.leaks.contains(&format!("{leak} -> 200")),
            "{leak} not caught: {found:#?}"
        );
    }
    // Listings are served too: bytes that are no registry file.
    assert!(
        found
            .foreign
            .iter()
            .any(|f| f.starts_with("GET / HTTP/1.1")),
        "{found:#?}"
    );
    // Its manifests go out as whatever mimetypes guesses, never their media type.
    let hash = format!("/v2/{name}/manifests/sha256:");
    assert!(
        found
            .mistyped
            .iter()
            .any(|m| m.contains(&hash) && m.contains("manifest sent as")),
        "{found:#?}"
    );
}

#[test]
fn hostile_requests_get_nothing_but_the_registry_from_private_nginx() {
    assert_private_serves_nothing_but_the_registry(&NGINX);
}

#[test]
fn hostile_requests_get_nothing_but_the_registry_from_private_apache_vhost() {
    assert_private_serves_nothing_but_the_registry(&APACHE_VHOST);
}

#[test]
fn hostile_requests_get_nothing_but_the_registry_from_private_caddy() {
    assert_private_serves_nothing_but_the_registry(&CADDY);
}
