//! The `GET /sims` list over the `sims` read model: filters, sorts, keyset cursors and the
//! page query. The query API parses the HTTP parameters into these and answers with the rows.

use chrono::{DateTime, SecondsFormat, Utc};
use domain::{QuotaKind, QuotaState, SimStatus};
use sqlx::{PgPool, Postgres, QueryBuilder};

use crate::sims::{SimView, SIM_COLUMNS};

/// The list's filters, validated; they combine with AND.
#[derive(Debug, Default, Clone)]
pub struct SimFilter {
    pub statuses: Option<Vec<SimStatus>>,
    /// SIMs carrying all of these.
    pub tags: Option<Vec<String>>,
    /// A `LIKE` pattern over the label (see [`SimFilter::label_containing`]).
    pub label: Option<String>,
    /// Prefixes (digits).
    pub iccid: Option<String>,
    pub imsi: Option<String>,
    pub msisdn: Option<String>,
    /// SIMs whose quota is in one of these states (see [`QuotaState`]): the quota of
    /// `quota_kind`, or without one the worse of the SIM's two.
    pub quota_states: Option<Vec<QuotaState>>,
    pub quota_kind: Option<QuotaKind>,
}

impl SimFilter {
    /// The label pattern of a case-insensitive substring.
    pub fn label_containing(text: &str) -> String {
        format!("%{}%", escape_like(text))
    }

    /// `FROM sims WHERE …`: the rows these filters select, for a count of them.
    pub fn push_from_where(&self, query: &mut QueryBuilder<'_, Postgres>) {
        query.push("FROM sims");
        self.push_where(query);
    }

    /// ` WHERE …` of these filters.
    fn push_where(&self, query: &mut QueryBuilder<'_, Postgres>) {
        query.push(" WHERE true");
        if let Some(statuses) = &self.statuses {
            query
                .push(" AND status = ANY(")
                .push_bind(statuses.iter().map(|s| s.as_str()).collect::<Vec<_>>())
                .push(")");
        }
        if let Some(tags) = &self.tags {
            query.push(" AND tags @> ").push_bind(tags.clone());
        }
        if let Some(label) = &self.label {
            query.push(" AND label ILIKE ").push_bind(label.clone());
        }
        if let Some(states) = &self.quota_states {
            // Generated, indexed columns (`migrations/20261205300001_quota_states.sql`).
            let column = match self.quota_kind {
                None => "quota_state",
                Some(QuotaKind::Data) => "data_quota_state",
                Some(QuotaKind::Sms) => "sms_quota_state",
            };
            query
                .push(format!(" AND {column} = ANY("))
                .push_bind(states.iter().map(|s| s.as_str()).collect::<Vec<_>>())
                .push(")");
        }
        for (column, prefix) in [
            ("iccid", &self.iccid),
            ("imsi", &self.imsi),
            ("msisdn", &self.msisdn),
        ] {
            if let Some(prefix) = prefix {
                query
                    .push(format!(" AND {column} LIKE "))
                    .push_bind(format!("{prefix}%"));
            }
        }
    }
}

/// `%`, `_` and `\` match themselves in a `LIKE` pattern.
pub fn escape_like(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// Where a keyset page starts: after the row with this sort value and ICCID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct After {
    pub value: Option<String>,
    pub iccid: String,
}

/// A sort column of the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortColumn {
    pub name: &'static str,
    /// Nulls sort last in both directions.
    pub nullable: bool,
    /// A timestamp (a cursor carries it as RFC 3339).
    pub time: bool,
}

/// Every column the list sorts by.
pub const SORT_COLUMNS: &[SortColumn] = &[
    SortColumn {
        name: "iccid",
        nullable: false,
        time: false,
    },
    SortColumn {
        name: "imsi",
        nullable: false,
        time: false,
    },
    SortColumn {
        name: "msisdn",
        nullable: true,
        time: false,
    },
    SortColumn {
        name: "label",
        nullable: true,
        time: false,
    },
    SortColumn {
        name: "status",
        nullable: false,
        time: false,
    },
    SortColumn {
        name: "registered_at",
        nullable: false,
        time: true,
    },
    SortColumn {
        name: "updated_at",
        nullable: false,
        time: true,
    },
    SortColumn {
        name: "last_seen_at",
        nullable: true,
        time: true,
    },
];

/// A sort of the list: a column and a direction; ties are broken by ICCID in the same
/// direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub column: SortColumn,
    pub descending: bool,
}

impl Sort {
    /// The sort a key names (`label`, `-registered_at`, …; none: by ICCID).
    pub fn from_key(key: Option<&str>) -> Option<Self> {
        let key = key.unwrap_or("iccid").trim();
        let (descending, name) = match key.strip_prefix('-') {
            Some(name) => (true, name),
            None => (false, key),
        };
        let column = SORT_COLUMNS.iter().find(|c| c.name == name).copied()?;
        Some(Self { column, descending })
    }

    /// Every key [`Sort::from_key`] takes.
    pub fn keys() -> Vec<String> {
        SORT_COLUMNS
            .iter()
            .flat_map(|c| [c.name.to_owned(), format!("-{}", c.name)])
            .collect()
    }

    pub fn key(self) -> String {
        format!("{}{}", if self.descending { "-" } else { "" }, self.column.name)
    }

    pub fn order_by(self) -> String {
        let direction = if self.descending { "DESC" } else { "ASC" };
        let name = self.column.name;
        if name == "iccid" {
            return format!("iccid {direction}");
        }
        let nulls = if self.column.nullable { " NULLS LAST" } else { "" };
        format!("{name} {direction}{nulls}, iccid {direction}")
    }

    /// The row's value of the sort column, as a cursor carries it.
    pub fn value_of(self, sim: &SimView) -> Option<String> {
        let time = |t: &DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Micros, true);
        match self.column.name {
            "iccid" => Some(sim.iccid.clone()),
            "imsi" => Some(sim.imsi.clone()),
            "msisdn" => sim.msisdn.clone(),
            "label" => sim.label.clone(),
            "status" => Some(sim.status.as_str().to_owned()),
            "registered_at" => Some(time(&sim.registered_at)),
            "updated_at" => Some(time(&sim.updated_at)),
            _ => sim.last_seen_at.as_ref().map(time),
        }
    }

    /// ` AND <rows after the cursor, in this order>`.
    fn push_after(self, query: &mut QueryBuilder<'_, Postgres>, cursor: &After) {
        let op = if self.descending { "<" } else { ">" };
        let name = self.column.name;
        let cast = if self.column.time { "::timestamptz" } else { "" };
        if name == "iccid" {
            query
                .push(format!(" AND iccid {op} "))
                .push_bind(cursor.iccid.clone());
            return;
        }
        match &cursor.value {
            // Past a null only nulls follow (nulls sort last either way).
            None => {
                query
                    .push(format!(" AND {name} IS NULL AND iccid {op} "))
                    .push_bind(cursor.iccid.clone());
            }
            Some(value) => {
                query
                    .push(format!(" AND (({name}, iccid) {op} ("))
                    .push_bind(value.clone())
                    .push(format!("{cast}, "))
                    .push_bind(cursor.iccid.clone())
                    .push(")");
                if self.column.nullable {
                    query.push(format!(" OR {name} IS NULL"));
                }
                query.push(")");
            }
        }
    }
}

/// One page of the list: `limit` rows in `sort` order, after `after` (keyset) or from row
/// `offset`.
pub async fn page(
    pool: &PgPool,
    filter: &SimFilter,
    sort: Sort,
    after: Option<&After>,
    limit: i64,
    offset: Option<i64>,
) -> Result<Vec<SimView>, sqlx::Error> {
    let mut select = QueryBuilder::new(format!("SELECT {SIM_COLUMNS} FROM sims"));
    filter.push_where(&mut select);
    if let Some(after) = after {
        sort.push_after(&mut select, after);
    }
    select
        .push(format!(" ORDER BY {} LIMIT ", sort.order_by()))
        .push_bind(limit);
    if let Some(offset) = offset {
        select.push(" OFFSET ").push_bind(offset);
    }
    select.build_query_as().fetch_all(pool).await
}

/// Every SIM a filter selects, in `sort` order, read a batch at a time through a server-side
/// cursor in one read-only transaction (one snapshot for the whole export): what
/// `GET /sims/export` streams. Only one batch is held at a time, whatever the fleet's size.
pub struct SimCursor {
    tx: sqlx::Transaction<'static, Postgres>,
    batch: i64,
    done: bool,
}

impl SimCursor {
    pub async fn open(
        pool: &PgPool,
        filter: &SimFilter,
        sort: Sort,
        batch: i64,
    ) -> Result<Self, sqlx::Error> {
        let mut tx = pool.begin().await?;
        sqlx::query("SET TRANSACTION READ ONLY").execute(&mut *tx).await?;
        let mut declare = QueryBuilder::new(format!(
            "DECLARE sims_export NO SCROLL CURSOR FOR SELECT {SIM_COLUMNS} FROM sims"
        ));
        filter.push_where(&mut declare);
        declare.push(format!(" ORDER BY {}", sort.order_by()));
        declare.build().execute(&mut *tx).await?;
        Ok(Self {
            tx,
            batch: batch.max(1),
            done: false,
        })
    }

    /// The next rows; empty once every row was read (the transaction is then closed).
    pub async fn next_batch(&mut self) -> Result<Vec<SimView>, sqlx::Error> {
        if self.done {
            return Ok(Vec::new());
        }
        let rows: Vec<SimView> = sqlx::query_as(&format!("FETCH {} FROM sims_export", self.batch))
            .fetch_all(&mut *self.tx)
            .await?;
        if (rows.len() as i64) < self.batch {
            self.done = true;
            sqlx::query("CLOSE sims_export").execute(&mut *self.tx).await?;
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_are_escaped() {
        assert_eq!(escape_like(r"50%_a\b"), r"50\%\_a\\b");
    }

    #[test]
    fn sorts_order_with_nulls_last_and_iccid_ties() {
        let sort = Sort::from_key(Some("-label")).unwrap();
        assert_eq!(sort.order_by(), "label DESC NULLS LAST, iccid DESC");
        assert_eq!(sort.key(), "-label");
        assert_eq!(Sort::from_key(None).unwrap().order_by(), "iccid ASC");
        assert!(Sort::from_key(Some("colour")).is_none());
    }
}
