//! SIMs from the read models: the list, one SIM (Redis, then Postgres), its usage, quotas
//! and SMS.

use axum::extract::{RawQuery, State};
use axum::http::header::{HeaderMap, HeaderName, HeaderValue, ETAG, IF_NONE_MATCH, LINK};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use platform::{ApiError, ApiPath, ApiQuery, Principal};
use readmodel::{SimView, SIM_COLUMNS};
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Postgres, QueryBuilder};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::consistency::Reader;
use crate::params::{invalid, parse_iccid, Granularity, Page, UsageRange};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sims", get(list))
        .route("/sims/{iccid}", get(detail))
        .route("/sims/{iccid}/usage", get(usage))
        .route("/sims/{iccid}/quotas", get(quotas))
        .route("/sims/{iccid}/sms", get(sms))
}

pub const X_TOTAL_COUNT: HeaderName = HeaderName::from_static("x-total-count");
pub const X_PAGE: HeaderName = HeaderName::from_static("x-page");
pub const X_PAGE_SIZE: HeaderName = HeaderName::from_static("x-page-size");

/// The sort keys of `GET /sims`; each breaks ties by ICCID in the same direction.
pub const SIM_SORTS: &[(&str, &str)] = &[
    ("iccid", "iccid ASC"),
    ("-iccid", "iccid DESC"),
    ("imsi", "imsi ASC, iccid ASC"),
    ("-imsi", "imsi DESC, iccid DESC"),
    ("msisdn", "msisdn ASC NULLS LAST, iccid ASC"),
    ("-msisdn", "msisdn DESC NULLS LAST, iccid DESC"),
    ("label", "label ASC NULLS LAST, iccid ASC"),
    ("-label", "label DESC NULLS LAST, iccid DESC"),
    ("status", "status ASC, iccid ASC"),
    ("-status", "status DESC, iccid DESC"),
    ("registered_at", "registered_at ASC, iccid ASC"),
    ("-registered_at", "registered_at DESC, iccid DESC"),
    ("updated_at", "updated_at ASC, iccid ASC"),
    ("-updated_at", "updated_at DESC, iccid DESC"),
    ("last_seen_at", "last_seen_at ASC NULLS LAST, iccid ASC"),
    ("-last_seen_at", "last_seen_at DESC NULLS LAST, iccid DESC"),
];

pub const SIM_STATUSES: &[&str] = &["inactive", "active", "suspended", "terminated"];

/// `GET /sims` parameters. Filters combine with AND.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListSims {
    /// Page number, from 1 (default 1).
    #[param(minimum = 1)]
    page: Option<u32>,
    /// SIMs per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    page_size: Option<u32>,
    /// One status or several, comma-separated: `inactive`, `active`, `suspended`, `terminated`.
    status: Option<String>,
    /// SIMs carrying this tag; several, comma-separated: SIMs carrying all of them.
    tag: Option<String>,
    /// Case-insensitive substring of the label.
    label: Option<String>,
    /// ICCID prefix (digits; a full 20-digit ICCID is normalised to 19).
    iccid: Option<String>,
    /// IMSI prefix (digits).
    imsi: Option<String>,
    /// MSISDN prefix (digits).
    msisdn: Option<String>,
    /// `iccid` (default), `imsi`, `msisdn`, `label`, `status`, `registered_at`, `updated_at`,
    /// `last_seen_at`; a leading `-` sorts descending. Ties are broken by ICCID.
    sort: Option<String>,
}

/// Validated filters of `GET /sims`.
#[derive(Debug, Default)]
struct SimFilters {
    statuses: Option<Vec<String>>,
    tags: Option<Vec<String>>,
    label: Option<String>,
    iccid: Option<String>,
    imsi: Option<String>,
    msisdn: Option<String>,
}

fn comma_list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn digits_prefix(parameter: &str, raw: &str, max_len: usize) -> Result<String, ApiError> {
    let value = raw.trim();
    if value.is_empty() || value.len() > max_len || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(parameter, format!("expected 1 to {max_len} digits")));
    }
    Ok(value.to_owned())
}

/// `%`, `_` and `\` match themselves in a `LIKE` pattern.
fn escape_like(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

impl SimFilters {
    fn parse(params: &ListSims) -> Result<Self, ApiError> {
        let mut filters = Self::default();
        if let Some(raw) = &params.status {
            let statuses = comma_list(raw);
            if statuses.is_empty() || statuses.iter().any(|s| !SIM_STATUSES.contains(&s.as_str())) {
                return Err(invalid(
                    "status",
                    format!("expected one or more of {}", SIM_STATUSES.join(", ")),
                ));
            }
            filters.statuses = Some(statuses);
        }
        if let Some(raw) = &params.tag {
            let tags = comma_list(raw);
            if tags.is_empty() || tags.len() > 20 || tags.iter().any(|t| t.len() > 50) {
                return Err(invalid("tag", "expected 1 to 20 tags of at most 50 characters"));
            }
            filters.tags = Some(tags);
        }
        if let Some(raw) = &params.label {
            if raw.is_empty() || raw.chars().count() > 100 {
                return Err(invalid("label", "expected 1 to 100 characters"));
            }
            filters.label = Some(format!("%{}%", escape_like(raw)));
        }
        if let Some(raw) = &params.iccid {
            let mut prefix = digits_prefix("iccid", raw, 20)?;
            if prefix.len() == 20 {
                prefix = parse_iccid(&prefix)
                    .map_err(|e| invalid("iccid", e.message))?
                    .to_string();
            }
            filters.iccid = Some(prefix);
        }
        if let Some(raw) = &params.imsi {
            filters.imsi = Some(digits_prefix("imsi", raw, 15)?);
        }
        if let Some(raw) = &params.msisdn {
            filters.msisdn = Some(digits_prefix("msisdn", raw, 15)?);
        }
        Ok(filters)
    }

    fn push_where(&self, query: &mut QueryBuilder<'_, Postgres>) {
        query.push(" WHERE true");
        if let Some(statuses) = &self.statuses {
            query
                .push(" AND status = ANY(")
                .push_bind(statuses.clone())
                .push(")");
        }
        if let Some(tags) = &self.tags {
            query.push(" AND tags @> ").push_bind(tags.clone());
        }
        if let Some(label) = &self.label {
            query.push(" AND label ILIKE ").push_bind(label.clone());
        }
        for (column, prefix) in [
            ("iccid", &self.iccid),
            ("imsi", &self.imsi),
            ("msisdn", &self.msisdn),
        ] {
            if let Some(prefix) = prefix {
                query
                    .push(format!(" AND {column} LIKE "))
                    .push_bind(format!("{prefix}%"));
            }
        }
    }
}

/// The page headers: `X-Total-Count`, `X-Page`, `X-Page-Size`, and `Link` (first, prev, next,
/// last) keeping the request's other parameters.
fn page_headers(path: &str, raw_query: Option<&str>, page: Page, total: i64) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(X_TOTAL_COUNT, HeaderValue::from(total));
    headers.insert(X_PAGE, HeaderValue::from(page.page));
    headers.insert(X_PAGE_SIZE, HeaderValue::from(page.page_size));
    let kept: Vec<&str> = raw_query
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty() && !pair.starts_with("page="))
        .collect();
    let link = |n: u32, rel: &str| {
        let mut query = kept.clone().join("&");
        if !query.is_empty() {
            query.push('&');
        }
        format!("<{path}?{query}page={n}>; rel=\"{rel}\"")
    };
    let last = page.last_page(total);
    let mut links = vec![link(1, "first")];
    if page.page > 1 {
        links.push(link((page.page - 1).min(last), "prev"));
    }
    if page.page < last {
        links.push(link(page.page + 1, "next"));
    }
    links.push(link(last, "last"));
    if let Ok(value) = HeaderValue::from_str(&links.join(", ")) {
        headers.insert(LINK, value);
    }
    headers
}

/// List SIMs (paged, filtered, sorted).
#[utoipa::path(
    get, path = "/api/v1/sims", tag = "sims",
    params(ListSims, crate::openapi::ConsistencyHeader),
    responses(
        (status = 200, description = "One page of SIMs", body = Vec<crate::openapi::SimViewDoc>,
            headers(
                ("X-Total-Count" = i64, description = "SIMs matching the filters, over all pages"),
                ("X-Page" = u32, description = "This page's number"),
                ("X-Page-Size" = u32, description = "The page size used"),
                ("Link" = String, description = "first, prev, next and last pages (RFC 8288)"),
            )),
        (status = 400, description = "`INVALID_QUERY`, `INVALID_CONSISTENCY_TOKEN`", body = crate::openapi::ErrorBody),
        (status = 401, description = "No or bad credentials", body = crate::openapi::ErrorBody),
        (status = 503, description = "`CONSISTENCY_TIMEOUT`", body = crate::openapi::ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    _: Principal,
    RawQuery(raw_query): RawQuery,
    ApiQuery(params): ApiQuery<ListSims>,
    _reader: Reader,
) -> Result<Response, ApiError> {
    let page = Page::parse(params.page, params.page_size)?;
    let filters = SimFilters::parse(&params)?;
    let sort = params.sort.as_deref().unwrap_or("iccid").trim();
    let order = SIM_SORTS
        .iter()
        .find(|(key, _)| *key == sort)
        .map(|(_, order)| *order)
        .ok_or_else(|| {
            let keys: Vec<&str> = SIM_SORTS.iter().map(|(k, _)| *k).collect();
            invalid("sort", format!("expected one of {}", keys.join(", ")))
        })?;

    let mut count = QueryBuilder::new("SELECT count(*) FROM sims");
    filters.push_where(&mut count);
    let total: i64 = count.build_query_scalar().fetch_one(&state.pool).await?;

    let mut select = QueryBuilder::new(format!("SELECT {SIM_COLUMNS} FROM sims"));
    filters.push_where(&mut select);
    select
        .push(format!(" ORDER BY {order} LIMIT "))
        .push_bind(page.limit())
        .push(" OFFSET ")
        .push_bind(page.offset());
    let sims: Vec<SimView> = select.build_query_as().fetch_all(&state.pool).await?;

    let headers = page_headers("/api/v1/sims", raw_query.as_deref(), page, total);
    Ok((headers, Json(sims)).into_response())
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
        (status = 200, description = "The SIM", body = crate::openapi::SimViewDoc,
            headers(("ETag" = String, description = "`\"<last_position>\"`: changes with every event applied to the row"))),
        (status = 304, description = "Unchanged since the ETag given in `If-None-Match`"),
        (status = 401, description = "No or bad credentials", body = crate::openapi::ErrorBody),
        (status = 404, description = "`SIM_NOT_FOUND`", body = crate::openapi::ErrorBody),
        (status = 422, description = "`INVALID_ICCID`", body = crate::openapi::ErrorBody),
        (status = 503, description = "`CONSISTENCY_TIMEOUT`", body = crate::openapi::ErrorBody),
    )
)]
pub async fn detail(
    State(state): State<AppState>,
    _: Principal,
    ApiPath(raw_iccid): ApiPath<String>,
    headers: HeaderMap,
    reader: Reader,
) -> Result<Response, ApiError> {
    let iccid = parse_iccid(&raw_iccid)?;
    let mut sim = None;
    if !reader.fresh {
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
async fn require_sim(pool: &PgPool, iccid: &str) -> Result<(), ApiError> {
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM sims WHERE iccid = $1)")
        .bind(iccid)
        .fetch_one(pool)
        .await?;
    if exists {
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

/// What one bucket added: bytes of data, SMS sent by the device (MO) and to it (MT).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow, ToSchema)]
pub struct UsagePoint {
    /// The bucket's start (UTC; hours, or days starting at 00:00 UTC).
    pub bucket: DateTime<Utc>,
    pub data_bytes: i64,
    pub sms_mo: i64,
    pub sms_mt: i64,
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

/// Usage points of every bucket overlapping [from, to), for one SIM (`Some`) or summed over
/// the fleet (`None`). The same query whether the rollups are tables or continuous aggregates.
pub async fn usage_points(
    pool: &PgPool,
    iccid: Option<&str>,
    range: &UsageRange,
) -> Result<Vec<UsagePoint>, sqlx::Error> {
    let table = range.granularity.table();
    let sql = match iccid {
        Some(_) => format!(
            "SELECT bucket, data_bytes::bigint AS data_bytes, sms_mo::bigint AS sms_mo, sms_mt::bigint AS sms_mt \
             FROM {table} WHERE iccid = $3 AND bucket >= $1 AND bucket < $2 ORDER BY bucket"
        ),
        None => format!(
            "SELECT bucket, coalesce(sum(data_bytes), 0)::bigint AS data_bytes, \
             coalesce(sum(sms_mo), 0)::bigint AS sms_mo, coalesce(sum(sms_mt), 0)::bigint AS sms_mt \
             FROM {table} WHERE bucket >= $1 AND bucket < $2 GROUP BY bucket ORDER BY bucket"
        ),
    };
    let mut query = sqlx::query_as::<_, UsagePoint>(&sql)
        .bind(range.first_bucket())
        .bind(range.to);
    if let Some(iccid) = iccid {
        query = query.bind(iccid.to_owned());
    }
    query.fetch_all(pool).await
}

/// A SIM's usage over time, hourly or daily.
#[utoipa::path(
    get, path = "/api/v1/sims/{iccid}/usage", tag = "sims",
    params(("iccid" = String, Path, description = "ICCID"), UsageParams, crate::openapi::ConsistencyHeader),
    responses(
        (status = 200, description = "Usage buckets", body = SimUsage),
        (status = 400, description = "`INVALID_QUERY`, `INVALID_RANGE`", body = crate::openapi::ErrorBody),
        (status = 401, description = "No or bad credentials", body = crate::openapi::ErrorBody),
        (status = 404, description = "`SIM_NOT_FOUND`", body = crate::openapi::ErrorBody),
        (status = 422, description = "`INVALID_ICCID`", body = crate::openapi::ErrorBody),
    )
)]
pub async fn usage(
    State(state): State<AppState>,
    _: Principal,
    ApiPath(raw_iccid): ApiPath<String>,
    ApiQuery(params): ApiQuery<UsageParams>,
    _reader: Reader,
) -> Result<Json<SimUsage>, ApiError> {
    let iccid = parse_iccid(&raw_iccid)?;
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

/// A row of `sim_quotas`.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, ToSchema)]
pub struct QuotaView {
    pub iccid: String,
    /// `data` (bytes) or `sms` (messages).
    pub kind: String,
    pub total: i64,
    pub remaining: i64,
    pub expiry_date: Option<DateTime<Utc>>,
    /// The quota period (a new assignment or top-up starts one); alerts are once per period.
    pub period: i32,
    /// Used-percentages alerted in this period (80, 100).
    pub thresholds_crossed: Vec<i32>,
    pub exhausted: bool,
    pub expired: bool,
    pub pending_topup_id: Option<Uuid>,
    pub pending_topup_volume: Option<i64>,
    pub last_topup_at: Option<DateTime<Utc>>,
    pub last_topup_status: Option<String>,
    pub version: i64,
    pub last_position: i64,
    pub updated_at: DateTime<Utc>,
}

/// A SIM's quotas (data and SMS; a quota the provider never reported is absent).
#[utoipa::path(
    get, path = "/api/v1/sims/{iccid}/quotas", tag = "sims",
    params(("iccid" = String, Path, description = "ICCID"), crate::openapi::ConsistencyHeader),
    responses(
        (status = 200, description = "The quotas, `data` first", body = Vec<QuotaView>),
        (status = 401, description = "No or bad credentials", body = crate::openapi::ErrorBody),
        (status = 404, description = "`SIM_NOT_FOUND`", body = crate::openapi::ErrorBody),
        (status = 422, description = "`INVALID_ICCID`", body = crate::openapi::ErrorBody),
    )
)]
pub async fn quotas(
    State(state): State<AppState>,
    _: Principal,
    ApiPath(raw_iccid): ApiPath<String>,
    _reader: Reader,
) -> Result<Json<Vec<QuotaView>>, ApiError> {
    let iccid = parse_iccid(&raw_iccid)?;
    require_sim(&state.pool, iccid.as_str()).await?;
    let quotas: Vec<QuotaView> = sqlx::query_as(
        "SELECT iccid, kind, total, remaining, expiry_date, period, thresholds_crossed, exhausted, \
         expired, pending_topup_id, pending_topup_volume, last_topup_at, last_topup_status, version, \
         last_position, updated_at FROM sim_quotas WHERE iccid = $1 ORDER BY kind",
    )
    .bind(iccid.as_str())
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(quotas))
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
    /// `requested`, `submitted`, `delivered`, `failed` or `received`.
    status: Option<String>,
}

/// A row of `sms_messages`.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, ToSchema)]
pub struct SmsView {
    pub message_id: Uuid,
    pub iccid: String,
    /// `MT` or `MO`.
    pub direction: String,
    /// `requested`, `submitted`, `delivered`, `failed` or `received`.
    pub status: String,
    pub payload: String,
    pub encoding: Option<String>,
    pub parts: Option<i32>,
    pub source_address: Option<String>,
    pub provider_message_id: Option<String>,
    pub failure_reason: Option<String>,
    pub requested_at: Option<DateTime<Utc>>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
    pub received_at: Option<DateTime<Utc>>,
    pub version: i64,
    pub last_position: i64,
    pub updated_at: DateTime<Utc>,
}

/// A SIM's SMS, newest first (by request or reception time).
#[utoipa::path(
    get, path = "/api/v1/sims/{iccid}/sms", tag = "sims",
    params(("iccid" = String, Path, description = "ICCID"), ListSms, crate::openapi::ConsistencyHeader),
    responses(
        (status = 200, description = "One page of messages", body = Vec<SmsView>,
            headers(
                ("X-Total-Count" = i64, description = "Messages matching, over all pages"),
                ("Link" = String, description = "first, prev, next and last pages"),
            )),
        (status = 400, description = "`INVALID_QUERY`", body = crate::openapi::ErrorBody),
        (status = 401, description = "No or bad credentials", body = crate::openapi::ErrorBody),
        (status = 404, description = "`SIM_NOT_FOUND`", body = crate::openapi::ErrorBody),
        (status = 422, description = "`INVALID_ICCID`", body = crate::openapi::ErrorBody),
    )
)]
pub async fn sms(
    State(state): State<AppState>,
    _: Principal,
    ApiPath(raw_iccid): ApiPath<String>,
    RawQuery(raw_query): RawQuery,
    ApiQuery(params): ApiQuery<ListSms>,
    _reader: Reader,
) -> Result<Response, ApiError> {
    let iccid = parse_iccid(&raw_iccid)?;
    let page = Page::parse(params.page, params.page_size)?;
    let direction = match params.direction.as_deref().map(str::trim) {
        None => None,
        Some(d @ ("MT" | "MO")) => Some(d.to_owned()),
        Some(_) => return Err(invalid("direction", "expected MT or MO")),
    };
    const SMS_STATUSES: &[&str] = &["requested", "submitted", "delivered", "failed", "received"];
    let status = match params.status.as_deref().map(str::trim) {
        None => None,
        Some(s) if SMS_STATUSES.contains(&s) => Some(s.to_owned()),
        Some(_) => {
            return Err(invalid(
                "status",
                format!("expected one of {}", SMS_STATUSES.join(", ")),
            ))
        }
    };
    require_sim(&state.pool, iccid.as_str()).await?;
    let filters = |query: &mut QueryBuilder<'_, Postgres>| {
        query.push(" WHERE iccid = ").push_bind(iccid.to_string());
        if let Some(direction) = &direction {
            query.push(" AND direction = ").push_bind(direction.clone());
        }
        if let Some(status) = &status {
            query.push(" AND status = ").push_bind(status.clone());
        }
    };
    let mut count = QueryBuilder::new("SELECT count(*) FROM sms_messages");
    filters(&mut count);
    let total: i64 = count.build_query_scalar().fetch_one(&state.pool).await?;
    let mut select = QueryBuilder::new(
        "SELECT message_id, iccid, direction, status, payload, encoding, parts, source_address, \
         provider_message_id, failure_reason, requested_at, submitted_at, delivered_at, failed_at, \
         received_at, version, last_position, updated_at FROM sms_messages",
    );
    filters(&mut select);
    select
        .push(
            " ORDER BY coalesce(requested_at, received_at, updated_at) DESC, message_id DESC \
             LIMIT ",
        )
        .push_bind(page.limit())
        .push(" OFFSET ")
        .push_bind(page.offset());
    let messages: Vec<SmsView> = select.build_query_as().fetch_all(&state.pool).await?;
    let path = format!("/api/v1/sims/{iccid}/sms");
    let headers = page_headers(&path, raw_query.as_deref(), page, total);
    Ok((headers, Json(messages)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_are_escaped() {
        assert_eq!(escape_like(r"50%_a\b"), r"50\%\_a\\b");
    }

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

    #[test]
    fn link_headers_keep_other_parameters() {
        let page = Page::parse(Some(2), Some(10)).unwrap();
        let headers = page_headers(
            "/api/v1/sims",
            Some("status=active&page=2&page_size=10"),
            page,
            35,
        );
        let link = headers[LINK].to_str().unwrap();
        assert!(
            link.contains("</api/v1/sims?status=active&page_size=10&page=3>; rel=\"next\""),
            "{link}"
        );
        assert!(link.contains("page=1>; rel=\"prev\""), "{link}");
        assert!(link.contains("page=4>; rel=\"last\""), "{link}");
        assert_eq!(headers[X_TOTAL_COUNT], "35");
    }
}
