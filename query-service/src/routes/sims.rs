//! SIMs from the read models: the list, one SIM (Redis, then Postgres), its usage, quotas
//! and SMS.

use axum::extract::{RawQuery, State};
use axum::http::header::{HeaderMap, HeaderValue, ETAG, IF_NONE_MATCH};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use domain::{Direction, SmsStatus};
use platform::{ApiError, ApiQuery, IccidPath, Principal};
use readmodel::sms::SmsFilter;
use readmodel::{QuotaRow, SmsRow, UsagePoint};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::{IntoParams, ToSchema};

use crate::consistency::ConsistentRead;
use crate::params::{invalid, Granularity, Page, UsageRange};
use crate::routes::paging;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sims", get(crate::routes::sim_list::list))
        .route("/sims/export", get(crate::routes::export::export))
        .route("/sims/{iccid}", get(detail))
        .route("/sims/{iccid}/usage", get(usage))
        .route("/sims/{iccid}/quotas", get(quotas))
        .route("/sims/{iccid}/sms", get(sms))
}

/// Whether `If-None-Match` names `etag` (or is `*`); weak validators compare equal.
fn none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == "*" || tag == etag)
}

/// One SIM: from Redis when cached, else from Postgres (and then into the cache).
#[utoipa::path(
    get, path = "/api/v1/sims/{iccid}", tag = "sims",
    params(
        ("iccid" = String, Path, description = "19 digits, or 20 with the right Luhn digit"),
        ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier answer"),
        crate::openapi::ConsistencyHeader,
    ),
    responses(
        (status = 200, description = "The SIM", body = readmodel::SimView,
            headers(("ETag" = String, description = "`\"<last_position>\"`: changes with every event applied to the row"))),
        (status = 304, description = "Unchanged since the ETag given in `If-None-Match`"),
        (status = 503, description = "`CONSISTENCY_TIMEOUT`", body = crate::openapi::ErrorBody),
    )
)]
pub async fn detail(
    State(state): State<AppState>,
    _: Principal,
    IccidPath(iccid): IccidPath,
    headers: HeaderMap,
    read: ConsistentRead,
) -> Result<Response, ApiError> {
    let mut sim = None;
    if !read.fresh {
        sim = state.cache.get_sim(iccid.as_str()).await;
        if sim.is_some() {
            state.cache_hit("sim");
        } else {
            state.cache_miss("sim");
        }
    }
    let sim = match sim {
        Some(sim) => sim,
        None => {
            let sim = readmodel::load_sim(&state.pool, iccid.as_str())
                .await?
                .ok_or_else(|| sim_not_found(iccid.as_str()))?;
            // Fill the cache for the next reader, off the answer's path; the cache never lets
            // this row replace a newer one the projectors wrote meanwhile.
            let (cache, row) = (state.cache.clone(), sim.clone());
            tokio::spawn(async move { cache.put_sim(&row).await });
            sim
        }
    };
    let etag = format!("\"{}\"", sim.last_position);
    let etag_value = HeaderValue::from_str(&etag).map_err(ApiError::internal)?;
    if none_match(&headers, &etag) {
        return Ok((StatusCode::NOT_MODIFIED, [(ETAG, etag_value)]).into_response());
    }
    Ok(([(ETAG, etag_value)], Json(sim)).into_response())
}

pub fn sim_not_found(iccid: &str) -> ApiError {
    ApiError::not_found("SIM_NOT_FOUND", format!("no SIM with ICCID {iccid}"))
        .with_details(serde_json::json!({ "iccid": iccid }))
}

/// 404 unless the `sims` read model has the SIM.
pub(crate) async fn require_sim(pool: &PgPool, iccid: &str) -> Result<(), ApiError> {
    if readmodel::sims::sim_exists(pool, iccid).await? {
        Ok(())
    } else {
        Err(sim_not_found(iccid))
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageParams {
    /// RFC 3339 start (default: `to` minus 24 hours). Encode a `+` offset as `%2B`, or use `Z`.
    #[param(format = DateTime)]
    from: Option<String>,
    /// RFC 3339 end, exclusive (default: now).
    #[param(format = DateTime)]
    to: Option<String>,
    /// `hour` (default; at most 31 days) or `day` (at most 366 days).
    #[param(value_type = Option<Granularity>)]
    granularity: Option<String>,
}

impl UsageParams {
    pub fn range(&self) -> Result<UsageRange, ApiError> {
        UsageRange::parse(
            self.from.as_deref(),
            self.to.as_deref(),
            self.granularity.as_deref(),
            Utc::now(),
        )
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SimUsage {
    pub iccid: String,
    pub granularity: Granularity,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Oldest first; buckets without usage are left out.
    pub points: Vec<UsagePoint>,
}

/// Usage points of every bucket overlapping [from, to), for one SIM (`Some`) or for the whole
/// fleet (`None`: the fleet's own rollup, a row per bucket, not a sum over every SIM's rows).
pub async fn usage_points(
    pool: &PgPool,
    iccid: Option<&str>,
    range: &UsageRange,
) -> Result<Vec<UsagePoint>, sqlx::Error> {
    let table = match iccid {
        Some(_) => range.granularity.table(),
        None => range.granularity.fleet_table(),
    };
    readmodel::usage::usage_points(pool, table, iccid, range.first_bucket(), range.to).await
}

/// A SIM's usage over time, hourly or daily.
#[utoipa::path(
    get, path = "/api/v1/sims/{iccid}/usage", tag = "sims",
    params(("iccid" = String, Path, description = "ICCID"), UsageParams, crate::openapi::ConsistencyHeader),
    responses(
        (status = 200, description = "Usage buckets", body = SimUsage),
        (status = 400, description = "`INVALID_QUERY`, `INVALID_RANGE`", body = crate::openapi::ErrorBody),
    )
)]
pub async fn usage(
    State(state): State<AppState>,
    _: Principal,
    IccidPath(iccid): IccidPath,
    ApiQuery(params): ApiQuery<UsageParams>,
    _read: ConsistentRead,
) -> Result<Json<SimUsage>, ApiError> {
    let range = params.range()?;
    require_sim(&state.pool, iccid.as_str()).await?;
    let points = usage_points(&state.pool, Some(iccid.as_str()), &range).await?;
    Ok(Json(SimUsage {
        iccid: iccid.to_string(),
        granularity: range.granularity,
        from: range.from,
        to: range.to,
        points,
    }))
}

/// A SIM's quotas (data and SMS; a quota the provider never reported is absent).
#[utoipa::path(
    get, path = "/api/v1/sims/{iccid}/quotas", tag = "sims",
    params(("iccid" = String, Path, description = "ICCID"), crate::openapi::ConsistencyHeader),
    responses(
        (status = 200, description = "The quotas, `data` first", body = Vec<QuotaRow>),
    )
)]
pub async fn quotas(
    State(state): State<AppState>,
    _: Principal,
    IccidPath(iccid): IccidPath,
    _read: ConsistentRead,
) -> Result<Json<Vec<QuotaRow>>, ApiError> {
    require_sim(&state.pool, iccid.as_str()).await?;
    Ok(Json(
        readmodel::quotas::quotas_of(&state.pool, iccid.as_str()).await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListSms {
    /// Page number, from 1 (default 1).
    #[param(minimum = 1)]
    page: Option<u32>,
    /// Messages per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    page_size: Option<u32>,
    /// `MT` (sent to the device) or `MO` (sent by it).
    direction: Option<String>,
    /// `requested`, `submitted`, `delivered`, `failed`, `received` or `unknown`.
    status: Option<String>,
}

/// A SIM's SMS, newest first (by request or reception time).
#[utoipa::path(
    get, path = "/api/v1/sims/{iccid}/sms", tag = "sims",
    params(("iccid" = String, Path, description = "ICCID"), ListSms, crate::openapi::ConsistencyHeader),
    responses(
        (status = 200, description = "One page of messages", body = Vec<SmsRow>,
            headers(
                ("X-Total-Count" = i64, description = "Messages matching, over all pages (see X-Total-Count-Exact)"),
                ("X-Total-Count-Exact" = bool, description = "false: X-Total-Count is an estimate (more than LIST_EXACT_COUNT_LIMIT match)"),
                ("Link" = String, description = "first, prev, next and last pages"),
            )),
        (status = 400, description = "`INVALID_QUERY`", body = crate::openapi::ErrorBody),
    )
)]
pub async fn sms(
    State(state): State<AppState>,
    _: Principal,
    IccidPath(iccid): IccidPath,
    RawQuery(raw_query): RawQuery,
    ApiQuery(params): ApiQuery<ListSms>,
    _read: ConsistentRead,
) -> Result<Response, ApiError> {
    let page = Page::parse(params.page, params.page_size)?;
    let direction = params
        .direction
        .as_deref()
        .map(|word| word.trim().parse::<Direction>())
        .transpose()
        .map_err(|error| invalid("direction", format!("expected one of {}", error.expected)))?;
    let status = params
        .status
        .as_deref()
        .map(|word| word.trim().parse::<SmsStatus>())
        .transpose()
        .map_err(|error| invalid("status", format!("expected one of {}", error.expected)))?;
    require_sim(&state.pool, iccid.as_str()).await?;
    let filter = SmsFilter {
        iccid: iccid.to_string(),
        direction,
        status,
    };
    let messages = filter.page(&state.pool, page.limit(), page.offset()).await?;
    let total = match paging::Total::of_short_page(Some(page.offset()), messages.len(), page.limit()) {
        Some(total) => total,
        None => {
            paging::count(&state.pool, state.lists.exact_count_limit, |query| {
                filter.push_from_where(query)
            })
            .await?
        }
    };
    let path = format!("/api/v1/sims/{iccid}/sms");
    let headers = paging::page_headers(&path, raw_query.as_deref(), page, total);
    Ok((headers, Json(messages)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_lists_and_weak_tags() {
        let mut headers = HeaderMap::new();
        headers.insert(IF_NONE_MATCH, HeaderValue::from_static("\"3\", W/\"7\""));
        assert!(none_match(&headers, "\"7\""));
        assert!(none_match(&headers, "\"3\""));
        assert!(!none_match(&headers, "\"4\""));
        headers.insert(IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(none_match(&headers, "\"1\""));
        assert!(!none_match(&HeaderMap::new(), "\"1\""));
    }
}
