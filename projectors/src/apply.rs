//! The read-model writes: one stored event in, plain SQL out.
//!
//! [`Applier::apply_guarded`] is the only way in, for the live projector and for the rebuild
//! alike: it checks the aggregate's version in `projection_versions` (row locked), skips
//! duplicates, fills gaps from the `events` table (in sequence order, never out of order),
//! applies, records the version and moves the checkpoint. The caller owns the transaction
//! (and, for a rebuild, its `search_path`), so all of it commits or none of it does.
//!
//! The `sims` row follows the rules of `readmodel::sim_view_as_of` (the auditors' replay), so
//! that `GET /sims/{iccid}/state?as_of=now` equals `GET /sims/{iccid}`: SIM and quota events
//! move `last_position` / `updated_at` (the event's `recorded_at`, never `now()`); SMS events
//! do not touch the SIM's row.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use domain::ids::parse_quota_aggregate_id;
use domain::{QuotaEvent, SimEvent, SmsEvent};
use eventstore::{EventRow, StoredEvent, SELECT_EVENT};
use serde_json::Value;
use sqlx::{PgConnection, Postgres, QueryBuilder};
use uuid::Uuid;

/// The advisory lock between the live projector (shared, around each message) and the
/// rebuild's swap (exclusive): while the rebuild swaps tables in, live applying pauses.
pub const PROJECTION_LOCK_KEY: i64 = 0x5349_4d50_524f_4a31; // "SIMPROJ1"

/// Whether the usage rollups are tables the projector maintains (plain Postgres) or
/// TimescaleDB continuous aggregates (which must not be written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageRollups {
    /// `sim_usage_hourly` / `sim_usage_daily` are plain tables: upsert-add in the same
    /// transaction as `sim_usage`.
    Tables,
    /// Continuous aggregates (or absent): only `sim_usage` is written.
    Managed,
}

impl UsageRollups {
    /// Looks at `public.sim_usage_hourly`: a plain table (`relkind = 'r'`) or not.
    pub async fn detect(pool: &sqlx::PgPool) -> Result<Self, sqlx::Error> {
        let kind: Option<String> = sqlx::query_scalar(
            "SELECT c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' AND c.relname = 'sim_usage_hourly'",
        )
        .fetch_optional(pool)
        .await?;
        Ok(if kind.as_deref() == Some("r") {
            Self::Tables
        } else {
            Self::Managed
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The event (or one needed to fill a gap) does not decode: retrying cannot help.
    #[error(
        "event {aggregate_type}/{aggregate_id}#{sequence} (position {position}) cannot be decoded: {reason}"
    )]
    Decode {
        aggregate_type: String,
        aggregate_id: String,
        sequence: i64,
        position: i64,
        reason: String,
    },
    /// A gap that the event store cannot fill (yet): the message is retried later.
    #[error("{aggregate_type}/{aggregate_id}: events after version {version} and before {sequence} are missing from the event store")]
    MissingEvents {
        aggregate_type: String,
        aggregate_id: String,
        version: i64,
        sequence: i64,
    },
}

impl ApplyError {
    /// Whether retrying the same message later may succeed.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, ApplyError::Decode { .. })
    }

    fn decode(event: &StoredEvent, reason: impl ToString) -> Self {
        ApplyError::Decode {
            aggregate_type: event.aggregate_type.clone(),
            aggregate_id: event.aggregate_id.clone(),
            sequence: event.sequence,
            position: event.position,
            reason: reason.to_string(),
        }
    }
}

/// What happened to one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Applied, after `gap_filled` earlier events of the same aggregate read from Postgres.
    Applied { gap_filled: u64 },
    /// At or below the aggregate's version: nothing changed but the checkpoint.
    Duplicate,
}

/// Applies events for one projector name.
#[derive(Debug, Clone)]
pub struct Applier {
    pub projector: String,
    pub rollups: UsageRollups,
}

/// The event's writing transaction (as text, for `::xid8`): from the envelope, or looked up
/// when an older publisher left it out.
async fn transaction_id_of(
    conn: &mut PgConnection,
    event: &StoredEvent,
) -> Result<Option<String>, sqlx::Error> {
    match event.transaction_id {
        Some(id) => Ok(Some(id.to_string())),
        None => {
            sqlx::query_scalar("SELECT transaction_id::text FROM events WHERE position = $1")
                .bind(event.position)
                .fetch_optional(&mut *conn)
                .await
        }
    }
}

impl Applier {
    pub fn new(projector: impl Into<String>, rollups: UsageRollups) -> Self {
        Self {
            projector: projector.into(),
            rollups,
        }
    }

    /// The version guard, gap filling, the read-model writes and the checkpoint, on the
    /// caller's transaction. `stream_sequence` is the JetStream sequence of the message (0
    /// when the event comes from the Postgres log, as in a rebuild).
    pub async fn apply_guarded(
        &self,
        conn: &mut PgConnection,
        event: &StoredEvent,
        stream_sequence: i64,
    ) -> Result<Outcome, ApplyError> {
        let outcome = self.guard_and_apply(conn, event).await?;
        self.checkpoint(conn, event, stream_sequence).await?;
        Ok(outcome)
    }

    /// Applies, through the version guard, every event the global log holds between this
    /// projector's checkpoint and `event` (exclusive), and returns them. In order they are
    /// none; after a crash (the dead process's unacknowledged messages come back only after
    /// the ack wait, while later ones arrive at once) or with several replicas sharing the
    /// consumer, they are the events delivered elsewhere or late. Applying them first keeps
    /// the checkpoint meaning "everything up to here", which consistency tokens rely on; their
    /// late deliveries are then duplicates. Locks the checkpoint row: replicas apply in turn.
    pub async fn catch_up_before(
        &self,
        conn: &mut PgConnection,
        event: &StoredEvent,
    ) -> Result<Vec<StoredEvent>, ApplyError> {
        let checkpoint: Option<(String, i64)> = sqlx::query_as(
            "SELECT transaction_id::text, position FROM projection_checkpoints WHERE projector = $1 FOR UPDATE",
        )
        .bind(&self.projector)
        .fetch_optional(&mut *conn)
        .await?;
        // No checkpoint yet: the consumer delivers from the stream's start.
        let Some((checkpoint_tx, checkpoint_position)) = checkpoint else {
            return Ok(Vec::new());
        };
        let Some(event_tx) = transaction_id_of(conn, event).await? else {
            return Ok(Vec::new());
        };
        let rows: Vec<EventRow> = sqlx::query_as(&format!(
            "{SELECT_EVENT} WHERE (transaction_id, position) > ($1::text::xid8, $2) \
             AND (transaction_id, position) < ($3::text::xid8, $4) ORDER BY transaction_id, position"
        ))
        .bind(checkpoint_tx)
        .bind(checkpoint_position)
        .bind(event_tx)
        .bind(event.position)
        .fetch_all(&mut *conn)
        .await?;
        let mut applied = Vec::new();
        for earlier in rows.into_iter().map(StoredEvent::from) {
            if let Outcome::Applied { .. } = self.guard_and_apply(conn, &earlier).await? {
                applied.push(earlier);
            }
        }
        Ok(applied)
    }

    /// The version guard, gap filling and the read-model writes of one event (no checkpoint).
    async fn guard_and_apply(
        &self,
        conn: &mut PgConnection,
        event: &StoredEvent,
    ) -> Result<Outcome, ApplyError> {
        sqlx::query(
            "INSERT INTO projection_versions (projector, aggregate_type, aggregate_id, version) \
             VALUES ($1, $2, $3, 0) ON CONFLICT DO NOTHING",
        )
        .bind(&self.projector)
        .bind(&event.aggregate_type)
        .bind(&event.aggregate_id)
        .execute(&mut *conn)
        .await?;
        let version: i64 = sqlx::query_scalar(
            "SELECT version FROM projection_versions \
             WHERE projector = $1 AND aggregate_type = $2 AND aggregate_id = $3 FOR UPDATE",
        )
        .bind(&self.projector)
        .bind(&event.aggregate_type)
        .bind(&event.aggregate_id)
        .fetch_one(&mut *conn)
        .await?;

        let outcome = if event.sequence <= version {
            Outcome::Duplicate
        } else {
            let mut gap_filled = 0;
            if event.sequence > version + 1 {
                let missing = self.missing_events(conn, event, version).await?;
                if missing.len() as i64 != event.sequence - version - 1 {
                    return Err(ApplyError::MissingEvents {
                        aggregate_type: event.aggregate_type.clone(),
                        aggregate_id: event.aggregate_id.clone(),
                        version,
                        sequence: event.sequence,
                    });
                }
                for earlier in &missing {
                    self.apply_event(conn, earlier).await?;
                    gap_filled += 1;
                }
            }
            self.apply_event(conn, event).await?;
            sqlx::query(
                "UPDATE projection_versions SET version = $4 \
                 WHERE projector = $1 AND aggregate_type = $2 AND aggregate_id = $3",
            )
            .bind(&self.projector)
            .bind(&event.aggregate_type)
            .bind(&event.aggregate_id)
            .bind(event.sequence)
            .execute(&mut *conn)
            .await?;
            Outcome::Applied { gap_filled }
        };
        Ok(outcome)
    }

    /// The aggregate's events strictly between `version` and `event`, in sequence order.
    async fn missing_events(
        &self,
        conn: &mut PgConnection,
        event: &StoredEvent,
        version: i64,
    ) -> Result<Vec<StoredEvent>, sqlx::Error> {
        let rows: Vec<EventRow> = sqlx::query_as(&format!(
            "{SELECT_EVENT} WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence > $3 AND sequence < $4 \
             ORDER BY sequence"
        ))
        .bind(&event.aggregate_type)
        .bind(&event.aggregate_id)
        .bind(version)
        .bind(event.sequence)
        .fetch_all(&mut *conn)
        .await?;
        Ok(rows.into_iter().map(StoredEvent::from).collect())
    }

    /// Moves the checkpoint forward only: a redelivered older message never moves it back.
    async fn checkpoint(
        &self,
        conn: &mut PgConnection,
        event: &StoredEvent,
        stream_sequence: i64,
    ) -> Result<(), sqlx::Error> {
        let transaction_id = transaction_id_of(conn, event)
            .await?
            .unwrap_or_else(|| "0".to_owned());
        sqlx::query(
            "INSERT INTO projection_checkpoints (projector, transaction_id, position, stream_sequence, updated_at) \
             VALUES ($1, $2::text::xid8, $3, $4, now()) \
             ON CONFLICT (projector) DO UPDATE SET \
               stream_sequence = GREATEST(projection_checkpoints.stream_sequence, EXCLUDED.stream_sequence), \
               transaction_id = CASE WHEN (projection_checkpoints.transaction_id, projection_checkpoints.position) \
                 < (EXCLUDED.transaction_id, EXCLUDED.position) THEN EXCLUDED.transaction_id \
                 ELSE projection_checkpoints.transaction_id END, \
               position = CASE WHEN (projection_checkpoints.transaction_id, projection_checkpoints.position) \
                 < (EXCLUDED.transaction_id, EXCLUDED.position) THEN EXCLUDED.position \
                 ELSE projection_checkpoints.position END, \
               updated_at = now()",
        )
        .bind(&self.projector)
        .bind(transaction_id)
        .bind(event.position)
        .bind(stream_sequence)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// The read-model writes of one event, without any guard.
    pub async fn apply_event(&self, conn: &mut PgConnection, event: &StoredEvent) -> Result<(), ApplyError> {
        match event.aggregate_type.as_str() {
            "sim" => {
                let decoded = event
                    .to_domain::<SimEvent>()
                    .map_err(|e| ApplyError::decode(event, e))?;
                self.sim_event(conn, event, decoded).await
            }
            "quota" => {
                let decoded = event
                    .to_domain::<QuotaEvent>()
                    .map_err(|e| ApplyError::decode(event, e))?;
                self.quota_event(conn, event, decoded).await
            }
            "sms" => {
                let decoded = event
                    .to_domain::<SmsEvent>()
                    .map_err(|e| ApplyError::decode(event, e))?;
                self.sms_event(conn, event, decoded).await
            }
            other => {
                tracing::debug!(aggregate_type = other, "no read model for this aggregate type");
                Ok(())
            }
        }
    }

    async fn sim_event(
        &self,
        conn: &mut PgConnection,
        e: &StoredEvent,
        event: SimEvent,
    ) -> Result<(), ApplyError> {
        let iccid = e.aggregate_id.as_str();
        // `last_position` / `updated_at` only move forward: a redelivered SIM event may come
        // after a later quota event of the same SIM (each aggregate is in order, not the SIM).
        let mut q: QueryBuilder<Postgres> = QueryBuilder::new("UPDATE sims SET version = ");
        q.push_bind(e.sequence)
            .push(", updated_at = CASE WHEN last_position <= ")
            .push_bind(e.position)
            .push(" THEN ")
            .push_bind(e.recorded_at)
            .push(" ELSE updated_at END, last_position = GREATEST(last_position, ")
            .push_bind(e.position)
            .push(")");
        let mut new_status: Option<&'static str> = None;
        match event {
            SimEvent::SimRegistered {
                iccid: _,
                imsi,
                msisdn,
                label,
                tags,
                registered_at,
            } => {
                // A quota may (in principle) have been reported before the registration: its
                // numbers belong to the row from the start, as in the replay.
                sqlx::query(
                    "INSERT INTO sims (iccid, imsi, msisdn, label, tags, status, pending_change, provider_status, \
                       imei, imei_lock, registered_at, version, last_position, updated_at, \
                       data_total, data_remaining, data_expiry, sms_total, sms_remaining, sms_expiry) \
                     SELECT $1, $2, $3, $4, $5, 'inactive', NULL, NULL, NULL, false, $6, $7, $8, $9, \
                       d.total, d.remaining, d.expiry_date, s.total, s.remaining, s.expiry_date \
                     FROM (SELECT 1) AS one \
                     LEFT JOIN sim_quotas d ON d.iccid = $1 AND d.kind = 'data' \
                     LEFT JOIN sim_quotas s ON s.iccid = $1 AND s.kind = 'sms' \
                     ON CONFLICT (iccid) DO UPDATE SET imsi = EXCLUDED.imsi, msisdn = EXCLUDED.msisdn, \
                       label = EXCLUDED.label, tags = EXCLUDED.tags, status = EXCLUDED.status, \
                       registered_at = EXCLUDED.registered_at, version = EXCLUDED.version, \
                       last_position = EXCLUDED.last_position, updated_at = EXCLUDED.updated_at",
                )
                .bind(iccid)
                .bind(imsi.to_string())
                .bind(msisdn.map(|m| m.to_string()))
                .bind(label)
                .bind(tags)
                .bind(registered_at)
                .bind(e.sequence)
                .bind(e.position)
                .bind(e.recorded_at)
                .execute(&mut *conn)
                .await?;
                self.status_history(conn, e, None, "inactive").await?;
                return Ok(());
            }
            SimEvent::SimLabelChanged { label } => {
                q.push(", label = ").push_bind(label);
            }
            SimEvent::SimTagsChanged { tags } => {
                q.push(", tags = ").push_bind(tags);
            }
            SimEvent::ImeiLockChanged { enabled } => {
                q.push(", imei_lock = ").push_bind(enabled);
            }
            SimEvent::ImeiRecorded { imei } => {
                q.push(", imei = ").push_bind(imei.to_string());
            }
            SimEvent::ActivationRequested { .. } => {
                q.push(", pending_change = 'activation'");
            }
            SimEvent::SuspensionRequested { .. } => {
                q.push(", pending_change = 'suspension'");
            }
            SimEvent::ActivationCompleted { .. } => {
                q.push(", pending_change = NULL, provider_status = 'Enabled'");
                new_status = Some("active");
            }
            SimEvent::SuspensionCompleted { .. } => {
                q.push(", pending_change = NULL, provider_status = 'Disabled'");
                new_status = Some("suspended");
            }
            SimEvent::ActivationFailed { .. } | SimEvent::SuspensionFailed { .. } => {
                q.push(", pending_change = NULL");
            }
            SimEvent::SimTerminated { terminated_at, .. } => {
                q.push(", pending_change = NULL, terminated_at = ")
                    .push_bind(terminated_at);
                new_status = Some("terminated");
            }
            SimEvent::ProviderStatusChanged { to, sim_status, .. } => {
                q.push(", provider_status = ").push_bind(to.to_string());
                new_status = Some(sim_status.as_str());
            }
            SimEvent::ConnectivityChanged {
                network,
                country,
                rat,
                ip_address,
                observed_at,
            } => {
                q.push(", network = ")
                    .push_bind(network)
                    .push(", country = ")
                    .push_bind(country)
                    .push(", rat = ")
                    .push_bind(rat)
                    .push(", ip_address = ")
                    .push_bind(ip_address)
                    .push(", last_seen_at = ")
                    .push_bind(observed_at);
            }
            SimEvent::UsageRecorded {
                period_start,
                period_end,
                delta_data_bytes,
                delta_sms_mo,
                delta_sms_mt,
                ..
            } => {
                let occurred_at = e
                    .metadata
                    .get("occurred_at")
                    .and_then(|v| serde_json::from_value::<DateTime<Utc>>(v.clone()).ok())
                    .unwrap_or(e.recorded_at);
                let observed_at = occurred_at.clamp(period_start, period_end.max(period_start));
                self.usage(
                    conn,
                    e,
                    observed_at,
                    [delta_data_bytes, delta_sms_mo, delta_sms_mt].map(|v| v as i64),
                )
                .await?;
            }
        }
        if let Some(status) = new_status {
            q.push(", status = ").push_bind(status);
        }
        q.push(" WHERE iccid = ").push_bind(iccid);
        let old_status: Option<String> = match new_status {
            Some(_) => {
                sqlx::query_scalar("SELECT status FROM sims WHERE iccid = $1 FOR UPDATE")
                    .bind(iccid)
                    .fetch_optional(&mut *conn)
                    .await?
            }
            None => None,
        };
        let updated = q.build().execute(&mut *conn).await?.rows_affected();
        if updated == 0 {
            tracing::warn!(iccid, event_type = %e.event_type, "SIM event for a SIM without a row; skipped");
        }
        if let (Some(new), Some(old)) = (new_status, old_status) {
            if old != new {
                self.status_history(conn, e, Some(&old), new).await?;
            }
        }
        Ok(())
    }

    async fn status_history(
        &self,
        conn: &mut PgConnection,
        e: &StoredEvent,
        from: Option<&str>,
        to: &str,
    ) -> Result<(), sqlx::Error> {
        let actor = e.metadata.get("actor").and_then(Value::as_str);
        sqlx::query(
            "INSERT INTO sim_status_history (iccid, position, changed_at, from_status, to_status, event_type, actor) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (iccid, position) DO NOTHING",
        )
        .bind(&e.aggregate_id)
        .bind(e.position)
        .bind(e.recorded_at)
        .bind(from)
        .bind(to)
        .bind(&e.event_type)
        .bind(actor)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn usage(
        &self,
        conn: &mut PgConnection,
        e: &StoredEvent,
        observed_at: DateTime<Utc>,
        [data_bytes, sms_mo, sms_mt]: [i64; 3],
    ) -> Result<(), sqlx::Error> {
        let inserted = sqlx::query(
            "INSERT INTO sim_usage (iccid, observed_at, position, data_bytes, sms_mo, sms_mt) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(&e.aggregate_id)
        .bind(observed_at)
        .bind(e.position)
        .bind(data_bytes)
        .bind(sms_mo)
        .bind(sms_mt)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if inserted == 0 || self.rollups != UsageRollups::Tables {
            return Ok(());
        }
        let buckets = [
            ("sim_usage_hourly", TimeDelta::hours(1)),
            ("sim_usage_daily", TimeDelta::days(1)),
        ];
        for (table, width) in buckets {
            // Buckets in UTC from the epoch, as TimescaleDB's `time_bucket` cuts them.
            let bucket = observed_at.duration_trunc(width).unwrap_or(observed_at);
            sqlx::query(&format!(
                "INSERT INTO {table} (iccid, bucket, data_bytes, sms_mo, sms_mt) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (iccid, bucket) DO UPDATE SET data_bytes = {table}.data_bytes + EXCLUDED.data_bytes, \
                 sms_mo = {table}.sms_mo + EXCLUDED.sms_mo, sms_mt = {table}.sms_mt + EXCLUDED.sms_mt"
            ))
            .bind(&e.aggregate_id)
            .bind(bucket)
            .bind(data_bytes)
            .bind(sms_mo)
            .bind(sms_mt)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    async fn quota_event(
        &self,
        conn: &mut PgConnection,
        e: &StoredEvent,
        event: QuotaEvent,
    ) -> Result<(), ApplyError> {
        let (iccid, kind) =
            parse_quota_aggregate_id(&e.aggregate_id).map_err(|err| ApplyError::decode(e, err))?;
        let iccid = iccid.to_string();
        let kind = kind.as_str();
        sqlx::query(
            "INSERT INTO sim_quotas (iccid, kind, version, last_position, updated_at) VALUES ($1, $2, 0, $3, $4) \
             ON CONFLICT (iccid, kind) DO NOTHING",
        )
        .bind(&iccid)
        .bind(kind)
        .bind(e.position)
        .bind(e.recorded_at)
        .execute(&mut *conn)
        .await?;

        let mut q: QueryBuilder<Postgres> = QueryBuilder::new("UPDATE sim_quotas SET version = ");
        q.push_bind(e.sequence)
            .push(", last_position = ")
            .push_bind(e.position)
            .push(", updated_at = ")
            .push_bind(e.recorded_at);
        // As the aggregate's `apply`: `exhausted` follows `remaining` once the period's 100 %
        // alert fired; a new period re-arms every alert. (Right-hand sides see the old row.)
        fn numbers(q: &mut QueryBuilder<'_, Postgres>, total: u64, remaining: u64, period: u32) {
            let remaining = remaining as i64;
            let period = period as i32;
            q.push(", total = ")
                .push_bind(total as i64)
                .push(", remaining = ")
                .push_bind(remaining)
                .push(", thresholds_crossed = CASE WHEN period <> ")
                .push_bind(period)
                .push(" THEN '{}'::integer[] ELSE thresholds_crossed END, expired = CASE WHEN period <> ")
                .push_bind(period)
                .push(" THEN false ELSE expired END, exhausted = CASE WHEN period <> ")
                .push_bind(period)
                .push(" THEN false ELSE (")
                .push_bind(remaining)
                .push(" = 0 AND 100 = ANY(thresholds_crossed)) END, period = ")
                .push_bind(period);
        }
        match event {
            QuotaEvent::QuotaAssigned {
                total,
                remaining,
                expiry_date,
                period,
                ..
            } => {
                q.push(", expiry_date = ").push_bind(expiry_date);
                numbers(&mut q, total, remaining, period);
            }
            QuotaEvent::QuotaConsumptionRecorded { remaining, .. } => {
                let remaining = remaining as i64;
                q.push(", remaining = ")
                    .push_bind(remaining)
                    .push(", exhausted = (")
                    .push_bind(remaining)
                    .push(" = 0 AND 100 = ANY(thresholds_crossed))");
            }
            QuotaEvent::QuotaThresholdCrossed { threshold, .. } => {
                let threshold = i32::from(threshold);
                q.push(", thresholds_crossed = CASE WHEN ")
                    .push_bind(threshold)
                    .push(" = ANY(thresholds_crossed) THEN thresholds_crossed ELSE array_append(thresholds_crossed, ")
                    .push_bind(threshold)
                    .push(") END");
            }
            QuotaEvent::QuotaExhausted { .. } => {
                q.push(", exhausted = true");
            }
            QuotaEvent::QuotaExpired { .. } => {
                q.push(", expired = true");
            }
            QuotaEvent::TopUpRequested {
                request_id,
                volume,
                requested_at,
                ..
            } => {
                q.push(", pending_topup_id = ")
                    .push_bind(request_id)
                    .push(", pending_topup_volume = ")
                    .push_bind(volume as i64)
                    .push(", last_topup_at = ")
                    .push_bind(requested_at)
                    .push(", last_topup_status = 'requested'");
            }
            QuotaEvent::TopUpCompleted {
                total,
                remaining,
                period,
                ..
            } => {
                // The event carries no time of its own: when it was recorded.
                q.push(", pending_topup_id = NULL, pending_topup_volume = NULL, last_topup_at = ")
                    .push_bind(e.recorded_at)
                    .push(", last_topup_status = 'completed'");
                numbers(&mut q, total, remaining, period);
            }
            QuotaEvent::TopUpFailed { failed_at, .. } => {
                q.push(", pending_topup_id = NULL, pending_topup_volume = NULL, last_topup_at = ")
                    .push_bind(failed_at)
                    .push(", last_topup_status = 'failed'");
            }
            QuotaEvent::TopUpOutcomeUnknown { at, .. } => {
                q.push(", pending_topup_id = NULL, pending_topup_volume = NULL, last_topup_at = ")
                    .push_bind(at)
                    .push(", last_topup_status = 'unknown'");
            }
        }
        q.push(" WHERE iccid = ")
            .push_bind(&iccid)
            .push(" AND kind = ")
            .push_bind(kind);
        q.build().execute(&mut *conn).await?;

        // The SIM's summary of this quota, and its last position.
        sqlx::query(&format!(
            "UPDATE sims SET {kind}_total = q.total, {kind}_remaining = q.remaining, {kind}_expiry = q.expiry_date, \
             updated_at = CASE WHEN sims.last_position <= $3 THEN $4 ELSE sims.updated_at END, \
             last_position = GREATEST(sims.last_position, $3) \
             FROM sim_quotas q WHERE sims.iccid = $1 AND q.iccid = sims.iccid AND q.kind = $2"
        ))
        .bind(&iccid)
        .bind(kind)
        .bind(e.position)
        .bind(e.recorded_at)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn sms_event(
        &self,
        conn: &mut PgConnection,
        e: &StoredEvent,
        event: SmsEvent,
    ) -> Result<(), ApplyError> {
        let message_id: Uuid = e.aggregate_id.parse().map_err(|err| ApplyError::decode(e, err))?;
        let iccid = event.iccid().to_string();
        let mut q: QueryBuilder<Postgres> = QueryBuilder::new("UPDATE sms_messages SET version = ");
        q.push_bind(e.sequence)
            .push(", last_position = ")
            .push_bind(e.position)
            .push(", updated_at = ")
            .push_bind(e.recorded_at);
        match event {
            SmsEvent::SmsSendRequested {
                payload,
                source_address,
                encoding,
                parts,
                requested_at,
                ..
            } => {
                let encoding = serde_json::to_value(encoding)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned));
                sqlx::query(
                    "INSERT INTO sms_messages (message_id, iccid, direction, status, payload, encoding, parts, \
                       source_address, requested_at, version, last_position, updated_at) \
                     VALUES ($1, $2, 'MT', 'requested', $3, $4, $5, $6, $7, $8, $9, $10) \
                     ON CONFLICT (message_id) DO UPDATE SET iccid = EXCLUDED.iccid, direction = 'MT', \
                       status = 'requested', payload = EXCLUDED.payload, encoding = EXCLUDED.encoding, \
                       parts = EXCLUDED.parts, source_address = EXCLUDED.source_address, \
                       requested_at = EXCLUDED.requested_at, version = EXCLUDED.version, \
                       last_position = EXCLUDED.last_position, updated_at = EXCLUDED.updated_at",
                )
                .bind(message_id)
                .bind(&iccid)
                .bind(payload)
                .bind(encoding)
                .bind(i32::from(parts))
                .bind(source_address)
                .bind(requested_at)
                .bind(e.sequence)
                .bind(e.position)
                .bind(e.recorded_at)
                .execute(&mut *conn)
                .await?;
                return Ok(());
            }
            SmsEvent::SmsReceived {
                payload,
                source_address,
                provider_message_id,
                received_at,
                ..
            } => {
                sqlx::query(
                    "INSERT INTO sms_messages (message_id, iccid, direction, status, payload, source_address, \
                       provider_message_id, received_at, version, last_position, updated_at) \
                     VALUES ($1, $2, 'MO', 'received', $3, $4, $5, $6, $7, $8, $9) \
                     ON CONFLICT (message_id) DO UPDATE SET iccid = EXCLUDED.iccid, direction = 'MO', \
                       status = 'received', payload = EXCLUDED.payload, source_address = EXCLUDED.source_address, \
                       provider_message_id = EXCLUDED.provider_message_id, received_at = EXCLUDED.received_at, \
                       version = EXCLUDED.version, last_position = EXCLUDED.last_position, \
                       updated_at = EXCLUDED.updated_at",
                )
                .bind(message_id)
                .bind(&iccid)
                .bind(payload)
                .bind(source_address)
                .bind(provider_message_id)
                .bind(received_at)
                .bind(e.sequence)
                .bind(e.position)
                .bind(e.recorded_at)
                .execute(&mut *conn)
                .await?;
                return Ok(());
            }
            SmsEvent::SmsSubmitted {
                provider_message_id,
                submitted_at,
                ..
            } => {
                q.push(", status = 'submitted', provider_message_id = ")
                    .push_bind(provider_message_id)
                    .push(", submitted_at = ")
                    .push_bind(submitted_at);
            }
            SmsEvent::SmsDelivered { delivered_at, .. } => {
                q.push(", status = 'delivered', delivered_at = ")
                    .push_bind(delivered_at);
            }
            SmsEvent::SmsFailed {
                reason, failed_at, ..
            } => {
                q.push(", status = 'failed', failure_reason = ")
                    .push_bind(reason)
                    .push(", failed_at = ")
                    .push_bind(failed_at);
            }
            SmsEvent::SmsOutcomeUnknown { reason, .. } => {
                q.push(", status = 'unknown', failure_reason = ")
                    .push_bind(reason);
            }
        }
        q.push(" WHERE message_id = ").push_bind(message_id);
        q.build().execute(&mut *conn).await?;
        Ok(())
    }
}
