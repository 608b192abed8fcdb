//! `projectors rebuild`: replays the Postgres log into fresh tables and swaps them in
//! atomically, while readers keep reading the old ones. All the read models, or some of them
//! (`--model sims,quotas,sms,usage,fleet`).
//!
//! 1. A scratch schema `rebuild_<ms>` with an empty copy of every table the projector writes
//!    ([`tables::create`]), their secondary indexes dropped until the load is done.
//! 2. The bulk load ([`bulk`]): the log, page by page, through the live projector's own guard
//!    and fold, one fold held in memory across the whole replay; rows and versions written
//!    once at the end, rollups summed in one statement; the indexes built again. (Should a
//!    write fail on an event's own values, the rebuild starts over on the slower path that
//!    applies a batch per transaction and parks that event alone.)
//! 3. What was committed meanwhile, in batches ([`Applier::apply_batch`]) as the live
//!    projector applies it.
//! 4. One transaction takes [`PROJECTION_LOCK_KEY`] exclusively (the live projector takes it
//!    shared around each transaction, so live applying pauses), applies the rest, moves the
//!    old tables out of `public` and the new ones in (index names restored), commits; the old
//!    tables are dropped afterwards. The live projector then skips, through its version
//!    guard, what the rebuild already applied.
//!
//! A rebuild of all the read models replays the whole log and replaces the bookkeeping
//! (versions, checkpoint, parked events) too. A rebuild of some replays the log only up to the
//! live projector's checkpoint (read again under the lock at the swap), so the tables it swaps
//! in hold exactly what the live bookkeeping says is applied, and the bookkeeping stays.
//!
//! With TimescaleDB (`sim_usage` a hypertable, the rollups continuous aggregates) the usage
//! tables are not copied: `sim_usage` rows are keyed by event position and inserted
//! idempotently into the live hypertable (the days of those that were missing are registered
//! for a refresh, as the live projector does with late rows), and after the swap the
//! continuous aggregates are refreshed: the registered days, then everything up to the
//! horizons their policies keep ([`crate::rollup_refresh::refresh_all`]).

mod bulk;
mod options;
mod progress;
mod tables;

pub use options::{Method, ReadModel, RebuildError, RebuildOptions, RebuildReport};
use progress::Progress;

use std::time::Instant;

use eventstore::{GlobalLog, LogCursor, StoredEvent};
use sqlx::{PgConnection, PgPool};

use crate::apply::{Applier, ApplyError, Guard, UsageRollups, PROJECTION_LOCK_KEY};
use crate::checkpoint;

/// Only one rebuild at a time (a session lock on a dedicated connection).
pub const REBUILD_LOCK_KEY: i64 = 0x5349_4d52_4542_4c44; // "SIMREBLD"

/// The tables every rebuild copies (the bookkeeping is swapped only by a rebuild of all).
pub const READ_MODEL_TABLES: &[&str] = &[
    "sims",
    "sim_quotas",
    "sms_messages",
    "sim_status_history",
    "sim_connectivity_history",
    "fleet_history",
    "fleet_history_hourly",
    "fleet_history_origin",
    "projection_versions",
    "projection_checkpoints",
    "parked_events",
];

/// The bookkeeping tables whose other projectors' rows a rebuild carries over.
const BOOKKEEPING_TABLES: &[&str] = &["projection_versions", "projection_checkpoints", "parked_events"];

/// Copied too when the rollups are plain tables (no TimescaleDB).
pub const USAGE_TABLES: &[&str] = &[
    "sim_usage",
    "sim_usage_hourly",
    "sim_usage_daily",
    "fleet_usage_hourly",
    "fleet_usage_daily",
];

/// No upper bound: up to the log's horizon.
const HEAD: LogCursor = LogCursor {
    transaction_id: u64::MAX,
    position: i64::MAX,
};

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
    let mut result = run(pool, options, options.method, started).await;
    if let Err(RebuildError::Apply(error)) = &result {
        if error.is_poison() && options.method == Method::Bulk {
            tracing::warn!(%error, "the bulk load hit an event Postgres refuses; starting over in batches, to park it alone");
            result = run(pool, options, Method::Batches, started).await;
        }
    }
    if let Err(error) = sqlx::Connection::close(guard).await {
        tracing::debug!(%error, "closing the rebuild lock's connection");
    }
    result
}

/// The connection the scratch tables are written on: their schema first, and no wait for the
/// WAL flush (a crash leaves a scratch schema the next rebuild drops; the swap commits
/// normally, and its flush covers everything before it).
async fn scratch_connection(pool: &PgPool, schema: &str) -> Result<PgConnection, sqlx::Error> {
    let mut conn = pool.acquire().await?.detach();
    sqlx::query(&format!("SET search_path = {schema}, public"))
        .execute(&mut conn)
        .await?;
    sqlx::query("SET synchronous_commit = off")
        .execute(&mut conn)
        .await?;
    Ok(conn)
}

/// The last event a rebuild replays: the log's horizon, or (some models only) the live
/// projector's checkpoint (the least of its partitions'). `conn` must see `public` first.
async fn bound(conn: &mut PgConnection, options: &RebuildOptions) -> Result<LogCursor, sqlx::Error> {
    if options.all_models() {
        return Ok(HEAD);
    }
    checkpoint::least(conn, &options.projector).await
}

/// Reads the log's pages after `cursor` in a task of their own, one page ahead of the reader;
/// an empty page ends it (the channel then closes).
fn read_ahead(
    pool: PgPool,
    log: GlobalLog,
    options: RebuildOptions,
    mut cursor: LogCursor,
    batch_size: i64,
) -> tokio::sync::mpsc::Receiver<Result<Vec<StoredEvent>, RebuildError>> {
    let (pages, receiver) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        loop {
            let page = async {
                let up_to = bound(&mut *pool.acquire().await?, &options).await?;
                Ok::<_, RebuildError>(log.read_range(cursor, up_to, batch_size).await?)
            }
            .await;
            let done = match &page {
                Ok(page) => match page.last() {
                    Some(last) => {
                        cursor = LogCursor::after(last);
                        false
                    }
                    None => true,
                },
                Err(_) => true,
            };
            if pages.send(page).await.is_err() || done {
                return;
            }
        }
    });
    receiver
}

async fn run(
    pool: &PgPool,
    options: &RebuildOptions,
    method: Method,
    started: Instant,
) -> Result<RebuildReport, RebuildError> {
    let rollups = UsageRollups::detect(pool).await?;
    let all = options.all_models();
    let models: Vec<ReadModel> = if all {
        ReadModel::ALL.to_vec()
    } else {
        let mut models = options.models.clone();
        models.sort();
        models.dedup();
        models
    };
    // Every table the fold writes is copied (a model's rows may need another's, as a SIM's
    // quota summary needs its quotas); only the chosen ones are swapped in.
    let mut scratch: Vec<&str> = READ_MODEL_TABLES.to_vec();
    if rollups == UsageRollups::Tables {
        scratch.extend_from_slice(USAGE_TABLES);
    }
    let swapped: Vec<&str> = if all {
        scratch.clone()
    } else {
        models.iter().flat_map(|m| m.tables(rollups)).copied().collect()
    };
    tables::drop_leftovers(pool).await?;
    let schema = format!("rebuild_{}", chrono::Utc::now().timestamp_millis());
    let old_schema = format!("{schema}_old");
    tables::create(pool, &schema, &scratch).await?;
    tracing::info!(%schema, models = ?models, ?method, tables = ?swapped, "rebuild started");

    let applier = Applier::new(options.projector.clone(), rollups);
    // The checkpoint rows of the projector's partitions (its own name when unpartitioned): a
    // rebuild of everything leaves each at the end of what it replayed.
    let checkpoints = checkpoint::partition_names(&mut *pool.acquire().await?, &options.projector).await?;
    let log = GlobalLog::new(pool.clone());
    let mut report = RebuildReport {
        models: models.clone(),
        method,
        events: 0,
        events_during_swap: 0,
        parked: 0,
        tables: swapped.iter().map(|t| t.to_string()).collect(),
        last_position: 0,
        refreshed: Vec::new(),
        evictions: 0,
        duration_ms: 0,
    };
    let mut progress = Progress {
        metrics: options.metrics.as_ref(),
        started,
        logged: Instant::now(),
        head: log.head().await?.max(1),
    };
    let batch_size = options.batch_size.max(1);
    let mut conn = scratch_connection(pool, &schema).await?;
    let mut cursor = LogCursor::START;

    if method == Method::Bulk {
        let indexes = tables::drop_secondary_indexes(pool, &schema, &scratch).await?;
        let mut fold = bulk::BulkFold::new(applier.clone(), options.max_rows_in_memory);
        // The next page is read while this one is folded and written (Postgres reads on one
        // core while the fold runs on the other).
        let mut pages = read_ahead(pool.clone(), log.clone(), options.clone(), cursor, batch_size);
        while let Some(page) = pages.recv().await {
            let page = page?;
            let Some(last) = page.last() else { break };
            cursor = LogCursor::after(last);
            let counts = fold.apply_page(&mut conn, &page).await?;
            report.events += counts.events;
            report.parked += counts.parked;
            report.last_position = last.position;
            progress.replayed(page.len() as u64, report.events, last.position);
        }
        fold.write(&mut conn).await?;
        readmodel::usage::mark_all_usage_reported(&mut conn)
            .await
            .map_err(ApplyError::from)?;
        if rollups == UsageRollups::Tables {
            readmodel::usage::sum_rollups(&mut conn)
                .await
                .map_err(ApplyError::from)?;
        }
        if cursor != LogCursor::START {
            for name in &checkpoints {
                checkpoint::advance(&mut conn, name, cursor, 0).await?;
            }
        }
        report.evictions = fold.evictions;
        tables::create_indexes(pool, &indexes).await?;
        tracing::info!(events = report.events, "rebuild: bulk load done, indexes built");
    }

    // What came meanwhile (or, in batches, everything), a transaction per batch.
    loop {
        let up_to = bound(&mut *pool.acquire().await?, options).await?;
        let batch = log.read_range(cursor, up_to, batch_size).await?;
        let Some(last) = batch.last() else { break };
        cursor = LogCursor::after(last);
        let mut tx = sqlx::Connection::begin(&mut conn).await?;
        let applied = apply_batch(
            &applier,
            &checkpoints,
            &mut tx,
            &batch,
            &mut report,
            Isolation::Batch,
        )
        .await;
        match applied {
            Err(RebuildError::Apply(error)) if error.is_poison() => {
                // Again with a savepoint per event, to park the poison one alone.
                tx.rollback().await?;
                let mut tx = sqlx::Connection::begin(&mut conn).await?;
                apply_batch(
                    &applier,
                    &checkpoints,
                    &mut tx,
                    &batch,
                    &mut report,
                    Isolation::PerEvent,
                )
                .await?;
                tx.commit().await?;
            }
            other => {
                other?;
                tx.commit().await?;
            }
        }
        report.last_position = last.position;
        progress.replayed(batch.len() as u64, report.events, last.position);
    }
    if let Err(error) = sqlx::Connection::close(conn).await {
        tracing::debug!(%error, "closing the rebuild's scratch connection");
    }

    // The swap: live applying pauses on the lock; nothing it applied can be missing here (all
    // models: it applies only what is below the log's horizon; some: up to its checkpoint,
    // read now that it cannot move).
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(PROJECTION_LOCK_KEY)
        .execute(&mut *tx)
        .await?;
    let up_to = bound(&mut tx, options).await?;
    // Read before writing: this transaction has no id yet, so it holds no horizon back.
    let mut rest: Vec<StoredEvent> = Vec::new();
    loop {
        let batch = GlobalLog::read_range_on(&mut tx, cursor, up_to, batch_size).await?;
        let Some(last) = batch.last() else { break };
        cursor = LogCursor::after(last);
        rest.extend(batch);
    }
    sqlx::query(&format!("SET LOCAL search_path = {schema}, public"))
        .execute(&mut *tx)
        .await?;
    let before = report.events;
    apply_batch(
        &applier,
        &checkpoints,
        &mut tx,
        &rest,
        &mut report,
        Isolation::PerEvent,
    )
    .await?;
    report.events_during_swap = report.events - before;
    if let Some(last) = rest.last() {
        report.last_position = last.position;
    }
    sqlx::query("SET LOCAL search_path = public")
        .execute(&mut *tx)
        .await?;
    if all {
        // Other projectors' bookkeeping stays as it is; ours keeps the live stream sequence,
        // so the lag metric stays meaningful until the live projector passes the rebuilt
        // position.
        for table in BOOKKEEPING_TABLES {
            // Checkpoints are named by partition; versions and parked events by projector.
            sqlx::query(&format!(
                "INSERT INTO {schema}.{table} SELECT * FROM public.{table} WHERE projector <> ALL($1)"
            ))
            .bind(if *table == "projection_checkpoints" {
                &checkpoints
            } else {
                std::slice::from_ref(&options.projector)
            })
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(&format!(
            "UPDATE {schema}.projection_checkpoints n SET stream_sequence = GREATEST(n.stream_sequence, o.stream_sequence)              FROM public.projection_checkpoints o WHERE o.projector = n.projector AND n.projector = ANY($1)"
        ))
        .bind(&checkpoints)
        .execute(&mut *tx)
        .await?;
    }
    tables::swap(&mut tx, &schema, &old_schema, &swapped).await?;
    tx.commit().await?;
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {old_schema} CASCADE"))
        .execute(pool)
        .await?;
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .execute(pool)
        .await?;

    if rollups == UsageRollups::Managed && models.contains(&ReadModel::Usage) {
        report.refreshed = crate::rollup_refresh::refresh_all(pool).await?;
    }
    progress.replayed(report.events_during_swap, report.events, report.last_position);
    if let Some(metrics) = &options.metrics {
        metrics.progress.set(1.0);
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
    checkpoints: &[String],
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
        for name in checkpoints {
            checkpoint::advance(conn, name, LogCursor::after(last), 0).await?;
        }
    }
    report.events += events;
    report.parked += parked;
    Ok(())
}
