//! `okd-forge config import-release-controller`: turns release-controller stream configurations
//! (ReleaseConfig JSON, `openshift/release:core-services/release-controller/_releases/`) into the
//! `release:` blocks of `forge.yaml` streams ([`RawRelease`]), one stream per file.
//!
//! Each file is read leniently, as a JSON tree walked by hand: unknown fields never fail the import,
//! and every field that has no `forge.yaml` equivalent is reported as a [`Note`] with its path. A
//! file that is not a JSON object, a missing `name`, a value of the wrong type, or a duration
//! okd-forge cannot write is an [`ImportError`] naming the file and the field.
//!
//! ```
//! let json = r#"{"name": "4.20.0-0.okd-scos", "minCreationIntervalSeconds": 43200,
//!                "publish": {"tag": {"tagRef": {"name": "scos-4.20"}}}}"#;
//! let imported = build::import_rc::import(&[("r.json".into(), json.into())], None).unwrap();
//! let release = &imported.streams["okd-scos-4.20"];
//! assert_eq!(release.min_interval.as_ref().unwrap().value, "12h");
//! ```
//!
//! Mapping:
//! - the stream is named after `name`, which must be `X.Y.Z-0.SUFFIX`: `4.20.0-0.okd-scos` →
//!   `okd-scos-4.20` (`SUFFIX-X.Y`; `--stream` overrides it for one file). `as: Stable` streams
//!   (`4-scos-stable`) are promotion targets, configured with `promote:`, and are not imported;
//! - `name` → `name`, `maxUnreadyReleases` → `max_unready`, `minCreationIntervalSeconds` →
//!   `min_interval`, `expires` (a Go duration) → `expires`; durations are written in the largest
//!   unit that is exact (`43200` → `12h`, `72h` → `3d`, `1h30m` → `90m`); fractions and units
//!   below a second are errors;
//! - `verify.<job>` → `verify.<job>`: `optional`, `disabled`, `upgrade`, `maxRetries` →
//!   `max_retries`, `upgradeFrom` (`Previous` → `previous`, `PreviousMinor` →
//!   `previous_minor`, `PreviousPatch` → `all_previous_stable`), `upgradeFromRelease.candidate`
//!   of the previous minor → `previous_minor`. okd-forge runs commands, not Prow jobs: the command
//!   fails, naming the Prow job it replaces, until it is given a real one;
//! - `publish.<name>.tagRef.name` → `tag_ref`; `publish.<name>.imageStreamRef` → `stream` (the
//!   image stream named as a stream: `origin/scos-4.14` → `okd-scos-4.14`, `origin/4.14` →
//!   `okd-4.14`, otherwise its name), with `tags` and `excludeTags`; `disabled` is kept;
//! - everything else (`to`, `mirrorPrefix`, `message`, `endOfLife`, `referenceMode`, `periodic`,
//!   `async`, `aggregatedProwJob`, `verifyIssues`, ...) is a note. Empty `check`, `periodic` and
//!   `upgrade` maps hold nothing and are dropped without one.

use indexmap::IndexMap;
use serde::Serialize;
use serde_json::{Map, Value};
use serde_saphyr::{Location, Spanned};

use crate::config::release::{RawPublish, RawRelease, RawVerify};
use crate::config::PayloadPrefix;
use crate::import::Note;

/// A file that cannot be imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {field}: {message}")]
pub struct ImportError {
    /// The file as it was named.
    pub file: String,
    /// The field, as `verify.aws.maxRetries`.
    pub field: String,
    /// What is wrong, and what to do.
    pub message: String,
}

/// The result of an import.
#[derive(Debug)]
pub struct ReleaseImport {
    /// Stream name → its `release:` block, in the order of the files.
    pub streams: IndexMap<String, RawRelease>,
    /// Every field that was not mapped, file by file.
    pub notes: Vec<Note>,
}

#[derive(Serialize)]
struct Doc<'a> {
    streams: IndexMap<&'a str, Block<'a>>,
}

#[derive(Serialize)]
struct Block<'a> {
    release: &'a RawRelease,
}

impl ReleaseImport {
    fn doc(&self) -> Doc<'_> {
        Doc {
            streams: self
                .streams
                .iter()
                .map(|(n, release)| (n.as_str(), Block { release }))
                .collect(),
        }
    }

    /// The streams as a `forge.yaml` fragment: `streams: { NAME: { release: ... } }`.
    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(&self.doc()).unwrap_or_default()
    }

    /// The same fragment as JSON.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self.doc()).unwrap_or_default()
    }
}

fn sp<T>(value: T) -> Spanned<T> {
    Spanned::new(value, Location::UNKNOWN, Location::UNKNOWN)
}

/// The stream name of a payload prefix `X.Y.Z-0.SUFFIX`: `SUFFIX-X.Y`.
pub fn stream_name(prefix: &str) -> Option<String> {
    PayloadPrefix::parse(prefix).map(|p| p.stream())
}

/// Seconds in the largest unit that divides them exactly (`43200` → `12h`, `90` → `90s`).
pub fn seconds_text(secs: u64) -> String {
    for (unit, n) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs > 0 && secs.is_multiple_of(n) {
            return format!("{}{unit}", secs / n);
        }
    }
    format!("{secs}s")
}

/// The whole seconds of a Go duration (`72h`, `1h30m`, `0`), or why okd-forge cannot write it.
pub fn go_duration_seconds(text: &str) -> Result<u64, String> {
    if text == "0" {
        return Ok(0);
    }
    let not_go = || format!("'{text}' is not a Go duration (e.g. 72h, 1h30m)");
    let rest = text.strip_prefix('+').unwrap_or(text);
    if rest.starts_with('-') {
        return Err(format!("'{text}' is negative"));
    }
    let mut total: u64 = 0;
    let mut chars = rest.chars().peekable();
    if chars.peek().is_none() {
        return Err(not_go());
    }
    while chars.peek().is_some() {
        let mut digits = String::new();
        while let Some(c) = chars.peek().copied().filter(char::is_ascii_digit) {
            digits.push(c);
            chars.next();
        }
        if chars.peek() == Some(&'.') {
            return Err(format!(
                "'{text}' has a fraction; okd-forge writes whole numbers of s, m, h, d"
            ));
        }
        let mut unit = String::new();
        while let Some(c) = chars
            .peek()
            .copied()
            .filter(|c| !c.is_ascii_digit() && *c != '.')
        {
            unit.push(c);
            chars.next();
        }
        let per = match unit.as_str() {
            "h" => 3600,
            "m" => 60,
            "s" => 1,
            "ms" | "us" | "µs" | "μs" | "ns" => {
                return Err(format!(
                    "'{text}' uses {unit}; okd-forge durations are whole seconds at least"
                ))
            }
            _ => return Err(not_go()),
        };
        let n: u64 = digits.parse().map_err(|_| not_go())?;
        total = n
            .checked_mul(per)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(|| format!("'{text}' is too long"))?;
    }
    Ok(total)
}

/// The stream an image stream of the release controller's namespaces became: `origin/scos-4.14` →
/// `okd-scos-4.14`, `origin/4.14` → `okd-4.14`; otherwise the image stream's name.
pub fn imagestream_stream(namespace: &str, name: &str) -> String {
    let minor = |s: &str| {
        let mut parts = s.split('.');
        matches!(
            (parts.next(), parts.next(), parts.next()),
            (Some(a), Some(b), None) if a.parse::<u64>().is_ok() && b.parse::<u64>().is_ok()
        )
    };
    match (namespace, name.strip_prefix("scos-")) {
        ("origin", Some(m)) if minor(m) => format!("okd-scos-{m}"),
        ("origin", None) if minor(name) => format!("okd-{name}"),
        _ => name.to_string(),
    }
}

/// Imports every file (name, text), one stream each. `stream` names the stream of a single file.
pub fn import(
    files: &[(String, String)],
    stream: Option<&str>,
) -> Result<ReleaseImport, ImportError> {
    if let (Some(s), n) = (stream, files.len()) {
        if n != 1 {
            return Err(ImportError {
                file: "--stream".into(),
                field: s.into(),
                message: format!("--stream names the stream of one file, but {n} were given"),
            });
        }
    }
    let mut out = ReleaseImport {
        streams: IndexMap::new(),
        notes: Vec::new(),
    };
    for (name, text) in files {
        let mut f = File {
            name,
            notes: Vec::new(),
        };
        let v: Value = serde_json::from_str(text).map_err(|e| {
            let message = e.to_string();
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            f.error(
                &format!("line {}, column {}", e.line(), e.column()),
                format!(
                    "not JSON: {}",
                    message.strip_suffix(&suffix).unwrap_or(&message)
                ),
            )
        })?;
        let (stream_name, release) = file(&mut f, &v, stream)?;
        if out.streams.contains_key(&stream_name) {
            return Err(f.error(
                "name",
                format!("the stream '{stream_name}' comes from an earlier file too"),
            ));
        }
        out.streams.insert(stream_name, release);
        out.notes.append(&mut f.notes);
    }
    Ok(out)
}

/// One file being imported.
struct File<'a> {
    name: &'a str,
    notes: Vec<Note>,
}

impl File<'_> {
    fn note(&mut self, path: &str, reason: impl Into<String>) {
        self.notes.push(Note {
            file: self.name.to_string(),
            path: path.to_string(),
            reason: reason.into(),
        });
    }

    fn error(&self, field: &str, message: impl Into<String>) -> ImportError {
        ImportError {
            file: self.name.to_string(),
            field: field.to_string(),
            message: message.into(),
        }
    }

    fn object<'v>(&self, v: &'v Value, field: &str) -> Result<&'v Map<String, Value>, ImportError> {
        v.as_object()
            .ok_or_else(|| self.error(field, format!("expected an object, found {}", kind(v))))
    }

    fn string<'v>(&self, v: &'v Value, field: &str) -> Result<&'v str, ImportError> {
        v.as_str()
            .ok_or_else(|| self.error(field, format!("expected a string, found {}", kind(v))))
    }

    fn bool(&self, v: Option<&Value>, field: &str) -> Result<bool, ImportError> {
        match v {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(self.error(field, format!("expected true or false, found {}", kind(v)))),
        }
    }

    fn count(&self, v: &Value, field: &str) -> Result<u64, ImportError> {
        v.as_u64().ok_or_else(|| {
            self.error(
                field,
                format!("expected a whole number ≥ 0, found {}", kind(v)),
            )
        })
    }

    fn count32(&self, v: &Value, field: &str) -> Result<u32, ImportError> {
        self.count(v, field)?
            .try_into()
            .map_err(|_| self.error(field, "too large"))
    }

    fn strings(&self, v: Option<&Value>, field: &str) -> Result<Vec<String>, ImportError> {
        let Some(v) = v.filter(|v| !v.is_null()) else {
            return Ok(Vec::new());
        };
        let list = v
            .as_array()
            .ok_or_else(|| self.error(field, format!("expected a list, found {}", kind(v))))?;
        list.iter()
            .enumerate()
            .map(|(i, s)| self.string(s, &format!("{field}[{i}]")).map(str::to_string))
            .collect()
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Why a top-level field is not mapped.
fn unmapped(key: &str) -> &'static str {
    match key {
        "to" => "payloads are tagged in okd-forge's store, which has no target image stream",
        "mirrorPrefix" => "payloads pin their images in okd-forge's store, not in snapshot image streams",
        "message" | "hide" => "the dashboard is not configured per stream",
        "endOfLife" => "okd-forge has no end-of-life flag; remove the stream's release: block to stop cutting payloads",
        "referenceMode" => "payloads always reference images in okd-forge's store by digest",
        "pullSecretName" | "alternateImageRepositorySecretName" => {
            "credentials come from auth files (--authfile, podman login), not secrets"
        }
        "overrideCLIImage" => "okd-forge assembles payloads itself, without an oc image",
        "check" => "okd-forge runs its built-in checks instead (checks:)",
        "periodic" => "periodic jobs are not supported",
        "upgrade" => "sampled upgrades of stable streams are not supported; use upgrade_from",
        "alternateImageRepository" | "referenceRelease" => {
            "payloads are mirrored by a later stage, not by the release controller"
        }
        "disableManifestListMode" => "okd-forge keeps manifest lists as they are in its store",
        "as" => "only integration streams are imported",
        _ => "unknown field",
    }
}

fn file(
    f: &mut File<'_>,
    v: &Value,
    stream: Option<&str>,
) -> Result<(String, RawRelease), ImportError> {
    let top = f.object(v, "(document)")?;
    let stable = match top.get("as") {
        Some(a) => f.string(a, "as")? == "Stable",
        None => false,
    };
    let name = f.string(
        top.get("name").ok_or_else(|| {
            f.error(
                "name",
                "missing (the payload name prefix, e.g. 4.20.0-0.okd-scos)",
            )
        })?,
        "name",
    )?;
    let prefix = PayloadPrefix::parse(name);
    if stable || (prefix.is_none() && name.contains("stable")) {
        return Err(f.error(
            if stable { "as" } else { "name" },
            format!(
                "'{name}' is a stable stream: stable streams are promotion targets, configured with promote: in the release: block of the stream they promote from, not imported"
            ),
        ));
    }
    let Some(prefix) = prefix else {
        return Err(f.error(
            "name",
            format!("'{name}' is not X.Y.Z-0.SUFFIX (e.g. 4.20.0-0.okd-scos), so it names no stream and cannot prefix payload names"),
        ));
    };
    let stream_name = stream.map_or_else(|| prefix.stream(), str::to_string);
    let mut release = RawRelease {
        name: sp(name.to_string()),
        max_unready: None,
        min_interval: None,
        expires: None,
        verify: IndexMap::new(),
        checks: None,
        publish: IndexMap::new(),
        promote: None,
    };
    for (key, value) in top {
        match key.as_str() {
            "name" => {}
            "maxUnreadyReleases" => release.max_unready = Some(f.count32(value, key)?),
            "minCreationIntervalSeconds" => {
                release.min_interval = Some(sp(seconds_text(f.count(value, key)?)))
            }
            "expires" => {
                let text = f.string(value, key)?;
                let secs = go_duration_seconds(text).map_err(|m| f.error(key, m))?;
                release.expires = Some(sp(seconds_text(secs)));
            }
            "verify" => {
                for (job, spec) in f.object(value, key)? {
                    let at = format!("verify.{job}");
                    let verify = verify_job(f, &at, job, spec, &prefix)?;
                    release.verify.insert(job.clone(), verify);
                }
            }
            "publish" => {
                for (action, spec) in f.object(value, key)? {
                    let at = format!("publish.{action}");
                    if let Some(p) = publish(f, &at, spec)? {
                        release.publish.insert(action.clone(), p);
                    }
                }
            }
            "as" if value.as_str() == Some("") => {}
            "check" | "periodic" | "upgrade" if value.as_object().is_some_and(Map::is_empty) => {}
            _ => f.note(key, unmapped(key)),
        }
    }
    Ok((stream_name, release))
}

fn verify_job(
    f: &mut File<'_>,
    at: &str,
    job: &str,
    spec: &Value,
    prefix: &PayloadPrefix,
) -> Result<RawVerify, ImportError> {
    let o = f.object(spec, at)?;
    let mut prow = None;
    if let Some(p) = o.get("prowJob") {
        let field = format!("{at}.prowJob");
        if let Some(n) = f.object(p, &field)?.get("name") {
            prow = Some(f.string(n, &format!("{field}.name"))?.to_string());
        }
    }
    let script = match &prow {
        Some(p) => {
            f.note(
                &format!("{at}.prowJob"),
                format!("okd-forge runs commands, not Prow jobs: replace the command, which fails until then, with what {p} runs"),
            );
            format!(
                "echo 'verify job {job}: give it a command (it was the Prow job {p})' >&2; exit 1"
            )
        }
        None => {
            f.note(
                at,
                "no prowJob: give the job a command, which fails until then",
            );
            format!("echo 'verify job {job}: give it a command' >&2; exit 1")
        }
    };
    let mut v = RawVerify {
        command: sp(vec!["sh".into(), "-c".into(), script]),
        image: None,
        env: Default::default(),
        optional: f.bool(o.get("optional"), &format!("{at}.optional"))?,
        disabled: f.bool(o.get("disabled"), &format!("{at}.disabled"))?,
        upgrade: f.bool(o.get("upgrade"), &format!("{at}.upgrade"))?,
        upgrade_from: None,
        max_retries: None,
        timeout: None,
        leases: Vec::new(),
    };
    for (key, value) in o {
        let field = format!("{at}.{key}");
        match key.as_str() {
            "prowJob" | "optional" | "disabled" | "upgrade" => {}
            "maxRetries" => v.max_retries = Some(f.count32(value, &field)?),
            "upgradeFrom" => {
                let from = f.string(value, &field)?;
                let mapped = match from {
                    "Previous" => "previous",
                    "PreviousMinor" => "previous_minor",
                    "PreviousPatch" => {
                        f.note(
                            &field,
                            "PreviousPatch tests only the newest stable release of the minor; its mapping, all_previous_stable, tests every earlier one",
                        );
                        "all_previous_stable"
                    }
                    other => {
                        f.note(
                            &field,
                            format!("'{other}' has no equivalent; the job upgrades from previous"),
                        );
                        continue;
                    }
                };
                v.upgrade_from = Some(sp(mapped.to_string()));
            }
            "upgradeFromRelease" => {
                for (kind, source) in f.object(value, &field)? {
                    let field = format!("{field}.{kind}");
                    match kind.as_str() {
                        "candidate" => {
                            if let Some(from) = candidate(f, &field, source, prefix)? {
                                v.upgrade_from = Some(sp(from));
                            }
                        }
                        "prerelease" => f.note(
                            &field,
                            "upgrades from pre-releases of a version range are not supported",
                        ),
                        "release" => {
                            f.note(&field, "upgrades from official releases are not supported")
                        }
                        _ => f.note(&field, "unknown upgrade source"),
                    }
                }
            }
            "async" => f.note(&field, "okd-forge waits for every job before it decides"),
            "aggregatedProwJob" => f.note(
                &field,
                "aggregated analysis jobs are not supported: the job runs once",
            ),
            "multiJobAnalysis" => f.note(&field, "multi-job analysis is not supported"),
            "qualifiers" => f.note(&field, "qualifiers are not supported"),
            _ => f.note(&field, "unknown field"),
        }
    }
    Ok(v)
}

/// `upgradeFromRelease.candidate {stream, version, relative}`: `previous_minor` for the previous
/// minor, else a note.
fn candidate(
    f: &mut File<'_>,
    field: &str,
    source: &Value,
    prefix: &PayloadPrefix,
) -> Result<Option<String>, ImportError> {
    let c = f.object(source, field)?;
    let stream = match c.get("stream") {
        Some(s) => Some(f.string(s, &format!("{field}.stream"))?),
        None => None,
    };
    let version = match c.get("version") {
        Some(s) => f.string(s, &format!("{field}.version"))?,
        None => "",
    };
    let previous = (prefix.minor > 0).then(|| format!("{}.{}", prefix.major, prefix.minor - 1));
    if previous.as_deref() != Some(version) {
        f.note(
            field,
            format!(
                "only a candidate of the previous minor maps (to previous_minor); '{version}' is not {}",
                previous.as_deref().unwrap_or("one")
            ),
        );
        return Ok(None);
    }
    if let Some(s) = stream.filter(|s| *s != prefix.suffix) {
        f.note(
            &format!("{field}.stream"),
            format!(
                "previous_minor upgrades from the newest Accepted payload of any {version} stream; to take it from {s}'s only, write upgrade_from: {s}-{version}"
            ),
        );
    }
    if c.contains_key("relative") {
        f.note(
            &format!("{field}.relative"),
            "previous_minor upgrades from the newest Accepted payload",
        );
    }
    for k in c.keys() {
        if !matches!(k.as_str(), "stream" | "version" | "relative") {
            f.note(&format!("{field}.{k}"), "unknown field");
        }
    }
    Ok(Some("previous_minor".to_string()))
}

fn publish(f: &mut File<'_>, at: &str, spec: &Value) -> Result<Option<RawPublish>, ImportError> {
    let o = f.object(spec, at)?;
    let mut p = RawPublish {
        disabled: f.bool(o.get("disabled"), &format!("{at}.disabled"))?,
        ..Default::default()
    };
    for (key, value) in o {
        let field = format!("{at}.{key}");
        match key.as_str() {
            "disabled" => {}
            "tagRef" => {
                let name = f
                    .object(value, &field)?
                    .get("name")
                    .ok_or_else(|| f.error(&field, "missing name"))?;
                p.tag_ref = Some(sp(f.string(name, &format!("{field}.name"))?.to_string()));
            }
            "imageStreamRef" => {
                let r = f.object(value, &field)?;
                let name = f.string(
                    r.get("name")
                        .ok_or_else(|| f.error(&field, "missing name"))?,
                    &format!("{field}.name"),
                )?;
                let namespace = match r.get("namespace") {
                    Some(n) => f.string(n, &format!("{field}.namespace"))?,
                    None => "",
                };
                let stream = imagestream_stream(namespace, name);
                f.note(
                    &field,
                    format!(
                        "the image stream {namespace}/{name} became the stream {stream}; rename it if yours is named otherwise"
                    ),
                );
                p.tags = f.strings(r.get("tags"), &format!("{field}.tags"))?;
                p.exclude_tags =
                    f.strings(r.get("excludeTags"), &format!("{field}.excludeTags"))?;
                for k in r.keys() {
                    if !matches!(k.as_str(), "name" | "namespace" | "tags" | "excludeTags") {
                        f.note(&format!("{field}.{k}"), "unknown field");
                    }
                }
                p.stream = Some(sp(stream));
            }
            "verifyIssues" => f.note(&field, "Jira verification is not supported"),
            _ => f.note(&field, "unknown publish action"),
        }
    }
    if p.tag_ref.is_some() && p.stream.is_some() {
        return Err(f.error(at, "both tagRef and imageStreamRef; give one"));
    }
    if p.tag_ref.is_none() && p.stream.is_none() {
        if !o.contains_key("verifyIssues") {
            f.note(at, "neither tagRef nor imageStreamRef: no action");
        }
        return Ok(None);
    }
    Ok(Some(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_durations() {
        assert_eq!(
            stream_name("4.20.0-0.okd-scos").as_deref(),
            Some("okd-scos-4.20")
        );
        assert_eq!(stream_name("4.15.0-0.okd").as_deref(), Some("okd-4.15"));
        assert_eq!(stream_name("4.14.0-0.ci").as_deref(), Some("ci-4.14"));
        assert_eq!(stream_name("4-scos-stable"), None);
        assert_eq!(stream_name("4.14.0-0."), None);
        assert_eq!(seconds_text(43_200), "12h");
        assert_eq!(seconds_text(3600), "1h");
        assert_eq!(seconds_text(63_072_000), "730d");
        assert_eq!(seconds_text(90), "90s");
        assert_eq!(seconds_text(0), "0s");
        assert_eq!(go_duration_seconds("72h"), Ok(259_200));
        assert_eq!(go_duration_seconds("1h30m"), Ok(5400));
        assert_eq!(go_duration_seconds("1h0m30s"), Ok(3630));
        assert_eq!(go_duration_seconds("0"), Ok(0));
        assert!(go_duration_seconds("1.5h")
            .unwrap_err()
            .contains("fraction"));
        assert!(go_duration_seconds("500ms").unwrap_err().contains("ms"));
        assert!(go_duration_seconds("3d").unwrap_err().contains("not a Go"));
        assert!(go_duration_seconds("").is_err());
        assert!(go_duration_seconds("h").is_err());
        assert_eq!(imagestream_stream("origin", "scos-4.14"), "okd-scos-4.14");
        assert_eq!(imagestream_stream("origin", "4.14"), "okd-4.14");
        assert_eq!(imagestream_stream("ocp", "4.14"), "4.14");
        assert_eq!(imagestream_stream("origin", "release"), "release");
    }

    fn one(json: &str) -> Result<ReleaseImport, ImportError> {
        import(&[("r.json".to_string(), json.to_string())], None)
    }

    /// The import, merged under a minimal forge.yaml, validates.
    fn validates(imp: &ReleaseImport, extra_streams: &[&str]) {
        let mut yaml = String::from("variants: { okd: {} }\ncomponents:\n  c: { git: https://example.com/c, images: [ { to: c, containerfile: Dockerfile } ] }\nstreams:\n");
        let branch = |stream: &str| format!("release-{}", stream.rsplit('-').next().unwrap_or(""));
        for (name, release) in &imp.streams {
            let release = serde_json::to_string(release).unwrap();
            yaml.push_str(&format!(
                "  {name}: {{ variant: okd, branch: {}, release: {release} }}\n",
                branch(name)
            ));
        }
        for name in extra_streams {
            yaml.push_str(&format!(
                "  {name}: {{ variant: okd, branch: {} }}\n",
                branch(name)
            ));
        }
        crate::config::parse(&yaml, "forge.yaml", std::path::Path::new("."))
            .unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    }

    #[test]
    fn maps_a_stream() {
        let imp = one(
            r#"{"name": "4.20.0-0.okd-scos", "to": "release-scos", "expires": "72h",
                "maxUnreadyReleases": 1, "minCreationIntervalSeconds": 43200, "check": {},
                "publish": {"tag": {"tagRef": {"name": "scos-4.20"}},
                            "okd": {"imageStreamRef": {"name": "4.20", "namespace": "origin", "excludeTags": ["cli"]}},
                            "jira": {"verifyIssues": {}}},
                "verify": {
                  "aws": {"maxRetries": 1, "prowJob": {"name": "periodic-aws"}},
                  "minor": {"optional": true, "upgrade": true,
                            "upgradeFromRelease": {"candidate": {"stream": "okd", "version": "4.19"}}},
                  "patch": {"upgrade": true, "upgradeFrom": "PreviousPatch", "async": true, "disabled": true},
                  "old": {"upgradeFromRelease": {"candidate": {"version": "4.17"}}}
                }}"#,
        )
        .unwrap();
        let r = &imp.streams["okd-scos-4.20"];
        assert_eq!(r.name.value, "4.20.0-0.okd-scos");
        assert_eq!(r.max_unready, Some(1));
        assert_eq!(r.min_interval.as_ref().unwrap().value, "12h");
        assert_eq!(r.expires.as_ref().unwrap().value, "3d");
        let aws = &r.verify["aws"];
        assert_eq!(aws.max_retries, Some(1));
        assert!(!aws.optional && !aws.upgrade);
        assert_eq!(
            aws.command.value[2],
            "echo 'verify job aws: give it a command (it was the Prow job periodic-aws)' >&2; exit 1"
        );
        let minor = &r.verify["minor"];
        assert!(minor.optional && minor.upgrade);
        assert_eq!(minor.upgrade_from.as_ref().unwrap().value, "previous_minor");
        let patch = &r.verify["patch"];
        assert!(patch.disabled);
        assert_eq!(
            patch.upgrade_from.as_ref().unwrap().value,
            "all_previous_stable"
        );
        assert!(r.verify["old"].upgrade_from.is_none());
        assert_eq!(
            r.publish["tag"].tag_ref.as_ref().unwrap().value,
            "scos-4.20"
        );
        assert_eq!(r.publish["okd"].stream.as_ref().unwrap().value, "okd-4.20");
        assert_eq!(r.publish["okd"].exclude_tags, ["cli"]);
        assert!(!r.publish.contains_key("jira"));
        let paths: Vec<&str> = imp.notes.iter().map(|n| n.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "to",
                "publish.okd.imageStreamRef",
                "publish.jira.verifyIssues",
                "verify.aws.prowJob",
                "verify.minor",
                "verify.minor.upgradeFromRelease.candidate.stream",
                "verify.patch",
                "verify.patch.upgradeFrom",
                "verify.patch.async",
                "verify.old",
                "verify.old.upgradeFromRelease.candidate",
            ]
        );
        assert_eq!(imp.notes[0].to_string(), "r.json: to: not mapped (payloads are tagged in okd-forge's store, which has no target image stream)");
        validates(&imp, &["okd-4.20"]);
        let yaml = imp.to_yaml();
        assert!(
            yaml.starts_with(
                "streams:\n  okd-scos-4.20:\n    release:\n      name: 4.20.0-0.okd-scos\n"
            ),
            "{yaml}"
        );
    }

    #[test]
    fn stream_override_and_end_of_life() {
        let imp = import(
            &[(
                "r.json".into(),
                r#"{"name": "4.7.0-0.okd", "endOfLife": true}"#.into(),
            )],
            Some("okd-fcos-4.7"),
        )
        .unwrap();
        assert!(imp.streams.contains_key("okd-fcos-4.7"));
        assert_eq!(imp.notes.len(), 1);
        assert_eq!(imp.notes[0].path, "endOfLife");
        let two = [
            ("a.json".to_string(), "{}".to_string()),
            ("b.json".to_string(), "{}".to_string()),
        ];
        assert!(import(&two, Some("x"))
            .unwrap_err()
            .to_string()
            .contains("one file"));
    }

    #[test]
    fn bad_input_names_the_file_and_field() {
        let e = |json: &str| one(json).unwrap_err().to_string();
        assert_eq!(
            e("{"),
            "r.json: line 1, column 1: not JSON: EOF while parsing an object"
        );
        assert_eq!(
            e("[]"),
            "r.json: (document): expected an object, found a list"
        );
        assert_eq!(
            e("{}"),
            "r.json: name: missing (the payload name prefix, e.g. 4.20.0-0.okd-scos)"
        );
        assert_eq!(
            e(r#"{"name": 4}"#),
            "r.json: name: expected a string, found a number"
        );
        assert!(e(r#"{"name": "okd"}"#).starts_with("r.json: name: 'okd' is not X.Y.Z-0.SUFFIX"));
        assert_eq!(
            e(r#"{"name": "4.17.0-0.okd", "maxUnreadyReleases": "one"}"#),
            "r.json: maxUnreadyReleases: expected a whole number ≥ 0, found a string"
        );
        assert!(e(r#"{"name": "4.17.0-0.okd", "expires": "1.5h"}"#)
            .starts_with("r.json: expires: '1.5h' has a fraction"));
        assert!(e(r#"{"name": "4.17.0-0.okd", "expires": "100ms"}"#)
            .starts_with("r.json: expires: '100ms' uses ms"));
        assert_eq!(
            e(r#"{"name": "4.17.0-0.okd", "verify": {"aws": {"optional": "yes"}}}"#),
            "r.json: verify.aws.optional: expected true or false, found a string"
        );
        assert_eq!(
            e(r#"{"name": "4.17.0-0.okd", "verify": {"aws": {"maxRetries": -1}}}"#),
            "r.json: verify.aws.maxRetries: expected a whole number ≥ 0, found a number"
        );
        assert_eq!(
            e(r#"{"name": "4.17.0-0.okd", "publish": {"t": {"tagRef": {"name": 1}}}}"#),
            "r.json: publish.t.tagRef.name: expected a string, found a number"
        );
        assert!(e(r#"{"name": "4-scos-stable", "as": "Stable"}"#)
            .starts_with("r.json: as: '4-scos-stable' is a stable stream: stable streams are promotion targets, configured with promote:"));
        assert!(
            e(r#"{"name": "4-stable"}"#).starts_with("r.json: name: '4-stable' is a stable stream")
        );
    }
}
