//! Sync jobs: `POST /sims/{iccid}/sync` and `POST /sims/sync-all` queue a job for the sync
//! connector (a `sync_jobs` row, plus a NATS message that wakes the connector at once; without
//! NATS it finds the job on its next periodic look), and `GET /sync-jobs/{job_id}` reads its
//! progress.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use platform::{ApiError, ApiPath, ApiQuery, IccidPath, Principal, Role};
use relay::wire::JOBS_SUBJECT;
use serde::Serialize;
use sync_jobs::{JobProgress, SyncJobs};
use uuid::Uuid;

use crate::openapi::ErrorBody;
use crate::routes::bulk::{paging, ListJobs};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sims/sync-all", post(sync_all))
        .route("/sims/{iccid}/sync", post(sync_one))
        .route("/sync-jobs", get(list))
        .route("/sync-jobs/{job_id}", get(job))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct SyncJobAccepted {
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
    responses((status = 202, body = SyncJobAccepted), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(crate) async fn sync_one(
    State(state): State<AppState>,
    principal: Principal,
    IccidPath(iccid): IccidPath,
) -> Result<Response, ApiError> {
    principal.require(Role::Operator)?;
    queue(&state, &principal, iccid.to_string()).await
}

/// Queues a full sync: the whole SIM list, then every SIM's details, within the call budget.
#[utoipa::path(post, path = "/api/v1/sims/sync-all", tag = "sync",
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 202, body = SyncJobAccepted), (status = 403, body = ErrorBody)))]
pub(crate) async fn sync_all(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Response, ApiError> {
    principal.require(Role::Operator)?;
    queue(&state, &principal, "all".to_owned()).await
}

async fn queue(state: &AppState, principal: &Principal, scope: String) -> Result<Response, ApiError> {
    let job_id = SyncJobs::new(state.pool.clone())
        .queue(&scope, &principal.actor())
        .await?;
    wake_connector(state, job_id).await;
    let location = format!("/api/v1/sync-jobs/{job_id}");
    let mut response = (
        StatusCode::ACCEPTED,
        Json(SyncJobAccepted {
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

/// Tells the sync connector a job is queued. Best effort: the connector also looks for queued
/// jobs on its own.
pub(crate) async fn wake_connector(state: &AppState, job_id: Uuid) {
    if let Some(nats) = &state.nats {
        if let Err(error) = nats.publish(JOBS_SUBJECT, job_id.to_string().into()).await {
            tracing::warn!(%error, %job_id, "cannot wake the sync connector; it will find the job by itself");
        }
    }
}

/// A sync job's progress, summed over the connector shards that run it.
#[utoipa::path(get, path = "/api/v1/sync-jobs/{job_id}", tag = "sync", operation_id = "sync_job",
    security(("bearer" = []), ("api_key" = [])), params(("job_id" = Uuid, Path)),
    responses((status = 200, body = JobProgress), (status = 404, body = ErrorBody)))]
pub(crate) async fn job(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(job_id): ApiPath<Uuid>,
) -> Result<Json<JobProgress>, ApiError> {
    principal.require(Role::Viewer)?;
    SyncJobs::new(state.pool.clone())
        .progress(job_id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("SYNC_JOB_NOT_FOUND", "no sync job with this id"))
}

/// Sync jobs, newest first, with their progress (total in `X-Total-Count`): what the
/// dashboard's sync screen lists.
#[utoipa::path(get, path = "/api/v1/sync-jobs", tag = "sync", operation_id = "list_sync_jobs", params(ListJobs),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Vec<JobProgress>, headers(("X-Total-Count" = i64, description = "Jobs in all"))),
        (status = 400, body = ErrorBody)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<ListJobs>,
) -> Result<Response, ApiError> {
    principal.require(Role::Viewer)?;
    let (page, size) = paging(query.page, query.page_size, 20, 100)?;
    let jobs = SyncJobs::new(state.pool.clone());
    let listed = jobs.recent((page - 1) * size, size).await?;
    let total = jobs.count().await?;
    Ok(([("x-total-count", total.to_string())], Json(listed)).into_response())
}
