//! One reconcile of the build stage: for every selected stream image, resolve the component's revision to
//! a commit, hash the build's inputs, build what changed (buildah or native), push the result to the store
//! and promote it into the stream.
//!
//! A build's inputs are the commit, the recipe, the variant's build arguments and substitutions that
//! apply, the digests of every image the build reads, and the okd-forge version. When their hash has been
//! built before and the image is still in the store, the image is reused: nothing is fetched, checked out
//! or built. A reconcile with nothing changed therefore only reads refs and the database.
//!
//! Images of a stream may build on each other (`from: installer`); such a build waits for the one it
//! reads, and fails without running when that one fails. Every other build still completes and promotes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures_util::future::{BoxFuture, FutureExt, Shared};
use futures_util::{stream, StreamExt};
use oci::compose::{self, Layer, NewImage};
use oci::manifest::media_type;
use oci::{Copier, Descriptor, Digest, ImageRef, Layout, Selector, Store};
use payload::imagestream::OPERATOR_LABEL;
use payload::source::{PullSpec, Sources};
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use tokio::sync::Semaphore;

use crate::buildah::{self, BuildRequest, Buildah, ContainerfileSource, FromRules};
use crate::config::{Config, Image, Rebuild, Recipe, Revision, Stream, StreamImage};
use crate::git::{CommitId, GitSources};
use crate::native;
use crate::os::OsVersion;
use crate::osgate::{self, OsReleaseRecord, Proposal};
use crate::state::{NewBuild, Outcome, State};

/// The labels every build stamps.
pub const COMMIT_ID_LABEL: &str = "io.openshift.build.commit.id";
/// The branch or ref built.
pub const COMMIT_REF_LABEL: &str = "io.openshift.build.commit.ref";
/// The repository URL.
pub const SOURCE_LOCATION_LABEL: &str = "io.openshift.build.source-location";
/// `name=version,...` of configured component versions.
pub const VERSIONS_LABEL: &str = "io.openshift.build.versions";

/// Part of every input hash: a new okd-forge may build differently, so it rebuilds.
const HASH_VERSION: &str = concat!("okd-forge ", env!("CARGO_PKG_VERSION"), " build v1");

/// Everything a reconcile needs.
pub struct Forge {
    /// The configuration.
    pub config: Config,
    /// The state database.
    pub state: State,
    /// Git caches.
    pub git: GitSources,
    /// The buildah builder.
    pub buildah: Buildah,
    /// Reads base images (the store first).
    pub sources: Sources,
    /// Where outputs go.
    pub store: Store,
    /// Moves images into the store.
    pub copier: Copier,
    /// Per-build logs: `<logs>/<build id>.log`.
    pub logs: PathBuf,
    /// Per-build workspaces (removed after each build).
    pub work: PathBuf,
    /// Let buildah pull from registries without TLS verification (`--tls-verify=false`).
    pub insecure_registries: bool,
}

/// The directory of the state database (`var/`), and the cache directory (`$OKD_FORGE_CACHE`, else
/// `var/cache`).
pub fn dirs(config: &Config) -> (PathBuf, PathBuf) {
    let var = config
        .state
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let cache = std::env::var_os("OKD_FORGE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| var.join("cache"));
    (var, cache)
}

/// Why [`Forge::open`] failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The state database.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// The store or the cache.
    #[error("{0}")]
    Store(String),
}

impl Forge {
    /// Opens everything a reconcile needs, next to the state database: `cache/` (see [`dirs`]),
    /// `logs/builds/`, `work/` and `buildah/` in its directory; registries are reached with
    /// `registry` (whose `tls_verify` also decides buildah's).
    pub fn open(config: Config, registry: oci::RegistryOptions) -> Result<Forge, OpenError> {
        let (var, cache) = dirs(&config);
        let state = State::open(&config.state)?;
        let insecure_registries = !registry.tls_verify;
        let retries = registry.retries;
        let stores = Arc::new(oci::Stores::new(registry));
        let (store, local) = match &config.store {
            crate::config::Store::Layout(dir) => {
                let l = Layout::create(dir)
                    .map_err(|e| OpenError::Store(format!("store {}: {e}", dir.display())))?;
                (Store::Layout(l.clone()), Some(l))
            }
            crate::config::Store::Registry(repo) => {
                let store = format!("docker://{repo}")
                    .parse::<ImageRef>()
                    .and_then(|r| stores.open(&r, true))
                    .map_err(|e| OpenError::Store(format!("store {repo}: {e}")))?;
                (store, None)
            }
        };
        let sources = Sources::new(stores, local, Some(cache.clone()))
            .map_err(|e| OpenError::Store(format!("cache {}: {e}", cache.display())))?;
        Ok(Forge {
            git: GitSources::new(cache.join("build-git")),
            buildah: Buildah::new(var.join("buildah")),
            copier: Copier::new(4, retries, Arc::new(oci::NoProgress)),
            logs: var.join("logs/builds"),
            work: var.join("work"),
            insecure_registries,
            sources,
            store,
            state,
            config,
        })
    }
}

/// What to reconcile.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Streams (all when empty).
    pub streams: Vec<String>,
    /// Components (all when empty).
    pub components: Vec<String>,
    /// Builds at once (at least 1).
    pub jobs: usize,
    /// Build this ref (e.g. `refs/pull/7/head`) instead of the configured revision, without promoting.
    pub git_ref: Option<String>,
    /// Streams whose images are rebuilt even when their input hash was built before.
    pub force: BTreeSet<String>,
}

/// One image of one stream.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ImageKey {
    /// The stream.
    pub stream: String,
    /// The stream tag.
    pub tag: String,
}

impl std::fmt::Display for ImageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.stream, self.tag)
    }
}

/// What happened to one image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "result", content = "detail")]
pub enum Status {
    /// Nothing changed: the stream already has the image its inputs give.
    Unchanged,
    /// The inputs were built before: that image was reused.
    Cached,
    /// Built now.
    Built,
    /// An additional image (`promotion.additional_images`): copied into the store and promoted.
    Imported,
    /// The build failed (why).
    Failed(String),
    /// Not built because an image it reads failed (which).
    Skipped(String),
}

/// The outcome for one image.
#[derive(Debug, Clone, Serialize)]
pub struct ImageResult {
    /// Which image.
    #[serde(flatten)]
    pub key: ImageKey,
    /// The component that builds it.
    pub component: String,
    /// The commit built (when resolved).
    pub commit: Option<String>,
    /// What happened.
    pub status: Status,
    /// The image digest (unless it failed).
    pub digest: Option<String>,
    /// Whether the stream tag now points at `digest` because of this run.
    pub promoted: bool,
    /// The build record, when something was built or reused.
    pub build_id: Option<i64>,
    /// The build log.
    pub log: Option<PathBuf>,
    /// How long it took, in seconds.
    pub seconds: f64,
    /// For the OS image of a stream that follows an OS: the release it is built on, and what
    /// the gate did with the image (none when the stream has it already).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os: Option<OsResult>,
}

/// What an OS image build did (see [`osgate`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OsResult {
    /// The OS release it is built on.
    pub version: String,
    /// What the gate did with the image: a candidate for the stream's next payload, or one
    /// known already; none when the stream has the image.
    pub gate: Option<Proposal>,
}

impl ImageResult {
    /// Whether this counts as a failure of the run.
    pub fn failed(&self) -> bool {
        matches!(self.status, Status::Failed(_) | Status::Skipped(_))
    }
}

/// Hears what a reconcile does, for progress bars and log lines.
pub trait Events: Send + Sync {
    /// The number of images that will be reconciled.
    fn planned(&self, _total: usize) {}
    /// An image entered a phase ("resolving", "fetching", "building", "pushing", ...).
    fn phase(&self, _key: &ImageKey, _phase: &str) {}
    /// An image is done.
    fn finished(&self, _result: &ImageResult) {}
}

/// The store tag a stream image is promoted to: `<stream>_<tag>`.
pub fn store_tag(stream: &str, tag: &str) -> String {
    format!("{stream}_{tag}")
}

type Dep = Shared<BoxFuture<'static, Option<Digest>>>;

/// Branch heads resolved in this run, by (url, revision).
type Heads = Mutex<HashMap<(String, String), Shared<BoxFuture<'static, Result<CommitId, String>>>>>;

/// One planned image.
struct Job {
    key: ImageKey,
    component: String,
    image: Image,
    promote: bool,
    /// Built from `--ref`, not the configured revision.
    pull: bool,
    url: String,
    revision: Revision,
    /// Stream images this one reads, by the name it uses for them.
    deps: BTreeMap<String, ImageKey>,
    /// The stream's OS image, built on the stream's OS release and promoted through its gate.
    os: bool,
}

/// Reconciles the selected images; returns one result per image, in stream then image order. Only
/// errors that stop the whole run (unknown stream or component) are returned as `Err`.
pub async fn reconcile(
    forge: Arc<Forge>,
    req: &Request,
    events: Arc<dyn Events>,
) -> Result<Vec<ImageResult>, String> {
    let cfg = &forge.config;
    for s in &req.streams {
        cfg.stream_named(s)?;
    }
    for c in &req.components {
        cfg.component_named(c)?;
    }
    let mut jobs = Vec::new();
    for (name, stream) in &cfg.streams {
        if !req.streams.is_empty() && !req.streams.contains(name) {
            continue;
        }
        for si in &stream.images {
            if !req.components.is_empty() && !req.components.contains(&si.component) {
                continue;
            }
            jobs.push(plan(cfg, name, stream, si, req));
        }
    }
    events.planned(jobs.len());

    let _ = forge.state.fail_interrupted();
    // Every (url, revision) is resolved once per run, however many streams and images share it.
    let heads: Arc<Heads> = Arc::default();
    let builds = Arc::new(Semaphore::new(req.jobs.max(1)));
    let mut tasks: BTreeMap<ImageKey, Dep> = BTreeMap::new();
    let results: Arc<Mutex<Vec<ImageResult>>> = Arc::default();
    // Jobs in dependency order: a job's dependencies are planned before it (cycles fail).
    let ordered = order(jobs);
    for (job, cycle) in ordered {
        let deps: Vec<(String, ImageKey, Option<Dep>)> = job
            .deps
            .iter()
            .map(|(n, k)| (n.clone(), k.clone(), tasks.get(k).cloned()))
            .collect();
        let key = job.key.clone();
        let forge = forge.clone();
        let events = events.clone();
        let heads = heads.clone();
        let builds = builds.clone();
        let results = results.clone();
        let force = req.force.contains(&job.key.stream);
        let task = async move {
            let started = Instant::now();
            let mut r = match cycle {
                Some(msg) => outcome(&job, None, Status::Failed(msg)),
                None => one(&forge, &job, deps, force, &heads, &builds, &*events).await,
            };
            r.seconds = started.elapsed().as_secs_f64();
            events.finished(&r);
            let digest = (!r.failed()).then(|| r.digest.clone()).flatten();
            results.lock().expect("results").push(r);
            digest.and_then(|d| d.parse().ok())
        }
        .boxed()
        .shared();
        tasks.insert(key, task);
    }
    // Run them all; the semaphore bounds builds, resolution runs alongside.
    stream::iter(tasks.into_values())
        .for_each_concurrent(None, |t| async move {
            t.await;
        })
        .await;
    let mut out = std::mem::take(&mut *results.lock().expect("results"));
    // Additional images follow their pull specs, when whole streams are reconciled.
    if req.components.is_empty() && req.git_ref.is_none() {
        for (name, stream) in &cfg.streams {
            if (!req.streams.is_empty() && !req.streams.contains(name)) || stream.promotion.disabled
            {
                continue;
            }
            for (tag, spec) in &stream.promotion.additional_images {
                let r = additional(&forge, name, tag, spec).await;
                events.finished(&r);
                out.push(r);
            }
        }
    }
    let order: HashMap<(String, String), usize> = cfg
        .streams
        .iter()
        .flat_map(|(n, s)| s.images.iter().map(move |i| (n.clone(), i.tag.clone())))
        .enumerate()
        .map(|(i, k)| (k, i))
        .collect();
    out.sort_by_key(|r| {
        order
            .get(&(r.key.stream.clone(), r.key.tag.clone()))
            .copied()
    });
    Ok(out)
}

fn plan(cfg: &Config, stream_name: &str, stream: &Stream, si: &StreamImage, req: &Request) -> Job {
    let component = &cfg.components[&si.component];
    let image = component.images[si.image].clone();
    let revision = match &req.git_ref {
        Some(r) => Revision::Ref(r.clone()),
        None => cfg
            .revision(&si.component, stream_name)
            .expect("stream and component exist"),
    };
    // Names that mean another image of this stream: its `to` or its stream tag.
    let local: HashMap<&str, &StreamImage> = stream
        .images
        .iter()
        .flat_map(|i| {
            let to = cfg.components[&i.component].images[i.image].to.as_str();
            [(to, i), (i.tag.as_str(), i)]
        })
        .collect();
    let variant = &cfg.variants[&stream.variant];
    let mut deps = BTreeMap::new();
    for name in referenced(&image, &variant.base_images) {
        if let Some(i) = local.get(name.as_str()) {
            deps.insert(
                name,
                ImageKey {
                    stream: stream_name.to_string(),
                    tag: i.tag.clone(),
                },
            );
        }
    }
    Job {
        key: ImageKey {
            stream: stream_name.to_string(),
            tag: si.tag.clone(),
        },
        component: si.component.clone(),
        promote: si.promoted && req.git_ref.is_none(),
        pull: req.git_ref.is_some(),
        url: component.git.url.clone(),
        revision,
        os: image.os && stream.os.is_some(),
        image,
        deps,
    }
}

/// Images the configuration names for a build (before reading its Containerfile): the native base,
/// `from`, the inputs, and the variant's substitutes.
fn referenced(image: &Image, base_images: &BTreeMap<String, String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    match &image.recipe {
        Recipe::Native { base, .. } => {
            out.insert(base.clone());
        }
        _ => {
            out.extend(image.from.iter().cloned());
            out.extend(image.inputs.keys().cloned());
            out.extend(base_images.values().cloned());
        }
    }
    out
}

/// Copies an additional image into the store (when its digest changed) and promotes it.
async fn additional(forge: &Forge, stream: &str, tag: &str, spec: &str) -> ImageResult {
    let started = Instant::now();
    let key = ImageKey {
        stream: stream.to_string(),
        tag: tag.to_string(),
    };
    let mut r = result(key.clone(), String::new(), Status::Unchanged);
    let done = async {
        let src = resolve_image(&forge.sources, spec).await?;
        r.digest = Some(src.digest.to_string());
        if current(&forge.state, &key).as_ref() == Some(&src.digest) {
            return Ok(());
        }
        let from = forge
            .sources
            .stores()
            .open(&src.image, false)
            .map_err(|e| format!("image '{spec}': {e}"))?;
        forge
            .copier
            .copy(
                &from,
                src.image.selector(),
                &forge.store,
                Some(&store_tag(stream, tag)),
            )
            .await
            .map_err(|e| format!("image '{spec}': {e}"))?;
        r.promoted = forge
            .state
            .promote(stream, tag, &src.digest.to_string(), None)
            .map_err(|e| e.to_string())?;
        r.status = Status::Imported;
        Ok::<(), String>(())
    }
    .await;
    if let Err(e) = done {
        r.status = Status::Failed(e);
    }
    r.seconds = started.elapsed().as_secs_f64();
    r
}

/// Orders jobs so dependencies come first; a job in a cycle, or depending on an image not planned
/// in this run, keeps its place, with a message only for cycles.
fn order(jobs: Vec<Job>) -> Vec<(Job, Option<String>)> {
    let planned: BTreeSet<ImageKey> = jobs.iter().map(|j| j.key.clone()).collect();
    let mut pending: Vec<Job> = jobs;
    let mut done: BTreeSet<ImageKey> = BTreeSet::new();
    let mut out = Vec::new();
    loop {
        let (ready, rest): (Vec<Job>, Vec<Job>) = pending.into_iter().partition(|j| {
            j.deps
                .values()
                .all(|d| done.contains(d) || !planned.contains(d) || *d == j.key)
        });
        if ready.is_empty() {
            for j in rest {
                let names: Vec<String> = j.deps.values().map(ToString::to_string).collect();
                let msg = format!(
                    "{} is part of a dependency cycle ({}); fix `from`/`inputs`",
                    j.key,
                    names.join(", ")
                );
                out.push((j, Some(msg)));
            }
            return out;
        }
        for j in ready {
            done.insert(j.key.clone());
            out.push((j, None));
        }
        pending = rest;
        if pending.is_empty() {
            return out;
        }
    }
}

/// A result with nothing built (yet): the caller fills in the rest.
fn outcome(job: &Job, commit: Option<&str>, status: Status) -> ImageResult {
    ImageResult {
        commit: commit.map(str::to_string),
        ..result(job.key.clone(), job.component.clone(), status)
    }
}

/// A result of `key` with only its status.
fn result(key: ImageKey, component: String, status: Status) -> ImageResult {
    ImageResult {
        key,
        component,
        commit: None,
        status,
        digest: None,
        promoted: false,
        build_id: None,
        log: None,
        seconds: 0.0,
        os: None,
    }
}

fn revision_text(r: &Revision) -> String {
    match r {
        Revision::Branch(b) => b.clone(),
        Revision::Ref(r) => r.clone(),
    }
}

/// An image a build reads, resolved.
struct Resolved {
    digest: Digest,
    /// Where it is, for buildah and for reading.
    image: ImageRef,
}

#[allow(clippy::too_many_arguments)]
async fn one(
    forge: &Arc<Forge>,
    job: &Job,
    deps: Vec<(String, ImageKey, Option<Dep>)>,
    force: bool,
    heads: &Heads,
    builds: &Semaphore,
    events: &dyn Events,
) -> ImageResult {
    events.phase(&job.key, "resolving");
    let head = {
        let k = (job.url.clone(), revision_text(&job.revision));
        let mut map = heads.lock().expect("heads");
        map.entry(k)
            .or_insert_with(|| {
                let forge = forge.clone();
                let (url, rev) = (job.url.clone(), job.revision.clone());
                async move {
                    tokio::task::spawn_blocking(move || {
                        forge.git.resolve(&url, &rev).map_err(|e| e.to_string())
                    })
                    .await
                    .map_err(|e| e.to_string())?
                }
                .boxed()
                .shared()
            })
            .clone()
    };
    let commit = match head.await {
        Ok(c) => c,
        Err(e) => return outcome(job, None, Status::Failed(e)),
    };

    // Stream images this one reads: this run's result, else what the stream has.
    let mut local: BTreeMap<String, Digest> = BTreeMap::new();
    for (name, key, dep) in deps {
        let digest = match dep {
            Some(d) => match d.await {
                Some(d) => d,
                None => {
                    return outcome(job, Some(&commit), Status::Skipped(format!("{key} failed")))
                }
            },
            None => match current(&forge.state, &key) {
                Some(d) => d,
                None => {
                    return outcome(
                        job,
                        Some(&commit),
                        Status::Failed(format!(
                        "{key}, which this image builds on, has not been built yet; build it first"
                    )),
                    )
                }
            },
        };
        local.insert(name, digest);
    }

    match attempt(forge, job, &commit, &local, force, builds, events).await {
        Ok(r) => r,
        Err((e, build_id, log)) => {
            if let Some(id) = build_id {
                let _ = forge
                    .state
                    .finish_build(id, &Outcome::Failed { error: e.clone() });
            }
            let mut r = outcome(job, Some(&commit), Status::Failed(e));
            r.build_id = build_id;
            r.log = log;
            r
        }
    }
}

fn current(state: &State, key: &ImageKey) -> Option<Digest> {
    state
        .stream_tag(&key.stream, &key.tag)
        .ok()??
        .digest
        .parse()
        .ok()
}

type AttemptError = (String, Option<i64>, Option<PathBuf>);

async fn attempt(
    forge: &Arc<Forge>,
    job: &Job,
    commit: &str,
    local: &BTreeMap<String, Digest>,
    force: bool,
    builds: &Semaphore,
    events: &dyn Events,
) -> Result<ImageResult, AttemptError> {
    let plain = |e: String| (e, None, None);
    let cfg = &forge.config;
    let stream = &cfg.streams[&job.key.stream];
    let variant = &cfg.variants[&stream.variant];
    let mut build_args = variant.build_args.clone();
    build_args.extend(job.image.build_args.clone());
    // The OS image is built on the stream's OS release: it replaces the base of the last stage
    // (or the native base).
    let os_release = match job.os {
        false => None,
        true => Some(
            osgate::desired(&forge.state, &job.key.stream)
                .map_err(|e| plain(e.to_string()))?
                .map_err(plain)?,
        ),
    };
    let os_version = match &os_release {
        Some(r) => Some(r.version.parse::<OsVersion>().map_err(|e| {
            plain(format!(
                "stream {}: recorded OS release: {e}",
                job.key.stream
            ))
        })?),
        None => None,
    };
    let labels = labels(job, commit, os_version.as_ref());
    let os_base = os_release.as_ref().map(|r| r.base.as_str());

    // The Containerfile, read at the commit with its FROMs rewritten, names the images a build
    // reads; a native build reads its base.
    let rules = FromRules {
        base_images: &variant.base_images,
        inputs: &job.image.inputs,
        last_stage: os_base.or(job.image.from.as_deref()),
    };
    let containerfile = match &job.image.recipe {
        Recipe::Native { .. } => None,
        Recipe::Containerfile {
            context,
            containerfile,
        } => {
            events.phase(&job.key, "fetching");
            fetch(forge, job, commit).await.map_err(plain)?;
            let path = context.join(containerfile);
            Some(
                read_file(forge, &job.url, commit, &path)
                    .await
                    .map_err(plain)?,
            )
        }
        Recipe::ContainerfileLiteral { text, .. } => Some(text.clone()),
    };
    let rewritten = match containerfile {
        Some(text) => Some(
            buildah::rewrite_from(&text, &rules)
                .map_err(|e| plain(e.to_string()))?
                .0,
        ),
        None => None,
    };
    let names = match (&rewritten, &job.image.recipe) {
        (Some(text), _) => buildah::from_images(text),
        (None, Recipe::Native { base, .. }) => vec![os_base.unwrap_or(base).to_string()],
        (None, _) => unreachable!("Containerfile recipes have a text"),
    };
    let mut resolved: BTreeMap<String, Resolved> = BTreeMap::new();
    for name in &names {
        let r = match local.get(name) {
            Some(d) => Resolved {
                digest: d.clone(),
                image: store_ref(&forge.store, d),
            },
            None => resolve_image(&forge.sources, name).await.map_err(plain)?,
        };
        resolved.insert(name.clone(), r);
    }

    let hash = input_hash(
        job,
        commit,
        &build_args,
        &rules,
        rewritten.as_deref(),
        &resolved,
        os_release.as_ref().map(|r| r.version.as_str()),
    );
    let current = current(&forge.state, &job.key);
    if !force {
        if let Some(d) = forge
            .state
            .cached(&hash)
            .map_err(|e| plain(e.to_string()))?
        {
            if let Ok(digest) = d.parse::<Digest>() {
                if has_manifest(&forge.store, &digest).await {
                    let os = |gate| {
                        os_release.as_ref().map(|r| OsResult {
                            version: r.version.clone(),
                            gate,
                        })
                    };
                    // Unchanged: the stream already has it, or (an image built but not promoted)
                    // there is nothing to promote, or it is an OS image its gate has settled. A
                    // pull-request build reports the reuse.
                    let settled = os_settled(forge, job, &digest).map_err(plain)?;
                    if current.as_ref() == Some(&digest)
                        || (!job.promote && !job.pull)
                        || settled.is_some()
                    {
                        let mut r = outcome(job, Some(commit), Status::Unchanged);
                        r.digest = Some(digest.to_string());
                        r.os = os(settled.flatten());
                        return Ok(r);
                    }
                    let id = forge
                        .state
                        .start_build(&new_build(job, commit, &hash, None))
                        .map_err(|e| plain(e.to_string()))?;
                    let (promoted, gate) = promote(forge, job, &digest, id, os_release.as_ref())
                        .await
                        .map_err(|e| (e, Some(id), None))?;
                    forge
                        .state
                        .finish_build(
                            id,
                            &Outcome::Cached {
                                digest: digest.to_string(),
                            },
                        )
                        .map_err(|e| (e.to_string(), Some(id), None))?;
                    return Ok(ImageResult {
                        status: Status::Cached,
                        digest: Some(digest.to_string()),
                        promoted,
                        build_id: Some(id),
                        os: os(gate),
                        ..outcome(job, Some(commit), Status::Cached)
                    });
                }
                let _ = forge.state.forget_cached(&hash);
            }
        }
    }

    let _permit = builds.acquire().await.expect("semaphore open");
    let log = log_file(&forge.logs, job, commit).map_err(plain)?;
    let id = forge
        .state
        .start_build(&new_build(job, commit, &hash, Some(&log)))
        .map_err(|e| plain(e.to_string()))?;
    let fail = |e: String| (e, Some(id), Some(log.clone()));
    events.phase(&job.key, "fetching");
    fetch(forge, job, commit).await.map_err(fail)?;
    std::fs::create_dir_all(&forge.work)
        .map_err(|e| fail(format!("{}: {e}", forge.work.display())))?;
    let ws = tempfile::Builder::new()
        .prefix(&format!("{id}-"))
        .tempdir_in(&forge.work)
        .map_err(|e| fail(format!("{}: {e}", forge.work.display())))?;
    let checkout = ws.path().join("src");
    {
        let (forge, url, commit, dest) = (
            forge.clone(),
            job.url.clone(),
            commit.to_string(),
            checkout.clone(),
        );
        tokio::task::spawn_blocking(move || forge.git.checkout(&url, &commit, &dest))
            .await
            .map_err(|e| fail(e.to_string()))?
            .map_err(|e| fail(e.to_string()))?;
    }
    events.phase(&job.key, "building");
    let digest = match &job.image.recipe {
        Recipe::Native {
            command, outputs, ..
        } => {
            let base = resolved.values().next().expect("a native build has a base");
            let (command, outputs) = (command.clone(), outputs.clone());
            let (dir, env, logp) = (checkout.clone(), build_args.clone(), log.clone());
            let tar = tokio::task::spawn_blocking(move || {
                if !command.is_empty() {
                    native::run(&command, &dir, &env, &logp)?;
                }
                native::layer_tar(&dir, &outputs, 0)
            })
            .await
            .map_err(|e| fail(e.to_string()))?
            .map_err(|e| fail(e.to_string()))?;
            events.phase(&job.key, "pushing");
            push_native(forge, base, &tar, &labels, &job.image.recipe)
                .await
                .map_err(fail)?
        }
        Recipe::Containerfile { context, .. } | Recipe::ContainerfileLiteral { context, .. } => {
            let text = rewritten.as_deref().expect("read above");
            let ctx = checkout.join(context);
            let out = ws.path().join("out");
            let image = BuildImage {
                context: &ctx,
                text,
                resolved: &resolved,
                build_args: &build_args,
                labels: &labels,
                log: &log,
                out: &out,
            };
            run_buildah(forge, image, events, &job.key)
                .await
                .map_err(fail)?
        }
    };
    drop(ws);
    let digest = match os_base {
        Some(base) => label_operator(forge, &digest, &resolved[base])
            .await
            .map_err(fail)?,
        None => digest,
    };
    let (promoted, gate) = promote(forge, job, &digest, id, os_release.as_ref())
        .await
        .map_err(fail)?;
    forge
        .state
        .finish_build(
            id,
            &Outcome::Succeeded {
                digest: digest.to_string(),
            },
        )
        .map_err(|e| fail(e.to_string()))?;
    Ok(ImageResult {
        status: Status::Built,
        digest: Some(digest.to_string()),
        promoted,
        build_id: Some(id),
        log: Some(log),
        os: os_release.map(|r| OsResult {
            version: r.version,
            gate,
        }),
        ..outcome(job, Some(commit), Status::Built)
    })
}

/// A new log file `<logs>/<stream>/<tag>/<UTC time>-<commit>.log` (its directory created).
fn log_file(logs: &Path, job: &Job, commit: &str) -> Result<PathBuf, String> {
    let dir = logs.join(&job.key.stream).join(&job.key.tag);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let now = time::OffsetDateTime::now_utc();
    let stamp = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}.{:03}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.millisecond()
    );
    Ok(dir.join(format!("{stamp}-{}.log", &commit[..commit.len().min(12)])))
}

fn new_build(job: &Job, commit: &str, hash: &str, logs: Option<&Path>) -> NewBuild {
    NewBuild {
        stream: job.key.stream.clone(),
        component: job.component.clone(),
        tag: job.key.tag.clone(),
        git_url: job.url.clone(),
        revision: revision_text(&job.revision),
        commit: commit.to_string(),
        input_hash: hash.to_string(),
        builder: match job.image.recipe {
            Recipe::Native { .. } => "native".into(),
            _ => "buildah".into(),
        },
        log_path: logs.map(Path::to_path_buf),
        promote: job.promote,
    }
}

/// The image's configured labels, then the stamps (which win): the commit, and the component
/// versions, with `machine-os` and its display name for an image built on OS release `os`.
fn labels(job: &Job, commit: &str, os: Option<&OsVersion>) -> BTreeMap<String, String> {
    let mut l = job.image.labels.clone();
    l.extend([
        (COMMIT_ID_LABEL.to_string(), commit.to_string()),
        (COMMIT_REF_LABEL.to_string(), revision_text(&job.revision)),
        (SOURCE_LOCATION_LABEL.to_string(), job.url.clone()),
    ]);
    let mut versions = job.image.versions.clone();
    if let Some(v) = os {
        versions.insert("machine-os".into(), v.machine_os().to_string());
        l.insert(
            crate::os::DISPLAY_NAMES_LABEL.to_string(),
            format!("machine-os={}", v.os().display_name()),
        );
    }
    if !versions.is_empty() {
        let v: Vec<String> = versions.iter().map(|(k, v)| format!("{k}={v}")).collect();
        l.insert(VERSIONS_LABEL.to_string(), v.join(","));
    }
    l
}

/// sha256 over everything that decides the image.
fn input_hash(
    job: &Job,
    commit: &str,
    build_args: &BTreeMap<String, String>,
    rules: &FromRules,
    containerfile: Option<&str>,
    resolved: &BTreeMap<String, Resolved>,
    os: Option<&str>,
) -> String {
    let recipe = match &job.image.recipe {
        Recipe::Native {
            command, outputs, ..
        } => json!({ "native": { "command": command, "outputs": outputs } }),
        Recipe::Containerfile { context, .. } | Recipe::ContainerfileLiteral { context, .. } => {
            // The rewritten text covers the file, the literal and every substitution that applied.
            json!({ "containerfile": containerfile, "context": context, "from": rules.last_stage })
        }
    };
    let doc = json!({
        "version": HASH_VERSION,
        "commit": commit,
        "ref": revision_text(&job.revision),
        "url": job.url,
        "recipe": recipe,
        "build_args": build_args,
        "versions": job.image.versions,
        "labels": job.image.labels,
        "images": resolved.iter().map(|(n, r)| (n.clone(), Value::String(r.digest.to_string()))).collect::<serde_json::Map<_, _>>(),
        "os": os,
    });
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(&doc).expect("hash input serialises"));
    format!("sha256:{}", hex::encode(h.finalize()))
}

async fn fetch(forge: &Arc<Forge>, job: &Job, commit: &str) -> Result<(), String> {
    let (forge, url, rev, commit) = (
        forge.clone(),
        job.url.clone(),
        job.revision.clone(),
        commit.to_string(),
    );
    tokio::task::spawn_blocking(move || forge.git.fetch(&url, &rev, &commit))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

async fn read_file(
    forge: &Arc<Forge>,
    url: &str,
    commit: &str,
    path: &Path,
) -> Result<String, String> {
    let (f, u, c, p) = (
        forge.clone(),
        url.to_string(),
        commit.to_string(),
        path.to_path_buf(),
    );
    let bytes = tokio::task::spawn_blocking(move || f.git.read_file(&u, &c, &p))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let path = path.display();
    match bytes {
        None => Err(format!(
            "{path} does not exist at commit {commit} of {url}; check the image's `containerfile` and `context`"
        )),
        Some(b) => {
            String::from_utf8(b).map_err(|_| format!("{path} at {commit} of {url} is not UTF-8"))
        }
    }
}

/// The reference of a stored image by digest.
fn store_ref(store: &Store, digest: &Digest) -> ImageRef {
    match store {
        Store::Layout(l) => ImageRef::Layout {
            path: l.path().to_path_buf(),
            selector: Some(Selector::Digest(digest.clone())),
        },
        Store::Registry(r) => ImageRef::Registry {
            repo: oci::RegistryRepo {
                registry: r.registry().host().to_string(),
                repository: r.name().to_string(),
            },
            selector: Some(Selector::Digest(digest.clone())),
        },
    }
}

/// Resolves an image the build reads: `oci:DIR[:TAG|@DIGEST]`, `docker://…` or a bare pull spec.
async fn resolve_image(sources: &Sources, name: &str) -> Result<Resolved, String> {
    let image: ImageRef = if name.starts_with("oci:") || name.starts_with("docker://") {
        name.parse()
            .map_err(|e: oci::Error| format!("image '{name}': {e}"))?
    } else {
        PullSpec::parse(&format!("image '{name}'"), name)
            .map_err(|e| e.to_string())?
            .image_ref()
    };
    let found = sources
        .find_ref(&format!("image '{name}'"), &image)
        .await
        .map_err(|e| e.to_string())?;
    let digest = found.manifest.digest.clone();
    let image = match image {
        ImageRef::Layout { path, .. } => ImageRef::Layout {
            path,
            selector: Some(Selector::Digest(digest.clone())),
        },
        ImageRef::Registry { repo, .. } => ImageRef::Registry {
            repo,
            selector: Some(Selector::Digest(digest.clone())),
        },
    };
    Ok(Resolved { digest, image })
}

/// Whether the store still has the image. A layout only needs its manifest blob (every image built
/// is a root of the index, and gc keeps what a root reaches); reading the index per image would make
/// a reconcile quadratic in the store's size.
async fn has_manifest(store: &Store, digest: &Digest) -> bool {
    match store {
        Store::Layout(l) => l.blob_path(digest).is_file(),
        Store::Registry(_) => store
            .get_manifest(Some(&Selector::Digest(digest.clone())))
            .await
            .is_ok(),
    }
}

/// Promotes what `job` built: into the stream (see [`promote_tag`]), or, for the OS image of a
/// stream that follows an OS (built on `os`), as a candidate through the OS gate.
async fn promote(
    forge: &Arc<Forge>,
    job: &Job,
    digest: &Digest,
    build_id: i64,
    os: Option<&OsReleaseRecord>,
) -> Result<(bool, Option<Proposal>), String> {
    if !job.promote {
        return Ok((false, None));
    }
    if let (true, Some(os)) = (job.os, os) {
        if let Some(gate) = os_settled(forge, job, digest)? {
            return Ok((false, gate));
        }
        let p = osgate::propose(
            &forge.state,
            &job.key.stream,
            &job.key.tag,
            &digest.to_string(),
            &os.version,
            Some(build_id),
            osgate::now(),
        )
        .map_err(|e| e.to_string())?;
        return Ok((false, Some(p)));
    }
    let promoted =
        promote_tag(forge, &job.key.stream, &job.key.tag, digest, Some(build_id)).await?;
    Ok((promoted, None))
}

/// For the OS image `digest` of a stream that follows an OS, when the gate has nothing to do with
/// it: the stream has it (`Some(None)`; a candidate being tested is withdrawn, since the build
/// went back to the stream's own image, as a pin to it does), or the gate holds it already
/// (`Some(Some(..))`: being tested, or rejected). `None` for any other image or job.
fn os_settled(
    forge: &Forge,
    job: &Job,
    digest: &Digest,
) -> Result<Option<Option<Proposal>>, String> {
    if !(job.os && job.promote) {
        return Ok(None);
    }
    let fail = |e: crate::state::StateError| e.to_string();
    if current(&forge.state, &job.key).as_ref() == Some(digest) {
        osgate::withdraw(&forge.state, &job.key.stream, osgate::now()).map_err(fail)?;
        return Ok(Some(None));
    }
    Ok(
        osgate::known(&forge.state, &job.key.stream, &digest.to_string())
            .map_err(fail)?
            .map(Some),
    )
}

/// Points `stream`'s `tag` at `digest`: the store tag first, then the database, so a crash in
/// between converges on the next run (the database still differs, so the promotion is redone).
/// Whether the tag moved.
pub async fn promote_tag(
    forge: &Forge,
    stream: &str,
    tag: &str,
    digest: &Digest,
    build_id: Option<i64>,
) -> Result<bool, String> {
    let m = forge
        .store
        .get_manifest(Some(&Selector::Digest(digest.clone())))
        .await
        .map_err(|e| e.to_string())?;
    forge
        .store
        .put_manifest(&m, Some(&store_tag(stream, tag)), true)
        .await
        .map_err(|e| e.to_string())?;
    forge
        .state
        .promote(stream, tag, &digest.to_string(), build_id)
        .map_err(|e| e.to_string())
}

/// The OS image `digest` labelled `io.openshift.release.operator=true` when its top layer, one
/// the build added on top of `base`, holds files under `/manifests` (what `release new` reads of
/// an operator image); otherwise, or when the label is set already, `digest` itself.
async fn label_operator(forge: &Forge, digest: &Digest, base: &Resolved) -> Result<Digest, String> {
    let what = format!("OS image {digest}");
    let found = forge
        .sources
        .find_ref(&what, &store_ref(&forge.store, digest))
        .await
        .map_err(|e| e.to_string())?;
    let (config, layers) = forge
        .sources
        .config(&what, &found)
        .await
        .map_err(|e| e.to_string())?;
    if config.label(OPERATOR_LABEL).is_some() {
        return Ok(digest.clone());
    }
    let base_what = format!("base image {}", base.image);
    let (_, _, _, base_layers) = forge
        .sources
        .image_config(&base_what, &base.image, Some(oci::manifest::host_arch()))
        .await
        .map_err(|e| e.to_string())?;
    if layers.len() <= base_layers.len()
        || forge
            .sources
            .operator_files(&what, &found, &layers, false)
            .await
            .map_err(|e| e.to_string())?
            .is_empty()
    {
        return Ok(digest.clone());
    }
    let mut cfg = config.0;
    let inner = cfg
        .pointer_mut("/config")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| format!("{what}: its config has no `config` object"))?;
    let labels = inner.entry("Labels").or_insert_with(|| json!({}));
    if !labels.is_object() {
        *labels = json!({});
    }
    labels[OPERATOR_LABEL] = json!("true");
    let cfg_bytes = bytes::Bytes::from(serde_json::to_vec(&cfg).expect("JSON serialises"));
    let cfg_digest = Digest::sha256_of(&cfg_bytes);
    let mut manifest: Value = serde_json::from_slice(&found.manifest.bytes)
        .map_err(|e| format!("{what}: its manifest: {e}"))?;
    let media = manifest["config"]["mediaType"]
        .as_str()
        .unwrap_or(media_type::OCI_CONFIG)
        .to_string();
    manifest["config"]["digest"] = json!(cfg_digest.to_string());
    manifest["config"]["size"] = json!(cfg_bytes.len());
    let m_bytes = bytes::Bytes::from(serde_json::to_vec(&manifest).expect("JSON serialises"));
    let m_digest = Digest::sha256_of(&m_bytes);
    let raw = oci::RawManifest::new(
        &what,
        m_bytes,
        Some(&found.manifest.media_type),
        m_digest.clone(),
    )
    .map_err(|e| e.to_string())?;
    let image = NewImage {
        manifest: raw,
        children: Vec::new(),
        blobs: vec![(
            Descriptor::new(media, cfg_digest, cfg_bytes.len() as u64),
            cfg_bytes,
        )],
        base_layers: layers,
        base_store: forge.store.clone(),
    };
    compose::push(&image, &forge.copier, &forge.store, None)
        .await
        .map_err(|e| e.to_string())?;
    Ok(m_digest)
}

/// Layers a native build's tar onto its base and pushes the image (untagged) to the store.
async fn push_native(
    forge: &Arc<Forge>,
    base: &Resolved,
    tar: &[u8],
    labels: &BTreeMap<String, String>,
    recipe: &Recipe,
) -> Result<Digest, String> {
    let what = format!("base image {}", base.image);
    let (_, found, config, layers) = forge
        .sources
        .image_config(&what, &base.image, Some(oci::manifest::host_arch()))
        .await
        .map_err(|e| e.to_string())?;
    let layer = Layer::from_tar(tar);
    let created = "1970-01-01T00:00:00Z";
    let comment = match recipe {
        Recipe::Native { command, .. } if command.is_empty() => {
            "okd-forge native build: outputs taken from the checkout".into()
        }
        Recipe::Native { command, .. } => format!("okd-forge native build: {}", command.join(" ")),
        _ => String::new(),
    };
    let (manifest, cfg) =
        compose::docker_image_on(&what, config.0, &layers, &layer, created, |obj| {
            let inner = obj["config"].as_object_mut().expect("config object");
            let l = inner.entry("Labels").or_insert_with(|| json!({}));
            if !l.is_object() {
                *l = json!({});
            }
            for (k, v) in labels {
                l[k] = json!(v);
            }
            if let Some(Value::Array(h)) = obj.get_mut("history") {
                h.push(json!({ "created": created, "created_by": comment }));
            }
        })
        .map_err(|e| e.to_string())?;
    let image = NewImage {
        blobs: vec![
            (
                Descriptor::new(
                    media_type::DOCKER_LAYER_GZIP,
                    layer.digest.clone(),
                    layer.gzip.len() as u64,
                ),
                layer.gzip,
            ),
            cfg,
        ],
        children: Vec::new(),
        base_layers: layers,
        base_store: found.store,
        manifest,
    };
    compose::push(&image, &forge.copier, &forge.store, None)
        .await
        .map_err(|e| e.to_string())?;
    Ok(image.manifest.digest)
}

/// A Containerfile build, its text already rewritten.
struct BuildImage<'a> {
    context: &'a Path,
    text: &'a str,
    resolved: &'a BTreeMap<String, Resolved>,
    build_args: &'a BTreeMap<String, String>,
    labels: &'a BTreeMap<String, String>,
    log: &'a Path,
    /// The temporary OCI layout buildah exports to.
    out: &'a Path,
}

/// Runs buildah into a temporary layout, then copies the image into the store.
async fn run_buildah(
    forge: &Arc<Forge>,
    b: BuildImage<'_>,
    events: &dyn Events,
    key: &ImageKey,
) -> Result<Digest, String> {
    let resolved: BTreeMap<String, String> = b
        .resolved
        .iter()
        .map(|(n, r)| (n.clone(), buildah::buildah_ref(&r.image)))
        .collect();
    let (f, context, text, args, labels, log, out) = (
        forge.clone(),
        b.context.to_path_buf(),
        b.text.to_string(),
        b.build_args.clone(),
        b.labels.clone(),
        b.log.to_path_buf(),
        b.out.to_path_buf(),
    );
    // Loopback registries may speak plain http, as okd-forge's own client allows.
    let insecure = forge.insecure_registries
        || resolved.values().any(|r| {
            ["docker://127.", "docker://localhost", "docker://[::1]"]
                .iter()
                .any(|p| r.starts_with(p))
        });
    tokio::task::spawn_blocking(move || {
        // The text is already rewritten: only the resolved references are substituted now.
        let none = BTreeMap::new();
        f.buildah.build(&BuildRequest {
            context: &context,
            containerfile: ContainerfileSource::Text(&text),
            rules: FromRules {
                base_images: &none,
                inputs: &BTreeMap::new(),
                last_stage: None,
            },
            resolved: &resolved,
            build_args: &args,
            labels: &labels,
            timestamp: Some(0),
            insecure_registries: insecure,
            log: &log,
            out_layout: &out,
        })
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    events.phase(key, "pushing");
    let src = Store::Layout(Layout::open(b.out).map_err(|e| e.to_string())?);
    let sel = Selector::Tag("image".into());
    let root = src
        .get_manifest(Some(&sel))
        .await
        .map_err(|e| e.to_string())?;
    forge
        .copier
        .copy_resolved(&src, Some(&sel), &root, &forge.store, None)
        .await
        .map_err(|e| e.to_string())?;
    Ok(root.digest)
}

/// Whether a stream's `rebuild` schedule fired after `last_forced` and by `now` (unix seconds, UTC).
pub fn rebuild_due(rebuild: &Rebuild, last_forced: i64, now: i64) -> bool {
    let Some(from) = chrono::DateTime::from_timestamp(last_forced, 0) else {
        return false;
    };
    rebuild
        .cron
        .find_next_occurrence(&from, false)
        .is_ok_and(|next| next.timestamp() <= now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rebuild(expression: &str) -> Rebuild {
        Rebuild {
            expression: expression.into(),
            cron: expression.parse().unwrap(),
        }
    }

    #[test]
    fn a_rebuild_is_due_once_its_next_occurrence_has_passed() {
        let daily = rebuild("0 3 * * *");
        // 2026-11-24T02:00:00Z: the next occurrence is 03:00 the same day.
        let last = 1_795_485_600;
        assert!(!rebuild_due(&daily, last, last + 3_599), "02:59:59");
        assert!(rebuild_due(&daily, last, last + 3_600), "03:00:00");
        assert!(
            rebuild_due(&daily, last, last + 10 * 86_400),
            "days later: once, not skipped"
        );
        // Forced at 03:00: the next is tomorrow's.
        let forced = last + 3_600;
        assert!(!rebuild_due(&daily, forced, forced + 86_399));
        assert!(rebuild_due(&daily, forced, forced + 86_400));
    }

    #[test]
    fn jobs_are_ordered_after_what_they_read_and_cycles_are_named() {
        let job = |tag: &str, deps: &[&str]| Job {
            key: ImageKey {
                stream: "s".into(),
                tag: tag.into(),
            },
            component: tag.into(),
            image: Image {
                to: tag.into(),
                recipe: Recipe::Native {
                    command: vec!["true".into()],
                    outputs: Vec::new(),
                    base: String::new(),
                },
                build_args: BTreeMap::new(),
                from: None,
                inputs: BTreeMap::new(),
                versions: BTreeMap::new(),
                labels: BTreeMap::new(),
                os: false,
            },
            promote: true,
            pull: false,
            os: false,
            url: String::new(),
            revision: Revision::Branch("main".into()),
            deps: deps
                .iter()
                .map(|d| {
                    (
                        d.to_string(),
                        ImageKey {
                            stream: "s".into(),
                            tag: d.to_string(),
                        },
                    )
                })
                .collect(),
        };
        let ordered = order(vec![
            job("installer-artifacts", &["installer"]),
            job("installer", &["base"]),
            job("base", &[]),
            job("a", &["b"]),
            job("b", &["a"]),
        ]);
        let got: Vec<(&str, bool)> = ordered
            .iter()
            .map(|(j, cycle)| (j.key.tag.as_str(), cycle.is_some()))
            .collect();
        assert_eq!(
            got,
            [
                ("base", false),
                ("installer", false),
                ("installer-artifacts", false),
                ("a", true),
                ("b", true)
            ]
        );
        assert_eq!(
            ordered[3].1.as_deref(),
            Some("s/a is part of a dependency cycle (s/b); fix `from`/`inputs`")
        );
    }
}
