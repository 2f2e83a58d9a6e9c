//! The integration tests, one crate and one binary: each module is a file in this directory.
//!
//! `cargo test` runs the fast set: the real binary over fixture trees, its outputs pinned by the
//! golden files, no server started. `cargo test --features e2e` adds the end-to-end tests, which
//! serve the outputs with real hosts and pull them with real clients (root, and the tools
//! `scripts/test` installs). Filter by module: `cargo test --features e2e e2e_nginx::`.

mod support;

mod cli;
mod cli_servers;
mod gc;
mod golden;
mod headers;
mod hosts;
mod regressions;
mod ship;

#[cfg(feature = "e2e")]
mod data_safety;
#[cfg(feature = "e2e")]
mod e2e_apache;
#[cfg(feature = "e2e")]
mod e2e_blobs;
#[cfg(feature = "e2e")]
mod e2e_caddy;
#[cfg(feature = "e2e")]
mod e2e_cloudflare;
#[cfg(feature = "e2e")]
mod e2e_gc;
#[cfg(feature = "e2e")]
mod e2e_hostile;
#[cfg(feature = "e2e")]
mod e2e_import;
#[cfg(feature = "e2e")]
mod e2e_netlify;
#[cfg(feature = "e2e")]
mod e2e_nginx;
#[cfg(feature = "e2e")]
mod e2e_private;
#[cfg(feature = "e2e")]
mod e2e_probe;
#[cfg(feature = "e2e")]
mod e2e_reference;
#[cfg(feature = "e2e")]
mod e2e_referrers;
#[cfg(feature = "e2e")]
mod e2e_s3;
#[cfg(feature = "e2e")]
mod e2e_ship;
