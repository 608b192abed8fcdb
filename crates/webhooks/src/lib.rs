//! Webhooks: downstream systems that cannot reach NATS get the log's events pushed to a URL.
//! A subscription has an event-type filter, a secret for the signatures and its own cursor over
//! the global log; the command API's dispatcher claims due subscriptions under a lease
//! ([`Webhooks::claim`]), sends the events after the cursor in order, and moves the cursor
//! only past what a receiver accepted ([`Webhooks::delivered`]) or what the filter skips.
//! This crate owns the two tables (`migrations/20261207200001_webhooks.sql`).

pub mod signature;
mod store;

pub use store::{Claimed, NewSubscription, Webhooks};

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

/// A subscription as the API shows it (never its secret).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SubscriptionView {
    pub id: Uuid,
    pub url: String,
    pub description: Option<String>,
    /// Exact event types, or prefixes ending in `*`.
    pub event_types: Vec<String>,
    /// Only events of SIMs that carried this tag when the event happened (none: every event).
    pub tag: Option<String>,
    /// `active`, `paused` or `failing`.
    pub status: String,
    /// Why it is `failing`: the last attempt's answer.
    pub failure_reason: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The position of the last event dealt with (delivered, or not matching the filter).
    pub cursor_position: i64,
    /// Failed attempts at the next event to deliver.
    pub attempts: i32,
}

/// One event tried for one subscription.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliveryView {
    /// Sent as `X-Sim-Delivery`: the same for every attempt at this event.
    pub id: Uuid,
    pub position: i64,
    /// Sent as `X-Sim-Event-Id` (`<aggregate_type>:<aggregate_id>:<sequence>`).
    pub event_id: String,
    pub event_type: String,
    pub attempts: i32,
    /// The receiver's last HTTP status (none when it could not be reached).
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub last_attempt_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// Why a pattern of the event-type filter is refused.
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    let name = pattern.strip_suffix('*').unwrap_or(pattern);
    if pattern.is_empty() || pattern.len() > 100 {
        return Err(format!("event type pattern {pattern:?}: 1 to 100 characters"));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "event type pattern {pattern:?}: letters and digits, optionally ending in `*`"
        ));
    }
    Ok(())
}

/// The event type a rule with a webhook action records: the subscription it names delivers it
/// whatever its own filters.
pub const RULE_WEBHOOK_REQUESTED: &str = "RuleWebhookRequested";

/// Whether `event_type` matches one of `patterns` (exact, or a prefix ending in `*`).
pub fn matches(patterns: &[String], event_type: &str) -> bool {
    patterns.iter().any(|pattern| match pattern.strip_suffix('*') {
        Some(prefix) => event_type.starts_with(prefix),
        None => pattern == event_type,
    })
}
