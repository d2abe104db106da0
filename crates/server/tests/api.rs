//! The release-controller JSON API (`../shared/specs/release-controller.md` §3.2) over records
//! written as the controller writes them, through the real router.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use release::state::Records;
use serde_json::json;

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
    // A stable release, or a tag of no stream, is not decided on.
    for uri in [
        format!("/api/v1/releasestream/{PREFIX}/release/{S0}/reject"),
        format!("/api/v1/releasestream/nope/release/{C}/reject"),
    ] {
        let req = Request::post(uri)
            .header("authorization", "Bearer s3cret")
            .body(Body::empty())
            .unwrap();
        assert_eq!(site.send(req).await.0, StatusCode::NOT_FOUND);
    }
    assert_eq!(phase(&site), release::lifecycle::Phase::Accepted);
}
