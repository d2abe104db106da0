//! Copy benchmark: okd-forge against skopeo, moving the same image set out of a local registry in the
//! same run.
//!
//! The set: 50 images of 3 layers each (a 20 MiB base layer they all share, and two 10 MiB layers of
//! their own), about 1 GiB of unique bytes, generated deterministically and cached under
//! `target/bench-data`. It is pushed once to a source registry; then, into a fresh destination each time:
//!
//! - registry to registry, whole repository: `okd-forge image copy --all-tags` and `skopeo sync`;
//! - registry to registry, image by image: 50 runs of `okd-forge image copy` and of `skopeo copy`;
//! - registry to OCI layout, image by image: the same into an `oci:` layout.
//!
//! Each copy is checked (tags and digests, as skopeo sees them), and timed; the copying processes' CPU
//! and the registries' CPU are counted too, since on a small machine the registries bound the result.
//!
//! Run with `cargo bench -p okd-forge --bench copy` (`BENCH_ROUNDS=N` repeats; the best round counts).
//! It prints a Markdown table for docs/benchmarks.md.

use std::path::PathBuf;
use std::process::Command;

use testkit::bench::{self, data_set, dir_bytes, Cost};
use testkit::images::{self, ImageSpec};
use testkit::{run_ok, skopeo_digest, RegistryServer};

const IMAGES: usize = 50;
const BASE: usize = 20 << 20;
const OWN: usize = 10 << 20;
const REPO: &str = "okd/bench";

fn main() {
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let data = image_set();
    let unique_bytes = dir_bytes(&data.join("blobs/sha256"));
    let tags: Vec<String> = (0..IMAGES).map(tag).collect();

    let source = RegistryServer::start();
    run_ok(&mut Tool::OkdForge.command(&[
        "--all-tags",
        &format!("oci:{}", data.display()),
        &source.docker(REPO),
    ]));
    let expected: Vec<(String, String)> = tags
        .iter()
        .map(|t| {
            (
                t.clone(),
                skopeo_digest(&source.docker(&format!("{REPO}:{t}"))),
            )
        })
        .collect();
    eprintln!(
        "image set: {IMAGES} images, {:.0} MiB unique, in {}",
        unique_bytes as f64 / (1 << 20) as f64,
        source.docker(REPO)
    );

    let mut best: Vec<Measurement> = Vec::new();
    for round in 1..=rounds {
        eprintln!("round {round}/{rounds}");
        // Alternate which tool goes first, so neither always meets a warmer page cache.
        let tools = if round % 2 == 1 {
            [Tool::OkdForge, Tool::Skopeo]
        } else {
            [Tool::Skopeo, Tool::OkdForge]
        };
        for scenario in SCENARIOS {
            for tool in tools {
                let m = measure(scenario, tool, &source, &expected);
                eprintln!(
                    "  {:<42} {:<9} {:>6.2}s wall, {:>5.2} CPU-s client, {:>5.2} CPU-s registries",
                    m.scenario,
                    m.tool.name(),
                    m.cost.wall,
                    m.cost.client_cpu,
                    m.cost.registry_cpu
                );
                match best
                    .iter_mut()
                    .find(|b| b.scenario == m.scenario && b.tool == m.tool)
                {
                    Some(b) if b.cost.wall <= m.cost.wall => {}
                    Some(b) => *b = m,
                    None => best.push(m),
                }
            }
        }
    }

    let mib = unique_bytes as f64 / (1 << 20) as f64;
    println!("| scenario | okd-forge | skopeo | wall-time ratio | client CPU (okd-forge / skopeo) | registry CPU (okd-forge / skopeo run) |");
    println!("|---|---|---|---|---|---|");
    for scenario in SCENARIOS {
        let get = |tool: Tool| {
            best.iter()
                .find(|b| b.scenario == scenario && b.tool == tool)
                .expect("measured")
        };
        let (ours, theirs) = (get(Tool::OkdForge).cost, get(Tool::Skopeo).cost);
        println!(
            "| {scenario} | {:.1} s, {:.0} MiB/s | {:.1} s, {:.0} MiB/s | **{:.2}x** | {:.1} / {:.1} CPU-s ({:.1}x less) | {:.1} / {:.1} CPU-s |",
            ours.wall,
            mib / ours.wall,
            theirs.wall,
            mib / theirs.wall,
            theirs.wall / ours.wall,
            ours.client_cpu,
            theirs.client_cpu,
            theirs.client_cpu / ours.client_cpu,
            ours.registry_cpu,
            theirs.registry_cpu,
        );
    }
}

const SCENARIOS: [&str; 3] = [
    "registry to registry, whole repository",
    "registry to registry, image by image",
    "registry to OCI layout, image by image",
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tool {
    OkdForge,
    Skopeo,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::OkdForge => "okd-forge",
            Tool::Skopeo => "skopeo",
        }
    }

    /// The command that copies one image (`copy`), or a whole repository (`--all-tags` / `sync`).
    fn command(self, args: &[&str]) -> Command {
        let mut c = match self {
            Tool::OkdForge => {
                let mut c = Command::new(env!("CARGO_BIN_EXE_okd-forge"));
                c.args(["image", "copy", "-q"]);
                c
            }
            Tool::Skopeo => skopeo(),
        };
        c.args(args);
        c
    }
}

struct Measurement {
    scenario: &'static str,
    tool: Tool,
    cost: Cost,
}

/// Copy the set once, into a fresh destination, timing it and counting the CPU of both sides.
fn measure(
    scenario: &'static str,
    tool: Tool,
    source: &RegistryServer,
    expected: &[(String, String)],
) -> Measurement {
    let dst = RegistryServer::start();
    let layout = tempfile::tempdir().expect("temp dir");
    let ((), cost) = bench::measure(&[source, &dst], || match scenario {
        "registry to registry, whole repository" => {
            let (from, to) = (source.docker(REPO), dst.docker(REPO));
            match tool {
                Tool::OkdForge => run_ok(&mut tool.command(&["--all-tags", &from, &to])),
                Tool::Skopeo => run_ok(&mut tool.command(&[
                    "sync",
                    "--src",
                    "docker",
                    "--dest",
                    "docker",
                    &format!("{}/{REPO}", source.host()),
                    &format!("{}/okd", dst.host()),
                ])),
            };
        }
        _ => {
            for (t, _) in expected {
                let from = source.docker(&format!("{REPO}:{t}"));
                let to = if scenario.contains("OCI layout") {
                    format!("oci:{}:{t}", layout.path().display())
                } else {
                    dst.docker(&format!("{REPO}:{t}"))
                };
                let mut cmd = match tool {
                    Tool::OkdForge => tool.command(&[&from, &to]),
                    Tool::Skopeo => tool.command(&["copy", "-q", &from, &to]),
                };
                run_ok(&mut cmd);
            }
        }
    });
    let m = Measurement {
        scenario,
        tool,
        cost,
    };
    // Every tag arrived with the source's digest, as skopeo sees it.
    for (t, digest) in expected {
        let r = if scenario.contains("OCI layout") {
            format!("oci:{}:{t}", layout.path().display())
        } else {
            dst.docker(&format!("{REPO}:{t}"))
        };
        assert_eq!(&skopeo_digest(&r), digest, "{r}");
    }
    m
}

fn skopeo() -> Command {
    let mut c = Command::new(testkit::require("skopeo"));
    c.env_remove("REGISTRY_AUTH_FILE")
        .args(["--tls-verify=false"]);
    c
}

fn tag(i: usize) -> String {
    format!("4.17.0-0.okd-scos-bench-{i:02}")
}

/// The image set as an OCI layout, generated once and reused.
fn image_set() -> PathBuf {
    data_set("copy-v1", |dir| {
        let layout = oci::Layout::create(dir).expect("layout");
        for i in 0..IMAGES {
            let seed = 1000 + 2 * i as u64;
            let spec = ImageSpec::new(&[(1, BASE), (seed, OWN), (seed + 1, OWN)]);
            images::write_image(&layout, &spec, Some(&tag(i)));
        }
    })
}
