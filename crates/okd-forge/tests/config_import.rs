//! `okd-forge config import-ci-operator` on real OKD ci-operator configs (copied from
//! `../shared/fixtures/ci-operator` into `tests/config/ci-operator`): each one alone and all of
//! them together import, the result passes `config check`, and unmapped fields are reported.

mod common;

use std::path::{Path, PathBuf};

use common::{s, Forge};

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/config/ci-operator");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 12, "{files:?}");
    files
}

fn fixture(name: &str) -> String {
    s(&Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/config/ci-operator")
        .join(name))
}

/// Imports `files` into `out.yaml` in the test's directory, checks it, and returns (forge.yaml,
/// stderr report, `config check --output json`).
fn import(f: &Forge, files: &[String]) -> (String, String, serde_json::Value) {
    let out = s(&f.path("out.yaml"));
    let mut args = vec!["config".to_string(), "import-ci-operator".to_string()];
    args.extend(files.iter().cloned());
    args.extend(["--output-file".to_string(), out.clone()]);
    let run = f.cmd().args(&args).output().expect("run okd-forge");
    let stderr = String::from_utf8_lossy(&run.stderr).to_string();
    assert!(run.status.success(), "{args:?}: {stderr}");
    assert!(run.stdout.is_empty());
    let yaml = std::fs::read_to_string(&out).expect("output file");
    f.ok(&["config", "check", "--config", &out]);
    let json = f.json(&["config", "check", "--config", &out]);
    (yaml, stderr, json)
}

#[test]
fn every_fixture_imports_alone() {
    let f = Forge::new();
    for file in fixtures() {
        let (_, stderr, _) = import(&f, &[s(&file)]);
        for line in stderr.lines() {
            assert!(
                line.starts_with(&s(&file)) && line.contains(": not mapped ("),
                "{line}"
            );
        }
    }
}

#[test]
fn all_fixtures_import_together() {
    let f = Forge::new();
    let files: Vec<String> = fixtures().iter().map(|p| s(p)).collect();
    let (_, stderr, json) = import(&f, &files);
    assert_eq!(json["components"], 8, "{json}");
    let streams: Vec<&str> = json["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    for name in [
        "okd-scos-4.20",
        "okd-scos-4.16",
        "okd-4.13",
        "okd-scos-4.21-art",
    ] {
        assert!(streams.contains(&name), "{streams:?}");
    }
    // The same repository in two variants: the first definition is kept, the other reported.
    assert!(
        stderr.contains(
            "images[to=machine-config-operator]: not mapped (differs from its definition in"
        ),
        "{stderr}"
    );
}

#[test]
fn installer_okd_scos_mapping() {
    let f = Forge::new();
    let file = fixture("openshift-installer-release-4.20__okd-scos.yaml");
    let (yaml, stderr, json) = import(&f, std::slice::from_ref(&file));
    assert_eq!(json["variants"], serde_json::json!(["okd-scos"]));
    let stream = &json["streams"][0];
    assert_eq!(stream["name"], "okd-scos-4.20");
    assert_eq!(stream["variant"], "okd-scos");
    assert_eq!(stream["branch"], "release-4.20");
    assert_eq!(stream["promoted"], 4);
    assert!(
        yaml.contains("  installer:\n    git: https://github.com/openshift/installer\n"),
        "{yaml}"
    );
    assert!(
        yaml.contains(
            "      - to: upi-installer\n        containerfile: images/installer/Dockerfile.upi.ci\n        build_args:\n          TAGS: scos\n        from: registry.ci.openshift.org/origin/scos-4.20:base-stream9\n"
        ),
        "{yaml}"
    );
    assert!(
        yaml.contains(
            "          \"registry.ci.openshift.org/origin/scos-4.20:installer-etcd-artifacts\":\n            as:\n              - etcd-artifacts\n              - registry.ci.openshift.org/ocp/4.17:installer-etcd-artifacts\n"
        ),
        "{yaml}"
    );
    for field in [
        "tests",
        "resources",
        "build_root",
        "releases",
        "promotion.to[0].namespace",
    ] {
        assert!(
            stderr.contains(&format!("{file}: {field}: not mapped (")),
            "{field}: {stderr}"
        );
    }
}

#[test]
fn machine_os_legacy_promotion_and_literal() {
    let f = Forge::new();
    let file = fixture("openshift-okd-machine-os-release-4.12.yaml");
    let (yaml, stderr, json) = import(&f, std::slice::from_ref(&file));
    // No variant: the `default` one; legacy promotion, disabled.
    let stream = &json["streams"][0];
    assert_eq!(stream["name"], "default-4.12");
    assert_eq!(stream["variant"], "default");
    assert_eq!(stream["promoted"], 0);
    assert!(
        yaml.contains("    promotion:\n      disabled: true\n"),
        "{yaml}"
    );
    assert!(
        yaml.contains(
            "      - to: machine-os-content\n        containerfile_literal: FROM fedora-coreos\n"
        ),
        "{yaml}"
    );
    assert!(
        stderr.contains(&format!(
            "{file}: images[2].inputs.layering-build.paths: not mapped ("
        )),
        "{stderr}"
    );
}

#[test]
fn legacy_promotion_with_excluded_image() {
    // Enabled legacy promotion with an excluded image (the fixture is disabled; flip it).
    let f = Forge::new();
    let text = std::fs::read_to_string(fixture("openshift-okd-machine-os-release-4.12.yaml"))
        .expect("fixture")
        .replace("  disabled: true\n", "");
    let file = s(&f.path("machine-os.yaml"));
    std::fs::write(&file, text).expect("write");
    let (yaml, _, json) = import(&f, &[file]);
    assert_eq!(json["streams"][0]["promoted"], 3, "{json}");
    assert!(
        yaml.contains("      excluded_images:\n        - layering-build\n"),
        "{yaml}"
    );
}

#[test]
fn unreadable_or_bad_files_fail_with_their_place() {
    let f = Forge::new();
    let err = f.fails(&["config", "import-ci-operator", "missing.yaml"]);
    assert!(err.contains("cannot read missing.yaml"), "{err}");
    let bad = s(&f.path("bad.yaml"));
    std::fs::write(&bad, "images:\n  - to: [a\n").expect("write");
    let err = f.fails(&["config", "import-ci-operator", &bad]);
    assert!(err.contains(&format!("{bad}:2:")), "{err}");
}
