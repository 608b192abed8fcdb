//! Postgres pools with bounded statements and bounded idle transactions.

use std::time::Duration;

use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Executor, PgPool, Postgres};

use crate::http::NotReady;

#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    pub max_connections: u32,
    /// `statement_timeout`; `None` leaves the server default (unbounded). Use `None` for a
    /// connection that waits on a blocking `pg_advisory_lock`.
    pub statement_timeout: Option<Duration>,
    /// `idle_in_transaction_session_timeout`: an open event-writing transaction holds every
    /// reader of the global event log back (they read only below `event_log_horizon()`), so
    /// idle ones are killed after this.
    pub idle_in_transaction_timeout: Duration,
    /// How long `pool.acquire()` waits before `PoolTimedOut` (→ 503).
    pub acquire_timeout: Duration,
}

impl PoolSettings {
    pub fn new(max_connections: u32) -> Self {
        Self {
            max_connections,
            statement_timeout: Some(Duration::from_secs(30)),
            idle_in_transaction_timeout: Duration::from_secs(30),
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// A pool with the default settings (30 s statement and idle-in-transaction timeouts).
pub async fn connect(database_url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    connect_with(database_url, PoolSettings::new(max_connections)).await
}

pub async fn connect_with(database_url: &str, settings: PoolSettings) -> Result<PgPool, sqlx::Error> {
    // `SET` on every new connection (not startup parameters): works through PgBouncer too.
    let mut session = format!(
        "SET idle_in_transaction_session_timeout = '{}ms';",
        settings.idle_in_transaction_timeout.as_millis()
    );
    if let Some(timeout) = settings.statement_timeout {
        session.push_str(&format!(" SET statement_timeout = '{}ms';", timeout.as_millis()));
    }
    PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        .after_connect(move |conn, _meta| {
            let session = session.clone();
            Box::pin(async move {
                conn.execute(session.as_str()).await?;
                Ok(())
            })
        })
        .connect(database_url)
        .await
}

/// Turns a statement's failure on one named constraint into a value, as realworld-axum-sqlx's
/// `on_constraint` does: `insert(…).await.map(Some).on_constraint("users_username_key", |_| None)`.
/// Every other error passes through (to become 503 or 500 by `From<sqlx::Error> for ApiError`).
pub trait OnConstraint<T> {
    fn on_constraint(
        self,
        constraint: &str,
        value: impl FnOnce(&dyn sqlx::error::DatabaseError) -> T,
    ) -> Result<T, sqlx::Error>;
}

impl<T> OnConstraint<T> for Result<T, sqlx::Error> {
    fn on_constraint(
        self,
        constraint: &str,
        value: impl FnOnce(&dyn sqlx::error::DatabaseError) -> T,
    ) -> Result<T, sqlx::Error> {
        match self {
            Err(sqlx::Error::Database(db)) if db.constraint() == Some(constraint) => Ok(value(&*db)),
            other => other,
        }
    }
}

/// Creates the URL's database when absent (connecting to the server's `postgres` database),
/// so services and tests start on a fresh machine. Concurrent callers are fine.
pub async fn create_database_if_missing(database_url: &str) -> Result<(), sqlx::Error> {
    if Postgres::database_exists(database_url).await? {
        return Ok(());
    }
    match Postgres::create_database(database_url).await {
        Ok(()) => {
            tracing::info!("created database");
            Ok(())
        }
        // Another process created it between our check and our CREATE: `42P04`
        // duplicate_database, or the catalog's own unique index when both raced.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => Ok(()),
        Err(e) => Err(e).on_constraint("pg_database_datname_index", |_| ()),
    }
}

/// Whether `error` means "the database cannot be used right now" rather than "this request
/// is wrong": a saturated or closed pool, a connection refused, reset or lost mid-statement,
/// and the server's own refusals while it shuts down, restarts or recovers (`57P01`
/// admin_shutdown, `57P02` crash_shutdown, `57P03` cannot_connect_now, class `08` connection
/// exceptions, `53300` too many connections). Callers answer 503 and retry later.
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        // The driver's word for a connection that ended mid-message.
        sqlx::Error::Protocol(message) => {
            let message = message.to_ascii_lowercase();
            message.contains("eof") || message.contains("closed") || message.contains("connection")
        }
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "53300") || code.starts_with("08")
        }),
        _ => false,
    }
}

/// A readiness check: `SELECT 1` on the pool.
pub async fn ping(pool: &PgPool) -> Result<(), NotReady> {
    sqlx::query("SELECT 1")
        .execute(pool)
        .await
        .map(|_| ())
        .map_err(|e| NotReady::new("postgres", e))
}
