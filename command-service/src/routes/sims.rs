//! SIM, quota and SMS commands.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use chrono::Utc;
use domain::ids::{quota_aggregate_id, Iccid, Imsi, Msisdn, QuotaKind};
use domain::quota::{Quota, QuotaCommand};
use domain::sim::{Sim, SimCommand, SimError, SimStatus};
use domain::sms::{Sms, SmsCommand};
use domain::Aggregate;
use eventstore::{handle_in_turn, EventMetadata, ExecuteError};
use platform::{ApiError, ApiJson, IccidPath, Principal, Role};
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use crate::commands::{answer, CommandHeaders};
use crate::error::{domain_error, execute_error};
use crate::openapi::{CommandAnswer, ErrorBody};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sims", post(register))
        .route("/sims/{iccid}", axum::routing::patch(update).delete(terminate))
        .route("/sims/{iccid}/activate", post(activate))
        .route("/sims/{iccid}/suspend", post(suspend))
        .route("/sims/{iccid}/topup", post(top_up))
        .route("/sims/{iccid}/sms", post(send_sms))
}

fn parse_iccid(raw: &str) -> Result<Iccid, ApiError> {
    Iccid::parse(raw).map_err(|error| domain_error(&error))
}

/// The answer to a command's outcome (and the outcome counted).
async fn answer_outcome<A: Aggregate>(
    state: &AppState,
    name: &str,
    outcome: Result<eventstore::Executed, ExecuteError<A::Error>>,
    status: StatusCode,
    location: Option<String>,
) -> Result<Response, ApiError> {
    match outcome {
        Ok(executed) => {
            state.count_command(name, "accepted");
            Ok(answer(executed, status, location))
        }
        Err(error) => {
            state.count_command(name, "refused");
            Err(execute_error(error))
        }
    }
}

#[derive(Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegisterSim {
    iccid: String,
    imsi: String,
    msisdn: Option<String>,
    label: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
}

#[utoipa::path(post, path = "/api/v1/sims", tag = "commands", request_body = RegisterSim,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 201, body = CommandAnswer), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 410, body = ErrorBody), (status = 412, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(crate) async fn register(
    State(state): State<AppState>,
    principal: Principal,
    headers: CommandHeaders,
    ApiJson(request): ApiJson<RegisterSim>,
) -> Result<Response, ApiError> {
    principal.require(Role::Operator)?;
    let iccid = parse_iccid(&request.iccid)?;
    let imsi = Imsi::parse(&request.imsi).map_err(|e| domain_error(&e))?;
    let msisdn = request
        .msisdn
        .as_deref()
        .map(Msisdn::parse)
        .transpose()
        .map_err(|e| domain_error(&e))?;
    let ctx = headers.context(&principal, &("register", &iccid, &request), StatusCode::CREATED);
    let command = SimCommand::Register {
        iccid: iccid.clone(),
        imsi,
        msisdn,
        label: request.label,
        tags: request.tags,
        at: ctx.metadata.occurred_at,
    };
    let outcome = state
        .store
        .execute::<Sim>(iccid.as_str(), iccid.as_str(), command, &ctx)
        .await;
    let location = format!("/api/v1/sims/{iccid}");
    answer_outcome::<Sim>(&state, "register", outcome, StatusCode::CREATED, Some(location)).await
}

/// `label: null` clears the label; a missing field leaves it alone.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateSim {
    /// `null` clears the label; leave the field out to keep it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    label: Option<Option<String>>,
    tags: Option<Vec<String>>,
    imei_lock: Option<bool>,
}

#[utoipa::path(patch, path = "/api/v1/sims/{iccid}", tag = "commands", request_body = UpdateSim,
    security(("bearer" = []), ("api_key" = [])), params(("iccid" = String, Path, description = "19 digits, or 20 with a correct Luhn digit")),
    responses((status = 200, body = CommandAnswer)))]
pub(crate) async fn update(
    State(state): State<AppState>,
    principal: Principal,
    headers: CommandHeaders,
    IccidPath(iccid): IccidPath,
    ApiJson(request): ApiJson<UpdateSim>,
) -> Result<Response, ApiError> {
    principal.require(Role::Operator)?;
    if request.label.is_none() && request.tags.is_none() && request.imei_lock.is_none() {
        return Err(ApiError::validation(
            "EMPTY_UPDATE",
            "give at least one of label, tags, imei_lock",
        ));
    }
    let ctx = headers.context(&principal, &("update", &iccid, &request), StatusCode::OK);
    let mut commands = Vec::new();
    if request.label.is_some() || request.tags.is_some() {
        commands.push(SimCommand::UpdateDetails {
            label: request.label,
            tags: request.tags,
        });
    }
    if let Some(enabled) = request.imei_lock {
        commands.push(SimCommand::SetImeiLock { enabled });
    }
    let outcome = state
        .store
        .execute_with::<Sim, _>(iccid.as_str(), iccid.as_str(), &ctx, |sim| {
            handle_in_turn(sim, commands.clone())
        })
        .await;
    answer_outcome::<Sim>(&state, "update", outcome, StatusCode::OK, None).await
}

/// A command on one SIM that takes no body: the route's name, its success status, and the
/// command built from the context (request id, time).
async fn simple_sim_command(
    state: &AppState,
    principal: &Principal,
    headers: &CommandHeaders,
    iccid: Iccid,
    name: &'static str,
    status: StatusCode,
    command: impl FnOnce(&EventMetadata) -> SimCommand,
) -> Result<Response, ApiError> {
    principal.require(Role::Operator)?;
    let ctx = headers.context(principal, &(name, &iccid), status);
    let command = command(&ctx.metadata);
    let outcome = state
        .store
        .execute::<Sim>(iccid.as_str(), iccid.as_str(), command, &ctx)
        .await;
    answer_outcome::<Sim>(state, name, outcome, status, None).await
}

/// Recorded as requested: the sync connector carries it out at 1NCE and confirms it.
#[utoipa::path(post, path = "/api/v1/sims/{iccid}/activate", tag = "commands",
    security(("bearer" = []), ("api_key" = [])), params(("iccid" = String, Path, description = "19 digits, or 20 with a correct Luhn digit")),
    responses((status = 202, body = CommandAnswer)))]
pub(crate) async fn activate(
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
        "activate",
        StatusCode::ACCEPTED,
        |meta| SimCommand::RequestActivation {
            request_id: meta.command_id,
            at: meta.occurred_at,
        },
    )
    .await
}

#[utoipa::path(post, path = "/api/v1/sims/{iccid}/suspend", tag = "commands",
    security(("bearer" = []), ("api_key" = [])), params(("iccid" = String, Path, description = "19 digits, or 20 with a correct Luhn digit")),
    responses((status = 202, body = CommandAnswer)))]
pub(crate) async fn suspend(
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
        "suspend",
        StatusCode::ACCEPTED,
        |meta| SimCommand::RequestSuspension {
            request_id: meta.command_id,
            at: meta.occurred_at,
        },
    )
    .await
}

/// Terminating is the platform's soft delete: the SIM and its history stay readable.
#[utoipa::path(delete, path = "/api/v1/sims/{iccid}", tag = "commands",
    security(("bearer" = []), ("api_key" = [])), params(("iccid" = String, Path, description = "19 digits, or 20 with a correct Luhn digit")),
    responses((status = 200, body = CommandAnswer)))]
pub(crate) async fn terminate(
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
        "terminate",
        StatusCode::OK,
        |meta| SimCommand::Terminate {
            reason: None,
            at: meta.occurred_at,
        },
    )
    .await
}

/// The SIM a quota or SMS command is about, which must exist.
async fn existing_sim(state: &AppState, iccid: &Iccid) -> Result<Sim, ApiError> {
    let loaded = state.store.load::<Sim>(iccid.as_str()).await?;
    if !loaded.state.is_registered() {
        return Err(domain_error(&SimError::NotFound));
    }
    Ok(loaded.state)
}

#[derive(Deserialize, Serialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TopUp {
    /// `data` (default) or `sms`.
    #[schema(value_type = Option<String>)]
    quota: Option<QuotaKind>,
    payment_method: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/sims/{iccid}/topup", tag = "commands", request_body = Option<TopUp>,
    security(("bearer" = []), ("api_key" = [])), params(("iccid" = String, Path, description = "19 digits, or 20 with a correct Luhn digit")),
    responses((status = 202, body = CommandAnswer)))]
pub(crate) async fn top_up(
    State(state): State<AppState>,
    principal: Principal,
    headers: CommandHeaders,
    IccidPath(iccid): IccidPath,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    principal.require(Role::Operator)?;
    // The body is optional: an empty one asks for the standard data top-up.
    let request: TopUp = crate::commands::optional_json(&body)?;
    let kind = request.quota.unwrap_or(QuotaKind::Data);
    let sim = existing_sim(&state, &iccid).await?;
    let ctx = headers.context(&principal, &("topup", &iccid, &request), StatusCode::ACCEPTED);
    let volume = match kind {
        QuotaKind::Data => state.topup.data_bytes,
        QuotaKind::Sms => state.topup.sms,
    };
    let command = QuotaCommand::RequestTopUp {
        request_id: ctx.metadata.command_id,
        iccid: iccid.clone(),
        kind,
        volume: i64::try_from(volume).unwrap_or(i64::MAX),
        payment_method: request.payment_method,
        sim_status: sim.status(),
        at: ctx.metadata.occurred_at,
    };
    let outcome = state
        .store
        .execute::<Quota>(&quota_aggregate_id(&iccid, kind), iccid.as_str(), command, &ctx)
        .await;
    answer_outcome::<Quota>(&state, "topup", outcome, StatusCode::ACCEPTED, None).await
}

#[derive(Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SendSms {
    payload: String,
    source_address: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/sims/{iccid}/sms", tag = "commands", request_body = SendSms,
    security(("bearer" = []), ("api_key" = [])), params(("iccid" = String, Path, description = "19 digits, or 20 with a correct Luhn digit")),
    responses((status = 202, body = CommandAnswer)))]
pub(crate) async fn send_sms(
    State(state): State<AppState>,
    principal: Principal,
    headers: CommandHeaders,
    IccidPath(iccid): IccidPath,
    ApiJson(request): ApiJson<SendSms>,
) -> Result<Response, ApiError> {
    principal.require(Role::Operator)?;
    let sim = existing_sim(&state, &iccid).await?;
    if sim.status() == SimStatus::Terminated {
        return Err(domain_error(&SimError::Terminated));
    }
    let ctx = headers.context(&principal, &("sms", &iccid, &request), StatusCode::ACCEPTED);
    // Each message is its own aggregate; a replayed Idempotency-Key answers the first one's id.
    let message_id = Uuid::now_v7();
    let command = SmsCommand::RequestSend {
        message_id,
        iccid: iccid.clone(),
        payload: request.payload,
        source_address: request.source_address,
        at: Utc::now(),
    };
    let outcome = state
        .store
        .execute::<Sms>(&message_id.to_string(), iccid.as_str(), command, &ctx)
        .await;
    let location = format!("/api/v1/sims/{iccid}/sms/{message_id}");
    answer_outcome::<Sms>(&state, "sms", outcome, StatusCode::ACCEPTED, Some(location)).await
}
