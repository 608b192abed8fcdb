//! The standard layers, end to end over real HTTP.

use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use platform::error::{ApiError, ApiJson};
use platform::http::{ops_routes, with_layers, with_standard_layers, LayerOptions, NotReady};
use platform::Metrics;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct NewSim {
    iccid: String,
    label: Option<String>,
}

async fn create(ApiJson(sim): ApiJson<NewSim>) -> ApiJson<Value> {
    ApiJson(json!({ "iccid": sim.iccid }))
}

async fn boom() -> &'static str {
    panic!("secret panic detail: password=hunter2")
}

async fn missing() -> Result<String, ApiError> {
    Err(ApiError::not_found("SIM_NOT_FOUND", "no such SIM"))
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(5)).await;
    "late"
}

struct Server {
    base: String,
    client: reqwest::Client,
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A GET of `path`, whatever it answers.
    async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// A GET of `path` that brings its own `X-Request-Id`, whatever it answers.
    async fn get_with_request_id(&self, path: &str, request_id: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .header("x-request-id", request_id)
            .send()
            .await
            .unwrap()
    }
}

async fn start(ready: bool) -> Server {
    let metrics = Metrics::new();
    let app = Router::new()
        .route("/sims", post(create))
        .route("/sims/{iccid}", get(missing))
        .route("/boom", get(boom))
        .route("/slow", get(slow))
        .merge(ops_routes(metrics.clone(), move || async move {
            if ready {
                Ok(())
            } else {
                Err(NotReady::new("postgres", "connection refused (raw driver text)"))
            }
        }));
    let app = with_layers(
        app,
        metrics,
        LayerOptions {
            body_limit_bytes: 1024,
            request_timeout: Duration::from_millis(300),
        },
    );
    serve(app).await
}

async fn serve(app: Router) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Server {
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
    }
}

/// Asserts the contract's error shape and that body and header carry the same request id.
async fn error_body(response: reqwest::Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["content-type"], "application/json");
    let header_id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(!header_id.is_empty());
    let body: Value = response.json().await.unwrap();
    let error = &body["error"];
    assert_eq!(error["code"], code, "{body}");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert!(error["details"].is_object(), "{body}");
    assert_eq!(error["request_id"], header_id.as_str(), "{body}");
    assert_eq!(body.as_object().unwrap().len(), 1);
    body
}

/// A GET of `path` on `s` answered with the error `status` and `code` in the contract's shape
/// ([`error_body`]); the body.
async fn get_error(s: &Server, path: &str, status: StatusCode, code: &str) -> Value {
    error_body(s.get(path).await, status, code).await
}

#[tokio::test]
async fn unknown_route_is_404_in_the_error_shape() {
    let s = start(true).await;
    let body = get_error(&s, "/nope", StatusCode::NOT_FOUND, "NOT_FOUND").await;
    assert_eq!(body["error"]["message"], "no route for GET /nope");
    // A generated request id is a uuid.
    let id = body["error"]["request_id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
}

#[tokio::test]
async fn handler_errors_carry_the_request_id() {
    let s = start(true).await;
    let body = get_error(&s, "/sims/123", StatusCode::NOT_FOUND, "SIM_NOT_FOUND").await;
    assert_eq!(body["error"]["details"], json!({}));
}

#[tokio::test]
async fn wrong_method_is_405() {
    let s = start(true).await;
    let r = s.client.delete(format!("{}/sims", s.base)).send().await.unwrap();
    assert!(r.headers()["allow"].to_str().unwrap().contains("POST"));
    error_body(r, StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED").await;
}

#[tokio::test]
async fn body_over_the_limit_is_413() {
    let s = start(true).await;
    let big = json!({ "iccid": "8".repeat(2000) });
    let r = s
        .client
        .post(format!("{}/sims", s.base))
        .json(&big)
        .send()
        .await
        .unwrap();
    error_body(r, StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE").await;
}

#[tokio::test]
async fn json_rejections() {
    let s = start(true).await;
    let url = format!("{}/sims", s.base);
    let post = |body: &'static str, ct: Option<&'static str>| {
        let mut req = s.client.post(&url).body(body);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        req.send()
    };
    let ok = post(r#"{"iccid":"89882806660000000001"}"#, Some("application/json"))
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.json::<Value>().await.unwrap()["iccid"], "89882806660000000001");

    let r = post(r#"{"iccid": "#, Some("application/json")).await.unwrap();
    error_body(r, StatusCode::BAD_REQUEST, "MALFORMED_JSON").await;

    let r = post(r#"{"iccid":"1","colour":"red"}"#, Some("application/json"))
        .await
        .unwrap();
    let body = error_body(r, StatusCode::UNPROCESSABLE_ENTITY, "INVALID_BODY").await;
    let reason = body["error"]["details"]["reason"].as_str().unwrap();
    assert!(reason.contains("unknown field `colour`"), "{reason}");

    let r = post(r#"{"label":"x"}"#, Some("application/json")).await.unwrap();
    let body = error_body(r, StatusCode::UNPROCESSABLE_ENTITY, "INVALID_BODY").await;
    assert!(body["error"]["details"]["reason"]
        .as_str()
        .unwrap()
        .contains("missing field `iccid`"));

    let r = post(r#"{"iccid":5}"#, Some("application/json")).await.unwrap();
    error_body(r, StatusCode::UNPROCESSABLE_ENTITY, "INVALID_BODY").await;

    let r = post(r#"{"iccid":"1"}"#, None).await.unwrap();
    error_body(r, StatusCode::UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE").await;
    let r = post(r#"{"iccid":"1"}"#, Some("text/plain")).await.unwrap();
    error_body(r, StatusCode::UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE").await;
}

#[tokio::test]
async fn a_panic_is_a_500_that_leaks_nothing() {
    let s = start(true).await;
    let body = get_error(&s, "/boom", StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR").await;
    assert_eq!(body["error"]["message"], "internal error");
    assert!(!body.to_string().contains("hunter2"));
    // The server survives it.
    let r = s.get("/health").await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_slow_handler_times_out_with_408() {
    let s = start(true).await;
    get_error(&s, "/slow", StatusCode::REQUEST_TIMEOUT, "REQUEST_TIMEOUT").await;
}

#[tokio::test]
async fn client_request_id_is_echoed_and_bad_ones_replaced() {
    let s = start(true).await;
    let r = s.get_with_request_id("/health", "client-abc-123").await;
    assert_eq!(r.headers()["x-request-id"], "client-abc-123");

    let r = s.get_with_request_id("/nope", "client-xyz").await;
    let body = error_body(r, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    assert_eq!(body["error"]["request_id"], "client-xyz");

    let long = "a".repeat(200);
    let r = s.get_with_request_id("/health", &long).await;
    let id = r.headers()["x-request-id"].to_str().unwrap();
    assert_ne!(id, long);
    assert!(uuid::Uuid::parse_str(id).is_ok());

    let r = s.get_with_request_id("/health", "has space").await;
    assert_ne!(r.headers()["x-request-id"], "has space");
}

#[tokio::test]
async fn health_and_ready() {
    let s = start(true).await;
    let r = s.get("/health").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().contains_key("x-request-id"));
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"status": "ok"}));
    let r = s.get("/ready").await;
    assert_eq!(r.status(), StatusCode::OK);
    // A readiness check without named dependencies names none.
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"status": "ready", "dependencies": {}})
    );
}

#[tokio::test]
async fn not_ready_is_503_naming_the_dependency_only() {
    let s = start(false).await;
    let body = get_error(&s, "/ready", StatusCode::SERVICE_UNAVAILABLE, "NOT_READY").await;
    assert_eq!(
        body["error"]["details"],
        json!({"dependency": "postgres", "dependencies": {"postgres": "unavailable"}})
    );
    assert!(!body.to_string().contains("raw driver text"));
    // The scrape runs the same check: `service_ready` 0 (1 in the test below).
    let text = s.get("/metrics").await.text().await.unwrap();
    assert!(text.contains("\nservice_ready 0\n"), "{text}");
}

#[tokio::test]
async fn metrics_count_requests_by_route_template() {
    let s = start(true).await;
    s.get("/sims/8988").await;
    s.get("/no/such/path").await;
    s.get("/boom").await;
    let r = s.get("/metrics").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = r.text().await.unwrap();
    assert!(
        text.contains(r#"http_requests_total{method="GET",route="/sims/{iccid}",status="404"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"http_requests_total{method="GET",route="unmatched",status="404"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"http_requests_total{method="GET",route="/boom",status="500"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"http_request_duration_seconds_count{method="GET",route="/sims/{iccid}"} 1"#));
    assert!(!text.contains("/sims/8988"));
    assert!(text.contains("\nservice_ready 1\n"), "{text}");
}

#[tokio::test]
async fn standard_layers_default_entry_point_works() {
    let metrics = Metrics::new();
    let app = with_standard_layers(
        Router::new().merge(ops_routes(metrics.clone(), platform::http::always_ready)),
        metrics,
        64 * 1024,
    );
    let s = serve(app).await;
    let r = s.get("/ready").await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = s.client.post(format!("{}/health", s.base)).send().await.unwrap();
    error_body(r, StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED").await;
}
