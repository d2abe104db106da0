//! Deterministic test images, written into an OCI layout with okd-forge's own store.
//!
//! Each layer is a gzip-compressed tar holding one file of pseudo-random bytes from a seed, so the same
//! spec always gives the same digests, and layers are incompressible like real binaries. The config has
//! correct `diff_ids`, so umoci can unpack the images.

use std::collections::BTreeMap;

use oci::manifest::media_type;
use oci::{Descriptor, Digest, Layout, RawManifest};
use rand::{RngCore, SeedableRng};
use serde_json::json;
use sha2::Digest as _;

/// Which media types an image uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OCI image manifest and index.
    Oci,
    /// Docker schema 2 manifest and manifest list.
    Docker,
}

/// An image to generate.
#[derive(Clone, Debug)]
pub struct ImageSpec {
    /// Media types.
    pub format: Format,
    /// `amd64`, `arm64`, ...
    pub arch: String,
    /// Layers, base first: (seed, bytes of file content).
    pub layers: Vec<(u64, usize)>,
    /// Labels in the config.
    pub labels: BTreeMap<String, String>,
}

impl ImageSpec {
    /// An OCI amd64 image with these layers and no labels.
    pub fn new(layers: &[(u64, usize)]) -> ImageSpec {
        ImageSpec {
            format: Format::Oci,
            arch: "amd64".into(),
            layers: layers.to_vec(),
            labels: BTreeMap::new(),
        }
    }

    /// The same image with Docker schema 2 media types.
    pub fn docker(mut self) -> ImageSpec {
        self.format = Format::Docker;
        self
    }

    /// The same image for another architecture.
    pub fn arch(mut self, arch: &str) -> ImageSpec {
        self.arch = arch.into();
        self
    }

    /// The same image with a label.
    pub fn label(mut self, k: &str, v: &str) -> ImageSpec {
        self.labels.insert(k.into(), v.into());
        self
    }
}

/// A generated layer: its gzip bytes and the digest of its uncompressed tar.
pub struct Layer {
    /// The compressed blob.
    pub gzip: Vec<u8>,
    /// sha256 of the tar (the config's diff_id).
    pub diff_id: Digest,
}

/// Generate one layer: a tar with `data/<seed>.bin` of `size` pseudo-random bytes, gzip level 1.
pub fn layer(seed: u64, size: usize) -> Layer {
    let mut content = vec![0u8; size];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut content);
    let mut tar = tar::Builder::new(Vec::with_capacity(size + 4096));
    let mut header = tar::Header::new_ustar();
    header.set_size(size as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, format!("data/{seed}.bin"), content.as_slice())
        .expect("tar");
    let tar = tar.into_inner().expect("tar");
    let diff_id = Digest::sha256_of(&tar);
    let mut gz = flate2::GzBuilder::new().mtime(0).write(
        Vec::with_capacity(tar.len() + 1024),
        flate2::Compression::fast(),
    );
    std::io::Write::write_all(&mut gz, &tar).expect("gzip");
    Layer {
        gzip: gz.finish().expect("gzip"),
        diff_id,
    }
}

fn types(format: Format) -> (&'static str, &'static str, &'static str, &'static str) {
    match format {
        Format::Oci => (
            media_type::OCI_MANIFEST,
            media_type::OCI_CONFIG,
            media_type::OCI_LAYER_GZIP,
            media_type::OCI_INDEX,
        ),
        Format::Docker => (
            media_type::DOCKER_MANIFEST,
            media_type::DOCKER_CONFIG,
            media_type::DOCKER_LAYER_GZIP,
            media_type::DOCKER_LIST,
        ),
    }
}

/// Write the image's blobs and manifest into `layout`, tagging it `tag` if given (else it is stored
/// by digest only, e.g. as a child of an index). Returns the manifest.
pub fn write_image(layout: &Layout, spec: &ImageSpec, tag: Option<&str>) -> RawManifest {
    let layers = spec.layers.iter().map(|&(seed, size)| layer(seed, size));
    write_manifest(
        layout,
        spec.format,
        layers,
        |diff_ids| {
            let diff_ids: Vec<String> = diff_ids.iter().map(Digest::to_string).collect();
            serde_json::to_vec(&json!({
                "architecture": spec.arch,
                "os": "linux",
                "created": "2026-01-01T00:00:00Z",
                "config": { "Labels": spec.labels, "Env": ["PATH=/usr/bin:/bin"] },
                "rootfs": { "type": "layers", "diff_ids": diff_ids },
            }))
            .expect("config json")
        },
        tag,
    )
}

/// Write `layers`, the config `config` makes from their diff_ids, and an image manifest over them
/// with `format`'s media types into `layout`, tagged `tag` if given (else stored by digest only).
/// Returns the manifest.
pub fn write_manifest(
    layout: &Layout,
    format: Format,
    layers: impl IntoIterator<Item = Layer>,
    config: impl FnOnce(&[Digest]) -> Vec<u8>,
    tag: Option<&str>,
) -> RawManifest {
    let (manifest_type, config_type, layer_type, _) = types(format);
    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    for l in layers {
        let d = Digest::sha256_of(&l.gzip);
        layout.write_blob_bytes(&d, &l.gzip).expect("write layer");
        descriptors.push(Descriptor::new(layer_type, d, l.gzip.len() as u64));
        diff_ids.push(l.diff_id);
    }
    let config = config(&diff_ids);
    let config_digest = Digest::sha256_of(&config);
    layout
        .write_blob_bytes(&config_digest, &config)
        .expect("write config");
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": Descriptor::new(config_type, config_digest, config.len() as u64),
        "layers": descriptors,
    }))
    .expect("manifest json");
    put(layout, manifest, tag)
}

/// Write an index (OCI) or manifest list (Docker) over `children`, each with its architecture.
pub fn write_index(
    layout: &Layout,
    format: Format,
    children: &[(RawManifest, &str)],
    tag: Option<&str>,
) -> RawManifest {
    let (_, _, _, index_type) = types(format);
    let manifests: Vec<Descriptor> = children
        .iter()
        .map(|(m, arch)| {
            let mut d = m.descriptor();
            d.platform = Some(json!({ "architecture": arch, "os": "linux" }));
            d
        })
        .collect();
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": index_type,
        "manifests": manifests,
    }))
    .expect("index json");
    put(layout, index, tag)
}

fn put(layout: &Layout, bytes: Vec<u8>, tag: Option<&str>) -> RawManifest {
    let digest = Digest::sha256_of(&bytes);
    let raw = RawManifest::new("generated", bytes.into(), None, digest).expect("valid manifest");
    layout
        .put_manifest(&raw, tag, tag.is_some())
        .expect("put manifest");
    raw
}

/// The sha256 of a file, as a digest string (to check stored blobs).
pub fn file_digest(path: &std::path::Path) -> String {
    let mut h = sha2::Sha256::new();
    let mut f = std::fs::File::open(path).expect("open");
    std::io::copy(&mut f, &mut h).expect("read");
    format!("sha256:{}", hex::encode(h.finalize()))
}
