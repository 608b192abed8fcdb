//! Which storage the read models use: TimescaleDB (`sim_usage` a hypertable, the rollups
//! continuous aggregates) or plain PostgreSQL tables. The read-model migration chooses once, on
//! the database's first migration, from what the server offers; `read_model_storage` records
//! the choice, and later migrations follow the record, never the server's configuration of the
//! day, so a server that gains or loses the extension never leaves a half-converted schema.
//!
//! One server state cannot be migrated safely: the extension installed on the server but not in
//! `shared_preload_libraries`. `CREATE EXTENSION timescaledb` fails there, and a TimescaleDB
//! database cannot be read. The check below refuses to start with a message that says what to
//! change, before any migration runs (docs/operations.md says why it refuses rather than fall
//! back to plain tables).

use sqlx::PgPool;

/// The read-model migration: the first one that looks at TimescaleDB.
const READ_MODEL_MIGRATION: i64 = 20261128000003;

/// The read models' storage, as recorded for this database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadModelStorage {
    TimescaleDb,
    Postgres,
}

impl ReadModelStorage {
    /// The record in `read_model_storage`; `None` before the migrations have run.
    pub async fn recorded(pool: &PgPool) -> Result<Option<Self>, sqlx::Error> {
        let table: bool = sqlx::query_scalar("SELECT to_regclass('read_model_storage') IS NOT NULL")
            .fetch_one(pool)
            .await?;
        if !table {
            return Ok(None);
        }
        let storage: Option<String> = sqlx::query_scalar("SELECT storage FROM read_model_storage")
            .fetch_optional(pool)
            .await?;
        Ok(storage.map(|s| {
            if s == "timescaledb" {
                Self::TimescaleDb
            } else {
                Self::Postgres
            }
        }))
    }
}

/// What the server offers and what this database already holds.
#[derive(Debug)]
struct Server {
    /// The extension's files are installed on the server.
    available: bool,
    /// `timescaledb` is in `shared_preload_libraries`.
    preloaded: bool,
    /// The extension is created in this database.
    created: bool,
    /// The read-model migration has run here (the storage is chosen).
    chosen: bool,
}

impl Server {
    async fn read(pool: &PgPool) -> Result<Self, sqlx::Error> {
        let (available, libraries, created, migrations): (bool, String, bool, bool) = sqlx::query_as(
            "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'), \
                    current_setting('shared_preload_libraries'), \
                    EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'), \
                    to_regclass('_sqlx_migrations') IS NOT NULL",
        )
        .fetch_one(pool)
        .await?;
        let chosen = migrations
            && sqlx::query_scalar::<_, bool>(
                "SELECT EXISTS (SELECT 1 FROM _sqlx_migrations WHERE version = $1)",
            )
            .bind(READ_MODEL_MIGRATION)
            .fetch_one(pool)
            .await?;
        Ok(Self {
            available,
            preloaded: preloads_timescaledb(&libraries),
            created,
            chosen,
        })
    }
}

/// `shared_preload_libraries` is a comma-separated list of names or paths
/// (`timescaledb`, `'$libdir/timescaledb'`, quoted or not).
fn preloads_timescaledb(libraries: &str) -> bool {
    libraries.split(',').any(|library| {
        let name = library.trim().trim_matches(|c| c == '"' || c == '\'');
        name.rsplit('/').next() == Some("timescaledb")
    })
}

/// Why the read models' storage cannot be used on this server.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(
        "TimescaleDB is installed on this PostgreSQL server but not preloaded, so the read models \
         cannot be created: add timescaledb to shared_preload_libraries in postgresql.conf \
         (shared_preload_libraries = 'timescaledb') and restart PostgreSQL. A new database's read \
         models use TimescaleDB whenever the server offers it, and that choice is permanent for the \
         database; to run on plain PostgreSQL, use a server without the extension installed \
         (docs/operations.md, \"TimescaleDB or plain PostgreSQL\")"
    )]
    NotPreloadedForNewDatabase,
    #[error(
        "this database's read models are TimescaleDB hypertables and continuous aggregates, but \
         timescaledb is not in the server's shared_preload_libraries: add it \
         (shared_preload_libraries = 'timescaledb') and restart PostgreSQL"
    )]
    NotPreloaded,
    #[error("cannot read the server's configuration: {0}")]
    Database(#[from] sqlx::Error),
}

/// Checked before the migrations run, by every service's start path.
pub async fn check_read_model_storage(pool: &PgPool) -> Result<(), StorageError> {
    let server = Server::read(pool).await?;
    if server.preloaded || !server.available {
        if server.chosen && !server.created && server.available {
            tracing::warn!(
                "TimescaleDB is available on this server, but this database's read models were created \
                 as plain PostgreSQL tables and stay so (read_model_storage); to move them to TimescaleDB, \
                 start the platform on a new database and let it replay the log"
            );
        }
        return Ok(());
    }
    // Available, not preloaded.
    if !server.chosen {
        return Err(StorageError::NotPreloadedForNewDatabase);
    }
    if server.created {
        return Err(StorageError::NotPreloaded);
    }
    Ok(()) // a plain database on a server that has the package: nothing of it is used
}

#[cfg(test)]
mod tests {
    use super::preloads_timescaledb;

    #[test]
    fn finds_timescaledb_among_the_preloaded_libraries() {
        for yes in [
            "timescaledb",
            "pg_stat_statements, timescaledb",
            "'$libdir/timescaledb'",
            "\"timescaledb\",auto_explain",
        ] {
            assert!(preloads_timescaledb(yes), "{yes}");
        }
        for no in [
            "",
            "pg_stat_statements",
            "timescaledb_toolkit",
            "timescaledb-2.23.1",
        ] {
            assert!(!preloads_timescaledb(no), "{no}");
        }
    }
}
