//! A SIM's connectivity history from the `sim_connectivity_history` read model: every change
//! of network, country, radio access type or IP the platform recorded, whichever source saw
//! it (polling, the Data Streamer, the provider's event log).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use platform::{ApiError, ApiQuery, IccidPath, Principal};
use readmodel::ConnectivityChange;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::consistency::ConsistentRead;
use crate::params::{event_limit, invalid};
use crate::routes::sims::require_sim;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/sims/{iccid}/connectivity", get(connectivity))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConnectivityParams {
    /// Continue after this change's `position` (`next_after` of the previous page); default 0,
    /// the beginning.
    #[param(minimum = 0)]
    after: Option<i64>,
    /// Changes per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectivityHistory {
    pub iccid: String,
    /// Oldest first (by the event's position in the global log).
    pub changes: Vec<ConnectivityChange>,
    /// `after` of the next page: the last change's position, or the same `after` when this
    /// page is empty.
    pub next_after: i64,
}

/// A SIM's connectivity changes (network, country, RAT, IP), oldest first.
#[utoipa::path(
    get, path = "/api/v1/sims/{iccid}/connectivity", tag = "sims",
    params(("iccid" = String, Path, description = "ICCID"), ConnectivityParams, crate::openapi::ConsistencyHeader),
    responses(
        (status = 200, description = "One page of the history", body = ConnectivityHistory),
        (status = 400, description = "`INVALID_QUERY`", body = crate::openapi::ErrorBody),
        (status = 404, description = "`SIM_NOT_FOUND`", body = crate::openapi::ErrorBody),
    )
)]
pub async fn connectivity(
    State(state): State<AppState>,
    _: Principal,
    IccidPath(iccid): IccidPath,
    ApiQuery(params): ApiQuery<ConnectivityParams>,
    _read: ConsistentRead,
) -> Result<Json<ConnectivityHistory>, ApiError> {
    let limit = event_limit(params.limit)?;
    let after = params.after.unwrap_or(0);
    if after < 0 {
        return Err(invalid("after", "positions are 0 or more"));
    }
    require_sim(&state.pool, iccid.as_str()).await?;
    let changes =
        readmodel::connectivity_history::load_connectivity_history(&state.pool, iccid.as_str(), after, limit)
            .await?;
    let next_after = changes.last().map_or(after, |c| c.position);
    Ok(Json(ConnectivityHistory {
        iccid: iccid.to_string(),
        changes,
        next_after,
    }))
}
