//! A site with records written as the controller writes them, and requests through the real
//! router.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use release::state::{NewPayload, NewRun, Records, RunEnd, RunKind, RunState};
use serde_json::Value;
use tower::ServiceExt;

pub const STREAM: &str = "okd-scos-4.17";
pub const PREFIX: &str = "4.17.0-0.okd-scos";
pub const T0: i64 = 1_795_478_400; // 2026-11-24T00:00:00Z
pub const A: &str = "4.17.0-0.okd-scos-2026-11-24-000000";
pub const B: &str = "4.17.0-0.okd-scos-2026-11-25-000000";
pub const C: &str = "4.17.0-0.okd-scos-2026-11-26-000000";
pub const S0: &str = "4.17.0-okd-scos.0";

pub struct Site {
    _dir: tempfile::TempDir,
    pub app: server::AppState,
}

impl Site {
    /// A stream with a blocking e2e job and an informing `all_previous_stable` upgrade job;
    /// payloads A (Accepted, promoted to S0), B (Accepted: e2e passed on its retry, upgrade from
    /// S0 passed) and C (Rejected).
    pub fn new() -> Site {
        Site::with_token(None)
    }

    pub fn with_token(token: Option<&str>) -> Site {
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

    pub async fn get(&self, uri: &str) -> (StatusCode, String) {
        self.send(Request::get(uri).body(Body::empty()).unwrap())
            .await
    }

    pub async fn send(&self, req: Request<Body>) -> (StatusCode, String) {
        let res = server::router(self.app.clone()).oneshot(req).await.unwrap();
        let status = res.status();
        let body = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    pub async fn json(&self, uri: &str) -> Value {
        let (status, body) = self.get(uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        serde_json::from_str(&body).unwrap()
    }
}

pub fn spec(digest: &str) -> String {
    format!("localhost/okd@{digest}")
}
