//! The per-SIM refresh: the SIMs whose list entry changed and the round-robin over the rest,
//! each SIM's connectivity, quotas, recent usage and SMS compared with what was last seen.

use std::collections::BTreeMap;

use chrono::{Duration as ChronoDuration, NaiveTime, Utc};
use domain::{Iccid, Quota, QuotaCommand, QuotaKind, Sim, SimCommand, Sms, SmsCommand};
use futures::StreamExt;
use once_client::Priority;

use super::{mo_message_id, Issued, Poller, SweepReport};
use crate::convert;
use crate::error::SyncError;
use crate::issue::{quota_id, Cause};
use crate::observe::UsageDay;

/// SIMs refreshed at once.
const REFRESH_CONCURRENCY: usize = 4;

impl Poller {
    /// Per-SIM refresh of the SIMs whose list entry changed (up to `limit`).
    pub async fn refresh_due(&self, limit: i64, priority: Priority) -> Result<SweepReport, SyncError> {
        let mut report = SweepReport::default();
        while (report.sims_changed as i64) < limit {
            let batch = self.last_seen.detail_due(limit.min(100)).await?;
            if batch.is_empty() {
                break;
            }
            let (events, failed) = self.refresh_many(batch.clone(), priority).await?;
            report.sims_changed += batch.len() as u64;
            report.events_recorded += events;
            report.refused += failed;
        }
        self.metrics.poll("changed", "complete");
        report.complete = true;
        Ok(report)
    }

    /// The round-robin: up to `max_sims` SIMs whose last refresh is older than the schedule's
    /// detail interval, least recently refreshed first.
    pub async fn refresh_round_robin(&self, max_sims: i64) -> Result<SweepReport, SyncError> {
        let before = Utc::now() - ChronoDuration::from_std(self.schedule.detail_interval).unwrap_or_default();
        let stale = self.last_seen.stale(before, max_sims).await?;
        let mut report = SweepReport {
            sims_seen: stale.len() as u64,
            ..SweepReport::default()
        };
        let (events, failed) = self.refresh_many(stale, Priority::Background).await?;
        report.events_recorded = events;
        report.refused = failed;
        report.complete = true;
        self.metrics.poll("round_robin", "complete");
        Ok(report)
    }

    /// Refreshes several SIMs at once (the provider's latency would otherwise leave the call
    /// budget unused; the budget itself still paces the calls). A SIM whose calls fail is put
    /// at the back of the round-robin so one bad SIM cannot stall the others; three failures in
    /// a row mean the provider is in trouble and end the sweep. Returns (events, failed SIMs).
    async fn refresh_many(&self, iccids: Vec<String>, priority: Priority) -> Result<(u64, u64), SyncError> {
        let mut results = futures::stream::iter(iccids)
            .map(|iccid| async move {
                let outcome = self.refresh_sim(&iccid, priority).await;
                (iccid, outcome)
            })
            .buffer_unordered(REFRESH_CONCURRENCY);
        let (mut events, mut failed, mut in_a_row) = (0, 0, 0);
        while let Some((iccid, outcome)) = results.next().await {
            match outcome {
                Ok(n) => {
                    events += n as u64;
                    in_a_row = 0;
                }
                Err(error @ (SyncError::Database(_) | SyncError::Store(_))) => return Err(error),
                Err(error) => {
                    failed += 1;
                    in_a_row += 1;
                    if in_a_row >= 3 {
                        return Err(error);
                    }
                    tracing::warn!(%iccid, %error, "per-SIM refresh failed; the SIM goes to the back of the queue");
                    self.last_seen.mark_refreshed(&iccid).await?;
                }
            }
        }
        Ok((events, failed))
    }

    /// Connectivity, both quotas, recent usage and SMS of one SIM; records what changed and
    /// returns how many events were stored. A SIM the platform refuses (e.g. terminated) is
    /// marked fresh so it does not come back every sweep.
    pub async fn refresh_sim(&self, iccid: &str, priority: Priority) -> Result<usize, SyncError> {
        let Some(mut synced) = self.last_seen.get(iccid).await? else {
            return Ok(0);
        };
        let iccid = Iccid::parse(iccid).map_err(|e| SyncError::decode("a stored ICCID", e))?;
        let client = self.client.with_priority(priority);
        let mut events = 0;
        let mut refused = Vec::new();
        let mut settle = |outcome: Result<usize, SyncError>| -> Result<(), SyncError> {
            match Issued::of(outcome)? {
                Issued::Stored(n) => events += n,
                Issued::Refused(refusal) => refused.push(refusal.to_string()),
            }
            Ok(())
        };
        let now = Utc::now();

        // Connectivity.
        let status = client.connectivity(iccid.as_str()).await?;
        let view = convert::connectivity(&status, synced.list_entry.ip_address.as_deref());
        if synced.connectivity.as_ref() != Some(&view) {
            self.metrics.difference("connectivity");
            let command = SimCommand::RecordConnectivity {
                network: view.network.clone(),
                country: view.country.clone(),
                rat: view.rat.clone(),
                ip_address: view.ip_address.clone(),
                at: now,
            };
            settle(
                self.record_on_sim(&iccid, vec![command], &("connectivity", &view))
                    .await,
            )?;
            synced.connectivity = Some(view);
        }

        // Network events (streamer off), before the quotas: a quota event marks them due.
        settle(
            self.network_events(&client, &iccid, &mut synced)
                .await
                .map(|new| new as usize),
        )?;

        // Quotas.
        for kind in [QuotaKind::Data, QuotaKind::Sms] {
            // While a top-up is pending its confirmation carries the new volume; an assignment
            // seen first would count the top-up twice. The next refresh catches up.
            let platform = self
                .issuer
                .store()
                .load::<Quota>(&quota_id(&iccid, kind))
                .await?
                .state;
            if platform.pending_top_up().is_some() {
                continue;
            }
            let quota = client.quota(iccid.as_str(), kind).await?;
            let mut view = convert::quota(&quota);
            let previous = match kind {
                QuotaKind::Data => synced.data_quota.clone(),
                QuotaKind::Sms => synced.sms_quota.clone(),
            };
            let mut commands = Vec::new();
            if previous.as_ref().is_none_or(|p| !p.same_assignment(&view)) {
                self.metrics.difference(match kind {
                    QuotaKind::Data => "data_quota",
                    QuotaKind::Sms => "sms_quota",
                });
                commands.push(QuotaCommand::Assign {
                    iccid: iccid.clone(),
                    kind,
                    total: view.total,
                    remaining: view.remaining.min(view.total),
                    expiry_date: view.expiry_date,
                    at: now,
                });
            }
            view.expiry_reported = previous
                .as_ref()
                .is_some_and(|p| p.expiry_reported && p.expiry_date == view.expiry_date);
            if view.expiry_date.is_some_and(|expiry| expiry <= now) && !view.expiry_reported {
                commands.push(QuotaCommand::Expire { at: now });
                view.expiry_reported = true;
            }
            if !commands.is_empty() {
                settle(
                    self.record::<Quota>(&quota_id(&iccid, kind), &iccid, commands, &("quota", &view))
                        .await,
                )?;
            }
            match kind {
                QuotaKind::Data => synced.data_quota = Some(view),
                QuotaKind::Sms => synced.sms_quota = Some(view),
            }
        }

        // Usage of the recent days, cumulative per day.
        let today = now.date_naive();
        let start = today - ChronoDuration::days(i64::from(self.schedule.usage_days.saturating_sub(1)));
        let usage = client.usage(iccid.as_str(), start, today).await?;
        let mut days: BTreeMap<_, UsageDay> = synced.usage_days.clone();
        for (date, day) in convert::usage_days(&usage) {
            if days.get(&date) == Some(&day) || day == UsageDay::default() && !days.contains_key(&date) {
                continue;
            }
            self.metrics.difference("usage");
            let period_start = date.and_time(NaiveTime::MIN).and_utc();
            let polled = [day.data_bytes, day.sms_mo, day.sms_mt];
            // The Data Streamer may have recorded more of the day than this answer shows (its
            // records arrive before the provider's daily total moves): the day's total is the
            // larger of the two, so neither source counts what the other already did.
            let decide = |sim: &Sim| {
                let recorded = sim
                    .usage_for(period_start)
                    .map_or([0; 3], |p| [p.data_bytes, p.sms_mo, p.sms_mt]);
                let total = [0, 1, 2].map(|i| recorded[i].max(polled[i]));
                vec![SimCommand::RecordUsage {
                    period_start,
                    period_end: period_start + ChronoDuration::days(1),
                    data_bytes: total[0],
                    sms_mo: total[1],
                    sms_mt: total[2],
                }]
            };
            settle(
                self.issuer
                    .issue_with::<Sim>(
                        iccid.as_str(),
                        &iccid,
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

        // SMS: new mobile-originated messages, and the fate of the platform's MT messages.
        let messages = client.all_sms(iccid.as_str()).await?;
        for received in convert::mo_messages(&messages) {
            if received.provider_id <= synced.last_mo_sms_id {
                continue;
            }
            self.metrics.difference("mo_sms");
            let message_id = mo_message_id(&iccid, received.provider_id);
            let command = SmsCommand::RecordReceived {
                message_id,
                iccid: iccid.clone(),
                payload: received.payload.clone(),
                source_address: received.source_address.clone(),
                provider_message_id: Some(received.provider_id.to_string()),
                received_at: received.received_at.unwrap_or(now),
            };
            settle(
                self.record::<Sms>(
                    &message_id.to_string(),
                    &iccid,
                    vec![command],
                    &("mo_sms", received.provider_id),
                )
                .await,
            )?;
            synced.last_mo_sms_id = synced.last_mo_sms_id.max(received.provider_id);
        }
        events +=
            crate::requests::settle_mt_messages(&self.issuer, self.issuer.store().pool(), &iccid, &messages)
                .await?;

        self.last_seen.save_detail(&synced).await?;
        for reason in refused {
            tracing::warn!(iccid = %iccid, %reason, "a provider observation was refused by the domain");
        }
        Ok(events)
    }
}
