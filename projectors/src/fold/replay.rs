//! The read models of some SIMs rebuilt in memory from their events, by the live projector's
//! own guard rules and fold, without a database: what `simctl audit verify --against-platform`
//! compares the platform's answers with, row by row.
//!
//! The events are one or more SIMs' whole histories (every aggregate's events from its first),
//! in the global log's order. As in the live projector, an event at or below its aggregate's
//! version is a duplicate, and an event that does not decode parks its aggregate (its SIM's
//! row says `projection: parked`, and the aggregate's later events wait behind it). A hole in
//! an aggregate's sequences, which the live projector would fill from the `events` table, is
//! reported: the history given is not whole.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use eventstore::StoredEvent;

use super::Fold;
use crate::apply::decode;
use readmodel::{ConnectivityChange, QuotaRow, SimView, SmsRow, StatusChange, UsageRow};

/// Usage summed over one bucket (hour or day, cut in UTC from the epoch as the rollups are):
/// data bytes, MO and MT messages.
pub type UsageSums = BTreeMap<DateTime<Utc>, [i64; 3]>;

/// What the replay built.
#[derive(Debug, Default)]
pub struct Replayed {
    pub sims: BTreeMap<String, SimView>,
    /// By SIM and kind (`data`, `sms`).
    pub quotas: BTreeMap<(String, String), QuotaRow>,
    pub sms: Vec<SmsRow>,
    pub status_history: Vec<StatusChange>,
    pub connectivity: Vec<ConnectivityChange>,
    pub usage: Vec<UsageRow>,
    /// Events that parked their aggregate: `(position, why)`.
    pub parked: Vec<(i64, String)>,
    /// Holes: `(aggregate_type, aggregate_id, version before, sequence found)`.
    pub gaps: Vec<(String, String, i64, i64)>,
}

impl Replayed {
    /// One SIM's usage rows summed by bucket of `width` (the hourly or daily rollup).
    pub fn usage_buckets(&self, iccid: &str, width: TimeDelta) -> UsageSums {
        let mut sums = UsageSums::new();
        for row in self.usage.iter().filter(|r| r.iccid == iccid) {
            let bucket = row.observed_at.duration_trunc(width).unwrap_or(row.observed_at);
            let sum = sums.entry(bucket).or_default();
            sum[0] += row.data_bytes;
            sum[1] += row.sms_mo;
            sum[2] += row.sms_mt;
        }
        sums
    }
}

/// Replays `events` (whole histories, in the global log's order) into read-model rows.
pub fn replay(events: &[StoredEvent]) -> Replayed {
    let mut fold = Fold::default();
    let mut versions: HashMap<(String, String), (i64, bool)> = HashMap::new();
    let mut parked = Vec::new();
    let mut gaps = Vec::new();
    for event in events {
        let key = (event.aggregate_type.clone(), event.aggregate_id.clone());
        let (version, is_parked) = versions.get(&key).copied().unwrap_or((0, false));
        if event.sequence <= version {
            continue;
        }
        if is_parked {
            parked.push((
                event.position,
                "an earlier event of this aggregate is parked".to_owned(),
            ));
            continue;
        }
        if event.sequence > version + 1 {
            gaps.push((key.0.clone(), key.1.clone(), version, event.sequence));
        }
        match decode(event) {
            Ok(decoded) => {
                fold.apply(event, decoded);
                versions.insert(key, (event.sequence, false));
            }
            Err(error) => {
                parked.push((event.position, error.to_string()));
                fold.mark_parked(&event.iccid);
                versions.insert(key, (version, true));
            }
        }
    }
    let Fold {
        sims,
        quotas,
        sms,
        history,
        connectivity,
        usage,
        ..
    } = fold;
    let mut sms: Vec<SmsRow> = sms.into_values().collect();
    sms.sort_by_key(|m| m.message_id);
    Replayed {
        sims: sims.into_iter().collect(),
        quotas: quotas.into_iter().collect(),
        sms,
        status_history: history,
        connectivity,
        usage,
        parked,
        gaps,
    }
}
