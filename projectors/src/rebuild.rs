//! `projectors rebuild`: replays the Postgres log from the start into fresh tables and swaps
//! them in atomically, while readers keep reading the old ones.
//!
//! 1. Fresh tables `rebuild_<ms>.<table> (LIKE public.<table> INCLUDING ALL)` for every read
//!    model and the bookkeeping (`projection_versions`, `projection_checkpoints`).
//! 2. The global log ([`GlobalLog::read_after`] from [`LogCursor::START`]) is applied in
//!    batches with the live projector's own code ([`Applier::apply_logged`]), each batch one
//!    transaction with `SET LOCAL search_path = rebuild_<ms>, public`.
//! 3. One transaction takes [`PROJECTION_LOCK_KEY`] exclusively (the live projector takes it
//!    shared around each message, so live applying pauses), applies the rest of the log, moves
//!    the old tables out of `public` and the new ones in (index names restored), commits; the
//!    old tables are dropped afterwards. The live projector then skips, through its version
//!    guard, what the rebuild already applied.
//!
//! With TimescaleDB (`sim_usage` a hypertable, the rollups continuous aggregates) the usage
//! tables are not rebuilt: `sim_usage` rows are keyed by event position and inserted
//! idempotently, and the continuous aggregates are refreshed after the swap instead.

use std::time::Instant;

use eventstore::{GlobalLog, LogCursor, StoredEvent};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};

use crate::apply::{Applier, ApplyError, Guard, UsageRollups, PROJECTION_LOCK_KEY};
use crate::checkpoint;
use crate::metrics::RebuildMetrics;

/// Only one rebuild at a time (a session lock on a dedicated connection).
pub const REBUILD_LOCK_KEY: i64 = 0x5349_4d52_4542_4c44; // "SIMREBLD"

/// The read models a rebuild always replaces.
pub const READ_MODEL_TABLES: &[&str] = &[
    "sims",
    "sim_quotas",
    "sms_messages",
    "sim_status_history",
    "projection_versions",
    "projection_checkpoints",
    "parked_events",
];

/// The bookkeeping tables whose other projectors' rows a rebuild carries over.
const BOOKKEEPING_TABLES: &[&str] = &["projection_versions", "projection_checkpoints", "parked_events"];

/// Replaced too when the rollups are plain tables (no TimescaleDB).
pub const USAGE_TABLES: &[&str] = &["sim_usage", "sim_usage_hourly", "sim_usage_daily"];

#[derive(Debug, Clone)]
pub struct RebuildOptions {
    /// The projector whose bookkeeping rows are rebuilt (other projectors' rows are kept).
    pub projector: String,
    /// Events per transaction while replaying.
    pub batch_size: i64,
    pub metrics: Option<RebuildMetrics>,
}

impl RebuildOptions {
    pub fn new(projector: impl Into<String>) -> Self {
        Self {
            projector: projector.into(),
            batch_size: 5000,
            metrics: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RebuildReport {
    /// Events replayed (those applied after the swap lock included).
    pub events: u64,
    /// Of them, replayed while holding the swap lock.
    pub events_during_swap: u64,
    /// Events that cannot be applied, parked as the live projector parks them.
    pub parked: u64,
    pub tables: Vec<String>,
    pub last_position: i64,
    /// The TimescaleDB continuous aggregates refreshed after the swap (empty without it).
    pub refreshed: Vec<String>,
    pub duration_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("another rebuild is running")]
    AlreadyRunning,
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("reading the event log failed: {0}")]
    Log(#[from] eventstore::StoreError),
    #[error("applying failed: {0}")]
    Apply(#[from] ApplyError),
}

pub async fn rebuild(pool: &PgPool, options: &RebuildOptions) -> Result<RebuildReport, RebuildError> {
    let started = Instant::now();
    // A session lock on a connection of its own, closed (so released) at the end, on every path.
    let mut guard = pool.acquire().await?.detach();
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(REBUILD_LOCK_KEY)
        .fetch_one(&mut guard)
        .await?;
    if !locked {
        return Err(RebuildError::AlreadyRunning);
    }
    let result = run(pool, options, started).await;
    if let Err(error) = sqlx::Connection::close(guard).await {
        tracing::debug!(%error, "closing the rebuild lock's connection");
    }
    result
}

async fn run(
    pool: &PgPool,
    options: &RebuildOptions,
    started: Instant,
) -> Result<RebuildReport, RebuildError> {
    let rollups = UsageRollups::detect(pool).await?;
    let mut tables: Vec<&str> = READ_MODEL_TABLES.to_vec();
    if rollups == UsageRollups::Tables {
        tables.extend_from_slice(USAGE_TABLES);
    }
    drop_leftovers(pool).await?;
    let schema = format!("rebuild_{}", chrono::Utc::now().timestamp_millis());
    let old_schema = format!("{schema}_old");
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(pool)
        .await?;
    for table in &tables {
        sqlx::query(&format!(
            "CREATE TABLE {schema}.{table} (LIKE public.{table} INCLUDING ALL)"
        ))
        .execute(pool)
        .await?;
    }
    tracing::info!(%schema, ?tables, "rebuild started");

    let applier = Applier::new(options.projector.clone(), rollups);
    let log = GlobalLog::new(pool.clone());
    let head = log.head().await?.max(1);
    let mut report = RebuildReport {
        events: 0,
        events_during_swap: 0,
        parked: 0,
        tables: tables.iter().map(|t| t.to_string()).collect(),
        last_position: 0,
        refreshed: Vec::new(),
        duration_ms: 0,
    };
    let mut cursor = LogCursor::START;
    let batch_size = options.batch_size.max(1);
    loop {
        let batch = log.read_after(cursor, batch_size).await?;
        let Some(last) = batch.last() else { break };
        cursor = LogCursor::after(last);
        let mut tx = pool.begin().await?;
        sqlx::query(&format!("SET LOCAL search_path = {schema}, public"))
            .execute(&mut *tx)
            .await?;
        let applied = apply_batch(&applier, &mut tx, &batch, &mut report, Isolation::Batch).await;
        if let Err(RebuildError::Apply(error)) = &applied {
            if error.is_poison() {
                // Again with a savepoint per event, to park the poison one alone.
                tx.rollback().await?;
                tx = pool.begin().await?;
                sqlx::query(&format!("SET LOCAL search_path = {schema}, public"))
                    .execute(&mut *tx)
                    .await?;
                apply_batch(&applier, &mut tx, &batch, &mut report, Isolation::PerEvent).await?;
            } else {
                applied?;
            }
        } else {
            applied?;
        }
        tx.commit().await?;
        report.last_position = last.position;
        if let Some(metrics) = &options.metrics {
            metrics.events.inc_by(batch.len() as u64);
            metrics.position.set(last.position);
            metrics
                .progress
                .set((last.position as f64 / head as f64).min(1.0));
        }
    }

    // The swap: live applying pauses on the lock; nothing it applied can be missing here, as it
    // applies only what the relay published, which was below the log's horizon already.
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(PROJECTION_LOCK_KEY)
        .execute(&mut *tx)
        .await?;
    // Read before writing: this transaction has no id yet, so it holds no horizon back.
    let mut rest: Vec<StoredEvent> = Vec::new();
    loop {
        let batch = log.read_after(cursor, batch_size).await?;
        let Some(last) = batch.last() else { break };
        cursor = LogCursor::after(last);
        rest.extend(batch);
    }
    sqlx::query(&format!("SET LOCAL search_path = {schema}, public"))
        .execute(&mut *tx)
        .await?;
    let before = report.events;
    apply_batch(&applier, &mut tx, &rest, &mut report, Isolation::PerEvent).await?;
    report.events_during_swap = report.events - before;
    if let Some(last) = rest.last() {
        report.last_position = last.position;
    }
    sqlx::query("SET LOCAL search_path = public")
        .execute(&mut *tx)
        .await?;
    // Other projectors' bookkeeping stays as it is; ours keeps the live stream sequence, so the
    // lag metric stays meaningful until the live projector passes the rebuilt position.
    for table in BOOKKEEPING_TABLES {
        sqlx::query(&format!(
            "INSERT INTO {schema}.{table} SELECT * FROM public.{table} WHERE projector <> $1"
        ))
        .bind(&options.projector)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(&format!(
        "UPDATE {schema}.projection_checkpoints n SET stream_sequence = GREATEST(n.stream_sequence, o.stream_sequence) \
         FROM public.projection_checkpoints o WHERE o.projector = n.projector AND n.projector = $1"
    ))
    .bind(&options.projector)
    .execute(&mut *tx)
    .await?;
    swap(&mut tx, &schema, &old_schema, &tables).await?;
    tx.commit().await?;
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {old_schema} CASCADE"))
        .execute(pool)
        .await?;
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(pool)
        .await?;

    if rollups == UsageRollups::Managed {
        report.refreshed = refresh_continuous_aggregates(pool).await?;
    }
    if let Some(metrics) = &options.metrics {
        metrics.events.inc_by(report.events_during_swap);
        metrics.progress.set(1.0);
        metrics.position.set(report.last_position);
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    tracing::info!(?report, "rebuild swapped in");
    Ok(report)
}

/// How a batch isolates a poison event: not at all (the fast path; a poison database error
/// aborts the batch, which is then applied again per event) or with a savepoint per event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isolation {
    Batch,
    PerEvent,
}

/// Applies `batch` through the live projector's guard (parking what it parks) and moves the
/// checkpoint past it; counts go into `report` only for what the caller commits.
async fn apply_batch(
    applier: &Applier,
    conn: &mut PgConnection,
    batch: &[StoredEvent],
    report: &mut RebuildReport,
    isolation: Isolation,
) -> Result<(), RebuildError> {
    let (mut events, mut parked) = (0, 0);
    if isolation == Isolation::Batch {
        let applied = applier.apply_batch(conn, batch, Guard::Live).await?;
        events += batch.len() as u64 - applied.parked;
        parked += applied.parked;
    } else {
        for event in batch {
            sqlx::query("SAVEPOINT rebuild_event").execute(&mut *conn).await?;
            match applier
                .apply_batch(conn, std::slice::from_ref(event), Guard::Live)
                .await
            {
                Ok(applied) if applied.parked > 0 => parked += 1,
                Ok(_) => events += 1,
                Err(error) if error.is_poison() => {
                    sqlx::query("ROLLBACK TO SAVEPOINT rebuild_event")
                        .execute(&mut *conn)
                        .await?;
                    applier.park(conn, event, &error.to_string()).await?;
                    parked += 1;
                }
                Err(error) => return Err(error.into()),
            }
            sqlx::query("RELEASE SAVEPOINT rebuild_event")
                .execute(&mut *conn)
                .await?;
        }
    }
    if let Some(last) = batch.last() {
        checkpoint::advance(conn, &applier.projector, LogCursor::after(last), 0).await?;
    }
    report.events += events;
    report.parked += parked;
    Ok(())
}

/// Schemas of rebuilds that died half-way (only while holding the rebuild lock).
async fn drop_leftovers(pool: &PgPool) -> Result<(), sqlx::Error> {
    let leftovers: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname ~ '^rebuild_[0-9]+(_old)?$'",
    )
    .fetch_all(pool)
    .await?;
    for schema in leftovers {
        tracing::warn!(%schema, "dropping the leftovers of an interrupted rebuild");
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .execute(pool)
            .await?;
    }
    Ok(())
}

/// An index's definition without its name and schema, to pair old and new indexes.
const INDEXES: &str = "SELECT i.relname::text, \
     regexp_replace(pg_get_indexdef(x.indexrelid), '^CREATE (UNIQUE )?INDEX \\S+ ON \\S+ ', 'CREATE \\1INDEX ON t ') \
     FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid \
     JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = $1 AND t.relname = $2";

async fn swap(
    conn: &mut PgConnection,
    schema: &str,
    old_schema: &str,
    tables: &[&str],
) -> Result<(), sqlx::Error> {
    // Index names: LIKE names the copies itself; restore the migration's names, so later
    // migrations that name an index still find it.
    let mut renames: Vec<(String, String)> = Vec::new();
    for table in tables {
        let old: Vec<(String, String)> = sqlx::query_as(INDEXES)
            .bind("public")
            .bind(table)
            .fetch_all(&mut *conn)
            .await?;
        let new: Vec<(String, String)> = sqlx::query_as(INDEXES)
            .bind(schema)
            .bind(table)
            .fetch_all(&mut *conn)
            .await?;
        for (new_name, definition) in new {
            if let Some((old_name, _)) = old.iter().find(|(_, d)| *d == definition) {
                if *old_name != new_name {
                    renames.push((new_name, old_name.clone()));
                }
            }
        }
    }
    sqlx::query(&format!("CREATE SCHEMA {old_schema}"))
        .execute(&mut *conn)
        .await?;
    for table in tables {
        sqlx::query(&format!("ALTER TABLE public.{table} SET SCHEMA {old_schema}"))
            .execute(&mut *conn)
            .await?;
        sqlx::query(&format!("ALTER TABLE {schema}.{table} SET SCHEMA public"))
            .execute(&mut *conn)
            .await?;
    }
    // Two steps, so a new name never collides with another copy's generated name.
    for (i, (from, _)) in renames.iter().enumerate() {
        sqlx::query(&format!(
            "ALTER INDEX public.\"{from}\" RENAME TO \"{schema}_ix{i}\""
        ))
        .execute(&mut *conn)
        .await?;
    }
    for (i, (_, to)) in renames.iter().enumerate() {
        sqlx::query(&format!(
            "ALTER INDEX public.\"{schema}_ix{i}\" RENAME TO \"{to}\""
        ))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// With TimescaleDB: `CALL refresh_continuous_aggregate` on each rollup view (outside any
/// transaction, as TimescaleDB requires).
async fn refresh_continuous_aggregates(pool: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    let mut refreshed = Vec::new();
    for view in ["sim_usage_hourly", "sim_usage_daily"] {
        let is_view: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' AND c.relname = $1 AND c.relkind = 'v')",
        )
        .bind(view)
        .fetch_one(pool)
        .await?;
        if is_view {
            sqlx::query(&format!(
                "CALL refresh_continuous_aggregate('{view}', NULL, NULL)"
            ))
            .execute(pool)
            .await?;
            refreshed.push(view.to_owned());
        }
    }
    Ok(refreshed)
}
