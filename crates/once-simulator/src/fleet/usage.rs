//! Usage and quotas: recording usage per day (and consuming the quotas by it), setting and
//! expiring quotas, top-ups (ordered and automatic), and answering usage for a date range.

use chrono::{DateTime, NaiveDate, Utc};

use super::changes::push_event;
use super::journal::{levels, Journal};
use super::quota::{Quota, QuotaKind};
use super::records::{DayUsage, SimRecord};
use super::{Fleet, FleetError};

/// Usage is answered for at most this far back; older days are dropped.
pub const USAGE_MONTHS: u32 = 6;

impl Fleet {
    /// Records usage on `date` and consumes the quotas by it (as far as they reach).
    pub fn add_usage(
        &mut self,
        iccid: u64,
        date: NaiveDate,
        data_bytes: u64,
        sms_mo: u64,
        sms_mt: u64,
    ) -> Result<(), FleetError> {
        let now = self.now;
        let (topup_data, topup_sms) = (self.topup_data_bytes, self.topup_sms);
        let (sim, journal) = self.sim_and_journal(iccid)?;
        // Downstream dominates for IoT devices polling their backend.
        let rx = data_bytes - data_bytes * 3 / 10;
        record_usage(
            sim,
            journal,
            date,
            DayUsage {
                rx_bytes: rx,
                tx_bytes: data_bytes - rx,
                sms_mo,
                sms_mt,
            },
            (now, now),
        );
        consume(sim, journal, QuotaKind::Data, now, |q| {
            q.consume(data_bytes, now);
        });
        consume(sim, journal, QuotaKind::Sms, now, |q| {
            q.consume(sms_mo + sms_mt, now);
        });
        auto_top_up(sim, journal, topup_data, topup_sms, now);
        Ok(())
    }

    pub fn consume_quota_to(
        &mut self,
        iccid: u64,
        kind: QuotaKind,
        used_percent: f64,
    ) -> Result<(), FleetError> {
        let now = self.now;
        let (sim, journal) = self.sim_and_journal(iccid)?;
        consume(sim, journal, kind, now, |q| q.set_used_percent(used_percent, now));
        Ok(())
    }

    pub fn expire_quota(&mut self, iccid: u64, kind: QuotaKind) -> Result<(), FleetError> {
        let now = self.now;
        let (sim, journal) = self.sim_and_journal(iccid)?;
        quota_mut(sim, kind).expire(now);
        let what = match kind {
            QuotaKind::Data => "Data",
            QuotaKind::Sms => "SMS",
        };
        push_event(
            sim,
            journal,
            now,
            &format!("{what} quota expired"),
            "Warning",
            true,
        );
        Ok(())
    }

    /// The standard top-up product for each SIM, as one order; refused as a whole when a SIM
    /// is unknown or its quota has expired (1NCE then only allows an extension).
    pub fn top_up(&mut self, iccids: &[u64]) -> Result<u64, FleetError> {
        let mut expired = Vec::new();
        for iccid in iccids {
            let sim = self.sim(*iccid)?;
            if sim.data.expired || sim.sms.expired {
                expired.push(iccid.to_string());
            }
        }
        if !expired.is_empty() {
            return Err(FleetError::Expired(expired.join(", ")));
        }
        let now = self.now;
        let (data, sms) = (self.topup_data_bytes, self.topup_sms);
        for iccid in iccids {
            let (sim, journal) = self.sim_and_journal(*iccid)?;
            sim.data.add(data, now);
            sim.sms.add(sms, now);
            sim.api_top_ups += 1;
            push_event(
                sim,
                journal,
                now,
                "Top up of data and SMS volume ordered",
                "Info",
                false,
            );
        }
        let order = self.next_order_id;
        self.next_order_id += 1;
        Ok(order)
    }

    /// All or nothing; an expired SIM refuses it with 422, as the documents say.
    pub fn set_auto_top_up(&mut self, iccids: &[u64], enabled: bool) -> Result<(), FleetError> {
        for iccid in iccids {
            let sim = self.sim(*iccid)?;
            if sim.data.expired || sim.sms.expired {
                return Err(FleetError::Expired(iccid.to_string()));
            }
        }
        for iccid in iccids {
            self.sim_mut(*iccid)?.auto_topup = enabled;
        }
        Ok(())
    }

    pub fn usage_between(
        &self,
        iccid: u64,
        start: NaiveDate,
        end: NaiveDate,
    ) -> Result<Vec<(NaiveDate, DayUsage)>, FleetError> {
        let sim = self.sim(iccid)?;
        Ok(start
            .iter_days()
            .take_while(|d| *d <= end)
            .map(|d| {
                let usage = sim
                    .extra
                    .as_ref()
                    .and_then(|e| e.usage.get(&d).copied())
                    .unwrap_or_default();
                (d, usage)
            })
            .collect())
    }

    /// The earliest day usage is answered for.
    pub fn usage_horizon(&self) -> NaiveDate {
        self.now
            .date_naive()
            .checked_sub_months(chrono::Months::new(USAGE_MONTHS))
            .unwrap_or(NaiveDate::MIN)
    }
}

pub fn quota_of(sim: &SimRecord, kind: QuotaKind) -> &Quota {
    match kind {
        QuotaKind::Data => &sim.data,
        QuotaKind::Sms => &sim.sms,
    }
}

fn quota_mut(sim: &mut SimRecord, kind: QuotaKind) -> &mut Quota {
    match kind {
        QuotaKind::Data => &mut sim.data,
        QuotaKind::Sms => &mut sim.sms,
    }
}

/// Adds usage to the SIM's day and notes it for the Data Streamer over `span` (start, end:
/// the data session, or the moment usage was added); the span's end is "now" for pruning.
pub(super) fn record_usage(
    sim: &mut SimRecord,
    journal: &mut Journal,
    date: NaiveDate,
    add: DayUsage,
    span: (DateTime<Utc>, DateTime<Utc>),
) {
    journal.usage(sim.iccid, date, &add, span);
    let now = span.1;
    let usage = &mut sim.extra_mut().usage;
    let day = usage.entry(date).or_default();
    day.rx_bytes += add.rx_bytes;
    day.tx_bytes += add.tx_bytes;
    day.sms_mo += add.sms_mo;
    day.sms_mt += add.sms_mt;
    // Days beyond what the API answers are dropped, so a long-running simulator stays small.
    let horizon = now
        .date_naive()
        .checked_sub_months(chrono::Months::new(USAGE_MONTHS + 1))
        .unwrap_or(NaiveDate::MIN);
    while usage.first_key_value().is_some_and(|(d, _)| *d < horizon) {
        usage.pop_first();
    }
}

/// 1NCE's auto top-up: an exhausted data quota is topped up with the standard product.
pub(super) fn auto_top_up(
    sim: &mut SimRecord,
    journal: &mut Journal,
    data: u64,
    sms: u64,
    now: DateTime<Utc>,
) {
    if sim.auto_topup && !sim.data.expired && sim.data.remaining == 0 {
        sim.data.add(data, now);
        sim.sms.add(sms, now);
        push_event(
            sim,
            journal,
            now,
            "Auto top up of data and SMS volume",
            "Info",
            false,
        );
    }
}

/// Changes a quota by `f` (consumption) and notes the threshold and used-up levels it reached
/// for the Data Streamer.
pub(super) fn consume<T>(
    sim: &mut SimRecord,
    journal: &mut Journal,
    kind: QuotaKind,
    at: DateTime<Utc>,
    f: impl FnOnce(&mut Quota) -> T,
) -> T {
    let before = levels(quota_of(sim, kind));
    let answer = f(quota_mut(sim, kind));
    journal.quota_levels(sim, kind, before, at);
    answer
}
