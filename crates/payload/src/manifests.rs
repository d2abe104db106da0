//! Operator manifests: collected from component images, renamed, rewritten and validated exactly as
//! `oc adm release new` does (payload-format.md §1.6), as pure functions over file contents.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use crate::error::{invalid, Result};
use crate::imagestream::ImageStream;
use crate::version::{ReleaseName, Versions, ALLOWED_KEYS};

/// A file of an operator's `/manifests`, or of the payload's `release-manifests/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestFile {
    /// The file name (no directory).
    pub name: String,
    /// The contents.
    pub data: Vec<u8>,
    /// Modification time, seconds since the epoch.
    pub mtime: u64,
}

/// The operator's own image-references file, consumed by rewriting and not copied.
pub const IMAGE_REFERENCES: &str = "image-references";

/// The largest manifest file an operator may ship (real payloads' largest CRDs are a few MiB).
pub const MAX_FILE: u64 = 32 << 20;
/// The most bytes of manifests one operator may ship.
pub const MAX_TOTAL: u64 = 256 << 20;

/// Read the regular files directly under `manifests/` from an uncompressed layer tar. Subdirectories,
/// links and whiteouts are ignored, as oc does. With several readers (layers, top first), the first
/// occurrence of a name wins.
pub fn files_in_layers(layers: Vec<Box<dyn Read + '_>>, what: &str) -> Result<Vec<ManifestFile>> {
    let mut out: BTreeMap<String, ManifestFile> = BTreeMap::new();
    let mut total = 0u64;
    for layer in layers {
        let mut archive = tar::Archive::new(layer);
        let entries = archive
            .entries()
            .map_err(|e| invalid(format!("{what}: cannot read layer: {e}")))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| invalid(format!("{what}: bad layer tar: {e}")))?;
            let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let path = path.trim_start_matches("./").trim_start_matches('/');
            let Some(name) = path.strip_prefix("manifests/") else {
                continue;
            };
            if name.is_empty() || name.contains('/') || name.starts_with(".wh.") {
                continue;
            }
            if !entry.header().entry_type().is_file() || out.contains_key(name) {
                continue;
            }
            let size = entry.size();
            total += size;
            if size > MAX_FILE || total > MAX_TOTAL {
                return Err(invalid(format!(
                    "{what}: manifests/{name} is {size} bytes ({total} in all so far); an operator's manifests may have at most {MAX_FILE} bytes per file and {MAX_TOTAL} in all"
                )));
            }
            let mut data = Vec::with_capacity(size as usize);
            entry
                .by_ref()
                .take(size)
                .read_to_end(&mut data)
                .map_err(|e| invalid(format!("{what}: cannot read manifests/{name}: {e}")))?;
            let mtime = entry.header().mtime().unwrap_or(0);
            out.insert(
                name.to_string(),
                ManifestFile {
                    name: name.to_string(),
                    data,
                    mtime,
                },
            );
        }
    }
    Ok(out.into_values().collect())
}

/// One operator image's manifests.
pub struct Operator<'a> {
    /// Its payload tag.
    pub tag: &'a str,
    /// Its `/manifests` files, including `image-references` if it ships one.
    pub files: &'a [ManifestFile],
}

/// What the rewriting needs to know about the release being built.
pub struct Context<'a> {
    /// The release name.
    pub release: &'a ReleaseName,
    /// Input tag → pull spec by digest.
    pub pullspecs: &'a BTreeMap<String, String>,
    /// Input tag → the versions its image declares.
    pub versions: &'a BTreeMap<String, Versions>,
    /// Fallback component versions (an input stream's `io.openshift.build.versions`).
    pub default_versions: &'a Versions,
    /// Leave references to missing tags unrewritten instead of failing.
    pub allow_missing_images: bool,
}

/// The result: the files of `release-manifests/` (besides image-references and release-metadata).
#[derive(Debug, Default)]
pub struct Rendered {
    /// Renamed, rewritten files in payload order.
    pub files: Vec<ManifestFile>,
    /// Tags some operator's image-references names (kept by pruning).
    pub referenced: BTreeSet<String>,
    /// Problems the CVO tolerates but users should fix.
    pub warnings: Vec<String>,
}

/// Checks one manifest (see [`validate`]); returns its warnings. [`Sources`](crate::source::Sources)
/// offers one that remembers files it has already seen valid.
pub type Validator<'a> = &'a (dyn Fn(&str, &[u8]) -> Result<Vec<String>> + Sync);

/// Rename, rewrite and validate the manifests of `operators` (sorted by tag), checking each manifest
/// with `validator` (e.g. `&validate`).
pub fn render(operators: &[Operator], ctx: &Context, validator: Validator) -> Result<Rendered> {
    let mut out = Rendered::default();
    let mut names = BTreeSet::new();
    // oc's `([\W]|^)0\.0\.1-snapshot([a-z0-9\-]*)`, with Go's ASCII classes.
    let version_re =
        regex::bytes::Regex::new(r"(?-u)(^|[^0-9A-Za-z_])0\.0\.1-snapshot([a-z0-9-]*)")
            .expect("regex");
    let release = ctx.release.without_build();
    for op in operators {
        if !op
            .tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            out.warnings.push(format!(
                "operator '{}': tags with characters outside [A-Za-z0-9-] break the CVO's grouping of manifests by component (0000_<level>_<component>_...)",
                op.tag
            ));
        }
        let refs = match op.files.iter().find(|f| f.name == IMAGE_REFERENCES) {
            Some(f) => Some(
                ImageStream::parse(
                    &format!("operator '{}': manifests/image-references", op.tag),
                    &f.data,
                )
                .map_err(invalid)?,
            ),
            None => None,
        };
        let rewrite = match &refs {
            Some(refs) => image_rewrite(op.tag, refs, ctx, &mut out.referenced)?,
            None => None,
        };
        let versions = match &refs {
            Some(refs) => Some(operator_versions(op.tag, refs, ctx)?),
            None => None,
        };
        for file in op.files.iter().filter(|f| f.name != IMAGE_REFERENCES) {
            let what = format!("operator '{}': manifests/{}", op.tag, file.name);
            let data = match std::str::from_utf8(&file.data) {
                Ok(text) => {
                    let text = match &rewrite {
                        Some(to) => rewrite_images(text, to),
                        None => text.to_string(),
                    };
                    substitute_versions(&what, &text, &version_re, &release, versions.as_ref())?
                        .into_bytes()
                }
                Err(_) => file.data.clone(),
            };
            if is_manifest(&file.name) {
                let warnings = validator(&what, &data)?;
                out.warnings
                    .extend(warnings.into_iter().map(|w| format!("{what}: {w}")));
            }
            let name = unique_name(&payload_name(op.tag, &file.name), &mut names);
            out.files.push(ManifestFile {
                name,
                data,
                mtime: file.mtime,
            });
        }
    }
    Ok(out)
}

/// Whether the CVO reads a file as a manifest.
pub fn is_manifest(name: &str) -> bool {
    [".yaml", ".yml", ".json"].iter().any(|e| name.ends_with(e))
}

/// `0000_` names stay; others become `0000_50_<tag>_<name>`.
fn payload_name(tag: &str, name: &str) -> String {
    if name.starts_with("0000_") {
        name.to_string()
    } else {
        format!("0000_50_{tag}_{name}")
    }
}

/// De-duplicate with `_2`, `_3`, ... before the extension (Go's `filepath.Ext`).
fn unique_name(name: &str, taken: &mut BTreeSet<String>) -> String {
    let (base, ext) = match name.rfind('.') {
        Some(i) => name.split_at(i),
        None => (name, ""),
    };
    let mut candidate = name.to_string();
    let mut n = 2;
    while taken.contains(&candidate) {
        candidate = format!("{base}_{n}{ext}");
        n += 1;
    }
    taken.insert(candidate.clone());
    candidate
}

/// What each source string of one operator's image-references becomes, longest source first (so
/// that a source that is a prefix of another never shadows it).
fn image_rewrite(
    op: &str,
    refs: &ImageStream,
    ctx: &Context,
    referenced: &mut BTreeSet<String>,
) -> Result<Option<Vec<(String, String)>>> {
    let mut by_source: BTreeMap<&str, &str> = BTreeMap::new();
    let mut to = Vec::new();
    for tag in &refs.spec.tags {
        // As oc: only DockerImage references are rewritten, and they must name something.
        let Some(from) = tag.from.as_ref().filter(|f| f.kind == "DockerImage") else {
            continue;
        };
        let source = from.name.as_str();
        if source.is_empty() {
            return Err(invalid(format!(
                "operator '{op}': manifests/image-references tag '{}' has an empty from.name",
                tag.name
            )));
        }
        if let Some(other) = by_source.insert(source, &tag.name) {
            return Err(invalid(format!(
                "operator '{op}': manifests/image-references tags '{other}' and '{}' both have the source '{source}'; each source may name only one tag",
                tag.name
            )));
        }
        let Some(pullspec) = ctx.pullspecs.get(&tag.name) else {
            if ctx.allow_missing_images {
                continue;
            }
            return Err(invalid(format!(
                "operator '{op}': manifests/image-references names tag '{}', but there is no input image tag named '{}'; add it to the inputs or pass --allow-missing-images",
                tag.name, tag.name
            )));
        };
        referenced.insert(tag.name.clone());
        to.push((source.to_string(), pullspec.clone()));
    }
    if to.is_empty() {
        return Ok(None);
    }
    to.sort_by_key(|(source, _)| std::cmp::Reverse(source.len()));
    Ok(Some(to))
}

/// Replace image references in one pass, as oc's pattern
/// `(^|\W)(SOURCE1|SOURCE2|…)(:tag)?(@algo:hex)?(\s|["']|$)` does with Go's ASCII classes: a source
/// counts only after a non-word character not consumed by the previous match (or at the start), may
/// carry a `:tag` or `@digest` (replaced too), and must be followed by whitespace, a quote or the end,
/// which the match consumes. Hand-written because compiling that pattern per operator cost more than
/// the whole rest of a rebuild.
fn rewrite_images(text: &str, to: &[(String, String)]) -> String {
    let b = text.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let span = |mut i: usize, ok: &dyn Fn(u8) -> bool| {
        while i < b.len() && ok(b[i]) {
            i += 1;
        }
        i
    };
    // For a reference that starts with `source` at `at`: where it ends, and where the match ends (after
    // the terminator it consumes).
    let matches_at = |at: usize, source: &str| -> Option<(usize, usize)> {
        let mut i = at + source.len();
        // oc: `(?:[:](TAG)|[@](DIGEST))?`, a tag of 1..128 characters or a digest whose algorithm
        // starts with a letter and whose hex has at least 2 digits.
        if b.get(i) == Some(&b':') && b.get(i + 1).copied().is_some_and(word) {
            let end = span(i + 1, &|c| word(c) || c == b'.' || c == b'-');
            if end - (i + 1) > 128 {
                return None;
            }
            i = end;
        } else if b.get(i) == Some(&b'@') && b.get(i + 1).is_some_and(u8::is_ascii_alphabetic) {
            let alg = span(i + 1, &|c| {
                c.is_ascii_alphanumeric() || matches!(c, b'+' | b'.' | b'-' | b'_')
            });
            let hex = span(alg + 1, &|c| c.is_ascii_hexdigit());
            if b.get(alg) == Some(&b':') && hex >= alg + 3 {
                i = hex;
            }
        }
        match b.get(i) {
            None => Some((i, i)),
            Some(b'\t' | b'\n' | b'\x0c' | b'\r' | b' ' | b'"' | b'\'') => Some((i, i + 1)),
            Some(_) => None,
        }
    };
    let mut out = String::with_capacity(text.len());
    let (mut copied, mut consumed, mut pos) = (0, 0, 0);
    while pos < b.len() {
        // The earliest occurrence of any source; at one position, the longest that matches.
        let next = to
            .iter()
            .filter_map(|(source, _)| text[pos..].find(source.as_str()).map(|i| pos + i))
            .min();
        let Some(at) = next else { break };
        let boundary = at == 0 || (at > consumed && !word(b[at - 1]));
        let hit = to
            .iter()
            .filter(|(source, _)| boundary && text[at..].starts_with(source.as_str()))
            .find_map(|(source, pullspec)| matches_at(at, source).map(|ends| (ends, pullspec)));
        match hit {
            Some(((reference_end, match_end), pullspec)) => {
                out.push_str(&text[copied..at]);
                out.push_str(pullspec);
                copied = reference_end;
                consumed = match_end;
                pos = match_end;
            }
            None => pos = at + text[at..].chars().next().map_or(1, char::len_utf8),
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// Component versions an operator's `0.0.1-snapshot-<key>` references resolve to: from the tags its
/// image-references lists, then the input defaults.
fn operator_versions(op: &str, refs: &ImageStream, ctx: &Context) -> Result<Versions> {
    let mut found: BTreeMap<String, (String, &str)> = BTreeMap::new();
    for tag in &refs.spec.tags {
        let Some(versions) = ctx.versions.get(&tag.name) else {
            continue;
        };
        for (key, value) in versions {
            if key == "kubectl" && !matches!(tag.name.as_str(), "cli" | "cli-artifacts") {
                continue;
            }
            match found.get(key) {
                Some((v, other)) if v != value && key != "machine-os" => {
                    return Err(invalid(format!(
                        "operator '{op}': image-references tags '{other}' and '{}' report different versions of '{key}' ({v} and {value}); component versions must agree",
                        tag.name
                    )));
                }
                Some(_) => {}
                None => {
                    found.insert(key.clone(), (value.clone(), &tag.name));
                }
            }
        }
    }
    let mut out = ctx.default_versions.clone();
    out.extend(found.into_iter().map(|(k, (v, _))| (k, v)));
    Ok(out)
}

fn substitute_versions(
    what: &str,
    text: &str,
    re: &regex::bytes::Regex,
    release: &str,
    versions: Option<&Versions>,
) -> Result<String> {
    let mut err = None;
    let out = re.replace_all(text.as_bytes(), |c: &regex::bytes::Captures| {
        let prefix = &c[1];
        let suffix = String::from_utf8_lossy(&c[2]);
        let value = match suffix.strip_prefix('-') {
            // `0.0.1-snapshot` alone: the release name.
            None if suffix.is_empty() => Ok(release.to_string()),
            // `0.0.1-snapshot2` and the like are not references: left alone, as oc does.
            None => return c[0].to_vec(),
            Some("") => Err("empty version references are not allowed".to_string()),
            Some(key) => match versions.and_then(|v| v.get(key)) {
                Some(v) if ALLOWED_KEYS.contains(&key) => Ok(v.clone()),
                _ if versions.is_none() => Err(format!(
                    "unknown version reference '0.0.1-snapshot-{key}': this operator ships no image-references file to take component versions from"
                )),
                _ if ALLOWED_KEYS.contains(&key) => Err(format!(
                    "unknown version reference '0.0.1-snapshot-{key}': no image its image-references lists reports a '{key}' version"
                )),
                _ => Err(format!(
                    "unknown version reference '0.0.1-snapshot-{key}': known keys are {}",
                    ALLOWED_KEYS.join(", ")
                )),
            },
        };
        match value {
            Ok(v) => [prefix, v.as_bytes()].concat(),
            Err(e) => {
                err.get_or_insert_with(|| invalid(format!("{what}: {e}")));
                c[0].to_vec()
            }
        }
    });
    match err {
        Some(e) => Err(e),
        None => String::from_utf8(out.into_owned())
            .map_err(|_| invalid(format!("{what}: version substitution broke UTF-8"))),
    }
}

/// Check one manifest of `what`, returning warnings (problems the CVO tolerates). Every manifest must
/// parse, and its first document must be an object with `kind` and `apiVersion`.
/// Following the CVO, one file may not hold the same object twice.
pub fn validate(what: &str, data: &[u8]) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    let text = std::str::from_utf8(data).map_err(|_| invalid(format!("{what}: not UTF-8 text")))?;
    let parsed = if what.ends_with(".json") {
        serde_json::from_str(text)
            .map(|d| vec![d])
            .map_err(|e| e.to_string())
    } else {
        serde_saphyr::from_multiple(text).map_err(|e| e.to_string())
    };
    let docs: Vec<serde_json::Value> =
        parsed.map_err(|e| invalid(format!("{what}: does not parse as YAML or JSON: {e}")))?;
    let docs: Vec<&serde_json::Value> = docs.iter().filter(|d| !d.is_null()).collect();
    let Some(first) = docs.first() else {
        return Err(invalid(format!(
            "{what}: empty manifest; manifests must contain Kubernetes API objects with 'kind' and 'apiVersion' set"
        )));
    };
    for field in ["kind", "apiVersion"] {
        if first
            .get(field)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .is_empty()
        {
            return Err(invalid(format!(
                "{what}: no '{field}'; manifests must contain Kubernetes API objects with 'kind' and 'apiVersion' set"
            )));
        }
    }
    let mut seen = BTreeSet::new();
    for doc in &docs {
        let s =
            |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).unwrap_or("").to_string();
        let meta = doc.get("metadata");
        // The CVO's resource id: group (from apiVersion), kind, namespace, name.
        let api_version = s(doc.get("apiVersion"));
        let group = api_version
            .rsplit_once('/')
            .map_or("", |(g, _)| g)
            .to_string();
        let id = (
            s(doc.get("kind")),
            s(meta.and_then(|m| m.get("namespace"))),
            s(meta.and_then(|m| m.get("name"))),
            group,
        );
        if !seen.insert(id.clone()) {
            return Err(invalid(format!(
                "{what}: {} {} {}/{} appears twice in one file; the CVO rejects such a payload",
                api_version, id.0, id.1, id.2
            )));
        }
        let has_include = meta
            .and_then(|m| m.get("annotations"))
            .and_then(|a| a.as_object())
            .is_some_and(|a| {
                a.keys()
                    .any(|k| k.starts_with("include.release.openshift.io/"))
            });
        if !has_include {
            warnings.push(format!(
                "{} {} has no include.release.openshift.io/<profile> annotation; the CVO will skip it",
                id.0, id.2
            ));
        }
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, text: &str) -> ManifestFile {
        ManifestFile {
            name: name.into(),
            data: text.as_bytes().to_vec(),
            mtime: 1,
        }
    }

    const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  annotations:\n    include.release.openshift.io/self-managed-high-availability: \"true\"\n";

    fn ctx<'a>(
        release: &'a ReleaseName,
        pullspecs: &'a BTreeMap<String, String>,
        versions: &'a BTreeMap<String, Versions>,
        defaults: &'a Versions,
    ) -> Context<'a> {
        Context {
            release,
            pullspecs,
            versions,
            default_versions: defaults,
            allow_missing_images: false,
        }
    }

    #[test]
    fn rewrites_only_in_allowed_contexts() {
        let release = ReleaseName::parse("4.17.0-0.okd-2026-01-01-000000+b1").unwrap();
        let pullspecs = BTreeMap::from([("os".to_string(), "q.io/c@sha256:aa".to_string())]);
        let versions = BTreeMap::from([(
            "os".to_string(),
            Versions::from([("machine-os".into(), "9.0.1".into())]),
        )]);
        let defaults = Versions::new();
        let refs = "kind: ImageStream\napiVersion: image.openshift.io/v1\nspec:\n  tags:\n  - name: os\n    from: {kind: DockerImage, name: 'p.org/ns:os'}\n";
        let body = format!("{CM}data:\n  a: p.org/ns:os\n  b: \"p.org/ns:os@sha256:0123\"\n  c: [p.org/ns:os]\n  d: p.org/ns:os,x\n  e: p.org/ns:osx\n  v: 0.0.1-snapshot\n  w: 0.0.1-snapshot-machine-os\n");
        let files = [file(IMAGE_REFERENCES, refs), file("cm.yaml", &body)];
        let out = render(
            &[Operator {
                tag: "mco",
                files: &files,
            }],
            &ctx(&release, &pullspecs, &versions, &defaults),
            &validate,
        )
        .unwrap();
        assert_eq!(out.files.len(), 1);
        assert_eq!(out.files[0].name, "0000_50_mco_cm.yaml");
        let text = String::from_utf8(out.files[0].data.clone()).unwrap();
        assert!(text.contains("a: q.io/c@sha256:aa\n"), "{text}");
        assert!(text.contains("b: \"q.io/c@sha256:aa\""), "{text}");
        assert!(text.contains("c: [p.org/ns:os]"), "{text}");
        assert!(text.contains("d: p.org/ns:os,x"), "{text}");
        assert!(text.contains("e: p.org/ns:osx"), "{text}");
        assert!(
            text.contains("v: 4.17.0-0.okd-2026-01-01-000000\n"),
            "{text}"
        );
        assert!(text.contains("w: 9.0.1\n"), "{text}");
        assert_eq!(out.referenced, BTreeSet::from(["os".to_string()]));
        assert!(out.warnings.is_empty(), "{:?}", out.warnings);
    }

    #[test]
    fn one_pass_over_all_sources_like_oc() {
        let release = ReleaseName::parse("4.17.0").unwrap();
        let pullspecs = BTreeMap::from([
            ("a".to_string(), "q/a@sha256:1".to_string()),
            ("ab".to_string(), "q/ab@sha256:2".to_string()),
        ]);
        let (versions, defaults) = (BTreeMap::new(), Versions::new());
        let refs = "kind: ImageStream\napiVersion: image.openshift.io/v1\nspec:\n  tags:\n  - name: a\n    from: {kind: DockerImage, name: 'p/x:a'}\n  - name: ab\n    from: {kind: DockerImage, name: 'p/x:ab'}\n";
        let body = format!("{CM}data:\n  one: p/x:ab\n  two: p/x:a\n  both: p/x:a p/x:ab\n");
        let files = [file(IMAGE_REFERENCES, refs), file("cm.yaml", &body)];
        let op = [Operator {
            tag: "op",
            files: &files,
        }];
        let out = render(
            &op,
            &ctx(&release, &pullspecs, &versions, &defaults),
            &validate,
        )
        .unwrap();
        let text = String::from_utf8(out.files[0].data.clone()).unwrap();
        assert!(text.contains("one: q/ab@sha256:2\n"), "{text}");
        assert!(text.contains("two: q/a@sha256:1\n"), "{text}");
        // As in oc's single pass, the space after the first match is consumed, so the second
        // reference has no boundary before it and stays.
        assert!(text.contains("both: q/a@sha256:1 p/x:ab\n"), "{text}");
    }

    #[test]
    fn tags_the_cvo_cannot_group_are_warned_about() {
        let release = ReleaseName::parse("4.17.0").unwrap();
        let (pullspecs, versions, defaults) = (BTreeMap::new(), BTreeMap::new(), Versions::new());
        let files = [file("cm.yaml", CM)];
        let c = ctx(&release, &pullspecs, &versions, &defaults);
        let warnings = |tag: &str| {
            render(&[Operator { tag, files: &files }], &c, &validate)
                .unwrap()
                .warnings
        };
        assert!(warnings("my-operator").is_empty());
        let w = warnings("my_operator");
        assert!(w.len() == 1 && w[0].contains("'my_operator'"), "{w:?}");
    }

    #[test]
    fn rewriting_follows_the_pattern_oc_uses() {
        let to = [
            ("p/x:ab".to_string(), "N2".to_string()),
            ("p/x".to_string(), "N1".to_string()),
        ];
        for (input, want) in [
            ("p/x", "N1"),
            ("p/x\n", "N1\n"),
            ("image: p/x:latest\n", "image: N1\n"),
            ("image: 'p/x@sha256:0a1b'", "image: 'N1'"),
            ("p/x:ab p/x:ab", "N2 p/x:ab"),
            ("p/x:ab\np/x:ab", "N2\np/x:ab"),
            ("p/x:ab\n p/x:ab", "N2\n N2"),
            ("é p/x:ab é", "é N2 é"),
            // Go's \W is ASCII: any other character, é included, is a boundary.
            ("ép/x", "éN1"),
            ("[p/x]", "[p/x]"),
            ("p/x,", "p/x,"),
            ("_p/x", "_p/x"),
            ("p/xy", "p/xy"),
            ("p/x@sha256:zz ", "p/x@sha256:zz "),
            // A tag or a digest, not both; digests have at least two hex digits.
            ("p/x:v1@sha256:ab ", "p/x:v1@sha256:ab "),
            ("p/x@sha256:a ", "p/x@sha256:a "),
            ("p/x@sha256:ab ", "N1 "),
        ] {
            assert_eq!(rewrite_images(input, &to), want, "{input:?}");
        }
    }

    #[test]
    fn versions_and_duplicates_follow_oc_and_the_cvo() {
        let re = regex::bytes::Regex::new(r"(?-u)(^|[^0-9A-Za-z_])0\.0\.1-snapshot([a-z0-9-]*)")
            .unwrap();
        let v = Versions::from([("kubernetes".to_string(), "1.31.1".to_string())]);
        let sub = |t: &str| substitute_versions("f", t, &re, "4.17.0", Some(&v));
        assert_eq!(
            sub("a: 0.0.1-snapshot\nb: 0.0.1-snapshot-kubernetes").unwrap(),
            "a: 4.17.0\nb: 1.31.1"
        );
        assert_eq!(
            sub("0.0.1-snapshot2 x0.0.1-snapshot").unwrap(),
            "0.0.1-snapshot2 x0.0.1-snapshot"
        );
        for bad in ["0.0.1-snapshot-", "0.0.1-snapshot-KUBE"] {
            let e = sub(bad).unwrap_err().to_string();
            assert!(e.contains("empty version references"), "{bad}: {e}");
        }
        // Same kind and name in two API groups are two objects (the CVO keys by group too).
        let two = "apiVersion: config.openshift.io/v1\nkind: Network\nmetadata: {name: cluster}\n---\napiVersion: operator.openshift.io/v1\nkind: Network\nmetadata: {name: cluster}\n";
        validate("n.yaml", two.as_bytes()).unwrap();
    }

    #[test]
    fn oversized_operator_manifests_are_refused_before_reading() {
        let mut h = tar::Header::new_gnu();
        h.set_path("manifests/huge.yaml").unwrap();
        h.set_size(1 << 46);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        let bytes = h.as_bytes().to_vec();
        let e = files_in_layers(vec![Box::new(&bytes[..])], "operator 'x'")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("operator 'x': manifests/huge.yaml is 70368744177664 bytes"),
            "{e}"
        );
    }

    #[test]
    fn names_are_prefixed_and_deduplicated() {
        let mut taken = BTreeSet::new();
        assert_eq!(
            unique_name(&payload_name("a", "x.yaml"), &mut taken),
            "0000_50_a_x.yaml"
        );
        assert_eq!(
            unique_name(&payload_name("b", "0000_70_s.yaml"), &mut taken),
            "0000_70_s.yaml"
        );
        assert_eq!(
            unique_name(&payload_name("c", "0000_70_s.yaml"), &mut taken),
            "0000_70_s_2.yaml"
        );
        assert_eq!(
            unique_name("0000_70_s.yaml", &mut taken),
            "0000_70_s_3.yaml"
        );
        assert_eq!(unique_name("README", &mut taken), "README");
        assert_eq!(unique_name("README", &mut taken), "README_2");
    }

    #[test]
    fn errors_name_the_operator_and_file() {
        let release = ReleaseName::parse("4.17.0").unwrap();
        let pullspecs = BTreeMap::from([
            ("a".to_string(), "q/a@sha256:1".to_string()),
            ("b".to_string(), "q/b@sha256:2".to_string()),
        ]);
        let versions = BTreeMap::from([
            (
                "a".to_string(),
                Versions::from([("kubernetes".into(), "1.31.1".into())]),
            ),
            (
                "b".to_string(),
                Versions::from([("kubernetes".into(), "1.30.0".into())]),
            ),
        ]);
        let defaults = Versions::new();
        let c = ctx(&release, &pullspecs, &versions, &defaults);
        let run = |files: &[ManifestFile]| {
            render(&[Operator { tag: "op", files }], &c, &validate)
                .unwrap_err()
                .to_string()
        };
        let refs = |tags: &[(&str, &str)]| {
            let mut s = "kind: ImageStream\napiVersion: image.openshift.io/v1\nspec:\n  tags:\n"
                .to_string();
            for (n, f) in tags {
                s += &format!("  - name: {n}\n    from: {{kind: DockerImage, name: '{f}'}}\n");
            }
            file(IMAGE_REFERENCES, &s)
        };
        let e = run(&[file("x.yaml", "metadata: {name: x}\n")]);
        assert!(
            e.contains("operator 'op': manifests/x.yaml: no 'kind'"),
            "{e}"
        );
        let e = run(&[refs(&[("zz", "p/zz")])]);
        assert!(e.contains("no input image tag named 'zz'"), "{e}");
        let e = run(&[refs(&[("a", "p/same"), ("b", "p/same")])]);
        assert!(e.contains("'a' and 'b'") && e.contains("'p/same'"), "{e}");
        let e = run(&[
            refs(&[("a", "p/a")]),
            file("v.yaml", &format!("{CM}data: {{v: 0.0.1-snapshot-foo}}\n")),
        ]);
        assert!(
            e.contains("manifests/v.yaml: unknown version reference '0.0.1-snapshot-foo'"),
            "{e}"
        );
        let e = run(&[refs(&[("a", "p/a"), ("b", "p/b")])]);
        assert!(
            e.contains("'a' and 'b' report different versions of 'kubernetes'"),
            "{e}"
        );
        let e = run(&[file(
            "v.yaml",
            &format!("{CM}data: {{v: 0.0.1-snapshot-kubernetes}}\n"),
        )]);
        assert!(e.contains("ships no image-references"), "{e}");
        let e = run(&[file("d.yaml", &format!("{CM}---\n{CM}"))]);
        assert!(e.contains("ConfigMap /x appears twice"), "{e}");
    }
}
