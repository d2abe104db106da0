//! The release tools, as `oc adm release extract --tools` and `--command` make them: the `oc`,
//! `openshift-install` and `ccoctl` binaries taken out of the payload's `cli`, `installer` and
//! `cloud-credential-operator` images, stamped with the release they belong to, and packed as
//! `openshift-client-linux-<version>.tar.gz`, `openshift-install-linux-<version>.tar.gz`, … with a
//! `sha256sum.txt` beside them.
//!
//! Stamping (spec §4): a binary built for it holds fixed-size marker regions, NUL, the marker
//! (`_RELEASE_IMAGE_LOCATION_`, `_RELEASE_VERSION_LOCATION_`, `_RELEASE_ARCHITECTURE_LOCATION_`),
//! NUL, a run of `X` and a final NUL. The region is overwritten with the value and NUL padding, so
//! the binary keeps its size and the installer reads the release image it must install.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use oci::Digest;

use crate::error::{invalid, io};
use crate::info::{resolve, ReleaseInfo};
use crate::source::{blocking, decompress, PullSpec, Sources};
use crate::{Error, Result};

/// A tool a payload can carry.
#[derive(Debug, Clone, Copy)]
pub struct Tool {
    /// The command: `oc`, `openshift-install`, `ccoctl`.
    pub command: &'static str,
    /// The payload tag of the image that holds it.
    pub tag: &'static str,
    /// Its path in that image.
    pub path: &'static str,
    /// The archive's name before `-<os>-<version>.tar.gz`.
    pub archive: &'static str,
}

/// The tools `--tools` extracts, in this order.
pub const TOOLS: [Tool; 3] = [
    Tool {
        command: "oc",
        tag: "cli",
        path: "usr/bin/oc",
        archive: "openshift-client",
    },
    Tool {
        command: "openshift-install",
        tag: "installer",
        path: "usr/bin/openshift-install",
        archive: "openshift-install",
    },
    Tool {
        command: "ccoctl",
        tag: "cloud-credential-operator",
        path: "usr/bin/ccoctl",
        archive: "ccoctl",
    },
];

/// The markers of the stamped regions.
pub const IMAGE_MARKER: &str = "_RELEASE_IMAGE_LOCATION_";
/// The version's marker.
pub const VERSION_MARKER: &str = "_RELEASE_VERSION_LOCATION_";
/// The architecture's marker.
pub const ARCH_MARKER: &str = "_RELEASE_ARCHITECTURE_LOCATION_";

/// One file written.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Written {
    /// Its name in the output directory.
    pub name: String,
    /// The tool in it.
    pub command: String,
    /// sha256 of the file.
    pub sha256: String,
    /// The markers stamped (none for a binary not built for it).
    pub stamped: Vec<String>,
}

/// The tool of `command`.
pub fn tool(command: &str) -> Result<Tool> {
    TOOLS
        .iter()
        .copied()
        .find(|t| t.command == command)
        .ok_or_else(|| {
            let known: Vec<&str> = TOOLS.iter().map(|t| t.command).collect();
            invalid(format!(
                "--command {command}: not a release tool; use one of {}",
                known.join(", ")
            ))
        })
}

/// Extracts `tools` from the release `info` into `to`: with `archives`, each as a tar.gz named as
/// oc names it, else the bare binary; then `sha256sum.txt` over everything written. A tool whose
/// tag the payload lacks is an error when asked for by name (`required`), else skipped; a payload
/// with none of them is an error.
pub async fn extract(
    sources: &Sources,
    info: &ReleaseInfo,
    tools: &[Tool],
    required: bool,
    archives: bool,
    to: &Path,
) -> Result<Vec<Written>> {
    std::fs::create_dir_all(to).map_err(io(to))?;
    let arch = info
        .config
        .0
        .get("architecture")
        .and_then(|a| a.as_str())
        .unwrap_or("amd64")
        .to_string();
    let stamps = [
        (IMAGE_MARKER, info.pull_spec.clone()),
        (VERSION_MARKER, info.name().to_string()),
        (ARCH_MARKER, arch.clone()),
    ];
    let mut written = Vec::new();
    let mut missing = Vec::new();
    for t in tools {
        let Some(spec) = info
            .references
            .spec
            .tags
            .iter()
            .find(|r| r.name == t.tag)
            .and_then(|r| r.from.as_ref())
            .map(|f| f.name.clone())
        else {
            missing.push(t.tag);
            continue;
        };
        let what = format!("{} (tag {}, {spec})", t.command, t.tag);
        let mut binary = read_file(sources, &what, &spec, &arch, t.path).await?;
        let mut stamped = Vec::new();
        for (marker, value) in &stamps {
            if stamp(&mut binary, marker, value).map_err(|e| invalid(format!("{what}: {e}")))? {
                stamped.push(marker.to_string());
            }
        }
        let (name, bytes) = if archives {
            let name = format!("{}-linux-{}.tar.gz", t.archive, info.name());
            (name, tar_gz(t.command, &binary)?)
        } else {
            (t.command.to_string(), binary)
        };
        write_atomic(&to.join(&name), &bytes, !archives)?;
        written.push(Written {
            name,
            command: t.command.into(),
            sha256: Digest::sha256_of(&bytes).hex().to_string(),
            stamped,
        });
    }
    if required && !missing.is_empty() {
        return Err(Error::BadRelease {
            image: info.image.clone(),
            reason: format!(
                "the payload has no tag {}, so it cannot produce {}",
                missing.join(", "),
                tools
                    .iter()
                    .filter(|t| missing.contains(&t.tag))
                    .map(|t| t.command)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    if written.is_empty() {
        return Err(Error::BadRelease {
            image: info.image.clone(),
            reason: "the payload has none of the tags cli, installer, cloud-credential-operator, \
                     so it cannot produce tools"
                .into(),
        });
    }
    let sums: String = written
        .iter()
        .map(|w| format!("{}  {}\n", w.sha256, w.name))
        .collect();
    write_atomic(&to.join("sha256sum.txt"), sums.as_bytes(), false)?;
    Ok(written)
}

/// The content of the regular file `path` in the image `spec` (for a list, its `arch` child), as
/// the image's layers stack up: later layers replace earlier ones, whiteouts delete.
async fn read_file(
    sources: &Sources,
    what: &str,
    spec: &str,
    arch: &str,
    path: &str,
) -> Result<Vec<u8>> {
    let r = PullSpec::parse(what, spec)?.image_ref();
    let (_, image, _) = resolve(sources, what, &r, Some(arch)).await?;
    let (_, layers) = sources.config(what, &image).await?;
    let tmp = tempfile::tempdir().map_err(io(std::env::temp_dir()))?;
    let mut files = Vec::new();
    for (i, desc) in layers.iter().enumerate() {
        files.push(
            sources
                .layer_file(what, &image, desc, tmp.path(), i)
                .await?,
        );
    }
    let (what, path) = (what.to_string(), path.to_string());
    blocking(move || {
        let mut found: Option<Vec<u8>> = None;
        let (dir, base) = match path.rsplit_once('/') {
            Some((d, b)) => (d.to_string(), b.to_string()),
            None => (String::new(), path.clone()),
        };
        let whiteout = format!("{dir}/.wh.{base}");
        let opaque = format!("{dir}/.wh..wh..opq");
        for file in &files {
            let mut archive = tar::Archive::new(decompress(&what, file)?);
            let entries = archive
                .entries()
                .map_err(|e| invalid(format!("{what}: layer: {e}")))?;
            for entry in entries {
                let mut entry = entry.map_err(|e| invalid(format!("{what}: layer: {e}")))?;
                let name = entry
                    .path()
                    .map_err(|e| invalid(format!("{what}: layer: {e}")))?
                    .to_string_lossy()
                    .trim_start_matches("./")
                    .trim_start_matches('/')
                    .to_string();
                if name == whiteout || name == opaque {
                    found = None;
                } else if name == path {
                    if !entry.header().entry_type().is_file() {
                        return Err(invalid(format!(
                            "{what}: /{path} is not a regular file in the image"
                        )));
                    }
                    let mut bytes = Vec::new();
                    entry
                        .read_to_end(&mut bytes)
                        .map_err(|e| invalid(format!("{what}: /{path}: {e}")))?;
                    found = Some(bytes);
                }
            }
        }
        found.ok_or_else(|| invalid(format!("{what}: the image has no /{path}")))
    })
    .await
}

/// Overwrites every marker region of `marker` in `binary` with `value`; whether there was one.
pub fn stamp(binary: &mut [u8], marker: &str, value: &str) -> std::result::Result<bool, String> {
    let prefix = format!("\0{marker}\0");
    let prefix = prefix.as_bytes();
    let mut any = false;
    let mut at = 0;
    while let Some(i) = find(&binary[at..], prefix) {
        let start = at + i;
        let pad = binary[start + prefix.len()..]
            .iter()
            .take_while(|&&b| b == b'X')
            .count();
        let end = start + prefix.len() + pad;
        if pad == 0 || binary.get(end) != Some(&0) {
            // The marker text without its region, e.g. in a string table.
            at = start + prefix.len();
            continue;
        }
        let region = end + 1 - start;
        if value.len() >= region {
            return Err(format!(
                "{marker}: '{value}' ({} bytes) does not fit the binary's {region}-byte region",
                value.len()
            ));
        }
        binary[start..start + value.len()].copy_from_slice(value.as_bytes());
        binary[start + value.len()..=end].fill(0);
        any = true;
        at = end + 1;
    }
    Ok(any)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A tar.gz holding `binary` as the executable `name`.
fn tar_gz(name: &str, binary: &[u8]) -> Result<Vec<u8>> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let mut h = oci::compose::tar_header(tar::EntryType::Regular, 0o755, binary.len() as u64, 0);
    tar.append_data(&mut h, name, binary)
        .map_err(|e| invalid(format!("packing {name}: {e}")))?;
    let gz = tar
        .into_inner()
        .map_err(|e| invalid(format!("packing {name}: {e}")))?;
    gz.finish()
        .map_err(|e| invalid(format!("packing {name}: {e}")))
}

/// Writes `bytes` to `path` through a temporary file beside it, so that a reader sees the whole
/// file or none.
fn write_atomic(path: &Path, bytes: &[u8], executable: bool) -> Result<()> {
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(io(&dir))?;
    tmp.write_all(bytes).map_err(io(path))?;
    if executable {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))
            .map_err(io(path))?;
    }
    tmp.persist(path).map_err(|e| io(path)(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(marker: &str, xs: usize) -> Vec<u8> {
        let mut v = format!("\0{marker}\0").into_bytes();
        v.extend(std::iter::repeat_n(b'X', xs));
        v.push(0);
        v
    }

    #[test]
    fn a_marker_region_is_overwritten_in_place() {
        let mut bin = b"ELF....".to_vec();
        bin.extend(region(IMAGE_MARKER, 64));
        bin.extend(b"tail");
        let len = bin.len();
        assert!(stamp(&mut bin, IMAGE_MARKER, "quay.io/okd/scos-release@sha256:ab").unwrap());
        assert_eq!(bin.len(), len, "the binary keeps its size");
        let start = 7;
        let value = b"quay.io/okd/scos-release@sha256:ab";
        assert_eq!(&bin[start..start + value.len()], value);
        assert!(bin[start + value.len()..len - 4].iter().all(|&b| b == 0));
        assert_eq!(&bin[len - 4..], b"tail");
        // Stamped once, the marker is gone: a second stamp finds nothing.
        assert!(!stamp(&mut bin, IMAGE_MARKER, "other").unwrap());
    }

    #[test]
    fn a_value_too_long_for_its_region_is_refused_and_a_bare_marker_left_alone() {
        let mut bin = region(VERSION_MARKER, 4);
        let before = bin.clone();
        // The region is the marker with its NULs, 4 X and the final NUL: 33 bytes.
        let long = "4.17.0-0.okd-scos-2026-12-03-101500-long";
        let err = stamp(&mut bin, VERSION_MARKER, long).unwrap_err();
        assert!(err.contains("does not fit"), "{err}");
        let mut bare = format!("x\0{ARCH_MARKER}\0y").into_bytes();
        let copy = bare.clone();
        assert!(!stamp(&mut bare, ARCH_MARKER, "amd64").unwrap());
        assert_eq!(bare, copy);
        assert_eq!(bin, before);
    }
}
