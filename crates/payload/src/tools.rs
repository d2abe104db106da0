//! The release tools, as `oc adm release extract --tools` and `--command` make them: `oc`,
//! `openshift-install`, `openshift-baremetal-install` and `ccoctl`, taken out of the payload's
//! `cli`, `cli-artifacts`, `installer`, `installer-artifacts`, `baremetal-installer` and
//! `cloud-credential-operator` images, stamped with the release they belong to, and packed per
//! platform as `openshift-client-linux-<version>.tar.gz`, `openshift-client-mac-arm64-<version>.tar.gz`,
//! `openshift-client-windows-<version>.zip`, … with `release.txt` and `sha256sum.txt` beside them
//! (and `sha256sum.txt.asc` when a key signs them).
//!
//! Which files come out ([`TARGETS`], oc's list): `--tools` takes every target of the chosen
//! [`Platform`] (the host's by default, every one with `*`); `--command` takes those of one command.
//! A target of an image the payload lacks is skipped with a warning, except the newer platforms
//! (mac arm64, linux arm64, the per-arch installers, ccoctl), which are skipped silently, as oc does;
//! nothing to extract at all is an error.
//!
//! Stamping (spec §4): a binary built for it holds fixed-size marker regions, NUL, the marker
//! (`_RELEASE_IMAGE_LOCATION_`, `_RELEASE_VERSION_LOCATION_`, `_RELEASE_ARCHITECTURE_LOCATION_`),
//! NUL, a run of `X` and a final NUL. The region is overwritten with the value and NUL padding, so
//! the binary keeps its size. The installers get the release image by digest (the list's for a
//! manifest list), `oc` and the installers the version, and any binary with the region the
//! release's architecture.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use oci::Digest;

use crate::error::{invalid, io};
use crate::info::ReleaseInfo;
use crate::signature::Signer;
use crate::source::Sources;
use crate::{Error, Result};

/// The architecture of a target built for the payload's own architecture (`/usr/bin/oc` of the
/// `cli` image).
pub const RELEASE_ARCH: &str = "release";

/// A file `--tools` or `--command` can produce.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// `linux`, `darwin` or `windows`.
    pub os: &'static str,
    /// `amd64`, `arm64`, or [`RELEASE_ARCH`].
    pub arch: &'static str,
    /// The command: `oc`, `openshift-install`, `openshift-baremetal-install`, `ccoctl`.
    pub command: &'static str,
    /// The payload tag of the image that holds it.
    pub tag: &'static str,
    /// Its path in that image.
    pub path: &'static str,
    /// The archive's name before `-<version>.tar.gz` (`.zip` on windows).
    pub archive: &'static str,
    /// Other names the archive links to the command (`kubectl`).
    pub links: &'static [&'static str],
    /// Stamped with the release image.
    pub image: bool,
    /// Stamped with the release version.
    pub version: bool,
    /// Only with `--command`, never with `--tools` (the baremetal installer).
    pub optional: bool,
    /// A newer platform: skipped without a warning when its image or file is missing.
    pub newer: bool,
}

impl Target {
    const fn new(
        os: &'static str,
        arch: &'static str,
        command: &'static str,
        tag: &'static str,
        path: &'static str,
        archive: &'static str,
    ) -> Target {
        let installer = matches!(
            command.as_bytes(),
            b"openshift-install" | b"openshift-baremetal-install"
        );
        let oc = matches!(command.as_bytes(), b"oc");
        Target {
            os,
            arch,
            command,
            tag,
            path,
            archive,
            links: if oc && !matches!(os.as_bytes(), b"windows") {
                &["kubectl"]
            } else {
                &[]
            },
            image: installer,
            version: installer || oc,
            optional: false,
            newer: false,
        }
    }

    const fn newer(mut self) -> Target {
        self.newer = true;
        self
    }

    const fn optional(mut self) -> Target {
        self.optional = true;
        self
    }

    /// Whether it is packed as a zip (windows) rather than a tar.gz.
    pub fn zip(&self) -> bool {
        self.os == "windows"
    }

    /// The archive's file name for release `version`.
    pub fn archive_name(&self, version: &str) -> String {
        let ext = if self.zip() { "zip" } else { "tar.gz" };
        format!("{}-{version}.{ext}", self.archive)
    }

    /// The bare executable's file name.
    pub fn binary_name(&self) -> String {
        if self.zip() {
            format!("{}.exe", self.command)
        } else {
            self.command.to_string()
        }
    }

    fn readme(&self) -> String {
        let (what, source) = match self.command {
            "oc" => ("the OpenShift client", "https://github.com/openshift/oc"),
            "ccoctl" => (
                "the Cloud Credential Operator utility",
                "https://github.com/openshift/cloud-credential-operator",
            ),
            _ => (
                "the OpenShift installer",
                "https://github.com/openshift/installer",
            ),
        };
        let mut files = vec![format!("`{}`", self.binary_name())];
        files.extend(
            self.links
                .iter()
                .map(|l| format!("`{l}` (the same program)")),
        );
        let text = format!(
            "# {}\n\nThis archive holds {what}, {}, for {}/{}.\n\nPut it in a directory on your \
             PATH, such as /usr/local/bin, or run it from where you unpacked it.\n\nThe source is \
             at {source}, under the Apache License 2.0.\n",
            self.command,
            files.join(" and "),
            self.os,
            self.arch,
        );
        if self.zip() {
            text.replace('\n', "\r\n")
        } else {
            text
        }
    }
}

/// Every file the tools can be, in oc's order.
pub const TARGETS: [Target; 13] = [
    Target::new(
        "darwin",
        "amd64",
        "oc",
        "cli-artifacts",
        "usr/share/openshift/mac/oc",
        "openshift-client-mac",
    ),
    Target::new(
        "darwin",
        "arm64",
        "oc",
        "cli-artifacts",
        "usr/share/openshift/mac_arm64/oc",
        "openshift-client-mac-arm64",
    )
    .newer(),
    Target::new(
        "linux",
        RELEASE_ARCH,
        "oc",
        "cli",
        "usr/bin/oc",
        "openshift-client-linux",
    ),
    Target::new(
        "linux",
        "amd64",
        "oc",
        "cli-artifacts",
        "usr/share/openshift/linux_amd64/oc",
        "openshift-client-linux-amd64",
    ),
    Target::new(
        "linux",
        "arm64",
        "oc",
        "cli-artifacts",
        "usr/share/openshift/linux_arm64/oc",
        "openshift-client-linux-arm64",
    )
    .newer(),
    Target::new(
        "windows",
        "amd64",
        "oc",
        "cli-artifacts",
        "usr/share/openshift/windows/oc.exe",
        "openshift-client-windows",
    ),
    Target::new(
        "darwin",
        "amd64",
        "openshift-install",
        "installer-artifacts",
        "usr/share/openshift/mac/openshift-install",
        "openshift-install-mac",
    ),
    Target::new(
        "darwin",
        "arm64",
        "openshift-install",
        "installer-artifacts",
        "usr/share/openshift/mac_arm64/openshift-install",
        "openshift-install-mac-arm64",
    )
    .newer(),
    Target::new(
        "linux",
        RELEASE_ARCH,
        "openshift-install",
        "installer",
        "usr/bin/openshift-install",
        "openshift-install-linux",
    ),
    Target::new(
        "linux",
        "amd64",
        "openshift-install",
        "installer-artifacts",
        "usr/share/openshift/linux_amd64/openshift-install",
        "openshift-install-linux-amd64",
    )
    .newer(),
    Target::new(
        "linux",
        "arm64",
        "openshift-install",
        "installer-artifacts",
        "usr/share/openshift/linux_arm64/openshift-install",
        "openshift-install-linux-arm64",
    )
    .newer(),
    Target::new(
        "linux",
        RELEASE_ARCH,
        "openshift-baremetal-install",
        "baremetal-installer",
        "usr/bin/openshift-install",
        "openshift-baremetal-install-linux",
    )
    .optional(),
    Target::new(
        "linux",
        RELEASE_ARCH,
        "ccoctl",
        "cloud-credential-operator",
        "usr/bin/ccoctl",
        "ccoctl-linux",
    )
    .newer(),
];

/// The commands `--command` takes.
pub fn commands() -> Vec<&'static str> {
    let mut seen = BTreeSet::new();
    TARGETS
        .iter()
        .map(|t| t.command)
        .filter(|c| seen.insert(*c))
        .collect()
}

/// The platforms to extract for (`--command-os`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Platform {
    /// Every platform (`*`).
    All,
    /// One OS and architecture.
    Only {
        /// `linux`, `darwin` or `windows`.
        os: String,
        /// `amd64`, `arm64`, `ppc64le`, `s390x`.
        arch: String,
    },
}

impl Platform {
    /// The platform of this machine.
    pub fn host() -> Platform {
        let os = match std::env::consts::OS {
            "macos" => "darwin",
            os => os,
        };
        Platform::Only {
            os: os.into(),
            arch: oci::manifest::host_arch().into(),
        }
    }

    /// `*`, `OS` (amd64) or `OS/ARCH`; `mac` is `darwin`.
    pub fn parse(s: &str) -> Result<Platform> {
        if s == "*" {
            return Ok(Platform::All);
        }
        let (os, arch) = s.split_once('/').unwrap_or((s, "amd64"));
        let os = if os == "mac" { "darwin" } else { os };
        if !TARGETS.iter().any(|t| t.os == os) || arch.is_empty() || arch.contains('/') {
            return Err(invalid(format!(
                "--command-os {s}: not a platform; give '*', linux, mac, windows or OS/ARCH \
                 such as linux/arm64"
            )));
        }
        Ok(Platform::Only {
            os: os.into(),
            arch: arch.into(),
        })
    }

    fn takes(&self, t: &Target, release_arch: &str) -> bool {
        match self {
            Platform::All => true,
            Platform::Only { os, arch } => {
                t.os == os && (t.arch == arch || (t.arch == RELEASE_ARCH && arch == release_arch))
            }
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Platform::All => f.write_str("*"),
            Platform::Only { os, arch } => write!(f, "{os}/{arch}"),
        }
    }
}

/// What to extract.
pub struct Options<'a> {
    /// One command (`--command`), else all of them (`--tools`).
    pub command: Option<&'a str>,
    /// The platforms.
    pub platform: Platform,
    /// Signs `sha256sum.txt` into `sha256sum.txt.asc` (archives only).
    pub signer: Option<&'a Signer>,
}

impl Options<'_> {
    /// Archives (with `release.txt` and `sha256sum.txt`) for `--tools` or every platform, else
    /// the bare executable, as oc decides.
    pub fn archives(&self) -> bool {
        self.command.is_none() || self.platform == Platform::All
    }
}

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
    /// The tool in it (empty for `release.txt`).
    pub command: String,
    /// The platform it runs on, e.g. `linux/amd64`.
    pub platform: String,
    /// sha256 of the file.
    pub sha256: String,
    /// The markers stamped (none for a binary not built for it).
    pub stamped: Vec<String>,
}

/// What [`extract`] did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Extracted {
    /// The archives or executables, then `release.txt`, in order.
    pub files: Vec<Written>,
    /// Whether `sha256sum.txt.asc` was written.
    pub signed: bool,
    /// Targets left out because the payload lacks their image.
    pub warnings: Vec<String>,
}

/// The text of `release.txt`: what the archives are and the release they install.
pub fn release_txt(info: &ReleaseInfo) -> String {
    format!(
        "Client tools for OKD {}\n\nThe archives beside this file hold the tools of this release. \
         sha256sum.txt lists their checksums (check them with `sha256sum --check sha256sum.txt`), \
         and sha256sum.txt.asc, when present, signs that list (`gpg --verify sha256sum.txt.asc \
         sha256sum.txt`).\n\nopenshift-install installs this release:\n\n---\n\n{}",
        info.name(),
        info.describe(false)
    )
}

/// Extracts the tools of the release `info` that `opts` chooses into `to`: archives named as oc
/// names them with `release.txt` and `sha256sum.txt` (signed when `opts.signer`), or bare
/// executables for `--command`. Each file is written atomically.
pub async fn extract(
    sources: &Sources,
    info: &ReleaseInfo,
    opts: &Options<'_>,
    to: &Path,
) -> Result<Extracted> {
    if let Some(c) = opts.command {
        if !TARGETS.iter().any(|t| t.command == c) {
            return Err(invalid(format!(
                "--command {c}: not a release tool; use one of {}",
                commands().join(", ")
            )));
        }
    }
    let arch = info
        .config
        .0
        .get("architecture")
        .and_then(|a| a.as_str())
        .unwrap_or("amd64")
        .to_string();
    let archives = opts.archives();
    let chosen: Vec<&Target> = TARGETS
        .iter()
        .filter(|t| match opts.command {
            Some(c) => t.command == c,
            None => !t.optional,
        })
        .collect();
    let fits: Vec<&Target> = chosen
        .iter()
        .copied()
        .filter(|t| opts.platform.takes(t, &arch))
        .collect();
    if fits.is_empty() {
        return Err(invalid(format!(
            "{} is not available for {}; its platforms are {}",
            opts.command.unwrap_or("no tool"),
            opts.platform,
            chosen
                .iter()
                .map(|t| format!("{}/{}", t.os, t.arch))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    // The image of each tag, and the targets it serves; a name written once (two targets of one
    // platform give the same bare executable: the first wins).
    let spec_of = |tag: &str| {
        info.references
            .spec
            .tags
            .iter()
            .find(|r| r.name == tag)
            .and_then(|r| r.from.as_ref())
            .map(|f| f.name.clone())
    };
    let mut by_tag: BTreeMap<&str, (String, Vec<&Target>)> = BTreeMap::new();
    let mut missing = BTreeSet::new();
    let mut names = BTreeSet::new();
    let mut order = Vec::new();
    for t in fits.iter().copied() {
        let Some(spec) = spec_of(t.tag) else {
            missing.insert((t.tag, t.newer));
            continue;
        };
        let name = if archives {
            t.archive_name(info.name())
        } else {
            t.binary_name()
        };
        if names.insert(name) {
            order.push(t);
            by_tag.entry(t.tag).or_insert((spec, Vec::new())).1.push(t);
        }
    }
    if order.is_empty() {
        let tags: BTreeSet<&str> = missing.iter().map(|(t, _)| *t).collect();
        let commands: BTreeSet<&str> = fits.iter().map(|t| t.command).collect();
        return Err(Error::BadRelease {
            image: info.image.clone(),
            reason: format!(
                "the payload has no tag {}, so it cannot produce {}",
                tags.into_iter().collect::<Vec<_>>().join(", "),
                commands.into_iter().collect::<Vec<_>>().join(", ")
            ),
        });
    }
    let warnings: Vec<String> = missing
        .iter()
        .filter(|(_, newer)| !newer)
        .map(|(tag, _)| *tag)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(|tag| {
            let left: Vec<String> = fits
                .iter()
                .filter(|t| t.tag == tag && !t.newer)
                .map(|t| format!("{} for {}/{}", t.command, t.os, t.arch))
                .collect();
            format!("the payload has no tag {tag}: no {}", left.join(", "))
        })
        .collect();

    std::fs::create_dir_all(to).map_err(io(to))?;
    let stamps = |t: &Target| {
        let mut s = vec![(ARCH_MARKER, arch.clone())];
        if t.image {
            s.push((IMAGE_MARKER, info.pull_spec.clone()));
        }
        if t.version {
            s.push((VERSION_MARKER, info.name().to_string()));
        }
        s
    };
    let mut written: BTreeMap<String, Written> = BTreeMap::new();
    for (tag, (spec, targets)) in &by_tag {
        let what = format!("tag {tag} ({spec})");
        let paths: Vec<&str> = targets.iter().map(|t| t.path).collect();
        let mut files = read_files(sources, &what, spec, &arch, &paths).await?;
        for t in targets {
            let Some((mut binary, mtime)) = files.remove(t.path) else {
                if t.newer {
                    continue;
                }
                return Err(invalid(format!("{what}: the image has no /{}", t.path)));
            };
            let what = format!("{} for {}/{} ({what})", t.command, t.os, t.arch);
            let mut stamped = Vec::new();
            for (marker, value) in stamps(t) {
                if stamp(&mut binary, marker, &value)
                    .map_err(|e| invalid(format!("{what}: {e}")))?
                {
                    stamped.push(marker.to_string());
                }
            }
            let (name, bytes) = if archives {
                let bytes = if t.zip() {
                    zip_archive(t, &binary, mtime)?
                } else {
                    tar_gz(t, &binary, mtime)?
                };
                (t.archive_name(info.name()), bytes)
            } else {
                (t.binary_name(), binary)
            };
            write_atomic(&to.join(&name), &bytes, !archives)?;
            let platform = match t.arch {
                RELEASE_ARCH => format!("{}/{arch}", t.os),
                a => format!("{}/{a}", t.os),
            };
            written.insert(
                name.clone(),
                Written {
                    name,
                    command: t.command.into(),
                    platform,
                    sha256: Digest::sha256_of(&bytes).hex().to_string(),
                    stamped,
                },
            );
        }
    }
    // In oc's order of targets.
    let mut files: Vec<Written> = order
        .iter()
        .filter_map(|t| {
            let name = if archives {
                t.archive_name(info.name())
            } else {
                t.binary_name()
            };
            written.remove(&name)
        })
        .collect();
    let mut signed = false;
    if archives {
        let text = release_txt(info);
        write_atomic(&to.join("release.txt"), text.as_bytes(), false)?;
        files.push(Written {
            name: "release.txt".into(),
            command: String::new(),
            platform: String::new(),
            sha256: Digest::sha256_of(text.as_bytes()).hex().to_string(),
            stamped: Vec::new(),
        });
        let mut sorted: Vec<&Written> = files.iter().collect();
        sorted.sort_by(|a, b| a.name.cmp(&b.name));
        let sums: String = sorted
            .iter()
            .map(|w| format!("{}  {}\n", w.sha256, w.name))
            .collect();
        if let Some(signer) = opts.signer {
            let asc = signer
                .sign_detached(sums.as_bytes())
                .map_err(|e| invalid(format!("signing sha256sum.txt: {e}")))?;
            write_atomic(&to.join("sha256sum.txt.asc"), asc.as_bytes(), false)?;
            signed = true;
        }
        write_atomic(&to.join("sha256sum.txt"), sums.as_bytes(), false)?;
    }
    Ok(Extracted {
        files,
        signed,
        warnings,
    })
}

/// The content and mtime of each regular file of `paths` in the image `spec` (for a list, its
/// `arch` child), as the image's layers stack up ([`Sources::files_of`]). A path the image lacks
/// is left out; one that is not a regular file is an error.
async fn read_files(
    sources: &Sources,
    what: &str,
    spec: &str,
    arch: &str,
    paths: &[&str],
) -> Result<BTreeMap<String, (Vec<u8>, u64)>> {
    let files = sources.files_of(what, spec, Some(arch), paths).await?;
    files
        .into_iter()
        .map(|(p, f)| match f {
            Ok(f) => Ok((p, (f.data, f.mtime))),
            Err(e) => Err(invalid(format!("{what}: {e}"))),
        })
        .collect()
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

/// A tar.gz holding `README.md`, `binary` as the executable `t.command` and its links.
fn tar_gz(t: &Target, binary: &[u8], mtime: u64) -> Result<Vec<u8>> {
    let fail = |e: std::io::Error| invalid(format!("packing {}: {e}", t.archive));
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(3));
    let mut tar = tar::Builder::new(gz);
    let readme = t.readme();
    let mut h =
        oci::compose::tar_header(tar::EntryType::Regular, 0o644, readme.len() as u64, mtime);
    tar.append_data(&mut h, "README.md", readme.as_bytes())
        .map_err(fail)?;
    let mut h =
        oci::compose::tar_header(tar::EntryType::Regular, 0o755, binary.len() as u64, mtime);
    tar.append_data(&mut h, t.command, binary).map_err(fail)?;
    for link in t.links {
        let mut h = oci::compose::tar_header(tar::EntryType::Link, 0o755, 0, mtime);
        tar.append_link(&mut h, link, t.command).map_err(fail)?;
    }
    tar.into_inner().map_err(fail)?.finish().map_err(fail)
}

/// A zip holding `README.md` (CRLF lines) and `binary` as `<command>.exe`.
fn zip_archive(t: &Target, binary: &[u8], mtime: u64) -> Result<Vec<u8>> {
    let fail = |e: zip::result::ZipError| invalid(format!("packing {}: {e}", t.archive));
    let io_fail = |e: std::io::Error| invalid(format!("packing {}: {e}", t.archive));
    let modified = time::OffsetDateTime::from_unix_timestamp(mtime as i64)
        .ok()
        .and_then(|m| {
            zip::DateTime::from_date_and_time(
                m.year() as u16,
                m.month() as u8,
                m.day(),
                m.hour(),
                m.minute(),
                m.second(),
            )
            .ok()
        })
        .unwrap_or_default();
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(modified)
        .unix_permissions(0o755);
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    z.start_file("README.md", options).map_err(fail)?;
    z.write_all(t.readme().as_bytes()).map_err(io_fail)?;
    z.start_file(t.binary_name(), options).map_err(fail)?;
    z.write_all(binary).map_err(io_fail)?;
    Ok(z.finish().map_err(fail)?.into_inner())
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
