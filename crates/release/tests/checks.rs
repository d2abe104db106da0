//! The built-in payload checks against real payloads: component images written into an OCI layout,
//! a payload assembled from them with `payload::new::assemble` and pushed into the same layout (and,
//! for the registry case, everything in a real Distribution registry), then checked.
//!
//! Component pull specs name `127.0.0.1:<closed port>/okd/content@sha256:…`: images are found in the
//! layout by digest, and one deleted from it is looked for in that registry, which refuses at once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use oci::manifest::media_type;
use oci::{
    Copier, Digest, ImageRef, Layout, NoProgress, RawManifest, RegistryOptions, Store, Stores,
};
use payload::new::{AssembleProgress, Base, InputTag, NewRelease};
use payload::source::{PullSpec, Sources};
use payload::version::ReleaseName;
use release::checks::{self, CheckResult, Policy};
use serde_json::json;
use testkit::images::{write_index, Format};
use testkit::release::{layer, tar_bytes, Entry, ImageBuilder, ReleaseSet};

const NAME: &str = "4.17.0-0.okd-scos-2026-11-24-101500";

struct Quiet;

impl AssembleProgress for Quiet {
    fn step(&self, _: &str, _: &str, _: usize, _: usize) {}
}

/// Reads from `local` first, then registries over plain http, with no retries.
fn sources(local: Option<Layout>) -> Sources {
    let opts = RegistryOptions {
        tls_verify: false,
        retries: 0,
        timeout: Duration::from_secs(20),
        ..RegistryOptions::default()
    };
    Sources::new(Arc::new(Stores::new(opts)), local, None).unwrap()
}

/// A store with component images and a payload built from them.
struct Fixture {
    _dir: tempfile::TempDir,
    layout: Layout,
    /// `127.0.0.1:<closed port>/okd/content`.
    repo: String,
    /// Tag → pull spec by digest.
    specs: BTreeMap<String, String>,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(dir.path().join("store")).unwrap();
        Fixture {
            _dir: dir,
            layout,
            repo: format!("127.0.0.1:{}/okd/content", testkit::free_port()),
            specs: BTreeMap::new(),
        }
    }

    /// Write `image` as component `tag`.
    fn add(&mut self, tag: &str, image: &ImageBuilder) -> RawManifest {
        let m = image.write(&self.layout, None);
        self.specs
            .insert(tag.into(), format!("{}@{}", self.repo, m.digest));
        m
    }

    /// Write every image of `set`.
    fn add_set(&mut self, set: &ReleaseSet) {
        for (tag, image) in &set.images {
            self.add(tag, image);
        }
    }

    /// Write `images` (per architecture) as a Docker manifest list for component `tag`.
    fn add_list(&mut self, tag: &str, images: &[(&str, ImageBuilder)]) -> RawManifest {
        let children: Vec<(RawManifest, &str)> = images
            .iter()
            .map(|(arch, i)| (i.write(&self.layout, None), *arch))
            .collect();
        let list = write_index(&self.layout, Format::Docker, &children, None);
        self.specs
            .insert(tag.into(), format!("{}@{}", self.repo, list.digest));
        list
    }

    fn sources(&self) -> Sources {
        sources(Some(self.layout.clone()))
    }

    /// Assemble a payload of every component (none pruned) on `cluster-version-operator`, push it
    /// into the layout as [`NAME`], and return its reference.
    async fn payload(&self) -> ImageRef {
        let sources = self.sources();
        let inputs = self
            .specs
            .iter()
            .map(|(tag, spec)| {
                let input = InputTag {
                    pullspec: PullSpec::parse(tag, spec).unwrap(),
                    is_override: false,
                    carried: None,
                };
                (tag.clone(), input)
            })
            .collect();
        let req = NewRelease {
            name: ReleaseName::parse(NAME).unwrap(),
            inputs,
            base: Base::Tag("cluster-version-operator".into()),
            previous: Vec::new(),
            metadata: BTreeMap::new(),
            include: self.specs.keys().cloned().collect::<BTreeSet<_>>(),
            allow_missing_images: false,
            created: time::OffsetDateTime::from_unix_timestamp(1_764_000_000).unwrap(),
            annotations: BTreeMap::new(),
            default_versions: BTreeMap::new(),
            extra_manifests: Default::default(),
        };
        let built = payload::new::assemble(&sources, &req, 2, &Quiet)
            .await
            .unwrap();
        let copier = Copier::new(2, 0, Arc::new(NoProgress));
        payload::new::push(&built, &copier, &Store::Layout(self.layout.clone()), NAME)
            .await
            .unwrap();
        format!("oci:{}:{NAME}", self.layout.path().display())
            .parse()
            .unwrap()
    }

    fn digest(&self, tag: &str) -> String {
        self.specs[tag].rsplit_once('@').unwrap().1.to_string()
    }
}

/// `etc/os-release` saying `ID`, `VERSION_ID` (and `ID_LIKE`), as the distributions write it.
fn os_release(id: &str, version: &str) -> Entry {
    let like = if id == "rhel" || id == "centos" {
        "ID_LIKE=\"rhel fedora\"\n"
    } else {
        ""
    };
    Entry::file(
        "etc/os-release",
        format!("NAME=\"{id} linux\"\nVERSION=\"{version}\"\nID=\"{id}\"\n{like}VERSION_ID=\"{version}\"\n"),
    )
}

/// A base layer with an os-release.
fn base(id: &str, version: &str) -> Vec<Entry> {
    vec![Entry::dir("etc/"), os_release(id, version)]
}

/// The blob digest of the gzip layer of `entries`, as the fixtures write it.
fn layer_digest(entries: &[Entry]) -> Digest {
    Digest::sha256_of(&layer(entries).gzip)
}

/// `image` on `base` (a new lowest layer).
fn on(base: Vec<Entry>, mut image: ImageBuilder) -> ImageBuilder {
    image.layers.insert(0, base);
    image
}

/// An operand image with one small layer and the labels given.
fn operand(entries: Vec<Entry>, labels: &[(&str, &str)]) -> ImageBuilder {
    let mut i = ImageBuilder::new("amd64").layer(entries);
    for (k, v) in labels {
        i = i.label(k, v);
    }
    i
}

/// The standard release set, every image on CentOS Stream 9.
fn centos_set() -> ReleaseSet {
    centos_set_for("amd64")
}

/// [`centos_set`] for `arch`.
fn centos_set_for(arch: &str) -> ReleaseSet {
    let mut set = ReleaseSet::standard(arch);
    for image in set.images.values_mut() {
        image.layers.insert(0, base("centos", "9"));
    }
    set
}

fn only<'a>(r: &'a CheckResult, needle: &str) -> Vec<&'a String> {
    r.problems.iter().filter(|p| p.contains(needle)).collect()
}

#[tokio::test]
async fn a_consistent_payload_passes_both_checks() {
    let mut fx = Fixture::new();
    fx.add_set(&centos_set());
    let payload = fx.payload().await;
    let sources = fx.sources();

    let r = checks::consistency(&sources, &payload).await;
    assert_eq!(r.name, "consistency");
    assert!(r.passed, "{r:#?}");
    assert!(r.problems.is_empty());
    assert!(
        r.notes
            .iter()
            .any(|n| n.starts_with("8 images in image-references")),
        "{r:#?}"
    );

    let r = checks::base_image_policy(&sources, &payload, &Policy::default()).await;
    assert_eq!(r.name, "base-image-policy");
    assert!(r.passed, "{r:#?}");
    assert_eq!(
        r.notes,
        ["8 images in image-references; OS bases: centos 9 (8 images)"]
    );
}

#[tokio::test]
async fn a_payload_whose_image_was_deleted_from_the_store_fails_consistency_naming_the_tag() {
    let mut fx = Fixture::new();
    fx.add_set(&centos_set());
    let payload = fx.payload().await;
    // Garbage-collected: the manifest of `cli`, and one layer of `installer`.
    let cli: Digest = fx.digest("cli").parse().unwrap();
    std::fs::remove_file(fx.layout.blob_path(&cli)).unwrap();
    let installer = fx
        .layout
        .get_manifest(Some(&oci::Selector::Digest(
            fx.digest("installer").parse().unwrap(),
        )))
        .unwrap();
    let oci::manifest::Parsed::Image { layers, .. } = installer.parse().unwrap() else {
        panic!("installer is an image");
    };
    std::fs::remove_file(fx.layout.blob_path(&layers[1].digest)).unwrap();

    let sources = fx.sources();
    let r = checks::consistency(&sources, &payload).await;
    assert!(!r.passed);
    assert_eq!(r.problems.len(), 2, "{r:#?}");
    let cli = &r.problems[0];
    assert!(
        cli.starts_with(&format!(
            "tag 'cli' ({}): not found in the local store or its registry: ",
            fx.specs["cli"]
        )),
        "{cli}"
    );
    let installer = &r.problems[1];
    assert_eq!(
        installer,
        &format!(
            "tag 'installer' ({}): layer {} is missing from oci:{}",
            fx.specs["installer"],
            layers[1].digest,
            fx.layout.path().display()
        )
    );

    // The policy check cannot judge what it cannot read, and says so.
    let r = checks::base_image_policy(&sources, &payload, &Policy::default()).await;
    assert!(!r.passed);
    assert_eq!(only(&r, "tag 'cli'").len(), 1, "{r:#?}");
    assert!(
        only(&r, "tag 'cli'")[0].contains("cannot be read"),
        "{r:#?}"
    );
    let installer = only(&r, "tag 'installer'");
    assert_eq!(installer.len(), 1, "{r:#?}");
    assert!(
        installer[0].contains(&format!("cannot read layer {}", layers[1].digest)),
        "{r:#?}"
    );
}

#[tokio::test]
async fn an_image_a_manifest_uses_but_image_references_does_not_list_fails_consistency() {
    let mut fx = Fixture::new();
    fx.add_set(&centos_set());
    // An image in the content repository that is no tag of the payload.
    let stray = fx.add("stray", &operand(base("centos", "9"), &[]));
    fx.specs.remove("stray");
    let stray_spec = format!("{}@{}", fx.repo, stray.digest);
    let deployment = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: helper\n  namespace: openshift-network-operator\n  \
         annotations:\n    include.release.openshift.io/self-managed-high-availability: \"true\"\nspec:\n  template:\n    \
         spec:\n      containers:\n      - name: helper\n        image: {stray_spec}\n      - name: cli\n        image: \"{}\"\n",
        fx.specs["cli"]
    );
    let cno = ReleaseSet::standard("amd64").images["cluster-network-operator"].clone();
    let cno = on(base("centos", "9"), cno).add_to_top(Entry::file(
        "manifests/0000_07_cluster-network-operator_03_helper.yaml",
        deployment,
    ));
    fx.add("cluster-network-operator", &cno);
    let payload = fx.payload().await;

    let r = checks::consistency(&fx.sources(), &payload).await;
    assert!(!r.passed);
    assert_eq!(
        r.problems,
        [format!(
            "release-manifests/0000_07_cluster-network-operator_03_helper.yaml uses {stray_spec}, which is not the image of any tag in image-references (incomplete image-references: the cluster would run an image the payload does not list)"
        )]
    );
}

#[tokio::test]
async fn the_policy_allows_centos_fedora_and_ubi_and_denies_openshift_images_naming_the_evidence() {
    let mut fx = Fixture::new();
    fx.add_set(&centos_set());
    fx.add("fedora", &operand(base("fedora", "42"), &[]));
    let ubi_labels = [
        ("vendor", "Red Hat, Inc."),
        ("name", "ubi9/ubi-minimal"),
        ("com.redhat.component", "ubi9-minimal-container"),
    ];
    fx.add("ubi", &operand(base("rhel", "9.4"), &ubi_labels));
    let ose_base = base("rhel", "9.4");
    let ose_layer = layer_digest(&ose_base);
    let ose_labels = [
        ("vendor", "Red Hat, Inc."),
        ("name", "openshift/ose-cli"),
        ("com.redhat.component", "ose-cli-container"),
    ];
    let ose = fx.add("ose-cli", &operand(ose_base, &ose_labels));
    // ID=rhel without any UBI label.
    let plain = fx.add("rhel", &operand(base("rhel", "9.4"), &[]));
    // No os-release at all: a static binary.
    fx.add(
        "static",
        &operand(vec![Entry::file("manager", "\x7fELF static")], &[]),
    );
    let payload = fx.payload().await;

    let r = checks::base_image_policy(&fx.sources(), &payload, &Policy::default()).await;
    assert!(!r.passed);
    assert_eq!(
        r.problems,
        [
            format!(
                "tag 'ose-cli' ({}@{}): denied by base-image policy rule {{labels: {{com.redhat.component: ose-*-container}}}} (label com.redhat.component=ose-cli-container); evidence: /etc/os-release ID=rhel VERSION_ID=9.4 ID_LIKE=rhel fedora in layer {ose_layer}, label vendor=Red Hat, Inc., label name=openshift/ose-cli, label com.redhat.component=ose-cli-container",
                fx.repo, ose.digest
            ),
            format!(
                "tag 'rhel' ({}@{}): OS base not allowed (no allow rule of the base-image policy matches); evidence: /etc/os-release ID=rhel VERSION_ID=9.4 ID_LIKE=rhel fedora in layer {ose_layer}, no vendor, name or com.redhat.component label",
                fx.repo, plain.digest
            ),
        ]
    );
    assert_eq!(
        r.notes,
        [
            format!(
                "tag 'static' ({}): no /etc/os-release or /usr/lib/os-release (a scratch or static image); allowed",
                fx.specs["static"]
            ),
            "13 images in image-references; OS bases: centos 9 (8 images), fedora 42 (1 image), no os-release (1 image), rhel 9.4 (3 images)".to_string(),
        ]
    );

    // A policy that allows only Fedora: every CentOS image is now a violation.
    let fedora_only: Policy =
        serde_json::from_value(json!({ "allow": [{ "id": "fedora" }] })).unwrap();
    let r = checks::base_image_policy(&fx.sources(), &payload, &fedora_only).await;
    assert_eq!(only(&r, "OS base not allowed").len(), 8 + 2, "{r:#?}");
    assert_eq!(only(&r, "denied by").len(), 1, "{r:#?}");
}

#[tokio::test]
async fn rhel_entitlement_content_is_denied_even_on_an_allowed_base() {
    let mut fx = Fixture::new();
    fx.add_set(&centos_set());
    let redhat_repo = "[rhel-9-for-x86_64-appstream-rpms]\n\
        name = Red Hat Enterprise Linux 9 for x86_64 - AppStream (RPMs)\n\
        baseurl = https://cdn.redhat.com/content/dist/rhel9/$releasever/x86_64/appstream/os\n\
        sslclientcert = /etc/pki/entitlement/4711.pem\n";
    let content = vec![
        Entry::dir("etc/yum.repos.d/"),
        Entry::file(
            "etc/yum.repos.d/centos.repo",
            "[baseos]\nmetalink=https://mirrors.centos.org/metalink?repo=centos-baseos-9-stream\n",
        ),
        Entry::file("etc/yum.repos.d/redhat.repo", redhat_repo),
        Entry::dir("etc/pki/entitlement/"),
        Entry::file(
            "etc/pki/entitlement/4711.pem",
            "-----BEGIN CERTIFICATE-----\n",
        ),
    ];
    let content_layer = layer_digest(&content);
    let entitled = fx.add("entitled", &on(base("centos", "9"), operand(content, &[])));
    // The same files, deleted again in an upper layer: nothing is left.
    let cleaned = operand(
        vec![
            Entry::file("etc/yum.repos.d/redhat.repo", redhat_repo),
            Entry::file("etc/pki/entitlement/4711.pem", "cert"),
        ],
        &[],
    )
    .layer(vec![
        Entry::file("etc/yum.repos.d/.wh.redhat.repo", ""),
        Entry::file("etc/pki/.wh.entitlement", ""),
    ]);
    fx.add("cleaned", &on(base("centos", "9"), cleaned));
    let payload = fx.payload().await;

    let r = checks::base_image_policy(&fx.sources(), &payload, &Policy::default()).await;
    let who = format!("tag 'entitled' ({}@{})", fx.repo, entitled.digest);
    assert_eq!(
        r.problems,
        [
            format!("{who}: RHEL-only content: /etc/yum.repos.d/redhat.repo in layer {content_layer}: baseurl=https://cdn.redhat.com/content/dist/rhel9/$releasever/x86_64/appstream/os, sslclientcert=/etc/pki/entitlement/4711.pem (Red Hat subscription content)"),
            format!("{who}: RHEL-only content: /etc/pki/entitlement/4711.pem in layer {content_layer}: a Red Hat entitlement certificate (RHSM)"),
        ]
    );
}

#[tokio::test]
async fn os_release_is_found_through_the_usr_lib_symlink_and_whiteouts_delete_it() {
    let mut fx = Fixture::new();
    fx.add_set(&centos_set());
    // As Fedora and RHEL ship it: /usr/lib/os-release in one layer, the /etc link in a later one.
    let usr_lib = vec![
        Entry::dir("usr/"),
        Entry::dir("usr/lib/"),
        Entry::file("usr/lib/os-release", "ID=\"rhel\"\nVERSION_ID=\"9.4\"\n"),
    ];
    let usr_lib_layer = layer_digest(&usr_lib);
    let linked = operand(
        usr_lib,
        &[("com.redhat.component", "openshift-enterprise-cli-container")],
    )
    .layer(vec![
        Entry::dir("etc/"),
        Entry::symlink("etc/os-release", "../usr/lib/os-release"),
    ]);
    let linked = fx.add("linked", &linked);
    // A Fedora image whose /usr/lib/os-release is itself a link into os.release.d, as Fedora's is.
    let fedora = operand(
        vec![
            Entry::dir("usr/lib/os.release.d/"),
            Entry::file(
                "usr/lib/os.release.d/os-release-container",
                "ID=fedora\nVERSION_ID=42\n",
            ),
            Entry::symlink("usr/lib/os-release", "os.release.d/os-release-container"),
            Entry::symlink("etc/os-release", "/usr/lib/os-release"),
        ],
        &[],
    );
    fx.add("fedora", &fedora);
    // RHEL underneath, deleted by a whiteout above: no os-release is left.
    let deleted =
        operand(base("rhel", "9.4"), &[]).layer(vec![Entry::file("etc/.wh.os-release", "")]);
    fx.add("deleted", &deleted);
    // RHEL underneath, its /etc made opaque above and replaced by CentOS's.
    let opaque = operand(base("rhel", "9.4"), &[]).layer(vec![
        Entry::dir("etc/"),
        Entry::file("etc/.wh..wh..opq", ""),
        os_release("centos", "10"),
    ]);
    fx.add("opaque", &opaque);
    let payload = fx.payload().await;

    let r = checks::base_image_policy(&fx.sources(), &payload, &Policy::default()).await;
    assert_eq!(
        r.problems,
        [format!(
            "tag 'linked' ({}@{}): denied by base-image policy rule {{labels: {{com.redhat.component: openshift-enterprise-*-container}}}} (label com.redhat.component=openshift-enterprise-cli-container); evidence: /etc/os-release -> /usr/lib/os-release ID=rhel VERSION_ID=9.4 in layer {usr_lib_layer}, label com.redhat.component=openshift-enterprise-cli-container",
            fx.repo, linked.digest
        )]
    );
    assert_eq!(
        r.notes,
        [
            format!(
                "tag 'deleted' ({}): no /etc/os-release or /usr/lib/os-release (a scratch or static image); allowed",
                fx.specs["deleted"]
            ),
            "12 images in image-references; OS bases: centos 10 (1 image), centos 9 (8 images), fedora 42 (1 image), no os-release (1 image), rhel 9.4 (1 image)".to_string(),
        ]
    );
}

#[tokio::test]
async fn a_multi_arch_payload_is_checked_in_every_architecture() {
    let mut fx = Fixture::new();
    let inputs = testkit::release::write_multi(
        fx.layout.path(),
        &[centos_set_for("amd64"), centos_set_for("arm64")],
    );
    fx.specs = inputs
        .components
        .iter()
        .map(|(tag, c)| (tag.clone(), c.pullspec.clone()))
        .collect();
    let payload = fx.payload().await;
    let sources = fx.sources();
    let top = fx.layout.get_manifest(payload.selector()).unwrap();
    assert_eq!(top.media_type, media_type::DOCKER_LIST);

    let r = checks::consistency(&sources, &payload).await;
    assert!(r.passed, "{r:#?}");
    let r = checks::base_image_policy(&sources, &payload, &Policy::default()).await;
    assert!(r.passed, "{r:#?}");
    assert_eq!(
        r.notes,
        ["8 images in image-references; OS bases: centos 9 (16 images)"]
    );
}

/// A release image by hand: `lower` entries in its base layer, and a top layer holding
/// `release-manifests/` with image-references named 4.17.0 (no tags) and `metadata` as
/// release-metadata, if given.
fn hand_made_release(
    layout: &Layout,
    tag: &str,
    lower: Vec<Entry>,
    metadata: Option<serde_json::Value>,
) -> ImageRef {
    let references = json!({
        "kind": "ImageStream",
        "apiVersion": "image.openshift.io/v1",
        "metadata": { "name": "4.17.0" },
        "spec": { "tags": [] },
    });
    let mut top = vec![
        Entry::dir("release-manifests"),
        Entry::file("release-manifests/image-references", references.to_string()),
    ];
    if let Some(m) = metadata {
        top.push(Entry::file(
            "release-manifests/release-metadata",
            m.to_string(),
        ));
    }
    let mut base = vec![Entry::dir("usr/"), Entry::dir("release-manifests/")];
    base.extend(lower);
    ImageBuilder::new("amd64")
        .layer(base)
        .layer(top)
        .write(layout, Some(tag));
    format!("oci:{}:{tag}", layout.path().display())
        .parse()
        .unwrap()
}

#[tokio::test]
async fn payloads_the_cvo_would_refuse_or_misread_fail_consistency() {
    let fx = Fixture::new();
    let configmap = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: stale\n  namespace: openshift-config\n";
    let stale = hand_made_release(
        &fx.layout,
        "stale",
        vec![Entry::file(
            "release-manifests/0000_50_stale.yaml",
            configmap,
        )],
        Some(json!({ "kind": "cincinnati-metadata-v1", "version": "4.17.1", "previous": [] })),
    );
    let r = checks::consistency(&fx.sources(), &stale).await;
    assert_eq!(
        r.problems,
        [
            format!("{stale}: release-metadata has kind 'cincinnati-metadata-v1'; the CVO and Cincinnati accept only cincinnati-metadata-v0"),
            format!("{stale}: release-metadata version '4.17.1' differs from image-references name '4.17.0'; the CVO refuses the payload"),
            format!("{stale}: release-manifests/0000_50_stale.yaml is in a lower layer, not in the top layer that `oc adm release info` reads; the CVO would still apply it"),
        ]
    );
    assert_eq!(
        r.notes,
        ["0 images in image-references, 0 manifest files in release-manifests"]
    );

    let no_metadata = hand_made_release(&fx.layout, "no-metadata", vec![], None);
    let r = checks::consistency(&fx.sources(), &no_metadata).await;
    assert_eq!(
        r.problems,
        [format!("{no_metadata}: the top layer has no release-manifests/release-metadata; the CVO refuses the payload")]
    );

    let missing: ImageRef = format!("oci:{}:nothing", fx.layout.path().display())
        .parse()
        .unwrap();
    let r = checks::consistency(&fx.sources(), &missing).await;
    assert!(!r.passed);
    assert!(r.problems[0].starts_with(&format!("{missing}: ")), "{r:#?}");
    let r = checks::base_image_policy(&fx.sources(), &missing, &Policy::default()).await;
    assert!(!r.passed);
    assert!(
        r.problems[0].starts_with(&format!(
            "{missing}: cannot read the payload's image-references: "
        )),
        "{r:#?}"
    );
}

/// An image with one uncompressed (OCI `tar`) layer.
fn write_uncompressed(layout: &Layout, entries: &[Entry]) -> (RawManifest, Digest) {
    let tar = tar_bytes(entries);
    let layer = Digest::sha256_of(&tar);
    layout.write_blob_bytes(&layer, &tar).unwrap();
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": { "type": "layers", "diff_ids": [layer.to_string()] },
    }))
    .unwrap();
    let config_digest = Digest::sha256_of(&config);
    layout.write_blob_bytes(&config_digest, &config).unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_MANIFEST,
        "config": { "mediaType": media_type::OCI_CONFIG, "digest": config_digest, "size": config.len() },
        "layers": [{ "mediaType": media_type::OCI_LAYER_TAR, "digest": layer, "size": tar.len() }],
    }))
    .unwrap();
    let digest = Digest::sha256_of(&manifest);
    let raw = RawManifest::new("test", manifest.into(), None, digest).unwrap();
    layout.put_manifest(&raw, None, false).unwrap();
    (raw, layer)
}

#[tokio::test]
async fn uncompressed_layers_and_every_child_of_a_manifest_list_are_read() {
    let mut fx = Fixture::new();
    fx.add_set(&centos_set());
    let (plain, plain_layer) = write_uncompressed(&fx.layout, &base("debian", "12"));
    fx.specs
        .insert("debian".into(), format!("{}@{}", fx.repo, plain.digest));
    let rhel_base = base("rhel", "9.4");
    let rhel_layer = layer_digest(&rhel_base);
    let list = fx.add_list(
        "multi",
        &[
            ("amd64", operand(base("centos", "9"), &[])),
            ("arm64", ImageBuilder::new("arm64").layer(rhel_base)),
        ],
    );
    let arm64 = match fx
        .layout
        .get_manifest(Some(&oci::Selector::Digest(list.digest.clone())))
        .unwrap()
        .parse()
        .unwrap()
    {
        oci::manifest::Parsed::Index { manifests } => manifests[1].digest.clone(),
        _ => panic!("a list"),
    };
    let payload = fx.payload().await;

    let r = checks::base_image_policy(&fx.sources(), &payload, &Policy::default()).await;
    assert_eq!(
        r.problems,
        [
            format!(
                "tag 'debian' ({}@{}): OS base not allowed (no allow rule of the base-image policy matches); evidence: /etc/os-release ID=debian VERSION_ID=12 in layer {plain_layer}, no vendor, name or com.redhat.component label",
                fx.repo, plain.digest
            ),
            format!(
                "tag 'multi' ({}@{}, linux/arm64 {arm64}): OS base not allowed (no allow rule of the base-image policy matches); evidence: /etc/os-release ID=rhel VERSION_ID=9.4 ID_LIKE=rhel fedora in layer {rhel_layer}, no vendor, name or com.redhat.component label",
                fx.repo, list.digest
            ),
        ]
    );
    let r = checks::consistency(&fx.sources(), &payload).await;
    assert!(r.passed, "{r:#?}");
}

#[tokio::test]
async fn a_payload_and_its_images_in_a_registry_are_checked_there() {
    let registry = testkit::RegistryServer::start();
    let mut fx = Fixture::new();
    fx.repo = format!("{}/okd/content", registry.host());
    fx.add_set(&centos_set());
    // Every component into the registry, by digest.
    let stores = Stores::new(RegistryOptions {
        tls_verify: false,
        ..RegistryOptions::default()
    });
    let copier = Copier::new(2, 0, Arc::new(NoProgress));
    let content: ImageRef = format!("docker://{}", fx.repo).parse().unwrap();
    let dst = stores.open(&content, true).unwrap();
    let src = Store::Layout(fx.layout.clone());
    for tag in fx.specs.keys() {
        let d = oci::Selector::Digest(fx.digest(tag).parse().unwrap());
        copier.copy(&src, Some(&d), &dst, None).await.unwrap();
    }
    let local = fx.payload().await;
    let release: ImageRef = registry
        .docker(&format!("okd/release:{NAME}"))
        .parse()
        .unwrap();
    copier
        .copy(
            &src,
            local.selector(),
            &stores.open(&release, true).unwrap(),
            Some(NAME),
        )
        .await
        .unwrap();

    // Nothing local: everything is read from the registry.
    let remote = sources(None);
    let r = checks::consistency(&remote, &release).await;
    assert!(r.passed, "{r:#?}");
    let r = checks::base_image_policy(&remote, &release, &Policy::default()).await;
    assert!(r.passed, "{r:#?}");

    // The registry loses `hyperkube`'s manifest.
    let hex = fx
        .digest("hyperkube")
        .trim_start_matches("sha256:")
        .to_string();
    let link = registry
        .storage()
        .join("docker/registry/v2/repositories/okd/content/_manifests/revisions/sha256")
        .join(hex);
    std::fs::remove_dir_all(&link).unwrap();
    let r = checks::consistency(&remote, &release).await;
    assert!(!r.passed);
    assert_eq!(r.problems.len(), 1, "{r:#?}");
    assert!(
        r.problems[0].starts_with(&format!(
            "tag 'hyperkube' ({}): not found in the local store or its registry: ",
            fx.specs["hyperkube"]
        )),
        "{r:#?}"
    );
}
