//! Operations: `/healthz` (the process answers), `/readyz` (the records can be read),
//! `/metrics` (Prometheus text format), and the mutations, which require the bearer token.
//!
//! Mutations: `POST /api/v1/releasestream/{stream}/release/{tag}/accept` and `/reject`, with an
//! optional `reason` query parameter, as `okd-forge release accept|reject` does. Without a
//! configured token every mutation is refused (403); with one, a request without
//! `Authorization: Bearer <token>` or with another token is refused (401).

use std::fmt::Write as _;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use release::lifecycle::{Override, Phase};
use release::state::Records;
use serde::Deserialize;
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
}

fn text(status: StatusCode, body: String) -> Response {
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
    // The comparison takes as long whatever the prefix that matches.
    let same = given.is_some_and(|g| {
        g.len() == token.len()
            && g.bytes()
                .zip(token.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    });
    if same {
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
    reason: Option<String>,
}

/// Accepts or rejects a payload by hand (an override, as `okd-forge release accept|reject`).
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
        other => {
            return text(
                StatusCode::NOT_FOUND,
                format!("'{other}' is not accept or reject\n"),
            )
        }
    };
    let records = Records::new(&app.forge.state);
    let in_stream = match (crate::api::stream(&app, &stream), records.payload(&tag)) {
        (Ok((key, _)), Ok(Some(p))) => p.stream == key && p.stable_of.is_none(),
        _ => false,
    };
    if !in_stream {
        return text(
            StatusCode::NOT_FOUND,
            format!("unable to find release tag {tag} in stream {stream}\n"),
        );
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    match records.decide_by_hand(&tag, &over, now) {
        Ok(phase) => Json(json!({ "name": tag, "phase": phase.to_string() })).into_response(),
        Err(e) => text(StatusCode::CONFLICT, format!("{e}\n")),
    }
}
