//! Webhooks: a push to a branch that a stream builds a component from triggers a build of that
//! component in that stream, through the build queue of [`crate::ops`] (one run at a time,
//! triggers coalesce).
//!
//! - `POST /webhooks/github`: GitHub's `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the
//!   body>` with the secret of `--github-secret-file`; events (`X-GitHub-Event`) `ping` (200) and
//!   `push`.
//! - `POST /webhooks/gitlab`: with the secret token of `--gitlab-secret-file`, GitLab's
//!   `X-Gitlab-Token` (the token itself); with a signing token (`whsec_<base64 key>`), the
//!   Standard Webhooks signature GitLab sends with it, `webhook-signature: v1,<base64
//!   HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}">`, the timestamp within
//!   [`TOLERANCE`] of now. Event (`X-Gitlab-Event`) `Push Hook`.
//!
//! A push names its repository by several URLs (GitHub: `clone_url`, `ssh_url`, `html_url`;
//! GitLab: `git_http_url`, `git_ssh_url`, `web_url`); a component matches when one of them is its
//! `git:` URL after [`normalise`], and the pushed ref is `refs/heads/<branch>` where `<branch>` is
//! what the component builds in the stream. Every secret comparison takes constant time. No
//! secret configured: 403; a missing or wrong signature: 401. Answers: 202 with the (stream,
//! component) pairs queued, or 200 with an empty list when the push matches none.

use std::collections::BTreeSet;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine as _;
use build::config::{Config, Revision};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::json;
use sha2::Sha256;

use crate::ops::{same_secret, start, text, Target};
use crate::AppState;

/// How far a GitLab `webhook-timestamp` may be from now, in seconds (as Standard Webhooks
/// libraries allow): an older signed request is a replay.
pub const TOLERANCE: i64 = 300;

/// GitHub caps a delivery at 25 MB.
const MAX_BODY: usize = 25 << 20;

/// This module's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/webhooks/github", post(github))
        .route("/webhooks/gitlab", post(gitlab))
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

type HmacSha256 = Hmac<Sha256>;

/// The hex HMAC-SHA256 of `body` with `secret`, as GitHub puts it in `X-Hub-Signature-256`
/// after `sha256=`.
pub fn github_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The Standard Webhooks signature (`v1,<base64>`) of `body` with the signing token
/// `whsec_<base64 key>`, as GitLab puts it in `webhook-signature`; `None` when the token is not
/// of that form.
pub fn gitlab_signature(
    signing_token: &str,
    id: &str,
    timestamp: &str,
    body: &[u8],
) -> Option<String> {
    let mac = standard_mac(signing_token, id, timestamp, body)?;
    Some(format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    ))
}

fn standard_mac(signing_token: &str, id: &str, timestamp: &str, body: &[u8]) -> Option<HmacSha256> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(signing_token.strip_prefix("whsec_")?)
        .ok()?;
    let mut mac = HmacSha256::new_from_slice(&key).expect("HMAC takes any key");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    Some(mac)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn refused(why: &str) -> Response {
    text(StatusCode::UNAUTHORIZED, format!("{why}\n"))
}

fn unconfigured(flag: &str) -> Response {
    text(
        StatusCode::FORBIDDEN,
        format!("webhook secret not configured: start serve with {flag}\n"),
    )
}

/// Whether the body is JSON: a webhook sent as a form (`payload=…`) is refused with what to change.
fn not_json(headers: &HeaderMap) -> Option<Response> {
    let form = header(headers, header::CONTENT_TYPE.as_str())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    form.then(|| {
        text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "set the webhook's content type to application/json\n".into(),
        )
    })
}

/// `X-Hub-Signature-256` checked against `secret`: why not, when it does not hold.
fn check_github(secret: &str, headers: &HeaderMap, body: &[u8]) -> Result<(), &'static str> {
    let given = header(headers, "x-hub-signature-256").ok_or(
        "no X-Hub-Signature-256 header: give the webhook the secret of --github-secret-file",
    )?;
    let sig = given
        .strip_prefix("sha256=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or("X-Hub-Signature-256 is not sha256=<hex>")?;
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    mac.verify_slice(&sig).map_err(|_| {
        "X-Hub-Signature-256 does not match the body signed with the configured secret"
    })
}

/// GitLab's token or signature checked against `secret` (a signing token when it starts with
/// `whsec_`) at `now` (Unix seconds): why not, when it does not hold.
fn check_gitlab(
    secret: &str,
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<(), &'static str> {
    if !secret.starts_with("whsec_") {
        let given = header(headers, "x-gitlab-token").ok_or(
            "no X-Gitlab-Token header: give the webhook the secret token of --gitlab-secret-file",
        )?;
        return if same_secret(given.as_bytes(), secret.as_bytes()) {
            Ok(())
        } else {
            Err("X-Gitlab-Token is not the configured secret token")
        };
    }
    let (Some(id), Some(timestamp), Some(signatures)) = (
        header(headers, "webhook-id"),
        header(headers, "webhook-timestamp"),
        header(headers, "webhook-signature"),
    ) else {
        return Err("no webhook-id, webhook-timestamp and webhook-signature headers: give the webhook the signing token of --gitlab-secret-file");
    };
    let at: i64 = timestamp
        .parse()
        .map_err(|_| "webhook-timestamp is not Unix seconds")?;
    if (now - at).abs() > TOLERANCE {
        return Err("webhook-timestamp is more than 5 minutes from now (a replayed request?)");
    }
    let mac = standard_mac(secret, id, timestamp, body)
        .ok_or("the configured signing token is not whsec_<base64>")?;
    // Several signatures may be sent (while a token is rotated): one that holds is enough.
    let holds = signatures.split(' ').any(|s| {
        s.strip_prefix("v1,")
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .is_some_and(|sig| mac.clone().verify_slice(&sig).is_ok())
    });
    if holds {
        Ok(())
    } else {
        Err("webhook-signature does not match the body signed with the configured signing token")
    }
}

/// The fields of a GitHub push event that matter here.
#[derive(Deserialize)]
struct GithubPush {
    #[serde(rename = "ref")]
    git_ref: String,
    #[serde(default)]
    deleted: bool,
    repository: GithubRepository,
}

#[derive(Deserialize)]
struct GithubRepository {
    clone_url: Option<String>,
    ssh_url: Option<String>,
    html_url: Option<String>,
    git_url: Option<String>,
}

/// The fields of a GitLab push event that matter here.
#[derive(Deserialize)]
struct GitlabPush {
    #[serde(rename = "ref")]
    git_ref: String,
    after: Option<String>,
    project: GitlabProject,
}

#[derive(Deserialize)]
struct GitlabProject {
    git_http_url: Option<String>,
    git_ssh_url: Option<String>,
    web_url: Option<String>,
}

async fn github(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(secret) = &app.github_secret else {
        return unconfigured("--github-secret-file");
    };
    if let Err(why) = check_github(secret, &headers, &body) {
        return refused(why);
    }
    if let Some(refusal) = not_json(&headers) {
        return refusal;
    }
    match header(&headers, "x-github-event") {
        Some("ping") => Json(json!({ "pong": true })).into_response(),
        Some("push") => match serde_json::from_slice::<GithubPush>(&body) {
            Ok(p) => {
                let r = p.repository;
                let urls = [r.clone_url, r.ssh_url, r.html_url, r.git_url];
                pushed(&app, &urls, &p.git_ref, p.deleted)
            }
            Err(e) => bad_event("push", e),
        },
        Some(other) => ignored(other),
        None => text(StatusCode::BAD_REQUEST, "no X-GitHub-Event header\n".into()),
    }
}

async fn gitlab(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(secret) = &app.gitlab_secret else {
        return unconfigured("--gitlab-secret-file");
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if let Err(why) = check_gitlab(secret, &headers, &body, now) {
        return refused(why);
    }
    if let Some(refusal) = not_json(&headers) {
        return refusal;
    }
    match header(&headers, "x-gitlab-event") {
        Some("Push Hook") => match serde_json::from_slice::<GitlabPush>(&body) {
            Ok(p) => {
                let deleted = p
                    .after
                    .as_deref()
                    .is_some_and(|a| a.bytes().all(|b| b == b'0'));
                let r = p.project;
                let urls = [r.git_http_url, r.git_ssh_url, r.web_url];
                pushed(&app, &urls, &p.git_ref, deleted)
            }
            Err(e) => bad_event("Push Hook", e),
        },
        Some(other) => ignored(other),
        None => text(StatusCode::BAD_REQUEST, "no X-Gitlab-Event header\n".into()),
    }
}

fn bad_event(event: &str, e: serde_json::Error) -> Response {
    text(
        StatusCode::BAD_REQUEST,
        format!("the body is not a {event} event: {e}\n"),
    )
}

fn ignored(event: &str) -> Response {
    Json(json!({ "builds": [], "ignored": format!("event '{event}' triggers nothing") }))
        .into_response()
}

/// Queues what a push to `git_ref` of the repository known as `urls` builds; a deleted branch
/// builds nothing.
fn pushed(app: &AppState, urls: &[Option<String>], git_ref: &str, deleted: bool) -> Response {
    let urls: Vec<&str> = urls.iter().flatten().map(String::as_str).collect();
    let targets = if deleted {
        Vec::new()
    } else {
        matching(&app.forge.config, &urls, git_ref)
    };
    tracing::info!(?urls, git_ref, deleted, ?targets, "push");
    start(app, targets)
}

/// The (stream, component) pairs a push to `git_ref` of the repository known as `urls` changes:
/// the component's `git:` is one of `urls` (after [`normalise`]) and `git_ref` is
/// `refs/heads/<the branch it builds in the stream>`.
pub fn matching(config: &Config, urls: &[&str], git_ref: &str) -> Vec<Target> {
    let Some(branch) = git_ref.strip_prefix("refs/heads/") else {
        return Vec::new();
    };
    let repos: BTreeSet<String> = urls.iter().map(|u| normalise(u)).collect();
    let mut found = Vec::new();
    for (name, c) in &config.components {
        if !repos.contains(&normalise(&c.git.url)) {
            continue;
        }
        for (stream, s) in &config.streams {
            let builds = s.images.iter().any(|i| &i.component == name);
            if builds && config.revision(name, stream) == Some(Revision::Branch(branch.into())) {
                found.push(Target {
                    stream: stream.clone(),
                    component: name.clone(),
                });
            }
        }
    }
    found.sort();
    found
}

/// A git URL reduced to `host/path`, so that the forms of one repository compare equal: no
/// scheme, user or port, the host in lower case, no trailing `/` or `.git`; scp-like
/// `git@host:path` is `host/path`, and a `file://` URL or a local path is its path.
///
/// ```
/// use server::webhook::normalise;
/// let n = normalise("https://github.com/openshift/installer");
/// assert_eq!(n, "github.com/openshift/installer");
/// assert_eq!(normalise("git@GitHub.com:openshift/installer.git"), n);
/// assert_eq!(normalise("ssh://git@github.com:22/openshift/installer.git/"), n);
/// assert_eq!(normalise("file:///srv/git/installer.git"), "/srv/git/installer");
/// ```
pub fn normalise(url: &str) -> String {
    let url = url.trim();
    let (host, path) = match url.split_once("://") {
        Some((_, rest)) => {
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            let host = authority.rsplit('@').next().unwrap_or(authority);
            let host = match host.strip_prefix('[') {
                Some(v6) => v6.split(']').next().unwrap_or(v6),
                None => host.split(':').next().unwrap_or(host),
            };
            (host, path)
        }
        None => match url.split_once(':') {
            Some((h, p)) if !h.contains('/') => (h.rsplit('@').next().unwrap_or(h), p),
            _ => ("", url),
        },
    };
    let path = path.trim_matches('/');
    let path = path
        .strip_suffix(".git")
        .unwrap_or(path)
        .trim_end_matches('/');
    format!("{}/{path}", host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_repository_in_every_form() {
        let n = "github.com/openshift/machine-config-operator";
        for u in [
            "https://github.com/openshift/machine-config-operator",
            "https://github.com/openshift/machine-config-operator.git",
            "http://GITHUB.COM/openshift/machine-config-operator/",
            "git://github.com/openshift/machine-config-operator.git",
            "git@github.com:openshift/machine-config-operator.git",
            "ssh://git@github.com/openshift/machine-config-operator",
            "https://user:pw@github.com:443/openshift/machine-config-operator",
        ] {
            assert_eq!(normalise(u), n, "{u}");
        }
        // The path's case is the repository's: only the host is folded.
        assert_ne!(
            normalise("https://github.com/OpenShift/machine-config-operator"),
            n
        );
        assert_eq!(normalise("file:///srv/git/mco"), "/srv/git/mco");
        assert_eq!(normalise("/srv/git/mco.git"), "/srv/git/mco");
        assert_eq!(normalise("ssh://git@[::1]:2222/o/r"), "::1/o/r");
    }

    #[test]
    fn signatures_are_checked() {
        let mut h = HeaderMap::new();
        let body = br#"{"zen":"x"}"#;
        assert!(check_github("s", &h, body).is_err(), "missing");
        let good = format!("sha256={}", github_signature("s", body));
        h.insert("x-hub-signature-256", good.parse().unwrap());
        assert_eq!(check_github("s", &h, body), Ok(()));
        assert!(check_github("t", &h, body).is_err(), "another secret");
        assert!(check_github("s", &h, b"{}").is_err(), "another body");

        // The published Standard Webhooks test vector, which GitLab's signing token follows.
        let token = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        assert_eq!(
            gitlab_signature(
                token,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                "1614265330",
                br#"{"test": 2432232314}"#
            )
            .as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
        let sig = gitlab_signature(token, "msg_1", "1700000000", body).unwrap();
        let mut h = HeaderMap::new();
        h.insert("webhook-id", "msg_1".parse().unwrap());
        h.insert("webhook-timestamp", "1700000000".parse().unwrap());
        h.insert(
            "webhook-signature",
            format!("v1,bm9wZQ== {sig}").parse().unwrap(),
        );
        assert_eq!(check_gitlab(token, &h, body, 1_700_000_100), Ok(()));
        assert!(
            check_gitlab(token, &h, body, 1_700_000_400).is_err(),
            "too old"
        );
        assert!(check_gitlab(token, &h, b"{}", 1_700_000_000).is_err());
        h.insert("webhook-id", "msg_2".parse().unwrap());
        assert!(
            check_gitlab(token, &h, body, 1_700_000_000).is_err(),
            "id signed"
        );
    }
}
