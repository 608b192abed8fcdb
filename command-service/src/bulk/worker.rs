//! The bulk worker: a task of the command API (started by `App::run_until_stopped`, stopped
//! with it) that claims items, runs one command per SIM at a bounded rate, records each
//! outcome, and settles the provider outcomes of the requests it made. Several processes may
//! run one each: claims skip each other's items, and leases bring a crashed one's back.

use std::sync::Arc;
use std::time::Duration;

use bulk_jobs::queue::{ClaimedItem, ClaimedJob};
use bulk_jobs::BulkJobs;
use tokio::sync::{watch, Notify};
use tokio::time::{Instant, MissedTickBehavior};
use uuid::Uuid;

use super::{outcomes, run_item, BulkSettings};
use crate::state::AppState;

/// How often provider outcomes are looked for.
const SETTLE_EVERY: Duration = Duration::from_secs(1);

pub struct Worker {
    state: AppState,
    jobs: BulkJobs,
    id: Uuid,
    settings: BulkSettings,
    wake: Arc<Notify>,
}

impl Worker {
    pub fn new(state: AppState) -> Self {
        Self {
            jobs: BulkJobs::new(state.pool.clone()),
            id: Uuid::now_v7(),
            settings: state.bulk.clone(),
            wake: state.bulk_wake.clone(),
            state,
        }
    }

    /// Runs until `stop` says so (or its sender is gone), then gives back what it claimed
    /// and did not start.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        tracing::info!(worker = %self.id, items_per_sec = self.settings.items_per_sec, "bulk worker started");
        let rate = self.settings.items_per_sec.max(1);
        let mut pace = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
        pace.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // A batch is about a second of work, so a cancel or a stop is seen soon.
        let batch = i64::from(rate.clamp(1, 200));
        let lease = self.settings.lease.max(Duration::from_secs(2));
        let mut settled_at = Instant::now() - SETTLE_EVERY;
        while !stopping(&stop) {
            if settled_at.elapsed() >= SETTLE_EVERY {
                if let Err(error) = outcomes::settle(&self.state, &self.jobs).await {
                    tracing::warn!(%error, "cannot look for provider outcomes now");
                }
                settled_at = Instant::now();
            }
            let wait = match self.jobs.claim(self.id, batch, lease).await {
                Ok(Some((job, items))) => {
                    self.run_batch(&job, items, &mut pace, &mut stop).await;
                    continue;
                }
                Ok(None) => self.settings.poll,
                Err(error) => {
                    tracing::warn!(%error, "bulk worker cannot claim items; trying again");
                    self.settings.poll.max(Duration::from_secs(1))
                }
            };
            tokio::select! {
                _ = stop.changed() => {}
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
        match self.jobs.release(self.id).await {
            Ok(released) => tracing::info!(worker = %self.id, released, "bulk worker stopped"),
            Err(error) => tracing::warn!(%error, "bulk worker stopped; its leases run out by themselves"),
        }
    }

    async fn run_batch(
        &self,
        job: &ClaimedJob,
        items: Vec<ClaimedItem>,
        pace: &mut tokio::time::Interval,
        stop: &mut watch::Receiver<bool>,
    ) {
        for item in items {
            if stopping(stop) {
                return;
            }
            // A dry run writes nothing and asks nothing of the provider: no pacing.
            if !job.dry_run {
                tokio::select! {
                    _ = pace.tick() => {}
                    _ = stop.changed() => return,
                }
            }
            match self.jobs.start(self.id, job.id, item.seq).await {
                Ok(true) => {}
                // Cancelled meanwhile, or the lease went to another worker.
                Ok(false) => continue,
                Err(error) => {
                    tracing::warn!(%error, "cannot start a bulk item; it will be claimed again");
                    return;
                }
            }
            let Some(outcome) = run_item(&self.state, job, &item).await else {
                continue;
            };
            if let Err(error) = self.jobs.record(self.id, job.id, item.seq, &outcome).await {
                // Claimed again when the lease runs out; its command answers as the first time.
                tracing::warn!(%error, job = %job.id, seq = item.seq, "cannot record a bulk item's outcome");
            }
        }
        if let Err(error) = self.jobs.finish_if_done(job.id).await {
            tracing::warn!(%error, job = %job.id, "cannot finish a bulk job now");
        }
    }
}

fn stopping(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow() || stop.has_changed().is_err()
}
