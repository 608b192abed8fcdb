//! The usage part of a per-SIM refresh: the recent days' totals from `GET …/usage`.
//!
//! **Today** (UTC) the day's total on the SIM is the larger of the polled total and what was
//! recorded (the Data Streamer's records arrive before the provider's daily total moves, so
//! each source is a lower bound and neither adds to the other). **A closed day** (before
//! today) is reconciled: the provider's polled total is the reference and replaces what was
//! recorded, down as well as up (`ReconcileUsage` → `UsageReconciled` with the difference);
//! from then on streamed records of that day change nothing (the domain ignores `RecordUsage`
//! of a reconciled period), and a later poll showing another total moves the reference.

use chrono::{DateTime, Duration as ChronoDuration, NaiveTime, Utc};
use domain::quota::THRESHOLDS;
use domain::{Iccid, Quota, QuotaCommand, QuotaKind, Sim, SimCommand};

use super::detail::settler;
use super::{Parts, Poller};
use crate::convert;
use crate::error::SyncError;
use crate::issue::{quota_id, Cause};
use crate::last_seen::SyncedSim;
use crate::observe::UsageDay;

impl Poller {
    /// Returns the events stored and the parts the usage shows moved since the SIM's last usage
    /// call (data used → the data quota; SMS → the SMS quota and, for MO messages, the SMS
    /// list). A SIM's first usage call shows no movement: its quotas come with its first full
    /// refresh.
    pub(super) async fn refresh_usage(
        &self,
        client: &once_client::OnceClient,
        iccid: &Iccid,
        synced: &mut SyncedSim,
        now: DateTime<Utc>,
        refused: &mut Vec<String>,
    ) -> Result<(usize, Parts), SyncError> {
        let mut events = 0;
        let mut moved = Parts::NONE;
        let first = synced.usage_as_of.is_none() && synced.usage_days.is_empty();
        let mut settle = settler(&mut events, refused);
        let today = now.date_naive();
        let start = today - ChronoDuration::days(i64::from(self.schedule.usage_days.saturating_sub(1)));
        let usage = client.usage(iccid.as_str(), start, today).await?;
        let mut days = synced.usage_days.clone();
        let mut data_growth = Vec::new();
        for (date, mut day) in convert::usage_days(&usage) {
            let closed = date < today;
            let known = days.get(&date);
            let unchanged = known.is_some_and(|k| k.totals() == day.totals() && (k.closed || !closed));
            if unchanged || day == UsageDay::default() && known.is_none() {
                continue;
            }
            self.metrics
                .difference(if closed { "usage_reconciled" } else { "usage" });
            let before = known.copied().unwrap_or_default();
            if !first {
                if day.data_bytes > before.data_bytes {
                    data_growth.push((date, before.data_bytes, day.data_bytes));
                }
                if day.sms_mo > before.sms_mo {
                    moved |= Parts::SMS_QUOTA | Parts::SMS;
                }
                if day.sms_mt > before.sms_mt {
                    moved |= Parts::SMS_QUOTA;
                }
            }
            let period_start = date.and_time(NaiveTime::MIN).and_utc();
            let period_end = period_start + ChronoDuration::days(1);
            let polled = day.totals();
            let decide = |sim: &Sim| {
                if closed {
                    return vec![SimCommand::ReconcileUsage {
                        period_start,
                        period_end,
                        data_bytes: polled[0],
                        sms_mo: polled[1],
                        sms_mt: polled[2],
                    }];
                }
                let recorded = sim
                    .usage_for(period_start)
                    .map_or([0; 3], |p| [p.data_bytes, p.sms_mo, p.sms_mt]);
                let total = [0, 1, 2].map(|i| recorded[i].max(polled[i]));
                vec![SimCommand::RecordUsage {
                    period_start,
                    period_end,
                    data_bytes: total[0],
                    sms_mo: total[1],
                    sms_mt: total[2],
                }]
            };
            day.closed = closed;
            settle(
                self.issuer
                    .issue_with::<Sim>(
                        iccid.as_str(),
                        iccid,
                        &("usage", date, day),
                        Cause::default(),
                        decide,
                    )
                    .await,
            )?;
            days.insert(date, day);
        }
        // Only the days a usage call can still change are worth keeping.
        days.retain(|date, _| *date >= start - ChronoDuration::days(1));
        synced.usage_days = days;
        for (date, from, to) in data_growth {
            match self.consume_data(iccid, date, from, to).await? {
                Consumed::Recorded(outcome) => settle(outcome)?,
                Consumed::AskTheProvider => moved |= Parts::DATA_QUOTA,
                Consumed::NoQuotaYet => {}
            }
        }
        drop(settle);
        Ok((events, moved))
    }

    /// Data the usage call shows used since the SIM's last usage call (a day's total grew from
    /// `from` to `to` bytes) comes off the data quota without a quota call: 1NCE's list shows
    /// only the quota's level, and a quota call per SIM whose usage grew doubled the usage
    /// round of an active fleet (every SIM that used data since its last round cost two
    /// calls). The provider's figure still comes with the next quota call (a level crossing
    /// in the list, the safety net), and is the reference: it replaces this estimate. The
    /// quota is asked for at once instead while a top-up is pending (its confirmation carries
    /// the new volume) and when the estimate crosses a level (80 %, 100 % used), so a
    /// threshold or exhaustion is the provider's word. A quota the platform does not know yet
    /// (`SYNC_FIRST_REFRESH=usage`) is left alone: the SIM's first full refresh brings the
    /// provider's figure, this use included; asking for it here made every active SIM's usage
    /// call two calls until then.
    ///
    /// Keyed by (day, from, to): a refresh retried after a crash that already recorded it
    /// stores nothing again.
    async fn consume_data(
        &self,
        iccid: &Iccid,
        date: chrono::NaiveDate,
        from: u64,
        to: u64,
    ) -> Result<Consumed, SyncError> {
        let quota_id = quota_id(iccid, QuotaKind::Data);
        let quota = self.issuer.store().load::<Quota>(&quota_id).await?.state;
        let used = to - from;
        let estimate = quota.remaining().saturating_sub(used);
        let crosses_a_level = THRESHOLDS.iter().any(|threshold| {
            let level = |remaining: u64| {
                u128::from(quota.total() - remaining) * 100
                    >= u128::from(*threshold) * u128::from(quota.total())
            };
            !level(quota.remaining()) && level(estimate)
        });
        if !quota.is_assigned() {
            return Ok(Consumed::NoQuotaYet);
        }
        if quota.pending_top_up().is_some() || crosses_a_level {
            return Ok(Consumed::AskTheProvider);
        }
        let key = format!("sync:usage-consumption:{iccid}:{date}:{from}-{to}");
        let outcome = self
            .issuer
            .issue_once::<Quota>(
                &quota_id,
                iccid,
                &key,
                &("usage_consumption", date, from, to),
                |q| {
                    vec![QuotaCommand::RecordConsumption {
                        remaining: q.remaining().saturating_sub(used),
                        at: Utc::now(),
                    }]
                },
            )
            .await;
        Ok(Consumed::Recorded(outcome))
    }
}

/// What became of data used according to the usage call.
enum Consumed {
    /// Taken off the platform's data quota (or refused by it).
    Recorded(Result<usize, SyncError>),
    /// The data quota is to be read from the provider in this refresh.
    AskTheProvider,
    /// The platform has no data quota for the SIM yet; its first full refresh brings it.
    NoQuotaYet,
}
