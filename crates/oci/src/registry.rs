//! A client for the OCI distribution API v2, for any registry (Distribution, quay.io, ...).
//!
//! - Auth: anonymous, basic, and the bearer-token challenge flow with per-repository scopes; credentials
//!   from [`AuthSource`].
//! - Blobs are streamed both ways, verified against their digest as they arrive; uploads are monolithic,
//!   or chunked (`PATCH` with `Content-Range`) when a chunk size is set and the blob is larger.
//! - Manifests keep their exact bytes, so digests never change in transit.
//! - Every request has a timeout; requests without a streamed body are retried with backoff on 429, 5xx
//!   and connection errors.
//! - TLS is rustls with the system's roots. With `tls_verify: false`, or for a loopback registry, plain
//!   http is tried when https does not answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{
    HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LINK, LOCATION,
    WWW_AUTHENTICATE,
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
    /// Timeout of each request without a streamed body, and of each read of a streamed one.
    pub timeout: Duration,
    /// How many times a failed request is tried again.
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

impl RegistryOptions {
    pub(crate) fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(10))
            .with_max_times(self.retries)
            .with_jitter()
    }
}

#[derive(Debug, Clone)]
enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// A connection to one registry host, shared by every repository handle on it.
pub struct Registry {
    host: String,
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
        let http = reqwest::Client::builder()
            .user_agent(concat!("okd-forge/", env!("CARGO_PKG_VERSION")))
            .danger_accept_invalid_certs(!opts.tls_verify)
            .connect_timeout(opts.timeout.min(Duration::from_secs(30)))
            .read_timeout(opts.timeout)
            .pool_max_idle_per_host(32)
            .build()
            .map_err(|e| Error::Unreachable {
                target: host.to_string(),
                registry: host.to_string(),
                reason: format!("cannot set up an HTTP client: {e}"),
            })?;
        Ok(Arc::new(Registry {
            host: if host == crate::reference::DOCKER_HUB {
                "registry-1.docker.io".to_string()
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

    /// The registry's host as given.
    pub fn host(&self) -> &str {
        &self.host
    }

    fn is_loopback(&self) -> bool {
        let host = self
            .host
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(&self.host);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .map(|ip| ip.is_loopback())
                .unwrap_or(false)
    }

    /// `https://host` or, where allowed and https does not answer, `http://host`. Pinging `/v2/` also
    /// learns the auth challenge.
    async fn base(&self, target: &str) -> Result<&str> {
        self.base
            .get_or_try_init(|| async {
                let https = format!("https://{}", self.host);
                let err = match self.ping(&https).await {
                    Ok(()) => return Ok(https),
                    Err(e) => e,
                };
                let tls_failed = err.contains("certificate");
                let fail = |reason: String| {
                    if tls_failed {
                        Error::Tls {
                            target: target.to_string(),
                            registry: self.host.clone(),
                            reason,
                        }
                    } else {
                        self.unreachable(target, &reason)
                    }
                };
                if !self.is_loopback() && self.opts.tls_verify {
                    return Err(fail(err));
                }
                let http = format!("http://{}", self.host);
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
            registry: self.host.clone(),
            reason: reason.to_string(),
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

    fn credentials(&self, repository: &str) -> Result<Option<Credentials>> {
        let mut cache = self.creds.lock().expect("lock");
        if let Some(c) = cache.get(repository) {
            return Ok(c.clone());
        }
        let host = if self.host == "registry-1.docker.io" {
            crate::reference::DOCKER_HUB
        } else {
            &self.host
        };
        let c = self.opts.auth.lookup(host, repository)?;
        cache.insert(repository.to_string(), c.clone());
        Ok(c)
    }

    /// The Authorization header to send for `scopes`, from what we know so far.
    fn auth_header(&self, repository: &str, scopes: &str) -> Result<Option<String>> {
        let challenge = self.challenge.lock().expect("lock").clone();
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(self.credentials(repository)?.map(|c| basic(&c))),
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
        let creds = self.credentials(repository)?;
        let unauthorized = |reason: &str| Error::Unauthorized {
            target: target.to_string(),
            registry: self.host.clone(),
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
                let resp = req
                    .send()
                    .await
                    .map_err(|e| self.unreachable(target, &error_chain(&e)))?;
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
                let body = resp
                    .bytes()
                    .await
                    .map_err(|e| self.unreachable(target, &error_chain(&e)))?;
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

    /// Send a request built by `make` (called again for each try), with auth, retries and timeouts.
    /// `streamed` requests are sent once, as their body cannot be replayed.
    async fn send(
        &self,
        target: &str,
        repository: &str,
        scopes: &str,
        streamed: bool,
        make: &(dyn Fn(&reqwest::Client, &str) -> RequestBuilder + Sync),
    ) -> Result<Response> {
        let attempt = || async {
            let base = self.base(target).await?.to_string();
            let mut refreshed = false;
            loop {
                let mut req = make(&self.http, &base);
                if !streamed {
                    req = req.timeout(self.opts.timeout);
                }
                if let Some(h) = self.auth_header(repository, scopes)? {
                    req = req.header(AUTHORIZATION, h);
                }
                let resp = req
                    .send()
                    .await
                    .map_err(|e| self.unreachable(target, &error_chain(&e)))?;
                if resp.status() == StatusCode::UNAUTHORIZED {
                    // A streamed body cannot be sent twice; uploads authenticate on the POST before it.
                    if refreshed || streamed {
                        return Err(Error::Unauthorized {
                            target: target.to_string(),
                            registry: self.host.clone(),
                            reason: "the registry rejected the credentials".into(),
                        });
                    }
                    self.authenticate(target, repository, scopes, &resp).await?;
                    refreshed = true;
                    continue;
                }
                if resp.status() == StatusCode::TOO_MANY_REQUESTS || resp.status().is_server_error()
                {
                    return Err(status_error(target, resp).await);
                }
                return Ok(resp);
            }
        };
        if streamed {
            attempt().await
        } else {
            attempt
                .retry(self.opts.backoff())
                .when(Error::is_transient)
                .notify(|e, d| tracing::debug!("retrying in {d:?}: {e}"))
                .await
        }
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
        let host = if self.registry.host == "registry-1.docker.io" {
            crate::reference::DOCKER_HUB
        } else {
            &self.registry.host
        };
        let r = RegistryRepo {
            registry: host.to_string(),
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

    async fn send(
        &self,
        target: &str,
        mount_from: Option<&str>,
        streamed: bool,
        make: &(dyn Fn(&reqwest::Client, &str) -> RequestBuilder + Sync),
    ) -> Result<Response> {
        self.registry
            .send(target, &self.name, &self.scopes(mount_from), streamed, make)
            .await
    }

    /// Make sure the registry is reachable and we are allowed in, before a long operation starts.
    pub async fn check_access(&self) -> Result<()> {
        let target = self.display(None);
        let name = self.name.clone();
        let resp = self
            .send(&target, None, false, &|c, base| {
                c.get(format!("{base}/v2/{name}/tags/list?n=1"))
            })
            .await?;
        // 404 is an empty (or not yet existing) repository, which is fine for a destination.
        if resp.status().is_success() || resp.status() == StatusCode::NOT_FOUND {
            return Ok(());
        }
        Err(status_error(&target, resp).await)
    }

    /// Fetch a manifest by tag or digest, with its exact bytes, checked against the digest that names it.
    pub async fn get_manifest(&self, sel: &Selector) -> Result<RawManifest> {
        let target = self.display(Some(sel));
        let url_ref = match sel {
            Selector::Tag(t) => t.clone(),
            Selector::Digest(d) => d.to_string(),
        };
        let name = self.name.clone();
        let resp = self
            .send(&target, None, false, &|c, base| {
                c.get(format!("{base}/v2/{name}/manifests/{url_ref}"))
                    .header(ACCEPT, media_type::ACCEPT_MANIFESTS)
            })
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Err(Error::NotFound { what: target });
        }
        if !resp.status().is_success() {
            return Err(status_error(&target, resp).await);
        }
        let content_type = header_str(resp.headers(), CONTENT_TYPE);
        let header_digest = header_str(resp.headers(), "docker-content-digest")
            .and_then(|d| d.parse::<Digest>().ok());
        let bytes = read_limited(&target, resp, crate::layout::MAX_MANIFEST).await?;
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
        let resp = self
            .send(&target, None, false, &|c, base| {
                c.put(format!("{base}/v2/{name}/manifests/{url_ref}"))
                    .header(CONTENT_TYPE, mt.as_str())
                    .body(body.clone())
            })
            .await?;
        if !resp.status().is_success() {
            return Err(status_error(&target, resp).await);
        }
        if let Some(d) = header_str(resp.headers(), "docker-content-digest")
            .and_then(|d| d.parse::<Digest>().ok())
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

    /// Whether the repository has a blob (HEAD).
    pub async fn has_blob(&self, digest: &Digest) -> Result<bool> {
        let target = self.display(Some(&Selector::Digest(digest.clone())));
        let name = self.name.clone();
        let resp = self
            .send(&target, None, false, &|c, base| {
                c.head(format!("{base}/v2/{name}/blobs/{digest}"))
            })
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(status_error(&target, resp).await),
        }
    }

    /// Stream a blob; the stream fails at its end unless the bytes match the descriptor.
    pub async fn get_blob(&self, desc: &Descriptor) -> Result<VerifiedStream> {
        let target = format!("blob {} of {}", desc.digest, self.display(None));
        let name = self.name.clone();
        let digest = desc.digest.clone();
        let resp = self
            .send(&target, None, false, &|c, base| {
                c.get(format!("{base}/v2/{name}/blobs/{digest}"))
            })
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Err(Error::NotFound { what: target });
        }
        if !resp.status().is_success() {
            return Err(status_error(&target, resp).await);
        }
        let registry = self.registry.host.clone();
        let t2 = target.clone();
        let inner = resp.bytes_stream().map(move |r| {
            r.map_err(|e| Error::Interrupted {
                target: t2.clone(),
                registry: registry.clone(),
                reason: error_chain(&e),
            })
        });
        Ok(verified(
            target,
            &desc.digest,
            Some(desc.size),
            Box::pin(inner),
        ))
    }

    /// Try to mount a blob from another repository of the same registry. `Ok(false)` when the registry
    /// does not (it answers with an upload session, which is cancelled).
    pub async fn mount_blob(&self, digest: &Digest, from: &str) -> Result<bool> {
        let target = format!("blob {digest} of {}", self.display(None));
        let name = self.name.clone();
        let from_s = from.to_string();
        let resp = self
            .send(&target, Some(from), false, &|c, base| {
                c.post(format!("{base}/v2/{name}/blobs/uploads/"))
                    .query(&[("mount", digest.to_string()), ("from", from_s.clone())])
                    .header(CONTENT_LENGTH, 0)
            })
            .await?;
        match resp.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => {
                if let Ok(url) = self.location(&resp).await {
                    let _ = self
                        .send(&target, None, false, &|c, _| c.delete(url.clone()))
                        .await;
                }
                Ok(false)
            }
            _ => Err(status_error(&target, resp).await),
        }
    }

    async fn location(&self, resp: &Response) -> Result<String> {
        let loc = header_str(resp.headers(), LOCATION).ok_or_else(|| Error::BadManifest {
            what: self.display(None),
            reason: "registry started an upload without a Location header".into(),
        })?;
        let base = self.registry.base(&self.display(None)).await?;
        let base_url = url::Url::parse(&format!("{base}/")).expect("valid base");
        Ok(base_url.join(&loc).map(|u| u.to_string()).unwrap_or(loc))
    }

    async fn start_upload(&self, target: &str) -> Result<String> {
        let name = self.name.clone();
        let resp = self
            .send(target, None, false, &|c, base| {
                c.post(format!("{base}/v2/{name}/blobs/uploads/"))
                    .header(CONTENT_LENGTH, 0)
            })
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(status_error(target, resp).await);
        }
        self.location(&resp).await
    }

    /// Upload a blob from a stream. The registry commits it only if all bytes arrive and match the digest;
    /// a failing stream aborts the upload, so nothing partial becomes visible.
    pub async fn put_blob(&self, desc: &Descriptor, stream: VerifiedStream) -> Result<()> {
        let target = format!("blob {} of {}", desc.digest, self.display(None));
        stream.expect_digest(&target, &desc.digest)?;
        let stream: BlobStream = Box::pin(stream);
        let upload = self.start_upload(&target).await?;
        let result = match self.registry.opts.chunk_size {
            Some(chunk) if desc.size > chunk => {
                self.put_chunked(&target, desc, &upload, stream, chunk)
                    .await
            }
            _ => {
                let (body, failure) = capture_failure(stream);
                let url = with_digest(&upload, &desc.digest);
                let size = desc.size;
                let body = std::sync::Mutex::new(Some(body));
                let result = self
                    .send(&target, None, true, &|c, _| {
                        let b = body
                            .lock()
                            .expect("lock")
                            .take()
                            .unwrap_or_else(|| reqwest::Body::from(Bytes::new()));
                        c.put(url.clone())
                            .header(CONTENT_TYPE, "application/octet-stream")
                            .header(CONTENT_LENGTH, size)
                            .body(b)
                    })
                    .await;
                finish_upload(&target, result, &failure).await
            }
        };
        if result.is_err() {
            // Best effort: the registry would purge the session eventually, but say we are done with it.
            let _ = self
                .send(&target, None, false, &|c, _| c.delete(upload.clone()))
                .await;
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
        let mut upload = upload.to_string();
        let mut offset = 0u64;
        let mut buf: Vec<u8> = Vec::with_capacity(chunk as usize);
        let mut ended = false;
        while !ended {
            while (buf.len() as u64) < chunk {
                match stream.next().await {
                    Some(c) => buf.extend_from_slice(&c?),
                    None => {
                        ended = true;
                        break;
                    }
                }
            }
            let take = buf.len().min(chunk as usize);
            if take == 0 {
                break;
            }
            let part = Bytes::copy_from_slice(&buf[..take]);
            buf.drain(..take);
            ended &= buf.is_empty();
            let range = format!("{}-{}", offset, offset + part.len() as u64 - 1);
            let u = upload.clone();
            let resp = self
                .send(target, None, false, &|c, _| {
                    c.patch(u.clone())
                        .header(CONTENT_TYPE, "application/octet-stream")
                        .header(CONTENT_RANGE, range.as_str())
                        .header(CONTENT_LENGTH, part.len())
                        .body(part.clone())
                })
                .await?;
            if resp.status() != StatusCode::ACCEPTED {
                return Err(status_error(target, resp).await);
            }
            offset += part.len() as u64;
            upload = self.location(&resp).await?;
        }
        let url = with_digest(&upload, &desc.digest);
        let resp = self
            .send(target, None, false, &|c, _| {
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
        let mut tags = Vec::new();
        loop {
            let u = url.clone();
            let resp = self
                .send(&target, None, false, &|c, _| c.get(u.clone()))
                .await?;
            if resp.status() == StatusCode::NOT_FOUND {
                return Err(Error::NotFound { what: target });
            }
            if !resp.status().is_success() {
                return Err(status_error(&target, resp).await);
            }
            let next = header_str(resp.headers(), LINK).and_then(|l| next_link(&l));
            #[derive(Deserialize)]
            struct TagList {
                tags: Option<Vec<String>>,
            }
            let body = read_limited(&target, resp, 64 << 20).await?;
            let page: TagList = serde_json::from_slice(&body).map_err(|e| Error::BadManifest {
                what: target.clone(),
                reason: format!("unreadable tag list: {e}"),
            })?;
            tags.extend(page.tags.unwrap_or_default());
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

type FailureSlot = Arc<Mutex<Option<Error>>>;

/// Turn a blob stream into a request body; the stream's own error is kept so it can be reported instead
/// of the transport's "error sending request".
fn capture_failure(stream: BlobStream) -> (reqwest::Body, FailureSlot) {
    let slot: FailureSlot = Arc::new(Mutex::new(None));
    let s2 = slot.clone();
    let mapped = stream.map(move |r| {
        r.map_err(|e| {
            let msg = e.to_string();
            *s2.lock().expect("lock") = Some(e);
            std::io::Error::other(msg)
        })
    });
    (reqwest::Body::wrap_stream(mapped), slot)
}

async fn finish_upload(
    target: &str,
    result: Result<Response>,
    failure: &FailureSlot,
) -> Result<()> {
    if let Some(e) = failure.lock().expect("lock").take() {
        return Err(e);
    }
    let resp = result?;
    if resp.status() != StatusCode::CREATED {
        return Err(status_error(target, resp).await);
    }
    Ok(())
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

/// The `rel="next"` target of a `Link` header.
fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params.contains("rel=\"next\"").then(|| {
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
    fn links_and_digest_queries() {
        assert_eq!(
            next_link(r#"</v2/a/tags/list?last=x&n=2>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?last=x&n=2")
        );
        assert_eq!(next_link(r#"</x>; rel="prev""#), None);
        let d = Digest::sha256_of(b"");
        assert!(
            with_digest("http://h/v2/a/blobs/uploads/u?_state=s", &d).contains("&digest=sha256%3A")
        );
        assert!(with_digest("http://h/v2/a/blobs/uploads/u", &d).contains("?digest=sha256%3A"));
    }
}
