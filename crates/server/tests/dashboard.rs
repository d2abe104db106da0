//! The dashboard's pages, server-rendered over the records, through the real router.

#[path = "common/changelog.rs"]
mod changelog;
mod common;

use axum::http::StatusCode;
use common::*;
use release::state::{NewRun, Records, RunEnd, RunKind, RunState};

async fn html(site: &Site, uri: &str) -> String {
    let (status, body) = site.get(uri).await;
    assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    assert!(body.starts_with("<!DOCTYPE html>"), "{body}");
    body
}

#[tokio::test]
async fn the_overview_lists_streams_payloads_promotion_and_stable_releases() {
    let site = Site::new();
    let page = html(&site, "/").await;
    for text in [
        PREFIX,
        STREAM,
        A,
        B,
        C,
        S0,
        "promotion: next due 2026-12-08T00:00:00Z",
        "stable-4, stable-4.17",
        &format!("href=\"/releasestream/{PREFIX}/release/{B}\""),
    ] {
        assert!(page.contains(text), "{text} in:\n{page}");
    }
}

#[tokio::test]
async fn the_stream_page_shows_each_payloads_job_results() {
    let site = Site::new();
    let page = html(&site, &format!("/releasestream/{PREFIX}")).await;
    assert!(
        page.contains("<span class=\"Success\">e2e: Success</span>"),
        "{page}"
    );
    assert!(
        page.contains("<span class=\"Failure\">e2e: Failure</span>"),
        "{page}"
    );
    let (status, _) = site.get("/releasestream/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_payload_page_has_its_runs_upgrades_components_and_a_bug_link() {
    let site = Site::new();
    let page = html(&site, &format!("/releasestream/{PREFIX}/release/{B}")).await;
    let pull = spec(&format!("sha256:{:064}", 11));
    assert!(
        page.contains(&format!("oc adm release info {pull}")),
        "{page}"
    );
    assert!(
        page.contains(&format!("from {S0}: 1 passed, 0 failed")),
        "{page}"
    );
    assert!(
        page.contains(&"1".repeat(64)),
        "the component digest: {page}"
    );
    // The bug link carries the version and the digest.
    let link = page
        .split("href=\"")
        .find(|s| s.starts_with("https://github.com/okd-project/okd/issues/new?"))
        .unwrap();
    assert!(
        link.contains(B) && link.contains(&format!("{:064}", 11)),
        "{link}"
    );
    let stable = html(&site, &format!("/releasetag/{S0}")).await;
    assert!(
        stable.contains(&format!("Stable release promoted from {A}")),
        "{stable}"
    );
    assert!(stable.contains(&format!("to {B}: 1 passed")), "{stable}");
}

#[tokio::test]
async fn hostile_text_from_jobs_is_rendered_inert() {
    let site = Site::new();
    let r = Records::new(&site.app.forge.state);
    let id = r
        .start_run(
            &NewRun {
                payload: C,
                job: "e2e",
                kind: RunKind::Job,
                attempt: 2,
                initial: None,
                dir: None,
            },
            T0,
        )
        .unwrap()
        .unwrap();
    r.finish_run(
        id,
        &RunEnd {
            state: RunState::Failed,
            message: Some("<script>alert('pwned')</script>".into()),
            tests: None,
        },
        T0,
    )
    .unwrap();
    let page = html(&site, &format!("/releasetag/{C}")).await;
    assert!(!page.contains("<script>"), "{page}");
    assert!(page.contains("&#60;script&#62;"), "{page}");
}

#[tokio::test]
async fn the_payload_page_has_the_changelog_from_the_previous_payload_or_the_one_chosen() {
    let site = changelog::payloads().await;
    let [p1, p2, p3] = changelog::P;
    let page = |from: Option<&str>| {
        let uri = match from {
            None => format!("/releasestream/{PREFIX}/release/{p3}"),
            Some(f) => format!("/releasetag/{p3}?from={f}"),
        };
        let app = site.app.clone();
        async move {
            let (status, _, body) = changelog::get(&app, &uri).await;
            assert_eq!(status, StatusCode::OK, "{uri}: {body}");
            body
        }
    };
    let html = page(None).await;
    let section = &html[html.find("id=\"changelog\"").expect("a changelog section")..];
    assert!(
        section.contains(&format!(
            "Changes from <a href=\"/releasetag/{p2}\">{p2}</a>"
        )),
        "{section}"
    );
    assert!(section.contains(changelog::THIRD), "{section}");
    assert!(
        section.contains("<a href=\"https://issues.redhat.com/browse/OCPBUGS-3\">OCPBUGS-3</a>"),
        "{section}"
    );
    assert!(
        !section.contains("pwned"),
        "#2 is not in {p2}..{p3}: {section}"
    );
    // The form offers the other tags, the one compared with selected.
    assert!(
        section.contains(&format!("<option selected>{p2}</option>")),
        "{section}"
    );
    assert!(
        section.contains(&format!("<option>{p1}</option>")),
        "{section}"
    );

    // ?from= picks another base: now #2's hostile title is there, and inert.
    let html = page(Some(p1)).await;
    let section = &html[html.find("id=\"changelog\"").unwrap()..];
    assert!(
        section.contains(&format!(
            "Changes from <a href=\"/releasetag/{p1}\">{p1}</a>"
        )),
        "{section}"
    );
    assert!(section.contains(changelog::THIRD), "{section}");
    assert!(section.contains("pwned"), "{section}");
    assert!(
        !html.contains("<script>") && !html.contains("<img"),
        "{section}"
    );
    assert!(section.contains("&#60;script&#62;"), "{section}");

    // An unknown base says so; the oldest payload has nothing before it.
    let html = page(Some("4.17.0-0.okd-scos-2020-01-01-000000")).await;
    assert!(
        html.contains("unable to find release tag 4.17.0-0.okd-scos-2020-01-01-000000"),
        "{html}"
    );
    let (_, _, html) = changelog::get(&site.app, &format!("/releasetag/{p1}")).await;
    assert!(
        html.contains("There is no earlier tag to compare with."),
        "{html}"
    );
}

/// A stable release's page and API entry list where it is published, and the server hands out
/// its tools (and nothing outside them, nor a directory still being written).
#[tokio::test]
async fn a_stable_release_shows_where_it_is_published_and_serves_its_tools() {
    let site = Site::with_config("publish: { tools: var/tools }\n", None);
    let tools = site.dir.path().join("var/tools").join(S0);
    std::fs::create_dir_all(&tools).unwrap();
    let archive = format!("openshift-client-linux-{S0}.tar.gz");
    std::fs::write(tools.join(&archive), b"gzip archive").unwrap();
    std::fs::write(tools.join("sha256sum.txt"), format!("abc  {archive}\n")).unwrap();
    let writing = site.dir.path().join("var/tools/.4.17.0-okd-scos.1.tmp");
    std::fs::create_dir_all(&writing).unwrap();
    std::fs::write(writing.join("sha256sum.txt"), b"partial").unwrap();
    let r = Records::new(&site.app.forge.state);
    let s0 = r.payload(S0).unwrap().unwrap();
    r.published(
        &s0,
        "mirror",
        "quay.example/okd/scos-release:4.17.0-okd-scos.0",
        "9 images",
        T0,
    )
    .unwrap();
    r.published(&s0, "tools", &tools.display().to_string(), &archive, T0)
        .unwrap();

    let page = html(&site, &format!("/releasetag/{S0}")).await;
    assert!(page.contains("<h2>Published</h2>"), "{page}");
    assert!(
        page.contains("quay.example/okd/scos-release:4.17.0-okd-scos.0"),
        "{page}"
    );
    let link = format!("/tools/{S0}/{archive}");
    assert!(
        page.contains(&format!("<a href=\"{link}\">{archive}</a>")),
        "{page}"
    );
    assert!(
        page.contains(&format!("/tools/{S0}/sha256sum.txt")),
        "{page}"
    );
    let (status, body) = site.get(&link).await;
    assert_eq!(
        (status, body.as_bytes()),
        (StatusCode::OK, &b"gzip archive"[..])
    );
    for bad in [
        "/tools/.4.17.0-okd-scos.1.tmp/sha256sum.txt".to_string(),
        format!("/tools/{S0}/..%2F..%2Fforge.yaml"),
        format!("/tools/{S0}/missing.tar.gz"),
    ] {
        assert_eq!(site.get(&bad).await.0, StatusCode::NOT_FOUND, "{bad}");
    }
    let j = site
        .json(&format!("/api/v1/releasestream/stable/release/{S0}"))
        .await;
    let kinds: Vec<&str> = j["published"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["mirror", "tools"], "{j}");
    let a = html(&site, &format!("/releasetag/{A}")).await;
    assert!(!a.contains("<h2>Published</h2>"));
}

#[tokio::test]
async fn the_stream_page_shows_where_its_os_stands() {
    use build::osgate::{self, CandidateState, OsReleaseRecord, PollRecord};
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "store: var/store\nstate: var/forge.db\nvariants: {{ okd-scos: {{}} }}\ncomponents:\n  \
         os:\n    git: https://github.com/openshift/os\n    images: [ {{ to: stream-coreos, \
         containerfile: Containerfile, os: true }} ]\nstreams:\n  {STREAM}:\n    variant: \
         okd-scos\n    branch: release-4.17\n    os: {{ metadata: \
         https://example.org/c10s.json, image: quay.io/okd/centos-stream-coreos-10 }}\n    \
         release: {{ name: {PREFIX} }}\n"
    );
    let forge = common::forge_from(dir.path(), &yaml);
    let (v1, v2) = ("10.0.20250628-0", "10.0.20250705-0");
    let (d1, d2) = (
        format!("sha256:{}", "a".repeat(64)),
        format!("sha256:{}", "b".repeat(64)),
    );
    for (i, v) in [v1, v2].iter().enumerate() {
        osgate::record_release(
            &forge.state,
            &OsReleaseRecord {
                stream: STREAM.into(),
                version: v.to_string(),
                source: "c10s".into(),
                last_modified: None,
                versions: Default::default(),
                images: Default::default(),
                base: format!("docker://quay.io/okd/centos-stream-coreos-10:{v}"),
                found: T0 + i as i64,
            },
        )
        .unwrap();
    }
    let state = &forge.state;
    osgate::propose(state, STREAM, "stream-coreos", &d1, v1, None, T0).unwrap();
    let c1 = osgate::testing(state, STREAM).unwrap().unwrap();
    osgate::decide(state, c1.id, CandidateState::Accepted, A, None, T0).unwrap();
    state.promote(STREAM, "stream-coreos", &d1, None).unwrap();
    osgate::propose(state, STREAM, "stream-coreos", &d2, v2, None, T0 + 1).unwrap();
    let c2 = osgate::testing(state, STREAM).unwrap().unwrap();
    let why = format!("{B} was Rejected: e2e failed");
    osgate::decide(
        state,
        c2.id,
        CandidateState::Rejected,
        B,
        Some(&why),
        T0 + 2,
    )
    .unwrap();
    osgate::pin(state, STREAM, v1, "NetworkManager <regression>", T0 + 3).unwrap();
    osgate::record_poll(
        state,
        STREAM,
        &PollRecord {
            at: T0 + 4,
            ok: false,
            message: "https://example.org/c10s.json:1:2: metadata: expected a map".into(),
        },
    )
    .unwrap();
    let site = Site {
        dir,
        app: std::sync::Arc::new(server::App::new(forge)),
    };
    let page = html(&site, &format!("/releasestream/{PREFIX}")).await;
    for text in [
        "<h2>OS</h2>",
        "Source: <code>https://example.org/c10s.json</code>",
        &format!("In the stream: {v1} <code>{d1}</code>, accepted with"),
        &format!("href=\"/releasestream/{PREFIX}/release/{A}\""),
        &format!("Rejected: {v2} <code>{d2}</code>: {B} was Rejected: e2e failed; the stream keeps its OS"),
        &format!("Pinned to {v1}: NetworkManager &#60;regression&#62;"),
        "The last poll failed: https://example.org/c10s.json:1:2: metadata: expected a map",
    ] {
        assert!(page.contains(text), "{text} in:\n{page}");
    }
}
