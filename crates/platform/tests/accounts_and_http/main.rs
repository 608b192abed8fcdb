//! The platform crate's integration tests, one binary: accounts and API keys in Postgres, and
//! the standard HTTP layers.

mod auth_db;
mod http;
