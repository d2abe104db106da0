//! Reading `release-manifests/` out of a payload's layers, refusing anything that could write outside
//! the target directory, and `release extract` itself.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

use oci::{Digest, ImageRef};

use crate::error::{io, Error, Result};
use crate::info::{read_layers, resolve};
use crate::layer::DIR;
use crate::manifests::ManifestFile;
use crate::source::Sources;

/// A payload's `release-manifests/`, read from all its layers as `oc adm release extract` does.
#[derive(Debug)]
pub struct Extracted {
    /// The release digest (the list's, for a manifest list).
    pub digest: Digest,
    /// The image's `created`.
    pub created: String,
    /// The files, by name.
    pub files: BTreeMap<String, ManifestFile>,
}

/// Read `release-manifests/` from every layer of the release `r` (top first), refusing unsafe entries.
pub async fn extract(sources: &Sources, r: &ImageRef, arch: Option<&str>) -> Result<Extracted> {
    let what = r.to_string();
    let (found, image, _) = resolve(sources, &what, r, arch).await?;
    let (config, layers) = sources.config(&what, &image).await?;
    let files = read_layers(sources, &what, &image, layers.into_iter().rev().collect()).await?;
    if !files.contains_key("image-references") {
        return Err(Error::BadRelease {
            image: what,
            reason:
                "no release-manifests/image-references in any layer; is this a release payload?"
                    .into(),
        });
    }
    Ok(Extracted {
        digest: found.manifest.digest.clone(),
        created: config.created().to_string(),
        files,
    })
}

/// The largest file `release-manifests/` may hold (real payloads' largest are a few MiB of CRDs).
pub const MAX_ENTRY: u64 = 32 << 20;
/// The most bytes `release-manifests/` may hold in all (real payloads hold tens of MiB).
pub const MAX_TOTAL: u64 = 1 << 30;

enum Entry {
    File(ManifestFile),
    Link(String),
}

/// The flat files of `release-manifests/` in `layers` (top first; the first occurrence of a name wins,
/// whiteouts are ignored, as oc does). Links within the directory resolve to their target's contents.
/// Refuses absolute paths, `..`, links that leave the directory, device files and entries over
/// [`MAX_ENTRY`], naming the entry.
pub fn release_files(layers: Vec<Box<dyn Read + '_>>) -> Result<BTreeMap<String, ManifestFile>> {
    let refuse = |entry: &str, reason: String| Error::UnsafeEntry {
        entry: entry.to_string(),
        reason,
    };
    let mut found: BTreeMap<String, Entry> = BTreeMap::new();
    let mut total = 0u64;
    for layer in layers {
        let mut archive = tar::Archive::new(layer);
        let entries = archive
            .entries()
            .map_err(|e| refuse("<layer>", format!("not a tar stream: {e}")))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| refuse("<layer>", format!("bad tar entry: {e}")))?;
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let parts: Vec<&str> = raw
                .split('/')
                .filter(|p| !p.is_empty() && *p != ".")
                .collect();
            let inside = parts.first() == Some(&DIR);
            if parts.contains(&"..") && parts.contains(&DIR) {
                return Err(refuse(&raw, "the path contains '..'".into()));
            }
            if !inside || parts.contains(&"..") {
                continue;
            }
            if raw.starts_with('/') {
                return Err(refuse(&raw, "absolute path".into()));
            }
            let kind = entry.header().entry_type();
            let link = || -> Result<String> {
                let target = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                let inside = target.strip_prefix(&format!("{DIR}/")).unwrap_or(&target);
                if target.starts_with('/') || inside.is_empty() || inside.contains('/') {
                    return Err(refuse(
                        &raw,
                        format!("link to '{target}' leaves the {DIR} directory"),
                    ));
                }
                Ok(inside.to_string())
            };
            if parts.len() == 1 {
                if kind.is_symlink() || kind.is_hard_link() {
                    link()?;
                }
                continue;
            }
            let name = parts[1..].join("/");
            if kind.is_character_special() || kind.is_block_special() || kind.is_fifo() {
                return Err(refuse(&raw, "device or fifo files are not allowed".into()));
            }
            if parts.len() > 2 || name.starts_with(".wh.") || found.contains_key(&name) {
                continue;
            }
            if kind.is_symlink() || kind.is_hard_link() {
                let target = link()?;
                found.insert(name, Entry::Link(target));
                continue;
            }
            if !kind.is_file() {
                continue;
            }
            let size = entry.size();
            total += size;
            if total > MAX_TOTAL {
                return Err(refuse(
                    &raw,
                    format!("release-manifests would hold more than {MAX_TOTAL} bytes"),
                ));
            }
            if size > MAX_ENTRY {
                return Err(refuse(
                    &raw,
                    format!(
                        "it is {size} bytes, more than the {MAX_ENTRY} a release manifest may have"
                    ),
                ));
            }
            let mut data = Vec::with_capacity(size as usize);
            entry
                .read_to_end(&mut data)
                .map_err(|e| refuse(&raw, format!("cannot read: {e}")))?;
            let mtime = entry.header().mtime().unwrap_or(0);
            found.insert(
                name.clone(),
                Entry::File(ManifestFile { name, data, mtime }),
            );
        }
    }
    let mut out = BTreeMap::new();
    for (name, entry) in &found {
        let file = match entry {
            Entry::File(f) => f.clone(),
            Entry::Link(target) => match found.get(target) {
                Some(Entry::File(f)) => ManifestFile {
                    name: name.clone(),
                    ..f.clone()
                },
                _ => {
                    return Err(refuse(
                        &format!("{DIR}/{name}"),
                        format!("link to '{target}', which is not a file in the layer"),
                    ))
                }
            },
        };
        out.insert(name.clone(), file);
    }
    Ok(out)
}

/// Write `files` flat into `dir` (created if missing), each atomically.
pub fn write_files(dir: &Path, files: &BTreeMap<String, ManifestFile>) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    for f in files.values() {
        write_atomic(dir, &f.name, &f.data)?;
    }
    Ok(())
}

/// Write `data` to `dir/name` through a temporary file in `dir`, so readers see all or nothing.
pub(crate) fn write_atomic(dir: &Path, name: &str, data: &[u8]) -> Result<()> {
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io(dir))?;
    tmp.write_all(data).map_err(io(dir))?;
    let path = dir.join(name);
    tmp.persist(&path).map_err(|e| Error::Io {
        path: path.display().to_string(),
        source: e.error,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, data, link) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            if let Some(l) = link {
                h.set_link_name(l).unwrap();
            }
            // Bypass the builder's path checks to write hostile names verbatim.
            let name_field = &mut h.as_old_mut().name;
            name_field.fill(0);
            name_field[..name.len()].copy_from_slice(name.as_bytes());
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn read(
        entries: &[(&str, tar::EntryType, &[u8], Option<&str>)],
    ) -> Result<BTreeMap<String, ManifestFile>> {
        let bytes = layer(entries);
        release_files(vec![Box::new(&bytes[..])])
    }

    use tar::EntryType as T;

    #[test]
    fn reads_flat_files_and_in_directory_links() {
        let out = read(&[
            ("release-manifests", T::Directory, b"", None),
            ("./release-manifests/a.yaml", T::Regular, b"kind: A", None),
            ("release-manifests/sub/b.yaml", T::Regular, b"x", None),
            ("release-manifests/c.yaml", T::Symlink, b"", Some("a.yaml")),
            ("usr/bin/x", T::Symlink, b"", Some("/etc/passwd")),
        ])
        .unwrap();
        assert_eq!(out.keys().collect::<Vec<_>>(), ["a.yaml", "c.yaml"]);
        assert_eq!(out["c.yaml"].data, b"kind: A");
    }

    #[test]
    fn refuses_hostile_entries() {
        let cases: &[(&str, T, Option<&str>, &str)] = &[
            ("/release-manifests/x", T::Regular, None, "absolute path"),
            ("release-manifests/../../etc/x", T::Regular, None, "'..'"),
            (
                "release-manifests/l",
                T::Symlink,
                Some("/etc/passwd"),
                "leaves",
            ),
            ("release-manifests/l", T::Symlink, Some("../../x"), "leaves"),
            ("release-manifests", T::Symlink, Some("/etc"), "leaves"),
            ("release-manifests/dev", T::Char, None, "device"),
        ];
        for (name, kind, link, why) in cases {
            let e = read(&[(name, *kind, b"", *link)]).unwrap_err().to_string();
            assert!(
                e.contains(&format!("'{name}'")) && e.contains(why),
                "{name}: {e}"
            );
        }
    }
}
