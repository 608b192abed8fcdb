//! The per-SIM refresh: the parts due of SIMs whose list entry (or a streamer record) pointed
//! at a change, and the daily full refresh of every SIM (the safety net); each part's answer
//! compared with what was last seen.

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use domain::{Iccid, Quota, QuotaCommand, QuotaKind, SimCommand, Sms, SmsCommand};
use futures::StreamExt;
use once_client::Priority;

use super::{mo_message_id, Issued, Parts, Poller, SweepReport};
use crate::convert;
use crate::error::SyncError;
use crate::issue::quota_id;

/// SIMs refreshed at once: enough that a refresh's own time (the provider's answer, then the
/// commands it issues) never leaves a slot of the budget unused, i.e. about half a second of
/// the budget's calls in flight, at least 4.
fn refresh_concurrency(requests_per_second: u32) -> usize {
    (requests_per_second as usize / 2).clamp(4, 64)
}

impl Poller {
    /// Per-SIM refresh of the SIMs with parts due (up to `limit`), each only its due parts.
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

    /// The usage round (`SYNC_USAGE_INTERVAL_SECS`; off with the Data Streamer): the usage
    /// call of up to `max_sims` SIMs whose usage is due, the longest due first.
    pub async fn refresh_usage_round(&self, max_sims: i64) -> Result<SweepReport, SyncError> {
        if self.schedule.usage_interval.is_none() {
            return Ok(SweepReport {
                complete: true,
                ..SweepReport::default()
            });
        }
        let due = self.last_seen.usage_due(Utc::now(), max_sims).await?;
        let mut report = SweepReport {
            sims_seen: due.len() as u64,
            ..SweepReport::default()
        };
        let due = due.into_iter().map(|iccid| (iccid, Parts::USAGE)).collect();
        let (events, failed) = self.refresh_many(due, Priority::ChangedSims).await?;
        report.events_recorded = events;
        report.refused = failed;
        report.complete = true;
        self.metrics.poll("usage_round", "complete");
        Ok(report)
    }

    /// The safety net: the full refresh of up to `max_sims` SIMs whose full refresh is due
    /// (once per `SYNC_DETAIL_INTERVAL_SECS`), the longest due first.
    pub async fn refresh_round_robin(&self, max_sims: i64) -> Result<SweepReport, SyncError> {
        let now = Utc::now();
        let before = now - self.interval();
        let stale = self.last_seen.stale(now, before, max_sims).await?;
        let mut report = SweepReport {
            sims_seen: stale.len() as u64,
            ..SweepReport::default()
        };
        let stale = stale.into_iter().map(|iccid| (iccid, Parts::ALL)).collect();
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
    async fn refresh_many(
        &self,
        iccids: Vec<(String, Parts)>,
        priority: Priority,
    ) -> Result<(u64, u64), SyncError> {
        let mut results = futures::stream::iter(iccids)
            .map(|(iccid, parts)| async move {
                let outcome = self.refresh_parts(&iccid, parts, priority).await;
                (iccid, outcome)
            })
            .buffer_unordered(refresh_concurrency(self.client.requests_per_second()));
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
                    self.last_seen
                        .mark_refreshed(&iccid, Utc::now() + self.interval())
                        .await?;
                }
            }
        }
        Ok((events, failed))
    }

    /// The safety net's period.
    pub(super) fn interval(&self) -> ChronoDuration {
        ChronoDuration::from_std(self.schedule.detail_interval).unwrap_or(ChronoDuration::days(1))
    }

    /// Every part of one SIM (a full refresh): what sync jobs and the safety net do.
    pub async fn refresh_sim(&self, iccid: &str, priority: Priority) -> Result<usize, SyncError> {
        self.refresh_parts(iccid, Parts::ALL, priority).await
    }

    /// The `parts` of one SIM (connectivity, quotas, recent usage, SMS); records what changed
    /// and returns how many events were stored. A SIM the platform refuses (e.g. terminated)
    /// is marked fresh so it does not come back every sweep. A full refresh sets the SIM's
    /// next one an interval away.
    pub async fn refresh_parts(
        &self,
        iccid: &str,
        parts: Parts,
        priority: Priority,
    ) -> Result<usize, SyncError> {
        let Some(mut synced) = self.last_seen.get(iccid).await? else {
            return Ok(0);
        };
        let mut parts = parts.or_all();
        let iccid = Iccid::parse(iccid).map_err(|e| SyncError::decode("a stored ICCID", e))?;
        let client = self.client.with_priority(priority);
        let mut events = 0;
        let mut refused = Vec::new();
        let now = Utc::now();

        if parts.contains(Parts::CONNECTIVITY) {
            events += self
                .refresh_connectivity(&client, &iccid, &mut synced, now, &mut refused)
                .await?;
        }
        // Usage first: traffic it shows since the last call moved the quotas too (1NCE's list
        // shows a quota's level, not what is left), and MO messages may be waiting.
        let mut usage_at = None;
        if parts.contains(Parts::USAGE) {
            let (stored, moved) = self
                .refresh_usage(&client, &iccid, &mut synced, now, &mut refused)
                .await?;
            events += stored;
            parts |= moved;
            usage_at = Some(now);
        }
        for kind in [QuotaKind::Data, QuotaKind::Sms] {
            let part = match kind {
                QuotaKind::Data => Parts::DATA_QUOTA,
                QuotaKind::Sms => Parts::SMS_QUOTA,
            };
            if parts.contains(part) {
                events += self
                    .refresh_quota(&client, &iccid, &mut synced, kind, now, &mut refused)
                    .await?;
            }
        }
        if parts.contains(Parts::SMS) {
            events += self
                .refresh_sms(&client, &iccid, &mut synced, now, &mut refused)
                .await?;
        }
        let next_full = (parts == Parts::ALL).then(|| now + self.interval());
        let next_usage = usage_at
            .zip(self.schedule.usage_interval)
            .map(|(at, every)| at + ChronoDuration::from_std(every).unwrap_or(ChronoDuration::hours(1)));
        self.last_seen
            .save_detail(&synced, parts, next_full, usage_at, next_usage)
            .await?;
        for reason in refused {
            tracing::warn!(iccid = %iccid, %reason, "a provider observation was refused by the domain");
        }
        Ok(events)
    }

    async fn refresh_connectivity(
        &self,
        client: &once_client::OnceClient,
        iccid: &Iccid,
        synced: &mut crate::last_seen::SyncedSim,
        now: DateTime<Utc>,
        refused: &mut Vec<String>,
    ) -> Result<usize, SyncError> {
        let mut events = 0;
        let mut settle = settler(&mut events, refused);
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
                self.record_on_sim(iccid, vec![command], &("connectivity", &view))
                    .await,
            )?;
            synced.connectivity = Some(view);
        }

        // Network events (streamer off): connectivity history, and quota events that make the
        // quotas due.
        settle(
            self.network_events(client, iccid, synced)
                .await
                .map(|new| new as usize),
        )?;
        drop(settle);
        Ok(events)
    }

    async fn refresh_quota(
        &self,
        client: &once_client::OnceClient,
        iccid: &Iccid,
        synced: &mut crate::last_seen::SyncedSim,
        kind: QuotaKind,
        now: DateTime<Utc>,
        refused: &mut Vec<String>,
    ) -> Result<usize, SyncError> {
        let mut events = 0;
        let mut settle = settler(&mut events, refused);
        // While a top-up is pending its confirmation carries the new volume; an assignment
        // seen first would count the top-up twice. The next refresh catches up.
        let platform = self
            .issuer
            .store()
            .load::<Quota>(&quota_id(iccid, kind))
            .await?
            .state;
        if platform.pending_top_up().is_some() {
            return Ok(0);
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
                self.record::<Quota>(&quota_id(iccid, kind), iccid, commands, &("quota", &view))
                    .await,
            )?;
        }
        match kind {
            QuotaKind::Data => synced.data_quota = Some(view),
            QuotaKind::Sms => synced.sms_quota = Some(view),
        }
        drop(settle);
        Ok(events)
    }

    /// SMS: new mobile-originated messages, and the fate of the platform's MT messages.
    async fn refresh_sms(
        &self,
        client: &once_client::OnceClient,
        iccid: &Iccid,
        synced: &mut crate::last_seen::SyncedSim,
        now: DateTime<Utc>,
        refused: &mut Vec<String>,
    ) -> Result<usize, SyncError> {
        let mut events = 0;
        let mut settle = settler(&mut events, refused);
        let messages = client.all_sms(iccid.as_str()).await?;
        for received in convert::mo_messages(&messages) {
            if received.provider_id <= synced.last_mo_sms_id {
                continue;
            }
            self.metrics.difference("mo_sms");
            let message_id = mo_message_id(iccid, received.provider_id);
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
                    iccid,
                    vec![command],
                    &("mo_sms", received.provider_id),
                )
                .await,
            )?;
            synced.last_mo_sms_id = synced.last_mo_sms_id.max(received.provider_id);
        }
        drop(settle);
        events +=
            crate::requests::settle_mt_messages(&self.issuer, self.issuer.store().pool(), iccid, &messages)
                .await?;
        Ok(events)
    }
}

/// Counts an issue's events into `events`; a refusal goes to `refused` (logged by the caller),
/// anything else ends the refresh.
pub(super) fn settler<'a>(
    events: &'a mut usize,
    refused: &'a mut Vec<String>,
) -> impl FnMut(Result<usize, SyncError>) -> Result<(), SyncError> + 'a {
    move |outcome| {
        match Issued::of(outcome)? {
            Issued::Stored(n) => *events += n,
            Issued::Refused(refusal) => refused.push(refusal.to_string()),
        }
        Ok(())
    }
}
