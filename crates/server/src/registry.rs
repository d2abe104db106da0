//! See the [crate documentation](crate).

use axum::Router;

use crate::AppState;

/// This module's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
}
