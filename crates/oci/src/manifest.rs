//! Manifests as they travel: exact bytes plus just enough parsing to find what they reference.
//!
//! okd-forge never re-serialises a manifest it copies, so digests never change in transit.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Digest, Error, Result};

/// Media types okd-forge knows.
pub mod media_type {
    /// OCI image manifest.
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    /// OCI image index.
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    /// OCI image config.
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    /// OCI uncompressed layer.
    pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
    /// OCI gzip layer.
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    /// Docker image manifest, schema 2.
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    /// Docker manifest list.
    pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    /// Docker image config.
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    /// Docker gzip layer.
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    /// Docker schema 1 (signed), which okd-forge refuses.
    pub const DOCKER_SCHEMA1_SIGNED: &str =
        "application/vnd.docker.distribution.manifest.v1+prettyjws";
    /// Docker schema 1 (unsigned), which okd-forge refuses.
    pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";

    /// The `Accept` header for manifest requests: every type okd-forge can copy.
    pub const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

    /// Whether a media type is a manifest of either kind (image or index).
    pub fn is_manifest(mt: &str) -> bool {
        matches!(mt, OCI_MANIFEST | OCI_INDEX | DOCKER_MANIFEST | DOCKER_LIST)
    }

    /// Whether a media type is an index / manifest list.
    pub fn is_index(mt: &str) -> bool {
        matches!(mt, OCI_INDEX | DOCKER_LIST)
    }
}

/// A content descriptor (OCI image spec §descriptor); unknown fields are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Descriptor {
    /// Media type of the referenced content.
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// Digest of the referenced content.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// Annotations, e.g. `org.opencontainers.image.ref.name` in a layout's `index.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Platform, for index entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<serde_json::Value>,
    /// Everything else (urls, artifactType, ...), kept as written.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Descriptor {
    /// A plain descriptor.
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            annotations: None,
            platform: None,
            extra: Default::default(),
        }
    }
}

#[derive(Deserialize)]
struct Doc {
    #[serde(rename = "schemaVersion")]
    schema_version: Option<u32>,
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
}

/// This machine's architecture in OCI's words (`amd64`, `arm64`, ...), for choosing from an index.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// What a manifest references.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// An image: its config and layers.
    Image {
        /// The config blob.
        config: Box<Descriptor>,
        /// The layer blobs, base first.
        layers: Vec<Descriptor>,
    },
    /// An index or manifest list: its child manifests.
    Index {
        /// The children.
        manifests: Vec<Descriptor>,
    },
}

/// A manifest exactly as stored: its bytes, media type and digest.
#[derive(Debug, Clone)]
pub struct RawManifest {
    /// The exact bytes (the digest is over these).
    pub bytes: bytes::Bytes,
    /// The media type.
    pub media_type: String,
    /// The digest of `bytes`.
    pub digest: Digest,
}

impl RawManifest {
    /// Wrap bytes, deciding the media type from `declared` (a Content-Type header or a descriptor) or the
    /// document's own `mediaType`, and checking it is a manifest okd-forge can handle.
    pub fn new(
        what: &str,
        bytes: bytes::Bytes,
        declared: Option<&str>,
        digest: Digest,
    ) -> Result<RawManifest> {
        let bad = |reason: String| Error::BadManifest {
            what: what.to_string(),
            reason,
        };
        let doc: Doc =
            serde_json::from_slice(&bytes).map_err(|e| bad(format!("not a JSON manifest: {e}")))?;
        let declared = declared
            .map(|d| d.split(';').next().unwrap_or(d).trim().to_string())
            .filter(|d| media_type::is_manifest(d) || d.contains("schema1") || d.contains("v1+"));
        let media_type = match (declared, doc.media_type.clone()) {
            (Some(d), _) => d,
            (None, Some(m)) => m,
            (None, None) if doc.manifests.is_some() => media_type::OCI_INDEX.to_string(),
            (None, None) => media_type::OCI_MANIFEST.to_string(),
        };
        if doc.schema_version == Some(1)
            || media_type == media_type::DOCKER_SCHEMA1
            || media_type == media_type::DOCKER_SCHEMA1_SIGNED
        {
            return Err(bad(
                "Docker schema 1 manifests are not supported; rebuild or re-push the image as schema 2 or OCI".into(),
            ));
        }
        if !media_type::is_manifest(&media_type) {
            return Err(bad(format!(
                "unsupported manifest media type '{media_type}'"
            )));
        }
        Ok(RawManifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// What the manifest references.
    pub fn parse(&self) -> Result<Parsed> {
        let what = format!("manifest {}", self.digest);
        let doc: Doc = serde_json::from_slice(&self.bytes).map_err(|e| Error::BadManifest {
            what: what.clone(),
            reason: e.to_string(),
        })?;
        if media_type::is_index(&self.media_type) {
            Ok(Parsed::Index {
                manifests: doc.manifests.unwrap_or_default(),
            })
        } else {
            let config = doc.config.ok_or_else(|| Error::BadManifest {
                what,
                reason: "image manifest has no config".into(),
            })?;
            Ok(Parsed::Image {
                config: Box::new(config),
                layers: doc.layers.unwrap_or_default(),
            })
        }
    }

    /// A descriptor for this manifest.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(
            self.media_type.clone(),
            self.digest.clone(),
            self.bytes.len() as u64,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infers_and_refuses() {
        let b = bytes::Bytes::from_static(br#"{"schemaVersion":2,"manifests":[]}"#);
        let d = Digest::sha256_of(&b);
        let m = RawManifest::new("x", b.clone(), None, d.clone()).unwrap();
        assert_eq!(m.media_type, media_type::OCI_INDEX);
        let m = RawManifest::new(
            "x",
            b,
            Some("application/vnd.docker.distribution.manifest.list.v2+json; charset=utf-8"),
            d,
        )
        .unwrap();
        assert_eq!(m.media_type, media_type::DOCKER_LIST);
        let s1 = bytes::Bytes::from_static(br#"{"schemaVersion":1,"name":"x"}"#);
        let e = RawManifest::new("img", s1.clone(), None, Digest::sha256_of(&s1)).unwrap_err();
        assert!(e.to_string().contains("schema 1"), "{e}");
    }
}
