//! `/v1/sims/{iccid}/sms…`: send an MT SMS, list and read SMS, cancel a buffered one.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::paging::Page;
use super::{fleet_error, json_body, message, origin, path_iccid, Answer};
use crate::fleet::{FleetError, NewSms};
use crate::{wire, Simulator};

/// Longest payload accepted (a concatenated message of ten parts).
const MAX_PAYLOAD_CHARS: usize = 1600;

/// The documents' "SMS Message Object".
#[derive(Deserialize)]
struct SmsMessage {
    source_address: Option<String>,
    payload: Option<String>,
    udh: Option<String>,
    dcs: Option<u8>,
    source_address_type: Option<SourceAddressType>,
    expiry_date: Option<String>,
}

#[derive(Deserialize)]
struct SourceAddressType {
    id: u16,
}

impl SmsMessage {
    fn validate(self) -> Result<NewSms, Response> {
        let bad = |text: &str| Err(message(StatusCode::BAD_REQUEST, text));
        let payload = self.payload.unwrap_or_default();
        if payload.is_empty() {
            return bad("payload is required");
        }
        if payload.chars().count() > MAX_PAYLOAD_CHARS {
            return bad("payload is too long");
        }
        let dcs = self.dcs.unwrap_or(0);
        if ![0, 4, 8].contains(&dcs) {
            return bad("dcs must be 0, 4 or 8");
        }
        if let Some(udh) = &self.udh {
            if udh.len() % 2 != 0 || !udh.bytes().all(|b| b.is_ascii_hexdigit()) {
                return bad("udh must be a hex string");
            }
        }
        let source_address_type = self.source_address_type.map(|t| t.id).unwrap_or(145);
        if ![145, 161, 208].contains(&source_address_type) {
            return bad("source_address_type.id must be 145, 161 or 208");
        }
        let expiry = match self.expiry_date.as_deref() {
            None => None,
            Some(text) => match DateTime::parse_from_rfc3339(text) {
                Ok(at) => Some(at.with_timezone(&Utc)),
                Err(_) => return bad("expiry_date must be an ISO 8601 timestamp"),
            },
        };
        Ok(NewSms {
            source_address: self.source_address.unwrap_or_else(|| "1234567890".into()),
            source_address_type,
            payload,
            udh: self.udh,
            dcs,
            expiry,
        })
    }
}

pub async fn send(
    State(sim): State<Simulator>,
    Path(iccid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let id = path_iccid(&iccid)?;
    let request: SmsMessage = json_body(&body)?;
    let sms = request.validate()?;
    let sms_id = sim.fleet().send_mt_sms(id, sms).map_err(fleet_error)?;
    let location = format!("{}/v1/sims/{id}/sms/{sms_id}", origin(&headers));
    Ok((StatusCode::CREATED, [(header::LOCATION, location)]).into_response())
}

pub async fn list(
    State(sim): State<Simulator>,
    Path(iccid): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    let page = Page::from_query(&query, 100)?;
    let id = path_iccid(&iccid)?;
    let fleet = sim.fleet();
    let (Ok(s), Ok(all)) = (fleet.sim(id), fleet.sms_of(id)) else {
        return Err(fleet_error(FleetError::UnknownSim));
    };
    let body: Vec<Value> = all[page.range(all.len())]
        .iter()
        .map(|m| wire::sms(s, m))
        .collect();
    let headers = page.headers(all.len());
    drop(fleet);
    Ok((headers, Json(body)).into_response())
}

/// The ICCID and the SMS id of a `/v1/sims/{iccid}/sms/{id}` path; either unknown is a 404.
fn sms_path(iccid: &str, sms: &str) -> Result<(u64, u64), Response> {
    let id = path_iccid(iccid)?;
    let sms = sms.parse().map_err(|_| fleet_error(FleetError::UnknownSms))?;
    Ok((id, sms))
}

pub async fn get_one(State(sim): State<Simulator>, Path((iccid, sms)): Path<(String, String)>) -> Answer {
    let (id, sms) = sms_path(&iccid, &sms)?;
    let fleet = sim.fleet();
    let (Ok(s), Ok(all)) = (fleet.sim(id), fleet.sms_of(id)) else {
        return Err(fleet_error(FleetError::UnknownSim));
    };
    let m = all
        .iter()
        .find(|m| m.id == sms)
        .ok_or_else(|| fleet_error(FleetError::UnknownSms))?;
    Ok(Json(wire::sms(s, m)).into_response())
}

pub async fn cancel(State(sim): State<Simulator>, Path((iccid, sms)): Path<(String, String)>) -> Answer {
    let (id, sms) = sms_path(&iccid, &sms)?;
    sim.fleet().cancel_sms(id, sms).map_err(fleet_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
