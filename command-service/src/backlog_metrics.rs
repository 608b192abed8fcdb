//! The command API's background work as gauges for Prometheus (the alerts on webhooks and bulk
//! jobs): what the counters cannot say. A subscription that went `failing` makes no more
//! attempts, so its failure rate falls to zero while nothing is delivered; a job nobody picks
//! up counts nothing at all. Loaded every `BACKLOG_METRICS_INTERVAL_SECS` from the tables the
//! command API owns. Every replica exports the same values; rules take `max`, never `sum`.

use std::time::Duration;

use prometheus::{Gauge, IntGaugeVec, Opts, Registry};
use sqlx::PgPool;

/// The statuses a subscription can have (`webhook_subscriptions.status`).
const SUBSCRIPTION_STATUSES: [&str; 3] = ["active", "paused", "failing"];
/// The statuses of a job not finished (`bulk_jobs.status`).
const UNFINISHED_JOB_STATUSES: [&str; 2] = ["queued", "running"];

#[derive(Clone, Debug)]
pub struct BacklogMetrics {
    subscriptions: IntGaugeVec,
    webhook_lag: Gauge,
    jobs: IntGaugeVec,
    oldest_queued_job: Gauge,
}

/// What one load read.
#[derive(Debug, Default, PartialEq)]
pub struct Backlog {
    /// Subscriptions per status.
    pub subscriptions: Vec<(String, i64)>,
    /// Of the active subscriptions, the age of the oldest event not yet dealt with (seconds; 0
    /// when every one is at the end of the log).
    pub webhook_lag_seconds: f64,
    /// Unfinished jobs per status.
    pub jobs: Vec<(String, i64)>,
    /// The age of the oldest job still queued (seconds; 0 when none).
    pub oldest_queued_job_seconds: f64,
}

impl BacklogMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let metrics = Self {
            subscriptions: IntGaugeVec::new(
                Opts::new("webhook_subscriptions", "Webhook subscriptions by status"),
                &["status"],
            )?,
            webhook_lag: Gauge::new(
                "webhook_delivery_lag_seconds",
                "Of the active webhook subscriptions, the age of the oldest event not yet delivered or passed over",
            )?,
            jobs: IntGaugeVec::new(
                Opts::new("bulk_jobs_unfinished", "Bulk jobs queued or running"),
                &["status"],
            )?,
            oldest_queued_job: Gauge::new(
                "bulk_job_oldest_queued_age_seconds",
                "The age of the oldest bulk job no worker has started (0 when none)",
            )?,
        };
        registry.register(Box::new(metrics.subscriptions.clone()))?;
        registry.register(Box::new(metrics.webhook_lag.clone()))?;
        registry.register(Box::new(metrics.jobs.clone()))?;
        registry.register(Box::new(metrics.oldest_queued_job.clone()))?;
        // Every series from the start, so that the alerts have one to read at 0.
        for status in SUBSCRIPTION_STATUSES {
            metrics.subscriptions.with_label_values(&[status]);
        }
        for status in UNFINISHED_JOB_STATUSES {
            metrics.jobs.with_label_values(&[status]);
        }
        Ok(metrics)
    }

    /// Shows `backlog`; a status it does not name is at 0.
    pub fn set(&self, backlog: &Backlog) {
        for status in SUBSCRIPTION_STATUSES {
            let count = count_of(&backlog.subscriptions, status);
            self.subscriptions.with_label_values(&[status]).set(count);
        }
        for status in UNFINISHED_JOB_STATUSES {
            self.jobs
                .with_label_values(&[status])
                .set(count_of(&backlog.jobs, status));
        }
        self.webhook_lag.set(backlog.webhook_lag_seconds);
        self.oldest_queued_job.set(backlog.oldest_queued_job_seconds);
    }

    /// Loads now and every `interval` until the task is dropped; a failed load leaves the last
    /// values (the database being away is what `service_ready` says).
    pub async fn run(self, pool: PgPool, interval: Duration) {
        loop {
            match load(&pool).await {
                Ok(backlog) => self.set(&backlog),
                Err(error) => tracing::warn!(%error, "backlog metrics: cannot load"),
            }
            tokio::time::sleep(interval).await;
        }
    }
}

fn count_of(counts: &[(String, i64)], status: &str) -> i64 {
    counts.iter().find(|(s, _)| s == status).map_or(0, |(_, n)| *n)
}

/// Reads the backlog: a few aggregate queries, the lag one indexed lookup per active
/// subscription.
pub async fn load(pool: &PgPool) -> Result<Backlog, sqlx::Error> {
    let subscriptions: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM webhook_subscriptions GROUP BY status")
            .fetch_all(pool)
            .await?;
    // The cursor is (transaction, position); the first event after its position is what the
    // dispatcher deals with next, near enough for an age in seconds.
    let webhook_lag_seconds: f64 = sqlx::query_scalar(
        "SELECT coalesce(max(extract(epoch FROM now() - next.recorded_at)), 0)::float8 \
         FROM webhook_subscriptions s \
         CROSS JOIN LATERAL (SELECT recorded_at FROM events WHERE position > s.cursor_position \
                             ORDER BY position LIMIT 1) next \
         WHERE s.status = 'active'",
    )
    .fetch_one(pool)
    .await?;
    let jobs: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, count(*) FROM bulk_jobs WHERE status IN ('queued', 'running') GROUP BY status",
    )
    .fetch_all(pool)
    .await?;
    let oldest_queued_job_seconds: f64 = sqlx::query_scalar(
        "SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 \
         FROM bulk_jobs WHERE status = 'queued'",
    )
    .fetch_one(pool)
    .await?;
    Ok(Backlog {
        subscriptions,
        webhook_lag_seconds: webhook_lag_seconds.max(0.0),
        jobs,
        oldest_queued_job_seconds: oldest_queued_job_seconds.max(0.0),
    })
}
