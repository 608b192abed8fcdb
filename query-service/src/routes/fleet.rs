//! The fleet: summary counts and usage over every SIM.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use platform::{ApiError, ApiQuery, Principal};
use readmodel::FleetSummary;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::consistency::ConsistentRead;
use crate::params::{invalid, parse_instant, Granularity};
use readmodel::UsagePoint;

use crate::routes::sims::{usage_points, UsageParams};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/fleet/summary", get(summary))
        .route("/fleet/usage", get(usage))
}

/// `GET /fleet/summary` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SummaryParams {
    /// An RFC 3339 instant, not in the future: the summary as the fleet was then, from the
    /// fleet's history (`FleetSummaryAsOf`). Without it: the summary now (`FleetSummary`).
    as_of: Option<String>,
}

/// Counts by status, pending changes, quota totals and SMS counts over the whole fleet.
/// Now: at most a second old (`FLEET_SUMMARY_CACHE_SECS`), computed once per second per
/// replica however many ask; with `X-Consistency-Token`, computed now. With `as_of`: as the
/// fleet was at that instant (a `FleetSummaryAsOf`, whose figures are null, with the reason in
/// `unknown`, where the record cannot tell them).
#[utoipa::path(
    get, path = "/api/v1/fleet/summary", tag = "fleet",
    params(SummaryParams, crate::openapi::ConsistencyHeader),
    responses(
        (status = 200, description = "The summary: a `FleetSummary`, or with `as_of` a `FleetSummaryAsOf`",
            body = crate::openapi::FleetSummaryAnswer),
        (status = 400, description = "`INVALID_QUERY` (`as_of` unparsable or in the future), `INVALID_CONSISTENCY_TOKEN`",
            body = crate::openapi::ErrorBody),
        (status = 503, description = "`CONSISTENCY_TIMEOUT`", body = crate::openapi::ErrorBody),
    )
)]
pub async fn summary(
    State(state): State<AppState>,
    _: Principal,
    ApiQuery(params): ApiQuery<SummaryParams>,
    read: ConsistentRead,
) -> Result<Response, ApiError> {
    if let Some(raw) = &params.as_of {
        let as_of = parse_instant("as_of", raw)?;
        if as_of > Utc::now() {
            return Err(invalid("as_of", "is in the future"));
        }
        return Ok(Json(readmodel::load_fleet_summary_as_of(&state.pool, as_of).await?).into_response());
    }
    Ok(Json(current_summary(&state, read).await?).into_response())
}

async fn current_summary(state: &AppState, read: ConsistentRead) -> Result<FleetSummary, ApiError> {
    if read.fresh {
        return Ok(readmodel::load_fleet_summary(&state.pool).await?);
    }
    let (summary, cached) = state
        .fleet_summary
        .get_or_load(|| readmodel::load_fleet_summary(&state.pool))
        .await?;
    if cached {
        state.cache_hit("fleet_summary");
    } else {
        state.cache_miss("fleet_summary");
    }
    Ok(summary)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FleetUsage {
    pub granularity: Granularity,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Sums over every SIM, oldest first; buckets without usage are left out.
    pub points: Vec<UsagePoint>,
}

/// Usage summed over every SIM, hourly or daily.
#[utoipa::path(
    get, path = "/api/v1/fleet/usage", tag = "fleet", operation_id = "fleet_usage",
    params(UsageParams, crate::openapi::ConsistencyHeader),
    responses(
        (status = 200, description = "Usage buckets", body = FleetUsage),
        (status = 400, description = "`INVALID_QUERY`, `INVALID_RANGE`", body = crate::openapi::ErrorBody),
    )
)]
pub async fn usage(
    State(state): State<AppState>,
    _: Principal,
    ApiQuery(params): ApiQuery<UsageParams>,
    _read: ConsistentRead,
) -> Result<Json<FleetUsage>, ApiError> {
    let range = params.range()?;
    let points = usage_points(&state.pool, None, &range).await?;
    Ok(Json(FleetUsage {
        granularity: range.granularity,
        from: range.from,
        to: range.to,
        points,
    }))
}
