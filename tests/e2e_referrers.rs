//! Issue 15's proof with real signatures. cosign (v2.6.5, built from the module proxy by
//! `scripts/test`) makes a key pair offline, signs and attests an image of the fixture held in
//! the reference registry, with no transparency log, and attaches an SBOM to it (the `.sbom`
//! tag); oras attaches an OCI 1.1 artifact to it. The image and everything attached to it is
//! saved as OCI layouts the way each tool writes them: `cosign save` (no ref names, `kind`
//! annotations), `oras copy -r` (the artifact listed untagged in index.json) and regctl
//! `image copy --referrers --digest-tags` (the fallback tag `sha256-<hex>`, the artifact a bare
//! blob, cosign's tags by name). They are imported into one tree, which each host serves
//! (nginx, Apache `.htaccess` and vhost, Caddy, S3 behind a front, the Pages worker under
//! wrangler; one function checks each): there `cosign verify` and `cosign verify-attestation`
//! pass and name the image's digest, and `oras discover` and `regctl artifact list` list the
//! artifact. The same image imported without what is attached to it fails both verifications
//! and lists no referrer: the passes come from what `import` kept and the host served.
//!
//! cosign runs with its proxy pointed at a closed local port (and `NO_PROXY` for 127.0.0.1):
//! anything it tried to fetch from outside (Rekor, the Sigstore TUF root) fails, so every pass
//! here is offline. `verify` looks for the TUF root and carries on without it when it cannot
//! reach it (a warning): with `--key` and `--insecure-ignore-tlog` nothing else is needed.

use crate::e2e_s3;
use crate::support::fixture::{self, Fixture};
use crate::support::hosts::ReferenceRegistry;
use crate::support::matrix::isolated;
use crate::support::process;
use crate::support::s3::{Moto, run_script};
use crate::support::servers::{Apache, ApacheSite, Caddy};
use crate::support::tools::go_bin;
use crate::support::{Nginx, TempDir, Wrangler, free_port, run_bin_ok};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

/// The predicate type `--type slsaprovenance` stands for (cosign
/// `cmd/cosign/cli/options/predicate.go`: SLSA provenance v0.2).
const SLSA_PROVENANCE: &str = "https://slsa.dev/provenance/v0.2";
const ARTIFACT_TYPE: &str = "application/vnd.registrish.test.sbom.v1+json";
const SPDX: &str = r#"{"spdxVersion":"SPDX-2.3","name":"registrish-test"}"#;

/// Everything one signing run made: the tree it was imported into and what the hosts must
/// show of it.
struct Signed {
    work: TempDir,
    tree: PathBuf,
    /// The fixture's image (demo/oci:1.0): what was signed, attested and attached to.
    image: String,
    /// `oras attach`'s descriptor of the artifact.
    artifact: Value,
}

impl Signed {
    fn public_key(&self) -> PathBuf {
        self.work.join("keys/cosign.pub")
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A Go client with its HOME in `work/home`; cosign also with every outside address closed.
fn client(work: &TempDir, name: &str) -> Command {
    let mut cmd = isolated(&go_bin(name), &work.join("home"));
    if name == "cosign" {
        let closed = format!("http://127.0.0.1:{}", free_port());
        cmd.env("HTTPS_PROXY", &closed)
            .env("HTTP_PROXY", &closed)
            .env("NO_PROXY", "127.0.0.1,localhost")
            // The key pair has an empty password (made with COSIGN_PASSWORD empty).
            .env("COSIGN_PASSWORD", "");
    }
    cmd
}

fn run(work: &TempDir, name: &str, args: &[&str]) -> Output {
    process::run(client(work, name).args(args).current_dir(work.path()))
}

/// `demo/oci:1.0` of the fixture as an OCI image layout (the builder's tree, laid out by
/// hand): what is pushed into the reference registry.
fn fixture_layout(f: &Fixture, out: &Path) -> String {
    let (_, _, digest, media_type, size) = f
        .tags()
        .into_iter()
        .find(|(name, tag, ..)| name == "demo/oci" && tag == "1.0")
        .expect("the fixture has demo/oci:1.0");
    let blobs = out.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let repo = f.tree().join("v2/demo/oci");
    for entry in fs::read_dir(repo.join("blobs")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().replace("sha256:", "");
        fs::copy(entry.path(), blobs.join(name)).unwrap();
    }
    fs::copy(
        repo.join("manifests/1.0"),
        blobs.join(digest.trim_start_matches("sha256:")),
    )
    .unwrap();
    fs::write(out.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = json!({"schemaVersion": 2, "manifests": [{"mediaType": media_type,
        "digest": digest, "size": size,
        "annotations": {"org.opencontainers.image.ref.name": "1.0"}}]});
    fs::write(out.join("index.json"), index.to_string()).unwrap();
    digest
}

fn tags_of(tree: &Path, name: &str) -> BTreeSet<String> {
    let list: Value =
        serde_json::from_slice(&fs::read(tree.join("v2").join(name).join("tags/list")).unwrap())
            .unwrap();
    list["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}

/// Signs, attests and attaches in the reference registry, saves the layouts, imports them:
/// `demo/signed` (cosign save + oras copy -r), `demo/regctl` (regctl's layout), `demo/bare`
/// (the image alone).
fn sign_and_import() -> Signed {
    let f = fixture::build("basic", &[]);
    let work = TempDir::new("referrers");
    let image = fixture_layout(&f, &work.join("fixture"));
    let registry = ReferenceRegistry::start();
    let repo = format!("127.0.0.1:{}/demo/signed", registry.port());
    let subject = format!("{repo}@{image}");
    run(
        &work,
        "oras",
        &[
            "copy",
            "--from-oci-layout",
            "fixture:1.0",
            "--to-plain-http",
            &format!("{repo}:v1"),
        ],
    );

    fs::create_dir_all(work.join("keys")).unwrap();
    process::run(
        client(&work, "cosign")
            .arg("generate-key-pair")
            .current_dir(work.join("keys")),
    );
    run(
        &work,
        "cosign",
        &[
            "sign",
            "--key",
            "keys/cosign.key",
            "--tlog-upload=false",
            "--yes",
            &subject,
        ],
    );
    fs::write(
        work.join("predicate.json"),
        r#"{"builder":{"id":"registrish-test"},"buildType":"registrish-test"}"#,
    )
    .unwrap();
    run(
        &work,
        "cosign",
        &[
            "attest",
            "--key",
            "keys/cosign.key",
            "--tlog-upload=false",
            "--yes",
            "--type",
            "slsaprovenance",
            "--predicate",
            "predicate.json",
            &subject,
        ],
    );
    // cosign's third legacy tag, `.sbom` (deprecated by cosign, still read): an unsigned
    // attachment. `cosign save` leaves attachments out (cosign `pkg/oci/layout/write.go`), so
    // only regctl's layout carries it.
    fs::write(work.join("spdx.json"), SPDX).unwrap();
    run(
        &work,
        "cosign",
        &[
            "attach",
            "sbom",
            "--sbom",
            "spdx.json",
            "--type",
            "spdx",
            &subject,
        ],
    );
    fs::write(work.join("sbom.json"), r#"{"packages":[]}"#).unwrap();
    let attached = run(
        &work,
        "oras",
        &[
            "attach",
            "--plain-http",
            "--artifact-type",
            ARTIFACT_TYPE,
            "--format",
            "json",
            &subject,
            "sbom.json:application/json",
        ],
    );
    let artifact: Value = serde_json::from_slice(&attached.stdout).unwrap();
    assert_eq!(artifact["artifactType"], ARTIFACT_TYPE, "{artifact}");

    // The layouts, each as its tool writes it.
    run(&work, "cosign", &["save", "--dir", "cosign-save", &subject]);
    let plain = ["--from-plain-http"];
    run(
        &work,
        "oras",
        &[
            &["copy", "-r"],
            &plain[..],
            &[&subject, "--to-oci-layout", "oras:v1"],
        ]
        .concat(),
    );
    run(
        &work,
        "oras",
        &[
            &["copy"],
            &plain[..],
            &[&subject, "--to-oci-layout", "bare:v1"],
        ]
        .concat(),
    );
    run(
        &work,
        "regctl",
        &[
            "--host",
            &format!("reg=127.0.0.1:{},tls=disabled", registry.port()),
            "image",
            "copy",
            "--referrers",
            "--digest-tags",
            &format!("{repo}:v1"),
            "ocidir://regctl:v1",
        ],
    );
    drop(registry);

    let tree = work.join("tree");
    let import = |source: &str, name: &str| {
        run_bin_ok(
            [
                "import",
                &work.join(source).to_string_lossy(),
                "--name",
                name,
                tree.to_str().unwrap(),
            ],
            work.path(),
        )
    };
    import("cosign-save", "demo/signed:v1");
    import("oras:v1", "demo/signed");
    import("regctl:v1", "demo/regctl");
    import("bare:v1", "demo/bare");

    // What the tree holds: cosign's tags by name, and prepare's fallback tag, the same bytes
    // as the referrers index, listing the artifact and nothing else.
    let hex = image.trim_start_matches("sha256:");
    let mut want: BTreeSet<String> = [
        "v1".to_string(),
        format!("sha256-{hex}"),
        format!("sha256-{hex}.sig"),
        format!("sha256-{hex}.att"),
    ]
    .into();
    assert_eq!(tags_of(&tree, "demo/signed"), want);
    want.insert(format!("sha256-{hex}.sbom"));
    assert_eq!(tags_of(&tree, "demo/regctl"), want);
    for name in ["demo/signed", "demo/regctl"] {
        let repo = tree.join("v2").join(name);
        let index = fs::read(repo.join("referrers").join(&image)).unwrap();
        assert_eq!(
            fs::read(repo.join("manifests").join(format!("sha256-{hex}"))).unwrap(),
            index,
            "{name}"
        );
        let index: Value = serde_json::from_slice(&index).unwrap();
        let listed: Vec<&Value> = index["manifests"].as_array().unwrap().iter().collect();
        assert_eq!(listed.len(), 1, "{name}: {index}");
        assert_eq!(listed[0]["digest"], artifact["digest"], "{name}");
        assert_eq!(listed[0]["artifactType"], ARTIFACT_TYPE, "{name}");
    }
    assert_eq!(tags_of(&tree, "demo/bare"), ["v1".to_string()].into());
    let check = crate::support::run_bin(["check", tree.to_str().unwrap()], work.path());
    assert!(
        check.status.success(),
        "{}{}",
        stdout(&check),
        String::from_utf8_lossy(&check.stderr)
    );
    Signed {
        work,
        tree,
        image,
        artifact,
    }
}

/// `base64 -d` of a payload (coreutils; the product has no decoder to borrow).
fn base64_decode(work: &TempDir, text: &str) -> Vec<u8> {
    let file = work.join("payload.b64");
    fs::write(&file, text).unwrap();
    process::run(Command::new("base64").arg("-d").arg(&file)).stdout
}

/// What `host` on `port` must show: for `demo/signed` and `demo/regctl`, the signature and the
/// attestation verify with the key and name the image; oras and regctl list the artifact;
/// `cosign download sbom` gets the attached SBOM from `demo/regctl`. For `demo/bare`, both
/// verifications fail and nothing is listed.
fn assert_served(host: &str, port: u16, s: &Signed) {
    let started = Instant::now();
    let w = &s.work;
    let key = s.public_key();
    let key = key.to_str().unwrap();
    let hex = s.image.trim_start_matches("sha256:");
    for name in ["demo/signed", "demo/regctl"] {
        let subject = format!("127.0.0.1:{port}/{name}@{}", s.image);
        let at = format!("{host}: {subject}");
        let verified = run(
            w,
            "cosign",
            &[
                "verify",
                "--key",
                key,
                "--insecure-ignore-tlog=true",
                &subject,
            ],
        );
        let claims: Value = serde_json::from_slice(&verified.stdout)
            .unwrap_or_else(|e| panic!("{at}: cosign verify printed no JSON ({e})"));
        let claims = claims.as_array().unwrap();
        assert_eq!(claims.len(), 1, "{at}: {claims:?}");
        assert_eq!(
            claims[0]["critical"]["image"]["docker-manifest-digest"], s.image,
            "{at}"
        );
        assert_eq!(
            claims[0]["critical"]["type"], "cosign container image signature",
            "{at}"
        );

        let attested = run(
            w,
            "cosign",
            &[
                "verify-attestation",
                "--key",
                key,
                "--insecure-ignore-tlog=true",
                "--type",
                "slsaprovenance",
                &subject,
            ],
        );
        let envelopes: Vec<Value> = stdout(&attested)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(envelopes.len(), 1, "{at}: {envelopes:?}");
        assert_eq!(envelopes[0]["payloadType"], "application/vnd.in-toto+json");
        let statement: Value =
            serde_json::from_slice(&base64_decode(w, envelopes[0]["payload"].as_str().unwrap()))
                .unwrap();
        assert_eq!(statement["predicateType"], SLSA_PROVENANCE, "{at}");
        assert_eq!(statement["subject"][0]["digest"]["sha256"], hex, "{at}");
        assert_eq!(
            statement["predicate"]["builder"]["id"], "registrish-test",
            "{at}"
        );

        let discovered: Value = serde_json::from_slice(
            &run(
                w,
                "oras",
                &["discover", "--plain-http", "--format", "json", &subject],
            )
            .stdout,
        )
        .unwrap();
        let referrers = discovered["referrers"].as_array().unwrap();
        assert_eq!(referrers.len(), 1, "{at}: {discovered}");
        for field in ["digest", "size", "artifactType", "mediaType"] {
            assert_eq!(referrers[0][field], s.artifact[field], "{at}: {field}");
        }

        let listed: Value = serde_json::from_slice(
            &run(
                w,
                "regctl",
                &[
                    "--host",
                    &format!("reg=127.0.0.1:{port},tls=disabled"),
                    "artifact",
                    "list",
                    "--format",
                    "{{json .}}",
                    &subject,
                ],
            )
            .stdout,
        )
        .unwrap();
        let descriptors = listed["descriptors"].as_array().unwrap();
        assert_eq!(descriptors.len(), 1, "{at}: {listed}");
        assert_eq!(descriptors[0]["digest"], s.artifact["digest"], "{at}");
        assert_eq!(descriptors[0]["artifactType"], ARTIFACT_TYPE, "{at}");
    }
    let subject = format!("127.0.0.1:{port}/demo/regctl@{}", s.image);
    let sbom = run(w, "cosign", &["download", "sbom", &subject]);
    assert_eq!(stdout(&sbom).trim_end(), SPDX, "{host}: {subject}");

    // The same image without what was attached to it: nothing verifies, nothing is listed
    // (the messages are cosign's, `pkg/cosign/verify.go`).
    let bare = format!("127.0.0.1:{port}/demo/bare@{}", s.image);
    for (args, says) in [
        (vec!["verify"], "no signatures found"),
        (
            vec!["verify-attestation", "--type", "slsaprovenance"],
            "no matching attestations",
        ),
    ] {
        let mut cmd = client(w, "cosign");
        cmd.args(&args)
            .args(["--key", key, "--insecure-ignore-tlog=true", &bare])
            .current_dir(w.path());
        let out = process::output(&mut cmd);
        assert!(
            !out.status.success() && String::from_utf8_lossy(&out.stderr).contains(says),
            "{host}: cosign {args:?} of the unsigned image\n{}",
            process::report(&cmd, &out)
        );
    }
    let discovered: Value = serde_json::from_slice(
        &run(
            w,
            "oras",
            &["discover", "--plain-http", "--format", "json", &bare],
        )
        .stdout,
    )
    .unwrap();
    assert_eq!(discovered["referrers"], json!([]), "{host}: {discovered}");
    eprintln!("{host}: verified in {:?}", started.elapsed());
}

#[test]
fn cosign_signatures_attestations_and_oras_artifacts_verify_against_every_host() {
    let started = Instant::now();
    let s = sign_and_import();
    eprintln!("signed, saved and imported in {:?}", started.elapsed());
    let tree = s.tree.to_str().unwrap();
    let dir = s.work.path();

    // S3: moto, and the nginx front e2e_s3 puts before a bucket. The upload (one AWS CLI call
    // per object) is the slowest step of all: it runs while the other hosts are checked. The
    // script is written first, before the other hosts' files land in TREE.
    let moto = Moto::start();
    moto.create_public_bucket(e2e_s3::BUCKET);
    let script = s.work.join("upload.sh");
    let endpoint = moto.endpoint();
    run_bin_ok(
        [
            "s3",
            tree,
            "--bucket",
            e2e_s3::BUCKET,
            "--endpoint",
            &endpoint,
            "-o",
            script.to_str().unwrap(),
        ],
        dir,
    );
    std::thread::scope(|scope| {
        let upload = scope.spawn(|| run_script(&script, &moto));
        let port = free_port();
        let conf = s.work.join("nginx.conf");
        let listen = format!("127.0.0.1:{port}");
        run_bin_ok(
            [
                "nginx",
                tree,
                "--listen",
                &listen,
                "-o",
                conf.to_str().unwrap(),
            ],
            dir,
        );
        let nginx = Nginx::start(&conf, port);
        assert_served("nginx", nginx.port(), &s);
        drop(nginx);

        let htaccess = s.tree.join(".htaccess");
        run_bin_ok(["apache", tree, "-o", htaccess.to_str().unwrap()], dir);
        let apache = Apache::start(ApacheSite::Htaccess { tree: &s.tree }, free_port());
        assert_served("Apache .htaccess", apache.port(), &s);
        drop(apache);

        let port = free_port();
        let vhost = s.work.join("vhost.conf");
        let listen = format!("127.0.0.1:{port}");
        run_bin_ok(
            [
                "apache",
                tree,
                "--vhost",
                "--listen",
                &listen,
                "-o",
                vhost.to_str().unwrap(),
            ],
            dir,
        );
        let apache = Apache::start(ApacheSite::Vhost { conf: &vhost }, port);
        assert_served("Apache vhost", apache.port(), &s);
        drop(apache);

        let port = free_port();
        let site = s.work.join("registry.caddy");
        let listen = format!("127.0.0.1:{port}");
        run_bin_ok(
            [
                "caddy",
                tree,
                "--listen",
                &listen,
                "-o",
                site.to_str().unwrap(),
            ],
            dir,
        );
        let caddy = Caddy::start(&site, port);
        assert_served("Caddy", caddy.port(), &s);
        drop(caddy);

        run_bin_ok(["cloudflare", tree], dir);
        let pages = Wrangler::start(&s.tree, free_port());
        assert_served("Pages (wrangler + worker)", pages.port(), &s);
        drop(pages);

        upload.join().expect("the upload script ran");
        let front = e2e_s3::proxy(dir, &moto, &format!("/{}", e2e_s3::BUCKET));
        assert_served("S3 (moto behind nginx)", front.port(), &s);
    });
    eprintln!("done in {:?}", started.elapsed());
}
