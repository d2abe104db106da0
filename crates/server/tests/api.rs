//! The release-controller JSON API (`../shared/specs/release-controller.md` §3.2) over records
//! written as the controller writes them, through the real router.

#[path = "common/changelog.rs"]
mod changelog;
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

#[tokio::test]
async fn config_has_the_release_config_shape_and_filters_by_job_type() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "store: var/store\nstate: var/forge.db\nvariants: {{ okd-scos: {{}} }}\n\
         streams:\n  {STREAM}:\n    variant: okd-scos\n    branch: release-4.17\n    release:\n      \
         name: {PREFIX}\n      max_unready: 1\n      min_interval: 12h\n      expires: 72h\n      \
         verify:\n        aws: {{ command: [./e2e.sh], max_retries: 1 }}\n        \
         aws-upgrade: {{ command: [./upgrade.sh], upgrade_from: previous, optional: true }}\n        \
         upgrade-stable: {{ command: [./upgrade.sh], upgrade_from: all_previous_stable, optional: true }}\n        \
         off: {{ command: [./off.sh], disabled: true }}\n      \
         publish:\n        tag: {{ tag_ref: scos-4.17 }}\n"
    );
    let forge = forge_from(dir.path(), &yaml);
    let store = forge.config.store_name.clone();
    let app = std::sync::Arc::new(server::App::new(forge));
    // Spec §1.1 and §1.2: the ReleaseConfig's field names and Go's duration format.
    let expected = json!({
        "name": PREFIX,
        "to": store,
        "mirrorPrefix": STREAM,
        "expires": "72h0m0s",
        "maxUnreadyReleases": 1,
        "minCreationIntervalSeconds": 43200,
        "verify": {
            "aws": { "prowJob": { "name": "aws" }, "maxRetries": 1 },
            "aws-upgrade": { "prowJob": { "name": "aws-upgrade" }, "optional": true,
                             "upgrade": true, "upgradeFrom": "Previous" },
            "upgrade-stable": { "prowJob": { "name": "upgrade-stable" }, "optional": true,
                                "upgrade": true, "upgradeFrom": "PreviousPatch" },
        },
        "publish": { "tag": { "tagRef": { "name": "scos-4.17" } } },
    });
    for name in [STREAM, PREFIX] {
        let uri = format!("/api/v1/releasestream/{name}/config");
        assert_eq!(changelog::json(&app, &uri).await, expected, "{uri}");
    }
    let jobs = |t: &str| format!("/api/v1/releasestream/{PREFIX}/config?jobType={t}");
    assert_eq!(
        changelog::json(&app, &jobs("blocking")).await,
        json!({ "aws": expected["verify"]["aws"] })
    );
    let informing = changelog::json(&app, &jobs("informing")).await;
    let names: Vec<&String> = informing.as_object().unwrap().keys().collect();
    assert_eq!(names, ["aws-upgrade", "upgrade-stable"]);
    assert_eq!(changelog::json(&app, &jobs("disabled")).await, json!({}));
    assert_eq!(changelog::json(&app, &jobs("periodic")).await, json!({}));
    let (status, _, body) = changelog::get(&app, &jobs("nightly")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("nightly"), "{body}");
    let (status, _, _) = changelog::get(&app, "/api/v1/releasestream/4.99.0-0.nope/config").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        changelog::json(&app, "/api/v1/releasestream/stable/config").await["as"],
        "Stable"
    );
}

#[tokio::test]
async fn changelog_as_json_and_markdown_between_any_two_tags() {
    let site = changelog::payloads().await;
    let [p1, p2, p3] = changelog::P;
    let uri = format!("/changelog?from={p1}&to={p3}&format=json");
    let (status, headers, body) = changelog::get(&site.app, &uri).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["access-control-allow-origin"], "*");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    // Spec §4.1: from/to{name,created,digest}, components, and the four image lists.
    assert_eq!(v["from"]["name"], p1);
    assert_eq!(v["to"]["name"], p3);
    assert!(v["to"]["digest"].as_str().unwrap().starts_with("sha256:"));
    for list in ["newImages", "removedImages", "rebuiltImages"] {
        assert_eq!(v[list], json!([]), "{list}");
    }
    let updated = v["updatedImages"].as_array().unwrap();
    assert_eq!(updated.len(), 1, "{v}");
    let cli = &updated[0];
    assert_eq!(cli["name"], "cli");
    assert_eq!(cli["path"], site.upstream.url());
    let subjects: Vec<&str> = cli["commits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["subject"].as_str().unwrap())
        .collect();
    assert_eq!(
        subjects,
        [changelog::THIRD, changelog::HOSTILE],
        "newest first"
    );
    assert_eq!(cli["commits"][0]["pullID"], 3);
    assert_eq!(
        cli["commits"][0]["issues"],
        json!({ "OCPBUGS-3": "https://issues.redhat.com/browse/OCPBUGS-3" })
    );

    // Markdown by default, as `okd-forge release diff --changelog` prints it; the subject's
    // HTML escaped.
    let (status, headers, md) =
        changelog::get(&site.app, &format!("/changelog?from={p2}&to={p3}")).await;
    assert_eq!(status, StatusCode::OK, "{md}");
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/markdown"));
    assert!(md.starts_with(&format!("# {p3}\n")), "{md}");
    assert!(md.contains(&format!("## Changes from {p2}\n")), "{md}");
    assert!(
        md.contains(&format!(": {} (#3)\n", changelog::THIRD)),
        "{md}"
    );
    assert!(
        !md.contains("pull/2") && !md.contains("(#2)"),
        "only #3: {md}"
    );
    let (_, _, md) = changelog::get(&site.app, &format!("/changelog?from={p1}&to={p2}")).await;
    assert!(
        md.contains("&lt;script&gt;") && !md.contains("<script>"),
        "{md}"
    );

    // The HTML rendering escapes it too.
    let (status, _, html) = changelog::get(
        &site.app,
        &format!("/changelog?from={p1}&to={p2}&format=html"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !html.contains("<script>") && !html.contains("<img"),
        "{html}"
    );

    // Kept by digest pair: with the repository and the git cache gone, the same answer.
    std::fs::remove_dir_all(site.upstream.dir()).unwrap();
    std::fs::remove_dir_all(build::run::dirs(&site.app.forge.config).1.join("git")).unwrap();
    let (status, _, again) = changelog::get(&site.app, &uri).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again, body);

    for (uri, want) in [
        (format!("/changelog?to={p2}"), StatusCode::BAD_REQUEST),
        (
            format!("/changelog?from={p1}&to=4.17.0-0.okd-scos-2020-01-01-000000"),
            StatusCode::NOT_FOUND,
        ),
        (
            format!("/changelog?from={p1}&to={p2}&format=yaml"),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (status, _, body) = changelog::get(&site.app, &uri).await;
        assert_eq!(status, want, "{uri}: {body}");
    }
}

#[tokio::test]
async fn a_tag_carries_its_changelog_unless_short_is_asked_for() {
    use base64::Engine as _;
    let site = changelog::payloads().await;
    let [p1, p2, p3] = changelog::P;
    let base = format!("/api/v1/releasestream/{}/release/{p3}", common::STREAM);

    // By default against the previous Accepted tag: pull request #3 only.
    let v = changelog::json(&site.app, &base).await;
    assert_eq!(v["changeLogJson"]["from"]["name"], p2, "{v}");
    let subjects = |v: &serde_json::Value| -> Vec<String> {
        v["changeLogJson"]["updatedImages"][0]["commits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["subject"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(subjects(&v), [changelog::THIRD]);
    let html = base64::engine::general_purpose::STANDARD
        .decode(v["changeLog"].as_str().unwrap())
        .unwrap();
    let html = String::from_utf8(html).unwrap();
    assert!(html.contains(changelog::THIRD), "{html}");
    assert!(
        html.contains(&format!("href=\"/releasetag/{p2}\"")),
        "{html}"
    );

    // ?from= picks another base; the hostile title stays text in the HTML.
    let v = changelog::json(&site.app, &format!("{base}?from={p1}")).await;
    assert_eq!(subjects(&v), [changelog::THIRD, changelog::HOSTILE]);
    let html = base64::engine::general_purpose::STANDARD
        .decode(v["changeLog"].as_str().unwrap())
        .unwrap();
    let html = String::from_utf8(html).unwrap();
    assert!(
        !html.contains("<script") && !html.contains("<img"),
        "{html}"
    );
    assert!(
        html.contains("script") && html.contains("onerror=alert(1)"),
        "{html}"
    );

    // format=short skips the changelog; an unknown base is a 404.
    let v = changelog::json(&site.app, &format!("{base}?format=short")).await;
    assert!(
        v.get("changeLog").is_none() && v.get("changeLogJson").is_none(),
        "{v}"
    );
    assert_eq!(v["name"], p3);
    let (status, _, _) = changelog::get(
        &site.app,
        &format!("{base}?from=4.17.0-0.okd-scos-2020-01-01-000000"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
