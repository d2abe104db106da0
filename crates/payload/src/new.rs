//! Assembling a release payload (`oc adm release new`): scan the input images, collect and rewrite
//! operator manifests, write image-references and release-metadata into one new layer on top of the
//! CVO image, and push the result as a Docker schema 2 image or, over a multi-arch base, a manifest list.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use futures_util::{stream, StreamExt, TryStreamExt};
use oci::compose::{self, Layer, NewImage};
use oci::manifest::{media_type, Parsed};
use oci::{Copier, Descriptor, Digest, RawManifest, Store};
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::error::{invalid, Result};
use crate::imagestream::{self as is, ImageStream, TagReference};
use crate::layer;
use crate::manifests::{self, Context, Operator};
use crate::metadata::{ReleaseMetadata, ARCHITECTURE, KIND};
use crate::source::{child_arch, pick_child, Config, Found, PullSpec, Sources};
use crate::version::{parse_versions, ReleaseName, Versions};

/// One input tag.
#[derive(Debug, Clone)]
pub struct InputTag {
    /// The image.
    pub pullspec: PullSpec,
    /// Set by a `TAG=PULLSPEC` override: annotated as such, and all its layers are scanned.
    pub is_override: bool,
    /// Fields carried over from an input image stream (generation, importPolicy, referencePolicy).
    pub carried: Option<TagReference>,
}

/// Which image the payload is built on.
#[derive(Debug, Clone)]
pub enum Base {
    /// The input tag of this name (default `cluster-version-operator`).
    Tag(String),
    /// An explicit image.
    Image(PullSpec),
}

/// What to build.
#[derive(Debug, Clone)]
pub struct NewRelease {
    /// The release name.
    pub name: ReleaseName,
    /// Input tags.
    pub inputs: BTreeMap<String, InputTag>,
    /// The CVO image to build on.
    pub base: Base,
    /// Versions that upgrade to this one.
    pub previous: Vec<String>,
    /// Release metadata (string values).
    pub metadata: BTreeMap<String, String>,
    /// Tags kept even if nothing references them.
    pub include: BTreeSet<String>,
    /// Leave references to missing tags unrewritten.
    pub allow_missing_images: bool,
    /// Creation time (now, or `SOURCE_DATE_EPOCH`), truncated to seconds.
    pub created: OffsetDateTime,
    /// Annotations of the release ImageStream (`from-release`, `from-image-stream`, ...).
    pub annotations: BTreeMap<String, String>,
    /// Fallback component versions for `0.0.1-snapshot-<key>`.
    pub default_versions: Versions,
    /// Manifests of the release itself, by file name, added to `release-manifests/` after the
    /// operators' (one of the same name is replaced), e.g. the verification ConfigMap.
    pub extra_manifests: BTreeMap<String, Vec<u8>>,
}

/// A payload, assembled in memory and ready to push.
pub struct Built {
    /// Name.
    pub name: String,
    /// `created`, RFC 3339.
    pub created: String,
    /// The release digest (of the manifest list for multi-arch).
    pub digest: Digest,
    /// The image: manifest (image or list), per-arch manifests, new blobs and base layers.
    pub image: NewImage,
    /// The image-references written.
    pub image_references: ImageStream,
    /// The release-metadata written.
    pub metadata: ReleaseMetadata,
    /// Names of the files in `release-manifests/` besides the two metadata files.
    pub manifest_names: Vec<String>,
    /// Problems the CVO tolerates but users should fix.
    pub warnings: Vec<String>,
    /// Input tags dropped because nothing needed them.
    pub pruned: Vec<String>,
}

/// Hears how assembly progresses (for progress bars and log lines).
pub trait AssembleProgress: Send + Sync {
    /// One more item of a stage is done: `stage` is "scanned" (an input image's manifest and config)
    /// or "manifests" (an operator's manifests, read or taken from the cache).
    fn step(&self, stage: &str, item: &str, done: usize, total: usize);
}

/// A scanned input image.
struct Scanned {
    tag: String,
    pullspec: String,
    found: Found,
    config: Config,
    layers: Vec<Descriptor>,
}

/// Assemble the payload (reading inputs with up to `jobs` requests at once). Nothing is written
/// anywhere but the cache.
pub async fn assemble(
    sources: &Sources,
    req: &NewRelease,
    jobs: usize,
    progress: &dyn AssembleProgress,
) -> Result<Built> {
    let done = AtomicUsize::new(0);
    let step = |stage: &str, item: &str, total: usize| {
        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
        progress.step(stage, item, n, total);
    };
    let name = req.name.to_string();
    // Tags become file names in the layer (0000_50_<tag>_…): they must be valid tags.
    for tag in req.inputs.keys() {
        oci::reference::parse_tag(tag).map_err(|e| invalid(format!("input tag '{tag}': {e}")))?;
    }
    // The base decides the architectures.
    let (base_what, base_spec) = match &req.base {
        Base::Tag(t) => {
            let input = req.inputs.get(t).ok_or_else(|| {
                invalid(format!(
                    "the base image tag '{t}' is not among the input tags; add it, pass --base-tag TAG, or --to-image-base PULLSPEC"
                ))
            })?;
            (format!("base image tag '{t}'"), input.pullspec.clone())
        }
        Base::Image(p) => (format!("base image {p}"), p.clone()),
    };
    let base = sources.find(&base_what, &base_spec).await?;
    let base_children: Vec<(Descriptor, Found)> = match base.manifest.parse()? {
        Parsed::Image { .. } => Vec::new(),
        Parsed::Index { manifests } => {
            let mut out = Vec::new();
            // Attestation entries (platform unknown/unknown) are not images to build on.
            let images = manifests
                .iter()
                .filter(|d| child_arch(d).is_some_and(|a| a != "unknown"));
            for d in images {
                out.push((d.clone(), sources.child(&base_what, &base, d).await?));
            }
            if out.is_empty() {
                return Err(invalid(format!(
                    "{base_what}: the manifest list has no platform entries"
                )));
            }
            out
        }
    };
    // Components that are lists are read for the base's architecture (the first, for a list base).
    let primary_arch = match base_children.first() {
        Some((d, _)) => child_arch(d),
        None => {
            let (config, _) = sources.config(&base_what, &base).await?;
            config
                .0
                .get("architecture")
                .and_then(|a| a.as_str())
                .map(str::to_string)
        }
    };

    // Scan every input: its manifest (by digest), the config of the primary arch, its layers.
    let scanned: Vec<Scanned> = stream::iter(req.inputs.iter())
        .map(|(tag, input)| async {
            let s = scan(sources, tag, input, primary_arch.as_deref()).await?;
            step("scanned", tag, req.inputs.len());
            Ok::<_, crate::Error>(s)
        })
        .buffer_unordered(jobs.max(1))
        .try_collect()
        .await?;
    let scanned: BTreeMap<String, Scanned> =
        scanned.into_iter().map(|s| (s.tag.clone(), s)).collect();

    let mut versions = BTreeMap::new();
    for s in scanned.values() {
        if let Some(label) = s.config.label(is::VERSIONS) {
            versions.insert(
                s.tag.clone(),
                parse_versions(&format!("image tag '{}'", s.tag), label)?,
            );
        }
    }
    let pullspecs: BTreeMap<String, String> = scanned
        .values()
        .map(|s| (s.tag.clone(), s.pullspec.clone()))
        .collect();

    // Operator manifests, top layer only (all layers for overrides), in tag order.
    let operator_tags: Vec<&Scanned> = scanned
        .values()
        .filter(|s| {
            s.config
                .label(is::OPERATOR_LABEL)
                .is_some_and(|v| !v.is_empty())
        })
        .collect();
    done.store(0, Ordering::Relaxed);
    let files: Vec<Vec<manifests::ManifestFile>> = stream::iter(operator_tags.iter())
        .map(|s| async {
            let all = req.inputs[&s.tag].is_override;
            let what = format!("operator image tag '{}'", s.tag);
            let files = sources
                .operator_files(&what, &s.found, &s.layers, all)
                .await?;
            step("manifests", &s.tag, operator_tags.len());
            Ok::<_, crate::Error>(files)
        })
        .buffered(jobs.max(1))
        .try_collect()
        .await?;
    let operators: Vec<Operator> = operator_tags
        .iter()
        .zip(&files)
        .map(|(s, f)| Operator {
            tag: &s.tag,
            files: f,
        })
        .collect();
    let mut rendered = manifests::render(
        &operators,
        &Context {
            release: &req.name,
            pullspecs: &pullspecs,
            versions: &versions,
            default_versions: &req.default_versions,
            allow_missing_images: req.allow_missing_images,
        },
        &|what: &str, data: &[u8]| sources.validate(what, data),
    )?;
    for (file, data) in &req.extra_manifests {
        rendered
            .warnings
            .extend(sources.validate(&format!("release manifest {file}"), data)?);
        if let Some(i) = rendered.files.iter().position(|f| &f.name == file) {
            rendered.warnings.push(format!(
                "release-manifests/{file} of an operator image is replaced by the release's own"
            ));
            rendered.files.remove(i);
        }
        rendered.files.push(manifests::ManifestFile {
            name: file.clone(),
            data: data.clone(),
            mtime: req.created.unix_timestamp().max(0) as u64,
        });
    }

    // Prune, then write image-references.
    let created = rfc3339(req.created);
    let mut refs = ImageStream::release(&name, &created);
    refs.metadata.annotations = req.annotations.clone();
    let mut keep: BTreeSet<&str> = rendered.referenced.iter().map(String::as_str).collect();
    keep.extend(operator_tags.iter().map(|s| s.tag.as_str()));
    keep.extend(req.include.iter().map(String::as_str));
    if let Base::Tag(t) = &req.base {
        keep.insert(t);
    }
    let mut pruned = Vec::new();
    for (tag, s) in &scanned {
        if !keep.contains(tag.as_str()) {
            pruned.push(tag.clone());
            continue;
        }
        let input = &req.inputs[tag];
        let mut t = TagReference::new(
            tag,
            &s.pullspec,
            tag_annotations(&s.config, input.is_override),
        );
        if let Some(c) = &input.carried {
            t.generation = c.generation;
            t.import_policy = c.import_policy.clone();
            t.reference_policy = c.reference_policy.clone();
        }
        refs.spec.tags.push(t);
    }
    let mut metadata = req.metadata.clone();
    let mut warnings = rendered.warnings;
    if !base_children.is_empty() {
        metadata.insert(ARCHITECTURE.into(), "multi".into());
    } else if metadata.remove(ARCHITECTURE).is_some() {
        warnings.push(format!(
            "metadata '{ARCHITECTURE}' dropped: the base is a single-architecture image, and the CVO would take the payload for a multi-arch one"
        ));
    }
    let md = ReleaseMetadata {
        kind: KIND.into(),
        version: name.clone(),
        previous: req.previous.clone(),
        next: Vec::new(),
        metadata,
    };
    let layer = layer::build(
        &refs.to_bytes(),
        &md.to_bytes(),
        &rendered.files,
        req.created.unix_timestamp().max(0) as u64,
    )?;

    // One image per base image (per arch), all with the same layer.
    let mut blobs = vec![(
        Descriptor::new(
            media_type::DOCKER_LAYER_GZIP,
            layer.digest.clone(),
            layer.gzip.len() as u64,
        ),
        layer.gzip.clone(),
    )];
    let mut base_layers = Vec::new();
    let (manifest, children) = if base_children.is_empty() {
        let (m, cfg, layers) =
            release_image(sources, &base_what, &base, &name, &created, &layer).await?;
        blobs.push(cfg);
        base_layers.extend(layers);
        (m, Vec::new())
    } else {
        let mut children = Vec::new();
        let mut entries = Vec::new();
        for (desc, found) in &base_children {
            let what = format!("{base_what} ({})", child_arch(desc).unwrap_or_default());
            let (m, cfg, layers) =
                release_image(sources, &what, found, &name, &created, &layer).await?;
            blobs.push(cfg);
            base_layers.extend(layers);
            let mut d = Descriptor::new(
                media_type::DOCKER_MANIFEST,
                m.digest.clone(),
                m.bytes.len() as u64,
            );
            d.platform = desc.platform.clone();
            entries.push(d);
            children.push(m);
        }
        let list = json!({
            "schemaVersion": 2,
            "mediaType": media_type::DOCKER_LIST,
            "manifests": entries,
        });
        (raw(&list)?, children)
    };
    Ok(Built {
        name,
        created,
        digest: manifest.digest.clone(),
        image: NewImage {
            manifest,
            children,
            blobs,
            base_layers,
            base_store: base.store.clone(),
        },
        image_references: refs,
        metadata: md,
        manifest_names: rendered.files.iter().map(|f| f.name.clone()).collect(),
        warnings,
        pruned,
    })
}

async fn scan(
    sources: &Sources,
    tag: &str,
    input: &InputTag,
    arch: Option<&str>,
) -> Result<Scanned> {
    let what = format!("image tag '{tag}' ({})", input.pullspec);
    let found = sources.find(&what, &input.pullspec).await?;
    let pullspec = input.pullspec.by_digest(&found.manifest.digest);
    let image = match found.manifest.parse()? {
        Parsed::Image { .. } => found.clone(),
        Parsed::Index { manifests } => {
            let child = pick_child(&manifests, arch).ok_or_else(|| {
                invalid(format!(
                    "{what}: the manifest list has no image for {}",
                    arch.unwrap_or("amd64")
                ))
            })?;
            sources.child(&what, &found, child).await?
        }
    };
    let (config, layers) = sources.config(&what, &image).await?;
    Ok(Scanned {
        tag: tag.to_string(),
        pullspec,
        found: image,
        config,
        layers,
    })
}

/// Build annotations from a component's labels, as oc copies them.
fn tag_annotations(config: &Config, is_override: bool) -> BTreeMap<String, String> {
    let mut a = BTreeMap::new();
    for key in [is::COMMIT_ID, is::COMMIT_REF, is::SOURCE_LOCATION] {
        a.insert(key.to_string(), config.label(key).unwrap_or("").to_string());
    }
    for key in [is::VERSIONS, is::DISPLAY_NAMES] {
        if let Some(v) = config.label(key) {
            a.insert(key.to_string(), v.to_string());
        }
    }
    if is_override {
        a.insert(is::OVERRIDE.into(), "true".into());
    }
    a
}

/// The release image over one base image: (manifest, config blob, base layers). Labels are exactly
/// the two oc writes; history is oc's: one commented entry, padded to one per layer.
async fn release_image(
    sources: &Sources,
    what: &str,
    base: &Found,
    name: &str,
    created: &str,
    layer: &Layer,
) -> Result<(RawManifest, (Descriptor, Bytes), Vec<Descriptor>)> {
    let (config, layers) = sources.config(what, base).await?;
    let (manifest, cfg) =
        compose::docker_image_on(what, config.0, &layers, layer, created, |obj| {
            obj["config"]["Labels"] = json!({
                is::RELEASE_LABEL: name,
                is::BASE_DIGEST_LABEL: base.manifest.digest.to_string(),
            });
            let mut history =
                vec![json!({ "created": created, "comment": "Release image for OpenShift" })];
            while history.len() < layers.len() + 1 {
                history.push(json!({ "created": created }));
            }
            obj.insert("history".into(), Value::Array(history));
        })?;
    Ok((manifest, cfg, layers))
}

fn raw(v: &Value) -> Result<RawManifest> {
    let bytes = Bytes::from(serde_json::to_vec(v).expect("manifest serialises"));
    let digest = Digest::sha256_of(&bytes);
    Ok(RawManifest::new("release manifest", bytes, None, digest)?)
}

/// `YYYY-MM-DD-HHMMSS` in UTC: the time part of release names (`0.0.1-…` as oc names them, and
/// the release controller's `<prefix>-…`).
pub fn name_stamp(t: OffsetDateTime) -> String {
    rfc3339(t).replace('T', "-").replace([':', 'Z'], "")
}

/// RFC 3339 UTC, seconds.
pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Push a built payload to `dst`, tagged `tag`, so the tag appears only when everything it needs is there.
pub async fn push(built: &Built, copier: &Copier, dst: &Store, tag: &str) -> Result<()> {
    Ok(compose::push(&built.image, copier, dst, Some(tag)).await?)
}
