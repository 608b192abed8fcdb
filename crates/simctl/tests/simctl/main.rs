//! simctl's integration tests, one binary: each test starts the real platform in-process on
//! its own database and NATS stream (command API, query API, and the projectors process with
//! its relay, all through `testkit`'s real start path) and drives the built `simctl` binary
//! against it with a private HOME and configuration file.

mod common;

mod audit;
mod auth;
mod bulk;
mod events;
mod formats;
mod history;
mod sims;
