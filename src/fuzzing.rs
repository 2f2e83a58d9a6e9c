//! Exists only for the fuzz targets in `fuzz/` (feature `fuzzing`): thin entry points into the
//! private modules, each asserting what must hold for any input, so a broken invariant is a
//! crash libFuzzer keeps. Nothing here is a stable interface.
//!
//! Every entry point panics (with the input's consequences spelled out) when an invariant
//! breaks, and returns quietly for inputs the tool rightly refuses.

use crate::grammar::{
    self, DIGEST_PATTERN, Digest, MAX_NAME_LEN, MAX_TAG_LEN, NAME_PATTERN, Name, TAG_PATTERN, Tag,
};
use crate::hosts::{self, Ctx, Host};
use crate::layout;
use crate::media::{self, MediaType, Reference, Role};
use crate::model::{Manifest, Registry, Repository, Symlink, SymlinkKind};
use crate::problem::Severity;
use crate::settings::{self, Common};
use crate::templates::{self, Templates};
use crate::{import, prepare, routes, scan};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A directory of its own per call, removed when the call ends (panics abort the fuzzer, so
/// only clean ends matter).
struct Scratch(PathBuf);

impl Scratch {
    fn new(what: &str) -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "registrish-fuzz-{what}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("scratch directory");
        Scratch(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------------------------
// The grammar

fn anchored(pattern: &str) -> regex::Regex {
    regex::Regex::new(&format!("^(?:{pattern})$")).expect("grammar pattern")
}

/// A string is a name, tag or digest exactly when the hand-written matcher, the parsing
/// constructor and the regex spelling templates receive all say so; whatever parses spells
/// itself back unchanged and holds nothing but the grammar's alphabet.
pub fn grammar(s: &str) {
    static PATTERNS: OnceLock<[regex::Regex; 3]> = OnceLock::new();
    let [name_re, tag_re, digest_re] =
        PATTERNS.get_or_init(|| [NAME_PATTERN, TAG_PATTERN, DIGEST_PATTERN].map(anchored));

    let name = Name::parse(s);
    assert_eq!(name.is_some(), grammar::is_valid_name(s), "{s:?}");
    assert_eq!(
        name.is_some(),
        name_re.is_match(s) && s.len() <= MAX_NAME_LEN,
        "name matcher and NAME_PATTERN disagree on {s:?}"
    );
    if let Some(n) = &name {
        assert_eq!(n.as_str(), s);
        assert_eq!(n.to_string(), s);
        assert_eq!(Name::parse(n.as_str()).as_ref(), Some(n));
        assert!(
            s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/".contains(&b)),
            "{s:?}"
        );
        // Each component is a path segment of its own, never one a path resolves away.
        for c in s.split('/') {
            assert!(!c.is_empty() && c != "." && c != "..", "{s:?}");
            assert!(!c.starts_with(['.', '_', '-']), "{s:?}");
        }
        assert_eq!(serde_json::to_value(n).unwrap(), Value::from(s));
    }

    let tag = Tag::parse(s);
    assert_eq!(tag.is_some(), grammar::is_valid_tag(s), "{s:?}");
    assert_eq!(
        tag.is_some(),
        tag_re.is_match(s),
        "tag matcher and TAG_PATTERN disagree on {s:?}"
    );
    if let Some(t) = &tag {
        assert_eq!(t.as_str(), s);
        assert_eq!(t.to_string(), s);
        assert!(s.len() <= MAX_TAG_LEN);
        // A tag is one file name: never a dot-file, never `.`/`..`, never a path.
        assert!(!s.starts_with(['.', '-']) && !s.contains('/'), "{s:?}");
        assert_eq!(serde_json::to_value(t).unwrap(), Value::from(s));
    }

    let digest = Digest::parse(s);
    assert_eq!(digest.is_some(), grammar::is_valid_digest(s), "{s:?}");
    assert_eq!(
        digest.is_some(),
        digest_re.is_match(s),
        "Digest::parse and DIGEST_PATTERN disagree on {s:?}"
    );
    if let Some(d) = digest {
        assert_eq!(d.to_string(), s);
        assert_eq!(format!("{d:?}"), s);
        assert_eq!(d.hex(), s["sha256:".len()..]);
        assert_eq!(Digest::parse(&d.to_string()), Some(d));
        assert_eq!(serde_json::to_value(d).unwrap(), Value::from(s));
    }
    // A digest and a tag or name never share a spelling (`:` is in neither alphabet).
    assert!(
        digest.is_none() || (tag.is_none() && name.is_none()),
        "{s:?}"
    );
}

/// Digests made from bytes (as the hasher makes them) print as `sha256:<64 hex>`, parse back
/// to themselves, and sort like their spelling.
pub fn digests(a: [u8; 32], b: [u8; 32]) {
    let (da, db) = (Digest::from_sha256(a), Digest::from_sha256(b));
    for d in [da, db] {
        let s = d.to_string();
        assert!(grammar::is_valid_digest(&s), "{s}");
        assert_eq!(Digest::parse(&s), Some(d));
    }
    assert_eq!(da.cmp(&db), da.to_string().cmp(&db.to_string()));
    assert_eq!(da == db, a == b);
}

// ---------------------------------------------------------------------------------------------
// Manifests

/// Parsing and classification: what parses is a JSON object whose type is its `mediaType` when
/// it has one (else the inferred one), with references shaped like that type; and the scan of a
/// repository holding the bytes as a tag serves them under their hash, or reports them.
pub fn manifest(bytes: &[u8]) {
    let parsed = media::parse(bytes);
    if let Ok(p) = &parsed {
        check_parsed(bytes, p);
    }
    scan_manifest(bytes, parsed.as_ref().ok());
}

fn check_parsed(bytes: &[u8], p: &media::Parsed) {
    // It parsed, so it is JSON; the document must be an object (every manifest format is one).
    // Checked on the first byte rather than through serde_json::Value, which also refuses
    // strings the manifest formats allow (a lone surrogate escape in an annotation).
    let first = bytes.iter().find(|b| !b" \t\n\r".contains(b));
    assert_eq!(
        first,
        Some(&b'{'),
        "parsed as a {:?} manifest but is not a JSON object",
        p.media_type
    );
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<Value>,
        #[serde(rename = "schemaVersion")]
        schema_version: Option<Value>,
    }
    let probe: Probe = serde_json::from_slice(bytes).expect("what parsed parses again");
    assert_eq!(MediaType::parse(p.media_type.as_str()), Some(p.media_type));
    match &probe.media_type {
        Some(Value::String(t)) => assert_eq!(p.media_type.as_str(), t),
        Some(other) => panic!("mediaType {other} is not a string, yet it parsed"),
        None => {
            let version = probe.schema_version.as_ref().and_then(Value::as_u64);
            assert!(
                matches!(version, Some(1 | 2)),
                "no mediaType and schemaVersion {version:?}, yet it parsed as {:?}",
                p.media_type
            );
            assert_eq!(version == Some(1), p.media_type.is_schema1());
        }
    }
    let refs: &[Reference] = &p.references;
    for r in refs {
        match &r.digest {
            Ok(d) => assert_eq!(Digest::parse(&d.to_string()), Some(*d)),
            Err(text) => assert!(Digest::parse(text).is_none(), "{text:?} was left unparsed"),
        }
    }
    // At most one subject, and last.
    let subjects = refs.iter().filter(|r| r.role == Role::Subject).count();
    assert!(subjects <= 1);
    let body = match refs.last() {
        Some(r) if r.role == Role::Subject => &refs[..refs.len() - 1],
        _ => refs,
    };
    match p.media_type {
        MediaType::OciIndex | MediaType::DockerManifestList => {
            assert!(body.iter().all(|r| r.role == Role::Child), "{refs:?}");
        }
        MediaType::OciManifest | MediaType::DockerManifest => {
            assert_eq!(body.first().map(|r| r.role), Some(Role::Config), "{refs:?}");
            assert!(body[1..].iter().all(|r| r.role == Role::Layer), "{refs:?}");
        }
        MediaType::DockerSchema1 | MediaType::DockerSchema1Signed => {
            assert!(
                body.iter()
                    .all(|r| r.role == Role::Layer && r.size.is_none())
            );
            let distinct: BTreeSet<String> =
                body.iter().map(|r| format!("{:?}", r.digest)).collect();
            assert_eq!(
                distinct.len(),
                body.len(),
                "schema 1 layers repeat: {refs:?}"
            );
        }
    }
    assert!(
        refs.iter()
            .all(|r| r.size.is_some() || p.media_type.is_schema1()),
        "{refs:?}"
    );
}

/// One repository, `fuzz`, with the bytes as the tag `t` and as their digest file.
fn scan_manifest(bytes: &[u8], parsed: Option<&media::Parsed>) {
    let dir = Scratch::new("manifest");
    let manifests = dir.0.join("v2/fuzz/manifests");
    fs::create_dir_all(&manifests).unwrap();
    fs::create_dir_all(dir.0.join("v2/fuzz/blobs")).unwrap();
    let digest = crate::digest::of_bytes(bytes);
    fs::write(manifests.join("t"), bytes).unwrap();
    fs::write(manifests.join(digest.to_string()), bytes).unwrap();
    let tag = Tag::parse("t").unwrap();
    let name = Name::parse("fuzz").unwrap();
    for thorough in [false, true] {
        let options = scan::Options {
            thorough,
            blob_sizes: thorough,
            drop_references: false,
        };
        let registry = scan::scan(&dir.0, options).expect("scan of a fuzz tree");
        let mut sorted = registry.problems.clone();
        sorted.sort();
        assert_eq!(sorted, registry.problems, "problems are reported sorted");
        let repo = registry.repositories.get(&name);
        match parsed {
            Some(p) => {
                let repo = repo.expect("a manifest that parses makes its repository");
                assert_eq!(
                    repo.tags.get(&tag),
                    Some(&digest),
                    "the tag is served under its hash"
                );
                let m = &repo.manifests[&digest];
                assert_eq!(m.media_type, p.media_type);
                assert_eq!(m.size, bytes.len() as u64);
                assert!(m.digest_file);
                assert_eq!(repo.manifests.len(), 1);
                assert!(
                    !registry
                        .problems
                        .iter()
                        .any(|p| p.path.ends_with("manifests/t")
                            && p.severity == Severity::Error
                            && !matches!(
                                p.kind,
                                crate::problem::Kind::MissingBlob
                                    | crate::problem::Kind::MissingManifest
                            )),
                    "{:?}",
                    registry.problems
                );
            }
            None => {
                assert!(repo.is_none_or(|r| r.tags.is_empty() && r.manifests.is_empty()));
                let rel = layout::manifest_file(&name, &tag);
                assert!(
                    registry
                        .problems
                        .iter()
                        .any(|p| p.path == rel && p.severity == Severity::Error),
                    "a file that is no manifest is reported: {:?}",
                    registry.problems
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Import readers

/// Writes the regular files of a tar (relative paths only, nothing leaving the directory) into
/// `dir`: the fuzzer's way of making an OCI layout directory.
fn unpack(tar_bytes: &[u8], dir: &Path) {
    let mut archive = tar::Archive::new(tar_bytes);
    let Ok(entries) = archive.entries() else {
        return;
    };
    for entry in entries {
        let Ok(mut entry) = entry else {
            return;
        };
        if entry.header().entry_type() != tar::EntryType::Regular || entry.size() > 1 << 20 {
            continue;
        }
        let Ok(path) = entry.path() else {
            continue;
        };
        let parts: Vec<String> = path
            .components()
            .filter_map(|c| match c {
                std::path::Component::Normal(s) => s.to_str().map(str::to_string),
                _ => None,
            })
            .collect();
        if parts.is_empty() || parts.len() != path.components().count() || parts.len() > 4 {
            continue;
        }
        let dest = parts.iter().fold(dir.to_path_buf(), |p, c| p.join(c));
        let mut bytes = Vec::new();
        if std::io::Read::read_to_end(&mut entry, &mut bytes).is_err() {
            return;
        }
        if let Some(parent) = dest.parent()
            && fs::create_dir_all(parent).is_ok()
        {
            let _ = fs::write(&dest, bytes);
        }
    }
}

/// An OCI image layout directory, made of the regular files in the tar `tar_bytes`.
pub fn oci_layout(tar_bytes: &[u8]) {
    let dir = Scratch::new("oci");
    let layout = dir.0.join("layout");
    fs::create_dir_all(&layout).unwrap();
    unpack(tar_bytes, &layout);
    import_and_check(&layout, &dir.0.join("tree"));
}

/// A `docker save` archive (either format, gzip or not): the bytes as the file.
pub fn docker_save(archive: &[u8]) {
    let dir = Scratch::new("save");
    let file = dir.0.join("image.tar");
    fs::write(&file, archive).unwrap();
    import_and_check(&file, &dir.0.join("tree"));
}

/// Whatever a source holds, import reads it without panicking; what it imports is a tree the
/// scan serves whole (every imported tag, no error), and importing it again writes nothing.
fn import_and_check(source: &Path, tree: &Path) {
    // The reader alone: every listed image's digest locates or is refused, never a panic.
    if let Ok(s) = import::source::Source::open(source) {
        for image in &s.images {
            if let Some(bytes) = s.locate(&image.digest) {
                let _ = s.read_small(&bytes);
            }
        }
    }
    let request = import::Request {
        source: source.to_path_buf(),
        reference: None,
        name: "fuzz/image".into(),
        tags: Vec::new(),
        tree: tree.to_path_buf(),
    };
    let Ok(report) = import::import(&request) else {
        // A refused import changes nothing: no repository appears.
        assert!(
            !tree.join("v2/fuzz/image").exists(),
            "a failed import left objects in the tree"
        );
        return;
    };
    let registry = scan::scan(tree, scan::Options::default()).expect("scan after import");
    prepare::prepare(&registry).expect("prepare after import");
    let registry = scan::scan(
        tree,
        scan::Options {
            thorough: true,
            blob_sizes: true,
            drop_references: false,
        },
    )
    .expect("scan after prepare");
    let errors: Vec<_> = registry
        .problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .collect();
    assert!(
        errors.is_empty(),
        "an imported tree has errors: {errors:#?}"
    );
    let name = Name::parse("fuzz/image").unwrap();
    let repo = registry
        .repositories
        .get(&name)
        .expect("the imported repository");
    for t in &report.tags {
        let tag = Tag::parse(t).unwrap_or_else(|| panic!("imported tag {t:?} is not a tag"));
        assert!(
            repo.tags.contains_key(&tag),
            "imported tag {t} is not served"
        );
    }
    assert!(routes::pending(&registry).is_empty());
    let again = import::import(&request).expect("the same import again");
    assert_eq!(
        (again.linked, again.copied, again.bytes_written),
        (0, 0, 0),
        "importing the same source twice wrote objects"
    );
}

// ---------------------------------------------------------------------------------------------
// Renderers

/// A registry model in plain values; [`render`] keeps only what passes the grammar, as the scan
/// does.
#[derive(Debug, Clone, Default)]
pub struct ModelSpec {
    pub repositories: Vec<RepositorySpec>,
    pub tag_max_age: u64,
}

#[derive(Debug, Clone, Default)]
pub struct RepositorySpec {
    pub name: String,
    pub tags: Vec<TagSpec>,
    pub manifests: Vec<ManifestSpec>,
    /// Blob digests, as the 32 bytes.
    pub blobs: Vec<[u8; 32]>,
}

#[derive(Debug, Clone, Default)]
pub struct TagSpec {
    pub tag: String,
    /// Index into the repository's manifests (modulo their count).
    pub manifest: usize,
    /// The tag file is an in-tree symlink (nginx leaves those out).
    pub symlink: bool,
}

#[derive(Debug, Clone, Default)]
pub struct ManifestSpec {
    pub digest: [u8; 32],
    /// Index into [`MediaType::ALL`] (modulo its length).
    pub media_type: usize,
    pub size: u64,
    /// Earlier manifests of the repository it lists (later ones are dropped: digests of real
    /// bytes cannot form a cycle).
    pub children: Vec<usize>,
    /// Blobs it references (indexes into the repository's blobs).
    pub layers: Vec<usize>,
}

/// One repository with every media type, an index listing manifests, blobs, and tags that
/// differ only by case: a model that takes every branch of every template.
fn reference_model() -> ModelSpec {
    let manifests = (0..MediaType::ALL.len())
        .map(|i| ManifestSpec {
            digest: [i as u8 + 1; 32],
            media_type: i,
            size: 100 + i as u64,
            children: (0..i).collect(),
            layers: vec![0, 1],
        })
        .collect();
    let tags = ["latest", "Latest", "v1.0", "V1.0", "_", "a-b_c"]
        .iter()
        .enumerate()
        .map(|(i, t)| TagSpec {
            tag: t.to_string(),
            manifest: i,
            symlink: i == 5,
        })
        .collect();
    ModelSpec {
        repositories: vec![RepositorySpec {
            name: "ref/a".into(),
            tags,
            manifests,
            blobs: vec![[0xb0; 32], [0xb1; 32]],
        }],
        tag_max_age: 0,
    }
}

/// The model the scan would make of a prepared tree with these names, tags and manifests.
fn build(spec: &ModelSpec, root: &Path) -> Registry {
    let mut registry = Registry {
        root: root.to_path_buf(),
        ..Registry::default()
    };
    for r in &spec.repositories {
        let Some(name) = Name::parse(&r.name) else {
            continue;
        };
        // The scan refuses a repository that would collide with the `/v2/` body.
        if name.as_str() == layout::INDEX_FILE {
            continue;
        }
        let repo = registry
            .repositories
            .entry(name.clone())
            .or_insert_with(|| Repository::new(name.clone()));
        let blobs: Vec<Digest> = r.blobs.iter().map(|b| Digest::from_sha256(*b)).collect();
        for d in &blobs {
            repo.blobs.insert(*d, Some(1));
        }
        let mut digests: Vec<Digest> = Vec::new();
        for (i, m) in r.manifests.iter().enumerate() {
            let digest = Digest::from_sha256(m.digest);
            let media_type = MediaType::ALL[m.media_type % MediaType::ALL.len()];
            let mut references: Vec<Reference> = m
                .children
                .iter()
                .filter(|&&c| c < i)
                .map(|&c| Reference {
                    digest: Ok(digests[c]),
                    size: Some(r.manifests[c].size),
                    role: Role::Child,
                    external: false,
                })
                .collect();
            references.extend(m.layers.iter().filter_map(|&l| {
                Some(Reference {
                    digest: Ok(*blobs.get(l)?),
                    size: Some(1),
                    role: Role::Layer,
                    external: false,
                })
            }));
            digests.push(digest);
            repo.manifests.entry(digest).or_insert(Manifest {
                media_type,
                size: m.size,
                references: references.into(),
                artifact: None,
                digest_file: true,
                first_tag: None,
            });
        }
        if digests.is_empty() {
            continue;
        }
        for t in &r.tags {
            let Some(tag) = Tag::parse(&t.tag) else {
                continue;
            };
            if t.symlink {
                registry.facts.symlinks.push(Symlink {
                    path: layout::manifest_file(&name, &tag),
                    kind: SymlinkKind::Inside,
                });
            }
            repo.tags.insert(tag, digests[t.manifest % digests.len()]);
        }
    }
    registry
        .repositories
        .retain(|_, r| !r.manifests.is_empty() || !r.blobs.is_empty());
    registry
}

// Markers around every printed value (Tera's escape function) and after a filter's name:
// private-use characters no template or value holds.
const OPEN: char = '\u{E000}';
const CLOSE: char = '\u{E001}';
const FILTERED: char = '\u{E002}';
const FILTER_END: char = '\u{E003}';

fn mark(s: &str) -> String {
    format!("{OPEN}{s}{CLOSE}")
}

/// The built-in templates twice: as shipped, and with every print marked and every filter's
/// output tagged with the filter's name.
fn templates() -> &'static (Templates, Templates) {
    static T: OnceLock<(Templates, Templates)> = OnceLock::new();
    T.get_or_init(|| {
        let all: Vec<&str> = templates::BUILTIN.iter().map(|(n, _)| *n).collect();
        let plain = Templates::load(None, &all).expect("built-in templates");
        let mut marked = Templates::load(None, &all).expect("built-in templates");
        let tera = marked.tera_mut();
        tera.autoescape_on(vec![""]);
        tera.set_escape_fn(mark);
        for &(name, filter) in templates::FILTERS {
            tera.register_filter(
                name,
                move |v: &Value, args: &HashMap<String, Value>| -> tera::Result<Value> {
                    let out = filter(v, args)?;
                    let s = out.as_str().expect("filters print strings");
                    Ok(Value::String(format!("{FILTERED}{name}{FILTER_END}{s}")))
                },
            );
        }
        (plain, marked)
    })
}

/// Renders one host with options from a `registrish.toml` section.
fn render_host<H: Host>(
    registry: &Registry,
    section: &str,
    common: &Common,
    templates: &Templates,
) -> anyhow::Result<Vec<String>> {
    let table: toml::Table = toml::from_str(section)?;
    let options: H::Options = settings::from_section(Some(&toml::Value::Table(table)))?;
    let settings = H::settings(options, &H::Options::default(), registry)?;
    let mut out = crate::output::Outputs::memory(H::OUTPUT.file_count());
    H::render(registry, &settings, &Ctx { common, templates }, &mut out)?;
    Ok(out.into_texts())
}

type RenderFn = fn(&Registry, &Common, &Templates) -> anyhow::Result<Vec<String>>;

/// Every host, with the settings it is rendered with. s3 and storj render from the files
/// prepare wrote (they need a prepared tree).
const HOSTS: &[(&str, RenderFn)] = &[
    ("nginx", |r, c, t| {
        render_host::<hosts::nginx::Nginx>(r, "listen = \"127.0.0.1:8080\"", c, t)
    }),
    ("netlify", |r, c, t| {
        render_host::<hosts::netlify::Netlify>(r, "", c, t)
    }),
    ("cloudflare", |r, c, t| {
        render_host::<hosts::cloudflare::Cloudflare>(r, "", c, t)
    }),
    ("s3", |r, c, t| {
        render_host::<hosts::s3::S3>(
            r,
            "bucket = \"b\"\nprefix = \"p/q\"\nendpoint = \"https://s3.example.org\"",
            c,
            t,
        )
    }),
    ("storj", |r, c, t| {
        render_host::<hosts::storj::Storj>(r, "bucket = \"b\"", c, t)
    }),
    ("cloudflare-rules", |r, c, t| {
        render_host::<hosts::cloudflare_rules::CloudflareRules>(r, "", c, t)
    }),
    ("apache", |r, c, t| {
        render_host::<hosts::apache::Apache>(r, "", c, t)
    }),
    ("apache-vhost", |r, c, t| {
        render_host::<hosts::apache::Apache>(
            r,
            "vhost = true\nlisten = \"127.0.0.1:8080\"\nserver_name = \"registry.example.org\"",
            c,
            t,
        )
    }),
    ("caddy", |r, c, t| {
        render_host::<hosts::caddy::Caddy>(r, "listen = \"127.0.0.1:8080\"", c, t)
    }),
    ("headers", |r, c, t| {
        render_host::<hosts::headers::Headers>(r, "", c, t)
    }),
];

/// Hosts whose output holds nothing of the model (the worker reads the tree at request time).
const MODEL_FREE: &[&str] = &["cloudflare", "cloudflare-rules"];

/// A printed value: the filter it went through (none for a bare `{{ x }}`) and what it printed.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Print {
    filter: Option<String>,
    text: String,
}

/// Splits a marked render into the plain text it stands for and its prints.
fn prints(marked: &str) -> (String, Vec<Print>) {
    let mut plain = String::with_capacity(marked.len());
    let mut out = Vec::new();
    let mut rest = marked;
    while let Some(start) = rest.find(OPEN) {
        plain.push_str(&rest[..start]);
        let after = &rest[start + OPEN.len_utf8()..];
        let end = after.find(CLOSE).expect("every print is closed");
        let inner = &after[..end];
        assert!(!inner.contains(OPEN), "nested print: {inner:?}");
        let (filter, text) = match inner.strip_prefix(FILTERED) {
            Some(tagged) => {
                let (name, text) = tagged.split_once(FILTER_END).expect("filter name");
                (Some(name.to_string()), text)
            }
            None => (None, inner),
        };
        assert!(
            !text.contains([FILTERED, FILTER_END]),
            "a filter's output went through another filter: {inner:?}"
        );
        plain.push_str(text);
        out.push(Print {
            filter,
            text: text.to_string(),
        });
        rest = &after[end + CLOSE.len_utf8()..];
    }
    plain.push_str(rest);
    (plain, out)
}

/// The characters of names, tags and digests (src/grammar.rs), plus `+` of media types: the
/// alphabet of `token`.
fn grammar_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._-/:+".contains(c)
}

fn all_grammar(s: &str) -> bool {
    !s.is_empty() && s.chars().all(grammar_char)
}

fn quoted(s: &str, quote: char, forbidden: &str) -> bool {
    s.len() >= 2
        && s.starts_with(quote)
        && s.ends_with(quote)
        && !s[1..s.len() - 1]
            .chars()
            .any(|c| c == quote || c.is_control() || forbidden.contains(c))
}

/// Whether a printed value keeps to what its position allows: each filter's form, built from
/// the grammar's alphabet (see src/templates.rs); a bare print is grammar text, a number, or a
/// constant every model prints alike (`constants`).
fn allowed(p: &Print, constants: &BTreeSet<String>) -> bool {
    let s = p.text.as_str();
    match p.filter.as_deref() {
        None => all_grammar(s) || constants.contains(s),
        Some("token") => all_grammar(s),
        Some("map_entry") => match s.split_once(' ') {
            Some((key, value)) if all_grammar(value) => {
                match key.strip_prefix("\"~^").and_then(|k| k.strip_suffix("$\"")) {
                    // A case-sensitive key: grammar text with every `.` escaped.
                    Some(regex) => {
                        let unescaped = regex.replace("\\.", "");
                        !unescaped.contains(['.', '\\']) && all_grammar(&regex.replace("\\.", "."))
                    }
                    None => all_grammar(key),
                }
            }
            _ => false,
        },
        Some("regex_literal") => {
            let bare = s.replace("[.]", "x");
            !bare.contains(['.', '+']) && all_grammar(&bare)
        }
        Some("rewrite_table") => s.strip_prefix(';').is_some_and(|rest| {
            rest.split(';').all(|e| {
                e.split_once('=').is_some_and(|(k, v)| {
                    [k, v]
                        .iter()
                        .all(|t| all_grammar(t) && !t.contains(['/', '+']))
                })
            })
        }),
        Some("quoted_path") => quoted(s, '"', "'\\$%{};`"),
        Some("single_quoted") => quoted(s, '\'', "\\$"),
        Some("shell_quoted") => quoted(s, '\'', ""),
        Some("backquoted") => quoted(s, '`', ""),
        // The realm: letters, digits, spaces and `. _ -` in double quotes.
        Some("double_quoted") => {
            quoted(s, '"', "")
                && s[1..s.len() - 1]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b" ._-".contains(&b))
        }
        Some("host_port") => s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".:[]*_-".contains(c)),
        Some("js_regex") => [NAME_PATTERN, TAG_PATTERN, DIGEST_PATTERN]
            .iter()
            .any(|p| p.replace('/', "\\/") == s),
        Some(other) => panic!("a filter this check does not know: {other}"),
    }
}

/// What the empty model and a reference model (every template branch) print bare, per host:
/// the constants (cache headers, error bodies, ...), the same whatever the names. They depend
/// on the settings alone (here only `tag_max_age` varies), so each is worked out once.
fn constants(common: &Common, root: &Path) -> Constants {
    static CACHE: OnceLock<std::sync::Mutex<HashMap<u64, Constants>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(c) = cache.lock().unwrap().get(&common.tag_max_age) {
        return c.clone();
    }
    let (_, marked) = templates();
    let mut constants = Constants::new();
    for reference in [ModelSpec::default(), reference_model()] {
        let model = build(&reference, root);
        prepare::prepare(&model).expect("prepare of the reference tree");
        for (host, render) in HOSTS {
            let out = render(&model, common, marked)
                .unwrap_or_else(|e| panic!("{host} refuses the reference model: {e:#}"));
            let set = constants.entry(host).or_default();
            for o in &out {
                for p in prints(o).1 {
                    match p.filter {
                        None => {
                            set.insert(p.text);
                        }
                        Some(_) => assert!(allowed(&p, &BTreeSet::new()), "{host}: {p:?}"),
                    }
                }
            }
        }
        let _ = fs::remove_dir_all(root.join(layout::V2));
        fs::create_dir_all(root.join(layout::V2)).unwrap();
    }
    cache
        .lock()
        .unwrap()
        .insert(common.tag_max_age, constants.clone());
    constants
}

type Constants = BTreeMap<&'static str, BTreeSet<String>>;

/// For any model made of grammar-valid names and tags, every host renders (filters refuse
/// nothing the grammar allows), the same bytes twice, with every printed value in its
/// position's alphabet; nginx's manifest table lists exactly the model's manifest routes.
pub fn render(spec: &ModelSpec) {
    let dir = Scratch::new("render");
    let root = dir.0.join("tree");
    fs::create_dir_all(root.join(layout::V2)).unwrap();
    let root = fs::canonicalize(&root).unwrap();
    let common = Common {
        tree: root.clone(),
        templates: None,
        tag_max_age: spec.tag_max_age,
        immutable_max_age: settings::IMMUTABLE_MAX_AGE,
        strict: false,
        check: None,
        output: None,
        blobs_url: None,
        htpasswd: None,
        realm: crate::auth::Realm::parse(crate::auth::DEFAULT_REALM).unwrap(),
    };
    let (plain, marked) = templates();
    let constants = constants(&common, &root);
    let registry = build(spec, &root);

    // A grammar-valid name can still collide with a file prepare writes (`a` and `a/tags/list`):
    // then the stores, which upload prepared files, have nothing to render from.
    let prepared = prepare::prepare(&registry).is_ok() && routes::pending(&registry).is_empty();
    for (host, render) in HOSTS {
        // They render no part of the model (constants() checked them once, per settings).
        if MODEL_FREE.contains(host) {
            continue;
        }
        let result = render(&registry, &common, plain);
        let out = match result {
            Ok(out) => out,
            Err(_) if !prepared && matches!(*host, "s3" | "storj") => continue,
            Err(e) => panic!("{host} refuses a grammar-valid model: {e:#}\n{spec:#?}"),
        };
        // The marked render, unmarked, is a second render: the bytes must not change.
        let marked_out = render(&registry, &common, marked).expect("marked render");
        assert_eq!(out.len(), marked_out.len());
        for (text, m) in out.iter().zip(&marked_out) {
            assert!(!text.contains([OPEN, CLOSE, FILTERED, FILTER_END]));
            let (unmarked, printed) = prints(m);
            assert_eq!(&unmarked, text, "{host}: marking changed the output");
            for p in &printed {
                assert!(
                    allowed(p, &constants[host]),
                    "{host} prints {:?} through {:?}: outside what that position allows\n{spec:#?}",
                    p.text,
                    p.filter
                );
            }
            if *host == "nginx" {
                check_nginx_table(&registry, &printed);
            }
        }
    }
}

/// nginx's tables hold each manifest route nginx serves once (every route but the
/// symlinked): in a `map $uri` row keyed by its exact path, or as `;REF=` in its repository's
/// table, with its type code (and digest, for tags).
fn check_nginx_table(registry: &Registry, printed: &[Print]) {
    let symlinked = registry.facts.symlinked();
    let mut expected: BTreeMap<String, String> = BTreeMap::new();
    for repo in registry.repositories.values() {
        for route in routes::manifests(repo) {
            let path = route.path();
            if symlinked.contains(&path[1..]) {
                continue;
            }
            let value = match route.tag() {
                Some(_) => format!("{}{}", route.media_type.code(), route.digest),
                None => route.media_type.code().to_string(),
            };
            assert!(expected.insert(path, value).is_none(), "one route per path");
        }
    }
    let mut found: BTreeMap<String, String> = BTreeMap::new();
    for p in printed
        .iter()
        .filter(|p| p.filter.as_deref() == Some("map_entry"))
    {
        let (key, value) = p.text.split_once(' ').expect("KEY VALUE");
        let path = match key.strip_prefix("\"~^").and_then(|k| k.strip_suffix("$\"")) {
            Some(regex) => regex.replace("\\.", "."),
            None => key.to_string(),
        };
        assert!(
            found.insert(path.clone(), value.to_string()).is_none(),
            "nginx lists {path} twice"
        );
    }
    // A table row prints its repository's name (token), then the table (rewrite_table).
    for pair in printed.windows(2) {
        let (name, table) = (&pair[0], &pair[1]);
        if table.filter.as_deref() != Some("rewrite_table") {
            continue;
        }
        assert_eq!(name.filter.as_deref(), Some("token"));
        let repo = name.text.strip_prefix('/').expect("a table's key is /NAME");
        // A digest with no entry of its own is found in a tag's value (the last regex of
        // $registrish_tabled), after every entry: an entry answers first.
        let mut by_value = Vec::new();
        for entry in table.text.split(';').skip(1) {
            let (reference, value) = entry.split_once('=').expect("REF=VALUE");
            let value = match value.split_at(1) {
                (code, "") => code.to_string(),
                (code, hex) => {
                    by_value.push((format!("/v2/{repo}/manifests/sha256:{hex}"), code));
                    format!("{code}sha256:{hex}")
                }
            };
            let path = format!("/v2/{repo}/manifests/{reference}");
            assert!(
                found.insert(path.clone(), value).is_none(),
                "nginx lists {path} twice"
            );
        }
        for (path, code) in by_value {
            // The first tag's value in the table answers.
            found.entry(path).or_insert_with(|| code.to_string());
        }
    }
    assert_eq!(
        found, expected,
        "nginx's manifest table is not the model's routes"
    );
}
