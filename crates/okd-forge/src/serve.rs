//! `okd-forge serve`: the server (dashboard, release-controller API, update graph, registry
//! view, metrics, mutations, webhooks) over a configuration's records and store.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use build::run::Forge;
use clap::Args;

use crate::config::ConfigFile;
use crate::image::Access;
use crate::Output;

/// What `serve` takes.
#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    config: ConfigFile,
    /// The address to listen on (port 0: any free port; the URL printed says which).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// A file whose first line is the bearer token that mutations (accept, reject, promote,
    /// trigger) require; without it they are refused.
    #[arg(long, value_name = "FILE", env = "OKD_FORGE_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// A file whose first line is the secret of the GitHub webhook (`/webhooks/github`); without
    /// it GitHub deliveries are refused.
    #[arg(long, value_name = "FILE", env = "OKD_FORGE_GITHUB_SECRET_FILE")]
    github_secret_file: Option<PathBuf>,
    /// A file whose first line is the secret token of the GitLab webhook (`/webhooks/gitlab`),
    /// or its signing token (`whsec_…`); without it GitLab deliveries are refused.
    #[arg(long, value_name = "FILE", env = "OKD_FORGE_GITLAB_SECRET_FILE")]
    gitlab_secret_file: Option<PathBuf>,
    /// A release signature store to serve at /signatures/sha256=<hex>/signature-<N> (what
    /// `release sign --to DIR` writes); clusters read it with store-<name>:
    /// http://HOST:PORT/signatures in their verification ConfigMap. Default: forge.yaml's
    /// `publish.signing.store`.
    #[arg(long, value_name = "DIR")]
    signatures: Option<PathBuf>,
    #[command(flatten)]
    access: Access,
}

/// Serves until interrupted (Ctrl-C or SIGTERM).
pub async fn serve(a: ServeArgs, output: Output) -> Result<()> {
    let config = a.config.load()?;
    let token = first_line(a.token_file.as_deref(), "token")?;
    let github_secret = first_line(a.github_secret_file.as_deref(), "GitHub secret")?;
    let gitlab_secret = first_line(a.gitlab_secret_file.as_deref(), "GitLab secret")?;
    let forge = Forge::open(config, a.access.options(None)?)?;
    let mut app = server::App::new(Arc::new(forge));
    app.token = token;
    app.github_secret = github_secret;
    app.gitlab_secret = gitlab_secret;
    if let Some(dir) = a.signatures {
        app.signatures = Some(payload::signature::SignatureDir::new(dir));
    }
    serve_app(app, a.listen, output).await
}

/// The first line of `file`, trimmed (a token or a secret); an error when it cannot be read or
/// the line is empty.
fn first_line(file: Option<&Path>, what: &str) -> Result<Option<String>> {
    let Some(f) = file else { return Ok(None) };
    let text = std::fs::read_to_string(f)
        .with_context(|| format!("cannot read the {what} file {}", f.display()))?;
    let line = text.lines().next().unwrap_or("").trim().to_string();
    anyhow::ensure!(
        !line.is_empty(),
        "the {what} file {} is empty; write the {what} on its first line",
        f.display()
    );
    Ok(Some(line))
}

/// Listens on `listen`, prints the URL (a JSON object with `url` for `--output json`) and serves
/// `app` until interrupted.
pub async fn serve_app(app: server::App, listen: SocketAddr, output: Output) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    serve_listener(app, listener, output).await
}

/// Prints the URL of `listener` (a JSON object with `url` for `--output json`) and serves `app`
/// on it until interrupted.
pub async fn serve_listener(
    app: server::App,
    listener: tokio::net::TcpListener,
    output: Output,
) -> Result<()> {
    let url = format!("http://{}/", listener.local_addr()?);
    let shutdown = shutdown()?;
    match output {
        Output::Json => println!("{}", serde_json::json!({ "url": url })),
        _ => println!("serving {url}"),
    }
    server::serve(listener, Arc::new(app), shutdown).await?;
    Ok(())
}

/// A future that resolves on Ctrl-C or SIGTERM. The handlers are installed here, before the URL
/// is printed, so a signal sent as soon as the server answers is never missed.
fn shutdown() -> Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    })
}
