//! Sync jobs queued by the command API: `sync_jobs` rows, run once by every shard that owns
//! part of their scope, with progress in `sync_job_runs`.

use domain::Iccid;
use once_client::Priority;
use sqlx::PgPool;
use uuid::Uuid;

use crate::config::Shard;
use crate::error::SyncError;
use crate::poll::{Poller, SweepReport};

/// Jobs older than this are not picked up any more (e.g. by a shard added later).
const MAX_JOB_AGE_HOURS: i32 = 24;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub job_id: Uuid,
    pub scope: String,
}

#[derive(Clone)]
pub struct Jobs {
    pool: PgPool,
    poller: Poller,
    shard: Shard,
    label: String,
}

impl Jobs {
    pub fn new(pool: PgPool, poller: Poller, shard: Shard) -> Self {
        Self {
            pool,
            poller,
            shard,
            label: format!("{}/{}", shard.index, shard.count),
        }
    }

    /// Runs this shard left unfinished when it stopped are run again (syncing is idempotent).
    pub async fn forget_interrupted_runs(&self) -> Result<u64, sqlx::Error> {
        let done = sqlx::query("DELETE FROM sync_job_runs WHERE shard = $1 AND status = 'running'")
            .bind(&self.label)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Claims the oldest job this shard has not run yet; `None` when there is none.
    pub async fn claim_next(&self) -> Result<Option<Job>, sqlx::Error> {
        {
            let candidates: Vec<(Uuid, String)> = sqlx::query_as(
                "SELECT j.job_id, j.scope FROM sync_jobs j \
                 WHERE j.requested_at > now() - make_interval(hours => $2) \
                 AND NOT EXISTS (SELECT 1 FROM sync_job_runs r WHERE r.job_id = j.job_id AND r.shard = $1) \
                 ORDER BY j.requested_at LIMIT 20",
            )
            .bind(&self.label)
            .bind(MAX_JOB_AGE_HOURS)
            .fetch_all(&self.pool)
            .await?;
            if candidates.is_empty() {
                return Ok(None);
            }
            for (job_id, scope) in candidates {
                // An ICCID outside this shard is another shard's job.
                if scope != "all" && !self.shard.owns(&scope) {
                    continue;
                }
                let claimed = sqlx::query(
                    "INSERT INTO sync_job_runs (job_id, shard, shard_count, status) VALUES ($1, $2, $3, 'running') \
                     ON CONFLICT (job_id, shard) DO NOTHING",
                )
                .bind(job_id)
                .bind(&self.label)
                .bind(self.shard.count as i32)
                .execute(&self.pool)
                .await?;
                if claimed.rows_affected() == 1 {
                    return Ok(Some(Job { job_id, scope }));
                }
            }
            // Every candidate belonged to other shards or was just taken by another instance
            // of this shard; the next wake-up looks again.
            Ok(None)
        }
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
        let outcome = if job.scope == "all" {
            self.sync_all(job.job_id).await
        } else {
            self.sync_one(job.job_id, &job.scope).await
        };
        let (status, error, events) = match &outcome {
            Ok(report) => ("completed", None, report.events_recorded),
            Err(error) => ("failed", Some(error.to_string()), 0),
        };
        sqlx::query(
            "UPDATE sync_job_runs SET status = $3, error = $4, finished_at = now(), \
             events_recorded = $5 WHERE job_id = $1 AND shard = $2",
        )
        .bind(job.job_id)
        .bind(&self.label)
        .bind(status)
        .bind(error.as_deref())
        .bind(events as i32)
        .execute(&self.pool)
        .await?;
        tracing::info!(job_id = %job.job_id, status, ?error, "sync job ended");
        Ok(())
    }

    /// The whole list, then a per-SIM refresh of every SIM of this shard.
    async fn sync_all(&self, job_id: Uuid) -> Result<SweepReport, SyncError> {
        let mut report = self.poller.sweep_list().await?;
        let iccids = self.poller.snapshots().all_iccids().await?;
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
        sqlx::query(
            "UPDATE sync_job_runs SET sims_total = $3, sims_done = $4 WHERE job_id = $1 AND shard = $2",
        )
        .bind(job_id)
        .bind(&self.label)
        .bind(total as i32)
        .bind(done as i32)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
