//! Payloads with a real changelog: a git repository (file://) for `cli`'s source with three
//! merged pull requests, one of them titled with HTML, and three Accepted payloads built into the
//! store from the testkit release set, each with `cli` at the next pull request.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use payload::new::{AssembleProgress, Base, InputTag, NewRelease};
use payload::source::PullSpec;
use payload::version::{ReleaseName, Versions};
use release::state::{NewPayload, Records};
use testkit::git::Upstream;
use testkit::release::{ReleaseSet, LABEL_COMMIT_ID, LABEL_SOURCE};

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use tower::ServiceExt;

use super::common::{forge_from, PREFIX, STREAM, T0};

/// The payloads, oldest first; `cli` is at pull requests #1, #2 and #3.
pub const P: [&str; 3] = [
    "4.17.0-0.okd-scos-2026-11-24-000000",
    "4.17.0-0.okd-scos-2026-11-25-000000",
    "4.17.0-0.okd-scos-2026-11-26-000000",
];

/// The title of pull request #2, which the pages must show as text.
pub const HOSTILE: &str = "<script>alert('pwned')</script> & <img src=x onerror=alert(1)>";

/// The title of pull request #3, after its Jira key.
pub const THIRD: &str = "the third change";

pub struct Payloads {
    _dir: tempfile::TempDir,
    pub app: server::AppState,
    pub upstream: Upstream,
}

struct Quiet;

impl AssembleProgress for Quiet {
    fn step(&self, _: &str, _: &str, _: usize, _: usize) {}
}

pub async fn payloads() -> Payloads {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Upstream::init(dir.path().join("upstream/oc"));
    let commits = [
        upstream.pull_request(1, "first", &["the first change"]),
        upstream.pull_request(2, "hostile", &[HOSTILE]),
        upstream.pull_request(3, "third", &[&format!("OCPBUGS-3: {THIRD}")]),
    ];
    let yaml = format!(
        "store: var/store\nstate: var/forge.db\nvariants: {{ okd-scos: {{}} }}\n\
         streams:\n  {STREAM}:\n    variant: okd-scos\n    branch: release-4.17\n    release:\n      \
         name: {PREFIX}\n"
    );
    let forge = forge_from(dir.path(), &yaml);
    let records = Records::new(&forge.state);
    for (i, (name, commit)) in P.iter().zip(&commits).enumerate() {
        let set = ReleaseSet::standard("amd64").edit("cli", |c| {
            c.label(LABEL_SOURCE, &upstream.url())
                .label(LABEL_COMMIT_ID, commit)
        });
        let images = set.write(&dir.path().join("var/store"));
        let created = T0 + i as i64 * 86_400;
        let req = NewRelease {
            name: ReleaseName::parse(name).unwrap(),
            inputs: images
                .components
                .iter()
                .map(|(tag, c)| {
                    let pullspec = PullSpec::parse(tag, &c.pullspec).unwrap();
                    let input = InputTag {
                        pullspec,
                        is_override: false,
                        carried: None,
                    };
                    (tag.clone(), input)
                })
                .collect(),
            base: Base::Tag("cluster-version-operator".into()),
            previous: Vec::new(),
            metadata: BTreeMap::new(),
            include: Default::default(),
            allow_missing_images: false,
            created: time::OffsetDateTime::from_unix_timestamp(created).unwrap(),
            annotations: BTreeMap::new(),
            default_versions: Versions::new(),
            extra_manifests: Default::default(),
        };
        let built = payload::new::assemble(&forge.sources, &req, 2, &Quiet)
            .await
            .unwrap();
        payload::new::push(&built, &forge.copier, &forge.store, name)
            .await
            .unwrap();
        let inputs: BTreeMap<String, String> = images
            .components
            .iter()
            .map(|(tag, c)| (tag.clone(), c.digest.to_string()))
            .collect();
        records
            .create(&NewPayload {
                name,
                stream: STREAM,
                created,
                hash: &format!("sha256:{i:064}"),
                inputs: &inputs,
            })
            .unwrap();
        let digest = built.digest.to_string();
        let spec = format!("{}@{digest}", forge.config.store_name);
        records.ready(name, &digest, &spec, created).unwrap();
        records.decide(name, true, "passed", created).unwrap();
    }
    Payloads {
        _dir: dir,
        app: Arc::new(server::App::new(forge)),
        upstream,
    }
}

/// `GET uri` through the router of `app`: status, headers, body.
pub async fn get(app: &server::AppState, uri: &str) -> (StatusCode, HeaderMap, String) {
    let req = Request::get(uri).body(Body::empty()).unwrap();
    let res = server::router(app.clone()).oneshot(req).await.unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    let body = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

/// The JSON answer of `GET uri`, which must be 200.
pub async fn json(app: &server::AppState, uri: &str) -> serde_json::Value {
    let (status, _, body) = get(app, uri).await;
    assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    serde_json::from_str(&body).unwrap()
}
