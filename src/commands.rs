//! Running commands: `import`, `check`, `prepare`, and every host through one
//! generic path ([`run_host`]): settings, scan, the host's judgement, render,
//! then print, write or compare. Exit codes: 0 success, 1 problems (or
//! `--check` found a stale file), 2 usage or I/O error.

use crate::cli::{CheckArgs, Cli, Command, Format, ImportArgs};
use crate::hosts::{self, Ctx, HOSTS, Host, Site};
use crate::model::Registry;
use crate::output::{Destination, Shape};
use crate::problem::{Kind, Problem, Severity};
use crate::settings::{self, Common, CommonArgs, FileConfig, TreeArgs};
use crate::templates::Templates;
use crate::{check, prepare, routes, scan};
use anyhow::{Result, bail};

/// What a successful run ended with.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Clean,
    Problems,
}

pub(crate) fn run(matches: &clap::ArgMatches) -> Result<Outcome> {
    use clap::FromArgMatches;
    if let Some((name, sub)) = matches.subcommand()
        && let Some(host) = hosts::find(name)
    {
        return host.run(sub);
    }
    match Cli::from_arg_matches(matches)?.command {
        Command::Import(args) => run_import(&args),
        Command::Check(args) => run_check(&args),
        Command::Prepare(args) => run_prepare(&args),
        Command::Probe(args) => Ok(if crate::probe::run(&args)? {
            Outcome::Clean
        } else {
            Outcome::Problems
        }),
        Command::Completions(args) => crate::docs::completions(args.shell),
        Command::Man => crate::docs::man(),
    }
}

/// `registrish.toml`, with every host's section checked against its options.
fn load_config(args: &TreeArgs) -> Result<FileConfig> {
    let file = FileConfig::load(args, &hosts::names())?;
    for host in HOSTS {
        host.check_section(file.section(host.name())).map_err(|e| {
            anyhow::anyhow!(
                "invalid settings in [{}] of {}: {e:#}",
                host.name(),
                args.config
                    .clone()
                    .unwrap_or_else(|| args.tree.join(settings::CONFIG_FILE))
                    .display()
            )
        })?;
    }
    Ok(file)
}

fn report(problems: &[Problem]) {
    for p in problems {
        eprintln!("{p}");
    }
}

fn has_errors(problems: &[Problem]) -> bool {
    problems.iter().any(|p| p.severity == Severity::Error)
}

/// The one path every host command takes.
pub(crate) fn run_host<H: Host>(args: CommonArgs, flags: H::Options) -> Result<Outcome> {
    let file = load_config(&args.tree)?;
    let mut common = Common::resolve(&args, &file)?;
    if common.blobs_url.is_some() && !H::BLOBS_URL {
        if args.blobs_url.is_some() {
            bail!(
                "--blobs-url: {} serves blobs itself; the hosts that redirect them are {}",
                H::NAME,
                blob_redirecting_hosts()
            );
        }
        // `[blobs] url` in the settings file is for the hosts that redirect.
        common.blobs_url = None;
    }
    let from_file: H::Options = settings::from_section(file.section(H::NAME))?;
    let options = settings::merge(&flags, &from_file)?;
    let templates = Templates::load(common.templates.as_deref(), H::TEMPLATES)?;
    let registry = scan::scan(&common.tree, H::scan_options(&options))?;
    let destination = Destination::new(
        H::OUTPUT,
        common.output.as_deref(),
        common.check.as_deref(),
        &registry.root,
    );
    let site = match (&destination, H::OUTPUT) {
        (Destination::Write(p) | Destination::Check(p), Shape::Directory(_)) => p[0]
            .parent()
            .map(|d| d.to_path_buf())
            .unwrap_or_else(|| registry.root.clone()),
        _ => registry.root.clone(),
    };
    // A platform that deploys a directory (Pages, Netlify) would upload TREE's blobs too:
    // with the blobs elsewhere it deploys a site of its own, every file but the blobs.
    let mirror_site = common.blobs_url.is_some() && matches!(H::OUTPUT, Shape::Directory(_));
    if mirror_site {
        if site == registry.root {
            bail!(
                "--blobs-url with {}: give -o SITE, a directory of its own to deploy ({} uploads every file of the directory, and TREE holds the blobs)",
                H::NAME,
                H::TITLE
            );
        }
        crate::site::check_site(&registry, &site)?;
    }
    let host_problems = H::problems(
        &registry,
        &options,
        &Site {
            dir: &site,
            blobs_url: common.blobs_url.as_ref(),
        },
    );
    let settings = H::settings(options, &flags, &registry)?;
    let mut problems = registry.problems.clone();
    problems.extend(host_problems);
    let pending = not_prepared(&registry);
    if problems
        .iter()
        .any(|p| p.severity == Severity::Error && p.kind.blocks_output())
    {
        report(&problems);
        report_pending(&pending, &registry.root);
        eprintln!(
            "registrish-gen: {} cannot host this tree as it is (see above); nothing written",
            H::TITLE
        );
        return Ok(Outcome::Problems);
    }
    let ctx = Ctx {
        common: &common,
        templates: &templates,
    };
    let contents = H::render(&registry, &settings, &ctx)?;
    debug_assert_eq!(contents.len(), H::OUTPUT.file_count());
    // Files prepare owns that are missing, stale or swapped for a symlink: a host would
    // answer a tag with a 404, serve an old tag list, or (for a symlink, issue 10 finding 4)
    // serve whatever the link points at. No host's output is written until prepare has run.
    // Checked after rendering so that a bad setting is still a usage error (exit 2).
    if !pending.is_empty() {
        report(&problems);
        report_pending(&pending, &registry.root);
        eprintln!("registrish-gen: nothing written");
        return Ok(Outcome::Problems);
    }
    report(&problems);
    if common.strict && has_errors(&problems) {
        eprintln!("registrish-gen: --strict: not writing output because of the problems above");
        return Ok(Outcome::Problems);
    }
    let delivered = destination.deliver(contents)?;
    if mirror_site {
        if let Destination::Check(_) = destination {
            let stale = crate::site::stale(&registry, &site);
            for path in stale.iter().take(20) {
                eprintln!("registrish-gen: --check: {} is out of date", path.display());
            }
            if !stale.is_empty() {
                return Ok(Outcome::Problems);
            }
        } else {
            let m = crate::site::mirror(&registry, &site)?;
            eprintln!(
                "registrish-gen: site {}: {} files linked, {} copied, {} unchanged, {} removed; no blobs (they are served from {})",
                site.display(),
                m.linked,
                m.copied,
                m.unchanged,
                m.removed,
                common
                    .blobs_url
                    .as_ref()
                    .map(|u| u.as_str())
                    .unwrap_or_default()
            );
        }
    }
    Ok(if delivered {
        Outcome::Clean
    } else {
        Outcome::Problems
    })
}

/// The hosts that can answer blob requests with a redirect, for messages.
fn blob_redirecting_hosts() -> String {
    HOSTS
        .iter()
        .filter(|h| h.blobs_url())
        .map(|h| h.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What `prepare` would write or fix, as errors: `not-regular-file` for a symlink (or other
/// non-regular file) where prepare writes a file, which prepare replaces rather than reading
/// through; `not-prepared` for a missing or stale file.
fn not_prepared(registry: &Registry) -> Vec<Problem> {
    routes::pending(registry)
        .into_iter()
        .map(|(path, why)| {
            if why == routes::NOT_REGULAR {
                Problem::error(
                    path,
                    Kind::NotRegular,
                    "not a regular file where prepare writes one: a host that follows symlinks would serve what it points at; run `registrish-gen prepare`, which replaces it",
                )
            } else {
                Problem::error(
                    path,
                    Kind::NotPrepared,
                    format!(
                        "{why}: `prepare` writes it, and hosts serve it; run `registrish-gen prepare`"
                    ),
                )
            }
        })
        .collect()
}

/// A host command lists the first few files prepare would write (a 100k-tag tree that was
/// never prepared would otherwise print 200k lines), the count of the rest, and the fix.
fn report_pending(pending: &[Problem], root: &std::path::Path) {
    const SHOWN: usize = 20;
    if pending.is_empty() {
        return;
    }
    report(&pending[..pending.len().min(SHOWN)]);
    if pending.len() > SHOWN {
        eprintln!(
            "registrish-gen: ... and {} more files prepare owns",
            pending.len() - SHOWN
        );
    }
    eprintln!(
        "registrish-gen: {} files prepare owns are missing, stale or not regular files in {}: run `registrish-gen prepare {}` first",
        pending.len(),
        root.display(),
        root.display()
    );
}

fn run_check(args: &CheckArgs) -> Result<Outcome> {
    let mut file = load_config(&args.tree)?;
    if let Some(n) = args.max_files {
        file.set("cloudflare", "max_files", toml::Value::Integer(n as i64));
        if args.host.as_deref().is_some_and(|h| h != "cloudflare") {
            bail!("--max-files only applies with --host cloudflare");
        }
    }
    // Thorough measures everything any host judges (blob sizes included).
    let options = scan::Options {
        thorough: true,
        blob_sizes: true,
    };
    let mut registry = scan::scan(&args.tree.tree, options)?;
    if args.verify_blobs {
        check::verify_blobs(&mut registry);
    }
    registry.problems.extend(not_prepared(&registry));
    // Host judgements: the chosen host's in full, else one hint line for each
    // host that would leave out (or refuse) more than every host does.
    let blobs_url = args
        .blobs_url
        .as_deref()
        .or(file.blobs.url.as_deref())
        .map(crate::address::BlobsUrl::parse)
        .transpose()?;
    if args.blobs_url.is_some()
        && let Some(h) = args.host.as_deref().and_then(crate::hosts::find)
        && !h.blobs_url()
    {
        bail!(
            "--blobs-url: {} serves blobs itself; the hosts that redirect them are {}",
            h.name(),
            blob_redirecting_hosts()
        );
    }
    let mut extra = Vec::new();
    for host in HOSTS {
        let site = Site {
            dir: &registry.root,
            blobs_url: blobs_url.as_ref().filter(|_| host.blobs_url()),
        };
        let problems = host.problems(&registry, file.section(host.name()), &site)?;
        if args.host.as_deref() == Some(host.name()) {
            extra.extend(problems);
        } else if args.host.is_none() {
            let errors = problems
                .iter()
                .filter(|p| p.severity == Severity::Error)
                .count();
            if errors > 0 {
                extra.push(Problem::warning(
                    "v2/",
                    Kind::HostUnservable,
                    format!(
                        "{} cannot host or serve this tree as it is ({errors} problems; see `check --host {}`)",
                        host.title(),
                        host.name()
                    ),
                ));
            }
        }
    }
    registry.problems.extend(extra);
    registry.problems.sort();
    match args.format {
        Format::Text => {
            for p in &registry.problems {
                println!("{p}");
            }
            let errors = registry
                .problems
                .iter()
                .filter(|p| p.severity == Severity::Error)
                .count();
            eprintln!(
                "registrish-gen: {} repositories, {} tags, {} manifests, {} blobs; {} errors, {} warnings",
                registry.repositories.len(),
                registry.tag_count(),
                registry.manifest_count(),
                registry.blob_count(),
                errors,
                registry.problems.len() - errors
            );
        }
        Format::Json => println!("{}", check::json_report(&registry)),
    }
    Ok(if has_errors(&registry.problems) {
        Outcome::Problems
    } else {
        Outcome::Clean
    })
}

fn run_prepare(args: &TreeArgs) -> Result<Outcome> {
    load_config(args)?;
    let _lock = prepare::lock_tree(&args.tree)?;
    let mut registry = scan::scan(&args.tree, scan::Options::default())?;
    prepare::remove_dead_temps(&mut registry);
    registry.problems.sort();
    report(&registry.problems);
    let r = prepare::prepare(&registry)?;
    eprintln!(
        "registrish-gen: prepared {}: {} digest manifests linked, {} copied, {} files written, {} unchanged",
        registry.root.display(),
        r.linked,
        r.copied,
        r.written,
        r.unchanged
    );
    Ok(Outcome::Clean)
}

fn run_import(args: &ImportArgs) -> Result<Outcome> {
    let request = crate::import::Request::parse(&args.source, &args.name, &args.tags, &args.tree)?;
    let r = crate::import::import(&request)?;
    eprintln!(
        "registrish-gen: imported {} image(s) into v2/{} as {}: {} objects linked, {} copied ({} bytes written), {} already present",
        r.images,
        request.name,
        r.tags.join(", "),
        r.linked,
        r.copied,
        r.bytes_written,
        r.present
    );
    // Complete the tree so it can be served right away.
    run_prepare(&TreeArgs {
        tree: args.tree.clone(),
        config: None,
    })
}
