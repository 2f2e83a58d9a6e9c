//! Reading the exports people already have: an OCI image layout (a directory
//! or inside a `docker save` tar), a skopeo `dir:` folder, or a legacy
//! `docker save` archive (converted to a Docker schema 2 manifest).
//!
//! A source answers two questions: which images does it hold (top manifest
//! digest and the ref name it carries), and where are the bytes of a digest
//! (a file to link or copy, a byte range of the tar, or bytes made here).

use crate::digest;
use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Where the bytes of one digest live.
#[derive(Debug, Clone)]
pub enum Bytes {
    /// A file of its own: it can be hard-linked into the tree.
    File(PathBuf),
    /// A member of an uncompressed tar archive.
    TarRange { offset: u64, len: u64 },
    /// Made by the importer (a converted manifest).
    Memory(std::sync::Arc<Vec<u8>>),
}

#[derive(Debug, Clone)]
pub struct Image {
    /// The ref name the source gives it (`org.opencontainers.image.ref.name`,
    /// a `docker save` RepoTag), if any.
    pub ref_name: Option<String>,
    pub digest: String,
    /// cosign's `kind` annotation (`cosign save` marks its entries with it, and gives none a
    /// ref name): which entry is the image and which its signatures or attestations.
    pub cosign_kind: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    OciLayout,
    OciArchive,
    SkopeoDir,
    DockerArchive,
}

impl Kind {
    pub fn describe(self) -> &'static str {
        match self {
            Kind::OciLayout => "OCI image layout",
            Kind::OciArchive => "docker save archive (OCI layout inside)",
            Kind::SkopeoDir => "skopeo dir: folder",
            Kind::DockerArchive => "docker save archive (legacy format)",
        }
    }
}

pub struct Source {
    pub kind: Kind,
    pub path: PathBuf,
    pub images: Vec<Image>,
    /// For archives: the tar file that `TarRange`s point into.
    tar: Option<PathBuf>,
    /// Digests located up front (archives, skopeo dirs, converted manifests).
    known: HashMap<String, Bytes>,
    /// A gzip archive decompressed to a temp file (removed with the source).
    _decompressed: Option<TempFile>,
}

/// A file removed on drop.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// `docker save | gzip` is common; members are read in place by offset, which
/// a gzip stream cannot do, so it is decompressed once to a temp file.
fn decompress(path: &Path) -> Result<TempFile> {
    let temp = TempFile(std::env::temp_dir().join(format!(
        "registrish-import-{}-{}.tar",
        std::process::id(),
        path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    )));
    let input = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut out =
        File::create(&temp.0).with_context(|| format!("cannot create {}", temp.0.display()))?;
    std::io::copy(
        &mut flate2::read::MultiGzDecoder::new(std::io::BufReader::new(input)),
        &mut out,
    )
    .with_context(|| format!("cannot decompress {}", path.display()))?;
    Ok(temp)
}

impl Source {
    /// Detects the format of `path`.
    pub fn open(path: &Path) -> Result<Source> {
        let meta = fs::metadata(path).with_context(|| format!("cannot open {}", path.display()))?;
        if meta.is_dir() {
            if path.join("oci-layout").is_file() && path.join("index.json").is_file() {
                return open_oci_dir(path);
            }
            if path.join("manifest.json").is_file() {
                return open_skopeo_dir(path);
            }
            bail!(
                "{} is neither an OCI image layout (oci-layout + index.json) nor a skopeo dir: folder (manifest.json)",
                path.display()
            );
        }
        let mut magic = [0u8; 4];
        let _ = File::open(path)?.read(&mut magic)?;
        if magic[..2] == [0x1f, 0x8b] {
            let temp = decompress(path)?;
            let mut source = open_archive(&temp.0)?;
            source.path = path.to_path_buf();
            source._decompressed = Some(temp);
            return Ok(source);
        }
        open_archive(path)
    }

    pub fn locate(&self, digest: &str) -> Option<Bytes> {
        if let Some(b) = self.known.get(digest) {
            return Some(b.clone());
        }
        let hex = digest.strip_prefix("sha256:")?;
        match self.kind {
            Kind::OciLayout => {
                let p = self.path.join("blobs/sha256").join(hex);
                p.is_file().then_some(Bytes::File(p))
            }
            Kind::SkopeoDir => [hex.to_string(), format!("{hex}.manifest.json")]
                .into_iter()
                .map(|n| self.path.join(n))
                .find(|p| p.is_file())
                .map(Bytes::File),
            Kind::OciArchive | Kind::DockerArchive => None,
        }
    }

    /// Every object an OCI layout holds under `blobs/sha256/`, whatever references it (a
    /// referrer may be there without index.json naming it). Other sources hold no objects but
    /// those their images reference.
    pub fn objects(&self) -> Result<Vec<(String, Bytes)>> {
        match self.kind {
            Kind::OciLayout => {
                let dir = self.path.join("blobs/sha256");
                let entries = match fs::read_dir(&dir) {
                    Ok(e) => e,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                    Err(e) => {
                        return Err(e).with_context(|| format!("cannot list {}", dir.display()));
                    }
                };
                let mut out = Vec::new();
                for entry in entries {
                    let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
                    let digest = format!("sha256:{}", entry.file_name().to_string_lossy());
                    if crate::grammar::is_valid_digest(&digest)
                        && entry.file_type().is_ok_and(|t| t.is_file())
                    {
                        out.push((digest, Bytes::File(entry.path())));
                    }
                }
                out.sort_by(|a, b| a.0.cmp(&b.0));
                Ok(out)
            }
            Kind::OciArchive => {
                let mut out: Vec<_> = self
                    .known
                    .iter()
                    .map(|(d, b)| (d.clone(), b.clone()))
                    .collect();
                out.sort_by(|a, b| a.0.cmp(&b.0));
                Ok(out)
            }
            Kind::SkopeoDir | Kind::DockerArchive => Ok(Vec::new()),
        }
    }

    /// The length of the bytes, without opening them (0 when a file can't be
    /// stat'ed: opening it later reports the error).
    pub fn len(&self, bytes: &Bytes) -> u64 {
        match bytes {
            Bytes::File(p) => fs::metadata(p).map(|m| m.len()).unwrap_or(0),
            Bytes::TarRange { len, .. } => *len,
            Bytes::Memory(v) => v.len() as u64,
        }
    }

    /// A reader over the bytes, and their length.
    pub fn open_bytes(&self, bytes: &Bytes) -> Result<(Box<dyn Read + Send>, u64)> {
        Ok(match bytes {
            Bytes::File(p) => {
                let f = File::open(p).with_context(|| format!("cannot open {}", p.display()))?;
                let len = f.metadata()?.len();
                (Box::new(f), len)
            }
            Bytes::TarRange { offset, len } => {
                let tar = self.tar.as_ref().expect("tar ranges come from archives");
                let mut f =
                    File::open(tar).with_context(|| format!("cannot open {}", tar.display()))?;
                f.seek(SeekFrom::Start(*offset))?;
                (Box::new(f.take(*len)), *len)
            }
            Bytes::Memory(v) => (
                Box::new(std::io::Cursor::new(v.as_ref().clone())),
                v.len() as u64,
            ),
        })
    }

    /// Small objects (manifests, index.json) read whole.
    pub fn read_small(&self, bytes: &Bytes) -> Result<Vec<u8>> {
        let (mut r, len) = self.open_bytes(bytes)?;
        if len > crate::media::MAX_MANIFEST_BYTES {
            bail!("{len} bytes is larger than any manifest");
        }
        let mut v = Vec::with_capacity(len as usize);
        r.read_to_end(&mut v)?;
        Ok(v)
    }
}

#[derive(Deserialize)]
struct OciIndex {
    manifests: Vec<OciDescriptor>,
}

#[derive(Deserialize)]
struct OciDescriptor {
    digest: String,
    #[serde(default)]
    annotations: HashMap<String, String>,
}

/// The ref names tools write: OCI's own annotation, or containerd's full image
/// name (`docker.io/library/x:tag`, as `docker save` 25+ and nerdctl write).
fn oci_images(index_json: &[u8], origin: &str) -> Result<Vec<Image>> {
    let index: OciIndex = serde_json::from_slice(index_json)
        .with_context(|| format!("{origin}: index.json is not an OCI index"))?;
    Ok(index
        .manifests
        .into_iter()
        .map(|d| Image {
            ref_name: d
                .annotations
                .get("org.opencontainers.image.ref.name")
                .or_else(|| d.annotations.get("io.containerd.image.name"))
                .cloned(),
            cosign_kind: d.annotations.get("kind").cloned(),
            digest: d.digest,
        })
        .collect())
}

fn open_oci_dir(path: &Path) -> Result<Source> {
    let index = fs::read(path.join("index.json"))
        .with_context(|| format!("cannot read {}/index.json", path.display()))?;
    Ok(Source {
        kind: Kind::OciLayout,
        path: path.to_path_buf(),
        images: oci_images(&index, &path.display().to_string())?,
        tar: None,
        known: HashMap::new(),
        _decompressed: None,
    })
}

fn open_skopeo_dir(path: &Path) -> Result<Source> {
    let top = path.join("manifest.json");
    let bytes = fs::read(&top).with_context(|| format!("cannot read {}", top.display()))?;
    let digest = digest::of_bytes(&bytes).to_string();
    let mut known = HashMap::new();
    known.insert(digest.clone(), Bytes::File(top));
    Ok(Source {
        kind: Kind::SkopeoDir,
        path: path.to_path_buf(),
        images: vec![Image {
            ref_name: None,
            digest,
            cosign_kind: None,
        }],
        tar: None,
        known,
        _decompressed: None,
    })
}

/// Member name -> (offset, length), with symlinks resolved (skopeo's
/// docker-archive links `<id>/layer.tar` to `<hex>.tar`).
fn index_tar(path: &Path) -> Result<HashMap<String, (u64, u64)>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut magic = [0u8; 4];
    File::open(path)?.read_exact(&mut magic).ok();
    if magic == [0x28, 0xb5, 0x2f, 0xfd] {
        bail!(
            "{} is zstd-compressed; decompress it first (zstd -d), the archive is read in place",
            path.display()
        );
    }
    let archive_len = file.metadata()?.len();
    let mut archive = tar::Archive::new(file);
    let mut members = HashMap::new();
    let mut links = Vec::new();
    for entry in archive
        .entries_with_seek()
        .with_context(|| format!("{} is not a tar archive", path.display()))?
    {
        let entry =
            entry.with_context(|| format!("{} is not a readable tar archive", path.display()))?;
        let name = entry
            .path()?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                // The reader seeks past a member's data without reading it, so a cut-short
                // archive lists its last member whole: its bytes would be hashed and served
                // short of the size its manifest states, and a header's size (up to 8 GiB,
                // or any with base-256) would size the buffers reading it.
                let (offset, size) = (entry.raw_file_position(), entry.size());
                if offset.checked_add(size).is_none_or(|end| end > archive_len) {
                    bail!(
                        "{} is truncated: member {name} claims {size} bytes at offset {offset}, past the end of the archive ({archive_len} bytes)",
                        path.display()
                    );
                }
                members.insert(name, (offset, size));
            }
            tar::EntryType::Symlink | tar::EntryType::Link => {
                if let Some(target) = entry.link_name()? {
                    links.push((
                        name,
                        target.to_string_lossy().into_owned(),
                        entry.header().entry_type(),
                    ));
                }
            }
            _ => {}
        }
    }
    for (name, target, kind) in links {
        let resolved = if kind == tar::EntryType::Link {
            target.trim_start_matches("./").to_string()
        } else {
            let base = Path::new(&name).parent().unwrap_or(Path::new(""));
            normalize(&base.join(&target))
        };
        if let Some(range) = members.get(&resolved).copied() {
            members.insert(name, range);
        }
    }
    Ok(members)
}

/// Resolves `a/../b` lexically; a path leaving the archive resolves to nothing.
fn normalize(p: &Path) -> String {
    let mut out: Vec<String> = Vec::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir if out.pop().is_none() => return String::new(),
            std::path::Component::ParentDir => {}
            std::path::Component::Normal(s) => out.push(s.to_string_lossy().into_owned()),
            _ => {}
        }
    }
    out.join("/")
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LegacyEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn open_archive(path: &Path) -> Result<Source> {
    let members = index_tar(path)?;
    // A name the archive's own index lists may still be missing from it: a
    // crafted or truncated archive is an error naming the member, not a panic.
    let read_member = |name: &str| -> Result<Vec<u8>> {
        let Some(&(offset, len)) = members.get(name) else {
            bail!(
                "{}: {name} is listed but not in the archive",
                path.display()
            );
        };
        let mut f = File::open(path)?;
        f.seek(SeekFrom::Start(offset))?;
        let mut v = Vec::with_capacity(len as usize);
        f.take(len).read_to_end(&mut v)?;
        Ok(v)
    };
    let mut known = HashMap::new();
    if members.contains_key("oci-layout") && members.contains_key("index.json") {
        // Docker 25+ and nerdctl: an OCI layout inside the tar.
        for (name, (offset, len)) in &members {
            if let Some(hex) = name.strip_prefix("blobs/sha256/") {
                known.insert(
                    format!("sha256:{hex}"),
                    Bytes::TarRange {
                        offset: *offset,
                        len: *len,
                    },
                );
            }
        }
        let images = oci_images(&read_member("index.json")?, &path.display().to_string())?;
        return Ok(Source {
            kind: Kind::OciArchive,
            path: path.to_path_buf(),
            images,
            tar: Some(path.to_path_buf()),
            known,
            _decompressed: None,
        });
    }
    let Some(_) = members.get("manifest.json") else {
        bail!(
            "{} is a tar archive but not a docker save archive (no manifest.json or index.json)",
            path.display()
        );
    };
    let entries: Vec<LegacyEntry> = serde_json::from_slice(&read_member("manifest.json")?)
        .with_context(|| {
            format!(
                "{}: manifest.json is not a docker save manifest",
                path.display()
            )
        })?;
    let mut images = Vec::new();
    for entry in entries {
        let member = |name: &str| {
            members.get(name).copied().with_context(|| {
                format!(
                    "{}: {name} is listed but not in the archive",
                    path.display()
                )
            })
        };
        let config = read_member(&entry.config)?;
        let config_digest = digest::of_bytes(&config).to_string();
        known.insert(
            config_digest.clone(),
            Bytes::Memory(std::sync::Arc::new(config.clone())),
        );
        let mut layers = Vec::new();
        for layer in &entry.layers {
            let (offset, len) = member(layer)?;
            // Hashed over the bytes as stored: what clients will verify.
            let mut f = File::open(path)?;
            f.seek(SeekFrom::Start(offset))?;
            let mut head = [0u8; 2];
            let _ = (&mut f).take(2).read(&mut head)?;
            f.seek(SeekFrom::Start(offset))?;
            let d = digest::of_reader(f.take(len))?.0.to_string();
            let media_type = if head == [0x1f, 0x8b] {
                "application/vnd.docker.image.rootfs.diff.tar.gzip"
            } else {
                "application/vnd.docker.image.rootfs.diff.tar"
            };
            known.insert(d.clone(), Bytes::TarRange { offset, len });
            layers.push(serde_json::json!({"mediaType": media_type, "size": len, "digest": d}));
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": crate::media::MediaType::DockerManifest.as_str(),
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": config.len(),
                "digest": config_digest,
            },
            "layers": layers,
        });
        let bytes = serde_json::to_vec_pretty(&manifest)?;
        let manifest_digest = digest::of_bytes(&bytes).to_string();
        known.insert(
            manifest_digest.clone(),
            Bytes::Memory(std::sync::Arc::new(bytes)),
        );
        let tags = entry.repo_tags.unwrap_or_default();
        if tags.is_empty() {
            images.push(Image {
                ref_name: None,
                digest: manifest_digest.clone(),
                cosign_kind: None,
            });
        }
        for t in tags {
            images.push(Image {
                ref_name: Some(t),
                digest: manifest_digest.clone(),
                cosign_kind: None,
            });
        }
    }
    Ok(Source {
        kind: Kind::DockerArchive,
        path: path.to_path_buf(),
        images,
        tar: Some(path.to_path_buf()),
        known,
        _decompressed: None,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn normalize_stays_inside() {
        assert_eq!(
            super::normalize(std::path::Path::new("a/../b.tar")),
            "b.tar"
        );
        assert_eq!(
            super::normalize(std::path::Path::new("../../etc/passwd")),
            ""
        );
    }
}
