//! Polling: the SIM-list sweep, the per-SIM refresh of SIMs whose entry changed, and the
//! round-robin over the rest, each a different priority of the same call budget.
//!
//! A sweep compares what the provider says with what the connector last saw (`sync_sims`) and
//! issues a command only for a difference, so a poll that finds nothing new issues nothing.
//! The list is processed page by page; a page that fails ends the sweep there. Nothing is
//! concluded about SIMs the sweep did not reach (a SIM is never taken for gone because a list
//! was cut short).
//!
//! This module holds the poller, its report and the helpers shared by both sides; the sweep
//! of the SIM list is in `list`, the per-SIM refresh (connectivity, quotas, usage, SMS) in
//! `detail`.

mod detail;
mod events;
mod list;
mod parts;
mod usage;

pub use events::EVENT_PAGE_SIZE;
pub use parts::{due_from_list, Parts};

use domain::{Aggregate, Iccid, Sim, SimCommand};
use once_client::{OnceClient, Priority};
use serde::Serialize;
use std::sync::Arc;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::config::{Schedule, Shard};
use crate::error::SyncError;
use crate::issue::{Cause, Issuer};
use crate::last_seen::LastSeen;
use crate::metrics::SyncMetrics;
use crate::streamer::Inbox;

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
    /// Where network events read by polling go (`SYNC_NETWORK_EVENTS`), if they are read.
    network_events: Option<EventTarget>,
}

/// The streamer's inbox and the wake-up of its applier.
#[derive(Clone)]
struct EventTarget {
    inbox: Inbox,
    wake: Arc<Notify>,
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
            network_events: None,
        }
    }

    /// Reads each SIM's network events in its refresh and hands them to the streamer's inbox
    /// (`wake` is the applier's wake-up). See `events`.
    pub fn with_network_events(mut self, inbox: Inbox, wake: Arc<Notify>) -> Self {
        self.network_events = Some(EventTarget { inbox, wake });
        self
    }

    pub fn client(&self) -> &OnceClient {
        &self.client
    }

    pub fn last_seen(&self) -> &LastSeen {
        &self.last_seen
    }

    /// How long to wait after a list sweep of `pages` pages that took `took` before the next
    /// one: the poll interval, stretched so that the list takes at most
    /// `SYNC_LIST_BUDGET_PERCENT` of the call budget (`requests_per_second`). At 100 SIMs a
    /// page and 9 calls/s with 25 %, fleets above about 67,500 SIMs (675 pages per 300 s)
    /// sweep less often than every `SYNC_POLL_INTERVAL_SECS`.
    ///
    /// While the first full sync is under way the list's share is
    /// `SYNC_FIRST_SYNC_LIST_BUDGET_PERCENT` instead: that is, while the SIMs that never had a
    /// per-SIM refresh need longer than the usual sweep period at the whole budget (at 100,000
    /// SIMs and 10 calls/s: more than about 4,000 of them). A few new SIMs in a running fleet
    /// therefore do not stretch the sweeps.
    pub async fn pause_after_sweep(
        &self,
        pages: u32,
        took: std::time::Duration,
        requests_per_second: u32,
    ) -> std::time::Duration {
        let usual = sweep_pause(
            &self.schedule,
            self.schedule.list_budget_percent,
            pages,
            took,
            requests_per_second,
        );
        let never_refreshed = match self.last_seen.never_refreshed().await {
            Ok(count) => count,
            Err(error) => {
                tracing::warn!(%error, "could not tell whether the first sync is under way; assuming it is not");
                0
            }
        };
        let first_sync =
            never_refreshed as f64 / f64::from(requests_per_second.max(1)) > (usual + took).as_secs_f64();
        let pause = if first_sync {
            sweep_pause(
                &self.schedule,
                self.schedule.first_sync_list_budget_percent,
                pages,
                took,
                requests_per_second,
            )
        } else {
            usual
        };
        // The effective period is what the stalled-sweep alert's "two sweep periods" means.
        self.metrics.poll_interval.set((pause + took).as_secs_f64());
        pause
    }

    /// One poll: the list sweep, then every SIM whose entry changed.
    pub async fn poll_once(&self) -> Result<SweepReport, SyncError> {
        let mut report = self.sweep_list().await?;
        let detail = self.refresh_due(i64::MAX, Priority::ChangedSims).await?;
        report.add(&detail);
        Ok(report)
    }

    /// Records what the provider showed of an aggregate: `commands` issued on it, caused by
    /// nothing but `observation` (which keys them for idempotency).
    async fn record<A>(
        &self,
        aggregate_id: &str,
        iccid: &Iccid,
        commands: Vec<A::Command>,
        observation: &impl Serialize,
    ) -> Result<usize, SyncError>
    where
        A: Aggregate,
        A::Command: Clone,
    {
        self.issuer
            .issue::<A>(aggregate_id, iccid, commands, observation, Cause::default())
            .await
    }

    /// [`Poller::record`] on the SIM's own aggregate.
    async fn record_on_sim(
        &self,
        iccid: &Iccid,
        commands: Vec<SimCommand>,
        observation: &impl Serialize,
    ) -> Result<usize, SyncError> {
        self.record::<Sim>(iccid.as_str(), iccid, commands, observation)
            .await
    }
}

/// [`Poller::pause_after_sweep`], with the list's share of the budget `share_percent`.
pub fn sweep_pause(
    schedule: &Schedule,
    share_percent: u32,
    pages: u32,
    took: std::time::Duration,
    requests_per_second: u32,
) -> std::time::Duration {
    let share = f64::from(share_percent.clamp(1, 100)) / 100.0;
    let cycle = f64::from(pages) / (share * f64::from(requests_per_second.max(1)));
    let cycle = std::time::Duration::from_secs_f64(cycle).max(schedule.poll_interval + took);
    cycle.saturating_sub(took)
}

/// What recording an observation came to. The domain's refusal of one (e.g. an invalid IMSI)
/// is reported, not fatal: the next difference may be fine.
enum Issued {
    /// This many events were stored (0: nothing was new).
    Stored(usize),
    Refused(Refusal),
}

impl Issued {
    /// Sorts an issue's outcome: events or a refusal, or an error that ends the work at hand.
    fn of(outcome: Result<usize, SyncError>) -> Result<Self, SyncError> {
        match outcome {
            Ok(events) => Ok(Self::Stored(events)),
            Err(SyncError::Refused {
                aggregate,
                code,
                message,
            }) => Ok(Self::Refused(Refusal {
                aggregate,
                code,
                message,
            })),
            Err(error) => Err(error),
        }
    }
}

/// Which aggregate refused an observation, and why.
struct Refusal {
    aggregate: String,
    code: &'static str,
    message: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.aggregate, self.code, self.message)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::SeenQuota;

    #[test]
    fn the_list_takes_at_most_its_share_of_the_budget() {
        use std::time::Duration;
        let schedule = crate::Config::from_lookup(|_| None).unwrap().schedule;
        // 10,000 SIMs: 100 pages in 12 s; the poll interval rules.
        let share = schedule.list_budget_percent;
        let pause = sweep_pause(&schedule, share, 100, Duration::from_secs(12), 9);
        assert_eq!(pause, Duration::from_secs(300));
        // 100,000 SIMs: 1000 pages at 25 % of 9 calls/s = one sweep per 444 s.
        let pause = sweep_pause(&schedule, share, 1000, Duration::from_secs(120), 9);
        assert_eq!(pause.as_secs(), 444 - 120);
        // During the first sync, 2 % of 10 calls/s: one sweep per 5000 s.
        let first = schedule.first_sync_list_budget_percent;
        let pause = sweep_pause(&schedule, first, 1000, Duration::from_secs(120), 10);
        assert_eq!(pause.as_secs(), 5000 - 120);
    }

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
