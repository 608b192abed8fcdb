//! The rebuild's tables: a scratch schema with a copy of each table, its secondary indexes
//! dropped while the bulk load runs and built again afterwards (one sort per index instead of
//! one insertion per row), and the swap of the copies into `public`.

use sqlx::{PgConnection, PgPool};

/// Creates `schema` with an empty copy of each of `tables` (`LIKE … INCLUDING ALL`).
pub(super) async fn create(pool: &PgPool, schema: &str, tables: &[&str]) -> Result<(), sqlx::Error> {
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(pool)
        .await?;
    for table in tables {
        sqlx::query(&format!(
            "CREATE TABLE {schema}.{table} (LIKE public.{table} INCLUDING ALL)"
        ))
        .execute(pool)
        .await?;
    }
    Ok(())
}

/// Drops the copies' non-unique indexes (the unique ones are what the writes' `ON CONFLICT`
/// needs) and returns their definitions, for [`create_indexes`].
pub(super) async fn drop_secondary_indexes(
    pool: &PgPool,
    schema: &str,
    tables: &[&str],
) -> Result<Vec<String>, sqlx::Error> {
    let mut definitions = Vec::new();
    for table in tables {
        let indexes: Vec<(String, String)> = sqlx::query_as(
            "SELECT i.relname::text, pg_get_indexdef(x.indexrelid) FROM pg_index x \
             JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid \
             JOIN pg_namespace n ON n.oid = t.relnamespace \
             WHERE n.nspname = $1 AND t.relname = $2 AND NOT x.indisunique",
        )
        .bind(schema)
        .bind(table)
        .fetch_all(pool)
        .await?;
        for (name, definition) in indexes {
            sqlx::query(&format!("DROP INDEX {schema}.\"{name}\""))
                .execute(pool)
                .await?;
            definitions.push(definition);
        }
    }
    Ok(definitions)
}

/// Builds the indexes [`drop_secondary_indexes`] dropped (their definitions name the schema).
pub(super) async fn create_indexes(pool: &PgPool, definitions: &[String]) -> Result<(), sqlx::Error> {
    for definition in definitions {
        sqlx::query(definition).execute(pool).await?;
    }
    Ok(())
}

/// Schemas of rebuilds that died half-way (only while holding the rebuild lock).
pub(super) async fn drop_leftovers(pool: &PgPool) -> Result<(), sqlx::Error> {
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

pub(super) async fn swap(
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
