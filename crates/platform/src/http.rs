//! The standard HTTP stack every service wraps its router with, and the ops routes
//! (`/health`, `/ready`, `/metrics`).

use std::any::Any;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::{from_fn, from_fn_with_state, map_request};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::json;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};

use crate::error::{render_errors, ApiError, X_REQUEST_ID};
use crate::metrics::{track_http, Metrics};
use crate::readiness::{ops_routes_with_dependencies, DependencyCheck, Report};

/// Handlers slower than this answer 408 `REQUEST_TIMEOUT` (see [`with_layers`] to change it).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Client-sent request ids longer than this are replaced (they end up in every log line).
pub const MAX_REQUEST_ID_LEN: usize = 128;
/// Requests whose headers (names and values) add up to more than this, or with one header
/// value longer than [`MAX_HEADER_VALUE_BYTES`], are refused with 431 before any handler runs.
/// (hyper refuses far larger ones itself, without the error shape.)
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
pub const MAX_HEADER_VALUE_BYTES: usize = 8 * 1024;

#[derive(Debug, Clone, Copy)]
pub struct LayerOptions {
    pub body_limit_bytes: usize,
    pub request_timeout: Duration,
}

/// [`with_layers`] with the default request timeout.
pub fn with_standard_layers(router: Router, metrics: Metrics, body_limit_bytes: usize) -> Router {
    with_layers(
        router,
        metrics,
        LayerOptions {
            body_limit_bytes,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        },
    )
}

/// Wraps a fully built router (call it last: axum applies layers to the routes present). Adds
/// the 404/405 fallbacks and, outermost first: sensitive-header marking, request-id
/// sanitising, `SetRequestId` (uuid v4 when absent) and `PropagateRequestId`, the trace span
/// (carrying `request_id`), the error renderer, metrics, panic catching, the timeout, the body
/// limit. The renderer sits outside panic/timeout/limit so their bare answers get the shape;
/// metrics sit outside the panic catcher so a panicking request is still counted (as a 500).
pub fn with_layers(router: Router, metrics: Metrics, options: LayerOptions) -> Router {
    let sensitive = [
        header::AUTHORIZATION,
        header::COOKIE,
        header::HeaderName::from_static("x-api-key"),
    ];
    router
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(options.body_limit_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            options.request_timeout,
        ))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(from_fn(limit_headers))
        .layer(from_fn_with_state(metrics, track_http))
        .layer(from_fn(render_errors))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(make_span)
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(PropagateRequestIdLayer::new(X_REQUEST_ID))
        .layer(SetRequestIdLayer::new(X_REQUEST_ID, MakeRequestUuid))
        .layer(map_request(sanitize_request_id))
        .layer(SetSensitiveRequestHeadersLayer::new(sensitive))
}

fn make_span(req: &Request) -> tracing::Span {
    let request_id = req
        .headers()
        .get(X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // The path only: query strings may carry values we don't want in logs.
    tracing::info_span!(
        "http_request",
        method = %req.method(),
        path = %req.uri().path(),
        request_id = %request_id,
    )
}

/// Drops a client `X-Request-Id` that is empty, too long or not printable ASCII, so the
/// `SetRequestIdLayer` behind it generates a fresh one (log injection, unbounded log lines).
async fn sanitize_request_id(mut req: Request) -> Request {
    let acceptable = req.headers().get(X_REQUEST_ID).is_some_and(|v| {
        let b = v.as_bytes();
        !b.is_empty() && b.len() <= MAX_REQUEST_ID_LEN && b.iter().all(|c| c.is_ascii_graphic())
    });
    if !acceptable {
        req.headers_mut().remove(X_REQUEST_ID);
    }
    req
}

/// 431 `REQUEST_HEADERS_TOO_LARGE` for oversized headers (see [`MAX_HEADER_BYTES`]).
async fn limit_headers(req: Request, next: axum::middleware::Next) -> Response {
    let mut total = 0;
    for (name, value) in req.headers() {
        let size = value.as_bytes().len();
        total += name.as_str().len() + size;
        if size > MAX_HEADER_VALUE_BYTES || total > MAX_HEADER_BYTES {
            return ApiError::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "REQUEST_HEADERS_TOO_LARGE",
                format!(
                    "request headers are limited to {MAX_HEADER_BYTES} bytes in all and \
                     {MAX_HEADER_VALUE_BYTES} bytes each"
                ),
            )
            .with_details(json!({ "header": name.as_str() }))
            .into_response();
        }
    }
    next.run(req).await
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("<non-string panic payload>");
    // `internal` logs the panic message; the client only sees "internal error".
    ApiError::internal(format!("handler panicked: {detail}")).into_response()
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found("NOT_FOUND", format!("no route for {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        format!("method {method} is not allowed on {}", uri.path()),
    )
}

/// Why a readiness check failed. Only `dependency` is sent to the client, and `reason` is
/// logged (it may be a raw driver message), unless the reason is the service's own words
/// ([`NotReady::explained`]): then it is sent as `details.reason` too.
#[derive(Debug, Clone)]
pub struct NotReady {
    pub dependency: String,
    pub reason: String,
    pub public: bool,
}

impl NotReady {
    pub fn new(dependency: impl Into<String>, reason: impl ToString) -> Self {
        Self {
            dependency: dependency.into(),
            reason: reason.to_string(),
            public: false,
        }
    }

    /// A reason written by the service for the operator (safe to answer with).
    pub fn explained(dependency: impl Into<String>, reason: impl ToString) -> Self {
        Self {
            public: true,
            ..Self::new(dependency, reason)
        }
    }
}

/// What a process's background tasks report against its readiness, beside its connections:
/// e.g. the relay refusing a stream that does not match the store. `/ready` answers 503 with
/// the first reason set (in name order) until its task clears it.
#[derive(Debug, Clone, Default)]
pub struct ReadinessFlags(Arc<Mutex<BTreeMap<String, String>>>);

impl ReadinessFlags {
    pub fn new() -> Self {
        Self::default()
    }

    /// `name` is not ready, for `reason` (the operator's words: it is served by `/ready`).
    pub fn set(&self, name: &str, reason: impl Into<String>) {
        self.lock().insert(name.to_owned(), reason.into());
    }

    pub fn clear(&self, name: &str) {
        self.lock().remove(name);
    }

    pub fn reason(&self, name: &str) -> Option<String> {
        self.lock().get(name).cloned()
    }

    pub fn check(&self) -> Result<(), NotReady> {
        match self.failing().into_iter().next() {
            Some(not_ready) => Err(not_ready),
            None => Ok(()),
        }
    }

    /// Every reason set, in name order.
    pub fn failing(&self) -> Vec<NotReady> {
        self.lock()
            .iter()
            .map(|(name, reason)| NotReady::explained(name.clone(), reason.clone()))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        // A panic while holding this lock cannot leave the map half-written.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A readiness check must answer within this, or the service counts as not ready.
pub const READINESS_TIMEOUT: Duration = Duration::from_secs(5);

/// [`ops_routes`] of a service whose one dependency is its database: `/ready` pings it.
pub fn ops_routes_for_database<S>(metrics: Metrics, pool: sqlx::PgPool) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    ops_routes_with_dependencies(metrics, move || {
        let pool = pool.clone();
        async move {
            Report(vec![DependencyCheck::essential(
                "postgres",
                crate::db::ping(&pool).await,
            )])
        }
    })
}

/// `GET /health` (alive: 200 `{"status":"ok"}`), `GET /ready` (200 `{"status":"ready",
/// "dependencies":{}}`, or 503 `NOT_READY` with `details.dependency`), `GET /metrics`
/// (Prometheus text, after running the readiness check for `service_ready`). Merge it into the service router before
/// [`with_standard_layers`]. Services that can name each dependency (and have optional ones)
/// use [`crate::readiness::ops_routes_with_dependencies`].
pub fn ops_routes<S, F, Fut>(metrics: Metrics, readiness: F) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), NotReady>> + Send + 'static,
{
    ops_routes_with_dependencies(metrics, move || {
        let check = readiness();
        async move {
            match check.await {
                Ok(()) => Report(Vec::new()),
                Err(not_ready) => Report(vec![DependencyCheck::essential(
                    &not_ready.dependency.clone(),
                    Err(not_ready),
                )]),
            }
        }
    })
}

/// The 503 `NOT_READY` answer for `not_ready`, with `dependencies` (every dependency's state)
/// in its details when given. The reason is sent only when it is the service's own words.
pub(crate) fn not_ready_error(not_ready: &NotReady, dependencies: Option<serde_json::Value>) -> ApiError {
    let mut details = json!({ "dependency": not_ready.dependency });
    if let Some(dependencies) = dependencies {
        details["dependencies"] = dependencies;
    }
    if not_ready.public {
        tracing::debug!(dependency = %not_ready.dependency, reason = %not_ready.reason, "not ready");
        details["reason"] = json!(not_ready.reason);
        ApiError::service_unavailable(
            "NOT_READY",
            format!("{} is not ready: {}", not_ready.dependency, not_ready.reason),
        )
        .with_details(details)
    } else {
        tracing::warn!(dependency = %not_ready.dependency, reason = %not_ready.reason, "not ready");
        ApiError::service_unavailable(
            "NOT_READY",
            format!("dependency {} is not available", not_ready.dependency),
        )
        .with_details(details)
    }
}

/// A readiness check for services without dependencies.
pub async fn always_ready() -> Result<(), NotReady> {
    Ok(())
}

/// The request's id (as set by the standard layers), e.g. to use as the correlation id of the
/// events a command records. Without the layers: a fresh uuid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .headers
                .get(X_REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        ))
    }
}

/// The TCP peer's address (needs [`serve`] or `into_make_service_with_connect_info`); the key
/// for per-IP rate limits. `X-Forwarded-For` is deliberately not trusted: any client can set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIp(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip().to_string())
                .unwrap_or_else(|| "unknown".to_owned()),
        ))
    }
}

/// Serves `app` with peer addresses available ([`ClientIp`]) until `shutdown` resolves
/// ([`shutdown_signal`] in `main`), then drains in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}

/// Resolves on Ctrl-C or (Unix) SIGTERM: what Kubernetes sends before killing a pod.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received");
}

/// `/health`, `/ready` (Postgres, NATS and the process's own [`ReadinessFlags`], essential;
/// what `optional` reports, e.g. the cache, only degrades), `/metrics`, with the standard
/// layers: the operations surface of a process that serves no API of its own.
#[cfg(feature = "nats")]
pub fn ops_router_with_nats<F, Fut>(
    metrics: Metrics,
    pool: sqlx::PgPool,
    nats: async_nats::Client,
    flags: ReadinessFlags,
    optional: F,
) -> Router
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Vec<DependencyCheck>> + Send + 'static,
{
    ops_router_with_nats_and(Router::new(), metrics, pool, nats, flags, optional)
}

/// [`ops_router_with_nats`] with the process's own `routes` beside the operations surface
/// (the sync connector's Data Streamer receiver), under the same layers. Routes that take
/// larger bodies read them with their own limit (the layers' default limit is 16 kB).
#[cfg(feature = "nats")]
pub fn ops_router_with_nats_and<F, Fut>(
    routes: Router,
    metrics: Metrics,
    pool: sqlx::PgPool,
    nats: async_nats::Client,
    flags: ReadinessFlags,
    optional: F,
) -> Router
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Vec<DependencyCheck>> + Send + 'static,
{
    let checks = move || {
        let pool = pool.clone();
        let nats = nats.clone();
        let flags = flags.clone();
        let optional = optional();
        async move {
            let mut checks: Vec<DependencyCheck> = flags
                .failing()
                .into_iter()
                .map(|not_ready| DependencyCheck::essential(&not_ready.dependency.clone(), Err(not_ready)))
                .collect();
            checks.push(DependencyCheck::essential(
                "postgres",
                crate::db::ping(&pool).await,
            ));
            let nats_state = match nats.connection_state() {
                async_nats::connection::State::Connected => Ok(()),
                state => Err(NotReady::new("nats", format!("{state:?}"))),
            };
            checks.push(DependencyCheck::essential("nats", nats_state));
            checks.extend(optional.await);
            Report(checks)
        }
    };
    with_standard_layers(
        routes.merge(ops_routes_with_dependencies(metrics.clone(), checks)),
        metrics,
        16 * 1024,
    )
}
