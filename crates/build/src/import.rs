//! `okd-forge config import-ci-operator`: turns OpenShift CI (ci-operator) configuration files, as
//! laid out in openshift/release, into the raw `forge.yaml` types ([`RawConfig`]).
//!
//! Each file is read leniently: as a YAML tree walked by hand, so that unknown fields never fail
//! the import but every field that has no `forge.yaml` equivalent is reported as a [`Note`] with
//! its path. Both shapes of `images` (a list, or `{items: [...]}`) and of `promotion` (legacy
//! `{namespace, name, ...}`, current `{to: [{namespace, name, ...}]}`) are understood.
//!
//! Mapping:
//! - one component per `org/repo` (from `zz_generated_metadata`), `git:
//!   https://github.com/ORG/REPO`, named after the repository (`ORG-REPO` if two organisations
//!   share a repository name);
//! - each `images[]` entry becomes an image: `dockerfile_path` → `containerfile`,
//!   `dockerfile_literal` → `containerfile_literal`, `context_dir` → `context`, `build_args` →
//!   `build_args`, `from` and `inputs.*.as` → `from` / `inputs`, where a `base_images` alias is
//!   replaced by its pull spec `registry.ci.openshift.org/NAMESPACE/NAME:TAG` and the `to` of an
//!   image of the same file stays a stream tag;
//! - one variant per `zz_generated_metadata.variant` (`default` for files without one), with no
//!   settings: the variant-specific build arguments stay on the images;
//! - one stream per (variant, promotion target name): the name is the variant joined to the
//!   target name, overlapping words merged (`okd-scos` + `scos-4.17` → `okd-scos-4.17`); its
//!   branch is the file's branch (other files' branches become per-stream component branches);
//!   `disabled`, `excluded_images` and `additional_images` are carried over. A file without
//!   `promotion` feeds the stream of its branch's minor without promoting its images.
//!
//! A forge.yaml component builds its images in every stream; images that a stream's ci-operator
//! files do not promote are listed in that stream's `excluded_images`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use indexmap::IndexMap;
use serde_json::{Map, Value};
use serde_saphyr::{Location, Spanned};

use crate::config::model::branch_minor;
use crate::config::raw::{
    RawComponent, RawConfig, RawImage, RawInput, RawPromotion, RawStream, RawVariant,
};
use crate::config::{ConfigError, Problem};

/// The registry ci-operator image stream tags live in.
pub const CI_REGISTRY: &str = "registry.ci.openshift.org";

/// The variant of files without `zz_generated_metadata.variant`.
pub const DEFAULT_VARIANT: &str = "default";

/// A field of a ci-operator file that has no `forge.yaml` equivalent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The file as it was named.
    pub file: String,
    /// The field, as `images[0].inputs.x.paths`.
    pub path: String,
    /// Why it is not mapped.
    pub reason: String,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: not mapped ({})",
            self.file, self.path, self.reason
        )
    }
}

/// The result of an import.
#[derive(Debug)]
pub struct Import {
    /// The equivalent `forge.yaml`.
    pub config: RawConfig,
    /// Every field that was not mapped, file by file.
    pub notes: Vec<Note>,
}

impl Import {
    /// The configuration as `forge.yaml` text.
    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(&self.config).unwrap_or_default()
    }
}

fn sp<T>(value: T) -> Spanned<T> {
    Spanned::new(value, Location::UNKNOWN, Location::UNKNOWN)
}

#[derive(Default)]
struct StreamAcc {
    variant: String,
    branch: String,
    minor: Option<String>,
    /// Images promoted into the stream by some file.
    promoted: BTreeSet<String>,
    /// Whether some file promotes into the stream.
    enabled: bool,
    excluded: BTreeSet<String>,
    additional: BTreeMap<String, String>,
}

struct ComponentAcc {
    git: String,
    images: IndexMap<String, (RawImage, String)>,
    branches: BTreeMap<String, String>,
}

#[derive(Default)]
struct Importer {
    variants: IndexMap<String, RawVariant>,
    components: IndexMap<String, ComponentAcc>,
    /// image tag → component that builds it.
    built: BTreeMap<String, String>,
    streams: IndexMap<String, StreamAcc>,
    notes: Vec<Note>,
}

/// Imports ci-operator files given as (name, text) pairs, merged into one configuration.
pub fn import(files: &[(String, String)]) -> Result<Import, ConfigError> {
    let mut imp = Importer::default();
    for (name, text) in files {
        let value = parse(name, text)?;
        imp.file(name, value);
    }
    Ok(imp.finish())
}

/// Parses a file into a YAML tree; an error names the file, line and column.
fn parse(file: &str, text: &str) -> Result<Value, ConfigError> {
    let options = serde_saphyr::Options {
        with_snippet: false,
        ..Default::default()
    };
    serde_saphyr::from_str_with_options::<Value>(text, options).map_err(|e| {
        let e = e.without_snippet();
        let at = e.location().unwrap_or(Location::UNKNOWN);
        let text = e.to_string();
        let suffix = format!(" at line {}, column {}", at.line(), at.column());
        let message = text.strip_suffix(&suffix).unwrap_or(&text).to_string();
        ConfigError::Invalid {
            problems: vec![Problem::new(file, at, String::new(), message)],
        }
    })
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Joins a variant and a promotion target name, merging the words they share
/// (`okd-scos` + `scos-4.17` → `okd-scos-4.17`).
pub fn stream_name(variant: &str, target: &str) -> String {
    let v: Vec<&str> = variant.split('-').collect();
    let t: Vec<&str> = target.split('-').collect();
    for k in (1..=v.len().min(t.len())).rev() {
        if v[v.len() - k..] == t[..k] {
            return [&v[..], &t[k..]].concat().join("-");
        }
    }
    format!("{variant}-{target}")
}

/// The trailing `X.Y` of a promotion target name (`scos-4.17` → `4.17`).
fn name_minor(name: &str) -> Option<String> {
    let last = name.rsplit('-').find(|p| {
        p.split_once('.').is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        })
    })?;
    Some(last.to_string())
}

struct Target {
    name: String,
    disabled: bool,
    excluded: Vec<String>,
    additional: BTreeMap<String, String>,
}

impl Importer {
    fn note(&mut self, file: &str, path: impl Into<String>, reason: impl Into<String>) {
        self.notes.push(Note {
            file: file.to_string(),
            path: path.into(),
            reason: reason.into(),
        });
    }

    fn file(&mut self, file: &str, value: Value) {
        let Value::Object(mut root) = value else {
            self.note(file, "(document)", "not a mapping");
            return;
        };
        // zz_generated_metadata
        let mut org = None;
        let mut repo = None;
        let mut branch = None;
        let mut variant = None;
        if let Some(Value::Object(meta)) = root.remove("zz_generated_metadata") {
            for (k, v) in meta {
                match (k.as_str(), text(&v)) {
                    ("org", Some(t)) => org = Some(t),
                    ("repo", Some(t)) => repo = Some(t),
                    ("branch", Some(t)) => branch = Some(t),
                    ("variant", Some(t)) => variant = Some(t),
                    _ => self.note(
                        file,
                        format!("zz_generated_metadata.{k}"),
                        "unknown metadata",
                    ),
                }
            }
        }
        let (Some(org), Some(repo), Some(branch)) = (org, repo, branch) else {
            self.note(
                file,
                "zz_generated_metadata",
                "missing org, repo or branch: nothing imported",
            );
            return;
        };
        let variant = variant.unwrap_or_else(|| DEFAULT_VARIANT.to_string());

        // base_images: alias → pull spec
        let mut bases = BTreeMap::new();
        if let Some(v) = root.remove("base_images") {
            match v {
                Value::Object(m) => {
                    for (alias, spec) in m {
                        match self.base_image(file, &alias, spec) {
                            Some(p) => {
                                bases.insert(alias, p);
                            }
                            None => self.note(
                                file,
                                format!("base_images.{alias}"),
                                "not an image stream tag (namespace, name, tag)",
                            ),
                        }
                    }
                }
                _ => self.note(file, "base_images", "not a mapping"),
            }
        }

        // images: a list, or {items: [...]}
        let mut items = Vec::new();
        let mut prefix = "images".to_string();
        match root.remove("images") {
            None => {}
            Some(Value::Array(a)) => items = a,
            Some(Value::Object(m)) => {
                prefix = "images.items".to_string();
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("items", Value::Array(a)) => items = a,
                        (_, _) => {
                            self.note(file, format!("images.{k}"), "no forge.yaml equivalent")
                        }
                    }
                }
            }
            Some(_) => self.note(file, "images", "neither a list nor {items: [...]}"),
        }
        let tos: BTreeSet<String> = items
            .iter()
            .filter_map(|i| i.get("to").and_then(text))
            .collect();
        let mut images = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            if let Some(img) = self.image(file, &format!("{prefix}[{i}]"), item, &bases, &tos) {
                images.push(img);
            }
        }

        // promotion: legacy or current shape
        let mut targets = Vec::new();
        match root.remove("promotion") {
            None => {}
            Some(Value::Object(mut m)) => match m.remove("to") {
                Some(Value::Array(to)) => {
                    for (k, _) in m {
                        self.note(file, format!("promotion.{k}"), "no forge.yaml equivalent");
                    }
                    for (i, t) in to.into_iter().enumerate() {
                        let path = format!("promotion.to[{i}]");
                        match t {
                            Value::Object(t) => {
                                if let Some(t) = self.target(file, &path, t, &bases, &tos) {
                                    targets.push(t);
                                }
                            }
                            _ => self.note(file, path, "not a mapping"),
                        }
                    }
                }
                Some(other) => {
                    let _ = other;
                    self.note(file, "promotion.to", "not a list");
                }
                None => {
                    if let Some(t) = self.target(file, "promotion", m, &bases, &tos) {
                        targets.push(t);
                    }
                }
            },
            Some(_) => self.note(file, "promotion", "not a mapping"),
        }

        // Everything else has no equivalent.
        for (k, _) in root {
            let reason = match k.as_str() {
                "tests" => "tests are run by the release controller, not by builds",
                "resources" => "okd-forge does not schedule pods",
                "build_root" => "builds run in the image's own Containerfile stages",
                "releases" => "payloads are cut from streams by the release controller",
                "tag_specification" => "legacy input stream; streams are built from git",
                "binary_build_commands" | "test_binary_build_commands" | "rpm_build_commands" => {
                    "pipeline images (bin, test-bin, rpms) are not built"
                }
                "canonical_go_repository" => "checkouts are not placed in a GOPATH",
                "operator" => "operator bundles are not built",
                "raw_steps" => "raw steps are not supported",
                _ => "no forge.yaml equivalent",
            };
            self.note(file, k, reason);
        }

        if images.is_empty() {
            self.note(
                file,
                "images",
                "no images: no component or stream is created for this file",
            );
            return;
        }

        self.variants.entry(variant.clone()).or_default();
        let (component, own) = self.component(file, &org, &repo, images);

        if targets.is_empty() {
            // Built but not promoted: the stream of the branch's minor.
            let Some(minor) = branch_minor(&branch) else {
                self.note(
                    file,
                    "promotion",
                    format!("absent and branch '{branch}' names no minor: no stream"),
                );
                return;
            };
            targets.push(Target {
                name: minor.to_string(),
                disabled: true,
                excluded: Vec::new(),
                additional: BTreeMap::new(),
            });
        }
        for t in targets {
            let mut name = stream_name(&variant, &t.name);
            if self
                .streams
                .get(&name)
                .is_some_and(|s| s.variant != variant)
            {
                name = format!("{variant}-{}", t.name);
            }
            let s = self
                .streams
                .entry(name.clone())
                .or_insert_with(|| StreamAcc {
                    variant: variant.clone(),
                    branch: branch.clone(),
                    minor: if branch_minor(&branch).is_none() {
                        name_minor(&t.name)
                    } else {
                        None
                    },
                    ..Default::default()
                });
            let other_branch = s.branch != branch;
            if !t.disabled {
                s.enabled = true;
                for to in &own {
                    if !t.excluded.contains(to) {
                        s.promoted.insert(to.clone());
                    }
                }
            }
            s.excluded.extend(t.excluded);
            s.additional.extend(t.additional);
            if other_branch {
                if let Some(c) = self.components.get_mut(&component) {
                    c.branches.insert(name, branch.clone());
                }
            }
        }
    }

    fn base_image(&mut self, file: &str, alias: &str, spec: Value) -> Option<String> {
        let Value::Object(m) = spec else {
            return None;
        };
        let (mut ns, mut name, mut tag) = (None, None, None);
        for (k, v) in m {
            match (k.as_str(), text(&v)) {
                ("namespace", Some(t)) => ns = Some(t),
                ("name", Some(t)) => name = Some(t),
                ("tag", Some(t)) => tag = Some(t),
                _ => self.note(
                    file,
                    format!("base_images.{alias}.{k}"),
                    "no forge.yaml equivalent",
                ),
            }
        }
        Some(format!("{CI_REGISTRY}/{}/{}:{}", ns?, name?, tag?))
    }

    /// An image reference: a base image alias becomes its pull spec, an image of the file stays
    /// a stream tag.
    fn resolve(
        &mut self,
        file: &str,
        path: &str,
        name: &str,
        bases: &BTreeMap<String, String>,
        tos: &BTreeSet<String>,
    ) -> String {
        if let Some(p) = bases.get(name) {
            return p.clone();
        }
        if !tos.contains(name) {
            self.note(
                file,
                path,
                format!(
                    "'{name}' is neither a base image nor an image of this file (a ci-operator pipeline image?); kept as a stream tag"
                ),
            );
        }
        name.to_string()
    }

    fn image(
        &mut self,
        file: &str,
        path: &str,
        item: Value,
        bases: &BTreeMap<String, String>,
        tos: &BTreeSet<String>,
    ) -> Option<RawImage> {
        let Value::Object(m) = item else {
            self.note(file, path, "not a mapping");
            return None;
        };
        let mut img = RawImage {
            to: sp(String::new()),
            containerfile: None,
            containerfile_literal: None,
            context: None,
            build_args: BTreeMap::new(),
            from: None,
            inputs: BTreeMap::new(),
            native: None,
            versions: BTreeMap::new(),
            labels: BTreeMap::new(),
            os: false,
        };
        for (k, v) in m {
            let field = format!("{path}.{k}");
            match (k.as_str(), v) {
                ("to", v) if text(&v).is_some() => img.to = sp(text(&v).unwrap_or_default()),
                ("dockerfile_path", v) if text(&v).is_some() => {
                    img.containerfile = text(&v).map(sp)
                }
                ("dockerfile_literal", v) if text(&v).is_some() => {
                    img.containerfile_literal = text(&v).map(sp)
                }
                ("context_dir", v) if text(&v).is_some() => img.context = text(&v).map(sp),
                ("from", v) if text(&v).is_some() => {
                    let name = text(&v).unwrap_or_default();
                    img.from = Some(self.resolve(file, &field, &name, bases, tos));
                }
                ("build_args", Value::Array(args)) => {
                    for (i, a) in args.into_iter().enumerate() {
                        let name = a.get("name").and_then(text);
                        let value = a.get("value").and_then(text);
                        match (name, value) {
                            (Some(n), Some(v)) => {
                                img.build_args.insert(n, v);
                            }
                            _ => self.note(
                                file,
                                format!("{field}[{i}]"),
                                "only {name, value} build arguments are supported",
                            ),
                        }
                        if let Value::Object(a) = a {
                            for k in a.keys().filter(|k| *k != "name" && *k != "value") {
                                self.note(
                                    file,
                                    format!("{field}[{i}].{k}"),
                                    "no forge.yaml equivalent",
                                );
                            }
                        }
                    }
                }
                ("inputs", Value::Object(inputs)) => {
                    for (name, input) in inputs {
                        let ipath = format!("{field}.{name}");
                        let Value::Object(input) = input else {
                            self.note(file, ipath, "not a mapping");
                            continue;
                        };
                        let mut as_ = Vec::new();
                        for (k, v) in input {
                            match (k.as_str(), v) {
                                ("as", Value::Array(a)) => as_.extend(a.iter().filter_map(text)),
                                (k, _) => self.note(
                                    file,
                                    format!("{ipath}.{k}"),
                                    if k == "paths" {
                                        "copying files out of another image is not supported"
                                    } else {
                                        "no forge.yaml equivalent"
                                    },
                                ),
                            }
                        }
                        if as_.is_empty() {
                            continue;
                        }
                        let key = self.resolve(file, &ipath, &name, bases, tos);
                        img.inputs.insert(key, RawInput { as_ });
                    }
                }
                (k, _) => {
                    let reason = match k {
                        "optional" => "every image is built",
                        "ref" => "components build one image set from one repository",
                        _ => "no forge.yaml equivalent",
                    };
                    self.note(file, field, reason);
                }
            }
        }
        if img.to.value.is_empty() {
            self.note(file, path, "image without `to`: skipped");
            return None;
        }
        if img.containerfile.is_none() && img.containerfile_literal.is_none() {
            img.containerfile = Some(sp("Dockerfile".to_string()));
        }
        Some(img)
    }

    fn target(
        &mut self,
        file: &str,
        path: &str,
        m: Map<String, Value>,
        bases: &BTreeMap<String, String>,
        tos: &BTreeSet<String>,
    ) -> Option<Target> {
        let mut t = Target {
            name: String::new(),
            disabled: false,
            excluded: Vec::new(),
            additional: BTreeMap::new(),
        };
        for (k, v) in m {
            let field = format!("{path}.{k}");
            match (k.as_str(), v) {
                ("name", v) if text(&v).is_some() => t.name = text(&v).unwrap_or_default(),
                ("disabled", Value::Bool(b)) => t.disabled = b,
                ("excluded_images", Value::Array(a)) => {
                    t.excluded.extend(a.iter().filter_map(text))
                }
                ("additional_images", Value::Object(a)) => {
                    for (tag, source) in a {
                        let source = text(&source).unwrap_or_default();
                        match bases.get(&source) {
                            Some(p) => {
                                t.additional.insert(tag, p.clone());
                            }
                            None => self.note(
                                file,
                                format!("{field}.{tag}"),
                                format!("'{source}' is not a base image with a pull spec"),
                            ),
                        }
                    }
                }
                ("namespace", _) => self.note(
                    file,
                    field,
                    "streams are named, not namespaced: the namespace is dropped",
                ),
                _ => self.note(file, field, "no forge.yaml equivalent"),
            }
        }
        let _ = tos;
        if t.name.is_empty() {
            self.note(file, path, "promotion target without a name: skipped");
            return None;
        }
        Some(t)
    }

    /// Adds the images of a file to the component of `org/repo`; returns the component's name
    /// and the tags of the file's images it builds.
    fn component(
        &mut self,
        file: &str,
        org: &str,
        repo: &str,
        images: Vec<RawImage>,
    ) -> (String, Vec<String>) {
        let mut own = Vec::new();
        let git = format!("https://github.com/{org}/{repo}");
        let name = match self.components.get(repo) {
            Some(c) if c.git != git => format!("{org}-{repo}"),
            _ => repo.to_string(),
        };
        let c = self.components.entry(name.clone()).or_insert(ComponentAcc {
            git,
            images: IndexMap::new(),
            branches: BTreeMap::new(),
        });
        for img in images {
            let to = img.to.value.clone();
            if let Some(other) = self.built.get(&to).filter(|o| **o != name) {
                self.notes.push(Note {
                    file: file.to_string(),
                    path: format!("images[to={to}]"),
                    reason: format!("image tag already built by component {other}: skipped"),
                });
                continue;
            }
            own.push(to.clone());
            match c.images.get(&to) {
                Some((first, from)) => {
                    let same = serde_json::to_value(first).ok() == serde_json::to_value(&img).ok();
                    if !same {
                        self.notes.push(Note {
                            file: file.to_string(),
                            path: format!("images[to={to}]"),
                            reason: format!(
                                "differs from its definition in {from}, which is kept (a component's images are the same in every stream)"
                            ),
                        });
                    }
                }
                None => {
                    self.built.insert(to.clone(), name.clone());
                    c.images.insert(to, (img, file.to_string()));
                }
            }
        }
        (name, own)
    }

    fn finish(self) -> Import {
        let all: Vec<String> = self.built.keys().cloned().collect();
        let streams = self
            .streams
            .into_iter()
            .map(|(name, s)| {
                let mut excluded = s.excluded;
                // Images the stream's files do not promote.
                excluded.extend(all.iter().filter(|t| !s.promoted.contains(*t)).cloned());
                let disabled = !s.enabled;
                let promotion = RawPromotion {
                    disabled,
                    excluded_images: if disabled {
                        Vec::new()
                    } else {
                        excluded.into_iter().map(sp).collect()
                    },
                    additional_images: s.additional.into_iter().map(|(k, v)| (k, sp(v))).collect(),
                };
                let stream = RawStream {
                    variant: sp(s.variant),
                    branch: Some(sp(s.branch)),
                    minor: s.minor.map(sp),
                    promotion: Some(promotion),
                    rebuild: None,
                    release: None,
                    os: None,
                };
                (name, stream)
            })
            .collect();
        let components = self
            .components
            .into_iter()
            .map(|(name, c)| {
                let component = RawComponent {
                    git: sp(c.git),
                    branch: (!c.branches.is_empty()).then(|| sp(c.branches)),
                    git_ref: None,
                    images: sp(c.images.into_values().map(|(i, _)| sp(i)).collect()),
                };
                (name, component)
            })
            .collect();
        Import {
            config: RawConfig {
                store: None,
                store_name: None,
                state: None,
                parallelism: None,
                publish: None,
                variants: self.variants,
                components,
                streams,
                leases: IndexMap::new(),
            },
            notes: self.notes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(files: &[(&str, &str)]) -> (crate::config::Config, String, Vec<Note>) {
        let files: Vec<(String, String)> = files
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect();
        let imp = import(&files).unwrap();
        let yaml = imp.to_yaml();
        let config = crate::config::parse(&yaml, "imported.yaml", std::path::Path::new("."))
            .unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        (config, yaml, imp.notes)
    }

    const META: &str = "zz_generated_metadata: { org: openshift, repo: mco, branch: release-4.16, variant: okd-scos }\n";

    #[test]
    fn stream_names_merge_shared_words() {
        assert_eq!(stream_name("okd-scos", "scos-4.17"), "okd-scos-4.17");
        assert_eq!(stream_name("okd", "4.13"), "okd-4.13");
        assert_eq!(
            stream_name("okd-scos", "scos-4.21-art"),
            "okd-scos-4.21-art"
        );
        assert_eq!(stream_name("default", "4.17"), "default-4.17");
    }

    #[test]
    fn current_shapes() {
        let (c, _, notes) = run(&[(
            "a.yaml",
            &format!(
                "{META}images:\n  items:\n  - {{ to: mco, dockerfile_path: Dockerfile.rhel7, context_dir: sub }}\n  bogus: 1\npromotion:\n  to:\n  - {{ name: scos-4.16, namespace: origin, excluded_images: [mco] }}\n"
            ),
        )]);
        let s = &c.streams["okd-scos-4.16"];
        assert_eq!(s.variant, "okd-scos");
        assert!(!s.promotion.disabled);
        assert!(s.images.iter().all(|i| !i.promoted));
        assert!(matches!(
            &c.components["mco"].images[0].recipe,
            crate::config::Recipe::Containerfile { context, containerfile }
                if context.to_str() == Some("sub") && containerfile.to_str() == Some("Dockerfile.rhel7")
        ));
        assert!(notes.iter().any(|n| n.path == "images.bogus"));
        assert!(notes.iter().any(|n| n.path == "promotion.to[0].namespace"));
    }

    #[test]
    fn legacy_shapes() {
        let (c, _, notes) = run(&[(
            "a.yaml",
            &format!(
                "{META}base_images:\n  base: {{ namespace: origin, name: scos-4.16, tag: base }}\nimages:\n- {{ to: mco, dockerfile_literal: 'FROM base', from: base, inputs: {{ base: {{ as: [x], paths: [] }} }} }}\npromotion:\n  name: scos-4.16\n  namespace: origin\n  disabled: true\n"
            ),
        )]);
        let s = &c.streams["okd-scos-4.16"];
        assert!(s.promotion.disabled);
        let img = &c.components["mco"].images[0];
        assert!(
            matches!(&img.recipe, crate::config::Recipe::ContainerfileLiteral { text, .. } if text == "FROM base")
        );
        let pull = "registry.ci.openshift.org/origin/scos-4.16:base";
        assert_eq!(img.from.as_deref(), Some(pull));
        assert_eq!(img.inputs[pull], vec!["x".to_string()]);
        assert!(notes
            .iter()
            .any(|n| n.path == "images[0].inputs.base.paths"));
    }

    #[test]
    fn parse_errors_name_the_place() {
        let e = import(&[("bad.yaml".into(), "images: [\n".into())]).unwrap_err();
        assert!(e.to_string().starts_with("bad.yaml:"), "{e}");
    }
}
