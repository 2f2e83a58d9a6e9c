//! Apache: `.htaccess` content for TREE (shared hosting), or with `--vhost` a
//! `<VirtualHost>` holding the same rules in a `<Directory>` block.
//!
//! Why mod_rewrite, and why a search tree (measured here, Apache 2.4, 2 cores;
//! numbers in the templates): a `.htaccess` is parsed again on every request,
//! so per-path `<If>`/`<Files>` blocks or one rewrite rule per path cost tens to
//! hundreds of milliseconds per request at 10,000 tags, and even in a vhost a
//! flat list is checked one rule at a time. mod_rewrite can compare strings
//! (`=`, `>=`) without compiling a regex and skip rules (`[S=n]`), so the
//! manifest table becomes a binary search over repositories, then over chunks
//! of one repository's references; each chunk is a `;REF=VALUE` string that a
//! single backreference regex searches. Parsing cost is then about the bytes
//! of the table, and a lookup walks about log2(chunks) rules.

use super::{Ctx, Host, Site};
use crate::address::{Listen, check_root_path, check_server_name};
use crate::output::Outputs;

use crate::media::MediaType;
use crate::model::Registry;
use crate::output::Shape;
use crate::problem::{Kind, Problem};
use crate::routes;
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::cmp::Ordering;
use walkdir::WalkDir;

/// Longest `;REF=VALUE` table on one line. Apache refuses `.htaccess` lines
/// over 8,190 bytes ("Line too long"); the rest of the line is under 100.
pub(crate) const MAX_TABLE_BYTES: usize = 8_000;

pub(crate) const DEFAULT_VHOST_ADDRESS: &str = "*:80";

pub(crate) struct Apache;

/// `[apache]` in registrish.toml, and the flags of `registrish-gen apache`.
#[derive(clap::Args, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApacheOptions {
    /// Render a <VirtualHost> snippet for the server config instead of `.htaccess` content.
    #[arg(long)]
    #[serde(default)]
    pub vhost: bool,
    /// With --vhost: the `<VirtualHost>` address (default *:80); a `Listen` line is written
    /// only when this is given (Debian's ports.conf already listens on 80).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<String>,
    /// With --vhost: `ServerName`.
    #[arg(long, value_name = "NAME")]
    pub server_name: Option<String>,
    /// With --vhost: `DocumentRoot` (default: TREE's absolute path).
    #[arg(long, value_name = "PATH")]
    pub root_path: Option<String>,
}

pub(crate) struct ApacheSettings {
    /// A `<VirtualHost>` snippet instead of `.htaccess` content.
    pub vhost: bool,
    /// `Listen` line, only when asked for: Debian's ports.conf already
    /// listens on 80, and Apache refuses a second Listen for one address.
    pub listen: Option<String>,
    pub server_name: Option<String>,
    pub root_path: String,
}

impl Host for Apache {
    const READS_REFERENCES: bool = false;
    const NAME: &'static str = "apache";
    const ABOUT: &'static str =
        "Render Apache `.htaccess` content (or a vhost snippet with --vhost).";
    const TITLE: &'static str = "Apache";
    const TEMPLATES: &'static [&'static str] = &[
        "apache_htaccess.tera",
        "apache_vhost.tera",
        "apache_rules.tera",
    ];
    const OUTPUT: Shape = Shape::Stdout;
    const OUTPUT_HELP: &'static str = "Write to FILE atomically instead of standard output.";
    const EXAMPLES: &'static [crate::cli::Example] = &[
        (
            ".htaccess for a tree that is the document root (shared hosting)",
            "registrish-gen apache /srv/registry -o /srv/registry/.htaccess",
        ),
        (
            "A <VirtualHost> for the server config",
            "registrish-gen apache /srv/registry --vhost --listen 10.0.0.5:5000 --server-name registry.example.org -o /etc/apache2/sites-available/registry.conf",
        ),
    ];
    const BLOBS_URL: bool = true;
    const CREDENTIALS: super::Credentials = super::Credentials::Htpasswd;
    type Options = ApacheOptions;
    type Settings = ApacheSettings;

    /// `[apache]` in the file is "used with --vhost": only flags that make no
    /// sense without it are refused.
    fn settings(
        o: ApacheOptions,
        flags: &ApacheOptions,
        registry: &Registry,
    ) -> Result<ApacheSettings> {
        if !o.vhost {
            for (flag, given) in [
                ("--listen", flags.listen.is_some()),
                ("--server-name", flags.server_name.is_some()),
                ("--root-path", flags.root_path.is_some()),
            ] {
                if given {
                    bail!(
                        "{flag} only applies to a <VirtualHost> (--vhost); .htaccess content has no address or root"
                    );
                }
            }
        }
        if let Some(l) = &o.listen {
            Listen::parse(l)?;
        }
        if let Some(name) = &o.server_name {
            check_server_name(name, false)?;
        }
        let root_path = o
            .root_path
            .unwrap_or_else(|| registry.root.to_string_lossy().into_owned());
        if o.vhost {
            check_root_path(&root_path, false)?;
        }
        Ok(ApacheSettings {
            vhost: o.vhost,
            listen: o.listen,
            server_name: o.server_name,
            root_path,
        })
    }

    /// In `.htaccess` mode Apache reads every `.htaccess` on a request's way: one anywhere
    /// under TREE but the output itself could switch the rules off (`RewriteEngine Off`
    /// serves plain files as text and follows symlinks), and a `.htpasswd` is a credential
    /// store. Either refuses the command; the vhost mode reads none (`AllowOverride None`).
    fn problems(registry: &Registry, options: &ApacheOptions, _: &Site) -> Vec<Problem> {
        // Apache's `-l` test sees only a path's last component, and the symlink options
        // mod_rewrite needs let it follow a directory symlink anywhere on the way: a tree
        // holding one is refused in both modes (found by the scan, at generation time).
        let mut problems: Vec<Problem> = registry
            .facts
            .symlinks
            .iter()
            .filter(|s| s.is_passable())
            .map(|s| {
                Problem::error(
                    s.path.clone(),
                    Kind::ForeignConfig,
                    "a symlink to a directory, or where the layout has no file: Apache would follow it past its rules (its `-l` test sees only the last component); remove it, or copy what it points to",
                )
            })
            .collect();
        if options.vhost {
            return problems;
        }
        let is_ht = |name: &str| name == ".htaccess" || name == ".htpasswd";
        let mut found: Vec<String> = registry
            .facts
            .dot_files
            .iter()
            .filter(|p| p.rsplit('/').next().is_some_and(is_ht))
            .cloned()
            .collect();
        // Outside v2/, which the scan walked.
        let walker = WalkDir::new(&registry.root)
            .follow_links(false)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| !(e.depth() == 1 && e.file_name() == "v2"));
        for entry in walker.flatten() {
            let name = entry.file_name().to_string_lossy();
            // TREE/.htaccess is where this command's output goes.
            if is_ht(&name)
                && !(entry.depth() == 1 && name == ".htaccess")
                && let Ok(rel) = entry.path().strip_prefix(&registry.root)
            {
                found.push(rel.to_string_lossy().into_owned());
            }
        }
        found.sort();
        problems.extend(found.into_iter().map(|path| {
            Problem::error(
                path,
                Kind::ForeignConfig,
                "Apache would read this file in .htaccess mode and could serve the tree outside the rules; remove it, or use --vhost",
            )
        }));
        problems
    }

    fn render(
        registry: &Registry,
        settings: &ApacheSettings,
        ctx: &Ctx,
        out: &mut Outputs,
    ) -> Result<()> {
        render(registry, settings, ctx, out)
    }
}

/// mod_rewrite's `<`, `>=` (compare_lexicography): the longer string is
/// greater; equal lengths compare bytes.
fn rewrite_order(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// One rule of the search tree, before the skip counts of leaves are known.
enum Rule {
    /// `>= pivot` skips `skip` rules (the left subtree).
    Pivot {
        var: &'static str,
        pivot: String,
        skip: usize,
    },
    /// A chunk of one repository's table (indexes into [`Table`]); a hit skips to the end
    /// of the tree.
    Leaf { repo: usize, chunk: usize },
    /// A miss falls here: skip to the end of the tree.
    Jump,
}

/// A repository's table entries (`;REF=VALUE`), sorted, cut into chunks.
fn chunks(entries: &mut [(String, String)]) -> Vec<(String, String)> {
    entries.sort_by(|a, b| rewrite_order(&a.0, &b.0));
    let mut out: Vec<(String, String)> = Vec::new();
    for (reference, value) in entries.iter() {
        let entry_len = reference.len() + value.len() + 2;
        match out.last_mut() {
            Some((_, table)) if table.len() + entry_len <= MAX_TABLE_BYTES => {}
            _ => out.push((reference.clone(), String::new())),
        }
        let table = &mut out.last_mut().expect("pushed").1;
        table.push(';');
        table.push_str(reference);
        table.push('=');
        table.push_str(value);
    }
    out
}

/// Emits a balanced tree over `keys` (sorted in rewrite order): internal
/// nodes compare `var` with the first key of the right half.
fn tree(
    rules: &mut Vec<Rule>,
    keys: &[String],
    var: &'static str,
    leaf: &mut dyn FnMut(&mut Vec<Rule>, usize),
    lo: usize,
    hi: usize,
) {
    debug_assert!(lo < hi, "an empty subtree");
    if hi - lo == 1 {
        leaf(rules, lo);
        return;
    }
    let mid = lo + (hi - lo) / 2;
    let at = rules.len();
    rules.push(Rule::Jump);
    tree(rules, keys, var, leaf, lo, mid);
    rules[at] = Rule::Pivot {
        var,
        pivot: keys[mid].clone(),
        skip: rules.len() - at - 1,
    };
    tree(rules, keys, var, leaf, mid, hi);
}

/// The manifest table's rewrite rules; each repository's chunks are held once, and the rules
/// become template values a part at a time as they are rendered (issue 16).
struct Table {
    names: Vec<String>,
    chunks: Vec<Vec<(String, String)>>,
    rules: Vec<Rule>,
}

impl Table {
    /// Rule `i` as the template takes it.
    fn value(&self, i: usize) -> Value {
        let n = self.rules.len();
        match &self.rules[i] {
            Rule::Pivot { var, pivot, skip } => json!({"var": var, "pivot": pivot, "skip": skip}),
            Rule::Leaf { repo, chunk } => json!({
                "name": self.names[*repo],
                "table": self.chunks[*repo][*chunk].1,
                "skip": n - i - 1,
            }),
            Rule::Jump => json!({"skip": n - i - 1}),
        }
    }
}

/// Rewrite rules rendered at a time.
const RULES_PER_PART: usize = 4096;

fn table_rules(registry: &Registry) -> Result<Table> {
    // A repository of blobs alone has no manifest path to look up.
    let mut names: Vec<&crate::grammar::Name> = registry
        .repositories
        .iter()
        .filter(|(_, repo)| !repo.manifests.is_empty())
        .map(|(name, _)| name)
        .collect();
    names.sort_by(|a, b| rewrite_order(a.as_str(), b.as_str()));
    let mut per_repo = Vec::with_capacity(names.len());
    for name in &names {
        let Some(repo) = registry.repositories.get(*name) else {
            continue;
        };
        let mut entries = Vec::with_capacity(repo.tags.len() + repo.manifests.len());
        for route in routes::manifests(repo) {
            let code = route.media_type.code();
            entries.push(match route.tag() {
                Some(tag) => (tag.to_string(), format!("{code}{}", route.digest.hex())),
                None => (route.digest.to_string(), code.to_string()),
            });
        }
        per_repo.push(chunks(&mut entries));
    }
    let repo_keys: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut rules = Vec::new();
    if !names.is_empty() {
        let mut repo_leaf = |rules: &mut Vec<Rule>, i: usize| {
            let chunks = &per_repo[i];
            let chunk_keys: Vec<String> = chunks.iter().map(|(first, _)| first.clone()).collect();
            let mut chunk_leaf = |rules: &mut Vec<Rule>, j: usize| {
                rules.push(Rule::Leaf { repo: i, chunk: j });
                rules.push(Rule::Jump);
            };
            tree(
                rules,
                &chunk_keys,
                "REGISTRISH_REF",
                &mut chunk_leaf,
                0,
                chunks.len(),
            );
        };
        tree(
            &mut rules,
            &repo_keys,
            "REGISTRISH_NAME",
            &mut repo_leaf,
            0,
            names.len(),
        );
    }
    Ok(Table {
        names: repo_keys,
        chunks: per_repo,
        rules,
    })
}

fn render(
    registry: &Registry,
    settings: &ApacheSettings,
    ctx: &Ctx,
    out: &mut Outputs,
) -> Result<()> {
    let table = table_rules(registry)?;
    let parts = table.rules.len().div_ceil(RULES_PER_PART);
    let listen = settings.listen.as_deref().map(Listen::parse).transpose()?;
    let vhost_address = listen
        .as_ref()
        .map(Listen::with_wildcard)
        .unwrap_or_else(|| DEFAULT_VHOST_ADDRESS.to_string());
    let context = json!({
        "vhost": settings.vhost,
        // `Listen *:5080` is not Apache syntax; a port alone means every address.
        "listen": listen.as_ref().map(|l| match &l.host {
            Some(host) => format!("{host}:{}", l.port),
            None => l.port.to_string(),
        }),
        "vhost_address": vhost_address,
        "server_name": settings.server_name,
        "root": settings.root_path,
        "tag_max_age": ctx.common.tag_max_age,
        "blobs_url": ctx.common.blobs_url.as_ref().map(|u| u.as_str()),
        "auth": ctx.common.htpasswd.is_some(),
        "htpasswd": ctx.common.htpasswd_path(),
        "realm": ctx.common.realm.as_str(),
        "immutable_max_age": ctx.common.immutable_max_age,
        "media_types": MediaType::ALL.iter().map(|t| [t.code().to_string(), t.as_str().to_string()]).collect::<Vec<_>>(),
        "repository_count": registry.repositories.len(),
        "manifest_path_count": registry.manifest_count() + registry.tag_count(),
        "rules": (0..parts).map(crate::templates::slot).collect::<Vec<_>>(),
    });
    let template = if settings.vhost {
        "apache_vhost.tera"
    } else {
        "apache_htaccess.tera"
    };
    ctx.templates
        .render_with_slots(template, context, parts, out.file(0), |i| {
            let end = table.rules.len().min((i + 1) * RULES_PER_PART);
            let rules: Vec<Value> = (i * RULES_PER_PART..end).map(|r| table.value(r)).collect();
            (
                "apache_rules.tera",
                crate::templates::part_context("rules", rules),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        let l = |s| Listen::parse(s).unwrap();
        assert_eq!(
            l("5080"),
            Listen {
                host: None,
                port: 5080
            }
        );
        assert_eq!(l("*:80").with_wildcard(), "*:80");
        assert_eq!(l("127.0.0.1:5080").with_wildcard(), "127.0.0.1:5080");
        assert_eq!(l("[::1]:5080").host.as_deref(), Some("[::1]"));
        for bad in [
            "",
            "0",
            "registry.example.org",
            "[::1]",
            "1.2.3.4:80 ssl",
            "a:80;",
        ] {
            assert!(Listen::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rewrite_order_is_length_first() {
        let mut v = vec!["b", "aa", "a", "ab", "B"];
        v.sort_by(|a, b| rewrite_order(a, b));
        assert_eq!(v, ["B", "a", "b", "aa", "ab"]);
    }

    #[test]
    fn chunks_stay_under_the_line_limit_and_keep_order() {
        let mut entries: Vec<(String, String)> = (0..500)
            .map(|i| (format!("t{i}"), format!("d{}", "0".repeat(64))))
            .collect();
        let chunks = chunks(&mut entries);
        assert!(chunks.len() > 1);
        let mut previous: Option<&str> = None;
        for (first, table) in &chunks {
            assert!(table.len() <= MAX_TABLE_BYTES);
            assert!(table.starts_with(&format!(";{first}=")));
            if let Some(p) = previous {
                assert_eq!(rewrite_order(p, first), Ordering::Less);
            }
            previous = Some(first);
        }
        let total: usize = chunks.iter().map(|c| c.1.matches(';').count()).sum();
        assert_eq!(total, 500);
    }

    #[test]
    fn the_tree_reaches_every_chunk_once() {
        use crate::grammar::{Digest, Name, Tag};
        use crate::model::{Manifest, Repository};
        let mut registry = Registry::default();
        for (name, tags) in [("a", 300), ("bb", 1), ("c", 0)] {
            let name = Name::parse(name).unwrap();
            let mut repo = Repository::new(name.clone());
            for i in 0..tags {
                let digest = Digest::parse(&format!("sha256:{i:064x}")).unwrap();
                repo.tags
                    .insert(Tag::parse(&format!("t{i}")).unwrap(), digest);
                repo.manifests.insert(
                    digest,
                    Manifest {
                        media_type: MediaType::OciManifest,
                        size: 1,
                        references: Vec::new().into(),
                        artifact: None,
                        digest_file: true,
                        first_tag: None,
                    },
                );
            }
            // "c" holds blobs only: nothing to look up.
            repo.blobs
                .insert(Digest::parse(&format!("sha256:{:064x}", 7)).unwrap(), None);
            registry.repositories.insert(name, repo);
        }
        let table = table_rules(&registry).unwrap();
        let rules: Vec<Value> = (0..table.rules.len()).map(|i| table.value(i)).collect();
        let leaves: Vec<&Value> = rules.iter().filter(|r| r.get("table").is_some()).collect();
        let entries: usize = leaves
            .iter()
            .map(|r| r["table"].as_str().unwrap().matches(';').count())
            .sum();
        assert_eq!(entries, 2 * 301);
        assert!(leaves.iter().all(|r| r["name"] != "c"));
        // Every skip lands inside the rule list or just past it (the apply section).
        for (i, r) in rules.iter().enumerate() {
            assert!(i + (r["skip"].as_u64().unwrap() as usize) < rules.len());
        }
        assert!(table_rules(&Registry::default()).unwrap().rules.is_empty());
    }

    #[test]
    fn server_names_and_roots() {
        assert!(check_server_name("registry.example.org", false).is_ok());
        assert!(check_server_name("*.example.org", false).is_err());
        assert!(check_server_name("*.example.org", true).is_ok());
        for bad in ["a b", "a:80", "a;b", "80", "${X}", ""] {
            assert!(check_server_name(bad, true).is_err(), "{bad:?}");
        }
        assert!(check_root_path("/srv/registry", false).is_ok());
        assert!(check_root_path("srv", false).is_err());
        assert!(check_root_path("/srv/r*", false).is_err());
        assert!(check_root_path("/srv/r*", true).is_ok());
    }
}
