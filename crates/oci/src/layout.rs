//! The embedded content store: an OCI image-layout directory (image-spec 1.1).
//!
//! ```text
//! STORE/oci-layout           {"imageLayoutVersion":"1.0.0"}
//! STORE/index.json           an OCI index; tagged entries carry org.opencontainers.image.ref.name
//! STORE/blobs/sha256/<hex>   blobs and manifests, named by digest
//! ```
//!
//! Guarantees:
//! - every blob is checked against its digest when written and when read;
//! - every file is written to a temporary file in the layout, fsynced, then renamed into place, so a
//!   crash never leaves a partial blob or `index.json` visible;
//! - `index.json` is changed under an exclusive `flock` on `.okd-forge-index.lock`, so concurrent writers in
//!   several processes never lose each other's tags;
//! - copies hold a shared lock on `.okd-forge-gc.lock` while they read or write and [`Layout::gc`] takes
//!   it exclusively, so gc never deletes a blob a running copy has written but not yet tagged, nor one it
//!   is reading;
//! - a blob that is already there with the right size is not written again (every read verifies it).

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::manifest::{media_type, Parsed, RawManifest};
use crate::reference::Selector;
use crate::stream::{verified, VerifiedStream};
use crate::{Descriptor, Digest, Error, Result};

/// The annotation that names a tag in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
const TMP_PREFIX: &str = ".okd-forge-tmp-";
const INDEX_LOCK: &str = ".okd-forge-index.lock";
const GC_LOCK: &str = ".okd-forge-gc.lock";
/// Manifests larger than this are refused (the distribution spec suggests registries accept 4 MiB).
pub const MAX_MANIFEST: u64 = 8 << 20;

#[derive(Serialize, Deserialize)]
struct IndexDoc {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
    #[serde(flatten)]
    extra: serde_json::Map<String, serde_json::Value>,
}

/// An OCI image-layout directory.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

/// What [`Layout::gc`] did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct GcReport {
    /// Blobs kept because something in `index.json` reaches them.
    pub kept: usize,
    /// Blobs deleted.
    pub removed: usize,
    /// Bytes freed.
    pub bytes_freed: u64,
    /// Leftover temporary files of interrupted writes, deleted.
    pub temp_files_removed: usize,
}

/// Held by a copy while it reads or writes the layout; [`Layout::gc`] waits for all of them.
pub struct UseGuard {
    _file: File,
}

impl Layout {
    /// Open an existing layout, checking `oci-layout` and `index.json`.
    pub fn open(path: impl Into<PathBuf>) -> Result<Layout> {
        let root = path.into();
        let marker = root.join("oci-layout");
        let text = fs::read_to_string(&marker).map_err(|e| Error::Layout {
            path: root.clone(),
            reason: if e.kind() == std::io::ErrorKind::NotFound {
                "not an OCI image layout (no oci-layout file); check the path, or copy an image into it first".into()
            } else {
                format!("cannot read oci-layout: {e}")
            },
        })?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Layout {
            path: root.clone(),
            reason: format!("oci-layout is not JSON: {e}"),
        })?;
        if v.get("imageLayoutVersion").and_then(|v| v.as_str()) != Some("1.0.0") {
            return Err(Error::Layout {
                path: root,
                reason: "oci-layout does not declare imageLayoutVersion 1.0.0".into(),
            });
        }
        let layout = Layout { root };
        layout.read_index()?;
        Ok(layout)
    }

    /// Open a layout, creating an empty one if the directory does not hold one yet.
    pub fn create(path: impl Into<PathBuf>) -> Result<Layout> {
        let root = path.into();
        fs::create_dir_all(root.join("blobs").join("sha256")).map_err(|e| Error::io(&root, e))?;
        let layout = Layout { root };
        // Another process may be creating the same layout: both write identical content atomically.
        if !layout.root.join("oci-layout").exists() {
            layout.write_atomic("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        if !layout.root.join("index.json").exists() {
            let _lock = layout.lock(INDEX_LOCK, true)?;
            if !layout.root.join("index.json").exists() {
                layout.write_index(&IndexDoc {
                    schema_version: 2,
                    media_type: Some(media_type::OCI_INDEX.into()),
                    manifests: vec![],
                    extra: Default::default(),
                })?;
            }
        }
        Layout::open(layout.root)
    }

    /// The layout directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Where a blob lives.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm().as_str())
            .join(digest.hex())
    }

    /// Whether the blob is present with the descriptor's size (its content is verified when read).
    pub fn has_blob(&self, desc: &Descriptor) -> bool {
        fs::metadata(self.blob_path(&desc.digest))
            .is_ok_and(|m| m.is_file() && m.len() == desc.size)
    }

    /// Take the (shared) gc lock; a copy holds it while it reads, and until what it wrote is tagged.
    pub fn guard(&self) -> Result<UseGuard> {
        Ok(UseGuard {
            _file: self.lock(GC_LOCK, false)?,
        })
    }

    fn lock(&self, name: &str, exclusive: bool) -> Result<File> {
        let path = self.root.join(name);
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        let r = if exclusive { f.lock() } else { f.lock_shared() };
        r.map_err(|e| Error::io(&path, e))?;
        Ok(f)
    }

    fn temp_file(&self) -> Result<tempfile::NamedTempFile> {
        tempfile::Builder::new()
            .prefix(TMP_PREFIX)
            .tempfile_in(&self.root)
            .map_err(|e| Error::io(&self.root, e))
    }

    /// Move a finished temp file into place and make the rename durable.
    fn commit(&self, tmp: tempfile::NamedTempFile, target: &Path) -> Result<()> {
        set_readable(tmp.path())?;
        tmp.persist(target)
            .map_err(|e| Error::io(target, e.error))?;
        if let Some(dir) = target.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| Error::io(dir, e))?;
        }
        Ok(())
    }

    fn write_atomic(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let mut tmp = self.temp_file()?;
        tmp.write_all(bytes)
            .and_then(|_| tmp.as_file().sync_all())
            .map_err(|e| Error::io(tmp.path(), e))?;
        self.commit(tmp, &self.root.join(name))
    }

    /// Write a small blob held in memory, after checking it against `digest`.
    pub fn write_blob_bytes(&self, digest: &Digest, bytes: &[u8]) -> Result<()> {
        let actual = digest.same_algorithm_of(bytes);
        if &actual != digest {
            return Err(Error::DigestMismatch {
                what: format!("blob {digest}"),
                expected: digest.clone(),
                actual,
            });
        }
        // Small blobs (manifests, configs) already there are compared byte for byte, so a damaged one
        // is replaced rather than trusted.
        if fs::read(self.blob_path(digest)).is_ok_and(|existing| existing == bytes) {
            return Ok(());
        }
        let mut tmp = self.temp_file()?;
        tmp.write_all(bytes)
            .and_then(|_| tmp.as_file().sync_all())
            .map_err(|e| Error::io(tmp.path(), e))?;
        self.ensure_alg_dir(digest)?;
        self.commit(tmp, &self.blob_path(digest))
    }

    fn ensure_alg_dir(&self, digest: &Digest) -> Result<()> {
        let dir = self.root.join("blobs").join(digest.algorithm().as_str());
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))
    }

    /// Stream a blob in; it becomes visible only once every byte has passed the stream's verification
    /// against `desc` (digest and size). Returns the bytes written.
    pub async fn write_blob(&self, desc: &Descriptor, mut stream: VerifiedStream) -> Result<u64> {
        let what = format!("blob {} in {}", desc.digest, self.root.display());
        stream.expect_digest(&what, &desc.digest)?;
        let tmp = self.temp_file()?;
        let std_file = tmp.reopen().map_err(|e| Error::io(tmp.path(), e))?;
        let mut file = tokio::fs::File::from_std(std_file);
        let mut written = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            file.write_all(&chunk)
                .await
                .map_err(|e| Error::io(tmp.path(), e))?;
            written += chunk.len() as u64;
        }
        if written != desc.size {
            return Err(Error::SizeMismatch {
                what,
                expected: desc.size,
                actual: written,
            });
        }
        file.sync_all()
            .await
            .map_err(|e| Error::io(tmp.path(), e))?;
        drop(file);
        self.ensure_alg_dir(&desc.digest)?;
        let target = self.blob_path(&desc.digest);
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.commit(tmp, &target))
            .await
            .expect("commit task panicked")?;
        Ok(written)
    }

    /// Stream a blob out; the stream fails at its end if the file does not match `digest` (and `size`).
    pub async fn read_blob(&self, digest: &Digest, size: Option<u64>) -> Result<VerifiedStream> {
        let path = self.blob_path(digest);
        let file = tokio::fs::File::open(&path).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::NotFound {
                    what: format!("blob {digest} in {}", self.root.display()),
                }
            } else {
                Error::io(&path, e)
            }
        })?;
        let inner = tokio_util::io::ReaderStream::with_capacity(file, 256 << 10)
            .map(move |r| r.map_err(|e| Error::io(&path, e)));
        Ok(verified(
            format!("blob {digest} in {}", self.root.display()),
            digest,
            size,
            Box::pin(inner),
        ))
    }

    /// Read a small blob (a manifest or config) into memory, verified.
    pub fn read_blob_bytes(&self, digest: &Digest) -> Result<Bytes> {
        let path = self.blob_path(digest);
        let mut f = File::open(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::NotFound {
                    what: format!("blob {digest} in {}", self.root.display()),
                }
            } else {
                Error::io(&path, e)
            }
        })?;
        let mut buf = Vec::new();
        Read::by_ref(&mut f)
            .take(MAX_MANIFEST + 1)
            .read_to_end(&mut buf)
            .map_err(|e| Error::io(&path, e))?;
        if buf.len() as u64 > MAX_MANIFEST {
            return Err(Error::BadManifest {
                what: format!("blob {digest}"),
                reason: format!("larger than {MAX_MANIFEST} bytes"),
            });
        }
        let actual = digest.same_algorithm_of(&buf);
        if &actual != digest {
            return Err(Error::DigestMismatch {
                what: format!("blob {digest} in {}", self.root.display()),
                expected: digest.clone(),
                actual,
            });
        }
        Ok(Bytes::from(buf))
    }

    fn read_index(&self) -> Result<IndexDoc> {
        let path = self.root.join("index.json");
        let bytes = fs::read(&path).map_err(|e| Error::Layout {
            path: self.root.clone(),
            reason: format!("cannot read index.json: {e}"),
        })?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Layout {
            path: self.root.clone(),
            reason: format!("index.json is not a valid OCI index: {e}"),
        })
    }

    fn write_index(&self, doc: &IndexDoc) -> Result<()> {
        let bytes = serde_json::to_vec(doc).expect("index serialises");
        self.write_atomic("index.json", &bytes)
    }

    /// The entries of `index.json`.
    pub fn index(&self) -> Result<Vec<Descriptor>> {
        Ok(self.read_index()?.manifests)
    }

    /// Change `index.json` under the exclusive index lock (read, modify, write atomically).
    pub fn update_index(&self, f: impl FnOnce(&mut Vec<Descriptor>)) -> Result<()> {
        let _lock = self.lock(INDEX_LOCK, true)?;
        let mut doc = self.read_index()?;
        f(&mut doc.manifests);
        self.write_index(&doc)
    }

    /// The tags in `index.json`, sorted.
    pub fn tags(&self) -> Result<Vec<String>> {
        let mut tags: Vec<String> = self
            .index()?
            .iter()
            .filter_map(|d| d.annotations.as_ref()?.get(REF_NAME).cloned())
            .collect();
        tags.sort();
        tags.dedup();
        Ok(tags)
    }

    /// Find the descriptor a selector names: a tag in `index.json`, a digest among the blobs, or with no
    /// selector the only entry of `index.json`.
    pub fn resolve(&self, selector: Option<&Selector>) -> Result<Descriptor> {
        let entries = self.index()?;
        match selector {
            Some(Selector::Tag(tag)) => entries
                .into_iter()
                .find(|d| d.annotations.as_ref().and_then(|a| a.get(REF_NAME)) == Some(tag))
                .ok_or_else(|| Error::NotFound {
                    what: format!("tag '{tag}' in oci:{}", self.root.display()),
                }),
            Some(Selector::Digest(digest)) => {
                if let Some(d) = entries.into_iter().find(|d| &d.digest == digest) {
                    return Ok(d);
                }
                let bytes = self.read_blob_bytes(digest)?;
                let raw = RawManifest::new(
                    &format!("oci:{}@{digest}", self.root.display()),
                    bytes,
                    None,
                    digest.clone(),
                )?;
                Ok(raw.descriptor())
            }
            None => match entries.len() {
                1 => Ok(entries.into_iter().next().expect("one entry")),
                0 => Err(Error::NotFound {
                    what: format!(
                        "any image in oci:{} (index.json is empty)",
                        self.root.display()
                    ),
                }),
                n => Err(Error::Layout {
                    path: self.root.clone(),
                    reason: format!(
                        "holds {n} images; name one as oci:PATH:TAG or oci:PATH@DIGEST"
                    ),
                }),
            },
        }
    }

    /// Read and verify the manifest a selector names.
    pub fn get_manifest(&self, selector: Option<&Selector>) -> Result<RawManifest> {
        let desc = self.resolve(selector)?;
        self.manifest_for(&desc)
    }

    /// Read and verify the manifest a descriptor names.
    pub fn manifest_for(&self, desc: &Descriptor) -> Result<RawManifest> {
        let bytes = self.read_blob_bytes(&desc.digest)?;
        RawManifest::new(
            &format!("oci:{}@{}", self.root.display(), desc.digest),
            bytes,
            Some(&desc.media_type),
            desc.digest.clone(),
        )
    }

    /// Store a manifest as a blob and, with a tag, point the tag at it in `index.json`. With `root` and no
    /// tag, add an untagged entry (as `skopeo copy ... oci:DIR` does), so the image is reachable.
    pub fn put_manifest(&self, raw: &RawManifest, tag: Option<&str>, root: bool) -> Result<()> {
        self.write_blob_bytes(&raw.digest, &raw.bytes)?;
        if !root && tag.is_none() {
            return Ok(());
        }
        let mut desc = raw.descriptor();
        if let Some(tag) = tag {
            desc.annotations = Some(BTreeMap::from([(REF_NAME.to_string(), tag.to_string())]));
        }
        self.update_index(|entries| match tag {
            Some(tag) => {
                entries.retain(|d| {
                    d.annotations
                        .as_ref()
                        .and_then(|a| a.get(REF_NAME))
                        .map(String::as_str)
                        != Some(tag)
                });
                entries.push(desc);
            }
            None => {
                if !entries.iter().any(|d| d.digest == desc.digest) {
                    entries.push(desc);
                }
            }
        })
    }

    /// Remove a tag from `index.json`; whether it was there. The blobs stay until [`Layout::gc`].
    pub fn untag(&self, tag: &str) -> Result<bool> {
        let mut found = false;
        self.update_index(|entries| {
            entries.retain(|d| {
                let tagged = d
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(REF_NAME))
                    .map(String::as_str)
                    == Some(tag);
                found |= tagged;
                !tagged
            })
        })?;
        Ok(found)
    }

    /// Delete every blob that no entry of `index.json` reaches, and leftovers of interrupted writes.
    /// Waits for running writers to finish first.
    pub fn gc(&self) -> Result<GcReport> {
        let _gc = self.lock(GC_LOCK, true)?;
        let _index = self.lock(INDEX_LOCK, true)?;
        let mut live: HashSet<Digest> = HashSet::new();
        let mut todo: Vec<Descriptor> = self.index()?;
        while let Some(desc) = todo.pop() {
            if !live.insert(desc.digest.clone()) {
                continue;
            }
            if !media_type::is_manifest(&desc.media_type) {
                continue;
            }
            let raw = self.manifest_for(&desc)?;
            match raw.parse()? {
                Parsed::Image { config, layers } => {
                    todo.push(*config);
                    todo.extend(layers);
                }
                Parsed::Index { manifests } => todo.extend(manifests),
            }
        }
        let mut report = GcReport::default();
        let blobs = self.root.join("blobs");
        for alg_dir in read_dir(&blobs)? {
            let alg = alg_dir.file_name().to_string_lossy().to_string();
            for entry in read_dir(&alg_dir.path())? {
                let name = entry.file_name().to_string_lossy().to_string();
                let keep = format!("{alg}:{name}")
                    .parse::<Digest>()
                    .map(|d| live.contains(&d))
                    .unwrap_or(false);
                if keep {
                    report.kept += 1;
                } else {
                    report.bytes_freed += entry.metadata().map(|m| m.len()).unwrap_or(0);
                    fs::remove_file(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
                    report.removed += 1;
                }
            }
        }
        for entry in read_dir(&self.root)? {
            if entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                fs::remove_file(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
                report.temp_files_removed += 1;
            }
        }
        Ok(report)
    }
}

fn read_dir(dir: &Path) -> Result<Vec<fs::DirEntry>> {
    fs::read_dir(dir)
        .and_then(|it| it.collect::<std::io::Result<Vec<_>>>())
        .map_err(|e| Error::io(dir, e))
}

#[cfg(unix)]
fn set_readable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).map_err(|e| Error::io(path, e))
}

#[cfg(not(unix))]
fn set_readable(_path: &Path) -> Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `b` as a stream verified against `desc`.
    fn bytes_stream(desc: &Descriptor, b: &'static [u8]) -> VerifiedStream {
        let raw: crate::stream::BlobStream =
            Box::pin(futures_util::stream::iter(vec![Ok(Bytes::from_static(b))]));
        verified("test".into(), &desc.digest, Some(desc.size), raw)
    }

    #[tokio::test]
    async fn blob_round_trip_and_rejects_bad_content() {
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::create(dir.path().join("store")).unwrap();
        let good = Digest::sha256_of(b"hello");
        let desc = Descriptor::new(media_type::OCI_LAYER_TAR, good.clone(), 5);
        assert_eq!(
            l.write_blob(&desc, bytes_stream(&desc, b"hello"))
                .await
                .unwrap(),
            5
        );
        assert!(l.has_blob(&desc));

        // Wrong content: error, nothing visible, no temp file left behind.
        let other = Descriptor::new(media_type::OCI_LAYER_TAR, Digest::sha256_of(b"world"), 5);
        let e = l
            .write_blob(&other, bytes_stream(&other, b"jello"))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::DigestMismatch { .. }), "{e}");
        assert!(!l.has_blob(&other));
        let truncated = Descriptor::new(media_type::OCI_LAYER_TAR, Digest::sha256_of(b"world"), 5);
        assert!(l
            .write_blob(&truncated, bytes_stream(&truncated, b"wor"))
            .await
            .is_err());
        let leftovers: Vec<_> = fs::read_dir(l.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(TMP_PREFIX)
            })
            .collect();
        assert!(leftovers.is_empty());

        // Bytes verified against some other digest are refused before anything is written.
        let e = l
            .write_blob(&other, bytes_stream(&desc, b"hello"))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::DigestMismatch { .. }), "{e}");
        assert!(!l.has_blob(&other));

        // A blob corrupted on disk fails on read.
        fs::write(l.blob_path(&good), b"HELLO").unwrap();
        let mut s = l.read_blob(&good, Some(5)).await.unwrap();
        let mut failed = false;
        while let Some(c) = s.next().await {
            failed |= c.is_err();
        }
        assert!(failed);
        assert!(l.read_blob_bytes(&good).is_err());
    }

    #[test]
    fn open_refuses_non_layouts() {
        let dir = tempfile::tempdir().unwrap();
        let e = Layout::open(dir.path()).unwrap_err().to_string();
        assert!(e.contains("not an OCI image layout"), "{e}");
    }

    #[test]
    fn concurrent_taggers_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::create(dir.path()).unwrap();
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let l = Layout::open(dir.path()).unwrap();
                std::thread::spawn(move || {
                    for j in 0..10 {
                        let body = format!(r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[],"n":"{i}-{j}"}}"#, media_type::OCI_INDEX);
                        let b = Bytes::from(body);
                        let raw = RawManifest::new("t", b.clone(), None, Digest::sha256_of(&b)).unwrap();
                        l.put_manifest(&raw, Some(&format!("t{i}-{j}")), true).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(l.tags().unwrap().len(), 80);
    }
}
