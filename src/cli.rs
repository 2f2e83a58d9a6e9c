//! Command-line surface. Flags here are raw; [`crate::settings`] turns them,
//! `registrish.toml` and defaults into checked settings once.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Make a static host (nginx, Netlify, Cloudflare Pages, ...) serve an exported
/// registry tree (TREE/v2/<name>/{manifests,blobs}/...) to docker, containerd,
/// podman and skopeo, with no registry server running.
#[derive(Parser, Debug)]
#[command(name = "registrish-gen", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Import an OCI layout, a skopeo dir: folder or a docker save archive into TREE, then prepare it.
    Import(ImportArgs),
    /// Report every problem in TREE at once (exit 0 clean, 1 problems, 2 usage or I/O error).
    Check(CheckArgs),
    /// Add what hosts need (digest-addressed manifests, tags/list, _catalog, /v2/ and error
    /// bodies); idempotent, never touches anything else.
    Prepare(TreeArgs),
    /// Render an nginx http-context config (maps + one server block), e.g. conf.d/registry.conf.
    Nginx(NginxArgs),
    /// Render Netlify's `_headers` and `_redirects` into TREE (the publish directory).
    Netlify(NetlifyArgs),
    /// Render Cloudflare Pages' `_worker.js` and `_routes.json` (any registry size).
    Cloudflare(CloudflareArgs),
    /// Render an AWS CLI upload script for S3 and S3-compatible stores (R2, MinIO, Storj's gateway).
    S3(S3Args),
    /// Render an `uplink` upload script for Storj.
    Storj(StorjArgs),
    /// Render a Cloudflare Response Header Transform ruleset (JSON) for an R2 bucket's domain.
    CloudflareRules(SingleFileArgs),
    /// Render Apache `.htaccess` content (or a vhost snippet with --vhost).
    Apache(ApacheArgs),
    /// Render a Caddyfile site block.
    Caddy(CaddyArgs),
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// An OCI layout directory, a skopeo dir: folder or a docker save tar; `DIR:REF` picks one
    /// image of a layout or archive by its ref name (all of them are imported otherwise).
    pub source: String,
    /// Repository to import into, optionally with a tag (`team/app:1.0`).
    #[arg(long, value_name = "NAME[:TAG]")]
    pub name: String,
    /// More tags for the image (repeatable).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// The registry tree (created if missing).
    #[arg(default_value = ".")]
    pub tree: PathBuf,
}

#[derive(Args, Debug, Clone)]
pub struct TreeArgs {
    /// The registry tree (the directory holding v2/).
    #[arg(default_value = ".")]
    pub tree: PathBuf,
    /// Settings file; default: TREE/registrish.toml when present.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    pub tree: TreeArgs,
    /// Hash every blob (in parallel) and report those whose bytes don't match their name.
    #[arg(long)]
    pub verify_blobs: bool,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Also report, as errors, what this host cannot serve (Pages: files over 25 MiB, more
    /// than --max-files files, long rule lines, `.html` tags, symlinks).
    #[arg(long, value_enum, value_name = "HOST")]
    pub host: Option<Host>,
    /// With --host cloudflare: the plan's file limit.
    #[arg(long, value_name = "N")]
    pub max_files: Option<u64>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Host {
    Cloudflare,
}

/// Flags every host command shares.
#[derive(Args, Debug, Clone)]
pub struct RenderArgs {
    #[command(flatten)]
    pub tree: TreeArgs,
    /// Exit 1 (writing nothing) when FILE differs from what would be generated now.
    #[arg(long, value_name = "FILE")]
    pub check: Option<PathBuf>,
    /// Use templates from DIR, by file name, instead of the built-in ones.
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,
    /// Cache-Control max-age, in seconds, for tags, tags/list and _catalog.
    #[arg(long, value_name = "SECONDS")]
    pub tag_max_age: Option<u64>,
    /// Exit 1 when the tree has problems, instead of leaving the bad parts out.
    #[arg(long)]
    pub strict: bool,
}

#[derive(Args, Debug)]
pub struct NginxArgs {
    #[command(flatten)]
    pub common: RenderArgs,
    /// `listen` address (default 80).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<String>,
    /// `server_name` (default `_`).
    #[arg(long, value_name = "NAME")]
    pub server_name: Option<String>,
    /// Where nginx finds TREE (default: TREE's absolute path).
    #[arg(long, value_name = "PATH")]
    pub root_path: Option<String>,
    /// Serve HTTPS with this certificate (PEM); clients want TLS from anything but localhost.
    #[arg(long, value_name = "FILE", requires = "ssl_certificate_key")]
    pub ssl_certificate: Option<String>,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "ssl_certificate")]
    pub ssl_certificate_key: Option<String>,
    /// Write to FILE atomically instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct NetlifyArgs {
    #[command(flatten)]
    pub common: RenderArgs,
    /// Where to write `_headers` (default TREE/_headers); `_redirects` goes beside it.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct CloudflareArgs {
    #[command(flatten)]
    pub common: RenderArgs,
    /// The Pages output directory to write into (default: TREE).
    #[arg(short, long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Most files the Pages plan allows (Free: 20000).
    #[arg(long, value_name = "N")]
    pub max_files: Option<u64>,
}

/// A host command with one output file and nothing else to set.
#[derive(Args, Debug)]
pub struct SingleFileArgs {
    #[command(flatten)]
    pub common: RenderArgs,
    /// Write to FILE atomically instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct S3Args {
    #[command(flatten)]
    pub common: RenderArgs,
    /// The bucket to upload to.
    #[arg(long, value_name = "BUCKET")]
    pub bucket: Option<String>,
    /// Key prefix inside the bucket (the registry must still be served at a host's root).
    #[arg(long, value_name = "PREFIX")]
    pub prefix: Option<String>,
    /// S3-compatible endpoint URL (R2, MinIO, Storj's gateway, ...).
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Write to FILE atomically instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct StorjArgs {
    #[command(flatten)]
    pub common: RenderArgs,
    /// The bucket to upload to.
    #[arg(long, value_name = "BUCKET")]
    pub bucket: Option<String>,
    /// Write to FILE atomically instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ApacheArgs {
    #[command(flatten)]
    pub common: RenderArgs,
    /// Render a <VirtualHost> snippet for the server config instead of `.htaccess` content.
    #[arg(long)]
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
    /// Write to FILE atomically instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct CaddyArgs {
    #[command(flatten)]
    pub common: RenderArgs,
    /// PORT or ADDR:PORT to serve on (default :80; ADDR becomes a `bind`); the host name goes
    /// in --server-name.
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<String>,
    /// Host name matched by the site block (default: any).
    #[arg(long, value_name = "NAME")]
    pub server_name: Option<String>,
    /// `root` directive (default: TREE's absolute path).
    #[arg(long, value_name = "PATH")]
    pub root_path: Option<String>,
    /// Write to FILE atomically instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
