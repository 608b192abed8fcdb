use prometheus::core::Collector;
use prometheus::{GaugeVec, IntCounter, IntGauge, IntGaugeVec, Opts, Registry};

/// The relay's Prometheus metrics, labelled with the stream so several relays can share a
/// registry. The lag series exist only while this relay leads: a standby exports none, so a
/// sum or max over replicas counts the active relay once.
#[derive(Clone, Debug)]
pub struct RelayMetrics {
    stream: String,
    pub events_published: IntCounter,
    lag_events: IntGaugeVec,
    lag_seconds: GaugeVec,
    horizon_holder_seconds: GaugeVec,
    pub rewinds: IntCounter,
    pub is_leader: IntGauge,
    /// 1 while the stream's tail is not an event of this store and the relay refuses to publish.
    pub stream_mismatch: IntGauge,
    /// Duplicate acknowledgements for the very event being republished (counted as published).
    pub republished_duplicates: IntCounter,
}

/// What [`RelayMetrics::set_lag`] shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lag {
    pub events: i64,
    pub seconds: f64,
    pub horizon_holder_seconds: f64,
}

impl RelayMetrics {
    pub fn register(registry: &Registry, stream: &str) -> Result<Self, prometheus::Error> {
        let counter = |name: &str, help: &str| {
            IntCounter::with_opts(Opts::new(name, help).const_label("stream", stream))
        };
        let gauge =
            |name: &str, help: &str| IntGauge::with_opts(Opts::new(name, help).const_label("stream", stream));
        // The lag series carry the stream as a label of their own, so a standby can remove them.
        let lag_gauge = |name: &str, help: &str| GaugeVec::new(Opts::new(name, help), &["stream"]);
        let metrics = Self {
            stream: stream.to_owned(),
            events_published: counter(
                "relay_events_published_total",
                "Events acknowledged by JetStream as newly stored",
            )?,
            lag_events: IntGaugeVec::new(
                Opts::new(
                    "relay_lag_events",
                    "Committed events not yet published, including those held behind an open \
                     transaction (counted up to a bound); only the active relay exports it",
                ),
                &["stream"],
            )?,
            lag_seconds: lag_gauge(
                "relay_lag_seconds",
                "Age of the oldest committed event not yet published (0 when caught up); \
                 only the active relay exports it",
            )?,
            horizon_holder_seconds: lag_gauge(
                "relay_horizon_holder_age_seconds",
                "Age of the oldest open transaction with a transaction id on the server: \
                 it holds every reader of the log back; only the active relay exports it",
            )?,
            rewinds: counter(
                "relay_rewinds_total",
                "Times the stream held less than the checkpoint and the relay republished",
            )?,
            is_leader: gauge(
                "relay_is_leader",
                "1 while this relay holds the lock and publishes",
            )?,
            stream_mismatch: gauge(
                "relay_stream_mismatch",
                "1 while the stream does not match the event store and the relay refuses to publish",
            )?,
            republished_duplicates: counter(
                "relay_republished_duplicates_total",
                "Republished events JetStream already held (acknowledged as duplicates of themselves)",
            )?,
        };
        let collectors: [Box<dyn Collector>; 8] = [
            Box::new(metrics.events_published.clone()),
            Box::new(metrics.lag_events.clone()),
            Box::new(metrics.lag_seconds.clone()),
            Box::new(metrics.horizon_holder_seconds.clone()),
            Box::new(metrics.rewinds.clone()),
            Box::new(metrics.is_leader.clone()),
            Box::new(metrics.stream_mismatch.clone()),
            Box::new(metrics.republished_duplicates.clone()),
        ];
        for collector in collectors {
            registry.register(collector)?;
        }
        Ok(metrics)
    }

    pub fn set_lag(&self, lag: Lag) {
        let stream = [self.stream.as_str()];
        self.lag_events.with_label_values(&stream).set(lag.events);
        self.lag_seconds.with_label_values(&stream).set(lag.seconds);
        self.horizon_holder_seconds
            .with_label_values(&stream)
            .set(lag.horizon_holder_seconds);
    }

    /// The lag last exported, `None` while this relay does not lead.
    pub fn lag(&self) -> Option<Lag> {
        let stream = [self.stream.as_str()];
        let exported = self
            .lag_events
            .collect()
            .first()
            .is_some_and(|family| !family.get_metric().is_empty());
        exported.then(|| Lag {
            events: self.lag_events.with_label_values(&stream).get(),
            seconds: self.lag_seconds.with_label_values(&stream).get(),
            horizon_holder_seconds: self.horizon_holder_seconds.with_label_values(&stream).get(),
        })
    }

    /// A standby exports no lag.
    pub fn clear_lag(&self) {
        let stream = [self.stream.as_str()];
        let _ = self.lag_events.remove_label_values(&stream);
        let _ = self.lag_seconds.remove_label_values(&stream);
        let _ = self.horizon_holder_seconds.remove_label_values(&stream);
    }
}
