//! The fleet as gauges for Prometheus (the business dashboard and its alerts): the fleet summary
//! of `GET /fleet/summary`, loaded every `FLEET_METRICS_INTERVAL_SECS` from the read models.
//! Every replica exports the same values; rules take `max`, never `sum`.

use std::time::Duration;

use chrono::Utc;
use prometheus::{Gauge, IntGauge, IntGaugeVec, Opts, Registry};
use readmodel::FleetSummary;
use sqlx::PgPool;

#[derive(Clone, Debug)]
pub struct FleetMetrics {
    sims: IntGaugeVec,
    exhausted: IntGaugeVec,
    warning: IntGaugeVec,
    quota_total: IntGaugeVec,
    quota_remaining: IntGaugeVec,
    topups_pending: IntGaugeVec,
    topups_failed: IntGauge,
    topups_unknown: IntGauge,
    sms: IntGaugeVec,
    changes_pending: IntGauge,
    oldest_usage_age: Gauge,
    without_usage: IntGauge,
}

impl FleetMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let vec = |name: &str, help: &str, label: &str| IntGaugeVec::new(Opts::new(name, help), &[label]);
        let metrics = Self {
            sims: vec("sims_total", "SIMs by status", "status")?,
            exhausted: vec(
                "fleet_quotas_exhausted",
                "SIMs whose quota of this kind is used up (100 %)",
                "kind",
            )?,
            warning: vec(
                "fleet_quotas_warning",
                "SIMs with at least 80 % of this quota used and something left",
                "kind",
            )?,
            quota_total: vec(
                "fleet_quota_total",
                "Sum of the quotas of this kind (bytes for data, messages for SMS)",
                "kind",
            )?,
            quota_remaining: vec(
                "fleet_quota_remaining",
                "Sum of what is left of the quotas of this kind",
                "kind",
            )?,
            topups_pending: vec(
                "fleet_topups_pending",
                "Top-ups requested and not settled yet",
                "kind",
            )?,
            topups_failed: IntGauge::new(
                "fleet_topups_failed",
                "Quotas whose last top-up failed at the provider",
            )?,
            topups_unknown: IntGauge::new(
                "fleet_topups_outcome_unknown",
                "Quotas whose last top-up has no known outcome (the provider never answered)",
            )?,
            sms: vec("fleet_sms_messages", "SMS messages by status", "status")?,
            changes_pending: IntGauge::new(
                "fleet_changes_pending",
                "SIMs with a change requested at the provider and not yet seen there",
            )?,
            oldest_usage_age: Gauge::new(
                "fleet_oldest_usage_report_age_seconds",
                "Of the SIMs not terminated, the age of the oldest newest usage report (0 when none reported)",
            )?,
            without_usage: IntGauge::new(
                "fleet_sims_without_usage_report",
                "SIMs not terminated that have reported no usage yet",
            )?,
        };
        for collector in [
            &metrics.sims,
            &metrics.exhausted,
            &metrics.warning,
            &metrics.quota_total,
            &metrics.quota_remaining,
            &metrics.topups_pending,
            &metrics.sms,
        ] {
            registry.register(Box::new(collector.clone()))?;
        }
        for gauge in [
            &metrics.topups_failed,
            &metrics.topups_unknown,
            &metrics.changes_pending,
            &metrics.without_usage,
        ] {
            registry.register(Box::new(gauge.clone()))?;
        }
        registry.register(Box::new(metrics.oldest_usage_age.clone()))?;
        Ok(metrics)
    }

    /// Shows `summary`.
    pub fn set(&self, summary: &FleetSummary) {
        for (status, count) in &summary.sims_by_status {
            self.sims.with_label_values(&[status]).set(*count);
        }
        for (kind, totals) in [("data", &summary.data), ("sms", &summary.sms)] {
            self.exhausted.with_label_values(&[kind]).set(totals.exhausted);
            self.warning.with_label_values(&[kind]).set(totals.warning);
            self.quota_total.with_label_values(&[kind]).set(totals.total);
            self.quota_remaining
                .with_label_values(&[kind])
                .set(totals.remaining);
            self.topups_pending
                .with_label_values(&[kind])
                .set(totals.topups_pending);
        }
        self.topups_failed.set(summary.topups_failed);
        self.topups_unknown.set(summary.topups_outcome_unknown);
        // `unknown` always, so the alert on it has a series to read at 0.
        self.sms.with_label_values(&["unknown"]);
        for (status, count) in &summary.sms_messages_by_status {
            self.sms.with_label_values(&[status]).set(*count);
        }
        self.changes_pending.set(summary.changes_pending);
        let age = summary.oldest_usage_report_at.map_or(0.0, |at| {
            (Utc::now() - at).num_milliseconds().max(0) as f64 / 1000.0
        });
        self.oldest_usage_age.set(age);
        self.without_usage.set(summary.sims_without_usage_report);
    }

    /// Loads the summary now and every `interval` until the task is dropped; a failed load
    /// leaves the last values (the database being away is what `service_ready` says).
    pub async fn run(self, pool: PgPool, interval: Duration) {
        loop {
            match readmodel::load_fleet_summary(&pool).await {
                Ok(summary) => self.set(&summary),
                Err(error) => tracing::warn!(%error, "fleet metrics: cannot load the fleet summary"),
            }
            tokio::time::sleep(interval).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_the_summary() {
        let registry = Registry::new();
        let metrics = FleetMetrics::register(&registry).unwrap();
        let mut summary = FleetSummary::default();
        summary.sims_by_status.insert("active".into(), 7);
        summary.data.exhausted = 3;
        summary.topups_outcome_unknown = 2;
        summary.oldest_usage_report_at = Some(Utc::now() - chrono::Duration::hours(4));
        metrics.set(&summary);
        let mut text = Vec::new();
        prometheus::Encoder::encode(&prometheus::TextEncoder::new(), &registry.gather(), &mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        for line in [
            r#"sims_total{status="active"} 7"#,
            r#"fleet_quotas_exhausted{kind="data"} 3"#,
            r#"fleet_quotas_exhausted{kind="sms"} 0"#,
            "fleet_topups_outcome_unknown 2",
            r#"fleet_sms_messages{status="unknown"} 0"#,
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        let age = metrics.oldest_usage_age.get();
        assert!((4.0 * 3600.0..4.0 * 3600.0 + 60.0).contains(&age), "{age}");
    }
}
