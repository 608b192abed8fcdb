//! SIM, quota and SMS commands.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use domain::ids::{Iccid, Imsi, Msisdn, QuotaKind};
use eventstore::CommandContext;
use platform::{ApiError, ApiJson, IccidPath, Principal, Role};
use serde::{Deserialize, Deserializer, Serialize};

use crate::actions::{Performed, SimAction};
use crate::commands::{answer, CommandHeaders};
use crate::error::domain_error;
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

/// Performs the action as its route's command `name`, answers the outcome (and counts it).
pub(crate) async fn perform(
    state: &AppState,
    name: &str,
    action: SimAction,
    iccid: &Iccid,
    ctx: &CommandContext,
    status: StatusCode,
    location: Option<String>,
) -> Result<Response, ApiError> {
    match action.perform(state, iccid, ctx, false).await {
        Ok(Performed::Executed { executed, .. }) => {
            state.count_command(name, "accepted");
            let location = location.or_else(|| {
                // An SMS's place is its message id, known once it is recorded.
                (name == "sms")
                    .then(|| format!("/api/v1/sims/{iccid}/sms/{}", executed.answer().aggregate_id))
            });
            Ok(answer(executed, status, location))
        }
        Ok(Performed::WouldApply { .. }) => Err(ApiError::internal("a dry run on a command route")),
        Err(error) => {
            state.count_command(name, "refused");
            Err(error)
        }
    }
}

#[derive(Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegisterSim {
    pub(crate) iccid: String,
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
    let action = request.action()?;
    let ctx = headers.context(&principal, &("register", &iccid, &request), StatusCode::CREATED);
    let location = format!("/api/v1/sims/{iccid}");
    perform(
        &state,
        "register",
        action,
        &iccid,
        &ctx,
        StatusCode::CREATED,
        Some(location),
    )
    .await
}

impl RegisterSim {
    pub(crate) fn new(
        iccid: String,
        imsi: String,
        msisdn: Option<String>,
        label: Option<String>,
        tags: Vec<String>,
    ) -> Self {
        Self {
            iccid,
            imsi,
            msisdn,
            label,
            tags,
        }
    }

    /// The registration this row asks for (the ICCID apart), its fields checked.
    pub(crate) fn action(&self) -> Result<SimAction, ApiError> {
        let imsi = Imsi::parse(&self.imsi).map_err(|e| domain_error(&e))?;
        let msisdn = self
            .msisdn
            .as_deref()
            .map(Msisdn::parse)
            .transpose()
            .map_err(|e| domain_error(&e))?;
        Ok(SimAction::Register {
            imsi,
            msisdn,
            label: self.label.clone(),
            tags: self.tags.clone(),
        })
    }
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
    let action = SimAction::Update {
        label: request.label,
        tags: request.tags,
        imei_lock: request.imei_lock,
    };
    perform(&state, "update", action, &iccid, &ctx, StatusCode::OK, None).await
}

/// A command on one SIM that takes no body: the route's name, its success status, and the
/// command built from the context (request id, time).
pub(crate) async fn simple_sim_command(
    state: &AppState,
    principal: &Principal,
    headers: &CommandHeaders,
    iccid: Iccid,
    name: &'static str,
    status: StatusCode,
    action: SimAction,
) -> Result<Response, ApiError> {
    principal.require(Role::Operator)?;
    let ctx = headers.context(principal, &(name, &iccid), status);
    perform(state, name, action, &iccid, &ctx, status, None).await
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
        SimAction::Activate,
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
        SimAction::Suspend,
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
        SimAction::Terminate,
    )
    .await
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
    let ctx = headers.context(&principal, &("topup", &iccid, &request), StatusCode::ACCEPTED);
    let action = SimAction::TopUp {
        kind: request.quota.unwrap_or(QuotaKind::Data),
        payment_method: request.payment_method,
    };
    perform(&state, "topup", action, &iccid, &ctx, StatusCode::ACCEPTED, None).await
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
    let ctx = headers.context(&principal, &("sms", &iccid, &request), StatusCode::ACCEPTED);
    let action = SimAction::SendSms {
        payload: request.payload,
        source_address: request.source_address,
    };
    perform(&state, "sms", action, &iccid, &ctx, StatusCode::ACCEPTED, None).await
}
