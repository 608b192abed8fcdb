pub(crate) mod export;
pub(crate) mod feed;
pub(crate) mod fleet;
pub(crate) mod history;
pub(crate) mod paging;
pub(crate) mod sim_list;
pub(crate) mod sims;

use axum::routing::get;
use axum::{Json, Router};
use std::time::Duration;

use platform::http::{ops_routes_for_database, with_layers, LayerOptions, DEFAULT_REQUEST_TIMEOUT};

use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .merge(sims::routes())
        .merge(history::routes())
        .merge(fleet::routes())
        .merge(feed::routes())
        .with_state(state.clone());
    let ops = ops_routes_for_database(state.metrics.clone(), state.pool.clone());
    let document = crate::openapi::document();
    let router = Router::new().nest("/api/v1", api).merge(ops).route(
        "/openapi.json",
        get(move || std::future::ready(Json(document.clone()))),
    );
    // A query waiting for its consistency token must answer 503 CONSISTENCY_TIMEOUT (the
    // documented answer) before the request timeout's 408 cuts it off.
    let options = LayerOptions {
        body_limit_bytes: state.max_body_bytes,
        request_timeout: DEFAULT_REQUEST_TIMEOUT.max(state.consistency.max_wait + Duration::from_secs(5)),
    };
    with_layers(router, state.metrics.clone(), options)
}
