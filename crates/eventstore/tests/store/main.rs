//! The event store's integration tests, one binary: commands executed against the real
//! Postgres, and the gap-safe global log.

mod execute;
mod global_log;
