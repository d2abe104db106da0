//! Where component and release images are read from: a local OCI layout first (content is addressed
//! by digest, so an image mirrored into the embedded store is found there under any pull spec), then
//! the registry the pull spec names. Small, immutable results (manifests and configs by digest, and the
//! operator manifests extracted from a layer) are cached on disk, so re-assembling a payload after one
//! component changed reads only that component.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use oci::manifest::Parsed;
use oci::{
    Descriptor, Digest, ImageRef, Layout, RawManifest, RegistryRepo, Selector, Store, Stores,
};

use crate::error::{invalid, io, Result};
use crate::manifests::{files_in_layers, ManifestFile};

/// A Docker pull spec: `HOST[:PORT]/REPO[:TAG][@DIGEST]`, optionally written with `docker://`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullSpec {
    /// The repository.
    pub repo: RegistryRepo,
    /// Tag or digest.
    pub selector: Selector,
}

impl PullSpec {
    /// Parse a pull spec; `what` names it in errors (a tag, a file line).
    pub fn parse(what: &str, s: &str) -> Result<PullSpec> {
        let s = s.trim();
        let r: ImageRef = format!("docker://{}", s.strip_prefix("docker://").unwrap_or(s))
            .parse()
            .map_err(|e| invalid(format!("{what}: {e}")))?;
        match r {
            ImageRef::Registry { repo, selector } => Ok(PullSpec {
                repo,
                selector: selector.unwrap_or(Selector::Tag("latest".into())),
            }),
            ImageRef::Layout { .. } => unreachable!("parsed with docker://"),
        }
    }

    /// `HOST/REPO@DIGEST`: how image-references names an image.
    pub fn by_digest(&self, digest: &Digest) -> String {
        format!("{}/{}@{digest}", self.repo.registry, self.repo.repository)
    }

    /// The digest, if the pull spec has one.
    pub fn digest(&self) -> Option<&Digest> {
        match &self.selector {
            Selector::Digest(d) => Some(d),
            Selector::Tag(_) => None,
        }
    }

    /// As an [`ImageRef`].
    pub fn image_ref(&self) -> ImageRef {
        ImageRef::Registry {
            repo: self.repo.clone(),
            selector: Some(self.selector.clone()),
        }
    }
}

impl fmt::Display for PullSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}{}",
            self.repo.registry, self.repo.repository, self.selector
        )
    }
}

/// An image config, kept whole (a release config starts from the base's).
#[derive(Debug, Clone)]
pub struct Config(pub serde_json::Value);

impl Config {
    /// Parse config bytes of `what`.
    pub fn parse(what: &str, bytes: &[u8]) -> Result<Config> {
        let v: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| invalid(format!("{what}: image config is not JSON: {e}")))?;
        if !v.is_object() {
            return Err(invalid(format!(
                "{what}: image config is not a JSON object"
            )));
        }
        Ok(Config(v))
    }

    /// A label, if set.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.0
            .pointer("/config/Labels")
            .and_then(|l| l.get(key))
            .and_then(|v| v.as_str())
    }

    /// `os/architecture[/variant]`.
    pub fn platform(&self) -> String {
        let s = |k: &str| self.0.get(k).and_then(|v| v.as_str()).unwrap_or("");
        let os = Some(s("os")).filter(|o| !o.is_empty()).unwrap_or("linux");
        let arch = Some(s("architecture"))
            .filter(|o| !o.is_empty())
            .unwrap_or("amd64");
        match s("variant") {
            "" => format!("{os}/{arch}"),
            v => format!("{os}/{arch}/{v}"),
        }
    }

    /// `created`, as written.
    pub fn created(&self) -> &str {
        self.0.get("created").and_then(|v| v.as_str()).unwrap_or("")
    }
}

/// An image found through [`Sources`]: its manifest and the store it lives in.
#[derive(Clone)]
pub struct Found {
    /// The manifest (an image or a list).
    pub manifest: RawManifest,
    /// Where its blobs are.
    pub store: Store,
}

/// Reads images by pull spec, local store first, with an on-disk cache of small immutable results.
#[derive(Clone)]
pub struct Sources {
    stores: Arc<Stores>,
    local: Option<Layout>,
    cache: Option<PathBuf>,
    cache_blobs: Option<Layout>,
}

impl Sources {
    /// Read from registries through `stores`, looking in the `local` layout first, caching under `cache`.
    pub fn new(
        stores: Arc<Stores>,
        local: Option<Layout>,
        cache: Option<PathBuf>,
    ) -> Result<Sources> {
        let cache_blobs = match &cache {
            Some(dir) => Some(Layout::create(dir.join("blobs"))?),
            None => None,
        };
        Ok(Sources {
            stores,
            local,
            cache,
            cache_blobs,
        })
    }

    /// The stores, to open destinations with the same connections.
    pub fn stores(&self) -> &Stores {
        &self.stores
    }

    /// Find the image a pull spec names; `what` names it in errors (e.g. "tag 'cli'").
    pub async fn find(&self, what: &str, spec: &PullSpec) -> Result<Found> {
        self.find_ref(what, &spec.image_ref()).await
    }

    /// Find the image an [`ImageRef`] names (a layout reference reads that layout).
    pub async fn find_ref(&self, what: &str, r: &ImageRef) -> Result<Found> {
        let context = |e: oci::Error| invalid(format!("{what}: {e}"));
        if let ImageRef::Registry {
            selector: Some(Selector::Digest(d)),
            ..
        } = r
        {
            if let Some(local) = &self.local {
                if let Some(bytes) = read_local(local, d) {
                    let manifest =
                        RawManifest::new(&format!("{what} ({r})"), bytes, None, d.clone())
                            .map_err(context)?;
                    return Ok(Found {
                        manifest,
                        store: Store::Layout(local.clone()),
                    });
                }
            }
        }
        let store = self.stores.open(r, false).map_err(context)?;
        let manifest = match (r.selector(), &self.cache_blobs) {
            (Some(Selector::Digest(d)), Some(cache)) => match read_local(cache, d) {
                Some(bytes) => RawManifest::new(what, bytes, None, d.clone()).map_err(context)?,
                None => {
                    let m = store.get_manifest(r.selector()).await.map_err(context)?;
                    let _ = cache.write_blob_bytes(&m.digest, &m.bytes);
                    m
                }
            },
            _ => store.get_manifest(r.selector()).await.map_err(context)?,
        };
        Ok(Found { manifest, store })
    }

    /// A child manifest of a list, from the same store.
    pub async fn child(&self, what: &str, found: &Found, desc: &Descriptor) -> Result<Found> {
        if let Some(cache) = &self.cache_blobs {
            if let Some(bytes) = read_local(cache, &desc.digest) {
                let manifest =
                    RawManifest::new(what, bytes, Some(&desc.media_type), desc.digest.clone())
                        .map_err(|e| invalid(format!("{what}: {e}")))?;
                return Ok(Found {
                    manifest,
                    store: found.store.clone(),
                });
            }
        }
        let manifest = found
            .store
            .get_child_manifest(desc)
            .await
            .map_err(|e| invalid(format!("{what}: {e}")))?;
        if let Some(cache) = &self.cache_blobs {
            let _ = cache.write_blob_bytes(&manifest.digest, &manifest.bytes);
        }
        Ok(Found {
            manifest,
            store: found.store.clone(),
        })
    }

    /// The config of an image manifest, with its layers.
    pub async fn config(&self, what: &str, found: &Found) -> Result<(Config, Vec<Descriptor>)> {
        let Parsed::Image { config, layers } = found
            .manifest
            .parse()
            .map_err(|e| invalid(format!("{what}: {e}")))?
        else {
            return Err(invalid(format!(
                "{what}: expected an image manifest, found a list"
            )));
        };
        let cached = self
            .cache_blobs
            .as_ref()
            .and_then(|c| read_local(c, &config.digest));
        let bytes = match cached {
            Some(b) => b,
            None => {
                let b = found
                    .store
                    .get_blob_bytes(&config)
                    .await
                    .map_err(|e| invalid(format!("{what}: config: {e}")))?;
                if let (Some(cache), Store::Registry(_)) = (&self.cache_blobs, &found.store) {
                    let _ = cache.write_blob_bytes(&config.digest, &b);
                }
                b
            }
        };
        Ok((Config::parse(what, &bytes)?, layers))
    }

    /// The regular files under `/manifests` of an operator image: from the top layer, or with `all_layers`
    /// from every layer (top first, the first occurrence of a name wins). Cached by layer digests.
    pub async fn operator_files(
        &self,
        what: &str,
        found: &Found,
        layers: &[Descriptor],
        all_layers: bool,
    ) -> Result<Vec<ManifestFile>> {
        let wanted: Vec<&Descriptor> = if all_layers {
            layers.iter().rev().collect()
        } else {
            layers.last().into_iter().collect()
        };
        let key = if all_layers {
            let joined: Vec<String> = wanted.iter().map(|d| d.digest.to_string()).collect();
            Digest::sha256_of(joined.join(",").as_bytes())
        } else {
            match wanted.first() {
                Some(d) => d.digest.clone(),
                None => return Ok(Vec::new()),
            }
        };
        let cached = self.cache.as_ref().map(|c| {
            c.join("operator-manifests")
                .join(format!("{}.tar", key.hex()))
        });
        if let Some(path) = &cached {
            if let Ok(f) = std::fs::File::open(path) {
                let what = what.to_string();
                let files = blocking(move || files_in_layers(vec![Box::new(f)], &what)).await;
                if let Ok(files) = files {
                    return Ok(files);
                }
            }
        }
        let tmp = tempfile::tempdir().map_err(io(std::env::temp_dir()))?;
        let mut paths = Vec::new();
        for (i, desc) in wanted.iter().enumerate() {
            paths.push(self.layer_file(what, found, desc, tmp.path(), i).await?);
        }
        let what2 = what.to_string();
        let files = blocking(move || {
            let mut readers: Vec<Box<dyn Read>> = Vec::new();
            for p in &paths {
                readers.push(decompress(&what2, p)?);
            }
            files_in_layers(readers, &what2)
        })
        .await?;
        if let Some(path) = cached {
            write_cache(&path, &files);
        }
        Ok(files)
    }

    /// [`validate`](crate::manifests::validate) one manifest, remembering (in the cache, by content
    /// digest) files already found valid with their warnings, so an unchanged manifest is parsed once.
    pub fn validate(&self, what: &str, data: &[u8]) -> Result<Vec<String>> {
        let Some(dir) = &self.cache else {
            return crate::manifests::validate(what, data);
        };
        // The directory is versioned: new validation rules must not trust old verdicts.
        let dir = dir.join("valid-manifests-v1");
        let path = dir.join(Digest::sha256_of(data).hex());
        if let Ok(text) = std::fs::read_to_string(&path) {
            return Ok(text.lines().map(str::to_string).collect());
        }
        let warnings = crate::manifests::validate(what, data)?;
        let remember = || -> std::io::Result<()> {
            std::fs::create_dir_all(&dir)?;
            let mut tmp = tempfile::NamedTempFile::new_in(&dir)?;
            std::io::Write::write_all(&mut tmp, warnings.join("\n").as_bytes())?;
            tmp.persist(&path).map_err(|e| e.error)?;
            Ok(())
        };
        if let Err(e) = remember() {
            tracing::warn!("cannot cache a manifest check in {}: {e}", dir.display());
        }
        Ok(warnings)
    }

    /// The files `paths` (relative, such as `usr/bin/oc`) of the image `found` whose layers are
    /// `layers`, as the layers stack up. The layers are read from the top down; the first that
    /// holds a path, or hides it, decides it, and no layer is read once every path is decided. A
    /// path is hidden by a whiteout (`.wh.NAME`) of it or of a directory above it, by an opaque
    /// directory above it (`.wh..wh..opq`, which hides what the layers below have there), or by a
    /// directory above it replaced with a file or a link. A hard link is read as its target. A
    /// path the image lacks is left out; one that is not a regular file (a symbolic link, a
    /// device) maps to an error saying what it is.
    pub async fn image_files(
        &self,
        what: &str,
        found: &Found,
        layers: &[Descriptor],
        paths: &[&str],
    ) -> Result<BTreeMap<String, std::result::Result<ImageFile, String>>> {
        let mut undecided: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
        let mut out = BTreeMap::new();
        let tmp = tempfile::tempdir().map_err(io(std::env::temp_dir()))?;
        for (i, desc) in layers.iter().enumerate().rev() {
            if undecided.is_empty() {
                break;
            }
            let file = self.layer_file(what, found, desc, tmp.path(), i).await?;
            let (what2, wanted) = (what.to_string(), undecided.clone());
            let scan = blocking(move || {
                let scan = files_of_layer(&what2, &file, &wanted);
                let _ = std::fs::remove_file(&file);
                scan
            })
            .await?;
            undecided.retain(|p| !scan.decided.contains(p));
            out.extend(scan.files);
        }
        Ok(out)
    }

    /// [`image_files`](Sources::image_files) of the image `spec` (`oci:…`, `docker://…` or a pull
    /// spec; for a list, its child for `arch`).
    pub async fn files_of(
        &self,
        what: &str,
        spec: &str,
        arch: Option<&str>,
        paths: &[&str],
    ) -> Result<BTreeMap<String, std::result::Result<ImageFile, String>>> {
        let r: ImageRef = if spec.starts_with("oci:") || spec.starts_with("docker://") {
            spec.parse().map_err(|e| invalid(format!("{what}: {e}")))?
        } else {
            PullSpec::parse(what, spec)?.image_ref()
        };
        let (_, image, _, layers) = self.image_config(what, &r, arch).await?;
        self.image_files(what, &image, &layers, paths).await
    }

    /// The image `r` names (for a list, its child for `arch`, see [`pick_child`]): its top
    /// manifest, the image, and the image's config and layers.
    pub async fn image_config(
        &self,
        what: &str,
        r: &ImageRef,
        arch: Option<&str>,
    ) -> Result<(Found, Found, Config, Vec<Descriptor>)> {
        let (top, image, _) = crate::info::resolve(self, what, r, arch).await?;
        let (config, layers) = self.config(what, &image).await?;
        Ok((top, image, config, layers))
    }

    /// A layer as a local file in `dir`, checked against its digest on the way (a tampered blob in a
    /// layout is caught here, not as a confusing tar error later).
    pub(crate) async fn layer_file(
        &self,
        what: &str,
        found: &Found,
        desc: &Descriptor,
        dir: &Path,
        n: usize,
    ) -> Result<PathBuf> {
        let path = dir.join(format!("layer-{n}"));
        let mut stream = found
            .store
            .get_blob(desc)
            .await
            .map_err(|e| invalid(format!("{what}: layer {}: {e}", desc.digest)))?;
        let mut file = tokio::fs::File::create(&path).await.map_err(io(&path))?;
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| invalid(format!("{what}: layer {}: {e}", desc.digest)))?;
            tokio::io::AsyncWriteExt::write_all(&mut file, &chunk)
                .await
                .map_err(io(&path))?;
        }
        // tokio's File may still be writing the last chunk in the background: flush before anyone
        // opens the path.
        tokio::io::AsyncWriteExt::flush(&mut file)
            .await
            .map_err(io(&path))?;
        Ok(path)
    }
}

fn read_local(layout: &Layout, digest: &Digest) -> Option<Bytes> {
    if !layout.blob_path(digest).is_file() {
        return None;
    }
    layout.read_blob_bytes(digest).ok()
}

/// A regular file read out of an image ([`Sources::image_files`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFile {
    /// Its content.
    pub data: Vec<u8>,
    /// Its modification time (Unix seconds).
    pub mtime: u64,
}

/// What one layer says of the paths wanted.
struct LayerScan {
    /// The paths it holds.
    files: Vec<(String, std::result::Result<ImageFile, String>)>,
    /// Every path it decides: those it holds, and those it hides from the layers below.
    decided: Vec<String>,
}

/// Reads the layer file `layer` for `wanted` (see [`Sources::image_files`]).
fn files_of_layer(what: &str, layer: &Path, wanted: &[String]) -> Result<LayerScan> {
    let bad = |e: std::io::Error| invalid(format!("{what}: layer: {e}"));
    let under = |p: &str, dir: &str| dir.is_empty() || p.starts_with(&format!("{dir}/"));
    let normal = |name: &str| {
        name.trim_start_matches("./")
            .trim_start_matches('/')
            .trim_end_matches('/')
            .to_string()
    };
    let mut scan = LayerScan {
        files: Vec::new(),
        decided: Vec::new(),
    };
    let decide = |decided: &mut Vec<String>, p: &String| {
        if !decided.contains(p) {
            decided.push(p.clone());
        }
    };
    let mut opaque: Vec<String> = Vec::new();
    // Wanted paths that are hard links, and their targets, read in a second pass.
    let mut links: Vec<(String, String, u64)> = Vec::new();
    let mut archive = tar::Archive::new(decompress(what, layer)?);
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let name = normal(&entry.path().map_err(bad)?.to_string_lossy());
        let (dir, base) = name.rsplit_once('/').unwrap_or(("", name.as_str()));
        let kind = entry.header().entry_type();
        if base == ".wh..wh..opq" {
            opaque.push(dir.to_string());
            continue;
        }
        if let Some(gone) = base.strip_prefix(".wh.") {
            let gone = if dir.is_empty() {
                gone.to_string()
            } else {
                format!("{dir}/{gone}")
            };
            for p in wanted.iter().filter(|p| **p == gone || under(p, &gone)) {
                decide(&mut scan.decided, p);
            }
            continue;
        }
        if !kind.is_dir() {
            // A file or link where a directory of a wanted path was hides what is below it.
            for p in wanted.iter().filter(|p| under(p, &name)) {
                decide(&mut scan.decided, p);
            }
        }
        let Some(path) = wanted.iter().find(|p| **p == name) else {
            continue;
        };
        let mtime = entry.header().mtime().unwrap_or(0);
        let file = if kind.is_file() {
            let mut data = Vec::new();
            entry
                .read_to_end(&mut data)
                .map_err(|e| invalid(format!("{what}: /{path}: {e}")))?;
            Some(Ok(ImageFile { data, mtime }))
        } else if kind.is_hard_link() {
            let target = entry
                .link_name()
                .map_err(bad)?
                .map(|t| normal(&t.to_string_lossy()))
                .unwrap_or_default();
            links.push((path.clone(), target, mtime));
            None
        } else {
            let link = entry
                .link_name()
                .ok()
                .flatten()
                .map(|t| format!(" to {}", t.display()))
                .unwrap_or_default();
            let what_it_is = if kind.is_symlink() {
                "a symbolic link"
            } else if kind.is_dir() {
                "a directory"
            } else {
                "a special file"
            };
            Some(Err(format!(
                "/{path} is {what_it_is}{link} in the image, not a regular file"
            )))
        };
        if let Some(f) = file {
            scan.files.push((path.clone(), f));
        }
        decide(&mut scan.decided, path);
    }
    if !links.is_empty() {
        let mut archive = tar::Archive::new(decompress(what, layer)?);
        let mut targets: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for entry in archive.entries().map_err(bad)? {
            let mut entry = entry.map_err(bad)?;
            let name = normal(&entry.path().map_err(bad)?.to_string_lossy());
            if entry.header().entry_type().is_file() && links.iter().any(|(_, t, _)| *t == name) {
                let mut data = Vec::new();
                entry
                    .read_to_end(&mut data)
                    .map_err(|e| invalid(format!("{what}: /{name}: {e}")))?;
                targets.insert(name, data);
            }
        }
        for (path, target, mtime) in links {
            let file = match targets.remove(&target) {
                Some(data) => Ok(ImageFile { data, mtime }),
                None => Err(format!(
                    "/{path} is a hard link to /{target}, which its layer does not hold"
                )),
            };
            scan.files.push((path, file));
        }
    }
    // An opaque directory hides what the layers below have in it (not what this layer has).
    for dir in &opaque {
        for p in wanted.iter().filter(|p| under(p, dir)) {
            decide(&mut scan.decided, p);
        }
    }
    Ok(scan)
}

/// Open a layer blob as a tar stream: gzip or plain tar; zstd is refused with a clear error.
pub fn decompress(what: &str, path: &Path) -> Result<Box<dyn Read>> {
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let mut magic = [0u8; 4];
    let n = f.read(&mut magic).map_err(io(path))?;
    let f = std::io::BufReader::new(std::fs::File::open(path).map_err(io(path))?);
    match &magic[..n] {
        [0x1f, 0x8b, ..] => Ok(Box::new(flate2::read::MultiGzDecoder::new(f))),
        [0x28, 0xb5, 0x2f, 0xfd] => Err(invalid(format!(
            "{what}: zstd-compressed layers are not supported (Cincinnati and oc read gzip); rebuild with gzip"
        ))),
        _ => Ok(Box::new(f)),
    }
}

/// Store extracted files as a plain tar (`manifests/<name>` entries keep their mtimes), atomically. A
/// cache that cannot be written is only a lost speed-up.
fn write_cache(path: &Path, files: &[ManifestFile]) {
    let Some(dir) = path.parent() else { return };
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let tmp = tempfile::NamedTempFile::new_in(dir)?;
        let mut tar = tar::Builder::new(std::io::BufWriter::new(tmp.as_file()));
        for f in files {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o444);
            h.set_size(f.data.len() as u64);
            h.set_mtime(f.mtime);
            tar.append_data(&mut h, format!("manifests/{}", f.name), f.data.as_slice())?;
        }
        tar.into_inner()?.into_inner().map_err(|e| e.into_error())?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    };
    if let Err(e) = write() {
        tracing::warn!("cannot cache operator manifests in {}: {e}", dir.display());
    }
}

/// Run blocking work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| invalid(format!("internal error: blocking task failed: {e}")))?
}

/// The child of a list for `arch`; without one, this machine's architecture, else amd64, else the
/// first child.
pub fn pick_child<'a>(children: &'a [Descriptor], arch: Option<&str>) -> Option<&'a Descriptor> {
    let find = |want: &str| {
        children
            .iter()
            .find(|d| child_arch(d).as_deref() == Some(want))
    };
    match arch {
        Some(want) => find(want),
        None => find(oci::manifest::host_arch())
            .or_else(|| find("amd64"))
            .or_else(|| children.first()),
    }
}

/// The architecture of a list child, from its platform.
pub fn child_arch(d: &Descriptor) -> Option<String> {
    d.platform
        .as_ref()
        .and_then(|p| p.get("architecture"))
        .and_then(|a| a.as_str())
        .map(str::to_string)
}
