//! What the bulk writes share. Rows go to Postgres as one array per column (`UNNEST`), so a
//! statement's text is the same whatever the batch size; array columns (`tags`,
//! `thresholds_crossed`) travel as JSON arrays, since Postgres arrays of arrays must be
//! rectangular.

use serde_json::Value;

pub(crate) fn json_array<T: serde::Serialize>(items: &[T]) -> Value {
    serde_json::to_value(items).unwrap_or(Value::Array(Vec::new()))
}

/// One column of `rows` (a slice of row references) as a `Vec`, to bind as an `UNNEST` array.
macro_rules! column {
    ($rows:expr, $field:ident) => {
        $rows.iter().map(|r| r.$field.clone()).collect::<Vec<_>>()
    };
}
pub(crate) use column;
