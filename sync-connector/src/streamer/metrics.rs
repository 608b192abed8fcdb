//! The receiver's Prometheus metrics, on the connector's registry.

use chrono::{DateTime, Utc};
use prometheus::{GaugeVec, IntCounter, IntCounterVec, Opts, Registry};

/// Every record type the receiver counts, by stream: the values of `Meaning::kind` (record.rs).
pub const TYPES: [(&str, &[&str]); 2] = [
    ("usage", &["data", "sms", "usage_other"]),
    ("events", &["connectivity", "status", "quota", "event_other"]),
];
/// What the applier does with a record (`Settled::state`, inbox.rs).
pub const OUTCOMES: [&str; 4] = ["applied", "skipped", "pending", "refused"];
/// The statuses the receiver refuses batches with (receive.rs).
pub const ERROR_STATUSES: [u16; 4] = [400, 401, 413, 503];

#[derive(Clone, Debug)]
pub struct StreamerMetrics {
    /// `streamer_records_received_total{stream, type}`: records new to the inbox.
    pub received: IntCounterVec,
    /// `streamer_duplicates_total{stream}`: records already in the inbox (retransmissions).
    pub duplicates: IntCounterVec,
    /// `streamer_records_rejected_total`: malformed records, reported in the answer.
    pub rejected: IntCounter,
    /// `streamer_records_settled_total{type, outcome}`: what the applier did with records.
    pub settled: IntCounterVec,
    /// `streamer_receiver_errors_total{status}`: batches not answered 200.
    pub errors: IntCounterVec,
    /// `streamer_newest_record_timestamp_seconds{stream}` and
    /// `streamer_newest_record_age_seconds{stream}`: the newest record's own time.
    pub newest: GaugeVec,
    pub newest_age: GaugeVec,
}

impl StreamerMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let metrics = Self {
            received: IntCounterVec::new(
                Opts::new(
                    "streamer_records_received_total",
                    "Data Streamer records stored in the inbox, by stream and type",
                ),
                &["stream", "type"],
            )?,
            duplicates: IntCounterVec::new(
                Opts::new(
                    "streamer_duplicates_total",
                    "Data Streamer records received again (same stream and id), accepted without effect",
                ),
                &["stream"],
            )?,
            rejected: IntCounter::new(
                "streamer_records_rejected_total",
                "Malformed Data Streamer records, stored as rejects and reported in the answer",
            )?,
            settled: IntCounterVec::new(
                Opts::new(
                    "streamer_records_settled_total",
                    "Data Streamer records the applier settled, by type and outcome (applied, skipped, pending, refused)",
                ),
                &["type", "outcome"],
            )?,
            errors: IntCounterVec::new(
                Opts::new(
                    "streamer_receiver_errors_total",
                    "Data Streamer batches answered with an error, by HTTP status",
                ),
                &["status"],
            )?,
            newest: GaugeVec::new(
                Opts::new(
                    "streamer_newest_record_timestamp_seconds",
                    "Unix time of the newest record received, by stream (the record's own time)",
                ),
                &["stream"],
            )?,
            newest_age: GaugeVec::new(
                Opts::new(
                    "streamer_newest_record_age_seconds",
                    "Seconds since the newest record received happened, by stream",
                ),
                &["stream"],
            )?,
        };
        registry.register(Box::new(metrics.received.clone()))?;
        registry.register(Box::new(metrics.duplicates.clone()))?;
        registry.register(Box::new(metrics.rejected.clone()))?;
        registry.register(Box::new(metrics.settled.clone()))?;
        registry.register(Box::new(metrics.errors.clone()))?;
        registry.register(Box::new(metrics.newest.clone()))?;
        registry.register(Box::new(metrics.newest_age.clone()))?;
        Ok(metrics)
    }

    /// Every labelled series at 0 (the ages unknown: NaN until a stream's first record), for a
    /// configured receiver: the series exist before the first batch, so a rate over it counts
    /// it, the alert rules see a stream that never delivered (newest record time 0), and a
    /// scrape shows every metric the rules and dashboards read.
    pub fn initialise(&self) {
        for (stream, types) in TYPES {
            self.duplicates.with_label_values(&[stream]);
            self.newest.with_label_values(&[stream]);
            self.newest_age.with_label_values(&[stream]).set(f64::NAN);
            for kind in types {
                self.received.with_label_values(&[stream, kind]);
                for outcome in OUTCOMES {
                    self.settled.with_label_values(&[kind, outcome]);
                }
            }
        }
        for status in ERROR_STATUSES {
            self.errors.with_label_values(&[&status.to_string()]);
        }
    }

    pub fn error(&self, status: u16) {
        self.errors.with_label_values(&[&status.to_string()]).inc();
    }

    /// Moves a stream's newest record time forward (never back: records arrive out of order).
    pub fn saw(&self, stream: &str, at: DateTime<Utc>) {
        let gauge = self.newest.with_label_values(&[stream]);
        let seconds = at.timestamp_millis() as f64 / 1000.0;
        if seconds > gauge.get() {
            gauge.set(seconds);
        }
    }

    /// Called on a timer, so the ages move between batches.
    pub fn refresh_ages(&self) {
        let now = Utc::now().timestamp_millis() as f64 / 1000.0;
        for stream in ["usage", "events"] {
            let newest = self.newest.with_label_values(&[stream]).get();
            if newest > 0.0 {
                self.newest_age
                    .with_label_values(&[stream])
                    .set((now - newest).max(0.0));
            }
        }
    }
}
