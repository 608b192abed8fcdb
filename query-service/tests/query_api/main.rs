//! The query API's integration tests, one binary: each test starts the real service
//! (`query_service::App`, through `testkit::QueryApi`) on its own database.

mod common;

mod attacks;
mod connectivity;
mod export;
mod fleet_as_of;
mod fleet_freshness;
mod history;
mod quota_filter;
mod sims;
