//! The global feed: every stored event after a position, in the global log's order, so
//! downstream systems can backfill what NATS did not deliver.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use eventstore::StoredEvent;
use platform::{ApiError, ApiQuery, Principal};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::consistency::ConsistentRead;
use crate::params::event_limit;
use crate::routes::history::cursor_at;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/events", get(feed))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FeedParams {
    /// The position of the last event already read (`next_after` of the previous page);
    /// default 0, the beginning of the log.
    #[param(minimum = 0)]
    after: Option<i64>,
    /// Events per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FeedPage {
    /// In the global log's order: (writing transaction, position). Positions are increasing
    /// per aggregate but not globally; resume with `next_after`, never with the highest
    /// position seen.
    pub events: Vec<StoredEvent>,
    /// `after` of the next page: the last event's position, or the same `after` when empty.
    pub next_after: i64,
}

/// Every stored event after `after`, in the global order. Only events that no transaction
/// still in flight can precede are served, so a reader following `next_after` never misses one.
#[utoipa::path(
    get, path = "/api/v1/events", tag = "history",
    params(FeedParams, crate::openapi::ConsistencyHeader),
    responses(
        (status = 200, description = "One page of the feed", body = FeedPage),
        (status = 400, description = "`INVALID_QUERY`, `UNKNOWN_POSITION`", body = crate::openapi::ErrorBody),
    )
)]
pub async fn feed(
    State(state): State<AppState>,
    _: Principal,
    ApiQuery(params): ApiQuery<FeedParams>,
    _read: ConsistentRead,
) -> Result<Json<FeedPage>, ApiError> {
    let limit = event_limit(params.limit)?;
    let after = params.after.unwrap_or(0);
    let cursor = cursor_at(&state, "after", after).await?;
    let events = state.log.read_after(cursor, limit).await?;
    let next_after = events.last().map_or(after, |e| e.position);
    Ok(Json(FeedPage { events, next_after }))
}
