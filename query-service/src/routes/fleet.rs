//! The fleet: summary counts and usage over every SIM.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use platform::{ApiError, ApiQuery, Principal};
use readmodel::FleetSummary;
use serde::Serialize;
use utoipa::ToSchema;

use crate::consistency::ConsistentRead;
use crate::params::Granularity;
use readmodel::UsagePoint;

use crate::routes::sims::{usage_points, UsageParams};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/fleet/summary", get(summary))
        .route("/fleet/usage", get(usage))
}

/// Counts by status, pending changes, quota totals and SMS counts over the whole fleet.
/// At most a second old (`FLEET_SUMMARY_CACHE_SECS`), computed once per second per replica
/// however many ask; with `X-Consistency-Token`, computed now.
#[utoipa::path(
    get, path = "/api/v1/fleet/summary", tag = "fleet",
    params(crate::openapi::ConsistencyHeader),
    responses(
        (status = 200, description = "The summary", body = readmodel::FleetSummary),
        (status = 503, description = "`CONSISTENCY_TIMEOUT`", body = crate::openapi::ErrorBody),
    )
)]
pub async fn summary(
    State(state): State<AppState>,
    _: Principal,
    read: ConsistentRead,
) -> Result<Json<FleetSummary>, ApiError> {
    if read.fresh {
        return Ok(Json(readmodel::load_fleet_summary(&state.pool).await?));
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
    Ok(Json(summary))
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
