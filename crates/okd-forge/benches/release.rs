//! Release payload assembly benchmark (issue 3): `okd-forge release new` over 150 component images in
//! a local Distribution registry, cold, warm, and after one operator changed.
//!
//! The image set, generated deterministically and cached under `target/bench-data/release-v1`:
//!
//! - `cluster-version-operator`, the base: two layers (userland and a 6 MiB binary; its own
//!   `/manifests` and `/bootstrap`), an Entrypoint; not labelled as an operator.
//! - 39 operators (`io.openshift.release.operator=true`): a 4 MiB lower layer (libraries), and a top
//!   layer holding a 3 MiB binary plus `manifests/`: 6 to 10 YAML files (Namespace, RBAC, CRDs of
//!   5–18 KB, Deployment, ConfigMap, ClusterOperator with `0.0.1-snapshot`, sometimes a ServiceMonitor
//!   and a PrometheusRule) and an `image-references` naming the operator and 2 or 3 operands through
//!   `placeholder.url.oc.will.replace.this.org/placeholdernamespace:<tag>`, which the manifests use.
//! - 110 operands: a 3 MiB layer, every other one a second 2 MiB layer.
//!
//! Every operand is named by some operator's image-references, so nothing is pruned: the payload
//! lists all 150 tags. File contents are incompressible, like real binaries.
//!
//! The set is pushed into a fresh registry (`okd-forge image copy --all-tags`). Each round then, with
//! a fresh empty `--cache`:
//!
//! 1. full: `okd-forge release new` from the mapping file, cold cache;
//! 2. warm: the same inputs again, same cache;
//! 3. incremental: `machine-config-operator` rebuilt (other binary, one manifest changed: a new top
//!    layer, so a new digest) is pushed over its tag and its mapping line updated; `release new` again
//!    with the same cache. Its operator manifests must come from the cache by layer digest except the
//!    changed one's, and this must take at most 10% of the full time.
//!
//! Checks: `release new` prints no warning; the cache holds one extraction per operator after the full
//! run, none more after the warm one and exactly one more (the changed top layer) after the incremental
//! one; `release info` lists the 150 tags with the mapping's pull specs (the changed one's new digest)
//! and the expected number of manifests; `release extract` shows the changed Deployment rewritten to
//! the new digest.
//!
//! Run with `BENCH_ROUNDS=3 cargo bench -p okd-forge --bench release` (default 3 rounds; medians count).
//! Prints a Markdown table for docs/benchmarks.md, then PASS or FAIL; exits non-zero on FAIL.
//! `OKD_FORGE_BIN=PATH` measures another build of okd-forge (e.g. a candidate fix) on the same set.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use oci::{Digest, Layout, RawManifest, Selector};
use serde_json::Value;
use testkit::bench::{data_set, dir_bytes, measure, median, timed, Cost};
use testkit::release::{self as fx, Entry, ImageBuilder, PLACEHOLDER};
use testkit::{run_ok, skopeo_digest, RegistryServer};

const NAME: &str = "4.17.0-0.okd-scos-2026-11-24-000000";
const CVO: &str = "cluster-version-operator";
/// The operator that changes between the full and the incremental assembly.
const CHANGED: &str = "machine-config-operator";
const CONTENT: &str = "okd/content";
const TARGET_RATIO: f64 = 0.10;

const MIB: usize = 1 << 20;
const CVO_BINARY: usize = 6 * MIB;
const OPERATOR_LOWER: usize = 4 * MIB;
const OPERATOR_BINARY: usize = 3 * MIB;
const OPERAND_LAYER: usize = 3 * MIB;
const OPERAND_SECOND: usize = 2 * MIB;

const OPERATORS: &[&str] = &[
    "aws-ebs-csi-driver-operator",
    "azure-disk-csi-driver-operator",
    "cloud-credential-operator",
    "cluster-authentication-operator",
    "cluster-autoscaler-operator",
    "cluster-baremetal-operator",
    "cluster-capi-operator",
    "cluster-cloud-controller-manager-operator",
    "cluster-config-operator",
    "cluster-control-plane-machine-set-operator",
    "cluster-csi-snapshot-controller-operator",
    "cluster-dns-operator",
    "cluster-etcd-operator",
    "cluster-image-registry-operator",
    "cluster-ingress-operator",
    "cluster-kube-apiserver-operator",
    "cluster-kube-controller-manager-operator",
    "cluster-kube-scheduler-operator",
    "cluster-kube-storage-version-migrator-operator",
    "cluster-machine-approver",
    "cluster-monitoring-operator",
    "cluster-network-operator",
    "cluster-node-tuning-operator",
    "cluster-olm-operator",
    "cluster-openshift-apiserver-operator",
    "cluster-openshift-controller-manager-operator",
    "cluster-samples-operator",
    "cluster-storage-operator",
    "console-operator",
    "csi-driver-manila-operator",
    "gcp-pd-csi-driver-operator",
    "insights-operator",
    "machine-api-operator",
    "machine-config-operator",
    "openstack-cinder-csi-driver-operator",
    "operator-lifecycle-manager",
    "operator-marketplace",
    "service-ca-operator",
    "vsphere-problem-detector",
];

const OPERANDS: &[&str] = &[
    "agent-installer-api-server",
    "agent-installer-csr-approver",
    "agent-installer-node-agent",
    "agent-installer-orchestrator",
    "apiserver-network-proxy",
    "aws-cloud-controller-manager",
    "aws-cluster-api-controllers",
    "aws-ebs-csi-driver",
    "aws-machine-controllers",
    "aws-pod-identity-webhook",
    "azure-cloud-controller-manager",
    "azure-cloud-node-manager",
    "azure-disk-csi-driver",
    "azure-file-csi-driver",
    "azure-machine-controllers",
    "baremetal-installer",
    "baremetal-machine-controllers",
    "baremetal-operator",
    "baremetal-runtimecfg",
    "cli",
    "cli-artifacts",
    "cloud-network-config-controller",
    "cluster-bootstrap",
    "cluster-policy-controller",
    "configmap-reloader",
    "console",
    "container-networking-plugins",
    "coredns",
    "csi-driver-manila",
    "csi-driver-nfs",
    "csi-external-attacher",
    "csi-external-provisioner",
    "csi-external-resizer",
    "csi-external-snapshotter",
    "csi-livenessprobe",
    "csi-node-driver-registrar",
    "csi-snapshot-controller",
    "csi-snapshot-validation-webhook",
    "deployer",
    "docker-builder",
    "docker-registry",
    "driver-toolkit",
    "egress-router-cni",
    "etcd",
    "gcp-cloud-controller-manager",
    "gcp-machine-controllers",
    "gcp-pd-csi-driver",
    "haproxy-router",
    "hyperkube",
    "ibm-cloud-controller-manager",
    "insights-runtime-extractor",
    "installer",
    "installer-artifacts",
    "ironic",
    "ironic-agent",
    "ironic-machine-os-downloader",
    "ironic-static-ip-manager",
    "k8s-prometheus-adapter",
    "keepalived-ipfailover",
    "kube-proxy",
    "kube-rbac-proxy",
    "kube-state-metrics",
    "kube-storage-version-migrator",
    "kuryr-cni",
    "libvirt-machine-controllers",
    "machine-image-customization-controller",
    "machine-os-images",
    "monitoring-plugin",
    "multus-admission-controller",
    "multus-cni",
    "multus-networkpolicy",
    "multus-route-override-cni",
    "multus-whereabouts-ipam-cni",
    "must-gather",
    "network-interface-bond-cni",
    "network-metrics-daemon",
    "network-tools",
    "oauth-apiserver",
    "oauth-proxy",
    "oauth-server",
    "oc-mirror",
    "openshift-apiserver",
    "openshift-controller-manager",
    "openshift-state-metrics",
    "openstack-cinder-csi-driver",
    "openstack-cloud-controller-manager",
    "openstack-machine-api-provider",
    "operator-registry",
    "ovirt-csi-driver",
    "ovn-kubernetes",
    "pod",
    "prom-label-proxy",
    "prometheus",
    "prometheus-alertmanager",
    "prometheus-config-reloader",
    "prometheus-node-exporter",
    "prometheus-operator",
    "prometheus-operator-admission-webhook",
    "route-controller-manager",
    "sdn",
    "stream-coreos",
    "telemeter",
    "tests",
    "thanos",
    "tools",
    "vsphere-cloud-controller-manager",
    "vsphere-cluster-api-controllers",
    "vsphere-csi-driver",
    "vsphere-csi-driver-syncer",
    "vsphere-machine-controllers",
];

fn main() -> ExitCode {
    assert_eq!(OPERATORS.len(), 39);
    assert_eq!(OPERANDS.len(), 110);
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(3);
    let data = image_set();
    let components = data.join("components");
    let rebuilt = data.join("rebuilt");
    let unique_bytes = dir_bytes(&components.join("blobs/sha256"));
    let expected_manifests = expected_manifest_count();

    let registry = RegistryServer::start();
    let tmp = tempfile::tempdir().expect("temp dir");
    let store = tmp.path().join("store-empty");
    std::fs::create_dir_all(&store).expect("store dir");
    let t = timed(|| {
        run_ok(&mut forge(&[
            "image",
            "copy",
            "-q",
            "--all-tags",
            &format!("oci:{}", components.display()),
            &registry.docker(CONTENT),
        ]));
    });
    let v1 = digests(&components);
    let changed_digest = digests(&rebuilt)[CHANGED].clone();
    assert_eq!(v1.len(), 150);
    assert_ne!(v1[CHANGED], changed_digest);
    for tag in [CVO, CHANGED, OPERANDS[0]] {
        let pushed = skopeo_digest(&registry.docker(&format!("{CONTENT}:{tag}")));
        assert_eq!(pushed, v1[tag].to_string(), "{tag} in the registry");
    }
    eprintln!(
        "image set: 150 images (1 CVO, 39 operators, 110 operands), {:.0} MiB unique, pushed to {} in {t:.1}s; {expected_manifests} operator manifests",
        unique_bytes as f64 / MIB as f64,
        registry.docker(CONTENT)
    );

    let pullspec = |d: &Digest| format!("{}/{CONTENT}@{d}", registry.host());
    let write_mapping = |path: &Path, digests: &BTreeMap<String, Digest>| {
        let text: String = digests
            .iter()
            .map(|(tag, d)| format!("{tag}={}\n", pullspec(d)))
            .collect();
        std::fs::write(path, text).expect("write mapping");
    };
    let mapping_v1 = tmp.path().join("mapping-v1.txt");
    write_mapping(&mapping_v1, &v1);
    let mut v2 = v1.clone();
    v2.insert(CHANGED.to_string(), changed_digest.clone());
    let mapping_v2 = tmp.path().join("mapping-v2.txt");
    write_mapping(&mapping_v2, &v2);

    // Push the changed operator's image in `layout` over its component tag.
    let push_changed = |layout: &Path| {
        run_ok(&mut forge(&[
            "image",
            "copy",
            "-q",
            &format!("oci:{}:{CHANGED}", layout.display()),
            &registry.docker(&format!("{CONTENT}:{CHANGED}")),
        ]));
    };

    let mut results: BTreeMap<&str, Vec<Run>> = BTreeMap::new();
    for round in 1..=rounds {
        let cache = tmp.path().join(format!("cache-{round}"));
        let repo = format!("okd/release-r{round}");
        let to = |tag: &str| registry.docker(&format!("{repo}:{tag}"));
        // The component tag points at the original image again, as before a rebuild.
        push_changed(&components);

        let full = release_new(&registry, &mapping_v1, &to("full"), &store, &cache);
        let extracted = cached_extractions(&cache);
        assert_eq!(extracted, OPERATORS.len(), "one extraction per operator");
        let warm = release_new(&registry, &mapping_v1, &to("warm"), &store, &cache);
        assert_eq!(
            cached_extractions(&cache),
            extracted,
            "warm: nothing extracted"
        );
        // Rebuild: push the new image over the tag (untimed, as CI would before assembling).
        push_changed(&rebuilt);
        let incremental = release_new(&registry, &mapping_v2, &to("incremental"), &store, &cache);
        assert_eq!(
            cached_extractions(&cache),
            extracted + 1,
            "incremental: only the changed operator's top layer is extracted"
        );
        eprintln!(
            "round {round}/{rounds}: full {:.2}s, warm {:.2}s, incremental {:.2}s ({:.1}% of full)",
            full.cost.wall,
            warm.cost.wall,
            incremental.cost.wall,
            100.0 * incremental.cost.wall / full.cost.wall
        );

        let check_cache = tmp.path().join(format!("check-cache-{round}"));
        verify(
            &to("full"),
            &full,
            &v1,
            &pullspec,
            expected_manifests,
            &store,
            &check_cache,
        );
        verify(
            &to("incremental"),
            &incremental,
            &v2,
            &pullspec,
            expected_manifests,
            &store,
            &check_cache,
        );
        // The changed operator's Deployment names its own new image, by digest.
        let deployment = run_ok(&mut forge(&[
            "release",
            "extract",
            &to("incremental"),
            "--file",
            &deployment_file(CHANGED),
            "--store",
            &store.display().to_string(),
            "--cache",
            &check_cache.display().to_string(),
        ]));
        assert!(
            deployment.contains(&format!("image: {}\n", pullspec(&changed_digest))),
            "{deployment}"
        );
        assert!(deployment.contains("okd-forge.bench/build: \"2\""));
        assert!(!deployment.contains(PLACEHOLDER));

        results.entry("full").or_default().push(full);
        results.entry("warm").or_default().push(warm);
        results.entry("incremental").or_default().push(incremental);
    }

    let med = |k: &str, f: fn(&Run) -> f64| median(results[k].iter().map(f).collect());
    let full = med("full", |r| r.cost.wall);
    let incremental = med("incremental", |r| r.cost.wall);
    let ratio = incremental / full;
    println!();
    println!(
        "| assembly | wall time (median of {rounds}) | rounds | okd-forge CPU | registry CPU |"
    );
    println!("|---|---|---|---|---|");
    for (key, label) in [
        ("full", "full, cold cache"),
        ("incremental", "incremental, one operator changed"),
        ("warm", "warm, same inputs"),
    ] {
        let rounds: Vec<String> = results[key]
            .iter()
            .map(|r| format!("{:.2}", r.cost.wall))
            .collect();
        println!(
            "| {label} | **{:.2} s** | {} s | {:.2} CPU-s | {:.2} CPU-s |",
            med(key, |r| r.cost.wall),
            rounds.join(", "),
            med(key, |r| r.cost.client_cpu),
            med(key, |r| r.cost.registry_cpu),
        );
    }
    let verdict = if ratio <= TARGET_RATIO {
        "PASS"
    } else {
        "FAIL"
    };
    println!(
        "\nincremental / full = {:.1}% (target <= {:.0}%): {verdict}",
        100.0 * ratio,
        100.0 * TARGET_RATIO
    );
    // Returning (not process::exit) drops the registry and the temp dirs.
    if ratio > TARGET_RATIO {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// One timed `release new`.
struct Run {
    cost: Cost,
    digest: String,
}

/// The okd-forge under test: this build's, or `OKD_FORGE_BIN`.
fn binary_under_test() -> PathBuf {
    std::env::var_os("OKD_FORGE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_okd-forge")))
}

fn forge(args: &[&str]) -> Command {
    let mut c = Command::new(binary_under_test());
    c.args(args);
    c
}

fn release_new(
    registry: &RegistryServer,
    mapping: &Path,
    to: &str,
    store: &Path,
    cache: &Path,
) -> Run {
    let cache = cache.display().to_string();
    let extra = ["--tls-verify=false", "--cache", &cache, "-q"];
    let mut cmd = forge(&[]);
    cmd.args(fx::new_args(NAME, to, mapping, store, &extra));
    let (out, cost) = measure(&[registry], || cmd.output().expect("run okd-forge"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{cmd:?} failed:\n{stderr}");
    // No warnings: every generated manifest is valid and annotated.
    assert!(stderr.trim().is_empty(), "{cmd:?} warned:\n{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let digest = stdout
        .split_whitespace()
        .next()
        .expect("digest on stdout")
        .to_string();
    Run { cost, digest }
}

/// Operator manifest extractions in the cache (`CACHE/operator-manifests/<layer digest>.tar`).
fn cached_extractions(cache: &Path) -> usize {
    std::fs::read_dir(cache.join("operator-manifests"))
        .map(|d| d.filter(|e| e.is_ok()).count())
        .unwrap_or(0)
}

/// `release info` on a pushed payload: its digest, every tag with the mapping's pull spec by digest
/// (nothing pruned), and the expected number of manifests.
fn verify(
    release: &str,
    run: &Run,
    inputs: &BTreeMap<String, Digest>,
    pullspec: &dyn Fn(&Digest) -> String,
    manifests: usize,
    store: &Path,
    cache: &Path,
) {
    let out = run_ok(&mut forge(&[
        "--output",
        "json",
        "release",
        "info",
        release,
        "--store",
        &store.display().to_string(),
        "--cache",
        &cache.display().to_string(),
    ]));
    let info: Value = serde_json::from_str(&out).expect("info JSON");
    assert_eq!(info["digest"], run.digest.as_str(), "{release}");
    assert_eq!(info["manifests"], manifests, "{release}: manifest count");
    let tags: BTreeMap<String, String> = info["references"]["spec"]["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .map(|t| {
            (
                t["name"].as_str().expect("name").to_string(),
                t["from"]["name"].as_str().expect("from.name").to_string(),
            )
        })
        .collect();
    let want: BTreeMap<String, String> = inputs
        .iter()
        .map(|(tag, d)| (tag.clone(), pullspec(d)))
        .collect();
    assert_eq!(tags, want, "{release}: image-references");
}

// ------------------------------------------------------------------------------------------------
// The image set
// ------------------------------------------------------------------------------------------------

/// What one image is.
#[derive(Clone, Copy)]
enum Role {
    Cvo,
    Operator(usize),
    Operand(usize),
}

/// The generated layouts: `components` (150 images, tagged by component) and `rebuilt` (the changed
/// operator), created once and reused.
fn image_set() -> PathBuf {
    data_set("release-v1", generate_image_set)
}

fn generate_image_set(dir: &Path) {
    let mut jobs: Vec<(String, Role)> = vec![(CVO.to_string(), Role::Cvo)];
    jobs.extend(
        OPERATORS
            .iter()
            .enumerate()
            .map(|(i, t)| (t.to_string(), Role::Operator(i))),
    );
    jobs.extend(
        OPERANDS
            .iter()
            .enumerate()
            .map(|(i, t)| (t.to_string(), Role::Operand(i))),
    );
    let layout = Layout::create(dir.join("components")).expect("layout");
    let written = write_parallel(&layout, &jobs, 1);
    for (tag, m) in &written {
        layout.put_manifest(m, Some(tag), true).expect("tag");
    }
    let rebuilt = Layout::create(dir.join("rebuilt")).expect("layout");
    let index = OPERATORS
        .iter()
        .position(|t| *t == CHANGED)
        .expect("changed operator");
    let m = image(CHANGED, Role::Operator(index), 2).write(&rebuilt, None);
    rebuilt.put_manifest(&m, Some(CHANGED), true).expect("tag");
}

/// Build and write the images on every core; returns (tag, manifest) in job order.
fn write_parallel(
    layout: &Layout,
    jobs: &[(String, Role)],
    build: u32,
) -> Vec<(String, RawManifest)> {
    let next = AtomicUsize::new(0);
    let out = Mutex::new(Vec::new());
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((tag, role)) = jobs.get(i) else {
                    break;
                };
                let m = image(tag, *role, build).write(layout, None);
                out.lock().expect("lock").push((i, tag.clone(), m));
            });
        }
    });
    let mut out = out.into_inner().expect("lock");
    out.sort_by_key(|(i, _, _)| *i);
    out.into_iter().map(|(_, t, m)| (t, m)).collect()
}

/// The digest of every tag in a layout.
fn digests(layout: &Path) -> BTreeMap<String, Digest> {
    let layout = Layout::open(layout).expect("layout");
    layout
        .tags()
        .expect("tags")
        .into_iter()
        .map(|t| {
            let d = layout
                .resolve(Some(&Selector::Tag(t.clone())))
                .expect("resolve")
                .digest;
            (t, d)
        })
        .collect()
}

/// The image of `tag`; `build` 2 is the rebuilt operator (another binary, a changed Deployment).
fn image(tag: &str, role: Role, build: u32) -> ImageBuilder {
    let labelled = |b: ImageBuilder| {
        b.label(fx::LABEL_COMMIT_ID, &fx::commit(&format!("{tag}/{build}")))
            .label(fx::LABEL_SOURCE, &fx::source(tag))
            .label(fx::LABEL_COMMIT_REF, "release-4.17")
            .entrypoint(&[&format!("/usr/bin/{tag}")])
    };
    match role {
        Role::Cvo => {
            let mut cvo = fx::cluster_version_operator("amd64");
            cvo.layers[0].push(Entry::dir("usr/lib/"));
            cvo.layers[0].push(
                Entry::file(
                    "usr/lib/cluster-version-operator.so",
                    binary(tag, build, CVO_BINARY),
                )
                .mode(0o755),
            );
            cvo
        }
        Role::Operator(i) => {
            let mut top = vec![
                Entry::dir("usr/"),
                Entry::dir("usr/bin/"),
                Entry::file(
                    &format!("usr/bin/{tag}"),
                    binary(tag, build, OPERATOR_BINARY),
                )
                .mode(0o755),
                Entry::dir("manifests/"),
            ];
            for (name, text) in operator_manifests(tag, i, build) {
                top.push(Entry::file(&format!("manifests/{name}"), text));
            }
            labelled(
                ImageBuilder::new("amd64")
                    .layer(vec![
                        Entry::dir("usr/"),
                        Entry::dir("usr/lib/"),
                        Entry::file(
                            &format!("usr/lib/lib{tag}.so"),
                            binary(&format!("lib{tag}"), 1, OPERATOR_LOWER),
                        ),
                    ])
                    .layer(top)
                    .label(fx::LABEL_OPERATOR, "true"),
            )
        }
        Role::Operand(i) => {
            let mut b = ImageBuilder::new("amd64").layer(vec![
                Entry::dir("usr/"),
                Entry::dir("usr/bin/"),
                Entry::file(&format!("usr/bin/{tag}"), binary(tag, build, OPERAND_LAYER))
                    .mode(0o755),
            ]);
            if i % 2 == 1 {
                b = b.layer(vec![
                    Entry::dir("usr/share/"),
                    Entry::file(
                        &format!("usr/share/{tag}.dat"),
                        binary(&format!("{tag}.dat"), build, OPERAND_SECOND),
                    ),
                ]);
            }
            labelled(b)
        }
    }
}

/// Incompressible "binary" contents (splitmix64), different for each name and build.
fn binary(name: &str, build: u32, size: usize) -> Vec<u8> {
    let seed = Digest::sha256_of(format!("{name}/{build}").as_bytes());
    let mut state = u64::from_str_radix(&seed.hex()[..16], 16).expect("hex");
    let mut out = format!("\x7fELF okd-forge bench {name} build {build}\n").into_bytes();
    out.reserve(size);
    while out.len() < size {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(size);
    out
}

/// The operands operator `i` runs: 2 or 3 of them, so that together the operators name all 110.
fn operands_of(i: usize) -> Vec<&'static str> {
    (0..)
        .map(|k| i + k * OPERATORS.len())
        .take_while(|&j| j < OPERANDS.len())
        .map(|j| OPERANDS[j])
        .collect()
}

/// The short name of an operator (`cluster-dns-operator` → `dns`).
fn short(tag: &str) -> &str {
    let t = tag.strip_prefix("cluster-").unwrap_or(tag);
    t.strip_suffix("-operator").unwrap_or(t)
}

/// The run level of operator `i`'s manifests.
fn level(i: usize) -> usize {
    10 + (i * 7) % 80
}

fn deployment_file(tag: &str) -> String {
    let i = OPERATORS.iter().position(|t| *t == tag).expect("operator");
    format!("0000_{:02}_{tag}_05_deployment.yaml", level(i))
}

/// Operator `i`'s `manifests/` files (name, text), `image-references` included.
fn operator_manifests(tag: &str, i: usize, build: u32) -> Vec<(String, String)> {
    let ns = format!("openshift-{}", short(tag));
    let lvl = level(i);
    let operands = operands_of(i);
    let include = "    include.release.openshift.io/self-managed-high-availability: \"true\"\n    include.release.openshift.io/single-node-developer: \"true\"\n";
    let mut files = Vec::new();
    let mut refs = vec![(tag.to_string(), format!("{PLACEHOLDER}:{tag}"))];
    refs.extend(
        operands
            .iter()
            .map(|o| (o.to_string(), format!("{PLACEHOLDER}:{o}"))),
    );
    let refs: Vec<(&str, &str)> = refs.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    files.push((
        "image-references".to_string(),
        fx::image_references_yaml(&refs),
    ));
    files.push((
        format!("0000_{lvl:02}_{tag}_00_namespace.yaml"),
        format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n  annotations:\n{include}    openshift.io/node-selector: \"\"\n  labels:\n    openshift.io/cluster-monitoring: \"true\"\n    openshift.io/run-level: \"\"\n"
        ),
    ));
    files.push((
        format!("0000_{lvl:02}_{tag}_01_rbac.yaml"),
        format!(
            "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {tag}\n  namespace: {ns}\n  annotations:\n{include}---\n\
             apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: system:openshift:operator:{tag}\n  annotations:\n{include}rules:\n\
             - apiGroups: [\"\"]\n  resources: [\"configmaps\", \"secrets\", \"services\", \"events\", \"pods\"]\n  verbs: [\"get\", \"list\", \"watch\", \"create\", \"update\", \"patch\", \"delete\"]\n\
             - apiGroups: [\"apps\"]\n  resources: [\"deployments\", \"daemonsets\"]\n  verbs: [\"*\"]\n\
             - apiGroups: [\"config.openshift.io\"]\n  resources: [\"clusteroperators\", \"clusteroperators/status\", \"infrastructures\", \"proxies\"]\n  verbs: [\"get\", \"list\", \"watch\", \"update\"]\n---\n\
             apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: system:openshift:operator:{tag}\n  annotations:\n{include}roleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: system:openshift:operator:{tag}\n\
             subjects:\n- kind: ServiceAccount\n  name: {tag}\n  namespace: {ns}\n"
        ),
    ));
    for n in 0..1 + i % 3 {
        files.push((
            format!("0000_{lvl:02}_{tag}_02_crd-{n}.yaml"),
            crd(tag, n, 20 + (i * 7 + n * 13) % 50, include),
        ));
    }
    let mut env = String::new();
    for o in &operands {
        env.push_str(&format!(
            "        - name: {}_IMAGE\n          value: {PLACEHOLDER}:{o}\n",
            o.to_uppercase().replace('-', "_")
        ));
    }
    files.push((
        deployment_file(tag),
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {tag}\n  namespace: {ns}\n  annotations:\n{include}    config.openshift.io/inject-proxy: {tag}\n    okd-forge.bench/build: \"{build}\"\n\
             spec:\n  replicas: 1\n  selector:\n    matchLabels:\n      name: {tag}\n  strategy:\n    type: Recreate\n  template:\n    metadata:\n      labels:\n        name: {tag}\n\
             \x20   spec:\n      serviceAccountName: {tag}\n      priorityClassName: system-cluster-critical\n      nodeSelector:\n        node-role.kubernetes.io/master: \"\"\n\
             \x20     tolerations:\n      - key: node-role.kubernetes.io/master\n        operator: Exists\n        effect: NoSchedule\n\
             \x20     containers:\n      - name: {tag}\n        image: {PLACEHOLDER}:{tag}\n        command: [\"/usr/bin/{tag}\"]\n        args: [\"start\", \"--config=/var/run/configmaps/config/config.yaml\", \"-v=2\"]\n\
             \x20       env:\n        - name: RELEASE_VERSION\n          value: \"0.0.1-snapshot\"\n        - name: OPERATOR_IMAGE\n          value: {PLACEHOLDER}:{tag}\n{env}\
             \x20       resources:\n          requests:\n            cpu: 10m\n            memory: 50Mi\n        terminationMessagePolicy: FallbackToLogsOnError\n\
             \x20       volumeMounts:\n        - name: config\n          mountPath: /var/run/configmaps/config\n      volumes:\n      - name: config\n        configMap:\n          name: {tag}-config\n"
        ),
    ));
    let mut images = String::new();
    for o in &operands {
        images.push_str(&format!("      {o}: \"{PLACEHOLDER}:{o}\"\n"));
    }
    files.push((
        format!("0000_{lvl:02}_{tag}_06_config.yaml"),
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {tag}-config\n  namespace: {ns}\n  annotations:\n{include}data:\n  config.yaml: |\n    apiVersion: operator.openshift.io/v1alpha1\n    kind: GenericOperatorConfig\n    images:\n{images}"
        ),
    ));
    files.push((
        "clusteroperator.yaml".to_string(),
        format!(
            "apiVersion: config.openshift.io/v1\nkind: ClusterOperator\nmetadata:\n  name: {}\n  annotations:\n{include}    capability.openshift.io/name: {}\nspec: {{}}\nstatus:\n  versions:\n  - name: operator\n    version: \"0.0.1-snapshot\"\n  relatedObjects:\n  - group: \"\"\n    name: {ns}\n    resource: namespaces\n",
            short(tag),
            short(tag)
        ),
    ));
    if i.is_multiple_of(2) {
        files.push((
            format!("0000_90_{tag}_01_servicemonitor.yaml"),
            format!(
                "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata:\n  name: {tag}\n  namespace: {ns}\n  annotations:\n{include}spec:\n  endpoints:\n  - bearerTokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token\n    interval: 30s\n    port: https\n    scheme: https\n    tlsConfig:\n      caFile: /etc/prometheus/configmaps/serving-certs-ca-bundle/service-ca.crt\n      serverName: metrics.{ns}.svc\n  selector:\n    matchLabels:\n      name: {tag}\n"
            ),
        ));
    }
    if i.is_multiple_of(3) {
        files.push((
            format!("0000_90_{tag}_02_prometheusrule.yaml"),
            format!(
                "apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata:\n  name: {tag}-alerts\n  namespace: {ns}\n  annotations:\n{include}spec:\n  groups:\n  - name: {tag}\n    rules:\n    - alert: {}Degraded\n      expr: cluster_operator_conditions{{name=\"{}\", condition=\"Degraded\"}} == 1\n      for: 10m\n      labels:\n        severity: warning\n      annotations:\n        summary: The {} operator is degraded.\n",
                short(tag).replace('-', ""),
                short(tag),
                short(tag)
            ),
        ));
    }
    files
}

/// A CustomResourceDefinition with `properties` documented fields (about 200 bytes each).
fn crd(tag: &str, n: usize, properties: usize, include: &str) -> String {
    let group = format!("{}.operator.openshift.io", short(tag).replace('-', ""));
    let kind = format!("Config{n}");
    let plural = format!("config{n}s");
    let mut props = String::new();
    for p in 0..properties {
        props.push_str(&format!(
            "              field{p}:\n                description: field{p} configures aspect {p} of the {tag} operand; \
             when omitted, the platform chooses a default, which is subject to change over time.\n                type: {}\n",
            ["string", "integer", "boolean"][p % 3]
        ));
    }
    format!(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: {plural}.{group}\n  annotations:\n{include}    api-approved.openshift.io: https://github.com/openshift/api/pull/1\n\
         spec:\n  group: {group}\n  names:\n    kind: {kind}\n    listKind: {kind}List\n    plural: {plural}\n    singular: config{n}\n  scope: Cluster\n  versions:\n\
         \x20 - name: v1\n    served: true\n    storage: true\n    subresources:\n      status: {{}}\n    schema:\n      openAPIV3Schema:\n        type: object\n        properties:\n\
         \x20         apiVersion:\n            type: string\n          kind:\n            type: string\n          metadata:\n            type: object\n          spec:\n            type: object\n            properties:\n{props}"
    )
}

/// The number of manifests the payload must list: every operator file but `image-references`.
fn expected_manifest_count() -> usize {
    OPERATORS
        .iter()
        .enumerate()
        .map(|(i, t)| operator_manifests(t, i, 1).len() - 1)
        .sum()
}

// ------------------------------------------------------------------------------------------------
// Measuring
// ------------------------------------------------------------------------------------------------
