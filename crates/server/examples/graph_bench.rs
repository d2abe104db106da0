//! Benchmark of the update graph: 2,000 stable releases and 20,000 upgrade edges (1% of them
//! blocked, so conditional) recorded in a fresh state database, served on loopback, and
//! `/graph?channel=stable-4` measured with `wrk` (Debian package `wrk`): once without
//! `Accept-Encoding`, once with `Accept-Encoding: gzip` (as the cluster-version-operator's Go
//! client sends it).
//!
//! ```sh
//! cargo run --release -p okd-forge-server --example graph_bench [-- SECONDS CONNECTIONS]
//! ```

use std::sync::Arc;
use std::time::Instant;

use build::run::Forge;
use build::state::rusqlite::params;
use release::state::{NewPayload, Records};

const STREAM: &str = "4-scos";
const NODES: usize = 2_000;
const EDGES: usize = 20_000;

fn version(i: usize) -> String {
    format!("4.{}.{}-okd-scos.0", 10 + i / 200, i % 200)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds = args.get(1).map(String::as_str).unwrap_or("10");
    let connections = args.get(2).map(String::as_str).unwrap_or("64");
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "store: var/store\nstate: var/forge.db\nvariants: {{ okd-scos: {{}} }}\n\
         streams:\n  {STREAM}:\n    variant: okd-scos\n    branch: release-4.17\n"
    );
    let path = dir.path().join("forge.yaml");
    std::fs::write(&path, yaml).unwrap();
    let config = build::config::load(&path).unwrap();
    let forge = Arc::new(Forge::open(config, Default::default()).unwrap());

    let t = Instant::now();
    let records = Records::new(&forge.state);
    let inputs = Default::default();
    records
        .create(&NewPayload {
            name: "4.17.0-0.okd-scos-2026-12-02-000000",
            stream: STREAM,
            created: 1,
            hash: "h",
            inputs: &inputs,
        })
        .unwrap();
    let digest = format!("sha256:{:0>64}", 0);
    let spec = format!("registry.example/okd/release@{digest}");
    records
        .ready("4.17.0-0.okd-scos-2026-12-02-000000", &digest, &spec, 1)
        .unwrap();
    records
        .decide("4.17.0-0.okd-scos-2026-12-02-000000", true, "passed", 1)
        .unwrap();
    let from = records
        .payload("4.17.0-0.okd-scos-2026-12-02-000000")
        .unwrap()
        .unwrap();
    let channels = vec!["candidate-4".to_string(), "stable-4".to_string()];
    for i in 0..NODES {
        let digest = format!("sha256:{:0>64x}", i + 1);
        let spec = format!("quay.io/okd/scos-release@{digest}");
        assert!(records
            .promote(&from, &version(i), &digest, &spec, &channels, 2)
            .unwrap());
    }
    let mut edges = Vec::new();
    'outer: for k in 1.. {
        for i in 0..NODES - k {
            edges.push((i, i + k));
            if edges.len() == EDGES {
                break 'outer;
            }
        }
    }
    forge
        .state
        .transaction(|tx| {
            for (n, (a, b)) in edges.iter().enumerate() {
                tx.execute(
                    "INSERT INTO release_upgrades (from_name, to_name, job, run_id, succeeded, at) \
                     VALUES (?1, ?2, 'upgrade', ?3, 1, 3)",
                    params![version(*a), version(*b), n as i64],
                )?;
                if n % 100 == 0 {
                    tx.execute(
                        "INSERT INTO release_edge_blocks (from_name, to_name, reason, url, at) \
                         VALUES (?1, ?2, 'etcd fails to start', 'https://issues.example/1', 3)",
                        params![version(*a), version(*b)],
                    )?;
                }
            }
            Ok(())
        })
        .unwrap();
    records
        .note(STREAM, None, "bench", "edges recorded", 4)
        .unwrap();
    eprintln!(
        "recorded {NODES} releases and {EDGES} edges in {:?}",
        t.elapsed()
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = Arc::new(server::App::new(forge.clone()));
    rt.spawn(server::serve(listener, app, std::future::pending()));
    let url = format!("http://127.0.0.1:{port}/graph?channel=stable-4");
    // The first request builds the graphs.
    let t = Instant::now();
    let body = std::process::Command::new("curl")
        .args(["-sf", "-H", "Accept: application/json", &url])
        .output()
        .expect("curl");
    assert!(body.status.success());
    let v: serde_json::Value = serde_json::from_slice(&body.stdout).unwrap();
    eprintln!(
        "first request (build + serialise): {:?}, {} bytes, {} nodes, {} edges, {} conditional entries",
        t.elapsed(),
        body.stdout.len(),
        v["nodes"].as_array().unwrap().len(),
        v["edges"].as_array().unwrap().len(),
        v["conditionalEdges"].as_array().unwrap().len(),
    );
    let gzip = std::process::Command::new("curl")
        .args([
            "-sf",
            "-H",
            "Accept: application/json",
            "-H",
            "Accept-Encoding: gzip",
            &url,
        ])
        .output()
        .expect("curl");
    assert!(gzip.status.success());
    eprintln!("gzip response: {} bytes", gzip.stdout.len());
    for encoding in [None, Some("Accept-Encoding: gzip")] {
        let mut cmd = vec![
            "wrk".to_string(),
            "-t2".into(),
            format!("-c{connections}"),
            format!("-d{seconds}s"),
            "--latency".into(),
            "-H".into(),
            "Accept: application/json".into(),
        ];
        if let Some(e) = encoding {
            cmd.extend(["-H".into(), e.into()]);
        }
        cmd.push(url.clone());
        eprintln!("{}", cmd.join(" "));
        let status = std::process::Command::new(&cmd[0])
            .args(&cmd[1..])
            .status()
            .expect("wrk (apt-get install wrk)");
        assert!(status.success());
    }
}
