//! The one place that writes the payload's release layer: a gzip tar of `release-manifests/`.

use std::io::Write;

use oci::Digest;

use crate::error::{invalid, Result};
use crate::manifests::ManifestFile;

/// The directory the release layer holds.
pub const DIR: &str = "release-manifests";

/// A built layer.
#[derive(Debug, Clone)]
pub struct ReleaseLayer {
    /// The gzip blob.
    pub gzip: bytes::Bytes,
    /// sha256 of the gzip blob (the layer digest).
    pub digest: Digest,
    /// sha256 of the uncompressed tar (the config's diff_id).
    pub diff_id: Digest,
}

/// Build the layer as oc's `writePayload` does: the directory `release-manifests` (no trailing slash, mode
/// 0777), then `image-references`, `release-metadata` and the manifests in order, all mode 0444. Files
/// keep their mtimes; the directory and the two metadata files take the newest of them (or `fallback_mtime`
/// when there are none). Names have no `./` prefix; the gzip header has no mtime.
pub fn build(
    image_references: &[u8],
    release_metadata: &[u8],
    manifests: &[ManifestFile],
    fallback_mtime: u64,
) -> Result<ReleaseLayer> {
    let newest = manifests
        .iter()
        .map(|f| f.mtime)
        .max()
        .unwrap_or(fallback_mtime);
    let size: usize = manifests.iter().map(|f| f.data.len() + 1024).sum();
    let mut tar = tar::Builder::new(Vec::with_capacity(size + 8192));
    let mut dir = header(tar::EntryType::Directory, 0o777, 0, newest);
    let bad = |name: &str, e: std::io::Error| invalid(format!("release-manifests/{name}: {e}"));
    tar.append_data(&mut dir, DIR, std::io::empty())
        .map_err(|e| bad("", e))?;
    let meta = [
        ("image-references", image_references, newest),
        ("release-metadata", release_metadata, newest),
    ];
    let files = meta.into_iter().chain(
        manifests
            .iter()
            .map(|f| (f.name.as_str(), f.data.as_slice(), f.mtime)),
    );
    for (name, data, mtime) in files {
        let mut h = header(tar::EntryType::Regular, 0o444, data.len() as u64, mtime);
        tar.append_data(&mut h, format!("{DIR}/{name}"), data)
            .map_err(|e| bad(name, e))?;
    }
    let tar = tar.into_inner().map_err(|e| bad("", e))?;
    let diff_id = Digest::sha256_of(&tar);
    let mut gz = flate2::GzBuilder::new().mtime(0).write(
        Vec::with_capacity(tar.len() / 3 + 1024),
        // Level 1: the layer is small text, and its digest need not match oc's (no Rust encoder can
        // reproduce Go's bytes anyway, spec §1.2); it is rebuilt on every assembly, so speed wins.
        flate2::Compression::fast(),
    );
    gz.write_all(&tar).expect("in-memory gzip");
    let gzip = bytes::Bytes::from(gz.finish().expect("in-memory gzip"));
    Ok(ReleaseLayer {
        digest: Digest::sha256_of(&gzip),
        gzip,
        diff_id,
    })
}

fn header(kind: tar::EntryType, mode: u32, size: u64, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(mtime);
    h.set_uid(0);
    h.set_gid(0);
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_named_and_ordered_as_oc_writes_them() {
        let files = [ManifestFile {
            name: "0000_50_a_x.yaml".into(),
            data: b"kind: X\n".to_vec(),
            mtime: 1_700_000_000,
        }];
        let layer = build(b"{}", b"{}", &files, 5).unwrap();
        assert_eq!(&layer.gzip[4..8], &[0, 0, 0, 0], "gzip header mtime");
        let tar = flate2::read::GzDecoder::new(&layer.gzip[..]);
        let mut a = tar::Archive::new(tar);
        let got: Vec<(String, u32, u64, bool)> = a
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    String::from_utf8(e.path_bytes().to_vec()).unwrap(),
                    h.mode().unwrap(),
                    h.mtime().unwrap(),
                    h.entry_type().is_dir(),
                )
            })
            .collect();
        let t = 1_700_000_000;
        assert_eq!(
            got,
            [
                ("release-manifests".to_string(), 0o777, t, true),
                (
                    "release-manifests/image-references".to_string(),
                    0o444,
                    t,
                    false
                ),
                (
                    "release-manifests/release-metadata".to_string(),
                    0o444,
                    t,
                    false
                ),
                (
                    "release-manifests/0000_50_a_x.yaml".to_string(),
                    0o444,
                    t,
                    false
                ),
            ]
        );
    }
}
