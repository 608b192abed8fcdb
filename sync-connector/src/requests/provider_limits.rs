//! 1NCE's self-set limits as the connector reads them (what 1NCE offers per service and what
//! it has now) into `provider_limits`, for the command API's `GET /api/v1/limits`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use once_client::{Limit, LimitService};
use tokio::sync::watch;

use super::Requests;
use crate::error::SyncError;

/// One limit of `provider_limits`.
struct Row {
    service: &'static str,
    id: i64,
    value: Option<String>,
    unit: Option<String>,
    current: bool,
}

/// How often 1NCE's limits (offered and current) are read when nothing changes them.
const LIMITS_READ_INTERVAL: Duration = Duration::from_secs(6 * 3600);

impl Requests {
    /// Reads 1NCE's limits at start and every [`LIMITS_READ_INTERVAL`] (and after each change
    /// the connector carries out), for the command API's `GET /api/v1/limits`.
    pub async fn limits_loop(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            if let Err(error) = self.read_provider_limits().await {
                tracing::warn!(%error, "could not read 1NCE's limits; will try again later");
            }
            tokio::select! {
                _ = tokio::time::sleep(LIMITS_READ_INTERVAL) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Replaces `provider_limits` with what 1NCE offers and has now.
    pub async fn read_provider_limits(&self) -> Result<(), SyncError> {
        // Reads may overlap (the periodic one and one after a change): the one that started
        // last wins, whichever commits last.
        let started = Utc::now();
        let mut rows: Vec<Row> = Vec::new();
        let mut row = |service: LimitService, limit: &Limit, current: bool| {
            if let Some(id) = limit.id.and_then(|id| i64::try_from(id).ok()) {
                rows.push(Row {
                    service: service.as_str(),
                    id,
                    value: limit.limit.clone(),
                    unit: limit.unit.clone(),
                    current,
                });
            }
        };
        for service in [LimitService::Data, LimitService::SmsMt, LimitService::SmsMo] {
            for limit in self.client.selectable_limits(service).await? {
                row(service, &limit, false);
            }
        }
        let current = self.client.limits().await?;
        for (service, limit) in [
            (LimitService::Data, &current.data),
            (LimitService::SmsMt, &current.sms_mt),
            (LimitService::SmsMo, &current.sms_mo),
        ] {
            if let Some(limit) = limit {
                row(service, limit, true);
            }
        }
        let mut tx = self.dispatches.pool().begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('provider_limits'))")
            .execute(&mut *tx)
            .await?;
        let newest: Option<DateTime<Utc>> =
            sqlx::query_scalar("SELECT max(observed_at) FROM provider_limits")
                .fetch_one(&mut *tx)
                .await?;
        if newest.is_some_and(|newest| newest >= started) {
            return Ok(());
        }
        sqlx::query("DELETE FROM provider_limits")
            .execute(&mut *tx)
            .await?;
        for Row {
            service,
            id,
            value,
            unit,
            current,
        } in rows
        {
            sqlx::query(
                "INSERT INTO provider_limits (service, limit_id, value, unit, current, observed_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            )
            .bind(service)
            .bind(id)
            .bind(value)
            .bind(unit)
            .bind(current)
            .bind(started)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
