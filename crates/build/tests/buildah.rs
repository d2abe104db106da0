//! The buildah builder against real buildah and runc: Containerfile builds on a busybox-static base
//! image kept in an OCI layout (no network), with substituted FROMs, build arguments, labels,
//! multi-stage COPY, reproducible digests, concurrent builds in one storage, a base pulled from a
//! real Distribution registry, and a failing RUN.
//!
//! Needs root, buildah, runc, busybox-static, umoci and docker-registry (scripts/test.sh installs
//! them); a missing one fails the test. Each test has its own buildah storage in a temp dir,
//! emptied (`rm --all`, `rmi --all`) when the test ends.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use build::buildah::{
    from_images, rewrite_from, BuildRequest, Buildah, BuildahError, ContainerfileSource, FromRules,
    OUT_TAG,
};
use oci::manifest::{host_arch, Parsed};
use oci::{Layout, Selector};
use testkit::release::{busybox_userland, Entry, ImageBuilder};
use testkit::{require, run_ok, RegistryServer};

const OCP_BASE: &str = "registry.ci.openshift.org/ocp/4.17:base-rhel9";
const OCP_BUILDER: &str = "registry.ci.openshift.org/ocp/builder:rhel-9-golang-1.22-openshift-4.17";
const SCOS_BASE: &str = "quay.io/okd/scos-base:4.17";
const BUILDER: &str = "quay.io/okd/builder:go1.22";

/// The busybox applets the base links in `/bin`.
const APPLETS: &[&str] = &["sh", "cat", "echo", "ls", "mkdir", "cp", "true", "false"];

/// A busybox-static userland: `/bin/busybox`, its applet links, and a `base` label.
fn busybox_base() -> ImageBuilder {
    let layer = busybox_userland(APPLETS);
    ImageBuilder::new(host_arch())
        .oci()
        .layer(layer)
        .layer(vec![
            Entry::dir("etc/"),
            Entry::file("etc/os-release", "NAME=busybox\n"),
        ])
        .label("base", "busybox")
}

/// A temp dir with an OCI layout `store` holding the busybox base (tag `base`), and okd-forge's
/// buildah storage in `buildah/`, emptied when dropped.
struct Fixture {
    dir: tempfile::TempDir,
    store: Layout,
    base: oci::RawManifest,
    buildah: Buildah,
}

impl Fixture {
    fn new() -> Fixture {
        require("buildah");
        require("runc");
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Layout::create(dir.path().join("store")).expect("store");
        let base = busybox_base().write(&store, Some("base"));
        let buildah = Buildah::new(dir.path().join("buildah"));
        buildah.check().unwrap_or_else(|e| panic!("{e}"));
        Fixture {
            dir,
            store,
            base,
            buildah,
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// `oci:STORE:base`.
    fn base_by_tag(&self) -> String {
        format!("oci:{}:base", self.store.path().display())
    }

    /// `oci:STORE@sha256:…` of the base.
    fn base_by_digest(&self) -> String {
        format!("oci:{}@{}", self.store.path().display(), self.base.digest)
    }

    /// A context directory with these files.
    fn context(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = self.path(name);
        for (f, text) in files {
            let p = dir.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// `buildah images` (names), in okd-forge's storage.
    fn image_names(&self) -> String {
        run_ok(
            self.buildah
                .command()
                .args(["images", "--all", "--noheading"]),
        )
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.buildah.command().args(["rm", "--all"]).output();
        let _ = self
            .buildah
            .command()
            .args(["rmi", "--all", "--force"])
            .output();
    }
}

/// What the tests read back from an output layout.
struct Built {
    digest: String,
    labels: BTreeMap<String, String>,
    /// The uncompressed digests of the layers (buildah recompresses base layers when it pushes).
    diff_ids: Vec<String>,
    rootfs: PathBuf,
}

/// Opens `layout`, checks it with umoci and our reader, and unpacks its `image` tag with umoci.
fn read_built(layout: &Path, digest: &str, unpack_to: &Path) -> Built {
    testkit::verify_layout(layout);
    let l = Layout::open(layout).expect("output layout");
    let m = l
        .get_manifest(Some(&Selector::Tag(OUT_TAG.into())))
        .expect("the image tag");
    assert_eq!(
        m.digest.to_string(),
        digest,
        "returned digest is the tagged manifest"
    );
    let Parsed::Image { config, .. } = m.parse().expect("manifest") else {
        panic!("not an image manifest")
    };
    let config: serde_json::Value =
        serde_json::from_slice(&l.read_blob_bytes(&config.digest).expect("config")).unwrap();
    let labels = config["config"]["Labels"]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    testkit::umoci(&[
        "unpack",
        "--image",
        &format!("{}:{OUT_TAG}", layout.display()),
        &unpack_to.display().to_string(),
    ]);
    Built {
        digest: digest.to_string(),
        labels,
        diff_ids: diff_ids(&config),
        rootfs: unpack_to.join("rootfs"),
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn diff_ids(config: &serde_json::Value) -> Vec<String> {
    config["rootfs"]["diff_ids"]
        .as_array()
        .expect("rootfs.diff_ids")
        .iter()
        .map(|d| d.as_str().expect("a diff_id").to_string())
        .collect()
}

/// The diff_ids of the base image.
fn base_layers(f: &Fixture) -> Vec<String> {
    let Parsed::Image { config, .. } = f.base.parse().unwrap() else {
        panic!("base is an image")
    };
    diff_ids(&serde_json::from_slice(&f.store.read_blob_bytes(&config.digest).unwrap()).unwrap())
}

fn strings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const CONTAINERFILE: &str = "\
# An OCP-style Containerfile: an OCP builder stage and an OCP base.
FROM registry.ci.openshift.org/ocp/builder:rhel-9-golang-1.22-openshift-4.17 AS builder
ARG TAGS
RUN echo \"built with TAGS=$TAGS\" > /artifact

FROM registry.ci.openshift.org/ocp/4.17:base-rhel9
ARG TAGS=ocp
COPY --from=builder /artifact /usr/share/artifact
COPY hello.txt /hello.txt
RUN echo hi > /hello && \\
    echo \"$TAGS\" > /tags && busybox ls / > /listing
LABEL io.k8s.display-name=\"test image\"
";

#[test]
fn builds_with_substituted_froms_build_args_and_labels_reproducibly() {
    let f = Fixture::new();
    let context = f.context(
        "src",
        &[
            ("images/Containerfile", CONTAINERFILE),
            ("hello.txt", "hello from the context\n"),
        ],
    );
    let base_images = strings(&[(OCP_BASE, SCOS_BASE)]);
    let inputs = BTreeMap::from([(
        BUILDER.to_string(),
        vec![OCP_BUILDER.to_string(), "builder".to_string()],
    )]);
    let rules = FromRules {
        base_images: &base_images,
        inputs: &inputs,
        last_stage: None,
    };
    // The caller's side: rewrite, list the images, resolve them.
    let (rewritten, subs) = rewrite_from(CONTAINERFILE, &rules).unwrap();
    assert_eq!(
        subs,
        [
            (OCP_BUILDER.to_string(), BUILDER.to_string()),
            (OCP_BASE.to_string(), SCOS_BASE.to_string())
        ]
    );
    assert_eq!(from_images(&rewritten), [BUILDER, SCOS_BASE]);
    let resolved = strings(&[
        (BUILDER, &f.base_by_digest()),
        (SCOS_BASE, &f.base_by_tag()),
    ]);
    let build_args = strings(&[("TAGS", "scos")]);
    let labels = strings(&[
        (
            "io.openshift.build.commit.id",
            "0123456789abcdef0123456789abcdef01234567",
        ),
        ("io.openshift.build.commit.ref", "release-4.17"),
        (
            "io.openshift.build.source-location",
            "https://github.com/openshift/example",
        ),
        ("io.openshift.build.versions", "example=4.17.0"),
    ]);
    let log = f.path("logs/example.log");
    let build = |out: &Path| {
        f.buildah.build(&BuildRequest {
            context: &context,
            containerfile: ContainerfileSource::Path(Path::new("images/Containerfile")),
            rules,
            resolved: &resolved,
            build_args: &build_args,
            labels: &labels,
            timestamp: Some(1_700_000_000),
            insecure_registries: false,
            log: &log,
            out_layout: out,
        })
    };

    let out = f.path("out1");
    let digest = build(&out).unwrap_or_else(|e| panic!("{e}"));
    let built = read_built(&out, &digest, &f.path("unpacked1"));

    // Labels: the stamps, the Containerfile's own, the base's; not buildah's identity label.
    for (k, v) in &labels {
        assert_eq!(
            built.labels.get(k),
            Some(v),
            "label {k} in {:?}",
            built.labels
        );
    }
    assert_eq!(built.labels["io.k8s.display-name"], "test image");
    assert_eq!(built.labels["base"], "busybox");
    assert!(
        !built.labels.contains_key("io.buildah.version"),
        "{:?}",
        built.labels
    );
    // The base layers are reused as they are, with the build's layers on top.
    let base = base_layers(&f);
    assert_eq!(built.diff_ids[..base.len()], base[..]);
    assert!(built.diff_ids.len() > base.len());
    // What the steps did, with the build argument.
    let rootfs = &built.rootfs;
    assert_eq!(read(&rootfs.join("hello")), "hi\n");
    assert_eq!(read(&rootfs.join("tags")), "scos\n");
    assert_eq!(
        read(&rootfs.join("usr/share/artifact")),
        "built with TAGS=scos\n"
    );
    assert_eq!(read(&rootfs.join("hello.txt")), "hello from the context\n");
    assert_eq!(read(&rootfs.join("etc/os-release")), "NAME=busybox\n");
    assert!(read(&rootfs.join("listing")).lines().any(|l| l == "bin"));

    // The log has the substitutions, the Containerfile as built and buildah's steps.
    let text = read(&log);
    assert!(
        text.contains(&format!("FROM substitution: {OCP_BASE} -> {SCOS_BASE}")),
        "{text}"
    );
    assert!(text.contains("FROM localhost/okd-forge/input:"), "{text}");
    assert!(text.contains("RUN echo hi > /hello"), "{text}");
    assert!(text.contains(&format!("built {digest}")), "{text}");

    // The built image is gone from buildah's storage; the inputs stay, named by id.
    let names = f.image_names();
    assert!(!names.contains("okd-forge/build"), "{names}");
    assert!(names.contains("localhost/okd-forge/input"), "{names}");

    // The same inputs with the same timestamp give the same image.
    let out2 = f.path("out2");
    let again = build(&out2).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        again, built.digest,
        "a rebuild with the same timestamp is reproducible"
    );
}

#[test]
fn from_replaces_the_last_stage_and_the_vfs_driver_builds_the_same_image() {
    let f = Fixture::new();
    let context = f.context("ctx", &[]);
    let text = "FROM registry.example.com/unused:latest AS final\nRUN echo $0 > /shell\n";
    let none = BTreeMap::new();
    let inputs = BTreeMap::new();
    let rules = FromRules {
        base_images: &none,
        inputs: &inputs,
        last_stage: Some("stream/base"),
    };
    let (rewritten, _) = rewrite_from(text, &rules).unwrap();
    assert_eq!(from_images(&rewritten), ["stream/base"]);
    let resolved = strings(&[("stream/base", &f.base_by_tag())]);
    let build = |buildah: &Buildah, out: &Path| {
        buildah
            .build(&BuildRequest {
                context: &context,
                containerfile: ContainerfileSource::Text(text),
                rules,
                resolved: &resolved,
                build_args: &none,
                labels: &none,
                timestamp: Some(86_400),
                insecure_registries: false,
                log: &f.path("literal.log"),
                out_layout: out,
            })
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let out = f.path("out");
    let digest = build(&f.buildah, &out);
    let built = read_built(&out, &digest, &f.path("unpacked"));
    assert_eq!(read(&built.rootfs.join("shell")), "/bin/sh\n");

    // vfs (no mounts) gives the same image; its storage goes with the temp dir.
    let vfs = Buildah::new(f.path("vfs")).with_storage_driver("vfs");
    vfs.check().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(build(&vfs, &f.path("out-vfs")), digest);
    assert!(read(&f.path("vfs/storage.conf")).contains("driver = \"vfs\""));
    assert!(f.path("vfs/storage/vfs").is_dir());
}

#[test]
fn concurrent_builds_share_one_storage_and_bases_come_from_a_registry_too() {
    let f = Fixture::new();
    let registry = RegistryServer::start();
    let pushed = registry.docker("okd/base:4.17");
    // As a Docker schema 2 image: another manifest digest than the base in the store, so that
    // buildah really pulls it from the registry.
    testkit::skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--format",
        "v2s2",
        &f.base_by_tag(),
        &pushed,
    ]);
    let digest = testkit::skopeo_digest(&pushed);
    assert_ne!(digest, f.base.digest.to_string());
    let by_digest = registry.docker(&format!("okd/base@{digest}"));

    let none = BTreeMap::new();
    let inputs = BTreeMap::new();
    let rules = FromRules {
        base_images: &none,
        inputs: &inputs,
        last_stage: None,
    };
    let refs = [f.base_by_tag(), by_digest, f.base_by_digest()];
    let results: Vec<(usize, Result<String, BuildahError>)> = std::thread::scope(|s| {
        let handles: Vec<_> = refs
            .iter()
            .enumerate()
            .map(|(n, reference)| {
                let f = &f;
                s.spawn(move || {
                    let text = format!("FROM base\nRUN echo {n} > /n && busybox sleep 1\n");
                    let context = f.context(&format!("ctx{n}"), &[]);
                    let resolved = strings(&[("base", reference)]);
                    let args = BTreeMap::new();
                    let r = f.buildah.build(&BuildRequest {
                        context: &context,
                        containerfile: ContainerfileSource::Text(&text),
                        rules,
                        resolved: &resolved,
                        build_args: &args,
                        labels: &args,
                        timestamp: Some(0),
                        insecure_registries: true,
                        log: &f.path(&format!("log{n}")),
                        out_layout: &f.path(&format!("out{n}")),
                    });
                    (n, r)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut digests = Vec::new();
    for (n, r) in results {
        let digest = r.unwrap_or_else(|e| panic!("build {n}: {e}"));
        let built = read_built(
            &f.path(&format!("out{n}")),
            &digest,
            &f.path(&format!("unpacked{n}")),
        );
        assert_eq!(read(&built.rootfs.join("n")), format!("{n}\n"));
        assert_eq!(built.diff_ids[..2], base_layers(&f)[..]);
        digests.push(digest);
    }
    let distinct: std::collections::BTreeSet<_> = digests.iter().collect();
    assert_eq!(distinct.len(), 3, "different builds, different images");
    let names = f.image_names();
    assert!(!names.contains("okd-forge/build"), "{names}");
}

#[test]
fn a_failing_run_names_the_step_and_the_log() {
    let f = Fixture::new();
    let context = f.context("ctx", &[]);
    let none = BTreeMap::new();
    let inputs = BTreeMap::new();
    let resolved = strings(&[("base", &f.base_by_tag())]);
    let log = f.path("failing.log");
    let err = f
        .buildah
        .build(&BuildRequest {
            context: &context,
            containerfile: ContainerfileSource::Text(
                "FROM base\nRUN echo fine\nRUN echo about to fail && exit 7\nRUN echo never\n",
            ),
            rules: FromRules {
                base_images: &none,
                inputs: &inputs,
                last_stage: None,
            },
            resolved: &resolved,
            build_args: &none,
            labels: &none,
            timestamp: None,
            insecure_registries: false,
            log: &log,
            out_layout: &f.path("out"),
        })
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, BuildahError::Failed { .. }), "{msg}");
    assert!(msg.contains("the inline Containerfile"), "{msg}");
    assert!(
        msg.contains("STEP 3/4: RUN echo about to fail && exit 7"),
        "{msg}"
    );
    assert!(msg.contains("exit status: 7"), "{msg}");
    assert!(msg.contains(&log.display().to_string()), "{msg}");
    let text = read(&log);
    assert!(text.contains("about to fail"), "{text}");
    assert!(!text.lines().any(|l| l == "never"), "{text}");
    assert!(!f.path("out").join("index.json").exists());
    // Nothing is left behind: no container, no half-built image.
    let containers = run_ok(f.buildah.command().args(["containers", "--all", "--quiet"]));
    assert_eq!(containers.trim(), "", "containers left behind");
    assert!(!f.image_names().contains("okd-forge/build"));
}

#[test]
fn unresolved_images_and_bad_references_fail_before_building() {
    let f = Fixture::new();
    let context = f.context(
        "ctx",
        &[(
            "Containerfile",
            "FROM a AS x\nCOPY --from=b /x /x\nFROM x\n",
        )],
    );
    let none = BTreeMap::new();
    let inputs = BTreeMap::new();
    let build = |resolved: &BTreeMap<String, String>| {
        f.buildah
            .build(&BuildRequest {
                context: &context,
                containerfile: ContainerfileSource::Path(Path::new("Containerfile")),
                rules: FromRules {
                    base_images: &none,
                    inputs: &inputs,
                    last_stage: None,
                },
                resolved,
                build_args: &none,
                labels: &none,
                timestamp: None,
                insecure_registries: false,
                log: &f.path("log"),
                out_layout: &f.path("out"),
            })
            .unwrap_err()
            .to_string()
    };
    let msg = build(&strings(&[("a", &f.base_by_tag())]));
    assert!(
        msg.starts_with(&format!(
            "{}: no reference was resolved for 'b'",
            context.join("Containerfile").display()
        )),
        "{msg}"
    );
    let missing = format!("oci:{}@sha256:{}", f.store.path().display(), "0".repeat(64));
    let msg = build(&strings(&[("a", &f.base_by_tag()), ("b", &missing)]));
    assert!(
        msg.contains(&format!(
            "resolved reference '{missing}' for 'b': cannot read"
        )),
        "{msg}"
    );
    let msg = build(&strings(&[
        ("a", &f.base_by_tag()),
        ("b", &format!("oci:{}:nosuchtag", f.store.path().display())),
    ]));
    assert!(msg.ends_with("has no image tagged 'nosuchtag'"), "{msg}");
    // A registry that is not there: buildah pull fails, and the error points at the log.
    let port = testkit::free_port();
    let nowhere = format!("docker://127.0.0.1:{port}/okd/base:4.17");
    let msg = build(&strings(&[("a", &f.base_by_tag()), ("b", &nowhere)]));
    assert!(
        msg.contains(&format!("buildah pull {nowhere} (for b) failed")),
        "{msg}"
    );
    assert!(
        msg.ends_with(&format!(
            "buildah's output is in {}",
            f.path("log").display()
        )),
        "{msg}"
    );
}
