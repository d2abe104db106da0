//! Operations: `/healthz` (the process answers), `/readyz` (the records can be read),
//! `/metrics` (Prometheus text format), the mutations, which require the bearer token, and the
//! build queue that triggers and webhooks feed.
//!
//! Mutations: `POST /api/v1/releasestream/{stream}/release/{tag}/accept` and `/reject`, with an
//! optional `reason` query parameter, as `okd-forge release accept|reject` does;
//! `…/{tag}/promote`, with an optional `name` (the stable release's name), as `okd-forge release
//! promote` does; and `POST /api/v1/trigger` (`stream`, `component`, both optional, in the query or
//! a JSON body), which builds as `okd-forge build --stream S --component C` does, in the
//! background. Without a configured token every mutation is refused (403); with one, a request
//! without `Authorization: Bearer <token>` or with another token is refused (401).
//!
//! Builds run one at a time ([`Builds`]): what is triggered while one runs is queued, and every
//! queued (stream, component) is built together, once, by the next run (triggers coalesce).
//! `GET /api/v1/trigger` shows what runs, what waits and how the last run ended.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use build::config::Config;
use build::run::{self, Forge, ImageResult, Request, Status};
use release::controller::{Controller, ControllerError};
use release::lifecycle::{Override, Phase};
use release::state::Records;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::AppState;

/// This module's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route(
            "/api/v1/releasestream/{stream}/release/{tag}/{decision}",
            post(decide),
        )
        .route("/api/v1/trigger", post(trigger).get(queue))
}

/// A one-line plain-text answer.
pub fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn ready(State(app): State<AppState>) -> Response {
    let streams: Vec<String> = app.forge.config.streams.keys().cloned().collect();
    let records = Records::new(&app.forge.state);
    for s in &streams {
        if let Err(e) = records.payloads(s) {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the records cannot be read: {e}\n"),
            );
        }
    }
    text(StatusCode::OK, "ok\n".into())
}

/// Payloads by stream and phase, stable releases by stream, and verification runs by state.
async fn metrics(State(app): State<AppState>) -> Response {
    let records = Records::new(&app.forge.state);
    let mut out = String::new();
    out.push_str(
        "# HELP okd_forge_payloads Release payloads recorded, by stream and phase.\n\
         # TYPE okd_forge_payloads gauge\n",
    );
    let mut stable = String::from(
        "# HELP okd_forge_stable_releases Stable releases promoted, by stream.\n\
         # TYPE okd_forge_stable_releases gauge\n",
    );
    let mut runs: std::collections::BTreeMap<String, usize> = Default::default();
    for stream in app.forge.config.streams.keys() {
        let payloads = match records.payloads(stream) {
            Ok(p) => p,
            Err(e) => {
                return text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("the records cannot be read: {e}\n"),
                )
            }
        };
        for phase in [
            Phase::Pending,
            Phase::Ready,
            Phase::Accepted,
            Phase::Rejected,
            Phase::Failed,
        ] {
            let n = payloads
                .iter()
                .filter(|p| p.stable_of.is_none() && p.phase == phase)
                .count();
            let _ = writeln!(
                out,
                "okd_forge_payloads{{stream=\"{}\",phase=\"{phase}\"}} {n}",
                label(stream)
            );
        }
        let n = payloads.iter().filter(|p| p.stable_of.is_some()).count();
        let _ = writeln!(
            stable,
            "okd_forge_stable_releases{{stream=\"{}\"}} {n}",
            label(stream)
        );
        for p in &payloads {
            for r in records.runs(&p.name).unwrap_or_default() {
                *runs.entry(r.state.as_str().to_string()).or_default() += 1;
            }
        }
    }
    out.push_str(&stable);
    out.push_str(
        "# HELP okd_forge_runs Verification runs and checks of the recorded payloads, by state.\n\
         # TYPE okd_forge_runs gauge\n",
    );
    for (state, n) in runs {
        let _ = writeln!(out, "okd_forge_runs{{state=\"{}\"}} {n}", label(&state));
    }
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

/// A Prometheus label value, escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Whether `given` is `secret`, in a time that does not depend on how much of it matches.
pub fn same_secret(given: &[u8], secret: &[u8]) -> bool {
    given.len() == secret.len()
        && given
            .iter()
            .zip(secret)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// The refusal of a mutation whose request lacks the configured bearer token; `None` lets it
/// through.
pub fn refusal(app: &AppState, headers: &HeaderMap) -> Option<Response> {
    let Some(token) = &app.token else {
        return Some(text(
            StatusCode::FORBIDDEN,
            "mutations are off: start `okd-forge serve` with --token-file\n".into(),
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if given.is_some_and(|g| same_secret(g.as_bytes(), token.as_bytes())) {
        None
    } else {
        let mut res = text(
            StatusCode::UNAUTHORIZED,
            "this needs `Authorization: Bearer <token>` with the server's token\n".into(),
        );
        res.headers_mut()
            .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("valid"));
        Some(res)
    }
}

#[derive(Deserialize)]
struct DecideQuery {
    /// Why (accept, reject).
    reason: Option<String>,
    /// The stable release's name (promote).
    name: Option<String>,
}

/// Accepts or rejects a payload by hand (an override, as `okd-forge release accept|reject`), or
/// promotes it (as `okd-forge release promote`).
async fn decide(
    State(app): State<AppState>,
    Path((stream, tag, decision)): Path<(String, String, String)>,
    Query(q): Query<DecideQuery>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = refusal(&app, &headers) {
        return refused;
    }
    let reason = q
        .reason
        .unwrap_or_else(|| "by hand, through the API".into());
    let over = match decision.as_str() {
        "accept" => Override::Accept(reason),
        "reject" => Override::Reject(reason),
        "promote" => return promote(&app, &stream, &tag, q.name.as_deref()).await,
        other => {
            return text(
                StatusCode::NOT_FOUND,
                format!("'{other}' is not accept, reject or promote\n"),
            )
        }
    };
    if let Some(missing) = not_in_stream(&app, &stream, &tag) {
        return missing;
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    match Records::new(&app.forge.state).decide_by_hand(&tag, &over, now) {
        Ok(phase) => Json(json!({ "name": tag, "phase": phase.to_string() })).into_response(),
        Err(e) => text(StatusCode::CONFLICT, format!("{e}\n")),
    }
}

/// The refusal of a request about `tag` unless it is a payload of `stream` (by either of its
/// names): a stable release is not one (404).
fn not_in_stream(app: &AppState, stream: &str, tag: &str) -> Option<Response> {
    let records = Records::new(&app.forge.state);
    match (crate::api::stream(app, stream), records.payload(tag)) {
        (Ok((key, _)), Ok(Some(p))) if p.stream == key && p.stable_of.is_none() => None,
        (_, Err(e)) => Some(text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the records cannot be read: {e}\n"),
        )),
        _ => Some(text(
            StatusCode::NOT_FOUND,
            format!("unable to find release tag {tag} in stream {stream}\n"),
        )),
    }
}

/// Promotes the Accepted payload `tag` to a stable release (named `name`, else the stream's
/// next), with [`Controller::promote`]: 200 with what it did (`promoted` false when it had been
/// promoted before), 409 when the payload cannot be promoted (not Accepted, the name is taken).
async fn promote(app: &AppState, stream: &str, tag: &str, name: Option<&str>) -> Response {
    if let Some(missing) = not_in_stream(app, stream, tag) {
        return missing;
    }
    let (forge, tag_owned, name) = (app.forge.clone(), tag.to_string(), name.map(String::from));
    // The promotion's future is not provably `Send` (higher-ranked lifetimes in the payload
    // assembly), so it runs on a blocking thread of this runtime, as the CLI runs it.
    let handle = tokio::runtime::Handle::current();
    let done = tokio::task::spawn_blocking(move || {
        let c = Controller::without_jobs(forge)?;
        handle.block_on(c.promote(&tag_owned, name.as_deref()))
    })
    .await
    .unwrap_or_else(|e| {
        Err(ControllerError::Store(format!(
            "the promotion task failed: {e}"
        )))
    });
    match done {
        Ok(p) => Json(p).into_response(),
        Err(ControllerError::Usage(why)) => text(StatusCode::CONFLICT, format!("{why}\n")),
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("promoting {tag} failed: {e}\n"),
        ),
    }
}

/// What `POST /api/v1/trigger` asks for: every component of every stream when absent.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TriggerRequest {
    stream: Option<String>,
    component: Option<String>,
}

/// Starts a build of the components asked for (query or JSON body) in the background.
async fn trigger(
    State(app): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = refusal(&app, &headers) {
        return refused;
    }
    let query = match Query::<TriggerRequest>::try_from_uri(&uri) {
        Ok(Query(q)) => q,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("{e}\n")),
    };
    let asked = if body.iter().all(u8::is_ascii_whitespace) {
        query
    } else {
        match serde_json::from_slice::<TriggerRequest>(&body) {
            Ok(b) => TriggerRequest {
                stream: b.stream.or(query.stream),
                component: b.component.or(query.component),
            },
            Err(e) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "the body is not {{\"stream\": …, \"component\": …}} (both optional): {e}\n"
                    ),
                )
            }
        }
    };
    match targets(
        &app.forge.config,
        asked.stream.as_deref(),
        asked.component.as_deref(),
    ) {
        Ok(t) => start(&app, t),
        Err(why) => text(StatusCode::NOT_FOUND, format!("{why}\n")),
    }
}

/// What the build queue is doing.
async fn queue(State(app): State<AppState>) -> Response {
    let q = app.builds.lock();
    Json(json!({
        "running": q.running,
        "queued": q.pending,
        "last": q.last,
    }))
    .into_response()
}

/// One component of one stream to build.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Target {
    /// The stream.
    pub stream: String,
    /// The component.
    pub component: String,
}

/// The components of `config` to build: `component` (all when `None`) in `stream` (all when
/// `None`), each where a stream builds it; an error naming the unknown stream or component, or
/// the stream that does not build the component.
pub fn targets(
    config: &Config,
    stream: Option<&str>,
    component: Option<&str>,
) -> Result<Vec<Target>, String> {
    if let Some(s) = stream {
        config.stream_named(s)?;
    }
    if let Some(c) = component {
        config.component_named(c)?;
    }
    let found: BTreeSet<Target> = config
        .streams
        .iter()
        .filter(|(name, _)| stream.is_none_or(|s| s == name.as_str()))
        .flat_map(|(name, s)| {
            s.images
                .iter()
                .filter(|i| component.is_none_or(|c| c == i.component))
                .map(|i| Target {
                    stream: name.clone(),
                    component: i.component.clone(),
                })
        })
        .collect();
    if let (Some(c), true) = (component, found.is_empty()) {
        return Err(match stream {
            Some(s) => format!("stream '{s}' does not build component '{c}'"),
            None => format!("no stream builds component '{c}'"),
        });
    }
    Ok(found.into_iter().collect())
}

/// Queues `targets` on the app's [`Builds`]: 202 with them and whether they wait for a running
/// build, or 200 with an empty list when there is nothing to build.
pub fn start(app: &AppState, targets: Vec<Target>) -> Response {
    if targets.is_empty() {
        return (
            StatusCode::OK,
            Json(json!({ "builds": [], "queued": false })),
        )
            .into_response();
    }
    let queued = Builds::start(app, targets.clone());
    (
        StatusCode::ACCEPTED,
        Json(json!({ "builds": targets, "queued": queued })),
    )
        .into_response()
}

/// The builds that triggers and webhooks start: one run at a time, in a background task. What is
/// asked for while a run is going waits; the next run builds all that waited, each (stream,
/// component) once.
#[derive(Default)]
pub struct Builds {
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    /// A worker task is running.
    busy: bool,
    /// What the current run builds.
    running: Vec<Target>,
    /// What the next run builds.
    pending: BTreeSet<Target>,
    /// How the last run ended.
    last: Option<Finished>,
}

/// How a run of the queue ended.
#[derive(Debug, Clone, Serialize)]
struct Finished {
    /// What it built.
    targets: Vec<Target>,
    /// When it ended (RFC 3339, UTC).
    finished: String,
    /// The images reconciled.
    images: usize,
    /// What failed, one line each.
    failed: Vec<String>,
}

impl Builds {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `targets` on `app.builds`, starting its worker unless one runs; whether they wait for
    /// a run in progress.
    pub fn start(app: &AppState, targets: Vec<Target>) -> bool {
        let mut q = app.builds.lock();
        q.pending.extend(targets);
        if q.busy {
            return true;
        }
        q.busy = true;
        drop(q);
        tokio::spawn(work(app.clone()));
        false
    }
}

/// Runs the queue until it is empty.
async fn work(app: AppState) {
    loop {
        let targets: Vec<Target> = {
            let mut q = app.builds.lock();
            if q.pending.is_empty() {
                q.busy = false;
                q.running.clear();
                return;
            }
            let t: Vec<Target> = std::mem::take(&mut q.pending).into_iter().collect();
            q.running = t.clone();
            t
        };
        tracing::info!(?targets, "building");
        let run = tokio::spawn(build(app.forge.clone(), targets.clone()));
        let (images, failed) = run
            .await
            .unwrap_or_else(|e| (0, vec![format!("the build task failed: {e}")]));
        let finished = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        tracing::info!(images, failed = failed.len(), "built");
        app.builds.lock().last = Some(Finished {
            targets,
            finished,
            images,
            failed,
        });
    }
}

/// Builds `targets` as `okd-forge build` does, one reconcile per set of streams that build the
/// same components: (images reconciled, what failed).
async fn build(forge: Arc<Forge>, targets: Vec<Target>) -> (usize, Vec<String>) {
    let mut by_stream: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for t in targets {
        by_stream.entry(t.stream).or_default().push(t.component);
    }
    let mut by_components: BTreeMap<Vec<String>, Vec<String>> = BTreeMap::new();
    for (stream, components) in by_stream {
        by_components.entry(components).or_default().push(stream);
    }
    let (mut images, mut failed) = (0, Vec::new());
    for (components, streams) in by_components {
        let req = Request {
            streams,
            components,
            jobs: forge.config.parallelism.get(),
            ..Request::default()
        };
        match run::reconcile(forge.clone(), &req, Arc::new(Log)).await {
            Ok(results) => {
                images += results.len();
                failed.extend(results.iter().filter_map(failure));
            }
            Err(e) => failed.push(e),
        }
    }
    (images, failed)
}

fn failure(r: &ImageResult) -> Option<String> {
    match &r.status {
        Status::Failed(why) => Some(format!("{}: failed: {why}", r.key)),
        Status::Skipped(why) => Some(format!("{}: skipped: {why}", r.key)),
        _ => None,
    }
}

/// Build events to the log.
struct Log;

impl run::Events for Log {
    fn finished(&self, r: &ImageResult) {
        tracing::info!(image = %r.key, status = ?r.status, digest = ?r.digest, "image done");
    }
}
