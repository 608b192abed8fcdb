//! The read models as the query API serves them, loaded the same way by the projectors (to
//! fill the cache after a commit) and by the query API (on a cache miss), so a cached answer
//! and a fresh one are the same bytes.

mod cache;
mod views;

pub use cache::{Cache, CacheConfig};
pub use views::{load_fleet_summary, load_sim, FleetSummary, QuotaTotals, SimView, SIM_COLUMNS};
