//! Reading a release payload (`oc adm release info`): its metadata, image references and manifests, from
//! the top layer only, as oc does.

use std::collections::BTreeMap;

use oci::manifest::Parsed;
use oci::{Digest, ImageRef};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::imagestream::{self as is, ImageStream};
use crate::manifests::{is_manifest, ManifestFile};
use crate::metadata::ReleaseMetadata;
use crate::source::{blocking, decompress, pick_child, Config, Found, Sources};
use crate::version::{parse_display_names, parse_versions};

/// A component version, as `info` reports it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ComponentVersion {
    /// The version (several, comma-separated, for a dual-stream `machine-os`).
    #[serde(rename = "Version")]
    pub version: String,
    /// The display name, e.g. "CentOS Stream CoreOS".
    #[serde(rename = "DisplayName")]
    pub display_name: String,
}

/// What `release info` shows about a payload.
#[derive(Debug, Clone)]
pub struct ReleaseInfo {
    /// The reference as given.
    pub image: String,
    /// The release digest (the list's, for a manifest list).
    pub digest: Digest,
    /// The digest of the image read (the per-arch child of a list).
    pub content_digest: Digest,
    /// Set for manifest lists.
    pub list_digest: Option<Digest>,
    /// Where to pull it from, by digest.
    pub pull_spec: String,
    /// The config of the image read.
    pub config: Config,
    /// `linux/amd64`, or `multi (linux/amd64)` for a list.
    pub platform: String,
    /// release-metadata, if present.
    pub metadata: Option<ReleaseMetadata>,
    /// image-references.
    pub references: ImageStream,
    /// Every file of `release-manifests/` (top layer).
    pub files: BTreeMap<String, ManifestFile>,
    /// Component versions over all tags.
    pub versions: BTreeMap<String, ComponentVersion>,
    /// Problems found while reading.
    pub warnings: Vec<String>,
}

impl ReleaseInfo {
    /// What `release info` prints (`oc adm release info`): name, digest, metadata, component
    /// versions and images, with their commits instead of pull specs when `commits`.
    pub fn describe(&self, commits: bool) -> String {
        let i = self;
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(s, "Name:           {}", i.name());
        let _ = writeln!(s, "Digest:         {}", i.digest);
        let _ = writeln!(s, "Created:        {}", i.config.created());
        let _ = writeln!(s, "OS/Arch:        {}", i.platform);
        let _ = writeln!(s, "Manifests:      {}", i.manifests().len());
        if !i.metadata_files().is_empty() {
            let _ = writeln!(s, "Metadata files: {}", i.metadata_files().len());
        }
        let _ = writeln!(s, "\nPull From: {}", i.pull_spec);
        if let Some(m) = &i.metadata {
            let _ = writeln!(s, "\nRelease Metadata:\n  Version:  {}", m.version);
            let mut prev: Vec<&String> = m.previous.iter().collect();
            prev.sort_by(
                |a, b| match (semver::Version::parse(a), semver::Version::parse(b)) {
                    (Ok(x), Ok(y)) => x.cmp(&y),
                    _ => a.cmp(b),
                },
            );
            let upgrades = if prev.is_empty() {
                "<none>".to_string()
            } else {
                prev.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(s, "  Upgrades: {upgrades}");
            if !m.metadata.is_empty() {
                let _ = writeln!(s, "  Metadata:");
                for (k, v) in &m.metadata {
                    let _ = writeln!(s, "    {k}: {v}");
                }
            }
        }
        if !i.versions.is_empty() {
            let _ = writeln!(s, "\nComponent Versions:");
            let width = i.versions.keys().map(String::len).max().unwrap_or(0);
            for (k, v) in &i.versions {
                let line = format!("  {k:width$}  {:<16} {}", v.version, v.display_name);
                let _ = writeln!(s, "{}", line.trim_end());
            }
        }
        let tags = &i.references.spec.tags;
        let width = tags.iter().map(|t| t.name.len()).max().unwrap_or(4).max(4);
        let _ = writeln!(s, "\nImages:");
        if commits {
            let _ = writeln!(s, "  {:width$}  {:<60}  COMMIT", "NAME", "REPO");
            for t in tags {
                let repo = t.annotation(is::SOURCE_LOCATION);
                let _ = writeln!(
                    s,
                    "  {:width$}  {:<60}  {}",
                    t.name,
                    repo,
                    t.annotation(is::COMMIT_ID)
                );
            }
        } else {
            let _ = writeln!(s, "  {:width$}  PULL SPEC", "NAME");
            for t in tags {
                let _ = writeln!(s, "  {:width$}  {}", t.name, t.pullspec().unwrap_or(""));
            }
        }
        if !i.warnings.is_empty() {
            let _ = writeln!(s, "\nWarnings:");
            for w in &i.warnings {
                let _ = writeln!(s, "* {w}");
            }
        }
        s
    }

    /// The release name: the metadata version, else the image-references name.
    pub fn name(&self) -> &str {
        match &self.metadata {
            Some(m) => &m.version,
            None => &self.references.metadata.name,
        }
    }

    /// Manifest files (YAML/JSON), in name order.
    pub fn manifests(&self) -> Vec<&str> {
        self.files
            .keys()
            .filter(|n| !METADATA_FILES.contains(&n.as_str()) && is_manifest(n))
            .map(String::as_str)
            .collect()
    }

    /// Other files (README, ...).
    pub fn metadata_files(&self) -> Vec<&str> {
        self.files
            .keys()
            .filter(|n| !METADATA_FILES.contains(&n.as_str()) && !is_manifest(n))
            .map(String::as_str)
            .collect()
    }
}

const METADATA_FILES: [&str; 2] = ["image-references", "release-metadata"];

/// Load a release for `info`/`diff`, reading its top layer. For a manifest list, the child for `arch`
/// (default amd64, else the first) is read.
pub async fn load(sources: &Sources, r: &ImageRef, arch: Option<&str>) -> Result<ReleaseInfo> {
    let what = r.to_string();
    let (found, image, list_digest) = resolve(sources, &what, r, arch).await?;
    let (config, layers) = sources.config(&what, &image).await?;
    let top = layers.last().cloned().ok_or_else(|| Error::BadRelease {
        image: what.clone(),
        reason: "the image has no layers".into(),
    })?;
    let files = read_layers(sources, &what, &image, vec![top]).await?;
    build_info(what, r, found, image, list_digest, config, files)
}

/// The top manifest of `r`, the image to read (for a list, its child for `arch`, see
/// [`pick_child`](crate::source::pick_child)) and the list digest.
pub async fn resolve(
    sources: &Sources,
    what: &str,
    r: &ImageRef,
    arch: Option<&str>,
) -> Result<(Found, Found, Option<Digest>)> {
    let found = sources.find_ref(what, r).await?;
    match found.manifest.parse()? {
        Parsed::Image { .. } => Ok((found.clone(), found, None)),
        Parsed::Index { manifests } => {
            let child = pick_child(&manifests, arch).ok_or_else(|| Error::BadRelease {
                image: what.to_string(),
                reason: format!(
                    "the manifest list has no image for {}",
                    arch.unwrap_or("amd64")
                ),
            })?;
            let image = sources.child(what, &found, child).await?;
            let list = found.manifest.digest.clone();
            Ok((found, image, Some(list)))
        }
    }
}

/// The `release-manifests/` files of `layers` (top first), safely.
pub(crate) async fn read_layers(
    sources: &Sources,
    what: &str,
    image: &Found,
    layers: Vec<oci::Descriptor>,
) -> Result<BTreeMap<String, ManifestFile>> {
    let tmp = tempfile::tempdir().map_err(crate::error::io(std::env::temp_dir()))?;
    let mut paths = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        paths.push(sources.layer_file(what, image, l, tmp.path(), i).await?);
    }
    let what = what.to_string();
    blocking(move || {
        let mut readers: Vec<Box<dyn std::io::Read>> = Vec::new();
        for p in &paths {
            readers.push(decompress(&what, p)?);
        }
        crate::extract::release_files(readers)
    })
    .await
}

fn build_info(
    what: String,
    r: &ImageRef,
    found: Found,
    image: Found,
    list_digest: Option<Digest>,
    config: Config,
    files: BTreeMap<String, ManifestFile>,
) -> Result<ReleaseInfo> {
    let bad = |reason: String| Error::BadRelease {
        image: what.clone(),
        reason,
    };
    let refs = files.get("image-references").ok_or_else(|| {
        bad("release image did not contain an image-references file in its top layer; is this a release payload?".into())
    })?;
    let references =
        ImageStream::parse("release-manifests/image-references", &refs.data).map_err(bad)?;
    let mut warnings = Vec::new();
    let metadata = match files.get("release-metadata") {
        Some(f) => {
            let (md, w) = ReleaseMetadata::parse(&what, &f.data)?;
            warnings.extend(w);
            Some(md)
        }
        None => None,
    };
    if let Some(m) = &metadata {
        if m.version != references.metadata.name {
            warnings.push(format!(
                "release-metadata version '{}' differs from image-references name '{}'; the CVO rejects this payload",
                m.version, references.metadata.name
            ));
        }
    }
    let versions = component_versions(&references, &mut warnings);
    let digest = found.manifest.digest.clone();
    let pull_spec = match r {
        ImageRef::Registry { repo, .. } => {
            format!("{}/{}@{digest}", repo.registry, repo.repository)
        }
        ImageRef::Layout { path, .. } => format!("oci:{}@{digest}", path.display()),
    };
    let platform = match list_digest {
        Some(_) => format!("multi ({})", config.platform()),
        None => config.platform(),
    };
    Ok(ReleaseInfo {
        image: what,
        digest,
        content_digest: image.manifest.digest.clone(),
        list_digest,
        pull_spec,
        config,
        platform,
        metadata,
        references,
        files,
        versions,
        warnings,
    })
}

/// Aggregate `io.openshift.build.versions` over all tags; disagreements are warnings, except for the
/// dual-stream `machine-os`, whose values are all listed.
fn component_versions(
    refs: &ImageStream,
    warnings: &mut Vec<String>,
) -> BTreeMap<String, ComponentVersion> {
    let mut out: BTreeMap<String, ComponentVersion> = BTreeMap::new();
    for tag in &refs.spec.tags {
        let label = tag.annotation(is::VERSIONS);
        if label.is_empty() {
            continue;
        }
        let versions = match parse_versions(&format!("image tag '{}'", tag.name), label) {
            Ok(v) => v,
            Err(e) => {
                warnings.push(e.to_string());
                continue;
            }
        };
        let names = parse_display_names(tag.annotation(is::DISPLAY_NAMES));
        for (key, version) in versions {
            let display = names.get(&key).cloned().unwrap_or_default();
            match out.get_mut(&key) {
                None => {
                    out.insert(
                        key,
                        ComponentVersion {
                            version,
                            display_name: display,
                        },
                    );
                }
                Some(cv) if key == "machine-os" => {
                    if !cv.version.split(", ").any(|v| v == version) {
                        cv.version = format!("{}, {version}", cv.version);
                    }
                }
                Some(cv)
                    if cv.version != version
                        || (!display.is_empty() && cv.display_name != display) =>
                {
                    warnings.push(format!(
                        "multiple versions or display names reported for '{key}': {} and {version} (tag '{}')",
                        cv.version, tag.name
                    ));
                }
                Some(_) => {}
            }
        }
    }
    out
}
