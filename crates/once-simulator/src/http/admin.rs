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

use super::{fleet_error, json_body, message, path_iccid};
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
}

/// Runs `f` on the parsed ICCID, mapping an unknown one to 404.
fn on_sim(iccid: &str, f: impl FnOnce(u64) -> Result<serde_json::Value, FleetError>) -> Response {
    match path_iccid(iccid) {
        Ok(id) => match f(id) {
            Ok(body) => Json(body).into_response(),
            Err(err) => fleet_error(err),
        },
        Err(response) => response,
    }
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

async fn set_status(State(sim): State<Simulator>, Path(iccid): Path<String>, body: Bytes) -> Response {
    let body: StatusBody = match json_body(&body) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let change = SimChange {
        enabled: Some(body.enabled),
        ..Default::default()
    };
    on_sim(&iccid, |id| sim.fleet().change(id, &change).map(|()| json!({})))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ConnectivityBody {
    ip_address: Option<String>,
    operator: Option<String>,
    country: Option<String>,
    rat: Option<String>,
}

async fn set_connectivity(State(sim): State<Simulator>, Path(iccid): Path<String>, body: Bytes) -> Response {
    let body: ConnectivityBody = match json_body(&body) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let over = ConnectivityOverride {
        operator: body.operator,
        country: body.country,
        rat: body.rat,
    };
    on_sim(&iccid, |id| {
        sim.fleet()
            .set_connectivity(id, body.ip_address, over)
            .map(|()| json!({}))
    })
}

#[derive(Deserialize)]
struct ImeiBody {
    imei: String,
}

async fn set_imei(State(sim): State<Simulator>, Path(iccid): Path<String>, body: Bytes) -> Response {
    let body: ImeiBody = match json_body(&body) {
        Ok(body) => body,
        Err(response) => return response,
    };
    on_sim(&iccid, |id| {
        sim.fleet().set_imei(id, &body.imei).map(|()| json!({}))
    })
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

async fn add_usage(State(sim): State<Simulator>, Path(iccid): Path<String>, body: Bytes) -> Response {
    let body: UsageBody = match json_body(&body) {
        Ok(body) => body,
        Err(response) => return response,
    };
    on_sim(&iccid, |id| {
        let mut fleet = sim.fleet();
        let date = body.date.unwrap_or_else(|| fleet.now.date_naive());
        fleet
            .add_usage(id, date, body.data_bytes, body.sms_mo, body.sms_mt)
            .map(|()| json!({}))
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
) -> Response {
    let kind = match kind(&kind_text) {
        Ok(kind) => kind,
        Err(response) => return response,
    };
    let body: ConsumeBody = match json_body(&body) {
        Ok(body) => body,
        Err(response) => return response,
    };
    on_sim(&iccid, |id| {
        sim.fleet()
            .consume_quota_to(id, kind, body.used_percent)
            .map(|()| json!({}))
    })
}

async fn expire_quota(
    State(sim): State<Simulator>,
    Path((iccid, kind_text)): Path<(String, String)>,
) -> Response {
    let kind = match kind(&kind_text) {
        Ok(kind) => kind,
        Err(response) => return response,
    };
    on_sim(&iccid, |id| {
        sim.fleet().expire_quota(id, kind).map(|()| json!({}))
    })
}

#[derive(Deserialize)]
struct MoSmsBody {
    payload: String,
}

async fn receive_mo_sms(State(sim): State<Simulator>, Path(iccid): Path<String>, body: Bytes) -> Response {
    let body: MoSmsBody = match json_body(&body) {
        Ok(body) => body,
        Err(response) => return response,
    };
    on_sim(&iccid, |id| {
        let mut fleet = sim.fleet();
        let now = fleet.now;
        fleet
            .receive_mo_sms(id, &body.payload, now)
            .map(|sms| json!({ "id": sms }))
    })
}

async fn top_ups(State(sim): State<Simulator>, Path(iccid): Path<String>) -> Response {
    on_sim(&iccid, |id| {
        sim.fleet().sim(id).map(|s| json!({ "count": s.api_top_ups }))
    })
}

async fn mt_sms(State(sim): State<Simulator>, Path(iccid): Path<String>) -> Response {
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

async fn set_faults(State(sim): State<Simulator>, body: Bytes) -> Response {
    let faults: Faults = match json_body(&body) {
        Ok(faults) => faults,
        Err(response) => return response,
    };
    if let Err(err) = faults.validate() {
        return message(StatusCode::UNPROCESSABLE_ENTITY, err.to_string());
    }
    sim.set_faults(faults.clone());
    Json(faults).into_response()
}

async fn revoke_tokens(State(sim): State<Simulator>) -> Json<serde_json::Value> {
    sim.revoke_tokens();
    Json(json!({}))
}

#[derive(Deserialize)]
struct TtlBody {
    secs: u64,
}

async fn set_token_ttl(State(sim): State<Simulator>, body: Bytes) -> Response {
    let body: TtlBody = match json_body(&body) {
        Ok(body) => body,
        Err(response) => return response,
    };
    sim.set_token_ttl(Duration::from_secs(body.secs));
    Json(json!({ "secs": body.secs })).into_response()
}

async fn clock(State(sim): State<Simulator>) -> Json<serde_json::Value> {
    Json(json!({ "now": crate::format::ts_z(sim.now()), "autonomous": sim.config().autonomous }))
}

#[derive(Deserialize)]
struct AdvanceBody {
    secs: u64,
}

async fn advance(State(sim): State<Simulator>, body: Bytes) -> Response {
    let body: AdvanceBody = match json_body(&body) {
        Ok(body) => body,
        Err(response) => return response,
    };
    sim.advance(Duration::from_secs(body.secs));
    Json(json!({ "now": crate::format::ts_z(sim.now()) })).into_response()
}

async fn stats(State(sim): State<Simulator>) -> Json<crate::CallStats> {
    Json(sim.stats())
}

async fn reset_stats(State(sim): State<Simulator>) -> Json<serde_json::Value> {
    sim.reset_stats();
    Json(json!({}))
}
