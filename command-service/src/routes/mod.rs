pub(crate) mod auth;
pub(crate) mod bulk;
pub(crate) mod controls;
pub(crate) mod import;
pub(crate) mod rules;
pub(crate) mod sims;
pub(crate) mod sync;
pub(crate) mod users;
pub(crate) mod webhooks;

use axum::Router;
use platform::http::{ops_routes_for_database, with_standard_layers};

use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .merge(auth::routes())
        .merge(users::routes())
        .merge(sims::routes())
        .merge(controls::routes())
        .merge(sync::routes())
        .merge(bulk::routes(state.bulk.max_body_bytes))
        .merge(import::routes(state.bulk.max_body_bytes))
        .merge(webhooks::routes())
        .merge(rules::routes())
        .with_state(state.clone());
    let ops = ops_routes_for_database(state.metrics.clone(), state.pool.clone());
    let router = Router::new()
        .nest("/api/v1", api)
        .route("/openapi.json", axum::routing::get(crate::openapi::serve))
        .merge(ops);
    with_standard_layers(router, state.metrics.clone(), state.max_body_bytes)
}
