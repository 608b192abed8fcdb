//! The connector's Prometheus metrics: polls, provider calls by endpoint and status, rate-limit
//! waits, differences found, commands issued, operator requests carried out and failed, and
//! the time since the last successful poll.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use once_client::CallObserver;
use prometheus::{Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry};

pub const PROVIDER_UNKNOWN: u8 = 0;
pub const PROVIDER_ANSWERS: u8 = 1;
pub const PROVIDER_FAILS: u8 = 2;

#[derive(Clone, Debug)]
pub struct SyncMetrics {
    pub polls: IntCounterVec,
    pub provider_calls: IntCounterVec,
    pub provider_call_seconds: HistogramVec,
    pub rate_limit_waits: IntCounter,
    pub rate_limit_wait_seconds: Gauge,
    pub differences: IntCounterVec,
    pub commands: IntCounterVec,
    pub requests: IntCounterVec,
    pub last_successful_poll: Gauge,
    pub seconds_since_successful_poll: Gauge,
    /// `sync_poll_interval_seconds`: the configured sweep period (alerts compare with it).
    pub poll_interval: Gauge,
    /// Until the first complete sweep, the poll age counts from here: a connector that never
    /// completes one must not look fresh.
    started: std::time::Instant,
    /// What the provider's last call showed: [`PROVIDER_UNKNOWN`], [`PROVIDER_ANSWERS`] or
    /// [`PROVIDER_FAILS`] (no answer or 5xx), for `/ready`.
    provider: Arc<AtomicU8>,
    /// `pipeline_forged_messages_total{consumer}`: request messages that did not match the
    /// stored event they named, acknowledged without effect.
    pub forged: IntCounterVec,
}

impl SyncMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let metrics = Self {
            polls: IntCounterVec::new(
                Opts::new(
                    "sync_polls_total",
                    "Sweeps run, by kind (list, changed, round_robin) and outcome",
                ),
                &["kind", "outcome"],
            )?,
            provider_calls: IntCounterVec::new(
                Opts::new(
                    "sync_provider_calls_total",
                    "Calls to the 1NCE API, by endpoint and HTTP status (none: no answer)",
                ),
                &["endpoint", "status"],
            )?,
            provider_call_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "sync_provider_call_duration_seconds",
                    "Duration of calls to the 1NCE API",
                )
                .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
                &["endpoint"],
            )?,
            rate_limit_waits: IntCounter::new(
                "sync_rate_limit_waits_total",
                "Calls that waited for the call budget before leaving",
            )?,
            rate_limit_wait_seconds: Gauge::new(
                "sync_rate_limit_wait_seconds_total",
                "Time calls spent waiting for the call budget",
            )?,
            differences: IntCounterVec::new(
                Opts::new(
                    "sync_differences_total",
                    "Differences between the provider and what the connector last saw, by field",
                ),
                &["field"],
            )?,
            commands: IntCounterVec::new(
                Opts::new(
                    "sync_commands_total",
                    "Commands issued, by aggregate and outcome (recorded, refused)",
                ),
                &["aggregate", "outcome"],
            )?,
            requests: IntCounterVec::new(
                Opts::new(
                    "sync_requests_total",
                    "Operator requests carried out at 1NCE, by kind and outcome",
                ),
                &["kind", "outcome"],
            )?,
            last_successful_poll: Gauge::new(
                "sync_last_successful_poll_timestamp_seconds",
                "Unix time of the last SIM-list sweep that reached the end of the list",
            )?,
            seconds_since_successful_poll: Gauge::new(
                "sync_seconds_since_last_successful_poll",
                "Seconds since the last SIM-list sweep that reached the end of the list \
                 (since the connector started, before its first)",
            )?,
            poll_interval: Gauge::new(
                "sync_poll_interval_seconds",
                "The SIM-list sweep period (SYNC_POLL_INTERVAL_SECS)",
            )?,
            started: std::time::Instant::now(),
            provider: Arc::new(AtomicU8::new(PROVIDER_UNKNOWN)),
            forged: IntCounterVec::new(
                Opts::new(
                    "pipeline_forged_messages_total",
                    "Messages that did not match the stored event they named, acknowledged without effect",
                ),
                &["consumer"],
            )?,
        };
        registry.register(Box::new(metrics.polls.clone()))?;
        registry.register(Box::new(metrics.provider_calls.clone()))?;
        registry.register(Box::new(metrics.provider_call_seconds.clone()))?;
        registry.register(Box::new(metrics.rate_limit_waits.clone()))?;
        registry.register(Box::new(metrics.rate_limit_wait_seconds.clone()))?;
        registry.register(Box::new(metrics.differences.clone()))?;
        registry.register(Box::new(metrics.commands.clone()))?;
        registry.register(Box::new(metrics.requests.clone()))?;
        registry.register(Box::new(metrics.last_successful_poll.clone()))?;
        registry.register(Box::new(metrics.seconds_since_successful_poll.clone()))?;
        registry.register(Box::new(metrics.poll_interval.clone()))?;
        registry.register(Box::new(metrics.forged.clone()))?;
        Ok(metrics)
    }

    pub fn command(&self, aggregate: &str, outcome: &str) {
        self.commands.with_label_values(&[aggregate, outcome]).inc();
    }

    pub fn poll(&self, kind: &str, outcome: &str) {
        self.polls.with_label_values(&[kind, outcome]).inc();
    }

    pub fn difference(&self, field: &str) {
        self.differences.with_label_values(&[field]).inc();
    }

    pub fn request(&self, kind: &str, outcome: &str) {
        self.requests.with_label_values(&[kind, outcome]).inc();
    }

    pub fn list_sweep_succeeded(&self) {
        let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
        self.last_successful_poll.set(now);
        self.seconds_since_successful_poll.set(0.0);
    }

    /// False while the provider's last call got no answer or a 5xx (true before any call).
    pub fn provider_available(&self) -> bool {
        self.provider.load(Ordering::Relaxed) != PROVIDER_FAILS
    }

    /// Called on a timer, so the gauge moves between sweeps.
    pub fn refresh_poll_age(&self) {
        let last = self.last_successful_poll.get();
        if last > 0.0 {
            let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
            self.seconds_since_successful_poll.set((now - last).max(0.0));
        } else {
            self.seconds_since_successful_poll
                .set(self.started.elapsed().as_secs_f64());
        }
    }
}

impl CallObserver for SyncMetrics {
    fn call_finished(&self, endpoint: &'static str, status: Option<u16>, elapsed: Duration) {
        let answered = status.is_some_and(|s| s < 500);
        self.provider.store(
            if answered {
                PROVIDER_ANSWERS
            } else {
                PROVIDER_FAILS
            },
            Ordering::Relaxed,
        );
        let status = status.map_or_else(|| "none".to_owned(), |s| s.to_string());
        self.provider_calls
            .with_label_values(&[endpoint, status.as_str()])
            .inc();
        self.provider_call_seconds
            .with_label_values(&[endpoint])
            .observe(elapsed.as_secs_f64());
    }

    fn rate_limit_waited(&self, waited: Duration) {
        self.rate_limit_waits.inc();
        self.rate_limit_wait_seconds.add(waited.as_secs_f64());
    }
}
