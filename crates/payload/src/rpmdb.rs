//! The packages of an OS image: its rpm database (`rpmdb.sqlite`, the format rpm 4.16 and later
//! write, which Fedora CoreOS since 33 and CentOS Stream CoreOS carry), read without rpm, and the
//! difference between two package lists (`release diff`'s OS section, as `oc adm release info
//! --rpmdb-diff` shows it).
//!
//! - [`RPMDB_PATHS`]: where an image keeps the database, in the order they are tried.
//! - [`read_sqlite`]: every package of a database file, as [`Package`]s sorted by name and arch.
//! - [`diff`]: added, removed and changed packages between two lists.
//!
//! Each row of the `Packages` table is an rpm header blob: a big-endian count of index entries
//! and the length of the data, the entries (tag, type, offset, count; 16 bytes each), then the
//! data. Only NAME (1000), VERSION (1001), RELEASE (1002), EPOCH (1003) and ARCH (1022) are read.
//! The Berkeley DB (`Packages`) and NDB (`Packages.db`) backends of older images are not read.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::error::{invalid, io};
use crate::source::{blocking, Sources};

/// Where an image's rpm database is, first found wins: the rpm 4.19 location (Fedora 42+), the
/// ostree location (`/usr/share/rpm`, where rpm-ostree moves it), then the classic one.
pub const RPMDB_PATHS: [&str; 3] = [
    "usr/lib/sysimage/rpm/rpmdb.sqlite",
    "usr/share/rpm/rpmdb.sqlite",
    "var/lib/rpm/rpmdb.sqlite",
];

const TAG_NAME: u32 = 1000;
const TAG_VERSION: u32 = 1001;
const TAG_RELEASE: u32 = 1002;
const TAG_EPOCH: u32 = 1003;
const TAG_ARCH: u32 = 1022;
const TYPE_INT32: u32 = 4;
const TYPE_STRING: u32 = 6;
const TYPE_I18NSTRING: u32 = 9;
/// Bounds from rpm's own header checks: no real header comes near them.
const MAX_ENTRIES: usize = 0x0000_ffff;
const MAX_DATA: usize = 0x0fff_ffff;

/// One installed package.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Package {
    /// `kernel`.
    pub name: String,
    /// `x86_64`, `noarch`; empty for `gpg-pubkey` entries, which have none.
    pub arch: String,
    /// The epoch, when the package has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u32>,
    /// `6.5.6`.
    pub version: String,
    /// `300.fc39`.
    pub release: String,
}

impl Package {
    /// `[EPOCH:]VERSION-RELEASE`, as `rpm -q --qf '%{EVR}'` prints it.
    pub fn evr(&self) -> String {
        match self.epoch {
            Some(e) => format!("{e}:{}-{}", self.version, self.release),
            None => format!("{}-{}", self.version, self.release),
        }
    }
}

impl std::fmt::Display for Package {
    /// `NAME-VERSION-RELEASE.ARCH`, as `rpm -qa` prints it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}-{}", self.name, self.version, self.release)?;
        if !self.arch.is_empty() {
            write!(f, ".{}", self.arch)?;
        }
        Ok(())
    }
}

/// Parses one header blob of the `Packages` table. `what` names it in errors.
pub fn parse_header(blob: &[u8], what: &str) -> Result<Package, String> {
    let bad = |why: &str| format!("{what}: not an rpm header: {why}");
    let word = |at: usize| -> Option<u32> {
        blob.get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let entries = word(0).ok_or_else(|| bad("shorter than 8 bytes"))? as usize;
    let data_len = word(4).ok_or_else(|| bad("shorter than 8 bytes"))? as usize;
    if entries == 0 || entries > MAX_ENTRIES || data_len > MAX_DATA {
        return Err(bad(&format!(
            "{entries} entries and {data_len} bytes of data are out of bounds"
        )));
    }
    let data_at = 8 + entries * 16;
    if blob.len() < data_at + data_len {
        return Err(bad(&format!(
            "{} bytes, but its {entries} entries and {data_len} bytes of data need {}",
            blob.len(),
            data_at + data_len
        )));
    }
    let data = &blob[data_at..data_at + data_len];
    let mut strings: BTreeMap<u32, String> = BTreeMap::new();
    let mut epoch = None;
    for i in 0..entries {
        let at = 8 + i * 16;
        let (tag, kind, offset, count) = (
            word(at).unwrap_or(0),
            word(at + 4).unwrap_or(0),
            word(at + 8).unwrap_or(0) as usize,
            word(at + 12).unwrap_or(0),
        );
        if !matches!(
            tag,
            TAG_NAME | TAG_VERSION | TAG_RELEASE | TAG_EPOCH | TAG_ARCH
        ) {
            continue;
        }
        if offset >= data.len() {
            return Err(bad(&format!("tag {tag} points at {offset}, past its data")));
        }
        match kind {
            TYPE_STRING | TYPE_I18NSTRING if tag != TAG_EPOCH => {
                let rest = &data[offset..];
                let end = rest
                    .iter()
                    .position(|&b| b == 0)
                    .ok_or_else(|| bad(&format!("tag {tag}: a string without its end")))?;
                let text = String::from_utf8_lossy(&rest[..end]).into_owned();
                strings.insert(tag, text);
            }
            TYPE_INT32 if tag == TAG_EPOCH && count >= 1 => {
                let b = data
                    .get(offset..offset + 4)
                    .ok_or_else(|| bad("the epoch is cut short"))?;
                epoch = Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            }
            _ => return Err(bad(&format!("tag {tag} has the unexpected type {kind}"))),
        }
    }
    let mut take = |tag: u32, name: &str| {
        strings
            .remove(&tag)
            .ok_or_else(|| bad(&format!("no {name}")))
    };
    Ok(Package {
        name: take(TAG_NAME, "NAME")?,
        version: take(TAG_VERSION, "VERSION")?,
        release: take(TAG_RELEASE, "RELEASE")?,
        arch: strings.remove(&TAG_ARCH).unwrap_or_default(),
        epoch,
    })
}

/// Every package of the rpm database file `path` (`rpmdb.sqlite`), sorted by name, then arch,
/// then version. `what` names it in errors. The file is opened read-only.
pub fn read_sqlite(path: &Path, what: &str) -> Result<Vec<Package>, String> {
    let flags =
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let db = rusqlite::Connection::open_with_flags(path, flags)
        .map_err(|e| format!("{what}: cannot open the rpm database: {e}"))?;
    let mut rows = db
        .prepare("SELECT hnum, blob FROM Packages")
        .map_err(|e| format!("{what}: not an rpm database (no Packages table?): {e}"))?;
    let mut out = Vec::new();
    let mut q = rows
        .query([])
        .map_err(|e| format!("{what}: reading the rpm database: {e}"))?;
    while let Some(row) = q
        .next()
        .map_err(|e| format!("{what}: reading the rpm database: {e}"))?
    {
        let hnum: i64 = row.get(0).map_err(|e| format!("{what}: {e}"))?;
        let blob: Vec<u8> = row.get(1).map_err(|e| format!("{what}: {e}"))?;
        out.push(parse_header(&blob, &format!("{what}: package {hnum}"))?);
    }
    out.sort();
    Ok(out)
}

/// The packages of the image `spec` (a pull spec or `oci:`/`docker://` reference; for a list, the
/// child for `arch`), from its rpm database, the first of [`RPMDB_PATHS`] it has; `None` when it
/// has none.
pub async fn packages_of(
    sources: &Sources,
    what: &str,
    spec: &str,
    arch: Option<&str>,
) -> crate::Result<Option<Vec<Package>>> {
    let mut files = sources.files_of(what, spec, arch, &RPMDB_PATHS).await?;
    // The first location that holds a regular file (another may be a link to it).
    let Some(db) = RPMDB_PATHS
        .iter()
        .find_map(|p| files.remove(*p).and_then(Result::ok))
    else {
        return Ok(None);
    };
    let what = what.to_string();
    blocking(move || {
        let mut tmp = tempfile::NamedTempFile::new().map_err(io(std::env::temp_dir()))?;
        std::io::Write::write_all(&mut tmp, &db.data).map_err(io(tmp.path()))?;
        read_sqlite(tmp.path(), &what).map(Some).map_err(invalid)
    })
    .await
}

/// A package in both lists whose version changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Changed {
    /// The package name.
    pub name: String,
    /// Its arch.
    pub arch: String,
    /// `[EPOCH:]VERSION-RELEASE` in the older list.
    pub from: String,
    /// `[EPOCH:]VERSION-RELEASE` in the newer list.
    pub to: String,
}

/// What changed between two package lists.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PackageDiff {
    /// In the newer list only.
    pub added: Vec<Package>,
    /// In the older list only.
    pub removed: Vec<Package>,
    /// In both, with another version.
    pub changed: Vec<Changed>,
}

impl PackageDiff {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// The difference from `old` to `new`, keyed by (name, arch). A name and arch installed in
/// several versions (as `kernel` can be) compares its sorted list of versions as one.
pub fn diff(old: &[Package], new: &[Package]) -> PackageDiff {
    fn group(list: &[Package]) -> BTreeMap<(String, String), Vec<&Package>> {
        let mut m: BTreeMap<(String, String), Vec<&Package>> = BTreeMap::new();
        for p in list {
            m.entry((p.name.clone(), p.arch.clone()))
                .or_default()
                .push(p);
        }
        m
    }
    let (old, new) = (group(old), group(new));
    let evrs = |ps: &[&Package]| ps.iter().map(|p| p.evr()).collect::<Vec<_>>().join(", ");
    let mut d = PackageDiff::default();
    for (key, ps) in &new {
        match old.get(key) {
            None => d.added.extend(ps.iter().map(|p| (*p).clone())),
            Some(before) if evrs(before) != evrs(ps) => d.changed.push(Changed {
                name: key.0.clone(),
                arch: key.1.clone(),
                from: evrs(before),
                to: evrs(ps),
            }),
            Some(_) => {}
        }
    }
    for (key, ps) in &old {
        if !new.contains_key(key) {
            d.removed.extend(ps.iter().map(|p| (*p).clone()));
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header blob of `entries` (tag, type, data) laid out as rpm writes them.
    fn header(entries: &[(u32, u32, Vec<u8>)]) -> Vec<u8> {
        let mut index = Vec::new();
        let mut data = Vec::new();
        for (tag, kind, bytes) in entries {
            if *kind == TYPE_INT32 {
                while data.len() % 4 != 0 {
                    data.push(0);
                }
            }
            index.extend(tag.to_be_bytes());
            index.extend(kind.to_be_bytes());
            index.extend((data.len() as u32).to_be_bytes());
            index.extend(1u32.to_be_bytes());
            data.extend(bytes);
        }
        let mut blob = (entries.len() as u32).to_be_bytes().to_vec();
        blob.extend((data.len() as u32).to_be_bytes());
        blob.extend(index);
        blob.extend(data);
        blob
    }

    fn s(text: &str) -> Vec<u8> {
        let mut v = text.as_bytes().to_vec();
        v.push(0);
        v
    }

    fn pkg(name: &str, arch: &str, epoch: Option<u32>, version: &str, release: &str) -> Package {
        Package {
            name: name.into(),
            arch: arch.into(),
            epoch,
            version: version.into(),
            release: release.into(),
        }
    }

    #[test]
    fn a_header_gives_its_name_epoch_version_release_and_arch() {
        let blob = header(&[
            (TAG_NAME, TYPE_STRING, s("NetworkManager")),
            (TAG_VERSION, TYPE_STRING, s("1.44.2")),
            (TAG_RELEASE, TYPE_STRING, s("1.fc39")),
            (TAG_EPOCH, TYPE_INT32, 1u32.to_be_bytes().to_vec()),
            (TAG_ARCH, TYPE_STRING, s("x86_64")),
            (1004, TYPE_I18NSTRING, s("summary, not read")),
        ]);
        let p = parse_header(&blob, "test").unwrap();
        assert_eq!(
            p,
            pkg("NetworkManager", "x86_64", Some(1), "1.44.2", "1.fc39")
        );
        assert_eq!(p.to_string(), "NetworkManager-1.44.2-1.fc39.x86_64");
        assert_eq!(p.evr(), "1:1.44.2-1.fc39");
    }

    #[test]
    fn a_broken_header_is_an_error_that_names_it() {
        let good = header(&[
            (TAG_NAME, TYPE_STRING, s("kernel")),
            (TAG_VERSION, TYPE_STRING, s("6.5.6")),
            (TAG_RELEASE, TYPE_STRING, s("300.fc39")),
        ]);
        let cut = &good[..good.len() - 3];
        let e = parse_header(cut, "rpmdb.sqlite: package 7").unwrap_err();
        assert!(
            e.starts_with("rpmdb.sqlite: package 7: not an rpm header"),
            "{e}"
        );
        assert!(parse_header(&[0, 0], "x")
            .unwrap_err()
            .contains("shorter than 8"));
        let no_release = header(&[
            (TAG_NAME, TYPE_STRING, s("kernel")),
            (TAG_VERSION, TYPE_STRING, s("6.5.6")),
        ]);
        assert!(parse_header(&no_release, "x")
            .unwrap_err()
            .contains("no RELEASE"));
        let unterminated = header(&[(TAG_NAME, TYPE_STRING, b"kernel".to_vec())]);
        assert!(parse_header(&unterminated, "x")
            .unwrap_err()
            .contains("without its end"));
    }

    #[test]
    fn a_diff_lists_added_removed_and_changed_packages() {
        let old = vec![
            pkg("kernel", "x86_64", None, "6.5.6", "300.fc39"),
            pkg("NetworkManager", "x86_64", Some(1), "1.44.2", "1.fc39"),
            pkg("zincati", "x86_64", None, "0.0.27", "1.fc39"),
            pkg("bash", "x86_64", None, "5.2.21", "1.fc39"),
        ];
        let new = vec![
            pkg("kernel", "x86_64", None, "6.6.1", "200.fc39"),
            pkg("NetworkManager", "x86_64", Some(1), "1.44.2", "1.fc39"),
            pkg("cri-o", "x86_64", None, "1.28.1", "1.fc39"),
            pkg("bash", "x86_64", None, "5.2.21", "1.fc39"),
        ];
        let d = diff(&old, &new);
        assert_eq!(d.added, [pkg("cri-o", "x86_64", None, "1.28.1", "1.fc39")]);
        assert_eq!(
            d.removed,
            [pkg("zincati", "x86_64", None, "0.0.27", "1.fc39")]
        );
        assert_eq!(
            d.changed,
            [Changed {
                name: "kernel".into(),
                arch: "x86_64".into(),
                from: "6.5.6-300.fc39".into(),
                to: "6.6.1-200.fc39".into(),
            }]
        );
        assert!(diff(&new, &new).is_empty());
    }

    #[test]
    fn a_package_installed_twice_compares_as_its_list_of_versions() {
        let one = vec![pkg("kernel", "x86_64", None, "6.5.6", "300.fc39")];
        let two = vec![
            pkg("kernel", "x86_64", None, "6.5.6", "300.fc39"),
            pkg("kernel", "x86_64", None, "6.6.1", "200.fc39"),
        ];
        let d = diff(&one, &two);
        assert_eq!(d.changed[0].to, "6.5.6-300.fc39, 6.6.1-200.fc39");
        assert!(d.added.is_empty() && d.removed.is_empty());
    }
}
