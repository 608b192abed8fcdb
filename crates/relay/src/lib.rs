//! The relay: publishes the global event log (`eventstore::GlobalLog`) to a NATS JetStream
//! stream, one message per event, in the log's gap-safe order, never skipping one and never
//! storing one twice, and never into a stream that is not this store's.
//!
//! - One relay per stream is active, the holder of a Postgres advisory lock on a dedicated
//!   connection (heartbeat, server-side idle and keepalive timeouts: see [`lock`]); others
//!   stand by and take over when its session ends.
//! - Each message carries `Nats-Msg-Id` (JetStream drops a republished event),
//!   `Nats-Expected-Last-Sequence` (JetStream refuses a relay whose view of the stream is
//!   stale, such as one that lost its lock without noticing yet) and the store's identity.
//! - The checkpoint (`relay_checkpoints`) advances only after JetStream's acknowledgements; at
//!   start, after every reconnect and after every refused publish the relay checks the
//!   stream's last message against the store ([`wire::check`]): a foreign or forged message, or
//!   a stream from another database, stops publishing loudly until an operator acts
//!   ([`admin`]); a stream that lost acknowledged messages is refilled.
//!
//! See `docs/relay.md`.

pub mod admin;
mod checkpoint;
mod config;
mod error;
mod lag;
pub mod lock;
mod metrics;
mod publish;
mod readback;
mod relay;
mod sync;
pub mod wire;

pub use config::{RelayConfig, MIN_DUPLICATE_WINDOW};
pub use error::RelayError;
pub use metrics::{Lag, RelayMetrics};
pub use relay::{Relay, READINESS_FLAG};
pub use wire::{
    message_cursor, message_id, HEADER_EXPECTED_LAST_MSG_ID, HEADER_EXPECTED_LAST_SEQUENCE,
    HEADER_EXPECTED_STREAM, HEADER_MSG_ID, HEADER_POSITION, HEADER_STORE_ID, HEADER_TRANSACTION_ID,
};
