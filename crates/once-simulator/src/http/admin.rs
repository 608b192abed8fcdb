//! `/_admin`: the test controls over HTTP (JSON, no auth), for tests and demos that run the
//! simulator as a separate process. Unknown ICCIDs answer 404 here (the Rust methods panic).

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::json;

use super::{fleet_error, json_body, message, path_iccid, Answer};
use crate::fleet::quota::QuotaKind;
use crate::fleet::records::ConnectivityOverride;
use crate::fleet::{FleetError, SimChange};
use crate::{Faults, Simulator};

pub fn router() -> Router<Simulator> {
    Router::new()
        .route("/_admin/iccids", get(iccids))
        .route("/_admin/sims", post(add_sim))
        .route("/_admin/sims/{iccid}/status", post(set_status))
        .route("/_admin/sims/{iccid}/connectivity", post(set_connectivity))
        .route("/_admin/sims/{iccid}/imei", post(set_imei))
        .route("/_admin/sims/{iccid}/details", post(set_details))
        .route("/_admin/sims/{iccid}/usage", post(add_usage))
        .route("/_admin/sims/{iccid}/quota/{kind}/consume", post(consume_quota))
        .route("/_admin/sims/{iccid}/quota/{kind}/expire", post(expire_quota))
        .route("/_admin/sims/{iccid}/mo_sms", post(receive_mo_sms))
        .route("/_admin/sims/{iccid}/top_ups", get(top_ups))
        .route("/_admin/sims/{iccid}/mt_sms", get(mt_sms))
        .route("/_admin/faults", get(get_faults).put(set_faults))
        .route("/_admin/tokens/revoke", post(revoke_tokens))
        .route("/_admin/tokens/ttl", put(set_token_ttl))
        .route("/_admin/clock", get(clock))
        .route("/_admin/clock/advance", post(advance))
        .route("/_admin/stats", get(stats))
        .route("/_admin/stats/reset", post(reset_stats))
        .route("/_admin/stream", get(stream))
        .route("/_admin/stream/reset", post(reset_stream))
}

/// Runs `f` on the parsed ICCID, mapping an unknown one to 404.
fn on_sim(iccid: &str, f: impl FnOnce(u64) -> Result<serde_json::Value, FleetError>) -> Answer {
    let body = f(path_iccid(iccid)?).map_err(fleet_error)?;
    Ok(Json(body).into_response())
}

/// [`on_sim`] for a change with nothing to tell: answers `{}`.
fn change_sim(iccid: &str, f: impl FnOnce(u64) -> Result<(), FleetError>) -> Answer {
    on_sim(iccid, |id| f(id).map(|()| json!({})))
}

fn kind(text: &str) -> Result<QuotaKind, Response> {
    match text {
        "data" => Ok(QuotaKind::Data),
        "sms" => Ok(QuotaKind::Sms),
        _ => Err(message(StatusCode::NOT_FOUND, "quota kind must be data or sms")),
    }
}

async fn iccids(State(sim): State<Simulator>) -> Json<Vec<String>> {
    Json(sim.iccids())
}

async fn add_sim(State(sim): State<Simulator>) -> Response {
    (StatusCode::CREATED, Json(json!({ "iccid": sim.add_sim() }))).into_response()
}

#[derive(Deserialize)]
struct StatusBody {
    enabled: bool,
}

async fn set_status(State(sim): State<Simulator>, Path(iccid): Path<String>, body: Bytes) -> Answer {
    let body: StatusBody = json_body(&body)?;
    let change = SimChange {
        enabled: Some(body.enabled),
        ..Default::default()
    };
    change_sim(&iccid, |id| sim.fleet().change(id, &change))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ConnectivityBody {
    ip_address: Option<String>,
    operator: Option<String>,
    country: Option<String>,
    rat: Option<String>,
}

async fn set_connectivity(State(sim): State<Simulator>, Path(iccid): Path<String>, body: Bytes) -> Answer {
    let body: ConnectivityBody = json_body(&body)?;
    let over = ConnectivityOverride {
        operator: body.operator,
        country: body.country,
        rat: body.rat,
    };
    change_sim(&iccid, |id| {
        sim.fleet().set_connectivity(id, body.ip_address, over)
    })
}

#[derive(Deserialize)]
struct ImeiBody {
    imei: String,
}

/// A label or IMEI lock changed in the 1NCE portal (not through the API: no 422 for expiry).
#[derive(Deserialize)]
struct DetailsBody {
    label: Option<String>,
    imei_lock: Option<bool>,
}

async fn set_details(State(sim): State<Simulator>, Path(iccid): Path<String>, body: Bytes) -> Answer {
    let body: DetailsBody = json_body(&body)?;
    let change = crate::fleet::SimChange {
        enabled: None,
        label: body.label,
        imei_lock: body.imei_lock,
    };
    change_sim(&iccid, |id| sim.fleet().change(id, &change))
}

async fn set_imei(State(sim): State<Simulator>, Path(iccid): Path<String>, body: Bytes) -> Answer {
    let body: ImeiBody = json_body(&body)?;
    change_sim(&iccid, |id| sim.fleet().set_imei(id, &body.imei))
}

#[derive(Deserialize)]
struct UsageBody {
    /// Default: the simulated today.
    date: Option<NaiveDate>,
    #[serde(default)]
    data_bytes: u64,
    #[serde(default)]
    sms_mo: u64,
    #[serde(default)]
    sms_mt: u64,
}

async fn add_usage(State(sim): State<Simulator>, Path(iccid): Path<String>, body: Bytes) -> Answer {
    let body: UsageBody = json_body(&body)?;
    change_sim(&iccid, |id| {
        let mut fleet = sim.fleet();
        let date = body.date.unwrap_or_else(|| fleet.now.date_naive());
        fleet.add_usage(id, date, body.data_bytes, body.sms_mo, body.sms_mt)
    })
}

#[derive(Deserialize)]
struct ConsumeBody {
    used_percent: f64,
}

async fn consume_quota(
    State(sim): State<Simulator>,
    Path((iccid, kind_text)): Path<(String, String)>,
    body: Bytes,
) -> Answer {
    let kind = kind(&kind_text)?;
    let body: ConsumeBody = json_body(&body)?;
    change_sim(&iccid, |id| {
        sim.fleet().consume_quota_to(id, kind, body.used_percent)
    })
}

async fn expire_quota(
    State(sim): State<Simulator>,
    Path((iccid, kind_text)): Path<(String, String)>,
) -> Answer {
    let kind = kind(&kind_text)?;
    change_sim(&iccid, |id| sim.fleet().expire_quota(id, kind))
}

#[derive(Deserialize)]
struct MoSmsBody {
    payload: String,
}

async fn receive_mo_sms(State(sim): State<Simulator>, Path(iccid): Path<String>, body: Bytes) -> Answer {
    let body: MoSmsBody = json_body(&body)?;
    on_sim(&iccid, |id| {
        let mut fleet = sim.fleet();
        let now = fleet.now;
        fleet
            .receive_mo_sms(id, &body.payload, now)
            .map(|sms| json!({ "id": sms }))
    })
}

async fn top_ups(State(sim): State<Simulator>, Path(iccid): Path<String>) -> Answer {
    on_sim(&iccid, |id| {
        sim.fleet().sim(id).map(|s| json!({ "count": s.api_top_ups }))
    })
}

async fn mt_sms(State(sim): State<Simulator>, Path(iccid): Path<String>) -> Answer {
    on_sim(&iccid, |id| {
        sim.fleet().sim(id)?;
        let list: Vec<_> = sim
            .mt_sms(&id.to_string())
            .into_iter()
            .map(|(id, payload)| json!({"id": id, "payload": payload}))
            .collect();
        Ok(json!(list))
    })
}

async fn get_faults(State(sim): State<Simulator>) -> Json<Faults> {
    Json(sim.faults())
}

async fn set_faults(State(sim): State<Simulator>, body: Bytes) -> Answer {
    let faults: Faults = json_body(&body)?;
    faults
        .validate()
        .map_err(|err| message(StatusCode::UNPROCESSABLE_ENTITY, err.to_string()))?;
    sim.set_faults(faults.clone());
    Ok(Json(faults).into_response())
}

async fn revoke_tokens(State(sim): State<Simulator>) -> Json<serde_json::Value> {
    sim.revoke_tokens();
    Json(json!({}))
}

/// A span of simulated or real time: `{"secs": …}`.
#[derive(Deserialize)]
struct SecondsBody {
    secs: u64,
}

async fn set_token_ttl(State(sim): State<Simulator>, body: Bytes) -> Answer {
    let body: SecondsBody = json_body(&body)?;
    sim.set_token_ttl(Duration::from_secs(body.secs));
    Ok(Json(json!({ "secs": body.secs })).into_response())
}

async fn clock(State(sim): State<Simulator>) -> Json<serde_json::Value> {
    Json(json!({ "now": crate::format::ts_z(sim.now()), "autonomous": sim.config().autonomous }))
}

async fn advance(State(sim): State<Simulator>, body: Bytes) -> Answer {
    let body: SecondsBody = json_body(&body)?;
    sim.advance(Duration::from_secs(body.secs));
    Ok(Json(json!({ "now": crate::format::ts_z(sim.now()) })).into_response())
}

async fn stats(State(sim): State<Simulator>) -> Json<crate::CallStats> {
    Json(sim.stats())
}

async fn reset_stats(State(sim): State<Simulator>) -> Json<serde_json::Value> {
    sim.reset_stats();
    Json(json!({}))
}

async fn stream(State(sim): State<Simulator>) -> Json<crate::StreamReport> {
    Json(sim.stream_report())
}

/// Both streams back to ACTIVE; answers the report.
async fn reset_stream(State(sim): State<Simulator>) -> Json<crate::StreamReport> {
    sim.reset_stream();
    Json(sim.stream_report())
}
