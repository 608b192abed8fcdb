//! What the suites share: the command API on its real start path, ids, the error shape.

pub use testkit::apps::ADMIN;
pub use testkit::{error_body, iccid, with_luhn, CommandApi};
