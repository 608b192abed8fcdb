//! The Postgres event store.
//!
//! - [`EventStore::execute`] runs a command against an aggregate: load, decide, append, with
//!   optimistic concurrency, an optional expected version (`If-Match`) and an optional
//!   idempotency key whose record commits in the same transaction as the events.
//! - [`GlobalLog`] reads every event in a gap-safe global order (see [`LogCursor`]).
//!
//! postgres-es's repository is not used for writing: it cannot commit an idempotency record in
//! the events' transaction nor return the positions it wrote. The table keeps its column names.

mod error;
mod log;
mod metadata;
mod share;
mod sim_history;
mod snapshot;
mod storage;
mod store;
mod stored;

pub use error::{ExecuteError, StoreError};
pub use log::{Backlog, GlobalLog, LogCursor};
pub use metadata::{CommandContext, EventMetadata, Idempotency};
pub use share::{partition_of, Share, ShareRead};
pub use storage::{check_read_model_storage, ReadModelStorage, StorageError};
pub use store::{
    handle_in_turn, CommandAnswer, EventStore, Executed, LoadedAggregate, DEFAULT_SNAPSHOT_EVERY,
};
pub use stored::StoredEvent;

/// Every migration of the platform (event store, auth, read models), embedded.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// Applies pending migrations, after checking that the server can hold the read models'
/// storage ([`check_read_model_storage`]). Safe when several services start at once: sqlx
/// serialises migrators with an advisory lock.
pub async fn migrate(pool: &sqlx::PgPool) -> Result<(), PrepareError> {
    check_read_model_storage(pool).await?;
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// Why a service's database is not ready for it.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("the database has migrations pending and MIGRATE_ON_START=false; run them first")]
    MigrationsPending,
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("cannot reach the database: {0}")]
    Database(#[from] sqlx::Error),
}

/// What every service does at start: apply pending migrations, or, when told not to
/// (`MIGRATE_ON_START=false`), refuse to run against a database that lacks some.
pub async fn prepare_database(pool: &sqlx::PgPool, migrate_on_start: bool) -> Result<(), PrepareError> {
    if migrate_on_start {
        return migrate(pool).await;
    }
    check_read_model_storage(pool).await?;
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(pool)
        .await
        .unwrap_or(0);
    if (applied as usize) < MIGRATOR.iter().count() {
        return Err(PrepareError::MigrationsPending);
    }
    Ok(())
}
