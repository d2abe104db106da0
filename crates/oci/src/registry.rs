//! A client for the OCI distribution API v2, for any registry (Distribution, quay.io, ...).
//!
//! - Auth: anonymous, basic, and the bearer-token challenge flow with per-repository scopes; credentials
//!   from [`AuthSource`]. Credentials and tokens go only to the registry itself (same scheme, host and
//!   port), never to another host that a `Location` or `Link` header names.
//! - Blobs are streamed both ways, verified against their digest as they arrive; uploads are monolithic,
//!   or chunked (`PATCH` with `Content-Range`) when a chunk size is set and the blob is larger.
//! - Manifests keep their exact bytes, so digests never change in transit.
//! - Timeouts: a small exchange (manifest, tag list, HEAD, POST) must finish within the timeout; a
//!   download must start within it and then never stall longer than it between reads; an upload may
//!   take as long as it needs while its body moves, but not sit idle longer than the timeout.
//! - Retries, with backoff on 429, 5xx, timeouts and connection errors, happen at one level only:
//!   manifest, tag and access requests are retried here; blob operations (HEAD, mount, GET, upload) make
//!   one attempt each, and the [`Copier`](crate::Copier) retries a blob transfer as a whole. So retries
//!   never multiply, and an upload that failed half-way starts again cleanly.
//! - TLS is rustls with the system's roots (and `SSL_CERT_FILE`). With `tls_verify: false`, or for a
//!   loopback registry, plain http is tried when https does not answer.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use reqwest::header::{
    HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE,
    LINK, LOCATION, WWW_AUTHENTICATE,
};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::Deserialize;
use tokio::sync::OnceCell;

use crate::auth::{AuthSource, Credentials};
use crate::manifest::{media_type, RawManifest};
use crate::reference::{RegistryRepo, Selector};
use crate::stream::{verified, BlobStream, VerifiedStream};
use crate::{Descriptor, Digest, Error, Result};

/// How to talk to registries.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Verify TLS certificates (skopeo's `--tls-verify`); when false, plain http is allowed too.
    pub tls_verify: bool,
    /// Where credentials come from.
    pub auth: AuthSource,
    /// How long a small exchange may take, and how long a transfer may stall.
    pub timeout: Duration,
    /// How many times a failed request (or, in the copier, blob transfer) is tried again.
    pub retries: usize,
    /// Upload blobs larger than this in chunks of this size; `None` uploads every blob in one request.
    pub chunk_size: Option<u64>,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            tls_verify: true,
            auth: AuthSource::default(),
            timeout: Duration::from_secs(60),
            retries: 3,
            chunk_size: None,
        }
    }
}

/// The backoff of every retry in okd-forge: jittered, exponential from 200 ms, at most 10 s apart,
/// `retries` times.
pub fn retry_policy(retries: usize) -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(10))
        .with_max_times(retries)
        .with_jitter()
}

#[derive(Debug, Clone)]
enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// How one request is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// One attempt; the response headers must come within the timeout. (HEAD, mount, upload start,
    /// and downloads, whose body then has [`stall_guard`].)
    Once,
    /// An upload body: one attempt, no deadline here; the stall watchdog of [`Repository::upload`].
    Upload,
}

/// The Docker Hub registry as users name it, and where its API really is.
const DOCKER_HUB_ENDPOINT: &str = "registry-1.docker.io";
/// Tag-list pages followed at most, against registries whose `Link` headers loop.
const MAX_TAG_PAGES: usize = 10_000;

/// A connection to one registry host, shared by every repository handle on it.
pub struct Registry {
    /// The registry as users write it (`docker.io` for Docker Hub).
    name: String,
    /// Where requests go (`registry-1.docker.io` for Docker Hub).
    endpoint: String,
    http: reqwest::Client,
    opts: RegistryOptions,
    base: OnceCell<String>,
    challenge: Mutex<Option<Challenge>>,
    tokens: Mutex<HashMap<String, String>>,
    creds: Mutex<HashMap<String, Option<Credentials>>>,
}

/// One repository of a registry, with the access it needs (pull, or pull and push).
#[derive(Clone)]
pub struct Repository {
    registry: Arc<Registry>,
    name: String,
    push: bool,
}

impl Registry {
    /// A client for `host[:port]`.
    pub fn new(host: &str, opts: RegistryOptions) -> Result<Arc<Registry>> {
        let http = http_client(&opts).map_err(|e| Error::Unreachable {
            target: host.to_string(),
            registry: host.to_string(),
            reason: format!("cannot set up an HTTP client: {e}"),
        })?;
        Ok(Arc::new(Registry {
            name: host.to_string(),
            endpoint: if host == crate::reference::DOCKER_HUB {
                DOCKER_HUB_ENDPOINT.to_string()
            } else {
                host.to_string()
            },
            http,
            opts,
            base: OnceCell::new(),
            challenge: Mutex::new(None),
            tokens: Mutex::new(HashMap::new()),
            creds: Mutex::new(HashMap::new()),
        }))
    }

    /// A handle on one repository; `push` asks for push access in token scopes.
    pub fn repository(self: &Arc<Self>, name: &str, push: bool) -> Repository {
        Repository {
            registry: self.clone(),
            name: name.to_string(),
            push,
        }
    }

    /// The registry as users name it, e.g. `quay.io` or `docker.io`.
    pub fn host(&self) -> &str {
        &self.name
    }

    /// The options it was made with.
    pub fn options(&self) -> &RegistryOptions {
        &self.opts
    }

    fn is_loopback(&self) -> bool {
        is_loopback(&self.endpoint)
    }

    /// `https://host` or, where allowed and https does not answer, `http://host`. Pinging `/v2/` also
    /// learns the auth challenge.
    async fn base(&self, target: &str) -> Result<&str> {
        self.base
            .get_or_try_init(|| async {
                let https = format!("https://{}", self.endpoint);
                let err = match self.ping(&https).await {
                    Ok(()) => return Ok(https),
                    Err(e) => e,
                };
                let tls_failed = err.contains("certificate");
                let fail = |reason: String| {
                    if tls_failed {
                        Error::Tls {
                            target: target.to_string(),
                            registry: self.name.clone(),
                            reason,
                        }
                    } else {
                        self.unreachable(target, &reason)
                    }
                };
                if !self.is_loopback() && self.opts.tls_verify {
                    return Err(fail(err));
                }
                let http = format!("http://{}", self.endpoint);
                match self.ping(&http).await {
                    Ok(()) => Ok(http),
                    Err(e2) if e2 == err => Err(fail(err)),
                    Err(e2) => Err(fail(format!("over https: {err}; over http: {e2}"))),
                }
            })
            .await
            .map(String::as_str)
    }

    async fn ping(&self, base: &str) -> std::result::Result<(), String> {
        let resp = self
            .http
            .get(format!("{base}/v2/"))
            .timeout(self.opts.timeout)
            .send()
            .await
            .map_err(|e| error_chain(&e))?;
        // A registry answers /v2/ with 200, or 401 and a challenge; anything else (a TLS port's 400 to
        // plain http, a web server's 404) is not the registry API.
        match resp.status() {
            StatusCode::OK | StatusCode::UNAUTHORIZED => {
                self.learn_challenge(resp.headers());
                Ok(())
            }
            s => Err(format!(
                "{base}/v2/ answered {s}, not an OCI distribution API"
            )),
        }
    }

    fn unreachable(&self, target: &str, reason: &str) -> Error {
        Error::Unreachable {
            target: target.to_string(),
            registry: self.name.clone(),
            reason: reason.to_string(),
        }
    }

    fn timed_out(&self, target: &str) -> Error {
        Error::Timeout {
            target: target.to_string(),
            registry: self.name.clone(),
            seconds: self.opts.timeout.as_secs(),
        }
    }

    /// An error of the HTTP client, classified: what may pass if tried again, and what will not.
    fn transport(&self, target: &str, e: reqwest::Error) -> Error {
        if e.is_timeout() {
            self.timed_out(target)
        } else if e.is_connect() {
            self.unreachable(target, &error_chain(&e))
        } else if e.is_builder() || e.is_redirect() {
            Error::Protocol {
                target: target.to_string(),
                reason: error_chain(&e),
            }
        } else {
            Error::Interrupted {
                target: target.to_string(),
                registry: self.name.clone(),
                reason: error_chain(&e),
            }
        }
    }

    fn learn_challenge(&self, headers: &HeaderMap) {
        if let Some(c) = headers
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_challenge)
        {
            *self.challenge.lock().expect("lock") = Some(c);
        }
    }

    /// Credentials for a repository, looked up once (auth files, maybe a credential helper process) off
    /// the async threads.
    async fn credentials(&self, repository: &str) -> Result<Option<Credentials>> {
        if let Some(c) = self.creds.lock().expect("lock").get(repository) {
            return Ok(c.clone());
        }
        let (auth, host, repo) = (
            self.opts.auth.clone(),
            self.name.clone(),
            repository.to_string(),
        );
        let c = tokio::task::spawn_blocking(move || auth.lookup(&host, &repo))
            .await
            .map_err(|e| Error::AuthFile {
                path: "<credential lookup>".into(),
                reason: e.to_string(),
            })??;
        self.creds
            .lock()
            .expect("lock")
            .insert(repository.to_string(), c.clone());
        Ok(c)
    }

    /// The Authorization header to send for `scopes`, from what we know so far.
    async fn auth_header(&self, repository: &str, scopes: &str) -> Result<Option<String>> {
        let challenge = self.challenge.lock().expect("lock").clone();
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(self.credentials(repository).await?.map(|c| basic(&c))),
            Some(Challenge::Bearer { .. }) => Ok(self
                .tokens
                .lock()
                .expect("lock")
                .get(scopes)
                .map(|t| format!("Bearer {t}"))),
        }
    }

    /// Answer a 401: get a token for `scopes` (bearer), or check we have credentials (basic).
    async fn authenticate(
        &self,
        target: &str,
        repository: &str,
        scopes: &str,
        resp: &Response,
    ) -> Result<()> {
        self.learn_challenge(resp.headers());
        let challenge = self.challenge.lock().expect("lock").clone();
        let creds = self.credentials(repository).await?;
        let unauthorized = |reason: &str| Error::Unauthorized {
            target: target.to_string(),
            registry: self.name.clone(),
            reason: reason.to_string(),
        };
        match challenge {
            Some(Challenge::Bearer { realm, service }) => {
                let mut req = self.http.get(&realm).timeout(self.opts.timeout);
                if let Some(s) = &service {
                    req = req.query(&[("service", s)]);
                }
                for scope in scopes.split(' ') {
                    req = req.query(&[("scope", scope)]);
                }
                if let Some(c) = &creds {
                    req = req.basic_auth(&c.username, Some(&c.password));
                }
                let resp = req.send().await.map_err(|e| self.transport(target, e))?;
                if resp.status() == StatusCode::UNAUTHORIZED
                    || resp.status() == StatusCode::FORBIDDEN
                {
                    return Err(unauthorized(if creds.is_some() {
                        "the token service rejected the credentials"
                    } else {
                        "authentication required and no credentials found"
                    }));
                }
                if !resp.status().is_success() {
                    return Err(unauthorized(&format!(
                        "token service {realm} answered {}",
                        resp.status()
                    )));
                }
                #[derive(Deserialize)]
                struct TokenResponse {
                    token: Option<String>,
                    access_token: Option<String>,
                }
                let body = read_limited(target, resp, 1 << 20).await.map_err(|_| {
                    unauthorized(&format!("unreadable token response from {realm}"))
                })?;
                let t: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
                    unauthorized(&format!("unreadable token response from {realm}: {e}"))
                })?;
                let token = t
                    .token
                    .or(t.access_token)
                    .ok_or_else(|| unauthorized("the token service returned no token"))?;
                self.tokens
                    .lock()
                    .expect("lock")
                    .insert(scopes.to_string(), token);
                Ok(())
            }
            Some(Challenge::Basic) if creds.is_some() => Ok(()),
            Some(Challenge::Basic) | None => Err(unauthorized(
                "authentication required and no credentials found",
            )),
        }
    }

    /// One attempt at a request built by `make`, with auth (answering one 401 with fresh credentials,
    /// except for an upload, whose body is gone) and, unless it is an upload, a deadline on the response
    /// headers. 429 and 5xx answers become (transient) errors.
    async fn attempt(
        &self,
        target: &str,
        repository: &str,
        scopes: &str,
        kind: Kind,
        make: &(dyn Fn(&reqwest::Client, &str) -> RequestBuilder + Sync),
    ) -> Result<Response> {
        let base = self.base(target).await?.to_string();
        let client = &self.http;
        let mut refreshed = false;
        loop {
            let mut req = make(client, &base)
                .build()
                .map_err(|e| self.transport(target, e))?;
            if same_origin(req.url(), &base) {
                if let Some(h) = self.auth_header(repository, scopes).await? {
                    let value = HeaderValue::from_str(&h).map_err(|_| Error::Protocol {
                        target: target.to_string(),
                        reason: "the token service issued a token that is not a valid header"
                            .into(),
                    })?;
                    req.headers_mut().insert(AUTHORIZATION, value);
                }
            }
            let sent = client.execute(req);
            let resp = if kind == Kind::Upload {
                sent.await
            } else {
                tokio::time::timeout(self.opts.timeout, sent)
                    .await
                    .map_err(|_| self.timed_out(target))?
            }
            .map_err(|e| self.transport(target, e))?;
            if resp.status() == StatusCode::UNAUTHORIZED {
                if refreshed || kind == Kind::Upload {
                    let has_creds = self.credentials(repository).await?.is_some();
                    return Err(Error::Unauthorized {
                        target: target.to_string(),
                        registry: self.name.clone(),
                        reason: if has_creds {
                            "the registry rejected the credentials".into()
                        } else {
                            "authentication required and no credentials found".into()
                        },
                    });
                }
                self.authenticate(target, repository, scopes, &resp).await?;
                refreshed = true;
                continue;
            }
            if resp.status() == StatusCode::TOO_MANY_REQUESTS || resp.status().is_server_error() {
                return Err(status_error(target, resp).await);
            }
            return Ok(resp);
        }
    }

    /// A small exchange, retried with backoff: the request and the whole response body (at most
    /// `limit` bytes) within the timeout. Answers other than 2xx are errors (404 is [`Error::NotFound`]).
    async fn exchange(
        &self,
        target: &str,
        repository: &str,
        scopes: &str,
        limit: u64,
        make: &(dyn Fn(&reqwest::Client, &str) -> RequestBuilder + Sync),
    ) -> Result<(HeaderMap, Bytes)> {
        let once = || async {
            let whole = async {
                let resp = self
                    .attempt(target, repository, scopes, Kind::Once, make)
                    .await?;
                if resp.status() == StatusCode::NOT_FOUND {
                    return Err(Error::NotFound {
                        what: target.to_string(),
                    });
                }
                if !resp.status().is_success() {
                    return Err(status_error(target, resp).await);
                }
                let headers = resp.headers().clone();
                Ok((headers, read_limited(target, resp, limit).await?))
            };
            tokio::time::timeout(self.opts.timeout, whole)
                .await
                .map_err(|_| self.timed_out(target))?
        };
        once.retry(retry_policy(self.opts.retries))
            .when(Error::is_transient)
            .notify(|e, d| tracing::debug!("retrying in {d:?}: {e}"))
            .await
    }
}

impl Repository {
    /// The repository path.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The registry it lives in.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    fn display(&self, sel: Option<&Selector>) -> String {
        let r = RegistryRepo {
            registry: self.registry.name.clone(),
            repository: self.name.clone(),
        };
        match sel {
            Some(s) => format!("{r}{s}"),
            None => r.to_string(),
        }
    }

    fn scopes(&self, mount_from: Option<&str>) -> String {
        let mut s = format!(
            "repository:{}:{}",
            self.name,
            if self.push { "pull,push" } else { "pull" }
        );
        if let Some(from) = mount_from {
            s.push_str(&format!(" repository:{from}:pull"));
        }
        s
    }

    async fn attempt(
        &self,
        target: &str,
        mount_from: Option<&str>,
        kind: Kind,
        make: &(dyn Fn(&reqwest::Client, &str) -> RequestBuilder + Sync),
    ) -> Result<Response> {
        self.registry
            .attempt(target, &self.name, &self.scopes(mount_from), kind, make)
            .await
    }

    async fn exchange(
        &self,
        target: &str,
        limit: u64,
        make: &(dyn Fn(&reqwest::Client, &str) -> RequestBuilder + Sync),
    ) -> Result<(HeaderMap, Bytes)> {
        self.registry
            .exchange(target, &self.name, &self.scopes(None), limit, make)
            .await
    }

    /// Make sure the registry is reachable and we are allowed in, before a long operation starts.
    pub async fn check_access(&self) -> Result<()> {
        let target = self.display(None);
        let name = self.name.clone();
        let result = self
            .exchange(&target, 1 << 20, &|c, base| {
                c.get(format!("{base}/v2/{name}/tags/list?n=1"))
            })
            .await;
        match result {
            // Not found is an empty (or not yet existing) repository, which is fine for a destination.
            Ok(_) | Err(Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Fetch a manifest by tag or digest, with its exact bytes, checked against the digest that names it.
    pub async fn get_manifest(&self, sel: &Selector) -> Result<RawManifest> {
        let target = self.display(Some(sel));
        let url_ref = match sel {
            Selector::Tag(t) => t.clone(),
            Selector::Digest(d) => d.to_string(),
        };
        let name = self.name.clone();
        let (headers, bytes) = self
            .exchange(&target, crate::layout::MAX_MANIFEST, &|c, base| {
                c.get(format!("{base}/v2/{name}/manifests/{url_ref}"))
                    .header(ACCEPT, media_type::ACCEPT_MANIFESTS)
            })
            .await?;
        let content_type = header_str(&headers, CONTENT_TYPE);
        let header_digest =
            header_str(&headers, "docker-content-digest").and_then(|d| d.parse::<Digest>().ok());
        // By digest, the bytes must match it; by tag, they must match the digest the registry claims.
        let digest = match sel {
            Selector::Digest(d) => d.clone(),
            Selector::Tag(_) => header_digest.unwrap_or_else(|| Digest::sha256_of(&bytes)),
        };
        let actual = digest.same_algorithm_of(&bytes);
        if actual != digest {
            return Err(Error::DigestMismatch {
                what: format!("manifest {target}"),
                expected: digest,
                actual,
            });
        }
        RawManifest::new(&target, bytes, content_type.as_deref(), digest)
    }

    /// Store a manifest under a tag or its digest; its bytes are sent unchanged.
    pub async fn put_manifest(&self, raw: &RawManifest, tag: Option<&str>) -> Result<()> {
        let url_ref = tag
            .map(str::to_string)
            .unwrap_or_else(|| raw.digest.to_string());
        let sel = match tag {
            Some(t) => Selector::Tag(t.to_string()),
            None => Selector::Digest(raw.digest.clone()),
        };
        let target = self.display(Some(&sel));
        let name = self.name.clone();
        let body = raw.bytes.clone();
        let mt = raw.media_type.clone();
        let (headers, _) = self
            .exchange(&target, 1 << 20, &|c, base| {
                c.put(format!("{base}/v2/{name}/manifests/{url_ref}"))
                    .header(CONTENT_TYPE, mt.as_str())
                    .body(body.clone())
            })
            .await?;
        if let Some(d) =
            header_str(&headers, "docker-content-digest").and_then(|d| d.parse::<Digest>().ok())
        {
            if d.algorithm() == raw.digest.algorithm() && d != raw.digest {
                return Err(Error::DigestMismatch {
                    what: format!("manifest stored as {target}"),
                    expected: raw.digest.clone(),
                    actual: d,
                });
            }
        }
        Ok(())
    }

    /// Whether the repository has the blob (HEAD), with the size the descriptor says. One attempt.
    pub async fn has_blob(&self, desc: &Descriptor) -> Result<bool> {
        let target = self.display(Some(&Selector::Digest(desc.digest.clone())));
        let name = self.name.clone();
        let digest = &desc.digest;
        let resp = self
            .attempt(&target, None, Kind::Once, &|c, base| {
                c.head(format!("{base}/v2/{name}/blobs/{digest}"))
            })
            .await?;
        match resp.status() {
            s if s.is_success() => {
                let size =
                    header_str(resp.headers(), CONTENT_LENGTH).and_then(|l| l.parse::<u64>().ok());
                Ok(size.is_none_or(|s| s == desc.size))
            }
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(status_error(&target, resp).await),
        }
    }

    /// Stream a blob; the stream fails before it ends unless the bytes match the descriptor. One
    /// attempt: the headers must come within the timeout, then no read may stall longer than it.
    pub async fn get_blob(&self, desc: &Descriptor) -> Result<VerifiedStream> {
        let target = format!("blob {} of {}", desc.digest, self.display(None));
        let name = self.name.clone();
        let digest = desc.digest.clone();
        let resp = self
            .attempt(&target, None, Kind::Once, &|c, base| {
                c.get(format!("{base}/v2/{name}/blobs/{digest}"))
            })
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Err(Error::NotFound { what: target });
        }
        if !resp.status().is_success() {
            return Err(status_error(&target, resp).await);
        }
        let (registry, t2) = (self.registry.clone(), target.clone());
        let body = resp
            .bytes_stream()
            .map(move |r| r.map_err(|e| registry.transport(&t2, e)));
        let (registry, t3) = (self.registry.clone(), target.clone());
        let guarded = stall_guard(Box::pin(body), self.registry.opts.timeout, move || {
            registry.timed_out(&t3)
        });
        Ok(verified(target, &desc.digest, Some(desc.size), guarded))
    }

    /// Try to mount a blob from another repository of the same registry. `Ok(false)` when the registry
    /// declines (it answers with an upload session, which is cancelled). One attempt.
    pub async fn mount_blob(&self, digest: &Digest, from: &str) -> Result<bool> {
        let target = format!("blob {digest} of {}", self.display(None));
        let name = self.name.clone();
        let from_s = from.to_string();
        let resp = self
            .attempt(&target, Some(from), Kind::Once, &|c, base| {
                c.post(format!("{base}/v2/{name}/blobs/uploads/"))
                    .query(&[("mount", digest.to_string()), ("from", from_s.clone())])
                    .header(CONTENT_LENGTH, 0)
            })
            .await?;
        match resp.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => {
                if let Ok(url) = self.location(&resp).await {
                    self.cancel_upload(&target, &url).await;
                }
                Ok(false)
            }
            _ => Err(status_error(&target, resp).await),
        }
    }

    async fn location(&self, resp: &Response) -> Result<String> {
        let loc = header_str(resp.headers(), LOCATION).ok_or_else(|| Error::Protocol {
            target: self.display(None),
            reason: "the registry started an upload without a Location header".into(),
        })?;
        let base = self.registry.base(&self.display(None)).await?;
        let base_url = url::Url::parse(&format!("{base}/")).expect("valid base");
        Ok(base_url.join(&loc).map(|u| u.to_string()).unwrap_or(loc))
    }

    async fn start_upload(&self, target: &str) -> Result<String> {
        let name = self.name.clone();
        let resp = self
            .attempt(target, None, Kind::Once, &|c, base| {
                c.post(format!("{base}/v2/{name}/blobs/uploads/"))
                    .header(CONTENT_LENGTH, 0)
            })
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(status_error(target, resp).await);
        }
        self.location(&resp).await
    }

    /// Best effort: tell the registry an upload session is abandoned (it would purge it eventually).
    async fn cancel_upload(&self, target: &str, url: &str) {
        let _ = self
            .attempt(target, None, Kind::Once, &|c, _| c.delete(url))
            .await;
    }

    /// Upload a blob from a stream. The registry commits it only if all bytes arrive and match the digest;
    /// a failing stream aborts the upload, so nothing partial becomes visible. One attempt.
    pub async fn put_blob(&self, desc: &Descriptor, stream: VerifiedStream) -> Result<()> {
        let target = format!("blob {} of {}", desc.digest, self.display(None));
        stream.expect_digest(&target, &desc.digest)?;
        let upload = self.start_upload(&target).await?;
        let result = match self.registry.opts.chunk_size {
            Some(chunk) if desc.size > chunk => {
                self.put_chunked(&target, desc, &upload, Box::pin(stream), chunk)
                    .await
            }
            _ => {
                let url = with_digest(&upload, &desc.digest);
                let resp = self
                    .upload(&target, Box::pin(stream), desc.size, &|c, body| {
                        c.put(url.clone()).body(body)
                    })
                    .await;
                match resp {
                    Ok(r) if r.status() == StatusCode::CREATED => Ok(()),
                    Ok(r) => Err(status_error(&target, r).await),
                    Err(e) => Err(e),
                }
            }
        };
        if result.is_err() {
            self.cancel_upload(&target, &upload).await;
        }
        result
    }

    /// Send `body` (of `size` bytes) in the request `make` builds. The upload may take as long as it
    /// needs while bytes move, but fails once the body has not moved, or the answer has not come, for
    /// the timeout. A failure of the stream itself (a digest mismatch) is reported as such.
    async fn upload(
        &self,
        target: &str,
        body: BlobStream,
        size: u64,
        make: &(dyn Fn(&reqwest::Client, reqwest::Body) -> RequestBuilder + Sync),
    ) -> Result<Response> {
        let activity = Arc::new(Activity::new());
        let failure: Arc<Mutex<Option<Error>>> = Arc::new(Mutex::new(None));
        let (a, f, end) = (activity.clone(), failure.clone(), activity.clone());
        let watched = body
            .map(move |r| {
                a.touch();
                r.map_err(|e| {
                    let msg = e.to_string();
                    *f.lock().expect("lock") = Some(e);
                    std::io::Error::other(msg)
                })
            })
            .chain(futures_util::stream::poll_fn(move |_| {
                end.body_done();
                std::task::Poll::Ready(None)
            }));
        let body = Mutex::new(Some(reqwest::Body::wrap_stream(watched)));
        let request = |c: &reqwest::Client, _: &str| {
            let b = body
                .lock()
                .expect("lock")
                .take()
                .unwrap_or_else(|| reqwest::Body::from(Bytes::new()));
            make(c, b)
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(CONTENT_LENGTH, size)
        };
        let send = self.attempt(target, None, Kind::Upload, &request);
        let result = tokio::select! {
            r = send => r,
            () = activity.stalled(self.registry.opts.timeout) => Err(self.registry.timed_out(target)),
        };
        if let Some(e) = failure.lock().expect("lock").take() {
            return Err(e);
        }
        result
    }

    async fn put_chunked(
        &self,
        target: &str,
        desc: &Descriptor,
        upload: &str,
        mut stream: BlobStream,
        chunk: u64,
    ) -> Result<()> {
        let chunk = usize::try_from(chunk).unwrap_or(usize::MAX);
        let mut upload = upload.to_string();
        let mut offset = 0u64;
        let mut buf = BytesMut::new();
        let mut ended = false;
        loop {
            while !ended && buf.len() < chunk {
                match stream.next().await {
                    Some(c) => buf.extend_from_slice(&c?),
                    None => ended = true,
                }
            }
            if buf.is_empty() {
                break;
            }
            let part = buf.split_to(buf.len().min(chunk)).freeze();
            let len = part.len() as u64;
            let range = format!("{}-{}", offset, offset + len - 1);
            let u = upload.clone();
            let one: BlobStream = Box::pin(futures_util::stream::iter([Ok(part)]));
            let resp = self
                .upload(target, one, len, &|c, body| {
                    c.patch(u.clone())
                        .header(CONTENT_RANGE, range.as_str())
                        .body(body)
                })
                .await?;
            if resp.status() != StatusCode::ACCEPTED {
                return Err(status_error(target, resp).await);
            }
            offset += len;
            upload = self.location(&resp).await?;
        }
        if offset != desc.size {
            return Err(Error::SizeMismatch {
                what: target.to_string(),
                expected: desc.size,
                actual: offset,
            });
        }
        let url = with_digest(&upload, &desc.digest);
        let resp = self
            .attempt(target, None, Kind::Once, &|c, _| {
                c.put(url.clone()).header(CONTENT_LENGTH, 0)
            })
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(status_error(target, resp).await);
        }
        Ok(())
    }

    /// Every tag of the repository, following `Link` pagination.
    pub async fn tags(&self) -> Result<Vec<String>> {
        self.tags_paged(1000).await
    }

    /// Every tag of the repository, asking for `page` tags per request and following `Link` pagination.
    pub async fn tags_paged(&self, page: usize) -> Result<Vec<String>> {
        let target = self.display(None);
        let base = self.registry.base(&target).await?.to_string();
        let mut url = format!("{base}/v2/{}/tags/list?n={page}", self.name);
        let mut seen = HashSet::new();
        let mut tags = Vec::new();
        loop {
            if !seen.insert(url.clone()) || seen.len() > MAX_TAG_PAGES {
                return Err(Error::Protocol {
                    target,
                    reason: format!("the registry's tag list pagination does not end (at {url})"),
                });
            }
            let u = url.clone();
            let (headers, body) = self
                .exchange(&target, 64 << 20, &|c, _| c.get(u.clone()))
                .await?;
            #[derive(Deserialize)]
            struct TagList {
                tags: Option<Vec<String>>,
            }
            let page: TagList = serde_json::from_slice(&body).map_err(|e| Error::Protocol {
                target: target.clone(),
                reason: format!("unreadable tag list: {e}"),
            })?;
            tags.extend(page.tags.unwrap_or_default());
            let next = headers
                .get_all(LINK)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(next_link);
            match next {
                Some(n) => {
                    url = url::Url::parse(&format!("{base}/"))
                        .and_then(|b| b.join(&n))
                        .map(|u| u.to_string())
                        .unwrap_or(n)
                }
                None => break,
            }
        }
        Ok(tags)
    }
}

/// When an upload body last moved, to give up on uploads that stall.
///
/// What is seen as the last byte is when it entered the kernel's socket buffers, which may take a while
/// to drain over a slow link; so once the body is done, the registry may take the timeout plus as long
/// as the body took to answer. A registry that stops reading mid-body still fails after the timeout:
/// the buffers fill and the body stops moving.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
    /// Milliseconds the body took, once it is done.
    body_ms: AtomicU64,
}

impl Activity {
    const NOT_DONE: u64 = u64::MAX;

    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            body_ms: AtomicU64::new(Self::NOT_DONE),
        }
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn touch(&self) {
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    fn body_done(&self) {
        self.touch();
        self.body_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Resolves once nothing has moved for `limit` (or, after the body, for `limit` plus its time).
    async fn stalled(&self, limit: Duration) {
        loop {
            let allowed = match self.body_ms.load(Ordering::Relaxed) {
                Self::NOT_DONE => limit,
                body => limit + Duration::from_millis(body),
            };
            let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let idle = self.start.elapsed().saturating_sub(last);
            if idle >= allowed {
                return;
            }
            tokio::time::sleep(allowed - idle).await;
        }
    }
}

/// The HTTP client for `opts`, one per process and setting (building one loads the system's CA
/// certificates, which costs more than a whole small copy). It has no read timeout: reqwest's would run
/// from an upload's first byte to its answer. Stalls are caught by [`stall_guard`] and [`Activity`].
fn http_client(opts: &RegistryOptions) -> reqwest::Result<reqwest::Client> {
    static CLIENTS: std::sync::OnceLock<Mutex<HashMap<(bool, Duration), reqwest::Client>>> =
        std::sync::OnceLock::new();
    let connect = opts.timeout.min(Duration::from_secs(30));
    let key = (opts.tls_verify, connect);
    let mut clients = CLIENTS.get_or_init(Default::default).lock().expect("lock");
    if let Some(c) = clients.get(&key) {
        return Ok(c.clone());
    }
    let client = reqwest::Client::builder()
        .user_agent(concat!("okd-forge/", env!("CARGO_PKG_VERSION")))
        .danger_accept_invalid_certs(!opts.tls_verify)
        .connect_timeout(connect)
        .pool_max_idle_per_host(32)
        .build()?;
    clients.insert(key, client.clone());
    Ok(client)
}

/// `stream`, failing with `stalled()` when no chunk comes for `limit` (a download that stopped moving).
fn stall_guard(
    stream: BlobStream,
    limit: Duration,
    stalled: impl Fn() -> Error + Send + Sync + 'static,
) -> BlobStream {
    let stalled = Arc::new(stalled);
    Box::pin(futures_util::stream::unfold(Some(stream), move |s| {
        let stalled = stalled.clone();
        async move {
            let mut s = s?;
            match tokio::time::timeout(limit, s.next()).await {
                Ok(Some(item)) => Some((item, Some(s))),
                Ok(None) => None,
                Err(_) => Some((Err(stalled()), None)),
            }
        }
    }))
}

/// Whether `url` goes to the registry at `base` (same scheme, host and port), so it may carry its
/// credentials.
fn same_origin(url: &url::Url, base: &str) -> bool {
    url::Url::parse(base).is_ok_and(|b| {
        b.scheme() == url.scheme()
            && b.host_str() == url.host_str()
            && b.port_or_known_default() == url.port_or_known_default()
    })
}

/// Whether `host[:port]` (or `[v6][:port]`) is a loopback address.
fn is_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host),
    };
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn with_digest(upload: &str, digest: &Digest) -> String {
    let sep = if upload.contains('?') { '&' } else { '?' };
    format!(
        "{upload}{sep}digest={}",
        digest.to_string().replace(':', "%3A")
    )
}

fn basic(c: &Credentials) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", c.username, c.password))
    )
}

fn header_str(h: &HeaderMap, name: impl reqwest::header::AsHeaderName) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

async fn read_limited(target: &str, resp: Response, limit: u64) -> Result<Bytes> {
    let registry = resp.url().host_str().unwrap_or_default().to_string();
    let mut stream = resp.bytes_stream();
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Error::Interrupted {
            target: target.to_string(),
            registry: registry.clone(),
            reason: error_chain(&e),
        })?;
        buf.extend_from_slice(&chunk);
        if buf.len() as u64 > limit {
            return Err(Error::BadManifest {
                what: target.to_string(),
                reason: format!("response larger than {limit} bytes"),
            });
        }
    }
    Ok(Bytes::from(buf))
}

/// Turn an unexpected response into an error carrying the registry's own message.
async fn status_error(target: &str, resp: Response) -> Error {
    let status = resp.status();
    // Without the query: upload URLs carry long opaque state that helps no one reading the error.
    let mut url = resp.url().clone();
    url.set_query(None);
    let url = url.to_string();
    let body = resp.bytes().await.unwrap_or_default();
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<RegError>,
    }
    #[derive(Deserialize)]
    struct RegError {
        code: Option<String>,
        message: Option<String>,
    }
    let detail = match serde_json::from_slice::<Errors>(&body) {
        Ok(e) if !e.errors.is_empty() => {
            let parts: Vec<String> = e
                .errors
                .iter()
                .map(|x| {
                    format!(
                        "{} {}",
                        x.code.clone().unwrap_or_default(),
                        x.message.clone().unwrap_or_default()
                    )
                    .trim()
                    .to_string()
                })
                .collect();
            format!(": {}", parts.join("; "))
        }
        _ => String::new(),
    };
    if status == StatusCode::FORBIDDEN {
        return Error::Unauthorized {
            target: target.to_string(),
            registry: resp_host(&url),
            reason: format!("access denied{detail}"),
        };
    }
    Error::Registry {
        target: target.to_string(),
        url,
        status: status.as_u16(),
        detail,
    }
}

fn resp_host(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| {
            Some(format!(
                "{}{}",
                u.host_str()?,
                u.port().map(|p| format!(":{p}")).unwrap_or_default()
            ))
        })
        .unwrap_or_default()
}

/// An error and its causes on one line (reqwest hides the useful part in `source()`).
/// reqwest's and hyper's wrappers ("error sending request for url (…)", "client error (Connect)") say
/// nothing the caller does not know; they are left out.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(e);
    while let Some(c) = cur {
        let m = c.to_string();
        let generic = m.starts_with("error sending request") || m.starts_with("client error (");
        if !generic && !parts.iter().any(|p| p.contains(&m)) {
            parts.push(m);
        }
        cur = c.source();
    }
    if parts.is_empty() {
        e.to_string()
    } else {
        parts.join(": ")
    }
}

/// Parse `Bearer realm="...",service="...",scope="..."` or `Basic realm="..."`.
fn parse_challenge(h: &str) -> Option<Challenge> {
    let (scheme, rest) = h.trim().split_once(' ').unwrap_or((h.trim(), ""));
    let params = parse_params(rest);
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => Some(Challenge::Bearer {
            realm: params.get("realm")?.clone(),
            service: params.get("service").cloned(),
        }),
        _ => None,
    }
}

fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while matches!(chars.peek(), Some(c) if *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek() {
                if *c == ',' {
                    break;
                }
                value.push(*c);
                chars.next();
            }
        }
        out.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    out
}

/// The `rel="next"` target of a `Link` header (RFC 8288: the rel value may be quoted or not, and list
/// several relations).
fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        let is_next = params.split(';').any(|p| {
            p.trim().split_once('=').is_some_and(|(k, v)| {
                k.trim().eq_ignore_ascii_case("rel")
                    && v.trim()
                        .trim_matches('"')
                        .split_whitespace()
                        .any(|r| r.eq_ignore_ascii_case("next"))
            })
        });
        is_next.then(|| {
            url.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        match parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="reg.example",scope="repository:a/b:pull,push""#,
        ) {
            Some(Challenge::Bearer { realm, service }) => {
                assert_eq!(realm, "https://auth.example/token");
                assert_eq!(service.as_deref(), Some("reg.example"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        ));
        assert!(parse_challenge("Negotiate").is_none());
    }

    #[test]
    fn credentials_stay_with_their_registry() {
        let base = "https://quay.io";
        let url = |u: &str| url::Url::parse(u).unwrap();
        assert!(same_origin(
            &url("https://quay.io/v2/a/blobs/uploads/x"),
            base
        ));
        assert!(same_origin(&url("https://quay.io:443/v2/"), base));
        assert!(!same_origin(&url("https://s3.example.com/blob"), base));
        assert!(!same_origin(&url("http://quay.io/v2/"), base));
        assert!(!same_origin(&url("https://quay.io:8443/v2/"), base));
    }

    #[test]
    fn loopback_hosts() {
        for h in [
            "127.0.0.1:5000",
            "localhost",
            "localhost:80",
            "[::1]",
            "[::1]:5000",
            "127.3.4.5",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "quay.io",
            "10.0.0.1:5000",
            "[fe80::1]:5000",
            "localhost.example.com",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn links_and_digest_queries() {
        assert_eq!(
            next_link(r#"</v2/a/tags/list?last=x&n=2>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?last=x&n=2")
        );
        assert_eq!(next_link(r#"</x>; rel="prev""#), None);
        assert_eq!(next_link("</y>; rel=next").as_deref(), Some("/y"));
        assert_eq!(
            next_link(r#"</a>; rel="prev", </b>; title="x"; rel="next last""#).as_deref(),
            Some("/b")
        );
        let d = Digest::sha256_of(b"");
        assert!(
            with_digest("http://h/v2/a/blobs/uploads/u?_state=s", &d).contains("&digest=sha256%3A")
        );
        assert!(with_digest("http://h/v2/a/blobs/uploads/u", &d).contains("?digest=sha256%3A"));
    }
}
