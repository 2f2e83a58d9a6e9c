//! Credentials for private registries: the htpasswd file nginx, Apache and Caddy check
//! (bcrypt entries only), the realm of the Basic challenge, and the salted PBKDF2-SHA256
//! entries the Cloudflare worker checks against a Pages secret.

use anyhow::{Context, Result, bail};
use std::fs;
use std::path::{Path, PathBuf};

/// The challenge's realm: `WWW-Authenticate: Basic realm="<realm>"`. Printed inside double
/// quotes in nginx, Apache, Caddy and JavaScript, so only characters that mean nothing there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Realm(String);

pub const DEFAULT_REALM: &str = "registry";

impl Realm {
    pub fn parse(s: &str) -> Result<Realm> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b' ' | b'.' | b'_' | b'-'))
            && !s.starts_with(' ')
            && !s.ends_with(' ');
        if !ok {
            bail!(
                "--realm {:?}: expected up to 64 letters, digits, spaces and . _ -",
                crate::problem::printable(s)
            );
        }
        Ok(Realm(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One htpasswd entry: a user and its bcrypt hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub user: String,
    pub hash: String,
}

/// An htpasswd file, checked: where it is (absolute, for the configs that read it) and its
/// entries (for Caddy, whose config holds the hashes: it cannot read htpasswd files).
#[derive(Debug, Clone)]
pub struct Htpasswd {
    pub path: PathBuf,
    pub entries: Vec<Entry>,
}

/// A user name every config can hold as one word (Caddy's `basicauth` block) and every client
/// can send (a `:` would end it in the Basic credentials).
fn user_ok(user: &str) -> bool {
    !user.is_empty()
        && user.len() <= 64
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
}

/// bcrypt as crypt(3) writes it: `$2a$`, `$2b$` or `$2y$`, a two-digit cost, then 53
/// characters of bcrypt's base64 (22 of salt, 31 of hash).
fn bcrypt_ok(hash: &str) -> bool {
    let b = hash.as_bytes();
    b.len() == 60
        && (hash.starts_with("$2a$") || hash.starts_with("$2b$") || hash.starts_with("$2y$"))
        && b[4].is_ascii_digit()
        && b[5].is_ascii_digit()
        && b[6] == b'$'
        && b[7..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'/'))
}

impl Htpasswd {
    /// Reads and checks FILE. Only bcrypt entries pass: MD5 (`$apr1$`), SHA-1 (`{SHA}`),
    /// crypt(3) DES and plain passwords are refused with the line that holds one.
    pub fn load(file: &Path) -> Result<Htpasswd> {
        let path = fs::canonicalize(file)
            .with_context(|| format!("--htpasswd {}: cannot read it", file.display()))?;
        let text = fs::read_to_string(&path)
            .with_context(|| format!("--htpasswd {}: cannot read it", file.display()))?;
        let mut entries: Vec<Entry> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let at = format!("{}:{}", file.display(), i + 1);
            let Some((user, hash)) = line.split_once(':') else {
                bail!("{at}: not `user:hash`");
            };
            if !user_ok(user) {
                bail!(
                    "{at}: user {:?}: expected letters, digits and . _ - @",
                    crate::problem::printable(user)
                );
            }
            if !bcrypt_ok(hash) {
                let kind = if hash.starts_with("$apr1$") {
                    "an MD5 ($apr1$) hash"
                } else if hash.starts_with("{SHA}") {
                    "a SHA-1 ({SHA}) hash"
                } else if hash.starts_with('$') {
                    "a hash of another scheme"
                } else {
                    "a crypt(3) DES hash or a plain password"
                };
                bail!(
                    "{at}: user {user} has {kind}; only bcrypt entries are accepted (make them with `htpasswd -B`)"
                );
            }
            if entries.iter().any(|e| e.user == user) {
                bail!("{at}: user {user} appears twice");
            }
            entries.push(Entry {
                user: user.to_string(),
                hash: hash.to_string(),
            });
        }
        if entries.is_empty() {
            bail!("--htpasswd {}: no entries", file.display());
        }
        Ok(Htpasswd { path, entries })
    }

    /// Whether the file lies inside TREE, where a host might serve it.
    pub fn is_inside(&self, root: &Path) -> bool {
        self.path.starts_with(root)
    }
}

/// PBKDF2-SHA256 iterations for the worker's entries: OWASP's 2023 figure for this hash
/// (600,000) is too slow for a worker's CPU budget per request on the Free plan (10 ms), so
/// the entries carry their own count, chosen here, and the worker caches a verified header.
pub const PBKDF2_ITERATIONS: u32 = 100_000;

/// One entry of the `REGISTRISH_CREDENTIALS` Pages secret:
/// `user:pbkdf2-sha256$<iterations>$<salt hex>$<hash hex>`.
pub fn pbkdf2_entry(
    user: &str,
    password: &[u8],
    salt: &[u8; 16],
    iterations: u32,
) -> Result<String> {
    if !user_ok(user) {
        bail!(
            "user {:?}: expected letters, digits and . _ - @",
            crate::problem::printable(user)
        );
    }
    let mut key = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, salt, iterations, &mut key);
    Ok(format!(
        "{user}:pbkdf2-sha256${iterations}${}${}",
        hex(salt),
        hex(&key)
    ))
}

/// Standard base64 with padding (RFC 4648, section 4).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// 16 random bytes from the kernel, for a salt.
pub fn random_salt() -> Result<[u8; 16]> {
    use std::io::Read;
    let mut salt = [0u8; 16];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut salt))
        .context("cannot read /dev/urandom for a salt")?;
    Ok(salt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn htpasswd(text: &str) -> Result<Htpasswd> {
        let dir = std::env::temp_dir().join(format!("registrish-auth-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("h{}", text.len()));
        fs::write(&file, text).unwrap();
        let r = Htpasswd::load(&file);
        let _ = fs::remove_file(&file);
        r
    }

    const BCRYPT: &str = "$2y$05$H8ZPvyn9eNQqDZIXcR7gDe0xUgDpFV0Csbxk.WsJwqrYXlaGRAJ0O";

    #[test]
    fn takes_bcrypt_entries_only() {
        let h = htpasswd(&format!("alice:{BCRYPT}\n# comment\n\nbob:{BCRYPT}\n")).unwrap();
        assert_eq!(h.entries.len(), 2);
        assert_eq!(h.entries[0].user, "alice");
        for (bad, says) in [
            ("alice:$apr1$abc$defghijklmnopqrstuvwx.", "MD5"),
            ("alice:{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=", "SHA-1"),
            ("alice:abJnggxhB/yWI", "plain password"),
            ("alice:secret", "plain password"),
            (
                "al ice:$2y$05$H8ZPvyn9eNQqDZIXcR7gDe0xUgDpFV0Csbxk.WsJwqrYXlaGRAJ0O",
                "user",
            ),
            ("alice", "not `user:hash`"),
            ("", "no entries"),
        ] {
            let e = htpasswd(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn realms_are_plain_words() {
        assert!(Realm::parse("registry.example.org private").is_ok());
        for bad in ["", "a\"b", "a\\b", "x$y", " lead", "a\nb"] {
            assert!(Realm::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn base64_follows_rfc_4648() {
        for (given, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(given.as_bytes()), want, "{given}");
        }
    }

    /// RFC 7914 section 11's PBKDF2-HMAC-SHA256 vector ("passwd", "salt", 1 iteration).
    #[test]
    fn pbkdf2_entries_follow_the_standard() {
        let mut key = [0u8; 64];
        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(b"passwd", b"salt", 1, &mut key);
        assert_eq!(hex(&key[..16]), "55ac046e56e3089fec1691c22544b605");
        let entry = pbkdf2_entry("alice", b"pw", &[7u8; 16], 2).unwrap();
        assert!(entry.starts_with("alice:pbkdf2-sha256$2$07070707070707070707070707070707$"));
        assert_eq!(entry.len(), "alice:pbkdf2-sha256$2$".len() + 32 + 1 + 64);
    }
}
