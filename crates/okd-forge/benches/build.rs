//! Build stage benchmark (issue 4): `okd-forge build` over 150 components in local git repositories,
//! with the native builder: a full build, a no-op reconcile (nothing changed; the target is under
//! 2 s), and a rebuild after one commit. The peer, measured in the same run: 150 sequential
//! `git ls-remote URL refs/heads/release-4.17`, what a poller driving the git CLI spends just to learn
//! the branch heads.
//!
//! The data set, generated deterministically and cached under `target/bench-data/build-v1`:
//!
//! - `repos/<component>`: 150 git repositories named after OKD release components (the
//!   cluster-version-operator, 39 operators, 110 operands), each with a `VERSION` file and a small Go
//!   source file (`cmd/<component>/main.go`) committed on `release-4.17`;
//! - `bases`: an OCI layout holding the host's busybox as a one-layer image tagged `busybox`.
//!
//! `forge.yaml` has one variant (`okd-scos`, build arg `TAGS=scos`), one stream (`okd-scos-4.17` on
//! `release-4.17`) and 150 components, each with one native image whose command copies `VERSION` and
//! the source file into `_out/` and writes `$TAGS` beside them; `_out` goes to `/usr/share/<component>`
//! on the busybox base. `parallelism` is not set, so builds run on every core.
//!
//! The repositories are shared by all rounds, read-only, except `machine-config-operator`'s: each round
//! works on its own copy of it. Each round then, with a fresh `var/` (store, state database, caches):
//!
//! 1. full: `okd-forge --output json build`: all 150 images `built` and promoted;
//! 2. no-op: the same again, nothing changed: all 150 `unchanged`, at the same digests;
//! 3. peer: 150 × `git ls-remote URL refs/heads/release-4.17`, one after the other: each must name the
//!    commit the no-op reconcile reported;
//! 4. one commit: a new `VERSION` committed to `machine-config-operator`, then `build` again: exactly
//!    that image `built` and promoted, 149 `unchanged`.
//!
//! After the full build and the one-commit build (untimed), every stream tag in the store is checked:
//! it points at the reported digest, its top layer holds `usr/share/<component>/{VERSION,tags,main.go}`
//! with this commit's contents, and its commit label names the reported commit.
//!
//! Run with `BENCH_ROUNDS=3 cargo bench -p okd-forge --bench build` (default 3 rounds; medians count).
//! Prints a Markdown table for docs/benchmarks.md, then PASS (median no-op reconcile under 2 s) or
//! FAIL; exits non-zero on FAIL. `OKD_FORGE_BIN=PATH` measures another build of okd-forge on the same
//! set.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicUsize, Ordering};

use oci::manifest::Parsed;
use oci::{Layout, Selector};
use serde_json::Value;
use testkit::bench::{data_set, measure, median, Cost};
use testkit::git::Upstream;
use testkit::release::{Entry, ImageBuilder};

const STREAM: &str = "okd-scos-4.17";
const BRANCH: &str = "release-4.17";
/// The component that gets one commit in step 4.
const CHANGED: &str = "machine-config-operator";
/// The target for the median no-op reconcile, in seconds.
const TARGET_NOOP: f64 = 2.0;
const COMMIT_ID_LABEL: &str = "io.openshift.build.commit.id";

/// The 150 components: the names of the components of an OKD 4.17 payload.
const COMPONENTS: &str = "
    cluster-version-operator
    aws-ebs-csi-driver-operator azure-disk-csi-driver-operator cloud-credential-operator
    cluster-authentication-operator cluster-autoscaler-operator cluster-baremetal-operator
    cluster-capi-operator cluster-cloud-controller-manager-operator cluster-config-operator
    cluster-control-plane-machine-set-operator cluster-csi-snapshot-controller-operator
    cluster-dns-operator cluster-etcd-operator cluster-image-registry-operator
    cluster-ingress-operator cluster-kube-apiserver-operator cluster-kube-controller-manager-operator
    cluster-kube-scheduler-operator cluster-kube-storage-version-migrator-operator
    cluster-machine-approver cluster-monitoring-operator cluster-network-operator
    cluster-node-tuning-operator cluster-olm-operator cluster-openshift-apiserver-operator
    cluster-openshift-controller-manager-operator cluster-samples-operator cluster-storage-operator
    console-operator csi-driver-manila-operator gcp-pd-csi-driver-operator insights-operator
    machine-api-operator machine-config-operator openstack-cinder-csi-driver-operator
    operator-lifecycle-manager operator-marketplace service-ca-operator vsphere-problem-detector
    agent-installer-api-server agent-installer-csr-approver agent-installer-node-agent
    agent-installer-orchestrator apiserver-network-proxy aws-cloud-controller-manager
    aws-cluster-api-controllers aws-ebs-csi-driver aws-machine-controllers aws-pod-identity-webhook
    azure-cloud-controller-manager azure-cloud-node-manager azure-disk-csi-driver
    azure-file-csi-driver azure-machine-controllers baremetal-installer baremetal-machine-controllers
    baremetal-operator baremetal-runtimecfg cli cli-artifacts cloud-network-config-controller
    cluster-bootstrap cluster-policy-controller configmap-reloader console
    container-networking-plugins coredns csi-driver-manila csi-driver-nfs csi-external-attacher
    csi-external-provisioner csi-external-resizer csi-external-snapshotter csi-livenessprobe
    csi-node-driver-registrar csi-snapshot-controller csi-snapshot-validation-webhook deployer
    docker-builder docker-registry driver-toolkit egress-router-cni etcd
    gcp-cloud-controller-manager gcp-machine-controllers gcp-pd-csi-driver haproxy-router hyperkube
    ibm-cloud-controller-manager insights-runtime-extractor installer installer-artifacts ironic
    ironic-agent ironic-machine-os-downloader ironic-static-ip-manager k8s-prometheus-adapter
    keepalived-ipfailover kube-proxy kube-rbac-proxy kube-state-metrics
    kube-storage-version-migrator kuryr-cni libvirt-machine-controllers
    machine-image-customization-controller machine-os-images monitoring-plugin
    multus-admission-controller multus-cni multus-networkpolicy multus-route-override-cni
    multus-whereabouts-ipam-cni must-gather network-interface-bond-cni network-metrics-daemon
    network-tools oauth-apiserver oauth-proxy oauth-server oc-mirror openshift-apiserver
    openshift-controller-manager openshift-state-metrics openstack-cinder-csi-driver
    openstack-cloud-controller-manager openstack-machine-api-provider operator-registry
    ovirt-csi-driver ovn-kubernetes pod prom-label-proxy prometheus prometheus-alertmanager
    prometheus-config-reloader prometheus-node-exporter prometheus-operator
    prometheus-operator-admission-webhook route-controller-manager sdn stream-coreos telemeter tests
    thanos tools vsphere-cloud-controller-manager vsphere-cluster-api-controllers vsphere-csi-driver
    vsphere-csi-driver-syncer vsphere-machine-controllers
";

/// The native build of every component: cheap, but it reads the checkout and the variant's build
/// argument, and writes what the image ships.
const COMMAND: &str =
    r#"[sh, -c, 'mkdir -p _out && cp VERSION cmd/*/main.go _out/ && echo "$TAGS" > _out/tags']"#;

fn main() -> ExitCode {
    let components: Vec<&str> = COMPONENTS.split_whitespace().collect();
    assert_eq!(components.len(), 150);
    assert!(components.contains(&CHANGED));
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(3);
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Canonical: okd-forge refuses a `file://` URL with `..` in it, and data_set's path has one.
    let data = data_set("build-v1", |dir| generate(dir, &components))
        .canonicalize()
        .expect("data set dir");
    let base = format!("oci:{}:busybox", data.join("bases").display());
    let tmp = tempfile::tempdir().expect("temp dir");
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).expect("home dir");
    eprintln!(
        "data set: {} repositories on {BRANCH} and a busybox base in {}; rounds work in {} (TMPDIR)",
        components.len(),
        data.display(),
        tmp.path().display()
    );

    let mut results: BTreeMap<&str, Vec<Cost>> = BTreeMap::new();
    for round in 1..=rounds {
        let dir = tmp.path().join(format!("round-{round}"));
        std::fs::create_dir_all(&dir).expect("round dir");
        // This round's own copy of the repository that changes.
        let changed_repo = dir.join("upstream").join(CHANGED);
        std::fs::create_dir_all(changed_repo.parent().expect("parent")).expect("upstream dir");
        copy_dir(&data.join("repos").join(CHANGED), &changed_repo);
        let url = |c: &str| {
            let repo = if c == CHANGED {
                changed_repo.clone()
            } else {
                data.join("repos").join(c)
            };
            format!("file://{}", repo.display())
        };
        let config = dir.join("forge.yaml");
        std::fs::write(&config, forge_yaml(&components, &url, &base)).expect("write forge.yaml");

        // 1. Full build.
        let (full, full_cost) = build(&config, &home);
        let built = by_tag(&full);
        assert_eq!(built.len(), components.len(), "one result per component");
        for (tag, r) in &built {
            assert_eq!(result(r), "built", "{tag}: {r:#}");
            assert_eq!(r["promoted"], true, "{tag}: {r:#}");
        }
        check_store(&dir, &built, |_| "4.17.0");

        // 2. No-op reconcile.
        let (noop, noop_cost) = build(&config, &home);
        let noop = by_tag(&noop);
        for (tag, r) in &noop {
            assert_eq!(result(r), "unchanged", "{tag}: {r:#}");
            assert_eq!(r["digest"], built[tag]["digest"], "{tag}");
            assert_eq!(r["commit"], built[tag]["commit"], "{tag}");
        }

        // 3. The peer: learn the 150 heads with the git CLI, one repository after the other.
        let (heads, peer_cost) = measure(&[], || {
            components
                .iter()
                .map(|c| (c.to_string(), ls_remote(&url(c), &home)))
                .collect::<BTreeMap<String, String>>()
        });
        for (tag, head) in &heads {
            assert_eq!(noop[tag]["commit"], head.as_str(), "{tag}: head");
        }

        // 4. One commit to one component.
        let commit = commit_version(&changed_repo, CHANGED, "4.17.1", &home);
        let (one, one_cost) = build(&config, &home);
        let one = by_tag(&one);
        for (tag, r) in &one {
            if tag == CHANGED {
                assert_eq!(result(r), "built", "{tag}: {r:#}");
                assert_eq!(r["promoted"], true, "{tag}: {r:#}");
                assert_eq!(r["commit"], commit.as_str(), "{tag}");
                assert_ne!(r["digest"], built[tag]["digest"], "{tag}: a new image");
            } else {
                assert_eq!(result(r), "unchanged", "{tag}: {r:#}");
                assert_eq!(r["digest"], built[tag]["digest"], "{tag}");
            }
        }
        check_store(
            &dir,
            &one,
            |c| if c == CHANGED { "4.17.1" } else { "4.17.0" },
        );

        eprintln!(
            "round {round}/{rounds}: full {:.2}s, no-op {:.2}s, one commit {:.2}s, {} × git ls-remote {:.2}s",
            full_cost.wall,
            noop_cost.wall,
            one_cost.wall,
            components.len(),
            peer_cost.wall
        );
        results.entry("full").or_default().push(full_cost);
        results.entry("noop").or_default().push(noop_cost);
        results.entry("one").or_default().push(one_cost);
        results.entry("peer").or_default().push(peer_cost);
        // The round's directory stays until the end: deleting thousands of files just before the
        // next full build slows its file creation down on some file systems (ext4 without a
        // journal checks every free inode for a recent deletion), which is not what is measured.
    }

    let med = |k: &str, f: fn(&Cost) -> f64| median(results[k].iter().map(f).collect());
    let noop = med("noop", |c| c.wall);
    let peer = med("peer", |c| c.wall);
    println!();
    println!("| run | wall time (median of {rounds}) | rounds | CPU (okd-forge and its builds) | result |");
    println!("|---|---|---|---|---|");
    for (key, label, outcome) in [
        (
            "full",
            format!("full build, `--jobs {jobs}` (the default: one per core)"),
            "150 built and promoted",
        ),
        (
            "noop",
            "no-op reconcile, nothing changed".to_string(),
            "150 unchanged",
        ),
        (
            "one",
            format!("one commit to `{CHANGED}`"),
            "1 built and promoted, 149 unchanged",
        ),
        (
            "peer",
            format!("peer: 150 × `git ls-remote URL refs/heads/{BRANCH}`, sequential"),
            "150 heads",
        ),
    ] {
        let rounds: Vec<String> = results[key]
            .iter()
            .map(|c| format!("{:.2}", c.wall))
            .collect();
        println!(
            "| {label} | **{:.2} s** | {} s | {:.2} CPU-s | {outcome} |",
            med(key, |c| c.wall),
            rounds.join(", "),
            med(key, |c| c.client_cpu),
        );
    }
    let pass = noop < TARGET_NOOP;
    println!(
        "\nno-op reconcile / 150 × git ls-remote = {:.2}x ({:.2} s / {:.2} s)",
        noop / peer,
        noop,
        peer
    );
    println!(
        "no-op reconcile: {noop:.2} s (target < {TARGET_NOOP:.1} s): {}",
        if pass { "PASS" } else { "FAIL" }
    );
    // Returning (not process::exit) drops the temp dirs.
    if pass {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The okd-forge under test: this build's, or `OKD_FORGE_BIN`.
fn binary_under_test() -> PathBuf {
    std::env::var_os("OKD_FORGE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_okd-forge")))
}

/// One timed `okd-forge --output json build --config CONFIG`, with no settings from the machine's
/// user; panics unless it succeeds with no failed image. Returns the JSON document.
fn build(config: &Path, home: &Path) -> (Value, Cost) {
    let mut cmd = Command::new(binary_under_test());
    cmd.args(["--output", "json", "build", "--config"])
        .arg(config)
        .current_dir(config.parent().expect("config dir"))
        .env("HOME", home);
    for var in [
        "OKD_FORGE_CONFIG",
        "OKD_FORGE_CACHE",
        "OKD_FORGE_STORE",
        "REGISTRY_AUTH_FILE",
        "DOCKER_CONFIG",
        "XDG_RUNTIME_DIR",
        "SOURCE_DATE_EPOCH",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
    let (out, cost) = measure(&[], || cmd.output().expect("run okd-forge"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let doc: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{cmd:?}: not JSON ({e}); stderr:\n{stderr}"));
    assert!(out.status.success(), "{cmd:?} failed: {doc:#}\n{stderr}");
    assert_eq!(doc["failed"], 0, "{doc:#}");
    (doc, cost)
}

/// The results of a build by stream tag (all in stream [`STREAM`]).
fn by_tag(doc: &Value) -> BTreeMap<String, Value> {
    doc["images"]
        .as_array()
        .expect("images")
        .iter()
        .map(|r| {
            assert_eq!(r["stream"], STREAM, "{r:#}");
            (r["tag"].as_str().expect("tag").to_string(), r.clone())
        })
        .collect()
}

fn result(r: &Value) -> &str {
    r["status"]["result"].as_str().expect("status.result")
}

/// `git ls-remote URL refs/heads/BRANCH`: the commit id.
fn ls_remote(url: &str, home: &Path) -> String {
    let mut cmd = git_command(home);
    cmd.args(["ls-remote", url, &format!("refs/heads/{BRANCH}")]);
    let out = testkit::run_ok(&mut cmd);
    let id = out.split_whitespace().next().unwrap_or_default();
    assert_eq!(id.len(), 40, "{url}: {out}");
    id.to_string()
}

/// `git` without the user's or the system's configuration, nor an inherited repository.
fn git_command(home: &Path) -> Command {
    let mut cmd = testkit::git::command();
    cmd.env("HOME", home);
    cmd
}

/// Commits `VERSION` = "<component> <version>" on the checked-out `release-4.17` of the repository at
/// `dir` (a copy of one [`Upstream`] made), with a fixed identity and date; returns the commit.
fn commit_version(dir: &Path, component: &str, version: &str, home: &Path) -> String {
    std::fs::write(dir.join("VERSION"), format!("{component} {version}\n")).expect("VERSION");
    let date = "1700086400 +0000";
    let git = |args: &[&str]| {
        let mut cmd = git_command(home);
        cmd.args(["-c", "user.name=t", "-c", "user.email=t@e"])
            .args(["-c", "commit.gpgsign=false"])
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_DATE", date)
            .env("GIT_COMMITTER_DATE", date);
        testkit::run_ok(&mut cmd).trim().to_string()
    };
    assert_eq!(git(&["rev-parse", "--abbrev-ref", "HEAD"]), BRANCH);
    git(&[
        "commit",
        "--quiet",
        "-a",
        "-m",
        &format!("version {version}"),
    ]);
    git(&["rev-parse", "HEAD"])
}

/// Every stream tag in the round's store: at the reported digest, labelled with the reported commit,
/// and its top layer holding `usr/share/<tag>/` with the variant's build argument and the
/// component's `VERSION` (the one `version` gives) and source.
fn check_store(dir: &Path, results: &BTreeMap<String, Value>, version: impl Fn(&str) -> &str) {
    let store = Layout::open(dir.join("var/store")).expect("store");
    for (tag, r) in results {
        let m = store
            .get_manifest(Some(&Selector::Tag(format!("{STREAM}_{tag}"))))
            .unwrap_or_else(|e| panic!("{tag} in the store: {e}"));
        assert_eq!(r["digest"], m.digest.to_string(), "{tag}: store tag");
        let Parsed::Image { config, layers } = m.parse().expect("manifest") else {
            panic!("{tag} is not an image");
        };
        assert_eq!(layers.len(), 2, "{tag}: busybox and the outputs");
        let config: Value =
            serde_json::from_slice(&store.read_blob_bytes(&config.digest).expect("config"))
                .expect("config JSON");
        assert_eq!(
            config["config"]["Labels"][COMMIT_ID_LABEL], r["commit"],
            "{tag}: commit label"
        );
        let top = store.read_blob_bytes(&layers[1].digest).expect("top layer");
        let mut files = BTreeMap::new();
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(&top[..]));
        for e in tar.entries().expect("tar") {
            let mut e = e.expect("tar entry");
            if e.header().entry_type().is_file() {
                let mut body = String::new();
                e.read_to_string(&mut body).expect("file");
                files.insert(e.path().expect("path").display().to_string(), body);
            }
        }
        let share = format!("usr/share/{tag}");
        assert_eq!(files[&format!("{share}/tags")], "scos\n", "{tag}");
        assert_eq!(
            files[&format!("{share}/VERSION")],
            format!("{tag} {}\n", version(tag)),
            "{tag}"
        );
        assert_eq!(files[&format!("{share}/main.go")], main_go(tag), "{tag}");
    }
}

/// The forge.yaml of a round; `url` gives each component's repository.
fn forge_yaml(components: &[&str], url: &dyn Fn(&str) -> String, base: &str) -> String {
    let mut y =
        String::from("variants:\n  okd-scos: { build_args: { TAGS: scos } }\ncomponents:\n");
    for c in components {
        y.push_str(&format!(
            "  {c}:\n    git: {}\n    images:\n      - to: {c}\n        native:\n          command: {COMMAND}\n          outputs: [\"_out:/usr/share/{c}\"]\n          base: \"{base}\"\n",
            url(c)
        ));
    }
    y.push_str(&format!(
        "streams:\n  {STREAM}: {{ variant: okd-scos, branch: {BRANCH} }}\n"
    ));
    y
}

/// `cp -a FROM TO`.
fn copy_dir(from: &Path, to: &Path) {
    testkit::run_ok(Command::new("cp").arg("-a").arg(from).arg(to));
}

// ------------------------------------------------------------------------------------------------
// The data set
// ------------------------------------------------------------------------------------------------

fn generate(dir: &Path, components: &[&str]) {
    let layout = Layout::create(dir.join("bases")).expect("layout");
    let busybox = std::fs::read("/bin/busybox").expect(
        "/bin/busybox (Debian package busybox-static) is needed; scripts/test.sh installs it",
    );
    ImageBuilder::new(oci::manifest::host_arch())
        .label("base", "busybox")
        .layer(vec![
            Entry::dir("bin"),
            Entry::file("bin/busybox", busybox).mode(0o755),
            Entry::symlink("bin/sh", "busybox"),
        ])
        .write(&layout, Some("busybox"));

    // The repositories, on every core (each is a handful of git calls).
    let next = AtomicUsize::new(0);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(c) = components.get(i) else {
                    break;
                };
                let up = Upstream::init(dir.join("repos").join(c));
                std::fs::write(up.dir().join("VERSION"), format!("{c} 4.17.0\n")).expect("VERSION");
                let src = up.dir().join("cmd").join(c);
                std::fs::create_dir_all(&src).expect("cmd dir");
                std::fs::write(src.join("main.go"), main_go(c)).expect("main.go");
                up.git(&["add", "-A"]);
                up.commit(&format!("{c} 4.17.0"));
                up.branch(BRANCH, "main");
            });
        }
    });
}

/// The source file of `component`.
fn main_go(component: &str) -> String {
    format!(
        "package main\n\nimport (\n\t\"fmt\"\n\t\"os\"\n)\n\nfunc main() {{\n\tfmt.Println(\"{component}\", os.Args[1:])\n}}\n"
    )
}

// ------------------------------------------------------------------------------------------------
// Measuring
// ------------------------------------------------------------------------------------------------
