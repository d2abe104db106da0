//! A release signature store, served as the cluster-version-operator reads one (the payload-format
//! spec, §6): with `store-<name>: http://HOST:PORT/signatures` in the verification ConfigMap,
//! clusters fetch `GET /signatures/sha256=<hex>/signature-<N>` for N = 1, 2, … until a 404.
//!
//! | request | answer |
//! |---|---|
//! | `GET\|HEAD /signatures/sha256=<hex>/signature-<N>` | the stored signature (binary OpenPGP), `application/octet-stream` |
//! | a digest or file name of another shape, N outside 1–9, a missing file | `404` |
//! | any path, when the server was started without `--signatures DIR` | `404` saying so |
//!
//! The files are those `okd-forge release sign --to DIR` writes
//! ([`payload::signature::SignatureDir`]).

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use oci::Digest;
use payload::signature::MAX_SIGNATURES;

use crate::AppState;

/// This module's routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/signatures/{dir}/{file}", get(signature))
}

pub(crate) fn not_found(why: String) -> Response {
    (StatusCode::NOT_FOUND, format!("{why}\n")).into_response()
}

/// `GET /signatures/<algorithm>=<hex>/signature-<N>`.
async fn signature(
    State(app): State<AppState>,
    Path((dir, file)): Path<(String, String)>,
) -> Response {
    let Some(store) = &app.signatures else {
        return not_found(
            "this server serves no signatures (start it with --signatures DIR)".into(),
        );
    };
    let Some((digest, n)) = parse(&dir, &file) else {
        return not_found(format!(
            "no signature {dir}/{file}: expected sha256=<hex>/signature-<1..{MAX_SIGNATURES}>"
        ));
    };
    let path = store.path(&digest, n);
    file_response(
        &path,
        "application/octet-stream",
        &format!("signature {n} of {digest}"),
    )
    .await
}

/// The file at `path` as a `200` of `content_type`; a `404` when it is missing, a `500` when it
/// cannot be read. `what` names it in both.
pub(crate) async fn file_response(
    path: &std::path::Path,
    content_type: &'static str,
    what: &str,
) -> Response {
    match tokio::fs::read(path).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, content_type)], bytes).into_response(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => not_found(format!("no {what}")),
        Err(e) => {
            tracing::warn!(path = %path.display(), "cannot read {what}: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot read {what}\n"),
            )
                .into_response()
        }
    }
}

/// The digest and N of `sha256=<hex>` and `signature-<N>`; None for any other shape (so that no
/// request names a file outside the store).
fn parse(dir: &str, file: &str) -> Option<(Digest, u32)> {
    let (algorithm, hex) = dir.split_once('=')?;
    let digest: Digest = format!("{algorithm}:{hex}").parse().ok()?;
    let n = file.strip_prefix("signature-")?;
    if n.starts_with('0') || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u32 = n.parse().ok()?;
    (1..=MAX_SIGNATURES).contains(&n).then_some((digest, n))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn only_well_formed_names_are_served() {
        let hex = "a".repeat(64);
        let dir = format!("sha256={hex}");
        assert_eq!(parse(&dir, "signature-1").unwrap().1, 1);
        assert_eq!(parse(&dir, "signature-9").unwrap().1, 9);
        for file in [
            "signature-0",
            "signature-10",
            "signature-01",
            "signature-",
            "sig-1",
        ] {
            assert!(parse(&dir, file).is_none(), "{file}");
        }
        for dir in [
            "sha256=..".to_string(),
            format!("sha256={}", "A".repeat(64)),
            format!("sha256:{hex}"),
            format!("md5={hex}"),
        ] {
            assert!(parse(&dir, "signature-1").is_none(), "{dir}");
        }
    }
}
