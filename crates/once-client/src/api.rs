//! The provider's calls, one method each.

use std::collections::HashMap;

use chrono::NaiveDate;
use reqwest::header::LOCATION;
use reqwest::Method;
use serde::Serialize;

use crate::client::{Answer, Request};
use crate::decode;
use crate::endpoint;
use crate::model::{
    ConnectivityStatus, DailyUsage, Limit, LimitService, Limits, Quota, QuotaKind, SetLimits, Sim,
    SimEventPage, SimPage, SimUpdate, Sms, SmsReceipt, SmsSubmission, TopUpOrder,
};
use crate::{ClientError, OnceClient};

/// The largest page the provider serves for SIMs and SMS.
const MAX_PAGE_SIZE: u32 = 100;
/// The largest page of SIM events.
const MAX_EVENT_PAGE_SIZE: u32 = 1000;

impl OnceClient {
    /// `GET /v1/sims?page&pageSize`: one page of the SIM list (page from 1, size 1..=100).
    pub async fn sims_page(&self, page: u32, page_size: u32) -> Result<SimPage, ClientError> {
        check_paging(endpoint::SIMS, page, page_size, MAX_PAGE_SIZE)?;
        let url = self.url(
            &["v1", "sims"],
            &[("page", page.to_string()), ("pageSize", page_size.to_string())],
        );
        let answer = self.send(&get(endpoint::SIMS, url)).await?;
        decode::sim_page(&answer.body, &answer.headers, page, page_size)
    }

    /// Every SIM, walking the list in pages of 100 to its end. Any failed page fails the walk:
    /// a partial list must not be mistaken for the whole fleet.
    pub async fn all_sims(&self) -> Result<Vec<Sim>, ClientError> {
        let mut sims: Vec<Sim> = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut page = 1;
        loop {
            let answer = self.sims_page(page, MAX_PAGE_SIZE).await?;
            let mut new = 0;
            let returned = answer.sims.len();
            for sim in answer.sims {
                // A SIM that moved between pages while walking appears twice; the later
                // sighting is the fresher one.
                match seen.get(&sim.iccid) {
                    Some(&at) => sims[at] = sim,
                    None => {
                        new += 1;
                        seen.insert(sim.iccid.clone(), sims.len());
                        sims.push(sim);
                    }
                }
            }
            // The end: the last page by the headers, an empty page, or a page with nothing new
            // (a server that ignores `page` would otherwise be walked forever).
            if page >= answer.total_pages || returned == 0 || new == 0 {
                return Ok(sims);
            }
            page += 1;
        }
    }

    /// `GET /v1/sims/{iccid}`.
    pub async fn sim(&self, iccid: &str) -> Result<Sim, ClientError> {
        let answer = self.get_sim(endpoint::SIM, iccid, &[], &[]).await?;
        decode::sim(&answer.body)
    }

    /// `PUT /v1/sims/{iccid}`: enable/disable, label, IMEI lock. The provider's documents make
    /// `status` required (defaulting to Enabled), so an update without a status carries the
    /// SIM's current one, read just before — a label change must never enable a SIM.
    pub async fn update_sim(&self, update: &SimUpdate) -> Result<(), ClientError> {
        let iccid = checked(endpoint::UPDATE_SIM, &update.iccid)?;
        let mut body = update.clone();
        if body.status.is_none() {
            body.status = self.sim(iccid).await?.status;
        }
        let request = Request {
            endpoint: endpoint::UPDATE_SIM,
            method: Method::PUT,
            url: self.sim_url(endpoint::UPDATE_SIM, iccid, &[], &[])?,
            json: Some(json_body(endpoint::UPDATE_SIM, "update", &body)?),
            idempotent: true,
            json_answer: false,
        };
        self.send(&request).await.map(drop)
    }

    /// `GET /v1/sims/{iccid}/status`: connectivity, location and data session.
    pub async fn connectivity(&self, iccid: &str) -> Result<ConnectivityStatus, ClientError> {
        let answer = self.get_sim(endpoint::STATUS, iccid, &["status"], &[]).await?;
        decode::connectivity(&answer.body)
    }

    /// `GET /v1/sims/{iccid}/usage?start_dt&end_dt`: one entry per day (the provider keeps
    /// six months).
    pub async fn usage(
        &self,
        iccid: &str,
        start: NaiveDate,
        end: NaiveDate,
    ) -> Result<Vec<DailyUsage>, ClientError> {
        if start > end {
            return Err(ClientError::Config {
                endpoint: endpoint::USAGE,
                reason: format!("start {start} is after end {end}"),
            });
        }
        let days = [
            ("start_dt", start.format("%Y-%m-%d").to_string()),
            ("end_dt", end.format("%Y-%m-%d").to_string()),
        ];
        let answer = self.get_sim(endpoint::USAGE, iccid, &["usage"], &days).await?;
        decode::usage(&answer.body)
    }

    /// `GET /v1/sims/{iccid}/quota/{data|sms}`.
    pub async fn quota(&self, iccid: &str, kind: QuotaKind) -> Result<Quota, ClientError> {
        let endpoint = decode::quota_endpoint(kind);
        let answer = self
            .get_sim(endpoint, iccid, &["quota", kind.as_str()], &[])
            .await?;
        decode::quota(kind, &answer.body)
    }

    /// `POST /v1/sims/{iccid}/topup`: orders the standard top-up. Not idempotent at the
    /// provider, so it is repeated only when the provider certainly did not take the first
    /// (429, or a connection that failed before sending); otherwise see
    /// [`ClientError::outcome_unknown`].
    pub async fn top_up(&self, iccid: &str, payment_method: Option<&str>) -> Result<TopUpOrder, ClientError> {
        let query: Vec<(&str, String)> = payment_method
            .map(|method| vec![("payment_method", method.to_owned())])
            .unwrap_or_default();
        let url = self.sim_url(endpoint::TOP_UP, iccid, &["topup"], &query)?;
        let answer = self.send(&post(endpoint::TOP_UP, url, None)).await?;
        Ok(TopUpOrder {
            location: location(&answer),
        })
    }

    /// `POST /v1/sims/{iccid}/reset`: queues a connectivity reset (1NCE carries it out
    /// asynchronously). Not idempotent (a second call resets again), like [`Self::top_up`].
    pub async fn reset_connectivity(&self, iccid: &str) -> Result<(), ClientError> {
        let url = self.sim_url(endpoint::RESET, iccid, &["reset"], &[])?;
        self.send(&post(endpoint::RESET, url, None)).await.map(drop)
    }

    /// `POST /v1/sims/autoTopup {enabled, iccids}`: auto top-up on or off for these SIMs.
    /// Setting a state, so it may be repeated.
    pub async fn set_auto_top_up(&self, iccids: &[&str], enabled: bool) -> Result<(), ClientError> {
        for iccid in iccids {
            checked(endpoint::AUTO_TOP_UP, iccid)?;
        }
        let body = serde_json::json!({ "enabled": enabled, "iccids": iccids });
        let request = Request {
            idempotent: true,
            ..post(
                endpoint::AUTO_TOP_UP,
                self.url(&["v1", "sims", "autoTopup"], &[]),
                Some(json_body(endpoint::AUTO_TOP_UP, "auto top-up", &body)?),
            )
        };
        self.send(&request).await.map(drop)
    }

    /// `GET /v1/sims/limits`: the account's self-set monthly limits.
    pub async fn limits(&self) -> Result<Limits, ClientError> {
        let url = self.url(&["v1", "sims", "limits"], &[]);
        let answer = self.send(&get(endpoint::LIMITS, url)).await?;
        decode::json(endpoint::LIMITS, &answer.body)
    }

    /// `POST /v1/sims/limits`: sets the account's self-set limits by id. Setting a state, so
    /// it may be repeated.
    pub async fn set_limits(&self, limits: &SetLimits) -> Result<(), ClientError> {
        let request = Request {
            idempotent: true,
            ..post(
                endpoint::SET_LIMITS,
                self.url(&["v1", "sims", "limits"], &[]),
                Some(json_body(endpoint::SET_LIMITS, "limits", limits)?),
            )
        };
        self.send(&request).await.map(drop)
    }

    /// `GET /v1/sims/{service}/limits`: the limits that may be selected for a service. The
    /// documents name `Values_for_Limits` as its answer; a list of limits is read too, and
    /// an object's limits are taken as the list.
    pub async fn selectable_limits(&self, service: LimitService) -> Result<Vec<Limit>, ClientError> {
        let url = self.url(&["v1", "sims", service.as_str(), "limits"], &[]);
        let answer = self.send(&get(endpoint::SELECTABLE_LIMITS, url)).await?;
        // Untagged enums buffer the body, which the lenient number readers cannot take:
        // look at the first byte instead.
        let list = answer.body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
        if list {
            return decode::json(endpoint::SELECTABLE_LIMITS, &answer.body);
        }
        let o: Limits = decode::json(endpoint::SELECTABLE_LIMITS, &answer.body)?;
        Ok([o.data, o.sms_mt, o.sms_mo].into_iter().flatten().collect())
    }

    /// `POST /v1/sims/{iccid}/sms`: sends an MT SMS. Not idempotent, like [`Self::top_up`].
    pub async fn send_sms(&self, iccid: &str, sms: &SmsSubmission) -> Result<SmsReceipt, ClientError> {
        let json = json_body(endpoint::SEND_SMS, "SMS", sms)?;
        let url = self.sim_url(endpoint::SEND_SMS, iccid, &["sms"], &[])?;
        let answer = self.send(&post(endpoint::SEND_SMS, url, Some(json))).await?;
        let location = location(&answer);
        // The documents promise only the Location; an id in a JSON body is taken if present.
        let id = location
            .as_deref()
            .and_then(decode::id_from_location)
            .or_else(|| {
                serde_json::from_slice::<serde_json::Value>(&answer.body)
                    .ok()
                    .and_then(|body| body.get("id").and_then(serde_json::Value::as_u64))
            });
        Ok(SmsReceipt { location, id })
    }

    /// Every SMS of a SIM, MT and MO, walking the pages to the end.
    pub async fn all_sms(&self, iccid: &str) -> Result<Vec<Sms>, ClientError> {
        let mut messages: Vec<Sms> = Vec::new();
        let mut seen: HashMap<u64, usize> = HashMap::new();
        let mut page: u32 = 1;
        loop {
            let paging = [
                ("page", page.to_string()),
                ("pageSize", MAX_PAGE_SIZE.to_string()),
            ];
            let answer = self.get_sim(endpoint::SMS_LIST, iccid, &["sms"], &paging).await?;
            let batch = decode::sms_list(&answer.body)?;
            let paging = decode::Paging::read(endpoint::SMS_LIST, &answer.headers, &answer.body)?;
            let returned = batch.len();
            let mut new = 0;
            for sms in batch {
                match seen.get(&sms.id) {
                    Some(&at) => messages[at] = sms,
                    None => {
                        new += 1;
                        seen.insert(sms.id, messages.len());
                        messages.push(sms);
                    }
                }
            }
            let last_page = match paging.total_pages {
                Some(total) => page >= total,
                None => returned < MAX_PAGE_SIZE as usize,
            };
            if last_page || returned == 0 || new == 0 {
                return Ok(messages);
            }
            page += 1;
        }
    }

    /// `GET /v1/sims/{iccid}/sms/{id}`.
    pub async fn sms(&self, iccid: &str, id: u64) -> Result<Sms, ClientError> {
        let answer = self
            .get_sim(endpoint::SMS, iccid, &["sms", &id.to_string()], &[])
            .await?;
        decode::sms(&answer.body)
    }

    /// `GET /v1/sims/{iccid}/events?page&pageSize` (page from 1, size 1..=1000).
    pub async fn sim_events(
        &self,
        iccid: &str,
        page: u32,
        page_size: u32,
    ) -> Result<SimEventPage, ClientError> {
        self.sim_events_sorted(iccid, page, page_size, None).await
    }

    /// [`OnceClient::sim_events`] with the API's `sort` (keys separated by commas, `-` for
    /// descending, e.g. `-timestamp` for the newest first).
    pub async fn sim_events_sorted(
        &self,
        iccid: &str,
        page: u32,
        page_size: u32,
        sort: Option<&str>,
    ) -> Result<SimEventPage, ClientError> {
        check_paging(endpoint::EVENTS, page, page_size, MAX_EVENT_PAGE_SIZE)?;
        let mut paging = vec![("page", page.to_string()), ("pageSize", page_size.to_string())];
        if let Some(sort) = sort {
            paging.push(("sort", sort.to_owned()));
        }
        let answer = self
            .get_sim(endpoint::EVENTS, iccid, &["events"], &paging)
            .await?;
        decode::events(&answer.body, &answer.headers, page)
    }

    /// The URL of a SIM's resource, `/v1/sims/{iccid}/{path…}?{query}`; the ICCID is checked
    /// first, so that nothing can reach another path.
    fn sim_url(
        &self,
        endpoint: &'static str,
        iccid: &str,
        path: &[&str],
        query: &[(&str, String)],
    ) -> Result<reqwest::Url, ClientError> {
        let segments = [&["v1", "sims", checked(endpoint, iccid)?], path].concat();
        Ok(self.url(&segments, query))
    }

    /// `GET` of a SIM's resource (see [`Self::sim_url`]), answered with JSON.
    async fn get_sim(
        &self,
        endpoint: &'static str,
        iccid: &str,
        path: &[&str],
        query: &[(&str, String)],
    ) -> Result<Answer, ClientError> {
        let url = self.sim_url(endpoint, iccid, path, query)?;
        self.send(&get(endpoint, url)).await
    }
}

fn get(endpoint: &'static str, url: reqwest::Url) -> Request {
    Request {
        endpoint,
        method: Method::GET,
        url,
        json: None,
        idempotent: true,
        json_answer: true,
    }
}

/// A `POST`: it orders something, so it is not idempotent, and its answer is not JSON.
fn post(endpoint: &'static str, url: reqwest::Url, json: Option<Vec<u8>>) -> Request {
    Request {
        endpoint,
        method: Method::POST,
        url,
        json,
        idempotent: false,
        json_answer: false,
    }
}

/// `value` as a request body; one that cannot be written is the caller's mistake.
fn json_body(endpoint: &'static str, what: &str, value: &impl Serialize) -> Result<Vec<u8>, ClientError> {
    serde_json::to_vec(value).map_err(|e| ClientError::Config {
        endpoint,
        reason: format!("the {what} could not be written as JSON: {e}"),
    })
}

/// An ICCID as a path segment: letters and digits only, so nothing can reach another path.
fn checked<'a>(endpoint: &'static str, iccid: &'a str) -> Result<&'a str, ClientError> {
    if !iccid.is_empty() && iccid.len() <= 32 && iccid.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(iccid)
    } else {
        Err(ClientError::Config {
            endpoint,
            reason: format!("{iccid:?} is not an ICCID"),
        })
    }
}

fn check_paging(endpoint: &'static str, page: u32, page_size: u32, max: u32) -> Result<(), ClientError> {
    if page == 0 || page_size == 0 || page_size > max {
        return Err(ClientError::Config {
            endpoint,
            reason: format!("page {page} of size {page_size}: pages start at 1 and hold 1 to {max}"),
        });
    }
    Ok(())
}

fn location(answer: &Answer) -> Option<String> {
    answer
        .headers
        .get(LOCATION)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

/// The sync connector spawns these calls onto tasks: every future must be `Send`, and the
/// client shareable across threads. Checked at compile time.
#[allow(dead_code)]
fn calls_are_send(client: OnceClient, update: SimUpdate, sms: SmsSubmission, day: NaiveDate) {
    fn send<T: Send + Sync + 'static>(_: &T) {}
    fn future<F: std::future::Future + Send>(_: F) {}
    send(&client);
    future(client.sims_page(1, 1));
    future(client.all_sims());
    future(client.sim(""));
    future(client.update_sim(&update));
    future(client.connectivity(""));
    future(client.usage("", day, day));
    future(client.quota("", QuotaKind::Data));
    future(client.top_up("", None));
    future(client.send_sms("", &sms));
    future(client.all_sms(""));
    future(client.sms("", 1));
    future(client.sim_events("", 1, 1));
    future(client.reset_connectivity(""));
    future(client.set_auto_top_up(&[], true));
    future(client.limits());
    future(client.set_limits(&SetLimits::default()));
    future(client.selectable_limits(LimitService::Data));
}
