//! Running commands: `import`, `check`, `prepare`, and every host through one
//! generic path ([`run_host`]): settings, scan, the host's judgement, render,
//! then print, write or compare. Exit codes: 0 success, 1 problems (or
//! `--check` found a stale file), 2 usage or I/O error.

use crate::cli::{CheckArgs, Cli, Command, Format, GcArgs, ImportArgs, RmArgs};
use crate::hosts::{self, Credentials, Ctx, HOSTS, Host, Site};
use crate::model::Registry;
use crate::output::{Destination, Shape};
use crate::problem::{Kind, Problem, Severity};
use crate::settings::{self, Common, CommonArgs, FileConfig, TreeArgs};
use crate::templates::Templates;
use crate::{check, gc, prepare, routes, scan};
use anyhow::{Context, Result, bail};

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
        Command::CloudflareCredentials(args) => run_credentials(&args),
        Command::Rm(args) => run_rm(&args),
        Command::Gc(args) => run_gc(&args),
        Command::Completions(args) => crate::docs::completions(args.shell),
        Command::Man => crate::docs::man(),
    }
}

/// The Pages secret: passwords from stdin (never from argv, which other users can read in
/// the process list), one fresh salt each.
fn run_credentials(args: &crate::cli::CredentialsArgs) -> Result<Outcome> {
    use std::io::BufRead;
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut entries = Vec::new();
    for user in &args.users {
        let Some(line) = lines.next() else {
            bail!("no password line on standard input for {user}");
        };
        let password = line.context("cannot read a password from standard input")?;
        if password.is_empty() {
            bail!("the password for {user} is empty");
        }
        let salt = crate::auth::random_salt()?;
        entries.push(crate::auth::pbkdf2_entry(
            user,
            password.as_bytes(),
            &salt,
            crate::auth::PBKDF2_ITERATIONS,
        )?);
    }
    println!("{}", entries.join(" "));
    Ok(Outcome::Clean)
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
            refuse_blobs_url(H::NAME)?;
        }
        // `[blobs] url` in the settings file is for the hosts that redirect.
        common.blobs_url = None;
    }
    if common.htpasswd.is_some() {
        match H::CREDENTIALS {
            Credentials::Htpasswd if common.blobs_url.is_some() => bail!(
                "--htpasswd with --blobs-url: clients send no credentials to another origin, so the blobs there would be public; serve a private registry's blobs from this host"
            ),
            Credentials::Htpasswd => {}
            Credentials::Refused(why) => bail!("{}: {why}", H::NAME),
            Credentials::NotApplicable(why) if args.htpasswd.is_some() => {
                bail!("{}: {why}", H::NAME)
            }
            // `[auth]` in the settings file is for the hosts that check credentials.
            Credentials::NotApplicable(_) => common.htpasswd = None,
        }
    }
    let from_file: H::Options = settings::from_section(file.section(H::NAME))?;
    let options = settings::merge(&flags, &from_file)?;
    let templates = Templates::load(common.templates.as_deref(), H::TEMPLATES)?;
    let registry = scan::scan(
        &common.tree,
        scan::Options {
            drop_references: !H::READS_REFERENCES,
            ..H::scan_options(&options)
        },
    )?;
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
    if let Some(h) = common
        .htpasswd
        .as_ref()
        .filter(|h| h.is_inside(&registry.root))
    {
        problems.push(Problem::error(
            h.path.to_string_lossy().into_owned(),
            Kind::CredentialsInTree,
            "the credentials file is inside TREE, where a host could serve it: move it out",
        ));
    }
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
    let mut out = destination.open(H::OUTPUT.file_count())?;
    H::render(&registry, &settings, &ctx, &mut out)?;
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
    let delivered = out.commit()?;
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

/// `--blobs-url` given to a host that serves blobs itself: a usage error naming the hosts
/// that redirect them.
fn refuse_blobs_url(host: &str) -> Result<()> {
    let hosts: Vec<&str> = HOSTS
        .iter()
        .filter(|h| h.blobs_url())
        .map(|h| h.name())
        .collect();
    bail!(
        "--blobs-url: {host} serves blobs itself; the hosts that redirect them are {}",
        hosts.join(", ")
    )
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
        drop_references: false,
    };
    let mut registry = scan::scan(&args.tree.tree, options)?;
    if args.verify_blobs {
        check::verify_blobs(&mut registry);
    }
    registry.problems.extend(not_prepared(&registry));
    registry.problems.extend(gc::check_warnings(&registry));
    // Host judgements: the chosen host's in full, else one hint line for each
    // host that would leave out (or refuse) more than every host does.
    let blobs_url = settings::blobs_url(args.blobs_url.as_deref(), &file)?;
    if args.blobs_url.is_some()
        && let Some(h) = args.host.as_deref().and_then(crate::hosts::find)
        && !h.blobs_url()
    {
        refuse_blobs_url(h.name())?;
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
        "registrish-gen: prepared {}: {} digest manifests linked, {} copied, {} files written, {} unchanged{}",
        registry.root.display(),
        r.linked,
        r.copied,
        r.written,
        r.unchanged,
        if r.removed > 0 {
            format!(", {} obsolete removed", r.removed)
        } else {
            String::new()
        }
    );
    Ok(Outcome::Clean)
}

fn run_import(args: &ImportArgs) -> Result<Outcome> {
    let request = crate::import::Request::parse(&args.source, &args.name, &args.tags, &args.tree)?;
    let r = crate::import::import(&request)?;
    for note in &r.notes {
        eprintln!("registrish-gen: {note}");
    }
    let referrers = match r.referrers {
        0 => String::new(),
        n => format!(" with {n} referrer(s)"),
    };
    eprintln!(
        "registrish-gen: imported {} image(s){referrers} into v2/{} as {}: {} objects linked, {} copied ({} bytes written), {} already present",
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

/// Carries out a plan under the tree lock, in the order that keeps every kept tag whole: the
/// kept registry's lists and catalog (and digest files of kept manifests) first, then lists of
/// repositories left without tags, tags, manifests by digest (parents first), blobs, and the
/// directories left empty.
fn carry_out(plan: &gc::Plan, kept: &Registry) -> Result<()> {
    prepare::prepare(kept)?;
    let root = &kept.root;
    for group in [&plan.lists, &plan.tags, &plan.manifests, &plan.blobs] {
        let files: Vec<&gc::Doomed> = group.iter().collect();
        gc::delete(root, &files)?;
    }
    let all: Vec<&gc::Doomed> = plan.files().collect();
    gc::prune_dirs(root, &all);
    Ok(())
}

fn run_rm(args: &RmArgs) -> Result<Outcome> {
    let mut refs = Vec::new();
    for r in &args.references {
        match gc::RmRef::parse(r) {
            Some(r) => refs.push(r),
            None => bail!("{r:?} is not NAME:TAG or NAME@sha256:<hex> (OCI grammar)"),
        }
    }
    let _lock = prepare::lock_tree(&args.tree)?;
    let mut registry = scan::scan(&args.tree, scan::Options::default())?;
    prepare::remove_dead_temps(&mut registry);
    let (plan, kept) = match gc::removal(&registry, &refs) {
        Ok(p) => p,
        Err(errors) => {
            for e in errors {
                eprintln!("registrish-gen: {e}");
            }
            eprintln!("registrish-gen: rm: nothing removed");
            return Ok(Outcome::Problems);
        }
    };
    carry_out(&plan, &kept)?;
    eprintln!(
        "registrish-gen: rm: removed {} tags and {} manifests by digest from {}; `registrish-gen gc {}` deletes what only they reached",
        plan.tags.len(),
        plan.manifests.len(),
        registry.root.display(),
        args.tree.display()
    );
    Ok(Outcome::Clean)
}

fn run_gc(args: &GcArgs) -> Result<Outcome> {
    let retention = match (args.keep, &args.pattern) {
        (Some(keep), Some(pattern)) => Some(gc::Retention::new(keep, pattern)?),
        _ => None,
    };
    let _lock = prepare::lock_tree(&args.tree)?;
    // Thorough: digest files are re-hashed (one that lies about its bytes is left, not trusted)
    // and blobs stat'ed for the bytes freed.
    let mut registry = scan::scan(
        &args.tree,
        scan::Options {
            thorough: true,
            blob_sizes: true,
            drop_references: false,
        },
    )?;
    if !args.dry_run {
        prepare::remove_dead_temps(&mut registry);
    }
    let (plan, kept) = gc::plan(&registry, retention.as_ref());
    for p in &plan.left {
        eprintln!("{p}");
    }
    let files = plan.files().count();
    if args.dry_run {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        for d in plan.files() {
            writeln!(out, "{}", d.path)?;
        }
        out.flush()?;
    } else {
        carry_out(&plan, &kept)?;
    }
    eprintln!(
        "registrish-gen: gc{}: {files} files, {} bytes {} ({} tags/list, {} tags, {} manifests, {} blobs); {} files left that gc cannot prove unreachable",
        if args.dry_run { " --dry-run" } else { "" },
        plan.bytes(),
        if args.dry_run {
            "would be freed"
        } else {
            "freed"
        },
        plan.lists.len(),
        plan.tags.len(),
        plan.manifests.len(),
        plan.blobs.len(),
        plan.left.len()
    );
    Ok(Outcome::Clean)
}
