//! The read models as the query API serves them, loaded the same way by the projectors (to
//! fill the cache after a commit) and by the query API (on a cache miss), so a cached answer
//! and a fresh one are the same bytes.

mod cache;
mod replay;
mod views;

pub use cache::{Cache, CacheConfig};
pub use replay::{sim_view_as_of, try_sim_view_as_of, ReplayError};
pub use views::{
    load_fleet_summary, load_sim, load_sims, FleetSummary, QuotaTotals, SimView, PROJECTION_COMPLETE,
    PROJECTION_PARKED, SIM_COLUMNS,
};
