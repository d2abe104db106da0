//! The validated configuration: every reference resolved, every rule checked. Nothing downstream
//! re-checks what this module guarantees.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::num::NonZeroUsize;
use std::path::{Component as PathPart, Path, PathBuf};

use indexmap::IndexMap;
use serde::Serialize;
use serde_saphyr::{Location, Spanned};

use super::raw::{RawComponent, RawConfig, RawImage, RawOs, RawStream, RawVariant};
use super::{ConfigError, Problem};

/// A valid configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// Where images live.
    pub store: Store,
    /// The repository (`HOST[:PORT]/REPO`) that names stored images in pull specs: a registry
    /// store's own, or `store_name:` for a layout store.
    pub store_name: String,
    /// The SQLite state database.
    pub state: PathBuf,
    /// How many builds run at once.
    pub parallelism: NonZeroUsize,
    /// What promotion publishes.
    pub publish: Publish,
    /// Variants by name, in file order.
    pub variants: IndexMap<String, Variant>,
    /// Components by name, in file order.
    pub components: IndexMap<String, Component>,
    /// Streams by name, in file order.
    pub streams: IndexMap<String, Stream>,
    /// Lease pools: name → capacity.
    pub leases: IndexMap<String, usize>,
}

/// How images in a layout store are named when no `store_name:` is given.
pub const DEFAULT_STORE_NAME: &str = "okd-forge.local/okd";

/// Where images live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Store {
    /// An OCI image-layout directory.
    Layout(PathBuf),
    /// A registry repository, `HOST[:PORT]/REPO` (written `docker://HOST[:PORT]/REPO`).
    Registry(String),
}

/// What promotion publishes of a stable release.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Publish {
    /// Where stable releases are mirrored to, if anywhere.
    pub mirror: Option<PublishRepos>,
    /// How stable releases are signed, if they are.
    pub signing: Option<Signing>,
    /// The directory each stable release's tools are extracted into (`<dir>/<release>/`).
    pub tools: Option<PathBuf>,
}

/// The repositories stable releases are mirrored to (`HOST[:PORT]/REPO`, no transport).
#[derive(Debug, Clone, Serialize)]
pub struct PublishRepos {
    /// The repository of stable release payloads.
    pub release: String,
    /// The repository of their component images.
    pub content: String,
}

/// How stable releases are signed.
#[derive(Debug, Clone, Serialize)]
pub struct Signing {
    /// The secret key file.
    pub key: PathBuf,
    /// A file whose first line is the key's passphrase.
    pub passphrase_file: Option<PathBuf>,
    /// The signature store directory written to.
    pub store: PathBuf,
    /// The URL clusters read the store at; payloads carry the verification ConfigMap when set.
    pub url: Option<String>,
}

/// How a source tree is built for one distribution.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Variant {
    /// Build arguments of every build.
    pub build_args: BTreeMap<String, String>,
    /// Base-image substitutions: `FROM key` is built from the value.
    pub base_images: BTreeMap<String, String>,
    /// Payload tag renames (valid tags).
    pub tag_renames: BTreeMap<String, String>,
}

/// A git repository and the images it builds.
#[derive(Debug, Clone, Serialize)]
pub struct Component {
    /// The repository.
    pub git: GitUrl,
    /// A fixed ref built for every stream, or `None` to build each stream's branch.
    pub git_ref: Option<String>,
    /// Per-stream branch overrides; every key is a stream.
    pub branches: BTreeMap<String, String>,
    /// The images, at least one.
    pub images: Vec<Image>,
}

/// What a component is built from in one stream.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Revision {
    /// The head of a branch.
    Branch(String),
    /// A fixed tag or commit.
    Ref(String),
}

/// A git remote URL, checked to be one okd-forge can fetch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GitUrl {
    /// The URL as written.
    pub url: String,
    /// How it is reached.
    pub scheme: GitScheme,
}

/// How a git remote is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GitScheme {
    /// `https://`
    Https,
    /// `http://`
    Http,
    /// `ssh://` or scp-like `user@host:path`.
    Ssh,
    /// `file://`
    File,
}

/// One image of a component.
#[derive(Debug, Clone, Serialize)]
pub struct Image {
    /// The tag in streams and payloads (before the variant's renames); a valid OCI tag, unique.
    pub to: String,
    /// How it is built.
    pub recipe: Recipe,
    /// Build arguments (override the variant's).
    pub build_args: BTreeMap<String, String>,
    /// Replacement for the base image of the last stage.
    pub from: Option<String>,
    /// Substituted images: image → the `FROM` names it replaces.
    pub inputs: BTreeMap<String, Vec<String>>,
    /// Component versions (`kubernetes` → `1.30.1`) for the `io.openshift.build.versions` label.
    pub versions: BTreeMap<String, String>,
    /// Labels every build of the image gets (e.g. `io.openshift.release.operator: "true"`).
    pub labels: BTreeMap<String, String>,
    /// The OS image: built on the stream's OS release where the stream has an `os:` source.
    pub os: bool,
}

/// How an image is built.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Recipe {
    /// A Containerfile build; both paths are relative and stay inside the checkout.
    Containerfile {
        /// The build context, relative to the repository root.
        context: PathBuf,
        /// The Containerfile, relative to the context.
        containerfile: PathBuf,
    },
    /// A Containerfile given inline (its text), built in `context`.
    ContainerfileLiteral {
        /// The build context, relative to the repository root.
        context: PathBuf,
        /// The Containerfile's text.
        text: String,
    },
    /// A native build.
    Native {
        /// Program and arguments; empty when the recipe gives no command (nothing is run, the
        /// outputs come from the checkout as they are).
        command: Vec<String>,
        /// Outputs, at least one.
        outputs: Vec<NativeOutput>,
        /// The base image.
        base: String,
    },
}

/// One output of a native build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NativeOutput {
    /// Relative to the checkout, inside it.
    pub source: PathBuf,
    /// Absolute path in the image.
    pub dest: String,
}

/// A minor version, `4.17`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Minor {
    /// `4`
    pub major: u64,
    /// `17`
    pub minor: u64,
}

impl fmt::Display for Minor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl Serialize for Minor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Minor {
    /// Parses `X.Y`.
    pub fn parse(text: &str) -> Option<Minor> {
        let (major, minor) = text.split_once('.')?;
        let number = |s: &str| {
            (!s.is_empty()
                && s.bytes().all(|b| b.is_ascii_digit())
                && (s == "0" || !s.starts_with('0')))
            .then(|| s.parse().ok())
            .flatten()
        };
        Some(Minor {
            major: number(major)?,
            minor: number(minor)?,
        })
    }
}

/// One integration stream.
#[derive(Debug, Clone, Serialize)]
pub struct Stream {
    /// The variant (a key of [`Config::variants`]).
    pub variant: String,
    /// The branch built by default.
    pub branch: String,
    /// The minor the stream integrates.
    pub minor: Minor,
    /// Where builds are promoted.
    pub promotion: Promotion,
    /// The images of the stream, in component then image order, with their final tags.
    pub images: Vec<StreamImage>,
    /// When every image is rebuilt regardless of the cache (`rebuild:`, a cron expression in UTC).
    pub rebuild: Option<Rebuild>,
    /// Payload cutting and verification, if the stream has any.
    pub release: Option<super::release::Release>,
    /// The OS releases the stream's OS image is built on, if it follows any.
    pub os: Option<OsSource>,
}

/// Where a stream's OS releases come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OsSource {
    /// CoreOS stream metadata: its versions are the releases; the release index's `digest-ref`,
    /// else `image:VERSION`, is each release's image.
    Metadata {
        /// The stream metadata: an `http(s)://` or `file://` URL, or an absolute path.
        metadata: String,
        /// The release index, same forms.
        index: Option<String>,
        /// The OS image repository (a pull spec without tag, `docker://…`, or `oci:DIR`).
        image: Option<String>,
    },
    /// A container image tag followed: a new digest is a new release, named by its `version`
    /// label.
    Image {
        /// `REPO:TAG` (a pull spec, `docker://…`, or `oci:DIR:TAG`).
        image: String,
    },
}

impl OsSource {
    /// Where the releases are read: the metadata URL, or the image.
    pub fn location(&self) -> &str {
        match self {
            OsSource::Metadata { metadata, .. } => metadata,
            OsSource::Image { image } => image,
        }
    }
}
/// A periodic forced rebuild: a cron expression, checked.
#[derive(Debug, Clone)]
pub struct Rebuild {
    /// The expression as written.
    pub expression: String,
    /// The parsed schedule.
    pub cron: croner::Cron,
}

impl Serialize for Rebuild {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.expression)
    }
}

/// One built image of a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamImage {
    /// The tag in this stream (after the variant's renames), unique in the stream.
    pub tag: String,
    /// The component that builds it.
    pub component: String,
    /// Its index in the component's images.
    pub image: usize,
    /// Whether a successful build is promoted (not excluded, promotion enabled).
    pub promoted: bool,
}

/// The promotion target of a stream.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Promotion {
    /// Nothing is promoted.
    pub disabled: bool,
    /// Built image tags (`to`) that are not promoted; every one is built in the stream.
    pub excluded_images: BTreeSet<String>,
    /// Tags promoted without a build → pull spec; none collides with a built tag.
    pub additional_images: BTreeMap<String, String>,
}

impl Config {
    /// What `component` is built from in `stream`, or `None` if either is unknown.
    pub fn revision(&self, component: &str, stream: &str) -> Option<Revision> {
        let c = self.components.get(component)?;
        let s = self.streams.get(stream)?;
        Some(match &c.git_ref {
            Some(r) => Revision::Ref(r.clone()),
            None => Revision::Branch(c.branches.get(stream).unwrap_or(&s.branch).clone()),
        })
    }

    /// The stream `name`, or an error listing the streams there are.
    pub fn stream_named(&self, name: &str) -> Result<&Stream, String> {
        self.streams.get(name).ok_or_else(|| {
            format!(
                "no stream '{name}' in the configuration; streams: {}",
                names(self.streams.keys())
            )
        })
    }

    /// The component `name`, or an error listing the components there are.
    pub fn component_named(&self, name: &str) -> Result<&Component, String> {
        self.components.get(name).ok_or_else(|| {
            format!(
                "no component '{name}' in the configuration; components: {}",
                names(self.components.keys())
            )
        })
    }

    /// The stream tag of `stream`'s OS image: its promoted `os: true` image, when the stream
    /// follows an OS.
    pub fn os_tag(&self, stream: &str) -> Option<&str> {
        let s = self.streams.get(stream)?;
        s.os.as_ref()?;
        s.images
            .iter()
            .find(|i| i.promoted && self.components[&i.component].images[i.image].os)
            .map(|i| i.tag.as_str())
    }

    /// The number of images all components build.
    pub fn image_count(&self) -> usize {
        self.components.values().map(|c| c.images.len()).sum()
    }
}

/// Whether `tag` is a valid OCI tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn is_valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// Parses a git remote URL: `https://`, `http://`, `ssh://`, `file://` or scp-like `user@host:path`.
pub fn parse_git_url(text: &str) -> Result<GitUrl, String> {
    let ok = |scheme| {
        Ok(GitUrl {
            url: text.to_string(),
            scheme,
        })
    };
    if !text.contains("://") {
        // scp-like: [user@]host:path, host without '/'.
        if let Some((host, path)) = text.split_once(':') {
            if !host.is_empty() && !host.contains('/') && !path.is_empty() && host.contains('@') {
                return ok(GitScheme::Ssh);
            }
        }
        return Err(format!(
            "'{text}' is not a git URL; use https://, http://, ssh://, file:// or user@host:path"
        ));
    }
    let url = url::Url::parse(text).map_err(|e| format!("'{text}' is not a valid URL: {e}"))?;
    let scheme = match url.scheme() {
        "https" => GitScheme::Https,
        "http" => GitScheme::Http,
        "ssh" | "git+ssh" => GitScheme::Ssh,
        "file" => GitScheme::File,
        other => {
            return Err(format!(
                "unsupported git URL scheme '{other}' in '{text}'; use https, http, ssh or file"
            ))
        }
    };
    if url.path().split('/').any(|seg| seg == "." || seg == "..") || text.contains("/../") {
        return Err(format!(
            "'{text}' has '.' or '..' in its path; write the repository's path without them"
        ));
    }
    if scheme == GitScheme::File {
        if url.path().is_empty() || url.path() == "/" {
            return Err(format!("'{text}' names no repository path"));
        }
    } else if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("'{text}' names no host"));
    } else if url.path().trim_matches('/').is_empty() {
        return Err(format!("'{text}' names no repository path"));
    }
    ok(scheme)
}

/// The minor a `release-X.Y` (or `openshift-X.Y`) branch feeds.
pub fn branch_minor(branch: &str) -> Option<Minor> {
    branch
        .strip_prefix("release-")
        .or_else(|| branch.strip_prefix("openshift-"))
        .and_then(Minor::parse)
}

/// Collects problems of one file.
pub(super) struct Checker<'a> {
    file: &'a str,
    /// The file's directory: relative paths are relative to it.
    base: &'a Path,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    /// An image reference with a relative `oci:` layout path made relative to the file's directory,
    /// as `store` and `state` are; anything else as written.
    fn image_ref(&self, image: String) -> String {
        match image.strip_prefix("oci:") {
            Some(path) if !path.starts_with('/') => {
                format!("oci:{}", self.base.join(path).display())
            }
            _ => image,
        }
    }

    pub(super) fn at(
        &mut self,
        at: Location,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.problems
            .push(Problem::new(self.file, at, field.into(), message.into()));
    }
}

/// The `publish:` block.
fn publish(ck: &mut Checker, p: super::raw::RawPublish) -> Publish {
    let repo = |ck: &mut Checker, r: &Spanned<String>, field: &str| {
        let bare = r.value.strip_prefix("docker://").unwrap_or(&r.value);
        let ok = matches!(
            format!("docker://{bare}").parse::<oci::ImageRef>(),
            Ok(oci::ImageRef::Registry { selector: None, .. })
        );
        if !ok {
            ck.at(
                r.referenced,
                format!("publish.{field}"),
                format!(
                    "'{}' is not a repository HOST[:PORT]/REPO (no tag)",
                    r.value
                ),
            );
        }
        bare.to_string()
    };
    let mirror = match (&p.release, &p.content) {
        (Some(r), Some(c)) => Some(PublishRepos {
            release: repo(ck, r, "release"),
            content: repo(ck, c, "content"),
        }),
        (None, None) => None,
        (Some(one), None) | (None, Some(one)) => {
            ck.at(
                one.referenced,
                "publish",
                "give both release and content (the repositories stable releases are mirrored to), or neither",
            );
            None
        }
    };
    let signing = p.signing.map(|s| {
        if let Some(u) = &s.url {
            if !(u.value.starts_with("http://") || u.value.starts_with("https://")) {
                ck.at(
                    u.referenced,
                    "publish.signing.url",
                    format!(
                        "'{}' is not an http:// or https:// URL (where clusters read the signature store)",
                        u.value
                    ),
                );
            }
        }
        if s.key.value.is_empty() {
            ck.at(s.key.referenced, "publish.signing.key", "empty path");
        }
        Signing {
            key: ck.base.join(&s.key.value),
            passphrase_file: s.passphrase_file.map(|f| ck.base.join(f)),
            store: ck
                .base
                .join(s.store.as_deref().unwrap_or("var/signatures")),
            url: s.url.map(|u| u.value),
        }
    });
    Publish {
        mirror,
        signing,
        tools: p.tools.map(|t| ck.base.join(t.value)),
    }
}

/// The build context of a Containerfile build: `.` by default, else a path inside the repository.
fn build_context(ck: &mut Checker, field: &str, context: Option<Spanned<String>>) -> PathBuf {
    let Some(c) = context else {
        return PathBuf::from(".");
    };
    if !is_inside(&c.value) {
        ck.at(
            c.referenced,
            format!("{field}.context"),
            format!(
                "'{}' must be a relative path inside the repository (no '..')",
                c.value
            ),
        );
    }
    PathBuf::from(c.value)
}

/// Whether `p` is a relative path that stays inside its root (no `..`, not absolute).
fn is_inside(p: &str) -> bool {
    !p.is_empty()
        && Path::new(p)
            .components()
            .all(|c| matches!(c, PathPart::Normal(_) | PathPart::CurDir))
}

fn names<'a>(keys: impl Iterator<Item = &'a String>) -> String {
    let all: Vec<&str> = keys.map(String::as_str).collect();
    if all.is_empty() {
        "(none)".to_string()
    } else {
        all.join(", ")
    }
}

/// Validates `raw` (read from `file`, relative paths against `base`) into a [`Config`].
pub(crate) fn validate(raw: RawConfig, file: &str, base: &Path) -> Result<Config, ConfigError> {
    let mut ck = Checker {
        file,
        base,
        problems: Vec::new(),
    };

    let store = match &raw.store {
        None => Store::Layout(base.join("var/store")),
        Some(s) => match s.value.strip_prefix("docker://") {
            Some(repo) if repo.contains('/') && !repo.starts_with('/') => {
                Store::Registry(repo.to_string())
            }
            Some(_) => {
                ck.at(
                    s.referenced,
                    "store",
                    format!("'{}' is not docker://HOST[:PORT]/REPO", s.value),
                );
                Store::Registry(String::new())
            }
            None => {
                let dir = s.value.strip_prefix("oci:").unwrap_or(&s.value);
                if dir.is_empty() {
                    ck.at(s.referenced, "store", "empty store path");
                }
                Store::Layout(base.join(dir))
            }
        },
    };
    let store_name = match (&store, &raw.store_name) {
        (Store::Registry(repo), None) => repo.clone(),
        (Store::Registry(_), Some(n)) => {
            ck.at(
                n.referenced,
                "store_name",
                "only a layout store is named by store_name; a registry store's images are named by its repository",
            );
            String::new()
        }
        (Store::Layout(_), None) => DEFAULT_STORE_NAME.to_string(),
        (Store::Layout(_), Some(n)) => {
            let parsed = format!("docker://{}", n.value).parse::<oci::ImageRef>();
            let valid = matches!(parsed, Ok(oci::ImageRef::Registry { repo, selector: None })
                if n.value.split('/').next() == Some(repo.registry.as_str()));
            if !valid {
                ck.at(
                    n.referenced,
                    "store_name",
                    format!("'{}' is not a repository HOST[:PORT]/REPO", n.value),
                );
            }
            n.value.clone()
        }
    };
    let state = base.join(raw.state.as_deref().unwrap_or("var/forge.db"));
    let parallelism = match &raw.parallelism {
        None => std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN),
        Some(p) => match usize::try_from(p.value).ok().and_then(NonZeroUsize::new) {
            Some(n) => n,
            None => {
                ck.at(p.referenced, "parallelism", "must be at least 1");
                NonZeroUsize::MIN
            }
        },
    };
    let publish = raw.publish.map(|p| publish(&mut ck, p)).unwrap_or_default();

    let variants: IndexMap<String, Variant> = raw
        .variants
        .into_iter()
        .map(|(name, v)| {
            let v = variant(&mut ck, &name, v);
            (name, v)
        })
        .collect();

    let stream_names: Vec<String> = raw.streams.keys().cloned().collect();
    let mut components = IndexMap::new();
    // Image tag → the field that first builds it.
    let mut built: HashMap<String, String> = HashMap::new();
    for (name, c) in raw.components {
        let c = component(&mut ck, &name, c, &stream_names, &mut built);
        components.insert(name, c);
    }

    let mut leases = IndexMap::new();
    for (pool, n) in raw.leases {
        if n.value == 0 {
            ck.at(
                n.referenced,
                format!("leases.{pool}"),
                "a pool needs at least 1 lease",
            );
        }
        leases.insert(pool, n.value as usize);
    }

    let mut streams = IndexMap::new();
    for (name, s) in raw.streams {
        let release = s
            .release
            .map(|r| super::release::release(&mut ck, &name, r, &stream_names, &leases));
        let raw_stream = RawStream { release: None, ..s };
        let os_at = raw_stream.os.as_ref().map(|o| o.referenced);
        if let Some(mut s) = stream(&mut ck, &name, raw_stream, &variants, &components) {
            if let (Some(at), None) = (os_at, &release) {
                ck.at(
                    at,
                    format!("streams.{name}.os"),
                    "a stream that follows an OS needs a `release:` block: a new OS image enters \
                     the stream only through a verified payload",
                );
            }
            s.release = release;
            streams.insert(name, s);
        }
    }

    if !ck.problems.is_empty() {
        return Err(ConfigError::Invalid {
            problems: ck.problems,
        });
    }
    Ok(Config {
        store,
        store_name,
        state,
        parallelism,
        publish,
        variants,
        components,
        streams,
        leases,
    })
}

fn variant(ck: &mut Checker, name: &str, v: RawVariant) -> Variant {
    let mut tag_renames = BTreeMap::new();
    for (from, to) in v.tag_renames {
        if !is_valid_tag(&to.value) {
            ck.at(
                to.referenced,
                format!("variants.{name}.tag_renames.{from}"),
                format!("'{}' is not a valid image tag", to.value),
            );
        }
        tag_renames.insert(from, to.value);
    }
    Variant {
        build_args: v.build_args,
        base_images: v
            .base_images
            .into_iter()
            .map(|(k, image)| (k, ck.image_ref(image)))
            .collect(),
        tag_renames,
    }
}

fn component(
    ck: &mut Checker,
    name: &str,
    c: RawComponent,
    streams: &[String],
    built: &mut HashMap<String, String>,
) -> Component {
    let field = format!("components.{name}");
    let git = parse_git_url(&c.git.value).unwrap_or_else(|e| {
        ck.at(c.git.referenced, format!("{field}.git"), e);
        GitUrl {
            url: c.git.value.clone(),
            scheme: GitScheme::Https,
        }
    });
    let mut branches = BTreeMap::new();
    if let Some(b) = c.branch {
        if let Some(r) = &c.git_ref {
            ck.at(
                r.referenced,
                format!("{field}.ref"),
                "give either branch or ref, not both",
            );
        }
        for (stream, branch) in b.value {
            if !streams.contains(&stream) {
                ck.at(
                    b.referenced,
                    format!("{field}.branch.{stream}"),
                    format!(
                        "unknown stream '{stream}'; defined streams: {}",
                        names(streams.iter())
                    ),
                );
            } else if branch.trim().is_empty() {
                ck.at(
                    b.referenced,
                    format!("{field}.branch.{stream}"),
                    "empty branch",
                );
            }
            branches.insert(stream, branch);
        }
    }
    if let Some(r) = &c.git_ref {
        if r.value.trim().is_empty() {
            ck.at(r.referenced, format!("{field}.ref"), "empty ref");
        }
    }
    if c.images.value.is_empty() {
        ck.at(
            c.images.referenced,
            format!("{field}.images"),
            "a component builds at least one image",
        );
    }
    let images = c
        .images
        .value
        .into_iter()
        .enumerate()
        .map(|(i, img)| image(ck, &format!("{field}.images[{i}]"), img, built))
        .collect();
    Component {
        git,
        git_ref: c.git_ref.map(|r| r.value),
        branches,
        images,
    }
}

fn image(
    ck: &mut Checker,
    field: &str,
    img: Spanned<RawImage>,
    built: &mut HashMap<String, String>,
) -> Image {
    let at = img.referenced;
    let img = img.value;
    let to = &img.to;
    if !is_valid_tag(&to.value) {
        ck.at(
            to.referenced,
            format!("{field}.to"),
            format!(
                "'{}' is not a valid image tag (letters, digits, '_', '.', '-'; at most 128)",
                to.value
            ),
        );
    } else if let Some(first) = built.get(&to.value) {
        ck.at(
            to.referenced,
            format!("{field}.to"),
            format!("image tag '{}' is already built by {first}", to.value),
        );
    } else {
        built.insert(to.value.clone(), field.to_string());
    }

    let literal_with_other = img.containerfile_literal.is_some()
        && (img.containerfile.is_some() || img.native.is_some());
    let recipe = match (img.containerfile, img.native) {
        (Some(cf), Some(_)) => {
            ck.at(
                cf.referenced,
                field.to_string(),
                "give either containerfile or native, not both",
            );
            None
        }
        _ if literal_with_other => {
            let lit = img
                .containerfile_literal
                .as_ref()
                .map_or(at, |l| l.referenced);
            ck.at(
                lit,
                field.to_string(),
                "give only one of containerfile, containerfile_literal or native",
            );
            None
        }
        (None, None) => match img.containerfile_literal {
            None => {
                ck.at(
                    at,
                    field.to_string(),
                    "give one of containerfile, containerfile_literal or native",
                );
                None
            }
            Some(lit) => {
                if lit.value.trim().is_empty() {
                    ck.at(
                        lit.referenced,
                        format!("{field}.containerfile_literal"),
                        "empty Containerfile",
                    );
                }
                let context = build_context(ck, field, img.context);
                Some(Recipe::ContainerfileLiteral {
                    context,
                    text: lit.value,
                })
            }
        },
        (Some(cf), None) => {
            if !is_inside(&cf.value) {
                ck.at(
                    cf.referenced,
                    format!("{field}.containerfile"),
                    format!(
                        "'{}' must be a relative path inside the context (no '..')",
                        cf.value
                    ),
                );
            }
            let context = build_context(ck, field, img.context);
            Some(Recipe::Containerfile {
                context,
                containerfile: PathBuf::from(cf.value),
            })
        }
        (None, Some(n)) => {
            if let Some(c) = &img.context {
                ck.at(
                    c.referenced,
                    format!("{field}.context"),
                    "context applies to containerfile builds only",
                );
            }
            let command = match n.command {
                None => Vec::new(),
                Some(c) => {
                    if c.value.first().is_none_or(|p| p.is_empty()) {
                        ck.at(
                            c.referenced,
                            format!("{field}.native.command"),
                            "the command needs at least a program (or leave `command` out to \
                             take the outputs from the checkout as they are)",
                        );
                    }
                    c.value
                }
            };
            if n.outputs.value.is_empty() {
                ck.at(
                    n.outputs.referenced,
                    format!("{field}.native.outputs"),
                    "a native build declares at least one output",
                );
            }
            if n.base.trim().is_empty() {
                ck.at(at, format!("{field}.native.base"), "empty base image");
            }
            let mut outputs = Vec::new();
            for (i, o) in n.outputs.value.into_iter().enumerate() {
                match o.value.split_once(':') {
                    Some((source, dest))
                        if is_inside(source) && dest.starts_with('/') && dest.len() > 1 =>
                    {
                        outputs.push(NativeOutput {
                            source: PathBuf::from(source),
                            dest: dest.to_string(),
                        })
                    }
                    _ => ck.at(
                        o.referenced,
                        format!("{field}.native.outputs[{i}]"),
                        format!(
                            "'{}' is not CHECKOUT_PATH:IMAGE_PATH (a relative path inside the \
                             checkout, then an absolute path)",
                            o.value
                        ),
                    ),
                }
            }
            Some(Recipe::Native {
                command,
                outputs,
                base: ck.image_ref(n.base),
            })
        }
    };
    Image {
        to: to.value.clone(),
        // With a problem recorded the config is rejected, so the placeholder is never used.
        recipe: recipe.unwrap_or(Recipe::Native {
            command: Vec::new(),
            outputs: Vec::new(),
            base: String::new(),
        }),
        build_args: img.build_args,
        from: img.from.map(|f| ck.image_ref(f)),
        inputs: img
            .inputs
            .into_iter()
            .map(|(k, v)| (ck.image_ref(k), v.as_))
            .collect(),
        labels: img.labels,
        versions: img.versions,
        os: img.os,
    }
}

fn stream(
    ck: &mut Checker,
    name: &str,
    s: RawStream,
    variants: &IndexMap<String, Variant>,
    components: &IndexMap<String, Component>,
) -> Option<Stream> {
    let field = format!("streams.{name}");
    let variant = variants.get(&s.variant.value);
    if variant.is_none() {
        ck.at(
            s.variant.referenced,
            format!("{field}.variant"),
            format!(
                "unknown variant '{}'; defined variants: {}",
                s.variant.value,
                names(variants.keys())
            ),
        );
    }

    let minor = match &s.minor {
        None => None,
        Some(m) => {
            let parsed = Minor::parse(&m.value);
            if parsed.is_none() {
                ck.at(
                    m.referenced,
                    format!("{field}.minor"),
                    format!("'{}' is not a minor version like 4.17", m.value),
                );
            }
            parsed
        }
    };
    let (branch, minor) = match (&s.branch, minor) {
        (None, None) => {
            if s.minor.is_none() {
                ck.at(
                    s.variant.referenced,
                    field.clone(),
                    "give branch (release-4.y or master) or minor",
                );
            }
            return None;
        }
        (None, Some(m)) => (format!("release-{m}"), m),
        (Some(b), m) => match (branch_minor(&b.value), m) {
            (Some(from_branch), None) => (b.value.clone(), from_branch),
            (Some(from_branch), Some(m)) => {
                if from_branch != m {
                    ck.at(
                        s.minor.as_ref().map_or(b.referenced, |m| m.referenced),
                        format!("{field}.minor"),
                        format!(
                            "minor {m} does not match branch '{}', which feeds {from_branch}",
                            b.value
                        ),
                    );
                }
                (b.value.clone(), m)
            }
            (None, Some(m)) => {
                if b.value.trim().is_empty() {
                    ck.at(b.referenced, format!("{field}.branch"), "empty branch");
                }
                (b.value.clone(), m)
            }
            (None, None) => {
                if s.minor.is_none() {
                    let why = if matches!(b.value.as_str(), "master" | "main") {
                        format!("'{}' feeds the next minor", b.value)
                    } else {
                        format!("'{}' is not named release-X.Y", b.value)
                    };
                    ck.at(
                        b.referenced,
                        format!("{field}.branch"),
                        format!("{why}: give the stream's minor (e.g. minor: \"4.18\")"),
                    );
                }
                return None;
            }
        },
    };

    let raw_promotion = s.promotion.unwrap_or_default();
    let renames = variant.map(|v| &v.tag_renames);
    // Final tag → (field that produces it, whether it was renamed).
    let mut tags: HashMap<String, (String, bool)> = HashMap::new();
    let mut images = Vec::new();
    let mut built_to = BTreeSet::new();
    for (cname, c) in components {
        for (i, img) in c.images.iter().enumerate() {
            let origin = format!("components.{cname}.images[{i}]");
            built_to.insert(img.to.clone());
            let renamed = renames.and_then(|r| r.get(&img.to));
            let tag = renamed.unwrap_or(&img.to).clone();
            match tags.get(&tag) {
                // Same tag without renames: reported once, at the image.
                Some((first, was_renamed)) if *was_renamed || renamed.is_some() => ck.at(
                    s.variant.referenced,
                    format!("{field}.variant"),
                    format!(
                        "variant '{}' renames images so that {origin} and {first} are both \
                         tagged '{tag}' in this stream",
                        s.variant.value
                    ),
                ),
                Some(_) => {}
                None => {
                    tags.insert(tag.clone(), (origin, renamed.is_some()));
                }
            }
            images.push(StreamImage {
                tag,
                component: cname.clone(),
                image: i,
                promoted: !raw_promotion.disabled
                    && !raw_promotion
                        .excluded_images
                        .iter()
                        .any(|e| e.value == img.to),
            });
        }
    }

    let mut excluded_images = BTreeSet::new();
    for (i, e) in raw_promotion.excluded_images.into_iter().enumerate() {
        if !built_to.contains(&e.value) {
            ck.at(
                e.referenced,
                format!("{field}.promotion.excluded_images[{i}]"),
                format!("no component builds image '{}'", e.value),
            );
        }
        excluded_images.insert(e.value);
    }
    let mut additional_images = BTreeMap::new();
    for (tag, spec) in raw_promotion.additional_images {
        let at = format!("{field}.promotion.additional_images.{tag}");
        if !is_valid_tag(&tag) {
            ck.at(
                spec.referenced,
                at,
                format!("'{tag}' is not a valid image tag"),
            );
        } else if let Some((first, _)) = tags.get(&tag) {
            ck.at(
                spec.referenced,
                at,
                format!("image tag '{tag}' is already built by {first}"),
            );
        } else if spec.value.trim().is_empty() {
            ck.at(spec.referenced, at, "empty pull spec");
        }
        additional_images.insert(tag, ck.image_ref(spec.value));
    }

    let os_at = s.os.as_ref().map(|o| o.referenced);
    let os = s.os.and_then(|o| os_source(ck, &field, o));
    if let (Some(_), Some(at)) = (&os, os_at) {
        let marked: Vec<String> = images
            .iter()
            .filter(|i| i.promoted && components[&i.component].images[i.image].os)
            .map(|i| format!("components.{}.images[{}]", i.component, i.image))
            .collect();
        if marked.len() != 1 {
            let why = if marked.is_empty() {
                "no promoted image of the stream is the OS image: mark the one built on the OS \
                 with `os: true`"
                    .to_string()
            } else {
                format!(
                    "{} are all OS images (`os: true`) promoted here: exclude all but one \
                     (promotion.excluded_images)",
                    marked.join(" and ")
                )
            };
            ck.at(at, format!("{field}.os"), why);
        }
    }

    let rebuild = s
        .rebuild
        .and_then(|r| match r.value.parse::<croner::Cron>() {
            Ok(cron) => Some(Rebuild {
                expression: r.value,
                cron,
            }),
            Err(e) => {
                ck.at(
                    r.referenced,
                    format!("{field}.rebuild"),
                    format!(
                        "'{}' is not a cron expression ({e}); e.g. '0 3 * * *' for 03:00 UTC daily",
                        r.value
                    ),
                );
                None
            }
        });
    Some(Stream {
        variant: s.variant.value,
        branch,
        minor,
        promotion: Promotion {
            disabled: raw_promotion.disabled,
            excluded_images,
            additional_images,
        },
        images,
        rebuild,
        release: None,
        os,
    })
}

/// A stream's `os:` block.
fn os_source(ck: &mut Checker, stream_field: &str, o: Spanned<RawOs>) -> Option<OsSource> {
    let field = format!("{stream_field}.os");
    let (at, o) = (o.referenced, o.value);
    // An image reference as okd-forge reads it: `docker://…`, `oci:DIR[…]`, or a bare pull spec.
    let image_ref = |ck: &mut Checker, at: Location, value: &str, tagged: bool| {
        let text = if value.starts_with("oci:") || value.starts_with("docker://") {
            ck.image_ref(value.to_string())
        } else {
            format!("docker://{value}")
        };
        match text.parse::<oci::ImageRef>() {
            Ok(r) if r.selector().is_some() == tagged => Some(text),
            Ok(_) if tagged => {
                ck.at(
                    at,
                    format!("{field}.image"),
                    format!(
                        "'{value}' names no tag: without `metadata`, give the tag to follow \
                         (e.g. quay.io/fedora/fedora-coreos:stable)"
                    ),
                );
                None
            }
            Ok(_) => {
                ck.at(
                    at,
                    format!("{field}.image"),
                    format!(
                        "'{value}' has a tag or digest: with `metadata`, give the repository \
                         alone (release V is REPO:V)"
                    ),
                );
                None
            }
            Err(e) => {
                ck.at(at, format!("{field}.image"), e.to_string());
                None
            }
        }
    };
    let location = |ck: &mut Checker, v: Spanned<String>, name: &str| {
        let scheme = v
            .value
            .split_once("://")
            .map(|(s, _)| s.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("http" | "https" | "file") => Some(v.value),
            Some(other) => {
                ck.at(
                    v.referenced,
                    format!("{field}.{name}"),
                    format!(
                        "unsupported scheme {other}://; give an http://, https:// or file:// URL, \
                         or a path"
                    ),
                );
                None
            }
            None if v.value.trim().is_empty() => {
                ck.at(v.referenced, format!("{field}.{name}"), "empty location");
                None
            }
            None => Some(
                ck.base
                    .join(&v.value)
                    .components()
                    .collect::<PathBuf>()
                    .display()
                    .to_string(),
            ),
        }
    };
    match (o.metadata, o.index, o.image) {
        (Some(m), index, image) => {
            if index.is_none() && image.is_none() {
                ck.at(
                    m.referenced,
                    field.clone(),
                    "with `metadata`, give `index` (the release index: each release's image by \
                     digest) or `image` (the repository: release V is REPO:V), or both",
                );
            }
            // Every field is checked, so that each problem is reported.
            let metadata = location(ck, m, "metadata");
            let index = index.map(|i| location(ck, i, "index"));
            let image = image.map(|i| image_ref(ck, i.referenced, &i.value, false));
            Some(OsSource::Metadata {
                metadata: metadata?,
                index: index.map_or(Some(None), |i| i.map(Some))?,
                image: image.map_or(Some(None), |i| i.map(Some))?,
            })
        }
        (None, Some(i), _) => {
            ck.at(
                i.referenced,
                format!("{field}.index"),
                "`index` goes with `metadata`",
            );
            None
        }
        (None, None, Some(i)) => Some(OsSource::Image {
            image: image_ref(ck, i.referenced, &i.value, true)?,
        }),
        (None, None, None) => {
            ck.at(
                at,
                field,
                "give `metadata` (CoreOS stream metadata) or `image` (an image tag to follow)",
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    /// A valid base: two variants, one component, one stream; tests append to it.
    const BASE: &str = "\
variants:
  okd-scos: { build_args: { TAGS: scos } }
  okd: { tag_renames: { rhel-coreos: fedora-coreos } }
components:
  mco:
    git: https://github.com/openshift/machine-config-operator
    images:
      - to: machine-config-operator
        containerfile: Dockerfile.rhel7
";

    fn ok(yaml: &str) -> Config {
        parse(yaml, "forge.yaml", Path::new("/cfg")).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Every problem, one string each.
    fn errors(yaml: &str) -> Vec<String> {
        match parse(yaml, "forge.yaml", Path::new("/cfg")) {
            Ok(_) => panic!("should fail:\n{yaml}"),
            Err(e) => e.problems().iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn relative_layout_images_are_relative_to_the_file() {
        let c = ok("\
variants:
  v: { base_images: { \"registry.ci.openshift.org/ocp/4.17:base\": \"oci:bases:centos\" } }
components:
  cvo:
    git: file:///src/cvo
    images:
      - to: cvo
        labels: { io.openshift.release.operator: \"true\" }
        native: { command: [make], outputs: [\"bin/cvo:/usr/bin/cvo\"], base: \"oci:bases:busybox\" }
      - to: cvo-tests
        containerfile: Containerfile
        from: oci:/abs/layout:x
        inputs: { \"oci:bases:golang\": { as: [builder] } }
streams:
  s-4.17:
    variant: v
    branch: release-4.17
    promotion: { additional_images: { must-gather: \"oci:bases:must-gather\", cli: quay.io/okd/cli:4.17 } }
");
        let img = &c.components["cvo"].images;
        let Recipe::Native { base, .. } = &img[0].recipe else {
            panic!("native")
        };
        assert_eq!(base, "oci:/cfg/bases:busybox");
        assert_eq!(img[0].labels["io.openshift.release.operator"], "true");
        assert_eq!(img[1].from.as_deref(), Some("oci:/abs/layout:x"));
        assert!(img[1].inputs.contains_key("oci:/cfg/bases:golang"));
        assert_eq!(
            c.variants["v"].base_images["registry.ci.openshift.org/ocp/4.17:base"],
            "oci:/cfg/bases:centos"
        );
        let extra = &c.streams["s-4.17"].promotion.additional_images;
        assert_eq!(extra["must-gather"], "oci:/cfg/bases:must-gather");
        assert_eq!(extra["cli"], "quay.io/okd/cli:4.17");
    }

    fn one_error(yaml: &str) -> String {
        let all = errors(yaml);
        assert_eq!(all.len(), 1, "{all:#?}");
        all.into_iter().next().unwrap_or_default()
    }

    #[test]
    fn minimal_config_with_defaults() {
        let c = ok(&format!(
            "{BASE}streams:\n  s: {{ variant: okd-scos, branch: release-4.17 }}\n"
        ));
        assert_eq!(c.store, Store::Layout(PathBuf::from("/cfg/var/store")));
        assert_eq!(c.state, PathBuf::from("/cfg/var/forge.db"));
        let s = &c.streams["s"];
        assert_eq!(
            s.minor,
            Minor {
                major: 4,
                minor: 17
            }
        );
        assert_eq!(
            s.images,
            vec![StreamImage {
                tag: "machine-config-operator".into(),
                component: "mco".into(),
                image: 0,
                promoted: true
            }]
        );
        assert_eq!(
            c.revision("mco", "s"),
            Some(Revision::Branch("release-4.17".into()))
        );
        assert_eq!(c.revision("mco", "nope"), None);
        assert!(matches!(
            c.components["mco"].images[0].recipe,
            Recipe::Containerfile { ref context, .. } if context == Path::new(".")
        ));
    }

    #[test]
    fn settings() {
        let c = ok("store: docker://registry.example.com/okd\nstate: db.sqlite\nparallelism: 3\n");
        assert_eq!(c.store, Store::Registry("registry.example.com/okd".into()));
        assert_eq!(c.store_name, "registry.example.com/okd");
        assert_eq!(c.state, PathBuf::from("/cfg/db.sqlite"));
        assert_eq!(ok("").store_name, DEFAULT_STORE_NAME);
        assert_eq!(
            ok("store_name: localhost:8080/okd/content\n").store_name,
            "localhost:8080/okd/content"
        );
        assert_eq!(
            one_error("store_name: okd\n"),
            "forge.yaml:1:13: store_name: 'okd' is not a repository HOST[:PORT]/REPO"
        );
        assert_eq!(
            one_error("store: docker://r.example.com/okd\nstore_name: localhost/okd\n"),
            "forge.yaml:2:13: store_name: only a layout store is named by store_name; a registry store's images are named by its repository"
        );
        assert_eq!(c.parallelism.get(), 3);
        assert_eq!(
            one_error("parallelism: 0\n"),
            "forge.yaml:1:14: parallelism: must be at least 1"
        );
        assert_eq!(
            one_error("store: docker://registry\n"),
            "forge.yaml:1:8: store: 'docker://registry' is not docker://HOST[:PORT]/REPO"
        );
    }

    #[test]
    fn branch_and_minor_mapping() {
        let c = ok(&format!(
            "{BASE}streams:\n  a: {{ variant: okd, minor: '4.16' }}\n  b: {{ variant: okd, branch: master, minor: '4.18' }}\n"
        ));
        assert_eq!(c.streams["a"].branch, "release-4.16");
        assert_eq!(c.streams["b"].branch, "master");
        assert_eq!(c.streams["b"].minor.to_string(), "4.18");
        assert_eq!(
            one_error(&format!("{BASE}streams:\n  a:\n    variant: okd\n    branch: master\n")),
            "forge.yaml:13:13: streams.a.branch: 'master' feeds the next minor: give the stream's minor (e.g. minor: \"4.18\")"
        );
        assert_eq!(
            one_error(&format!(
                "{BASE}streams:\n  a:\n    variant: okd\n    branch: release-4.17\n    minor: '4.16'\n"
            )),
            "forge.yaml:14:12: streams.a.minor: minor 4.16 does not match branch 'release-4.17', which feeds 4.17"
        );
        assert_eq!(
            one_error(&format!(
                "{BASE}streams:\n  a:\n    variant: okd\n    minor: four\n"
            )),
            "forge.yaml:13:12: streams.a.minor: 'four' is not a minor version like 4.17"
        );
        assert_eq!(
            one_error(&format!("{BASE}streams:\n  a:\n    variant: okd\n")),
            "forge.yaml:12:14: streams.a: give branch (release-4.y or master) or minor"
        );
    }

    #[test]
    fn unknown_variant_lists_the_defined_ones_in_file_order() {
        assert_eq!(
            one_error(&format!("{BASE}streams:\n  okd-scos-4.17:\n    variant: okd-scoss\n    branch: release-4.17\n")),
            "forge.yaml:12:14: streams.okd-scos-4.17.variant: unknown variant 'okd-scoss'; defined variants: okd-scos, okd"
        );
    }

    #[test]
    fn image_recipes() {
        let native = "\
components:
  cvo:
    git: file:///src/cvo
    images:
      - to: cluster-version-operator
        native:
          command: [make]
          outputs: [\"bin/cvo:/usr/bin/cvo\"]
          base: quay.io/centos/centos:stream9
";
        let c = ok(native);
        assert!(matches!(
            &c.components["cvo"].images[0].recipe,
            Recipe::Native { outputs, .. } if outputs == &[NativeOutput { source: "bin/cvo".into(), dest: "/usr/bin/cvo".into() }]
        ));
        let c = ok(&native.replace("          command: [make]\n", ""));
        assert!(matches!(
            &c.components["cvo"].images[0].recipe,
            Recipe::Native { command, .. } if command.is_empty()
        ));
        assert_eq!(
            one_error(&native.replace("native:", "containerfile: Dockerfile\n        native:")),
            "forge.yaml:6:24: components.cvo.images[0]: give either containerfile or native, not both"
        );
        let literal = "components:\n  c:\n    git: https://h/r\n    images:\n      - to: x\n        containerfile_literal: FROM scratch\n";
        let c = ok(literal);
        assert!(matches!(
            &c.components["c"].images[0].recipe,
            Recipe::ContainerfileLiteral { text, context } if text == "FROM scratch" && context == Path::new(".")
        ));
        assert_eq!(
            one_error(&format!("{literal}        containerfile: Dockerfile\n")),
            "forge.yaml:6:32: components.c.images[0]: give only one of containerfile, containerfile_literal or native"
        );
        assert_eq!(
            one_error(&literal.replace("FROM scratch", "''")),
            "forge.yaml:6:32: components.c.images[0].containerfile_literal: empty Containerfile"
        );
        assert_eq!(
            one_error("components:\n  c:\n    git: https://h/r\n    images:\n      - to: x\n"),
            "forge.yaml:5:9: components.c.images[0]: give one of containerfile, containerfile_literal or native"
        );
        assert_eq!(
            one_error(&native.replace("bin/cvo:/usr/bin/cvo", "../cvo:usr/bin")),
            "forge.yaml:8:21: components.cvo.images[0].native.outputs[0]: '../cvo:usr/bin' is not CHECKOUT_PATH:IMAGE_PATH (a relative path inside the checkout, then an absolute path)"
        );
        assert_eq!(
            one_error(&native.replace("[make]", "[]")),
            "forge.yaml:7:20: components.cvo.images[0].native.command: the command needs at least a program (or leave `command` out to take the outputs from the checkout as they are)"
        );
        assert_eq!(
            one_error(&BASE.replace("Dockerfile.rhel7", "/etc/Dockerfile")),
            "forge.yaml:9:24: components.mco.images[0].containerfile: '/etc/Dockerfile' must be a relative path inside the context (no '..')"
        );
        assert_eq!(
            one_error("components:\n  c:\n    git: https://h/r\n    images: []\n"),
            "forge.yaml:4:13: components.c.images: a component builds at least one image"
        );
    }

    #[test]
    fn image_tags_are_valid_and_unique() {
        let dup = format!(
            "{BASE}  other:\n    git: https://github.com/openshift/other\n    images:\n      - {{ to: machine-config-operator, containerfile: Dockerfile }}\n"
        );
        assert_eq!(
            one_error(&dup),
            "forge.yaml:13:15: components.other.images[0].to: image tag 'machine-config-operator' is already built by components.mco.images[0]"
        );
        assert_eq!(
            one_error(&BASE.replace("to: machine-config-operator", "to: 'mco:latest'")),
            "forge.yaml:8:13: components.mco.images[0].to: 'mco:latest' is not a valid image tag (letters, digits, '_', '.', '-'; at most 128)"
        );
        // A variant's rename can make two tags collide in its streams only.
        let renamed = format!(
            "{BASE}  os:\n    git: https://github.com/openshift/os\n    images:\n      - {{ to: rhel-coreos, containerfile: Containerfile }}\n      - {{ to: fedora-coreos, containerfile: Containerfile.fcos }}\nstreams:\n  okd-scos-4.17: {{ variant: okd-scos, branch: release-4.17 }}\n  okd-4.17:\n    variant: okd\n    branch: release-4.17\n"
        );
        assert_eq!(
            one_error(&renamed),
            "forge.yaml:18:14: streams.okd-4.17.variant: variant 'okd' renames images so that components.os.images[1] and components.os.images[0] are both tagged 'fedora-coreos' in this stream"
        );
    }

    #[test]
    fn promotion() {
        let c = ok(&format!(
            "{BASE}streams:\n  s:\n    variant: okd\n    minor: '4.17'\n    promotion:\n      excluded_images: [machine-config-operator]\n      additional_images: {{ must-gather: quay.io/x/must-gather:4.17 }}\n"
        ));
        let s = &c.streams["s"];
        assert!(!s.images[0].promoted);
        assert_eq!(
            s.promotion.additional_images["must-gather"],
            "quay.io/x/must-gather:4.17"
        );
        assert_eq!(
            errors(&format!(
                "{BASE}streams:\n  s:\n    variant: okd\n    minor: '4.17'\n    promotion:\n      excluded_images: [nothing]\n      additional_images: {{ machine-config-operator: quay.io/x/y:1 }}\n"
            )),
            [
                "forge.yaml:15:25: streams.s.promotion.excluded_images[0]: no component builds image 'nothing'",
                "forge.yaml:16:53: streams.s.promotion.additional_images.machine-config-operator: image tag 'machine-config-operator' is already built by components.mco.images[0]",
            ]
        );
    }

    /// BASE with an OS component (`rhel-coreos`, `os: true`) and stream `s` with `os` as given.
    fn with_os(os: &str) -> String {
        format!(
            "{BASE}  os:\n    git: https://github.com/openshift/okd-machine-os\n    images:\n      - {{ to: rhel-coreos, containerfile: Containerfile, os: true }}\nstreams:\n  s:\n    variant: okd\n    minor: '4.17'\n    release: {{ name: 4.17.0-0.okd }}\n{os}"
        )
    }

    #[test]
    fn os_sources_are_stream_metadata_or_a_followed_tag() {
        let c = ok(&with_os(
            "    os: { metadata: streams/stable.json, index: https://b.example/releases.json, image: quay.io/fedora/fedora-coreos }\n",
        ));
        assert_eq!(
            c.streams["s"].os,
            Some(OsSource::Metadata {
                metadata: "/cfg/streams/stable.json".into(),
                index: Some("https://b.example/releases.json".into()),
                image: Some("docker://quay.io/fedora/fedora-coreos".into()),
            })
        );
        assert_eq!(c.os_tag("s"), Some("fedora-coreos"));
        let c = ok(&with_os("    os: { image: \"oci:fcos:stable\" }\n"));
        assert_eq!(
            c.streams["s"].os,
            Some(OsSource::Image {
                image: "oci:/cfg/fcos:stable".into()
            })
        );
        // A stream without os: builds the OS image as written, with no tag for its OS.
        let c = ok(&with_os(""));
        assert_eq!(c.os_tag("s"), None);
        assert_eq!(
            errors(&with_os("    os: { image: quay.io/fedora/fedora-coreos }\n")),
            ["forge.yaml:19:18: streams.s.os.image: 'quay.io/fedora/fedora-coreos' names no tag: \
              without `metadata`, give the tag to follow (e.g. quay.io/fedora/fedora-coreos:stable)"]
        );
        assert_eq!(
            errors(&with_os("    os: { metadata: \"ftp://x/stable.json\" }\n")),
            [
                "forge.yaml:19:21: streams.s.os: with `metadata`, give `index` (the release index: \
                 each release's image by digest) or `image` (the repository: release V is REPO:V), \
                 or both",
                "forge.yaml:19:21: streams.s.os.metadata: unsupported scheme ftp://; give an \
                 http://, https:// or file:// URL, or a path"
            ]
        );
        assert_eq!(
            errors(&with_os("    os: { metadata: s.json, image: \"quay.io/f/fcos:stable\" }\n")),
            ["forge.yaml:19:36: streams.s.os.image: 'quay.io/f/fcos:stable' has a tag or digest: \
              with `metadata`, give the repository alone (release V is REPO:V)"]
        );
        assert_eq!(
            errors(&with_os("    os: {}\n")),
            ["forge.yaml:19:9: streams.s.os: give `metadata` (CoreOS stream metadata) or `image` \
              (an image tag to follow)"]
        );
    }

    #[test]
    fn a_stream_that_follows_an_os_has_one_os_image() {
        let e = errors(
            &with_os("    os: { image: quay.io/fedora/fedora-coreos:stable }\n")
                .replace(", os: true", ""),
        );
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with(
                "forge.yaml:19:9: streams.s.os: no promoted image of the stream is the OS image"
            ),
            "{e:?}"
        );
        let two = with_os("    os: { image: quay.io/fedora/fedora-coreos:stable }\n").replace(
            "      - to: machine-config-operator\n        containerfile: Dockerfile.rhel7\n",
            "      - { to: machine-config-operator, containerfile: Dockerfile.rhel7, os: true }\n",
        );
        let e = errors(&two);
        assert!(
            e[0].contains("components.mco.images[0] and components.os.images[0] are all OS images"),
            "{e:?}"
        );
        // The OS enters only through a verified payload: no release block, no OS.
        assert_eq!(
            errors(
                &with_os("    os: { image: quay.io/fedora/fedora-coreos:stable }\n")
                    .replace("    release: { name: 4.17.0-0.okd }\n", "")
            ),
            [
                "forge.yaml:18:9: streams.s.os: a stream that follows an OS needs a `release:` \
              block: a new OS image enters the stream only through a verified payload"
            ]
        );
        // Excluding one from the stream's promotion leaves one.
        ok(&two.replace(
            "    minor: '4.17'\n",
            "    minor: '4.17'\n    promotion: { excluded_images: [machine-config-operator] }\n",
        ));
    }

    #[test]
    fn component_sources() {
        let with = |extra: &str| {
            BASE.replace("    images:\n", &format!("{extra}    images:\n"))
                + "streams:\n  s: { variant: okd, branch: release-4.17 }\n"
        };
        let c = ok(&with("    branch: { s: release-4.17-okd }\n"));
        assert_eq!(
            c.revision("mco", "s"),
            Some(Revision::Branch("release-4.17-okd".into()))
        );
        let c = ok(&with("    ref: v4.17.0\n"));
        assert_eq!(
            c.revision("mco", "s"),
            Some(Revision::Ref("v4.17.0".into()))
        );
        assert_eq!(
            one_error(&with("    branch: { t: main }\n")),
            "forge.yaml:7:13: components.mco.branch.t: unknown stream 't'; defined streams: s"
        );
        assert_eq!(
            one_error(&with("    branch: { s: main }\n    ref: v1\n")),
            "forge.yaml:8:10: components.mco.ref: give either branch or ref, not both"
        );
        assert_eq!(
            one_error(&BASE.replace("https://github.com/openshift/machine-config-operator", "ftp://h/r")),
            "forge.yaml:6:10: components.mco.git: unsupported git URL scheme 'ftp' in 'ftp://h/r'; use https, http, ssh or file"
        );
    }

    #[test]
    fn git_urls() {
        for (url, scheme) in [
            ("https://github.com/openshift/installer", GitScheme::Https),
            ("http://git.local:8080/installer.git", GitScheme::Http),
            ("ssh://git@github.com/openshift/installer", GitScheme::Ssh),
            ("git@github.com:openshift/installer.git", GitScheme::Ssh),
            ("file:///srv/git/installer", GitScheme::File),
        ] {
            assert_eq!(parse_git_url(url).map(|u| u.scheme), Ok(scheme), "{url}");
        }
        for url in [
            "github.com/openshift/installer",
            "https:///x",
            "https://github.com",
            "file:///",
            "/srv/git/x",
        ] {
            assert!(parse_git_url(url).is_err(), "{url}");
        }
        assert_eq!(
            parse_git_url("file:///srv/bench/../git/x").unwrap_err(),
            "'file:///srv/bench/../git/x' has '.' or '..' in its path; write the repository's path without them"
        );
    }

    #[test]
    fn small_parsers() {
        assert_eq!(
            Minor::parse("4.17"),
            Some(Minor {
                major: 4,
                minor: 17
            })
        );
        assert_eq!(Minor::parse("4.017"), None);
        assert_eq!(Minor::parse("4"), None);
        assert_eq!(Minor::parse("4.x"), None);
        assert_eq!(
            branch_minor("release-4.9"),
            Some(Minor { major: 4, minor: 9 })
        );
        assert_eq!(branch_minor("master"), None);
        assert!(is_valid_tag("machine-config-operator"));
        assert!(is_valid_tag("_x.1"));
        assert!(!is_valid_tag("-x"));
        assert!(!is_valid_tag(""));
        assert!(!is_valid_tag(&"a".repeat(129)));
    }

    #[test]
    fn parse_errors_name_file_line_column_and_field() {
        assert_eq!(
            one_error(&BASE.replace("        containerfile", "        bogus: 1\n        containerfile")),
            "forge.yaml:9:9: components.mco.images[0].bogus: unknown field `bogus`, expected one of to, containerfile, containerfile_literal, context, build_args, from, inputs, native, versions, labels, os"
        );
        assert_eq!(
            one_error(&format!("{BASE}streams:\n  s: {{ variant: okd, minor: '4.17', promotion: {{ disabled: sure }} }}\n")),
            "forge.yaml:11:60: streams.s.promotion.disabled: invalid YAML 1.1 bool: `sure`"
        );
        assert_eq!(
            one_error("components:\n  c:\n    git: https://h/r\n    images: {}\n"),
            "forge.yaml:4:13: components.c.images: wrong type: expected a list"
        );
        assert_eq!(
            one_error("parallelism: many\n"),
            "forge.yaml:1:14: parallelism: wrong type: expected a whole number"
        );
        assert_eq!(
            one_error("streams:\n  s:\n    variant: [okd]\n"),
            "forge.yaml:3:14: streams.s.variant: wrong type: expected a string"
        );
        assert_eq!(
            one_error("publish: { release: quay.io/okd/release }\n"),
            "forge.yaml:1:21: publish: give both release and content (the repositories stable releases are mirrored to), or neither"
        );
        assert_eq!(
            one_error("publish: { release: quay.io/okd/release:4.17, content: quay.io/okd/c }\n"),
            "forge.yaml:1:21: publish.release: 'quay.io/okd/release:4.17' is not a repository HOST[:PORT]/REPO (no tag)"
        );
        assert_eq!(
            one_error("publish: { signing: { key: k.asc, url: quay.io/sigs } }\n"),
            "forge.yaml:1:40: publish.signing.url: 'quay.io/sigs' is not an http:// or https:// URL (where clusters read the signature store)"
        );
    }
}
