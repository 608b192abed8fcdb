//! Reading the provider's answers into the model. Public so that the parsing can be checked
//! against the documents' examples without a server; the client uses exactly these functions.

use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::endpoint;
use crate::model::{
    ConnectivityStatus, DailyUsage, EventAnswer, Quota, QuotaAnswer, QuotaKind, Sim, SimEventPage, SimPage,
    Sms, UsageAnswer,
};
use crate::ClientError;

/// The answer to `POST /oauth/token`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct AccessToken {
    pub access_token: String,
    /// Seconds the token is valid; the provider sends 3600.
    #[serde(default, deserialize_with = "crate::wire::opt_whole")]
    pub expires_in: Option<u64>,
    #[serde(default, deserialize_with = "crate::wire::opt_text")]
    pub token_type: Option<String>,
}

/// Any JSON body; an error names the endpoint and quotes the start of the body.
pub fn json<T: DeserializeOwned>(endpoint: &'static str, body: &[u8]) -> Result<T, ClientError> {
    serde_json::from_slice(body).map_err(|error| {
        let start = body.iter().find(|b| !b.is_ascii_whitespace());
        let reason = match start {
            None => "empty body instead of JSON".to_owned(),
            Some(b'<') => "an HTML page instead of JSON".to_owned(),
            Some(_) if error.is_eof() => format!("truncated JSON: {error}"),
            Some(_) => error.to_string(),
        };
        ClientError::decode(endpoint, reason, body)
    })
}

pub fn token(body: &[u8]) -> Result<AccessToken, ClientError> {
    let token: AccessToken = json(endpoint::TOKEN, body)?;
    if token.access_token.trim().is_empty() {
        return Err(ClientError::decode(endpoint::TOKEN, "empty access_token", body));
    }
    Ok(token)
}

pub fn sims(body: &[u8]) -> Result<Vec<Sim>, ClientError> {
    json(endpoint::SIMS, body)
}

/// A page of the SIM list with its paging headers. Paging the provider leaves out is filled
/// from the request, and a full page counts as "there may be another".
pub fn sim_page(body: &[u8], headers: &HeaderMap, page: u32, page_size: u32) -> Result<SimPage, ClientError> {
    let sims = sims(body)?;
    let paging = Paging::read(endpoint::SIMS, headers, body)?;
    let returned = sims.len() as u64;
    let current_page = paging.current_page.unwrap_or(page);
    let page_size = paging.per_page.unwrap_or(page_size);
    let total_pages = paging.total_pages.unwrap_or(if returned >= u64::from(page_size) {
        current_page.saturating_add(1)
    } else {
        current_page
    });
    let total_count = paging
        .total_count
        .unwrap_or(u64::from(current_page.saturating_sub(1)) * u64::from(page_size) + returned);
    Ok(SimPage {
        sims,
        total_count,
        total_pages,
        current_page,
        page_size,
    })
}

pub fn sim(body: &[u8]) -> Result<Sim, ClientError> {
    json(endpoint::SIM, body)
}

pub fn connectivity(body: &[u8]) -> Result<ConnectivityStatus, ClientError> {
    json(endpoint::STATUS, body)
}

pub fn usage(body: &[u8]) -> Result<Vec<DailyUsage>, ClientError> {
    json::<UsageAnswer>(endpoint::USAGE, body).map(|answer| answer.stats)
}

pub fn quota(kind: QuotaKind, body: &[u8]) -> Result<Quota, ClientError> {
    let endpoint = quota_endpoint(kind);
    json::<QuotaAnswer>(endpoint, body)?
        .into_quota(kind)
        .map_err(|reason| ClientError::decode(endpoint, reason, body))
}

pub(crate) fn quota_endpoint(kind: QuotaKind) -> &'static str {
    match kind {
        QuotaKind::Data => endpoint::DATA_QUOTA,
        QuotaKind::Sms => endpoint::SMS_QUOTA,
    }
}

pub fn sms_list(body: &[u8]) -> Result<Vec<Sms>, ClientError> {
    json(endpoint::SMS_LIST, body)
}

pub fn sms(body: &[u8]) -> Result<Sms, ClientError> {
    json(endpoint::SMS, body)
}

/// A page of SIM events: totals from the body, else from the paging headers, else from what
/// the page holds.
pub fn events(body: &[u8], headers: &HeaderMap, page: u32) -> Result<SimEventPage, ClientError> {
    let answer: EventAnswer = json(endpoint::EVENTS, body)?;
    let paging = Paging::read(endpoint::EVENTS, headers, body)?;
    let events = answer.events.unwrap_or_default();
    Ok(SimEventPage {
        total_events: answer
            .total_events
            .or(paging.total_count)
            .unwrap_or(events.len() as u64),
        total_pages: answer.total_pages.or(paging.total_pages).unwrap_or(page),
        events,
    })
}

/// The id at the end of a `Location` such as `…/v1/sims/8988…/sms/590`.
pub fn id_from_location(location: &str) -> Option<u64> {
    location
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .and_then(|last| last.split(['?', '#']).next())
        .and_then(|id| id.parse().ok())
}

/// The provider's paging headers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Paging {
    pub total_count: Option<u64>,
    pub total_pages: Option<u32>,
    pub current_page: Option<u32>,
    pub per_page: Option<u32>,
}

impl Paging {
    pub fn read(endpoint: &'static str, headers: &HeaderMap, body: &[u8]) -> Result<Self, ClientError> {
        Ok(Self {
            total_count: header(endpoint, headers, "x-total-count", body)?,
            total_pages: header(endpoint, headers, "x-total-pages", body)?,
            current_page: header(endpoint, headers, "x-current-page", body)?,
            per_page: header(endpoint, headers, "x-count-per-page", body)?,
        })
    }
}

fn header<T: std::str::FromStr>(
    endpoint: &'static str,
    headers: &HeaderMap,
    name: &str,
    body: &[u8],
) -> Result<Option<T>, ClientError> {
    let Some(value) = headers.get(name) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or("").trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| ClientError::decode(endpoint, format!("header {name} is not a number: {text:?}"), body))
}
