//! The read models, one module each: its table's row type, the projectors' writes and the
//! loaders the query API (and the projectors' cache refresh) read it with, so a cached answer
//! and a fresh one are the same bytes. The projectors own the writing (`projectors::fold`
//! decides what to write); every SQL statement on these tables is here or in the query API's
//! filtered lists. The Redis cache and the auditors' replay live here too.

mod bulk;
mod cache;
pub mod connectivity_history;
pub mod fleet;
pub mod fleet_history;
pub mod quotas;
mod replay;
pub mod sim_list;
pub mod sims;
pub mod sms;
pub mod status_history;
pub mod usage;

pub use cache::{Cache, CacheConfig};
pub use connectivity_history::ConnectivityChange;
pub use fleet::{load_fleet_summary, FleetSummary, QuotaTotals};
pub use fleet_history::{load_fleet_summary_as_of, Figures, FleetChange, FleetSummaryAsOf};
pub use quotas::QuotaRow;
pub use replay::{sim_view_as_of, try_sim_view_as_of, ReplayError};
pub use sims::{load_sim, load_sims, SimView, PROJECTION_COMPLETE, PROJECTION_PARKED, SIM_COLUMNS};
pub use sms::SmsRow;
pub use status_history::StatusChange;
pub use usage::{UsagePoint, UsageRow};
