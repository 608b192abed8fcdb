//! The subscriptions and deliveries tables: what the routes and the dispatcher do with them.

use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

use crate::{DeliveryView, SubscriptionView};

const VIEW_COLUMNS: &str = "id, url, description, event_types, tag, status, failure_reason, created_by, \
     created_at, updated_at, cursor_position, attempts";

/// A subscription to create; its cursor starts at `cursor` (transaction id, position).
#[derive(Debug, Clone)]
pub struct NewSubscription {
    pub url: String,
    pub description: Option<String>,
    pub event_types: Vec<String>,
    pub tag: Option<String>,
    pub secret: String,
    pub created_by: String,
    pub cursor: (u64, i64),
}

/// A subscription claimed by a dispatcher: what it needs to deliver.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    pub id: Uuid,
    pub url: String,
    pub event_types: Vec<String>,
    pub tag: Option<String>,
    pub secret: String,
    pub cursor_transaction_id: i64,
    pub cursor_position: i64,
    pub attempts: i32,
}

/// The tables' owner.
#[derive(Clone)]
pub struct Webhooks {
    pool: PgPool,
}

impl Webhooks {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub async fn create(&self, new: NewSubscription) -> Result<SubscriptionView, sqlx::Error> {
        sqlx::query_as(&format!(
            "INSERT INTO webhook_subscriptions (id, url, description, event_types, secret, created_by, \
             cursor_transaction_id, cursor_position, tag) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             RETURNING {VIEW_COLUMNS}"
        ))
        .bind(Uuid::now_v7())
        .bind(&new.url)
        .bind(&new.description)
        .bind(&new.event_types)
        .bind(&new.secret)
        .bind(&new.created_by)
        .bind(new.cursor.0 as i64)
        .bind(new.cursor.1)
        .bind(&new.tag)
        .fetch_one(&self.pool)
        .await
    }

    pub async fn list(&self) -> Result<Vec<SubscriptionView>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT {VIEW_COLUMNS} FROM webhook_subscriptions ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await
    }

    pub async fn get(&self, id: Uuid) -> Result<Option<SubscriptionView>, sqlx::Error> {
        sqlx::query_as(&format!(
            "SELECT {VIEW_COLUMNS} FROM webhook_subscriptions WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
    }

    /// Changes what is given; `status` `active` also clears the failure and makes it due now;
    /// `cursor` moves the cursor (a replay from a position); `tag` `Some("")` removes the tag
    /// filter. `None` when there is no such id.
    #[allow(clippy::too_many_arguments)]
    pub async fn update(
        &self,
        id: Uuid,
        url: Option<&str>,
        description: Option<&str>,
        event_types: Option<&[String]>,
        tag: Option<&str>,
        status: Option<&str>,
        cursor: Option<(u64, i64)>,
    ) -> Result<Option<SubscriptionView>, sqlx::Error> {
        sqlx::query_as(&format!(
            "UPDATE webhook_subscriptions SET \
               url = coalesce($2, url), description = coalesce($3, description), \
               event_types = coalesce($4, event_types), status = coalesce($5, status), \
               failure_reason = CASE WHEN $5 = 'active' THEN NULL ELSE failure_reason END, \
               attempts = CASE WHEN $5 = 'active' OR $6::bigint IS NOT NULL THEN 0 ELSE attempts END, \
               next_attempt_at = CASE WHEN $5 = 'active' OR $6::bigint IS NOT NULL THEN now() ELSE next_attempt_at END, \
               cursor_transaction_id = coalesce($6, cursor_transaction_id), \
               cursor_position = coalesce($7, cursor_position), \
               tag = CASE WHEN $8::text IS NULL THEN tag ELSE nullif($8, '') END, updated_at = now() \
             WHERE id = $1 RETURNING {VIEW_COLUMNS}"
        ))
        .bind(id)
        .bind(url)
        .bind(description)
        .bind(event_types)
        .bind(status)
        .bind(cursor.map(|c| c.0 as i64))
        .bind(cursor.map(|c| c.1))
        .bind(tag)
        .fetch_optional(&self.pool)
        .await
    }

    /// Deletes the subscription and its deliveries; false when there was none.
    pub async fn delete(&self, id: Uuid) -> Result<bool, sqlx::Error> {
        let done = sqlx::query("DELETE FROM webhook_subscriptions WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// A page of the subscription's deliveries, newest event first, and how many there are.
    pub async fn deliveries(
        &self,
        id: Uuid,
        page: i64,
        page_size: i64,
    ) -> Result<(Vec<DeliveryView>, i64), sqlx::Error> {
        let rows = sqlx::query_as(
            "SELECT id, position, event_id, event_type, attempts, last_status, last_error, \
             last_attempt_at, delivered_at FROM webhook_deliveries WHERE subscription_id = $1 \
             ORDER BY position DESC LIMIT $2 OFFSET $3",
        )
        .bind(id)
        .bind(page_size)
        .bind((page - 1).max(0) * page_size)
        .fetch_all(&self.pool)
        .await?;
        let total = sqlx::query_scalar("SELECT count(*) FROM webhook_deliveries WHERE subscription_id = $1")
            .bind(id)
            .fetch_one(&self.pool)
            .await?;
        Ok((rows, total))
    }

    /// Claims up to `limit` active subscriptions that are due and not held by another
    /// dispatcher, for `lease`.
    /// `busy`: subscriptions `owner` is delivering right now, not claimed again.
    pub async fn claim(
        &self,
        owner: Uuid,
        limit: i64,
        lease: Duration,
        busy: &[Uuid],
    ) -> Result<Vec<Claimed>, sqlx::Error> {
        sqlx::query_as(
            "UPDATE webhook_subscriptions s SET lease_owner = $1, lease_until = now() + make_interval(secs => $2) \
             FROM (SELECT id FROM webhook_subscriptions WHERE status = 'active' AND next_attempt_at <= now() \
                   AND (lease_until IS NULL OR lease_until < now() OR lease_owner = $1) AND id <> ALL($4) \
                   ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) AS picked \
             WHERE s.id = picked.id \
             RETURNING s.id, s.url, s.event_types, s.tag, s.secret, s.cursor_transaction_id, s.cursor_position, s.attempts",
        )
        .bind(owner)
        .bind(lease.as_secs_f64())
        .bind(limit)
        .bind(busy)
        .fetch_all(&self.pool)
        .await
    }

    /// Gives back the leases of `owner` (it stops).
    pub async fn release(&self, owner: Uuid) -> Result<u64, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE webhook_subscriptions SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1",
        )
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Moves the cursor to `cursor` (events the filter skips, or one just delivered) and
    /// extends the lease by `lease`, while `owner` still holds it and the subscription is
    /// active; false otherwise (the lease ran out, it was paused or deleted).
    pub async fn advance(
        &self,
        owner: Uuid,
        id: Uuid,
        cursor: (u64, i64),
        lease: Duration,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE webhook_subscriptions SET cursor_transaction_id = $3, cursor_position = $4, attempts = 0, \
               lease_until = now() + make_interval(secs => $5) \
             WHERE id = $1 AND lease_owner = $2 AND status = 'active' \
               AND (cursor_transaction_id, cursor_position) < ($3, $4)",
        )
        .bind(id)
        .bind(owner)
        .bind(cursor.0 as i64)
        .bind(cursor.1)
        .bind(lease.as_secs_f64())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The delivery row of (subscription, position), created on the first attempt: its id is
    /// sent as `X-Sim-Delivery` on every attempt.
    pub async fn delivery_id(
        &self,
        id: Uuid,
        position: i64,
        event_id: &str,
        event_type: &str,
    ) -> Result<Uuid, sqlx::Error> {
        sqlx::query_scalar(
            "INSERT INTO webhook_deliveries (id, subscription_id, position, event_id, event_type, attempts, last_attempt_at) \
             VALUES ($1, $2, $3, $4, $5, 0, now()) \
             ON CONFLICT (subscription_id, position) DO UPDATE SET event_id = EXCLUDED.event_id \
             RETURNING id",
        )
        .bind(Uuid::now_v7())
        .bind(id)
        .bind(position)
        .bind(event_id)
        .bind(event_type)
        .fetch_one(&self.pool)
        .await
    }

    /// Records an attempt at a delivery while `owner` holds the lease. The cursor moves
    /// afterwards ([`Webhooks::advance`]): a crash between the two sends the event once more
    /// (at least once; receivers deduplicate by `X-Sim-Event-Id`).
    pub async fn record_attempt(
        &self,
        owner: Uuid,
        delivery: Uuid,
        status: Option<i32>,
        error: Option<&str>,
        delivered: bool,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = $2, last_error = $3, \
             last_attempt_at = now(), delivered_at = CASE WHEN $4 THEN now() ELSE delivered_at END \
             WHERE id = $1 AND EXISTS (SELECT 1 FROM webhook_subscriptions s \
               WHERE s.id = webhook_deliveries.subscription_id AND s.lease_owner = $5)",
        )
        .bind(delivery)
        .bind(status)
        .bind(error)
        .bind(delivered)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A delivered attempt, recorded and the cursor moved past it in one statement (one round
    /// trip per delivered event), while `owner` holds the lease and the subscription is active;
    /// false otherwise (as [`Webhooks::advance`]).
    pub async fn delivered(
        &self,
        owner: Uuid,
        id: Uuid,
        delivery: Uuid,
        status: i32,
        cursor: (u64, i64),
        lease: Duration,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "WITH attempt AS ( \
               UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = $3, last_error = NULL, \
                 last_attempt_at = now(), delivered_at = now() \
               WHERE id = $1 AND subscription_id = $2 AND EXISTS (SELECT 1 FROM webhook_subscriptions s \
                 WHERE s.id = $2 AND s.lease_owner = $4)) \
             UPDATE webhook_subscriptions SET cursor_transaction_id = $5, cursor_position = $6, attempts = 0, \
               lease_until = now() + make_interval(secs => $7) \
             WHERE id = $2 AND lease_owner = $4 AND status = 'active' \
               AND (cursor_transaction_id, cursor_position) < ($5, $6)",
        )
        .bind(delivery)
        .bind(id)
        .bind(status)
        .bind(owner)
        .bind(cursor.0 as i64)
        .bind(cursor.1)
        .bind(lease.as_secs_f64())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// After a failed attempt: counts it, makes the subscription due again after `backoff`,
    /// or, at `max_attempts`, marks it `failing` with `reason`. Returns whether it is failing.
    pub async fn failed(
        &self,
        owner: Uuid,
        id: Uuid,
        backoff: Duration,
        max_attempts: i32,
        reason: &str,
    ) -> Result<bool, sqlx::Error> {
        let status: Option<String> = sqlx::query_scalar(
            "UPDATE webhook_subscriptions SET attempts = attempts + 1, \
               next_attempt_at = now() + make_interval(secs => $3), \
               status = CASE WHEN attempts + 1 >= $4 THEN 'failing' ELSE status END, \
               failure_reason = CASE WHEN attempts + 1 >= $4 THEN $5 ELSE failure_reason END, \
               updated_at = now() \
             WHERE id = $1 AND lease_owner = $2 AND status = 'active' RETURNING status",
        )
        .bind(id)
        .bind(owner)
        .bind(backoff.as_secs_f64())
        .bind(max_attempts)
        .bind(reason)
        .fetch_optional(&self.pool)
        .await?;
        Ok(status.as_deref() == Some("failing"))
    }
}
