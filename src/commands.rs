//! One function per subcommand: each scans once, then hands the model to its
//! renderer. Exit codes: 0 success, 1 problems (or `--check` found a stale
//! file), 2 usage or I/O error.

use crate::cli::{
    CheckArgs, Cli, CloudflareArgs, Command, Format, ImportArgs, NetlifyArgs, NginxArgs,
    RenderArgs, TreeArgs,
};
use crate::model::Registry;
use crate::output::OutputFile;
use crate::problem::{Problem, Severity};
use crate::render::{self, Templates};
use crate::settings::{Common, FileConfig};
use crate::{check, prepare, scan};
use anyhow::Result;

/// What a successful run ended with.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Clean,
    Problems,
}

pub fn run(cli: Cli) -> Result<Outcome> {
    match cli.command {
        Command::Import(args) => run_import(&args),
        Command::Check(args) => run_check(&args),
        Command::Prepare(args) => run_prepare(&args),
        Command::Nginx(args) => run_nginx(args),
        Command::Netlify(args) => run_netlify(args),
        Command::Cloudflare(args) => run_cloudflare(args),
        Command::S3(args) => {
            let p = begin(&args.common, scan::Options::default())?;
            let settings = render::s3::S3Settings::resolve(&args, &p.file)?;
            let r = render::s3::render(&p.registry, &p.common, &settings, &p.templates)?;
            single_file(&p, r, args.output)
        }
        Command::Storj(args) => {
            let p = begin(&args.common, scan::Options::default())?;
            let settings = render::storj::StorjSettings::resolve(&args, &p.file)?;
            let r = render::storj::render(&p.registry, &p.common, &settings, &p.templates)?;
            single_file(&p, r, args.output)
        }
        Command::CloudflareRules(args) => {
            let p = begin(&args.common, scan::Options::default())?;
            let r = render::cloudflare_rules::render(&p.registry, &p.common, &p.templates)?;
            single_file(&p, r, args.output)
        }
        Command::Apache(args) => {
            let p = begin(&args.common, scan::Options::default())?;
            let settings = render::apache::ApacheSettings::resolve(&args, &p.file, &p.registry)?;
            let r = render::apache::render(&p.registry, &p.common, &settings, &p.templates)?;
            single_file(&p, r, args.output)
        }
        Command::Caddy(args) => {
            let p = begin(&args.common, scan::Options::default())?;
            let settings = render::caddy::CaddySettings::resolve(&args, &p.file, &p.registry)?;
            let r = render::caddy::render(&p.registry, &p.common, &settings, &p.templates)?;
            single_file(&p, r, args.output)
        }
    }
}

fn report(problems: &[Problem]) {
    for p in problems {
        eprintln!("{p}");
    }
}

fn run_check(args: &CheckArgs) -> Result<Outcome> {
    let mut registry = scan::scan(
        &args.tree.tree,
        scan::Options {
            thorough: true,
            blob_sizes: true,
        },
    )?;
    if args.verify_blobs {
        check::verify_blobs(&mut registry);
    }
    // Host limits: every one as an error when asked for, else one hint line.
    let (file, _) = FileConfig::load(&args.tree)?;
    let max_files = args
        .max_files
        .or(file.cloudflare.max_files)
        .unwrap_or(render::cloudflare::DEFAULT_MAX_FILES);
    let pages = render::cloudflare::pages_problems(&registry, &registry.root, max_files);
    if args.host == Some(crate::cli::Host::Cloudflare) {
        registry.problems.extend(pages);
    } else if !pages.is_empty() {
        registry.problems.push(Problem::warning(
            "v2/",
            crate::problem::Kind::HostUnservable,
            format!(
                "Cloudflare Pages cannot host or serve this tree as it is ({} problems; see `check --host cloudflare`)",
                pages.len()
            ),
        ));
    }
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
                registry
                    .repositories
                    .values()
                    .map(|r| r.blobs.len())
                    .sum::<usize>(),
                errors,
                registry.problems.len() - errors
            );
        }
        Format::Json => println!("{}", check::json_report(&registry)),
    }
    Ok(if registry.has_errors() {
        Outcome::Problems
    } else {
        Outcome::Clean
    })
}

fn run_prepare(args: &TreeArgs) -> Result<Outcome> {
    FileConfig::load(args)?;
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

/// Scan, settings and templates: the part every host command shares.
struct Prepared {
    registry: Registry,
    file: FileConfig,
    common: Common,
    templates: Templates,
}

fn begin(args: &RenderArgs, options: scan::Options) -> Result<Prepared> {
    let (file, _) = FileConfig::load(&args.tree)?;
    let common = Common::resolve(args, &file);
    let templates = Templates::load(common.templates.as_deref())?;
    let mut registry = scan::scan(&common.tree, options)?;
    registry.problems.sort();
    Ok(Prepared {
        registry,
        file,
        common,
        templates,
    })
}

/// Reports problems, warns about an unprepared tree, then writes or checks.
fn end(
    p: &Prepared,
    extra: Vec<Problem>,
    files: Vec<OutputFile>,
    to_stdout: bool,
) -> Result<Outcome> {
    let mut problems = p.registry.problems.clone();
    problems.extend(extra);
    report(&problems);
    let pending = prepare::pending(&p.registry);
    if pending > 0 {
        eprintln!(
            "registrish-gen: warning: {pending} files are missing or stale in the tree; run `registrish-gen prepare {}` before serving",
            p.registry.root.display()
        );
    }
    let has_errors = problems.iter().any(|x| x.severity == Severity::Error);
    if p.common.strict && has_errors {
        eprintln!("registrish-gen: --strict: not writing output because of the problems above");
        return Ok(Outcome::Problems);
    }
    let fresh = render::finish(&p.common, files, to_stdout)?;
    Ok(if fresh {
        Outcome::Clean
    } else {
        Outcome::Problems
    })
}

fn run_nginx(args: NginxArgs) -> Result<Outcome> {
    let p = begin(&args.common, scan::Options::default())?;
    let settings = render::nginx::NginxSettings::resolve(
        args.listen,
        args.server_name,
        args.root_path,
        args.ssl_certificate.zip(args.ssl_certificate_key),
        &p.file,
        &p.registry,
    )?;
    let text = render::nginx::render(&p.registry, &p.common, &settings, &p.templates)?;
    let to_stdout = args.output.is_none() && p.common.check.is_none();
    let files = render::nginx::outputs(text, args.output.as_deref(), p.common.check.as_deref());
    end(&p, Vec::new(), files, to_stdout)
}

fn run_netlify(args: NetlifyArgs) -> Result<Outcome> {
    let p = begin(&args.common, scan::Options::default())?;
    let rendered = render::netlify::render(&p.registry, &p.common, &p.templates)?;
    let headers = p
        .common
        .check
        .clone()
        .or(args.output)
        .unwrap_or_else(|| p.registry.root.join("_headers"));
    let redirects = headers.with_file_name("_redirects");
    let files = vec![
        OutputFile {
            path: headers,
            contents: rendered.headers,
        },
        OutputFile {
            path: redirects,
            contents: rendered.redirects,
        },
    ];
    end(&p, rendered.problems, files, false)
}

fn run_cloudflare(args: CloudflareArgs) -> Result<Outcome> {
    let p = begin(
        &args.common,
        scan::Options {
            blob_sizes: true,
            ..scan::Options::default()
        },
    )?;
    let dir = p
        .common
        .check
        .clone()
        .or(args.output)
        .unwrap_or_else(|| p.registry.root.clone());
    let max_files = args
        .max_files
        .or(p.file.cloudflare.max_files)
        .unwrap_or(render::cloudflare::DEFAULT_MAX_FILES);
    let rendered =
        render::cloudflare::render(&p.registry, &p.common, &p.templates, &dir, max_files)?;
    if rendered.problems.iter().any(render::cloudflare::is_fatal) {
        let mut problems = p.registry.problems.clone();
        problems.extend(rendered.problems);
        report(&problems);
        eprintln!(
            "registrish-gen: Cloudflare Pages cannot host this tree as it is (see above); nothing written"
        );
        return Ok(Outcome::Problems);
    }
    end(&p, rendered.problems, rendered.files, false)
}

/// Ends a command whose renderer produced one text: stdout by default, `-o FILE`, or `--check FILE`.
fn single_file(
    p: &Prepared,
    r: render::Rendered,
    output: Option<std::path::PathBuf>,
) -> Result<Outcome> {
    let to_stdout = output.is_none() && p.common.check.is_none();
    let path = p.common.check.clone().or(output).unwrap_or_default();
    end(
        p,
        r.problems,
        vec![OutputFile {
            path,
            contents: r.text,
        }],
        to_stdout,
    )
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
