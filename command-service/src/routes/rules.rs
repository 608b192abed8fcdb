//! Rules (operator or admin): "on event type X (tag, quota kind, threshold) do Y". Rules are
//! event-sourced (aggregate type `rule`): every change is a command with the usual
//! `Idempotency-Key` and `If-Match`. The engine (`crate::rules::engine`) fires enabled rules;
//! a dry run evaluates one over the past without writing.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use domain::rule::{Rule, RuleAction, RuleCommand, RuleSpec};
use eventstore::GlobalLog;
use platform::{ApiError, ApiJson, ApiPath, ApiQuery, Principal, Role};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;
use webhooks::Webhooks;

use crate::commands::{answer, CommandHeaders};
use crate::error::execute_error;
use crate::openapi::{CommandAnswer, ErrorBody};
use crate::routes::bulk::paging;
use crate::rules::store::{FiringView, RuleTables};
use crate::rules::{
    about_a_sim, event_ids, facts_of, load_rule, load_rules, sim_action, StoredRule, RULES_ICCID,
};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/rules", get(list_rules).post(create_rule))
        .route("/rules/{id}", get(show_rule).put(change_rule).delete(delete_rule))
        .route("/rules/{id}/enable", post(enable_rule))
        .route("/rules/{id}/disable", post(disable_rule))
        .route("/rules/{id}/firings", get(rule_firings))
        .route("/rules/{id}/dry-run", post(dry_run_rule))
}

/// A rule as read.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct RuleView {
    id: Uuid,
    /// `{name, trigger: {event_type, tag?, quota_kind?, threshold?}, action: {kind: top_up |
    /// suspend | send_sms (text) | add_tag (tag) | webhook (webhook_id)}}`.
    #[schema(value_type = Object)]
    spec: Option<RuleSpec>,
    enabled: bool,
    /// The aggregate's version (the `ETag`, usable in `If-Match`).
    version: u64,
}

impl RuleView {
    fn of(stored: StoredRule) -> Self {
        Self {
            id: stored.id,
            enabled: stored.rule.enabled(),
            spec: stored.rule.spec().cloned(),
            version: stored.version,
        }
    }
}

async fn execute(
    state: &AppState,
    principal: &Principal,
    headers: &CommandHeaders,
    id: Uuid,
    command: RuleCommand,
    status: StatusCode,
) -> Result<Response, ApiError> {
    principal.require(Role::Operator)?;
    let spec = match &command {
        RuleCommand::Create { spec, .. } | RuleCommand::Change { spec } => Some(spec),
        _ => None,
    };
    if let Some(RuleAction::Webhook { webhook_id }) = spec.map(|spec| &spec.action) {
        // The subscription is the action's target: it must exist when the rule is saved
        // (one deleted later makes the firings `refused` with `WEBHOOK_NOT_FOUND`).
        if Webhooks::new(state.pool.clone())
            .get(*webhook_id)
            .await?
            .is_none()
        {
            return Err(ApiError::validation(
                "INVALID_RULE",
                format!("invalid rule: action.webhook_id: no webhook subscription {webhook_id}"),
            ));
        }
    }
    let ctx = headers.context(principal, &(id, &command), status);
    let executed = state
        .store
        .execute::<Rule>(&id.to_string(), RULES_ICCID, command, &ctx)
        .await
        .map_err(execute_error)?;
    Ok(answer(executed, status, Some(format!("/api/v1/rules/{id}"))))
}

/// Creates a rule, disabled: try it with a dry run, then enable it.
#[utoipa::path(post, path = "/api/v1/rules", tag = "rules", request_body = Object,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 201, body = CommandAnswer, description = "`aggregate_id` is the rule's id; `Location` names it"),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody, description = "`INVALID_RULE`, `INVALID_BODY`")))]
pub(crate) async fn create_rule(
    State(state): State<AppState>,
    principal: Principal,
    headers: CommandHeaders,
    ApiJson(spec): ApiJson<RuleSpec>,
) -> Result<Response, ApiError> {
    // With an Idempotency-Key a retry must name the same rule: its id comes from the key.
    let rule_id = match &headers.idempotency_key {
        Some(key) => crate::rules::derived_id(&format!("{}:{key}", principal.actor())),
        None => Uuid::now_v7(),
    };
    execute(
        &state,
        &principal,
        &headers,
        rule_id,
        RuleCommand::Create { rule_id, spec },
        StatusCode::CREATED,
    )
    .await
}

#[utoipa::path(get, path = "/api/v1/rules", tag = "rules", security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Vec<RuleView>, description = "Every rule not deleted, oldest first"), (status = 403, body = ErrorBody)))]
pub(crate) async fn list_rules(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Vec<RuleView>>, ApiError> {
    principal.require(Role::Operator)?;
    let rules = load_rules(&state).await?;
    Ok(Json(
        rules
            .into_iter()
            .filter(|r| r.rule.exists())
            .map(RuleView::of)
            .collect(),
    ))
}

async fn existing(state: &AppState, id: Uuid) -> Result<StoredRule, ApiError> {
    match load_rule(state, id).await? {
        Some(stored) if stored.rule.exists() => Ok(stored),
        _ => Err(ApiError::not_found("RULE_NOT_FOUND", format!("no rule {id}"))),
    }
}

#[utoipa::path(get, path = "/api/v1/rules/{id}", tag = "rules", params(("id" = Uuid, Path)),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = RuleView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn show_rule(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<RuleView>, ApiError> {
    principal.require(Role::Operator)?;
    Ok(Json(RuleView::of(existing(&state, id).await?)))
}

/// Replaces the rule's definition (the same definition again records nothing).
#[utoipa::path(put, path = "/api/v1/rules/{id}", tag = "rules", request_body = Object, params(("id" = Uuid, Path)),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = CommandAnswer), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 410, body = ErrorBody, description = "`RULE_DELETED`"), (status = 412, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(crate) async fn change_rule(
    State(state): State<AppState>,
    principal: Principal,
    headers: CommandHeaders,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(spec): ApiJson<RuleSpec>,
) -> Result<Response, ApiError> {
    execute(
        &state,
        &principal,
        &headers,
        id,
        RuleCommand::Change { spec },
        StatusCode::OK,
    )
    .await
}

#[utoipa::path(post, path = "/api/v1/rules/{id}/enable", tag = "rules", params(("id" = Uuid, Path)),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = CommandAnswer), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 410, body = ErrorBody)))]
pub(crate) async fn enable_rule(
    State(state): State<AppState>,
    principal: Principal,
    headers: CommandHeaders,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Response, ApiError> {
    execute(
        &state,
        &principal,
        &headers,
        id,
        RuleCommand::Enable,
        StatusCode::OK,
    )
    .await
}

#[utoipa::path(post, path = "/api/v1/rules/{id}/disable", tag = "rules", params(("id" = Uuid, Path)),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = CommandAnswer), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 410, body = ErrorBody)))]
pub(crate) async fn disable_rule(
    State(state): State<AppState>,
    principal: Principal,
    headers: CommandHeaders,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Response, ApiError> {
    execute(
        &state,
        &principal,
        &headers,
        id,
        RuleCommand::Disable,
        StatusCode::OK,
    )
    .await
}

#[utoipa::path(delete, path = "/api/v1/rules/{id}", tag = "rules", params(("id" = Uuid, Path)),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = CommandAnswer), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 410, body = ErrorBody)))]
pub(crate) async fn delete_rule(
    State(state): State<AppState>,
    principal: Principal,
    headers: CommandHeaders,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Response, ApiError> {
    execute(
        &state,
        &principal,
        &headers,
        id,
        RuleCommand::Delete,
        StatusCode::OK,
    )
    .await
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct Paging {
    /// From 1 (default 1).
    page: Option<u32>,
    /// 1 to 100 (default 20).
    page_size: Option<u32>,
}

/// The rule's firings, newest event first (total in `X-Total-Count`).
#[utoipa::path(get, path = "/api/v1/rules/{id}/firings", tag = "rules", params(("id" = Uuid, Path), Paging),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = Vec<FiringView>), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn rule_firings(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<Paging>,
) -> Result<Response, ApiError> {
    principal.require(Role::Operator)?;
    let (page, size) = paging(query.page, query.page_size, 20, 100)?;
    let (rows, total) = RuleTables::new(state.pool.clone())
        .firings(id, page, size)
        .await?;
    Ok(([("x-total-count", total.to_string())], Json(json!(rows))).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct DryRunQuery {
    /// RFC 3339; default 30 days ago.
    since: Option<DateTime<Utc>>,
}

/// What a dry run found: the events the rule would have acted on.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct DryRun {
    rule_id: Uuid,
    since: DateTime<Utc>,
    /// Events of the trigger's type read.
    evaluated: usize,
    would_fire: Vec<WouldFire>,
    /// More than the limit matched: `would_fire` holds the first ones.
    truncated: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct WouldFire {
    position: i64,
    event_id: String,
    event_type: String,
    iccid: String,
    recorded_at: DateTime<Utc>,
    /// The command it would issue, e.g. `top_up data`, or the webhook it would call:
    /// `webhook <subscription id> <url>`.
    command: String,
    /// The engine fired this rule for this event already.
    already_fired: bool,
}

const DRY_RUN_LIMIT: usize = 1_000;
const DRY_RUN_PAGE: i64 = 500;

/// Evaluates the rule (enabled or not) over the past events of its trigger's type, writing
/// nothing. A tag is looked for among the tags the SIM had at each event.
#[utoipa::path(post, path = "/api/v1/rules/{id}/dry-run", tag = "rules", params(("id" = Uuid, Path), DryRunQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = DryRun), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn dry_run_rule(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<DryRunQuery>,
) -> Result<Json<DryRun>, ApiError> {
    principal.require(Role::Operator)?;
    let stored = existing(&state, id).await?;
    let Some(spec) = stored.rule.spec() else {
        return Err(ApiError::not_found("RULE_NOT_FOUND", format!("no rule {id}")));
    };
    let since = query
        .since
        .unwrap_or_else(|| Utc::now() - chrono::Duration::days(30));
    // The webhook it would call: `webhook <id> <url>` (the subscription as it is now).
    let webhook = match &spec.action {
        RuleAction::Webhook { webhook_id } => {
            Some(match Webhooks::new(state.pool.clone()).get(*webhook_id).await? {
                Some(subscription) => format!("webhook {webhook_id} {}", subscription.url),
                None => format!("webhook {webhook_id} (no such subscription: would be refused)"),
            })
        }
        _ => None,
    };
    let log = GlobalLog::new(state.pool.clone());
    let (mut after, mut evaluated, mut would_fire, mut truncated) = (0, 0, Vec::new(), false);
    'pages: loop {
        let events = log
            .of_type_since(&spec.trigger.event_type, since, after, DRY_RUN_PAGE)
            .await?;
        let Some(last) = events.last() else { break };
        after = last.position;
        for event in &events {
            evaluated += 1;
            if !about_a_sim(event) {
                continue;
            }
            let facts = facts_of(&state, event, spec.trigger.tag.is_some()).await?;
            if !spec.trigger.matches(&facts.facts()) {
                continue;
            }
            if would_fire.len() == DRY_RUN_LIMIT {
                truncated = true;
                break 'pages;
            }
            let command = match sim_action(&spec.action, spec.trigger.quota_kind, &facts) {
                Some(crate::actions::SimAction::TopUp { kind, .. }) => format!("top_up {}", kind.as_str()),
                Some(_) => spec.action.as_str().to_owned(),
                None => webhook.clone().unwrap_or_default(),
            };
            would_fire.push(WouldFire {
                position: event.position,
                event_id: event_ids(event).0,
                event_type: event.event_type.clone(),
                iccid: event.iccid.clone(),
                recorded_at: event.recorded_at,
                command,
                already_fired: false,
            });
        }
    }
    let positions: Vec<i64> = would_fire.iter().map(|w| w.position).collect();
    let fired = RuleTables::new(state.pool.clone())
        .fired_at(id, &positions)
        .await?;
    for item in &mut would_fire {
        item.already_fired = fired.contains(&item.position);
    }
    Ok(Json(DryRun {
        rule_id: id,
        since,
        evaluated,
        would_fire,
        truncated,
    }))
}
