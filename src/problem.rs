//! Problems found in a tree: data, reported all at once with the path that
//! caused them, never a first-error abort.

use serde::Serialize;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Left out of every output (or a host cannot serve it); `check` exits 1.
    Error,
    /// Served, but worth knowing; `check` still exits 0.
    Warning,
}

/// Stable identifiers: `check --format json` consumers and tests match on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    InvalidName,
    InvalidTag,
    InvalidBlobName,
    ReservedName,
    NotAManifest,
    UnknownMediaType,
    DigestMismatch,
    MissingBlob,
    MissingManifest,
    SizeMismatch,
    BlobDigestMismatch,
    SymlinkOutside,
    SymlinkDangling,
    SymlinkDirectory,
    SymlinkInside,
    SpecialFile,
    CredentialsInTree,
    CaseCollision,
    NotPrepared,
    FileTooLarge,
    TooManyFiles,
    LineTooLong,
    HostUnservable,
    Unreadable,
    Schema1,
    DotFile,
    ForeignConfig,
    NotRegular,
    /// A manifest or blob no tag reaches: `gc` deletes it (a warning).
    Unreachable,
    /// The fallback tag `sha256-<hex>` holds content `prepare` did not write: left alone.
    ForeignFallbackTag,
    /// A referrer (a manifest with a `subject`) whose subject is not in its repository.
    MissingSubject,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::InvalidName => "invalid-name",
            Kind::InvalidTag => "invalid-tag",
            Kind::InvalidBlobName => "invalid-blob-name",
            Kind::ReservedName => "reserved-name",
            Kind::NotAManifest => "not-a-manifest",
            Kind::UnknownMediaType => "unknown-media-type",
            Kind::DigestMismatch => "digest-mismatch",
            Kind::MissingBlob => "missing-blob",
            Kind::MissingManifest => "missing-manifest",
            Kind::SizeMismatch => "size-mismatch",
            Kind::BlobDigestMismatch => "blob-digest-mismatch",
            Kind::SymlinkOutside => "symlink-outside",
            Kind::SymlinkDangling => "symlink-dangling",
            Kind::SymlinkDirectory => "symlink-directory",
            Kind::SymlinkInside => "symlink-inside",
            Kind::SpecialFile => "special-file",
            Kind::CredentialsInTree => "credentials-in-tree",
            Kind::CaseCollision => "case-collision",
            Kind::NotPrepared => "not-prepared",
            Kind::FileTooLarge => "file-too-large",
            Kind::TooManyFiles => "too-many-files",
            Kind::LineTooLong => "line-too-long",
            Kind::HostUnservable => "host-unservable",
            Kind::Unreadable => "unreadable",
            Kind::Schema1 => "schema1",
            Kind::DotFile => "dot-file",
            Kind::ForeignConfig => "foreign-config",
            Kind::NotRegular => "not-regular-file",
            Kind::Unreachable => "unreachable",
            Kind::ForeignFallbackTag => "foreign-fallback-tag",
            Kind::MissingSubject => "missing-subject",
        }
    }
}

impl Kind {
    /// Problems that make a host's output unusable as a whole (as opposed to
    /// parts left out): the host command writes nothing.
    pub fn blocks_output(self) -> bool {
        matches!(
            self,
            Kind::FileTooLarge
                | Kind::TooManyFiles
                | Kind::LineTooLong
                | Kind::ForeignConfig
                | Kind::NotRegular
                | Kind::CredentialsInTree
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Problem {
    /// Relative to TREE, `/`-separated; may hold any byte a file name can.
    pub path: String,
    pub severity: Severity,
    pub kind: Kind,
    pub message: String,
}

impl Problem {
    pub fn error(path: impl Into<String>, kind: Kind, message: impl Into<String>) -> Problem {
        Problem {
            path: path.into(),
            severity: Severity::Error,
            kind,
            message: message.into(),
        }
    }

    pub fn warning(path: impl Into<String>, kind: Kind, message: impl Into<String>) -> Problem {
        Problem {
            path: path.into(),
            severity: Severity::Warning,
            kind,
            message: message.into(),
        }
    }
}

/// One line per problem, whatever the path holds: a hostile name with a
/// newline or escape sequence must not forge extra lines in a CI log.
impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{severity}: {}: {} [{}]",
            printable(&self.path),
            printable(&self.message),
            self.kind.as_str()
        )
    }
}

/// Escapes control characters (and only those) so any string prints on one line.
pub(crate) fn printable(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_whatever_the_path() {
        let p = Problem::error("v2/new\nline\x1b[2J", Kind::InvalidName, "bad");
        let s = p.to_string();
        assert!(!s.contains('\n') && !s.contains('\x1b'), "{s}");
        assert!(s.contains("new\\nline"), "{s}");
    }
}
