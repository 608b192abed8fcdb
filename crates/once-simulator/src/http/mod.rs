//! The HTTP surface: the provider's routes behind the gate (faults, auth, rate limits, call
//! log), the `/_admin` test controls, and the ops routes.

// Helpers refuse with the finished provider answer (`Err(Response)`), which handlers return
// as it is; a `Response` is 128 bytes and only built on the refusal path, so boxing it would
// add noise for nothing.
#![allow(clippy::result_large_err)]

mod admin;
mod controls;
mod gate;
mod oauth;
mod paging;
mod sims;
mod sms;

use axum::http::{HeaderMap, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use platform::http::{always_ready, ops_routes};
use platform::metrics::track_http;
use serde_json::json;

use crate::fleet::FleetError;
use crate::Simulator;

pub fn router(sim: Simulator) -> Router {
    let v1 = Router::new()
        .route("/v1/sims", get(sims::list).post(sims::update_many))
        .route("/v1/sims/topup", post(sims::top_up_many))
        .route("/v1/sims/autoTopup", post(controls::auto_top_up))
        .route(
            "/v1/sims/limits",
            get(controls::limits).post(controls::set_limits),
        )
        .route("/v1/sims/{iccid}", get(sims::get_one).put(sims::update_one))
        .route("/v1/sims/{iccid}/status", get(sims::status))
        .route("/v1/sims/{iccid}/connectivity_info", get(sims::connectivity_info))
        .route("/v1/sims/{iccid}/reset", post(controls::reset))
        // `{iccid}` is the service here (data, smsMO, smsMT): the router wants one name per
        // segment.
        .route("/v1/sims/{iccid}/limits", get(controls::selectable))
        .route("/v1/sims/{iccid}/events", get(sims::events))
        .route("/v1/sims/{iccid}/usage", get(sims::usage))
        .route("/v1/sims/{iccid}/quota/data", get(sims::quota_data))
        .route("/v1/sims/{iccid}/quota/sms", get(sims::quota_sms))
        .route("/v1/sims/{iccid}/topup", post(sims::top_up_one))
        .route("/v1/sims/{iccid}/sms", get(sms::list).post(sms::send))
        .route("/v1/sims/{iccid}/sms/{id}", get(sms::get_one).delete(sms::cancel))
        .route_layer(from_fn_with_state(sim.clone(), gate::v1));
    let oauth = Router::new()
        .route("/oauth/token", post(oauth::token))
        .route_layer(from_fn_with_state(sim.clone(), gate::oauth));
    let metrics = sim.metrics().clone();
    Router::new()
        .merge(v1)
        .merge(oauth)
        .merge(admin::router())
        .merge(controls::admin_router())
        .with_state(sim)
        .merge(ops_routes(metrics.clone(), always_ready))
        .fallback(|| async { message(StatusCode::NOT_FOUND, "Not Found") })
        .layer(from_fn_with_state(metrics, track_http))
}

/// What a handler answers: `Err` is a refusal a helper has already finished (see the note at
/// the top), so handlers pass refusals on with `?`.
pub(crate) type Answer = Result<Response, Response>;

/// The provider's small error body: `{"message": …}`.
pub(crate) fn message(status: StatusCode, text: impl Into<String>) -> Response {
    (status, Json(json!({ "message": text.into() }))).into_response()
}

pub(crate) fn fleet_error(err: FleetError) -> Response {
    match err {
        FleetError::UnknownSim => message(StatusCode::NOT_FOUND, "SIM not found."),
        FleetError::UnknownSms => message(StatusCode::NOT_FOUND, "SMS not found."),
        FleetError::Expired(_) | FleetError::Invalid(_) => {
            message(StatusCode::UNPROCESSABLE_ENTITY, err.to_string())
        }
    }
}

/// A path ICCID (19 digits, or 20 with a right Luhn digit); anything else is a SIM that does
/// not exist.
pub(crate) fn path_iccid(text: &str) -> Result<u64, Response> {
    crate::format::parse_iccid(text).ok_or_else(|| fleet_error(FleetError::UnknownSim))
}

/// `http://host` of the request, for `Location` headers (1NCE answers absolute URLs).
pub(crate) fn origin(headers: &HeaderMap) -> String {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| h.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

/// A JSON request body, or the provider's 400.
pub(crate) fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Response> {
    serde_json::from_slice(body).map_err(|e| {
        message(
            StatusCode::BAD_REQUEST,
            format!("Request body validation error: {e}"),
        )
    })
}
