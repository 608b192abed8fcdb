//! The SIM-list sweep: walks the provider's SIM list page by page and records what differs
//! from what the connector last saw (new SIMs, status, IMEI, IMEI lock, label, IP address).

use chrono::{DateTime, Utc};
use domain::{Iccid, Imei, Imsi, Msisdn, ProviderStatus, SimCommand};
use once_client::Priority;

use super::parts::{due_from_list, spread};
use super::{Issued, Parts, Poller, Refusal, SweepReport, LIST_PAGE_SIZE};
use crate::convert;
use crate::error::SyncError;
use crate::last_seen::SyncedSim;
use crate::observe::{ConnectivityView, ListEntry};

impl Poller {
    /// Walks the SIM list to its end, page by page, and records what changed.
    pub async fn sweep_list(&self) -> Result<SweepReport, SyncError> {
        let client = self.client.with_priority(Priority::ListSweep);
        let mut report = SweepReport::default();
        let mut page = 1;
        loop {
            let read_at = Utc::now();
            let answer = match client.sims_page(page, LIST_PAGE_SIZE).await {
                Ok(answer) => answer,
                Err(error) => {
                    self.metrics.poll("list", "abandoned");
                    tracing::warn!(%error, page, "SIM-list sweep abandoned at a failed page");
                    return Err(error.into());
                }
            };
            report.pages += 1;
            let page_report = self.apply_page(&answer.sims, read_at).await?;
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
        self.apply_page(sims, Utc::now()).await
    }

    /// [`Poller::apply_list_page`] of a page asked for at `read_at`.
    async fn apply_page(
        &self,
        sims: &[once_client::Sim],
        read_at: DateTime<Utc>,
    ) -> Result<SweepReport, SyncError> {
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
                    let due = due_from_list(&previous.list_entry, &entry, self.schedule.streamer);
                    self.last_seen
                        .save_list_entry(iccid.as_str(), &entry, due, None)
                        .await?;
                }
                None => {
                    report.sims_new += 1;
                    let outcome = self.register(&iccid, &entry).await;
                    self.count(&mut report, outcome)?;
                    // A new SIM: every part, or (SYNC_FIRST_REFRESH=usage) its usage now and
                    // the rest with its first full refresh, spread over the safety net's period.
                    let (due, full_due_at) = if self.schedule.first_refresh_usage_only {
                        let interval = self.schedule.detail_interval;
                        (Parts::USAGE, Some(read_at + spread(iccid.as_str(), interval)))
                    } else {
                        (Parts::ALL, None)
                    };
                    self.last_seen
                        .save_list_entry(iccid.as_str(), &entry, due, full_due_at)
                        .await?;
                }
            }
        }
        Ok(report)
    }

    /// Counts an issue's outcome; a refusal is logged and counted, not fatal (the next
    /// difference may be fine), anything else ends the sweep.
    fn count(&self, report: &mut SweepReport, outcome: Result<usize, SyncError>) -> Result<(), SyncError> {
        match Issued::of(outcome)? {
            Issued::Stored(events) => report.events_recorded += events as u64,
            Issued::Refused(Refusal {
                aggregate,
                code,
                message,
            }) => {
                report.refused += 1;
                tracing::warn!(%aggregate, code, %message, "a provider observation was refused by the domain");
            }
        }
        Ok(())
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
        self.record_on_sim(iccid, commands, &("register", entry)).await
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
        self.record_on_sim(iccid, commands, &("list", entry)).await
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
        if let Some(details) = self.provider_details(previous, entry, at) {
            commands.push(details);
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

    /// The provider's label and IMEI lock where they changed at the provider since the last
    /// sweep; the SIM decides whether that changes the platform's (not while an update from the
    /// platform is pending: see docs/sync-connector.md). A new SIM's label comes with its
    /// registration.
    fn provider_details(
        &self,
        previous: Option<&ListEntry>,
        entry: &ListEntry,
        at: DateTime<Utc>,
    ) -> Option<SimCommand> {
        let label = previous
            .filter(|p| p.label != entry.label)
            .map(|_| entry.label.clone());
        let imei_lock = entry
            .imei_lock
            .filter(|_| previous.is_none_or(|p| p.imei_lock != entry.imei_lock));
        if previous.is_some() {
            if label.is_some() {
                self.metrics.difference("label");
            }
            if imei_lock.is_some() {
                self.metrics.difference("imei_lock");
            }
        }
        (label.is_some() || imei_lock.is_some()).then_some(SimCommand::RecordProviderDetails {
            label,
            imei_lock,
            at,
        })
    }
}

fn refused(iccid: &Iccid, code: &'static str, message: &str) -> SyncError {
    SyncError::Refused {
        aggregate: format!("sim/{iccid}"),
        code,
        message: message.to_owned(),
    }
}
