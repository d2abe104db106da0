//! `okd-forge release new|info|extract|diff` against real component images (testkit::release) in an
//! OCI layout store, checked against the payload format of `oc adm release` (the payload-format spec,
//! §1, §3 and §4): golden files for what the CVO and Cincinnati read,
//! the layer byte layout, a real registry read back by skopeo, manifest lists, every input error, and
//! an extractor that refuses to write outside its directory.
//!
//! Golden files live in `tests/golden/release/`; `UPDATE_GOLDEN=1 cargo test --test release` rewrites
//! them (review the diff against the spec before committing).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::{s, Forge, CREATED};
use oci::{Digest, Layout};
use serde_json::{json, Value};
use testkit::release::{
    self as fx, broken, image_parts, layer_entries, new_args, Entry, ImageParts, Inputs,
    LayerEntry, ReleaseSet,
};
use testkit::{file_names, skopeo, skopeo_digest, RegistryServer};

/// The release name of most tests.
const NAME: &str = "4.17.0-okd-scos.1";
/// `--previous` as given (unsorted; `.10` sorts before `.9` as strings).
const PREVIOUS: &str = "4.17.0-okd-scos.0,4.16.0-okd-scos.9,4.16.0-okd-scos.10";
/// `--metadata` as given (keys not sorted).
const METADATA: &str = r#"{"url":"https://github.com/okd-project/okd/releases/tag/4.17.0-okd-scos.1","io.openshift.upgrades.graph.release.channels":"stable-4"}"#;
/// The arguments of the standard build beyond the inputs: `--include installer`, `--previous`,
/// `--metadata`.
const STANDARD_ARGS: &[&str] = &[
    "--include",
    "installer",
    "--previous",
    PREVIOUS,
    "--metadata",
    METADATA,
];

/// The files of release-manifests after the three leading entries, in layer order: operators by tag,
/// each one's files by source name; `0000_` names kept, others prefixed `0000_50_<tag>_`, the MCO's
/// `0000_70_shared.yaml` de-duplicated; no image-references, symlink, subdirectory or stale file.
const MANIFEST_FILES: &[&str] = &[
    "0000_07_cluster-network-operator_01_namespace.yaml",
    "0000_07_cluster-network-operator_02_config.json",
    "0000_70_shared.yaml",
    "0000_50_cluster-network-operator_clusteroperator.yaml",
    "0000_70_shared_2.yaml",
    "0000_80_machine-config_00_namespace.yaml",
    "0000_80_machine-config_01_osimageurl.yaml",
    "0000_50_machine-config-operator_README.md",
    "0000_50_machine-config-operator_clusteroperator.yaml",
];

// ------------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------------

/// The standard tags but `pruned`, in order. A standard build with `--include installer` keeps all
/// but `pod` (referenced by the MCO's image-references, operators, the base, and `installer`).
fn standard_tags_but(pruned: &[&str]) -> Vec<&'static str> {
    fx::STANDARD_TAGS
        .iter()
        .copied()
        .filter(|t| !pruned.contains(t))
        .collect()
}

/// Write `set` into `f`'s store and a mapping file named `mapping`; returns the inputs and the
/// mapping file path.
fn inputs(f: &Forge, set: &ReleaseSet, mapping: &str) -> (Inputs, String) {
    let inputs = set.write(&f.path("store"));
    let file = inputs.write_mapping(&f.path(mapping));
    (inputs, file)
}

/// A built payload in an OCI layout.
struct Built {
    /// The layout directory.
    dir: PathBuf,
    /// The digest `release new` printed.
    digest: Digest,
    /// The whole stdout line.
    line: String,
}

impl Built {
    /// The payload `release new` wrote into `dir`, from its stdout (`DIGEST NAME CREATED`).
    fn parse(dir: PathBuf, stdout: &str) -> Built {
        let line = stdout.trim_end().to_string();
        let digest: Digest = line
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap_or_else(|e| panic!("first field of {line:?} is not a digest: {e}"));
        Built { dir, digest, line }
    }

    fn layout(&self) -> Layout {
        Layout::open(&self.dir).expect("payload layout")
    }

    /// `oci:DIR:NAME`.
    fn reference(&self, name: &str) -> String {
        format!("oci:{}:{name}", self.dir.display())
    }

    fn parts(&self) -> ImageParts {
        image_parts(&self.layout(), &self.digest)
    }

    /// The entries of the top layer.
    fn top(&self) -> Vec<LayerEntry> {
        let parts = self.parts();
        layer_entries(&self.layout(), parts.layers.last().expect("a layer"))
    }
}

/// Run `release new` (with SOURCE_DATE_EPOCH) into `oci:<f>/<out>`, expecting one output line.
fn build(f: &Forge, name: &str, out: &str, mapping: &str, extra: &[&str]) -> Built {
    let dir = f.path(out);
    let to = format!("oci:{}", dir.display());
    let stdout = f.ok(&new_args(name, &to, mapping, f.path("store"), extra));
    assert_eq!(stdout.lines().count(), 1, "one line expected: {stdout}");
    Built::parse(dir, &stdout)
}

/// `release new` with `args` (the inputs and options) into `oci:<f>/<out>`, with `f`'s store.
fn build_with(f: &Forge, out: &str, args: &[&str]) -> Built {
    let dir = f.path(out);
    let to = format!("oci:{}", dir.display());
    let store = s(&f.path("store"));
    let mut all = vec!["release", "new", "--to", &to, "--store", &store];
    all.extend_from_slice(args);
    Built::parse(dir, &f.ok(&all))
}

/// The standard build: all standard tags, `--include installer`, `--previous`, `--metadata`.
fn standard_build(f: &Forge) -> (Inputs, Built) {
    let (inputs, mapping) = inputs(f, &ReleaseSet::standard("amd64"), "mapping.txt");
    let built = build(f, NAME, "payload", &mapping, STANDARD_ARGS);
    (inputs, built)
}

fn entry<'a>(entries: &'a [LayerEntry], file: &str) -> &'a LayerEntry {
    let path = format!("release-manifests/{file}");
    entries
        .iter()
        .find(|e| e.path == path)
        .unwrap_or_else(|| panic!("{path} not in the payload layer"))
}

fn parse_json(e: &LayerEntry) -> Value {
    serde_json::from_slice(&e.contents)
        .unwrap_or_else(|err| panic!("{} is not JSON ({err}):\n{}", e.path, e.text()))
}

/// Compare `actual` with the golden file `name`, or rewrite it when UPDATE_GOLDEN=1.
fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/release")
        .join(name);
    if std::env::var("UPDATE_GOLDEN").as_deref() == Ok("1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "golden file {} ({e}); create it with UPDATE_GOLDEN=1 and review it",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{name} differs from its golden file {}; if the change is intended, rerun with \
         UPDATE_GOLDEN=1 and review the diff.\n--- golden\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

/// The destination layout `dir` holds no image: absent, or an empty index.
fn assert_nothing_written(dir: &Path) {
    if !dir.join("index.json").exists() {
        return;
    }
    let layout = Layout::open(dir).expect("layout");
    let index = layout.index().expect("index");
    assert!(
        index.is_empty(),
        "a failed build left images in {}: {index:?}",
        dir.display()
    );
}

/// The tag names of an image-references document.
fn tag_names(refs: &Value) -> Vec<String> {
    refs["spec"]["tags"]
        .as_array()
        .expect("spec.tags")
        .iter()
        .map(|t| t["name"].as_str().expect("tag name").to_string())
        .collect()
}

fn tag<'a>(refs: &'a Value, name: &str) -> &'a Value {
    refs["spec"]["tags"]
        .as_array()
        .expect("spec.tags")
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no tag {name} in image-references"))
}

/// The annotations oc derives from a component's labels: the three commit annotations always
/// (possibly empty), versions and display names when present.
fn expected_annotations(labels: &BTreeMap<String, String>) -> Value {
    let mut a = serde_json::Map::new();
    for k in [fx::LABEL_COMMIT_ID, fx::LABEL_COMMIT_REF, fx::LABEL_SOURCE] {
        a.insert(k.into(), json!(labels.get(k).cloned().unwrap_or_default()));
    }
    for k in [fx::LABEL_VERSIONS, fx::LABEL_DISPLAY_NAMES] {
        if let Some(v) = labels.get(k) {
            a.insert(k.into(), json!(v));
        }
    }
    Value::Object(a)
}

/// The image-references oc writes for `inputs` restricted to `kept` (spec §1.4), field by field.
fn expected_image_references(inputs: &Inputs, kept: &[&str], name: &str) -> Value {
    let tags: Vec<Value> = kept
        .iter()
        .map(|t| {
            let c = inputs.component(t);
            json!({
                "name": t,
                "annotations": expected_annotations(&c.labels),
                "from": { "kind": "DockerImage", "name": c.pullspec },
                "generation": null,
                "importPolicy": {},
                "referencePolicy": { "type": "" },
            })
        })
        .collect();
    json!({
        "kind": "ImageStream",
        "apiVersion": "image.openshift.io/v1",
        "metadata": { "name": name, "creationTimestamp": CREATED },
        "spec": { "lookupPolicy": { "local": false }, "tags": tags },
        "status": { "dockerImageRepository": "" },
    })
}

/// `metadata.annotations` absent, null or `{}` all mean "none": drop it to compare.
fn without_empty_is_annotations(mut refs: Value) -> Value {
    let m = refs["metadata"].as_object_mut().expect("metadata");
    if m.get("annotations")
        .is_some_and(|a| a.is_null() || a.as_object().is_some_and(|o| o.is_empty()))
    {
        m.remove("annotations");
    }
    refs
}

/// Lines of a text report, split on runs of whitespace.
fn rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// The value after `Key:` on the first line that starts (after indentation) with it.
fn field<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .map(str::trim_start)
        .find_map(|l| l.strip_prefix(key))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no line {key:?} in:\n{text}"))
}

/// Names in a JSON array of strings or of objects with `name`.
fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|e| match e {
            Value::String(s) => s.clone(),
            o => o["name"]
                .as_str()
                .unwrap_or_else(|| panic!("no name in {o}"))
                .to_string(),
        })
        .collect()
}

// ------------------------------------------------------------------------------------------------
// release new: contents
// ------------------------------------------------------------------------------------------------

#[test]
fn payload_contents_match_golden_files_and_the_spec() {
    let f = Forge::reproducible();
    let (inputs, built) = standard_build(&f);
    let top = built.top();

    // File list: no stale lower-layer file, subdirectory, symlink, operator image-references or CVO
    // manifest.
    let names: Vec<&str> = top.iter().map(|e| e.path.as_str()).collect();
    for absent in ["stale", "ignored", "_link", "cluster-version-operator"] {
        assert!(
            !names.iter().any(|n| n.contains(absent)),
            "{absent} in {names:?}"
        );
    }
    golden("files.txt", &(names.join("\n") + "\n"));
    let mut expected = vec![
        "release-manifests".to_string(),
        "release-manifests/image-references".into(),
        "release-manifests/release-metadata".into(),
    ];
    expected.extend(
        MANIFEST_FILES
            .iter()
            .map(|m| format!("release-manifests/{m}")),
    );
    assert_eq!(names, expected);

    // image-references: exactly what oc writes (§1.4).
    let refs_entry = entry(&top, "image-references");
    golden("image-references", &refs_entry.text());
    let refs = parse_json(refs_entry);
    let kept = standard_tags_but(&["pod"]);
    assert_eq!(tag_names(&refs), kept, "tags sorted by name, pod pruned");
    assert_eq!(
        without_empty_is_annotations(refs.clone()),
        expected_image_references(&inputs, &kept, NAME)
    );
    // Two-space indentation, as Go's json.MarshalIndent.
    assert!(
        refs_entry
            .text()
            .starts_with("{\n  \"kind\": \"ImageStream\""),
        "{}",
        refs_entry.text()
    );

    // release-metadata (§1.5).
    let meta_entry = entry(&top, "release-metadata");
    golden("release-metadata", &meta_entry.text());
    let meta = parse_json(meta_entry);
    assert_eq!(
        meta,
        json!({
            "kind": "cincinnati-metadata-v0",
            "version": NAME,
            "previous": ["4.16.0-okd-scos.10", "4.16.0-okd-scos.9", "4.17.0-okd-scos.0"],
            "metadata": {
                "url": "https://github.com/okd-project/okd/releases/tag/4.17.0-okd-scos.1",
                "io.openshift.upgrades.graph.release.channels": "stable-4",
            },
        })
    );
    assert_eq!(meta["version"], refs["metadata"]["name"]);
    assert!(meta.get("next").is_none(), "next is omitted when empty");

    // Rewritten manifests (§1.6 steps 5 and 6).
    let osimageurl = entry(&top, "0000_80_machine-config_01_osimageurl.yaml").text();
    golden("0000_80_machine-config_01_osimageurl.yaml", &osimageurl);
    let p = fx::PLACEHOLDER;
    let want = fx::mco_osimageurl()
        .replace(
            "releaseVersion: 0.0.1-snapshot",
            &format!("releaseVersion: {NAME}"),
        )
        .replace(
            &format!("baseOSContainerImage: \"{p}:stream-coreos\""),
            &format!(
                "baseOSContainerImage: \"{}\"",
                inputs.pullspec("stream-coreos")
            ),
        )
        .replace(
            &format!("osImageURL: {p}:stream-coreos\n"),
            &format!("osImageURL: {}\n", inputs.pullspec("stream-coreos")),
        )
        .replace(
            &format!("'{p}:machine-config-operator@sha256:{}'", "0".repeat(64)),
            &format!("'{}'", inputs.pullspec("machine-config-operator")),
        )
        .replace(
            "cliImage: quay.io/openshift/origin-cli:latest",
            &format!("cliImage: {}", inputs.pullspec("cli")),
        );
    assert_eq!(osimageurl, want, "only the allowed contexts are rewritten");
    assert!(osimageurl.contains(&format!("inBrackets: \"[{p}:stream-coreos]\"")));
    assert!(osimageurl.contains(&format!("withComma: {p}:stream-coreos,extensions")));
    assert!(osimageurl.contains(&format!("notListed: {p}:not-listed")));

    let mco_co = entry(&top, "0000_50_machine-config-operator_clusteroperator.yaml").text();
    golden(
        "0000_50_machine-config-operator_clusteroperator.yaml",
        &mco_co,
    );
    for line in [
        format!("version: \"{NAME}\""),
        format!("version: \"{}\"", fx::MACHINE_OS),
        format!("version: {}", fx::KUBERNETES),
        format!("version: {}", fx::KUBECTL),
    ] {
        assert!(mco_co.contains(&line), "{line} missing in:\n{mco_co}");
    }
    assert!(!mco_co.contains("0.0.1-snapshot"), "{mco_co}");
    let cno_co = entry(
        &top,
        "0000_50_cluster-network-operator_clusteroperator.yaml",
    )
    .text();
    assert!(cno_co.contains(&format!("version: {NAME}\n")), "{cno_co}");
    let cno_json = entry(&top, "0000_07_cluster-network-operator_02_config.json").text();
    assert!(
        cno_json.contains(&format!("\"version\": \"{NAME}\"")),
        "{cno_json}"
    );

    // The shared name: the earlier tag keeps it, the later gets _2.
    assert!(entry(&top, "0000_70_shared.yaml")
        .text()
        .contains("owner: cno"));
    assert!(entry(&top, "0000_70_shared_2.yaml")
        .text()
        .contains("owner: mco"));
    // README is copied verbatim; nothing else from the MCO leaks in.
    assert_eq!(
        entry(&top, "0000_50_machine-config-operator_README.md").contents,
        b"# machine-config-operator manifests\n\nThese files are applied by the cluster-version-operator; this one is not a manifest.\n"
    );
}

#[test]
fn payload_layer_and_config_are_built_like_oc() {
    let f = Forge::reproducible();
    let (inputs, built) = standard_build(&f);
    let layout = built.layout();
    assert_eq!(built.line, format!("{} {NAME} {CREATED}", built.digest));

    // The destination tag defaults to the name.
    assert_eq!(
        layout
            .resolve(Some(&oci::Selector::Tag(NAME.into())))
            .expect("tag NAME")
            .digest,
        built.digest
    );

    let parts = built.parts();
    assert_eq!(parts.manifest.media_type, oci::media_type::DOCKER_MANIFEST);
    assert_eq!(parts.json["mediaType"], oci::media_type::DOCKER_MANIFEST);
    let cfg_desc = &parts.json["config"];
    assert_eq!(cfg_desc["mediaType"], oci::media_type::DOCKER_CONFIG);

    // Base layers unchanged, plus exactly one gzip layer.
    let store = Layout::open(f.path("store")).unwrap();
    let base = image_parts(&store, &inputs.digest("cluster-version-operator"));
    assert_eq!(parts.layers.len(), base.layers.len() + 1);
    assert_eq!(&parts.layers[..base.layers.len()], &base.layers[..]);
    let new_layer = parts.layers.last().unwrap();
    assert_eq!(new_layer.media_type, oci::media_type::DOCKER_LAYER_GZIP);
    let blob = layout.read_blob_bytes(&new_layer.digest).unwrap();
    assert_eq!(Digest::sha256_of(&blob), new_layer.digest);
    assert_eq!(blob.len() as u64, new_layer.size);
    assert_eq!(&blob[..2], &[0x1f, 0x8b], "gzip");
    assert_eq!(&blob[4..8], &[0, 0, 0, 0], "no gzip header mtime");

    // Tar entries: names, types, modes, mtimes (§1.2).
    let top = built.top();
    assert_eq!(top[0].path, "release-manifests");
    assert_eq!(top[0].kind, b'5', "a directory");
    assert_eq!(top[0].mode & 0o7777, 0o777);
    for e in &top[1..] {
        assert!(e.path.starts_with("release-manifests/"), "{}", e.path);
        assert!(!e.path[18..].contains('/'), "flat: {}", e.path);
        assert_eq!(e.kind, b'0', "{} is a regular file", e.path);
        assert_eq!(e.mode & 0o7777, 0o444, "{} mode", e.path);
    }
    for e in &top[..3] {
        assert_eq!(
            e.mtime,
            fx::MTIME_NEWEST,
            "{} has the newest manifest mtime",
            e.path
        );
    }
    assert_eq!(
        entry(&top, "0000_07_cluster-network-operator_01_namespace.yaml").mtime,
        fx::MTIME_CNO,
        "manifests keep their mtime"
    );
    assert_eq!(entry(&top, "0000_70_shared_2.yaml").mtime, fx::MTIME);

    // Config (§1.3).
    let cfg = &parts.config;
    let base_cfg = &base.config;
    assert_eq!(
        cfg["config"]["Labels"],
        inputs.release_labels(NAME),
        "labels replaced by exactly the two release labels"
    );
    assert_eq!(
        cfg["config"]["Entrypoint"],
        json!(["/usr/bin/cluster-version-operator"])
    );
    assert_eq!(cfg["config"]["Env"], base_cfg["config"]["Env"]);
    assert_eq!(cfg["architecture"], "amd64");
    assert_eq!(cfg["os"], "linux");
    assert_eq!(cfg["created"], CREATED);
    let mut diff_ids = base_cfg["rootfs"]["diff_ids"].as_array().unwrap().clone();
    let tar = fx::gunzip(&blob);
    diff_ids.push(json!(Digest::sha256_of(&tar).to_string()));
    assert_eq!(
        cfg["rootfs"],
        json!({ "type": "layers", "diff_ids": diff_ids })
    );
    let history = cfg["history"].as_array().expect("history");
    assert_eq!(history.len(), parts.layers.len());
    assert_eq!(history[0]["comment"], "Release image for OpenShift");
    for key in ["container", "parent"] {
        assert!(
            cfg.get(key).is_none_or(|v| v == "" || v.is_null()),
            "{key} must be cleared: {}",
            cfg[key]
        );
    }
    assert!(
        cfg.get("container_config").is_none_or(|v| v.is_null()
            || v.as_object()
                .is_some_and(|o| o.values().all(|x| x.is_null()))),
        "container_config must be cleared: {}",
        cfg["container_config"]
    );
    assert_eq!(
        parts.json["config"]["digest"],
        Digest::sha256_of(&parts.config_bytes).to_string()
    );
}

#[test]
fn builds_are_reproducible_and_dry_run_writes_nothing() {
    let f = Forge::reproducible();
    let (_, a) = standard_build(&f);
    let mapping = f.path("mapping.txt");
    let store = f.path("store");
    let b = build(&f, NAME, "again", &s(&mapping), STANDARD_ARGS);
    assert_eq!(
        a.line, b.line,
        "same inputs and SOURCE_DATE_EPOCH, same digest"
    );

    let dry = f.path("dry");
    let to = format!("oci:{}", dry.display());
    let dry_run = [STANDARD_ARGS, &["--dry-run"]].concat();
    let out = f.ok(&new_args(NAME, &to, &mapping, &store, &dry_run));
    assert_eq!(out.trim_end(), a.line, "--dry-run computes the same digest");
    assert_nothing_written(&dry);

    let to = format!("oci:{}", f.path("json").display());
    let report = f.json(&new_args(NAME, &to, &mapping, &store, STANDARD_ARGS));
    assert_eq!(report["digest"], a.digest.to_string());
    assert_eq!(report["name"], NAME);
    assert_eq!(report["created"], CREATED);
    assert!(
        report["pullSpec"]
            .as_str()
            .is_some_and(|p| p.contains(&a.digest.to_string())),
        "pullSpec names the digest: {report}"
    );
}

#[test]
fn overrides_replace_tags_and_are_annotated() {
    let f = Forge::reproducible();
    let alt_cli = fx::cli("amd64")
        .label(fx::LABEL_COMMIT_ID, &"a".repeat(40))
        .add_to_top(Entry::file("usr/share/cli/override", "override"));
    let set = ReleaseSet::standard("amd64");
    let (inputs, mapping) = inputs(&f, &set, "mapping.txt");
    let alt = ReleaseSet {
        arch: "amd64".into(),
        images: BTreeMap::from([("cli".to_string(), alt_cli)]),
    }
    .write(&f.path("store"));
    let built = build(
        &f,
        NAME,
        "payload",
        &mapping,
        &[
            &format!("cli={}", alt.pullspec("cli")),
            &format!("extra=docker://{}", inputs.pullspec("pod")),
            "--include",
            "extra",
            "--exclude",
            "cluster-network-operator",
        ],
    );
    let top = built.top();
    let refs = parse_json(entry(&top, "image-references"));
    let cli = tag(&refs, "cli");
    assert_eq!(cli["from"]["name"], alt.pullspec("cli"));
    assert_eq!(cli["annotations"]["io.openshift.release.override"], "true");
    assert_eq!(cli["annotations"][fx::LABEL_COMMIT_ID], "a".repeat(40));
    // A new tag by override (`docker://` prefix allowed), kept by --include (a tag no operator
    // references is pruned, override or not).
    let extra = tag(&refs, "extra");
    assert_eq!(extra["from"]["name"], inputs.pullspec("pod"));
    assert_eq!(
        extra["annotations"]["io.openshift.release.override"],
        "true"
    );
    // Tags from the mapping file are not overrides.
    assert!(tag(&refs, "hyperkube")["annotations"]
        .get("io.openshift.release.override")
        .is_none());
    // The rewritten manifests use the override.
    let osimageurl = entry(&top, "0000_80_machine-config_01_osimageurl.yaml").text();
    assert!(osimageurl.contains(&format!("cliImage: {}", alt.pullspec("cli"))));
    // --exclude drops the tag and its manifests.
    assert!(!tag_names(&refs).contains(&"cluster-network-operator".to_string()));
    assert!(!top
        .iter()
        .any(|e| e.path.contains("cluster-network-operator")));
    assert!(entry(&top, "0000_70_shared.yaml")
        .text()
        .contains("owner: mco"));
}

#[test]
fn an_overridden_operator_contributes_manifests_from_all_layers() {
    let f = Forge::reproducible();
    let (inputs, mapping) = inputs(&f, &ReleaseSet::standard("amd64"), "mapping.txt");
    let built = build(
        &f,
        NAME,
        "payload",
        &mapping,
        &[&format!(
            "machine-config-operator={}",
            inputs.pullspec("machine-config-operator")
        )],
    );
    let top = built.top();
    // Spec §1.6 step 2: "For tags overridden through a mapping it looks at all layers."
    assert!(
        top.iter()
            .any(|e| e.path == "release-manifests/0000_80_stale.yaml"),
        "{:?}",
        top.iter().map(|e| &e.path).collect::<Vec<_>>()
    );
}

// ------------------------------------------------------------------------------------------------
// info and extract
// ------------------------------------------------------------------------------------------------

#[test]
fn round_trip_new_info_extract() {
    let f = Forge::reproducible();
    let (inputs, built) = standard_build(&f);
    let reference = built.reference(NAME);
    let top = built.top();

    // info, text.
    let text = f.ok(&["release", "info", &reference]);
    assert_eq!(field(&text, "Name:"), NAME);
    assert_eq!(field(&text, "Digest:"), built.digest.to_string());
    assert_eq!(field(&text, "Created:"), CREATED);
    assert_eq!(field(&text, "OS/Arch:"), "linux/amd64");
    assert_eq!(field(&text, "Manifests:"), "8");
    assert_eq!(field(&text, "Metadata files:"), "1");
    assert!(
        field(&text, "Pull From:").contains(&built.digest.to_string()),
        "{text}"
    );
    assert!(text.contains("Release Metadata:"), "{text}");
    assert_eq!(field(&text, "Version:"), NAME);
    let upgrades = field(&text, "Upgrades:");
    let (p9, p10, p0) = (
        upgrades.find("4.16.0-okd-scos.9").expect(upgrades),
        upgrades.find("4.16.0-okd-scos.10").expect(upgrades),
        upgrades.find("4.17.0-okd-scos.0").expect(upgrades),
    );
    assert!(p9 < p10 && p10 < p0, "Upgrades in semver order: {upgrades}");
    assert!(text.contains("Metadata:"), "{text}");
    assert!(
        text.contains("https://github.com/okd-project/okd/releases/tag/4.17.0-okd-scos.1"),
        "{text}"
    );
    let table = rows(&text);
    let has_row = |cells: &[&str]| {
        table
            .iter()
            .any(|r| r.len() >= cells.len() && r[..cells.len()] == *cells)
    };
    assert!(text.contains("Component Versions:"), "{text}");
    assert!(has_row(&["kubernetes", fx::KUBERNETES]), "{text}");
    assert!(has_row(&["kubectl", fx::KUBECTL]), "{text}");
    assert!(
        has_row(&["machine-os", fx::MACHINE_OS, "CentOS", "Stream", "CoreOS"]),
        "{text}"
    );
    assert!(text.contains("Images:"), "{text}");
    for t in standard_tags_but(&["pod"]) {
        assert!(
            has_row(&[t, inputs.pullspec(t).as_str()]),
            "image row for {t}:\n{text}"
        );
    }
    assert!(!has_row(&["pod"]), "pod was pruned:\n{text}");

    // info --commits.
    let commits = f.ok(&["release", "info", &reference, "--commits"]);
    let crow = rows(&commits);
    for t in ["cli", "machine-config-operator", "cluster-version-operator"] {
        assert!(
            crow.iter().any(|r| r.len() >= 3
                && r[0] == t
                && r[1] == fx::source(t)
                && r[2] == fx::commit(t)),
            "commit row for {t}:\n{commits}"
        );
    }

    // info, JSON.
    let info = f.json(&["release", "info", &reference]);
    assert_eq!(info["digest"], built.digest.to_string());
    assert_eq!(info["contentDigest"], built.digest.to_string());
    assert!(
        info.get("listDigest")
            .is_none_or(|v| v.is_null() || v == ""),
        "{}",
        info["listDigest"]
    );
    assert_eq!(info["config"]["architecture"], "amd64");
    assert_eq!(
        info["config"]["config"]["Labels"]["io.openshift.release"],
        NAME
    );
    assert_eq!(
        info["metadata"],
        parse_json(entry(&top, "release-metadata"))
    );
    assert_eq!(
        info["references"],
        parse_json(entry(&top, "image-references"))
    );
    assert_eq!(info["manifests"], 8);
    assert_eq!(
        names(&info["metadataFiles"])
            .iter()
            .map(|n| n.rsplit('/').next().unwrap().to_string())
            .collect::<Vec<_>>(),
        ["0000_50_machine-config-operator_README.md"]
    );
    let dv = &info["displayVersions"];
    assert_eq!(dv["machine-os"]["Version"], fx::MACHINE_OS);
    assert_eq!(dv["machine-os"]["DisplayName"], fx::MACHINE_OS_NAME);
    assert_eq!(dv["kubernetes"]["Version"], fx::KUBERNETES);
    assert_eq!(dv["kubectl"]["Version"], fx::KUBECTL);
    assert_eq!(dv.as_object().unwrap().len(), 3, "{dv}");
    assert!(
        info.get("warnings")
            .is_none_or(|w| w.is_null() || w.as_array().is_some_and(|a| a.is_empty())),
        "{}",
        info["warnings"]
    );

    // extract: every file flat in DIR.
    let dir = f.extract_to(&reference, &[], "extracted");
    let found = file_names(&dir);
    let mut want: Vec<String> = top[1..]
        .iter()
        .map(|e| e.path.trim_start_matches("release-manifests/").to_string())
        .collect();
    want.sort();
    assert_eq!(found, want);
    for byte_for_byte in [
        "image-references",
        "release-metadata",
        "0000_50_machine-config-operator_README.md",
    ] {
        assert_eq!(
            std::fs::read(dir.join(byte_for_byte)).unwrap(),
            entry(&top, byte_for_byte).contents,
            "{byte_for_byte}"
        );
    }
    let osimageurl =
        std::fs::read_to_string(dir.join("0000_80_machine-config_01_osimageurl.yaml")).unwrap();
    assert!(
        osimageurl.contains(&inputs.pullspec("stream-coreos")),
        "{osimageurl}"
    );

    // extract --file: one file to stdout.
    let one = f.ok(&[
        "release",
        "extract",
        &reference,
        "--file",
        "release-metadata",
    ]);
    assert_eq!(one.as_bytes(), entry(&top, "release-metadata").contents);
    let err = f.fails(&[
        "release",
        "extract",
        &reference,
        "--file",
        "no-such-file.yaml",
    ]);
    assert!(err.contains("no-such-file.yaml"), "{err}");
}

#[test]
fn arm64_payload_reports_its_architecture() {
    let f = Forge::reproducible();
    let (inputs, mapping) = inputs(&f, &ReleaseSet::standard("arm64"), "mapping.txt");
    let built = build(&f, NAME, "payload", &mapping, &[]);
    let cfg = built.parts().config;
    assert_eq!(cfg["architecture"], "arm64");
    assert_eq!(
        cfg["config"]["Labels"]["io.openshift.release.base-image-digest"],
        inputs.digest("cluster-version-operator").to_string()
    );
    let text = f.ok(&["release", "info", &built.reference(NAME)]);
    assert_eq!(field(&text, "OS/Arch:"), "linux/arm64");
    // Without --include, installer and pod are pruned; without --previous, previous is [].
    let refs = parse_json(entry(&built.top(), "image-references"));
    assert_eq!(tag_names(&refs), standard_tags_but(&["installer", "pod"]));
    let meta = parse_json(entry(&built.top(), "release-metadata"));
    assert_eq!(meta["previous"], json!([]));
    assert!(
        meta.get("metadata").is_none(),
        "metadata omitted when empty: {meta}"
    );
}

// ------------------------------------------------------------------------------------------------
// Registry and manifest lists
// ------------------------------------------------------------------------------------------------

#[test]
fn payload_pushed_to_a_registry_is_read_by_skopeo() {
    let f = Forge::reproducible();
    let reg = RegistryServer::start();
    let (inputs, mapping) = inputs(&f, &ReleaseSet::standard("amd64"), "mapping.txt");
    let to = reg.docker(&format!("okd/release:{NAME}"));
    let tls = ["--tls-verify=false"];
    let out = f.ok(&new_args(NAME, &to, &mapping, f.path("store"), &tls));
    let digest = out.split(' ').next().unwrap().to_string();
    assert_eq!(out.trim_end(), format!("{digest} {NAME} {CREATED}"));

    let inspect: Value =
        serde_json::from_str(&skopeo(&["inspect", "--tls-verify=false", &to])).unwrap();
    assert_eq!(inspect["Digest"], digest.as_str());
    assert_eq!(inspect["Labels"], inputs.release_labels(NAME));
    assert_eq!(inspect["Architecture"], "amd64");
    let raw: Value =
        serde_json::from_str(&skopeo(&["inspect", "--raw", "--tls-verify=false", &to])).unwrap();
    assert_eq!(raw["mediaType"], oci::media_type::DOCKER_MANIFEST);
    assert_eq!(skopeo_digest(&to), digest, "digest of the stored bytes");
    assert_eq!(raw["layers"].as_array().unwrap().len(), 3);

    // Every blob is there: skopeo copies the image on, reading each one.
    let copy = reg.docker(&format!("okd/copy:{NAME}"));
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &to,
        &copy,
    ]);
    assert_eq!(skopeo_digest(&copy), digest);

    // okd-forge reads it back from the registry too.
    let info = f.json(&["release", "info", &to, "--tls-verify=false"]);
    assert_eq!(info["digest"], digest.as_str());
    assert_eq!(info["metadata"]["version"], NAME);
    let dir = f.extract_to(&to, &["--tls-verify=false"], "extracted");
    assert!(dir
        .join("0000_80_machine-config_01_osimageurl.yaml")
        .is_file());
}

#[test]
fn multi_arch_inputs_give_a_manifest_list_payload() {
    let f = Forge::reproducible();
    let inputs = fx::standard_multi(&f.path("store"));
    let mapping = inputs.write_mapping(&f.path("mapping.txt"));
    let built = build(&f, NAME, "payload", &mapping, &[]);
    let layout = built.layout();
    let store = Layout::open(f.path("store")).unwrap();
    let list: Value =
        serde_json::from_slice(&layout.read_blob_bytes(&built.digest).unwrap()).unwrap();
    assert_eq!(list["mediaType"], oci::media_type::DOCKER_LIST);
    let children = list["manifests"].as_array().unwrap();
    assert_eq!(children.len(), 2);
    let cvo = inputs.component("cluster-version-operator");
    let mut top_layers = Vec::new();
    for child in children {
        let arch = child["platform"]["architecture"].as_str().unwrap();
        assert_eq!(child["platform"]["os"], "linux");
        assert_eq!(child["mediaType"], oci::media_type::DOCKER_MANIFEST);
        let digest: Digest = child["digest"].as_str().unwrap().parse().unwrap();
        let parts = image_parts(&layout, &digest);
        assert_eq!(parts.config["architecture"], arch);
        assert_eq!(
            parts.config["config"]["Labels"]["io.openshift.release.base-image-digest"],
            cvo.children[arch].to_string(),
            "{arch} child is built on its own arch's CVO"
        );
        assert_eq!(
            parts.config["config"]["Labels"]["io.openshift.release"],
            NAME
        );
        let base = image_parts(&store, &cvo.children[arch]);
        assert_eq!(&parts.layers[..base.layers.len()], &base.layers[..]);
        assert_eq!(parts.layers.len(), base.layers.len() + 1);
        let top = layer_entries(&layout, parts.layers.last().unwrap());
        let meta = parse_json(entry(&top, "release-metadata"));
        assert_eq!(
            meta["metadata"]["release.openshift.io/architecture"],
            "multi"
        );
        let refs = parse_json(entry(&top, "image-references"));
        assert_eq!(
            tag(&refs, "machine-config-operator")["from"]["name"],
            inputs.pullspec("machine-config-operator"),
            "image-references names the lists"
        );
        top_layers.push(parts.layers.last().unwrap().clone());
    }
    assert_eq!(
        top_layers[0], top_layers[1],
        "every child gets the same layer blob"
    );
    let mut archs: Vec<&str> = children
        .iter()
        .map(|c| c["platform"]["architecture"].as_str().unwrap())
        .collect();
    archs.sort();
    assert_eq!(archs, ["amd64", "arm64"]);

    let info = f.json(&["release", "info", &built.reference(NAME)]);
    assert_eq!(info["listDigest"], built.digest.to_string());
    let text = f.ok(&["release", "info", &built.reference(NAME)]);
    assert_eq!(field(&text, "Digest:"), built.digest.to_string());
    assert!(field(&text, "OS/Arch:").starts_with("multi"), "{text}");
}

// ------------------------------------------------------------------------------------------------
// release new: errors
// ------------------------------------------------------------------------------------------------

/// Build `set` with `extra` arguments, expecting failure; the one error line must contain every string
/// of `all` and at least one of `any` (if given), and nothing may be written to the destination.
fn new_fails(set: &ReleaseSet, name: &str, extra: &[&str], all: &[&str], any: &[&str]) -> String {
    let f = Forge::reproducible();
    let (_, mapping) = inputs(&f, set, "mapping.txt");
    let out = f.path("payload");
    let to = format!("oci:{}", out.display());
    let err = f.fails(&new_args(name, &to, &mapping, f.path("store"), extra));
    for s in all {
        assert!(err.contains(s), "error should name {s:?}: {err}");
    }
    assert!(
        any.is_empty() || any.iter().any(|s| err.contains(s)),
        "error should name one of {any:?}: {err}"
    );
    assert_nothing_written(&out);
    err
}

#[test]
fn rejects_names_that_are_not_semver() {
    let set = ReleaseSet::standard("amd64");
    new_fails(&set, "4.17", &[], &["4.17"], &[]);
    new_fails(&set, "v4.17.0", &[], &["v4.17.0"], &[]);
    new_fails(&set, "4.17.01", &[], &["4.17.01"], &[]);
}

#[test]
fn rejects_previous_versions_that_are_not_semver() {
    let set = ReleaseSet::standard("amd64");
    new_fails(&set, NAME, &["--previous", "4.16.0,4.16"], &["4.16"], &[]);
}

#[test]
fn rejects_manifests_without_kind_or_api_version() {
    new_fails(
        &broken::without_kind("amd64"),
        NAME,
        &[],
        &[broken::NO_KIND_FILE],
        &[],
    );
    new_fails(
        &broken::without_api_version("amd64"),
        NAME,
        &[],
        &[broken::NO_API_VERSION_FILE],
        &[],
    );
}

#[test]
fn rejects_image_references_naming_a_tag_not_in_the_input() {
    let set = broken::unknown_tag_reference("amd64");
    new_fails(&set, NAME, &[], &[broken::MISSING_TAG], &[]);

    // --allow-missing-images builds it anyway, without the tag.
    let f = Forge::reproducible();
    let (_, mapping) = inputs(&f, &set, "mapping.txt");
    let built = build(&f, NAME, "payload", &mapping, &["--allow-missing-images"]);
    let refs = parse_json(entry(&built.top(), "image-references"));
    assert!(!tag_names(&refs).contains(&broken::MISSING_TAG.to_string()));
}

#[test]
fn rejects_two_tags_with_the_same_source_in_one_image_references() {
    new_fails(
        &broken::duplicate_source("amd64"),
        NAME,
        &[],
        &["machine-config-operator"],
        &["installer", "quay.io/openshift/origin-cli:latest"],
    );
}

#[test]
fn rejects_unknown_version_keys() {
    new_fails(
        &broken::unknown_version_key("amd64"),
        NAME,
        &[],
        &["foo"],
        &[broken::UNKNOWN_KEY_FILE, "machine-config-operator"],
    );
}

#[test]
fn rejects_metadata_values_that_are_not_strings() {
    let set = ReleaseSet::standard("amd64");
    new_fails(&set, NAME, &["--metadata", r#"{"url":1}"#], &["url"], &[]);
    new_fails(
        &set,
        NAME,
        &["--metadata", r#"{"channels":["a"]}"#],
        &["channels"],
        &[],
    );
    new_fails(
        &set,
        NAME,
        &["--metadata", "not json"],
        &["--metadata"],
        &[],
    );
}

#[test]
fn rejects_conflicting_component_versions() {
    new_fails(
        &broken::conflicting_versions("amd64"),
        NAME,
        &[],
        &["kubernetes"],
        &["hyperkube", broken::CONFLICTING_TAG],
    );
}

#[test]
fn rejects_a_missing_base_tag() {
    let set = ReleaseSet::standard("amd64").remove("cluster-version-operator");
    new_fails(&set, NAME, &[], &["cluster-version-operator"], &[]);
}

// ------------------------------------------------------------------------------------------------
// extract: safety
// ------------------------------------------------------------------------------------------------

/// Every path under `root` (not following symlinks).
fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}

/// `release extract` of a hand-built release whose top layer also holds `bad`: it must fail naming
/// `culprit`, write nothing outside the target directory (no file named `*evil*` anywhere else in the
/// temp HOME, the victim file unchanged, nothing at `/release-manifests`), and leave no device or
/// escaping link inside it.
fn extract_refuses(bad: Vec<Entry>, culprit: &str) {
    use std::os::unix::fs::FileTypeExt;
    let f = Forge::reproducible();
    let store = f.path("store");
    broken::release_image(&store, "bad", bad);
    let work = f.path("work");
    let out = work.join("a/b/out");
    std::fs::create_dir_all(&out).unwrap();
    let victim = work.join("victim.yaml");
    std::fs::write(&victim, "victim\n").unwrap();
    let root_dir = Path::new("/release-manifests");
    let root_existed = root_dir.exists();

    let err = f.fails(&[
        "release",
        "extract",
        &format!("oci:{}:bad", store.display()),
        "--to",
        &s(&out),
    ]);
    assert!(
        err.contains(culprit),
        "the error should name {culprit}: {err}"
    );

    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "victim\n");
    let escaped: Vec<PathBuf> = walk(f.home.path())
        .into_iter()
        .filter(|p| !p.starts_with(&out) && !p.starts_with(&store))
        .filter(|p| p.file_name().unwrap().to_string_lossy().contains("evil"))
        .collect();
    assert!(
        escaped.is_empty(),
        "written outside {}: {escaped:?}",
        out.display()
    );
    if !root_existed && root_dir.exists() {
        let _ = std::fs::remove_dir_all(root_dir);
        panic!("extract wrote to /release-manifests");
    }
    for p in walk(&out) {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        assert!(
            !meta.file_type().is_char_device() && !meta.file_type().is_block_device(),
            "device written: {}",
            p.display()
        );
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&p).unwrap();
            let resolved = p.parent().unwrap().join(&target);
            let inside = match resolved.canonicalize() {
                Ok(r) => r.starts_with(out.canonicalize().unwrap()),
                Err(_) => !target
                    .components()
                    .any(|c| c == std::path::Component::ParentDir),
            };
            assert!(
                !target.is_absolute() && inside,
                "escaping link written: {} -> {}",
                p.display(),
                target.display()
            );
        }
    }
}

/// A read-only manifest at `path` (a ConfigMap named evil), as a release layer holds it.
fn evil_file(path: &str) -> Entry {
    let configmap =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: evil\n  namespace: default\n";
    Entry::file(path, configmap).mode(0o444)
}

#[test]
fn extract_of_the_hand_built_control_release_works() {
    let f = Forge::reproducible();
    let store = f.path("store");
    broken::release_image(&store, "good", vec![]);
    let out = f.extract_to(&format!("oci:{}:good", store.display()), &[], "out");
    assert_eq!(
        file_names(&out),
        [
            "0000_50_fixture_config.yaml",
            "image-references",
            "release-metadata"
        ]
    );
}

#[test]
fn extract_refuses_absolute_paths() {
    extract_refuses(
        vec![evil_file("/release-manifests/0000_99_evil_absolute.yaml")],
        "0000_99_evil_absolute.yaml",
    );
}

#[test]
fn extract_refuses_parent_directory_components() {
    extract_refuses(
        vec![evil_file(
            "release-manifests/../../0000_99_evil_dotdot.yaml",
        )],
        "0000_99_evil_dotdot.yaml",
    );
}

#[test]
fn extract_refuses_symlinks_escaping_the_directory() {
    // A link out of the directory, then a file of the same name that would be written through it.
    extract_refuses(
        vec![
            Entry::symlink(
                "release-manifests/0000_99_evil_symlink.yaml",
                "../../../victim.yaml",
            ),
            evil_file("release-manifests/0000_99_evil_symlink.yaml"),
        ],
        "0000_99_evil_symlink.yaml",
    );
    extract_refuses(
        vec![Entry::symlink(
            "release-manifests/0000_99_evil_abslink.yaml",
            "/etc/passwd",
        )],
        "0000_99_evil_abslink.yaml",
    );
}

#[test]
fn extract_refuses_hard_links_escaping_the_directory() {
    extract_refuses(
        vec![Entry::hardlink(
            "release-manifests/0000_99_evil_hardlink.yaml",
            "release-manifests/../../../victim.yaml",
        )],
        "0000_99_evil_hardlink.yaml",
    );
}

#[test]
fn extract_refuses_device_files() {
    extract_refuses(
        vec![Entry::char_device(
            "release-manifests/0000_99_evil_device",
            1,
            3,
        )],
        "0000_99_evil_device",
    );
}

#[test]
fn extract_refuses_oversized_entries() {
    // The header declares 64 GiB; the data is not there (the layer ends). An extractor must refuse on
    // the declared size, before reading or allocating, and name the entry.
    extract_refuses(
        vec![Entry::file("release-manifests/0000_99_evil_huge.yaml", "x").declare_size(64 << 30)],
        "0000_99_evil_huge.yaml",
    );
}

#[test]
fn extract_walks_all_layers_top_first_while_info_reads_only_the_top() {
    let f = Forge::reproducible();
    let store = f.path("store");
    // A lower layer with an older copy of the top layer's manifest and a file only it has (spec §1.1:
    // extract walks all layers, top first, first occurrence wins; info reads the last layer only).
    broken::release_image_layers(
        &store,
        "layered",
        vec![
            Entry::dir("release-manifests"),
            Entry::file(
                "release-manifests/0000_50_fixture_config.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: older\n",
            ),
            Entry::file(
                "release-manifests/0000_50_lower_only.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: lower-only\n",
            ),
        ],
        vec![],
    );
    let reference = format!("oci:{}:layered", store.display());
    let out = f.extract_to(&reference, &[], "out");
    let config = std::fs::read_to_string(out.join("0000_50_fixture_config.yaml")).unwrap();
    assert!(
        config.contains("shared-from-fixture"),
        "the top layer wins: {config}"
    );
    assert!(out.join("0000_50_lower_only.yaml").is_file());

    let info = f.json(&["release", "info", &reference]);
    assert_eq!(
        info["manifests"], 1,
        "info counts the top layer only: {info}"
    );
}

#[test]
fn tampered_blobs_are_refused() {
    let f = Forge::reproducible();
    let (inputs, built) = standard_build(&f);
    // A payload layer replaced on disk by another valid gzip tar (an image-references pointing
    // elsewhere): only the digest check can tell, and extract and info must not use it.
    let top = built.parts().layers.last().unwrap().clone();
    let forged: Vec<Entry> = built
        .top()
        .into_iter()
        .map(|e| {
            let mut n = if e.kind == b'5' {
                Entry::dir(&e.path)
            } else {
                Entry::file(
                    &e.path,
                    e.text().replace("registry.example.com", "evil.example.com"),
                )
            };
            n.mode = e.mode;
            n.mtime = e.mtime;
            n
        })
        .collect();
    std::fs::write(
        built.layout().blob_path(&top.digest),
        fx::layer(&forged).gzip,
    )
    .unwrap();
    let x = f.path("x");
    let err = f.fails(&["release", "extract", &built.reference(NAME), "--to", &s(&x)]);
    assert!(
        err.contains(top.digest.hex()),
        "names the damaged blob: {err}"
    );
    assert!(!x.join("image-references").exists());
    let err = f.fails(&["release", "info", &built.reference(NAME)]);
    assert!(
        err.contains(top.digest.hex()),
        "names the damaged blob: {err}"
    );

    // A component's config changed in the store: release new must not use it.
    let store = Layout::open(f.path("store")).unwrap();
    let mco = image_parts(&store, &inputs.digest("machine-config-operator"));
    let config = store.blob_path(
        &mco.manifest
            .parse()
            .map(|p| match p {
                oci::manifest::Parsed::Image { config, .. } => config.digest,
                oci::manifest::Parsed::Index { .. } => unreachable!(),
            })
            .unwrap(),
    );
    let tampered = String::from_utf8(mco.config_bytes.clone())
        .unwrap()
        .replace(
            "\"io.openshift.release.operator\":\"true\"",
            "\"io.openshift.release.operator\":\"\"",
        );
    assert_ne!(tampered.as_bytes(), &mco.config_bytes[..]);
    std::fs::write(&config, tampered).unwrap();
    let out = f.path("again");
    let to = format!("oci:{}", out.display());
    let err = f.fails(&new_args(
        NAME,
        &to,
        f.path("mapping.txt"),
        f.path("store"),
        &[],
    ));
    assert!(
        err.contains(
            mco.json["config"]["digest"]
                .as_str()
                .unwrap()
                .trim_start_matches("sha256:")
        ),
        "names the damaged blob: {err}"
    );
    assert_nothing_written(&out);
}

// ------------------------------------------------------------------------------------------------
// diff
// ------------------------------------------------------------------------------------------------

#[test]
fn diff_reports_components_and_new_removed_rebuilt_and_changed_images() {
    let f = Forge::reproducible();
    let from_name = "4.17.0-okd-scos.0";
    let (_, map_a) = inputs(&f, &ReleaseSet::standard("amd64"), "a.txt");
    let a = build(
        &f,
        from_name,
        "payload",
        &map_a,
        &["--include", "installer,pod"],
    );

    let new_os = "9.0.20250201-0";
    let set_b = ReleaseSet::standard("amd64")
        // Rebuilt: new digest, same commit.
        .edit("installer", |i| {
            i.add_to_top(Entry::file("usr/share/installer/rebuilt", "2"))
        })
        // Changed: a new commit.
        .edit("cli", |i| {
            i.label(fx::LABEL_COMMIT_ID, &"c".repeat(40))
                .add_to_top(Entry::file("usr/share/cli/changed", "2"))
        })
        // A new machine-os.
        .edit("stream-coreos", |i| {
            i.label(fx::LABEL_VERSIONS, &format!("machine-os={new_os}"))
        })
        // Removed and added.
        .remove("pod")
        .set("tests", fx::operand("tests", "amd64"));
    let (_, map_b) = inputs(&f, &set_b, "b.txt");
    let b = build(
        &f,
        NAME,
        "payload",
        &map_b,
        &["--include", "installer,tests"],
    );
    assert_ne!(a.digest, b.digest);

    let from = a.reference(from_name);
    let to = b.reference(NAME);
    let md = f.ok(&["release", "diff", &from, &to]);
    let headings: Vec<&str> = md.lines().filter(|l| l.starts_with('#')).collect();
    assert!(headings.contains(&format!("# {NAME}").as_str()), "{md}");
    assert!(
        headings.contains(&format!("## Changes from {from_name}").as_str()),
        "{md}"
    );
    for h in [
        "### Components",
        "### New images",
        "### Removed images",
        "### Rebuilt images without code change",
    ] {
        assert!(headings.contains(&h), "heading {h:?} missing:\n{md}");
    }
    let section = |h: &str| -> String {
        let start = md.find(h).unwrap() + h.len();
        let rest = &md[start..];
        rest[..rest.find("\n#").unwrap_or(rest.len())].to_string()
    };
    assert!(section("### New images").contains("tests"), "{md}");
    assert!(section("### Removed images").contains("pod"), "{md}");
    let rebuilt = section("### Rebuilt images without code change");
    assert!(
        rebuilt.contains("installer") && !rebuilt.contains("* cli"),
        "{md}"
    );
    let components = section("### Components");
    assert!(
        (components.contains("machine-os") || components.contains(fx::MACHINE_OS_NAME))
            && components.contains(new_os)
            && components.contains(fx::MACHINE_OS),
        "{md}"
    );
    assert_eq!(
        md,
        f.ok(&["release", "diff", &from, &to, "--output", "markdown"])
    );

    let j = f.json(&["release", "diff", &from, &to]);
    assert_eq!(j["from"]["name"], from_name);
    assert_eq!(j["from"]["digest"], a.digest.to_string());
    assert_eq!(j["from"]["created"], CREATED);
    assert_eq!(j["to"]["name"], NAME);
    assert_eq!(j["to"]["digest"], b.digest.to_string());
    assert_eq!(names(&j["newImages"]), ["tests"]);
    assert_eq!(names(&j["removedImages"]), ["pod"]);
    let rebuilt = names(&j["rebuiltImages"]);
    assert!(
        rebuilt.contains(&"installer".to_string()) && !rebuilt.contains(&"cli".to_string()),
        "{j}"
    );
    let updated = names(&j["updatedImages"]);
    assert!(
        updated.contains(&"cli".to_string()) && !updated.contains(&"installer".to_string()),
        "{j}"
    );
    for unchanged in [
        "hyperkube",
        "machine-config-operator",
        "cluster-version-operator",
    ] {
        assert!(
            !rebuilt.contains(&unchanged.to_string()) && !updated.contains(&unchanged.to_string()),
            "{unchanged}: {j}"
        );
    }
    let comps = j["components"].to_string();
    assert!(
        comps.contains("machine-os") && comps.contains(new_os) && comps.contains(fx::MACHINE_OS),
        "{j}"
    );
    assert!(!comps.contains("kubectl"), "kubectl did not change: {j}");
}

// ------------------------------------------------------------------------------------------------
// Other inputs: an existing release, an image stream file, the manifest cache
// ------------------------------------------------------------------------------------------------

#[test]
fn a_release_rebuilt_from_itself_is_reproduced_and_a_renamed_one_carries_its_inputs() {
    let f = Forge::reproducible();
    let (inputs, built) = standard_build(&f);
    // The same name and SOURCE_DATE_EPOCH, and no changes: the tags, previous and metadata come from
    // the release and the base is found through io.openshift.release.base-image-digest, so the payload
    // is reproduced exactly (oc's "reproduce from its inputs") and records no from-release annotation.
    let reference = built.reference(NAME);
    // Tags no operator references are pruned on every build, so --include is needed again.
    let args = ["--from-release", &reference, "--include", "installer"];
    let rebuilt = build_with(&f, "again", &args);
    assert_eq!(
        rebuilt.line, built.line,
        "a rebuild without changes reproduces the payload"
    );
    let refs = parse_json(entry(&rebuilt.top(), "image-references"));
    assert!(
        refs["metadata"].get("annotations").is_none(),
        "{}",
        refs["metadata"]
    );

    // With a new name, the tags and release metadata carry over.
    let args = ["--from-release", &reference, "--name", "4.17.0-okd-scos.2"];
    let b = build_with(&f, "next", &args);
    let top = b.top();
    let refs = parse_json(entry(&top, "image-references"));
    assert_eq!(refs["metadata"]["name"], "4.17.0-okd-scos.2");
    // Without --include, installer is pruned this time.
    let kept = standard_tags_but(&["installer", "pod"]);
    assert_eq!(tag_names(&refs), kept);
    for t in kept {
        assert_eq!(tag(&refs, t)["from"]["name"], inputs.pullspec(t), "{t}");
    }
    let meta = parse_json(entry(&top, "release-metadata"));
    assert_eq!(meta["version"], "4.17.0-okd-scos.2");
    assert_eq!(
        meta["previous"],
        json!([
            "4.16.0-okd-scos.10",
            "4.16.0-okd-scos.9",
            "4.17.0-okd-scos.0"
        ])
    );
    assert_eq!(
        meta["metadata"]["io.openshift.upgrades.graph.release.channels"],
        "stable-4"
    );
    assert_eq!(
        b.parts().config["config"]["Labels"]["io.openshift.release.base-image-digest"],
        inputs.digest("cluster-version-operator").to_string()
    );
    let osimageurl = entry(&top, "0000_80_machine-config_01_osimageurl.yaml").text();
    assert!(
        osimageurl.contains("releaseVersion: 4.17.0-okd-scos.2\n"),
        "{osimageurl}"
    );
}

#[test]
fn an_image_stream_file_is_an_input_like_a_mapping_file() {
    let f = Forge::reproducible();
    let (inputs, built) = standard_build(&f);
    let tags: Vec<Value> = inputs
        .components
        .iter()
        .map(|(t, c)| json!({ "name": t, "from": { "kind": "DockerImage", "name": c.pullspec } }))
        .collect();
    let stream = json!({
        "kind": "ImageStream",
        "apiVersion": "image.openshift.io/v1",
        "metadata": { "name": "okd-scos" },
        "spec": { "tags": tags },
    });
    let file = f.path("stream.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&stream).unwrap()).unwrap();
    let file = s(&file);
    let source = ["--name", NAME, "--from-image-stream-file", &file];
    let b = build_with(&f, "from-stream", &[&source[..], STANDARD_ARGS].concat());
    let refs = parse_json(entry(&b.top(), "image-references"));
    let mine = parse_json(entry(&built.top(), "image-references"));
    assert_eq!(refs["spec"], mine["spec"]);
    let names: Vec<String> = b.top().iter().map(|e| e.path.clone()).collect();
    let mapping_names: Vec<String> = built.top().iter().map(|e| e.path.clone()).collect();
    assert_eq!(names, mapping_names);
}

#[test]
fn the_manifest_cache_never_changes_the_result() {
    let f = Forge::reproducible();
    let (_, mapping) = inputs(&f, &ReleaseSet::standard("amd64"), "mapping.txt");
    let cache = f.path("cache");
    let cached = ["--cache", &s(&cache)];
    let fresh = build(&f, NAME, "fresh", &mapping, &[]);
    let first = build(&f, NAME, "first", &mapping, &cached);
    let second = build(&f, NAME, "second", &mapping, &cached);
    assert_eq!(fresh.line, first.line);
    assert_eq!(
        fresh.line, second.line,
        "a warm cache gives the same payload"
    );
    assert!(cache.exists(), "--cache DIR is used");

    // One operator changes: the cached build sees the change and equals a fresh build.
    let changed = ReleaseSet::standard("amd64").add_manifest(
        "machine-config-operator",
        "0000_80_machine-config_05_new.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: new\n  namespace: openshift-machine-config-operator\n",
    );
    let (_, mapping2) = inputs(&f, &changed, "mapping2.txt");
    let fresh2 = build(&f, NAME, "fresh2", &mapping2, &[]);
    let cached2 = build(&f, NAME, "cached2", &mapping2, &cached);
    assert_ne!(fresh.digest, fresh2.digest);
    assert_eq!(fresh2.line, cached2.line);
    assert!(cached2
        .top()
        .iter()
        .any(|e| e.path == "release-manifests/0000_80_machine-config_05_new.yaml"));
}

#[test]
fn without_a_name_the_release_is_named_as_oc_names_it() {
    let f = Forge::reproducible();
    let (_, mapping) = inputs(&f, &ReleaseSet::standard("amd64"), "mapping.txt");
    let mut args = new_args(
        "unused",
        "unused",
        &mapping,
        f.path("store"),
        &["--dry-run"],
    );
    // Drop `--name unused --to unused`: a dry run needs neither.
    args.drain(2..6);
    let out = f.ok(&args);
    // 0.0.1-YYYY-MM-DD-HHMMSS of SOURCE_DATE_EPOCH (2026-01-01T00:00:00Z).
    assert_eq!(
        out.split(' ').nth(1),
        Some("0.0.1-2026-01-01-000000"),
        "{out}"
    );
}

#[test]
fn from_release_needs_its_base_among_its_tags() {
    let f = Forge::reproducible();
    let (inputs, mapping) = inputs(&f, &ReleaseSet::standard("amd64"), "mapping.txt");
    // A payload built on an explicit base that is not one of its tags.
    let cvo = inputs.pullspec("cluster-version-operator");
    let first = f.path("first");
    let to = format!("oci:{}:{NAME}", first.display());
    let extra = [
        "--to-image-base",
        &cvo,
        "--exclude",
        "cluster-version-operator",
    ];
    f.ok(&new_args(NAME, &to, &mapping, f.path("store"), &extra));
    // Rebuilding it cannot find its base among its tags: oc asks for --to-image-base too.
    let args = [
        "release",
        "new",
        "--from-release",
        &to,
        "--name",
        "4.17.0-okd-scos.2",
        "--dry-run",
        "--store",
        &s(&f.path("store")),
    ];
    let err = f.fails(&args);
    assert!(
        err.contains("none of its tags is its base image") && err.contains("--to-image-base"),
        "{err}"
    );
    // With it, the rebuild works.
    let with_base = [&args[..], &["--to-image-base", &cvo]].concat();
    f.ok(&with_base);
}

// ------------------------------------------------------------------------------------------------
// extract --tools / --command
// ------------------------------------------------------------------------------------------------

/// `release extract --command COMMAND` of `built` into `to`, with `f`'s store.
fn extract_command(f: &Forge, built: &Built, command: &str, to: &Path) -> Vec<String> {
    [
        "release",
        "extract",
        "--command",
        command,
        &built.reference(NAME),
        "--to",
        &s(to),
    ]
    .into_iter()
    .map(String::from)
    .chain(["--store".to_string(), s(&f.path("store"))])
    .collect()
}

/// A binary with the installer's three marker regions (NUL, marker, NUL, X padding, NUL).
fn stampable(name: &str) -> Vec<u8> {
    let mut b = format!("\x7fELF {name} binary\n").into_bytes();
    for marker in [
        "_RELEASE_IMAGE_LOCATION_",
        "_RELEASE_VERSION_LOCATION_",
        "_RELEASE_ARCHITECTURE_LOCATION_",
    ] {
        b.extend(format!("\0{marker}\0").bytes());
        b.extend(std::iter::repeat_n(b'X', 200));
        b.push(0);
    }
    b.extend(b"end of binary\n");
    b
}

/// The value stamped into the region of `marker` in `bin`.
fn stamped(bin: &[u8], marker_index: usize) -> String {
    // The regions follow the header line, in the order `stampable` writes them.
    let header = bin.iter().position(|&b| b == b'\n').unwrap() + 1;
    let mut at = header;
    for (i, marker) in [
        "_RELEASE_IMAGE_LOCATION_",
        "_RELEASE_VERSION_LOCATION_",
        "_RELEASE_ARCHITECTURE_LOCATION_",
    ]
    .iter()
    .enumerate()
    {
        let len = marker.len() + 2 + 200 + 1;
        if i == marker_index {
            let region = &bin[at..at + len];
            let end = region.iter().position(|&b| b == 0).unwrap();
            return String::from_utf8(region[..end].to_vec()).unwrap();
        }
        at += len;
    }
    unreachable!()
}

/// A layer holding the executable `/usr/bin/<name>`.
fn usr_bin(name: &str, content: impl AsRef<[u8]>) -> Vec<Entry> {
    vec![
        Entry::dir("usr/"),
        Entry::dir("usr/bin/"),
        Entry::file(&format!("usr/bin/{name}"), content).mode(0o755),
    ]
}

/// What a tools tar.gz holds besides its executable.
struct Listing {
    /// README.md.
    readme: String,
    /// Hard links to the executable, by name.
    links: Vec<String>,
}

/// The executable `name` of a tools tar.gz, and the rest: README.md first (0644), then the
/// executable (0755), then hard links to it; nothing else.
fn unpack_tool(gz: impl std::io::Read, name: &str) -> (Vec<u8>, Listing) {
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(gz));
    let mut readme = None;
    let mut bin = None;
    let mut links = Vec::new();
    for e in tar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_str().unwrap().to_string();
        let mode = e.header().mode().unwrap() & 0o777;
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        match (readme.is_some(), bin.is_some()) {
            (false, _) => {
                assert_eq!((path.as_str(), mode), ("README.md", 0o644));
                readme = Some(String::from_utf8(data).unwrap());
            }
            (true, false) => {
                assert_eq!((path.as_str(), mode), (name, 0o755));
                bin = Some(data);
            }
            (true, true) => {
                assert_eq!(e.header().entry_type(), tar::EntryType::Link, "{path}");
                assert_eq!(e.link_name().unwrap().unwrap().to_str(), Some(name));
                links.push(path);
            }
        }
    }
    let listing = Listing {
        readme: readme.expect("a README.md"),
        links,
    };
    (bin.expect("the executable"), listing)
}

#[test]
fn extract_tools_packs_stamped_binaries_with_checksums_that_sha256sum_accepts() {
    let f = Forge::new();
    // oc on top of the cli image; openshift-install replaced by a later layer (the later one
    // wins); no cloud-credential-operator tag, so no ccoctl.
    let set = ReleaseSet::standard("amd64")
        .edit("cli", |b| b.layer(usr_bin("oc", stampable("oc"))))
        .edit("installer", |b| {
            b.layer(usr_bin("openshift-install", "an old installer"))
                .layer(usr_bin("openshift-install", stampable("openshift-install")))
        });
    let (_, mapping) = inputs(&f, &set, "mapping.txt");
    let built = build(&f, NAME, "payload", &mapping, STANDARD_ARGS);
    let out = f.path("tools");
    let store = s(&f.path("store"));
    let stdout = f.ok(&[
        "release",
        "extract",
        "--tools",
        &built.reference(NAME),
        "--to",
        &s(&out),
        "--store",
        &store,
    ]);
    let client = format!("openshift-client-linux-{NAME}.tar.gz");
    let install = format!("openshift-install-linux-{NAME}.tar.gz");
    assert_eq!(
        file_names(&out),
        [
            client.as_str(),
            install.as_str(),
            "release.txt",
            "sha256sum.txt"
        ],
        "{stdout}"
    );
    // The real sha256sum agrees with the checksum file.
    let check = std::process::Command::new("sha256sum")
        .args(["--check", "--strict", "sha256sum.txt"])
        .current_dir(&out)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let release_txt = std::fs::read_to_string(out.join("release.txt")).unwrap();
    assert!(
        release_txt.contains(&format!("Name:           {NAME}")),
        "{release_txt}"
    );

    // Each archive holds README.md and its executable (oc with kubectl linked to it), stamped
    // with the release's version and architecture, the installer also with the release by digest;
    // no larger than the original.
    let pull_spec = format!("oci:{}@{}", built.dir.display(), built.digest);
    for (archive, name) in [(&client, "oc"), (&install, "openshift-install")] {
        let gz = std::fs::File::open(out.join(archive)).unwrap();
        let (bin, listing) = unpack_tool(gz, name);
        let links: &[&str] = if name == "oc" { &["kubectl"] } else { &[] };
        assert_eq!(listing.links, links, "{archive}");
        assert!(listing.readme.contains(name), "{}", listing.readme);
        assert_eq!(bin.len(), stampable(name).len(), "{name} keeps its size");
        assert!(bin.starts_with(format!("\x7fELF {name} binary\n").as_bytes()));
        let image = if name == "oc" { "" } else { pull_spec.as_str() };
        assert_eq!(stamped(&bin, 0), image, "{name}: release image");
        assert_eq!(stamped(&bin, 1), NAME, "{name}: version");
        assert_eq!(stamped(&bin, 2), "amd64", "{name}: architecture");
        assert!(bin.ends_with(b"end of binary\n"));
    }

    // --command writes the bare executable.
    let one = f.path("one");
    f.ok(&extract_command(&f, &built, "oc", &one));
    let oc = std::fs::read(one.join("oc")).unwrap();
    assert_eq!(stamped(&oc, 1), NAME);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(one.join("oc"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o111, 0o111, "oc is executable");

    // A tool whose image the payload lacks, or an unknown tool, is a clear error.
    let err = f.fails(&extract_command(&f, &built, "ccoctl", &f.path("none")));
    assert!(
        err.contains(
            "the payload has no tag cloud-credential-operator, so it cannot produce ccoctl"
        ),
        "{err}"
    );
    let err = f.fails(&extract_command(&f, &built, "kubectl", &f.path("none")));
    assert!(
        err.contains(
            "--command kubectl: not a release tool; use one of oc, openshift-install, \
             openshift-baremetal-install, ccoctl"
        ),
        "{err}"
    );
}

/// An image of `files` (`(path, content)`) under `usr/share/openshift/`, as `cli-artifacts` and
/// `installer-artifacts` are.
fn artifacts(tag: &str, files: &[(&str, Vec<u8>)]) -> fx::ImageBuilder {
    let mut entries = vec![
        Entry::dir("usr/"),
        Entry::dir("usr/share/"),
        Entry::dir("usr/share/openshift/"),
    ];
    for (path, content) in files {
        let dir = path.rsplit_once('/').unwrap().0;
        entries.push(Entry::dir(&format!("usr/share/openshift/{dir}/")));
        entries
            .push(Entry::file(&format!("usr/share/openshift/{path}"), content.clone()).mode(0o755));
    }
    fx::operand(tag, "amd64").layer(entries)
}

#[test]
fn extract_tools_for_every_platform_names_archives_as_oc_zips_windows_and_signs_the_checksums() {
    let f = Forge::new();
    let gpg = testkit::gpg::Gpg::new("OKD tools <tools@okd-forge.invalid>", None);
    let key = gpg.export("--export-secret-keys", &["--armor"], &f.path("key.asc"));
    let oc_for = |p: &str| stampable(&format!("oc-{p}"));
    let cli_artifacts = artifacts(
        "cli-artifacts",
        &[
            ("mac/oc", oc_for("mac")),
            ("mac_arm64/oc", oc_for("mac_arm64")),
            ("linux_amd64/oc", oc_for("linux_amd64")),
            ("linux_arm64/oc", oc_for("linux_arm64")),
            ("windows/oc.exe", oc_for("windows")),
        ],
    );
    // Only the mac installer: the newer per-arch installers are left out without a word.
    let installer_artifacts = artifacts(
        "installer-artifacts",
        &[("mac/openshift-install", stampable("openshift-install-mac"))],
    );
    let set = ReleaseSet::standard("amd64")
        .edit("cli", |b| b.layer(usr_bin("oc", stampable("oc"))))
        .edit("installer", |b| {
            b.layer(usr_bin("openshift-install", stampable("openshift-install")))
        })
        .set("cli-artifacts", cli_artifacts)
        .set("installer-artifacts", installer_artifacts);
    let (_, mapping) = inputs(&f, &set, "mapping.txt");
    let args = [
        STANDARD_ARGS,
        &[
            "--include",
            "cli-artifacts",
            "--include",
            "installer-artifacts",
        ],
    ]
    .concat();
    let built = build(&f, NAME, "payload", &mapping, &args);
    let out = f.path("tools");
    let (reference, to, store) = (built.reference(NAME), s(&out), s(&f.path("store")));
    let report: Value = serde_json::from_str(&f.ok(&[
        "release",
        "extract",
        "--tools",
        &reference,
        "--to",
        &to,
        "--store",
        &store,
        "--command-os",
        "*",
        "--signing-key",
        &key,
        "--output",
        "json",
    ]))
    .unwrap();

    let archives: Vec<String> = [
        "openshift-client-linux-amd64",
        "openshift-client-linux-arm64",
        "openshift-client-linux",
        "openshift-client-mac-arm64",
        "openshift-client-mac",
    ]
    .iter()
    .map(|a| format!("{a}-{NAME}.tar.gz"))
    .chain([
        format!("openshift-client-windows-{NAME}.zip"),
        format!("openshift-install-linux-{NAME}.tar.gz"),
        format!("openshift-install-mac-{NAME}.tar.gz"),
    ])
    .collect();
    let mut expected = archives.clone();
    expected.extend(["release.txt", "sha256sum.txt", "sha256sum.txt.asc"].map(String::from));
    expected.sort();
    assert_eq!(file_names(&out), expected, "{report:#}");
    assert_eq!(report["signed"], true);
    let platforms: BTreeMap<&str, &str> = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["name"].as_str().unwrap(), w["platform"].as_str().unwrap()))
        .collect();
    assert_eq!(
        platforms[format!("openshift-client-mac-arm64-{NAME}.tar.gz").as_str()],
        "darwin/arm64"
    );
    assert_eq!(
        platforms[format!("openshift-client-linux-{NAME}.tar.gz").as_str()],
        "linux/amd64"
    );
    assert_eq!(
        platforms[format!("openshift-client-windows-{NAME}.zip").as_str()],
        "windows/amd64"
    );

    // Every archive and release.txt is listed, sha256sum agrees, and gpg verifies the list; a
    // changed list no longer verifies.
    let sums = std::fs::read_to_string(out.join("sha256sum.txt")).unwrap();
    let listed: BTreeSet<&str> = sums
        .lines()
        .map(|l| l.split_once("  ").unwrap().1)
        .collect();
    let mut want: BTreeSet<&str> = archives.iter().map(String::as_str).collect();
    want.insert("release.txt");
    assert_eq!(listed, want);
    let check = std::process::Command::new("sha256sum")
        .args(["--check", "--strict", "sha256sum.txt"])
        .current_dir(&out)
        .status()
        .unwrap();
    assert!(check.success());
    let (asc, list) = (
        s(&out.join("sha256sum.txt.asc")),
        s(&out.join("sha256sum.txt")),
    );
    gpg.run(&["--verify", &asc, &list]);
    std::fs::write(&list, sums.replace(NAME, "4.17.0-okd-scos.2")).unwrap();
    assert!(!gpg
        .cmd()
        .args(["--verify", &asc, &list])
        .status()
        .unwrap()
        .success());

    // Each platform's oc is its own binary, stamped with the version.
    for (archive, platform) in [("mac-arm64", "mac_arm64"), ("linux-amd64", "linux_amd64")] {
        let gz = std::fs::File::open(out.join(format!("openshift-client-{archive}-{NAME}.tar.gz")));
        let (bin, listing) = unpack_tool(gz.unwrap(), "oc");
        assert!(bin.starts_with(format!("\x7fELF oc-{platform} binary\n").as_bytes()));
        assert_eq!(stamped(&bin, 1), NAME);
        assert_eq!(listing.links, ["kubectl"]);
    }
    let (mac_installer, _) = unpack_tool(
        std::fs::File::open(out.join(format!("openshift-install-mac-{NAME}.tar.gz"))).unwrap(),
        "openshift-install",
    );
    let pull_spec = format!("oci:{}@{}", built.dir.display(), built.digest);
    assert_eq!(stamped(&mac_installer, 0), pull_spec);

    // Windows: a zip of README.md (CRLF lines) and oc.exe.
    let zip =
        std::fs::File::open(out.join(format!("openshift-client-windows-{NAME}.zip"))).unwrap();
    let mut zip = zip::ZipArchive::new(zip).unwrap();
    assert_eq!(
        zip.file_names()
            .map(|n| n.unwrap().into_owned())
            .collect::<Vec<_>>(),
        ["README.md", "oc.exe"]
    );
    let mut readme = String::new();
    std::io::Read::read_to_string(&mut zip.by_name("README.md").unwrap(), &mut readme).unwrap();
    assert!(
        readme.contains("oc.exe") && readme.contains("\r\n"),
        "{readme}"
    );
    let mut exe = Vec::new();
    std::io::Read::read_to_end(&mut zip.by_name("oc.exe").unwrap(), &mut exe).unwrap();
    assert!(exe.starts_with(b"\x7fELF oc-windows binary\n"));
    assert_eq!(stamped(&exe, 1), NAME);

    // One platform of one command gives its bare executable; signing needs archives.
    let one = f.path("one");
    f.ok(&[
        "release",
        "extract",
        "--command",
        "oc",
        "--command-os",
        "mac/arm64",
        &reference,
        "--to",
        &s(&one),
        "--store",
        &store,
    ]);
    assert_eq!(file_names(&one), ["oc"]);
    assert!(std::fs::read(one.join("oc"))
        .unwrap()
        .starts_with(b"\x7fELF oc-mac_arm64 binary\n"));
    let err = f.fails(&[
        "release",
        "extract",
        "--command",
        "oc",
        &reference,
        "--to",
        &s(&one),
        "--store",
        &store,
        "--signing-key",
        &key,
    ]);
    assert!(err.contains("--signing-key signs the archives"), "{err}");
    let err = f.fails(&[
        "release",
        "extract",
        "--tools",
        &reference,
        "--to",
        &s(&one),
        "--store",
        &store,
        "--command-os",
        "plan9",
    ]);
    assert!(err.contains("--command-os plan9: not a platform"), "{err}");
}

#[test]
fn extract_command_honours_a_whiteout_in_a_later_layer() {
    let f = Forge::new();
    let set = ReleaseSet::standard("amd64").edit("installer", |b| {
        b.layer(usr_bin("openshift-install", stampable("openshift-install")))
            .layer(vec![
                Entry::dir("usr/"),
                Entry::dir("usr/bin/"),
                Entry::file("usr/bin/.wh.openshift-install", ""),
            ])
    });
    let (_, mapping) = inputs(&f, &set, "mapping.txt");
    let built = build(&f, NAME, "payload", &mapping, STANDARD_ARGS);
    let err = f.fails(&extract_command(
        &f,
        &built,
        "openshift-install",
        &f.path("out"),
    ));
    assert!(
        err.contains("the image has no /usr/bin/openshift-install"),
        "{err}"
    );
    assert!(!f.path("out").join("openshift-install").exists());
}
