//! The few paths of an image's root filesystem that the base-image policy looks at, read from its
//! layer tarballs (gzip or uncompressed) without unpacking them: os-release files, rpm repository
//! files and entitlement certificates. One pass per layer records those paths and every whiteout;
//! [`RootFs`] then answers "what is at this path in the merged filesystem" as a container runtime
//! would: the topmost layer that has the path wins, and a whiteout (`.wh.NAME`) or an opaque marker
//! (`.wh..wh..opq`) in a higher layer hides it.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};

use oci::Digest;

/// The most bytes kept of one recorded file (os-release and `.repo` files are a few hundred bytes).
pub const MAX_FILE: u64 = 64 << 10;
/// The most links followed when resolving a path.
const MAX_LINKS: usize = 8;

/// What a layer has at a recorded path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A regular file: its first [`MAX_FILE`] bytes.
    File(Vec<u8>),
    /// A symbolic link, with its target as written.
    Symlink(String),
    /// A hard link to another path of the archive (normalised).
    Hardlink(String),
    /// Something else (a directory, a device): not a file to read.
    Other,
}

/// What one layer holds of the paths the policy looks at, and its whiteouts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayerScan {
    /// Recorded paths (normalised: no leading `/` or `./`).
    pub entries: BTreeMap<String, Node>,
    /// Paths this layer deletes from the layers below (`dir/.wh.name` → `dir/name`).
    pub whiteouts: BTreeSet<String>,
    /// Directories whose lower-layer contents this layer hides (`dir/.wh..wh..opq`).
    pub opaque: BTreeSet<String>,
}

/// Whether the policy reads `path`: os-release files under `etc/` or `usr/lib/` (also in
/// `os.release.d/`, where Fedora's `usr/lib/os-release` link points), `etc/yum.repos.d/*.repo` and
/// anything under `etc/pki/entitlement/`.
pub fn recorded(path: &str) -> bool {
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    let os_release = (path.starts_with("etc/") || path.starts_with("usr/lib/"))
        && (name.contains("os-release") || dir.ends_with("os.release.d"));
    os_release
        || (dir == "etc/yum.repos.d" && name.ends_with(".repo"))
        || path.starts_with("etc/pki/entitlement/")
}

/// `path` as a clean relative path: no leading `/`, no `.` or empty parts, `..` applied (never above
/// the root).
pub fn normalise(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// Read one layer tarball, gzip-compressed or not, recording what [`recorded`] selects and all
/// whiteouts. The stream is read to its end, so a blob that fails verification fails here. A zstd
/// layer is refused with a clear error.
pub fn scan_layer<'r>(reader: impl Read + 'r) -> std::io::Result<LayerScan> {
    let mut buffered = BufReader::with_capacity(64 << 10, reader);
    let magic: Vec<u8> = buffered.fill_buf()?.iter().take(4).copied().collect();
    let stream: Box<dyn Read + 'r> = match magic.as_slice() {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::MultiGzDecoder::new(buffered)),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => {
            return Err(std::io::Error::other(
                "zstd-compressed layers are not supported; only gzip and uncompressed tar",
            ))
        }
        _ => Box::new(buffered),
    };
    let mut archive = tar::Archive::new(stream);
    let mut scan = LayerScan::default();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let path = normalise(&raw);
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", &path));
        if let Some(hidden) = name.strip_prefix(".wh.") {
            if hidden == ".wh..opq" {
                scan.opaque.insert(dir.to_string());
            } else if dir.is_empty() {
                scan.whiteouts.insert(hidden.to_string());
            } else {
                scan.whiteouts.insert(format!("{dir}/{hidden}"));
            }
            continue;
        }
        if !recorded(&path) {
            continue;
        }
        let kind = entry.header().entry_type();
        let node = if kind.is_symlink() || kind.is_hard_link() {
            let target = entry
                .link_name_bytes()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            if kind.is_symlink() {
                Node::Symlink(target)
            } else {
                Node::Hardlink(normalise(&target))
            }
        } else if kind.is_file() {
            let mut data = Vec::new();
            entry.by_ref().take(MAX_FILE).read_to_end(&mut data)?;
            Node::File(data)
        } else {
            Node::Other
        };
        // A tar may name a path twice: the later entry is what extraction leaves.
        scan.entries.insert(path, node);
    }
    // Read to the end: the rest of the tar and the compressed stream, so its digest is checked.
    std::io::copy(&mut archive.into_inner(), &mut std::io::sink())?;
    Ok(scan)
}

/// A file found in the merged filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found<'a> {
    /// The path asked for, then each link target followed, e.g. `["/etc/os-release",
    /// "/usr/lib/os-release"]`.
    pub chain: Vec<String>,
    /// The layer the file's contents come from.
    pub layer: &'a Digest,
    /// The contents (at most [`MAX_FILE`] bytes).
    pub data: &'a [u8],
}

impl Found<'_> {
    /// `/etc/os-release -> /usr/lib/os-release`.
    pub fn path(&self) -> String {
        self.chain.join(" -> ")
    }
}

/// An image's layers (base first) as one filesystem, for the recorded paths.
pub struct RootFs<'a> {
    layers: Vec<(&'a Digest, &'a LayerScan)>,
}

impl<'a> RootFs<'a> {
    /// The filesystem of `layers`, base first.
    pub fn new(layers: Vec<(&'a Digest, &'a LayerScan)>) -> RootFs<'a> {
        RootFs { layers }
    }

    /// What is at `path` (normalised), and in which layer: the topmost layer that has it, unless a
    /// layer above deletes it or an ancestor directory.
    pub fn lookup(&self, path: &str) -> Option<(&'a Digest, &'a Node)> {
        for (digest, layer) in self.layers.iter().rev() {
            if let Some(node) = layer.entries.get(path) {
                return Some((digest, node));
            }
            if hides(layer, path) {
                return None;
            }
        }
        None
    }

    /// The regular file at `path` (absolute or relative), following symbolic and hard links.
    /// `None` when there is no file there, the links dangle or loop.
    pub fn file(&self, path: &str) -> Option<Found<'a>> {
        let mut current = normalise(path);
        let mut chain = vec![format!("/{current}")];
        for _ in 0..=MAX_LINKS {
            let (layer, node) = self.lookup(&current)?;
            let next = match node {
                Node::File(data) => return Some(Found { chain, layer, data }),
                Node::Other => return None,
                Node::Hardlink(target) => target.clone(),
                Node::Symlink(target) if target.starts_with('/') => normalise(target),
                Node::Symlink(target) => {
                    let dir = current.rsplit_once('/').map_or("", |(d, _)| d);
                    normalise(&format!("{dir}/{target}"))
                }
            };
            chain.push(format!("/{next}"));
            current = next;
        }
        None
    }

    /// The recorded paths under `dir` (at any depth) that exist in the merged filesystem.
    pub fn list(&self, dir: &str) -> Vec<String> {
        let prefix = format!("{dir}/");
        let candidates: BTreeSet<&String> = self
            .layers
            .iter()
            .flat_map(|(_, l)| l.entries.keys())
            .filter(|p| p.starts_with(&prefix))
            .collect();
        candidates
            .into_iter()
            .filter(|p| self.lookup(p).is_some())
            .cloned()
            .collect()
    }
}

/// Whether `layer` hides the lower layers' `path`: a whiteout of the path or of an ancestor, or an
/// opaque marker in an ancestor directory.
fn hides(layer: &LayerScan, path: &str) -> bool {
    if layer.whiteouts.contains(path) || layer.opaque.contains("") {
        return true;
    }
    path.match_indices('/').any(|(i, _)| {
        let ancestor = &path[..i];
        layer.whiteouts.contains(ancestor) || layer.opaque.contains(ancestor)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar of `(path, contents, symlink target)`; paths are written verbatim (`./`, `/` prefixes
    /// kept), and a path ending in `/` is a directory.
    fn tar(entries: &[(&str, &str, Option<&str>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data, link) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_size(0);
            match link {
                Some(target) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_link_name(target).unwrap();
                }
                None if path.ends_with('/') => h.set_entry_type(tar::EntryType::Directory),
                None => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(data.len() as u64);
                }
            }
            let name = &mut h.as_old_mut().name;
            name.fill(0);
            name[..path.len()].copy_from_slice(path.as_bytes());
            h.set_cksum();
            b.append(&h, data.as_bytes()).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn scan(entries: &[(&str, &str, Option<&str>)]) -> LayerScan {
        scan_layer(&tar(entries)[..]).unwrap()
    }

    #[test]
    fn records_only_what_the_policy_reads_and_all_whiteouts() {
        let s = scan(&[
            ("./etc/", "", None),
            ("./etc/os-release", "ID=fedora\n", None),
            ("usr/bin/sh", "binary", None),
            ("/etc/yum.repos.d/fedora.repo", "[fedora]\n", None),
            ("etc/yum.repos.d/README", "not a repo", None),
            ("etc/pki/entitlement/1.pem", "cert", None),
            (
                "usr/lib/os.release.d/os-release-container",
                "ID=fedora\n",
                None,
            ),
            (
                "usr/lib/os-release",
                "",
                Some("os.release.d/os-release-container"),
            ),
            ("var/cache/.wh.dnf", "", None),
            ("etc/yum.repos.d/.wh..wh..opq", "", None),
            (".wh.opt", "", None),
        ]);
        assert_eq!(
            s.entries.keys().collect::<Vec<_>>(),
            [
                "etc/os-release",
                "etc/pki/entitlement/1.pem",
                "etc/yum.repos.d/fedora.repo",
                "usr/lib/os-release",
                "usr/lib/os.release.d/os-release-container",
            ]
        );
        assert_eq!(
            s.whiteouts.iter().collect::<Vec<_>>(),
            ["opt", "var/cache/dnf"]
        );
        assert_eq!(s.opaque.iter().collect::<Vec<_>>(), ["etc/yum.repos.d"]);
    }

    #[test]
    fn reads_gzip_layers_and_refuses_zstd() {
        let plain = tar(&[("etc/os-release", "ID=centos\n", None)]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &plain).unwrap();
        let s = scan_layer(&gz.finish().unwrap()[..]).unwrap();
        assert_eq!(
            s.entries["etc/os-release"],
            Node::File(b"ID=centos\n".to_vec())
        );
        let e = scan_layer(&[0x28, 0xb5, 0x2f, 0xfd, 0, 0][..]).unwrap_err();
        assert!(e.to_string().contains("zstd"), "{e}");
    }

    #[test]
    fn the_top_layer_wins_and_whiteouts_and_opaque_directories_hide_lower_files() {
        let (a, b, c) = (
            Digest::sha256_of(b"a"),
            Digest::sha256_of(b"b"),
            Digest::sha256_of(b"c"),
        );
        let base = scan(&[
            ("usr/lib/os-release", "ID=rhel\n", None),
            ("etc/os-release", "", Some("../usr/lib/os-release")),
            ("etc/yum.repos.d/redhat.repo", "x", None),
            ("etc/yum.repos.d/ubi.repo", "y", None),
        ]);
        let middle = scan(&[
            ("usr/lib/os-release", "ID=centos\n", None),
            ("etc/yum.repos.d/.wh..wh..opq", "", None),
            ("etc/yum.repos.d/centos.repo", "z", None),
        ]);
        let top = scan(&[("etc/.wh.os-release", "", None)]);

        let fs = RootFs::new(vec![(&a, &base), (&b, &middle)]);
        let found = fs.file("/etc/os-release").unwrap();
        assert_eq!(found.path(), "/etc/os-release -> /usr/lib/os-release");
        assert_eq!((found.layer, found.data), (&b, &b"ID=centos\n"[..]));
        assert_eq!(fs.list("etc/yum.repos.d"), ["etc/yum.repos.d/centos.repo"]);

        let fs = RootFs::new(vec![(&a, &base), (&b, &middle), (&c, &top)]);
        assert_eq!(fs.file("etc/os-release"), None);
        assert_eq!(fs.file("usr/lib/os-release").unwrap().layer, &b);
    }

    #[test]
    fn dangling_and_looping_links_are_no_file() {
        let d = Digest::sha256_of(b"d");
        let l = scan(&[
            ("etc/os-release", "", Some("/usr/lib/os-release")),
            ("usr/lib/os-release", "", Some("../../etc/os-release")),
            ("etc/yum.repos.d/x.repo", "", Some("/nowhere")),
        ]);
        let fs = RootFs::new(vec![(&d, &l)]);
        assert_eq!(fs.file("etc/os-release"), None);
        assert_eq!(fs.file("etc/yum.repos.d/x.repo"), None);
    }
}
