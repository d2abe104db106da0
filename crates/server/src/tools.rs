//! The release tools of stable releases, as promotion extracts them (`publish.tools` in
//! forge.yaml): `GET /tools/<release>/<file>` serves `<tools>/<release>/<file>`, the
//! per-platform archives (`openshift-client-linux-<release>.tar.gz`, …-windows-<release>.zip),
//! `release.txt`, `sha256sum.txt` and `sha256sum.txt.asc`.
//!
//! | request | answer |
//! |---|---|
//! | `GET\|HEAD /tools/<release>/<file>` | the file: `application/gzip` or `application/zip` for archives, else `text/plain` |
//! | a name with `/`, `..` or a leading `.` (a directory being written), a missing file | `404` |
//! | any path, without `publish.tools` | `404` saying so |

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use crate::signatures::{file_response, not_found};
use crate::AppState;

/// This module's routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/tools/{release}/{file}", get(tool))
}

/// Whether `name` is a file or release name this server hands out: no path separators, not
/// hidden (a directory being written is `.<release>.tmp`).
pub fn servable(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\'])
}

/// `GET /tools/<release>/<file>`.
async fn tool(
    State(app): State<AppState>,
    Path((release, file)): Path<(String, String)>,
) -> Response {
    let Some(dir) = &app.forge.config.publish.tools else {
        return not_found(
            "this server publishes no tools (forge.yaml has no publish.tools)".into(),
        );
    };
    if !servable(&release) || !servable(&file) {
        return not_found(format!("no tools file {release}/{file}"));
    }
    let kind = if file.ends_with(".gz") {
        "application/gzip"
    } else if file.ends_with(".zip") {
        "application/zip"
    } else {
        "text/plain; charset=utf-8"
    };
    let path = dir.join(&release).join(&file);
    file_response(&path, kind, &format!("tools file {release}/{file}")).await
}
