//! Sync jobs: `POST /sims/{iccid}/sync` and `POST /sims/sync-all` queue a job for the sync
//! connector (a `sync_jobs` row, plus a NATS message that wakes the connector at once; without
//! NATS it finds the job on its next periodic look), and `GET /sync-jobs/{job_id}` reads its
//! progress.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use platform::{ApiError, ApiPath, Principal, Role};
use serde::Serialize;
use uuid::Uuid;

use crate::error::domain_error;
use crate::openapi::ErrorBody;
use crate::state::AppState;

/// The subject the sync connector listens on for new jobs.
pub const JOBS_SUBJECT: &str = "sync.v1.jobs";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sims/sync-all", post(sync_all))
        .route("/sims/{iccid}/sync", post(sync_one))
        .route("/sync-jobs/{job_id}", get(job))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct JobAccepted {
    job_id: Uuid,
    /// `all` or the ICCID.
    scope: String,
    status: &'static str,
    /// Where the job's progress can be read.
    location: String,
}

/// Queues a refresh of one SIM from the provider: its list entry, connectivity, quotas, usage
/// and SMS. The SIM need not be known to the platform yet (a SIM new at the provider is
/// registered by it).
#[utoipa::path(post, path = "/api/v1/sims/{iccid}/sync", tag = "sync",
    security(("bearer" = []), ("api_key" = [])), params(("iccid" = String, Path, description = "19 digits, or 20 with a correct Luhn digit")),
    responses((status = 202, body = JobAccepted), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(crate) async fn sync_one(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(raw_iccid): ApiPath<String>,
) -> Result<Response, ApiError> {
    principal.require(Role::Operator)?;
    let iccid = domain::Iccid::parse(&raw_iccid).map_err(|error| domain_error(&error))?;
    queue(&state, &principal, iccid.to_string()).await
}

/// Queues a full sync: the whole SIM list, then every SIM's details, within the call budget.
#[utoipa::path(post, path = "/api/v1/sims/sync-all", tag = "sync",
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 202, body = JobAccepted), (status = 403, body = ErrorBody)))]
pub(crate) async fn sync_all(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Response, ApiError> {
    principal.require(Role::Operator)?;
    queue(&state, &principal, "all".to_owned()).await
}

async fn queue(state: &AppState, principal: &Principal, scope: String) -> Result<Response, ApiError> {
    let job_id = Uuid::now_v7();
    sqlx::query("INSERT INTO sync_jobs (job_id, scope, requested_by) VALUES ($1, $2, $3)")
        .bind(job_id)
        .bind(&scope)
        .bind(principal.actor())
        .execute(&state.pool)
        .await?;
    if let Some(nats) = &state.nats {
        // Best effort: the connector also looks for queued jobs on its own.
        if let Err(error) = nats.publish(JOBS_SUBJECT, job_id.to_string().into()).await {
            tracing::warn!(%error, %job_id, "cannot wake the sync connector; it will find the job by itself");
        }
    }
    let location = format!("/api/v1/sync-jobs/{job_id}");
    let mut response = (
        StatusCode::ACCEPTED,
        Json(JobAccepted {
            job_id,
            scope,
            status: "queued",
            location: location.clone(),
        }),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct JobStatus {
    job_id: Uuid,
    scope: String,
    /// `queued`, `running`, `completed` or `failed`.
    status: &'static str,
    requested_by: String,
    requested_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    sims_total: i64,
    sims_done: i64,
    events_recorded: i64,
    /// One run per connector shard that owns part of the scope.
    runs: Vec<JobRun>,
}

#[derive(Debug, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub(crate) struct JobRun {
    shard: String,
    #[serde(skip)]
    shard_count: i32,
    status: String,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    sims_total: i32,
    sims_done: i32,
    events_recorded: i32,
    error: Option<String>,
}

/// A sync job's progress, summed over the connector shards that run it.
#[utoipa::path(get, path = "/api/v1/sync-jobs/{job_id}", tag = "sync",
    security(("bearer" = []), ("api_key" = [])), params(("job_id" = Uuid, Path)),
    responses((status = 200, body = JobStatus), (status = 404, body = ErrorBody)))]
pub(crate) async fn job(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(job_id): ApiPath<Uuid>,
) -> Result<Json<JobStatus>, ApiError> {
    principal.require(Role::Viewer)?;
    let Some((scope, requested_by, requested_at)) = sqlx::query_as::<_, (String, String, DateTime<Utc>)>(
        "SELECT scope, requested_by, requested_at FROM sync_jobs WHERE job_id = $1",
    )
    .bind(job_id)
    .fetch_optional(&state.pool)
    .await?
    else {
        return Err(ApiError::not_found(
            "SYNC_JOB_NOT_FOUND",
            "no sync job with this id",
        ));
    };
    let runs: Vec<JobRun> = sqlx::query_as(
        "SELECT shard, shard_count, status, started_at, finished_at, sims_total, sims_done, events_recorded, error \
         FROM sync_job_runs WHERE job_id = $1 ORDER BY shard",
    )
    .bind(job_id)
    .fetch_all(&state.pool)
    .await?;
    let status = job_status(&scope, &runs);
    let finished_at = match status {
        "completed" | "failed" => runs.iter().filter_map(|r| r.finished_at).max(),
        _ => None,
    };
    Ok(Json(JobStatus {
        job_id,
        scope,
        status,
        requested_by,
        requested_at,
        finished_at,
        sims_total: runs.iter().map(|r| i64::from(r.sims_total)).sum(),
        sims_done: runs.iter().map(|r| i64::from(r.sims_done)).sum(),
        events_recorded: runs.iter().map(|r| i64::from(r.events_recorded)).sum(),
        runs,
    }))
}

/// A job is done when every shard that owns part of its scope has run it: one shard for an
/// ICCID, all of them for `all` (each run records how many shards there are).
fn job_status(scope: &str, runs: &[JobRun]) -> &'static str {
    if runs.is_empty() {
        return "queued";
    }
    let expected = if scope == "all" {
        runs.iter()
            .map(|r| r.shard_count.max(1) as usize)
            .max()
            .unwrap_or(1)
    } else {
        1
    };
    let finished = runs.iter().filter(|r| r.status != "running").count();
    if finished < expected {
        "running"
    } else if runs.iter().any(|r| r.status == "failed") {
        "failed"
    } else {
        "completed"
    }
}
