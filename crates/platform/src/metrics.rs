//! Prometheus metrics. Each `Metrics` owns its registry (not the process-global default one),
//! so tests running in parallel in one process never collide on registration.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

/// Route label for requests no route matched: one value, so scanners can't blow up cardinality.
pub const UNMATCHED_ROUTE: &str = "unmatched";

#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    http_requests_total: IntCounterVec,
    http_request_duration_seconds: HistogramVec,
    /// `service_ready`: what the process's readiness check said at the last scrape (1 ready).
    service_ready: IntGauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates a fresh registry with the HTTP metrics registered. (The scrape config's `job`
    /// label tells services apart, so no constant label is added here.)
    pub fn new() -> Self {
        let registry = Registry::new();
        let http_requests_total = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests answered"),
            &["method", "route", "status"],
        )
        .expect("valid metric");
        let http_request_duration_seconds = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency").buckets(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["method", "route"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(http_requests_total.clone()))
            .expect("fresh registry");
        registry
            .register(Box::new(http_request_duration_seconds.clone()))
            .expect("fresh registry");
        // Alerts need "running but not ready" apart from "down": `up` only tells the latter.
        let service_ready = IntGauge::new(
            "service_ready",
            "1 when the process's readiness check (GET /ready) passed at the last scrape, else 0",
        )
        .expect("valid metric");
        registry
            .register(Box::new(service_ready.clone()))
            .expect("fresh registry");
        Self {
            inner: Arc::new(Inner {
                registry,
                http_requests_total,
                http_request_duration_seconds,
                service_ready,
            }),
        }
    }

    /// For services to register their own metrics (`sims_total`, relay lag, …).
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    pub fn observe_http(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.inner
            .http_requests_total
            .with_label_values(&[method, route, &status.to_string()])
            .inc();
        self.inner
            .http_request_duration_seconds
            .with_label_values(&[method, route])
            .observe(seconds);
    }

    /// Records the outcome of the readiness check (`/metrics` runs it before rendering).
    pub fn set_ready(&self, ready: bool) {
        self.inner.service_ready.set(i64::from(ready));
    }

    /// The text exposition format (`text/plain; version=0.0.4`).
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec only fails on invalid metric families, which `register` refuses.
        if let Err(err) = TextEncoder::new().encode(&self.inner.registry.gather(), &mut buf) {
            tracing::error!(error = %err, "encoding metrics failed");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// Axum middleware (use with `from_fn_with_state(metrics, track_http)`) recording both HTTP
/// metrics, labelled by the matched route template (`/sims/{iccid}`), never the raw path.
pub async fn track_http(State(metrics): State<Metrics>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| UNMATCHED_ROUTE.to_owned());
    // Standard methods only; anything else collapses to one label value.
    let method = match req.method().as_str() {
        m @ ("GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS") => m,
        _ => "OTHER",
    }
    .to_owned();
    let started = Instant::now();
    let response = next.run(req).await;
    metrics.observe_http(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_recorded_requests_and_separate_registries_do_not_collide() {
        let a = Metrics::new();
        let b = Metrics::new(); // would panic on a shared registry
        a.observe_http("GET", "/sims/{iccid}", 200, 0.01);
        let text = a.render();
        assert!(
            text.contains(r#"http_requests_total{method="GET",route="/sims/{iccid}",status="200"} 1"#),
            "{text}"
        );
        assert!(text.contains("http_request_duration_seconds_bucket"));
        assert!(!b.render().contains(r#"route="/sims/{iccid}""#));
        // Not ready until a check says otherwise.
        assert!(b.render().contains("\nservice_ready 0\n"), "{}", b.render());
        b.set_ready(true);
        assert!(b.render().contains("\nservice_ready 1\n"));
    }

    #[test]
    fn services_can_register_more_metrics() {
        let m = Metrics::new();
        let gauge = prometheus::IntGauge::new("sims_total", "SIMs").unwrap();
        m.registry().register(Box::new(gauge.clone())).unwrap();
        gauge.set(7);
        assert!(m.render().contains(r#"sims_total 7"#));
    }
}
