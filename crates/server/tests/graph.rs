//! The update graph over real HTTP on loopback: paths, the Accept-header matrix, the parameters
//! and error bodies, channel filtering, conditional edges, and recomputation when the records
//! change.

use std::collections::BTreeMap;
use std::sync::Arc;

use build::run::Forge;
use release::state::{NewPayload, NewRun, Records, RunEnd, RunKind, RunState};
use serde_json::{json, Value};

mod common;

use common::{forge_from, request, serve, Reply};

const STREAM: &str = "4-scos";

struct Site {
    _dir: tempfile::TempDir,
    forge: Arc<Forge>,
    port: u16,
}

fn records(forge: &Forge) -> Records<'_> {
    Records::new(&forge.state)
}

/// Records a stable release `name` in `channels`, promoted from a payload of its own.
fn stable(forge: &Forge, name: &str, channels: &[&str], at: i64) {
    let r = records(forge);
    let payload = format!("4.17.0-0.okd-scos-{at}");
    let inputs = BTreeMap::new();
    r.create(&NewPayload {
        name: &payload,
        stream: STREAM,
        created: at,
        hash: &payload,
        inputs: &inputs,
    })
    .unwrap();
    let digest = format!("sha256:{at:0>64}");
    let spec = format!("registry.example/okd/release@{digest}");
    r.ready(&payload, &digest, &spec, at).unwrap();
    r.decide(&payload, true, "passed", at).unwrap();
    let from = r.payload(&payload).unwrap().unwrap();
    let digest = format!("sha256:{:0>64}", at + 1);
    let spec = format!("registry.example/okd/scos-release@{digest}");
    let channels: Vec<String> = channels.iter().map(|c| c.to_string()).collect();
    assert!(r
        .promote(&from, name, &digest, &spec, &channels, at)
        .unwrap());
}

/// Records an upgrade run from stable release `from` into stable release `to`.
fn upgrade(forge: &Forge, from: &str, to: &str, ok: bool, attempt: u32) {
    let r = records(forge);
    let spec = r.payload(from).unwrap().unwrap().pull_spec.unwrap();
    let id = r
        .start_run(
            &NewRun {
                payload: to,
                job: "upgrade",
                kind: RunKind::Job,
                attempt,
                initial: Some(&spec),
                dir: None,
            },
            1,
        )
        .unwrap()
        .unwrap();
    let state = if ok {
        RunState::Succeeded
    } else {
        RunState::Failed
    };
    let end = RunEnd {
        state,
        message: None,
        tests: None,
    };
    assert!(r.finish_run(id, &end, 2).unwrap());
}

async fn site() -> Site {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "store: var/store\nstate: var/forge.db\nvariants: {{ okd-scos: {{}} }}\n\
         streams:\n  {STREAM}:\n    variant: okd-scos\n    branch: release-4.17\n"
    );
    let forge = forge_from(dir.path(), &yaml);
    stable(&forge, "4.17.0-okd-scos.0", &["stable-4"], 100);
    stable(&forge, "4.17.0-okd-scos.1", &["stable-4", "next-4"], 200);
    stable(&forge, "4.18.0-okd-scos.0", &["next-4"], 300);
    upgrade(&forge, "4.17.0-okd-scos.0", "4.17.0-okd-scos.1", false, 1);
    upgrade(&forge, "4.17.0-okd-scos.0", "4.17.0-okd-scos.1", true, 2);
    upgrade(&forge, "4.17.0-okd-scos.1", "4.18.0-okd-scos.0", true, 1);
    let port = serve(forge.clone()).await;
    Site {
        _dir: dir,
        forge,
        port,
    }
}

async fn get(port: u16, target: &str) -> Reply {
    request(port, "GET", target, &[("Accept", "application/json")]).await
}

fn versions(v: &Value) -> Vec<&str> {
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["version"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn every_path_serves_the_channel_graph() {
    let site = site().await;
    for path in [
        "/graph",
        "/api/upgrades_info/graph",
        "/api/upgrades_info/v1/graph",
    ] {
        let r = get(
            site.port,
            &format!("{path}?channel=stable-4&version=4.17.0&id=x&other=1"),
        )
        .await;
        assert_eq!(r.status, 200, "{path}");
        let v = r.json();
        assert_eq!(v["version"], 1);
        assert_eq!(versions(&v), ["4.17.0-okd-scos.0", "4.17.0-okd-scos.1"]);
        assert_eq!(v["edges"], json!([[0, 1]]));
        assert_eq!(v["conditionalEdges"], json!([]));
        let meta = &v["nodes"][1]["metadata"];
        assert_eq!(
            meta["io.openshift.upgrades.graph.release.channels"],
            "next-4,stable-4"
        );
        assert_eq!(
            meta["io.openshift.upgrades.graph.release.manifestref"],
            format!("sha256:{:0>64}", 201)
        );
        assert_eq!(
            v["nodes"][1]["payload"],
            format!("registry.example/okd/scos-release@sha256:{:0>64}", 201)
        );
    }
    let next = get(site.port, "/graph?channel=next-4&arch=amd64")
        .await
        .json();
    assert_eq!(versions(&next), ["4.17.0-okd-scos.1", "4.18.0-okd-scos.0"]);
    assert_eq!(next["edges"], json!([[0, 1]]));
    // Unknown channel and unknown arch: a 200 empty graph.
    for q in ["channel=fast-4", "channel=stable-4&arch=arm64"] {
        let r = get(site.port, &format!("/graph?{q}")).await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.body,
            br#"{"version":1,"nodes":[],"edges":[],"conditionalEdges":[]}"#
        );
    }
}

#[tokio::test]
async fn accept_matrix() {
    let site = site().await;
    let target = "/graph?channel=stable-4";
    for (accept, status, content_type) in [
        (None, 200, Some("application/vnd.redhat.cincinnati.v1+json")),
        (Some("application/json"), 200, Some("application/json")),
        (
            Some("application/vnd.redhat.cincinnati.v1+json"),
            200,
            Some("application/vnd.redhat.cincinnati.v1+json"),
        ),
        (Some("*/*"), 200, Some("application/json")),
        (Some("*"), 200, Some("application/json")),
        (Some("application/*"), 200, Some("application/json")),
        (Some("application/json, text/plain"), 406, None),
        (Some("application/json;q=0.9"), 406, None),
        (Some("text/html"), 406, None),
    ] {
        let headers: Vec<(&str, &str)> = accept.iter().map(|a| ("Accept", *a)).collect();
        let r = request(site.port, "GET", target, &headers).await;
        assert_eq!(r.status, status, "Accept {accept:?}");
        if let Some(ct) = content_type {
            assert_eq!(r.header("content-type"), Some(ct), "Accept {accept:?}");
            assert_eq!(versions(&r.json()).len(), 2);
        } else {
            assert_eq!(
                r.json(),
                json!({"kind": "invalid_content_type", "value": "invalid Content-Type requested"})
            );
        }
    }
}

#[tokio::test]
async fn parameters_and_error_bodies() {
    let site = site().await;
    for (q, status, body) in [
        (
            "",
            400,
            json!({"kind": "missing_params", "value": "mandatory client parameters missing: channel"}),
        ),
        (
            "?arch=amd64&version=4.17.0",
            400,
            json!({"kind": "missing_params", "value": "mandatory client parameters missing: channel"}),
        ),
        (
            "?channel=Stable_4",
            400,
            json!({"kind": "invalid_params", "value":
                "invalid client parameters: channel 'Stable_4' does not match regex '^[0-9a-z\\-\\.]+$'"}),
        ),
        (
            "?channel=stable-4&arch=x86_64",
            400,
            json!({"kind": "invalid_params", "value":
                "invalid client parameters: arch 'x86_64' does not match regex '^[0-9a-z]+$'"}),
        ),
    ] {
        let r = get(site.port, &format!("/graph{q}")).await;
        assert_eq!(r.status, status, "{q}");
        assert_eq!(r.header("content-type"), Some("application/json"), "{q}");
        assert_eq!(r.json(), body, "{q}");
    }
    // Percent-encoded parameters are decoded.
    let r = get(site.port, "/graph?channel=stable%2D4").await;
    assert_eq!(versions(&r.json()).len(), 2);
    // HEAD is refused; CORS echoes the origin.
    let r = request(site.port, "HEAD", "/graph?channel=stable-4", &[]).await;
    assert_eq!(r.status, 405);
    let r = request(
        site.port,
        "GET",
        "/graph?channel=stable-4",
        &[("Origin", "https://console.example")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://console.example")
    );
}

#[tokio::test]
async fn blocked_edges_become_conditional_when_the_records_change() {
    let site = site().await;
    let before = get(site.port, "/graph?channel=next-4").await.json();
    assert_eq!(before["edges"], json!([[0, 1]]));
    records(&site.forge)
        .block_edge(
            "4.17.0-okd-scos.1",
            "4.18.0-okd-scos.0",
            Some(("etcd fails to start", Some("https://issues.example/1"))),
            400,
        )
        .unwrap();
    stable(&site.forge, "4.18.0-okd-scos.1", &["next-4"], 500);
    // The very next request sees the change: no interval to wait out.
    let after = get(site.port, "/graph?channel=next-4").await.json();
    assert_eq!(
        versions(&after),
        [
            "4.17.0-okd-scos.1",
            "4.18.0-okd-scos.0",
            "4.18.0-okd-scos.1"
        ]
    );
    assert_eq!(
        after["edges"],
        json!([]),
        "a blocked edge is not a plain edge"
    );
    assert_eq!(
        after["conditionalEdges"],
        json!([{
            "edges": [{"from": "4.17.0-okd-scos.1", "to": "4.18.0-okd-scos.0"}],
            "risks": [{"url": "https://issues.example/1", "name": "EtcdFailsToStart",
                       "message": "etcd fails to start", "matchingRules": [{"type": "Always"}]}]
        }])
    );
    // Unchanged records: the same bytes.
    let a = get(site.port, "/graph?channel=next-4").await.body;
    let b = get(site.port, "/graph?channel=next-4").await.body;
    assert_eq!(a, b);
    // A change that writes no event (an upgrade run) shows in the next request too.
    upgrade(
        &site.forge,
        "4.18.0-okd-scos.0",
        "4.18.0-okd-scos.1",
        true,
        1,
    );
    let last = get(site.port, "/graph?channel=next-4").await.json();
    assert_eq!(last["edges"], json!([[1, 2]]), "{last}");
}

#[tokio::test]
async fn gzip_is_served_to_clients_that_ask_and_decodes_to_the_same_json() {
    let site = site().await;
    let plain = get(site.port, "/graph?channel=stable-4").await;
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.header("vary"), Some("Accept-Encoding"));
    for encoding in ["gzip", "deflate, gzip;q=0.5", "br, *"] {
        let gz = request(
            site.port,
            "GET",
            "/graph?channel=stable-4",
            &[
                ("Accept", "application/json"),
                ("Accept-Encoding", encoding),
            ],
        )
        .await;
        assert_eq!(gz.status, 200);
        assert_eq!(gz.header("content-encoding"), Some("gzip"), "{encoding}");
        assert_eq!(gz.header("content-type"), Some("application/json"));
        let mut json = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz.body[..]), &mut json)
            .unwrap();
        assert_eq!(json, plain.body, "{encoding}");
        assert_eq!(plain.json()["nodes"].as_array().unwrap().len(), 2);
    }
    for refused in ["identity", "gzip;q=0", "deflate, br"] {
        let r = request(
            site.port,
            "GET",
            "/graph?channel=stable-4",
            &[("Accept", "application/json"), ("Accept-Encoding", refused)],
        )
        .await;
        assert_eq!(r.header("content-encoding"), None, "{refused}");
        assert_eq!(r.body, plain.body, "{refused}");
    }
    // An unknown channel's empty graph is compressed as well.
    let empty = request(
        site.port,
        "GET",
        "/graph?channel=nothing",
        &[("Accept-Encoding", "gzip")],
    )
    .await;
    let mut json = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(&empty.body[..]),
        &mut json,
    )
    .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&json).unwrap(),
        json!({"version": 1, "nodes": [], "edges": [], "conditionalEdges": []})
    );
}

/// The `<svg>…</svg>` of `channel` on the channels page.
fn picture<'a>(page: &'a str, channel: &str) -> &'a str {
    let section = &page[page
        .find(&format!("id=\"{channel}-amd64\""))
        .unwrap_or_else(|| panic!("no section for {channel}: {page}"))..];
    &section[section.find("<svg").unwrap()..section.find("</svg>").unwrap() + 6]
}

#[tokio::test]
async fn the_channels_page_draws_each_channels_graph_in_svg() {
    let site = site().await;
    let page = || async {
        let r = request(site.port, "GET", "/channels", &[]).await;
        assert_eq!(r.status, 200);
        String::from_utf8(r.body).unwrap()
    };
    let html = page().await;
    assert_eq!(html.matches("<svg").count(), 2, "next-4 and stable-4");
    let next = picture(&html, "next-4");
    assert_eq!(next.matches("class=\"node\"").count(), 2, "{next}");
    assert!(
        next.contains(">4.17.0-okd-scos.1</text>") && next.contains(">4.18.0-okd-scos.0</text>")
    );
    assert_eq!(next.matches("class=\"edge tested\"").count(), 1, "{next}");
    assert!(
        next.contains("4.17.0-okd-scos.1 → 4.18.0-okd-scos.0: tested"),
        "{next}"
    );
    let stable4 = picture(&html, "stable-4");
    assert!(stable4.contains(">4.17.0-okd-scos.0</text>"), "{stable4}");
    assert!(!stable4.contains("4.18.0"), "channels filter: {stable4}");

    // A blocked edge is drawn as conditional, with its risk; a failed upgrade as failed.
    records(&site.forge)
        .block_edge(
            "4.17.0-okd-scos.1",
            "4.18.0-okd-scos.0",
            Some(("etcd <fails> to start", None)),
            400,
        )
        .unwrap();
    stable(&site.forge, "4.18.0-okd-scos.1", &["next-4"], 500);
    upgrade(
        &site.forge,
        "4.18.0-okd-scos.0",
        "4.18.0-okd-scos.1",
        false,
        1,
    );
    let html = page().await;
    let next = picture(&html, "next-4");
    assert_eq!(next.matches("class=\"node\"").count(), 3, "{next}");
    assert_eq!(next.matches("class=\"edge tested\"").count(), 0, "{next}");
    assert_eq!(
        next.matches("class=\"edge conditional\"").count(),
        1,
        "{next}"
    );
    assert!(next.contains("etcd &lt;fails&gt; to start"), "{next}");
    assert_eq!(next.matches("class=\"edge failed\"").count(), 1, "{next}");
    // Nothing to load from elsewhere, nothing to run.
    assert!(!html.contains("<script"), "{html}");
    assert!(
        !next.contains("href=\"http") && !next.contains("src="),
        "{next}"
    );
}
