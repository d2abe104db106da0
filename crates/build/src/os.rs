//! OS content: follow Fedora CoreOS (FCOS) and CentOS Stream CoreOS (SCOS) streams.
//!
//! - [`parse_stream`] reads CoreOS stream metadata (the FCOS `stable|testing|next` JSON, or the SCOS
//!   `c9s|c10s` JSON of the same schema) into an [`OsStream`]: the stream, its last-modified time and
//!   the release version of each architecture.
//! - [`parse_index`] reads a release index (`releases.json`) into a [`ReleaseIndex`], which maps a
//!   version to the container image digest of each architecture.
//! - [`fetch`] (and [`fetch_stream`], [`fetch_index`]) get them from an `http://`, `https://` or
//!   `file://` URL, or a path.
//! - [`poll`] is the poller's decision, without I/O: is a fetched stream a new OS release compared with
//!   the recorded [`OsState`]?
//! - [`OsVersion::machine_os`] and [`labels`] give the `machine-os` version and labels of the OS image,
//!   as okd-machine-os did: the 4-part FCOS version becomes a 3-part semver.
//!
//! ```
//! use build::os::{labels, OsVersion};
//!
//! let v: OsVersion = "39.20231101.3.0".parse().unwrap();
//! assert_eq!(v.machine_os().to_string(), "39.20231101.3");
//! assert_eq!(
//!     labels(&v),
//!     [
//!         ("io.openshift.build.versions", "machine-os=39.20231101.3".to_string()),
//!         ("io.openshift.build.version-display-names", "machine-os=Fedora CoreOS".to_string()),
//!     ]
//! );
//! // A respin is kept as build metadata, and orders after the version without respin.
//! let respin: OsVersion = "39.20231101.3.1".parse().unwrap();
//! assert_eq!(respin.machine_os().to_string(), "39.20231101.3+1");
//! assert!(respin.machine_os() > v.machine_os());
//! // SCOS versions are already semver.
//! let scos: OsVersion = "10.0.20250628-0".parse().unwrap();
//! assert_eq!(scos.machine_os().to_string(), "10.0.20250628-0");
//! ```
//!
//! # Rules
//!
//! - **Which version an architecture is at.** Every platform of an architecture
//!   (`architectures.<arch>.artifacts.<platform>.release`) normally carries the same version. When they
//!   disagree, the architecture is at the version the most platforms carry (on a tie, the newest), and
//!   each platform that differs is reported in [`OsStream::warnings`]. The `release` fields under
//!   `images` (cloud images, the kubevirt container) are checked against it and reported the same way,
//!   but never decide. The stream's [`OsStream::version`] follows the same rule over the architectures.
//! - **Poll.** See [`poll`]: a release is new when an architecture's version went up (or appeared) and
//!   nothing went backwards; a last-modified time or a version that went backwards is rejected with the
//!   reason, and the recorded state should be kept.
//! - **machine-os version.** See [`OsVersion::machine_os`].

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The label that carries component versions (`machine-os=<semver>`).
pub const VERSIONS_LABEL: &str = "io.openshift.build.versions";
/// The label that carries component display names (`machine-os=Fedora CoreOS`).
pub const DISPLAY_NAMES_LABEL: &str = "io.openshift.build.version-display-names";

/// The most bytes [`fetch`] reads: stream metadata is about 100 KiB, a release index a few MiB.
pub const MAX_FETCH_BYTES: usize = 64 << 20;

const VERSION_FORMS: &str = "expected <major>.<YYYYMMDD>.<stream>.<respin> (Fedora CoreOS, e.g. \
     39.20231101.3.0) or <major>.<minor>.<YYYYMMDD>-<build> (CentOS Stream CoreOS, e.g. 10.0.20250628-0)";
const STREAM_HINT: &str = "check that it is CoreOS stream metadata, as served at \
     https://builds.coreos.fedoraproject.org/streams/stable.json (the recorded OS state is kept)";
const INDEX_HINT: &str = "check that it is a CoreOS release index, as served at \
     https://builds.coreos.fedoraproject.org/prod/streams/stable/releases.json (the recorded OS state is kept)";

/// What went wrong reading, fetching or parsing OS metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OsError {
    /// The document is not valid JSON, lacks a field, or has a field of the wrong form. Shown as
    /// `ORIGIN[:LINE:COLUMN]: FIELD: MESSAGE; HINT`.
    Invalid {
        /// The URL or path the document came from.
        origin: String,
        /// The field at fault as a JSON path (`architectures.x86_64.artifacts.aws.release`,
        /// `releases[3].oci-images[0].digest-ref`); empty for the whole document.
        field: String,
        /// 1-based line, 0 if unknown.
        line: usize,
        /// 1-based column, 0 if unknown.
        column: usize,
        /// What is wrong.
        message: String,
        /// What to do.
        hint: &'static str,
    },
    /// A string that is not a CoreOS version.
    Version {
        /// The string.
        input: String,
        /// Why.
        reason: String,
    },
    /// The document could not be fetched.
    Fetch {
        /// The URL or path.
        url: String,
        /// The HTTP status, when the server answered with an error.
        status: Option<u16>,
        /// What failed and what to do.
        message: String,
    },
}

impl fmt::Display for OsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OsError::Invalid {
                origin,
                field,
                line,
                column,
                message,
                hint,
            } => {
                write!(f, "{origin}")?;
                if *line > 0 {
                    write!(f, ":{line}:{column}")?;
                }
                if !field.is_empty() {
                    write!(f, ": {field}")?;
                }
                write!(f, ": {message}; {hint}")
            }
            OsError::Version { input, reason } => {
                write!(
                    f,
                    "'{input}' is not a CoreOS version: {reason}; {VERSION_FORMS}"
                )
            }
            OsError::Fetch { url, message, .. } => write!(f, "{url}: {message}"),
        }
    }
}

impl std::error::Error for OsError {}

/// Which CoreOS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Os {
    /// Fedora CoreOS: versions `<major>.<YYYYMMDD>.<stream>.<respin>`.
    Fcos,
    /// CentOS Stream CoreOS: versions `<major>.<minor>.<YYYYMMDD>-<build>`.
    Scos,
}

impl Os {
    /// The display name, as in `io.openshift.build.version-display-names`.
    pub fn display_name(self) -> &'static str {
        match self {
            Os::Fcos => "Fedora CoreOS",
            Os::Scos => "CentOS Stream CoreOS",
        }
    }
}

/// A CoreOS release version, always well formed.
///
/// - Fedora CoreOS: `<fedora major>.<YYYYMMDD snapshot>.<stream id>.<respin>`, e.g. `39.20231101.3.0`;
///   the stream ids are 3 = stable, 2 = testing, 1 = next, 91 = rawhide/branched development builds.
/// - CentOS Stream CoreOS: `<major>.<minor>.<YYYYMMDD>-<build>`, e.g. `10.0.20250628-0`.
///
/// The date must be a real calendar date and numbers have no leading zeros, so the text round-trips
/// through [`Display`](fmt::Display). Versions of the same OS compare part by part; versions of
/// different OSes do not compare (`partial_cmp` is `None`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OsVersion {
    os: Os,
    /// FCOS: major, date, stream id, respin. SCOS: major, minor, date, build.
    parts: [u64; 4],
}

impl OsVersion {
    /// Which OS the version is of.
    pub fn os(&self) -> Os {
        self.os
    }

    /// The machine-os version: a valid semver, as okd-machine-os labelled its image.
    ///
    /// - FCOS `M.D.S.R` becomes `M.D.S`: the respin (the last dotted component) is dropped as
    ///   okd-machine-os did, when it is 0. A non-zero respin is kept as build metadata, `M.D.S+R`
    ///   (`39.20231101.3.1` → `39.20231101.3+1`), so no information is lost. Under the `semver` crate's
    ///   total order (which compares build metadata numerically) it orders after `M.D.S` and before
    ///   `M.D.S+(R+1)`; strict SemVer precedence ignores build metadata and sees them equal, so order
    ///   OS versions with [`OsVersion`]'s own comparison where it matters. Development stream ids (91)
    ///   stay the patch number: `37.20220810.91.0` → `37.20220810.91`.
    /// - SCOS `X.Y.D-N` is already valid semver (`N` is a numeric pre-release) and is kept as it is:
    ///   `10.0.20250628-0` (all SCOS versions carry a build number, so they order among themselves).
    pub fn machine_os(&self) -> semver::Version {
        let [a, b, c, d] = self.parts;
        let mut v = semver::Version::new(a, b, c);
        match self.os {
            Os::Fcos if d > 0 => {
                v.build = semver::BuildMetadata::new(&d.to_string())
                    .expect("a decimal number is valid build metadata");
            }
            Os::Fcos => {}
            Os::Scos => {
                v.pre = semver::Prerelease::new(&d.to_string())
                    .expect("a decimal number is a valid pre-release");
            }
        }
        v
    }
}

impl PartialOrd for OsVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        (self.os == other.os).then(|| self.parts.cmp(&other.parts))
    }
}

impl fmt::Display for OsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = self.parts;
        match self.os {
            Os::Fcos => write!(f, "{a}.{b}.{c}.{d}"),
            Os::Scos => write!(f, "{a}.{b}.{c}-{d}"),
        }
    }
}

impl FromStr for OsVersion {
    type Err = OsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: String| OsError::Version {
            input: s.to_string(),
            reason,
        };
        let (dotted, build) = match s.split_once('-') {
            Some((dotted, build)) => (dotted, Some(build)),
            None => (s, None),
        };
        let fields: Vec<&str> = dotted.split('.').collect();
        let mut parts = [0u64; 4];
        let os = match (fields.len(), build) {
            (4, None) => Os::Fcos,
            (3, Some(_)) => Os::Scos,
            (n, None) => {
                return Err(bad(format!(
                    "{n} dotted part{} and no -<build>",
                    if n == 1 { "" } else { "s" }
                )))
            }
            (n, Some(_)) => return Err(bad(format!("{n} dotted parts before the -<build>"))),
        };
        for (i, field) in fields.iter().chain(build.as_slice()).enumerate() {
            parts[i] =
                number(field).map_err(|why| bad(format!("part {} ('{field}') {why}", i + 1)))?;
        }
        let date_at = match os {
            Os::Fcos => 1,
            Os::Scos => 2,
        };
        check_date(fields[date_at]).map_err(bad)?;
        Ok(OsVersion { os, parts })
    }
}

/// A decimal number without sign or leading zeros.
fn number(s: &str) -> Result<u64, &'static str> {
    if s.is_empty() {
        return Err("is empty");
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err("is not a number");
    }
    if s.len() > 1 && s.starts_with('0') {
        return Err("has a leading zero");
    }
    s.parse().map_err(|_| "is too large")
}

/// `YYYYMMDD`, a real date.
fn check_date(s: &str) -> Result<(), String> {
    let bad = || format!("'{s}' is not a date YYYYMMDD");
    if s.len() != 8 {
        return Err(bad());
    }
    let (y, m, d) = (&s[..4], &s[4..6], &s[6..]);
    let (Ok(y), Ok(m), Ok(d)) = (y.parse::<i32>(), m.parse::<u8>(), d.parse::<u8>()) else {
        return Err(bad());
    };
    let month = time::Month::try_from(m).map_err(|_| bad())?;
    time::Date::from_calendar_date(y, month, d).map_err(|_| bad())?;
    Ok(())
}

impl Serialize for OsVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for OsVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

/// Parses `version` and gives its machine-os semver ([`OsVersion::machine_os`]).
pub fn machine_os_version(version: &str) -> Result<semver::Version, OsError> {
    Ok(version.parse::<OsVersion>()?.machine_os())
}

/// The labels of an OS image carrying `version`: [`VERSIONS_LABEL`] = `machine-os=<semver>` and
/// [`DISPLAY_NAMES_LABEL`] = `machine-os=Fedora CoreOS` or `machine-os=CentOS Stream CoreOS`.
pub fn labels(version: &OsVersion) -> [(&'static str, String); 2] {
    [
        (
            VERSIONS_LABEL,
            format!("machine-os={}", version.machine_os()),
        ),
        (
            DISPLAY_NAMES_LABEL,
            format!("machine-os={}", version.os().display_name()),
        ),
    ]
}

/// A container image by digest, `REPOSITORY@sha256:HEX` (the release index's `digest-ref`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DigestRef {
    /// The repository, `quay.io/fedora/fedora-coreos`.
    pub repository: String,
    /// The manifest digest.
    pub digest: oci::Digest,
}

impl fmt::Display for DigestRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.repository, self.digest)
    }
}

impl FromStr for DigestRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad =
            |why: String| format!("'{s}' is not an image by digest REPOSITORY@sha256:HEX: {why}");
        let (repository, digest) = s.rsplit_once('@').ok_or_else(|| bad("no @".to_string()))?;
        if repository.is_empty() || repository.contains(char::is_whitespace) {
            return Err(bad("bad repository".to_string()));
        }
        let digest = digest.parse().map_err(|e: oci::Error| bad(e.to_string()))?;
        Ok(DigestRef {
            repository: repository.to_string(),
            digest,
        })
    }
}

impl<'de> Deserialize<'de> for DigestRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

/// CoreOS stream metadata, as far as a poller needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsStream {
    /// The stream name: `stable`, `testing`, `next` (FCOS), `c9s`, `c10s` (SCOS).
    pub stream: String,
    /// `metadata.last-modified`.
    pub last_modified: OffsetDateTime,
    /// The release of the stream: the version the most architectures are at (on a tie, the newest).
    pub version: OsVersion,
    /// The version of each architecture (`x86_64`, `aarch64`, …); see the module's rules.
    pub architectures: BTreeMap<String, OsVersion>,
    /// Disagreements found: a platform, image or architecture whose release differs.
    pub warnings: Vec<String>,
}

#[derive(Deserialize)]
struct RawStream {
    stream: String,
    metadata: RawMetadata,
    architectures: BTreeMap<String, RawArch>,
}

#[derive(Deserialize)]
struct RawMetadata {
    #[serde(rename = "last-modified", deserialize_with = "rfc3339")]
    last_modified: OffsetDateTime,
}

#[derive(Deserialize)]
struct RawArch {
    artifacts: BTreeMap<String, RawPlatform>,
    #[serde(default)]
    images: BTreeMap<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct RawPlatform {
    release: OsVersion,
}

fn rfc3339<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
    let s = String::deserialize(d)?;
    OffsetDateTime::parse(&s, &Rfc3339).map_err(|e| {
        de::Error::custom(format!(
            "'{s}' is not an RFC 3339 time such as 2020-12-17T14:18:43Z ({e})"
        ))
    })
}

/// The version most of `candidates` carry; on a tie, the newest.
fn most_common<'a>(candidates: impl IntoIterator<Item = &'a OsVersion>) -> Option<OsVersion> {
    let mut counts: Vec<(&OsVersion, usize)> = Vec::new();
    for v in candidates {
        match counts.iter_mut().find(|(seen, _)| *seen == v) {
            Some((_, n)) => *n += 1,
            None => counts.push((v, 1)),
        }
    }
    counts
        .into_iter()
        .max_by(|a, b| {
            a.1.cmp(&b.1)
                .then_with(|| a.0.partial_cmp(b.0).unwrap_or(Ordering::Equal))
        })
        .map(|(v, _)| v.clone())
}

/// Every `release` string under `value`, with its path below `at`.
fn image_releases(at: String, value: &serde_json::Value, out: &mut Vec<(String, String)>) {
    if let serde_json::Value::Object(map) = value {
        for (k, v) in map {
            let path = format!("{at}.{k}");
            match v {
                serde_json::Value::String(s) if k == "release" => out.push((path, s.clone())),
                serde_json::Value::Object(_) => image_releases(path, v, out),
                _ => {}
            }
        }
    }
}

/// Parses CoreOS stream metadata; `origin` (the URL or path) names it in errors.
///
/// Errors name the field at fault and, for JSON errors, the line and column; a missing
/// `architectures` or `metadata.last-modified`, an empty `architectures` or `artifacts`, a bad time and
/// a release that is not an [`OsVersion`] are all errors.
pub fn parse_stream(bytes: &[u8], origin: &str) -> Result<OsStream, OsError> {
    let raw: RawStream = parse_json(bytes, origin, STREAM_HINT)?;
    let invalid = |field: String, message: String| OsError::Invalid {
        origin: origin.to_string(),
        field,
        line: 0,
        column: 0,
        message,
        hint: STREAM_HINT,
    };
    if raw.architectures.is_empty() {
        return Err(invalid(
            "architectures".to_string(),
            "no architecture".to_string(),
        ));
    }
    let mut warnings = Vec::new();
    let mut architectures = BTreeMap::new();
    for (arch, a) in &raw.architectures {
        let at = format!("architectures.{arch}");
        let Some(version) = most_common(a.artifacts.values().map(|p| &p.release)) else {
            return Err(invalid(
                format!("{at}.artifacts"),
                "no platform, so no release version".to_string(),
            ));
        };
        for (platform, p) in &a.artifacts {
            if p.release != version {
                warnings.push(format!(
                    "{at}.artifacts.{platform}.release is {}, not {version} as the most platforms: \
                     {arch} is taken to be at {version}",
                    p.release
                ));
            }
        }
        let mut images = Vec::new();
        for (platform, v) in &a.images {
            image_releases(format!("{at}.images.{platform}"), v, &mut images);
        }
        let expected = version.to_string();
        for (path, release) in images {
            if release != expected {
                warnings.push(format!(
                    "{path} is {release}, not {expected} as the artifacts: {arch} is taken to be at {expected}"
                ));
            }
        }
        architectures.insert(arch.clone(), version);
    }
    let version =
        most_common(architectures.values()).expect("architectures is not empty, checked above");
    for (arch, v) in &architectures {
        if *v != version {
            warnings.push(format!(
                "architectures.{arch} is at {v}, the stream at {version} (the most architectures)"
            ));
        }
    }
    Ok(OsStream {
        stream: raw.stream,
        last_modified: raw.metadata.last_modified,
        version,
        architectures,
        warnings,
    })
}

/// A CoreOS release index (`releases.json`): which container image each release is, per
/// architecture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseIndex {
    /// The stream, when the index names it.
    pub stream: Option<String>,
    /// The releases, in file order (oldest first).
    pub releases: Vec<IndexedRelease>,
}

/// One release of a [`ReleaseIndex`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedRelease {
    /// `version`.
    pub version: OsVersion,
    /// `oci-images[].digest-ref` by `architecture`; empty when the release has no container image.
    pub images: BTreeMap<String, DigestRef>,
}

impl ReleaseIndex {
    /// The container image of `version` for each architecture, if the index has that release.
    pub fn images(&self, version: &OsVersion) -> Option<&BTreeMap<String, DigestRef>> {
        self.releases
            .iter()
            .rev()
            .find(|r| r.version == *version)
            .map(|r| &r.images)
    }
}

#[derive(Deserialize)]
struct RawIndex {
    #[serde(default)]
    stream: Option<String>,
    releases: Vec<RawIndexRelease>,
}

#[derive(Deserialize)]
struct RawIndexRelease {
    version: OsVersion,
    #[serde(rename = "oci-images", default)]
    oci_images: Vec<RawOciImage>,
}

#[derive(Deserialize)]
struct RawOciImage {
    architecture: String,
    #[serde(rename = "digest-ref")]
    digest_ref: DigestRef,
}

/// Parses a CoreOS release index; `origin` (the URL or path) names it in errors. An architecture
/// given twice in one release is an error.
pub fn parse_index(bytes: &[u8], origin: &str) -> Result<ReleaseIndex, OsError> {
    let raw: RawIndex = parse_json(bytes, origin, INDEX_HINT)?;
    let mut releases = Vec::with_capacity(raw.releases.len());
    for (i, r) in raw.releases.into_iter().enumerate() {
        let mut images = BTreeMap::new();
        for (j, image) in r.oci_images.into_iter().enumerate() {
            if images.contains_key(&image.architecture) {
                return Err(OsError::Invalid {
                    origin: origin.to_string(),
                    field: format!("releases[{i}].oci-images[{j}].architecture"),
                    line: 0,
                    column: 0,
                    message: format!(
                        "{} given twice for release {}",
                        image.architecture, r.version
                    ),
                    hint: INDEX_HINT,
                });
            }
            images.insert(image.architecture, image.digest_ref);
        }
        releases.push(IndexedRelease {
            version: r.version,
            images,
        });
    }
    Ok(ReleaseIndex {
        stream: raw.stream,
        releases,
    })
}

/// Deserializes JSON, turning errors into [`OsError::Invalid`] with the field path and position.
fn parse_json<T: de::DeserializeOwned>(
    bytes: &[u8],
    origin: &str,
    hint: &'static str,
) -> Result<T, OsError> {
    let invalid = |mut field: String, e: serde_json::Error| {
        let text = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let text = text.strip_suffix(&suffix).unwrap_or(&text).to_string();
        let message = if e.is_eof() {
            format!("the JSON ends early, is it truncated? ({text})")
        } else if e.is_syntax() {
            format!("invalid JSON: {text}")
        } else if let Some(name) = text
            .strip_prefix("missing field `")
            .and_then(|rest| rest.strip_suffix('`'))
        {
            if !field.is_empty() {
                field.push('.');
            }
            field.push_str(name);
            "missing".to_string()
        } else {
            // serde names the Rust type it wanted (`expected struct RawMetadata`): say "an object".
            match text.find("expected struct Raw") {
                Some(i) => format!("{}expected an object", &text[..i]),
                None => text,
            }
        };
        OsError::Invalid {
            origin: origin.to_string(),
            field,
            line: e.line(),
            column: e.column(),
            message,
            hint,
        }
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let field = json_path(e.path());
        invalid(field, e.into_inner())
    })?;
    de.end().map_err(|e| invalid(String::new(), e))?;
    Ok(value)
}

/// A serde path as `a.b[0].c`.
fn json_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {}
        }
    }
    out
}

/// Reads `location`: an `http://` or `https://` URL (GET, which must answer 2xx), a `file://` URL,
/// or a path. At most [`MAX_FETCH_BYTES`] are read. Errors name the location and, for HTTP, the
/// status.
pub async fn fetch(location: &str) -> Result<Vec<u8>, OsError> {
    let fail = |status: Option<u16>, message: String| OsError::Fetch {
        url: location.to_string(),
        status,
        message,
    };
    let scheme = location
        .split_once("://")
        .map(|(scheme, _)| scheme.to_ascii_lowercase());
    let path = match scheme.as_deref() {
        Some("http" | "https") => return fetch_http(location).await,
        Some("file") => url::Url::parse(location)
            .ok()
            .and_then(|u| u.to_file_path().ok())
            .ok_or_else(|| {
                fail(
                    None,
                    "not a file:// URL of an absolute local path (file:///DIR/FILE)".to_string(),
                )
            })?,
        Some(scheme) => {
            return Err(fail(
                None,
                format!("unsupported scheme {scheme}://; give an http://, https:// or file:// URL, or a path"),
            ))
        }
        None => std::path::PathBuf::from(location),
    };
    let cannot_read =
        |e: std::io::Error| fail(None, format!("cannot read {}: {e}", path.display()));
    let file = tokio::fs::File::open(&path).await.map_err(cannot_read)?;
    let mut bytes = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(
        &mut tokio::io::AsyncReadExt::take(file, MAX_FETCH_BYTES as u64 + 1),
        &mut bytes,
    )
    .await
    .map_err(cannot_read)?;
    if bytes.len() > MAX_FETCH_BYTES {
        return Err(fail(
            None,
            format!("larger than {MAX_FETCH_BYTES} bytes, not OS metadata"),
        ));
    }
    Ok(bytes)
}

async fn fetch_http(url: &str) -> Result<Vec<u8>, OsError> {
    let fail = |status: Option<u16>, message: String| OsError::Fetch {
        url: url.to_string(),
        status,
        message,
    };
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(15))
        .timeout(Duration::from_secs(120))
        .user_agent(concat!("okd-forge/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| fail(None, format!("cannot make an HTTP client: {}", chain(&e))))?;
    let mut response = client.get(url).send().await.map_err(|e| {
        fail(
            None,
            format!("GET failed: {}; check the URL and the network", chain(&e)),
        )
    })?;
    let status = response.status();
    if !status.is_success() {
        return Err(fail(
            Some(status.as_u16()),
            format!("GET answered HTTP {status}; check the URL (FCOS streams are https://builds.coreos.fedoraproject.org/streams/{{stable,testing,next}}.json)"),
        ));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| {
        fail(
            Some(status.as_u16()),
            format!("reading the body failed: {}", chain(&e)),
        )
    })? {
        if bytes.len() + chunk.len() > MAX_FETCH_BYTES {
            return Err(fail(
                Some(status.as_u16()),
                format!("the body is larger than {MAX_FETCH_BYTES} bytes, not OS metadata"),
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// An error and its causes, `a: b: c`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

/// [`fetch`]es and [`parse_stream`]s `location`.
pub async fn fetch_stream(location: &str) -> Result<OsStream, OsError> {
    parse_stream(&fetch(location).await?, location)
}

/// [`fetch`]es and [`parse_index`]es `location`.
pub async fn fetch_index(location: &str) -> Result<ReleaseIndex, OsError> {
    parse_index(&fetch(location).await?, location)
}

/// What a poller recorded of the last OS release it took from a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsState {
    /// The stream name.
    pub stream: String,
    /// Its `metadata.last-modified`.
    pub last_modified: OffsetDateTime,
    /// The version of each architecture.
    pub versions: BTreeMap<String, OsVersion>,
}

/// A new OS release found by [`poll`], for the caller to record (see [`OsRelease::state`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsRelease {
    /// The stream name.
    pub stream: String,
    /// The release: the version the most architectures are at.
    pub version: OsVersion,
    /// The version of each architecture.
    pub versions: BTreeMap<String, OsVersion>,
    /// The container image of each architecture's version, from the release index (empty without
    /// one; an architecture the index lacks is missing here and named in `warnings`).
    pub digests: BTreeMap<String, DigestRef>,
    /// The stream's `metadata.last-modified`.
    pub last_modified: OffsetDateTime,
    /// The stream's disagreements, architectures that left the stream, missing digests.
    pub warnings: Vec<String>,
}

impl OsRelease {
    /// The state to record once the release is taken.
    pub fn state(&self) -> OsState {
        OsState {
            stream: self.stream.clone(),
            last_modified: self.last_modified,
            versions: self.versions.clone(),
        }
    }
}

/// The decision of one [`poll`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Poll {
    /// A new OS release: record it and build on it.
    New(OsRelease),
    /// The same versions as recorded (the last-modified time may have moved on, e.g. for new cloud
    /// images): nothing to do.
    Same,
    /// Not new: the last-modified time or a version went backwards (a stale mirror or cache), or a
    /// version is of another OS than recorded. Keep the recorded state and show the reason.
    Rejected {
        /// Why, naming the fields and values.
        reason: String,
    },
}

/// The poll decision, without I/O: is `stream` a new OS release compared with `previous` (the
/// recorded state, none the first time)? `index`, when given, supplies the per-architecture digests.
///
/// - No previous state: new.
/// - Another stream name than recorded (the source was switched, e.g. from `testing` to `stable`): new,
///   with a warning; versions are not compared.
/// - Otherwise, rejected if `metadata.last-modified` is earlier than recorded, if any architecture's
///   version is lower than recorded, or if it is of another OS (all such reasons are given).
/// - Otherwise new if any architecture's version is higher than recorded or the architecture is new;
///   an architecture that left the stream is a warning. Else the same.
pub fn poll(previous: Option<&OsState>, stream: &OsStream, index: Option<&ReleaseIndex>) -> Poll {
    let mut warnings = stream.warnings.clone();
    if let Some(prev) = previous {
        if prev.stream != stream.stream {
            warnings.push(format!(
                "the stream changed from {} to {}: versions were not compared with the recorded ones",
                prev.stream, stream.stream
            ));
        } else {
            let mut backwards = Vec::new();
            let mut newer = false;
            if stream.last_modified < prev.last_modified {
                backwards.push(format!(
                    "metadata.last-modified {} is earlier than the recorded {}",
                    rfc3339_text(stream.last_modified),
                    rfc3339_text(prev.last_modified)
                ));
            }
            for (arch, v) in &stream.architectures {
                let Some(old) = prev.versions.get(arch) else {
                    newer = true;
                    continue;
                };
                match v.partial_cmp(old) {
                    Some(Ordering::Greater) => newer = true,
                    Some(Ordering::Equal) => {}
                    Some(Ordering::Less) => backwards.push(format!(
                        "architectures.{arch} is at {v}, older than the recorded {old}"
                    )),
                    None => backwards.push(format!(
                        "architectures.{arch} is at {v} ({}), the recorded {old} is {}: \
                         if the source changed on purpose, clear the recorded OS state",
                        v.os().display_name(),
                        old.os().display_name()
                    )),
                }
            }
            if !backwards.is_empty() {
                return Poll::Rejected {
                    reason: format!("{}: not a new OS release", backwards.join("; ")),
                };
            }
            if !newer {
                return Poll::Same;
            }
            for (arch, old) in &prev.versions {
                if !stream.architectures.contains_key(arch) {
                    warnings.push(format!(
                        "architecture {arch} (recorded at {old}) is no longer in the stream"
                    ));
                }
            }
        }
    }
    let mut digests = BTreeMap::new();
    if let Some(index) = index {
        for (arch, v) in &stream.architectures {
            match index.images(v).and_then(|images| images.get(arch)) {
                Some(d) => {
                    digests.insert(arch.clone(), d.clone());
                }
                None => warnings.push(format!(
                    "the release index has no container image of {v} for {arch}"
                )),
            }
        }
    }
    Poll::New(OsRelease {
        stream: stream.stream.clone(),
        version: stream.version.clone(),
        versions: stream.architectures.clone(),
        digests,
        last_modified: stream.last_modified,
        warnings,
    })
}

fn rfc3339_text(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture_path(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/fcos")
            .join(name)
    }

    /// The `file://` URL of a fixture.
    fn file_url(name: &str) -> String {
        let path = fixture_path(name).canonicalize().expect("fixture");
        url::Url::from_file_path(path).expect("url").to_string()
    }

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(fixture_path(name)).expect("fixture")
    }

    fn v(s: &str) -> OsVersion {
        s.parse().expect("version")
    }

    fn at(s: &str) -> OffsetDateTime {
        OffsetDateTime::parse(s, &Rfc3339).expect("time")
    }

    /// The fcos-stream.json fixture as JSON, changed by `edit`, as bytes.
    fn edited(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
        let mut json: serde_json::Value = serde_json::from_slice(&fixture(name)).expect("json");
        edit(&mut json);
        serde_json::to_vec_pretty(&json).expect("json")
    }

    fn invalid_field(e: &OsError) -> &str {
        match e {
            OsError::Invalid { field, .. } => field,
            other => panic!("not Invalid: {other}"),
        }
    }

    #[test]
    fn fcos_stream_fixture() {
        let s = parse_stream(&fixture("fcos-stream.json"), "fcos-stream.json").expect("parse");
        assert_eq!(s.stream, "stable");
        assert_eq!(s.last_modified, at("2020-12-17T14:18:43Z"));
        assert_eq!(s.version, v("33.20201201.3.0"));
        assert_eq!(
            s.architectures.keys().collect::<Vec<_>>(),
            ["x86_64"],
            "the fixture has one architecture"
        );
        assert_eq!(s.architectures["x86_64"], v("33.20201201.3.0"));
        // The kubevirt image of the fixture carries another release than every artifact.
        assert_eq!(s.warnings.len(), 1, "{:?}", s.warnings);
        assert!(
            s.warnings[0].starts_with(
                "architectures.x86_64.images.kubevirt.release is 33.20211201.3.0, not 33.20201201.3.0"
            ),
            "{}",
            s.warnings[0]
        );
    }

    #[test]
    fn scos_stream_fixture() {
        let s = parse_stream(&fixture("scos.json"), "scos.json").expect("parse");
        assert_eq!(s.stream, "c10s");
        assert_eq!(s.last_modified, at("2025-07-01T21:24:39Z"));
        assert_eq!(
            s.architectures.keys().collect::<Vec<_>>(),
            ["aarch64", "ppc64le", "s390x", "x86_64"]
        );
        assert!(s.architectures.values().all(|a| *a == v("10.0.20250628-0")));
        assert_eq!(s.version.os(), Os::Scos);
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
        assert_eq!(
            labels(&s.version),
            [
                (VERSIONS_LABEL, "machine-os=10.0.20250628-0".to_string()),
                (
                    DISPLAY_NAMES_LABEL,
                    "machine-os=CentOS Stream CoreOS".to_string()
                ),
            ]
        );
    }

    #[test]
    fn artifacts_disagreeing_the_most_platforms_win() {
        let bytes = edited("fcos-stream.json", |j| {
            j["architectures"]["x86_64"]["artifacts"]["metal"]["release"] =
                "33.20201214.3.1".into();
        });
        let s = parse_stream(&bytes, "edited.json").expect("parse");
        assert_eq!(s.architectures["x86_64"], v("33.20201201.3.0"));
        assert!(
            s.warnings.iter().any(|w| w.starts_with(
                "architectures.x86_64.artifacts.metal.release is 33.20201214.3.1, not 33.20201201.3.0"
            )),
            "{:?}",
            s.warnings
        );
    }

    #[test]
    fn artifacts_tied_the_newest_wins_and_architectures_disagreeing() {
        let json = r#"{"stream": "next", "metadata": {"last-modified": "2024-01-02T03:04:05Z"},
            "architectures": {
              "x86_64": {"artifacts": {"aws": {"release": "39.20231101.1.0"}, "qemu": {"release": "39.20231101.1.1"}}},
              "aarch64": {"artifacts": {"qemu": {"release": "39.20231101.1.0"}}},
              "s390x": {"artifacts": {"qemu": {"release": "39.20231101.1.0"}}}
            }}"#;
        let s = parse_stream(json.as_bytes(), "tie.json").expect("parse");
        assert_eq!(s.architectures["x86_64"], v("39.20231101.1.1"));
        assert!(s.warnings.iter().any(|w| w.starts_with(
            "architectures.x86_64.artifacts.aws.release is 39.20231101.1.0, not 39.20231101.1.1"
        )));
        // Two architectures of three are at .0: that is the stream's release.
        assert_eq!(s.version, v("39.20231101.1.0"));
        assert!(s.warnings.iter().any(|w| w.starts_with(
            "architectures.x86_64 is at 39.20231101.1.1, the stream at 39.20231101.1.0"
        )));
    }

    #[test]
    fn release_index_fixture() {
        let index =
            parse_index(&fixture("fcos-releases.json"), "fcos-releases.json").expect("parse");
        assert_eq!(index.stream.as_deref(), Some("stable"));
        assert_eq!(index.releases.len(), 26);
        assert_eq!(index.releases[0].version, v("31.20200108.3.0"));
        assert_eq!(index.releases[25].version, v("33.20201214.3.1"));
        let images = index.images(&v("31.20200108.3.0")).expect("release");
        assert_eq!(
            images["x86_64"].to_string(),
            "quay.io/fedora/fedora-coreos@sha256:460576931cf4ce59afe432ea266234f9d34fa77f8ca3087282084bc3a7324632"
        );
        assert_eq!(images["x86_64"].repository, "quay.io/fedora/fedora-coreos");
        assert!(index
            .images(&v("31.20200113.3.1"))
            .expect("release")
            .is_empty());
        assert!(index.images(&v("40.20240101.3.0")).is_none());
    }

    #[test]
    fn real_versions_convert_to_ordered_semver() {
        let index =
            parse_index(&fixture("fcos-releases.json"), "fcos-releases.json").expect("parse");
        let mut semvers = Vec::new();
        for r in &index.releases {
            let text = r.version.to_string();
            let semver = r.version.machine_os();
            // It is valid semver: it parses back to the same.
            assert_eq!(
                semver::Version::parse(&semver.to_string()).expect("valid semver"),
                semver
            );
            let (three, respin) = text.rsplit_once('.').expect("4 parts");
            let expected = if respin == "0" {
                three.to_string()
            } else {
                format!("{three}+{respin}")
            };
            assert_eq!(semver.to_string(), expected, "{text}");
            semvers.push(semver);
        }
        assert_eq!(
            machine_os_version("31.20200323.3.2").unwrap().to_string(),
            "31.20200323.3+2"
        );
        // The index is oldest first: both orders agree with it.
        assert!(semvers.windows(2).all(|w| w[0] < w[1]));
        assert!(index
            .releases
            .windows(2)
            .all(|w| w[0].version < w[1].version));
    }

    #[test]
    fn respins_order_after_the_version_without() {
        let order = [
            "39.20231101.3.0",
            "39.20231101.3.1",
            "39.20231101.3.2",
            "39.20231101.3.10",
            "39.20231102.3.0",
            "40.20240101.3.0",
        ];
        for w in order.windows(2) {
            let (a, b) = (v(w[0]), v(w[1]));
            assert!(a < b, "{a} < {b}");
            assert!(
                a.machine_os() < b.machine_os(),
                "{} < {}",
                a.machine_os(),
                b.machine_os()
            );
        }
        assert_eq!(
            v("39.20231101.3.10").machine_os().to_string(),
            "39.20231101.3+10"
        );
    }

    #[test]
    fn development_and_stream_ids() {
        let rawhide = v("37.20220810.91.0");
        assert_eq!(rawhide.os(), Os::Fcos);
        assert_eq!(rawhide.machine_os().to_string(), "37.20220810.91");
        assert_eq!(
            v("44.20260817.3.2").machine_os().to_string(),
            "44.20260817.3+2"
        );
        assert_eq!(
            v("39.20231101.2.0").machine_os().to_string(),
            "39.20231101.2"
        );
        assert_eq!(
            labels(&v("31.20200407.3.0"))[1],
            (DISPLAY_NAMES_LABEL, "machine-os=Fedora CoreOS".to_string())
        );
    }

    #[test]
    fn scos_versions_are_semver_and_ordered() {
        for s in ["10.0.20250628-0", "9.0.20240101-0"] {
            let version = v(s);
            assert_eq!(version.os(), Os::Scos);
            assert_eq!(version.to_string(), s);
            assert_eq!(
                semver::Version::parse(s).expect("valid semver"),
                version.machine_os()
            );
        }
        let order = [
            "9.0.20240101-0",
            "9.0.20240101-1",
            "9.0.20240102-0",
            "10.0.20250628-0",
        ];
        for w in order.windows(2) {
            assert!(v(w[0]) < v(w[1]));
            assert!(v(w[0]).machine_os() < v(w[1]).machine_os());
        }
        // FCOS and SCOS versions do not compare.
        assert_eq!(
            v("10.0.20250628-0").partial_cmp(&v("39.20231101.3.0")),
            None
        );
    }

    #[test]
    fn garbage_versions_are_rejected() {
        let cases = [
            ("", "1 dotted part and no -<build>"),
            ("latest", "1 dotted part and no -<build>"),
            ("39.20231101.3", "3 dotted parts and no -<build>"),
            ("39.20231101.3.0.1", "5 dotted parts and no -<build>"),
            ("v39.20231101.3.0", "part 1 ('v39') is not a number"),
            ("39.20231101.03.0", "part 3 ('03') has a leading zero"),
            ("39.20231301.3.0", "'20231301' is not a date YYYYMMDD"),
            ("39.2023110.3.0", "'2023110' is not a date YYYYMMDD"),
            ("39.20231101.3.", "part 4 ('') is empty"),
            ("10.0.20250628", "3 dotted parts and no -<build>"),
            ("10.0.20250628-x", "part 4 ('x') is not a number"),
            ("10.0.20250631-0", "'20250631' is not a date YYYYMMDD"),
            ("39.20231101.3.0-1", "4 dotted parts before the -<build>"),
        ];
        for (input, reason) in cases {
            let e = input.parse::<OsVersion>().expect_err(input);
            let text = e.to_string();
            assert!(
                text.starts_with(&format!(
                    "'{input}' is not a CoreOS version: {reason}; expected"
                )),
                "{input}: {text}"
            );
            assert!(machine_os_version(input).is_err());
        }
    }

    #[test]
    fn truncated_json_names_origin_and_position() {
        let bytes = fixture("fcos-stream.json");
        let e = parse_stream(&bytes[..bytes.len() / 2], "https://example.com/stable.json")
            .expect_err("truncated");
        let text = e.to_string();
        assert!(
            text.starts_with("https://example.com/stable.json:"),
            "{text}"
        );
        assert!(
            text.contains("the JSON ends early, is it truncated?"),
            "{text}"
        );
        assert!(
            text.contains("check that it is CoreOS stream metadata"),
            "{text}"
        );
        let OsError::Invalid { line, .. } = e else {
            panic!("not Invalid")
        };
        assert!(line > 1, "a line is named");

        let e = parse_stream(b"{\"stream\": \"stable\",, }", "bad.json").expect_err("syntax");
        assert!(
            e.to_string()
                .starts_with("bad.json:1:21: invalid JSON: key must be a string; check"),
            "{e}"
        );
        let e = parse_stream(b"<html>not found</html>", "bad.json").expect_err("syntax");
        assert!(
            e.to_string().starts_with("bad.json:1:1: invalid JSON"),
            "{e}"
        );
    }

    #[test]
    fn missing_fields_are_named() {
        let e = parse_stream(
            &edited("fcos-stream.json", |j| {
                j.as_object_mut().unwrap().remove("architectures");
            }),
            "s.json",
        )
        .expect_err("missing");
        assert_eq!(invalid_field(&e), "architectures");
        assert!(
            e.to_string().contains(": architectures: missing; check"),
            "{e}"
        );

        let e = parse_stream(
            &edited("fcos-stream.json", |j| {
                j["architectures"]["x86_64"]["artifacts"]["aws"]
                    .as_object_mut()
                    .unwrap()
                    .remove("release");
            }),
            "s.json",
        )
        .expect_err("missing");
        assert_eq!(
            invalid_field(&e),
            "architectures.x86_64.artifacts.aws.release"
        );

        let e = parse_stream(
            &edited("fcos-stream.json", |j| {
                j["architectures"] = serde_json::json!({});
            }),
            "s.json",
        )
        .expect_err("empty");
        assert_eq!(
            e.to_string(),
            format!("s.json: architectures: no architecture; {STREAM_HINT}")
        );

        let e = parse_stream(
            &edited("fcos-stream.json", |j| {
                j["architectures"]["x86_64"]["artifacts"] = serde_json::json!({});
            }),
            "s.json",
        )
        .expect_err("empty");
        assert_eq!(invalid_field(&e), "architectures.x86_64.artifacts");
    }

    #[test]
    fn bad_version_and_time_name_field_and_line() {
        let text = String::from_utf8(fixture("fcos-stream.json")).unwrap();
        // The first artifact (aliyun) release, on line 11 of the fixture.
        let bad = text.replacen("\"33.20201201.3.0\"", "\"33.2020-12-01\"", 1);
        let e = parse_stream(bad.as_bytes(), "fcos-stream.json").expect_err("bad version");
        let OsError::Invalid {
            ref field, line, ..
        } = e
        else {
            panic!("not Invalid: {e}")
        };
        assert_eq!(field, "architectures.x86_64.artifacts.aliyun.release");
        assert_eq!(line, 11);
        assert!(
            e.to_string()
                .contains("'33.2020-12-01' is not a CoreOS version"),
            "{e}"
        );

        let bad = text.replace("2020-12-17T14:18:43Z", "17 Dec 2020");
        let e = parse_stream(bad.as_bytes(), "fcos-stream.json").expect_err("bad time");
        assert_eq!(invalid_field(&e), "metadata.last-modified");
        assert!(
            e.to_string()
                .contains("'17 Dec 2020' is not an RFC 3339 time"),
            "{e}"
        );
    }

    #[test]
    fn bad_release_index() {
        let e = parse_index(
            &edited("fcos-releases.json", |j| {
                j["releases"][0]["oci-images"][0]["digest-ref"] =
                    "quay.io/fedora/fedora-coreos:stable".into();
            }),
            "releases.json",
        )
        .expect_err("bad digest");
        assert_eq!(invalid_field(&e), "releases[0].oci-images[0].digest-ref");
        assert!(e.to_string().contains("is not an image by digest"), "{e}");

        let e = parse_index(
            &edited("fcos-releases.json", |j| {
                j["releases"][3]["version"] = "33".into();
            }),
            "releases.json",
        )
        .expect_err("bad version");
        assert_eq!(invalid_field(&e), "releases[3].version");
        assert!(
            e.to_string()
                .contains("check that it is a CoreOS release index"),
            "{e}"
        );

        let e =
            parse_index(b"{\"releases\": [] } trailing", "releases.json").expect_err("trailing");
        assert!(
            e.to_string()
                .starts_with("releases.json:1:19: invalid JSON: trailing"),
            "{e}"
        );
    }

    fn state(stream: &str, last_modified: &str, versions: &[(&str, &str)]) -> OsState {
        OsState {
            stream: stream.to_string(),
            last_modified: at(last_modified),
            versions: versions
                .iter()
                .map(|(a, ver)| (a.to_string(), v(ver)))
                .collect(),
        }
    }

    #[test]
    fn poll_first_same_newer_older() {
        let s = parse_stream(&fixture("fcos-stream.json"), "fcos-stream.json").expect("parse");

        let Poll::New(first) = poll(None, &s, None) else {
            panic!("the first poll is new")
        };
        assert_eq!(first.version, v("33.20201201.3.0"));
        assert_eq!(first.versions["x86_64"], v("33.20201201.3.0"));
        assert_eq!(first.last_modified, at("2020-12-17T14:18:43Z"));
        assert!(first.digests.is_empty());
        assert_eq!(
            first.warnings, s.warnings,
            "the stream's disagreement is carried"
        );

        // Recorded as it is: the same.
        assert_eq!(poll(Some(&first.state()), &s, None), Poll::Same);
        // A later last-modified with the same versions: still the same.
        let later = state(
            "stable",
            "2020-12-01T00:00:00Z",
            &[("x86_64", "33.20201201.3.0")],
        );
        assert_eq!(poll(Some(&later), &s, None), Poll::Same);

        // Recorded an older version: new.
        let old = state(
            "stable",
            "2020-12-01T00:00:00Z",
            &[("x86_64", "32.20201104.3.0")],
        );
        let Poll::New(newer) = poll(Some(&old), &s, None) else {
            panic!("newer")
        };
        assert_eq!(newer.state(), first.state());

        // A respin of the same date is newer too.
        let respin = state(
            "stable",
            "2020-12-01T00:00:00Z",
            &[("x86_64", "33.20201201.3.0")],
        );
        let mut s2 = s.clone();
        s2.architectures
            .insert("x86_64".into(), v("33.20201201.3.1"));
        assert!(matches!(poll(Some(&respin), &s2, None), Poll::New(_)));

        // Recorded a newer version: rejected, with the reason.
        let ahead = state(
            "stable",
            "2020-12-01T00:00:00Z",
            &[("x86_64", "33.20201214.3.1")],
        );
        assert_eq!(
            poll(Some(&ahead), &s, None),
            Poll::Rejected {
                reason: "architectures.x86_64 is at 33.20201201.3.0, older than the recorded \
                         33.20201214.3.1: not a new OS release"
                    .to_string()
            }
        );

        // Last-modified went backwards, even with a newer version: rejected.
        let future = state(
            "stable",
            "2021-01-05T10:15:52Z",
            &[("x86_64", "32.20201104.3.0")],
        );
        let Poll::Rejected { reason } = poll(Some(&future), &s, None) else {
            panic!("backwards")
        };
        assert_eq!(
            reason,
            "metadata.last-modified 2020-12-17T14:18:43Z is earlier than the recorded \
             2021-01-05T10:15:52Z: not a new OS release"
        );
    }

    #[test]
    fn poll_architectures_streams_and_os() {
        let s = parse_stream(&fixture("scos.json"), "scos.json").expect("parse");
        let all = |ver: &str| -> Vec<(&str, String)> {
            ["aarch64", "ppc64le", "s390x", "x86_64"]
                .into_iter()
                .map(|a| (a, ver.to_string()))
                .collect()
        };
        let recorded = |versions: &[(&str, String)]| OsState {
            stream: "c10s".into(),
            last_modified: at("2025-06-01T00:00:00Z"),
            versions: versions
                .iter()
                .map(|(a, x)| (a.to_string(), v(x)))
                .collect(),
        };
        // One architecture new in the stream: new.
        let three: Vec<_> = all("10.0.20250628-0").into_iter().skip(1).collect();
        assert!(matches!(
            poll(Some(&recorded(&three)), &s, None),
            Poll::New(_)
        ));

        // An architecture that left, another newer: new, with a warning.
        let mut five = all("10.0.20250627-0");
        five.push(("riscv64", "10.0.20250627-0".into()));
        let Poll::New(r) = poll(Some(&recorded(&five)), &s, None) else {
            panic!("new")
        };
        assert!(r.warnings.contains(
            &"architecture riscv64 (recorded at 10.0.20250627-0) is no longer in the stream"
                .to_string()
        ));

        // Another OS recorded under the same stream name: rejected.
        let fcos = recorded(&all("39.20231101.3.0"));
        let Poll::Rejected { reason } = poll(Some(&fcos), &s, None) else {
            panic!("rejected")
        };
        assert!(reason.starts_with("architectures.aarch64 is at 10.0.20250628-0 (CentOS Stream CoreOS), the recorded 39.20231101.3.0 is Fedora CoreOS"), "{reason}");

        // A switched stream: new, versions not compared.
        let mut c9s = recorded(&all("10.0.20250701-0"));
        c9s.stream = "c9s".into();
        let Poll::New(r) = poll(Some(&c9s), &s, None) else {
            panic!("new")
        };
        assert!(r.warnings[0].starts_with("the stream changed from c9s to c10s"));
    }

    #[test]
    fn poll_digests_from_the_index() {
        let s = parse_stream(&fixture("fcos-stream.json"), "fcos-stream.json").expect("parse");
        // The fixture index has no container image for 33.20201201.3.0: give its last release one.
        let bytes = edited("fcos-releases.json", |j| {
            j["releases"][24]["oci-images"] = serde_json::json!([{
                "architecture": "x86_64",
                "image": "quay.io/fedora/fedora-coreos:stable",
                "digest-ref": format!("quay.io/fedora/fedora-coreos@sha256:{}", "ab".repeat(32)),
            }]);
        });
        let index = parse_index(&bytes, "releases.json").expect("parse");
        let Poll::New(r) = poll(None, &s, Some(&index)) else {
            panic!("new")
        };
        assert_eq!(r.digests["x86_64"].digest.hex(), "ab".repeat(32));

        let index =
            parse_index(&fixture("fcos-releases.json"), "fcos-releases.json").expect("parse");
        let Poll::New(r) = poll(None, &s, Some(&index)) else {
            panic!("new")
        };
        assert!(r.digests.is_empty());
        assert!(r.warnings.contains(
            &"the release index has no container image of 33.20201201.3.0 for x86_64".to_string()
        ));
    }

    #[tokio::test]
    async fn fetch_file_url_and_path() {
        let path = fixture_path("fcos-stream.json")
            .canonicalize()
            .expect("fixture");
        let url = file_url("fcos-stream.json");
        assert!(url.starts_with("file:///"));
        let s = fetch_stream(&url).await.expect("file:// fetch");
        assert_eq!(s.architectures["x86_64"], v("33.20201201.3.0"));
        let from_path = fetch_stream(path.to_str().unwrap())
            .await
            .expect("path fetch");
        assert_eq!(from_path, s);

        let index = fetch_index(&file_url("fcos-releases.json"))
            .await
            .expect("index");
        assert_eq!(index.releases.len(), 26);

        let missing = path.with_file_name("no-such-stream.json");
        let e = fetch(missing.to_str().unwrap()).await.expect_err("missing");
        assert!(e.to_string().contains("cannot read"), "{e}");
        assert!(e.to_string().contains("no-such-stream.json"), "{e}");
        let e = fetch("ftp://example.com/stable.json")
            .await
            .expect_err("scheme");
        assert_eq!(
            e.to_string(),
            "ftp://example.com/stable.json: unsupported scheme ftp://; give an http://, https:// or file:// URL, or a path"
        );
        // A parse error after a fetch names the URL.
        let e = fetch_stream(&file_url("fcos-releases.json"))
            .await
            .expect_err("not a stream");
        assert!(e.to_string().starts_with("file:///"), "{e}");
        assert!(e.to_string().contains("architectures: missing"), "{e}");
    }

    /// A one-route HTTP/1.1 server on 127.0.0.1: `path` answers `body`, anything else 404.
    async fn serve(path: &'static str, body: Vec<u8>) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
                let body = body.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&request);
                    let target = text.split(' ').nth(1).unwrap_or("");
                    let (status, body) = if target == path {
                        ("200 OK", body)
                    } else {
                        ("404 Not Found", b"not found".to_vec())
                    };
                    let head = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = conn.write_all(head.as_bytes()).await;
                    let _ = conn.write_all(&body).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn fetch_http_fixture_and_404() {
        let base = serve("/streams/stable.json", fixture("fcos-stream.json")).await;
        let url = format!("{base}/streams/stable.json");
        let s = fetch_stream(&url).await.expect("http fetch");
        assert_eq!(s.stream, "stable");
        assert_eq!(s.architectures["x86_64"], v("33.20201201.3.0"));
        assert_eq!(
            fetch(&url).await.expect("bytes"),
            fixture("fcos-stream.json")
        );

        let missing = format!("{base}/streams/nope.json");
        let e = fetch_stream(&missing).await.expect_err("404");
        assert!(
            matches!(
                e,
                OsError::Fetch {
                    status: Some(404),
                    ..
                }
            ),
            "{e:?}"
        );
        let text = e.to_string();
        assert!(
            text.starts_with(&format!("{missing}: GET answered HTTP 404 Not Found")),
            "{text}"
        );

        // A truncated answer: the parse error names the URL and the position.
        let bytes = fixture("fcos-stream.json");
        let base = serve("/stable.json", bytes[..bytes.len() - 40].to_vec()).await;
        let url = format!("{base}/stable.json");
        let e = fetch_stream(&url).await.expect_err("truncated");
        let OsError::Invalid {
            ref origin, line, ..
        } = e
        else {
            panic!("not Invalid: {e}")
        };
        assert_eq!(*origin, url);
        assert!(line > 300, "{e}");
        assert!(e.to_string().contains("the JSON ends early"), "{e}");

        // Nothing listens: the error names the URL.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let closed = format!("http://{}/stable.json", listener.local_addr().unwrap());
        drop(listener);
        let e = fetch(&closed).await.expect_err("refused");
        assert!(matches!(e, OsError::Fetch { status: None, .. }));
        assert!(
            e.to_string().starts_with(&format!("{closed}: GET failed")),
            "{e}"
        );
    }
}
