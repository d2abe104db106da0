//! Real peers for okd-forge's tests and benchmarks, started on loopback and stopped when dropped.
//!
//! - [`RegistryServer`]: a Distribution registry (Debian's `docker-registry`) on a free port with its
//!   storage in a temp dir; without auth, with htpasswd, with bearer tokens from a [`TokenServer`], and
//!   optionally with TLS ([`Pki`]).
//! - [`skopeo`] and [`umoci`]: the independent clients that cross-check what okd-forge writes.
//! - [`images`]: deterministic test images written into an OCI layout.
//! - [`release`]: the component images of a small OKD release (real files, labels, `/manifests`), broken
//!   variants, and readers for the payloads `okd-forge release new` writes.
//! - [`git`]: git repositories on disk with fixed dates and no user configuration, for changelogs.
//! - [`rpm`]: rpm databases made by the real rpm, for OS images.
//! - [`FileServer`]: files of a directory over HTTP (CoreOS stream metadata).
//! - [`bench`]: the benchmarks' cached data sets and cost measurements.
//! - [`FaultProxy`]: an HTTP proxy in front of a real registry that fails chosen requests, to exercise
//!   retries (the only way to make a real registry answer 503 or drop a connection on demand).
//!
//! A peer that is not installed is a test failure, never a skip: `scripts/test.sh` installs them all.
//!
//! ```no_run
//! let registry = testkit::RegistryServer::start();
//! let out = testkit::skopeo(&["inspect", "--tls-verify=false", &registry.docker("okd/x:v1")]);
//! ```

pub mod bench;
mod files;
pub mod git;
pub mod gpg;
pub mod images;
mod peers;
mod pki;
pub mod podman;
mod proxy;
mod registry;
pub mod release;
pub mod rpm;
mod token;

use std::path::{Path, PathBuf};

pub use files::FileServer;
pub use peers::{skopeo, skopeo_digest, skopeo_try, umoci, verify_blobs, verify_layout};
pub use pki::Pki;
pub use proxy::{Fault, FaultProxy};
pub use registry::{RegistryAuth, RegistryServer};
pub use token::{Grant, TokenServer};

/// The full path of a program the tests need; panics, saying how to install it, if it is missing.
pub fn require(program: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{program}` is not installed; run scripts/test.sh, which installs the test peers \
                 (docker-registry, skopeo, umoci, openssl) with apt-get"
            )
        })
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// Run a program to completion, panicking with its output unless it succeeds; returns stdout.
pub fn run_ok(cmd: &mut std::process::Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The names of the entries of `dir`, sorted.
pub fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| {
            e.expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// Serve `app` on a free port of 127.0.0.1 from a runtime on its own thread (so it keeps answering
/// while a test blocks); sending on (or dropping) the returned channel stops it.
pub(crate) fn serve(app: axum::Router) -> (u16, tokio::sync::oneshot::Sender<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await;
            })
    });
    (port, tx)
}
