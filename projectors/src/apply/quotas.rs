//! The `sim_quotas` writes of quota events, and the SIM row's summary of them.

use domain::QuotaEvent;
use eventstore::StoredEvent;
use sqlx::{PgConnection, Postgres, QueryBuilder};

use super::{Applier, ApplyError};

impl Applier {
    pub(super) async fn quota_event(
        &self,
        conn: &mut PgConnection,
        e: &StoredEvent,
        iccid: &str,
        kind: &'static str,
        event: QuotaEvent,
    ) -> Result<(), ApplyError> {
        sqlx::query(
            "INSERT INTO sim_quotas (iccid, kind, version, last_position, updated_at) VALUES ($1, $2, 0, $3, $4) \
             ON CONFLICT (iccid, kind) DO NOTHING",
        )
        .bind(iccid)
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
            .push_bind(iccid)
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
        .bind(iccid)
        .bind(kind)
        .bind(e.position)
        .bind(e.recorded_at)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}
