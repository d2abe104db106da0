//! `okd-forge serve`: the server (dashboard, release-controller API, update graph, registry
//! view, metrics) over a configuration's records and store.

use std::net::SocketAddr;
use std::path::PathBuf;
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
    /// A file whose first line is the bearer token that mutations (accept, reject) require;
    /// without it they are refused.
    #[arg(long, value_name = "FILE", env = "OKD_FORGE_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    #[command(flatten)]
    access: Access,
}

/// Serves until interrupted (Ctrl-C or SIGTERM).
pub async fn serve(a: ServeArgs, output: Output) -> Result<()> {
    let config = a.config.load()?;
    let token = match &a.token_file {
        None => None,
        Some(f) => {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("cannot read the token file {}", f.display()))?;
            let token = text.lines().next().unwrap_or("").trim().to_string();
            anyhow::ensure!(
                !token.is_empty(),
                "the token file {} is empty; write the token on its first line",
                f.display()
            );
            Some(token)
        }
    };
    let forge = Forge::open(config, a.access.options(None)?)?;
    let mut app = server::App::new(Arc::new(forge));
    app.token = token;
    serve_app(app, a.listen, output).await
}

/// Listens on `listen`, prints the URL (a JSON object with `url` for `--output json`) and serves
/// `app` until interrupted.
pub async fn serve_app(app: server::App, listen: SocketAddr, output: Output) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let url = format!("http://{}/", listener.local_addr()?);
    match output {
        Output::Json => println!("{}", serde_json::json!({ "url": url })),
        _ => println!("serving {url}"),
    }
    server::serve(listener, Arc::new(app), shutdown()).await?;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler can be installed");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
