//! Release names and component versions: strict SemVer 2.0 as Go's blang/semver parses it.

use std::collections::BTreeMap;
use std::fmt;

use crate::error::{invalid, Result};

/// A release name, always valid semver (e.g. `4.17.0-0.okd-scos-2026-11-23-101500`, `4.17.0-okd-scos.3`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReleaseName(semver::Version);

impl ReleaseName {
    /// Parse a release name; the error says what strict semver requires.
    pub fn parse(name: &str) -> Result<ReleaseName> {
        parse_semver(name)
            .map(ReleaseName)
            .map_err(|reason| invalid(format!("release name '{name}' is not semver: {reason}; use MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD], e.g. 4.17.0-0.okd-scos-2026-11-23-101500")))
    }

    /// The name without build metadata: what `0.0.1-snapshot` becomes in manifests.
    pub fn without_build(&self) -> String {
        let mut v = self.0.clone();
        v.build = semver::BuildMetadata::EMPTY;
        v.to_string()
    }
}

impl fmt::Display for ReleaseName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

fn parse_semver(s: &str) -> Result<semver::Version, String> {
    if s.trim() != s || s.is_empty() {
        return Err("empty or surrounded by spaces".into());
    }
    if s.starts_with('v') {
        return Err("no 'v' prefix is allowed".into());
    }
    semver::Version::parse(s).map_err(|e| e.to_string())
}

/// The version keys `io.openshift.build.versions` may carry (oc's allow-list).
pub const ALLOWED_KEYS: &[&str] = &[
    "kubernetes",
    "machine-os",
    "kernel",
    "crio",
    "kubectl",
    "kubernetes-tests",
];

/// Component versions an image declares: key → semver (build metadata dropped).
pub type Versions = BTreeMap<String, String>;

/// Parse `io.openshift.build.versions` (`key=semver,key=semver`) of image `what`.
pub fn parse_versions(what: &str, label: &str) -> Result<Versions> {
    let mut out = Versions::new();
    // As oc: split on ',' and '=', nothing trimmed (a space is an error, not a separator).
    for item in label.split(',').filter(|s| !s.is_empty()) {
        let Some((key, value)) = item.split_once('=') else {
            return Err(invalid(format!(
                "{what}: label io.openshift.build.versions has '{item}', expected key=version"
            )));
        };
        if !ALLOWED_KEYS.contains(&key) {
            return Err(invalid(format!(
                "{what}: version key '{key}' in label io.openshift.build.versions is not in the allowed list ({})",
                ALLOWED_KEYS.join(", ")
            )));
        }
        let mut v = parse_semver(value).map_err(|reason| {
            invalid(format!(
                "{what}: version '{value}' of '{key}' in label io.openshift.build.versions is not semver: {reason}"
            ))
        })?;
        v.build = semver::BuildMetadata::EMPTY;
        out.insert(key.to_string(), v.to_string());
    }
    Ok(out)
}

/// Parse `io.openshift.build.version-display-names` (`key=Display Name,...`); malformed items are skipped.
pub fn parse_display_names(label: &str) -> BTreeMap<String, String> {
    label
        .split(',')
        .filter_map(|item| item.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

/// Normalise `previous`/`next` entries as oc does: each parsed and re-rendered, sorted as plain strings,
/// without duplicates.
pub fn normalise_versions(list: &[String], flag: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for v in list.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let parsed = parse_semver(v)
            .map_err(|reason| invalid(format!("{flag}: '{v}' is not semver: {reason}")))?;
        out.push(parsed.to_string());
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_names() {
        for ok in [
            "4.17.0-0.okd-scos-2026-11-23-101500",
            "4.7.0-0.okd-2021-02-25-144700",
            "4.20.0-okd-scos.ec.15",
            "4.15.5+build.1",
        ] {
            ReleaseName::parse(ok).unwrap();
        }
        for bad in ["4.17", "v4.17.0", "4.17.0-01", "04.17.0", " 4.17.0", ""] {
            let e = ReleaseName::parse(bad).unwrap_err().to_string();
            assert!(e.contains("not semver"), "{bad}: {e}");
        }
        assert_eq!(
            ReleaseName::parse("4.15.5+build.1")
                .unwrap()
                .without_build(),
            "4.15.5"
        );
    }

    #[test]
    fn versions_label() {
        let v = parse_versions("cli", "kubectl=1.31.1+abc,kubernetes=1.31.1").unwrap();
        assert_eq!(v["kubectl"], "1.31.1");
        assert_eq!(v["kubernetes"], "1.31.1");
        let e = parse_versions("cli", "kubectl= 1.31.1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not semver"), "{e}");
        let e = parse_versions("cli", "foo=1.0.0").unwrap_err().to_string();
        assert!(e.contains("'foo'") && e.contains("allowed list"), "{e}");
        let e = parse_versions("os", "machine-os=39.20231101.3.0")
            .unwrap_err()
            .to_string();
        assert!(e.contains("os:") && e.contains("not semver"), "{e}");
    }

    #[test]
    fn previous_sorted_as_strings() {
        let v = normalise_versions(
            &["4.15.10".into(), "4.15.9".into(), "4.15.10".into()],
            "--previous",
        )
        .unwrap();
        assert_eq!(v, ["4.15.10", "4.15.9"]);
    }
}
