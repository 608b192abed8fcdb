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
/// 1NCE's list shows each quota's **total** (`current_quota`: "the overall set data quota")
/// and its level (`quota_status`: more than 20 % left, less, none), not what is left, so
/// traffic shows in the list only when a level is crossed or the total changes (a top-up or
/// an assignment); the usage round (`SYNC_USAGE_INTERVAL_SECS`) covers the rest.
///
/// Without the Data Streamer: the data quota moved → usage and the data quota; the SMS quota
/// moved → usage, the SMS quota and the SMS list (an MO message is possible); the status or IP
/// address changed → connectivity (and the network events). With the Data Streamer usage and
/// connectivity arrive streamed: a quota that moved → that quota only (its new total or
/// level); an SMS quota level crossed → also the SMS list (MO messages use it up).
pub fn due_from_list(previous: &ListEntry, entry: &ListEntry, streamer: bool) -> Parts {
    let mut due = Parts::NONE;
    let data_moved = previous.data_left != entry.data_left || previous.data_status != entry.data_status;
    let sms_moved = previous.sms_left != entry.sms_left || previous.sms_status != entry.sms_status;
    if data_moved {
        due |= Parts::DATA_QUOTA;
    }
    if sms_moved {
        due |= Parts::SMS_QUOTA;
    }
    if streamer {
        if previous.sms_status != entry.sms_status {
            due |= Parts::SMS;
        }
        return due;
    }
    if data_moved || sms_moved {
        due |= Parts::USAGE;
    }
    if sms_moved {
        due |= Parts::SMS;
    }
    if previous.status != entry.status || previous.ip_address != entry.ip_address {
        due |= Parts::CONNECTIVITY;
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
        assert_eq!(due_from_list(&before, &entry(5000, 50), true), Parts::DATA_QUOTA);
        assert_eq!(due_from_list(&before, &entry(1000, 250), true), Parts::SMS_QUOTA);
        let mut level = entry(1000, 50);
        level.sms_status = Some(1);
        assert_eq!(
            due_from_list(&before, &level, true),
            Parts::SMS_QUOTA | Parts::SMS
        );
        let mut moved = before.clone();
        moved.ip_address = Some("10.0.0.9".into());
        moved.status = Some("Disabled".into());
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
