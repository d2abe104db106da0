//! `okd-forge controller sync|run` and `okd-forge release list|show|accept|reject|keep` on
//! embedded defaults: images in an OCI layout store, the SQLite state file, and verification jobs
//! that run for real as local processes (reading the payload with `okd-forge release info`,
//! writing JUnit results).

mod common;

use std::path::Path;

use common::Forge;
use serde_json::Value;
use testkit::release::ReleaseSet;

const STREAM: &str = "okd-scos-4.17";

/// A job that reads its payload back with okd-forge and writes JUnit results.
const E2E: &str = r#"set -e
"$FORGE" release info "$RELEASE_IMAGE_LATEST" --output json > "$ARTIFACT_DIR/release-info.json"
echo "tested $JOB_NAME build $BUILD_ID"
cat > "$ARTIFACT_DIR/junit_e2e.xml" <<EOF
<testsuite name="e2e" tests="2"><testcase name="install"/><testcase name="[sig-network] pods talk"/></testsuite>
EOF
"#;

fn site() -> Forge {
    let f = Forge::new();
    let home = f.home.path();
    let config = format!(
        r#"store: var/store
state: var/forge.db
variants: {{ okd-scos: {{}} }}
streams:
  {STREAM}:
    variant: okd-scos
    branch: release-4.17
    release:
      name: 4.17.0-0.okd-scos
      verify:
        e2e:
          command: [sh, -c, {e2e}]
          env: {{ FORGE: {forge} }}
        upgrade: {{ command: ["false"], upgrade_from: previous, optional: true }}
"#,
        e2e = serde_json::to_string(E2E).unwrap(),
        forge = env!("CARGO_BIN_EXE_okd-forge"),
    );
    std::fs::write(home.join("forge.yaml"), config).unwrap();
    promote(home, ReleaseSet::standard("amd64"));
    f
}

/// Writes the images into the store and promotes them into the stream, as builds do.
fn promote(home: &Path, set: ReleaseSet) {
    let inputs = set.write(&home.join("var/store"));
    let state = build::state::State::open(&home.join("var/forge.db")).unwrap();
    for (tag, c) in &inputs.components {
        state
            .promote(STREAM, tag, &c.digest.to_string(), None)
            .unwrap();
    }
}

fn payloads(f: &Forge) -> Vec<Value> {
    f.json(&["release", "list", "--output", "json"])
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn sync_cuts_verifies_and_accepts_a_payload_with_real_jobs() {
    let f = site();
    let out = f.ok(&["controller", "sync"]);
    let list = payloads(&f);
    assert_eq!(list.len(), 1, "{list:#?}");
    let p = &list[0]["payload"];
    let name = p["name"].as_str().unwrap();
    assert!(name.starts_with("4.17.0-0.okd-scos-20"), "{name}");
    assert!(out.contains(&format!("{STREAM}: created {name}")), "{out}");
    assert!(out.contains(&format!("{name}: Accepted")), "{out}");
    assert_eq!(p["phase"], "accepted");

    // The e2e job ran as a local process in Prow's layout, read the payload, left JUnit results.
    let runs = list[0]["runs"].as_array().unwrap();
    let e2e = runs.iter().find(|r| r["job"] == "e2e").unwrap();
    assert_eq!(e2e["state"], "succeeded", "{e2e:#}");
    assert_eq!(e2e["tests"]["passed"], 2);
    let dir = Path::new(e2e["dir"].as_str().unwrap()).join(e2e["id"].to_string());
    for file in [
        "started.json",
        "finished.json",
        "build-log.txt",
        "artifacts/junit_e2e.xml",
    ] {
        assert!(
            dir.join(file).is_file(),
            "{} missing",
            dir.join(file).display()
        );
    }
    let info: Value =
        serde_json::from_slice(&std::fs::read(dir.join("artifacts/release-info.json")).unwrap())
            .unwrap();
    assert_eq!(info["digest"], p["digest"]);
    let log = std::fs::read_to_string(dir.join("build-log.txt")).unwrap();
    assert!(
        log.contains(&format!("tested {name}-e2e build {}", e2e["id"])),
        "{log}"
    );
    let finished: Value =
        serde_json::from_slice(&std::fs::read(dir.join("finished.json")).unwrap()).unwrap();
    assert_eq!(finished["result"], "SUCCESS");
    // The upgrade job had nothing to upgrade from: skipped, never run (its command would fail).
    let upgrade = runs.iter().find(|r| r["job"] == "upgrade").unwrap();
    assert_eq!(upgrade["state"], "skipped");

    // Again: nothing new, nothing done.
    let again = f.ok(&["controller", "sync"]);
    assert_eq!(again.trim(), format!("{STREAM}: unchanged"));
    assert_eq!(
        payloads(&f)[0]["runs"].as_array().unwrap().len(),
        runs.len()
    );

    // Rejected by hand, with the reason; shown with the payload and in its event log.
    let out = f.ok(&[
        "release",
        "reject",
        name,
        "--reason",
        "kernel panics on boot (OKD-42)",
    ]);
    assert_eq!(
        out.trim(),
        format!("{name}: Accepted → Rejected (by hand: kernel panics on boot (OKD-42))")
    );
    let shown = f.ok(&["release", "show", name]);
    assert!(shown.contains("Phase:     Rejected"), "{shown}");
    assert!(
        shown.contains("Reason:    kernel panics on boot (OKD-42)"),
        "{shown}"
    );
    assert!(
        shown.contains("override      Accepted → Rejected by hand"),
        "{shown}"
    );
    let table = f.ok(&["release", "list"]);
    assert!(table.contains("Rejected"), "{table}");
    assert!(table.contains("e2e succeeded, upgrade skipped"), "{table}");

    // Pinned.
    f.ok(&["release", "keep", name]);
    assert_eq!(payloads(&f)[0]["payload"]["keep"], true);

    // Promoted: a Rejected payload cannot be; accepted again by hand, it is restamped as the
    // stream's first stable release.
    let err = f.fails(&["release", "promote", name]);
    assert!(
        err.contains("is Rejected: only an Accepted payload can be promoted"),
        "{err}"
    );
    f.ok(&[
        "release",
        "accept",
        name,
        "--reason",
        "fixed: OKD-42 was the host",
    ]);
    let promoted: Value =
        serde_json::from_str(&f.ok(&["--output", "json", "release", "promote", name])).unwrap();
    assert_eq!(promoted["name"], "4.17.0-okd-scos.0");
    assert_eq!(promoted["from"], name);
    assert_eq!(promoted["promoted"], true);
    let again = f.ok(&["release", "promote", name]);
    assert!(
        again.contains("promoted as 4.17.0-okd-scos.0 before; nothing to do"),
        "{again}"
    );
    let table = f.ok(&["release", "list"]);
    assert!(
        table.contains(&format!("stable release, promoted from {name}")),
        "{table}"
    );
    // Edges are between stable releases; blocking one names both ends.
    let err = f.fails(&[
        "release",
        "block-edge",
        name,
        "4.17.0-okd-scos.0",
        "--reason",
        "x",
    ]);
    assert!(
        err.contains(&format!("no stable release named '{name}'")),
        "{err}"
    );
    let edges: Value =
        serde_json::from_str(&f.ok(&["--output", "json", "release", "edges"])).unwrap();
    assert_eq!(edges, serde_json::json!([]));
    f.ok(&["release", "promote", name, "--name", "4.17.0-okd-scos.5"]);
    let out = f.ok(&[
        "release",
        "block-edge",
        "4.17.0-okd-scos.0",
        "4.17.0-okd-scos.5",
        "--reason",
        "etcd fails to migrate",
        "--url",
        "https://issues.redhat.com/browse/OKD-7",
    ]);
    assert!(out.contains("conditional edge"), "{out}");
    let table = f.ok(&["release", "edges"]);
    assert!(
        table.contains(
            "conditional: etcd fails to migrate (https://issues.redhat.com/browse/OKD-7)"
        ),
        "{table}"
    );
    let out = f.ok(&[
        "release",
        "block-edge",
        "4.17.0-okd-scos.0",
        "4.17.0-okd-scos.5",
        "--unblock",
    ]);
    assert!(out.contains("unblocked"), "{out}");

    // Errors name what is wrong.
    let err = f.fails(&[
        "release",
        "accept",
        "4.17.0-0.okd-scos-1999-01-01-000000",
        "--reason",
        "x",
    ]);
    assert!(
        err.contains("no payload named '4.17.0-0.okd-scos-1999-01-01-000000'"),
        "{err}"
    );
    let out = f.cmd().args(["release", "accept", name]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--reason <REASON>"));
}

#[test]
fn a_failing_blocking_job_rejects_the_payload() {
    let f = site();
    let config = f.home.path().join("forge.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("set -e\\n", "echo broken >&2; exit 3\\n"),
    )
    .unwrap();
    f.ok(&["controller", "sync"]);
    let list = payloads(&f);
    let p = &list[0]["payload"];
    assert_eq!(p["phase"], "rejected", "{list:#?}");
    assert_eq!(p["reason"], "e2e failed 1 time(s)");
    let e2e = list[0]["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["job"] == "e2e")
        .unwrap()
        .clone();
    assert_eq!(e2e["state"], "failed");
    assert_eq!(e2e["message"], "exit code 3");
}

#[test]
fn one_controller_per_state() {
    let f = site();
    let mut run = f.std_cmd();
    run.args(["controller", "run", "--interval", "3600"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = run.spawn().unwrap();
    // Wait until it has cut its payload (it holds the lock from the start).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while payloads(&f)
        .first()
        .is_none_or(|p| p["payload"]["phase"] != "accepted")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "controller run did not accept the payload"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let err = f.fails(&["controller", "sync"]);
    assert!(err.contains("another okd-forge controller runs"), "{err}");
    child.kill().unwrap();
    child.wait().unwrap();
    // Its lock went with it.
    f.ok(&["controller", "sync"]);
}

#[test]
fn a_configuration_without_release_settings_is_refused() {
    let f = Forge::new();
    std::fs::write(
        f.home.path().join("forge.yaml"),
        "variants: { okd-scos: {} }\nstreams:\n  s: { variant: okd-scos, branch: release-4.17 }\n",
    )
    .unwrap();
    let err = f.fails(&["controller", "sync"]);
    assert!(err.contains("no stream has a `release:` block"), "{err}");
}

const TEST_PR: &[&str] = &[
    "test-pr",
    "--stream",
    STREAM,
    "--component",
    "cli",
    "--ref",
    "refs/heads/pr-7",
];

#[test]
fn test_pr_overlays_a_built_change_on_the_accepted_payload_and_promotes_nothing() {
    let f = site();
    let home = f.home.path().to_path_buf();
    // The cli component is built natively from a git repository, on a busybox base.
    let bases = oci::Layout::create(home.join("bases")).unwrap();
    testkit::release::ImageBuilder::new(oci::manifest::host_arch())
        .layer(testkit::release::busybox_userland(&["sh"]))
        .write(&bases, Some("busybox"));
    let up = testkit::git::Upstream::init(home.join("upstream/cli"));
    std::fs::write(up.dir().join("VERSION"), "cli 1\n").unwrap();
    up.git(&["add", "-A"]);
    up.commit("version 1");
    up.branch("release-4.17", "main");
    up.branch("pr-7", "release-4.17");
    std::fs::write(up.dir().join("VERSION"), "cli 2\n").unwrap();
    let pr_commit = up.commit("OCPBUGS-7: cli 2");
    let config = home.join("forge.yaml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "streams:",
        &format!(
            "components:\n  cli:\n    git: {}\n    images:\n      - to: cli\n        native:\n          \
             command: [sh, -c, 'mkdir -p _out && cp VERSION _out/']\n          \
             outputs: ['_out/VERSION:/usr/share/cli/VERSION']\n          base: oci:{}:busybox\n        versions: {{ kubectl: 1.31.0 }}\n\
             streams:",
            up.url(),
            home.join("bases").display()
        ),
    );
    std::fs::write(&config, text).unwrap();

    // Nothing Accepted yet: nothing to test against.
    let err = f.fails(TEST_PR);
    assert!(err.contains("no Accepted payload to test against"), "{err}");

    f.ok(&["controller", "sync"]);
    let accepted = payloads(&f)[0]["payload"].clone();
    let out = f.json(TEST_PR);
    let built = &out["images"][0];
    assert_eq!(built["commit"], pr_commit.as_str());
    assert_eq!(built["promoted"], false);
    let test = &out["test"];
    assert_eq!(test["passed"], true, "{test:#}");
    assert_eq!(test["base"], accepted["name"]);
    let name = test["payload"].as_str().unwrap();
    assert_eq!(
        name,
        format!(
            "{}-test-{}",
            accepted["name"].as_str().unwrap(),
            &pr_commit[..12]
        )
    );
    // The job tested the ephemeral payload: its cli is the change, the rest the Accepted payload's.
    let e2e = test["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "e2e")
        .unwrap();
    assert_eq!(e2e["state"], "succeeded");
    let dir = Path::new(e2e["dir"].as_str().unwrap());
    let info: Value =
        serde_json::from_slice(&std::fs::read(dir.join("artifacts/release-info.json")).unwrap())
            .unwrap();
    assert_eq!(info["metadata"]["version"], name);
    let tags = info["references"]["spec"]["tags"].as_array().unwrap();
    let from = |tag: &str| {
        tags.iter().find(|t| t["name"] == tag).unwrap()["from"]["name"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(from("cli").ends_with(built["digest"].as_str().unwrap()));
    assert!(from("hyperkube").ends_with(accepted["inputs"]["hyperkube"].as_str().unwrap()));
    // The upgrade job ran from the Accepted payload (its command fails; it is informing only).
    let upgrade = test["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "upgrade")
        .unwrap();
    assert_eq!(upgrade["state"], "failed");

    // Nothing promoted: the stream, its payloads and the store's tags are as before.
    assert_eq!(payloads(&f).len(), 1);
    let tags = f.ok(&["stream", "tags", STREAM]);
    assert!(!tags.contains(built["digest"].as_str().unwrap()), "{tags}");
    let store = oci::Layout::open(home.join("var/store")).unwrap();
    assert!(!store.tags().unwrap().contains(&name.to_string()));
}

#[test]
fn the_kubernetes_executor_without_a_cluster_says_what_to_configure() {
    let f = site().with_env("KUBECONFIG", "/nonexistent/kubeconfig");
    let err = f.fails(&["controller", "sync", "--executor", "kubernetes"]);
    assert!(
        err.starts_with("error: no Kubernetes configuration: set KUBECONFIG, write ~/.kube/config"),
        "{err}"
    );
    assert!(err.contains("/nonexistent/kubeconfig"), "{err}");
    assert!(payloads(&f).is_empty(), "nothing was cut");
}
