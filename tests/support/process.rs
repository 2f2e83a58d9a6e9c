//! Running commands, with time limits and readable failures (daemons: `daemon.rs`).

use std::io::{ErrorKind, Read};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Upper bound for one client command (a pull of a test image takes well under a second; a hung
/// client must fail the test, not stall the suite).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);

/// The command line as Rust shows it, with any changed environment variables.
pub fn describe(cmd: &Command) -> String {
    format!("{cmd:?}")
}

/// Formats a finished command for a panic message.
pub fn report(cmd: &Command, out: &Output) -> String {
    format!(
        "command: {}\nstatus: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        describe(cmd),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `cmd` (stdin closed) and returns its output whatever its exit status. Panics if it
/// cannot start (missing tool) or runs past `COMMAND_TIMEOUT`.
pub fn output(cmd: &mut Command) -> Output {
    output_timeout(cmd, COMMAND_TIMEOUT)
}

/// Like `output`, and also panics unless the command exits 0.
pub fn run(cmd: &mut Command) -> Output {
    let out = output(cmd);
    if !out.status.success() {
        panic!("command failed\n{}", report(cmd, &out));
    }
    out
}

pub fn output_timeout(cmd: &mut Command, timeout: Duration) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = spawn(cmd);
    // Drain both pipes on threads so a chatty child can't block on a full pipe.
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() > timeout => {
                let _ = child.kill();
                let out = Output {
                    status: child.wait().expect("wait"),
                    stdout: stdout.join().unwrap_or_default(),
                    stderr: stderr.join().unwrap_or_default(),
                };
                panic!("command timed out after {timeout:?}\n{}", report(cmd, &out));
            }
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("waiting for {}: {e}", describe(cmd)),
        }
    };
    Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

/// Spawns `cmd`, turning "not found" into a message that says how to install the tool.
pub fn spawn(cmd: &mut Command) -> Child {
    cmd.spawn().unwrap_or_else(|e| {
        let program = cmd.get_program().to_string_lossy().into_owned();
        if e.kind() == ErrorKind::NotFound {
            panic!(
                "`{program}` is not installed (run `scripts/test`, which installs every tool the \
                 tests use)\ncommand: {}",
                describe(cmd)
            )
        }
        panic!("cannot start {}: {e}", describe(cmd))
    })
}
