//! An HTTP server on loopback that serves the files of a directory, read at each request, so that
//! a test can change what it serves (CoreOS stream metadata for `os:` sources).

use std::path::{Path, PathBuf};

use axum::http::{StatusCode, Uri};

/// Serves `GET /NAME` from its directory: the file's bytes, or 404. Stopped when dropped.
pub struct FileServer {
    dir: PathBuf,
    port: u16,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl FileServer {
    /// Serves `dir` on a free port of 127.0.0.1.
    pub fn start(dir: &Path) -> FileServer {
        let root = dir.to_path_buf();
        let app = axum::Router::new().fallback(move |uri: Uri| {
            let root = root.clone();
            async move {
                let name = uri.path().trim_start_matches('/');
                if name.is_empty() || name.split('/').any(|p| p == ".." || p.is_empty()) {
                    return Err(StatusCode::NOT_FOUND);
                }
                std::fs::read(root.join(name)).map_err(|_| StatusCode::NOT_FOUND)
            }
        });
        let (port, stop) = crate::serve(app);
        FileServer {
            dir: dir.to_path_buf(),
            port,
            _stop: stop,
        }
    }

    /// The URL of `name`.
    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}", self.port)
    }

    /// Writes `name` (served from the next request on).
    pub fn put(&self, name: &str, bytes: impl AsRef<[u8]>) {
        std::fs::write(self.dir.join(name), bytes).expect("write a served file");
    }
}
