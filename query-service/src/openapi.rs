//! `GET /openapi.json`: generated from the handlers' annotations and the response types.
//!
//! The shared crates' types (`SimView`, `FleetSummary`, `StoredEvent`) do not derive
//! `ToSchema`; they are described here by mirrors named like them, which a test keeps equal to
//! their serialised fields.

use chrono::{DateTime, Utc};
use serde_json::Value;
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::routes::{feed, fleet, history, sim_list, sims};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "SIM platform query API",
        description = "The read API of the 1NCE SIM platform: read models (Redis in front), the \
                       event store's audit history and point-in-time state, and the global feed. \
                       Every route needs the viewer role or above. Any route accepts \
                       `X-Consistency-Token: <position>` (a command's `position`).",
        version = "1"
    ),
    paths(
        sim_list::list,
        sims::detail,
        sims::usage,
        sims::quotas,
        sims::sms,
        history::events,
        history::state_as_of,
        fleet::summary,
        fleet::usage,
        feed::feed,
    ),
    components(schemas(SimViewDoc, FleetSummaryDoc, QuotaTotalsDoc, StoredEventDoc)),
    modifiers(&Security, &StandardResponses),
    security(("bearer" = []), ("api_key" = [])),
    tags(
        (name = "sims", description = "SIMs from the read models"),
        (name = "history", description = "The event store: a SIM's history, its state at an instant, the global feed"),
        (name = "fleet", description = "The whole fleet"),
    )
)]
pub struct ApiDoc;

/// The OpenAPI document as JSON.
pub fn document() -> Value {
    serde_json::to_value(ApiDoc::openapi()).unwrap_or_default()
}

/// `X-Consistency-Token`, accepted by every query.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct ConsistencyHeader {
    /// A `position` answered by the command API: the query answers once the read models have
    /// applied it (reading Postgres, not the cache), or 503 `CONSISTENCY_TIMEOUT` after
    /// `CONSISTENCY_WAIT_MS` (default 5000). Malformed or unknown: 400 `INVALID_CONSISTENCY_TOKEN`.
    #[param(rename = "X-Consistency-Token", minimum = 0)]
    x_consistency_token: Option<i64>,
}

pub use platform::openapi::ErrorBody;
use platform::openapi::{Security, StandardResponses};

/// A SIM as the `sims` read model holds it.
#[derive(ToSchema)]
#[schema(as = SimView)]
#[allow(dead_code)]
pub struct SimViewDoc {
    /// 19 digits.
    iccid: String,
    imsi: String,
    msisdn: Option<String>,
    label: Option<String>,
    tags: Vec<String>,
    /// `inactive`, `active`, `suspended` or `terminated`.
    status: String,
    /// `activation` or `suspension` while the provider has not confirmed it.
    pending_change: Option<String>,
    /// `Enabled` or `Disabled`, as 1NCE last reported it.
    provider_status: Option<String>,
    imei: Option<String>,
    imei_lock: bool,
    ip_address: Option<String>,
    network: Option<String>,
    country: Option<String>,
    rat: Option<String>,
    last_seen_at: Option<DateTime<Utc>>,
    /// Bytes; null until the provider reports the data quota.
    data_total: Option<i64>,
    data_remaining: Option<i64>,
    data_expiry: Option<DateTime<Utc>>,
    sms_total: Option<i64>,
    sms_remaining: Option<i64>,
    sms_expiry: Option<DateTime<Utc>>,
    registered_at: DateTime<Utc>,
    terminated_at: Option<DateTime<Utc>>,
    /// The SIM aggregate's version (the command API's `If-Match`).
    version: i64,
    /// The global position of the last event applied to this row (the `ETag`).
    last_position: i64,
    updated_at: DateTime<Utc>,
    /// `complete`, or `parked` while an event of this SIM could not be applied by the
    /// projector and waits aside (the row may be behind the event log until it is replayed).
    #[schema(example = "complete")]
    projection: String,
}

#[derive(ToSchema)]
#[schema(as = QuotaTotals)]
#[allow(dead_code)]
pub struct QuotaTotalsDoc {
    total: i64,
    remaining: i64,
    exhausted: i64,
    expired: i64,
    topups_pending: i64,
}

#[derive(ToSchema)]
#[schema(as = FleetSummary)]
#[allow(dead_code)]
pub struct FleetSummaryDoc {
    sims_total: i64,
    /// Every status, zero included.
    #[schema(value_type = Object, additional_properties)]
    sims_by_status: std::collections::BTreeMap<String, i64>,
    changes_pending: i64,
    data: QuotaTotalsDoc,
    sms: QuotaTotalsDoc,
    #[schema(value_type = Object)]
    sms_messages_by_status: std::collections::BTreeMap<String, i64>,
    /// The highest global position reflected in the read models.
    as_of_position: i64,
}

/// A stored event: the envelope also published on NATS.
#[derive(ToSchema)]
#[schema(as = StoredEvent)]
#[allow(dead_code)]
pub struct StoredEventDoc {
    /// The global position (the feed's cursor, the consistency token).
    position: i64,
    /// The writing transaction (`xid8`): the global order is (transaction_id, position).
    transaction_id: Option<u64>,
    /// `sim`, `quota` or `sms`.
    aggregate_type: String,
    aggregate_id: String,
    /// 1, 2, … per aggregate.
    sequence: i64,
    /// E.g. `SimRegistered`; see docs/events.md.
    event_type: String,
    event_version: String,
    iccid: String,
    recorded_at: DateTime<Utc>,
    /// `command_id`, `correlation_id`, `causation_id`, `actor`, `occurred_at`, `request_id`.
    #[schema(value_type = Object)]
    metadata: Value,
    #[schema(value_type = Object)]
    payload: Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn properties(document: &Value, schema: &str) -> Vec<String> {
        let mut names: Vec<String> = document["components"]["schemas"][schema]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("schema {schema} in {document}"))
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }

    fn keys(value: Value) -> Vec<String> {
        let mut names: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
        names.sort();
        names
    }

    #[test]
    fn mirrors_match_the_serialised_types() {
        let document = document();
        let now = Utc::now();
        let sim = readmodel::SimView {
            iccid: String::new(),
            imsi: String::new(),
            msisdn: None,
            label: None,
            tags: vec![],
            status: String::new(),
            pending_change: None,
            provider_status: None,
            imei: None,
            imei_lock: false,
            ip_address: None,
            network: None,
            country: None,
            rat: None,
            last_seen_at: None,
            data_total: None,
            data_remaining: None,
            data_expiry: None,
            sms_total: None,
            sms_remaining: None,
            sms_expiry: None,
            registered_at: now,
            terminated_at: None,
            version: 0,
            last_position: 0,
            updated_at: now,
            projection: "complete".to_owned(),
        };
        assert_eq!(
            properties(&document, "SimView"),
            keys(serde_json::to_value(sim).unwrap())
        );
        assert_eq!(
            properties(&document, "FleetSummary"),
            keys(serde_json::to_value(readmodel::FleetSummary::default()).unwrap())
        );
        assert_eq!(
            properties(&document, "QuotaTotals"),
            keys(serde_json::to_value(readmodel::QuotaTotals::default()).unwrap())
        );
        let event = eventstore::StoredEvent {
            position: 1,
            transaction_id: Some(1),
            aggregate_type: String::new(),
            aggregate_id: String::new(),
            sequence: 1,
            event_type: String::new(),
            event_version: String::new(),
            iccid: String::new(),
            recorded_at: now,
            metadata: Value::Null,
            payload: Value::Null,
        };
        assert_eq!(
            properties(&document, "StoredEvent"),
            keys(serde_json::to_value(event).unwrap())
        );
    }
}
