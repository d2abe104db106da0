//! Release-payload fixtures: real component images (gzip tar layers, configs with correct `diff_ids`,
//! Docker schema 2 media types) written into an OCI layout that `okd-forge release new --store DIR`
//! reads, plus readers to look inside what `release new` writes.
//!
//! - [`Entry`] and [`ImageBuilder`]: any image, file by file (regular files, directories, symlinks, hard
//!   links, character devices; mode and mtime per file), with labels, Entrypoint and architecture.
//! - [`ReleaseSet::standard`]: the component images of a small OKD release (a CVO stand-in, two operators
//!   with `/manifests`, operands, an OS image), for one architecture; [`write_multi`] makes every tag a
//!   Docker manifest list over several architectures.
//! - [`Inputs`]: what was written, with a pull spec per tag (`registry.example.com/okd/content@sha256:…`,
//!   by digest, so the registry name need not exist) and the mapping file `release new` takes.
//! - [`broken`]: deliberately wrong variants, one per error `release new` and `release extract` must
//!   report.
//! - [`read_layer`], [`image_parts`]: take a written payload apart for assertions.
//!
//! Everything is deterministic: fixed mtimes, gzip header mtime 0, sorted JSON, so the same inputs always
//! give the same digests (and golden files stay valid).
//!
//! ```no_run
//! let store = tempfile::tempdir().unwrap();
//! let inputs = testkit::release::ReleaseSet::standard("amd64").write(store.path());
//! inputs.write_mapping(&store.path().join("mapping.txt"));
//! println!("{}", inputs.pullspec("cluster-version-operator"));
//! ```

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use oci::{Descriptor, Digest, Layout, RawManifest};
use serde_json::{json, Value};

use crate::images::{self, Format};

/// The repository every fixture pull spec names (it does not exist; images are found by digest).
pub const REPOSITORY: &str = "registry.example.com/okd/content";

/// The placeholder repository the operators' `image-references` and manifests use.
pub const PLACEHOLDER: &str = "placeholder.url.oc.will.replace.this.org/placeholdernamespace";

/// Label: the image contributes `/manifests` to the payload.
pub const LABEL_OPERATOR: &str = "io.openshift.release.operator";
/// Label: the source commit.
pub const LABEL_COMMIT_ID: &str = "io.openshift.build.commit.id";
/// Label: the source ref (branch).
pub const LABEL_COMMIT_REF: &str = "io.openshift.build.commit.ref";
/// Label: the source repository URL.
pub const LABEL_SOURCE: &str = "io.openshift.build.source-location";
/// Label: component versions, `key=semver,key=semver`.
pub const LABEL_VERSIONS: &str = "io.openshift.build.versions";
/// Label: component display names, `key=Display Name`.
pub const LABEL_DISPLAY_NAMES: &str = "io.openshift.build.version-display-names";

/// The default mtime of fixture files: 2025-01-01T00:00:00Z.
pub const MTIME: u64 = 1_735_689_600;
/// The mtime of the cluster-network-operator's manifests: 2025-01-03T00:00:00Z.
pub const MTIME_CNO: u64 = 1_735_862_400;
/// The newest mtime of any payload manifest (the MCO's osimageurl ConfigMap): 2025-01-05T00:00:00Z.
/// `release-manifests`, `image-references` and `release-metadata` must carry it.
pub const MTIME_NEWEST: u64 = 1_736_035_200;
/// The mtime of files that must not reach the payload (a lower layer, a subdirectory): 2025-02-01,
/// newer than [`MTIME_NEWEST`], so a builder that looks at them picks the wrong time.
pub const MTIME_IGNORED: u64 = 1_738_368_000;

/// The `machine-os` version the OS image reports.
pub const MACHINE_OS: &str = "9.0.20250101-0";
/// The `machine-os` display name.
pub const MACHINE_OS_NAME: &str = "CentOS Stream CoreOS";
/// The `kubernetes` version `hyperkube` reports.
pub const KUBERNETES: &str = "1.31.1";
/// The `kubectl` version `cli` reports (different from [`KUBERNETES`], to tell the sources apart).
pub const KUBECTL: &str = "1.31.2";

/// The fixture commit of a component: 40 hex digits derived from its tag, so it is stable.
pub fn commit(tag: &str) -> String {
    Digest::sha256_of(format!("commit of {tag}").as_bytes()).hex()[..40].to_string()
}

/// The fixture source repository of a component.
pub fn source(tag: &str) -> String {
    let repo = match tag {
        "cli" => "oc",
        "pod" | "hyperkube" => "kubernetes",
        "stream-coreos" => "os",
        t => t,
    };
    format!("https://github.com/openshift/{repo}")
}

// ------------------------------------------------------------------------------------------------
// Files and layers
// ------------------------------------------------------------------------------------------------

/// What a tar entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A regular file with these contents.
    File(Vec<u8>),
    /// A directory.
    Dir,
    /// A symbolic link to this target (written as given, not checked).
    Symlink(String),
    /// A hard link to this archive path (written as given, not checked).
    Hardlink(String),
    /// A character device.
    CharDevice {
        /// Device major number.
        major: u32,
        /// Device minor number.
        minor: u32,
    },
}

/// One tar entry. The path is written exactly as given (no normalisation, so absolute paths, `..`
/// and `./` prefixes are possible), which is what the broken fixtures need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The name in the archive, byte for byte.
    pub path: String,
    /// What it is.
    pub kind: Kind,
    /// Permission bits.
    pub mode: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: u64,
    /// A size to declare in the header instead of the real one (the data written is still only the
    /// contents, so the archive is truncated there): an "oversized" entry without the bytes.
    pub declared_size: Option<u64>,
}

impl Entry {
    /// A regular file, mode 0644, mtime [`MTIME`].
    pub fn file(path: &str, contents: impl AsRef<[u8]>) -> Entry {
        Entry {
            path: path.into(),
            kind: Kind::File(contents.as_ref().to_vec()),
            mode: 0o644,
            mtime: MTIME,
            declared_size: None,
        }
    }

    /// A directory, mode 0755. Give the path as the archive should hold it (`usr/bin/` or `usr/bin`).
    pub fn dir(path: &str) -> Entry {
        Entry {
            kind: Kind::Dir,
            mode: 0o755,
            ..Entry::file(path, "")
        }
    }

    /// A symlink, mode 0777.
    pub fn symlink(path: &str, target: &str) -> Entry {
        Entry {
            kind: Kind::Symlink(target.into()),
            mode: 0o777,
            ..Entry::file(path, "")
        }
    }

    /// A hard link to another archive path.
    pub fn hardlink(path: &str, target: &str) -> Entry {
        Entry {
            kind: Kind::Hardlink(target.into()),
            ..Entry::file(path, "")
        }
    }

    /// A character device, mode 0666.
    pub fn char_device(path: &str, major: u32, minor: u32) -> Entry {
        Entry {
            kind: Kind::CharDevice { major, minor },
            mode: 0o666,
            ..Entry::file(path, "")
        }
    }

    /// The same entry with other permission bits.
    pub fn mode(mut self, mode: u32) -> Entry {
        self.mode = mode;
        self
    }

    /// The same entry with another mtime.
    pub fn mtime(mut self, mtime: u64) -> Entry {
        self.mtime = mtime;
        self
    }

    /// The same entry declaring `size` bytes in its header (see [`Entry::declared_size`]).
    pub fn declare_size(mut self, size: u64) -> Entry {
        self.declared_size = Some(size);
        self
    }
}

fn set_name(h: &mut tar::Header, path: &str) {
    let bytes = path.as_bytes();
    let (prefix, name) = if bytes.len() <= 100 {
        (&[][..], bytes)
    } else {
        // POSIX ustar: split at a '/' so that the name part fits in 100 bytes and the prefix in 155.
        let split = bytes
            .iter()
            .enumerate()
            .filter(|&(i, &b)| b == b'/' && i <= 155 && bytes.len() - i - 1 <= 100)
            .map(|(i, _)| i)
            .next()
            .unwrap_or_else(|| panic!("tar path too long for a ustar header: {path}"));
        (&bytes[..split], &bytes[split + 1..])
    };
    let ustar = h.as_ustar_mut().expect("ustar header");
    ustar.name = [0; 100];
    ustar.name[..name.len()].copy_from_slice(name);
    ustar.prefix = [0; 155];
    ustar.prefix[..prefix.len()].copy_from_slice(prefix);
}

/// The uncompressed tar of `entries`, in order, with uid/gid 0 and ustar headers.
pub fn tar_bytes(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let mut h = tar::Header::new_ustar();
        set_name(&mut h, &e.path);
        h.set_mode(e.mode);
        h.set_mtime(e.mtime);
        h.set_uid(0);
        h.set_gid(0);
        let data: &[u8] = match &e.kind {
            Kind::File(c) => {
                h.set_entry_type(tar::EntryType::Regular);
                c
            }
            Kind::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                &[]
            }
            Kind::Symlink(t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_link_name_literal(t).expect("link name fits");
                &[]
            }
            Kind::Hardlink(t) => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_link_name_literal(t).expect("link name fits");
                &[]
            }
            Kind::CharDevice { major, minor } => {
                h.set_entry_type(tar::EntryType::Char);
                h.set_device_major(*major).expect("device major");
                h.set_device_minor(*minor).expect("device minor");
                &[]
            }
        };
        h.set_size(e.declared_size.unwrap_or(data.len() as u64));
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(512), 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

/// Gzip `bytes` deterministically (no name, header mtime 0).
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, bytes).expect("gzip");
    gz.finish().expect("gzip")
}

/// A gzip layer of `entries` with its diff_id.
pub fn layer(entries: &[Entry]) -> images::Layer {
    let tar = tar_bytes(entries);
    images::Layer {
        diff_id: Digest::sha256_of(&tar),
        gzip: gzip(&tar),
    }
}

// ------------------------------------------------------------------------------------------------
// Images
// ------------------------------------------------------------------------------------------------

/// An image to write: layers of entries, base first, and the config fields that matter to a payload.
#[derive(Clone, Debug)]
pub struct ImageBuilder {
    /// Media types (Docker schema 2 by default).
    pub format: Format,
    /// `amd64`, `arm64`, ...
    pub arch: String,
    /// Layers, base first.
    pub layers: Vec<Vec<Entry>>,
    /// Config labels.
    pub labels: BTreeMap<String, String>,
    /// Config Entrypoint.
    pub entrypoint: Option<Vec<String>>,
    /// Config Env.
    pub env: Vec<String>,
    /// Config `created`.
    pub created: String,
    /// Further top-level config fields (e.g. `container`, `container_config`).
    pub extra: serde_json::Map<String, Value>,
}

impl ImageBuilder {
    /// An empty Docker image for `arch`.
    pub fn new(arch: &str) -> ImageBuilder {
        ImageBuilder {
            format: Format::Docker,
            arch: arch.into(),
            layers: Vec::new(),
            labels: BTreeMap::new(),
            entrypoint: None,
            env: vec!["PATH=/usr/local/bin:/usr/bin:/bin".into()],
            created: "2025-01-01T00:00:00Z".into(),
            extra: serde_json::Map::new(),
        }
    }

    /// The same image with OCI media types.
    pub fn oci(mut self) -> ImageBuilder {
        self.format = Format::Oci;
        self
    }

    /// The same image with another layer on top.
    pub fn layer(mut self, entries: Vec<Entry>) -> ImageBuilder {
        self.layers.push(entries);
        self
    }

    /// The same image with `entry` added to the end of its top layer (a new layer if it has none).
    pub fn add_to_top(mut self, entry: Entry) -> ImageBuilder {
        match self.layers.last_mut() {
            Some(top) => top.push(entry),
            None => self.layers.push(vec![entry]),
        }
        self
    }

    /// The same image with the top layer's entry at `path` replaced by `entry` (added if absent).
    pub fn replace_in_top(mut self, path: &str, entry: Entry) -> ImageBuilder {
        let top = self.layers.last_mut().expect("image has a layer");
        match top.iter_mut().find(|e| e.path == path) {
            Some(e) => *e = entry,
            None => top.push(entry),
        }
        self
    }

    /// The same image with a label.
    pub fn label(mut self, k: &str, v: &str) -> ImageBuilder {
        self.labels.insert(k.into(), v.into());
        self
    }

    /// The same image without a label.
    pub fn unlabel(mut self, k: &str) -> ImageBuilder {
        self.labels.remove(k);
        self
    }

    /// The same image with an Entrypoint.
    pub fn entrypoint(mut self, args: &[&str]) -> ImageBuilder {
        self.entrypoint = Some(args.iter().map(|s| s.to_string()).collect());
        self
    }

    /// The same image with a further top-level config field.
    pub fn config_field(mut self, k: &str, v: Value) -> ImageBuilder {
        self.extra.insert(k.into(), v);
        self
    }

    /// The config JSON this image gets, given its layers' diff_ids.
    fn config(&self, diff_ids: &[Digest]) -> Vec<u8> {
        let mut cfg = serde_json::Map::new();
        if !self.labels.is_empty() {
            cfg.insert("Labels".into(), json!(self.labels));
        }
        cfg.insert("Env".into(), json!(self.env));
        if let Some(ep) = &self.entrypoint {
            cfg.insert("Entrypoint".into(), json!(ep));
        }
        let mut doc = serde_json::Map::new();
        doc.insert("architecture".into(), json!(self.arch));
        doc.insert("os".into(), json!("linux"));
        doc.insert("created".into(), json!(self.created));
        doc.insert("config".into(), Value::Object(cfg));
        doc.insert(
            "rootfs".into(),
            json!({ "type": "layers", "diff_ids": diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>() }),
        );
        doc.insert(
            "history".into(),
            json!((0..diff_ids.len())
                .map(|i| json!({ "created": self.created, "created_by": format!("fixture layer {i}") }))
                .collect::<Vec<_>>()),
        );
        for (k, v) in &self.extra {
            doc.insert(k.clone(), v.clone());
        }
        serde_json::to_vec(&Value::Object(doc)).expect("config json")
    }

    /// Write the blobs and manifest into `layout`, tagged `tag` if given (else reachable only by
    /// digest, e.g. as a list child). Returns the manifest.
    pub fn write(&self, layout: &Layout, tag: Option<&str>) -> RawManifest {
        let layers = self.layers.iter().map(|entries| layer(entries));
        images::write_manifest(layout, self.format, layers, |d| self.config(d), tag)
    }
}

// ------------------------------------------------------------------------------------------------
// The standard component images
// ------------------------------------------------------------------------------------------------

/// Pseudo-binary contents: deterministic bytes naming the program and architecture.
fn binary(name: &str, arch: &str, size: usize) -> Vec<u8> {
    let seed = Digest::sha256_of(format!("{name}/{arch}").as_bytes());
    let mut out = format!("\x7fELF fixture {name} for linux/{arch}\n").into_bytes();
    let mut block = seed.hex().as_bytes().to_vec();
    while out.len() < size {
        out.extend_from_slice(&block);
        block = Digest::sha256_of(&block).hex().as_bytes().to_vec();
    }
    out.truncate(size);
    out
}

/// `usr/`, `usr/bin/` and the program `usr/bin/<name>` (`size` bytes for `arch`, mode 0755).
fn program(name: &str, arch: &str, size: usize) -> Vec<Entry> {
    vec![
        Entry::dir("usr/"),
        Entry::dir("usr/bin/"),
        Entry::file(&format!("usr/bin/{name}"), binary(name, arch, size)).mode(0o755),
    ]
}

/// `image` as component `tag`: Entrypoint `/usr/bin/<tag>`, labelled with its commit id and source
/// location.
fn component(image: ImageBuilder, tag: &str) -> ImageBuilder {
    image
        .entrypoint(&[&format!("/usr/bin/{tag}")])
        .label(LABEL_COMMIT_ID, &commit(tag))
        .label(LABEL_SOURCE, &source(tag))
}

/// `image` as operator `tag`: a [`component`] labelled as an operator, with commit ref
/// `release-4.17`.
fn operator(image: ImageBuilder, tag: &str) -> ImageBuilder {
    component(image, tag)
        .label(LABEL_OPERATOR, "true")
        .label(LABEL_COMMIT_REF, "release-4.17")
}

fn userland(arch: &str) -> Vec<Entry> {
    vec![
        Entry::dir("usr/"),
        Entry::dir("usr/bin/"),
        Entry::file("usr/bin/sh", binary("sh", arch, 2048)).mode(0o755),
        Entry::file("usr/bin/cp", binary("cp", arch, 1024)).mode(0o755),
        Entry::symlink("bin", "usr/bin"),
    ]
}

const CVO_DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: cluster-version-operator
  namespace: openshift-cluster-version
  annotations:
    include.release.openshift.io/self-managed-high-availability: "true"
spec:
  selector:
    matchLabels:
      k8s-app: cluster-version-operator
  template:
    metadata:
      labels:
        k8s-app: cluster-version-operator
    spec:
      containers:
      - name: cluster-version-operator
        image: '{{.ReleaseImage}}'
        args:
        - start
        - --release-image={{.ReleaseImage}}
"#;

const CVO_BOOTSTRAP_POD: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: bootstrap-cluster-version-operator
  namespace: openshift-cluster-version
spec:
  containers:
  - name: cluster-version-operator
    image: '{{.ReleaseImage}}'
    command: ["/usr/bin/cluster-version-operator", "start"]
"#;

/// The CVO stand-in: a userland layer with `/usr/bin/cluster-version-operator` (a 0755 shell script),
/// and a layer with `/manifests` (its own templated Deployment) and `/bootstrap`. Entrypoint
/// `/usr/bin/cluster-version-operator`; not labelled as an operator.
pub fn cluster_version_operator(arch: &str) -> ImageBuilder {
    let script = format!(
        "#!/bin/sh\n# cluster-version-operator stand-in for okd-forge tests (linux/{arch})\n\
         echo \"cluster-version-operator $*\"\n"
    );
    let mut base = userland(arch);
    base.push(Entry::file("usr/bin/cluster-version-operator", script).mode(0o755));
    ImageBuilder::new(arch)
        .layer(base)
        .layer(vec![
            Entry::dir("manifests/"),
            Entry::file(
                "manifests/0000_00_cluster-version-operator_01_deployment.yaml",
                CVO_DEPLOYMENT,
            ),
            Entry::dir("bootstrap/"),
            Entry::file("bootstrap/bootstrap-pod.yaml", CVO_BOOTSTRAP_POD),
        ])
        .entrypoint(&["/usr/bin/cluster-version-operator"])
        .label(LABEL_COMMIT_ID, &commit("cluster-version-operator"))
        .label(LABEL_SOURCE, &source("cluster-version-operator"))
        // Fields `release new` must clear (oc does).
        .config_field("container", json!("0123456789abcdef"))
        .config_field(
            "container_config",
            json!({ "Cmd": ["/bin/sh", "-c", "#(nop) fixture"] }),
        )
}

/// The MCO's `/manifests/image-references`, as its repository ships it (YAML).
pub fn mco_image_references() -> String {
    image_references_yaml(&[
        (
            "machine-config-operator",
            &placeholder("machine-config-operator"),
        ),
        ("stream-coreos", &placeholder("stream-coreos")),
        ("cli", "quay.io/openshift/origin-cli:latest"),
        ("hyperkube", &placeholder("hyperkube")),
    ])
}

/// `PLACEHOLDER:tag`.
pub fn placeholder(tag: &str) -> String {
    format!("{PLACEHOLDER}:{tag}")
}

/// An `image-references` ImageStream in YAML with these (tag, from.name) pairs.
pub fn image_references_yaml(tags: &[(&str, &str)]) -> String {
    let mut s =
        String::from("kind: ImageStream\napiVersion: image.openshift.io/v1\nspec:\n  tags:\n");
    for (name, from) in tags {
        s.push_str(&format!(
            "  - name: {name}\n    from:\n      kind: DockerImage\n      name: {from}\n"
        ));
    }
    s
}

/// The MCO's osimageurl ConfigMap. After `release new` (see the payload golden files):
/// `releaseVersion` is the release name; `baseOSContainerImage`, `osImageURL`, `operatorImage` and
/// `cliImage` are the pull specs of their tags; the bracketed, comma-followed and `not-listed`
/// placeholders are unchanged.
pub fn mco_osimageurl() -> String {
    format!(
        r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: machine-config-osimageurl
  namespace: openshift-machine-config-operator
  annotations:
    include.release.openshift.io/self-managed-high-availability: "true"
    include.release.openshift.io/single-node-developer: "true"
data:
  releaseVersion: 0.0.1-snapshot
  baseOSContainerImage: "{P}:stream-coreos"
  osImageURL: {P}:stream-coreos
  operatorImage: '{P}:machine-config-operator@sha256:{zeros}'
  cliImage: quay.io/openshift/origin-cli:latest
  # [{P}:stream-coreos] is not an image reference: brackets are not a boundary
  inBrackets: "[{P}:stream-coreos]"
  withComma: {P}:stream-coreos,extensions
  notListed: {P}:not-listed
"#,
        P = PLACEHOLDER,
        zeros = "0".repeat(64)
    )
}

const MCO_NAMESPACE: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: openshift-machine-config-operator
  annotations:
    include.release.openshift.io/self-managed-high-availability: "true"
    openshift.io/node-selector: ""
"#;

const MCO_CLUSTEROPERATOR: &str = r#"apiVersion: config.openshift.io/v1
kind: ClusterOperator
metadata:
  name: machine-config
  annotations:
    include.release.openshift.io/self-managed-high-availability: "true"
spec: {}
status:
  versions:
  - name: operator
    version: "0.0.1-snapshot"
  - name: machine-os
    version: "0.0.1-snapshot-machine-os"
  - name: kubernetes
    version: 0.0.1-snapshot-kubernetes
  - name: kubectl
    version: 0.0.1-snapshot-kubectl
"#;

const MCO_README: &str = "# machine-config-operator manifests\n\n\
These files are applied by the cluster-version-operator; this one is not a manifest.\n";

fn shared_configmap(owner: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared-from-{owner}\n  namespace: openshift-config\n  \
         annotations:\n    include.release.openshift.io/self-managed-high-availability: \"true\"\ndata:\n  owner: {owner}\n"
    )
}

/// The machine-config-operator: a lower layer with its binary and a stale `/manifests/0000_80_stale.yaml`
/// (which must not reach the payload: only the top layer counts), and a top layer with
/// `/manifests/{image-references, 0000_70_shared.yaml, 0000_80_machine-config_00_namespace.yaml,
/// 0000_80_machine-config_01_osimageurl.yaml, README.md, clusteroperator.yaml}`, a symlink and a
/// subdirectory (both ignored).
pub fn machine_config_operator(arch: &str) -> ImageBuilder {
    let tag = "machine-config-operator";
    let mut lower = program(tag, arch, 8192);
    lower.extend([
        Entry::dir("manifests/"),
        Entry::file("manifests/0000_80_stale.yaml", shared_configmap("stale")).mtime(MTIME_IGNORED),
    ]);
    let image = ImageBuilder::new(arch).layer(lower).layer(vec![
        Entry::dir("manifests/"),
        Entry::file("manifests/image-references", mco_image_references()),
        Entry::file("manifests/0000_70_shared.yaml", shared_configmap("mco")),
        Entry::file(
            "manifests/0000_80_machine-config_00_namespace.yaml",
            MCO_NAMESPACE,
        ),
        Entry::file(
            "manifests/0000_80_machine-config_01_osimageurl.yaml",
            mco_osimageurl(),
        )
        .mtime(MTIME_NEWEST),
        Entry::symlink(
            "manifests/0000_80_machine-config_99_link.yaml",
            "0000_80_machine-config_00_namespace.yaml",
        )
        .mtime(MTIME_IGNORED),
        Entry::file("manifests/README.md", MCO_README),
        Entry::file("manifests/clusteroperator.yaml", MCO_CLUSTEROPERATOR),
        Entry::dir("manifests/sub/"),
        Entry::file("manifests/sub/ignored.yaml", shared_configmap("sub")).mtime(MTIME_IGNORED),
    ]);
    operator(image, tag)
}

const CNO_NAMESPACE: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: openshift-network-operator
  annotations:
    include.release.openshift.io/self-managed-high-availability: "true"
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: cluster-network-operator
  namespace: openshift-network-operator
  annotations:
    include.release.openshift.io/self-managed-high-availability: "true"
"#;

const CNO_CONFIG_JSON: &str = r#"{
  "apiVersion": "v1",
  "kind": "ConfigMap",
  "metadata": {
    "name": "network-operator-config",
    "namespace": "openshift-network-operator",
    "annotations": {"include.release.openshift.io/self-managed-high-availability": "true"}
  },
  "data": {"version": "0.0.1-snapshot"}
}
"#;

const CNO_CLUSTEROPERATOR: &str = r#"apiVersion: config.openshift.io/v1
kind: ClusterOperator
metadata:
  name: network
  annotations:
    include.release.openshift.io/self-managed-high-availability: "true"
spec: {}
status:
  versions:
  - name: operator
    version: 0.0.1-snapshot
"#;

/// The cluster-network-operator: an operator without `image-references`, with a multi-document YAML
/// file, a JSON manifest, `0000_70_shared.yaml` (also shipped by the MCO, so the MCO's copy becomes
/// `0000_70_shared_2.yaml`) and `clusteroperator.yaml` (becomes
/// `0000_50_cluster-network-operator_clusteroperator.yaml`). One layer.
pub fn cluster_network_operator(arch: &str) -> ImageBuilder {
    let tag = "cluster-network-operator";
    let mut layer = program(tag, arch, 4096);
    layer.extend([
        Entry::dir("manifests/"),
        Entry::file(
            "manifests/0000_07_cluster-network-operator_01_namespace.yaml",
            CNO_NAMESPACE,
        )
        .mtime(MTIME_CNO),
        Entry::file(
            "manifests/0000_07_cluster-network-operator_02_config.json",
            CNO_CONFIG_JSON,
        )
        .mtime(MTIME_CNO),
        Entry::file("manifests/0000_70_shared.yaml", shared_configmap("cno")).mtime(MTIME_CNO),
        Entry::file("manifests/clusteroperator.yaml", CNO_CLUSTEROPERATOR).mtime(MTIME_CNO),
    ]);
    operator(ImageBuilder::new(arch).layer(layer), tag)
}

/// An operand: one layer with `/usr/bin/<tag>`, labelled with its commit id and source location (no
/// commit ref) and nothing else.
pub fn operand(tag: &str, arch: &str) -> ImageBuilder {
    component(ImageBuilder::new(arch).layer(program(tag, arch, 4096)), tag)
}

/// `cli`: an operand reporting `kubectl=`[`KUBECTL`].
pub fn cli(arch: &str) -> ImageBuilder {
    operand("cli", arch).label(LABEL_VERSIONS, &format!("kubectl={KUBECTL}"))
}

/// `hyperkube`: an operand reporting `kubernetes=`[`KUBERNETES`].
pub fn hyperkube(arch: &str) -> ImageBuilder {
    operand("hyperkube", arch).label(LABEL_VERSIONS, &format!("kubernetes={KUBERNETES}"))
}

/// `stream-coreos`: the OS image, reporting `machine-os=`[`MACHINE_OS`] with display name
/// [`MACHINE_OS_NAME`]; no commit labels (its annotations in the payload are empty strings).
pub fn stream_coreos(arch: &str) -> ImageBuilder {
    ImageBuilder::new(arch)
        .layer(vec![
            Entry::dir("usr/"),
            Entry::dir("usr/lib/"),
            Entry::file(
                "usr/lib/os-release",
                "NAME=\"CentOS Stream CoreOS\"\nID=\"scos\"\nID_LIKE=\"rhel fedora\"\nVERSION_ID=\"9\"\n",
            ),
            Entry::dir("usr/bin/"),
            Entry::file("usr/bin/rpm-ostree", binary("rpm-ostree", arch, 4096)).mode(0o755),
        ])
        .label(LABEL_VERSIONS, &format!("machine-os={MACHINE_OS}"))
        .label(
            LABEL_DISPLAY_NAMES,
            &format!("machine-os={MACHINE_OS_NAME}"),
        )
}

// ------------------------------------------------------------------------------------------------
// Sets of inputs
// ------------------------------------------------------------------------------------------------

/// The component images of one release for one architecture, by tag.
#[derive(Clone, Debug)]
pub struct ReleaseSet {
    /// The architecture.
    pub arch: String,
    /// Images by tag.
    pub images: BTreeMap<String, ImageBuilder>,
}

/// The tags of [`ReleaseSet::standard`].
pub const STANDARD_TAGS: &[&str] = &[
    "cli",
    "cluster-network-operator",
    "cluster-version-operator",
    "hyperkube",
    "installer",
    "machine-config-operator",
    "pod",
    "stream-coreos",
];

impl ReleaseSet {
    /// The standard set for `arch`:
    /// - `cluster-version-operator` ([`cluster_version_operator`]), the base, not an operator;
    /// - operators `machine-config-operator` (with `image-references` naming `machine-config-operator`,
    ///   `stream-coreos`, `cli` and `hyperkube`) and `cluster-network-operator` (without);
    /// - operands `cli` (kubectl), `hyperkube` (kubernetes), `installer` and `pod`, and the OS image
    ///   `stream-coreos` (machine-os).
    ///
    /// Without `--include`, `installer` and `pod` are pruned (referenced by nothing).
    pub fn standard(arch: &str) -> ReleaseSet {
        let images = BTreeMap::from([
            ("cli".to_string(), cli(arch)),
            (
                "cluster-network-operator".to_string(),
                cluster_network_operator(arch),
            ),
            (
                "cluster-version-operator".to_string(),
                cluster_version_operator(arch),
            ),
            ("hyperkube".to_string(), hyperkube(arch)),
            ("installer".to_string(), operand("installer", arch)),
            (
                "machine-config-operator".to_string(),
                machine_config_operator(arch),
            ),
            ("pod".to_string(), operand("pod", arch)),
            ("stream-coreos".to_string(), stream_coreos(arch)),
        ]);
        ReleaseSet {
            arch: arch.into(),
            images,
        }
    }

    /// The same set with `tag` set to `image` (added or replaced).
    pub fn set(mut self, tag: &str, image: ImageBuilder) -> ReleaseSet {
        self.images.insert(tag.into(), image);
        self
    }

    /// The same set without `tag`.
    pub fn remove(mut self, tag: &str) -> ReleaseSet {
        self.images.remove(tag);
        self
    }

    /// The same set with `tag`'s image changed by `f`.
    pub fn edit(mut self, tag: &str, f: impl FnOnce(ImageBuilder) -> ImageBuilder) -> ReleaseSet {
        let image = self
            .images
            .remove(tag)
            .unwrap_or_else(|| panic!("no tag {tag} in the set"));
        self.images.insert(tag.into(), f(image));
        self
    }

    /// The same set with `manifests/<name>` added to the top layer of `tag`'s image.
    pub fn add_manifest(self, tag: &str, name: &str, contents: &str) -> ReleaseSet {
        let entry = Entry::file(&format!("manifests/{name}"), contents);
        self.edit(tag, |i| i.add_to_top(entry))
    }

    /// The same set with `tag`'s `/manifests/image-references` replaced by `yaml`.
    pub fn image_references(self, tag: &str, yaml: &str) -> ReleaseSet {
        let path = "manifests/image-references";
        let entry = Entry::file(path, yaml);
        self.edit(tag, |i| i.replace_in_top(path, entry))
    }

    /// Write every image into the OCI layout `store` (created if needed). Each image is tagged
    /// `<tag>-<arch>-<12 hex of its digest>` in the layout, so several sets share one store.
    pub fn write(&self, store: &Path) -> Inputs {
        let layout = Layout::create(store).expect("create layout");
        let mut components = BTreeMap::new();
        for (tag, image) in &self.images {
            let m = image.write(&layout, None);
            let layout_tag = format!("{tag}-{}-{}", self.arch, &m.digest.hex()[..12]);
            layout
                .put_manifest(&m, Some(&layout_tag), true)
                .expect("tag image");
            components.insert(
                tag.clone(),
                Component {
                    pullspec: format!("{REPOSITORY}@{}", m.digest),
                    digest: m.digest.clone(),
                    children: BTreeMap::new(),
                    labels: image.labels.clone(),
                },
            );
        }
        Inputs {
            store: store.to_path_buf(),
            components,
        }
    }
}

/// Write `sets` (one per architecture, with the same tags) into `store` as Docker manifest lists: each
/// tag becomes a list over its per-arch images, children in the order of `sets`.
pub fn write_multi(store: &Path, sets: &[ReleaseSet]) -> Inputs {
    let layout = Layout::create(store).expect("create layout");
    let first = sets.first().expect("at least one set");
    let mut components = BTreeMap::new();
    for tag in first.images.keys() {
        let children: Vec<(RawManifest, &str)> = sets
            .iter()
            .map(|s| {
                let image = s
                    .images
                    .get(tag)
                    .unwrap_or_else(|| panic!("set for {} has no tag {tag}", s.arch));
                (image.write(&layout, None), s.arch.as_str())
            })
            .collect();
        let list = images::write_index(&layout, Format::Docker, &children, None);
        let layout_tag = format!("{tag}-multi-{}", &list.digest.hex()[..12]);
        layout
            .put_manifest(&list, Some(&layout_tag), true)
            .expect("tag list");
        components.insert(
            tag.clone(),
            Component {
                pullspec: format!("{REPOSITORY}@{}", list.digest),
                digest: list.digest.clone(),
                children: children
                    .into_iter()
                    .map(|(m, arch)| (arch.to_string(), m.digest))
                    .collect(),
                labels: first.images[tag].labels.clone(),
            },
        );
    }
    Inputs {
        store: store.to_path_buf(),
        components,
    }
}

/// The standard set for amd64 and arm64 as manifest lists, in `store`.
pub fn standard_multi(store: &Path) -> Inputs {
    write_multi(
        store,
        &[ReleaseSet::standard("amd64"), ReleaseSet::standard("arm64")],
    )
}

/// One written component image.
#[derive(Clone, Debug)]
pub struct Component {
    /// `registry.example.com/okd/content@sha256:…`.
    pub pullspec: String,
    /// The manifest (or list) digest.
    pub digest: Digest,
    /// For a list: architecture → child manifest digest.
    pub children: BTreeMap<String, Digest>,
    /// The config labels (of the first architecture, for a list).
    pub labels: BTreeMap<String, String>,
}

/// What a [`ReleaseSet`] wrote: the store and the components by tag.
#[derive(Clone, Debug)]
pub struct Inputs {
    /// The OCI layout holding every image (give it to `--store`).
    pub store: PathBuf,
    /// Components by tag.
    pub components: BTreeMap<String, Component>,
}

impl Inputs {
    /// The pull spec of `tag`.
    pub fn pullspec(&self, tag: &str) -> String {
        self.component(tag).pullspec.clone()
    }

    /// The digest of `tag` (the list digest for a list).
    pub fn digest(&self, tag: &str) -> Digest {
        self.component(tag).digest.clone()
    }

    /// The component of `tag`.
    pub fn component(&self, tag: &str) -> &Component {
        self.components
            .get(tag)
            .unwrap_or_else(|| panic!("no tag {tag} in the inputs"))
    }

    /// `tag=pullspec` lines for every tag, sorted by tag.
    pub fn mapping(&self) -> String {
        self.components
            .iter()
            .map(|(tag, c)| format!("{tag}={}\n", c.pullspec))
            .collect()
    }

    /// Write [`Inputs::mapping`] to `path`; returns the path as a string for a command line.
    pub fn write_mapping(&self, path: &Path) -> String {
        std::fs::write(path, self.mapping()).expect("write mapping file");
        path.to_string_lossy().into_owned()
    }

    /// The config labels of a payload named `name` built on these inputs, exactly: the release name
    /// and the digest of the base, `cluster-version-operator` (oc replaces the base's labels).
    pub fn release_labels(&self, name: &str) -> Value {
        json!({
            "io.openshift.release": name,
            "io.openshift.release.base-image-digest": self.digest("cluster-version-operator").to_string(),
        })
    }

    /// The store path as a string, for `--store`.
    pub fn store_arg(&self) -> String {
        self.store.to_string_lossy().into_owned()
    }
}

/// The arguments of `okd-forge release new --name NAME --to TO --mapping-file MAPPING --store STORE`
/// followed by `extra`.
pub fn new_args(
    name: &str,
    to: &str,
    mapping: impl AsRef<Path>,
    store: impl AsRef<Path>,
    extra: &[&str],
) -> Vec<String> {
    let path = |p: &Path| p.to_string_lossy().into_owned();
    let mut args: Vec<String> = ["release", "new", "--name", name, "--to", to]
        .map(String::from)
        .into();
    args.extend(["--mapping-file".into(), path(mapping.as_ref())]);
    args.extend(["--store".into(), path(store.as_ref())]);
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

// ------------------------------------------------------------------------------------------------
// Broken inputs
// ------------------------------------------------------------------------------------------------

/// Deliberately wrong inputs, one per error `release new` or `release extract` must report. Each
/// `ReleaseSet` function names the file or tag at fault in its documentation.
pub mod broken {
    use super::*;

    /// File name of [`without_kind`]'s manifest.
    pub const NO_KIND_FILE: &str = "0000_80_machine-config_02_nokind.yaml";
    /// File name of [`without_api_version`]'s manifest.
    pub const NO_API_VERSION_FILE: &str = "0000_80_machine-config_02_noapiversion.yaml";
    /// File name of [`unknown_version_key`]'s manifest.
    pub const UNKNOWN_KEY_FILE: &str = "0000_80_machine-config_03_unknownkey.yaml";
    /// The tag [`unknown_tag_reference`]'s image-references names.
    pub const MISSING_TAG: &str = "no-such-image";
    /// The extra tag of [`conflicting_versions`] (kubernetes=1.30.0, against hyperkube's 1.31.1).
    pub const CONFLICTING_TAG: &str = "kube-rbac-proxy";

    /// The MCO ships [`NO_KIND_FILE`], with an apiVersion but no kind.
    pub fn without_kind(arch: &str) -> ReleaseSet {
        ReleaseSet::standard(arch).add_manifest(
            "machine-config-operator",
            NO_KIND_FILE,
            "apiVersion: v1\nmetadata:\n  name: no-kind\n  namespace: openshift-machine-config-operator\n",
        )
    }

    /// The MCO ships [`NO_API_VERSION_FILE`], with a kind but no apiVersion.
    pub fn without_api_version(arch: &str) -> ReleaseSet {
        ReleaseSet::standard(arch).add_manifest(
            "machine-config-operator",
            NO_API_VERSION_FILE,
            "kind: ConfigMap\nmetadata:\n  name: no-api-version\n  namespace: openshift-machine-config-operator\n",
        )
    }

    /// The MCO's image-references also names [`MISSING_TAG`], which is not an input.
    pub fn unknown_tag_reference(arch: &str) -> ReleaseSet {
        let mut yaml = mco_image_references();
        yaml.push_str(&format!(
            "  - name: {MISSING_TAG}\n    from:\n      kind: DockerImage\n      name: {}\n",
            placeholder(MISSING_TAG)
        ));
        ReleaseSet::standard(arch).image_references("machine-config-operator", &yaml)
    }

    /// The MCO's image-references gives `cli` and `installer` the same source string
    /// (`quay.io/openshift/origin-cli:latest`).
    pub fn duplicate_source(arch: &str) -> ReleaseSet {
        let yaml = image_references_yaml(&[
            (
                "machine-config-operator",
                &placeholder("machine-config-operator"),
            ),
            ("stream-coreos", &placeholder("stream-coreos")),
            ("cli", "quay.io/openshift/origin-cli:latest"),
            ("installer", "quay.io/openshift/origin-cli:latest"),
            ("hyperkube", &placeholder("hyperkube")),
        ]);
        ReleaseSet::standard(arch).image_references("machine-config-operator", &yaml)
    }

    /// The MCO ships [`UNKNOWN_KEY_FILE`], which asks for `0.0.1-snapshot-foo`.
    pub fn unknown_version_key(arch: &str) -> ReleaseSet {
        ReleaseSet::standard(arch).add_manifest(
            "machine-config-operator",
            UNKNOWN_KEY_FILE,
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: unknown-key\n  namespace: openshift-machine-config-operator\n\
             data:\n  foo: 0.0.1-snapshot-foo\n",
        )
    }

    /// A tag [`CONFLICTING_TAG`] reports `kubernetes=1.30.0`; the MCO's image-references names it
    /// beside `hyperkube` (`kubernetes=1.31.1`).
    pub fn conflicting_versions(arch: &str) -> ReleaseSet {
        let mut yaml = mco_image_references();
        yaml.push_str(&format!(
            "  - name: {CONFLICTING_TAG}\n    from:\n      kind: DockerImage\n      name: {}\n",
            placeholder(CONFLICTING_TAG)
        ));
        ReleaseSet::standard(arch)
            .set(
                CONFLICTING_TAG,
                operand(CONFLICTING_TAG, arch).label(LABEL_VERSIONS, "kubernetes=1.30.0"),
            )
            .image_references("machine-config-operator", &yaml)
    }

    /// A release-like image by hand, tagged `tag` in the layout at `store`: a base layer (userland and
    /// the CVO script) and a top layer holding `release-manifests`, a valid `image-references` and
    /// `release-metadata` for version `4.17.0`, one ConfigMap `0000_50_fixture_config.yaml`, then
    /// `extra` (e.g. an entry `release extract` must refuse). With no `extra`, a control that extracts
    /// cleanly.
    pub fn release_image(store: &Path, tag: &str, extra: Vec<Entry>) -> RawManifest {
        release_image_layers(store, tag, vec![], extra)
    }

    /// As [`release_image`], with `lower` added to the base layer (e.g. `release-manifests/…` files
    /// that only readers walking all layers see).
    pub fn release_image_layers(
        store: &Path,
        tag: &str,
        lower: Vec<Entry>,
        extra: Vec<Entry>,
    ) -> RawManifest {
        let layout = Layout::create(store).expect("create layout");
        let image_references = serde_json::to_vec_pretty(&json!({
            "kind": "ImageStream",
            "apiVersion": "image.openshift.io/v1",
            "metadata": { "name": "4.17.0", "creationTimestamp": "2025-01-01T00:00:00Z" },
            "spec": { "lookupPolicy": { "local": false }, "tags": [] },
            "status": { "dockerImageRepository": "" },
        }))
        .expect("json");
        let metadata = serde_json::to_vec_pretty(
            &json!({ "kind": "cincinnati-metadata-v0", "version": "4.17.0", "previous": [] }),
        )
        .expect("json");
        let mut top = vec![
            Entry::dir("release-manifests").mode(0o777),
            Entry::file("release-manifests/image-references", image_references).mode(0o444),
            Entry::file("release-manifests/release-metadata", metadata).mode(0o444),
            Entry::file(
                "release-manifests/0000_50_fixture_config.yaml",
                shared_configmap("fixture"),
            )
            .mode(0o444),
        ];
        top.extend(extra);
        let mut base = cluster_version_operator("amd64").layers[0].clone();
        base.extend(lower);
        ImageBuilder::new("amd64")
            .layer(base)
            .layer(top)
            .entrypoint(&["/usr/bin/cluster-version-operator"])
            .label("io.openshift.release", "4.17.0")
            .write(&layout, Some(tag))
    }
}

// ------------------------------------------------------------------------------------------------
// Reading payloads back
// ------------------------------------------------------------------------------------------------

/// One entry of a layer, as read back.
#[derive(Clone, Debug)]
pub struct LayerEntry {
    /// The name exactly as stored (ustar prefix joined, GNU/PAX long names applied).
    pub path: String,
    /// The tar type flag (`b'0'` file, `b'5'` directory, `b'2'` symlink, ...).
    pub kind: u8,
    /// Permission bits.
    pub mode: u32,
    /// Modification time.
    pub mtime: u64,
    /// Link target, for links.
    pub link: Option<String>,
    /// Contents, for regular files.
    pub contents: Vec<u8>,
}

impl LayerEntry {
    /// The contents as UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8(self.contents.clone()).expect("UTF-8 contents")
    }
}

/// Every entry of a gzip tar layer, in order.
pub fn read_layer(gzip_bytes: &[u8]) -> Vec<LayerEntry> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(gzip_bytes));
    let mut out = Vec::new();
    for e in archive.entries().expect("tar entries") {
        let mut e = e.expect("tar entry");
        let h = e.header().clone();
        let mut contents = Vec::new();
        e.read_to_end(&mut contents).expect("read entry");
        out.push(LayerEntry {
            path: String::from_utf8_lossy(&e.path_bytes()).into_owned(),
            kind: h.entry_type().as_byte(),
            mode: h.mode().expect("mode"),
            mtime: h.mtime().expect("mtime"),
            link: e
                .link_name_bytes()
                .map(|l| String::from_utf8_lossy(&l).into_owned()),
            contents,
        });
    }
    out
}

/// The uncompressed bytes of a gzip blob.
pub fn gunzip(gzip_bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(gzip_bytes)
        .read_to_end(&mut out)
        .expect("gunzip");
    out
}

/// The mtime field of a gzip header (bytes 4..8, little endian).
pub fn gzip_header_mtime(gzip_bytes: &[u8]) -> u32 {
    assert!(
        gzip_bytes.len() > 10 && gzip_bytes[..2] == [0x1f, 0x8b],
        "not gzip"
    );
    u32::from_le_bytes(gzip_bytes[4..8].try_into().expect("4 bytes"))
}

/// An image manifest read from a layout, taken apart.
#[derive(Clone, Debug)]
pub struct ImageParts {
    /// The manifest.
    pub manifest: RawManifest,
    /// The manifest as JSON.
    pub json: Value,
    /// The config blob as JSON.
    pub config: Value,
    /// The config blob's exact bytes.
    pub config_bytes: Vec<u8>,
    /// The layer descriptors, base first.
    pub layers: Vec<Descriptor>,
}

/// Read the image manifest `digest` from `layout` with its config.
pub fn image_parts(layout: &Layout, digest: &Digest) -> ImageParts {
    let bytes = layout.read_blob_bytes(digest).expect("manifest blob");
    let manifest =
        RawManifest::new("payload", bytes.clone(), None, digest.clone()).expect("manifest");
    let json: Value = serde_json::from_slice(&bytes).expect("manifest JSON");
    let (config, layers) = match manifest.parse().expect("parse manifest") {
        oci::manifest::Parsed::Image { config, layers } => (config, layers),
        oci::manifest::Parsed::Index { .. } => panic!("{digest} is a list, not an image"),
    };
    let config_bytes = layout
        .read_blob_bytes(&config.digest)
        .expect("config blob")
        .to_vec();
    ImageParts {
        manifest,
        json,
        config: serde_json::from_slice(&config_bytes).expect("config JSON"),
        config_bytes,
        layers,
    }
}

/// The entries of the layer `desc` in `layout`.
pub fn layer_entries(layout: &Layout, desc: &Descriptor) -> Vec<LayerEntry> {
    read_layer(&layout.read_blob_bytes(&desc.digest).expect("layer blob"))
}

// ------------------------------------------------------------------------------------------------
// A real userland: busybox-static
// ------------------------------------------------------------------------------------------------

/// Whether an ELF file asks for a dynamic loader (has a PT_INTERP program header).
fn has_interpreter(elf: &[u8]) -> bool {
    assert!(
        elf.len() > 64 && elf[..4] == *b"\x7fELF" && elf[4] == 2,
        "not a 64-bit ELF"
    );
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum).any(|i| {
        let o = phoff + i * phentsize;
        u32::from_le_bytes(elf[o..o + 4].try_into().unwrap()) == 3
    })
}

/// The entries of a busybox-static userland: `bin/`, `bin/busybox` (the host's, which must be
/// statically linked: Debian's busybox-static) and a `bin/APPLET` link to it for each of `applets`.
/// Containers run it, so tests that use it need the real binary.
pub fn busybox_userland(applets: &[&str]) -> Vec<Entry> {
    let path = crate::require("busybox");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert!(
        !has_interpreter(&bytes),
        "{} is dynamically linked; the image needs busybox-static (apt-get install busybox-static)",
        path.display()
    );
    let mut entries = vec![
        Entry::dir("bin/"),
        Entry::file("bin/busybox", bytes).mode(0o755),
    ];
    entries.extend(
        applets
            .iter()
            .map(|a| Entry::symlink(&format!("bin/{a}"), "busybox")),
    );
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_of(layout: &Layout, digest: &Digest) -> Value {
        image_parts(layout, digest).config
    }

    #[test]
    fn same_inputs_give_same_digests() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let x = ReleaseSet::standard("amd64").write(a.path());
        let y = ReleaseSet::standard("amd64").write(b.path());
        assert_eq!(x.mapping(), y.mapping());
        let tags: Vec<&str> = x.components.keys().map(String::as_str).collect();
        assert_eq!(tags, STANDARD_TAGS);
        for line in x.mapping().lines() {
            let (tag, spec) = line.split_once('=').unwrap();
            assert!(STANDARD_TAGS.contains(&tag), "{line}");
            assert!(
                spec.starts_with("registry.example.com/okd/content@sha256:"),
                "{line}"
            );
        }
        // Another architecture: other bytes, other digests.
        let c = tempfile::tempdir().unwrap();
        let z = ReleaseSet::standard("arm64").write(c.path());
        for tag in STANDARD_TAGS {
            assert_ne!(x.digest(tag), z.digest(tag), "{tag}");
        }
    }

    #[test]
    fn images_have_correct_diff_ids_and_docker_types() {
        let dir = tempfile::tempdir().unwrap();
        let inputs = ReleaseSet::standard("amd64").write(dir.path());
        let layout = Layout::open(dir.path()).unwrap();
        for tag in STANDARD_TAGS {
            let parts = image_parts(&layout, &inputs.digest(tag));
            assert_eq!(
                parts.manifest.media_type,
                oci::media_type::DOCKER_MANIFEST,
                "{tag}"
            );
            let diff_ids = parts.config["rootfs"]["diff_ids"].as_array().unwrap();
            assert_eq!(diff_ids.len(), parts.layers.len(), "{tag}");
            for (l, d) in parts.layers.iter().zip(diff_ids) {
                assert_eq!(l.media_type, oci::media_type::DOCKER_LAYER_GZIP);
                let blob = layout.read_blob_bytes(&l.digest).unwrap();
                assert_eq!(gzip_header_mtime(&blob), 0);
                let mut tar = Vec::new();
                flate2::read::GzDecoder::new(&blob[..])
                    .read_to_end(&mut tar)
                    .unwrap();
                assert_eq!(Digest::sha256_of(&tar).to_string(), d.as_str().unwrap());
            }
            assert_eq!(parts.config["architecture"], "amd64");
        }
        let cvo = config_of(&layout, &inputs.digest("cluster-version-operator"));
        assert_eq!(
            cvo["config"]["Entrypoint"],
            json!(["/usr/bin/cluster-version-operator"])
        );
        assert!(cvo["config"]["Labels"].get(LABEL_OPERATOR).is_none());
        let mco = config_of(&layout, &inputs.digest("machine-config-operator"));
        assert_eq!(mco["config"]["Labels"][LABEL_OPERATOR], "true");
        assert!(mco["config"]["Labels"].get(LABEL_VERSIONS).is_none());
    }

    #[test]
    fn mco_top_layer_holds_the_manifests_and_the_lower_one_the_stale_file() {
        let dir = tempfile::tempdir().unwrap();
        let inputs = ReleaseSet::standard("amd64").write(dir.path());
        let layout = Layout::open(dir.path()).unwrap();
        let parts = image_parts(&layout, &inputs.digest("machine-config-operator"));
        assert_eq!(parts.layers.len(), 2);
        let lower = layer_entries(&layout, &parts.layers[0]);
        assert!(lower
            .iter()
            .any(|e| e.path == "manifests/0000_80_stale.yaml"));
        let top = layer_entries(&layout, &parts.layers[1]);
        let names: Vec<&str> = top.iter().map(|e| e.path.as_str()).collect();
        assert!(names.contains(&"manifests/image-references"));
        assert!(names.contains(&"manifests/README.md"));
        assert!(!names.contains(&"manifests/0000_80_stale.yaml"));
        let refs = top
            .iter()
            .find(|e| e.path == "manifests/image-references")
            .unwrap()
            .text();
        assert!(refs.contains(
            "name: placeholder.url.oc.will.replace.this.org/placeholdernamespace:stream-coreos"
        ));
    }

    /// umoci reads only OCI media types: unpack the OCI twin of `image`, the standard set's `tag`,
    /// after checking that its layers are the same blobs as the Docker image's. Returns the scratch
    /// directory (keep it while using the bundle) and the bundle.
    fn umoci_unpack(tag: &str, image: ImageBuilder) -> (tempfile::TempDir, PathBuf) {
        let store = tempfile::tempdir().unwrap();
        let inputs = ReleaseSet::standard("amd64").write(store.path());
        let docker_layout = Layout::open(store.path()).unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path();
        let layout = Layout::create(dir.join("oci")).unwrap();
        let twin = image.oci().write(&layout, Some("twin"));
        let ours = image_parts(&layout, &twin.digest);
        let docker = image_parts(&docker_layout, &inputs.digest(tag));
        let digests = |p: &ImageParts| {
            p.layers
                .iter()
                .map(|l| l.digest.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(digests(&ours), digests(&docker));
        assert_eq!(ours.config["rootfs"], docker.config["rootfs"]);
        let bundle = dir.join("bundle");
        crate::umoci(&[
            "unpack",
            "--image",
            &format!("{}:twin", dir.join("oci").display()),
            bundle.to_str().unwrap(),
        ]);
        (scratch, bundle)
    }

    #[test]
    fn umoci_unpacks_the_cvo_fixture() {
        let (_scratch, bundle) = umoci_unpack(
            "cluster-version-operator",
            cluster_version_operator("amd64"),
        );
        let rootfs = bundle.join("rootfs");
        let script = rootfs.join("usr/bin/cluster-version-operator");
        let meta = std::fs::metadata(&script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o755);
        assert!(std::fs::read_to_string(&script)
            .unwrap()
            .starts_with("#!/bin/sh\n"));
        assert!(rootfs
            .join("manifests/0000_00_cluster-version-operator_01_deployment.yaml")
            .is_file());
        assert!(rootfs.join("bootstrap/bootstrap-pod.yaml").is_file());
        assert_eq!(
            std::fs::read_link(rootfs.join("bin")).unwrap(),
            Path::new("usr/bin")
        );
        let config: Value =
            serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
        assert_eq!(
            config["process"]["args"],
            json!(["/usr/bin/cluster-version-operator"])
        );
    }

    #[test]
    fn umoci_unpacks_the_mco_with_both_layers() {
        let (_scratch, bundle) =
            umoci_unpack("machine-config-operator", machine_config_operator("amd64"));
        let manifests = bundle.join("rootfs/manifests");
        // The merged filesystem still has the stale file: only a top-layer reader misses it.
        assert!(manifests.join("0000_80_stale.yaml").is_file());
        assert!(manifests.join("sub/ignored.yaml").is_file());
        assert!(manifests.join("README.md").is_file());
        let link =
            std::fs::read_link(manifests.join("0000_80_machine-config_99_link.yaml")).unwrap();
        assert_eq!(link, Path::new("0000_80_machine-config_00_namespace.yaml"));
    }

    #[test]
    fn multi_arch_inputs_are_docker_lists_over_the_single_arch_images() {
        let dir = tempfile::tempdir().unwrap();
        let inputs = standard_multi(dir.path());
        let layout = Layout::open(dir.path()).unwrap();
        let single = tempfile::tempdir().unwrap();
        let arm64 = ReleaseSet::standard("arm64").write(single.path());
        for tag in STANDARD_TAGS {
            let c = inputs.component(tag);
            assert_eq!(
                c.children.keys().collect::<Vec<_>>(),
                vec!["amd64", "arm64"]
            );
            let raw: Value =
                serde_json::from_slice(&layout.read_blob_bytes(&c.digest).unwrap()).unwrap();
            assert_eq!(raw["mediaType"], oci::media_type::DOCKER_LIST);
            assert_eq!(
                raw["manifests"][1]["digest"],
                c.children["arm64"].to_string()
            );
            assert_eq!(raw["manifests"][1]["platform"]["architecture"], "arm64");
            // The children are the single-arch images.
            assert_eq!(arm64.digest(tag), c.children["arm64"], "{tag}");
            let child = image_parts(&layout, &c.children["arm64"]);
            assert_eq!(child.config["architecture"], "arm64");
        }
        let tags = layout.tags().unwrap();
        assert!(tags
            .iter()
            .any(|t| t.starts_with("cluster-version-operator-multi-")));
    }

    #[test]
    fn broken_entries_are_written_verbatim() {
        let entries = vec![
            Entry::file("/release-manifests/abs.yaml", "x"),
            Entry::file("release-manifests/../../up.yaml", "y"),
            Entry::symlink("release-manifests/esc.yaml", "../../../outside"),
            Entry::hardlink("release-manifests/hard.yaml", "../outside"),
            Entry::char_device("release-manifests/null", 1, 3),
            Entry::file("release-manifests/huge.yaml", "z").declare_size(64 << 30),
        ];
        let tar = tar_bytes(&entries);
        // Read the headers directly: the last entry is truncated on purpose.
        let mut names = Vec::new();
        let mut off = 0;
        while names.len() < entries.len() {
            let h = tar::Header::from_byte_slice(&tar[off..off + 512]);
            names.push((
                String::from_utf8_lossy(&h.path_bytes()).into_owned(),
                h.entry_type().as_byte(),
                h.size().unwrap(),
            ));
            off += 512 + (h.size().unwrap().min(1 << 20) as usize).next_multiple_of(512);
        }
        assert_eq!(names[0], ("/release-manifests/abs.yaml".into(), b'0', 1));
        assert_eq!(names[1].0, "release-manifests/../../up.yaml");
        assert_eq!(names[2].1, b'2');
        assert_eq!(names[3].1, b'1');
        assert_eq!(names[4].1, b'3');
        assert_eq!(names[5].2, 64 << 30);
    }

    #[test]
    fn hand_built_release_image_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let m = broken::release_image(dir.path(), "control", vec![]);
        let layout = Layout::open(dir.path()).unwrap();
        let parts = image_parts(&layout, &m.digest);
        let top = layer_entries(&layout, parts.layers.last().unwrap());
        let names: Vec<&str> = top.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            names,
            [
                "release-manifests",
                "release-manifests/image-references",
                "release-manifests/release-metadata",
                "release-manifests/0000_50_fixture_config.yaml"
            ]
        );
        let long = "a/".repeat(60) + "file.yaml";
        let back = read_layer(&gzip(&tar_bytes(&[Entry::file(&long, "x")])));
        assert_eq!(back[0].path, long);
    }
}
