//! Mirror benchmark (issue 8): `okd-forge release mirror` of a 100-image payload between two local
//! Distribution registries, against, in the same run, what a per-image mirror does (`skopeo copy` of
//! each image in turn) and the limit (the payload's unique blob bytes streamed once through the same
//! two registries, with the copy engine's blob copy and no manifest, tag or planning work).
//!
//! The payload: the standard test release (8 components) plus 100 component images sharing base
//! layers as real OKD images do: one OS base layer under all of them (10% of the bytes), one of two
//! runtime layers (5% each), and a layer of their own (80%, split evenly). About 1 GiB of unique bytes
//! by default; `MIRROR_BENCH_MIB=N` makes it N MiB (e.g. 128 for a quick run). Generated once into
//! `target/bench-data`, pushed to a source registry, assembled with `okd-forge release new`; then each
//! measurement copies it into a fresh destination registry and checks every digest with skopeo.
//!
//! Run with `cargo bench -p okd-forge --bench mirror` (`BENCH_ROUNDS=N` repeats, the best round
//! counts). It prints a Markdown table for docs/benchmarks.md.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use oci::{Descriptor, Digest, ImageRef, Layout, Stores};
use testkit::bench::{self, data_set, Cost};
use testkit::images::{self, ImageSpec};
use testkit::release::ReleaseSet;
use testkit::{run_ok, skopeo_digest, RegistryServer};

const IMAGES: usize = 100;
const NAME: &str = "4.17.0-0.okd-scos-2026-12-03-100000";
const CONTENT: &str = "okd/content";
const RELEASE: &str = "okd/release";

fn main() {
    let mib: usize = std::env::var("MIRROR_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let data = image_set(mib);

    let source = RegistryServer::start();
    run_ok(Command::new(env!("CARGO_BIN_EXE_okd-forge")).args([
        "image",
        "copy",
        "-q",
        "--all-tags",
        &format!("oci:{}", data.display()),
        &source.docker(CONTENT),
    ]));
    let template = std::fs::read_to_string(data.join("mapping.template")).expect("mapping");
    let mapping = data.join(format!("mapping-{}.txt", std::process::id()));
    std::fs::write(&mapping, template.replace("REGISTRY", &source.host())).expect("mapping");
    let include: Vec<String> = template
        .lines()
        .filter_map(|l| l.split_once('=').map(|(t, _)| t.to_string()))
        .collect();
    // The assembly's cache goes to a temp dir, not var/cache under the crate.
    let cache = tempfile::tempdir().expect("temp dir");
    let out = run_ok(Command::new(env!("CARGO_BIN_EXE_okd-forge")).args([
        "release",
        "new",
        "--cache",
        &cache.path().to_string_lossy(),
        "-q",
        "--name",
        NAME,
        "--to",
        &source.docker(&format!("{RELEASE}:{NAME}")),
        "--mapping-file",
        &mapping.to_string_lossy(),
        "--store",
        &data.to_string_lossy(),
        "--include",
        &include.join(","),
    ]));
    let _ = std::fs::remove_file(&mapping);
    let release_digest = out.split(' ').next().expect("digest").to_string();
    // Component tag → digest, from the mapping.
    let components: BTreeMap<String, String> = template
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(t, p)| {
            (
                t.to_string(),
                p.rsplit_once('@').expect("digest").1.to_string(),
            )
        })
        .collect();
    let blobs = unique_blobs(&source);
    let unique: u64 = blobs.iter().map(|(_, d)| d.size).sum();
    let unique_mib = unique as f64 / (1 << 20) as f64;
    eprintln!(
        "payload: {} images + the release, {} unique blobs, {unique_mib:.0} MiB, in {}",
        components.len(),
        blobs.len(),
        source.docker(RELEASE)
    );

    let mut best: BTreeMap<&'static str, Cost> = BTreeMap::new();
    for round in 1..=rounds {
        eprintln!("round {round}/{rounds}");
        let order: [&'static str; 3] = if round % 2 == 1 {
            [MIRROR, SKOPEO, LIMIT]
        } else {
            [SKOPEO, LIMIT, MIRROR]
        };
        for what in order {
            let dst = RegistryServer::start();
            let ((), cost) = bench::measure(&[&source, &dst], || match what {
                MIRROR => {
                    run_ok(Command::new(env!("CARGO_BIN_EXE_okd-forge")).args([
                        "release",
                        "mirror",
                        "-q",
                        "--from",
                        &source.docker(&format!("{RELEASE}:{NAME}")),
                        "--to",
                        &format!("{}/okd/mirror", dst.host()),
                    ]));
                }
                SKOPEO => {
                    for (tag, digest) in &components {
                        run_ok(skopeo().args([
                            "copy",
                            "-q",
                            &source.docker(&format!("{CONTENT}@{digest}")),
                            &dst.docker(&format!("okd/mirror:{NAME}-x86_64-{tag}")),
                        ]));
                    }
                    run_ok(skopeo().args([
                        "copy",
                        "-q",
                        &source.docker(&format!("{RELEASE}@{release_digest}")),
                        &dst.docker(&format!("okd/mirror:{NAME}-x86_64")),
                    ]));
                }
                _ => stream_blobs(&source, &dst, &blobs),
            });
            eprintln!(
                "  {what:<40} {:>6.2}s wall, {:>5.2} CPU-s client, {:>5.2} CPU-s registries",
                cost.wall, cost.client_cpu, cost.registry_cpu
            );
            if what != LIMIT {
                check(&dst, &components, &release_digest);
            }
            match best.get(what) {
                Some(b) if b.wall <= cost.wall => {}
                _ => {
                    best.insert(what, cost);
                }
            }
        }
    }

    let (m, s, l) = (best[MIRROR], best[SKOPEO], best[LIMIT]);
    println!("| | wall time | MiB/s | client CPU | registry CPU |");
    println!("|---|---|---|---|---|");
    for (what, c) in [(MIRROR, m), (SKOPEO, s), (LIMIT, l)] {
        println!(
            "| {what} | {:.1} s | {:.0} | {:.1} CPU-s | {:.1} CPU-s |",
            c.wall,
            unique_mib / c.wall,
            c.client_cpu,
            c.registry_cpu
        );
    }
    println!();
    println!(
        "skopeo loop / okd-forge mirror: **{:.2}x** (target ≥ 3x); okd-forge mirror / limit: **{:.2}x** (target ≤ 1.25x)",
        s.wall / m.wall,
        m.wall / l.wall
    );
}

const MIRROR: &str = "okd-forge release mirror";
const SKOPEO: &str = "skopeo copy, image by image";
const LIMIT: &str = "limit: unique blobs streamed once";

fn skopeo() -> Command {
    let mut c = Command::new(testkit::require("skopeo"));
    c.env_remove("REGISTRY_AUTH_FILE")
        .args(["--tls-verify=false"]);
    c
}

/// Every component and the release are at the destination with their digests, as skopeo sees them.
fn check(dst: &RegistryServer, components: &BTreeMap<String, String>, release: &str) {
    for (tag, digest) in components {
        let r = dst.docker(&format!("okd/mirror:{NAME}-x86_64-{tag}"));
        assert_eq!(&skopeo_digest(&r), digest, "{r}");
    }
    let r = dst.docker(&format!("okd/mirror:{NAME}-x86_64"));
    assert_eq!(skopeo_digest(&r), release, "{r}");
}

/// The blobs of the source registry's two repositories (content first; a blob in both counts once),
/// from its storage: `repositories/<repo>/_layers/sha256/<hex>`, sizes from `blobs/`.
fn unique_blobs(source: &RegistryServer) -> Vec<(&'static str, Descriptor)> {
    let root = source.storage().join("docker/registry/v2");
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for repo in [CONTENT, RELEASE] {
        let dir = root.join("repositories").join(repo).join("_layers/sha256");
        for e in std::fs::read_dir(&dir).expect("layers") {
            let hex = e.expect("entry").file_name().to_string_lossy().into_owned();
            if !seen.insert(hex.clone()) {
                continue;
            }
            let size = std::fs::metadata(source.blob_data(&format!("sha256:{hex}")))
                .expect("blob data")
                .len();
            let digest: Digest = format!("sha256:{hex}").parse().expect("digest");
            out.push((
                repo,
                Descriptor::new("application/octet-stream", digest, size),
            ));
        }
    }
    out
}

/// The limit: every unique blob streamed once from its source repository into the destination,
/// with the copy engine's blob copy at the mirror's default limits (24 at once, 6 per registry).
fn stream_blobs(source: &RegistryServer, dst: &RegistryServer, blobs: &[(&str, Descriptor)]) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let stores = Stores::new(oci::RegistryOptions::default());
        let open = |r: String, write: bool| {
            let r: ImageRef = r.parse().expect("reference");
            stores.open(&r, write).expect("store")
        };
        let to = open(dst.docker("okd/mirror"), true);
        let copier = oci::Copier::new(24, 3, Arc::new(oci::NoProgress)).with_registry_limit(6);
        let jobs = [CONTENT, RELEASE].map(|repo| {
            let from = open(source.docker(repo), false);
            let mine: Vec<Descriptor> = blobs
                .iter()
                .filter(|(r, _)| *r == repo)
                .map(|(_, d)| d.clone())
                .collect();
            let (copier, to) = (&copier, &to);
            async move { copier.copy_blobs(&from, to, mine).await }
        });
        let [a, b] = jobs;
        let (a, b) = tokio::join!(a, b);
        let (a, b) = (a.expect("copy"), b.expect("copy"));
        assert_eq!(a.1 + b.1, 0, "a fresh destination has none of the blobs");
    });
}

/// The image set as an OCI layout with a mapping template (`TAG=REGISTRY/okd/content@DIGEST`),
/// generated once per size.
fn image_set(mib: usize) -> PathBuf {
    data_set(&format!("mirror-v1-{mib}"), |dir| {
        let layout = Layout::create(dir).expect("layout");
        let total = mib << 20;
        let (base, runtime) = (total / 10, total / 20);
        let own = (total - base - 2 * runtime) / IMAGES;
        let mut mapping = String::new();
        for i in 0..IMAGES {
            let spec = ImageSpec::new(&[
                (1, base),
                (2 + (i % 2) as u64, runtime),
                (100 + i as u64, own),
            ])
            .docker();
            let tag = format!("bench-{i:03}");
            let m = images::write_image(&layout, &spec, Some(&tag));
            mapping.push_str(&format!("{tag}=REGISTRY/{CONTENT}@{}\n", m.digest));
        }
        let inputs = ReleaseSet::standard("amd64").write(dir);
        for (tag, c) in &inputs.components {
            mapping.push_str(&format!("{tag}=REGISTRY/{CONTENT}@{}\n", c.digest));
        }
        std::fs::write(dir.join("mapping.template"), mapping).expect("mapping");
    })
}
