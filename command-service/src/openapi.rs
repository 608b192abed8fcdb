//! `GET /openapi.json`: the command API's OpenAPI document, generated from the handlers'
//! annotations and the request and answer types.

use axum::Json;
use utoipa::{OpenApi, ToSchema};

use crate::routes::{auth, bulk, controls, import, rules, sims, sync, users, webhooks};

/// The answer to every command (`eventstore::CommandAnswer`).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct CommandAnswer {
    command_id: uuid::Uuid,
    /// The ICCID, `<iccid>:<kind>` for a quota, the message id for an SMS.
    aggregate_id: String,
    /// The aggregate's version after the command; also the `ETag`, usable in `If-Match`.
    version: u64,
    /// The global position of the command's last event: a consistency token for the query API.
    position: i64,
}

pub use platform::openapi::ErrorBody;
use platform::openapi::{Security, StandardResponses};

#[derive(OpenApi)]
#[openapi(
    info(title = "SIM platform command API", description = "Operators' commands to the SIM, quota and SMS aggregates, and the accounts that authorise them. Commands honour `Idempotency-Key` and `If-Match`."),
    paths(
        auth::login, auth::refresh, auth::logout, auth::me, auth::create_api_key, auth::list_api_keys, auth::revoke_api_key,
        users::create_user, users::list_users, users::update_user,
        sims::register, sims::update, sims::activate, sims::suspend, sims::terminate, sims::top_up, sims::send_sms,
        controls::reset_connectivity, controls::set_auto_top_up, controls::show_limits, controls::change_limits,
        sync::sync_one, sync::sync_all, sync::list, sync::job,
        bulk::submit, bulk::list, bulk::job, bulk::items, bulk::cancel, import::import,
        webhooks::create_webhook, webhooks::list_webhooks, webhooks::show_webhook, webhooks::update_webhook,
        webhooks::delete_webhook, webhooks::webhook_deliveries,
        rules::create_rule, rules::list_rules, rules::show_rule, rules::change_rule, rules::enable_rule,
        rules::disable_rule, rules::delete_rule, rules::rule_firings, rules::dry_run_rule,
    ),
    components(schemas(CommandAnswer)),
    modifiers(&Security, &StandardResponses),
)]
pub struct ApiDoc;

pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// The document as pretty JSON: what `command-service openapi` prints (the dashboard's types
/// are generated from it without a running service).
pub fn document_json() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_default()
}
