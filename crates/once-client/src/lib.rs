//! Typed client of the 1NCE Management API.
//!
//! One [`OnceClient`] (and its clones) shares an OAuth token, a `/v1` rate limiter with
//! priority lanes and an HTTP connection pool. Calls are retried where repeating them is safe;
//! see `docs/once-client.md` for the rules.

mod api;
mod auth;
mod client;
mod config;
pub mod decode;
pub mod endpoint;
mod error;
mod limiter;
mod model;
pub mod wire;

pub use client::OnceClient;
pub use config::{CallObserver, ClientConfig};
pub use error::ClientError;
pub use limiter::Priority;
pub use model::*;
