//! The simulator's integration tests, one binary: the real HTTP surface of a simulator started
//! on a free port (`once_simulator::App`), as the 1NCE client and the connector see it.

mod common;

mod admin;
mod auth;
mod clock;
mod controls;
mod limits_faults;
mod scale;
mod sims;
mod stream;
mod usage_quota_sms;
