//! The npm and Python tools `scripts/test` installs under `.tools/` (wrangler, Netlify's parsers,
//! moto, the AWS CLI).

use std::path::{Path, PathBuf};

/// Where `scripts/test` installs npm and Python tools (`.tools/` in the repo), unless
/// `REGISTRISH_TOOLS` points elsewhere.
fn tools_dir() -> PathBuf {
    match std::env::var_os("REGISTRISH_TOOLS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools"),
    }
}

/// An executable from the npm tools (`node_modules/.bin/NAME`), e.g. `wrangler`.
/// `REGISTRISH_NODE_MODULES` overrides the `node_modules` dir.
pub fn node_bin(name: &str) -> PathBuf {
    let modules = match std::env::var_os("REGISTRISH_NODE_MODULES") {
        Some(dir) => PathBuf::from(dir),
        None => tools_dir().join("node/node_modules"),
    };
    existing_tool(modules.join(".bin").join(name))
}

/// An executable from the Python venv (`bin/NAME`), e.g. `moto_server`, `aws`.
/// `REGISTRISH_VENV` overrides the venv dir.
pub fn venv_bin(name: &str) -> PathBuf {
    let venv = match std::env::var_os("REGISTRISH_VENV") {
        Some(dir) => PathBuf::from(dir),
        None => tools_dir().join("venv"),
    };
    existing_tool(venv.join("bin").join(name))
}

fn existing_tool(path: PathBuf) -> PathBuf {
    assert!(
        path.exists(),
        "{} is missing: run `scripts/test`, which installs the test tools",
        path.display()
    );
    path
}

/// A Go tool `scripts/test` builds from the module proxy into `.tools/go/bin` (crane, oras,
/// helm, regctl, the OCI conformance suite).
pub fn go_bin(name: &str) -> PathBuf {
    existing_tool(tools_dir().join("go/bin").join(name))
}
