//! The one place that writes the payload's release layer: a gzip tar of `release-manifests/`.

use oci::compose::{tar_header as header, Layer};

use crate::error::{invalid, Result};
use crate::manifests::ManifestFile;

/// The directory the release layer holds.
pub const DIR: &str = "release-manifests";

/// Build the layer as oc's `writePayload` does: the directory `release-manifests` (no trailing slash, mode
/// 0777), then `image-references`, `release-metadata` and the manifests in order, all mode 0444. Files
/// keep their mtimes; the directory and the two metadata files take the newest of them (or `fallback_mtime`
/// when there are none). Names have no `./` prefix; the gzip header has no mtime.
pub fn build(
    image_references: &[u8],
    release_metadata: &[u8],
    manifests: &[ManifestFile],
    fallback_mtime: u64,
) -> Result<Layer> {
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
    Ok(Layer::from_tar(&tar))
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
