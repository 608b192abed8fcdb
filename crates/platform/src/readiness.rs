//! `/ready` that names each dependency: essential ones (Postgres, NATS, a task's own flag)
//! make the process not ready when they fail; optional ones (the Redis cache, the provider)
//! only make it "degraded", since the process still does its work without them.
//!
//! 200 `{"status":"ready"|"degraded","dependencies":{"postgres":"ok","redis":"unavailable"}}`,
//! or 503 `NOT_READY` in the error shape with `details.dependency` (the first essential one
//! failing) and `details.dependencies` (all of them).

use std::future::Future;

use axum::http::header::{self, HeaderValue};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::http::{not_ready_error, NotReady, READINESS_TIMEOUT};
use crate::metrics::Metrics;

/// One dependency's state.
#[derive(Debug, Clone)]
pub struct DependencyCheck {
    pub name: String,
    pub essential: bool,
    pub outcome: Result<(), NotReady>,
}

impl DependencyCheck {
    /// A dependency the process cannot work without.
    pub fn essential(name: &str, outcome: Result<(), NotReady>) -> Self {
        Self {
            name: name.to_owned(),
            essential: true,
            outcome,
        }
    }

    /// A dependency whose absence only degrades the process (answered "degraded", still 200).
    pub fn optional(name: &str, available: bool) -> Self {
        Self {
            name: name.to_owned(),
            essential: false,
            outcome: if available {
                Ok(())
            } else {
                Err(NotReady::new(name, "unavailable"))
            },
        }
    }
}

/// What the checks say together.
#[derive(Debug, Clone)]
pub struct Report(pub Vec<DependencyCheck>);

impl Report {
    /// Every essential dependency answers.
    pub fn ready(&self) -> bool {
        self.0.iter().all(|c| !c.essential || c.outcome.is_ok())
    }

    fn dependencies(&self) -> Value {
        let states: Map<String, Value> = self
            .0
            .iter()
            .map(|c| {
                let state = if c.outcome.is_ok() { "ok" } else { "unavailable" };
                (c.name.clone(), Value::from(state))
            })
            .collect();
        Value::Object(states)
    }

    /// The `/ready` answer.
    pub fn answer(&self) -> Result<Json<Value>, ApiError> {
        if let Some(Err(not_ready)) = self
            .0
            .iter()
            .find(|c| c.essential && c.outcome.is_err())
            .map(|c| &c.outcome)
        {
            return Err(not_ready_error(not_ready, Some(self.dependencies())));
        }
        let degraded = self.0.iter().any(|c| c.outcome.is_err());
        if degraded {
            tracing::debug!(dependencies = %self.dependencies(), "degraded");
        }
        let status = if degraded { "degraded" } else { "ready" };
        Ok(Json(
            json!({"status": status, "dependencies": self.dependencies()}),
        ))
    }
}

/// `GET /health`, `GET /ready` answering the [`Report`] of `checks`, and `GET /metrics` (after
/// the same checks, for `service_ready`: 1 when every essential dependency answers).
pub fn ops_routes_with_dependencies<S, F, Fut>(metrics: Metrics, checks: F) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Report> + Send + 'static,
{
    let scrape_checks = checks.clone();
    Router::new()
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .route(
            "/ready",
            get(move || {
                let checks = checks.clone();
                async move {
                    match tokio::time::timeout(READINESS_TIMEOUT, checks()).await {
                        Ok(report) => report.answer(),
                        Err(_) => Err(not_ready_error(
                            &NotReady::new("readiness_check", "timed out"),
                            None,
                        )),
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                let checks = scrape_checks.clone();
                async move {
                    let ready = matches!(
                        tokio::time::timeout(READINESS_TIMEOUT, checks()).await,
                        Ok(report) if report.ready()
                    );
                    metrics.set_ready(ready);
                    (
                        [(
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                        )],
                        metrics.render(),
                    )
                }
            }),
        )
}
