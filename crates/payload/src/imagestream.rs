//! `release-manifests/image-references`: an `image.openshift.io/v1` ImageStream, shaped as oc writes it.
//!
//! Field order and nulls follow oc's Go structs, so the JSON reads the same as oc's (two-space indent).
//! Reading is lenient like the CVO's non-strict decoder: unknown fields are ignored, missing ones default.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Annotation: the commit a component was built from.
pub const COMMIT_ID: &str = "io.openshift.build.commit.id";
/// Annotation: the branch or ref a component was built from.
pub const COMMIT_REF: &str = "io.openshift.build.commit.ref";
/// Annotation: the component's git repository.
pub const SOURCE_LOCATION: &str = "io.openshift.build.source-location";
/// Annotation and label: component versions, `key=semver,...`.
pub const VERSIONS: &str = "io.openshift.build.versions";
/// Annotation and label: display names of component versions, `key=Name,...`.
pub const DISPLAY_NAMES: &str = "io.openshift.build.version-display-names";
/// Annotation: the tag was set by a `TAG=PULLSPEC` override.
pub const OVERRIDE: &str = "io.openshift.release.override";
/// Annotation: the release this one was built from.
pub const FROM_RELEASE: &str = "release.openshift.io/from-release";
/// Image label: marks an image whose `/manifests` go into the payload.
pub const OPERATOR_LABEL: &str = "io.openshift.release.operator";
/// Release image label: the release name.
pub const RELEASE_LABEL: &str = "io.openshift.release";
/// Release image label: the manifest digest of the CVO base image.
pub const BASE_DIGEST_LABEL: &str = "io.openshift.release.base-image-digest";

/// An ImageStream.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ImageStream {
    /// `ImageStream`.
    #[serde(default)]
    pub kind: String,
    /// `image.openshift.io/v1`.
    #[serde(rename = "apiVersion", default)]
    pub api_version: String,
    /// Name, creation time, annotations.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The tags.
    #[serde(default)]
    pub spec: Spec,
    /// Always `{"dockerImageRepository": ""}` in a payload.
    #[serde(default)]
    pub status: Status,
}

/// Object metadata.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ObjectMeta {
    /// The release name.
    #[serde(default)]
    pub name: String,
    /// RFC 3339 UTC; null when unset.
    #[serde(rename = "creationTimestamp", default)]
    pub creation_timestamp: Option<String>,
    /// Annotations, left out when there are none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The spec.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Spec {
    /// Always `{"local": false}`.
    #[serde(rename = "lookupPolicy", default)]
    pub lookup_policy: LookupPolicy,
    /// Sorted by name.
    #[serde(default)]
    pub tags: Vec<TagReference>,
}

/// `spec.lookupPolicy`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LookupPolicy {
    /// Whether the stream resolves local names.
    #[serde(default)]
    pub local: bool,
}

/// One tag: a component image.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TagReference {
    /// The tag, e.g. `machine-config-operator`.
    pub name: String,
    /// Build annotations; null when none.
    #[serde(default)]
    pub annotations: Option<BTreeMap<String, String>>,
    /// The image, `{"kind": "DockerImage", "name": "REPO@sha256:..."}`.
    #[serde(default)]
    pub from: Option<ObjectReference>,
    /// Null, or copied from an input stream.
    #[serde(default)]
    pub generation: Option<i64>,
    /// `{}` or e.g. `{"importMode": "PreserveOriginal"}`.
    #[serde(rename = "importPolicy", default = "empty_object")]
    pub import_policy: serde_json::Value,
    /// `{"type": ""}` or `Source`.
    #[serde(rename = "referencePolicy", default)]
    pub reference_policy: ReferencePolicy,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

impl TagReference {
    /// A tag pointing at a Docker image pull spec.
    pub fn new(name: &str, pullspec: &str, annotations: BTreeMap<String, String>) -> TagReference {
        TagReference {
            name: name.to_string(),
            annotations: Some(annotations).filter(|a| !a.is_empty()),
            from: Some(ObjectReference {
                kind: "DockerImage".into(),
                name: pullspec.to_string(),
            }),
            generation: None,
            import_policy: empty_object(),
            reference_policy: ReferencePolicy::default(),
        }
    }

    /// The pull spec of a `DockerImage` reference.
    pub fn pullspec(&self) -> Option<&str> {
        self.from
            .as_ref()
            .filter(|f| f.kind == "DockerImage")
            .map(|f| f.name.as_str())
    }

    /// One annotation, or "".
    pub fn annotation(&self, key: &str) -> &str {
        self.annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .map_or("", String::as_str)
    }
}

/// `from`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ObjectReference {
    /// `DockerImage`.
    #[serde(default)]
    pub kind: String,
    /// The pull spec.
    #[serde(default)]
    pub name: String,
}

/// `referencePolicy`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ReferencePolicy {
    /// `""` or `Source`.
    #[serde(rename = "type", default)]
    pub kind: String,
}

/// `status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Status {
    /// Always `""` in a payload.
    #[serde(rename = "dockerImageRepository", default)]
    pub docker_image_repository: String,
}

impl ImageStream {
    /// An empty release ImageStream named `name`.
    pub fn release(name: &str, created: &str) -> ImageStream {
        ImageStream {
            kind: "ImageStream".into(),
            api_version: "image.openshift.io/v1".into(),
            metadata: ObjectMeta {
                name: name.to_string(),
                creation_timestamp: Some(created.to_string()),
                annotations: BTreeMap::new(),
            },
            spec: Spec::default(),
            status: Status::default(),
        }
    }

    /// Parse an image-references file (JSON or YAML); `what` names it in errors. Like oc, require
    /// `kind: ImageStream` and `apiVersion: image.openshift.io/v1`.
    pub fn parse(what: &str, bytes: &[u8]) -> Result<ImageStream, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| format!("{what} is not UTF-8"))?;
        let is: ImageStream = match serde_json::from_str(text) {
            Ok(is) => is,
            Err(_) => serde_saphyr::from_str(text)
                .map_err(|e| format!("{what} is not a JSON or YAML ImageStream: {e}"))?,
        };
        if is.kind != "ImageStream" || is.api_version != "image.openshift.io/v1" {
            return Err(format!(
                "{what} has kind '{}' and apiVersion '{}', expected ImageStream and image.openshift.io/v1",
                is.kind, is.api_version
            ));
        }
        Ok(is)
    }

    /// The bytes oc writes: `json.MarshalIndent` output (two-space indent, no trailing newline).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("ImageStream serialises")
    }

    /// The tag named `name`.
    pub fn tag(&self, name: &str) -> Option<&TagReference> {
        self.spec.tags.iter().find(|t| t.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_matches_oc() {
        let mut is = ImageStream::release("4.17.0", "2026-01-01T00:00:00Z");
        is.spec.tags.push(TagReference::new(
            "cli",
            "q.io/x@sha256:ab",
            BTreeMap::new(),
        ));
        let v: serde_json::Value = serde_json::from_slice(&is.to_bytes()).unwrap();
        assert_eq!(v["spec"]["lookupPolicy"]["local"], false);
        assert_eq!(v["status"]["dockerImageRepository"], "");
        let tag = &v["spec"]["tags"][0];
        assert!(tag["annotations"].is_null() && tag["generation"].is_null());
        assert_eq!(tag["importPolicy"], serde_json::json!({}));
        assert_eq!(tag["referencePolicy"]["type"], "");
        assert_eq!(tag["from"]["kind"], "DockerImage");
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["kind", "apiVersion", "metadata", "spec", "status"]);
    }

    #[test]
    fn parses_operator_yaml_and_checks_kind() {
        let y = b"apiVersion: image.openshift.io/v1\nkind: ImageStream\nspec:\n  tags:\n  - name: mco\n    from:\n      kind: DockerImage\n      name: placeholder:mco\n";
        let is = ImageStream::parse("mco image-references", y).unwrap();
        assert_eq!(is.tag("mco").unwrap().pullspec(), Some("placeholder:mco"));
        let e = ImageStream::parse("x", b"kind: List\napiVersion: v1\n").unwrap_err();
        assert!(e.contains("kind 'List'"), "{e}");
    }
}
