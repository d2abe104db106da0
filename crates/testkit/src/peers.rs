//! The independent clients: skopeo and umoci, run with no credentials of the machine's user.

use std::path::Path;
use std::process::{Command, Output};

use crate::{require, run_ok};

fn isolated(program: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(require(program));
    cmd.args(args)
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("DOCKER_CONFIG")
        .env_remove("XDG_RUNTIME_DIR")
        .env(
            "HOME",
            std::env::temp_dir().join("okd-forge-test-home-empty"),
        );
    cmd
}

/// Run skopeo; panics with its output unless it succeeds. Returns stdout.
pub fn skopeo(args: &[&str]) -> String {
    run_ok(&mut isolated("skopeo", args))
}

/// Run skopeo and return whatever happened.
pub fn skopeo_try(args: &[&str]) -> Output {
    isolated("skopeo", args).output().expect("run skopeo")
}

/// The manifest digest skopeo sees for `reference` (with `--tls-verify=false` for docker:// references).
pub fn skopeo_digest(reference: &str) -> String {
    let mut args = vec!["inspect", "--raw"];
    if reference.starts_with("docker://") {
        args.insert(1, "--tls-verify=false");
    }
    args.push(reference);
    let raw = isolated("skopeo", &args).output().expect("run skopeo");
    assert!(
        raw.status.success(),
        "skopeo inspect --raw {reference} failed: {}",
        String::from_utf8_lossy(&raw.stderr)
    );
    oci::Digest::sha256_of(&raw.stdout).to_string()
}

/// Run umoci; panics with its output unless it succeeds. Returns stdout.
pub fn umoci(args: &[&str]) -> String {
    run_ok(&mut isolated("umoci", args))
}

/// Check that every blob file of an OCI layout hashes to its name, independently of okd-forge's reader
/// (no partial blob is visible). Returns the number of blobs.
pub fn verify_blobs(dir: &Path) -> usize {
    let blobs = dir.join("blobs/sha256");
    let mut n = 0;
    for e in std::fs::read_dir(&blobs).expect("blobs dir") {
        let e = e.expect("entry");
        let name = e.file_name().to_string_lossy().to_string();
        assert_eq!(
            crate::images::file_digest(&e.path()),
            format!("sha256:{name}"),
            "blob {name} in {} does not match its name",
            dir.display()
        );
        n += 1;
    }
    n
}

/// Check an OCI layout on disk, independently of okd-forge's reader: every blob file hashes to its
/// name, no temporary file is left, and `index.json` is an index whose entries' blobs exist.
/// Returns the number of blobs.
pub fn verify_layout(dir: &Path) -> usize {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).expect("index.json"))
            .expect("index.json is JSON");
    assert_eq!(index["schemaVersion"], 2, "index.json schemaVersion");
    let n = verify_blobs(dir);
    for e in index["manifests"].as_array().expect("manifests") {
        let d = e["digest"].as_str().expect("digest");
        assert!(
            dir.join("blobs/sha256")
                .join(d.trim_start_matches("sha256:"))
                .is_file(),
            "index.json names {d}, which is not in blobs/"
        );
    }
    for e in std::fs::read_dir(dir).expect("layout dir") {
        let name = e.expect("entry").file_name().to_string_lossy().to_string();
        assert!(
            !name.starts_with(".okd-forge-tmp-"),
            "temporary file {name} left in {}",
            dir.display()
        );
    }
    n
}
