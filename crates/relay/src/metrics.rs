use prometheus::{Gauge, IntCounter, IntGauge, Opts, Registry};

/// The relay's Prometheus metrics, labelled with the stream so several relays can share a
/// registry.
#[derive(Clone, Debug)]
pub struct RelayMetrics {
    pub events_published: IntCounter,
    pub lag_events: IntGauge,
    pub lag_seconds: Gauge,
    pub rewinds: IntCounter,
    pub is_leader: IntGauge,
}

impl RelayMetrics {
    pub fn register(registry: &Registry, stream: &str) -> Result<Self, prometheus::Error> {
        let opts = |name: &str, help: &str| Opts::new(name, help).const_label("stream", stream);
        let metrics = Self {
            events_published: IntCounter::with_opts(opts(
                "relay_events_published_total",
                "Events acknowledged by JetStream as newly stored",
            ))?,
            lag_events: IntGauge::with_opts(opts(
                "relay_lag_events",
                "Events readable in the global log and not yet published (counted up to a bound)",
            ))?,
            lag_seconds: Gauge::with_opts(opts(
                "relay_lag_seconds",
                "Age of the oldest unpublished readable event; 0 when caught up",
            ))?,
            rewinds: IntCounter::with_opts(opts(
                "relay_rewinds_total",
                "Times the stream held less than the checkpoint and the relay republished",
            ))?,
            is_leader: IntGauge::with_opts(opts(
                "relay_is_leader",
                "1 while this relay holds the lock and publishes",
            ))?,
        };
        registry.register(Box::new(metrics.events_published.clone()))?;
        registry.register(Box::new(metrics.lag_events.clone()))?;
        registry.register(Box::new(metrics.lag_seconds.clone()))?;
        registry.register(Box::new(metrics.rewinds.clone()))?;
        registry.register(Box::new(metrics.is_leader.clone()))?;
        Ok(metrics)
    }
}
