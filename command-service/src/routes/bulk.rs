//! Bulk jobs: `POST /bulk-jobs` submits one action over many SIMs (a list of ICCIDs, a CSV,
//! or a query-API filter frozen at submission); the worker runs it in the background; `GET`
//! reads jobs, progress and per-SIM outcomes (JSON pages or a streamed CSV); `…/cancel`
//! stops what has not started. Operator or admin for all of it.

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bulk_jobs::queue::Cancelled;
use bulk_jobs::{
    BulkJobs, ItemQuery, ItemView, JobView, NewItem, NewJob, SubmissionKey, SubmitError, Submitted,
};
use futures::stream;
use platform::{ApiError, ApiJson, ApiPath, ApiQuery, Principal, Role};
use readmodel::sim_list::FilterParams;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::bulk::spec::{BulkAction, BulkParams};
use crate::bulk::target::TargetSpec;
use crate::commands::{fingerprint, CommandHeaders};
use crate::openapi::ErrorBody;
use crate::state::AppState;

pub fn routes(max_body_bytes: usize) -> Router<AppState> {
    Router::new()
        .route(
            "/bulk-jobs",
            post(submit)
                .layer(DefaultBodyLimit::max(max_body_bytes))
                .get(list),
        )
        .route("/bulk-jobs/{id}", get(job))
        .route("/bulk-jobs/{id}/items", get(items))
        .route("/bulk-jobs/{id}/cancel", post(cancel))
}

/// A job: an action, exactly one target (`iccids`, `csv` or `filter`), the action's
/// parameters, and `dry_run`.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SubmitJob {
    /// `activate`, `suspend`, `terminate`, `top_up`, `send_sms`, `set_label`, `add_tags`,
    /// `remove_tags`, `sync`.
    action: BulkAction,
    /// ICCIDs (19 digits, or 20 with a right Luhn digit); duplicates count once.
    iccids: Option<Vec<String>>,
    /// CSV text: an `iccid` column under a header, or one ICCID per line.
    csv: Option<String>,
    /// A filter of `GET /api/v1/sims` (the same parameters: `status`, `tag`, `label`,
    /// `iccid`, `imsi`, `msisdn`, `quota_state`, `quota`), resolved to its SIMs at submission.
    #[schema(value_type = Option<Object>)]
    filter: Option<FilterParams>,
    #[serde(default)]
    params: BulkParams,
    /// Report what would happen to each SIM (would apply, or refused with the code) from its
    /// current state, writing no event.
    #[serde(default)]
    dry_run: bool,
}

/// A job was accepted (or, for a known `Idempotency-Key`, found).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct JobAccepted {
    id: Uuid,
    status: String,
    total: i32,
    dry_run: bool,
    /// Where its progress is read.
    location: String,
}

/// Submits a bulk job; it runs in the background.
#[utoipa::path(post, path = "/api/v1/bulk-jobs", tag = "bulk", request_body = SubmitJob,
    security(("bearer" = []), ("api_key" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "The same key and request answer the same job")),
    responses((status = 202, body = JobAccepted, description = "Queued (`Idempotent-Replayed: true`: the job of an earlier request with this key)"),
        (status = 400, body = ErrorBody, description = "`MALFORMED_JSON`, `INVALID_IDEMPOTENCY_KEY`"),
        (status = 403, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`INVALID_BODY`, `INVALID_TARGET` (details: the report of bad rows), `INVALID_FILTER`, `INVALID_PARAMS`, `EMPTY_TARGET`, `TOO_MANY_ITEMS`, `IDEMPOTENCY_KEY_REUSED`, or the domain's code of a bad label, tags or SMS text")))]
pub(crate) async fn submit(
    State(state): State<AppState>,
    principal: Principal,
    headers: CommandHeaders,
    ApiJson(request): ApiJson<SubmitJob>,
) -> Result<Response, ApiError> {
    principal.require(Role::Operator)?;
    if request.action == BulkAction::Register {
        return Err(ApiError::validation(
            "INVALID_ACTION",
            "SIMs are registered in bulk through POST /api/v1/sims/import",
        ));
    }
    let target = match (&request.iccids, &request.csv, &request.filter) {
        (Some(iccids), None, None) => TargetSpec::Iccids(iccids),
        (None, Some(csv), None) => TargetSpec::Csv(csv),
        (None, None, Some(filter)) => TargetSpec::Filter(filter),
        _ => {
            return Err(ApiError::validation(
                "INVALID_TARGET",
                "give exactly one target: iccids, csv or filter",
            ))
        }
    };
    let params = request.params.clone().check(request.action)?;
    let target = target.resolve(&state.pool, state.bulk.max_items).await?;
    let job = NewJob {
        action: request.action.as_str().to_owned(),
        params: serde_json::to_value(&params).unwrap_or_default(),
        target: target.record,
        dry_run: request.dry_run,
        created_by: principal.actor(),
        idempotency: submission_key(&principal, &headers, &request),
        items: target
            .iccids
            .into_iter()
            .map(|iccid| NewItem { iccid, input: None })
            .collect(),
    };
    let accepted = accept(&state, job).await?;
    Ok(accepted.respond(StatusCode::ACCEPTED, &accepted.job))
}

/// The submission's `Idempotency-Key`, scoped to the principal, with a hash of the request.
pub(crate) fn submission_key(
    principal: &Principal,
    headers: &CommandHeaders,
    request: &impl Serialize,
) -> Option<SubmissionKey> {
    headers.idempotency_key.as_ref().map(|key| SubmissionKey {
        scope: principal.actor(),
        key: key.clone(),
        request_hash: fingerprint(request),
    })
}

/// A stored job, about to be answered.
pub(crate) struct Accepted {
    pub job: JobAccepted,
    /// An earlier request's job (same `Idempotency-Key`).
    pub replayed: bool,
}

impl Accepted {
    /// `status` with `body`, the job's `Location`, and `Idempotent-Replayed: true` when so.
    pub fn respond(&self, status: StatusCode, body: impl Serialize) -> Response {
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&self.job.location) {
            headers.insert(header::LOCATION, value);
        }
        if self.replayed {
            headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
        }
        response
    }
}

/// Stores the job (or finds the one of its `Idempotency-Key`) and wakes the worker.
pub(crate) async fn accept(state: &AppState, job: NewJob) -> Result<Accepted, ApiError> {
    let submitted = BulkJobs::new(state.pool.clone())
        .submit(job)
        .await
        .map_err(|error| match error {
            SubmitError::KeyReused => ApiError::validation(
                "IDEMPOTENCY_KEY_REUSED",
                "this Idempotency-Key was already used for a different request",
            ),
            SubmitError::Database(error) => error.into(),
        })?;
    state.bulk_wake.notify_one();
    let id = submitted.id();
    let job = load(state, id).await?;
    Ok(Accepted {
        job: JobAccepted {
            id,
            status: job.status,
            total: job.total,
            dry_run: job.dry_run,
            location: format!("/api/v1/bulk-jobs/{id}"),
        },
        replayed: matches!(submitted, Submitted::Existing(_)),
    })
}

async fn load(state: &AppState, id: Uuid) -> Result<JobView, ApiError> {
    BulkJobs::new(state.pool.clone())
        .job(id)
        .await?
        .ok_or_else(|| ApiError::not_found("BULK_JOB_NOT_FOUND", "no bulk job with this id"))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListJobs {
    /// From 1 (default 1).
    #[param(minimum = 1)]
    pub page: Option<u32>,
    /// 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<u32>,
}

/// Bulk jobs, newest first (total in `X-Total-Count`).
#[utoipa::path(get, path = "/api/v1/bulk-jobs", tag = "bulk", params(ListJobs),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Vec<JobView>, headers(("X-Total-Count" = i64, description = "Jobs in all"))),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<ListJobs>,
) -> Result<Response, ApiError> {
    principal.require(Role::Operator)?;
    let (page, size) = paging(query.page, query.page_size, 20, 100)?;
    let jobs = BulkJobs::new(state.pool.clone());
    let listed = jobs.list(None, (page - 1) * size, size).await?;
    let total = jobs.count().await?;
    Ok(([("x-total-count", total.to_string())], Json(listed)).into_response())
}

/// `(page, page_size)` from 1, within `max`.
pub(crate) fn paging(
    page: Option<u32>,
    size: Option<u32>,
    default: u32,
    max: u32,
) -> Result<(i64, i64), ApiError> {
    let bad = |parameter: &str, reason: String| {
        ApiError::bad_request(
            "INVALID_QUERY",
            format!("invalid query parameter {parameter}: {reason}"),
        )
        .with_details(json!({ "parameter": parameter, "reason": reason }))
    };
    let page = page.unwrap_or(1);
    if page == 0 {
        return Err(bad("page", "pages count from 1".into()));
    }
    let size = size.unwrap_or(default);
    if size == 0 || size > max {
        return Err(bad("page_size", format!("expected 1 to {max}")));
    }
    Ok((i64::from(page), i64::from(size)))
}

/// A job and its progress.
#[utoipa::path(get, path = "/api/v1/bulk-jobs/{id}", tag = "bulk", params(("id" = Uuid, Path)),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = JobView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn job(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<JobView>, ApiError> {
    principal.require(Role::Operator)?;
    load(&state, id).await.map(Json)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListItems {
    /// From 1 (default 1). Not with `after`.
    #[param(minimum = 1)]
    page: Option<u32>,
    /// 1 to 1,000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    page_size: Option<u32>,
    /// Keyset: the items after this `seq` (`X-Next-Cursor` of the page before).
    after: Option<i32>,
    /// `pending` (not run yet), `applied`, `would_apply`, `refused`, `failed`, `cancelled`.
    outcome: Option<String>,
    /// `csv`: every item (of `outcome`), streamed, as `Accept: text/csv` does.
    format: Option<String>,
}

const OUTCOMES: [&str; 6] = [
    "pending",
    "applied",
    "would_apply",
    "refused",
    "failed",
    "cancelled",
];
const CSV_CHUNK: i64 = 2_000;

/// The job's per-SIM outcomes in target order: a page of JSON (`X-Total-Count`,
/// `X-Next-Cursor`), or with `Accept: text/csv` or `format=csv` all of them as a CSV stream.
#[utoipa::path(get, path = "/api/v1/bulk-jobs/{id}/items", tag = "bulk", params(("id" = Uuid, Path), ListItems),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, description = "A page of items; as text/csv: every item",
            content((Vec<ItemView> = "application/json"), (String = "text/csv")),
            headers(("X-Total-Count" = i64, description = "Items (of `outcome`) in all"),
                ("X-Next-Cursor" = i32, description = "`after` of the next page, when there may be one"))),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn items(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<ListItems>,
    request_headers: HeaderMap,
) -> Result<Response, ApiError> {
    principal.require(Role::Operator)?;
    if let Some(outcome) = &query.outcome {
        if !OUTCOMES.contains(&outcome.as_str()) {
            let reason = format!("expected one of {}", OUTCOMES.join(", "));
            return Err(ApiError::bad_request(
                "INVALID_QUERY",
                format!("invalid query parameter outcome: {reason}"),
            )
            .with_details(json!({ "parameter": "outcome", "reason": reason })));
        }
    }
    if query.after.is_some() && query.page.is_some() {
        return Err(
            ApiError::bad_request("INVALID_QUERY", "use either page or after, not both").with_details(
                json!({ "parameter": "after", "reason": "use either page or after, not both" }),
            ),
        );
    }
    let job = load(&state, id).await?;
    let wants_csv = query.format.as_deref() == Some("csv")
        || request_headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|accept| accept.contains("text/csv"));
    if let Some(format) = query.format.as_deref().filter(|f| *f != "csv" && *f != "json") {
        return Err(ApiError::bad_request(
            "INVALID_QUERY",
            format!("invalid query parameter format: {format}"),
        )
        .with_details(json!({ "parameter": "format", "reason": "expected csv or json" })));
    }
    if wants_csv {
        return Ok(csv_stream(BulkJobs::new(state.pool.clone()), &job, query.outcome));
    }
    let (page, size) = paging(query.page, query.page_size, 100, 1000)?;
    let items = BulkJobs::new(state.pool.clone())
        .items(
            id,
            &ItemQuery {
                outcome: query.outcome.clone(),
                after: query.after,
                offset: query.after.is_none().then_some((page - 1) * size),
                limit: size,
            },
        )
        .await?;
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-total-count",
        HeaderValue::from(count_of(&job, query.outcome.as_deref())),
    );
    if items.len() as i64 == size {
        if let Some(last) = items.last() {
            headers.insert("x-next-cursor", HeaderValue::from(last.seq));
        }
    }
    Ok((headers, Json(items)).into_response())
}

/// How many of the job's items have `outcome`, from its counters.
fn count_of(job: &JobView, outcome: Option<&str>) -> i32 {
    match outcome {
        None => job.total,
        Some("pending") => job.total - job.done - job.cancelled,
        Some("applied") => job.applied,
        Some("would_apply") => job.would_apply,
        Some("refused") => job.refused,
        Some("failed") => job.failed,
        _ => job.cancelled,
    }
}

/// Every item as CSV, read and sent a chunk at a time (a job may have 100,000).
fn csv_stream(jobs: BulkJobs, job: &JobView, outcome: Option<String>) -> Response {
    let id = job.id;
    let header = "seq,iccid,outcome,code,message,provider_outcome,provider_reason,aggregate_id,request_id,position,finished_at\n";
    let chunks = stream::unfold(Some(0), move |after| {
        let jobs = jobs.clone();
        let outcome = outcome.clone();
        async move {
            let after = after?;
            let query = ItemQuery {
                outcome,
                after: Some(after),
                offset: None,
                limit: CSV_CHUNK,
            };
            match jobs.items(id, &query).await {
                Ok(items) => {
                    let next = (items.len() as i64 == CSV_CHUNK)
                        .then(|| items.last().map(|i| i.seq))
                        .flatten();
                    Some((Ok::<_, std::io::Error>(csv_rows(&items)), next))
                }
                Err(error) => Some((Err(std::io::Error::other(error)), None)),
            }
        }
    });
    let body = stream::iter([Ok::<_, std::io::Error>(header.as_bytes().to_vec())]);
    let body = Body::from_stream(futures::StreamExt::chain(body, chunks));
    let disposition = format!("attachment; filename=\"bulk-job-{id}.csv\"");
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response()
}

fn csv_rows(items: &[ItemView]) -> Vec<u8> {
    let mut writer = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    for item in items {
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        let _ = writer.write_record([
            item.seq.to_string(),
            item.iccid.clone(),
            text(&item.outcome),
            text(&item.code),
            text(&item.message),
            text(&item.provider_outcome),
            text(&item.provider_reason),
            text(&item.aggregate_id),
            item.request_id.map(|r| r.to_string()).unwrap_or_default(),
            item.position.map(|p| p.to_string()).unwrap_or_default(),
            item.finished_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
        ]);
    }
    writer.into_inner().unwrap_or_default()
}

/// Cancels the job: items not started yet end as `cancelled`; those started finish.
/// Cancelling a cancelled job answers it again.
#[utoipa::path(post, path = "/api/v1/bulk-jobs/{id}/cancel", tag = "bulk", params(("id" = Uuid, Path)),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = JobView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "`BULK_JOB_FINISHED`: every item ran already")))]
pub(crate) async fn cancel(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<JobView>, ApiError> {
    principal.require(Role::Operator)?;
    match BulkJobs::new(state.pool.clone()).cancel(id).await? {
        Cancelled::NotFound => Err(ApiError::not_found(
            "BULK_JOB_NOT_FOUND",
            "no bulk job with this id",
        )),
        Cancelled::AlreadyDone(job) => Err(ApiError::conflict(
            "BULK_JOB_FINISHED",
            "every item of this job ran already; nothing is left to cancel",
        )
        .with_details(json!({ "status": job.status, "total": job.total, "done": job.done }))),
        Cancelled::Cancelled(job) => Ok(Json(job)),
    }
}
