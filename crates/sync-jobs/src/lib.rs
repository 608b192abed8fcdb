//! Sync jobs: an operator asks for one SIM or the whole fleet to be refreshed from the
//! provider now. The command API queues a job ([`SyncJobs::queue`]) and reads its progress
//! ([`SyncJobs::progress`]); every connector shard that owns part of its scope claims it once
//! ([`SyncJobs::claim_next`]), records its progress and how its run ended. This crate owns the
//! two tables (`migrations/20261129000001_sync.sql`); nothing else reads or writes them.
//!
//! The connector is woken at once by a message on `relay::wire::JOBS_SUBJECT` (the NATS wire
//! contract's home) and also looks for jobs on its own, so a lost message only delays a job.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

/// Jobs older than this are not picked up any more (e.g. by a shard added later).
const MAX_JOB_AGE_HOURS: i32 = 24;

/// The scope of a job that covers the whole fleet (else the scope is an ICCID).
pub const ALL: &str = "all";

/// A job a shard claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub job_id: Uuid,
    /// [`ALL`] or an ICCID.
    pub scope: String,
}

/// A connector shard, as the jobs see it: its label (`<index>/<count>`), how many shards there
/// are, and which ICCIDs it owns.
pub trait ShardOf {
    fn label(&self) -> String;
    fn count(&self) -> u32;
    fn owns(&self, iccid: &str) -> bool;
}

/// How a shard's run of a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    Completed,
    Failed,
}

impl RunEnd {
    fn as_str(self) -> &'static str {
        match self {
            RunEnd::Completed => "completed",
            RunEnd::Failed => "failed",
        }
    }
}

/// A job's progress, summed over the connector shards that run it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobProgress {
    pub job_id: Uuid,
    pub scope: String,
    /// `queued`, `running`, `completed` or `failed`.
    pub status: &'static str,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub sims_total: i64,
    pub sims_done: i64,
    pub events_recorded: i64,
    /// One run per connector shard that owns part of the scope.
    pub runs: Vec<JobRun>,
}

/// One shard's run of a job.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobRun {
    pub shard: String,
    #[serde(skip)]
    pub shard_count: i32,
    /// `running`, `completed` or `failed`.
    pub status: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub sims_total: i32,
    pub sims_done: i32,
    pub events_recorded: i32,
    pub error: Option<String>,
}

/// The two tables, on a pool.
#[derive(Clone)]
pub struct SyncJobs {
    pool: PgPool,
}

impl SyncJobs {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Queues a job for `scope` ([`ALL`] or an ICCID) on behalf of `requested_by`.
    pub async fn queue(&self, scope: &str, requested_by: &str) -> Result<Uuid, sqlx::Error> {
        let job_id = Uuid::now_v7();
        self.queue_as(job_id, scope, requested_by).await?;
        Ok(job_id)
    }

    /// Queues a job with an id the caller chose; false when that job exists already (a bulk
    /// job's item run again after a crash queues its SIM's sync once).
    pub async fn queue_as(&self, job_id: Uuid, scope: &str, requested_by: &str) -> Result<bool, sqlx::Error> {
        let queued = sqlx::query(
            "INSERT INTO sync_jobs (job_id, scope, requested_by) VALUES ($1, $2, $3) ON CONFLICT (job_id) DO NOTHING",
        )
        .bind(job_id)
        .bind(scope)
        .bind(requested_by)
        .execute(&self.pool)
        .await?;
        Ok(queued.rows_affected() == 1)
    }

    /// The job's progress; `None` when there is no such job.
    pub async fn progress(&self, job_id: Uuid) -> Result<Option<JobProgress>, sqlx::Error> {
        let job: Option<JobRow> = sqlx::query_as(
            "SELECT job_id, scope, requested_by, requested_at FROM sync_jobs WHERE job_id = $1",
        )
        .bind(job_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(self.with_runs(job.into_iter().collect()).await?.pop())
    }

    /// The newest jobs first, `limit` of them after skipping `offset`, with their progress.
    pub async fn recent(&self, offset: i64, limit: i64) -> Result<Vec<JobProgress>, sqlx::Error> {
        let jobs: Vec<JobRow> = sqlx::query_as(
            "SELECT job_id, scope, requested_by, requested_at FROM sync_jobs \
             ORDER BY requested_at DESC, job_id DESC OFFSET $1 LIMIT $2",
        )
        .bind(offset)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        self.with_runs(jobs).await
    }

    /// How many jobs there are.
    pub async fn count(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT count(*) FROM sync_jobs")
            .fetch_one(&self.pool)
            .await
    }

    /// The jobs' progress from their shards' runs (one query for all of them).
    async fn with_runs(&self, jobs: Vec<JobRow>) -> Result<Vec<JobProgress>, sqlx::Error> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = jobs.iter().map(|j| j.job_id).collect();
        let runs: Vec<(Uuid, JobRun)> = sqlx::query_as::<_, RunRow>(
            "SELECT job_id, shard, shard_count, status, started_at, finished_at, sims_total, sims_done, events_recorded, error \
             FROM sync_job_runs WHERE job_id = ANY($1) ORDER BY shard",
        )
        .bind(&ids)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|row| (row.job_id, row.run))
        .collect();
        Ok(jobs
            .into_iter()
            .map(|job| {
                let runs: Vec<JobRun> = runs
                    .iter()
                    .filter(|(id, _)| *id == job.job_id)
                    .map(|(_, run)| run.clone())
                    .collect();
                summarise(job, runs)
            })
            .collect())
    }

    /// Runs `shard` left unfinished when it stopped are forgotten, so they run again (syncing
    /// is idempotent); returns how many.
    pub async fn forget_interrupted_runs(&self, shard: &impl ShardOf) -> Result<u64, sqlx::Error> {
        let done = sqlx::query("DELETE FROM sync_job_runs WHERE shard = $1 AND status = 'running'")
            .bind(shard.label())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Claims the oldest job `shard` has not run yet and that concerns it (every shard runs an
    /// [`ALL`] job; an ICCID's job is its owner's); `None` when there is none.
    pub async fn claim_next(&self, shard: &impl ShardOf) -> Result<Option<Job>, sqlx::Error> {
        let label = shard.label();
        let candidates: Vec<(Uuid, String)> = sqlx::query_as(
            "SELECT j.job_id, j.scope FROM sync_jobs j \
             WHERE j.requested_at > now() - make_interval(hours => $2) \
             AND NOT EXISTS (SELECT 1 FROM sync_job_runs r WHERE r.job_id = j.job_id AND r.shard = $1) \
             ORDER BY j.requested_at LIMIT 20",
        )
        .bind(&label)
        .bind(MAX_JOB_AGE_HOURS)
        .fetch_all(&self.pool)
        .await?;
        for (job_id, scope) in candidates {
            if scope != ALL && !shard.owns(&scope) {
                continue;
            }
            let claimed = sqlx::query(
                "INSERT INTO sync_job_runs (job_id, shard, shard_count, status) VALUES ($1, $2, $3, 'running') \
                 ON CONFLICT (job_id, shard) DO NOTHING",
            )
            .bind(job_id)
            .bind(&label)
            .bind(shard.count() as i32)
            .execute(&self.pool)
            .await?;
            if claimed.rows_affected() == 1 {
                return Ok(Some(Job { job_id, scope }));
            }
        }
        // Every candidate belonged to other shards or was just taken by another instance of
        // this shard; the next wake-up looks again.
        Ok(None)
    }

    /// How far `shard`'s run of the job is: `done` SIMs of `total`.
    pub async fn record_progress(
        &self,
        shard: &impl ShardOf,
        job_id: Uuid,
        total: usize,
        done: usize,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE sync_job_runs SET sims_total = $3, sims_done = $4 WHERE job_id = $1 AND shard = $2",
        )
        .bind(job_id)
        .bind(shard.label())
        .bind(total as i32)
        .bind(done as i32)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// How `shard`'s run of the job ended.
    pub async fn record_end(
        &self,
        shard: &impl ShardOf,
        job_id: Uuid,
        end: RunEnd,
        error: Option<&str>,
        events_recorded: u64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE sync_job_runs SET status = $3, error = $4, finished_at = now(), \
             events_recorded = $5 WHERE job_id = $1 AND shard = $2",
        )
        .bind(job_id)
        .bind(shard.label())
        .bind(end.as_str())
        .bind(error)
        .bind(events_recorded as i32)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// A `sync_jobs` row.
#[derive(sqlx::FromRow)]
struct JobRow {
    job_id: Uuid,
    scope: String,
    requested_by: String,
    requested_at: DateTime<Utc>,
}

/// A `sync_job_runs` row with its job.
#[derive(sqlx::FromRow)]
struct RunRow {
    job_id: Uuid,
    #[sqlx(flatten)]
    run: JobRun,
}

/// A job's progress: its runs summed.
fn summarise(job: JobRow, runs: Vec<JobRun>) -> JobProgress {
    let status = job_status(&job.scope, &runs);
    let finished_at = match status {
        "completed" | "failed" => runs.iter().filter_map(|r| r.finished_at).max(),
        _ => None,
    };
    JobProgress {
        job_id: job.job_id,
        scope: job.scope,
        status,
        requested_by: job.requested_by,
        requested_at: job.requested_at,
        finished_at,
        sims_total: runs.iter().map(|r| i64::from(r.sims_total)).sum(),
        sims_done: runs.iter().map(|r| i64::from(r.sims_done)).sum(),
        events_recorded: runs.iter().map(|r| i64::from(r.events_recorded)).sum(),
        runs,
    }
}

/// A job is done when every shard that owns part of its scope has run it: one shard for an
/// ICCID, all of them for [`ALL`] (each run records how many shards there are).
fn job_status(scope: &str, runs: &[JobRun]) -> &'static str {
    if runs.is_empty() {
        return "queued";
    }
    let expected = if scope == ALL {
        runs.iter()
            .map(|r| r.shard_count.max(1) as usize)
            .max()
            .unwrap_or(1)
    } else {
        1
    };
    let finished = runs.iter().filter(|r| r.status != "running").count();
    if finished < expected {
        "running"
    } else if runs.iter().any(|r| r.status == "failed") {
        "failed"
    } else {
        "completed"
    }
}
