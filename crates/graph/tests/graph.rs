//! The update graph: the cluster-version-operator's validity rules, channel and arch filtering,
//! conditional edges.

use graph::{check_version, Catalog, Release, CHANNELS_KEY, MANIFESTREF_KEY};
use release::state::{Block, Edge, UpgradeRun};
use serde_json::{json, Value};

fn release(version: &str, channels: &[&str], arch: &str) -> Release {
    Release {
        version: version.to_string(),
        payload: format!("quay.io/okd/scos-release@sha256:{:0>64}", version.len()),
        digest: format!("sha256:{:0>64}", version.len()),
        channels: channels.iter().map(|c| c.to_string()).collect(),
        arch: arch.to_string(),
    }
}

fn edge(from: &str, to: &str, passed: &[bool]) -> Edge {
    Edge {
        from: from.to_string(),
        to: to.to_string(),
        runs: passed
            .iter()
            .enumerate()
            .map(|(i, &succeeded)| UpgradeRun {
                job: "upgrade".into(),
                run: i as i64,
                succeeded,
                dir: None,
                at: 0,
            })
            .collect(),
        blocked: None,
    }
}

fn blocked(mut e: Edge, reason: &str, url: Option<&str>) -> Edge {
    e.blocked = Some(Block {
        reason: reason.to_string(),
        url: url.map(str::to_string),
        at: 0,
    });
    e
}

fn json(catalog: &Catalog, channel: &str, arch: &str) -> Value {
    serde_json::from_slice(&catalog.graph(channel, arch).to_bytes()).unwrap()
}

/// (from, to) version pairs of the plain edges.
fn pairs(v: &Value) -> Vec<(String, String)> {
    let version = |i: &Value| {
        v["nodes"][i.as_u64().unwrap() as usize]["version"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let mut p: Vec<_> = v["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (version(&e[0]), version(&e[1])))
        .collect();
    p.sort();
    p
}

fn versions(v: &Value) -> Vec<&str> {
    v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["version"].as_str().unwrap())
        .collect()
}

#[test]
fn versions_must_be_strict_semver() {
    for good in [
        "4.17.0-okd-scos.0",
        "4.17.0",
        "4.17.0-0.okd-scos-2026-12-02-231800",
        "4.17.10-rc.1",
    ] {
        assert_eq!(check_version(good), Ok(()), "{good}");
    }
    for bad in [
        "4.17",
        "v4.17.0",
        "04.17.0",
        "4.017.0",
        "4.17.0-rc.01",
        "4.17.0+amd64",
        "4.17.0-",
        "4.17.0-okd..0",
        " 4.17.0",
        "",
        "4.17.0-okd_scos",
    ] {
        assert!(check_version(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn invalid_versions_are_left_out_with_their_edges() {
    let catalog = Catalog::new(
        [
            release("4.17.0-okd-scos.0", &["stable-4"], "amd64"),
            release("4.17.01-okd-scos.1", &["stable-4"], "amd64"),
            release("4.17.0-okd-scos.2+amd64", &["stable-4"], "amd64"),
            release("4.17.0-okd-scos.3", &["stable-4"], "amd64"),
        ],
        &[
            edge("4.17.0-okd-scos.0", "4.17.01-okd-scos.1", &[true]),
            edge("4.17.01-okd-scos.1", "4.17.0-okd-scos.3", &[true]),
            edge("4.17.0-okd-scos.0", "4.17.0-okd-scos.3", &[true]),
        ],
    );
    assert_eq!(catalog.skipped().len(), 2, "{:?}", catalog.skipped());
    let v = json(&catalog, "stable-4", "amd64");
    assert_eq!(versions(&v), ["4.17.0-okd-scos.0", "4.17.0-okd-scos.3"]);
    for n in versions(&v) {
        check_version(n).unwrap();
    }
    assert_eq!(
        pairs(&v),
        [("4.17.0-okd-scos.0".into(), "4.17.0-okd-scos.3".into())]
    );
}

#[test]
fn shape_and_metadata() {
    let catalog = Catalog::new(
        [
            release("4.17.0-okd-scos.1", &["stable-4", "candidate-4"], "amd64"),
            release("4.17.0-okd-scos.0", &["stable-4"], "amd64"),
        ],
        &[edge(
            "4.17.0-okd-scos.0",
            "4.17.0-okd-scos.1",
            &[false, true],
        )],
    );
    let v = json(&catalog, "stable-4", "amd64");
    assert_eq!(v["version"], 1);
    assert_eq!(v["conditionalEdges"], json!([]));
    // Sorted by version, indices into nodes.
    assert_eq!(versions(&v), ["4.17.0-okd-scos.0", "4.17.0-okd-scos.1"]);
    assert_eq!(v["edges"], json!([[0, 1]]));
    let node = &v["nodes"][1];
    assert_eq!(node["metadata"][CHANNELS_KEY], "candidate-4,stable-4");
    assert_eq!(
        node["metadata"][MANIFESTREF_KEY],
        format!("sha256:{:0>64}", 17)
    );
    assert!(node["payload"].as_str().unwrap().contains("@sha256:"));
    // Metadata values are strings; no architecture key for single-arch releases.
    for n in v["nodes"].as_array().unwrap() {
        assert!(n["metadata"]
            .as_object()
            .unwrap()
            .values()
            .all(Value::is_string));
        assert!(n["metadata"]
            .get("release.openshift.io/architecture")
            .is_none());
    }
}

#[test]
fn untested_edges_are_not_in_the_graph() {
    let catalog = Catalog::new(
        [
            release("4.17.0-okd-scos.0", &["stable-4"], "amd64"),
            release("4.17.0-okd-scos.1", &["stable-4"], "amd64"),
        ],
        &[
            edge("4.17.0-okd-scos.0", "4.17.0-okd-scos.1", &[false, false]),
            edge("4.17.0-okd-scos.1", "4.17.0-okd-scos.1", &[true]),
        ],
    );
    let v = json(&catalog, "stable-4", "amd64");
    assert_eq!(v["edges"], json!([]));
}

#[test]
fn channels_really_filter() {
    let catalog = Catalog::new(
        [
            release("4.16.0-okd-scos.0", &["stable-4"], "amd64"),
            release("4.17.0-okd-scos.0", &["stable-4", "next-4"], "amd64"),
            release("4.18.0-okd-scos.0", &["next-4"], "amd64"),
            release("4.18.0-okd-scos.1", &[], "amd64"),
        ],
        &[
            edge("4.16.0-okd-scos.0", "4.17.0-okd-scos.0", &[true]),
            edge("4.17.0-okd-scos.0", "4.18.0-okd-scos.0", &[true]),
            blocked(
                edge("4.16.0-okd-scos.0", "4.18.0-okd-scos.0", &[true]),
                "etcd",
                None,
            ),
            edge("4.18.0-okd-scos.0", "4.18.0-okd-scos.1", &[true]),
        ],
    );
    let stable = json(&catalog, "stable-4", "amd64");
    assert_eq!(
        versions(&stable),
        ["4.16.0-okd-scos.0", "4.17.0-okd-scos.0"]
    );
    assert_eq!(
        pairs(&stable),
        [("4.16.0-okd-scos.0".into(), "4.17.0-okd-scos.0".into())]
    );
    assert_eq!(stable["conditionalEdges"], json!([]));
    let next = json(&catalog, "next-4", "amd64");
    assert_eq!(versions(&next), ["4.17.0-okd-scos.0", "4.18.0-okd-scos.0"]);
    assert_eq!(
        pairs(&next),
        [("4.17.0-okd-scos.0".into(), "4.18.0-okd-scos.0".into())]
    );
    // The channel key is kept, with all channels of the node.
    assert_eq!(
        next["nodes"][0]["metadata"][CHANNELS_KEY],
        "next-4,stable-4"
    );
    // Exact match, not prefix or substring.
    assert_eq!(
        versions(&json(&catalog, "stable", "amd64")),
        Vec::<&str>::new()
    );
    assert_eq!(
        versions(&json(&catalog, "next-4.", "amd64")),
        Vec::<&str>::new()
    );
    let unknown = catalog.graph("fast-4", "amd64").to_bytes();
    assert_eq!(
        unknown,
        br#"{"version":1,"nodes":[],"edges":[],"conditionalEdges":[]}"#
    );
    assert_eq!(
        catalog.channels().into_iter().collect::<Vec<_>>(),
        ["next-4", "stable-4"]
    );
}

#[test]
fn arch_filters_and_only_multi_is_marked() {
    let catalog = Catalog::new(
        [
            release("4.17.0-okd-scos.0", &["stable-4"], "amd64"),
            release("4.17.0-okd-scos.1", &["stable-4"], "arm64"),
            release("4.17.0-okd-scos.2", &["stable-4"], "multi"),
            release("4.17.0-okd-scos.3", &["stable-4"], "multi"),
        ],
        &[
            edge("4.17.0-okd-scos.0", "4.17.0-okd-scos.1", &[true]),
            edge("4.17.0-okd-scos.2", "4.17.0-okd-scos.3", &[true]),
        ],
    );
    let amd = json(&catalog, "stable-4", "amd64");
    assert_eq!(versions(&amd), ["4.17.0-okd-scos.0"]);
    assert_eq!(amd["edges"], json!([]));
    assert_eq!(
        versions(&json(&catalog, "stable-4", "arm64")),
        ["4.17.0-okd-scos.1"]
    );
    let multi = json(&catalog, "stable-4", "multi");
    assert_eq!(versions(&multi), ["4.17.0-okd-scos.2", "4.17.0-okd-scos.3"]);
    assert_eq!(multi["edges"], json!([[0, 1]]));
    for n in multi["nodes"].as_array().unwrap() {
        assert_eq!(n["metadata"]["release.openshift.io/architecture"], "multi");
    }
    assert_eq!(
        versions(&json(&catalog, "stable-4", "s390x")),
        Vec::<&str>::new()
    );
}

#[test]
fn blocked_edges_are_conditional_only_and_grouped_by_risk() {
    let a = "4.17.0-okd-scos.0";
    let b = "4.17.0-okd-scos.1";
    let c = "4.17.0-okd-scos.2";
    let d = "4.18.0-okd-scos.0";
    let catalog = Catalog::new(
        [a, b, c, d].map(|v| release(v, &["stable-4"], "amd64")),
        &[
            edge(a, b, &[true]),
            blocked(
                edge(a, c, &[true]),
                "etcd fails to start",
                Some("https://bugs/1"),
            ),
            blocked(
                edge(b, c, &[true]),
                "etcd fails to start",
                Some("https://bugs/1"),
            ),
            blocked(edge(c, d, &[true]), "", None),
            // Blocked but never tested: not offered at all.
            blocked(
                edge(a, d, &[false]),
                "etcd fails to start",
                Some("https://bugs/1"),
            ),
        ],
    );
    let v = json(&catalog, "stable-4", "amd64");
    assert_eq!(
        pairs(&v),
        [(a.into(), b.into())],
        "blocked edges are not plain edges"
    );
    let entries = v["conditionalEdges"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{entries:#?}");
    let etcd = entries
        .iter()
        .find(|e| e["risks"][0]["url"] == "https://bugs/1")
        .unwrap();
    assert_eq!(
        etcd["edges"],
        json!([{"from": a, "to": c}, {"from": b, "to": c}])
    );
    assert_eq!(
        etcd["risks"],
        json!([{"url": "https://bugs/1", "name": "EtcdFailsToStart",
                "message": "etcd fails to start", "matchingRules": [{"type": "Always"}]}])
    );
    let other = entries.iter().find(|e| e["edges"][0]["from"] == c).unwrap();
    let risk = &other["risks"][0];
    assert_eq!(risk["url"], graph::DEFAULT_RISK_URL);
    for key in ["url", "name", "message"] {
        assert!(!risk[key].as_str().unwrap().is_empty(), "{key} empty");
    }
    assert_eq!(risk["matchingRules"], json!([{"type": "Always"}]));
    assert!(risk["matchingRules"][0].get("promql").is_none());
    // Every (from, to) in exactly one entry, both ends are node versions.
    let nodes = versions(&v);
    let mut seen = std::collections::BTreeSet::new();
    for e in entries {
        for p in e["edges"].as_array().unwrap() {
            assert!(nodes.contains(&p["from"].as_str().unwrap()));
            assert!(nodes.contains(&p["to"].as_str().unwrap()));
            assert!(seen.insert(p.to_string()), "{p} twice");
        }
    }
    // A conditional edge whose end is filtered out goes, and so does an empty entry.
    let catalog = Catalog::new(
        [
            release(a, &["stable-4"], "amd64"),
            release(c, &["next-4"], "amd64"),
        ],
        &[blocked(edge(a, c, &[true]), "etcd", None)],
    );
    assert_eq!(
        json(&catalog, "stable-4", "amd64")["conditionalEdges"],
        json!([])
    );
}

#[test]
fn risk_names_are_camel_case() {
    assert_eq!(
        graph::risk_name("etcd fails: see OCPBUGS-12"),
        "EtcdFailsSeeOCPBUGS12"
    );
    assert_eq!(graph::risk_name("  "), "BlockedUpgrade");
    assert_eq!(
        graph::risk_name("4.17 regression"),
        "BlockedUpgrade417Regression"
    );
}
