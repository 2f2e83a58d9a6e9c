//! An arbitrary model rendered by every host (`registrish_gen::fuzzing::render`). Names and
//! tags are drawn from the grammar's alphabets, so most of them pass it; those that don't are
//! dropped as the scan would drop them.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use registrish_gen::fuzzing::{ManifestSpec, ModelSpec, RepositorySpec, TagSpec};

#[derive(Arbitrary, Debug)]
struct Model {
    repositories: Vec<Repository>,
    /// One of a few values: each new one costs a render of the reference models.
    tag_max_age: u8,
}

#[derive(Arbitrary, Debug)]
struct Repository {
    name: Vec<u8>,
    tags: Vec<(Vec<u8>, u8, bool)>,
    manifests: Vec<Manifest>,
    blobs: Vec<u8>,
}

#[derive(Arbitrary, Debug)]
struct Manifest {
    digest: u8,
    media_type: u8,
    size: u32,
    children: Vec<u8>,
    layers: Vec<u8>,
}

/// Lowercase alphanumerics weighted over the separators, so runs of them form components.
const NAME_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789._-/abc012";
const TAG_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-";

fn spell(bytes: &[u8], alphabet: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| alphabet[*b as usize % alphabet.len()] as char)
        .collect()
}

/// A digest from one byte: few distinct ones, so tags and references share them.
fn digest(seed: u8) -> [u8; 32] {
    let mut d = [seed; 32];
    d[0] = seed.wrapping_mul(37);
    d
}

fn spec(m: &Model) -> ModelSpec {
    ModelSpec {
        tag_max_age: [0, 300, 86_400, u64::from(u32::MAX)][usize::from(m.tag_max_age % 4)],
        repositories: m
            .repositories
            .iter()
            .map(|r| RepositorySpec {
                name: spell(&r.name, NAME_ALPHABET),
                tags: r
                    .tags
                    .iter()
                    .map(|(t, manifest, symlink)| TagSpec {
                        tag: spell(t, TAG_ALPHABET),
                        manifest: (*manifest).into(),
                        symlink: *symlink,
                    })
                    .collect(),
                manifests: r
                    .manifests
                    .iter()
                    .map(|m| ManifestSpec {
                        digest: digest(m.digest),
                        media_type: m.media_type.into(),
                        size: m.size.into(),
                        children: m.children.iter().map(|c| (*c).into()).collect(),
                        layers: m.layers.iter().map(|l| (*l).into()).collect(),
                    })
                    .collect(),
                blobs: r.blobs.iter().map(|b| digest(*b)).collect(),
            })
            .collect(),
    }
}

fuzz_target!(|m: Model| registrish_gen::fuzzing::render(&spec(&m)));
