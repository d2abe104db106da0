//! A real container runtime accepts the payload `okd-forge release new` pushes (the payload-format
//! spec, §1.1): podman pulls it from a real Distribution registry and runs it the way the installer's
//! bootstrap does, `podman run --net=none <release@digest> image <tag>`.
//!
//! podman checks each blob's digest while pulling, but podman 4.3 (Debian 12) does not compare the
//! uncompressed digests it measures with the config's `rootfs.diff_ids` (it pulls and runs an image
//! whose diff_ids are made up). So the test does that comparison itself, against what podman's storage
//! measured for each layer.
//!
//! The CVO stand-in is a busybox-static userland whose `/usr/bin/cluster-version-operator` is a shell
//! script implementing the `image TAG` subcommand over `/release-manifests/image-references`, on top of
//! the fixture CVO's `/manifests` and `/bootstrap` layer; the other components are the standard set.
//!
//! Needs root, podman, runc and busybox-static (scripts/test.sh installs them). podman runs with its
//! own storage (`--root`, `--runroot`, `--tmpdir` in a temp dir, vfs driver: no mounts left behind),
//! its own containers.conf (`default_ulimits = []`, which these machines need), registries.conf and
//! storage.conf, and runc (crun fails here).

mod common;

use std::collections::BTreeMap;

use common::Forge;
use serde_json::{json, Value};
use testkit::podman::Podman;
use testkit::release::{self as fx, busybox_userland, new_args, Entry, ImageBuilder, ReleaseSet};
use testkit::{file_names, skopeo, RegistryServer};

/// The release name.
const NAME: &str = "4.17.0-okd-scos.1";

/// The busybox applets the stand-in links in `/bin`: a shell and what the CVO's update pod and these
/// tests run (`fetchUpdatePayloadToDir` uses sh, rm, mkdir, cp and mv).
const APPLETS: &[&str] = &[
    "sh", "awk", "cat", "cp", "find", "grep", "ls", "mkdir", "mv", "rm", "sed", "sort", "wc",
];

/// `/usr/bin/cluster-version-operator` of the stand-in. `image TAG` prints `spec.tags[name=TAG]
/// .from.name` of `/release-manifests/image-references` and a newline, as the CVO's `image`
/// subcommand does, and fails for a tag that is not there. It reads the JSON as oc writes it
/// (two-space indent: tags at 6 spaces, their fields at 8, `from`'s fields at 10), in either key
/// order.
const CVO_SCRIPT: &str = r##"#!/bin/sh
# cluster-version-operator stand-in for okd-forge's podman tests (busybox).
refs=/release-manifests/image-references
if [ "$1" = image ] && [ $# -eq 2 ]; then
  spec=$(awk -v tag="$2" '
    function value(line) { sub(/^[^:]*: "/, "", line); sub(/",?$/, "", line); return line }
    /^      \{/                       { name = ""; from = ""; infrom = 0 }
    /^        "name": /               { name = value($0) }
    /^        "from": \{/             { infrom = 1 }
    /^        \}/                     { infrom = 0 }
    infrom && /^          "name": /   { from = value($0) }
    /^      \}/                       { if (name == tag && from != "") { print from; exit } }
  ' "$refs") || exit 1
  if [ -z "$spec" ]; then
    echo "error: no image tag \"$2\" exists in the release image" >&2
    exit 1
  fi
  echo "$spec"
  exit 0
fi
echo "usage: cluster-version-operator image TAG" >&2
exit 2
"##;

// ------------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------------

/// The CVO stand-in: a base layer with `/bin/busybox`, its applet links and the `image TAG` script
/// as `/usr/bin/cluster-version-operator`, then the fixture CVO's `/manifests` + `/bootstrap` layer;
/// the fixture's Entrypoint (`/usr/bin/cluster-version-operator`), labels and config fields.
fn busybox_cvo(arch: &str) -> ImageBuilder {
    let fixture = fx::cluster_version_operator(arch);
    let mut base = busybox_userland(APPLETS);
    base.extend([
        Entry::dir("usr/"),
        Entry::dir("usr/bin/"),
        Entry::file("usr/bin/cluster-version-operator", CVO_SCRIPT).mode(0o755),
    ]);
    let manifests = fixture.layers[1].clone();
    ImageBuilder {
        layers: vec![base, manifests],
        ..fixture
    }
}

/// What these tests ask of podman beyond [`Podman`].
trait PodmanExt {
    fn measured_diff_ids(&self) -> BTreeMap<String, String>;
    fn run(&self, image: &str, entrypoint: Option<&str>, args: &[&str]) -> String;
}

impl PodmanExt for Podman {
    /// Blob digest → the uncompressed digest podman's storage measured while applying that layer
    /// (containers/storage's record of the vfs layers, `ROOT/vfs-layers/layers.json`).
    fn measured_diff_ids(&self) -> BTreeMap<String, String> {
        let path = self.dir().join("root/vfs-layers/layers.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("podman's layer records {}: {e}", path.display()));
        let layers: Vec<Value> = serde_json::from_str(&text).expect("layers.json");
        layers
            .iter()
            .map(|l| {
                let field = |k: &str| {
                    l[k].as_str()
                        .unwrap_or_else(|| panic!("{k} of a layer in {text}"))
                        .to_string()
                };
                (field("compressed-diff-digest"), field("diff-digest"))
            })
            .collect()
    }

    /// `podman run --rm --net=none --pull=never [--entrypoint E] IMAGE ARGS…`, expecting success.
    fn run(&self, image: &str, entrypoint: Option<&str>, args: &[&str]) -> String {
        let mut all = vec!["run", "--rm", "--net=none", "--pull=never"];
        if let Some(e) = entrypoint {
            all.extend(["--entrypoint", e]);
        }
        all.push(image);
        all.extend_from_slice(args);
        self.ok(&all)
    }
}

fn sorted_lines(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text.lines().map(str::to_string).collect();
    v.sort();
    v
}

// ------------------------------------------------------------------------------------------------
// The test
// ------------------------------------------------------------------------------------------------

#[test]
fn podman_pulls_and_runs_the_payload_like_the_installer_bootstrap() {
    let podman = Podman::new();
    let f = Forge::reproducible();
    let reg = RegistryServer::start();
    // The image architecture of this machine (the busybox binary runs natively).
    let arch = oci::manifest::host_arch();

    // Inputs: the standard set with the busybox CVO; `release new` pushes to the registry.
    let set = ReleaseSet::standard(arch).set("cluster-version-operator", busybox_cvo(arch));
    let inputs = set.write(&f.path("store"));
    let mapping = inputs.write_mapping(&f.path("mapping.txt"));
    let to = reg.docker(&format!("okd/release:{NAME}"));
    let tls = ["--tls-verify=false"];
    let out = f.ok(&new_args(NAME, &to, &mapping, f.path("store"), &tls));
    let digest = out.split(' ').next().expect("a digest").to_string();
    assert!(digest.starts_with("sha256:"), "release new printed {out:?}");

    // What okd-forge itself says is in the payload.
    let info = f.json(&["release", "info", &to, "--tls-verify=false"]);
    assert_eq!(info["digest"], digest.as_str());
    let tags = info["references"]["spec"]["tags"]
        .as_array()
        .expect("references.spec.tags");
    assert!(
        tags.iter().any(|t| t["name"] == "machine-config-operator"),
        "{tags:?}"
    );
    let extracted = file_names(&f.extract_to(&to, &tls, "extracted"));
    assert!(extracted.contains(&"image-references".to_string()));
    let metadata = f.ok(&[
        "release",
        "extract",
        &to,
        "--tls-verify=false",
        "--file",
        "release-metadata",
    ]);

    // podman pulls it by digest (checking each blob's digest) as `registry@digest`.
    let image = format!("{}/okd/release@{digest}", reg.host());
    let id = podman.ok(&["pull", "--quiet", "--tls-verify=false", &image]);
    let by_digest = format!("docker://{image}");
    let manifest: Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &by_digest,
    ]))
    .expect("manifest JSON");
    assert_eq!(
        format!("sha256:{}", id.trim()),
        manifest["config"]["digest"]
            .as_str()
            .expect("config digest"),
        "podman's image ID is the config digest"
    );

    // podman image inspect: exactly the two release labels; the CVO's Entrypoint.
    let inspect: Value =
        serde_json::from_str(&podman.ok(&["image", "inspect", &image])).expect("inspect JSON");
    let inspect = &inspect[0];
    assert_eq!(inspect["Digest"], digest.as_str());
    assert_eq!(inspect["Labels"], inputs.release_labels(NAME));
    assert_eq!(
        inspect["Config"]["Entrypoint"],
        json!(["/usr/bin/cluster-version-operator"])
    );
    assert_eq!(inspect["Architecture"], arch);
    assert_eq!(inspect["Os"], "linux");
    assert_eq!(
        inspect["RootFS"]["Layers"], info["config"]["rootfs"]["diff_ids"],
        "podman's config is the one okd-forge reports"
    );

    // The config's diff_ids are what podman measured applying each layer blob: the CVO's two layers
    // and the release-manifests layer, in manifest order.
    let measured = podman.measured_diff_ids();
    let layers = manifest["layers"].as_array().expect("manifest layers");
    assert_eq!(layers.len(), 3, "{manifest}");
    let in_order: Vec<&str> = layers
        .iter()
        .map(|l| {
            let blob = l["digest"].as_str().expect("layer digest");
            measured
                .get(blob)
                .unwrap_or_else(|| panic!("podman stored no layer for blob {blob}: {measured:?}"))
                .as_str()
        })
        .collect();
    assert_eq!(
        inspect["RootFS"]["Layers"],
        json!(in_order),
        "config rootfs.diff_ids against the uncompressed digests podman measured"
    );

    // The bootstrap's `podman run --net=none RELEASE image TAG`, for every tag: exactly the pull spec
    // `release info` reports.
    for tag in tags {
        let name = tag["name"].as_str().expect("tag name");
        let spec = tag["from"]["name"].as_str().expect("from.name");
        assert_eq!(
            podman.run(&image, None, &["image", name]),
            format!("{spec}\n"),
            "image {name}"
        );
    }
    let mco = tags
        .iter()
        .find(|t| t["name"] == "machine-config-operator")
        .unwrap();
    assert_eq!(
        mco["from"]["name"],
        inputs.pullspec("machine-config-operator").as_str()
    );
    let missing = podman.output(&[
        "run",
        "--rm",
        "--net=none",
        "--pull=never",
        &image,
        "image",
        "no-such-tag",
    ]);
    assert!(
        !missing.status.success() && missing.stdout.is_empty(),
        "image no-such-tag: {missing:?}"
    );

    // The merged filesystem: release-manifests as extracted, byte for byte for release-metadata;
    // the CVO's own /manifests and /bootstrap still there.
    assert_eq!(
        podman.run(
            &image,
            Some("/bin/cat"),
            &["/release-manifests/release-metadata"]
        ),
        metadata
    );
    assert_eq!(
        sorted_lines(&podman.run(&image, Some("/bin/ls"), &["-1", "/release-manifests"])),
        extracted
    );
    assert_eq!(
        podman.run(&image, Some("/bin/ls"), &["-1", "/manifests", "/bootstrap"]),
        "/bootstrap:\nbootstrap-pod.yaml\n\n\
         /manifests:\n0000_00_cluster-version-operator_01_deployment.yaml\n"
    );

    // The CVO's update pod copies both directories out of the release image with sh, rm, mkdir, cp
    // and mv (`fetchUpdatePayloadToDir`): every file arrives.
    let copied = podman.run(
        &image,
        Some("/bin/sh"),
        &[
            "-c",
            "set -e; mkdir -p /payloads/x; cd /payloads/x; rm -fR ./*; mkdir /payloads/x.tmp; \
             cp -r /manifests /payloads/x.tmp/manifests; \
             cp -r /release-manifests /payloads/x.tmp/release-manifests; \
             mv /payloads/x.tmp /payloads/done; cd /payloads/done; \
             find manifests release-manifests -type f | sort",
        ],
    );
    let mut want: Vec<String> = extracted
        .iter()
        .map(|n| format!("release-manifests/{n}"))
        .collect();
    want.push("manifests/0000_00_cluster-version-operator_01_deployment.yaml".into());
    want.sort();
    assert_eq!(sorted_lines(&copied), want);
}
