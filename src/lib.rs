//! registrish-gen: serve an exported container-registry tree from static
//! hosts. One pipeline for every host: [`scan`] the tree into a [`model`],
//! then a per-host renderer in [`render`] turns the model into config.

pub mod check;
pub mod cli;
pub mod commands;
pub mod digest;
pub mod grammar;
pub mod import;
pub mod media;
pub mod model;
pub mod output;
pub mod parallel;
pub mod prepare;
pub mod problem;
pub mod render;
pub mod scan;
pub mod settings;

use std::process::ExitCode;

/// Parses arguments, runs the command and maps the result to an exit code:
/// 0 success, 1 problems found, 2 usage or I/O error.
pub fn run() -> ExitCode {
    use clap::Parser;
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match commands::run(cli) {
        Ok(commands::Outcome::Clean) => ExitCode::SUCCESS,
        Ok(commands::Outcome::Problems) => ExitCode::from(1),
        Err(e) => {
            eprintln!("registrish-gen: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
