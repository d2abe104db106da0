//! `okd-forge serve`: one axum router over a [`Forge`] (its records, store and configuration).
//!
//! | module | paths |
//! |---|---|
//! | [`dashboard`] | `/`, `/streams/…`, `/releases/…` (HTML, server-rendered) |
//! | [`api`] | `/api/v1/releasestream/…`, `/api/v1/releasestreams/…`, `/changelog` (release-controller JSON) |
//! | [`graph`] | `/graph`, `/api/upgrades_info/graph`, `/api/upgrades_info/v1/graph` (Cincinnati) |
//! | [`registry`] | `/v2/…` (read-only OCI distribution API over the store) |
//! | [`ops`] | `/healthz`, `/readyz`, `/metrics`; the bearer-token mutations (accept, reject, promote, `/api/v1/trigger`) and the build queue |
//! | [`signatures`] | `/signatures/sha256=<hex>/signature-<N>` (a release signature store, as the CVO reads one) |
//! | [`tools`] | `/tools/<release>/<file>` (the tools `publish.tools` extracted for a stable release) |
//! | [`webhook`] | `/webhooks/github`, `/webhooks/gitlab` (signed push events trigger builds) |

use std::sync::Arc;

use axum::Router;
use build::run::Forge;

pub mod api;
pub mod dashboard;
pub mod graph;
pub mod ops;
pub mod registry;
pub mod signatures;
pub mod tools;
pub mod webhook;

/// What every handler shares.
pub struct App {
    /// The configuration, the records, the store.
    pub forge: Arc<Forge>,
    /// The bearer token that mutations (accept, reject, promote, trigger) require; with none,
    /// mutations are refused.
    pub token: Option<String>,
    /// The secret of the GitHub webhook (`X-Hub-Signature-256`); with none, `/webhooks/github`
    /// is refused.
    pub github_secret: Option<String>,
    /// The secret token (`X-Gitlab-Token`) or signing token (`whsec_…`, `webhook-signature`) of
    /// the GitLab webhook; with none, `/webhooks/gitlab` is refused.
    pub gitlab_secret: Option<String>,
    /// The builds that triggers and webhooks started, one at a time.
    pub builds: ops::Builds,
    /// The release signature store served at `/signatures/` (default: `publish.signing.store`);
    /// with none, it answers 404.
    pub signatures: Option<payload::signature::SignatureDir>,
}

impl App {
    /// An app over `forge` with every mutation and webhook refused (no token, no secrets).
    pub fn new(forge: Arc<Forge>) -> App {
        App {
            token: None,
            github_secret: None,
            gitlab_secret: None,
            builds: ops::Builds::default(),
            signatures: forge
                .config
                .publish
                .signing
                .as_ref()
                .map(|s| payload::signature::SignatureDir::new(&s.store)),
            forge,
        }
    }
}

/// The shared state of the router.
pub type AppState = Arc<App>;

/// Every route of the server.
pub fn router(app: AppState) -> Router {
    Router::new()
        .merge(dashboard::routes())
        .merge(api::routes())
        .merge(graph::routes())
        .merge(registry::routes())
        .merge(ops::routes())
        .merge(webhook::routes())
        .merge(signatures::routes())
        .merge(tools::routes())
        .with_state(app)
}

/// Serves `router(app)` on `listener` until `shutdown` resolves, then finishes the requests in
/// flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown)
        .await
}
