//! `/v1/sims…`: the list, single SIMs and their updates, connectivity, events, usage,
//! quotas and top-ups.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::Value;

use super::paging::Page;
use super::{fleet_error, json_body, message, origin, path_iccid, Answer};
use crate::fleet::quota::QuotaKind;
use crate::fleet::records::SimRecord;
use crate::fleet::SimChange;
use crate::{wire, Simulator};

type QueryMap = Query<HashMap<String, String>>;

pub async fn list(State(sim): State<Simulator>, Query(query): QueryMap) -> Answer {
    let page = Page::from_query(&query, 100)?;
    let filters = parse_filters(query.get("q").map(String::as_str).unwrap_or(""))?;
    let sort = parse_sort(query.get("sort").map(String::as_str).unwrap_or(""))?;
    let fleet = sim.fleet();
    let all = fleet.sims();
    let (total, body): (usize, Vec<Value>) = if filters.is_empty() && sort.is_empty() {
        // The common case: a slice of the ICCID-ordered fleet, no copying.
        (
            all.len(),
            all[page.range(all.len())].iter().map(wire::sim).collect(),
        )
    } else {
        let mut selected: Vec<&SimRecord> = all
            .iter()
            .filter(|s| {
                filters
                    .iter()
                    .all(|(field, value)| field.value(s) == Some(value.as_str()))
            })
            .collect();
        // Stable: ties keep ICCID order.
        selected.sort_by(|a, b| {
            sort.iter()
                .map(|(field, descending)| {
                    let order = field.value(a).cmp(&field.value(b));
                    if *descending {
                        order.reverse()
                    } else {
                        order
                    }
                })
                .find(|o| o.is_ne())
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        let range = page.range(selected.len());
        (
            selected.len(),
            selected[range].iter().map(|s| wire::sim(s)).collect(),
        )
    };
    drop(fleet);
    Ok((page.headers(total), Json(body)).into_response())
}

#[derive(Clone, Copy)]
enum Field {
    Imei,
    IpAddress,
}

impl Field {
    fn parse(name: &str) -> Option<Self> {
        match name.trim() {
            "imei" => Some(Field::Imei),
            "ip_address" => Some(Field::IpAddress),
            _ => None,
        }
    }

    fn value<'a>(&self, sim: &'a SimRecord) -> Option<&'a str> {
        match self {
            Field::Imei => sim.imei.as_deref(),
            Field::IpAddress => Some(sim.ip_address.as_str()),
        }
    }
}

/// `q=imei:4711,ip_address:127.0.0.1`: exact matches, all must hold.
fn parse_filters(q: &str) -> Result<Vec<(Field, String)>, Response> {
    q.split(',')
        .filter(|part| !part.trim().is_empty())
        .map(|part| {
            part.split_once(':')
                .and_then(|(name, value)| Field::parse(name).map(|f| (f, value.trim().to_owned())))
                .ok_or_else(|| {
                    message(
                        StatusCode::BAD_REQUEST,
                        format!("invalid filter {part:?}: expected imei:<value> or ip_address:<value>"),
                    )
                })
        })
        .collect()
}

/// `sort=ip_address,-imei`.
fn parse_sort(sort: &str) -> Result<Vec<(Field, bool)>, Response> {
    sort.split(',')
        .filter(|part| !part.trim().is_empty())
        .map(|part| {
            let part = part.trim();
            let (descending, name) = match part.strip_prefix('-') {
                Some(name) => (true, name),
                None => (false, part),
            };
            Field::parse(name)
                .map(|f| (f, descending))
                .ok_or_else(|| message(StatusCode::BAD_REQUEST, format!("cannot sort by {part:?}")))
        })
        .collect()
}

pub async fn get_one(State(sim): State<Simulator>, Path(iccid): Path<String>) -> Answer {
    with_sim(&sim, &iccid, |s| Json(wire::sim(s)).into_response())
}

fn with_sim(sim: &Simulator, iccid: &str, answer: impl FnOnce(&SimRecord) -> Response) -> Answer {
    let id = path_iccid(iccid)?;
    let fleet = sim.fleet();
    Ok(answer(fleet.sim(id).map_err(fleet_error)?))
}

/// Every ICCID of a request body, or the 404 for the first that names no SIM.
pub(super) fn body_iccids(texts: &[String]) -> Result<Vec<u64>, Response> {
    texts.iter().map(|text| path_iccid(text)).collect()
}

/// The documents' "Values for a SIM update". Absent fields stay as they are (the documents
/// give `status` a default of Enabled, but applying it would silently enable a disabled SIM
/// whose label alone was changed).
#[derive(Deserialize)]
struct SimUpdateBody {
    iccid: Option<String>,
    label: Option<String>,
    imei_lock: Option<bool>,
    status: Option<String>,
}

impl SimUpdateBody {
    fn change(&self) -> Result<SimChange, Response> {
        let enabled = match self.status.as_deref() {
            None => None,
            Some("Enabled") => Some(true),
            Some("Disabled") => Some(false),
            Some(other) => {
                return Err(message(
                    StatusCode::BAD_REQUEST,
                    format!("status must be Enabled or Disabled, not {other:?}"),
                ))
            }
        };
        Ok(SimChange {
            enabled,
            label: self.label.clone(),
            imei_lock: self.imei_lock,
        })
    }
}

pub async fn update_one(State(sim): State<Simulator>, Path(iccid): Path<String>, body: Bytes) -> Answer {
    let id = path_iccid(&iccid)?;
    let update: SimUpdateBody = json_body(&body)?;
    if let Some(body_iccid) = &update.iccid {
        if crate::format::parse_iccid(body_iccid) != Some(id) {
            return Err(message(
                StatusCode::BAD_REQUEST,
                "iccid in the body does not match the path",
            ));
        }
    }
    let change = update.change()?;
    let mut fleet = sim.fleet();
    fleet.check_api_change(id, &change).map_err(fleet_error)?;
    fleet.change(id, &change).map_err(fleet_error)?;
    Ok(StatusCode::OK.into_response())
}

/// All or nothing: any unknown ICCID refuses the whole list.
pub async fn update_many(State(sim): State<Simulator>, body: Bytes) -> Answer {
    let updates: Vec<SimUpdateBody> = json_body(&body)?;
    let mut changes = Vec::with_capacity(updates.len());
    for update in &updates {
        let Some(text) = update.iccid.as_deref() else {
            return Err(message(StatusCode::BAD_REQUEST, "every update needs an iccid"));
        };
        let id = path_iccid(text)?;
        changes.push((id, update.change()?));
    }
    let mut fleet = sim.fleet();
    for (id, change) in &changes {
        fleet.check_api_change(*id, change).map_err(fleet_error)?;
    }
    fleet.change_many(&changes).map_err(fleet_error)?;
    Ok(StatusCode::CREATED.into_response())
}

pub async fn status(State(sim): State<Simulator>, Path(iccid): Path<String>) -> Answer {
    let now = sim.now();
    with_sim(&sim, &iccid, |s| Json(wire::connectivity(s, now)).into_response())
}

pub async fn connectivity_info(
    State(sim): State<Simulator>,
    Path(iccid): Path<String>,
    Query(query): QueryMap,
) -> Answer {
    let flag = |name: &str, default: bool| match query.get(name).map(|v| v.trim()) {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(_) => Err(message(
            StatusCode::BAD_REQUEST,
            format!("{name} must be true or false"),
        )),
    };
    let subscriber = flag("subscriber", true)?;
    let ussd = flag("ussd", false)?;
    let now = sim.now();
    with_sim(&sim, &iccid, |s| {
        Json(wire::connectivity_info(s, now, subscriber, ussd)).into_response()
    })
}

pub async fn events(
    State(sim): State<Simulator>,
    Path(iccid): Path<String>,
    Query(query): QueryMap,
) -> Answer {
    let page = Page::from_query(&query, 1000)?;
    let newest_first = query
        .get("sort")
        .is_some_and(|s| s.split(',').any(|k| k.trim() == "-timestamp"));
    let id = path_iccid(&iccid)?;
    let fleet = sim.fleet();
    let mut events = fleet.events_of(id).map_err(fleet_error)?;
    events.sort_by_key(|e| e.at);
    if newest_first {
        events.reverse();
    }
    let total = events.len();
    let Ok(s) = fleet.sim(id) else {
        return Err(fleet_error(crate::fleet::FleetError::UnknownSim));
    };
    let body = wire::events(s, &events[page.range(total)], total, page.total_pages(total));
    drop(fleet);
    Ok((page.headers(total), Json(body)).into_response())
}

pub async fn usage(
    State(sim): State<Simulator>,
    Path(iccid): Path<String>,
    Query(query): QueryMap,
) -> Answer {
    let date = |name: &str| -> Result<NaiveDate, Response> {
        let text = query.get(name).map(|v| v.trim()).unwrap_or("");
        if text.is_empty() {
            return Err(message(
                StatusCode::BAD_REQUEST,
                format!("{name} is required (YYYY-MM-DD)"),
            ));
        }
        NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
            message(
                StatusCode::BAD_REQUEST,
                format!("{name} must be a date (YYYY-MM-DD)"),
            )
        })
    };
    let start = date("start_dt")?;
    let end = date("end_dt")?;
    if start > end {
        return Err(message(
            StatusCode::BAD_REQUEST,
            "start_dt must not be after end_dt",
        ));
    }
    let id = path_iccid(&iccid)?;
    let fleet = sim.fleet();
    fleet.sim(id).map_err(fleet_error)?;
    if start < fleet.usage_horizon() {
        return Err(message(
            StatusCode::BAD_REQUEST,
            "The usage can only be queried for the last 6 months.",
        ));
    }
    // Days after today have no usage yet: the answer stops at today.
    let end = end.min(fleet.now.date_naive());
    let days = fleet.usage_between(id, start, end).map_err(fleet_error)?;
    Ok(Json(wire::usage(&days)).into_response())
}

pub async fn quota_data(State(sim): State<Simulator>, Path(iccid): Path<String>) -> Answer {
    with_sim(&sim, &iccid, |s| {
        Json(wire::quota(s, QuotaKind::Data)).into_response()
    })
}

pub async fn quota_sms(State(sim): State<Simulator>, Path(iccid): Path<String>) -> Answer {
    with_sim(&sim, &iccid, |s| {
        Json(wire::quota(s, QuotaKind::Sms)).into_response()
    })
}

/// The documents' description wins over their 400 example: "If the parameter is left empty or
/// is invalid, banktransfer is used as default", so no payment method is ever refused.
fn payment_method(query: &HashMap<String, String>) -> &'static str {
    match query.get("payment_method").map(|v| v.trim()) {
        Some("creditcard") => "creditcard",
        Some("monthlyinvoice") => "monthlyinvoice",
        Some("boleto") => "boleto",
        _ => "banktransfer",
    }
}

pub async fn top_up_one(
    State(sim): State<Simulator>,
    Path(iccid): Path<String>,
    Query(query): QueryMap,
    headers: HeaderMap,
) -> Answer {
    let id = path_iccid(&iccid)?;
    top_up(&sim, &[id], &query, &headers)
}

pub async fn top_up_many(
    State(sim): State<Simulator>,
    Query(query): QueryMap,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let iccids: Vec<String> = json_body(&body)?;
    if iccids.is_empty() {
        return Err(message(StatusCode::BAD_REQUEST, "at least one ICCID is required"));
    }
    let ids = body_iccids(&iccids)?;
    top_up(&sim, &ids, &query, &headers)
}

fn top_up(sim: &Simulator, ids: &[u64], query: &HashMap<String, String>, headers: &HeaderMap) -> Answer {
    let method = payment_method(query);
    let order = sim.fleet().top_up(ids).map_err(fleet_error)?;
    tracing::info!(order, payment_method = method, sims = ids.len(), "top-up ordered");
    let location = format!("{}/v1/orders/{order}", origin(headers));
    Ok((StatusCode::CREATED, [(header::LOCATION, location)]).into_response())
}
