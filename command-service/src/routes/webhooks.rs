//! Webhooks (admin only): subscriptions of downstream systems to the log's events, pushed by
//! the dispatcher (`crate::webhooks::dispatcher`). The secret is shown once, at creation.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use eventstore::GlobalLog;
use platform::{ApiError, ApiJson, ApiPath, ApiQuery, Principal, Role};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;
use webhooks::{signature, DeliveryView, NewSubscription, SubscriptionView, Webhooks};

use crate::openapi::ErrorBody;
use crate::routes::bulk::paging;
use crate::state::AppState;
use crate::webhooks::target;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/webhooks", get(list_webhooks).post(create_webhook))
        .route(
            "/webhooks/{id}",
            get(show_webhook).patch(update_webhook).delete(delete_webhook),
        )
        .route("/webhooks/{id}/deliveries", get(webhook_deliveries))
}

/// A subscription: where to, which events, and from where in the log.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateWebhook {
    /// `http` or `https`; internal addresses are refused unless `WEBHOOK_ALLOW_PRIVATE`.
    url: String,
    /// Event types (`SimSuspended`), or prefixes ending in `*` (`Quota*`; `*` for all).
    event_types: Vec<String>,
    /// Only events of SIMs that carried this tag when the event happened (events about no SIM
    /// are then not delivered either).
    tag: Option<String>,
    description: Option<String>,
    /// Deliver the events after this global position (a replay); default: only new events.
    from_position: Option<i64>,
}

/// The new subscription, with its secret (shown this once).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct CreatedWebhook {
    #[serde(flatten)]
    subscription: SubscriptionView,
    /// The HMAC-SHA256 key of `X-Signature`: store it now, it is never shown again.
    secret: String,
}

/// What to change; what is left out stays.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateWebhook {
    url: Option<String>,
    event_types: Option<Vec<String>>,
    /// A tag to filter by; `""` removes the filter.
    tag: Option<String>,
    description: Option<String>,
    /// `active` (also resumes a `failing` one, from the event it failed at) or `paused`.
    status: Option<String>,
    /// Move the cursor: deliver again from after this position.
    from_position: Option<i64>,
}

fn not_found(id: Uuid) -> ApiError {
    ApiError::not_found("WEBHOOK_NOT_FOUND", format!("no webhook {id}"))
}

async fn checked_url(state: &AppState, url: &str) -> Result<String, ApiError> {
    target::check(url, &target::Resolver::system(state.webhooks.allow_private))
        .await
        .map(|url| url.to_string())
        .map_err(|(code, message)| ApiError::validation(code, message))
}

fn checked_types(event_types: &[String]) -> Result<(), ApiError> {
    if event_types.is_empty() || event_types.len() > 100 {
        return Err(ApiError::validation(
            "INVALID_EVENT_TYPES",
            "give 1 to 100 event types (`*` for all)",
        ));
    }
    for pattern in event_types {
        webhooks::check_pattern(pattern)
            .map_err(|reason| ApiError::validation("INVALID_EVENT_TYPES", reason))?;
    }
    Ok(())
}

/// The tag of a filter, normalised as SIM tags are (`""` only where `empty` clears it).
fn checked_tag(tag: Option<&str>, empty: bool) -> Result<Option<String>, ApiError> {
    match tag {
        None => Ok(None),
        Some("") if empty => Ok(Some(String::new())),
        Some(tag) => domain::sim::normalise_tags(vec![tag.to_owned()])
            .map(|tags| tags.into_iter().next())
            .map_err(|error| ApiError::validation("INVALID_TAG", format!("tag: {error}"))),
    }
}

/// The log's cursor at `position` (`None`: the head, so only new events).
async fn cursor_at(state: &AppState, position: Option<i64>) -> Result<(u64, i64), ApiError> {
    let log = GlobalLog::new(state.pool.clone());
    let position = match position {
        Some(position) if position < 0 => {
            return Err(ApiError::validation(
                "INVALID_POSITION",
                "from_position is 0 or more",
            ))
        }
        Some(position) => position,
        None => log.head().await?,
    };
    let cursor = log.cursor_at(position).await.map_err(|error| match error {
        eventstore::StoreError::UnknownPosition(_) => {
            ApiError::validation("INVALID_POSITION", format!("no event at position {position}"))
        }
        other => other.into(),
    })?;
    Ok((cursor.transaction_id, cursor.position))
}

/// Creates a subscription; its events are delivered from now (or after `from_position`).
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", request_body = CreateWebhook,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 201, body = CreatedWebhook), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`INVALID_URL`, `WEBHOOK_TARGET_NOT_ALLOWED`, `WEBHOOK_TARGET_UNRESOLVED`, `INVALID_EVENT_TYPES`, `INVALID_TAG`, `INVALID_POSITION`")))]
pub(crate) async fn create_webhook(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(request): ApiJson<CreateWebhook>,
) -> Result<Response, ApiError> {
    principal.require(Role::Admin)?;
    let url = checked_url(&state, &request.url).await?;
    checked_types(&request.event_types)?;
    let tag = checked_tag(request.tag.as_deref(), false)?;
    let cursor = cursor_at(&state, request.from_position).await?;
    let secret = signature::new_secret();
    let subscription = Webhooks::new(state.pool.clone())
        .create(NewSubscription {
            url,
            description: request.description,
            event_types: request.event_types,
            tag,
            secret: secret.clone(),
            created_by: principal.actor(),
            cursor,
        })
        .await?;
    tracing::info!(webhook = %subscription.id, by = %principal.actor(), "webhook created");
    Ok((StatusCode::CREATED, Json(CreatedWebhook { subscription, secret })).into_response())
}

#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks", security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Vec<SubscriptionView>), (status = 403, body = ErrorBody)))]
pub(crate) async fn list_webhooks(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Vec<SubscriptionView>>, ApiError> {
    principal.require(Role::Admin)?;
    Ok(Json(Webhooks::new(state.pool.clone()).list().await?))
}

#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "webhooks", params(("id" = Uuid, Path)),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = SubscriptionView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn show_webhook(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<SubscriptionView>, ApiError> {
    principal.require(Role::Admin)?;
    let found = Webhooks::new(state.pool.clone()).get(id).await?;
    found.map(Json).ok_or_else(|| not_found(id))
}

/// Changes a subscription; `{"status": "active"}` resumes a paused or failing one.
#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", tag = "webhooks", request_body = UpdateWebhook,
    params(("id" = Uuid, Path)), security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = SubscriptionView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "as on create, and `INVALID_STATUS`")))]
pub(crate) async fn update_webhook(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(request): ApiJson<UpdateWebhook>,
) -> Result<Json<SubscriptionView>, ApiError> {
    principal.require(Role::Admin)?;
    let url = match &request.url {
        Some(url) => Some(checked_url(&state, url).await?),
        None => None,
    };
    if let Some(event_types) = &request.event_types {
        checked_types(event_types)?;
    }
    let tag = checked_tag(request.tag.as_deref(), true)?;
    if let Some(status) = &request.status {
        if !matches!(status.as_str(), "active" | "paused") {
            return Err(ApiError::validation(
                "INVALID_STATUS",
                "status is `active` or `paused`",
            ));
        }
    }
    let cursor = match request.from_position {
        Some(position) => Some(cursor_at(&state, Some(position)).await?),
        None => None,
    };
    let updated = Webhooks::new(state.pool.clone())
        .update(
            id,
            url.as_deref(),
            request.description.as_deref(),
            request.event_types.as_deref(),
            tag.as_deref(),
            request.status.as_deref(),
            cursor,
        )
        .await?
        .ok_or_else(|| not_found(id))?;
    tracing::info!(webhook = %id, status = ?request.status, by = %principal.actor(), "webhook changed");
    Ok(Json(updated))
}

#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks", params(("id" = Uuid, Path)),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 204, description = "Deleted, with its delivery log"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn delete_webhook(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    principal.require(Role::Admin)?;
    if !Webhooks::new(state.pool.clone()).delete(id).await? {
        return Err(not_found(id));
    }
    tracing::info!(webhook = %id, by = %principal.actor(), "webhook deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListDeliveries {
    /// From 1 (default 1).
    #[param(minimum = 1)]
    page: Option<u32>,
    /// 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    page_size: Option<u32>,
}

/// The subscription's delivery log, newest event first (total in `X-Total-Count`).
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks", params(("id" = Uuid, Path), ListDeliveries),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Vec<DeliveryView>, headers(("X-Total-Count" = i64, description = "Deliveries in all"))),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn webhook_deliveries(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<ListDeliveries>,
) -> Result<Response, ApiError> {
    principal.require(Role::Admin)?;
    let (page, size) = paging(query.page, query.page_size, 20, 100)?;
    let hooks = Webhooks::new(state.pool.clone());
    if hooks.get(id).await?.is_none() {
        return Err(not_found(id));
    }
    let (rows, total) = hooks.deliveries(id, page, size).await?;
    Ok(([("x-total-count", total.to_string())], Json(json!(rows))).into_response())
}
