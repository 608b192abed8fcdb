//! A SIM's [`SimView`] rebuilt from the event store instead of the `sims` read model: the
//! auditors' "state at time T" (`GET /sims/{iccid}/state?as_of=`).
//!
//! The state comes from the domain's own `apply` (the SIM aggregate and its two quota
//! aggregates), and the mapping to the row follows the rules the projectors follow, so that
//! the state as of now equals `GET /sims/{iccid}` once the projectors have caught up:
//!
//! - `status`, `pending_change` (`activation` | `suspension`), `provider_status`
//!   (`Enabled` | `Disabled`), label, tags, IMEI, connectivity (`last_seen_at` = the last
//!   `ConnectivityChanged`'s `observed_at`), `registered_at`, `terminated_at`: the SIM aggregate;
//! - `data_*` / `sms_*`: the quota aggregates (total, remaining, expiry date), `null` when that
//!   quota has no event at all;
//! - `version`: the SIM aggregate's last sequence;
//! - `last_position` / `updated_at`: the position and `recorded_at` of the last event (in the
//!   global log's order) of the SIM aggregate or one of its quota aggregates. SMS events do not
//!   change the row and are ignored.

use chrono::{DateTime, Timelike, Utc};
use domain::ids::{parse_quota_aggregate_id, QuotaKind};
use domain::quota::{Quota, QuotaEvent};
use domain::sim::{ChangeKind, Sim, SimEvent};
use domain::Aggregate;
use eventstore::StoredEvent;

use crate::SimView;

/// Why a history could not be replayed: an event that does not decode into its domain type.
#[derive(Debug, thiserror::Error)]
#[error("event {aggregate_type}/{aggregate_id}#{sequence} (position {position}) cannot be decoded: {source}")]
pub struct ReplayError {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub position: i64,
    pub source: serde_json::Error,
}

/// The SIM's view after `events` (one SIM's events, already limited to the instant wanted, in
/// any order), or `None` when the SIM was not registered by then. Events that do not decode
/// are skipped with a warning; use [`try_sim_view_as_of`] to refuse them instead.
pub fn sim_view_as_of(events: &[StoredEvent]) -> Option<SimView> {
    match replay(events, false) {
        Ok(view) => view,
        Err(error) => {
            // Unreachable: lenient replay skips instead of failing.
            tracing::warn!(%error, "replay failed");
            None
        }
    }
}

/// Like [`sim_view_as_of`], but an event that does not decode is an error.
pub fn try_sim_view_as_of(events: &[StoredEvent]) -> Result<Option<SimView>, ReplayError> {
    replay(events, true)
}

fn decode<E: domain::DomainEvent>(event: &StoredEvent, strict: bool) -> Result<Option<E>, ReplayError> {
    match event.to_domain::<E>() {
        Ok(decoded) => Ok(Some(decoded)),
        Err(source) => {
            let error = ReplayError {
                aggregate_type: event.aggregate_type.clone(),
                aggregate_id: event.aggregate_id.clone(),
                sequence: event.sequence,
                position: event.position,
                source,
            };
            if strict {
                Err(error)
            } else {
                tracing::warn!(%error, "skipping an undecodable event in a replay");
                Ok(None)
            }
        }
    }
}

/// A quota's numbers, once it has any event.
#[derive(Default)]
struct QuotaReplay {
    state: Quota,
    seen: bool,
}

fn replay(events: &[StoredEvent], strict: bool) -> Result<Option<SimView>, ReplayError> {
    // Each aggregate in its own sequence order; "last" in the global log's order.
    let mut ordered: Vec<&StoredEvent> = events.iter().collect();
    ordered.sort_by_key(|e| (e.aggregate_type.clone(), e.aggregate_id.clone(), e.sequence));

    let mut sim = Sim::default();
    let mut sim_version = 0_i64;
    let mut data = QuotaReplay::default();
    let mut sms = QuotaReplay::default();
    let mut last: Option<&StoredEvent> = None;

    for event in ordered {
        match event.aggregate_type.as_str() {
            t if t == Sim::TYPE => {
                let Some(decoded) = decode::<SimEvent>(event, strict)? else {
                    continue;
                };
                sim.apply(&decoded);
                sim_version = sim_version.max(event.sequence);
            }
            t if t == Quota::TYPE => {
                let kind = match parse_quota_aggregate_id(&event.aggregate_id) {
                    Ok((_, kind)) => kind,
                    Err(_) => {
                        tracing::warn!(aggregate_id = %event.aggregate_id, "quota event with an unknown aggregate id");
                        continue;
                    }
                };
                let Some(decoded) = decode::<QuotaEvent>(event, strict)? else {
                    continue;
                };
                let quota = match kind {
                    QuotaKind::Data => &mut data,
                    QuotaKind::Sms => &mut sms,
                };
                quota.state.apply(&decoded);
                quota.seen = true;
            }
            // SMS and anything else: not part of the SIM's row.
            _ => continue,
        }
        // The row's `last_position` / `updated_at` are those of its highest position, as the
        // projector keeps them (`GREATEST`): positions only grow, so the ETag and the cache's
        // "never replace a newer row" rule stay monotone even when two transactions commit one
        // SIM's events out of position order.
        if last.is_none_or(|l| event.position > l.position) {
            last = Some(event);
        }
    }

    if !sim.is_registered() {
        return Ok(None);
    }
    let (Some(iccid), Some(imsi), Some(registered_at), Some(last)) =
        (sim.iccid(), sim.imsi(), sim.registered_at(), last)
    else {
        return Ok(None);
    };
    let connectivity = sim.connectivity();
    let quota_numbers = |q: &QuotaReplay| {
        if q.seen {
            (
                Some(q.state.total() as i64),
                Some(q.state.remaining() as i64),
                q.state.expiry_date(),
            )
        } else {
            (None, None, None)
        }
    };
    let (data_total, data_remaining, data_expiry) = quota_numbers(&data);
    let (sms_total, sms_remaining, sms_expiry) = quota_numbers(&sms);
    Ok(Some(SimView {
        iccid: iccid.to_string(),
        imsi: imsi.to_string(),
        msisdn: sim.msisdn().map(ToString::to_string),
        label: sim.label().map(str::to_owned),
        tags: sim.tags().to_vec(),
        status: sim.status(),
        pending_change: sim.pending_change().map(|p| match p.kind {
            ChangeKind::Activation => "activation".to_owned(),
            ChangeKind::Suspension => "suspension".to_owned(),
        }),
        provider_status: sim.provider_status().map(|s| s.to_string()),
        imei: sim.imei().map(ToString::to_string),
        imei_lock: sim.imei_lock(),
        ip_address: connectivity.ip_address.clone(),
        network: connectivity.network.clone(),
        country: connectivity.country.clone(),
        rat: connectivity.rat.clone(),
        last_seen_at: connectivity.last_seen_at.map(micros),
        data_total,
        data_remaining,
        data_expiry: data_expiry.map(micros),
        sms_total,
        sms_remaining,
        sms_expiry: sms_expiry.map(micros),
        registered_at: micros(registered_at),
        terminated_at: sim.terminated_at().map(micros),
        version: sim_version,
        last_position: last.position,
        updated_at: micros(last.recorded_at),
        // The replay decodes every event it uses (or fails): nothing of it is parked.
        projection: crate::PROJECTION_COMPLETE.to_owned(),
        controls: sqlx::types::Json(sim.controls().clone()),
    }))
}

/// Postgres keeps microseconds; event payloads keep what the clock gave (nanoseconds). The
/// replayed row must equal the stored one, so times are cut to what the read model holds.
fn micros(at: DateTime<Utc>) -> DateTime<Utc> {
    at.with_nanosecond(at.nanosecond() / 1_000 * 1_000).unwrap_or(at)
}

/// The global log's order: (writing transaction, position).
#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeZone, Utc};
    use domain::ids::{quota_aggregate_id, Iccid, Imsi};
    use domain::sim::ProviderStatus;
    use domain::{DomainEvent, SimStatus};
    use serde_json::json;

    use super::*;

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 12, minute, 0).unwrap()
    }

    fn stored<E: DomainEvent>(
        aggregate: (&str, &str),
        sequence: i64,
        position: i64,
        event: E,
    ) -> StoredEvent {
        let mut value = serde_json::to_value(&event).unwrap();
        StoredEvent {
            position,
            transaction_id: Some(1000 + position as u64),
            aggregate_type: aggregate.0.to_owned(),
            aggregate_id: aggregate.1.to_owned(),
            sequence,
            event_type: event.event_type().to_owned(),
            event_version: event.event_version().to_owned(),
            iccid: ICCID.to_owned(),
            recorded_at: at(position as u32),
            metadata: json!({}),
            payload: value["payload"].take(),
        }
    }

    const ICCID: &str = "8988303000000000001";

    fn history() -> Vec<StoredEvent> {
        let iccid = Iccid::parse(ICCID).unwrap();
        let quota_id = quota_aggregate_id(&iccid, QuotaKind::Data);
        vec![
            stored(
                ("sim", ICCID),
                1,
                1,
                SimEvent::SimRegistered {
                    iccid: iccid.clone(),
                    imsi: Imsi::parse("901405100000001").unwrap(),
                    msisdn: None,
                    label: Some("pump".into()),
                    tags: vec!["a".into()],
                    registered_at: at(0),
                },
            ),
            stored(
                ("quota", &quota_id),
                1,
                2,
                QuotaEvent::QuotaAssigned {
                    iccid: iccid.clone(),
                    kind: QuotaKind::Data,
                    total: 1000,
                    remaining: 900,
                    expiry_date: Some(at(59)),
                    period: 1,
                },
            ),
            stored(
                ("sim", ICCID),
                2,
                3,
                SimEvent::ProviderStatusChanged {
                    from: None,
                    to: ProviderStatus::Enabled,
                    sim_status: SimStatus::Active,
                    at: at(3),
                },
            ),
            stored(
                ("sms", "0190e0e0-0000-7000-8000-000000000000"),
                1,
                4,
                domain::SmsEvent::SmsDelivered {
                    iccid,
                    delivered_at: at(4),
                },
            ),
        ]
    }

    #[test]
    fn maps_the_sim_and_its_quotas() {
        let mut events = history();
        events.reverse(); // any order in
        let view = try_sim_view_as_of(&events).unwrap().unwrap();
        assert_eq!(view.status, SimStatus::Active);
        assert_eq!(view.provider_status.as_deref(), Some("Enabled"));
        assert_eq!(view.label.as_deref(), Some("pump"));
        assert_eq!(view.data_total, Some(1000));
        assert_eq!(view.data_remaining, Some(900));
        assert_eq!(view.data_expiry, Some(at(59)));
        assert_eq!(view.sms_total, None);
        assert_eq!(view.version, 2);
        // The SMS event (position 4) does not count.
        assert_eq!(view.last_position, 3);
        assert_eq!(view.updated_at, at(3));
        assert_eq!(view.registered_at, at(0));
    }

    #[test]
    fn nothing_before_registration() {
        let events = history();
        assert_eq!(sim_view_as_of(&events[1..2]), None);
        assert_eq!(sim_view_as_of(&[]), None);
        let first = sim_view_as_of(&events[..1]).unwrap();
        assert_eq!(first.status, SimStatus::Inactive);
        assert_eq!(first.data_total, None);
        assert_eq!(first.version, 1);
    }

    #[test]
    fn undecodable_events_are_errors_or_skipped() {
        let mut events = history();
        events[2].payload = json!({"nonsense": true});
        assert!(try_sim_view_as_of(&events).is_err());
        let lenient = sim_view_as_of(&events).unwrap();
        assert_eq!(lenient.status, SimStatus::Inactive);
    }
}
