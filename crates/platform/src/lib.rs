//! What every service shares: configuration, telemetry, metrics, auth (JWT, API keys, roles),
//! the HTTP error shape and the standard HTTP layers.
//!
//! Services build their router, then wrap it once with [`http::with_standard_layers`], so every
//! response (including axum's own rejections, panics, timeouts and oversized bodies) carries the
//! contract's error shape and an `X-Request-Id`.

pub mod auth;
pub mod config;
pub mod db;
pub mod error;
pub mod extract;
pub mod http;
#[cfg(feature = "nats")]
pub mod jetstream_presence;
pub mod metrics;
#[cfg(feature = "nats")]
pub mod nats;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod readiness;
pub mod startup;
pub mod telemetry;

pub use auth::{Authenticator, Principal, Role};
pub use config::CommonConfig;
pub use error::{ApiError, ApiJson, ApiPath, ApiQuery, IccidPath};
pub use metrics::Metrics;
pub use startup::{Shutdown, StartError};
