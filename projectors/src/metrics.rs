//! The projectors' Prometheus metrics, registered in the service's `platform::Metrics`.

use eventstore::Backlog;
use platform::jetstream_presence::JetStreamPresence;
use prometheus::core::Collector;
use prometheus::{Gauge, GaugeVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

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
    pub parked: IntGaugeVec,
    /// `projector_retries_total{projector}`: failed attempts (database errors) that were retried.
    pub retries: IntCounterVec,
    /// `projection_lag_events{projector}`: committed events after the checkpoint (including
    /// those held behind an open transaction), counted up to a bound.
    pub lag_events: IntGaugeVec,
    /// `projection_lag_seconds{projector}`: age of the oldest committed event after the
    /// checkpoint (0 when caught up).
    pub lag_seconds: GaugeVec,
    /// `projector_partitions_held`: the partitions this replica applies now.
    pub partitions_held: IntGauge,
    /// `jetstream_stream_present` / `jetstream_consumer_present` of the partitions held.
    pub jetstream: JetStreamPresence,
}

impl ProjectorMetrics {
    /// A partition this replica stopped applying: its lag is another replica's to report now
    /// (a stale value here would mislead alerts).
    pub fn forget_partition(&self, partition: &str) {
        let _ = self.lag_events.remove_label_values(&[partition]);
        let _ = self.lag_seconds.remove_label_values(&[partition]);
        self.jetstream.forget(partition);
    }

    /// `lag_events` / `lag_seconds` of `partition`: what is committed after its checkpoint.
    pub fn set_lag(&self, partition: &str, backlog: &Backlog) {
        self.lag_events
            .with_label_values(&[partition])
            .set(backlog.events);
        self.lag_seconds
            .with_label_values(&[partition])
            .set(backlog.oldest_age_seconds);
    }

    pub fn register(registry: &Registry) -> Self {
        let counter = |name: &str, help: &str| {
            registered(
                registry,
                IntCounterVec::new(Opts::new(name, help), &["projector"]),
            )
        };
        let gauge = |name: &str, help: &str| {
            registered(registry, IntGaugeVec::new(Opts::new(name, help), &["projector"]))
        };
        Self {
            applied: counter("projector_events_applied_total", "Events applied to the read models"),
            duplicates: counter("projector_duplicates_total", "Duplicate messages skipped"),
            gaps_filled: counter(
                "projector_gaps_filled_total",
                "Events read from Postgres to fill a gap",
            ),
            parked_total: counter(
                "projector_parked_total",
                "Events parked because they cannot be decoded or applied",
            ),
            forged: registered(
                registry,
                IntCounterVec::new(
                    Opts::new(
                        "pipeline_forged_messages_total",
                        "Messages that did not match the stored event they named, acknowledged without effect",
                    ),
                    &["consumer"],
                ),
            ),
            parked: gauge(
                "projector_parked_events",
                "Events the projector could not apply, kept aside in parked_events",
            ),
            retries: counter(
                "projector_retries_total",
                "Message attempts that failed and were retried",
            ),
            lag_events: gauge(
                "projection_lag_events",
                "Committed events not yet applied by the projector (counted up to a bound)",
            ),
            lag_seconds: registered(
                registry,
                GaugeVec::new(
                    Opts::new(
                        "projection_lag_seconds",
                        "Age of the oldest committed event not yet applied, 0 when caught up",
                    ),
                    &["projector"],
                ),
            ),
            partitions_held: registered(
                registry,
                IntGauge::new(
                    "projector_partitions_held",
                    "Partitions of the log this replica applies now",
                ),
            ),
            jetstream: JetStreamPresence::register(registry).expect("registered once"),
        }
    }
}

/// `metric`, registered in `registry`. Panics when it is invalid (its name and help are
/// constants here) or already registered there (each is registered once per registry).
fn registered<M: Collector + Clone + 'static>(registry: &Registry, metric: prometheus::Result<M>) -> M {
    let metric = metric.expect("valid metric");
    registry
        .register(Box::new(metric.clone()))
        .expect("registered once");
    metric
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
        Self {
            events: registered(
                registry,
                IntCounter::new("projection_rebuild_events_total", "Events replayed by rebuilds"),
            ),
            progress: registered(
                registry,
                Gauge::new(
                    "projection_rebuild_progress",
                    "Progress of the running rebuild (0..1 of the log's head at its start)",
                ),
            ),
            position: registered(
                registry,
                IntGauge::new(
                    "projection_rebuild_position",
                    "Last position replayed by the running rebuild",
                ),
            ),
        }
    }
}
