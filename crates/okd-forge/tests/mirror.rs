//! `okd-forge release mirror` between real Distribution registries (payload-format spec §5): every
//! image and the release arrive with their digests (as skopeo sees them), a re-run moves nothing, a
//! disconnected transfer through a directory, an interrupted mirror resumed, a destination behind a
//! proxy that fails or drops 10% of requests, and the ImageDigestMirrorSet / ImageContentSourcePolicy
//! output parsed as YAML.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{s, Forge};
use serde_json::Value;
use testkit::release::{Entry, ReleaseSet};
use testkit::{skopeo_digest, Fault, FaultProxy, RegistryServer};

/// The release name of every test.
const NAME: &str = "4.17.0-okd-scos.1";
/// Where the source registry holds the components and the release.
const CONTENT: &str = "okd/content";
const RELEASE: &str = "okd/release";

/// A release in a source registry: components by digest in `okd/content`, the release in
/// `okd/release:NAME`.
struct Payload {
    src: RegistryServer,
    /// The release digest.
    digest: String,
    /// Component tag → digest.
    images: BTreeMap<String, String>,
}

impl Payload {
    /// `docker://SRC/okd/release:NAME`.
    fn from(&self) -> String {
        self.src.docker(&format!("{RELEASE}:{NAME}"))
    }
}

/// Incompressible bytes from a seed (xorshift), so layers keep their size through gzip.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The standard set (all eight tags kept), with `extra` bytes of incompressible data in a layer of
/// its own under each of the four operands (so a transfer takes a while when throttled).
fn publish(f: &Forge, extra: usize) -> Payload {
    let mut set = ReleaseSet::standard("amd64");
    if extra > 0 {
        for (i, tag) in ["cli", "hyperkube", "installer", "pod"].iter().enumerate() {
            let file = Entry::file(&format!("data/{tag}.bin"), noise(i as u64 + 7, extra));
            set = set.edit(tag, |img| {
                let mut img = img;
                img.layers.insert(0, vec![file]);
                img
            });
        }
    }
    let store = f.path("store");
    let inputs = set.write(&store);
    let src = RegistryServer::start();
    let mut mapping = String::new();
    let mut images = BTreeMap::new();
    for (tag, c) in &inputs.components {
        f.ok(&[
            "image",
            "copy",
            "-q",
            &format!("oci:{}@{}", store.display(), c.digest),
            &src.docker(&format!("{CONTENT}:{tag}")),
        ]);
        mapping.push_str(&format!("{tag}={}/{CONTENT}@{}\n", src.host(), c.digest));
        images.insert(tag.clone(), c.digest.to_string());
    }
    std::fs::write(f.path("mapping.txt"), mapping).unwrap();
    let out = f.ok(&[
        "release",
        "new",
        "-q",
        "--name",
        NAME,
        "--to",
        &src.docker(&format!("{RELEASE}:{NAME}")),
        "--mapping-file",
        &s(&f.path("mapping.txt")),
        "--store",
        &s(&store),
        "--include",
        "installer,pod",
    ]);
    let digest = out.split(' ').next().unwrap().to_string();
    Payload {
        src,
        digest,
        images,
    }
}

/// `release mirror ARGS… --output json`, expected to succeed.
fn mirror_json(f: &Forge, args: &[&str]) -> Value {
    let mut all = vec!["release", "mirror", "-q"];
    all.extend_from_slice(args);
    f.json(&all)
}

/// `release mirror --from P --to HOST/okd/mirror EXTRA… --output json`, expected to succeed.
fn mirror_to(f: &Forge, p: &Payload, host: &str, extra: &[&str]) -> Value {
    let (from, to) = (p.from(), format!("{host}/okd/mirror"));
    let mut args = vec!["--from", &from, "--to", &to];
    args.extend_from_slice(extra);
    mirror_json(f, &args)
}

/// Every component is at `repo` (a docker:// repository) under `NAME-x86_64-TAG` and by digest,
/// with its digest, as skopeo sees it.
fn assert_components(images: &BTreeMap<String, String>, repo: &str) {
    for (tag, digest) in images {
        let by_tag = format!("{repo}:{NAME}-x86_64-{tag}");
        assert_eq!(&skopeo_digest(&by_tag), digest, "{by_tag}");
        let by_digest = format!("{repo}@{digest}");
        assert_eq!(&skopeo_digest(&by_digest), digest, "{by_digest}");
    }
}

/// The blobs of a repository of a registry (not its manifests), with their sizes, from its storage.
fn repository_blobs(reg: &RegistryServer, repo: &str) -> BTreeMap<String, u64> {
    let root = reg.storage().join("docker/registry/v2");
    let links = root.join("repositories").join(repo).join("_layers/sha256");
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(&links) else {
        return out;
    };
    for e in entries {
        let hex = e.unwrap().file_name().to_string_lossy().into_owned();
        if let Ok(m) = std::fs::metadata(reg.blob_data(&format!("sha256:{hex}"))) {
            out.insert(hex, m.len());
        }
    }
    out
}

/// Every blob in a registry's storage (manifests too), with their sizes.
fn stored_blobs(reg: &RegistryServer) -> BTreeMap<String, u64> {
    let root = reg.storage().join("docker/registry/v2/blobs/sha256");
    let mut out = BTreeMap::new();
    let Ok(prefixes) = std::fs::read_dir(&root) else {
        return out;
    };
    for p in prefixes {
        for b in std::fs::read_dir(p.unwrap().path()).unwrap() {
            let b = b.unwrap().path();
            if let Ok(m) = std::fs::metadata(b.join("data")) {
                let name = b.file_name().unwrap().to_string_lossy().into_owned();
                out.insert(name, m.len());
            }
        }
    }
    out
}

/// The install-config snippet and the cluster object of a text output, parsed.
fn rules(stdout: &str, object: &str) -> (Value, Value) {
    let (_, rest) = stdout
        .split_once("add the following section to the install-config.yaml:\n\n")
        .unwrap_or_else(|| panic!("no install-config snippet in:\n{stdout}"));
    let marker = format!("use the following to create an {object}:\n\n");
    let (snippet, obj) = rest
        .split_once(&marker)
        .unwrap_or_else(|| panic!("no {object} in:\n{stdout}"));
    let snippet = snippet
        .trim_end()
        .trim_end_matches("To use the new mirrored repository for upgrades,");
    let parse = |y: &str| -> Value {
        serde_saphyr::from_str(y).unwrap_or_else(|e| panic!("not YAML ({e}):\n{y}"))
    };
    (parse(snippet), parse(obj))
}

#[test]
fn mirrors_between_registries_then_a_rerun_moves_nothing() {
    let f = Forge::new();
    let p = publish(&f, 0);
    let dst = RegistryServer::start();
    let to = format!("{}/okd/mirror", dst.host());
    let to_release = format!("{}/okd/scos-release:{NAME}", dst.host());
    let args = [
        "--from",
        &p.from(),
        "--to",
        &to,
        "--to-release-image",
        &to_release,
    ];
    let first = mirror_json(&f, &args);
    assert_eq!(first["images"], 9, "{first:#}");
    assert_eq!(first["digest"], p.digest.as_str());
    assert!(first["blobsCopied"].as_u64().unwrap() > 0, "{first:#}");
    // The release repository is on the same registry: the base layers it shares with the
    // cluster-version-operator image were mounted from okd/mirror, not uploaded again.
    assert!(first["blobsMounted"].as_u64().unwrap() > 0, "{first:#}");
    assert_components(&p.images, &dst.docker("okd/mirror"));
    assert_eq!(
        skopeo_digest(&dst.docker(&format!("okd/scos-release:{NAME}"))),
        p.digest
    );

    // Everything is there: the second run streams no byte.
    let again = mirror_json(&f, &args);
    assert_eq!(again["blobsCopied"], 0, "{again:#}");
    assert_eq!(again["bytesCopied"], 0, "{again:#}");
    assert_eq!(
        again["blobs"], first["blobs"],
        "the same blobs, all found there"
    );

    // The default release tag (REPO:<version><arch>), and the text output with its mirror rules.
    let text = f.ok(&["release", "mirror", "-q", "--from", &p.from(), "--to", &to]);
    assert!(
        text.contains(&format!(
            "\nSuccess\nUpdate image:  {to}:{NAME}-x86_64\nMirror prefix: {to}\n"
        )),
        "{text}"
    );
    assert_eq!(
        skopeo_digest(&dst.docker(&format!("okd/mirror:{NAME}-x86_64"))),
        p.digest
    );
    let (install, idms) = rules(&text, "ImageDigestMirrorSet");
    let sources = |list: &Value| -> Vec<(String, Vec<String>)> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let mirrors = r["mirrors"].as_array().unwrap();
                (
                    r["source"].as_str().unwrap().to_string(),
                    mirrors
                        .iter()
                        .map(|m| m.as_str().unwrap().to_string())
                        .collect(),
                )
            })
            .collect()
    };
    let want = vec![
        (format!("{}/{CONTENT}", p.src.host()), vec![to.clone()]),
        (format!("{}/{RELEASE}", p.src.host()), vec![to.clone()]),
    ];
    assert_eq!(sources(&install["imageDigestSources"]), want);
    assert_eq!(idms["apiVersion"], "config.openshift.io/v1");
    assert_eq!(idms["kind"], "ImageDigestMirrorSet");
    assert_eq!(idms["metadata"]["name"], "example");
    assert_eq!(sources(&idms["spec"]["imageDigestMirrors"]), want);

    let text = f.ok(&[
        "release",
        "mirror",
        "-q",
        "--icsp",
        "--from",
        &p.from(),
        "--to",
        &to,
    ]);
    let (install, icsp) = rules(&text, "ImageContentSourcePolicy");
    assert_eq!(sources(&install["imageContentSources"]), want);
    assert_eq!(icsp["apiVersion"], "operator.openshift.io/v1alpha1");
    assert_eq!(icsp["kind"], "ImageContentSourcePolicy");
    assert_eq!(sources(&icsp["spec"]["repositoryDigestMirrors"]), want);
}

#[test]
fn a_disconnected_transfer_through_a_directory() {
    let f = Forge::new();
    let p = publish(&f, 0);
    let dir = f.path("carry");
    let out = mirror_json(&f, &["--from", &p.from(), "--to-dir", &s(&dir)]);
    assert_eq!(out["images"], 9, "{out:#}");
    // skopeo 1.9 does not look up Docker-format images by tag in an OCI layout, so the layout is
    // read as files: index.json names every image by its digest, and each manifest's blobs are there
    // (verify_layout then hashes every blob).
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let tagged: BTreeMap<String, String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let name = d["annotations"]["org.opencontainers.image.ref.name"].as_str();
            (
                name.unwrap().to_string(),
                d["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let blob = |d: &str| {
        dir.join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    for (tag, digest) in &p.images {
        assert_eq!(tagged[&format!("{NAME}-x86_64-{tag}")], *digest, "{tag}");
        let m: Value = serde_json::from_slice(&std::fs::read(blob(digest)).unwrap()).unwrap();
        let layers = m["layers"].as_array().unwrap().iter();
        for b in layers.chain(std::iter::once(&m["config"])) {
            assert!(blob(b["digest"].as_str().unwrap()).is_file(), "{tag}: {b}");
        }
    }
    assert_eq!(tagged[&format!("{NAME}-x86_64")], p.digest);
    testkit::verify_layout(&dir);
    assert!(dir.join("okd-forge-mirror.json").is_file());

    // The source is gone (a disconnected network): upload from the directory alone.
    drop(p.src);
    let third = RegistryServer::start();
    let to = format!("{}/okd/mirror", third.host());
    let text = f.ok(&[
        "release",
        "mirror",
        "-q",
        "--from-dir",
        &s(&dir),
        "--to",
        &to,
    ]);
    assert_components(&p.images, &third.docker("okd/mirror"));
    assert_eq!(
        skopeo_digest(&third.docker(&format!("okd/mirror:{NAME}-x86_64"))),
        p.digest
    );
    // The rules still name the original repositories.
    let (_, idms) = rules(&text, "ImageDigestMirrorSet");
    let list = idms["spec"]["imageDigestMirrors"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{idms:#}");
    assert!(list
        .iter()
        .all(|r| r["source"].as_str().unwrap().ends_with("/okd/content")
            || r["source"].as_str().unwrap().ends_with("/okd/release")));
}

#[test]
fn an_interrupted_mirror_resumes_with_only_what_is_missing() {
    let f = Forge::new();
    let p = publish(&f, 2 << 20);
    // The full mirror once, to know what it moves.
    let baseline = RegistryServer::start();
    let all = mirror_to(&f, &p, &baseline.host(), &[]);
    let total = all["bytesCopied"].as_u64().unwrap();
    assert!(total > 7 << 20, "{all:#}");

    // Then into a registry behind a slow link, killed half-way.
    let dst = RegistryServer::start();
    let slow = FaultProxy::start(
        &dst.host(),
        vec![Fault::Throttle {
            path_contains: "/blobs/uploads/".into(),
            bytes_per_sec: 2 << 20,
        }],
    );
    let mut child = f
        .std_cmd()
        .args([
            "release",
            "mirror",
            "-q",
            "--max-per-registry",
            "2",
            "--from",
            &p.from(),
            "--to",
            &format!("{}/okd/mirror", slow.host()),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while repository_blobs(&dst, "okd/mirror")
        .values()
        .all(|&size| size < 1 << 20)
    {
        assert!(Instant::now() < deadline, "no large blob arrived");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the mirror finished too soon"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let present: u64 = repository_blobs(&dst, "okd/mirror").values().sum();
    assert!(present > 0 && present < total, "{present} of {total}");

    // Resumed directly: only the rest moves.
    let resumed = mirror_to(&f, &p, &dst.host(), &[]);
    assert_eq!(
        resumed["bytesCopied"].as_u64().unwrap(),
        total - present,
        "{resumed:#}"
    );
    assert!(resumed["blobsSkipped"].as_u64().unwrap() > 0);
    assert_components(&p.images, &dst.docker("okd/mirror"));
    assert_eq!(
        skopeo_digest(&dst.docker(&format!("okd/mirror:{NAME}-x86_64"))),
        p.digest
    );
}

/// Mirror through a proxy in front of the destination that injects `fault`; everything arrives.
fn mirror_through(fault: Fault) {
    let f = Forge::new();
    let p = publish(&f, 256 << 10);
    let dst = RegistryServer::start();
    let proxy = FaultProxy::start(&dst.host(), vec![fault]);
    let out = mirror_to(&f, &p, &proxy.host(), &["--retry-times", "10"]);
    assert!(proxy.injected() > 0, "no fault was injected");
    assert_eq!(out["images"], 9, "{out:#}");
    // Read back directly, not through the proxy.
    assert_components(&p.images, &dst.docker("okd/mirror"));
    assert_eq!(
        skopeo_digest(&dst.docker(&format!("okd/mirror:{NAME}-x86_64"))),
        p.digest
    );
    // And every blob the registry stored hashes to its name.
    for (hex, _) in stored_blobs(&dst) {
        let data = dst.blob_data(&format!("sha256:{hex}"));
        assert_eq!(testkit::images::file_digest(&data), format!("sha256:{hex}"));
    }
}

#[test]
fn a_destination_answering_503_to_10_percent_of_requests() {
    mirror_through(Fault::Fraction {
        percent: 10,
        status: Some(503),
        seed: 1,
    });
}

#[test]
fn a_destination_dropping_10_percent_of_connections() {
    mirror_through(Fault::Fraction {
        percent: 10,
        status: None,
        seed: 2,
    });
}
