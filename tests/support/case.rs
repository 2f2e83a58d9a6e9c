//! One CLI case in a few lines, after casey/just's tests/test.rs: the tree, the arguments, and
//! what stdout, stderr and the exit status must be. `run` runs the real binary once, checks
//! every expectation and panics with the command and all it printed if one fails.
//!
//! ```ignore
//! Case::new()
//!     .tree(f.tree())
//!     .args(["nginx", TREE, "--strict"])
//!     .status(1)
//!     .stdout("")
//!     .run();
//! ```

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{TempDir, bin, process};

/// Stands for the case's tree in an argument: `TREE` itself, or inside one (`{tree}/_headers`).
pub const TREE: &str = "{tree}";

#[derive(Default)]
#[must_use = "a case does nothing until `run`"]
pub struct Case {
    tree: Option<PathBuf>,
    args: Vec<OsString>,
    status: i32,
    stdout: Option<String>,
    stdout_contains: Vec<String>,
    stdout_lacks: Vec<String>,
    stderr_contains: Vec<String>,
    stderr_lacks: Vec<String>,
}

/// What a case's run printed (its status was as expected).
pub struct Ran {
    pub stdout: String,
    pub stderr: String,
}

impl Case {
    /// No arguments yet, and exit status 0 expected.
    pub fn new() -> Case {
        Case::default()
    }

    /// The tree `TREE` stands for; the binary also runs in it.
    pub fn tree(mut self, tree: impl AsRef<Path>) -> Case {
        self.tree = Some(tree.as_ref().to_path_buf());
        self
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Case {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Case
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// The exit status (default 0).
    pub fn status(mut self, status: i32) -> Case {
        self.status = status;
        self
    }

    /// Exactly this on stdout.
    pub fn stdout(mut self, stdout: impl Into<String>) -> Case {
        self.stdout = Some(stdout.into());
        self
    }

    pub fn stdout_contains(mut self, text: impl Into<String>) -> Case {
        self.stdout_contains.push(text.into());
        self
    }

    pub fn stdout_lacks(mut self, text: impl Into<String>) -> Case {
        self.stdout_lacks.push(text.into());
        self
    }

    pub fn stderr_contains(mut self, text: impl Into<String>) -> Case {
        self.stderr_contains.push(text.into());
        self
    }

    pub fn stderr_lacks(mut self, text: impl Into<String>) -> Case {
        self.stderr_lacks.push(text.into());
        self
    }

    /// Runs `registrish-gen ARGS` and checks every expectation.
    pub fn run(self) -> Ran {
        let scratch;
        let cwd = match &self.tree {
            Some(tree) => tree.as_path(),
            None => {
                scratch = TempDir::new("case");
                scratch.path()
            }
        };
        let args: Vec<OsString> = self.args.iter().map(|a| self.expand(a)).collect();
        let mut cmd = Command::new(bin());
        cmd.args(&args).current_dir(cwd);
        let out = process::output(&mut cmd);
        let ran = Ran {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };

        let mut failures = Vec::new();
        if out.status.code() != Some(self.status) {
            failures.push(format!(
                "exit status {:?}, not {}",
                out.status.code(),
                self.status
            ));
        }
        if let Some(exact) = &self.stdout
            && &ran.stdout != exact
        {
            let line = exact
                .lines()
                .zip(ran.stdout.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(exact.lines().count().min(ran.stdout.lines().count()));
            failures.push(format!(
                "stdout is not the expected {} bytes: line {} should be {:?}",
                exact.len(),
                line + 1,
                exact.lines().nth(line).unwrap_or("(the end)")
            ));
        }
        for (name, got, contains, lacks) in [
            (
                "stdout",
                &ran.stdout,
                &self.stdout_contains,
                &self.stdout_lacks,
            ),
            (
                "stderr",
                &ran.stderr,
                &self.stderr_contains,
                &self.stderr_lacks,
            ),
        ] {
            for text in contains.iter().filter(|t| !got.contains(t.as_str())) {
                failures.push(format!("{name} lacks {text:?}"));
            }
            for text in lacks.iter().filter(|t| got.contains(t.as_str())) {
                failures.push(format!("{name} holds {text:?}"));
            }
        }
        if !failures.is_empty() {
            panic!("{}\n{}", failures.join("\n"), process::report(&cmd, &out));
        }
        ran
    }

    fn expand(&self, arg: &OsStr) -> OsString {
        match arg.to_str() {
            Some(s) if s.contains(TREE) => {
                let tree = self
                    .tree
                    .as_ref()
                    .unwrap_or_else(|| panic!("{s:?} names the tree, and the case has none"));
                s.replace(TREE, &tree.to_string_lossy()).into()
            }
            _ => arg.to_os_string(),
        }
    }
}
