//! The projectors' Prometheus metrics, registered in the service's `platform::Metrics`.

use prometheus::{Gauge, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

#[derive(Clone)]
pub struct ProjectorMetrics {
    /// `projector_events_applied_total{projector}`: events applied (gap fills included).
    pub applied: IntCounterVec,
    /// `projector_duplicates_total{projector}`: messages at or below their aggregate's version.
    pub duplicates: IntCounterVec,
    /// `projector_gaps_filled_total{projector}`: events read from Postgres to fill a gap.
    pub gaps_filled: IntCounterVec,
    /// `projector_undecodable_total{projector}`: messages terminated because they do not decode.
    pub undecodable: IntCounterVec,
    /// `projector_retries_total{projector}`: failed attempts (database errors) that were retried.
    pub retries: IntCounterVec,
    /// `projection_lag_events{projector}`: the stream's last sequence − the checkpoint's.
    pub lag_events: prometheus::IntGaugeVec,
    /// `projection_lag_seconds{projector}`: now − `recorded_at` of the last applied event
    /// (0 when caught up).
    pub lag_seconds: prometheus::GaugeVec,
}

impl ProjectorMetrics {
    pub fn register(registry: &Registry) -> Self {
        let counter = |name: &str, help: &str| {
            let c = IntCounterVec::new(Opts::new(name, help), &["projector"]).expect("valid metric");
            registry.register(Box::new(c.clone())).expect("registered once");
            c
        };
        let applied = counter(
            "projector_events_applied_total",
            "Events applied to the read models",
        );
        let duplicates = counter("projector_duplicates_total", "Duplicate messages skipped");
        let gaps_filled = counter(
            "projector_gaps_filled_total",
            "Events read from Postgres to fill a gap",
        );
        let undecodable = counter(
            "projector_undecodable_total",
            "Messages terminated because they do not decode",
        );
        let retries = counter(
            "projector_retries_total",
            "Message attempts that failed and were retried",
        );
        let lag_events = prometheus::IntGaugeVec::new(
            Opts::new(
                "projection_lag_events",
                "Stream messages not yet processed by the projector",
            ),
            &["projector"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(lag_events.clone()))
            .expect("registered once");
        let lag_seconds = prometheus::GaugeVec::new(
            Opts::new(
                "projection_lag_seconds",
                "Age of the last applied event while behind, 0 when caught up",
            ),
            &["projector"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(lag_seconds.clone()))
            .expect("registered once");
        Self {
            applied,
            duplicates,
            gaps_filled,
            undecodable,
            retries,
            lag_events,
            lag_seconds,
        }
    }
}

/// `projection_rebuild_events_total` and `projection_rebuild_progress` (0..1, the rebuilt
/// position over the log's head when the rebuild started).
#[derive(Clone, Debug)]
pub struct RebuildMetrics {
    pub events: IntCounter,
    pub progress: Gauge,
    pub position: IntGauge,
}

impl RebuildMetrics {
    pub fn register(registry: &Registry) -> Self {
        let events = IntCounter::new("projection_rebuild_events_total", "Events replayed by rebuilds")
            .expect("valid metric");
        let progress = Gauge::new(
            "projection_rebuild_progress",
            "Progress of the running rebuild (0..1 of the log's head at its start)",
        )
        .expect("valid metric");
        let position = IntGauge::new(
            "projection_rebuild_position",
            "Last position replayed by the running rebuild",
        )
        .expect("valid metric");
        for metric in [
            Box::new(events.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(progress.clone()),
            Box::new(position.clone()),
        ] {
            registry.register(metric).expect("registered once");
        }
        Self {
            events,
            progress,
            position,
        }
    }
}
