//! The Cincinnati update graph at `/graph`, `/api/upgrades_info/graph` and
//! `/api/upgrades_info/v1/graph` (`../shared/specs/cincinnati.md` §1.3, §7).
//!
//! - `channel` is required (400 `missing_params`) and must match `^[0-9a-z\-\.]+$`; `arch`
//!   defaults to `amd64` and must match `^[0-9a-z]+$` (400 `invalid_params`); `version`, `id`
//!   and unknown parameters are ignored. An unknown channel is a 200 empty graph.
//! - `Accept` is compared as an exact string, as Cincinnati does: `application/json`,
//!   `application/vnd.redhat.cincinnati.v1+json`, `*/*`, `*`, `application/*` or none; anything
//!   else is 406 `invalid_content_type`. The response type echoes it (wildcards answer
//!   `application/json`, no header answers the vnd type).
//! - Errors are `{"kind":…,"value":…}`; HEAD is 405; `access-control-allow-origin` echoes
//!   `Origin`.
//!
//! The graph of each (channel, arch) is serialised once and served as cached bytes. The cache is
//! checked against [`Records::last_event`] at most every [`CHECK_INTERVAL`] and rebuilt only when
//! that changed; while one request rebuilds, the others serve the previous bytes.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::header::{ACCEPT, ACCESS_CONTROL_ALLOW_ORIGIN, CONTENT_TYPE, ORIGIN};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use graph::Catalog;
use release::state::Records;

use crate::AppState;

/// The paths the graph is served at.
pub const PATHS: [&str; 3] = [
    "/graph",
    "/api/upgrades_info/graph",
    "/api/upgrades_info/v1/graph",
];

/// How often, at most, the records are checked for changes.
pub const CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// Cincinnati's own media type.
pub const CINCINNATI_JSON: &str = "application/vnd.redhat.cincinnati.v1+json";

const EMPTY: &[u8] = br#"{"version":1,"nodes":[],"edges":[],"conditionalEdges":[]}"#;

/// This module's routes; each call has its own cache.
pub fn routes() -> Router<AppState> {
    let cache = Arc::new(Cache::default());
    let mut router = Router::new();
    for path in PATHS {
        let cache = cache.clone();
        router = router.route(
            path,
            get(
                move |State(app): State<AppState>, headers: HeaderMap, RawQuery(query)| {
                    let cache = cache.clone();
                    async move { handle(app, cache, headers, query).await }
                },
            )
            .head(|| async { StatusCode::METHOD_NOT_ALLOWED }),
        );
    }
    router
}

/// The serialised graphs, per `arch/channel`, as of the event `token`.
#[derive(Default)]
struct Cache {
    inner: RwLock<Option<Graphs>>,
    refreshing: tokio::sync::Mutex<()>,
}

struct Graphs {
    token: i64,
    checked: Instant,
    bytes: HashMap<String, Bytes>,
}

fn key(channel: &str, arch: &str) -> String {
    format!("{arch}/{channel}")
}

impl Cache {
    fn lookup(&self, channel: &str, arch: &str) -> Option<(Bytes, bool)> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let graphs = inner.as_ref()?;
        let bytes = graphs
            .bytes
            .get(&key(channel, arch))
            .cloned()
            .unwrap_or_else(|| Bytes::from_static(EMPTY));
        Some((bytes, graphs.checked.elapsed() < CHECK_INTERVAL))
    }

    /// The graph bytes of (channel, arch), checking the records first when due.
    async fn get(&self, app: &AppState, channel: &str, arch: &str) -> Result<Bytes, String> {
        let stale = match self.lookup(channel, arch) {
            Some((bytes, true)) => return Ok(bytes),
            Some((bytes, false)) => Some(bytes),
            None => None,
        };
        let _guard = match (&stale, self.refreshing.try_lock()) {
            (_, Ok(guard)) => guard,
            // Another request is checking: serve what there is, or wait for the first load.
            (Some(bytes), Err(_)) => return Ok(bytes.clone()),
            (None, Err(_)) => self.refreshing.lock().await,
        };
        let known = {
            let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
            match inner.as_ref() {
                Some(g) if g.checked.elapsed() < CHECK_INTERVAL => None,
                Some(g) => Some(Some(g.token)),
                None => Some(None),
            }
        };
        if let Some(known) = known {
            let forge = app.forge.clone();
            let result = tokio::task::spawn_blocking(move || rebuild(&forge, known))
                .await
                .map_err(|e| format!("graph rebuild panicked: {e}"))?;
            let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
            match (result, inner.as_mut()) {
                (Ok(Some(graphs)), _) => *inner = Some(graphs),
                (Ok(None), Some(g)) => g.checked = Instant::now(),
                (Ok(None), None) => unreachable!("rebuild only skips a known token"),
                (Err(e), Some(g)) => {
                    tracing::warn!(
                        "update graph: reading the records: {e}; serving the last graph"
                    );
                    g.checked = Instant::now();
                }
                (Err(e), None) => return Err(e),
            }
        }
        Ok(self
            .lookup(channel, arch)
            .map(|(b, _)| b)
            .unwrap_or_else(|| Bytes::from_static(EMPTY)))
    }
}

/// Every (channel, arch) graph of the records, unless their newest event is still `known`.
fn rebuild(forge: &build::run::Forge, known: Option<i64>) -> Result<Option<Graphs>, String> {
    let records = Records::new(&forge.state);
    let token = records.last_event().map_err(|e| e.to_string())?;
    if known == Some(token) {
        return Ok(None);
    }
    let catalog = Catalog::from_records(&records, forge.config.streams.keys().map(String::as_str))
        .map_err(|e| e.to_string())?;
    for why in catalog.skipped() {
        tracing::warn!("update graph: left out: {why}");
    }
    let mut bytes = HashMap::new();
    for arch in catalog.arches() {
        for channel in catalog.channels() {
            let graph = catalog.graph(channel, arch);
            if !graph.nodes.is_empty() {
                bytes.insert(key(channel, arch), Bytes::from(graph.to_bytes()));
            }
        }
    }
    Ok(Some(Graphs {
        token,
        checked: Instant::now(),
        bytes,
    }))
}

/// A Cincinnati error: status, `kind` and `value`.
fn error(status: StatusCode, kind: &str, value: &str) -> Response {
    let body = serde_json::to_vec(&serde_json::json!({ "kind": kind, "value": value }))
        .expect("strings serialise");
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .expect("a valid response")
}

/// The response type for an `Accept` header, or None when Cincinnati refuses it.
fn content_type(accept: Option<&HeaderValue>) -> Option<&'static str> {
    let Some(accept) = accept else {
        return Some(CINCINNATI_JSON);
    };
    match accept.to_str().ok()? {
        "application/json" | "*/*" | "*" | "application/*" => Some("application/json"),
        CINCINNATI_JSON => Some(CINCINNATI_JSON),
        _ => None,
    }
}

/// Percent-decodes a query component (`+` is a space).
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// The first value of each query parameter.
fn params(query: Option<&str>) -> HashMap<String, String> {
    let mut map = HashMap::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        map.entry(decode(k)).or_insert_with(|| decode(v));
    }
    map
}

async fn handle(
    app: AppState,
    cache: Arc<Cache>,
    headers: HeaderMap,
    query: Option<String>,
) -> Response {
    let mut response = answer(&app, &cache, &headers, query.as_deref()).await;
    if let Some(origin) = headers.get(ORIGIN) {
        response
            .headers_mut()
            .insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    }
    response
}

async fn answer(
    app: &AppState,
    cache: &Cache,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Response {
    let Some(content_type) = content_type(headers.get(ACCEPT)) else {
        return error(
            StatusCode::NOT_ACCEPTABLE,
            "invalid_content_type",
            "invalid Content-Type requested",
        );
    };
    let params = params(query);
    let Some(channel) = params.get("channel") else {
        return error(
            StatusCode::BAD_REQUEST,
            "missing_params",
            "mandatory client parameters missing: channel",
        );
    };
    if !graph::valid_channel(channel) {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_params",
            &format!(
                "invalid client parameters: channel '{channel}' does not match regex '^[0-9a-z\\-\\.]+$'"
            ),
        );
    }
    let arch = params.get("arch").map(String::as_str).unwrap_or("amd64");
    if !graph::valid_arch(arch) {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_params",
            &format!("invalid client parameters: arch '{arch}' does not match regex '^[0-9a-z]+$'"),
        );
    }
    match cache.get(app, channel, arch).await {
        Ok(bytes) => Response::builder()
            .status(StatusCode::OK)
            .header(CONTENT_TYPE, content_type)
            .body(Body::from(bytes))
            .expect("a valid response"),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "failed_upstream_fetch",
            &format!("failed to fetch upstream graph: {e}"),
        ),
    }
}
