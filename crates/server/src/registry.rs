//! A read-only OCI distribution API (distribution-spec v1.1 "pull") over the store, at `/v2/`, so
//! that `skopeo`, `podman pull` and `oc` can read payloads straight from an okd-forge instance.
//!
//! **The repository served** is the path part of `store_name` (`okd` for the default
//! `okd-forge.local/okd`): with the server on `HOST:PORT`, `HOST:PORT/okd:<tag>` and
//! `HOST:PORT/okd@sha256:…` resolve to what `store_name:<tag>` and `store_name@sha256:…` name.
//! Every other name answers `404 NAME_UNKNOWN`.
//!
//! | request | answer |
//! |---|---|
//! | `GET /v2/` | `200 {}`, `Docker-Distribution-API-Version: registry/2.0` |
//! | `GET\|HEAD /v2/<name>/manifests/<tag\|digest>` | the stored bytes, with the stored media type as `Content-Type`, `Docker-Content-Digest`, `Content-Length` |
//! | `GET\|HEAD /v2/<name>/blobs/<digest>` | the blob, streamed from its file; one `Range: bytes=…` range gives `206` |
//! | `GET /v2/<name>/tags/list[?n=&last=]` | `{"name","tags"}`, sorted, with a `Link: …; rel="next"` while more remain |
//! | `POST\|PUT\|PATCH\|DELETE /v2/…` | `405 UNSUPPORTED` (the view is read-only) |
//!
//! Manifests are served exactly as stored, never converted: when a request's `Accept` names
//! manifest media types and the stored one is not among them (nor a wildcard), the answer is
//! `404 MANIFEST_UNKNOWN` saying what is stored, as Distribution does for an index a client does
//! not accept. Errors carry distribution-spec bodies, `{"errors":[{"code","message","detail"}]}`.
//!
//! **A registry-backed store** (`store: docker://…`) is already a registry: `/v2/` still answers
//! 200, and every repository answers `404 NAME_UNKNOWN` whose message names the registry
//! repository to pull from instead.

use std::io::SeekFrom;

use axum::body::Body;
use axum::extract::{OriginalUri, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use oci::layout::MAX_MANIFEST;
use oci::manifest::media_type;
use oci::{Digest, Layout, RawManifest, Selector, Store};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::AppState;

/// The `Docker-Distribution-API-Version` header every answer carries.
pub const API_VERSION: &str = "registry/2.0";

/// This module's routes: `/v2/` and everything under it.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2", any(base))
        .route("/v2/", any(base))
        .route("/v2/{*rest}", any(dispatch))
}

/// The repository name served: the path part of `store_name` (`okd-forge.local/okd` → `okd`).
pub fn repository_name(store_name: &str) -> &str {
    store_name
        .split_once('/')
        .map(|(_, path)| path)
        .unwrap_or(store_name)
}

/// A distribution-spec error answer.
#[derive(Debug)]
pub struct RegistryError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl RegistryError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> RegistryError {
        RegistryError {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let body =
            json!({"errors": [{"code": self.code, "message": self.message, "detail": null}]});
        let mut res = (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
        res.headers_mut().insert(
            "Docker-Distribution-API-Version",
            HeaderValue::from_static(API_VERSION),
        );
        res
    }
}

type Answer = Result<Response, RegistryError>;

async fn base(method: Method) -> Answer {
    if method != Method::GET && method != Method::HEAD {
        return Err(unsupported(&method));
    }
    let mut res = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        "{}",
    )
        .into_response();
    res.headers_mut().insert(
        "Docker-Distribution-API-Version",
        HeaderValue::from_static(API_VERSION),
    );
    Ok(res)
}

fn unsupported(method: &Method) -> RegistryError {
    RegistryError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "UNSUPPORTED",
        format!(
            "{method} is not supported: this registry view of the okd-forge store is read-only"
        ),
    )
}

/// What a path under `/v2/` asks for.
enum Route<'a> {
    Manifest(&'a str, &'a str),
    Blob(&'a str, &'a str),
    Tags(&'a str),
}

fn route(rest: &str) -> Option<Route<'_>> {
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Some(Route::Tags(name));
    }
    let (head, reference) = rest.rsplit_once('/')?;
    let (name, kind) = head.rsplit_once('/')?;
    match kind {
        "manifests" => Some(Route::Manifest(name, reference)),
        "blobs" => Some(Route::Blob(name, reference)),
        _ => None,
    }
}

/// Whether `name` is a repository name of the distribution spec:
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`.
fn valid_name(name: &str) -> bool {
    name.len() <= 255
        && name.split('/').all(|c| {
            let b = c.as_bytes();
            let alnum = |x: &u8| x.is_ascii_lowercase() || x.is_ascii_digit();
            !b.is_empty()
                && alnum(&b[0])
                && alnum(&b[b.len() - 1])
                && b.iter()
                    .all(|x| alnum(x) || matches!(x, b'.' | b'_' | b'-'))
                && !c.contains("..")
                && !c.contains("___")
                && !c.contains("._")
                && !c.contains("_.")
                && !c.contains(".-")
                && !c.contains("-.")
                && !c.contains("_-")
                && !c.contains("-_")
        })
}

/// Whether `tag` is a tag of the distribution spec: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'))
}

fn parse_digest(s: &str) -> Result<Digest, RegistryError> {
    s.parse().map_err(|e: oci::Error| {
        RegistryError::new(StatusCode::BAD_REQUEST, "DIGEST_INVALID", e.to_string())
    })
}

/// The layout behind the served repository `name`, or the error for a name not served.
fn layout<'a>(app: &'a AppState, name: &str) -> Result<&'a Layout, RegistryError> {
    if !valid_name(name) {
        return Err(RegistryError::new(
            StatusCode::BAD_REQUEST,
            "NAME_INVALID",
            format!("'{name}' is not a valid repository name"),
        ));
    }
    let store_name = &app.forge.config.store_name;
    match &app.forge.store {
        Store::Registry(_) => Err(RegistryError::new(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            format!(
                "this okd-forge instance stores its images in the registry repository {store_name}; pull from it directly"
            ),
        )),
        Store::Layout(l) => {
            let served = repository_name(store_name);
            if name == served {
                Ok(l)
            } else {
                Err(RegistryError::new(
                    StatusCode::NOT_FOUND,
                    "NAME_UNKNOWN",
                    format!("repository '{name}' is not known; this registry serves '{served}'"),
                ))
            }
        }
    }
}

async fn dispatch(
    State(app): State<AppState>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Answer {
    if method != Method::GET && method != Method::HEAD {
        return Err(unsupported(&method));
    }
    let head = method == Method::HEAD;
    // The raw path, not percent-decoded: names, tags and digests never hold `%`, so an encoded
    // `/` or `..` is refused as invalid instead of being decoded into a path.
    let rest = uri.path().strip_prefix("/v2/").unwrap_or_default();
    if rest.split('/').any(|seg| seg == ".." || seg == ".") {
        return Err(RegistryError::new(
            StatusCode::BAD_REQUEST,
            "NAME_INVALID",
            format!("/v2/{rest}: the path segments . and .. are not allowed"),
        ));
    }
    match route(rest) {
        Some(Route::Manifest(name, reference)) => {
            let l = layout(&app, name)?.clone();
            manifest(l, name, reference, &headers, head).await
        }
        Some(Route::Blob(name, digest)) => {
            let l = layout(&app, name)?.clone();
            blob(l, digest, &headers, head).await
        }
        Some(Route::Tags(name)) => {
            let l = layout(&app, name)?.clone();
            tags(l, name, query.as_deref()).await
        }
        None => Err(RegistryError::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("/v2/{rest} is not a path of the distribution API"),
        )),
    }
}

fn manifest_unknown(message: String) -> RegistryError {
    RegistryError::new(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN", message)
}

fn internal(e: impl std::fmt::Display) -> RegistryError {
    RegistryError::new(StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", e.to_string())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RegistryError> + Send + 'static,
) -> Result<T, RegistryError> {
    tokio::task::spawn_blocking(f).await.map_err(internal)?
}

/// Read the manifest a tag or digest names from the layout.
fn read_manifest(l: &Layout, name: &str, reference: &str) -> Result<RawManifest, RegistryError> {
    if reference.contains(':') {
        let digest = parse_digest(reference)?;
        // Only manifests: a layer or config blob is not a manifest, whatever it parses as.
        let small = std::fs::metadata(l.blob_path(&digest))
            .is_ok_and(|m| m.is_file() && m.len() <= MAX_MANIFEST);
        let raw = small
            .then(|| l.get_manifest(Some(&Selector::Digest(digest.clone()))).ok())
            .flatten()
            .filter(|raw| raw.parse().is_ok());
        raw.ok_or_else(|| manifest_unknown(format!("no manifest {digest} in repository '{name}'")))
    } else {
        if !valid_tag(reference) {
            return Err(manifest_unknown(format!(
                "'{reference}' is not a valid tag"
            )));
        }
        l.get_manifest(Some(&Selector::Tag(reference.to_string())))
            .map_err(|e| match e {
                oci::Error::NotFound { .. } => {
                    manifest_unknown(format!("no tag '{reference}' in repository '{name}'"))
                }
                e => internal(e),
            })
    }
}

/// Whether `accept` lets the client take a manifest of media type `stored`: yes unless it names
/// manifest media types, none of them `stored`, and no wildcard.
fn accepts(headers: &HeaderMap, stored: &str) -> bool {
    let types: Vec<&str> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.split(';').next().unwrap_or(t).trim())
        .filter(|t| !t.is_empty())
        .collect();
    if types.iter().any(|t| *t == stored || t.ends_with("/*")) {
        return true;
    }
    !types.iter().any(|t| media_type::is_manifest(t))
}

async fn manifest(
    l: Layout,
    name: &str,
    reference: &str,
    headers: &HeaderMap,
    head: bool,
) -> Answer {
    let (n, r) = (name.to_string(), reference.to_string());
    let raw = blocking(move || read_manifest(&l, &n, &r)).await?;
    if !accepts(headers, &raw.media_type) {
        return Err(manifest_unknown(format!(
            "{reference} is stored as {}, which the Accept header does not list; it is served as stored, never converted",
            raw.media_type
        )));
    }
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, &raw.media_type)
        .header(header::CONTENT_LENGTH, raw.bytes.len())
        .header("Docker-Content-Digest", raw.digest.to_string())
        .header(header::ETAG, format!("\"{}\"", raw.digest))
        .header("Docker-Distribution-API-Version", API_VERSION)
        .body(if head {
            Body::empty()
        } else {
            Body::from(raw.bytes)
        })
        .map_err(internal)
}

/// One `bytes=` range of a blob of `size` bytes: `(first, last)`, inclusive. `Err(())` when it
/// cannot be satisfied.
fn parse_range(spec: &str, size: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = spec.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None; // several ranges: serve the whole blob
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let range = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 || size == 0 {
            return Some(Err(()));
        }
        (size.saturating_sub(n), size - 1)
    } else {
        let first: u64 = a.parse().ok()?;
        let last: u64 = if b.is_empty() {
            size.saturating_sub(1)
        } else {
            b.parse::<u64>().ok()?.min(size.saturating_sub(1))
        };
        if first >= size || last < first {
            return Some(Err(()));
        }
        (first, last)
    };
    Some(Ok(range))
}

async fn blob(l: Layout, digest: &str, headers: &HeaderMap, head: bool) -> Answer {
    let digest = parse_digest(digest)?;
    let path = l.blob_path(&digest);
    let unknown = || {
        RegistryError::new(
            StatusCode::NOT_FOUND,
            "BLOB_UNKNOWN",
            format!("no blob {digest} in this repository"),
        )
    };
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(unknown()),
        Err(e) => return Err(internal(format!("{}: {e}", path.display()))),
    };
    let meta = file
        .metadata()
        .await
        .map_err(|e| internal(format!("{}: {e}", path.display())))?;
    if !meta.is_file() {
        return Err(unknown());
    }
    let size = meta.len();
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_range(v, size));
    let res = Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header("Docker-Content-Digest", digest.to_string())
        .header(header::ETAG, format!("\"{digest}\""))
        .header(header::ACCEPT_RANGES, "bytes")
        .header("Docker-Distribution-API-Version", API_VERSION);
    let (res, body) = match range {
        Some(Err(())) => {
            return Response::builder()
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{size}"))
                .header("Docker-Distribution-API-Version", API_VERSION)
                .body(Body::empty())
                .map_err(internal);
        }
        Some(Ok((first, last))) => {
            let len = last - first + 1;
            let res = res
                .status(StatusCode::PARTIAL_CONTENT)
                .header(
                    header::CONTENT_RANGE,
                    format!("bytes {first}-{last}/{size}"),
                )
                .header(header::CONTENT_LENGTH, len);
            let body = if head {
                Body::empty()
            } else {
                file.seek(SeekFrom::Start(first))
                    .await
                    .map_err(|e| internal(format!("{}: {e}", path.display())))?;
                let stream = tokio_util::io::ReaderStream::with_capacity(file.take(len), 256 << 10);
                Body::from_stream(stream)
            };
            (res, body)
        }
        None => {
            let res = res
                .status(StatusCode::OK)
                .header(header::CONTENT_LENGTH, size);
            let body = if head {
                Body::empty()
            } else {
                drop(file);
                // Verified while it streams: a blob corrupted on disk ends the body with an error
                // instead of handing out wrong bytes silently.
                let stream = l.read_blob(&digest, Some(size)).await.map_err(internal)?;
                Body::from_stream(stream)
            };
            (res, body)
        }
    };
    res.body(body).map_err(internal)
}

async fn tags(l: Layout, name: &str, query: Option<&str>) -> Answer {
    let mut n: Option<usize> = None;
    let mut last: Option<String> = None;
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*k {
            "n" => {
                n = Some(v.parse().map_err(|_| {
                    RegistryError::new(
                        StatusCode::BAD_REQUEST,
                        "PAGINATION_NUMBER_INVALID",
                        format!("n={v} is not a number of tags"),
                    )
                })?)
            }
            "last" => last = Some(v.into_owned()),
            _ => {}
        }
    }
    let all = blocking(move || l.tags().map_err(internal)).await?;
    let after: Vec<String> = all
        .into_iter()
        .filter(|t| last.as_ref().is_none_or(|last| t > last))
        .collect();
    let (page, more) = match n {
        Some(n) if n < after.len() => (after[..n].to_vec(), n > 0),
        _ => (after, false),
    };
    let body = json!({"name": name, "tags": page}).to_string();
    let mut res = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header("Docker-Distribution-API-Version", API_VERSION);
    if more {
        let next = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("n", &n.unwrap_or(0).to_string())
            .append_pair("last", page.last().map(String::as_str).unwrap_or(""))
            .finish();
        res = res.header(
            header::LINK,
            format!("</v2/{name}/tags/list?{next}>; rel=\"next\""),
        );
    }
    res.body(Body::from(body)).map_err(internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_tags_ranges() {
        assert_eq!(repository_name("okd-forge.local/okd"), "okd");
        assert_eq!(repository_name("localhost:8080/okd/content"), "okd/content");
        assert!(valid_name("okd/content-x.y__z"));
        for bad in [
            "", "../x", "okd/../x", "OKD", "okd/", "/okd", "a..b", "-a", "a_-b",
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert!(valid_tag("4.17.0-okd-scos.1") && valid_tag("_x"));
        assert!(!valid_tag("") && !valid_tag(".x") && !valid_tag("a/b"));
        assert_eq!(parse_range("bytes=0-9", 100), Some(Ok((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=95-200", 100), Some(Ok((95, 99))));
        assert_eq!(parse_range("bytes=100-", 100), Some(Err(())));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }
}
