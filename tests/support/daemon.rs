//! Background daemons started by the end-to-end tests (hosts, clients, moto), and the signals
//! and /proc walks that stop them and everything they forked.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::process::spawn;

pub const SIGKILL: i32 = 9;
pub const SIGTERM: i32 = 15;

unsafe extern "C" {
    // libc's kill(2); std has no way to send SIGTERM or to signal a process group.
    fn kill(pid: i32, sig: i32) -> i32;
}

/// Sends `sig` to `pid` (a negative pid means that process group). False if nothing got it.
pub fn send_signal(pid: i32, sig: i32) -> bool {
    // SAFETY: kill(2) only reads its two integer arguments.
    unsafe { kill(pid, sig) == 0 }
}

/// A background server started by a test, with stdout and stderr in a log file; on drop it and
/// every process it forked (wrangler's workerd, dockerd's containerd, ...) are killed.
///
/// It stays in the test's process group on purpose: a Ctrl-C on `cargo test`, or CI ending the
/// run, then reaches the daemons too, where Drop never runs.
pub struct Daemon {
    name: String,
    child: Child,
    log: PathBuf,
    stopped: bool,
}

impl Daemon {
    /// Starts `cmd` with stdin closed and stdout and stderr written to `log`.
    pub fn spawn(name: &str, cmd: &mut Command, log: &Path) -> Daemon {
        let file = File::create(log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
        let file2 = file.try_clone().expect("clone log file handle");
        cmd.stdin(Stdio::null()).stdout(file).stderr(file2);
        let child = spawn(cmd);
        Daemon {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
            stopped: false,
        }
    }

    pub fn log(&self) -> String {
        fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The last lines of the log, for panic messages.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    /// Polls `ready` until true; panics with the log if the daemon exits or `timeout` passes.
    pub fn wait_until(&mut self, what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
        let start = Instant::now();
        loop {
            if ready() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                self.stopped = true;
                panic!(
                    "{} exited ({status}) before {what}\n--- {} ---\n{}",
                    self.name,
                    self.log.display(),
                    self.log_tail()
                );
            }
            if start.elapsed() > timeout {
                panic!(
                    "{}: no {what} after {timeout:?}\n--- {} ---\n{}",
                    self.name,
                    self.log.display(),
                    self.log_tail()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn wait_for_port(&mut self, port: u16, timeout: Duration) {
        self.wait_until(&format!("listener on 127.0.0.1:{port}"), timeout, || {
            super::port_open(port)
        });
    }

    pub fn wait_for_path(&mut self, path: &Path, timeout: Duration) {
        self.wait_until(&format!("{}", path.display()), timeout, || path.exists());
    }

    /// SIGTERM, up to `grace` for a clean exit, then SIGKILL to it and its descendants.
    /// Idempotent; `Duration::ZERO` kills at once.
    pub fn stop(&mut self, grace: Duration) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let pid = self.child.id() as i32;
        // Found through the parent links, which break once the daemon exits: look first.
        let mut family = descendants(pid);
        if !grace.is_zero() && send_signal(pid, SIGTERM) {
            let start = Instant::now();
            while start.elapsed() < grace {
                if let Ok(Some(_)) = self.child.try_wait() {
                    break;
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
        family.extend(descendants(pid));
        let _ = self.child.kill();
        for proc in family {
            proc.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop(Duration::ZERO);
    }
}

/// A process identified by pid and start time, so a recycled pid is never signalled.
struct Proc {
    pid: i32,
    start: u64,
}

impl Proc {
    fn kill(&self) {
        if proc_stat(self.pid).is_some_and(|(_, start)| start == self.start) {
            send_signal(self.pid, SIGKILL);
        }
    }
}

/// (parent pid, start time) from /proc/PID/stat.
fn proc_stat(pid: i32) -> Option<(i32, u64)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields resume after the last ')'.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    // fields[0] is field 3 (state), so ppid (4) is [1] and starttime (22) is [19].
    Some((fields.get(1)?.parse().ok()?, fields.get(19)?.parse().ok()?))
}

/// Every live descendant of `root`, from the parent links in /proc.
fn descendants(root: i32) -> Vec<Proc> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let all: Vec<(i32, i32, u64)> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| proc_stat(pid).map(|(ppid, start)| (pid, ppid, start)))
        .collect();
    let mut found = Vec::new();
    let mut parents = vec![root];
    while let Some(parent) = parents.pop() {
        for &(pid, ppid, start) in &all {
            if ppid == parent {
                found.push(Proc { pid, start });
                parents.push(pid);
            }
        }
    }
    found
}

/// Unmounts everything mounted at or below `dir` (deepest first), e.g. what a container daemon
/// left behind, so the directory can be removed.
pub fn unmount_under(dir: &Path) {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let prefix = dir.to_string_lossy().into_owned();
    let mut points: Vec<String> = info
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape_mount_path)
        .filter(|p| p == &prefix || p.starts_with(&format!("{prefix}/")))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    points.dedup();
    for point in points {
        let ok = Command::new("umount")
            .arg(&point)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Busy: detach it so the directory can still be deleted.
            let _ = Command::new("umount")
                .args(["-l", &point])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// /proc/self/mountinfo writes space, tab, newline and backslash as octal escapes (`\040`).
fn unescape_mount_path(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(d) if bytes[i] == b'\\' => {
                out.push(
                    d.iter()
                        .fold(0u8, |v, b| v.wrapping_mul(8).wrapping_add(b - b'0')),
                );
                i += 4;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
