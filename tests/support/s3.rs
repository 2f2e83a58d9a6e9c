//! A local S3 for the object-store upload scripts: moto's server (PyPI `moto[server]`, installed
//! by `scripts/test` in the venv with the AWS CLI), what it was asked (its request log) and what
//! the bucket holds, read anonymously as a front would.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use super::TempDir;
use super::daemon::{self, Daemon};
use super::http;
use super::process;

/// `moto_server` on 127.0.0.1, in memory; killed on drop.
pub struct Moto {
    // Fields drop in order: the process goes before its directory.
    daemon: Daemon,
    port: u16,
    dir: TempDir,
}

impl Moto {
    pub fn start() -> Moto {
        let dir = TempDir::new("moto");
        let port = super::free_port();
        let mut cmd = Command::new(super::venv_bin("moto_server"));
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            // Every request is a log line; the tests read them as they come.
            .env("PYTHONUNBUFFERED", "1")
            .current_dir(dir.path());
        let mut daemon = Daemon::spawn("moto_server", &mut cmd, &dir.join("moto.log"));
        daemon.wait_for_port(port, Duration::from_secs(60));
        Moto { daemon, port, dir }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Environment for the AWS CLI and scripts that run it: the venv's `aws` first in PATH, test
    /// credentials, and no config or credentials of the machine's own.
    pub fn aws_env(&self, cmd: &mut Command) {
        let venv_bin = super::venv_bin("aws")
            .parent()
            .expect("venv bin dir")
            .to_path_buf();
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![venv_bin];
        paths.extend(std::env::split_paths(&path));
        cmd.env("PATH", std::env::join_paths(paths).expect("PATH"))
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", self.dir.join("aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.dir.join("aws-credentials"),
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_PROFILE");
    }

    /// `aws --endpoint-url MOTO ARGS`.
    pub fn aws(&self, args: &[&str]) -> String {
        let mut cmd = Command::new(super::venv_bin("aws"));
        cmd.arg("--endpoint-url").arg(self.endpoint()).args(args);
        self.aws_env(&mut cmd);
        String::from_utf8_lossy(&process::run(&mut cmd).stdout).into_owned()
    }

    /// Creates `bucket` readable by anyone, as a public registry bucket is: GET and HEAD of
    /// objects, and listing, so that a missing key answers 404 rather than 403.
    pub fn create_public_bucket(&self, bucket: &str) {
        self.aws(&["s3api", "create-bucket", "--bucket", bucket]);
        // moto checks an anonymous HEAD against `s3:HeadObject` (AWS covers HEAD with GetObject).
        let policy = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "PublicRead",
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": ["s3:GetObject", "s3:HeadObject"],
                    "Resource": [format!("arn:aws:s3:::{bucket}/*")],
                },
                {
                    "Sid": "PublicList",
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": ["s3:ListBucket"],
                    "Resource": [format!("arn:aws:s3:::{bucket}")],
                },
            ],
        })
        .to_string();
        self.aws(&[
            "s3api",
            "put-bucket-policy",
            "--bucket",
            bucket,
            "--policy",
            &policy,
        ]);
    }

    /// Every key in `bucket`, as anyone can list it.
    pub fn keys(&self, bucket: &str) -> BTreeSet<String> {
        keys_at(self.port, bucket)
    }

    /// Requests moto has answered so far, in order: (method, decoded path without query, status).
    pub fn requests(&self) -> Vec<Request> {
        self.daemon
            .log()
            .lines()
            .filter_map(Request::parse)
            .collect()
    }
}

/// Every key in `bucket` of the S3 at 127.0.0.1:`port`, by anonymous ListObjectsV2 requests
/// (fast enough to poll while an upload runs).
pub fn keys_at(port: u16, bucket: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut token: Option<String> = None;
    loop {
        let mut path = format!("/{bucket}?list-type=2&max-keys=1000");
        if let Some(t) = &token {
            path.push_str(&format!("&continuation-token={}", percent_encode(t)));
        }
        let r = http::get(port, &path);
        assert_eq!(r.status, 200, "list {bucket}: {}", r.body_text());
        let body = r.body_text();
        keys.extend(elements(&body, "Key").into_iter().map(|k| xml_unescape(&k)));
        match elements(&body, "NextContinuationToken").pop() {
            Some(t) if body.contains("<IsTruncated>true</IsTruncated>") => token = Some(t),
            _ => return keys,
        }
    }
}

/// One line of moto's (werkzeug's) access log: `... "PUT /bucket/key HTTP/1.1" 200 -`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub status: u16,
}

impl Request {
    fn parse(line: &str) -> Option<Request> {
        let start = line.find("] \"")? + 3;
        let rest = &line[start..];
        let end = rest.find(" HTTP/")?;
        let (method, target) = rest[..end].split_once(' ')?;
        let status = rest[end..].split('"').nth(1)?.split_whitespace().next()?;
        let path = target.split('?').next()?;
        Some(Request {
            method: method.to_string(),
            path: percent_decode(path),
            status: status.parse().ok()?,
        })
    }

    /// The key of a successful object PUT to `bucket`.
    pub fn put_key(&self, bucket: &str) -> Option<String> {
        if self.method != "PUT" || self.status != 200 {
            return None;
        }
        self.path
            .strip_prefix(&format!("/{bucket}/"))
            .map(str::to_string)
    }
}

/// The upload script running in its own process group (the script and every `aws` it starts),
/// so that it can be killed as a whole at any moment, as a power cut or Ctrl-C would.
pub struct ScriptRun {
    child: Child,
    pub log: PathBuf,
}

impl ScriptRun {
    pub fn spawn(script: &Path, moto: &Moto, log: PathBuf) -> ScriptRun {
        let file = fs::File::create(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let mut cmd = Command::new("bash");
        cmd.arg(script)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log handle"))
            .stderr(file)
            .process_group(0);
        moto.aws_env(&mut cmd);
        ScriptRun {
            child: process::spawn(&mut cmd),
            log,
        }
    }

    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("wait for the upload script")
    }

    /// SIGKILL to the whole group, then reaps the script.
    pub fn kill(&mut self) {
        daemon::send_signal(-(self.child.id() as i32), daemon::SIGKILL);
        let _ = self.child.wait();
    }

    pub fn output(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ScriptRun {
    fn drop(&mut self) {
        if self.try_wait().is_none() {
            self.kill();
        }
    }
}

/// Runs the upload script to the end and returns its output; panics unless it succeeds.
pub fn run_script(script: &Path, moto: &Moto) -> String {
    let mut cmd = Command::new("bash");
    cmd.arg(script);
    moto.aws_env(&mut cmd);
    let out = process::run(&mut cmd);
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The text of every `<name>...</name>` element, in order (ListObjectsV2 responses are flat).
fn elements(xml: &str, name: &str) -> Vec<String> {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(j) = after.find(&close) else { break };
        out.push(after[..j].to_string());
        rest = &after[j + close.len()..];
    }
    out
}

fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        if bytes[i] == b'%'
            && let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
