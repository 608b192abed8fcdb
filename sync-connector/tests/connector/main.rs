//! The sync connector's integration tests, one binary: the connector against the project's
//! 1NCE simulator, on the test's own database and NATS stream.

mod common;

mod bulk;
mod change_driven;
mod controls;
mod crash;
mod faults;
mod network_events;
mod poll;
mod presence;
mod provider_controls;
mod requests;
mod streamer;
mod streamer_apply;
