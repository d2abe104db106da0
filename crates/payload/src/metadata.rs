//! `release-manifests/release-metadata`: Cincinnati metadata (`cincinnati-metadata-v0`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{invalid, Result};

/// The only `kind` the CVO and Cincinnati accept.
pub const KIND: &str = "cincinnati-metadata-v0";
/// Metadata key marking a heterogeneous (manifest-list) payload; its only valid value is `multi`.
pub const ARCHITECTURE: &str = "release.openshift.io/architecture";

/// Release metadata as oc writes it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReleaseMetadata {
    /// Always [`KIND`].
    pub kind: String,
    /// The release name (semver), equal to the image-references name.
    pub version: String,
    /// Versions that can upgrade to this one; always written, sorted as strings.
    #[serde(default)]
    pub previous: Vec<String>,
    /// Versions this one can upgrade to; written only when non-empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub next: Vec<String>,
    /// Free-form string metadata (`url`, channels, ...); written only when non-empty.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

impl ReleaseMetadata {
    /// Read release-metadata bytes of `what` as oc does: it must be JSON; anything the CVO or
    /// Cincinnati would object to (another `kind`, non-string metadata values, an architecture other
    /// than `multi`) is returned as a warning, with non-string values kept as their JSON text.
    pub fn parse(what: &str, bytes: &[u8]) -> Result<(ReleaseMetadata, Vec<String>)> {
        let mut v: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| invalid(format!("{what}: release-metadata is not JSON: {e}")))?;
        let mut warnings = Vec::new();
        if let Some(serde_json::Value::Object(m)) = v.get_mut("metadata") {
            if let Err(e) =
                metadata_from_json("release-metadata", &serde_json::Value::Object(m.clone()))
            {
                warnings.push(e.to_string());
            }
            for val in m.values_mut().filter(|val| !val.is_string()) {
                *val = serde_json::Value::String(val.to_string());
            }
        }
        let md: ReleaseMetadata = serde_json::from_value(v)
            .map_err(|e| invalid(format!("{what}: release-metadata: {e}")))?;
        if md.kind != KIND {
            warnings.push(format!(
                "release-metadata has kind '{}'; the CVO and Cincinnati accept only {KIND}",
                md.kind
            ));
        }
        Ok((md, warnings))
    }

    /// The bytes oc writes (`json.MarshalIndent`, two-space indent, like image-references).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("metadata serialises")
    }
}

/// Check a `--metadata` JSON object (or an inherited one): an object whose values are all strings.
/// `what` names the source in errors.
pub fn metadata_from_json(what: &str, v: &serde_json::Value) -> Result<BTreeMap<String, String>> {
    let obj = v
        .as_object()
        .ok_or_else(|| invalid(format!("{what}: metadata must be a JSON object, got {v}")))?;
    let mut out = BTreeMap::new();
    for (k, val) in obj {
        let s = val.as_str().ok_or_else(|| {
            invalid(format!(
                "{what}: metadata value of '{k}' is {val}, but every value must be a string (Cincinnati drops releases with other values); quote it"
            ))
        })?;
        if k == ARCHITECTURE && s != "multi" {
            return Err(invalid(format!(
                "{what}: metadata '{ARCHITECTURE}' may only be 'multi' (the CVO ignores anything else), got '{s}'"
            )));
        }
        out.insert(k.clone(), s.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previous_always_written_next_and_metadata_only_when_set() {
        let md = ReleaseMetadata {
            kind: KIND.into(),
            version: "4.17.0".into(),
            previous: vec![],
            next: vec![],
            metadata: BTreeMap::new(),
        };
        assert_eq!(
            String::from_utf8(md.to_bytes()).unwrap(),
            "{\n  \"kind\": \"cincinnati-metadata-v0\",\n  \"version\": \"4.17.0\",\n  \"previous\": []\n}"
        );
    }

    #[test]
    fn non_string_metadata_is_refused() {
        let e = metadata_from_json("--metadata", &serde_json::json!({"url": 1}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("'url'") && e.contains("string"), "{e}");
        // Reading is lenient, as oc's is: problems become warnings.
        let (md, w) = ReleaseMetadata::parse(
            "x",
            br#"{"kind":"v1","version":"1.0.0","metadata":{"url":1}}"#,
        )
        .unwrap();
        assert_eq!(md.metadata["url"], "1");
        assert!(
            w.len() == 2 && w[0].contains("'url'") && w[1].contains("kind 'v1'"),
            "{w:?}"
        );
    }
}
