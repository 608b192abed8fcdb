//! `GET /openapi.json`: the command API's OpenAPI document, generated from the handlers'
//! annotations and the request and answer types.

use axum::Json;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::routes::{auth, sims, sync, users};

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

/// The error shape of every error answer.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorDetail {
    /// A stable, machine-readable code such as `SIM_NOT_FOUND`.
    code: String,
    message: String,
    details: serde_json::Value,
    /// Also in the `X-Request-Id` header.
    request_id: String,
}

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "SIM platform command API", description = "Operators' commands to the SIM, quota and SMS aggregates, and the accounts that authorise them. Commands honour `Idempotency-Key` and `If-Match`."),
    paths(
        auth::login, auth::refresh, auth::create_api_key, auth::list_api_keys, auth::revoke_api_key,
        users::create_user, users::list_users,
        sims::register, sims::update, sims::activate, sims::suspend, sims::terminate, sims::top_up, sims::send_sms,
        sync::sync_one, sync::sync_all, sync::job,
    ),
    components(schemas(CommandAnswer, ErrorBody, ErrorDetail)),
    modifiers(&Security),
)]
pub struct ApiDoc;

pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
