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
    /// `projector_parked_total{projector}`: events parked (they could not be applied).
    pub parked_total: IntCounterVec,
    /// `pipeline_forged_messages_total{consumer}`: messages that did not match the stored event
    /// they named, acknowledged without effect.
    pub forged: IntCounterVec,
    /// `projector_parked_events{projector}`: events waiting in `parked_events`.
    pub parked: prometheus::IntGaugeVec,
    /// `projector_retries_total{projector}`: failed attempts (database errors) that were retried.
    pub retries: IntCounterVec,
    /// `projection_lag_events{projector}`: committed events after the checkpoint (including
    /// those held behind an open transaction), counted up to a bound.
    pub lag_events: prometheus::IntGaugeVec,
    /// `projection_lag_seconds{projector}`: age of the oldest committed event after the
    /// checkpoint (0 when caught up).
    pub lag_seconds: prometheus::GaugeVec,
    /// `projector_partitions_held`: the partitions this replica applies now.
    pub partitions_held: IntGauge,
}

impl ProjectorMetrics {
    /// A partition this replica stopped applying: its lag is another replica's to report now
    /// (a stale value here would mislead alerts).
    pub fn forget_partition(&self, partition: &str) {
        let _ = self.lag_events.remove_label_values(&[partition]);
        let _ = self.lag_seconds.remove_label_values(&[partition]);
    }

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
        let parked_total = counter(
            "projector_parked_total",
            "Events parked because they cannot be decoded or applied",
        );
        let forged = IntCounterVec::new(
            Opts::new(
                "pipeline_forged_messages_total",
                "Messages that did not match the stored event they named, acknowledged without effect",
            ),
            &["consumer"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(forged.clone()))
            .expect("registered once");
        let parked = prometheus::IntGaugeVec::new(
            Opts::new(
                "projector_parked_events",
                "Events the projector could not apply, kept aside in parked_events",
            ),
            &["projector"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(parked.clone()))
            .expect("registered once");
        let retries = counter(
            "projector_retries_total",
            "Message attempts that failed and were retried",
        );
        let lag_events = prometheus::IntGaugeVec::new(
            Opts::new(
                "projection_lag_events",
                "Committed events not yet applied by the projector (counted up to a bound)",
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
                "Age of the oldest committed event not yet applied, 0 when caught up",
            ),
            &["projector"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(lag_seconds.clone()))
            .expect("registered once");
        let partitions_held = IntGauge::new(
            "projector_partitions_held",
            "Partitions of the log this replica applies now",
        )
        .expect("valid metric");
        registry
            .register(Box::new(partitions_held.clone()))
            .expect("registered once");
        Self {
            applied,
            duplicates,
            gaps_filled,
            parked_total,
            forged,
            parked,
            retries,
            lag_events,
            lag_seconds,
            partitions_held,
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
