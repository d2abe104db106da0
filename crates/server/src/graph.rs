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
//! The graph of each (channel, arch) is serialised once per change of the records, and served as
//! cached bytes: the JSON, and a gzip copy of it for clients that send `Accept-Encoding: gzip`
//! (the cluster-version-operator's Go client does). Every request asks SQLite whether anything
//! was committed since the cached graphs were read (`PRAGMA data_version` on a read-only
//! connection of the cache's own: a few microseconds, no table read), so a change in the records
//! shows in the very next request; while one request rebuilds, the others wait for it.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, LazyLock, Mutex, OnceLock, RwLock};

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::header::{
    ACCEPT, ACCEPT_ENCODING, ACCESS_CONTROL_ALLOW_ORIGIN, CONTENT_ENCODING, CONTENT_TYPE, ORIGIN,
    VARY,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use build::state::rusqlite::{Connection, OpenFlags};
use graph::Catalog;
use release::state::Records;

use crate::AppState;

/// The paths the graph is served at.
pub const PATHS: [&str; 3] = [
    "/graph",
    "/api/upgrades_info/graph",
    "/api/upgrades_info/v1/graph",
];

/// Cincinnati's own media type.
pub const CINCINNATI_JSON: &str = "application/vnd.redhat.cincinnati.v1+json";

const EMPTY: &[u8] = br#"{"version":1,"nodes":[],"edges":[],"conditionalEdges":[]}"#;

static EMPTY_GRAPH: LazyLock<Encoded> = LazyLock::new(|| Encoded::new(EMPTY.to_vec()));

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

/// One graph's JSON, and the same gzip-compressed.
#[derive(Clone)]
pub struct Encoded {
    /// The Cincinnati JSON.
    pub json: Bytes,
    /// The JSON, gzip-compressed.
    pub gzip: Bytes,
}

impl Encoded {
    /// `json` and its gzip copy.
    pub fn new(json: Vec<u8>) -> Encoded {
        let mut gz = flate2::write::GzEncoder::new(
            Vec::with_capacity(json.len() / 8),
            flate2::Compression::default(),
        );
        gz.write_all(&json).expect("writing to memory");
        let gzip = gz.finish().expect("writing to memory");
        Encoded {
            json: Bytes::from(json),
            gzip: Bytes::from(gzip),
        }
    }
}

/// Whether the records changed, asked of SQLite: `PRAGMA data_version` of a read-only connection
/// changes whenever another connection commits (the server's own, or another process's).
struct Watch(Mutex<Connection>);

impl Watch {
    fn open(path: &std::path::Path) -> Option<Watch> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        match Connection::open_with_flags(path, flags) {
            Ok(c) => Some(Watch(Mutex::new(c))),
            Err(e) => {
                tracing::warn!(
                    "update graph: cannot watch {}: {e}; checking the event log instead",
                    path.display()
                );
                None
            }
        }
    }

    fn version(&self) -> Result<i64, String> {
        let c = self.0.lock().unwrap_or_else(|e| e.into_inner());
        c.prepare_cached("PRAGMA data_version")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(|e| e.to_string())
    }
}

/// The serialised graphs, per `arch/channel`, as of the records' version `token`.
#[derive(Default)]
struct Cache {
    watch: OnceLock<Option<Watch>>,
    current: RwLock<Option<Arc<Graphs>>>,
    refreshing: tokio::sync::Mutex<()>,
}

struct Graphs {
    token: i64,
    graphs: HashMap<String, Encoded>,
}

impl Graphs {
    fn get(&self, channel: &str, arch: &str) -> Encoded {
        self.graphs
            .get(&key(channel, arch))
            .unwrap_or(&EMPTY_GRAPH)
            .clone()
    }
}

fn key(channel: &str, arch: &str) -> String {
    format!("{arch}/{channel}")
}

impl Cache {
    /// The records' version now: the watch's, or (for a database that cannot be watched, e.g.
    /// in memory) the newest event's id.
    fn token(&self, app: &AppState) -> Result<i64, String> {
        let watch = self
            .watch
            .get_or_init(|| Watch::open(app.forge.state.path()));
        match watch {
            Some(w) => w.version(),
            None => Records::new(&app.forge.state)
                .last_event()
                .map_err(|e| e.to_string()),
        }
    }

    fn current(&self, token: i64) -> Option<Arc<Graphs>> {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        current.as_ref().filter(|g| g.token == token).cloned()
    }

    /// The graph of (channel, arch) as of the records now.
    async fn get(&self, app: &AppState, channel: &str, arch: &str) -> Result<Encoded, String> {
        if let Some(g) = self.current(self.token(app)?) {
            return Ok(g.get(channel, arch));
        }
        let _guard = self.refreshing.lock().await;
        // Asked again: whoever held the lock may have rebuilt past this request's start.
        let token = self.token(app)?;
        if let Some(g) = self.current(token) {
            return Ok(g.get(channel, arch));
        }
        let forge = app.forge.clone();
        let graphs = match tokio::task::spawn_blocking(move || rebuild(&forge, token))
            .await
            .map_err(|e| format!("graph rebuild panicked: {e}"))
            .and_then(|r| r)
        {
            Ok(graphs) => Arc::new(graphs),
            Err(e) => {
                let last = self.current.read().unwrap_or_else(|e| e.into_inner());
                let Some(last) = last.as_ref() else {
                    return Err(e);
                };
                tracing::warn!("update graph: reading the records: {e}; serving the last graph");
                return Ok(last.get(channel, arch));
            }
        };
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(graphs.clone());
        Ok(graphs.get(channel, arch))
    }
}

/// Every (channel, arch) graph of the records, read after their version was `token`.
fn rebuild(forge: &build::run::Forge, token: i64) -> Result<Graphs, String> {
    let records = Records::new(&forge.state);
    let catalog = Catalog::from_records(&records, forge.config.streams.keys().map(String::as_str))
        .map_err(|e| e.to_string())?;
    for why in catalog.skipped() {
        tracing::warn!("update graph: left out: {why}");
    }
    let mut graphs = HashMap::new();
    for arch in catalog.arches() {
        for channel in catalog.channels() {
            let graph = catalog.graph(channel, arch);
            if !graph.nodes.is_empty() {
                graphs.insert(key(channel, arch), Encoded::new(graph.to_bytes()));
            }
        }
    }
    Ok(Graphs { token, graphs })
}

/// Whether `Accept-Encoding` takes gzip (`gzip`, `x-gzip` or `*`, with a non-zero `q`).
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or("").to_ascii_lowercase();
            let q = parts
                .find_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            matches!(name.as_str(), "gzip" | "x-gzip" | "*") && q > 0.0
        })
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
        Ok(graph) => {
            let response = Response::builder()
                .status(StatusCode::OK)
                .header(CONTENT_TYPE, content_type)
                .header(VARY, "Accept-Encoding");
            let (response, body) = if accepts_gzip(headers) {
                (response.header(CONTENT_ENCODING, "gzip"), graph.gzip)
            } else {
                (response, graph.json)
            };
            response.body(Body::from(body)).expect("a valid response")
        }
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "failed_upstream_fetch",
            &format!("failed to fetch upstream graph: {e}"),
        ),
    }
}
