//! What the Data Streamer reports, noted as it happens: usage (one record per data session
//! or usage added, one per SMS) and events, each with its record id. The streamer's delivery
//! tasks take them from here (`crate::stream`); when no stream is configured nothing is kept.
//!
//! Ids come from one counter for both streams, started from the real time at start (µs
//! since the epoch), so they are unique across streams and across restarts of the simulator,
//! and a resent record keeps its id.

use std::collections::VecDeque;

use chrono::{DateTime, Duration, NaiveDate, Utc};

use super::quota::{Quota, QuotaKind};
use super::records::{DayUsage, SimRecord};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Traffic {
    Data { rx: u64, tx: u64 },
    SmsMo,
    SmsMt,
}

#[derive(Clone, Debug)]
pub struct UsageEntry {
    pub id: u64,
    pub iccid: u64,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub traffic: Traffic,
}

#[derive(Clone, Debug, PartialEq)]
pub enum EventKind {
    Generic,
    /// A new location (operator, country); `rat` when the radio access changed too.
    UpdateLocation,
    CreatePdp {
        context: u64,
    },
    UpdatePdp {
        context: u64,
    },
    /// `volume` (rx, tx bytes) when the session's usage is known.
    DeletePdp {
        context: u64,
        volume: Option<(u64, u64)>,
    },
    Activated,
    Suspended,
    ThresholdReached {
        kind: QuotaKind,
        remaining: u64,
        total: u64,
    },
    UsedUp {
        kind: QuotaKind,
        total: u64,
    },
    Assigned {
        kind: QuotaKind,
        added: u64,
        total: u64,
        expiry: DateTime<Utc>,
    },
    Expired {
        kind: QuotaKind,
        total: u64,
    },
}

#[derive(Clone, Debug)]
pub struct EventEntry {
    pub id: u64,
    pub iccid: u64,
    pub at: DateTime<Utc>,
    pub kind: EventKind,
    pub text: String,
    pub warning: bool,
    pub alert: bool,
}

pub struct Journal {
    on: bool,
    cap: usize,
    next_id: u64,
    pub usage: VecDeque<UsageEntry>,
    pub events: VecDeque<EventEntry>,
    /// Entries dropped because a queue held `cap` already (oldest first).
    pub dropped_usage: u64,
    pub dropped_events: u64,
}

impl Journal {
    pub fn new(on: bool, cap: usize) -> Self {
        Self {
            on,
            cap: cap.max(1),
            next_id: u64::try_from(Utc::now().timestamp_micros()).unwrap_or(1),
            usage: VecDeque::new(),
            events: VecDeque::new(),
            dropped_usage: 0,
            dropped_events: 0,
        }
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn push_usage(&mut self, iccid: u64, start: DateTime<Utc>, end: DateTime<Utc>, traffic: Traffic) {
        let id = self.id();
        if self.usage.len() >= self.cap {
            self.usage.pop_front();
            self.dropped_usage += 1;
        }
        self.usage.push_back(UsageEntry {
            id,
            iccid,
            start,
            end: end.max(start),
            traffic,
        });
    }

    /// Usage recorded on `date`: one data record over `span` (kept within that date, so the
    /// receiver files it on the same day as the daily totals do) and one record per SMS.
    pub fn usage(
        &mut self,
        iccid: u64,
        date: NaiveDate,
        add: &DayUsage,
        span: (DateTime<Utc>, DateTime<Utc>),
    ) {
        if !self.on {
            return;
        }
        let (start, end) = (on_date(date, span.0), on_date(date, span.1));
        if add.rx_bytes + add.tx_bytes > 0 {
            let traffic = Traffic::Data {
                rx: add.rx_bytes,
                tx: add.tx_bytes,
            };
            self.push_usage(iccid, start, end, traffic);
        }
        for _ in 0..add.sms_mo {
            self.push_usage(iccid, end, end, Traffic::SmsMo);
        }
        for _ in 0..add.sms_mt {
            self.push_usage(iccid, end, end, Traffic::SmsMt);
        }
    }

    pub fn event(&mut self, sim: &SimRecord, at: DateTime<Utc>, kind: EventKind, text: &str) {
        if !self.on {
            return;
        }
        let id = self.id();
        let (warning, alert) = match &kind {
            EventKind::UsedUp { .. } | EventKind::Expired { .. } => (true, true),
            EventKind::ThresholdReached { .. } => (true, false),
            _ => (false, false),
        };
        if self.events.len() >= self.cap {
            self.events.pop_front();
            self.dropped_events += 1;
        }
        self.events.push_back(EventEntry {
            id,
            iccid: sim.iccid,
            at,
            kind,
            text: text.to_owned(),
            warning,
            alert,
        });
    }

    /// An event the SIM's own log (`/events`) also shows, by its text there.
    pub fn logged_event(&mut self, sim: &SimRecord, at: DateTime<Utc>, text: &str) {
        if !self.on {
            return;
        }
        let quota_expired = |kind| EventKind::Expired {
            kind,
            total: quota(sim, kind).total,
        };
        let assigned = |kind| {
            let q = quota(sim, kind);
            EventKind::Assigned {
                kind,
                added: q.last_volume_added,
                total: q.total,
                expiry: q.expiry,
            }
        };
        let kinds = if text.starts_with("Status of SIM changed") {
            vec![if text.ends_with("'Activated'") {
                EventKind::Activated
            } else {
                EventKind::Suspended
            }]
        } else if text == "Update location" {
            vec![EventKind::UpdateLocation]
        } else if text == "Delete PDP Context" {
            vec![EventKind::DeletePdp {
                context: pdp_context(sim.iccid, at),
                volume: None,
            }]
        } else if text == "Data and SMS quota expired" || text == "Data quota expired" {
            // 1NCE publishes no "SMS quota expired": an SMS quota's expiry alone is Generic.
            vec![quota_expired(QuotaKind::Data)]
        } else if text.contains("op up of data and SMS volume") {
            vec![assigned(QuotaKind::Data), assigned(QuotaKind::Sms)]
        } else {
            vec![EventKind::Generic]
        };
        for kind in kinds {
            self.event(sim, at, kind, text);
        }
    }

    /// A data session from `start` to `end` that used `rx`/`tx` bytes: its PDP context is
    /// created and deleted around it.
    pub fn session(&mut self, sim: &SimRecord, start: DateTime<Utc>, end: DateTime<Utc>, rx: u64, tx: u64) {
        if !self.on {
            return;
        }
        let context = pdp_context(sim.iccid, start);
        self.event(sim, start, EventKind::CreatePdp { context }, "Create PDP Context");
        let volume = Some((rx, tx));
        self.event(
            sim,
            end,
            EventKind::DeletePdp { context, volume },
            "Delete PDP Context",
        );
    }

    /// Threshold and used-up events for a quota whose levels were `before` (threshold
    /// reached, exceeded) and are now what `sim` shows.
    pub fn quota_levels(
        &mut self,
        sim: &SimRecord,
        kind: QuotaKind,
        before: (bool, bool),
        at: DateTime<Utc>,
    ) {
        if !self.on {
            return;
        }
        let q = quota(sim, kind);
        let name = match kind {
            QuotaKind::Data => "Data",
            QuotaKind::Sms => "SMS",
        };
        if !before.0 && q.threshold_reached.is_some() {
            let (remaining, total) = (q.remaining, q.total);
            let event = EventKind::ThresholdReached {
                kind,
                remaining,
                total,
            };
            self.event(sim, at, event, &format!("{name} quota threshold reached"));
        }
        if !before.1 && q.exceeded.is_some() && !q.expired {
            let event = EventKind::UsedUp { kind, total: q.total };
            self.event(sim, at, event, &format!("{name} quota used up"));
        }
    }
}

pub fn levels(q: &Quota) -> (bool, bool) {
    (q.threshold_reached.is_some(), q.exceeded.is_some())
}

fn quota(sim: &SimRecord, kind: QuotaKind) -> &Quota {
    super::usage::quota_of(sim, kind)
}

/// A PDP context id, the same for a session's create and delete events.
pub fn pdp_context(iccid: u64, start: DateTime<Utc>) -> u64 {
    110_000_000 + crate::format::mix(iccid ^ start.timestamp_millis() as u64) % 10_000_000
}

/// `t` moved into `date` (its first or last second when outside).
fn on_date(date: NaiveDate, t: DateTime<Utc>) -> DateTime<Utc> {
    let first = date.and_hms_opt(0, 0, 0).map(|d| d.and_utc()).unwrap_or(t);
    let last = first + Duration::seconds(86_399);
    t.clamp(first, last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn usage_stays_on_its_date_and_off_means_nothing() {
        let mut journal = Journal::new(true, 10);
        let date = NaiveDate::from_ymd_opt(2026, 3, 10).unwrap();
        let t = Utc.with_ymd_and_hms(2026, 3, 11, 0, 0, 0).unwrap();
        let add = DayUsage {
            rx_bytes: 7,
            tx_bytes: 3,
            sms_mo: 2,
            sms_mt: 1,
        };
        journal.usage(1, date, &add, (t - Duration::seconds(30), t));
        assert_eq!(journal.usage.len(), 4);
        let data = &journal.usage[0];
        assert_eq!(data.traffic, Traffic::Data { rx: 7, tx: 3 });
        assert_eq!(data.end, t - Duration::seconds(1), "kept on the usage's date");
        assert_eq!(data.start, t - Duration::seconds(30));
        let ids: Vec<u64> = journal.usage.iter().map(|e| e.id).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        // The cap drops the oldest.
        for _ in 0..3 {
            journal.usage(1, date, &add, (t, t));
        }
        assert_eq!(journal.usage.len(), 10);
        assert_eq!(journal.dropped_usage, 6);

        let mut off = Journal::new(false, 10);
        off.usage(1, date, &add, (t, t));
        assert!(off.usage.is_empty());
    }
}
