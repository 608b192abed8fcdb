//! The `sims`, `sim_status_history` and usage writes of SIM events.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use domain::SimEvent;
use eventstore::StoredEvent;
use serde_json::Value;
use sqlx::{PgConnection, Postgres, QueryBuilder};

use super::{Applier, ApplyError, UsageRollups};

impl Applier {
    pub(super) async fn sim_event(
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

    pub(super) async fn status_history(
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

    pub(super) async fn usage(
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
}
