//! `import` from exports made by the real tools: umoci builds an OCI layout,
//! skopeo turns it (and a multi-arch image served by nginx) into `dir:` (with
//! and without `--all`), `oci:` and `docker-archive:` forms. Each import is
//! served by nginx and pulled; pulled digests must equal the source's.

use crate::support::fixture::{self, sha256};
use crate::support::process::run;
use crate::support::{
    self, Containerd, Dockerd, Nginx, TempDir, free_port, run_bin, run_bin_ok, skopeo,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Every file under `dir`: bytes, inode and mtime ("nothing changed" checks).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, u64, std::time::SystemTime)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = BTreeMap::new();
    if !dir.exists() {
        return out;
    }
    for e in walkdir::WalkDir::new(dir) {
        let e = e.unwrap();
        if e.file_type().is_file() {
            let m = e.metadata().unwrap();
            out.insert(
                e.path().to_path_buf(),
                (fs::read(e.path()).unwrap(), m.ino(), m.modified().unwrap()),
            );
        }
    }
    out
}

/// An OCI layout built by umoci: an empty base and `v1` with one file.
fn umoci_layout(dir: &Path) -> PathBuf {
    let layout = dir.join("umoci");
    let image = |tag: &str| format!("{}:{tag}", layout.display());
    run(Command::new("umoci")
        .args(["init", "--layout"])
        .arg(&layout));
    run(Command::new("umoci").args(["new", "--image", &image("base")]));
    let bundle = dir.join("bundle");
    run(Command::new("umoci")
        .args(["unpack", "--image", &image("base")])
        .arg(&bundle));
    fs::write(bundle.join("rootfs/hello.txt"), "hello from umoci\n").unwrap();
    run(Command::new("umoci")
        .args(["repack", "--image", &image("v1")])
        .arg(&bundle));
    run(Command::new("umoci").args([
        "config",
        "--image",
        &image("v1"),
        "--config.cmd",
        "/hello.txt",
        "--os",
        "linux",
        "--architecture",
        "amd64",
    ]));
    layout
}

fn skopeo_copy(from: &str, to: &str, all: bool) {
    let mut args = vec!["copy", "--quiet", "--src-tls-verify=false"];
    if all {
        args.push("--all");
    }
    args.extend([from, to]);
    let out = skopeo(&args);
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        text(&out.stderr)
    );
}

fn raw_digest(reference: &str) -> String {
    let out = skopeo(&["inspect", "--tls-verify=false", "--raw", reference]);
    assert!(
        out.status.success(),
        "skopeo inspect --raw {reference}: {}",
        text(&out.stderr)
    );
    sha256(&out.stdout)
}

fn config_digest(reference: &str) -> String {
    let out = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--config",
        "--raw",
        reference,
    ]);
    assert!(
        out.status.success(),
        "skopeo inspect --config {reference}: {}",
        text(&out.stderr)
    );
    sha256(&out.stdout)
}

fn import(source: &str, name: &str, extra: &[&str], tree: &Path) -> std::process::Output {
    let mut args = vec!["import", source, "--name", name];
    args.extend_from_slice(extra);
    args.push(tree.to_str().unwrap());
    run_bin(&args, tree.parent().unwrap())
}

#[test]
fn imports_every_export_format_and_clients_pull_the_source_digests() {
    let work = TempDir::new("import");
    let layout = umoci_layout(work.path());
    let oci = |tag: &str| format!("oci:{}:{tag}", layout.display());

    // A multi-arch image (OCI index with an attestation) from a served registry.
    let f = fixture::build("basic", &[]);
    run_bin_ok(["prepare", f.tree().to_str().unwrap()], f.dir.path());
    let src_port = free_port();
    let conf = f.dir.join("src.conf");
    run_bin_ok(
        [
            "nginx",
            f.tree().to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{src_port}"),
            "-o",
            conf.to_str().unwrap(),
        ],
        f.dir.path(),
    );
    let source_registry = Nginx::start(&conf, src_port);
    let multi = format!("docker://127.0.0.1:{src_port}/demo/multi:latest");
    let list = format!("docker://127.0.0.1:{src_port}/demo/list:latest");

    let dir1 = work.join("dir1");
    let dir_all = work.join("dirall");
    let oci_multi = work.join("ocimulti");
    let archive = work.join("umoci.tar");
    skopeo_copy(&oci("v1"), &format!("dir:{}", dir1.display()), false);
    skopeo_copy(&multi, &format!("dir:{}", dir_all.display()), true);
    skopeo_copy(&multi, &format!("oci:{}:latest", oci_multi.display()), true);
    skopeo_copy(&list, &format!("oci:{}:list", oci_multi.display()), true);
    skopeo_copy(
        &oci("v1"),
        &format!("docker-archive:{}:demo/umoci:v1", archive.display()),
        false,
    );
    // Docker 25+ writes an OCI layout inside its tar: the same, tarred.
    let oci_tar = work.join("oci-in.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&oci_multi)
        .arg("-cf")
        .arg(&oci_tar)
        .arg("."));
    // The source's own digests, read with skopeo from the source itself.
    let (multi_digest, multi_config) = (raw_digest(&multi), config_digest(&multi));
    drop(source_registry);

    let tree = work.join("tree");
    let ok = |out: std::process::Output| assert!(out.status.success(), "{}", text(&out.stderr));
    ok(import(layout.to_str().unwrap(), "umoci/layout", &[], &tree)); // both refs: base, v1
    ok(import(
        &format!("{}:v1", layout.display()),
        "umoci/picked:one",
        &["--tag", "two"],
        &tree,
    ));
    ok(import(dir1.to_str().unwrap(), "skopeo/dir:v1", &[], &tree));
    ok(import(
        dir_all.to_str().unwrap(),
        "skopeo/dirall:latest",
        &[],
        &tree,
    ));
    ok(import(oci_multi.to_str().unwrap(), "oci/multi", &[], &tree)); // latest and list
    ok(import(
        archive.to_str().unwrap(),
        "docker/legacy",
        &[],
        &tree,
    ));
    // `docker save | gzip`: decompressed on the way, the same image.
    run(Command::new("gzip").arg("-k").arg(&archive));
    let gz = format!("{}.gz", archive.display());
    ok(import(&gz, "docker/legacygz", &[], &tree));
    assert_eq!(
        fs::read(tree.join("v2/docker/legacygz/manifests/v1")).unwrap(),
        fs::read(tree.join("v2/docker/legacy/manifests/v1")).unwrap()
    );
    ok(import(
        &format!("{}:latest", oci_tar.display()),
        "docker/ocitar:latest",
        &[],
        &tree,
    ));
    let check = run_bin(["check", tree.to_str().unwrap()], &tree);
    assert!(
        check.status.success(),
        "{}{}",
        text(&check.stdout),
        text(&check.stderr)
    );

    // Served and pulled: the manifest and config digests are the source's.
    let port = free_port();
    let conf = work.join("registry.conf");
    run_bin_ok(
        [
            "nginx",
            tree.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "-o",
            conf.to_str().unwrap(),
        ],
        &tree,
    );
    let nginx = Nginx::start(&conf, port);
    let host = format!("127.0.0.1:{}", nginx.port());
    let containerd = Containerd::start();
    let dockerd = Dockerd::start();
    let v1 = (raw_digest(&oci("v1")), Some(config_digest(&oci("v1"))));
    let multi = (multi_digest, Some(multi_config));
    let cases: Vec<(&str, (String, Option<String>))> = vec![
        ("umoci/layout:v1", v1.clone()),
        ("umoci/layout:base", (raw_digest(&oci("base")), None)),
        ("umoci/picked:one", v1.clone()),
        ("umoci/picked:two", v1.clone()),
        ("skopeo/dir:v1", v1.clone()),
        ("skopeo/dirall:latest", multi.clone()),
        ("oci/multi:latest", multi.clone()),
        // skopeo writes a Docker list into an OCI layout as an OCI index (and its configs as
        // OCI configs): the layout's own digests are the source's.
        (
            "oci/multi:list",
            (
                raw_digest(&format!("oci:{}:list", oci_multi.display())),
                Some(config_digest(&format!("oci:{}:list", oci_multi.display()))),
            ),
        ),
        ("docker/ocitar:latest", multi),
    ];
    for (reference, (want, config)) in &cases {
        let pulled = format!("{host}/{reference}");
        assert_eq!(
            &sha256(&support::skopeo_inspect_raw(&pulled)),
            want,
            "{reference}"
        );
        containerd.fetch_all(&pulled);
        assert_eq!(&containerd.image_target(&pulled), want, "{reference}");
        if let Some(config) = config {
            let (digests, id) = dockerd.pull(&pulled);
            assert_eq!(&id, config, "docker pull {reference}");
            let repo = reference.split(':').next().unwrap();
            assert!(
                digests.contains(&format!("{host}/{repo}@{want}")),
                "{reference}: {digests:?}"
            );
            containerd.pull(&pulled);
        }
    }
    // The legacy archive became a Docker schema 2 manifest with the same config and layers.
    // Tagged from the archive's RepoTags (demo/umoci:v1).
    let legacy = format!("{host}/docker/legacy:v1");
    let manifest: Value = serde_json::from_slice(&support::skopeo_inspect_raw(&legacy)).unwrap();
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(
        manifest["config"]["digest"],
        config_digest(&oci("v1")).as_str()
    );
    let (_, id) = dockerd.pull(&legacy);
    assert_eq!(id, config_digest(&oci("v1")));
    containerd.pull(&legacy);
}

#[test]
fn a_corrupt_source_changes_nothing_and_a_second_import_writes_nothing() {
    let work = TempDir::new("import-idem");
    let layout = umoci_layout(work.path());
    let dir = work.join("dir");
    skopeo_copy(
        &format!("oci:{}:v1", layout.display()),
        &format!("dir:{}", dir.display()),
        false,
    );
    let tree = work.join("tree");

    // Two tags of one image, twice: blobs are stored once, the second run writes nothing.
    let out = import(
        dir.to_str().unwrap(),
        "demo/app:1.0",
        &["--tag", "latest"],
        &tree,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let blobs: Vec<_> = fs::read_dir(tree.join("v2/demo/app/blobs"))
        .unwrap()
        .collect();
    let manifest: Value =
        serde_json::from_slice(&fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        blobs.len(),
        1 + manifest["layers"].as_array().unwrap().len()
    );
    // Same filesystem: hard links, not copies.
    use std::os::unix::fs::MetadataExt;
    let config = manifest["config"]["digest"].as_str().unwrap();
    assert_eq!(
        fs::metadata(tree.join("v2/demo/app/blobs").join(config))
            .unwrap()
            .ino(),
        fs::metadata(dir.join(config.trim_start_matches("sha256:")))
            .unwrap()
            .ino()
    );
    for tag in ["1.0", "latest"] {
        assert_eq!(
            fs::read(tree.join("v2/demo/app/manifests").join(tag)).unwrap(),
            fs::read(dir.join("manifest.json")).unwrap()
        );
    }
    let before = snapshot(&tree);
    let again = import(
        dir.to_str().unwrap(),
        "demo/app:1.0",
        &["--tag", "latest"],
        &tree,
    );
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(
        text(&again.stderr).contains("0 objects linked, 0 copied (0 bytes written)"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(snapshot(&tree), before, "a second import changed the tree");

    // A corrupt layer in the source: the import fails and the tree is as it was.
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let path = dir.join(&layer);
    let mut bytes = fs::read(&path).unwrap();
    fs::remove_file(&path).unwrap(); // not in place: the tree's hard link shares the inode
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&path, &bytes).unwrap();
    let out = import(dir.to_str().unwrap(), "demo/other:1.0", &[], &tree);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("hashes to"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(snapshot(&tree), before, "a failed import changed the tree");
    assert!(fs::read_dir(&tree).unwrap().all(|e| {
        !e.unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".registrish")
    }));

    // Names and tags are checked before anything is read.
    for (name, tag) in [("Bad/Name", "x"), ("demo/ok", "x;rm -rf")] {
        let out = import(dir.to_str().unwrap(), &format!("{name}:{tag}"), &[], &tree);
        assert_eq!(out.status.code(), Some(2), "{name}:{tag}");
    }
    assert_eq!(snapshot(&tree), before);
}

#[test]
fn progress_shows_on_a_terminal_only() {
    let work = TempDir::new("import-tty");
    let layout = umoci_layout(work.path());
    let bin = support::bin();
    let cmd = format!(
        "{} import {}:v1 --name demo/tty:1 {}",
        bin.display(),
        layout.display(),
        work.join("tty-tree").display()
    );
    // `script` gives the command a terminal.
    let out = run(Command::new("script").args(["-qec", &cmd, "/dev/null"]));
    let shown = text(&out.stdout);
    assert!(shown.contains("MiB") && shown.contains("\r["), "{shown:?}");
    let quiet = import(
        &format!("{}:v1", layout.display()),
        "demo/notty:1",
        &[],
        &work.join("plain-tree"),
    );
    assert!(quiet.status.success());
    assert!(
        !text(&quiet.stderr).contains("MiB"),
        "{}",
        text(&quiet.stderr)
    );
}
