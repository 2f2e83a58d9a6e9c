//! The OCI distribution grammar for repository names, tags and digests.
//!
//! Every string that reaches a generated config passes through here first: the
//! grammar is the only thing standing between a hostile file name and a config
//! directive, so it is hand-written, exact and tested rather than approximated
//! with a permissive regex.
//! Source: distribution-spec "Pulling manifests" (name and tag regexes).

/// Longest repository name we accept. The spec bounds host + name at 255.
pub const MAX_NAME_LEN: usize = 255;
/// A tag is one of `[a-zA-Z0-9_]` then up to 127 of `[a-zA-Z0-9._-]`.
pub const MAX_TAG_LEN: usize = 128;

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`
pub fn is_valid_name(name: &str) -> bool {
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
pub fn is_valid_tag(tag: &str) -> bool {
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
pub fn is_valid_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in [
            "a",
            "demo/hello",
            "team/app/api",
            "a.b_c__d---e",
            "x0/y1",
            "library/ubuntu",
        ] {
            assert!(is_valid_name(ok), "{ok}");
        }
        let long = "a".repeat(256);
        for bad in [
            "",
            "Demo",
            "a//b",
            "/a",
            "a/",
            "a___b",
            "a.-b",
            "-a",
            "a-",
            "a.",
            "evil}name",
            "a\"b",
            "$x",
            "new\nline",
            "a b",
            "a;b",
            "_catalog",
            "é",
            &long,
        ] {
            assert!(!is_valid_name(bad), "{bad:?}");
        }
        assert!(is_valid_name(&"a".repeat(255)));
    }

    #[test]
    fn tags() {
        let max = format!("a{}", "b".repeat(127));
        for ok in ["latest", "v1.0", "_x", "1", "A-b_c.d", max.as_str()] {
            assert!(is_valid_tag(ok), "{ok}");
        }
        let too_long = format!("a{}", "b".repeat(128));
        for bad in [
            "",
            ".x",
            "-x",
            "x;return 200 pwned",
            "a\"b",
            "$host",
            "t}",
            "a/b",
            "sha256:ab",
            "x y",
            too_long.as_str(),
        ] {
            assert!(!is_valid_tag(bad), "{bad:?}");
        }
    }

    #[test]
    fn digests() {
        let hex = "a".repeat(64);
        assert!(is_valid_digest(&format!("sha256:{hex}")));
        assert!(!is_valid_digest(&format!("sha256:{}", "A".repeat(64))));
        assert!(!is_valid_digest(&format!("sha512:{hex}")));
        assert!(!is_valid_digest(&format!("sha256:{}", &hex[1..])));
        assert!(!is_valid_digest("sha256:"));
    }
}
