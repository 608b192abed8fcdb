//! Bulk jobs: one action (activate, suspend, top up, tag, import…) over many SIMs. The command
//! API submits a job with its items frozen at submission ([`BulkJobs::submit`]), its worker
//! claims items under a lease, runs one command per SIM and records each outcome
//! ([`queue`]), and its routes read progress and outcomes ([`BulkJobs::job`],
//! [`BulkJobs::items`]). This crate owns the two tables
//! (`migrations/20261205200001_bulk_jobs.sql`); nothing else reads or writes them.

pub mod queue;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

/// Items are inserted this many at a time (one statement each, one transaction in all).
const INSERT_BATCH: usize = 5_000;

/// A job to submit: what to do, to which SIMs, on whose behalf.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub action: String,
    pub params: Value,
    /// How the items were chosen (`{"kind": …}`), kept for the record.
    pub target: Value,
    pub dry_run: bool,
    pub created_by: String,
    pub idempotency: Option<SubmissionKey>,
    /// In order, without duplicate ICCIDs.
    pub items: Vec<NewItem>,
}

/// An `Idempotency-Key` of a submission: scoped to the principal, with a hash of the request.
#[derive(Debug, Clone)]
pub struct SubmissionKey {
    pub scope: String,
    pub key: String,
    pub request_hash: String,
}

#[derive(Debug, Clone)]
pub struct NewItem {
    pub iccid: String,
    /// What this SIM alone needs (an imported row).
    pub input: Option<Value>,
}

/// What a submission did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submitted {
    Created(Uuid),
    /// The same `Idempotency-Key` and request were submitted before: that job.
    Existing(Uuid),
}

impl Submitted {
    pub fn id(self) -> Uuid {
        match self {
            Self::Created(id) | Self::Existing(id) => id,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("this Idempotency-Key was already used for a different request")]
    KeyReused,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// A job and its progress. `done` counts the items that ran (applied, would apply, refused or
/// failed); `cancelled` those a cancel stopped before they started.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobView {
    pub id: Uuid,
    pub action: String,
    /// `queued`, `running`, `done` or `cancelled`.
    pub status: String,
    pub dry_run: bool,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub params: Value,
    /// How the SIMs were chosen: `{"kind": "iccids" | "csv" | "filter" | "import", …}`.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub target: Value,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub total: i32,
    pub done: i32,
    pub applied: i32,
    /// Dry runs: the items that would be applied.
    pub would_apply: i32,
    pub refused: i32,
    pub failed: i32,
    pub cancelled: i32,
    /// Provider actions (activate, suspend, top up, send SMS): applied requests by the
    /// provider's outcome so far.
    pub provider_pending: i32,
    pub provider_completed: i32,
    pub provider_failed: i32,
    pub provider_unknown: i32,
}

const JOB_COLUMNS: &str = "id, action, status, dry_run, params, target, created_by, created_at, started_at, \
    finished_at, cancelled_at, total, done, applied, would_apply, refused, failed, cancelled, \
    provider_pending, provider_completed, provider_failed, provider_unknown";

/// One SIM's outcome in a job.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ItemView {
    /// The item's place in the target, from 1 (the cursor of `after`).
    pub seq: i32,
    pub iccid: String,
    /// `null` while not run yet; `applied`, `would_apply` (dry run), `refused`, `failed`,
    /// `cancelled`.
    pub outcome: Option<String>,
    /// The domain's error code of a refusal (`SIM_NOT_ACTIVE`, …), or of a failure.
    pub code: Option<String>,
    pub message: Option<String>,
    pub attempts: i32,
    pub finished_at: Option<DateTime<Utc>>,
    /// The command's aggregate (the ICCID, `<iccid>:data`, an SMS's id).
    pub aggregate_id: Option<String>,
    /// The request's id at the provider's side of the platform (activation, top-up, SMS).
    pub request_id: Option<Uuid>,
    /// A consistency token for the query API.
    pub position: Option<i64>,
    /// `pending`, `completed`, `failed`, `unknown` (provider actions that were applied).
    pub provider_outcome: Option<String>,
    pub provider_reason: Option<String>,
}

const ITEM_COLUMNS: &str = "seq, iccid, outcome, code, message, attempts, finished_at, aggregate_id, \
    request_id, position, provider_outcome, provider_reason";

/// Which items to read.
#[derive(Debug, Clone, Default)]
pub struct ItemQuery {
    /// Only items with this outcome (`pending`: not run yet).
    pub outcome: Option<String>,
    /// Items after this `seq` (keyset).
    pub after: Option<i32>,
    pub offset: Option<i64>,
    pub limit: i64,
}

/// The two tables, on a pool.
#[derive(Clone)]
pub struct BulkJobs {
    pool: PgPool,
}

impl BulkJobs {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Stores the job and its items in one transaction (items in batches): a job is there
    /// whole or not at all. With a key already used by the same principal: that job, when the
    /// request was the same, else [`SubmitError::KeyReused`].
    pub async fn submit(&self, job: NewJob) -> Result<Submitted, SubmitError> {
        let mut tx = self.pool.begin().await?;
        let id = Uuid::now_v7();
        let (scope, key, hash) = match &job.idempotency {
            Some(k) => (Some(&k.scope), Some(&k.key), Some(&k.request_hash)),
            None => (None, None, None),
        };
        let inserted: Option<Uuid> = sqlx::query_scalar(
            "INSERT INTO bulk_jobs (id, action, params, target, dry_run, created_by, total, \
             idempotency_scope, idempotency_key, request_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (idempotency_scope, idempotency_key) DO NOTHING RETURNING id",
        )
        .bind(id)
        .bind(&job.action)
        .bind(&job.params)
        .bind(&job.target)
        .bind(job.dry_run)
        .bind(&job.created_by)
        .bind(job.items.len() as i32)
        .bind(scope)
        .bind(key)
        .bind(hash)
        .fetch_optional(&mut *tx)
        .await?;
        if inserted.is_none() {
            // The key's job committed before (a concurrent twin waited for it on the index).
            let (existing, existing_hash): (Uuid, Option<String>) = sqlx::query_as(
                "SELECT id, request_hash FROM bulk_jobs WHERE idempotency_scope = $1 AND idempotency_key = $2",
            )
            .bind(scope)
            .bind(key)
            .fetch_one(&mut *tx)
            .await?;
            return if existing_hash.as_ref() == hash {
                Ok(Submitted::Existing(existing))
            } else {
                Err(SubmitError::KeyReused)
            };
        }
        for (n, chunk) in job.items.chunks(INSERT_BATCH).enumerate() {
            let first = (n * INSERT_BATCH) as i32 + 1;
            let seqs: Vec<i32> = (first..first + chunk.len() as i32).collect();
            let iccids: Vec<&str> = chunk.iter().map(|i| i.iccid.as_str()).collect();
            let inputs: Vec<Option<&Value>> = chunk.iter().map(|i| i.input.as_ref()).collect();
            sqlx::query(
                "INSERT INTO bulk_job_items (job_id, seq, iccid, input) \
                 SELECT $1, s, i, v FROM UNNEST($2::int4[], $3::text[], $4::jsonb[]) AS t(s, i, v)",
            )
            .bind(id)
            .bind(&seqs)
            .bind(&iccids)
            .bind(&inputs)
            .execute(&mut *tx)
            .await?;
        }
        if job.items.is_empty() {
            sqlx::query("UPDATE bulk_jobs SET status = 'done', finished_at = now() WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Submitted::Created(id))
    }

    /// The job and its progress; `None` when there is no such job.
    pub async fn job(&self, id: Uuid) -> Result<Option<JobView>, sqlx::Error> {
        sqlx::query_as(&format!("SELECT {JOB_COLUMNS} FROM bulk_jobs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    /// Jobs, newest first: `limit` of them, after the job `before` (keyset) or from `offset`.
    pub async fn list(
        &self,
        before: Option<Uuid>,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<JobView>, sqlx::Error> {
        let mut query = QueryBuilder::<Postgres>::new(format!("SELECT {JOB_COLUMNS} FROM bulk_jobs"));
        if let Some(before) = before {
            query
                .push(" WHERE (created_at, id) < (SELECT created_at, id FROM bulk_jobs WHERE id = ")
                .push_bind(before)
                .push(")");
        }
        query
            .push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .push_bind(limit)
            .push(" OFFSET ")
            .push_bind(offset);
        query.build_query_as().fetch_all(&self.pool).await
    }

    /// How many jobs there are.
    pub async fn count(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT count(*) FROM bulk_jobs")
            .fetch_one(&self.pool)
            .await
    }

    /// A page of the job's items in target order.
    pub async fn items(&self, job_id: Uuid, q: &ItemQuery) -> Result<Vec<ItemView>, sqlx::Error> {
        let mut query = QueryBuilder::<Postgres>::new(format!(
            "SELECT {ITEM_COLUMNS} FROM bulk_job_items WHERE job_id = "
        ));
        query.push_bind(job_id);
        match q.outcome.as_deref() {
            None => {}
            Some("pending") => {
                query.push(" AND outcome IS NULL");
            }
            Some(outcome) => {
                query.push(" AND outcome = ").push_bind(outcome.to_owned());
            }
        }
        if let Some(after) = q.after {
            query.push(" AND seq > ").push_bind(after);
        }
        query.push(" ORDER BY seq LIMIT ").push_bind(q.limit);
        if let Some(offset) = q.offset {
            query.push(" OFFSET ").push_bind(offset);
        }
        query.build_query_as().fetch_all(&self.pool).await
    }
}
