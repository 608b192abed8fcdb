pub(crate) mod connectivity;
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

use platform::http::{with_layers, LayerOptions, DEFAULT_REQUEST_TIMEOUT};
use platform::readiness::{ops_routes_with_dependencies, DependencyCheck, Report};

use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .merge(sims::routes())
        .merge(history::routes())
        .merge(connectivity::routes())
        .merge(fleet::routes())
        .merge(feed::routes())
        .with_state(state.clone());
    // Postgres is essential; without Redis reads go to Postgres: "degraded", still ready.
    let (pool, cache) = (state.pool.clone(), state.cache.clone());
    let ops = ops_routes_with_dependencies(state.metrics.clone(), move || {
        let (pool, cache) = (pool.clone(), cache.clone());
        async move {
            Report(vec![
                DependencyCheck::essential("postgres", platform::db::ping(&pool).await),
                DependencyCheck::optional("redis", cache.ping().await),
            ])
        }
    });
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
