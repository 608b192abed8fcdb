use std::time::Duration;

use eventstore::StoreError;

use crate::wire::Mismatch;

/// Why the relay stopped publishing for now. Every variant leaves the relay consistent: the
/// next call re-reads the stream's tail and the checkpoint and continues from there.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("invalid relay configuration: {0}")]
    Config(String),
    #[error("metrics registration failed: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another relay holds the lock; this one stands by.
    #[error("another relay is active for this stream")]
    NotLeader,
    /// The connection holding the advisory lock failed: another relay may be active now.
    #[error("lost the relay lock: {0}")]
    LeadershipLost(#[source] sqlx::Error),
    /// A stream operation (create, info, message get) failed.
    #[error("JetStream {operation} failed: {source}")]
    Stream {
        operation: &'static str,
        #[source]
        source: async_nats::Error,
    },
    /// The publish was refused or its acknowledgement did not arrive.
    #[error("publish failed: {0}")]
    Publish(#[from] async_nats::jetstream::context::PublishError),
    /// The stream's last sequence (or last message id) was not the one the relay expected:
    /// another publisher (a relay that still thinks it leads, or anything else) appended
    /// meanwhile, or an earlier message of the batch was refused.
    #[error("stream {stream} refused a publish expecting last sequence {expected}: {source}")]
    StaleSequence {
        stream: String,
        expected: u64,
        #[source]
        source: async_nats::jetstream::context::PublishError,
    },
    /// JetStream already held a message with this id, so the stream did not grow.
    #[error("message {msg_id} was a duplicate of stream sequence {sequence}")]
    Duplicate { msg_id: String, sequence: u64 },
    /// JetStream still remembers the id of a message it no longer holds (deleted, purged):
    /// the message cannot be republished before the duplicate window has passed.
    #[error(
        "message {msg_id} is remembered by the duplicate window but missing from the stream \
         (sequence {sequence}); it can be republished once the duplicate window has passed"
    )]
    ForgottenDuplicate { msg_id: String, sequence: u64 },
    /// An acknowledgement for another stream or sequence than expected.
    #[error("unexpected acknowledgement: stream {stream} sequence {sequence}, expected {expected_stream} sequence {expected}")]
    UnexpectedAck {
        stream: String,
        sequence: u64,
        expected_stream: String,
        expected: u64,
    },
    /// An event whose ICCID or type cannot be a subject token. The relay never skips an event,
    /// so it stays here until the stored event is readable.
    #[error("event at position {position} has no valid subject (iccid {iccid:?}, type {event_type:?})")]
    InvalidSubject {
        position: i64,
        iccid: String,
        event_type: String,
    },
    #[error("event cannot be encoded: {0}")]
    Encode(#[from] serde_json::Error),
    /// The stream's tail holds no message within the probed range (only deleted sequences).
    #[error("no message found in the last {probed} sequences of stream {stream}")]
    TailNotFound { stream: String, probed: u64 },
    /// A database call did not answer in time: the relay stops waiting (and, on its lock's
    /// connection, stops leading) rather than hang.
    #[error("{operation} did not answer within {after:?}")]
    Timeout {
        operation: &'static str,
        after: Duration,
    },
    /// The stream is not this store's: its last message (at `sequence`) is not the event this
    /// store holds. The relay publishes nothing until an operator resolves it (docs/relay.md).
    #[error("stream {stream} does not match the event store at stream sequence {sequence}: the message there {reason}")]
    StreamMismatch {
        stream: String,
        sequence: u64,
        reason: Mismatch,
    },
}

impl RelayError {
    pub(crate) fn stream(operation: &'static str, source: impl Into<async_nats::Error>) -> Self {
        Self::Stream {
            operation,
            source: source.into(),
        }
    }
}
