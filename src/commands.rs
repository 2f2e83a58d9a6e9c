//! Running commands: `import`, `check`, `prepare`, and every host through one
//! generic path ([`run_host`]): settings, scan, the host's judgement, render,
//! then print, write or compare. Exit codes: 0 success, 1 problems (or
//! `--check` found a stale file), 2 usage or I/O error.

use crate::cli::{CheckArgs, Cli, Command, Format, ImportArgs};
use crate::hosts::{self, Ctx, HOSTS, Host};
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
    let common = Common::resolve(&args, &file);
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
    let host_problems = H::problems(&registry, &options, &site);
    let settings = H::settings(options, &flags, &registry)?;
    let mut problems = registry.problems.clone();
    problems.extend(host_problems);
    // A file prepare owns swapped for a symlink would be served from wherever it points by
    // a host that follows symlinks (issue 10, finding 4): no host's output is written.
    let pending = routes::pending(&registry);
    problems.extend(not_regular(&pending));
    if problems
        .iter()
        .any(|p| p.severity == Severity::Error && p.kind.blocks_output())
    {
        report(&problems);
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
    report(&problems);
    if !pending.is_empty() {
        eprintln!(
            "registrish-gen: warning: {} files are missing or stale in the tree; run `registrish-gen prepare {}` before serving",
            pending.len(),
            registry.root.display()
        );
    }
    if common.strict && has_errors(&problems) {
        eprintln!("registrish-gen: --strict: not writing output because of the problems above");
        return Ok(Outcome::Problems);
    }
    Ok(if destination.deliver(contents)? {
        Outcome::Clean
    } else {
        Outcome::Problems
    })
}

/// Files prepare owns that are symlinks or other non-regular files: errors that stop every
/// host command (prepare never writes through them either).
fn not_regular(pending: &[(String, &'static str)]) -> Vec<Problem> {
    pending
        .iter()
        .filter(|(_, why)| *why == routes::NOT_REGULAR)
        .map(|(path, _)| {
            Problem::error(
                path.clone(),
                Kind::NotRegular,
                "not a regular file where prepare writes one: a host that follows symlinks would serve what it points at; run `registrish-gen prepare`, which replaces it",
            )
        })
        .collect()
}

/// The problems `prepare` would fix, as `not-prepared` warnings (errors when not regular files).
fn not_prepared(registry: &Registry) -> Vec<Problem> {
    let pending = routes::pending(registry);
    let mut out = not_regular(&pending);
    out.extend(pending
        .into_iter()
        .filter(|(_, why)| *why != routes::NOT_REGULAR)
        .map(|(path, why)| {
            Problem::warning(
                path,
                Kind::NotPrepared,
                format!(
                    "{why}: `prepare` writes it, and hosts serve it; run `registrish-gen prepare`"
                ),
            )
        }));
    out
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
    let mut extra = Vec::new();
    for host in HOSTS {
        let problems = host.problems(&registry, file.section(host.name()), &registry.root)?;
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
    let mut registry = scan::scan(&args.tree, scan::Options::default())?;
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
