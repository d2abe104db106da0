//! A token server for the registry's bearer-token auth (the flow of quay.io and Docker Hub).
//!
//! Distribution has no token server of its own; this one issues real RS256 JWTs that the real registry
//! verifies against the certificate in its `rootcertbundle`, granting what the [`Grant`]s allow.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use serde::Serialize;

use crate::{Pki, RegistryAuth};

const ISSUER: &str = "okd-forge-test-issuer";
const SERVICE: &str = "okd-forge-test-registry";

/// Access the token server grants.
#[derive(Clone, Debug)]
pub struct Grant {
    /// The user it applies to; `None` for everyone, anonymous callers included.
    pub user: Option<String>,
    /// Repositories whose name starts with this.
    pub repo_prefix: String,
    /// Actions granted, e.g. `["pull"]` or `["pull", "push"]`.
    pub actions: Vec<String>,
}

impl Grant {
    /// `user` (or everyone, for `None`) may do `actions` on repositories under `repo_prefix`.
    pub fn new(user: Option<&str>, repo_prefix: &str, actions: &[&str]) -> Grant {
        Grant {
            user: user.map(str::to_string),
            repo_prefix: repo_prefix.to_string(),
            actions: actions.iter().map(|a| a.to_string()).collect(),
        }
    }
}

/// One token request, as received.
#[derive(Clone, Debug)]
pub struct TokenRequest {
    /// The authenticated user, if any.
    pub user: Option<String>,
    /// The scopes asked for.
    pub scopes: Vec<String>,
}

struct Inner {
    users: HashMap<String, String>,
    grants: Vec<Grant>,
    key: jsonwebtoken::EncodingKey,
    x5c: String,
    requests: Mutex<Vec<TokenRequest>>,
}

/// A token server on 127.0.0.1; stops when dropped.
pub struct TokenServer {
    port: u16,
    pki: Pki,
    inner: Arc<Inner>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TokenServer {
    /// Start a server that knows `users` (name, password) and grants what `grants` allow.
    pub fn start(users: &[(&str, &str)], grants: Vec<Grant>) -> TokenServer {
        let pki = Pki::generate();
        let key_pem = std::fs::read(&pki.key).expect("read key");
        let inner = Arc::new(Inner {
            users: users
                .iter()
                .map(|(u, p)| (u.to_string(), p.to_string()))
                .collect(),
            grants,
            key: jsonwebtoken::EncodingKey::from_rsa_pem(&key_pem).expect("RSA key"),
            x5c: pki.cert_der_base64(),
            requests: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/token", get(issue))
            .with_state(inner.clone());
        let (port, tx) = crate::serve(app);
        TokenServer {
            port,
            pki,
            inner,
            shutdown: Some(tx),
        }
    }

    /// The `auth` settings for a registry that trusts this server.
    pub fn registry_auth(&self) -> RegistryAuth {
        RegistryAuth::Token {
            realm: format!("http://127.0.0.1:{}/token", self.port),
            service: SERVICE.to_string(),
            issuer: ISSUER.to_string(),
            cert: self.pki.ca.clone(),
        }
    }

    /// Every token request so far.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.inner.requests.lock().expect("lock").clone()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

#[derive(Serialize)]
struct Access {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    actions: Vec<String>,
}

#[derive(Serialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: String,
    exp: u64,
    nbf: u64,
    iat: u64,
    jti: String,
    access: Vec<Access>,
}

async fn issue(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let user = match basic_user(&headers) {
        Ok(u) => u,
        Err(()) => return (StatusCode::UNAUTHORIZED, "bad basic auth").into_response(),
    };
    let user = match user {
        Some((u, p)) if inner.users.get(&u) == Some(&p) => Some(u),
        Some(_) => return (StatusCode::UNAUTHORIZED, "wrong user or password").into_response(),
        None => None,
    };
    let scopes: Vec<String> = params
        .into_iter()
        .filter(|(k, _)| k == "scope")
        .map(|(_, v)| v)
        .collect();
    inner.requests.lock().expect("lock").push(TokenRequest {
        user: user.clone(),
        scopes: scopes.clone(),
    });
    let access = scopes
        .iter()
        .filter_map(|s| {
            let (kind, rest) = s.split_once(':')?;
            let (name, actions) = rest.rsplit_once(':')?;
            let granted: Vec<String> = actions
                .split(',')
                .filter(|a| {
                    inner.grants.iter().any(|g| {
                        (g.user.is_none() || g.user == user)
                            && name.starts_with(&g.repo_prefix)
                            && g.actions.iter().any(|x| x == a)
                    })
                })
                .map(str::to_string)
                .collect();
            Some(Access {
                kind: kind.to_string(),
                name: name.to_string(),
                actions: granted,
            })
        })
        .collect();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let claims = Claims {
        iss: ISSUER.into(),
        sub: user.unwrap_or_default(),
        aud: SERVICE.into(),
        exp: now + 300,
        nbf: now - 10,
        iat: now,
        jti: format!("{now}-{}", rand::random::<u64>()),
        access,
    };
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.x5c = Some(vec![inner.x5c.clone()]);
    let token = jsonwebtoken::encode(&header, &claims, &inner.key).expect("sign token");
    Json(serde_json::json!({ "token": token, "expires_in": 300 })).into_response()
}

/// `Ok(None)` without an Authorization header, `Err` for a malformed one.
fn basic_user(headers: &HeaderMap) -> Result<Option<(String, String)>, ()> {
    let Some(v) = headers.get("authorization") else {
        return Ok(None);
    };
    let v = v.to_str().map_err(|_| ())?;
    let b64 = v.strip_prefix("Basic ").ok_or(())?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| ())?;
    let text = String::from_utf8(raw).map_err(|_| ())?;
    let (u, p) = text.split_once(':').ok_or(())?;
    Ok(Some((u.to_string(), p.to_string())))
}
