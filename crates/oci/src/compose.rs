//! Making new images out of old ones: one new gzip layer on top of a base image, written as a Docker
//! schema 2 image, and pushed so that its tag appears only when everything it needs is there.
//!
//! The release payload (a layer of manifests on the CVO image) and the native builder (a layer of build
//! outputs on a base image) are both made this way.

use std::io::Write;

use bytes::Bytes;
use futures_util::future::try_join_all;
use futures_util::stream;
use serde_json::{json, Map, Value};

use crate::manifest::media_type;
use crate::{Copier, Descriptor, Digest, Error, RawManifest, Result, Store};

/// A new layer: its gzip blob and digests.
#[derive(Debug, Clone)]
pub struct Layer {
    /// The gzip blob.
    pub gzip: Bytes,
    /// sha256 of the gzip blob (the layer digest).
    pub digest: Digest,
    /// sha256 of the uncompressed tar (the config's diff_id).
    pub diff_id: Digest,
}

impl Layer {
    /// Compress a tar: gzip level 1 (layers are rebuilt often, speed wins), no mtime in the header,
    /// so the same tar always gives the same blob.
    pub fn from_tar(tar: &[u8]) -> Layer {
        let mut gz = flate2::GzBuilder::new().mtime(0).write(
            Vec::with_capacity(tar.len() / 3 + 1024),
            flate2::Compression::fast(),
        );
        gz.write_all(tar).expect("in-memory gzip");
        let gzip = Bytes::from(gz.finish().expect("in-memory gzip"));
        Layer {
            digest: Digest::sha256_of(&gzip),
            diff_id: Digest::sha256_of(tar),
            gzip,
        }
    }
}

/// A tar header with uid/gid 0, no user or group names, and the given mode and mtime.
pub fn tar_header(kind: tar::EntryType, mode: u32, size: u64, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(mtime);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// An image made in memory, ready to push.
#[derive(Clone)]
pub struct NewImage {
    /// The top manifest (an image, or a list over `children`).
    pub manifest: RawManifest,
    /// Per-arch manifests under a list (empty for an image).
    pub children: Vec<RawManifest>,
    /// New blobs: layers and configs.
    pub blobs: Vec<(Descriptor, Bytes)>,
    /// Base layers to copy from `base_store`.
    pub base_layers: Vec<Descriptor>,
    /// Where the base lives.
    pub base_store: Store,
}

/// A Docker schema 2 image: `config` and `base_layers` of a base image, plus `layer` on top, created at
/// `created` (RFC 3339). `edit` then changes the config object (labels, history) before it is written.
/// The base's `container`, `parent` and `container_config` go; `os`/`architecture` default to linux/amd64.
/// Returns the manifest and the config blob. `what` names the base in errors.
pub fn docker_image_on(
    what: &str,
    mut config: Value,
    base_layers: &[Descriptor],
    layer: &Layer,
    created: &str,
    edit: impl FnOnce(&mut Map<String, Value>),
) -> Result<(RawManifest, (Descriptor, Bytes))> {
    let obj = config.as_object_mut().ok_or_else(|| Error::BadManifest {
        what: format!("{what}: config"),
        reason: "not a JSON object".into(),
    })?;
    for (k, default) in [("os", "linux"), ("architecture", "amd64")] {
        if obj.get(k).and_then(Value::as_str).unwrap_or("").is_empty() {
            obj.insert(k.into(), json!(default));
        }
    }
    for k in ["container", "parent", "container_config"] {
        obj.remove(k);
    }
    obj.insert("created".into(), json!(created));
    let inner = obj.entry("config").or_insert_with(|| json!({}));
    if !inner.is_object() {
        *inner = json!({});
    }
    let mut diff_ids: Vec<Value> = obj
        .get("rootfs")
        .and_then(|r| r.get("diff_ids"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    diff_ids.push(json!(layer.diff_id.to_string()));
    obj.insert(
        "rootfs".into(),
        json!({ "type": "layers", "diff_ids": diff_ids }),
    );
    edit(obj);
    let cfg_bytes = Bytes::from(serde_json::to_vec(&config).expect("config serialises"));
    let cfg_desc = Descriptor::new(
        media_type::DOCKER_CONFIG,
        Digest::sha256_of(&cfg_bytes),
        cfg_bytes.len() as u64,
    );
    let mut layers = Vec::with_capacity(base_layers.len() + 1);
    for l in base_layers {
        let mt = match l.media_type.as_str() {
            media_type::DOCKER_LAYER_GZIP | media_type::OCI_LAYER_GZIP => media_type::DOCKER_LAYER_GZIP,
            "application/vnd.docker.image.rootfs.diff.tar" | media_type::OCI_LAYER_TAR => {
                "application/vnd.docker.image.rootfs.diff.tar"
            }
            other => {
                return Err(Error::BadManifest {
                    what: what.to_string(),
                    reason: format!(
                        "layer {} has media type '{other}', which a Docker schema 2 image cannot carry; rebuild the base with gzip layers",
                        l.digest
                    ),
                })
            }
        };
        layers.push(Descriptor::new(mt, l.digest.clone(), l.size));
    }
    layers.push(Descriptor::new(
        media_type::DOCKER_LAYER_GZIP,
        layer.digest.clone(),
        layer.gzip.len() as u64,
    ));
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": media_type::DOCKER_MANIFEST,
        "config": cfg_desc,
        "layers": layers,
    });
    let bytes = Bytes::from(serde_json::to_vec(&manifest).expect("manifest serialises"));
    let digest = Digest::sha256_of(&bytes);
    let raw = RawManifest::new(what, bytes, None, digest)?;
    Ok((raw, (cfg_desc, cfg_bytes)))
}

/// Push `image` to `dst`: base layers (copied or mounted), then the new blobs, the per-arch manifests
/// and the top manifest, tagged `tag` (or an untagged root entry), so the tag appears only when
/// everything it needs is there.
pub async fn push(image: &NewImage, copier: &Copier, dst: &Store, tag: Option<&str>) -> Result<()> {
    let _guard = dst.guard().await?;
    let base = copier.copy_blobs(&image.base_store, dst, image.base_layers.clone());
    let new = try_join_all(image.blobs.iter().map(|(desc, bytes)| async move {
        if dst.has_blob(desc).await? {
            return Ok(());
        }
        let body = bytes.clone();
        let inner: crate::stream::BlobStream = Box::pin(stream::once(async move { Ok(body) }));
        let what = format!("blob {}", desc.digest);
        let verified = crate::stream::verified(what, &desc.digest, Some(desc.size), inner);
        dst.put_blob(desc, verified).await
    }));
    tokio::try_join!(base, new)?;
    for child in &image.children {
        dst.put_manifest(child, None, false).await?;
    }
    dst.put_manifest(&image.manifest, tag, true).await?;
    Ok(())
}
