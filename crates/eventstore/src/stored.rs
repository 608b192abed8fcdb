use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An event as the store holds it; also the envelope published on NATS and served by the feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StoredEvent {
    /// The global position (the feed's cursor, the consistency token).
    pub position: i64,
    /// The writing transaction (`xid8`), half of the global log's cursor: the global order is
    /// (transaction_id, position).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub transaction_id: Option<u64>,
    /// `sim`, `quota` or `sms`.
    pub aggregate_type: String,
    pub aggregate_id: String,
    /// 1, 2, … per aggregate.
    pub sequence: i64,
    /// E.g. `SimRegistered`; see docs/events.md.
    pub event_type: String,
    pub event_version: String,
    pub iccid: String,
    pub recorded_at: DateTime<Utc>,
    /// `command_id`, `correlation_id`, `causation_id`, `actor`, `occurred_at`, `request_id`.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub metadata: Value,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub payload: Value,
}

impl StoredEvent {
    /// The domain event, rebuilt from its type and payload columns.
    pub fn to_domain<E: domain::DomainEvent>(&self) -> Result<E, serde_json::Error> {
        decode_event(&self.event_type, &self.payload)
    }
}

/// Domain events are adjacently tagged (`{"event_type": …, "payload": …}`), so the two
/// columns recombine into one value.
pub(crate) fn decode_event<E: domain::DomainEvent>(
    event_type: &str,
    payload: &Value,
) -> Result<E, serde_json::Error> {
    serde_json::from_value(serde_json::json!({ "event_type": event_type, "payload": payload }))
}

/// The payload column of a domain event: its serialised form without the tag.
pub(crate) fn encode_payload<E: domain::DomainEvent>(event: &E) -> Result<Value, serde_json::Error> {
    let mut value = serde_json::to_value(event)?;
    Ok(value
        .get_mut("payload")
        .map(Value::take)
        .unwrap_or(Value::Object(Default::default())))
}
