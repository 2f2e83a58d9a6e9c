//! registrish-gen: serve an exported container-registry tree from static
//! hosts. One pipeline for every host: [`scan`] the tree into a [`model`],
//! then a host in [`hosts`] judges and renders it.
//!
//! The modules by layer; each uses only the layers above it:
//! - leaves: [`grammar`] (names, tags, digests and their types), [`address`]
//!   (listen addresses, server names, roots), [`auth`] (credentials), [`media`]
//!   (manifest types), [`digest`] (hashing), [`layout`] (the paths of a served
//!   tree), [`problem`], [`parallel`], [`output`] (where results go);
//! - the model: [`model`] and its [`routes`] view (every path a host answers);
//! - stages over the tree: [`scan`], [`prepare`], [`check`], [`import`], [`site`] (a
//!   deployable copy without blobs), [`gc`] (what a tree keeps, and the deletions of `rm` and
//!   `gc` in an order safe for pulls in flight);
//! - over a deployment: [`probe`] (a served registry checked from outside, against the tree's
//!   routes or by discovery);
//! - rendering: [`templates`], [`settings`], and [`hosts`] (the host table);
//! - the surface: [`cli`] and [`commands`], which run any host through one path, and [`docs`]
//!   (shell completions and the man page, generated from [`cli`]).

mod address;
mod auth;
mod check;
mod cli;
mod commands;
mod digest;
mod docs;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod gc;
mod grammar;
mod hosts;
mod import;
mod layout;
mod media;
mod model;
mod output;
mod parallel;
mod prepare;
mod probe;
mod problem;
mod routes;
mod scan;
mod settings;
mod site;
mod templates;

use std::process::ExitCode;

/// Parses arguments, runs the command and maps the result to an exit code:
/// 0 success, 1 problems found, 2 usage or I/O error.
pub fn run() -> ExitCode {
    let matches = match cli::command().try_get_matches() {
        Ok(m) => m,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match commands::run(&matches) {
        Ok(commands::Outcome::Clean) => ExitCode::SUCCESS,
        Ok(commands::Outcome::Problems) => ExitCode::from(1),
        Err(e) => {
            eprintln!("registrish-gen: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
