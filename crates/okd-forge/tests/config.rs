//! `okd-forge config check|schema` on real files: the example in `docs/examples/forge.yaml`, the
//! sketch in DESIGN.md (`tests/config/design-sketch.yaml`), and one bad file per rule, each giving
//! one `error:` line with FILE:LINE:COLUMN and the field.
//!
//! A branch that does not exist in git is reported once git sources exist (issue 4, item 3); it is
//! not a configuration check.

mod common;

use std::path::{Path, PathBuf};

use common::{s, Forge};

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

/// A valid base; the bad cases each change one thing.
const BASE: &str = "\
variants:
  okd-scos: { build_args: { TAGS: scos } }
  okd: {}
components:
  machine-config-operator:
    git: https://github.com/openshift/machine-config-operator
    images:
      - to: machine-config-operator
        containerfile: Dockerfile.rhel7
streams:
  okd-scos-4.17:
    variant: okd-scos
    branch: release-4.17
";

/// Writes `text` as `forge.yaml` in the temp HOME (the working directory) and runs `config check`
/// with the default file, expecting failure; returns the error line.
fn check_fails(text: &str) -> String {
    let f = Forge::new();
    std::fs::write(f.path("forge.yaml"), text).expect("write forge.yaml");
    f.fails(&["config", "check"])
}

#[test]
fn example_checks() {
    let f = Forge::new();
    let example = s(&repo_file("docs/examples/forge.yaml"));
    let out = f.ok(&["config", "check", "--config", &example]);
    assert!(
        out.contains(": OK: 4 components, 5 images, 2 variants, 3 streams"),
        "{out}"
    );
    assert!(
        out.contains("okd-scos-4.18  variant okd-scos, branch master (4.18)"),
        "{out}"
    );
    let json = f.json(&["config", "check", "--config", &example]);
    assert_eq!(json["components"], 4);
    assert_eq!(json["images"], 5);
    assert_eq!(json["variants"], serde_json::json!(["okd-scos", "okd"]));
    let streams: Vec<_> = json["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .map(|s| {
            format!(
                "{} {} {} {}",
                s["name"].as_str().unwrap_or(""),
                s["variant"].as_str().unwrap_or(""),
                s["branch"].as_str().unwrap_or(""),
                s["minor"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        streams,
        [
            "okd-scos-4.17 okd-scos release-4.17 4.17",
            "okd-scos-4.18 okd-scos master 4.18",
            "okd-4.17 okd release-4.17 4.17",
        ]
    );
}

#[test]
fn design_sketch_parses() {
    let f = Forge::new();
    let sketch = s(&repo_file(
        "crates/okd-forge/tests/config/design-sketch.yaml",
    ));
    let json = f.json(&["config", "check", "--config", &sketch]);
    assert_eq!(json["components"], 1);
    assert_eq!(json["streams"][0]["name"], "okd-scos-4.17");
    assert_eq!(json["streams"][0]["variant"], "okd-scos");
    assert_eq!(json["streams"][0]["branch"], "release-4.17");
}

#[test]
fn config_file_from_the_environment() {
    let f = Forge::new().with_env("OKD_FORGE_CONFIG", "other.yaml");
    std::fs::write(f.path("other.yaml"), BASE).expect("write");
    let out = f.ok(&["config", "check"]);
    assert!(
        out.starts_with("other.yaml: OK: 1 components, 1 images"),
        "{out}"
    );
}

#[test]
fn missing_file() {
    assert_eq!(
        Forge::new().fails(&["config", "check", "--config", "nope.yaml"]),
        "error: cannot read nope.yaml: No such file or directory (os error 2)"
    );
}

#[test]
fn unknown_field() {
    assert_eq!(
        check_fails(&BASE.replace("        containerfile", "        dockerfile: Dockerfile\n        containerfile")),
        "error: forge.yaml:9:9: components.machine-config-operator.images[0].dockerfile: unknown field `dockerfile`, expected one of to, containerfile, containerfile_literal, context, build_args, from, inputs, native, versions, labels, os"
    );
}

#[test]
fn wrong_type() {
    assert_eq!(
        check_fails(&format!("parallelism: four\n{BASE}")),
        "error: forge.yaml:1:14: parallelism: wrong type: expected a whole number"
    );
    assert_eq!(
        check_fails(&BASE.replace("    images:\n      - to", "    images:\n      to")),
        "error: forge.yaml:8:7: components.machine-config-operator.images: wrong type: expected a list"
    );
}

#[test]
fn undefined_variant() {
    assert_eq!(
        check_fails(&BASE.replace("variant: okd-scos", "variant: okd-scoss")),
        "error: forge.yaml:12:14: streams.okd-scos-4.17.variant: unknown variant 'okd-scoss'; defined variants: okd-scos, okd"
    );
}

#[test]
fn containerfile_and_native() {
    assert_eq!(
        check_fails(&BASE.replace(
            "Dockerfile.rhel7\n",
            "Dockerfile.rhel7\n        native: { command: [make], outputs: [\"bin/mco:/usr/bin/mco\"], base: fedora }\n"
        )),
        "error: forge.yaml:9:24: components.machine-config-operator.images[0]: give either containerfile or native, not both"
    );
}

#[test]
fn duplicate_image_tag() {
    assert_eq!(
        check_fails(&BASE.replace(
            "streams:",
            "  mco-fork:\n    git: git@github.com:okd-project/machine-config-operator.git\n    images: [ { to: machine-config-operator, containerfile: Dockerfile } ]\nstreams:"
        )),
        "error: forge.yaml:12:21: components.mco-fork.images[0].to: image tag 'machine-config-operator' is already built by components.machine-config-operator.images[0]"
    );
}

#[test]
fn branch_inconsistent_with_minor() {
    assert_eq!(
        check_fails(&format!("{BASE}    minor: \"4.18\"\n")),
        "error: forge.yaml:14:12: streams.okd-scos-4.17.minor: minor 4.18 does not match branch 'release-4.17', which feeds 4.17"
    );
}

#[test]
fn schema_is_json_with_the_top_level_properties() {
    let f = Forge::new();
    let out = f.ok(&["config", "schema"]);
    let schema: serde_json::Value = serde_json::from_str(&out).expect("schema is JSON");
    let properties = schema["properties"].as_object().expect("properties");
    for key in [
        "store",
        "state",
        "parallelism",
        "publish",
        "variants",
        "components",
        "streams",
    ] {
        assert!(properties.contains_key(key), "{key} missing: {out}");
    }
    assert_eq!(schema["additionalProperties"], false);
    assert!(
        schema["$defs"]["Image"]["properties"]["native"].is_object(),
        "{out}"
    );
}
