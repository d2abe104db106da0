//! A site with records written as the controller writes them, and requests through the real
//! router.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use release::state::{NewPayload, NewRun, Records, RunEnd, RunKind, RunState};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

pub const STREAM: &str = "okd-scos-4.17";
pub const PREFIX: &str = "4.17.0-0.okd-scos";
pub const T0: i64 = 1_795_478_400; // 2026-11-24T00:00:00Z
pub const A: &str = "4.17.0-0.okd-scos-2026-11-24-000000";
pub const B: &str = "4.17.0-0.okd-scos-2026-11-25-000000";
pub const C: &str = "4.17.0-0.okd-scos-2026-11-26-000000";
pub const S0: &str = "4.17.0-okd-scos.0";

pub struct Site {
    pub dir: tempfile::TempDir,
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
        Site::with_config("", token)
    }

    /// [`Site::with_token`], with more top-level settings (`top`, whole lines).
    pub fn with_config(top: &str, token: Option<&str>) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let yaml = format!(
            "{top}store: var/store\nstate: var/forge.db\nvariants: {{ okd-scos: {{}} }}\n\
             streams:\n  {STREAM}:\n    variant: okd-scos\n    branch: release-4.17\n    release:\n      \
             name: {PREFIX}\n      verify:\n        e2e: {{ command: [./e2e.sh], max_retries: 1 }}\n        \
             upgrade: {{ command: [./upgrade.sh], upgrade_from: all_previous_stable, optional: true }}\n      \
             promote: {{ every: 14d }}\n"
        );
        let forge = forge_from(dir.path(), &yaml);
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
        let mut app = server::App::new(forge);
        app.token = token.map(String::from);
        let app = Arc::new(app);
        Site { dir, app }
    }

    pub async fn get(&self, uri: &str) -> (StatusCode, String) {
        self.send(Request::get(uri).body(Body::empty()).unwrap())
            .await
    }

    pub async fn send(&self, req: Request<Body>) -> (StatusCode, String) {
        send(&self.app, req).await
    }

    pub async fn json(&self, uri: &str) -> Value {
        let (status, body) = self.get(uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        serde_json::from_str(&body).unwrap()
    }
}

/// `req` through the real router of `app`: (status, body).
pub async fn send(app: &server::AppState, req: Request<Body>) -> (StatusCode, String) {
    let res = server::router(app.clone()).oneshot(req).await.unwrap();
    let status = res.status();
    let body = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

pub fn spec(digest: &str) -> String {
    format!("localhost/okd@{digest}")
}

/// A Forge over a `forge.yaml` of `yaml` written in `dir`.
pub fn forge_from(dir: &std::path::Path, yaml: &str) -> Arc<build::run::Forge> {
    let path = dir.join("forge.yaml");
    std::fs::write(&path, yaml).unwrap();
    let config = build::config::load(&path).unwrap();
    Arc::new(build::run::Forge::open(config, Default::default()).unwrap())
}

/// Serves `forge` (no token) on a free loopback port until the test ends; the port.
pub async fn serve(forge: Arc<build::run::Forge>) -> u16 {
    let app = Arc::new(server::App::new(forge));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(server::serve(listener, app, std::future::pending()));
    port
}

pub struct Reply {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    /// The code of the one distribution-spec error in the body.
    pub fn code(&self) -> String {
        let v = self.json();
        assert_eq!(v["errors"].as_array().map(Vec::len), Some(1), "{v}");
        assert!(
            v["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{v}"
        );
        v["errors"][0]["code"].as_str().unwrap().to_string()
    }
}

pub async fn request(port: u16, method: &str, target: &str, headers: &[(&str, &str)]) -> Reply {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if method != "GET" && method != "HEAD" {
        req.push_str("Content-Length: 0\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_ascii_lowercase(), v.trim().to_string())
        })
        .collect();
    Reply {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}
