//! An HTTP proxy in front of a real registry that injects failures into chosen requests.
//!
//! A real registry never answers 503 or drops a connection on demand, so retry behaviour is tested by
//! putting this between the client and a real [`RegistryServer`](crate::RegistryServer) (which must use
//! relative URLs, as the testkit's do, so uploads come back through the proxy). Everything that is not
//! failed is forwarded unchanged, streaming both ways.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures_util::StreamExt;

/// A failure to inject, into the first `times` requests that match.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer `status` instead of forwarding.
    Status {
        /// The HTTP method to match (`GET`, `PUT`, ...).
        method: &'static str,
        /// A substring of the path to match, e.g. `/blobs/`.
        path_contains: String,
        /// The status to answer.
        status: u16,
        /// How many matching requests to fail.
        times: usize,
    },
    /// Hold the request for `seconds` before forwarding it (a registry that hangs).
    Stall {
        /// A substring of the path to match (any method).
        path_contains: String,
        /// How long to hold it.
        seconds: u64,
        /// How many matching requests to stall.
        times: usize,
    },
    /// Forward, but pass the request and response bodies at `bytes_per_sec` (a slow link).
    Throttle {
        /// A substring of the path to match (any method).
        path_contains: String,
        /// The rate.
        bytes_per_sec: u64,
    },
    /// Forward, but hold the response body once for `seconds`, after its first chunk (a download that
    /// stops moving half-way).
    Pause {
        /// A substring of the path to match (GET requests only).
        path_contains: String,
        /// How long to hold it.
        seconds: u64,
        /// How many matching requests to pause.
        times: usize,
    },
    /// Fail about `percent` % of all requests, chosen at random (seeded, so a run's fraction is
    /// stable): answer `status`, or with `status: None` drop the connection without an answer (the
    /// request never reaches the registry).
    Fraction {
        /// The share of requests to fail, 0 to 100.
        percent: u32,
        /// The status to answer; `None` drops the connection.
        status: Option<u16>,
        /// The seed of the choice.
        seed: u64,
    },
    /// Forward, but cut the response body off after `after` bytes by dropping the connection.
    Truncate {
        /// A substring of the path to match (GET requests only).
        path_contains: String,
        /// Bytes to let through.
        after: usize,
        /// How many matching requests to cut.
        times: usize,
    },
}

struct Inner {
    rng: Mutex<Option<rand::rngs::StdRng>>,
    upstream: String,
    http: reqwest::Client,
    faults: Mutex<Vec<Fault>>,
    injected: AtomicUsize,
    log: Mutex<Vec<(String, String)>>,
}

/// The proxy, on 127.0.0.1; stops when dropped.
pub struct FaultProxy {
    port: u16,
    inner: Arc<Inner>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl FaultProxy {
    /// Forward to `http://{upstream}` (e.g. a registry's `host()`), injecting `faults`.
    pub fn start(upstream: &str, faults: Vec<Fault>) -> FaultProxy {
        let inner = Arc::new(Inner {
            rng: Mutex::new(None),
            upstream: format!("http://{upstream}"),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            faults: Mutex::new(faults),
            injected: AtomicUsize::new(0),
            log: Mutex::new(Vec::new()),
        });
        let app = Router::new().fallback(forward).with_state(inner.clone());
        let (port, tx) = crate::serve(app);
        FaultProxy {
            port,
            inner,
            shutdown: Some(tx),
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `docker://127.0.0.1:PORT/{name}`.
    pub fn docker(&self, name: &str) -> String {
        format!("docker://{}/{name}", self.host())
    }

    /// How many failures were injected so far.
    pub fn injected(&self) -> usize {
        self.inner.injected.load(Ordering::SeqCst)
    }

    /// How many requests with `method` and a path containing `path_contains` came through.
    pub fn count(&self, method: &str, path_contains: &str) -> usize {
        self.inner
            .log
            .lock()
            .expect("lock")
            .iter()
            .filter(|(m, p)| m == method && p.contains(path_contains))
            .count()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

enum Action {
    Drop,
    Forward,
    Fail(u16),
    Cut(usize),
    Pause(u64),
    Stall(u64),
    Throttle(u64),
}

fn decide(inner: &Inner, method: &str, path: &str) -> Action {
    let mut faults = inner.faults.lock().expect("lock");
    for f in faults.iter_mut() {
        if let Fault::Fraction {
            percent,
            status,
            seed,
        } = f
        {
            use rand::{Rng, SeedableRng};
            let mut rng = inner.rng.lock().expect("lock");
            let rng = rng.get_or_insert_with(|| rand::rngs::StdRng::seed_from_u64(*seed));
            if rng.random_range(0..100) < *percent {
                inner.injected.fetch_add(1, Ordering::SeqCst);
                return match status {
                    Some(s) => Action::Fail(*s),
                    None => Action::Drop,
                };
            }
            continue;
        }
        // What each fault matches, its countdown (none: every match, and not counted), and its action.
        let (wanted, pattern, times, action) = match f {
            Fault::Status {
                method,
                path_contains,
                status,
                times,
            } => (
                Some(*method),
                path_contains,
                Some(times),
                Action::Fail(*status),
            ),
            Fault::Stall {
                path_contains,
                seconds,
                times,
            } => (None, path_contains, Some(times), Action::Stall(*seconds)),
            Fault::Throttle {
                path_contains,
                bytes_per_sec,
            } => (None, path_contains, None, Action::Throttle(*bytes_per_sec)),
            Fault::Pause {
                path_contains,
                seconds,
                times,
            } => (
                Some("GET"),
                path_contains,
                Some(times),
                Action::Pause(*seconds),
            ),
            Fault::Truncate {
                path_contains,
                after,
                times,
            } => (Some("GET"), path_contains, Some(times), Action::Cut(*after)),
            Fault::Fraction { .. } => unreachable!("handled above"),
        };
        if wanted.is_some_and(|m| m != method) || !path.contains(pattern.as_str()) {
            continue;
        }
        match times {
            None => return action,
            Some(t) if *t > 0 => {
                *t -= 1;
                inner.injected.fetch_add(1, Ordering::SeqCst);
                return action;
            }
            Some(_) => {}
        }
    }
    Action::Forward
}

const HOP_BY_HOP: [&str; 4] = ["connection", "transfer-encoding", "keep-alive", "host"];

async fn forward(State(inner): State<Arc<Inner>>, req: Request) -> Response {
    let method = req.method().clone();
    let path_q = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    inner
        .log
        .lock()
        .expect("lock")
        .push((method.to_string(), req.uri().path().to_string()));
    let action = decide(&inner, method.as_str(), req.uri().path());
    let rate = match action {
        Action::Throttle(r) => Some(r),
        _ => None,
    };
    match action {
        Action::Drop => {
            // Unwinding out of the handler ends the connection's task: the socket closes with no
            // answer, as when a load balancer or the network drops it. (`resume_unwind` skips the
            // panic hook, so nothing is printed.)
            std::panic::resume_unwind(Box::new("injected connection drop"));
        }
        Action::Fail(status) => {
            let status = StatusCode::from_u16(status).expect("status");
            return (status, "injected failure").into_response();
        }
        Action::Stall(secs) => tokio::time::sleep(std::time::Duration::from_secs(secs)).await,
        _ => {}
    }
    let mut out = inner
        .http
        .request(method, format!("{}{path_q}", inner.upstream));
    for (k, v) in req.headers() {
        if !HOP_BY_HOP.contains(&k.as_str()) {
            out = out.header(k, v);
        }
    }
    let body = reqwest::Body::wrap_stream(throttled(req.into_body().into_data_stream(), rate));
    let resp = match out.body(body).send().await {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let mut builder = Response::builder().status(resp.status());
    for (k, v) in resp.headers() {
        if !HOP_BY_HOP.contains(&k.as_str()) {
            builder = builder.header(HeaderName::from(k), v);
        }
    }
    let stream = resp.bytes_stream();
    let body = match action {
        Action::Cut(after) => {
            let mut left = after;
            Body::from_stream(stream.map(move |chunk| {
                let chunk = chunk.map_err(std::io::Error::other)?;
                if left == 0 {
                    return Err(std::io::Error::other("injected disconnect"));
                }
                let n = chunk.len().min(left);
                left -= n;
                Ok(chunk.slice(..n))
            }))
        }
        Action::Pause(secs) => {
            // Hold the second chunk, once: the body starts, then stops moving.
            let mut n = 0u32;
            Body::from_stream(stream.then(move |chunk| {
                n += 1;
                let wait = n == 2;
                async move {
                    if wait {
                        tokio::time::sleep(std::time::Duration::from_secs(secs)).await;
                    }
                    chunk
                }
            }))
        }
        _ => Body::from_stream(throttled(stream, rate)),
    };
    builder.body(body).expect("response")
}

/// The stream, at `rate` bytes per second if given: each chunk waits for its share of the time.
fn throttled<S, E>(
    stream: S,
    rate: Option<u64>,
) -> std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<bytes::Bytes, E>> + Send>>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Send + 'static,
    E: Send + 'static,
{
    match rate {
        None => Box::pin(stream),
        Some(rate) => Box::pin(stream.then(move |chunk| async move {
            if let Ok(c) = &chunk {
                let secs = c.len() as f64 / rate.max(1) as f64;
                tokio::time::sleep(std::time::Duration::from_secs_f64(secs)).await;
            }
            chunk
        })),
    }
}
