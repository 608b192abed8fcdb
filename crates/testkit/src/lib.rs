//! What the crates' integration tests and benches share (`publish = false`): the services
//! started on their real start path (`App::build` → `run_until_stopped(shutdown)`), the test
//! database's URL, distinct ids, the contract's error shape, waits with deadlines, and the
//! bench harness.
//!
//! It depends on the services it starts; each service's tests depend on it (a dev-dependency
//! cycle, which cargo allows: integration tests link the same library testkit links).

pub mod apps;
pub mod bench;
pub mod db;
pub mod http;
pub mod ids;
pub mod running;
pub mod wait;

pub use apps::{CommandApi, QueryApi};
pub use db::database_url;
pub use http::error_body;
pub use ids::{iccid, with_luhn};
pub use running::Running;
pub use wait::eventually;
