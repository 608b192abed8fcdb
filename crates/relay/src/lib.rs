//! The relay: publishes the global event log (`eventstore::GlobalLog`) to a NATS JetStream
//! stream, one message per event, in the log's gap-safe order, never skipping one and never
//! storing one twice.
//!
//! - One relay per stream is active, the holder of a Postgres advisory lock on a dedicated
//!   connection; others stand by and take over when its connection closes.
//! - Each message carries `Nats-Msg-Id` (JetStream drops a republished event) and
//!   `Nats-Expected-Last-Sequence` (JetStream refuses a relay whose view of the stream is
//!   stale, such as one that lost its lock without noticing yet).
//! - The checkpoint (`relay_checkpoints`) advances only after JetStream's acknowledgements; at
//!   start and after every error the relay compares it with the stream's last message, and
//!   republishes what the stream lost (JetStream's fsync is lazy by default).
//!
//! See `docs/relay.md`.

mod checkpoint;
mod config;
mod error;
mod metrics;
mod relay;

pub use config::{RelayConfig, MIN_DUPLICATE_WINDOW};
pub use error::RelayError;
pub use metrics::RelayMetrics;
pub use relay::{
    message_cursor, message_id, Relay, HEADER_EXPECTED_LAST_MSG_ID, HEADER_EXPECTED_LAST_SEQUENCE,
    HEADER_EXPECTED_STREAM, HEADER_MSG_ID, HEADER_POSITION, HEADER_TRANSACTION_ID,
};
