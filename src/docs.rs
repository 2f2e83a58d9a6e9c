//! Shell completions and the manual page, generated from the command line itself
//! ([`crate::cli::command`]), so both always list every host command of the table, every flag
//! and every example of `--help`.

use crate::cli::{Example, examples};
use crate::commands::Outcome;
use crate::output::Destination;
use anyhow::Result;
use roff::{Roff, bold, italic, roman};

const BIN: &str = "registrish-gen";

/// `registrish-gen completions SHELL`: the script on standard output.
pub(crate) fn completions(shell: clap_complete::Shell) -> Result<Outcome> {
    let mut cmd = crate::cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, BIN, &mut script);
    let mut script = String::from_utf8(script)?;
    if shell == clap_complete::Shell::Bash {
        // clap_complete's bash script spells a command's state two ways when the binary's
        // name has a hyphen (clap-rs/clap#6421, open): the loop sets
        // `registrish__gen__subcmd__nginx`, the arm matches `registrish__subcmd__gen__subcmd__nginx`,
        // so no command's flags ever complete. Spell the arms as the loop does (a no-op once
        // fixed upstream; tests/ship.rs completes `nginx --ssl`).
        script = script.replace("registrish__subcmd__gen", "registrish__gen");
    }
    print(script)
}

/// `registrish-gen man`: one page for the whole command. clap_mangen renders the top
/// (name, synopsis, description, options), then the list of commands; then each command gets a
/// section of its own with its synopsis, description, options and examples, and the page ends
/// with the exit status and the top-level examples.
pub(crate) fn man() -> Result<Outcome> {
    print(page()?)
}

fn page() -> Result<String> {
    let mut cmd = crate::cli::command().disable_help_subcommand(true);
    cmd.build();
    let top = clap_mangen::Man::new(cmd.clone());
    let mut out = Vec::new();
    top.render_title(&mut out)?;
    top.render_name_section(&mut out)?;
    top.render_synopsis_section(&mut out)?;
    top.render_description_section(&mut out)?;
    top.render_options_section(&mut out)?;
    // clap_mangen's own list points at one page per command (registrish-gen-nginx(1)); this
    // page holds them all, so the list points below.
    let mut list = Roff::new();
    list.control("SH", ["COMMANDS"]);
    list.text([roman(format!(
        "Each command has a section of its own below; {BIN} COMMAND --help prints the same."
    ))]);
    for sub in cmd.get_subcommands() {
        list.control("TP", []);
        list.text([bold(sub.get_name())]);
        list.text([roman(
            sub.get_about().map(|a| a.to_string()).unwrap_or_default(),
        )]);
    }
    out.extend(list.render().as_bytes());
    for sub in cmd.get_subcommands() {
        let name = sub.get_name();
        let mut head = Roff::new();
        head.control("SH", [format!("{BIN} {name}").to_uppercase().as_str()]);
        out.extend(head.render().as_bytes());
        let man = clap_mangen::Man::new(sub.clone());
        // The command's own sections, one level down.
        for render in [
            clap_mangen::Man::render_synopsis_section,
            clap_mangen::Man::render_description_section,
            clap_mangen::Man::render_options_section,
        ] {
            let mut part = Vec::new();
            render(&man, &mut part)?;
            out.extend(demote(&String::from_utf8(part)?).as_bytes());
        }
        out.extend(examples_roff("SS", "Examples", examples(Some(name))).as_bytes());
    }
    let mut tail = Roff::new();
    tail.control("SH", ["EXIT STATUS"]);
    tail.text([roman(
        "0 success; 1 problems found (or --check found a stale file, or probe found failures); 2 usage or I/O error.",
    )]);
    out.extend(tail.render().as_bytes());
    out.extend(examples_roff("SH", "EXAMPLES", examples(None)).as_bytes());
    top.render_version_section(&mut out)?;
    Ok(String::from_utf8(out)?)
}

/// `.SH NAME` becomes `.SS Name`: a command's sections inside its own.
fn demote(roff: &str) -> String {
    roff.lines()
        .map(|line| match line.strip_prefix(".SH ") {
            Some(title) => {
                let title = title.trim_matches('"');
                let mut chars = title.chars();
                let first = chars.next().map(|c| c.to_string()).unwrap_or_default();
                format!(".SS {first}{}", chars.as_str().to_lowercase())
            }
            None => line.to_string(),
        })
        .map(|line| line + "\n")
        .collect()
}

/// Each example: what it does in italics, then its command line, unfilled and indented.
fn examples_roff(macro_: &str, title: &str, examples: &[Example]) -> String {
    let mut roff = Roff::new();
    roff.control(macro_, [title]);
    for (what, command) in examples {
        roff.control("PP", []);
        roff.text([italic(*what)]);
        roff.control("RS", ["4"]);
        roff.control("nf", []);
        roff.text([bold(*command)]);
        roff.control("fi", []);
        roff.control("RE", []);
    }
    roff.render()
}

fn print(text: String) -> Result<Outcome> {
    Destination::Stdout.deliver(vec![text])?;
    Ok(Outcome::Clean)
}
