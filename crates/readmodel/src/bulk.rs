//! What the bulk writes share. Rows go to Postgres as one array per column (`UNNEST`), so a
//! statement's text is the same whatever the batch size; array columns (`tags`,
//! `thresholds_crossed`) travel as JSON arrays, since Postgres arrays of arrays must be
//! rectangular.

use std::collections::HashMap;
use std::hash::Hash;

use serde_json::Value;
use sqlx::postgres::{PgHasArrayType, PgRow};
use sqlx::{PgConnection, Postgres};

pub(crate) fn json_array<T: serde::Serialize>(items: &[T]) -> Value {
    serde_json::to_value(items).unwrap_or(Value::Array(Vec::new()))
}

/// `ON CONFLICT (<key>) DO UPDATE SET c = EXCLUDED.c, …` for every column of `columns` (a
/// comma-separated list, as the tables' `*_COLUMNS`) but the key's and those in `kept`: an
/// upsert that replaces the row, keeping what another writer owns.
pub(crate) fn replace_on_conflict(key: &str, columns: &str, kept: &[&str]) -> String {
    let keys: Vec<&str> = key.split(',').map(str::trim).collect();
    let set: Vec<String> = columns
        .split(',')
        .map(str::trim)
        .filter(|c| !keys.contains(c) && !kept.contains(c))
        .map(|c| format!("{c} = EXCLUDED.{c}"))
        .collect();
    format!("ON CONFLICT ({key}) DO UPDATE SET {}", set.join(", "))
}

/// One column of `rows` (a slice of row references) as a `Vec`, to bind as an `UNNEST` array.
macro_rules! column {
    ($rows:expr, $field:ident) => {
        $rows.iter().map(|r| r.$field.clone()).collect::<Vec<_>>()
    };
}
pub(crate) use column;

/// Binds these columns of `rows`, in order ([`column!`] each).
macro_rules! bind_columns {
    ($query:expr, $rows:expr; $($field:ident),+ $(,)?) => {
        $query$(.bind(crate::bulk::column!($rows, $field)))+
    };
}
pub(crate) use bind_columns;

/// The rows of `table` (read with `columns`) whose `key` column is one of `keys`, by the key
/// `key_of` gives each row: how a batch loads the rows it will fold events into.
pub(crate) async fn load_keyed<R, Q, K>(
    conn: &mut PgConnection,
    columns: &str,
    table: &str,
    key: &str,
    keys: &[Q],
    key_of: impl Fn(&R) -> K,
) -> Result<HashMap<K, R>, sqlx::Error>
where
    R: for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin,
    Q: for<'q> sqlx::Encode<'q, Postgres> + sqlx::Type<Postgres> + PgHasArrayType + Sync,
    K: Eq + Hash,
{
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<R> = sqlx::query_as(&format!("SELECT {columns} FROM {table} WHERE {key} = ANY($1)"))
        .bind(keys)
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().map(|row| (key_of(&row), row)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upsert_replaces_every_column_but_the_key_and_the_kept() {
        assert_eq!(
            replace_on_conflict("iccid, kind", "iccid, kind, total, note", &["note"]),
            "ON CONFLICT (iccid, kind) DO UPDATE SET total = EXCLUDED.total"
        );
    }
}
