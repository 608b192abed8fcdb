//! Which parts of a SIM's per-SIM refresh are due, and why (change-driven polling, issue 13
//! point 3). A part is one or two provider calls; only the parts something points at are
//! called, the rest wait for the daily full refresh (the safety net).

use serde::Serialize;

use crate::observe::ListEntry;

/// A set of refresh parts (stored as `sync_sims.due_parts`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Parts(pub i32);

impl Parts {
    /// `GET …/status`, and the SIM's new network events when they are read by polling.
    pub const CONNECTIVITY: Parts = Parts(1);
    pub const DATA_QUOTA: Parts = Parts(2);
    pub const SMS_QUOTA: Parts = Parts(4);
    /// `GET …/usage` of the recent days (today's total, and the closed days' reference).
    pub const USAGE: Parts = Parts(8);
    /// The SIM's SMS list: new MO messages and the fate of MT ones.
    pub const SMS: Parts = Parts(16);
    pub const NONE: Parts = Parts(0);
    pub const ALL: Parts = Parts(31);

    pub fn contains(self, other: Parts) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The parts of a SIM that is due with no bit set (stored before parts existed, or asked
    /// for as a whole): all of them.
    pub fn or_all(self) -> Parts {
        if self.is_empty() {
            Parts::ALL
        } else {
            self
        }
    }

    /// The names, for logs and tests.
    pub fn names(self) -> Vec<&'static str> {
        [
            (Parts::CONNECTIVITY, "connectivity"),
            (Parts::DATA_QUOTA, "data_quota"),
            (Parts::SMS_QUOTA, "sms_quota"),
            (Parts::USAGE, "usage"),
            (Parts::SMS, "sms"),
        ]
        .into_iter()
        .filter(|(part, _)| self.contains(*part))
        .map(|(_, name)| name)
        .collect()
    }
}

impl std::ops::BitOr for Parts {
    type Output = Parts;
    fn bitor(self, other: Parts) -> Parts {
        Parts(self.0 | other.0)
    }
}

impl std::ops::BitOrAssign for Parts {
    fn bitor_assign(&mut self, other: Parts) {
        self.0 |= other.0;
    }
}

/// What a change of a SIM's list entry makes due.
///
/// Without the Data Streamer the list is the only sign of traffic: data left or its status
/// moved → usage and the data quota; SMS left or its status moved → usage, the SMS quota and
/// the SMS list (an MO message is possible); the status or IP address changed → connectivity
/// (and the network events). With the Data Streamer usage and connectivity arrive streamed, so
/// a quota going down costs nothing; only what the stream cannot tell is polled: a quota
/// going **up** or changing status (an assignment or top-up made at the provider, a level
/// crossed) → that quota; SMS left going down → the SMS list (the stream counts MO messages
/// but carries no text).
pub fn due_from_list(previous: &ListEntry, entry: &ListEntry, streamer: bool) -> Parts {
    let mut due = Parts::NONE;
    let data_moved = previous.data_left != entry.data_left || previous.data_status != entry.data_status;
    let sms_moved = previous.sms_left != entry.sms_left || previous.sms_status != entry.sms_status;
    if !streamer {
        if data_moved {
            due |= Parts::USAGE | Parts::DATA_QUOTA;
        }
        if sms_moved {
            due |= Parts::USAGE | Parts::SMS_QUOTA | Parts::SMS;
        }
        if previous.status != entry.status || previous.ip_address != entry.ip_address {
            due |= Parts::CONNECTIVITY;
        }
        return due;
    }
    let went_up = |before: Option<u64>, now: Option<u64>| matches!((before, now), (Some(b), Some(n)) if n > b);
    if went_up(previous.data_left, entry.data_left) || previous.data_status != entry.data_status {
        due |= Parts::DATA_QUOTA;
    }
    if went_up(previous.sms_left, entry.sms_left) || previous.sms_status != entry.sms_status {
        due |= Parts::SMS_QUOTA;
    }
    if matches!((previous.sms_left, entry.sms_left), (Some(b), Some(n)) if n < b) {
        due |= Parts::SMS;
    }
    due
}

/// When a SIM first seen at `seen_at` gets its first full refresh, with `interval` the safety
/// net's period: spread over the interval by the ICCID's hash, so a fleet registered at once
/// does not come due at once.
pub fn spread(iccid: &str, interval: std::time::Duration) -> chrono::Duration {
    let secs = interval.as_secs().max(1);
    chrono::Duration::seconds((crate::config::shard_of_hash(iccid) % secs) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(data_left: u64, sms_left: u64) -> ListEntry {
        ListEntry {
            status: Some("Enabled".into()),
            data_left: Some(data_left),
            data_status: Some(0),
            sms_left: Some(sms_left),
            sms_status: Some(0),
            ..ListEntry::default()
        }
    }

    #[test]
    fn without_the_streamer_a_moved_quota_makes_usage_and_that_quota_due() {
        let before = entry(1000, 50);
        assert_eq!(due_from_list(&before, &before, false), Parts::NONE);
        assert_eq!(
            due_from_list(&before, &entry(900, 50), false),
            Parts::USAGE | Parts::DATA_QUOTA
        );
        assert_eq!(
            due_from_list(&before, &entry(1000, 49), false),
            Parts::USAGE | Parts::SMS_QUOTA | Parts::SMS
        );
        let mut moved = before.clone();
        moved.ip_address = Some("10.0.0.9".into());
        assert_eq!(due_from_list(&before, &moved, false), Parts::CONNECTIVITY);
    }

    #[test]
    fn with_the_streamer_only_what_the_stream_cannot_tell_is_due() {
        let before = entry(1000, 50);
        assert_eq!(due_from_list(&before, &entry(900, 50), true), Parts::NONE);
        assert_eq!(due_from_list(&before, &entry(5000, 50), true), Parts::DATA_QUOTA);
        assert_eq!(due_from_list(&before, &entry(1000, 49), true), Parts::SMS);
        let mut level = entry(100, 50);
        level.data_status = Some(1);
        assert_eq!(due_from_list(&before, &level, true), Parts::DATA_QUOTA);
        let mut moved = before.clone();
        moved.ip_address = Some("10.0.0.9".into());
        assert_eq!(due_from_list(&before, &moved, true), Parts::NONE);
    }

    #[test]
    fn an_empty_set_means_every_part_and_first_refreshes_are_spread() {
        assert_eq!(Parts::NONE.or_all(), Parts::ALL);
        assert_eq!(Parts::USAGE.or_all(), Parts::USAGE);
        assert_eq!(Parts::ALL.names().len(), 5);
        let day = std::time::Duration::from_secs(86_400);
        let offsets: std::collections::BTreeSet<i64> = (0..100)
            .map(|n| spread(&format!("89882806600{n:08}"), day).num_seconds())
            .collect();
        assert!(offsets.len() > 90 && offsets.iter().all(|s| (0..86_400).contains(s)));
    }
}
