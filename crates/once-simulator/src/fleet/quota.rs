//! A data or SMS quota: volume left of a total, an expiry, and the 1NCE status levels
//! (0: more than 20 % left, 1: less than 20 % left, 2: nothing left).

use chrono::{DateTime, Utc};

/// The platform's own kind (`data`, `sms`, as 1NCE's paths and answers spell them).
pub use domain::QuotaKind;

/// The threshold 1NCE reports (`threshold_percentage`) and uses for status 1.
pub const THRESHOLD_PERCENT: u64 = 20;

/// Units: bytes for data, messages for SMS.
#[derive(Clone, Debug)]
pub struct Quota {
    pub total: u64,
    pub remaining: u64,
    pub expiry: DateTime<Utc>,
    pub expired: bool,
    pub last_volume_added: u64,
    pub last_status_change: DateTime<Utc>,
    pub threshold_reached: Option<DateTime<Utc>>,
    pub exceeded: Option<DateTime<Utc>>,
}

impl Quota {
    pub fn new(total: u64, remaining: u64, expiry: DateTime<Utc>, created: DateTime<Utc>) -> Self {
        let mut quota = Self {
            total,
            remaining: remaining.min(total),
            expiry,
            expired: false,
            last_volume_added: total,
            last_status_change: created,
            threshold_reached: None,
            exceeded: None,
        };
        quota.refresh(created);
        quota
    }

    pub fn status_id(&self) -> u8 {
        if self.expired || self.remaining == 0 {
            2
        } else if self.remaining.saturating_mul(100) < self.total.saturating_mul(THRESHOLD_PERCENT) {
            1
        } else {
            0
        }
    }

    /// Uses up to `amount`; returns what was used (a quota never goes below zero: 1NCE stops
    /// the service when it is exhausted).
    pub fn consume(&mut self, amount: u64, at: DateTime<Utc>) -> u64 {
        if self.expired {
            return 0;
        }
        let used = amount.min(self.remaining);
        self.remaining -= used;
        self.refresh(at);
        used
    }

    /// Sets the share used to `used_percent` of the total.
    pub fn set_used_percent(&mut self, used_percent: f64, at: DateTime<Utc>) {
        let used = ((self.total as f64) * used_percent.clamp(0.0, 100.0) / 100.0).round() as u64;
        self.remaining = self.total.saturating_sub(used);
        self.refresh(at);
    }

    pub fn add(&mut self, amount: u64, at: DateTime<Utc>) {
        self.total += amount;
        self.remaining += amount;
        self.last_volume_added = amount;
        self.last_status_change = at;
        self.refresh(at);
    }

    pub fn expire(&mut self, at: DateTime<Utc>) {
        if self.expired {
            return;
        }
        self.expired = true;
        self.remaining = 0;
        self.expiry = self.expiry.min(at);
        self.refresh(at);
        self.last_status_change = at;
    }

    /// Keeps the dates in step with the level: the threshold date is set when the quota first
    /// drops below 20 %, the exceeded date when it reaches zero; both clear when a top-up lifts
    /// it back above the threshold. A change of level is a status change.
    fn refresh(&mut self, at: DateTime<Utc>) {
        let before = (self.threshold_reached.is_some(), self.exceeded.is_some());
        match self.status_id() {
            0 => {
                self.threshold_reached = None;
                self.exceeded = None;
            }
            1 => {
                self.threshold_reached.get_or_insert(at);
                self.exceeded = None;
            }
            _ => {
                self.threshold_reached.get_or_insert(at);
                self.exceeded.get_or_insert(at);
            }
        }
        if before != (self.threshold_reached.is_some(), self.exceeded.is_some()) {
            self.last_status_change = at;
        }
    }
}

pub fn status_description(id: u8) -> &'static str {
    match id {
        0 => "OK",
        1 => "THRESHOLD_REACHED",
        _ => "EXHAUSTED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn levels_and_dates_follow_consumption_and_top_ups() {
        let t0 = Utc::now();
        let mut q = Quota::new(500, 500, t0 + Duration::days(365), t0);
        assert_eq!(q.status_id(), 0);
        assert_eq!(q.consume(401, t0), 401);
        assert_eq!(q.status_id(), 1, "99 of 500 left is below 20 %");
        assert_eq!(q.threshold_reached, Some(t0));
        let t1 = t0 + Duration::hours(1);
        assert_eq!(q.consume(1000, t1), 99, "never below zero");
        assert_eq!((q.status_id(), q.exceeded), (2, Some(t1)));
        q.add(500, t1);
        assert_eq!((q.remaining, q.total, q.status_id()), (500, 1000, 0));
        assert_eq!((q.threshold_reached, q.exceeded), (None, None));
        q.expire(t1);
        assert_eq!((q.remaining, q.status_id()), (0, 2));
        assert_eq!(q.consume(1, t1), 0);
    }
}
