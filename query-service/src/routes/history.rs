//! From the event store itself: a SIM's full history and its state at any instant.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use eventstore::{LogCursor, StoreError, StoredEvent};
use platform::{ApiError, ApiQuery, IccidPath, Principal};
use readmodel::SimView;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::consistency::ConsistentRead;
use crate::params::{event_limit, invalid, parse_instant};
use crate::routes::sims::sim_not_found;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sims/{iccid}/events", get(events))
        .route("/sims/{iccid}/state", get(state_as_of))
}

/// The cursor of a public position; an unknown one is 400 `UNKNOWN_POSITION`.
pub async fn cursor_at(state: &AppState, parameter: &str, position: i64) -> Result<LogCursor, ApiError> {
    if position < 0 {
        return Err(invalid(parameter, "positions are 0 or more"));
    }
    match state.log.cursor_at(position).await {
        Ok(cursor) => Ok(cursor),
        Err(StoreError::UnknownPosition(_)) => Err(ApiError::bad_request(
            "UNKNOWN_POSITION",
            format!("no event at position {position}"),
        )
        .with_details(json!({ "parameter": parameter, "position": position }))),
        Err(error) => Err(error.into()),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// Continue after this event's position (`next_after` of the previous page); default 0, the
    /// beginning.
    #[param(minimum = 0)]
    after_position: Option<i64>,
    /// Events per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SimHistory {
    pub iccid: String,
    /// Oldest first, in the global log's order, with their metadata.
    pub events: Vec<StoredEvent>,
    /// `after_position` of the next page: the last event's position, or the same
    /// `after_position` when this page is empty.
    pub next_after: i64,
}

/// A SIM's full history (SIM, quota and SMS events), oldest first, with metadata.
///
/// The order is the global log's (writing transaction, then position), and only events no
/// in-flight transaction can precede are served, so paging with `next_after` never skips an
/// event that commits late.
#[utoipa::path(
    get, path = "/api/v1/sims/{iccid}/events", tag = "history",
    params(("iccid" = String, Path, description = "ICCID"), HistoryParams, crate::openapi::ConsistencyHeader),
    responses(
        (status = 200, description = "One page of the history", body = SimHistory),
        (status = 400, description = "`INVALID_QUERY`, `UNKNOWN_POSITION`", body = crate::openapi::ErrorBody),
        (status = 404, description = "`SIM_NOT_FOUND`: no event names this ICCID", body = crate::openapi::ErrorBody),
    )
)]
pub async fn events(
    State(state): State<AppState>,
    _: Principal,
    IccidPath(iccid): IccidPath,
    ApiQuery(params): ApiQuery<HistoryParams>,
    _read: ConsistentRead,
) -> Result<Json<SimHistory>, ApiError> {
    let limit = event_limit(params.limit)?;
    let after = params.after_position.unwrap_or(0);
    let cursor = cursor_at(&state, "after_position", after).await?;
    let events = state.log.sim_events_after(iccid.as_str(), cursor, limit).await?;
    if events.is_empty() && !state.log.sim_has_events(iccid.as_str()).await? {
        return Err(sim_not_found(iccid.as_str()));
    }
    let next_after = events.last().map_or(after, |e| e.position);
    Ok(Json(SimHistory {
        iccid: iccid.to_string(),
        events,
        next_after,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StateParams {
    /// RFC 3339 instant (default: now). Events recorded at or before it are replayed.
    #[param(format = DateTime)]
    as_of: Option<String>,
}

/// The SIM as it was at `as_of`, rebuilt from its events by the domain's own `apply`, in the
/// shape of `GET /sims/{iccid}`.
#[utoipa::path(
    get, path = "/api/v1/sims/{iccid}/state", tag = "history",
    params(("iccid" = String, Path, description = "ICCID"), StateParams, crate::openapi::ConsistencyHeader),
    responses(
        (status = 200, description = "The SIM at that instant", body = readmodel::SimView),
        (status = 400, description = "`INVALID_QUERY` (a bad `as_of`)", body = crate::openapi::ErrorBody),
        (status = 404, description = "`SIM_NOT_FOUND`: not registered by then", body = crate::openapi::ErrorBody),
    )
)]
pub async fn state_as_of(
    State(state): State<AppState>,
    _: Principal,
    IccidPath(iccid): IccidPath,
    ApiQuery(params): ApiQuery<StateParams>,
    _read: ConsistentRead,
) -> Result<Json<SimView>, ApiError> {
    let as_of = match params.as_of.as_deref() {
        Some(raw) => parse_instant("as_of", raw)?,
        None => Utc::now(),
    };
    let events = state.log.sim_state_events_until(iccid.as_str(), as_of).await?;
    let view = readmodel::try_sim_view_as_of(&events).map_err(ApiError::internal)?;
    view.map(Json).ok_or_else(|| {
        ApiError::not_found(
            "SIM_NOT_FOUND",
            format!(
                "no SIM with ICCID {iccid} was registered at {}",
                as_of.to_rfc3339()
            ),
        )
        .with_details(json!({ "iccid": iccid.as_str(), "as_of": as_of }))
    })
}
