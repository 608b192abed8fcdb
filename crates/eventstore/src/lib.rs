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
mod store;
mod stored;

pub use error::{ExecuteError, StoreError};
pub use log::{GlobalLog, LogCursor};
pub use metadata::{CommandContext, EventMetadata, Idempotency};
pub use store::{handle_in_turn, CommandAnswer, EventStore, Executed, LoadedAggregate};
pub use stored::StoredEvent;

/// Every migration of the platform (event store, auth, read models), embedded.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// Applies pending migrations. Safe when several services start at once: sqlx serialises
/// migrators with an advisory lock.
pub async fn migrate(pool: &sqlx::PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}
