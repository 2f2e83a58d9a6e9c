//! SHA-256 digests in the `sha256:<hex>` form registries use.

use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

pub fn of_bytes(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// Streams a file through SHA-256 (blobs can be many GiB) and returns the
/// digest and the number of bytes hashed.
pub fn of_file(path: &Path) -> io::Result<(String, u64)> {
    of_reader(File::open(path)?)
}

/// Streams any reader through SHA-256.
pub fn of_reader(reader: impl Read) -> io::Result<(String, u64)> {
    copy(reader, io::sink(), None)
}

/// Copies `reader` to `writer`, hashing every byte on the way (so a blob is
/// read once), and adds the bytes done to `progress` as it goes.
pub fn copy(
    mut reader: impl Read,
    mut writer: impl io::Write,
    progress: Option<&std::sync::atomic::AtomicU64>,
) -> io::Result<(String, u64)> {
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
    Ok((format!("sha256:{:x}", hasher.finalize()), total))
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_value() {
        assert_eq!(
            super::of_bytes(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
