//! The OCI distribution grammar for repository names, tags and digests, and
//! the types only it can make: [`Name`], [`Tag`] and [`Digest`].
//!
//! Every string that reaches a generated config passes through here first: the
//! grammar is the only thing standing between a hostile file name and a config
//! directive, so it is hand-written, exact and tested rather than approximated
//! with a permissive regex. The model keys everything by these types, so "only
//! names that passed the grammar reach a config" is checked by the compiler.
//! The same grammar spelled as regular expressions ([`NAME_PATTERN`],
//! [`TAG_PATTERN`], [`DIGEST_PATTERN`]) is what templates receive for the
//! routes a host matches itself; a test runs the Rust matcher and each
//! spelling over the same vectors.
//! Source: distribution-spec "Pulling manifests" (name and tag regexes).

use std::fmt;

/// Longest repository name we accept. The spec bounds host + name at 255.
pub(crate) const MAX_NAME_LEN: usize = 255;
/// A tag is one of `[a-zA-Z0-9_]` then up to 127 of `[a-zA-Z0-9._-]`.
pub(crate) const MAX_TAG_LEN: usize = 128;

/// The repository-name grammar as a regular expression (PCRE, RE2 and
/// JavaScript read it alike), without anchors and without the length bound.
pub(crate) const NAME_PATTERN: &str =
    "[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*";
/// The tag grammar as a regular expression, without anchors.
pub(crate) const TAG_PATTERN: &str = "[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}";
/// The one digest form served, as a regular expression, without anchors.
pub(crate) const DIGEST_PATTERN: &str = "sha256:[a-f0-9]{64}";

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`
pub(crate) fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME_LEN && name.split('/').all(is_valid_component)
}

fn is_valid_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    // Alternating runs: alnum+, then a separator (".", "_", "__" or "-"+), then alnum+ ...
    loop {
        let start = i;
        while i < bytes.len() && alnum(bytes[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == bytes.len() {
            return true;
        }
        match bytes[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < bytes.len() && bytes[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < bytes.len() && bytes[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
    }
}

/// `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`
pub(crate) fn is_valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    match bytes.first() {
        Some(b) if b.is_ascii_alphanumeric() || *b == b'_' => {}
        _ => return false,
    }
    bytes.len() <= MAX_TAG_LEN
        && bytes[1..]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// `sha256:[a-f0-9]{64}`: the only algorithm clients and this tool hash with.
pub(crate) fn is_valid_digest(digest: &str) -> bool {
    Digest::parse(digest).is_some()
}

/// A repository name that passed the grammar.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(Box<str>);

/// A tag that passed the grammar.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tag(Box<str>);

impl Name {
    pub fn parse(s: &str) -> Option<Name> {
        is_valid_name(s).then(|| Name(s.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Tag {
    pub fn parse(s: &str) -> Option<Tag> {
        is_valid_tag(s).then(|| Tag(s.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A sha256 digest, kept as its 32 bytes (a quarter of the 71-byte string at
/// 100k+ tags, where the model holds several per manifest). Ordered like its
/// `sha256:<hex>` spelling, since lowercase hex sorts like the bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest([u8; 32]);

impl Digest {
    pub fn parse(s: &str) -> Option<Digest> {
        let hex = s.strip_prefix("sha256:")?.as_bytes();
        if hex.len() != 64 {
            return None;
        }
        let nibble = |b: u8| match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            _ => None,
        };
        let mut out = [0u8; 32];
        for (i, pair) in hex.chunks_exact(2).enumerate() {
            out[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
        }
        Some(Digest(out))
    }

    /// Only the hasher makes digests from bytes.
    pub(crate) fn from_sha256(bytes: [u8; 32]) -> Digest {
        Digest(bytes)
    }

    /// The 64 lowercase hex digits, without `sha256:`.
    pub fn hex(&self) -> String {
        let mut buf = [0u8; 64];
        self.write_hex(&mut buf).to_string()
    }

    /// Hex into a stack buffer: renderers print hundreds of thousands of
    /// digests, so Display allocates nothing.
    fn write_hex<'a>(&self, buf: &'a mut [u8; 64]) -> &'a str {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        for (i, b) in self.0.iter().enumerate() {
            buf[2 * i] = DIGITS[(b >> 4) as usize];
            buf[2 * i + 1] = DIGITS[(b & 15) as usize];
        }
        std::str::from_utf8(buf).unwrap_or_default()
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 64];
        f.write_str("sha256:")?;
        f.write_str(self.write_hex(&mut buf))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for Name {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl serde::Serialize for Tag {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// (string, valid name, valid tag, valid digest): the vectors every
    /// spelling of the grammar is tested against.
    pub(crate) fn vectors() -> Vec<(String, bool, bool, bool)> {
        let hex = "a".repeat(64);
        let mut v: Vec<(String, bool, bool, bool)> = vec![
            ("a".into(), true, true, false),
            ("demo/hello".into(), true, false, false),
            ("team/app/api".into(), true, false, false),
            ("a.b_c__d---e".into(), true, true, false),
            ("x0/y1".into(), true, false, false),
            ("library/ubuntu".into(), true, false, false),
            ("latest".into(), true, true, false),
            ("v1.0".into(), true, true, false),
            ("_x".into(), false, true, false),
            ("1".into(), true, true, false),
            ("A-b_c.d".into(), false, true, false),
            ("Latest".into(), false, true, false),
            ("".into(), false, false, false),
            ("Demo".into(), false, true, false),
            ("a//b".into(), false, false, false),
            ("/a".into(), false, false, false),
            ("a/".into(), false, false, false),
            ("a___b".into(), false, true, false),
            ("a.-b".into(), false, true, false),
            ("-a".into(), false, false, false),
            ("a-".into(), false, true, false),
            ("a.".into(), false, true, false),
            (".x".into(), false, false, false),
            ("evil}name".into(), false, false, false),
            ("a\"b".into(), false, false, false),
            ("$x".into(), false, false, false),
            ("$host".into(), false, false, false),
            ("new\nline".into(), false, false, false),
            ("a b".into(), false, false, false),
            ("a;b".into(), false, false, false),
            ("x;return 200 pwned".into(), false, false, false),
            ("_catalog".into(), false, true, false),
            ("é".into(), false, false, false),
            ("t}".into(), false, false, false),
            ("sha256:ab".into(), false, false, false),
            (format!("sha256:{hex}"), false, false, true),
            (format!("sha256:{}", "A".repeat(64)), false, false, false),
            (format!("sha512:{hex}"), false, false, false),
            (format!("sha256:{}", &hex[1..]), false, false, false),
            (format!("sha256:{hex}0"), false, false, false),
            ("sha256:".into(), false, false, false),
            (format!("a{}", "b".repeat(127)), true, true, false),
            (format!("a{}", "b".repeat(128)), true, false, false),
            ("a".repeat(255), true, false, false),
        ];
        v.push(("a".repeat(256), false, false, false));
        v
    }

    #[test]
    fn the_matcher_agrees_with_the_vectors() {
        for (s, name, tag, digest) in vectors() {
            assert_eq!(is_valid_name(&s), name, "name {s:?}");
            assert_eq!(is_valid_tag(&s), tag, "tag {s:?}");
            assert_eq!(is_valid_digest(&s), digest, "digest {s:?}");
            assert_eq!(Name::parse(&s).is_some(), name);
            assert_eq!(Tag::parse(&s).is_some(), tag);
        }
    }

    #[test]
    fn every_regex_spelling_agrees_with_the_matcher() {
        let anchored = |p: &str| regex::Regex::new(&format!("^(?:{p})$")).unwrap();
        let (name, tag, digest) = (
            anchored(NAME_PATTERN),
            anchored(TAG_PATTERN),
            anchored(DIGEST_PATTERN),
        );
        for (s, is_name, is_tag, is_digest) in vectors() {
            // The length bound on names is checked apart from the pattern.
            let bounded = s.len() <= MAX_NAME_LEN;
            assert_eq!(name.is_match(&s) && bounded, is_name, "name regex {s:?}");
            assert_eq!(tag.is_match(&s), is_tag, "tag regex {s:?}");
            assert_eq!(digest.is_match(&s), is_digest, "digest regex {s:?}");
        }
    }

    #[test]
    fn digests_round_trip_and_sort_like_their_spelling() {
        let a = format!("sha256:{}", "0f".repeat(32));
        let b = format!("sha256:{}", "a0".repeat(32));
        let (da, db) = (Digest::parse(&a).unwrap(), Digest::parse(&b).unwrap());
        assert_eq!(da.to_string(), a);
        assert_eq!(db.hex(), "a0".repeat(32));
        assert_eq!(da < db, a < b);
        assert_eq!(std::mem::size_of::<Digest>(), 32);
    }
}
