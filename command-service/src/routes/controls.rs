//! Provider controls carried out at 1NCE (operator or admin): a SIM's connectivity reset and
//! auto top-up, and the account's self-set monthly limits. Each command records an intent; the
//! sync connector carries it out exactly once and settles it (completed, failed with 1NCE's
//! message, or unknown). Commands honour `Idempotency-Key` and `If-Match` like the others.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use domain::limits::{
    AccountLimits, AccountLimitsCommand, LimitIds, ACCOUNT_LIMITS_ID, ACCOUNT_SUBJECT_TOKEN,
};
use platform::{ApiError, ApiJson, IccidPath, Principal, Role};
use serde::{Deserialize, Serialize};
use sqlx::FromRow;

use super::sims::simple_sim_command;
use crate::actions::SimAction;
use crate::commands::{answer, CommandHeaders};
use crate::error::execute_error;
use crate::openapi::{CommandAnswer, ErrorBody};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sims/{iccid}/connectivity-reset", post(reset_connectivity))
        .route("/sims/{iccid}/auto-topup", put(set_auto_top_up))
        .route("/limits", get(show_limits).put(change_limits))
}

/// Queues a connectivity reset at 1NCE (it drops and re-attaches the SIM's data session).
/// Recorded as requested; the SIM view's `controls.last_reset` shows the outcome.
#[utoipa::path(post, path = "/api/v1/sims/{iccid}/connectivity-reset", tag = "commands",
    security(("bearer" = []), ("api_key" = [])), params(("iccid" = String, Path, description = "19 digits, or 20 with a correct Luhn digit")),
    responses((status = 202, body = CommandAnswer), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`SIM_NOT_ACTIVE`, or `CHANGE_PENDING` while a reset is on its way"),
        (status = 410, body = ErrorBody), (status = 412, body = ErrorBody)))]
pub(crate) async fn reset_connectivity(
    State(state): State<AppState>,
    principal: Principal,
    headers: CommandHeaders,
    IccidPath(iccid): IccidPath,
) -> Result<Response, ApiError> {
    simple_sim_command(
        &state,
        &principal,
        &headers,
        iccid,
        "connectivity_reset",
        StatusCode::ACCEPTED,
        SimAction::ResetConnectivity,
    )
    .await
}

#[derive(Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AutoTopUp {
    enabled: bool,
}

/// Switches auto top-up on or off at 1NCE (an exhausted data quota is then topped up by
/// 1NCE itself). The same setting as 1NCE has, or as already requested, records nothing.
#[utoipa::path(put, path = "/api/v1/sims/{iccid}/auto-topup", tag = "commands", request_body = AutoTopUp,
    security(("bearer" = []), ("api_key" = [])), params(("iccid" = String, Path, description = "19 digits, or 20 with a correct Luhn digit")),
    responses((status = 202, body = CommandAnswer), (status = 404, body = ErrorBody), (status = 410, body = ErrorBody),
        (status = 412, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(crate) async fn set_auto_top_up(
    State(state): State<AppState>,
    principal: Principal,
    headers: CommandHeaders,
    IccidPath(iccid): IccidPath,
    ApiJson(request): ApiJson<AutoTopUp>,
) -> Result<Response, ApiError> {
    principal.require(Role::Operator)?;
    let ctx = headers.context(
        &principal,
        &("auto_topup", &iccid, &request),
        StatusCode::ACCEPTED,
    );
    let action = SimAction::SetAutoTopUp {
        enabled: request.enabled,
    };
    super::sims::perform(
        &state,
        "auto_topup",
        action,
        &iccid,
        &ctx,
        StatusCode::ACCEPTED,
        None,
    )
    .await
}

/// A limit 1NCE offers or has: its id (what `PUT /api/v1/limits` takes), value and unit.
#[derive(Debug, Serialize, FromRow, utoipa::ToSchema)]
pub(crate) struct LimitOption {
    /// `data`, `smsMT` or `smsMO`.
    service: String,
    id: i64,
    limit: Option<String>,
    unit: Option<String>,
}

/// The account's limits: what the platform last requested and its outcome, what 1NCE
/// confirmed, and what 1NCE offers (as the connector last read it).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct LimitsView {
    /// The ids confirmed by 1NCE through the platform: `{data_limit_id?, sms_mt_limit_id?,
    /// sms_mo_limit_id?}`.
    #[schema(value_type = Object)]
    confirmed: LimitIds,
    /// The last change: `{request_id, requested_at, limits, state: pending | completed | failed
    /// | unknown, reason?, settled_at?}`; null before the first.
    #[schema(value_type = Option<Object>)]
    last_change: Option<domain::limits::LimitsRecord>,
    /// The limits 1NCE has now, per service, as the connector last read them.
    at_provider: Vec<LimitOption>,
    /// The ids 1NCE offers per service, as the connector last read them.
    selectable: Vec<LimitOption>,
    /// When the connector last read 1NCE's limits; null if never.
    read_at: Option<DateTime<Utc>>,
    /// The aggregate's version (the `ETag`, usable in `If-Match`).
    version: u64,
}

#[utoipa::path(get, path = "/api/v1/limits", tag = "commands", security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = LimitsView), (status = 403, body = ErrorBody)))]
pub(crate) async fn show_limits(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<LimitsView>, ApiError> {
    principal.require(Role::Operator)?;
    let loaded = state.store.load::<AccountLimits>(ACCOUNT_LIMITS_ID).await?;
    let options: Vec<(bool, LimitOption)> =
        sqlx::query_as::<_, (bool, String, i64, Option<String>, Option<String>)>(
            "SELECT current, service, limit_id, value, unit FROM provider_limits ORDER BY service, limit_id",
        )
        .fetch_all(&state.pool)
        .await
        .map_err(ApiError::from)?
        .into_iter()
        .map(|(current, service, id, limit, unit)| {
            (
                current,
                LimitOption {
                    service,
                    id,
                    limit,
                    unit,
                },
            )
        })
        .collect();
    let read_at: Option<DateTime<Utc>> = sqlx::query_scalar("SELECT max(observed_at) FROM provider_limits")
        .fetch_one(&state.pool)
        .await
        .map_err(ApiError::from)?;
    let (at_provider, selectable): (Vec<_>, Vec<_>) = options.into_iter().partition(|(current, _)| *current);
    Ok(Json(LimitsView {
        confirmed: *loaded.state.current(),
        last_change: loaded.state.last().cloned(),
        at_provider: at_provider.into_iter().map(|(_, o)| o).collect(),
        selectable: selectable.into_iter().map(|(_, o)| o).collect(),
        read_at,
        version: loaded.version,
    }))
}

#[derive(Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChangeLimits {
    /// An id of 1NCE's data limits (`selectable` of `GET /api/v1/limits`).
    data_limit_id: Option<u64>,
    sms_mt_limit_id: Option<u64>,
    sms_mo_limit_id: Option<u64>,
}

/// Sets the account's self-set monthly limits at 1NCE (all SIMs; the ids given, the others
/// unchanged). 1NCE refuses an id it does not offer: the change then ends failed with its
/// message.
#[utoipa::path(put, path = "/api/v1/limits", tag = "commands", request_body = ChangeLimits,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 202, body = CommandAnswer, description = "`aggregate_id` is `account`"), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`CHANGE_PENDING` while a change is on its way"),
        (status = 412, body = ErrorBody), (status = 422, body = ErrorBody, description = "`INVALID_LIMITS`: no id given")))]
pub(crate) async fn change_limits(
    State(state): State<AppState>,
    principal: Principal,
    headers: CommandHeaders,
    ApiJson(request): ApiJson<ChangeLimits>,
) -> Result<Response, ApiError> {
    principal.require(Role::Operator)?;
    let status = StatusCode::ACCEPTED;
    let ctx = headers.context(&principal, &("limits", &request), status);
    let command = AccountLimitsCommand::RequestChange {
        request_id: ctx.metadata.command_id,
        limits: LimitIds {
            data_limit_id: request.data_limit_id,
            sms_mt_limit_id: request.sms_mt_limit_id,
            sms_mo_limit_id: request.sms_mo_limit_id,
        },
        at: ctx.metadata.occurred_at,
    };
    let executed = state
        .store
        .execute::<AccountLimits>(ACCOUNT_LIMITS_ID, ACCOUNT_SUBJECT_TOKEN, command, &ctx)
        .await;
    match executed {
        Ok(executed) => {
            state.count_command("limits", "accepted");
            Ok(answer(executed, status, Some("/api/v1/limits".into())))
        }
        Err(error) => {
            state.count_command("limits", "refused");
            Err(execute_error(error))
        }
    }
}
