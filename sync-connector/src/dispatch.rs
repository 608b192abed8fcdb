//! `sync_dispatches`: the record that an operator request is being, or was, carried out at the
//! provider, written before the provider is called; and the liveness of the instance that
//! wrote it (a session advisory lock held for the process's lifetime).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, Executor, PgConnection, PgPool};
use tokio::task::JoinHandle;
use uuid::Uuid;

/// Advisory-lock class of connector instances (the two-key form, apart from the relay's lock).
const INSTANCE_LOCK_CLASS: i32 = 0x5359_4e43; // "SYNC"

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    Activation,
    Suspension,
    TopUp,
    Sms,
    /// Label and IMEI lock (a PUT of the SIM).
    ProviderUpdate,
    /// `POST /v1/sims/{iccid}/reset`.
    ConnectivityReset,
    /// `POST /v1/sims/autoTopup` for one SIM.
    AutoTopUp,
    /// The account's self-set limits (`POST /v1/sims/limits`).
    Limits,
}

impl RequestKind {
    pub const ALL: [RequestKind; 8] = [
        Self::Activation,
        Self::Suspension,
        Self::TopUp,
        Self::Sms,
        Self::ProviderUpdate,
        Self::ConnectivityReset,
        Self::AutoTopUp,
        Self::Limits,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Activation => "activation",
            Self::Suspension => "suspension",
            Self::TopUp => "topup",
            Self::Sms => "sms",
            Self::ProviderUpdate => "sim_update",
            Self::ConnectivityReset => "connectivity_reset",
            Self::AutoTopUp => "auto_topup",
            Self::Limits => "limits",
        }
    }

    /// The event type that asks for it.
    pub fn event_type(self) -> &'static str {
        match self {
            Self::Activation => "ActivationRequested",
            Self::Suspension => "SuspensionRequested",
            Self::TopUp => "TopUpRequested",
            Self::Sms => "SmsSendRequested",
            Self::ProviderUpdate => "ProviderUpdateRequested",
            Self::ConnectivityReset => "ConnectivityResetRequested",
            Self::AutoTopUp => "AutoTopUpChangeRequested",
            Self::Limits => "AccountLimitsChangeRequested",
        }
    }
}

/// How often the liveness lock's connection is pinged, and the wait between attempts to take
/// the lock again after its connection failed.
const LOCK_CHECK_INTERVAL: Duration = Duration::from_secs(5);
/// A ping or lock attempt that takes longer than this counts as failed.
const LOCK_QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// The process's identity, alive while it holds its session advisory lock.
///
/// The lock lives on a connection of its own (a pooled one would be recycled, or lost with the
/// pool's connections when Postgres restarts, and never taken again). A keeper task pings it
/// and, when the connection fails (Postgres restarted, the network dropped), connects again
/// and takes the same lock back, so the instance is seen as alive again once Postgres is;
/// meanwhile other instances may take over its open dispatches, which they reconcile with the
/// provider before anything is sent again. Server-side TCP keepalives end the session of an
/// instance whose host vanished, so its lock does not outlive it.
pub struct Instance {
    pub id: Uuid,
    held: Arc<AtomicBool>,
    keeper: JoinHandle<()>,
}

impl Instance {
    pub async fn start(pool: &PgPool) -> Result<Self, sqlx::Error> {
        let id = Uuid::new_v4();
        let options = (*pool.connect_options())
            .clone()
            .application_name("sync-connector-instance");
        let conn = match take_lock(&options, id).await? {
            Some(conn) => conn,
            None => return Err(sqlx::Error::Protocol("instance lock already held".to_owned())),
        };
        let held = Arc::new(AtomicBool::new(true));
        let keeper = tokio::spawn(keep_lock(options, id, conn, held.clone()));
        Ok(Self { id, held, keeper })
    }

    /// Whether the lock is held right now (false while its connection is being re-made).
    pub fn is_held(&self) -> bool {
        self.held.load(Ordering::Acquire)
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // The keeper owns the connection: ending it closes the session, releasing the lock.
        self.keeper.abort();
    }
}

/// Connects and takes the instance's lock; `None` when another session holds it.
async fn take_lock(options: &PgConnectOptions, id: Uuid) -> Result<Option<PgConnection>, sqlx::Error> {
    let attempt = async {
        let mut conn = PgConnection::connect_with(options).await?;
        conn.execute(
            "SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2; SET tcp_keepalives_count = 3; \
             SET idle_in_transaction_session_timeout = '30s'",
        )
        .await?;
        let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, $2)")
            .bind(INSTANCE_LOCK_CLASS)
            .bind(lock_key(id))
            .fetch_one(&mut conn)
            .await?;
        Ok(taken.then_some(conn))
    };
    match tokio::time::timeout(LOCK_QUERY_TIMEOUT, attempt).await {
        Ok(result) => result,
        Err(_) => Err(sqlx::Error::PoolTimedOut),
    }
}

async fn keep_lock(options: PgConnectOptions, id: Uuid, mut conn: PgConnection, held: Arc<AtomicBool>) {
    loop {
        tokio::time::sleep(LOCK_CHECK_INTERVAL).await;
        let alive = tokio::time::timeout(LOCK_QUERY_TIMEOUT, conn.ping()).await;
        if matches!(alive, Ok(Ok(()))) {
            continue;
        }
        held.store(false, Ordering::Release);
        tracing::warn!(instance = %id, "the instance's liveness lock was lost with its connection; taking it again");
        conn = loop {
            match take_lock(&options, id).await {
                Ok(Some(conn)) => break conn,
                Ok(None) => {
                    tracing::debug!(instance = %id, "instance lock busy (a liveness check); retrying")
                }
                Err(error) => tracing::debug!(instance = %id, %error, "cannot take the instance lock yet"),
            }
            tokio::time::sleep(LOCK_CHECK_INTERVAL).await;
        };
        held.store(true, Ordering::Release);
        tracing::info!(instance = %id, "the instance's liveness lock is held again");
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
