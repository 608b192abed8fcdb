//! Sync jobs queued by the command API: `sync_jobs` rows, run once by every shard that owns
//! part of their scope, with progress in `sync_job_runs`.

use domain::Iccid;
use once_client::Priority;
use sqlx::PgPool;
use sync_jobs::{RunEnd, SyncJobs};
use uuid::Uuid;

use crate::config::Shard;
use crate::error::SyncError;
use crate::poll::{Poller, SweepReport};

pub use sync_jobs::Job;

/// Runs the sync jobs of this shard (the tables are [`sync_jobs::SyncJobs`]'s).
#[derive(Clone)]
pub struct Jobs {
    jobs: SyncJobs,
    poller: Poller,
    shard: Shard,
}

impl Jobs {
    pub fn new(pool: PgPool, poller: Poller, shard: Shard) -> Self {
        Self {
            jobs: SyncJobs::new(pool),
            poller,
            shard,
        }
    }

    /// Runs this shard left unfinished when it stopped are run again (syncing is idempotent).
    pub async fn forget_interrupted_runs(&self) -> Result<u64, sqlx::Error> {
        self.jobs.forget_interrupted_runs(&self.shard).await
    }

    /// Claims the oldest job this shard has not run yet; `None` when there is none.
    pub async fn claim_next(&self) -> Result<Option<Job>, sqlx::Error> {
        self.jobs.claim_next(&self.shard).await
    }

    /// Runs every job waiting for this shard; returns how many ran.
    pub async fn run_waiting(&self) -> Result<usize, SyncError> {
        let mut ran = 0;
        while let Some(job) = self.claim_next().await? {
            self.run(&job).await?;
            ran += 1;
        }
        Ok(ran)
    }

    /// Runs one claimed job to its end and records how it ended.
    pub async fn run(&self, job: &Job) -> Result<(), SyncError> {
        tracing::info!(job_id = %job.job_id, scope = %job.scope, "sync job started");
        let outcome = if job.scope == sync_jobs::ALL {
            self.sync_all(job.job_id).await
        } else {
            self.sync_one(job.job_id, &job.scope).await
        };
        let (end, error, events) = match &outcome {
            Ok(report) => (RunEnd::Completed, None, report.events_recorded),
            Err(error) => (RunEnd::Failed, Some(error.to_string()), 0),
        };
        self.jobs
            .record_end(&self.shard, job.job_id, end, error.as_deref(), events)
            .await?;
        tracing::info!(job_id = %job.job_id, ?end, ?error, "sync job ended");
        Ok(())
    }

    /// The whole list, then a per-SIM refresh of every SIM of this shard.
    async fn sync_all(&self, job_id: Uuid) -> Result<SweepReport, SyncError> {
        let mut report = self.poller.sweep_list().await?;
        let iccids = self.poller.last_seen().all_iccids().await?;
        self.progress(job_id, iccids.len(), 0).await?;
        for (done, iccid) in iccids.iter().enumerate() {
            let events = self.poller.refresh_sim(iccid, Priority::ChangedSims).await?;
            report.events_recorded += events as u64;
            if (done + 1) % 10 == 0 || done + 1 == iccids.len() {
                self.progress(job_id, iccids.len(), done + 1).await?;
            }
        }
        Ok(report)
    }

    /// One SIM: its list entry, then its per-SIM refresh, at the operators' priority.
    async fn sync_one(&self, job_id: Uuid, iccid: &str) -> Result<SweepReport, SyncError> {
        let iccid = Iccid::parse(iccid).map_err(|e| SyncError::decode("the job's ICCID", e))?;
        self.progress(job_id, 1, 0).await?;
        let sim = self
            .poller
            .client()
            .with_priority(Priority::OperatorRequest)
            .sim(iccid.as_str())
            .await?;
        let mut report = self.poller.apply_list_page(std::slice::from_ref(&sim)).await?;
        report.events_recorded += self
            .poller
            .refresh_sim(iccid.as_str(), Priority::OperatorRequest)
            .await? as u64;
        self.progress(job_id, 1, 1).await?;
        report.complete = true;
        Ok(report)
    }

    async fn progress(&self, job_id: Uuid, total: usize, done: usize) -> Result<(), sqlx::Error> {
        self.jobs.record_progress(&self.shard, job_id, total, done).await
    }
}
