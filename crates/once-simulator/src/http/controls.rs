//! Connectivity reset, auto top-up and the account's self-set limits, and the `/_admin`
//! control that makes them refuse.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::sims::body_iccids;
use super::{fleet_error, json_body, message, path_iccid, Answer};
use crate::controls::{limit_json, selectable as selectable_limits, Control, Refusals};
use crate::Simulator;

pub fn admin_router() -> Router<Simulator> {
    Router::new().route("/_admin/refusals", get(get_refusals).put(set_refusals))
}

/// A refusal a test set for this control: 422 with its message.
fn refused(sim: &Simulator, control: Control) -> Result<(), axum::response::Response> {
    match sim.controls().refusals.of(control) {
        Some(text) => Err(message(StatusCode::UNPROCESSABLE_ENTITY, text)),
        None => Ok(()),
    }
}

/// 201 once the reset is queued; it records the reset and the data session's drop (the SIM
/// re-attaches on its next session).
pub async fn reset(State(sim): State<Simulator>, Path(iccid): Path<String>) -> Answer {
    let id = path_iccid(&iccid)?;
    sim.fleet().sim(id).map_err(fleet_error)?;
    refused(&sim, Control::Reset)?;
    sim.fleet().reset_connectivity(id).map_err(fleet_error)?;
    Ok(StatusCode::CREATED.into_response())
}

#[derive(Deserialize)]
struct AutoTopUpBody {
    enabled: bool,
    iccids: Vec<String>,
}

pub async fn auto_top_up(State(sim): State<Simulator>, body: Bytes) -> Answer {
    let request: AutoTopUpBody = json_body(&body)?;
    let ids = body_iccids(&request.iccids)?;
    refused(&sim, Control::AutoTopUp)?;
    sim.fleet()
        .set_auto_top_up(&ids, request.enabled)
        .map_err(fleet_error)?;
    Ok(StatusCode::CREATED.into_response())
}

/// `Values_for_Limits`: the limits currently set.
pub async fn limits(State(sim): State<Simulator>) -> Answer {
    let current = sim.account_limits();
    Ok(Json(json!({
        "data": limit_json("data", current.data),
        "smsMt": limit_json("smsMT", current.sms_mt),
        "smsMo": limit_json("smsMO", current.sms_mo),
    }))
    .into_response())
}

/// The limits one may select for a service, as a list of `{id, limit, unit}` (the documents
/// name `Values_for_Limits` here, which cannot hold a list; our choice).
pub async fn selectable(Path(service): Path<String>) -> Answer {
    let service = service.as_str();
    let Some((list, _)) = selectable_limits(service) else {
        return Err(message(
            StatusCode::NOT_FOUND,
            "service must be one of data, smsMO, smsMT",
        ));
    };
    let body: Vec<_> = list
        .iter()
        .filter_map(|(id, _)| limit_json(service, *id))
        .collect();
    Ok(Json(body).into_response())
}

#[derive(Deserialize)]
struct SetLimitsBody {
    #[serde(rename = "dataLimitId")]
    data: Option<u64>,
    #[serde(rename = "smsMtLimitId")]
    sms_mt: Option<u64>,
    #[serde(rename = "smsMoLimitId")]
    sms_mo: Option<u64>,
}

/// All or nothing: an id not in its service's list answers 400 and changes nothing.
pub async fn set_limits(State(sim): State<Simulator>, body: Bytes) -> Answer {
    let request: SetLimitsBody = json_body(&body)?;
    for (service, id) in [
        ("data", request.data),
        ("smsMT", request.sms_mt),
        ("smsMO", request.sms_mo),
    ] {
        if let Some(id) = id.filter(|id| limit_json(service, *id).is_none()) {
            return Err(message(
                StatusCode::BAD_REQUEST,
                format!("Request body validation error: {id} is not a selectable {service} limit"),
            ));
        }
    }
    refused(&sim, Control::Limits)?;
    let mut controls = sim.controls();
    let limits = &mut controls.limits;
    limits.data = request.data.unwrap_or(limits.data);
    limits.sms_mt = request.sms_mt.unwrap_or(limits.sms_mt);
    limits.sms_mo = request.sms_mo.unwrap_or(limits.sms_mo);
    Ok(StatusCode::CREATED.into_response())
}

async fn get_refusals(State(sim): State<Simulator>) -> Json<Refusals> {
    Json(sim.refusals())
}

async fn set_refusals(State(sim): State<Simulator>, body: Bytes) -> Answer {
    let refusals: Refusals = json_body(&body)?;
    sim.set_refusals(refusals.clone());
    Ok(Json(refusals).into_response())
}
