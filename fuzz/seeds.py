#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/ from fixtures/registry (the committed
basic tree) and the grammar's test vectors. Deterministic; re-run after changing the fixtures:

    python3 fuzz/seeds.py

Seeds are small real inputs, so the fuzzer starts from what each reader accepts."""

import gzip
import hashlib
import io
import json
import os
import random
import shutil
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
TREE = os.path.join(HERE, "..", "fixtures", "registry", "v2")
CORPUS = os.path.join(HERE, "corpus")


def sha(data):
    return hashlib.sha256(data).hexdigest()


def write(target, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, sha(data)[:16]), "wb") as f:
        f.write(data)


def tar(files):
    """A tar with fixed metadata, so seeds are byte-stable."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            t.addfile(info, io.BytesIO(data))
    return out.getvalue()


def repo(name):
    base = os.path.join(TREE, name)
    manifests = {}
    for f in sorted(os.listdir(os.path.join(base, "manifests"))):
        with open(os.path.join(base, "manifests", f), "rb") as fh:
            manifests[f] = fh.read()
    blobs = {}
    for f in sorted(os.listdir(os.path.join(base, "blobs"))):
        with open(os.path.join(base, "blobs", f), "rb") as fh:
            blobs[f] = fh.read()
    return manifests, blobs


def oci_layout(name, tag):
    """An OCI layout holding every manifest and blob of a fixture repository, `tag` named."""
    manifests, blobs = repo(name)
    top = manifests[tag]
    objects = {sha(b): b for b in list(manifests.values()) + list(blobs.values())}
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": json.loads(top).get("mediaType", "application/vnd.oci.image.manifest.v1+json"),
            "digest": "sha256:" + sha(top),
            "size": len(top),
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }],
    }
    files = [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
             ("index.json", json.dumps(index).encode())]
    files += [("blobs/sha256/" + h, b) for h, b in sorted(objects.items())]
    return tar(files)


def legacy_save(name, tag):
    """A `docker save` archive in the legacy format, from a Docker schema 2 fixture image."""
    manifests, blobs = repo(name)
    m = json.loads(manifests[tag])
    config = blobs[m["config"]["digest"]]
    layers = [blobs[l["digest"]] for l in m["layers"]]
    files = [("manifest.json", json.dumps([{
        "Config": "config.json",
        "RepoTags": [name + ":" + tag],
        "Layers": ["layer%d/layer.tar" % i for i in range(len(layers))],
    }]).encode()), ("config.json", config)]
    files += [("layer%d/layer.tar" % i, l) for i, l in enumerate(layers)]
    return tar(files)


def main():
    shutil.rmtree(CORPUS, ignore_errors=True)
    # grammar: the vectors of src/grammar.rs's tests, and a few at the bounds.
    for s in ["a", "demo/hello", "team/app/api", "a.b_c__d---e", "x0/y1", "latest", "v1.0",
              "_x", "A-b_c.d", "", "a//b", "/a", "a/", "a___b", "a.-b", "-a", "a-", ".x",
              "evil}name", "a\"b", "$host", "new\nline", "a;b", "_catalog", "\u00e9",
              "sha256:" + "a" * 64, "sha256:" + "A" * 64, "sha512:" + "a" * 64,
              "a" + "b" * 127, "a" + "b" * 128, "a" * 255, "a" * 256, "index.html"]:
        write("grammar", s.encode())
    # manifest: every manifest of the basic tree, and a few refusals.
    for name in ["demo/hello", "demo/oci", "demo/multi", "demo/list", "team/app/api",
                 "charts/hello"]:
        for data in repo(name)[0].values():
            write("manifest", data)
    d = "sha256:" + "0" * 64
    for data in [
        b'{"schemaVersion":1,"fsLayers":[{"blobSum":"%s"},{"blobSum":"%s"}],"signatures":[{}]}' % (d.encode(), d.encode()),
        b'{"schemaVersion":1,"fsLayers":[{"blobSum":"x"}]}',
        b'{"schemaVersion":2,"mediaType":"application/x-unknown"}',
        b'{"schemaVersion":2,"manifests":[],"subject":{"digest":"%s","size":1}}' % d.encode(),
        b'not json',
    ]:
        write("manifest", data)
    # oci_layout and docker_save (whose OCI form is a layout in a tar).
    for name, tag in [("demo/oci", "1.0"), ("demo/multi", "latest"), ("demo/list", "latest")]:
        layout = oci_layout(name, tag)
        write("oci_layout", layout)
        write("docker_save", layout)
    save = legacy_save("demo/hello", "latest")
    write("docker_save", save)
    write("docker_save", gzip.compress(save, mtime=0))
    # Without tar's zero padding at the end, so a mutation that cuts the file short lands in a
    # member's data; and the archives that found the truncation bug (issue 10), kept as seeds.
    write("docker_save", save.rstrip(b"\0"))
    manifest = b'[{"Config":"config.json","RepoTags":["x:1"],"Layers":["l.tar"]}]'
    config = b'{"architecture":"amd64","os":"linux"}'
    write("docker_save", tar([("manifest.json", manifest), ("config.json", config),
                              ("l.tar", b"0123456789" * 100)])[:3 * 512 + 10])
    # The input that broke the `manifest` invariant (issue 10): an array of a manifest's fields.
    write("manifest", b'[2,"application/vnd.oci.image.index.v1+json",null,null,[],null,null,null]')
    # render: structured input from bytes (see fuzz_targets/render.rs); random but fixed.
    rng = random.Random(10)
    for n in [16, 64, 256, 1024]:
        write("render", bytes(rng.randrange(256) for _ in range(n)))


if __name__ == "__main__":
    main()
