//! The command API's integration tests, one binary: each test starts the real service
//! (`command_service::App`, through `testkit::CommandApi`) on its own database.

mod common;

mod attacks;
mod auth;
mod backlog_metrics;
mod browser_auth;
mod bulk_crash;
mod bulk_jobs;
mod bulk_targets;
mod commands;
mod controls;
mod http;
mod rules;
mod rules_webhook;
mod sync_jobs;
mod webhooks;
