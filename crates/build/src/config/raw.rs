//! The raw `forge.yaml`: what the user wrote, deserialized as is. [`super::model`] validates it.
//!
//! Every type rejects unknown fields, and its doc comments become the descriptions of
//! `okd-forge config schema`. Fields whose value a later check must point at are
//! [`Spanned`], so that errors can name their line and column.

use std::collections::BTreeMap;

use indexmap::IndexMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

/// An okd-forge configuration file (`forge.yaml`): where images and state live, how each source
/// tree is built for each distribution (variants), what is built (components) and which
/// integration streams the builds feed.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "ForgeConfig", title = "okd-forge configuration (forge.yaml)")]
pub struct RawConfig {
    /// Where images live: an OCI image-layout directory (relative to this file), or a registry
    /// repository as `docker://HOST[:PORT]/REPO`. Default: `./var/store`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<Spanned<String>>,
    /// With a layout store: the repository (`HOST[:PORT]/REPO`) that names the store's images in
    /// payloads (image-references) and in the pull specs handed to verification jobs, e.g. the
    /// address `okd-forge serve` answers on. Default: `okd-forge.local/okd`. With a registry store
    /// the store's own repository is used and this must not be set.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_name: Option<Spanned<String>>,
    /// The state database: an SQLite file (relative to this file). Default: `./var/forge.db`.
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// How many builds run at once (at least 1). Default: the number of CPUs.
    #[serde(default)]
    #[schemars(with = "Option<u64>")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<Spanned<u64>>,
    /// Where accepted releases and their content are published.
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish: Option<RawPublish>,
    /// How one source tree is built for one distribution (`okd-scos`, `okd`), by name.
    #[serde(default)]
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub variants: IndexMap<String, RawVariant>,
    /// The git repositories and the images each builds, by component name.
    #[serde(default)]
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub components: IndexMap<String, RawComponent>,
    /// The integration streams (one per minor and variant, e.g. `okd-scos-4.17`), by name.
    #[serde(default)]
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub streams: IndexMap<String, RawStream>,
    /// Lease pools that cap concurrent verification jobs per scarce resource (cloud quota), like
    /// Prow's boskos: pool name → how many leases it has (at least 1).
    #[serde(default)]
    #[schemars(with = "IndexMap<String, u64>")]
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub leases: IndexMap<String, Spanned<u64>>,
}

/// Publication targets.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Publish")]
pub struct RawPublish {
    /// The repository stable release payloads are mirrored to on promotion (e.g.
    /// `quay.io/okd/scos-release`); give `content` with it.
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub release: Option<Spanned<String>>,
    /// The repository the component images of a stable release are mirrored to (e.g.
    /// `quay.io/okd/scos-content`).
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub content: Option<Spanned<String>>,
    /// Sign every stable release on promotion, and make payloads trust the key.
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing: Option<RawSigning>,
    /// A directory to extract each stable release's tools into (`<dir>/<release>/`, as
    /// `oc adm release extract --tools`), relative to this file.
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub tools: Option<Spanned<String>>,
}

/// How stable releases are signed.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Signing")]
pub struct RawSigning {
    /// The secret key file (armored or binary, e.g. `gpg --export-secret-keys --armor ID`),
    /// relative to this file.
    #[schemars(with = "String")]
    pub key: Spanned<String>,
    /// A file whose first line is the key's passphrase; `OKD_FORGE_SIGNING_PASSPHRASE` may hold
    /// it instead.
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passphrase_file: Option<String>,
    /// The signature store directory signatures are written to
    /// (`<store>/sha256=<hex>/signature-N`; default `var/signatures`). `okd-forge serve` serves it.
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// The URL clusters read the store at (http:// or https://). With it, every payload carries
    /// the verification ConfigMap that makes clusters trust the key and this store.
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub url: Option<Spanned<String>>,
}

/// How a source tree is built for one distribution.
#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Variant")]
pub struct RawVariant {
    /// Build arguments added to every image build of this variant (e.g. `TAGS: scos`); an image's
    /// own `build_args` win.
    #[serde(default)]
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub build_args: BTreeMap<String, String>,
    /// Base-image substitutions: every `FROM` naming a key is built from the value instead.
    #[serde(default)]
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub base_images: BTreeMap<String, String>,
    /// Payload tag renames: an image promoted as the key is tagged as the value in this
    /// variant's streams (e.g. the OS image tag).
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tag_renames: BTreeMap<String, Spanned<String>>,
}

/// A git repository and the images built from it.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Component")]
pub struct RawComponent {
    /// The repository: an `https://`, `http://`, `ssh://` or `file://` URL, or scp-like
    /// `git@host:path`.
    #[schemars(with = "String")]
    pub git: Spanned<String>,
    /// Per-stream branch overrides (stream name → branch). Streams not listed build the stream's
    /// own `branch`. Exclusive with `ref`.
    #[serde(default)]
    #[schemars(with = "Option<BTreeMap<String, String>>")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch: Option<Spanned<BTreeMap<String, String>>>,
    /// A fixed ref (tag or commit) built for every stream instead of a branch. Exclusive with
    /// `branch`.
    #[serde(default, rename = "ref")]
    #[schemars(with = "Option<String>")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<Spanned<String>>,
    /// The images this repository builds (at least one).
    #[schemars(with = "Vec<RawImage>")]
    pub images: Spanned<Vec<Spanned<RawImage>>>,
}

/// One image of a component: a Containerfile build (a file, or its text inline) or a native
/// recipe (exactly one of `containerfile`, `containerfile_literal` and `native`).
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Image")]
pub struct RawImage {
    /// The image's tag in the stream and the payload (e.g. `machine-config-operator`).
    #[schemars(with = "String")]
    pub to: Spanned<String>,
    /// The Containerfile (or Dockerfile) to build, relative to `context`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub containerfile: Option<Spanned<String>>,
    /// The Containerfile's text itself, given inline instead of a file (ci-operator's
    /// `dockerfile_literal`); built in `context`. Exclusive with `containerfile` and `native`.
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub containerfile_literal: Option<Spanned<String>>,
    /// The build context, relative to the repository root. Default: `.`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<Spanned<String>>,
    /// Build arguments for this image; they override the variant's.
    #[serde(default)]
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub build_args: BTreeMap<String, String>,
    /// Replaces the base image of the Containerfile's last stage with this image (a pull spec,
    /// or the tag of another image in the same stream).
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Images substituted into the Containerfile: key = the image to use (a pull spec or a
    /// stream tag); `as` = the `FROM` names it replaces.
    #[serde(default)]
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, RawInput>,
    /// A native recipe: run a command in the checkout, then layer its outputs onto a base image.
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub native: Option<RawNative>,
    /// Component versions the image carries (`kubernetes: 1.30.1`), stamped as the label
    /// `io.openshift.build.versions` (`kubernetes=1.30.1`) that payloads read.
    #[serde(default)]
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub versions: BTreeMap<String, String>,
    /// Labels set on the image by every build, after the base's and the Containerfile's, before
    /// okd-forge's `io.openshift.build.*` (e.g. `io.openshift.release.operator: "true"` for an
    /// operator built natively).
    #[serde(default)]
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The OS image: in a stream with an `os:` source, built on that stream's OS release (its
    /// last stage's base, or `native.base`, is replaced), labelled with its `machine-os` version,
    /// and promoted only through an Accepted payload.
    #[serde(default)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub os: bool,
}

/// An image substituted into a Containerfile.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Input")]
pub struct RawInput {
    /// The `FROM` names (images or stage names) this input replaces.
    #[serde(rename = "as")]
    pub as_: Vec<String>,
}

/// A native, daemonless build.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Native")]
pub struct RawNative {
    /// The command run in the checkout (program and arguments; no shell). Without one, the outputs
    /// are taken from the checkout as they are (manifests, scripts, prebuilt files).
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Spanned<Vec<String>>>,
    /// What the command produced, as `CHECKOUT_PATH:IMAGE_PATH` (e.g.
    /// `bin/installer:/usr/bin/installer`): the checkout path is relative, the image path absolute.
    #[schemars(with = "Vec<String>")]
    pub outputs: Spanned<Vec<Spanned<String>>>,
    /// The image the outputs are layered onto (a pull spec, or the tag of another image in the
    /// same stream).
    pub base: String,
}

/// One integration stream: the images of one minor built for one variant.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Stream")]
pub struct RawStream {
    /// The variant the stream's images are built for (a key of `variants`).
    #[schemars(with = "String")]
    pub variant: Spanned<String>,
    /// The branch built by default: `master` (or `main`) feeds the next minor, `release-4.y`
    /// feeds 4.y. Default: `release-<minor>`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch: Option<Spanned<String>>,
    /// The minor (`4.17`). Required with `master`/`main` or another branch not named
    /// `release-X.Y`; must match a `release-X.Y` branch.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minor: Option<Spanned<String>>,
    /// Where successful builds are promoted. Default: every image, enabled.
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promotion: Option<RawPromotion>,
    /// A cron expression (`0 3 * * *`, UTC) at which `okd-forge watch` rebuilds every image of
    /// the stream even when nothing changed (the input-hash cache is bypassed).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rebuild: Option<Spanned<String>>,
    /// Payload cutting, verification and acceptance (read by the release controller).
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<super::release::RawRelease>,
    /// The OS this stream's OS image is built on: a CoreOS stream followed (`okd-forge os poll`).
    #[serde(default)]
    #[schemars(with = "Option<RawOs>")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os: Option<Spanned<RawOs>>,
}

/// Where a stream's OS releases come from: CoreOS stream metadata (with a release index or an
/// image repository for the images), or a container image tag followed.
#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Os")]
pub struct RawOs {
    /// The CoreOS stream metadata (`https://builds.coreos.fedoraproject.org/streams/stable.json`,
    /// a `file://` URL or a path relative to this file): its versions are the OS releases.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Spanned<String>>,
    /// With `metadata`: the release index (`releases.json`) whose `digest-ref`s name each
    /// release's container image.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<Spanned<String>>,
    /// With `metadata`: the OS image repository, release `V` being `REPO:V` (as
    /// `quay.io/fedora/fedora-coreos:39.20231101.3.0`). Without it: an image tag followed
    /// (`quay.io/fedora/fedora-coreos:stable`), its `version` label naming the release.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<Spanned<String>>,
}

/// The promotion target of a stream.
#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Promotion")]
pub struct RawPromotion {
    /// Build but do not promote (the stream's tags do not move).
    #[serde(default)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
    /// Image tags built but not promoted into this stream.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub excluded_images: Vec<Spanned<String>>,
    /// Images promoted into this stream without being built: tag → pull spec.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub additional_images: BTreeMap<String, Spanned<String>>,
}
