//! `sync_dispatches`: the record that an operator request is being, or was, carried out at the
//! provider, written before the provider is called; and the liveness of the instance that
//! wrote it (a session advisory lock held for the process's lifetime).

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres};
use uuid::Uuid;

/// Advisory-lock class of connector instances (the two-key form, apart from the relay's lock).
const INSTANCE_LOCK_CLASS: i32 = 0x5359_4e43; // "SYNC"

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    Activation,
    Suspension,
    TopUp,
    Sms,
}

impl RequestKind {
    pub const ALL: [RequestKind; 4] = [Self::Activation, Self::Suspension, Self::TopUp, Self::Sms];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Activation => "activation",
            Self::Suspension => "suspension",
            Self::TopUp => "topup",
            Self::Sms => "sms",
        }
    }

    /// The event type that asks for it.
    pub fn event_type(self) -> &'static str {
        match self {
            Self::Activation => "ActivationRequested",
            Self::Suspension => "SuspensionRequested",
            Self::TopUp => "TopUpRequested",
            Self::Sms => "SmsSendRequested",
        }
    }
}

/// The process's identity, alive while its lock connection is.
pub struct Instance {
    pub id: Uuid,
    // Held, never used: dropping it (or the process dying) releases the lock.
    _lock: PoolConnection<Postgres>,
}

impl Instance {
    pub async fn start(pool: &PgPool) -> Result<Self, sqlx::Error> {
        let id = Uuid::new_v4();
        let mut conn = pool.acquire().await?;
        sqlx::query("SELECT pg_advisory_lock($1, $2)")
            .bind(INSTANCE_LOCK_CLASS)
            .bind(lock_key(id))
            .execute(&mut *conn)
            .await?;
        Ok(Self { id, _lock: conn })
    }
}

fn lock_key(id: Uuid) -> i32 {
    let b = id.as_bytes();
    i32::from_be_bytes([b[12], b[13], b[14], b[15]])
}

/// Whether the instance `owner` still holds its lock, i.e. still runs.
pub async fn is_alive(pool: &PgPool, owner: Uuid) -> Result<bool, sqlx::Error> {
    // Taken and released in one statement, so the check itself never keeps the lock.
    sqlx::query_scalar(
        "SELECT CASE WHEN pg_try_advisory_lock($1, $2) THEN NOT pg_advisory_unlock($1, $2) ELSE true END",
    )
    .bind(INSTANCE_LOCK_CLASS)
    .bind(lock_key(owner))
    .fetch_one(pool)
    .await
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dispatch {
    pub state: String,
    pub owner: Option<Uuid>,
    pub before_call: Option<Value>,
    pub dispatched_at: Option<DateTime<Utc>>,
    pub attempts: i32,
}

#[derive(Clone)]
pub struct Dispatches {
    pool: PgPool,
}

impl Dispatches {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The request's record, created as `pending` when it has none.
    pub async fn open(
        &self,
        request_id: Uuid,
        kind: RequestKind,
        aggregate_id: &str,
        iccid: &str,
    ) -> Result<Dispatch, sqlx::Error> {
        sqlx::query(
            "INSERT INTO sync_dispatches (request_id, kind, aggregate_id, iccid, state) \
             VALUES ($1, $2, $3, $4, 'pending') ON CONFLICT (request_id) DO NOTHING",
        )
        .bind(request_id)
        .bind(kind.as_str())
        .bind(aggregate_id)
        .bind(iccid)
        .execute(&self.pool)
        .await?;
        let row: (String, Option<Uuid>, Option<Value>, Option<DateTime<Utc>>, i32) = sqlx::query_as(
            "SELECT state, owner, before_call, dispatched_at, attempts FROM sync_dispatches WHERE request_id = $1",
        )
        .bind(request_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(Dispatch {
            state: row.0,
            owner: row.1,
            before_call: row.2,
            dispatched_at: row.3,
            attempts: row.4,
        })
    }

    /// Commits "this instance is about to call the provider"; false when another instance
    /// got there first.
    pub async fn mark_dispatching(
        &self,
        request_id: Uuid,
        owner: Uuid,
        before_call: &Value,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE sync_dispatches SET state = 'dispatching', owner = $2, before_call = $3, \
             dispatched_at = now(), attempts = attempts + 1 WHERE request_id = $1 AND state = 'pending'",
        )
        .bind(request_id)
        .bind(owner)
        .bind(before_call)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Takes over a dispatch whose owner died; false when someone else took it first.
    pub async fn take_over(
        &self,
        request_id: Uuid,
        dead: Option<Uuid>,
        owner: Uuid,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE sync_dispatches SET owner = $3 WHERE request_id = $1 AND state = 'dispatching' \
             AND owner IS NOT DISTINCT FROM $2",
        )
        .bind(request_id)
        .bind(dead)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The provider certainly did not act: back to `pending`, for a later attempt.
    pub async fn release(&self, request_id: Uuid) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE sync_dispatches SET state = 'pending', owner = NULL WHERE request_id = $1")
            .bind(request_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn count_attempt(&self, request_id: Uuid) -> Result<i32, sqlx::Error> {
        sqlx::query_scalar(
            "UPDATE sync_dispatches SET attempts = attempts + 1 WHERE request_id = $1 RETURNING attempts",
        )
        .bind(request_id)
        .fetch_one(&self.pool)
        .await
    }

    /// Ends the dispatch: `completed`, `failed` or `unknown`.
    pub async fn finish(
        &self,
        request_id: Uuid,
        state: &str,
        outcome: &str,
        provider_ref: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE sync_dispatches SET state = $2, outcome = $3, provider_ref = COALESCE($4, provider_ref), \
             finished_at = now() WHERE request_id = $1",
        )
        .bind(request_id)
        .bind(state)
        .bind(outcome)
        .bind(provider_ref)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Closes a record whose request the aggregate no longer has pending (settled before a
    /// crash let the record be updated).
    pub async fn close_settled(&self, request_id: Uuid) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE sync_dispatches SET state = 'completed', outcome = COALESCE(outcome, 'settled'), \
             finished_at = now() WHERE request_id = $1 AND state IN ('pending', 'dispatching')",
        )
        .bind(request_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Provider SMS ids already matched to a platform message of this SIM.
    pub async fn claimed_sms_ids(&self, iccid: &str) -> Result<Vec<String>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT provider_ref FROM sync_dispatches WHERE iccid = $1 AND kind = 'sms' AND provider_ref IS NOT NULL",
        )
        .bind(iccid)
        .fetch_all(&self.pool)
        .await
    }

    /// MT messages handed to the provider whose delivery is still open: (aggregate id, provider id).
    pub async fn submitted_sms(&self, iccid: &str) -> Result<Vec<(Uuid, String, String)>, sqlx::Error> {
        sqlx::query_as(
            "SELECT request_id, aggregate_id, provider_ref FROM sync_dispatches WHERE iccid = $1 AND kind = 'sms' \
             AND state = 'completed' AND outcome = 'submitted' AND provider_ref IS NOT NULL",
        )
        .bind(iccid)
        .fetch_all(&self.pool)
        .await
    }

    pub async fn set_outcome(&self, request_id: Uuid, outcome: &str) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE sync_dispatches SET outcome = $2 WHERE request_id = $1")
            .bind(request_id)
            .bind(outcome)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
