//! The simulator's Data Streamer: like 1NCE's REST integration, it POSTs the fleet's usage
//! records and event records (two streams, as 1NCE has one stream per type) as JSON arrays
//! with HTTP Basic authentication to a configured receiver, in batches, retrying with
//! exponential backoff, and goes FAILED (and stops) after persistent failure until reset, as
//! the portal's restart does. It also resends some delivered batches (duplicates, same ids)
//! and reorders some records, at configured rates, so receivers are tested against what
//! at-least-once delivery allows.
//!
//! What the fleet did is noted in its journal (`fleet::journal`); the delivery tasks
//! (`deliver`) take it from there. Settings: `config`; record shapes: `records`.

mod config;
mod deliver;
mod records;

use std::sync::{Mutex, MutexGuard};

use crate::lock;

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

pub use config::{StreamConfig, MAX_BATCH};
pub(crate) use deliver::{deliver, queue_figures};

/// The two streams, as 1NCE has them since Data Streamer 2.0 (a stream carries one type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamKind {
    Usage,
    Events,
}

impl StreamKind {
    pub const ALL: [StreamKind; 2] = [StreamKind::Usage, StreamKind::Events];

    pub fn name(self) -> &'static str {
        match self {
            StreamKind::Usage => "usage",
            StreamKind::Events => "events",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StreamState {
    #[default]
    Active,
    /// Stopped after persistent failure; records keep being collected (up to the buffer)
    /// and are delivered after a reset.
    Failed,
}

/// What `GET /_admin/stream` shows per stream.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamStatus {
    pub state: StreamState,
    /// Records (and POSTs) the receiver answered 200 to, duplicates not counted.
    pub delivered_records: u64,
    pub delivered_batches: u64,
    /// Delivered batches sent once more on purpose, and their records.
    pub duplicate_batches: u64,
    pub duplicate_records: u64,
    /// Batches whose records were shuffled or partly kept back for the next batch.
    pub reordered_batches: u64,
    /// POSTs that did not get a 200 (connection errors included).
    pub failed_attempts: u64,
    /// Records waiting: not yet taken into a batch, or in a batch not yet acknowledged.
    pub pending_records: u64,
    /// Records dropped because the buffer was full (oldest first).
    pub dropped_records: u64,
    /// The HTTP status the receiver last answered (1NCE's "Remote Status"); `None` before
    /// the first answer or after a connection error.
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    /// Real time (RFC 3339) of the last 200, and of going FAILED.
    pub last_delivery_at: Option<String>,
    pub failed_at: Option<String>,
}

/// `GET /_admin/stream`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamReport {
    pub enabled: bool,
    /// The receiver's URL (the credentials are never shown).
    pub url: Option<String>,
    pub usage: StreamStatus,
    pub events: StreamStatus,
}

struct Side {
    status: Mutex<StreamStatus>,
    /// Wakes a FAILED stream's task after a reset.
    reset: Notify,
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    /// Records in the task's hands (a batch being sent, records kept back for the next).
    in_flight: u64,
    /// The journal's dropped count already added to the metric.
    dropped_counted: u64,
}

pub(crate) struct Streamer {
    usage: Side,
    events: Side,
    records_total: IntCounterVec,
    posts_total: IntCounterVec,
    failed: IntGaugeVec,
    pending: IntGaugeVec,
}

impl Streamer {
    pub fn new(registry: &Registry) -> Self {
        let records_total = IntCounterVec::new(
            Opts::new(
                "simulator_stream_records_total",
                "Data Streamer records by stream and outcome (delivered, duplicate, dropped)",
            ),
            &["stream", "outcome"],
        )
        .expect("valid metric");
        let posts_total = IntCounterVec::new(
            Opts::new(
                "simulator_stream_posts_total",
                "Data Streamer POSTs by stream and the receiver's status (error: no answer)",
            ),
            &["stream", "status"],
        )
        .expect("valid metric");
        let failed = IntGaugeVec::new(
            Opts::new("simulator_stream_failed", "1 while the stream is FAILED"),
            &["stream"],
        )
        .expect("valid metric");
        let pending = IntGaugeVec::new(
            Opts::new(
                "simulator_stream_pending_records",
                "Records waiting to be delivered",
            ),
            &["stream"],
        )
        .expect("valid metric");
        for metric in [
            Box::new(records_total.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(posts_total.clone()),
            Box::new(failed.clone()),
            Box::new(pending.clone()),
        ] {
            registry.register(metric).expect("fresh registry");
        }
        for kind in StreamKind::ALL {
            failed.with_label_values(&[kind.name()]).set(0);
        }
        let side = || Side {
            status: Mutex::new(StreamStatus::default()),
            reset: Notify::new(),
            held: Mutex::new(Held::default()),
        };
        Self {
            usage: side(),
            events: side(),
            records_total,
            posts_total,
            failed,
            pending,
        }
    }

    fn side(&self, kind: StreamKind) -> &Side {
        match kind {
            StreamKind::Usage => &self.usage,
            StreamKind::Events => &self.events,
        }
    }

    fn status(&self, kind: StreamKind) -> MutexGuard<'_, StreamStatus> {
        lock(&self.side(kind).status)
    }

    /// The status, with `queued` (records still in the journal) and `dropped` added in.
    pub fn report(&self, kind: StreamKind, queued: u64, dropped: u64) -> StreamStatus {
        let in_flight = lock(&self.side(kind).held).in_flight;
        let mut status = self.status(kind).clone();
        status.pending_records = queued + in_flight;
        status.dropped_records = dropped;
        self.pending
            .with_label_values(&[kind.name()])
            .set(status.pending_records as i64);
        status
    }

    /// Back to ACTIVE (what re-enabling the stream in the 1NCE portal does): the task
    /// delivers the batch it failed on, then the rest.
    pub fn reset(&self, kind: StreamKind) {
        let mut status = self.status(kind);
        if status.state == StreamState::Failed {
            status.state = StreamState::Active;
            status.failed_at = None;
            self.failed.with_label_values(&[kind.name()]).set(0);
            self.side(kind).reset.notify_one();
        }
    }

    /// `records` in the task's hands, `queued` left in the journal (for the pending gauge).
    fn set_in_flight(&self, kind: StreamKind, records: u64, queued: u64) {
        lock(&self.side(kind).held).in_flight = records;
        self.pending
            .with_label_values(&[kind.name()])
            .set((records + queued) as i64);
    }

    /// `dropped`: the journal's count so far for this stream.
    fn note_dropped(&self, kind: StreamKind, dropped: u64) {
        let mut held = lock(&self.side(kind).held);
        if dropped > held.dropped_counted {
            self.count_records(kind, "dropped", dropped - held.dropped_counted);
            held.dropped_counted = dropped;
        }
    }

    fn delivered(&self, kind: StreamKind, records: u64) {
        let mut status = self.status(kind);
        status.delivered_records += records;
        status.delivered_batches += 1;
        status.last_status = Some(200);
        status.last_delivery_at = Some(now_text());
        self.count_post(kind, "200");
        self.count_records(kind, "delivered", records);
    }

    fn duplicated(&self, kind: StreamKind, records: u64, answer: Result<(), Attempt>) {
        let mut status = self.status(kind);
        status.duplicate_batches += 1;
        status.duplicate_records += records;
        self.count_records(kind, "duplicate", records);
        match answer {
            Ok(()) => self.count_post(kind, "200"),
            Err(attempt) => {
                // A duplicate's failure is not retried: the records were delivered already.
                status.failed_attempts += 1;
                status.last_status = attempt.status;
                self.count_post(kind, &attempt.label());
                status.last_error = Some(attempt.error);
            }
        }
    }

    fn reordered(&self, kind: StreamKind) {
        self.status(kind).reordered_batches += 1;
    }

    fn attempt_failed(&self, kind: StreamKind, attempt: Attempt) {
        let mut status = self.status(kind);
        status.failed_attempts += 1;
        status.last_status = attempt.status;
        self.count_post(kind, &attempt.label());
        status.last_error = Some(attempt.error);
    }

    fn fail(&self, kind: StreamKind) {
        let mut status = self.status(kind);
        status.state = StreamState::Failed;
        status.failed_at = Some(now_text());
        self.failed.with_label_values(&[kind.name()]).set(1);
    }

    fn is_failed(&self, kind: StreamKind) -> bool {
        self.status(kind).state == StreamState::Failed
    }

    fn count_post(&self, kind: StreamKind, status: &str) {
        self.posts_total.with_label_values(&[kind.name(), status]).inc();
    }

    fn count_records(&self, kind: StreamKind, outcome: &str, records: u64) {
        self.records_total
            .with_label_values(&[kind.name(), outcome])
            .inc_by(records);
    }
}

/// A POST that did not get a 200.
#[derive(Debug)]
struct Attempt {
    status: Option<u16>,
    error: String,
}

impl Attempt {
    fn label(&self) -> String {
        self.status.map_or_else(|| "error".to_owned(), |s| s.to_string())
    }
}

fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
