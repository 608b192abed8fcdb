//! The items as a queue: workers claim them under a lease ([`BulkJobs::claim`]), mark each
//! one started just before its command ([`BulkJobs::start`]), record its outcome
//! ([`BulkJobs::record`]) and later the provider's ([`BulkJobs::settle_provider`]). Every
//! change to an item moves the job's counters in the same statement.
//!
//! Why this order is safe:
//! - a claim skips locked rows and re-checks `outcome IS NULL` on the rows it locks, so two
//!   workers never hold the same item, and a lease that ran out (a crashed worker) frees it;
//! - a cancel stops exactly the items not started: `start` and `cancel` both update the row
//!   (`started_at IS NULL` / `outcome IS NULL`), so one of them waits for the other and sees
//!   what it did;
//! - an item started but not recorded (a crash mid-command) is claimed again, even in a
//!   cancelled job, and its command, run again with the same idempotency key, answers what it
//!   answered the first time: nothing is applied twice.

use std::time::Duration;

use serde_json::Value;
use uuid::Uuid;

use crate::{BulkJobs, JobView};

/// A job a worker claimed items of.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClaimedJob {
    pub id: Uuid,
    pub action: String,
    pub params: Value,
    pub dry_run: bool,
    pub created_by: String,
    pub status: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClaimedItem {
    pub seq: i32,
    pub iccid: String,
    pub input: Option<Value>,
    /// Including this one.
    pub attempts: i32,
}

/// How an item ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Applied(Applied),
    /// Dry run: the command would be accepted.
    WouldApply {
        message: Option<String>,
    },
    /// The domain (or the input) refused it, with its code.
    Refused {
        code: String,
        message: String,
    },
    /// Something else went wrong (the database, a conflict that did not settle).
    Failed {
        code: String,
        message: String,
    },
}

/// What an applied command wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub aggregate_type: String,
    pub aggregate_id: String,
    /// The provider request's id (activation, suspension, top-up) or the SMS's id: set for
    /// provider actions, whose outcome is then `pending` until the connector reports.
    pub request_id: Option<Uuid>,
    pub version: i64,
    pub position: i64,
    /// "nothing to change", for a command that wrote no event.
    pub message: Option<String>,
}

/// An applied provider request whose final outcome is not known yet.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PendingRequest {
    pub job_id: Uuid,
    pub seq: i32,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub request_id: Uuid,
    /// The aggregate's version after the request: its outcome comes later.
    pub version: i64,
}

/// The counters a set of changed items (`changed`: their `outcome`, and `provider_outcome`
/// when newly pending) adds to its job.
const ADD_COUNTERS: &str = "done = done + (SELECT count(*) FROM changed WHERE outcome <> 'cancelled'), \
    applied = applied + (SELECT count(*) FROM changed WHERE outcome = 'applied'), \
    would_apply = would_apply + (SELECT count(*) FROM changed WHERE outcome = 'would_apply'), \
    refused = refused + (SELECT count(*) FROM changed WHERE outcome = 'refused'), \
    failed = failed + (SELECT count(*) FROM changed WHERE outcome = 'failed'), \
    cancelled = cancelled + (SELECT count(*) FROM changed WHERE outcome = 'cancelled'), \
    provider_pending = provider_pending + (SELECT count(*) FROM changed WHERE provider_outcome = 'pending')";

/// What cancelling found.
#[derive(Debug, Clone)]
pub enum Cancelled {
    NotFound,
    /// The job had run every item already.
    AlreadyDone(JobView),
    Cancelled(JobView),
}

impl BulkJobs {
    /// Claims up to `limit` items of the oldest job with items to run, for `lease`. In a
    /// cancelled job only items started before the cancel are claimed (to settle them).
    pub async fn claim(
        &self,
        worker: Uuid,
        limit: i64,
        lease: Duration,
    ) -> Result<Option<(ClaimedJob, Vec<ClaimedItem>)>, sqlx::Error> {
        let jobs: Vec<ClaimedJob> = sqlx::query_as(
            "SELECT id, action, params, dry_run, created_by, status FROM bulk_jobs \
             WHERE finished_at IS NULL ORDER BY created_at LIMIT 20",
        )
        .fetch_all(&self.pool)
        .await?;
        for job in jobs {
            let mut items: Vec<ClaimedItem> = sqlx::query_as(
                "UPDATE bulk_job_items i SET lease_owner = $2, lease_until = now() + make_interval(secs => $3), \
                 attempts = i.attempts + 1 \
                 FROM (SELECT seq FROM bulk_job_items WHERE job_id = $1 AND outcome IS NULL \
                       AND (lease_until IS NULL OR lease_until < now()) AND ($5 OR started_at IS NOT NULL) \
                       ORDER BY seq LIMIT $4 FOR UPDATE SKIP LOCKED) AS picked \
                 WHERE i.job_id = $1 AND i.seq = picked.seq \
                 RETURNING i.seq, i.iccid, i.input, i.attempts",
            )
            .bind(job.id)
            .bind(worker)
            .bind(lease.as_secs_f64())
            .bind(limit)
            .bind(job.status != "cancelled")
            .fetch_all(&self.pool)
            .await?;
            if items.is_empty() {
                // Nothing claimable: maybe nothing is left at all.
                self.finish_if_done(job.id).await?;
                continue;
            }
            items.sort_by_key(|item| item.seq);
            sqlx::query(
                "UPDATE bulk_jobs SET status = 'running', started_at = now() WHERE id = $1 AND status = 'queued'",
            )
            .bind(job.id)
            .execute(&self.pool)
            .await?;
            return Ok(Some((job, items)));
        }
        Ok(None)
    }

    /// Marks the item started, just before its command runs; false when it must not run (the
    /// job was cancelled before, or the lease was lost to another worker).
    pub async fn start(&self, worker: Uuid, job_id: Uuid, seq: i32) -> Result<bool, sqlx::Error> {
        let started = sqlx::query(
            "UPDATE bulk_job_items SET started_at = coalesce(started_at, now()) \
             WHERE job_id = $1 AND seq = $2 AND lease_owner = $3 AND outcome IS NULL",
        )
        .bind(job_id)
        .bind(seq)
        .bind(worker)
        .execute(&self.pool)
        .await?;
        Ok(started.rows_affected() == 1)
    }

    /// Records how the item ended (once: a second record of it changes nothing).
    pub async fn record(
        &self,
        worker: Uuid,
        job_id: Uuid,
        seq: i32,
        outcome: &Outcome,
    ) -> Result<bool, sqlx::Error> {
        let (word, code, message, applied) = match outcome {
            Outcome::Applied(applied) => ("applied", None, applied.message.as_deref(), Some(applied)),
            Outcome::WouldApply { message } => ("would_apply", None, message.as_deref(), None),
            Outcome::Refused { code, message } => {
                ("refused", Some(code.as_str()), Some(message.as_str()), None)
            }
            Outcome::Failed { code, message } => {
                ("failed", Some(code.as_str()), Some(message.as_str()), None)
            }
        };
        let provider = applied.and_then(|a| a.request_id).map(|_| "pending");
        let changed: i64 = sqlx::query_scalar(&format!(
            "WITH changed AS (\
               UPDATE bulk_job_items SET outcome = $4, code = $5, message = $6, finished_at = now(), \
                 aggregate_type = $7, aggregate_id = $8, request_id = $9, version = $10, position = $11, \
                 provider_outcome = $12, lease_owner = NULL, lease_until = NULL \
               WHERE job_id = $1 AND seq = $2 AND lease_owner = $3 AND outcome IS NULL \
               RETURNING outcome, provider_outcome) \
             UPDATE bulk_jobs SET {ADD_COUNTERS} WHERE id = $1 RETURNING (SELECT count(*) FROM changed)"
        ))
        .bind(job_id)
        .bind(seq)
        .bind(worker)
        .bind(word)
        .bind(code)
        .bind(message)
        .bind(applied.map(|a| a.aggregate_type.as_str()))
        .bind(applied.map(|a| a.aggregate_id.as_str()))
        .bind(applied.and_then(|a| a.request_id))
        .bind(applied.map(|a| a.version))
        .bind(applied.map(|a| a.position))
        .bind(provider)
        .fetch_optional(&self.pool)
        .await?
        .unwrap_or(0);
        Ok(changed == 1)
    }

    /// A job whose items all have an outcome is finished: `done`, or still `cancelled`.
    pub async fn finish_if_done(&self, job_id: Uuid) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE bulk_jobs SET status = CASE WHEN status = 'cancelled' THEN 'cancelled' ELSE 'done' END, \
             finished_at = now() \
             WHERE id = $1 AND finished_at IS NULL \
             AND NOT EXISTS (SELECT 1 FROM bulk_job_items WHERE job_id = $1 AND outcome IS NULL)",
        )
        .bind(job_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Cancels the job: every item not started yet ends as `cancelled`; started ones finish.
    pub async fn cancel(&self, job_id: Uuid) -> Result<Cancelled, sqlx::Error> {
        let Some(job) = self.job(job_id).await? else {
            return Ok(Cancelled::NotFound);
        };
        if job.status == "done" {
            return Ok(Cancelled::AlreadyDone(job));
        }
        sqlx::query(&format!(
            "WITH changed AS (\
               UPDATE bulk_job_items SET outcome = 'cancelled', finished_at = now(), lease_owner = NULL, lease_until = NULL \
               WHERE job_id = $1 AND outcome IS NULL AND started_at IS NULL \
               RETURNING outcome, provider_outcome) \
             UPDATE bulk_jobs SET status = 'cancelled', cancelled_at = coalesce(cancelled_at, now()), {ADD_COUNTERS} \
             WHERE id = $1 AND status <> 'done'"
        ))
        .bind(job_id)
        .execute(&self.pool)
        .await?;
        self.finish_if_done(job_id).await?;
        match self.job(job_id).await? {
            Some(job) if job.status == "done" => Ok(Cancelled::AlreadyDone(job)),
            Some(job) => Ok(Cancelled::Cancelled(job)),
            None => Ok(Cancelled::NotFound),
        }
    }

    /// Gives back the items `worker` claimed and has not recorded (it is stopping).
    pub async fn release(&self, worker: Uuid) -> Result<u64, sqlx::Error> {
        let released = sqlx::query(
            "UPDATE bulk_job_items SET lease_owner = NULL, lease_until = NULL \
             WHERE lease_owner = $1 AND outcome IS NULL",
        )
        .bind(worker)
        .execute(&self.pool)
        .await?;
        Ok(released.rows_affected())
    }

    /// Applied provider requests whose outcome is not final yet (an SMS's `unknown` may still
    /// be settled by a later report), least recently looked at first, not looked at within
    /// `every`. Requests older than a week are left as they are.
    pub async fn pending_requests(
        &self,
        limit: i64,
        every: Duration,
    ) -> Result<Vec<PendingRequest>, sqlx::Error> {
        sqlx::query_as(
            "SELECT job_id, seq, aggregate_type, aggregate_id, request_id, version FROM bulk_job_items \
             WHERE (provider_outcome = 'pending' OR (provider_outcome = 'unknown' AND aggregate_type = 'sms')) \
             AND (provider_checked_at IS NULL OR provider_checked_at < now() - make_interval(secs => $2)) \
             AND finished_at > now() - interval '7 days' \
             ORDER BY provider_checked_at NULLS FIRST LIMIT $1",
        )
        .bind(limit)
        .bind(every.as_secs_f64())
        .fetch_all(&self.pool)
        .await
    }

    /// These requests were looked at and are still as they were.
    pub async fn checked(&self, requests: &[PendingRequest]) -> Result<(), sqlx::Error> {
        let jobs: Vec<Uuid> = requests.iter().map(|r| r.job_id).collect();
        let seqs: Vec<i32> = requests.iter().map(|r| r.seq).collect();
        sqlx::query(
            "UPDATE bulk_job_items i SET provider_checked_at = now() FROM UNNEST($1::uuid[], $2::int4[]) AS t(j, s) \
             WHERE i.job_id = t.j AND i.seq = t.s",
        )
        .bind(&jobs)
        .bind(&seqs)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The provider's outcome of an applied request (`completed`, `failed`, `unknown`), with
    /// the job's provider counters moved from what the item said before.
    pub async fn settle_provider(
        &self,
        job_id: Uuid,
        seq: i32,
        outcome: &str,
        reason: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "WITH before AS (SELECT job_id, seq, provider_outcome FROM bulk_job_items \
                             WHERE job_id = $1 AND seq = $2 FOR UPDATE), \
             changed AS (UPDATE bulk_job_items i SET provider_outcome = $3, provider_reason = $4, provider_checked_at = now() \
                         FROM before b WHERE i.job_id = b.job_id AND i.seq = b.seq \
                         AND b.provider_outcome IS DISTINCT FROM $3 RETURNING b.provider_outcome AS was) \
             UPDATE bulk_jobs SET \
               provider_pending = provider_pending - (SELECT count(*) FROM changed WHERE was = 'pending'), \
               provider_unknown = provider_unknown - (SELECT count(*) FROM changed WHERE was = 'unknown') \
                 + CASE WHEN $3 = 'unknown' THEN (SELECT count(*) FROM changed) ELSE 0 END, \
               provider_completed = provider_completed + CASE WHEN $3 = 'completed' THEN (SELECT count(*) FROM changed) ELSE 0 END, \
               provider_failed = provider_failed + CASE WHEN $3 = 'failed' THEN (SELECT count(*) FROM changed) ELSE 0 END \
             WHERE id = $1",
        )
        .bind(job_id)
        .bind(seq)
        .bind(outcome)
        .bind(reason)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
