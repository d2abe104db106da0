//! The release-controller JSON API (`../shared/specs/release-controller.md` §3.2) over records
//! written as the controller writes them, through the real router.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use release::state::{NewPayload, NewRun, Records, RunEnd, RunKind, RunState};
use serde_json::{json, Value};
use tower::ServiceExt;

const STREAM: &str = "okd-scos-4.17";
const PREFIX: &str = "4.17.0-0.okd-scos";
const T0: i64 = 1_795_478_400; // 2026-11-24T00:00:00Z
const A: &str = "4.17.0-0.okd-scos-2026-11-24-000000";
const B: &str = "4.17.0-0.okd-scos-2026-11-25-000000";
const C: &str = "4.17.0-0.okd-scos-2026-11-26-000000";
const S0: &str = "4.17.0-okd-scos.0";

struct Site {
    _dir: tempfile::TempDir,
    app: server::AppState,
}

impl Site {
    /// A stream with a blocking e2e job and an informing `all_previous_stable` upgrade job;
    /// payloads A (Accepted, promoted to S0), B (Accepted: e2e passed on its retry, upgrade from
    /// S0 passed) and C (Rejected).
    fn new() -> Site {
        Site::with_token(None)
    }

    fn with_token(token: Option<&str>) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let yaml = format!(
            "store: var/store\nstate: var/forge.db\nvariants: {{ okd-scos: {{}} }}\n\
             streams:\n  {STREAM}:\n    variant: okd-scos\n    branch: release-4.17\n    release:\n      \
             name: {PREFIX}\n      verify:\n        e2e: {{ command: [./e2e.sh], max_retries: 1 }}\n        \
             upgrade: {{ command: [./upgrade.sh], upgrade_from: all_previous_stable, optional: true }}\n      \
             promote: {{ every: 14d }}\n"
        );
        let path = dir.path().join("forge.yaml");
        std::fs::write(&path, yaml).unwrap();
        let config = build::config::load(&path).unwrap();
        let forge = Arc::new(build::run::Forge::open(config, Default::default()).unwrap());
        let r = Records::new(&forge.state);
        let inputs: BTreeMap<String, String> =
            [("cli".to_string(), format!("sha256:{}", "1".repeat(64)))].into();
        for (i, name) in [A, B, C].iter().enumerate() {
            let t = T0 + i as i64 * 86_400;
            assert!(r
                .create(&NewPayload {
                    name,
                    stream: STREAM,
                    created: t,
                    hash: &format!("sha256:{i:064}"),
                    inputs: &inputs,
                })
                .unwrap());
            let digest = format!("sha256:{:064}", i + 10);
            r.ready(name, &digest, &spec(&digest), t).unwrap();
        }
        let run = |payload: &str, job: &str, attempt: u32, initial: Option<&str>, ok: bool| {
            let id = r
                .start_run(
                    &NewRun {
                        payload,
                        job,
                        kind: RunKind::Job,
                        attempt,
                        initial,
                        dir: Some("/var/jobs/x"),
                    },
                    T0,
                )
                .unwrap()
                .unwrap();
            let state = if ok {
                RunState::Succeeded
            } else {
                RunState::Failed
            };
            r.finish_run(
                id,
                &RunEnd {
                    state,
                    message: None,
                    tests: None,
                },
                T0 + 100,
            )
            .unwrap();
        };
        run(A, "e2e", 1, None, true);
        r.decide(A, true, "every blocking job passed", T0).unwrap();
        let a = r.payload(A).unwrap().unwrap();
        let s0_digest = format!("sha256:{:064}", 99);
        let channels = ["stable-4".to_string(), "stable-4.17".to_string()];
        r.promote(&a, S0, &s0_digest, &spec(&s0_digest), &channels, T0)
            .unwrap();
        run(B, "e2e", 1, None, false);
        run(B, "e2e", 2, None, true);
        run(B, "upgrade", 1, Some(&spec(&s0_digest)), true);
        r.decide(B, true, "every blocking job passed", T0).unwrap();
        run(C, "e2e", 1, None, false);
        r.decide(C, false, "e2e failed", T0).unwrap();
        r.set_promotion_status(STREAM, "next due 2026-12-08T00:00:00Z", T0)
            .unwrap();
        let app = Arc::new(server::App {
            forge,
            token: token.map(String::from),
        });
        Site { _dir: dir, app }
    }

    async fn get(&self, uri: &str) -> (StatusCode, String) {
        self.send(Request::get(uri).body(Body::empty()).unwrap())
            .await
    }

    async fn send(&self, req: Request<Body>) -> (StatusCode, String) {
        let res = server::router(self.app.clone()).oneshot(req).await.unwrap();
        let status = res.status();
        let body = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    async fn json(&self, uri: &str) -> Value {
        let (status, body) = self.get(uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        serde_json::from_str(&body).unwrap()
    }
}

fn spec(digest: &str) -> String {
    format!("localhost/okd@{digest}")
}

#[tokio::test]
async fn streams_and_tags_list_as_the_release_controller_does() {
    let site = Site::new();
    assert_eq!(
        site.json("/api/v1/releasestreams/accepted").await,
        json!({ PREFIX: [B, A], "stable": [S0] })
    );
    assert_eq!(
        site.json("/api/v1/releasestreams/rejected").await,
        json!({ PREFIX: [C], "stable": [] })
    );
    assert_eq!(
        site.json("/api/v1/releasestreams/all").await[PREFIX],
        json!([C, B, A])
    );
    let (status, _) = site.get("/api/v1/releasestreams/bogus").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // By release-controller name or okd-forge name; `phase` may repeat.
    let tags = site
        .json(&format!(
            "/api/v1/releasestream/{STREAM}/tags?phase=Accepted&phase=Rejected"
        ))
        .await;
    assert_eq!(tags["name"], PREFIX);
    let names: Vec<&str> = tags["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, [C, B, A]);
    assert_eq!(
        tags["tags"][1],
        json!({ "name": B, "phase": "Accepted", "pullSpec": spec(&format!("sha256:{:064}", 11)) })
    );
    let (status, body) = site.get("/api/v1/releasestream/4.99.0-0.nope/tags").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("4.99.0-0.nope"), "{body}");
}

#[tokio::test]
async fn latest_honours_range_rel_prefix_and_format() {
    let site = Site::new();
    let base = format!("/api/v1/releasestream/{PREFIX}/latest");
    assert_eq!(site.json(&base).await["name"], B, "newest Accepted");
    assert_eq!(site.json(&format!("{base}?rel=1")).await["name"], A);
    let (status, _) = site.get(&format!("{base}?rel=2")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let range = "%3E4.17.0-0+%3C4.17.0-0.okd-scos-2026-11-25-000000";
    assert_eq!(site.json(&format!("{base}?in={range}")).await["name"], A);
    let (status, body) = site.get(&format!("{base}?in=%3Enot-a-version")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("not-a-version"), "{body}");
    assert_eq!(
        site.get(&format!("{base}?format=name")).await.1,
        format!("{B}\n")
    );
    assert_eq!(
        site.get(&format!("{base}?format=pullSpec")).await.1,
        format!("{}\n", spec(&format!("sha256:{:064}", 11)))
    );
    assert_eq!(
        site.json("/api/v1/releasestream/stable/latest").await["name"],
        S0
    );
}

#[tokio::test]
async fn a_tag_has_its_job_results_and_upgrades_with_capitalised_keys() {
    let site = Site::new();
    let b = site
        .json(&format!("/api/v1/releasestream/{PREFIX}/release/{B}"))
        .await;
    assert_eq!(b["phase"], "Accepted");
    let e2e = &b["results"]["blockingJobs"]["e2e"];
    assert_eq!(
        (e2e["state"].as_str(), e2e["retries"].as_u64()),
        (Some("Success"), Some(1))
    );
    assert_eq!(
        b["results"]["informingJobs"][format!("upgrade from {S0}")]["state"],
        "Success"
    );
    let to = &b["upgradesTo"][0];
    assert_eq!(
        (
            &to["From"],
            &to["To"],
            &to["Success"],
            &to["Failure"],
            &to["Total"]
        ),
        (&json!(S0), &json!(B), &json!(1), &json!(0), &json!(1))
    );
    assert_eq!(b["upgradesFrom"], json!([]));
    let s0 = site
        .json(&format!("/api/v1/releasestream/stable/release/{S0}"))
        .await;
    assert_eq!(s0["upgradesFrom"][0]["To"], B);
    assert_eq!(s0["stableOf"], A);
    let c = site
        .json(&format!("/api/v1/releasestream/{PREFIX}/release/{C}"))
        .await;
    assert_eq!(c["results"]["blockingJobs"]["e2e"]["state"], "Failure");
    // A stable release is not a tag of the payload stream.
    let (status, _) = site
        .get(&format!("/api/v1/releasestream/{PREFIX}/release/{S0}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_candidate_says_where_promotion_stands() {
    let site = Site::new();
    let c = site
        .json(&format!("/api/v1/releasestream/{PREFIX}/candidate"))
        .await;
    assert_eq!(c["candidate"]["name"], B);
    assert_eq!(c["candidate"]["fromTag"], S0);
    assert_eq!(c["candidate"]["upgradeFrom"], json!([S0]));
    assert_eq!(
        c["promotion"],
        json!({ "status": "next due 2026-12-08T00:00:00Z", "since": "2026-11-24T00:00:00Z" })
    );
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let site = Site::new();
    assert_eq!(site.get("/healthz").await, (StatusCode::OK, "ok\n".into()));
    assert_eq!(site.get("/readyz").await.0, StatusCode::OK);
    let (status, metrics) = site.get("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    for line in [
        "# TYPE okd_forge_payloads gauge",
        "okd_forge_payloads{stream=\"okd-scos-4.17\",phase=\"Accepted\"} 2",
        "okd_forge_payloads{stream=\"okd-scos-4.17\",phase=\"Rejected\"} 1",
        "okd_forge_stable_releases{stream=\"okd-scos-4.17\"} 1",
        "okd_forge_runs{state=\"failed\"} 2",
        "okd_forge_runs{state=\"succeeded\"} 3",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    }
}

#[tokio::test]
async fn a_mutation_needs_the_bearer_token() {
    let post = |token: Option<&str>| {
        let mut req = Request::post(format!(
            "/api/v1/releasestream/{PREFIX}/release/{C}/accept?reason=flaky%20infra"
        ));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        req.body(Body::empty()).unwrap()
    };
    // No token configured: mutations are off.
    let off = Site::new();
    assert_eq!(
        off.send(post(Some("s3cret"))).await.0,
        StatusCode::FORBIDDEN
    );

    let site = Site::with_token(Some("s3cret"));
    assert_eq!(site.send(post(None)).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        site.send(post(Some("s3cre"))).await.0,
        StatusCode::UNAUTHORIZED
    );
    let phase = |site: &Site| {
        Records::new(&site.app.forge.state)
            .payload(C)
            .unwrap()
            .unwrap()
            .phase
    };
    assert_eq!(
        phase(&site),
        release::lifecycle::Phase::Rejected,
        "refused, unchanged"
    );
    let (status, body) = site.send(post(Some("s3cret"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(phase(&site), release::lifecycle::Phase::Accepted);
    let p = Records::new(&site.app.forge.state)
        .payload(C)
        .unwrap()
        .unwrap();
    assert_eq!(p.reason.as_deref(), Some("flaky infra"));
}
