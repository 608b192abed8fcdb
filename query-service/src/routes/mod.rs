pub(crate) mod feed;
pub(crate) mod fleet;
pub(crate) mod history;
pub(crate) mod sims;

use axum::routing::get;
use axum::{Json, Router};
use platform::http::{ops_routes, with_standard_layers};

use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .merge(sims::routes())
        .merge(history::routes())
        .merge(fleet::routes())
        .merge(feed::routes())
        .with_state(state.clone());
    let pool = state.pool.clone();
    let ops = ops_routes(state.metrics.clone(), move || {
        let pool = pool.clone();
        async move { platform::db::ping(&pool).await }
    });
    let document = crate::openapi::document();
    let router = Router::new().nest("/api/v1", api).merge(ops).route(
        "/openapi.json",
        get(move || std::future::ready(Json(document.clone()))),
    );
    with_standard_layers(router, state.metrics.clone(), state.max_body_bytes)
}
