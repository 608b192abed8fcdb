//! `jetstream_stream_present{stream}` and `jetstream_consumer_present{stream,consumer}`: whether
//! the NATS server still knows the stream and the durable consumers this process uses. The
//! processes create them again when they notice; these gauges say when they have not (a wiped
//! JetStream store, a deleted consumer), for the alerts `JetStreamStreamMissing` and
//! `JetStreamConsumerMissing`.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::context::{ConsumerInfoErrorKind, GetStreamErrorKind};
use async_nats::jetstream::{self, ErrorCode};
use prometheus::{IntGaugeVec, Opts, Registry};
use tokio::sync::watch;

/// How often [`JetStreamPresence::run`] looks.
pub const PRESENCE_PERIOD: Duration = Duration::from_secs(15);

#[derive(Clone, Debug)]
pub struct JetStreamPresence {
    stream: IntGaugeVec,
    consumer: IntGaugeVec,
    /// (stream, consumer) pairs looked up; a stream with an empty consumer name is looked up
    /// alone.
    tracked: Arc<Mutex<BTreeSet<(String, String)>>>,
}

/// What the server said of one name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    Present,
    Missing,
    /// No answer (NATS away, a timeout, a refused request): the gauge keeps its last value;
    /// an unreachable NATS is what `service_ready` reports.
    Unknown,
}

impl JetStreamPresence {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let stream = IntGaugeVec::new(
            Opts::new(
                "jetstream_stream_present",
                "1 while the NATS server knows the stream, 0 once it answers that it does not",
            ),
            &["stream"],
        )?;
        let consumer = IntGaugeVec::new(
            Opts::new(
                "jetstream_consumer_present",
                "1 while the NATS server knows this process's durable consumer, 0 once it answers that it does not",
            ),
            &["stream", "consumer"],
        )?;
        registry.register(Box::new(stream.clone()))?;
        registry.register(Box::new(consumer.clone()))?;
        Ok(Self {
            stream,
            consumer,
            tracked: Arc::default(),
        })
    }

    /// From now on, `stream` is looked up.
    pub fn track_stream(&self, stream: &str) {
        self.lock().insert((stream.to_owned(), String::new()));
    }

    /// From now on, `consumer` of `stream` is looked up too (e.g. a partition this replica
    /// took on), and its stream.
    pub fn track(&self, stream: &str, consumer: &str) {
        self.track_stream(stream);
        self.lock().insert((stream.to_owned(), consumer.to_owned()));
    }

    /// `consumer` is no longer this process's to report (a partition handed over).
    pub fn forget(&self, consumer: &str) {
        let mut tracked = self.lock();
        let gone: Vec<_> = tracked.iter().filter(|(_, c)| c == consumer).cloned().collect();
        for (stream, consumer) in gone {
            let _ = self.consumer.remove_label_values(&[&stream, &consumer]);
            tracked.remove(&(stream, consumer));
        }
    }

    /// One look at the server: sets the gauges of every tracked stream and consumer.
    pub async fn check(&self, jetstream: &jetstream::Context) {
        let tracked: Vec<(String, String)> = self.lock().iter().cloned().collect();
        let mut stream_presence = Presence::Unknown;
        for (stream, consumer) in tracked {
            // Sorted: a stream's own entry (empty consumer name) comes before its consumers.
            if consumer.is_empty() {
                stream_presence = stream_lookup(jetstream, &stream).await;
                set(&self.stream, &[&stream], stream_presence);
                continue;
            }
            // Without its stream, no consumer exists.
            let presence = match stream_presence {
                Presence::Missing => Presence::Missing,
                _ => consumer_lookup(jetstream, &stream, &consumer).await,
            };
            set(&self.consumer, &[&stream, &consumer], presence);
        }
    }

    /// [`check`](Self::check) every [`PRESENCE_PERIOD`] until `shutdown` turns true.
    pub async fn run(self, jetstream: jetstream::Context, mut shutdown: watch::Receiver<bool>) {
        loop {
            self.check(&jetstream).await;
            tokio::select! {
                () = tokio::time::sleep(PRESENCE_PERIOD) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<(String, String)>> {
        // Inserting or removing a name cannot leave the set half-written.
        self.tracked
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

async fn stream_lookup(jetstream: &jetstream::Context, stream: &str) -> Presence {
    match jetstream.get_stream(stream).await {
        Ok(_) => Presence::Present,
        Err(error) => match error.kind() {
            GetStreamErrorKind::JetStream(e) if e.error_code() == ErrorCode::STREAM_NOT_FOUND => {
                Presence::Missing
            }
            _ => Presence::Unknown,
        },
    }
}

async fn consumer_lookup(jetstream: &jetstream::Context, stream: &str, consumer: &str) -> Presence {
    let Ok(handle) = jetstream.get_stream_no_info(stream).await else {
        return Presence::Unknown;
    };
    match handle.consumer_info(consumer).await {
        Ok(_) => Presence::Present,
        Err(error) => match error.kind() {
            ConsumerInfoErrorKind::NotFound | ConsumerInfoErrorKind::StreamNotFound => Presence::Missing,
            _ => Presence::Unknown,
        },
    }
}

fn set(gauges: &IntGaugeVec, labels: &[&str], presence: Presence) {
    match presence {
        Presence::Present => gauges.with_label_values(labels).set(1),
        Presence::Missing => gauges.with_label_values(labels).set(0),
        Presence::Unknown => {}
    }
}
