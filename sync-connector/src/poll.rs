//! Polling: the SIM-list sweep, the per-SIM refresh of SIMs whose entry changed, and the
//! round-robin over the rest, each a different priority of the same call budget.
//!
//! A sweep compares what the provider says with what the connector last saw (`sync_sims`) and
//! issues a command only for a difference, so a poll that finds nothing new issues nothing.
//! The list is processed page by page; a page that fails ends the sweep there. Nothing is
//! concluded about SIMs the sweep did not reach (a SIM is never taken for gone because a list
//! was cut short).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration as ChronoDuration, NaiveTime, Utc};
use domain::{
    Iccid, Imei, Imsi, Msisdn, ProviderStatus, Quota, QuotaCommand, QuotaKind, Sim, SimCommand, Sms,
    SmsCommand,
};
use futures::StreamExt;
use once_client::{OnceClient, Priority};
use serde::Serialize;
use uuid::Uuid;

use crate::config::{Schedule, Shard};
use crate::convert;
use crate::error::SyncError;
use crate::issue::{quota_id, Cause, Issuer};
use crate::last_seen::{LastSeen, SyncedSim};
use crate::metrics::SyncMetrics;
use crate::observe::{ConnectivityView, ListEntry, UsageDay};

/// SIMs refreshed at once.
const REFRESH_CONCURRENCY: usize = 4;

/// The provider's page size for the SIM list (its maximum).
pub const LIST_PAGE_SIZE: u32 = 100;

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    pub sims_seen: u64,
    pub sims_new: u64,
    pub sims_changed: u64,
    pub events_recorded: u64,
    pub refused: u64,
    pub pages: u32,
    /// False when a page failed and the sweep stopped there.
    pub complete: bool,
}

impl SweepReport {
    fn add(&mut self, other: &SweepReport) {
        self.sims_seen += other.sims_seen;
        self.sims_new += other.sims_new;
        self.sims_changed += other.sims_changed;
        self.events_recorded += other.events_recorded;
        self.refused += other.refused;
        self.pages += other.pages;
    }
}

#[derive(Clone)]
pub struct Poller {
    client: OnceClient,
    issuer: Issuer,
    last_seen: LastSeen,
    shard: Shard,
    schedule: Schedule,
    metrics: SyncMetrics,
}

impl Poller {
    pub fn new(
        client: OnceClient,
        issuer: Issuer,
        last_seen: LastSeen,
        shard: Shard,
        schedule: Schedule,
        metrics: SyncMetrics,
    ) -> Self {
        Self {
            client,
            issuer,
            last_seen,
            shard,
            schedule,
            metrics,
        }
    }

    pub fn client(&self) -> &OnceClient {
        &self.client
    }

    pub fn last_seen(&self) -> &LastSeen {
        &self.last_seen
    }

    /// One poll: the list sweep, then every SIM whose entry changed.
    pub async fn poll_once(&self) -> Result<SweepReport, SyncError> {
        let mut report = self.sweep_list().await?;
        let detail = self.refresh_due(i64::MAX, Priority::ChangedSims).await?;
        report.add(&detail);
        Ok(report)
    }

    /// Walks the SIM list to its end, page by page, and records what changed.
    pub async fn sweep_list(&self) -> Result<SweepReport, SyncError> {
        let client = self.client.with_priority(Priority::ListSweep);
        let mut report = SweepReport::default();
        let mut page = 1;
        loop {
            let answer = match client.sims_page(page, LIST_PAGE_SIZE).await {
                Ok(answer) => answer,
                Err(error) => {
                    self.metrics.poll("list", "abandoned");
                    tracing::warn!(%error, page, "SIM-list sweep abandoned at a failed page");
                    return Err(error.into());
                }
            };
            report.pages += 1;
            let page_report = self.apply_list_page(&answer.sims).await?;
            report.add(&page_report);
            if answer.sims.is_empty() || page >= answer.total_pages {
                break;
            }
            page += 1;
        }
        report.complete = true;
        self.metrics.poll("list", "complete");
        self.metrics.list_sweep_succeeded();
        Ok(report)
    }

    /// Records the differences of one page of the list.
    pub async fn apply_list_page(&self, sims: &[once_client::Sim]) -> Result<SweepReport, SyncError> {
        let mut report = SweepReport::default();
        let owned: Vec<(Iccid, ListEntry)> = sims
            .iter()
            .filter_map(|sim| match Iccid::parse(&sim.iccid) {
                Ok(iccid) => Some((iccid, convert::list_entry(sim))),
                Err(error) => {
                    tracing::warn!(iccid = %sim.iccid, %error, "the provider listed an invalid ICCID; skipped");
                    None
                }
            })
            .filter(|(iccid, _)| self.shard.owns(iccid.as_str()))
            .collect();
        let iccids: Vec<String> = owned.iter().map(|(iccid, _)| iccid.to_string()).collect();
        let known = self.last_seen.many(&iccids).await?;
        for (iccid, entry) in owned {
            report.sims_seen += 1;
            let previous = known.get(iccid.as_str());
            match previous {
                Some(previous)
                    if previous.list_entry == entry && previous.shard == self.last_seen.shard() => {}
                Some(previous) => {
                    report.sims_changed += 1;
                    let outcome = self.record_list_change(&iccid, previous, &entry).await;
                    self.count(&mut report, outcome)?;
                    let detail_due = entry.quota_differs(&previous.list_entry);
                    self.last_seen
                        .save_list_entry(iccid.as_str(), &entry, detail_due)
                        .await?;
                }
                None => {
                    report.sims_new += 1;
                    let outcome = self.register(&iccid, &entry).await;
                    self.count(&mut report, outcome)?;
                    self.last_seen
                        .save_list_entry(iccid.as_str(), &entry, true)
                        .await?;
                }
            }
        }
        Ok(report)
    }

    /// Counts an issue's outcome; a refusal is logged and counted, not fatal (the next
    /// difference may be fine), anything else ends the sweep.
    fn count(&self, report: &mut SweepReport, outcome: Result<usize, SyncError>) -> Result<(), SyncError> {
        match outcome {
            Ok(events) => {
                report.events_recorded += events as u64;
                Ok(())
            }
            Err(SyncError::Refused {
                aggregate,
                code,
                message,
            }) => {
                report.refused += 1;
                tracing::warn!(%aggregate, code, %message, "a provider observation was refused by the domain");
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    /// A SIM the platform has not seen: registered with everything the list says of it, in
    /// one transaction.
    async fn register(&self, iccid: &Iccid, entry: &ListEntry) -> Result<usize, SyncError> {
        let at = Utc::now();
        let imsi = entry
            .imsi
            .as_deref()
            .ok_or_else(|| {
                refused(
                    iccid,
                    "IMSI_MISSING",
                    "the provider lists the SIM without an IMSI",
                )
            })
            .and_then(|imsi| Imsi::parse(imsi).map_err(|e| refused(iccid, "INVALID_IMSI", &e.to_string())))?;
        let msisdn = entry.msisdn.as_deref().and_then(|m| Msisdn::parse(m).ok());
        let mut commands = vec![SimCommand::Register {
            iccid: iccid.clone(),
            imsi,
            msisdn,
            label: entry.label.clone().filter(|l| !l.trim().is_empty()),
            tags: Vec::new(),
            at,
        }];
        commands.extend(self.list_commands(None, entry, None, at));
        self.metrics.difference("new_sim");
        self.issuer
            .issue::<Sim>(
                iccid.as_str(),
                iccid,
                commands,
                &("register", entry),
                Cause::default(),
            )
            .await
    }

    async fn record_list_change(
        &self,
        iccid: &Iccid,
        previous: &SyncedSim,
        entry: &ListEntry,
    ) -> Result<usize, SyncError> {
        let commands = self.list_commands(
            Some(&previous.list_entry),
            entry,
            previous.connectivity.as_ref(),
            Utc::now(),
        );
        if entry.ip_address != previous.list_entry.ip_address {
            let mut view = previous.connectivity.clone().unwrap_or_default();
            view.ip_address = entry.ip_address.clone();
            self.last_seen.save_connectivity(iccid.as_str(), &view).await?;
        }
        if commands.is_empty() {
            return Ok(0);
        }
        self.issuer
            .issue::<Sim>(
                iccid.as_str(),
                iccid,
                commands,
                &("list", entry),
                Cause::default(),
            )
            .await
    }

    /// The SIM commands for the differences between two list entries (`None`: a new SIM).
    fn list_commands(
        &self,
        previous: Option<&ListEntry>,
        entry: &ListEntry,
        connectivity: Option<&ConnectivityView>,
        at: DateTime<Utc>,
    ) -> Vec<SimCommand> {
        let mut commands = Vec::new();
        let changed = |f: &dyn Fn(&ListEntry) -> bool| previous.is_none_or(f);
        if changed(&|p| p.status != entry.status) {
            match entry.status.as_deref() {
                Some("Enabled") => commands.push(SimCommand::RecordProviderStatus {
                    status: ProviderStatus::Enabled,
                    at,
                }),
                Some("Disabled") => commands.push(SimCommand::RecordProviderStatus {
                    status: ProviderStatus::Disabled,
                    at,
                }),
                other => tracing::debug!(status = ?other, "a provider status the platform does not track"),
            }
            if previous.is_some() {
                self.metrics.difference("status");
            }
        }
        if changed(&|p| p.imei != entry.imei) {
            if let Some(imei) = entry.imei.as_deref().and_then(|i| Imei::parse(i).ok()) {
                commands.push(SimCommand::RecordImei { imei });
                if previous.is_some() {
                    self.metrics.difference("imei");
                }
            }
        }
        if changed(&|p| p.imei_lock != entry.imei_lock) {
            if let Some(enabled) = entry.imei_lock {
                commands.push(SimCommand::SetImeiLock { enabled });
                if previous.is_some() {
                    self.metrics.difference("imei_lock");
                }
            }
        }
        if changed(&|p| p.ip_address != entry.ip_address)
            && (previous.is_some() || entry.ip_address.is_some())
        {
            let known = connectivity.cloned().unwrap_or_default();
            commands.push(SimCommand::RecordConnectivity {
                network: known.network,
                country: known.country,
                rat: known.rat,
                ip_address: entry.ip_address.clone(),
                at,
            });
            if previous.is_some() {
                self.metrics.difference("ip_address");
            }
        }
        commands
    }

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
            match outcome {
                Ok(n) => {
                    events += n;
                    Ok(())
                }
                Err(SyncError::Refused {
                    aggregate,
                    code,
                    message,
                }) => {
                    refused.push(format!("{aggregate}: {code}: {message}"));
                    Ok(())
                }
                Err(error) => Err(error),
            }
        };
        let now = Utc::now();

        // Connectivity.
        let status = client.connectivity(iccid.as_str()).await?;
        let view = convert::connectivity(&status, synced.list_entry.ip_address.as_deref());
        if synced.connectivity.as_ref() != Some(&view) {
            self.metrics.difference("connectivity");
            settle(
                self.issuer
                    .issue::<Sim>(
                        iccid.as_str(),
                        &iccid,
                        vec![SimCommand::RecordConnectivity {
                            network: view.network.clone(),
                            country: view.country.clone(),
                            rat: view.rat.clone(),
                            ip_address: view.ip_address.clone(),
                            at: now,
                        }],
                        &("connectivity", &view),
                        Cause::default(),
                    )
                    .await,
            )?;
            synced.connectivity = Some(view);
        }

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
                    self.issuer
                        .issue::<Quota>(
                            &quota_id(&iccid, kind),
                            &iccid,
                            commands,
                            &("quota", &view),
                            Cause::default(),
                        )
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
            settle(
                self.issuer
                    .issue::<Sim>(
                        iccid.as_str(),
                        &iccid,
                        vec![SimCommand::RecordUsage {
                            period_start,
                            period_end: period_start + ChronoDuration::days(1),
                            data_bytes: day.data_bytes,
                            sms_mo: day.sms_mo,
                            sms_mt: day.sms_mt,
                        }],
                        &("usage", date, day),
                        Cause::default(),
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
            settle(
                self.issuer
                    .issue::<Sms>(
                        &message_id.to_string(),
                        &iccid,
                        vec![SmsCommand::RecordReceived {
                            message_id,
                            iccid: iccid.clone(),
                            payload: received.payload.clone(),
                            source_address: received.source_address.clone(),
                            provider_message_id: Some(received.provider_id.to_string()),
                            received_at: received.received_at.unwrap_or(now),
                        }],
                        &("mo_sms", received.provider_id),
                        Cause::default(),
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

/// The platform's id of a mobile-originated message: derived from the provider's id, so the
/// same message seen twice (or by two instances) is one aggregate.
pub fn mo_message_id(iccid: &Iccid, provider_id: i64) -> Uuid {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("mo-sms:{iccid}:{provider_id}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    // RFC 9562 version 8 (custom) and variant bits.
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    Uuid::from_bytes(bytes)
}

fn refused(iccid: &Iccid, code: &'static str, message: &str) -> SyncError {
    SyncError::Refused {
        aggregate: format!("sim/{iccid}"),
        code,
        message: message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::SeenQuota;

    #[test]
    fn mo_message_ids_are_stable_and_distinct() {
        let iccid = Iccid::parse("8988280666000000001").unwrap();
        assert_eq!(mo_message_id(&iccid, 7), mo_message_id(&iccid, 7));
        assert_ne!(mo_message_id(&iccid, 7), mo_message_id(&iccid, 8));
        assert_eq!(mo_message_id(&iccid, 7).get_version_num(), 8);
    }

    #[test]
    fn quota_views_compare_by_assignment() {
        let a = SeenQuota {
            total: 10,
            remaining: 5,
            expiry_date: None,
            expiry_reported: false,
        };
        let mut b = a.clone();
        b.expiry_reported = true;
        assert!(a.same_assignment(&b));
        b.remaining = 4;
        assert!(!a.same_assignment(&b));
    }
}
