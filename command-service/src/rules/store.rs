//! The rule engine's tables (`rule_engine`, `rule_firings`, migration
//! 20261207200002_rules.sql), owned by the command API.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::Fired;

const ENGINE: &str = "default";

/// A firing as `GET /rules/{id}/firings` shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct FiringView {
    /// The causing event's position and id (`causation_id` of the command is derived from it).
    pub event_position: i64,
    pub event_id: String,
    pub event_type: String,
    pub iccid: String,
    pub action: String,
    /// `applied`, `refused` (with the domain's `code`) or `failed`.
    pub outcome: String,
    pub code: Option<String>,
    pub message: Option<String>,
    pub command_id: Option<Uuid>,
    pub command_position: Option<i64>,
    pub fired_at: DateTime<Utc>,
}

/// What a firing was about.
pub struct Cause<'a> {
    pub rule_id: Uuid,
    pub position: i64,
    pub event_id: &'a str,
    pub event_type: &'a str,
    pub iccid: &'a str,
    pub action: &'a str,
}

#[derive(Clone)]
pub struct RuleTables {
    pool: PgPool,
}

impl RuleTables {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Creates the engine's row with its cursor at `head` unless it exists: the first engine
    /// ever acts on events from then on, not on the whole history.
    pub async fn start_at(&self, head: (u64, i64)) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO rule_engine (name, cursor_transaction_id, cursor_position) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(ENGINE)
        .bind(head.0 as i64)
        .bind(head.1)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Takes (or keeps) the engine's lease for `lease` and returns its cursor; `None` while
    /// another replica holds it (or before [`RuleTables::start_at`]).
    pub async fn claim(&self, owner: Uuid, lease: Duration) -> Result<Option<(u64, i64)>, sqlx::Error> {
        let cursor: Option<(i64, i64)> = sqlx::query_as(
            "UPDATE rule_engine SET lease_owner = $2, lease_until = now() + make_interval(secs => $3) \
             WHERE name = $1 AND (lease_owner IS NULL OR lease_owner = $2 OR lease_until < now()) \
             RETURNING cursor_transaction_id, cursor_position",
        )
        .bind(ENGINE)
        .bind(owner)
        .bind(lease.as_secs_f64())
        .fetch_optional(&self.pool)
        .await?;
        Ok(cursor.map(|(transaction_id, position)| (transaction_id as u64, position)))
    }

    /// Moves the cursor while `owner` holds the lease; false when it does not any more.
    pub async fn advance(&self, owner: Uuid, cursor: (u64, i64)) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE rule_engine SET cursor_transaction_id = $3, cursor_position = $4 \
             WHERE name = $1 AND lease_owner = $2",
        )
        .bind(ENGINE)
        .bind(owner)
        .bind(cursor.0 as i64)
        .bind(cursor.1)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn release(&self, owner: Uuid) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE rule_engine SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1")
            .bind(owner)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Whether (rule, event) fired already (a restart between the firing and the cursor).
    pub async fn fired(&self, rule_id: Uuid, position: i64) -> Result<bool, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM rule_firings WHERE rule_id = $1 AND event_position = $2)",
        )
        .bind(rule_id)
        .bind(position)
        .fetch_one(&self.pool)
        .await
    }

    /// Records a firing once (a second record of the same (rule, event) is ignored).
    pub async fn record(&self, cause: &Cause<'_>, fired: &Fired) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO rule_firings (rule_id, event_position, event_id, event_type, iccid, action, outcome, \
             code, message, command_id, command_position) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (rule_id, event_position) DO NOTHING",
        )
        .bind(cause.rule_id)
        .bind(cause.position)
        .bind(cause.event_id)
        .bind(cause.event_type)
        .bind(cause.iccid)
        .bind(cause.action)
        .bind(fired.outcome)
        .bind(&fired.code)
        .bind(&fired.message)
        .bind(fired.command_id)
        .bind(fired.command_position)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A page of a rule's firings, newest first, and how many there are.
    pub async fn firings(
        &self,
        rule_id: Uuid,
        page: i64,
        size: i64,
    ) -> Result<(Vec<FiringView>, i64), sqlx::Error> {
        let rows = sqlx::query_as(
            "SELECT event_position, event_id, event_type, iccid, action, outcome, code, message, command_id, \
             command_position, fired_at FROM rule_firings WHERE rule_id = $1 \
             ORDER BY event_position DESC LIMIT $2 OFFSET $3",
        )
        .bind(rule_id)
        .bind(size)
        .bind((page - 1).max(0) * size)
        .fetch_all(&self.pool)
        .await?;
        let total = sqlx::query_scalar("SELECT count(*) FROM rule_firings WHERE rule_id = $1")
            .bind(rule_id)
            .fetch_one(&self.pool)
            .await?;
        Ok((rows, total))
    }

    /// Of `positions`, those at which the rule fired already.
    pub async fn fired_at(&self, rule_id: Uuid, positions: &[i64]) -> Result<Vec<i64>, sqlx::Error> {
        sqlx::query_scalar(
            "SELECT event_position FROM rule_firings WHERE rule_id = $1 AND event_position = ANY($2)",
        )
        .bind(rule_id)
        .bind(positions)
        .fetch_all(&self.pool)
        .await
    }
}
