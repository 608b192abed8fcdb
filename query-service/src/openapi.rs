//! `GET /openapi.json`: generated from the handlers' annotations and the response types. The
//! shared crates' types (`SimView`, `FleetSummary`, `StoredEvent`, the error body) derive their
//! schemas themselves, behind their `openapi` feature.

use eventstore::StoredEvent;
use readmodel::{ConnectivityChange, FleetSummary, FleetSummaryAsOf, QuotaTotals, SimView};
use serde_json::Value;
use utoipa::{IntoParams, OpenApi};

use crate::routes::{connectivity, export, feed, fleet, history, sim_list, sims};

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
        export::export,
        sims::detail,
        sims::usage,
        sims::quotas,
        sims::sms,
        connectivity::connectivity,
        history::events,
        history::state_as_of,
        fleet::summary,
        fleet::usage,
        feed::feed,
    ),
    components(schemas(SimView, FleetSummary, FleetSummaryAsOf, QuotaTotals, StoredEvent, ConnectivityChange)),
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

/// The document as pretty JSON: what `query-service openapi` prints (the dashboard's types
/// are generated from it without a running service).
pub fn document_json() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_default()
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

/// `GET /fleet/summary`'s answer: the summary now, or as of an instant. `anyOf`, not `oneOf`:
/// an as-of answer whose figures are all known is also a valid `FleetSummary`.
pub struct FleetSummaryAnswer;

impl utoipa::PartialSchema for FleetSummaryAnswer {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AnyOfBuilder, Ref};
        AnyOfBuilder::new()
            .item(Ref::from_schema_name("FleetSummary"))
            .item(Ref::from_schema_name("FleetSummaryAsOf"))
            .into()
    }
}

impl utoipa::ToSchema for FleetSummaryAnswer {}

pub use platform::openapi::ErrorBody;
use platform::openapi::{Security, StandardResponses};

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
    fn schemas_match_the_serialised_types() {
        let document = document();
        let now = chrono::Utc::now();
        let sim = readmodel::SimView::registered("8988303000000000001", "901405100000001", now);
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
