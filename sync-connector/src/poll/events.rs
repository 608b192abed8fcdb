//! Network events from polling: with the Data Streamer off (`SYNC_NETWORK_EVENTS`), the
//! per-SIM refresh reads the SIM's new events from `GET /v1/sims/{iccid}/events` and hands them
//! to the streamer's inbox as stream `api_events`, so the streamer's applier turns them into
//! commands: the same meanings (`streamer::record`), the same commands, the same order per SIM
//! and the same exactly-once keys (`streamer:api_events:<id>`).
//!
//! The API's events are not the streamer's records: they carry a text `event_type`, the
//! operator and country at the top level, no `detail` and (per the OpenAPI) no id. Each is
//! rewritten as the event record the streamer would have sent and read by the same parser.
//! Its id is the provider's when the answer has one, else a fingerprint of the SIM, timestamp,
//! text and the number of identical events before it, so the same event read twice is one.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use domain::Iccid;
use once_client::{OnceClient, SimEvent};
use serde_json::json;

use super::Poller;
use crate::error::SyncError;
use crate::last_seen::SyncedSim;
use crate::streamer::record::{self, Record, Stream};

/// Events per page: one call covers what a SIM does between two refreshes.
pub const EVENT_PAGE_SIZE: u32 = 100;
/// Pages read in one refresh at most; the rest waits for the next refresh (the cursor only
/// moves to what was stored).
const MAX_EVENT_PAGES: u32 = 10;

impl Poller {
    /// Reads the SIM's events after its cursor, newest first, stores them in the inbox and
    /// moves the cursor; returns how many were new. The first refresh of a SIM only sets the
    /// cursor: what happened before is what `…/status` and the list show (an old event applied
    /// after them would put an outdated location back), and it keeps a first sync to one call.
    pub(super) async fn network_events(
        &self,
        client: &OnceClient,
        iccid: &Iccid,
        synced: &mut SyncedSim,
    ) -> Result<u64, SyncError> {
        let Some(target) = &self.network_events else {
            return Ok(0);
        };
        let cursor = synced.events_cursor;
        let mut newest_first = Vec::new();
        let mut page = 1;
        loop {
            let answer = client
                .sim_events_sorted(iccid.as_str(), page, EVENT_PAGE_SIZE, Some("-timestamp"))
                .await?;
            let size = answer.events.len();
            let mut older_reached = false;
            for event in answer.events {
                // An event without a time cannot be put in order; the API always sends one.
                let Some(at) = event.timestamp else { continue };
                if cursor.is_some_and(|cursor| at <= cursor) {
                    older_reached = true;
                    break;
                }
                newest_first.push(event);
            }
            if cursor.is_none()
                || older_reached
                || size < EVENT_PAGE_SIZE as usize
                || page >= answer.total_pages
                || page >= MAX_EVENT_PAGES
            {
                break;
            }
            page += 1;
        }
        let newest = newest_first.iter().filter_map(|e| e.timestamp).max();
        if cursor.is_none() {
            // A SIM with no events yet: every event from now on is new (the epoch, not "no
            // cursor", or its first event would only set the cursor).
            synced.events_cursor = Some(newest.unwrap_or(DateTime::UNIX_EPOCH));
            return Ok(0);
        }
        let Some(newest) = newest else {
            return Ok(0);
        };
        // Cut short by MAX_EVENT_PAGES: the oldest read become the cursor, the next refresh
        // goes on from there.
        let complete = newest_first.len() < (MAX_EVENT_PAGES * EVENT_PAGE_SIZE) as usize;
        let records = records(iccid, newest_first.into_iter().rev());
        let stored = target.inbox.store(&records, &[]).await?;
        target.wake.notify_one();
        let new = stored.accepted();
        if new > 0 {
            self.metrics.difference("network_events");
        }
        synced.events_cursor = Some(if complete {
            newest
        } else {
            records.last().map_or(newest, |r| r.occurred_at)
        });
        Ok(new)
    }
}

/// The API's events (oldest first) as the streamer's records, in the same order.
fn records(iccid: &Iccid, oldest_first: impl Iterator<Item = SimEvent>) -> Vec<Record> {
    let mut seen: HashMap<(DateTime<Utc>, String), u32> = HashMap::new();
    let mut records = Vec::new();
    for event in oldest_first {
        let (Some(at), text) = (event.timestamp, event.event_type.clone().unwrap_or_default()) else {
            continue;
        };
        let ordinal = seen.entry((at, text.clone())).or_default();
        let id = event
            .id
            .and_then(|id| i64::try_from(id).ok())
            .unwrap_or_else(|| fingerprint(iccid, at, &text, *ordinal));
        *ordinal += 1;
        let streamed = json!({
            "id": id,
            "timestamp": at.to_rfc3339_opts(SecondsFormat::Millis, true),
            "event_type": {"id": event_type_id(&text), "description": text},
            "sim": {"iccid": iccid.as_str()},
            "detail": {"name": event.operator, "country": {"name": event.country}},
        });
        let raw = serde_json::value::to_raw_value(&streamed).expect("a JSON value serialises");
        match record::parse(records.len(), &raw) {
            Ok(mut record) => {
                record.stream = Stream::ApiEvents;
                records.push(record);
            }
            Err(rejection) => {
                tracing::warn!(%iccid, reason = %rejection.reason, "an event of the API could not be read")
            }
        }
    }
    records
}

/// A stable positive id for an event the API gives no id.
fn fingerprint(iccid: &Iccid, at: DateTime<Utc>, text: &str, ordinal: u32) -> i64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{iccid}|{}|{text}|{ordinal}", at.timestamp_micros()).as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(bytes) >> 1) as i64
}

/// The streamer's event type for the API's text (`../shared/1nce-data-streamer.md`'s
/// published list; the API names the type, the streamer numbers it). Texts that mean nothing
/// the platform keeps are 0, Generic.
fn event_type_id(text: &str) -> i64 {
    let lower = text.trim().to_ascii_lowercase();
    if let Some(change) = lower.strip_prefix("status of sim changed") {
        let to = change.rsplit(" to ").next().unwrap_or_default();
        let to = to.trim_matches(|c: char| c == '\'' || c == '"' || c.is_whitespace());
        return match to {
            "activated" | "enabled" => 8,
            "deactivated" | "suspended" | "disabled" => 9,
            "deleted" | "terminated" | "retired" => 10,
            _ => 0,
        };
    }
    let quota = |data: i64, sms: i64| {
        if lower.contains("sms") && !lower.contains("data") {
            sms
        } else {
            data
        }
    };
    match lower.as_str() {
        "update location" => 1,
        "update gprs location" => 2,
        "create pdp context" => 3,
        "update pdp context" => 4,
        "delete pdp context" => 5,
        "sim activation" => 8,
        "sim suspension" => 9,
        "sim deletion" => 10,
        // "Data and SMS quota expired": only the data quota's expiry has a type (60).
        _ if lower.contains("quota expired") && lower.contains("data") => 60,
        _ if lower.contains("threshold") && lower.contains("quota") => quota(18, 20),
        _ if lower.contains("quota") && lower.contains("used up") => quota(19, 21),
        _ if lower.contains("quota assigned") || lower.contains("top up of") => quota(56, 58),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streamer::record::{Meaning, StatusChange};

    const ICCID: &str = "8988280666000000001";

    fn event(at: &str, text: &str) -> SimEvent {
        serde_json::from_value(json!({
            "timestamp": at, "event_type": text, "iccid": ICCID, "operator": "Telekom",
            "country": "Germany", "alert": false, "event_severity": "Info"
        }))
        .unwrap()
    }

    #[test]
    fn api_events_mean_what_the_streamer_records_mean() {
        let iccid = Iccid::parse(ICCID).unwrap();
        let events = vec![
            event(
                "2026-12-01T10:00:00.000+0000",
                "Status of SIM changed from 'Activated' to 'Deactivated'",
            ),
            event("2026-12-01T10:01:00.000+0000", "Update location"),
            event("2026-12-01T10:01:00.000+0000", "Update location"),
            event("2026-12-01T10:02:00.000+0000", "Data and SMS quota expired"),
            event("2026-12-01T10:03:00.000+0000", "Something new"),
        ];
        let records = records(&iccid, events.clone().into_iter());
        assert_eq!(records.len(), 5);
        assert!(records.iter().all(|r| r.stream == Stream::ApiEvents));
        assert_eq!(
            records[0].meaning,
            Meaning::Status {
                status: StatusChange::Suspended
            }
        );
        assert_eq!(
            records[1].meaning,
            Meaning::Location {
                network: Some("Telekom".into()),
                country: Some("Germany".into())
            }
        );
        // Two identical events are two records, and reading them again gives the same ids.
        assert_ne!(records[1].id, records[2].id);
        let again = super::records(&iccid, events.into_iter());
        assert_eq!(
            records.iter().map(|r| r.id).collect::<Vec<_>>(),
            again.iter().map(|r| r.id).collect::<Vec<_>>()
        );
        assert!(matches!(records[3].meaning, Meaning::QuotaExpired { .. }));
        assert_eq!(records[4].meaning, Meaning::OtherEvent { event_type: Some(0) });
    }

    #[test]
    fn status_texts_name_their_target() {
        assert_eq!(
            event_type_id("Status of SIM changed from 'Issued' to 'Activated'"),
            8
        );
        assert_eq!(
            event_type_id("Status of SIM changed from 'Activated' to 'Suspended'"),
            9
        );
        assert_eq!(
            event_type_id("Status of SIM changed from 'Activated' to 'Terminated'"),
            10
        );
        assert_eq!(event_type_id("Create PDP Context"), 3);
        assert_eq!(event_type_id("SMS Quota Threshold reached"), 20);
        assert_eq!(event_type_id("Auto top up of data and SMS volume"), 56);
    }
}
