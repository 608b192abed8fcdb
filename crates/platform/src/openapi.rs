//! What both APIs' OpenAPI documents share: the one error shape ([`ErrorBody`]), the security
//! schemes, and the error answers any operation can give ([`StandardResponses`]), so that the
//! documents list every status code an operation really answers with (schemathesis checks
//! this against the running services in the test command).

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, HeaderBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, PartialSchema};

pub use crate::error::{ErrorBody, ErrorDetail};

/// The bearer (JWT) and API-key (`X-API-Key: iot_key_…`) schemes.
pub struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from the command API's POST /api/v1/auth/login",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "An API key `iot_key_…`",
            ))),
        );
        components
            .schemas
            .entry("ErrorBody".to_owned())
            .or_insert_with(ErrorBody::schema);
        components
            .schemas
            .entry("ErrorDetail".to_owned())
            .or_insert_with(ErrorDetail::schema);
    }
}

/// Adds, to every operation that does not document them itself, the error answers the
/// standard HTTP stack and the shared extractors give: 400 (a malformed path, query, header
/// or body), 401 and 403 (where the operation needs credentials), 404 (where the path has a
/// parameter), 408 (the request timeout), 413 and 415 (where it takes a body), 422 (a
/// well-formed request breaking a rule), 429 (rate limits) and 503 (a dependency
/// unavailable: `DATABASE_UNAVAILABLE`, `CONSISTENCY_TIMEOUT`, with `Retry-After`).
pub struct StandardResponses;

impl Modify for StandardResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let has_parameter = path.contains('{');
            for operation in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                add_standard(operation, path, has_parameter);
            }
        }
    }
}

fn add_standard(operation: &mut Operation, path: &str, has_parameter: bool) {
    // A SIM's routes all refuse the same way; said once here, not on every route.
    let sim = path.contains("{iccid}");
    let has_body = operation.request_body.is_some();
    // 401 and 403 everywhere: routes without credentials (login, refresh) answer 401 for wrong
    // ones, and a gateway may add its own.
    let mut answers: Vec<(&str, &str)> = vec![
        ("401", "Missing, invalid or expired credentials"),
        ("403", "The credentials' role may not do this"),
        ("400", "Malformed request: a path, query or header value, or a body that is not valid JSON of the right shape"),
        ("408", "The request took longer than the server's timeout"),
        ("431", "Request headers larger than the limit (32 KiB in all, 8 KiB each)"),
        (
            "422",
            if sim {
                "`INVALID_ICCID` (not 19 digits, or 20 with a wrong Luhn digit), or another rule broken"
            } else {
                "Well-formed, but breaking a rule (a value out of range, an invalid identifier)"
            },
        ),
        ("429", "Too many requests (`RATE_LIMITED`, with `Retry-After` and `X-RateLimit-*`)"),
        ("503", "A dependency is unavailable (`DATABASE_UNAVAILABLE`, `CONSISTENCY_TIMEOUT`): retry after `Retry-After`"),
    ];
    if has_parameter {
        answers.push((
            "404",
            if sim {
                "`SIM_NOT_FOUND`: no SIM with this ICCID"
            } else {
                "No such resource"
            },
        ));
    }
    // A command on one SIM can also find the SIM in the wrong state.
    if sim && is_command(operation) {
        answers.push(("409", "The SIM's state or version refuses the command (e.g. `VERSION_CONFLICT`, a change already pending)"));
        answers.push((
            "410",
            "`SIM_TERMINATED`: the SIM is terminated; nothing but reads is accepted",
        ));
        answers.push(("412", "`If-Match` names another version than the SIM's"));
    }
    if has_body {
        answers.push(("413", "The body is larger than the limit"));
        answers.push(("415", "The body is not `application/json`"));
    }
    for (status, description) in answers {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::T(error_response(description)));
    }
}

/// Whether the operation changes something (its success answer carries a command's answer):
/// the command API's operations are tagged `commands`.
fn is_command(operation: &Operation) -> bool {
    operation
        .tags
        .as_ref()
        .is_some_and(|tags| tags.iter().any(|tag| tag == "commands"))
}

/// An error answer in the contract's shape, with its `X-Request-Id` header.
pub fn error_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .header(
            "X-Request-Id",
            HeaderBuilder::new()
                .description(Some(
                    "The request's id (the client's, when it sent an acceptable one)",
                ))
                .build(),
        )
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::OpenApi;

    #[utoipa::path(get, path = "/things/{id}", params(("id" = String, Path)), responses((status = 200, description = "the thing")))]
    #[allow(dead_code)]
    async fn thing() {}

    #[utoipa::path(post, path = "/sims/{iccid}/activate", tag = "commands",
        params(("iccid" = String, Path)), responses((status = 202, description = "requested")))]
    #[allow(dead_code)]
    async fn activate() {}

    #[utoipa::path(get, path = "/sims/{iccid}", tag = "sims",
        params(("iccid" = String, Path)), responses((status = 200, description = "the SIM")))]
    #[allow(dead_code)]
    async fn sim() {}

    #[derive(OpenApi)]
    #[openapi(paths(thing, activate, sim), modifiers(&Security, &StandardResponses))]
    struct Doc;

    #[test]
    fn every_operation_documents_the_standard_errors() {
        let document = serde_json::to_value(Doc::openapi()).unwrap();
        let responses = document["paths"]["/things/{id}"]["get"]["responses"]
            .as_object()
            .unwrap();
        for status in ["200", "400", "401", "403", "404", "408", "422", "429", "503"] {
            assert!(responses.contains_key(status), "{status} in {responses:?}");
        }
        assert!(!responses.contains_key("415"), "no body, no 415");
        assert_eq!(responses["200"]["description"], "the thing");
        assert!(document["components"]["schemas"]["ErrorBody"].is_object());
    }

    #[test]
    fn a_sims_routes_name_the_sims_refusals() {
        let document = serde_json::to_value(Doc::openapi()).unwrap();
        let command = &document["paths"]["/sims/{iccid}/activate"]["post"]["responses"];
        let read = &document["paths"]["/sims/{iccid}"]["get"]["responses"];
        for responses in [command, read] {
            assert!(responses["404"]["description"]
                .as_str()
                .unwrap()
                .contains("SIM_NOT_FOUND"));
            assert!(responses["422"]["description"]
                .as_str()
                .unwrap()
                .contains("INVALID_ICCID"));
        }
        for status in ["409", "410", "412"] {
            assert!(command[status].is_object(), "{status} for a command");
            assert!(read[status].is_null(), "no {status} for a read");
        }
        let thing = &document["paths"]["/things/{id}"]["get"]["responses"];
        assert_eq!(thing["404"]["description"], "No such resource");
    }
}
