//! SHA-256 hashing of bytes, files and streams into [`Digest`]s.

use crate::grammar::Digest;
use sha2::{Digest as _, Sha256};
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

pub(crate) fn of_bytes(bytes: &[u8]) -> Digest {
    Digest::from_sha256(Sha256::digest(bytes).into())
}

/// Streams a file through SHA-256 (blobs can be many GiB) and returns the
/// digest and the number of bytes hashed.
pub(crate) fn of_file(path: &Path) -> io::Result<(Digest, u64)> {
    of_reader(File::open(path)?)
}

/// Streams any reader through SHA-256.
pub(crate) fn of_reader(reader: impl Read) -> io::Result<(Digest, u64)> {
    copy(reader, io::sink(), None)
}

/// Copies `reader` to `writer`, hashing every byte on the way (so a blob is
/// read once), and adds the bytes done to `progress` as it goes.
pub(crate) fn copy(
    mut reader: impl Read,
    mut writer: impl io::Write,
    progress: Option<&std::sync::atomic::AtomicU64>,
) -> io::Result<(Digest, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        writer.write_all(&buf[..n])?;
        total += n as u64;
        if let Some(p) = progress {
            p.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        }
    }
    writer.flush()?;
    Ok((Digest::from_sha256(hasher.finalize().into()), total))
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_value() {
        assert_eq!(
            super::of_bytes(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
