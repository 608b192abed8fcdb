//! What stands in front of every provider route, in this order: the call log (arrivals), the
//! injected latency and faults (before anything touches state), the bearer token, the rate
//! limit, the handler, and `slow_response` (after the handler changed state, before the
//! answer leaves).

use std::time::{Duration, Instant};

use axum::body::{to_bytes, Body};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::message;
use crate::limits::retry_after_secs;
use crate::{Faults, Simulator};

/// Bodies larger than this are not truncated (nothing the provider sends comes close).
const MAX_TRUNCATED_BODY: usize = 16 * 1024 * 1024;

pub async fn v1(State(sim): State<Simulator>, req: Request, next: Next) -> Response {
    let (method, route, path) = describe(&req);
    let sims_call = path.starts_with("/v1/sims");
    if sims_call {
        sim.stats_mut().sims_arrival(Instant::now());
    }
    let faults = sim.faults();
    let response = match inject(&sim, &faults, &method).await {
        Some(Injected::Answer(response)) => response,
        Some(Injected::Truncate) => truncate(authorised(&sim, req, next, sims_call).await).await,
        None => authorised(&sim, req, next, sims_call).await,
    };
    sim.stats_mut()
        .answered(method.as_str(), &route, response.status().as_u16());
    slow_down(&faults, &path).await;
    response
}

pub async fn oauth(State(sim): State<Simulator>, req: Request, next: Next) -> Response {
    let (method, route, path) = describe(&req);
    let faults = sim.faults();
    let injected = if faults.oauth_faults {
        // Token requests change nothing a client could lose, so they count as safe here.
        inject(&sim, &faults, &Method::GET).await
    } else {
        None
    };
    let response = match injected {
        Some(Injected::Answer(response)) => response,
        other => {
            let limited = sim.limits().oauth.as_mut().map(|b| b.take(Instant::now()));
            let response = match limited {
                Some(Err(wait)) => {
                    sim.count_rate_limited();
                    too_many_requests(retry_after_secs(wait))
                }
                _ => next.run(req).await,
            };
            if matches!(other, Some(Injected::Truncate)) {
                truncate(response).await
            } else {
                response
            }
        }
    };
    sim.stats_mut()
        .answered(method.as_str(), &route, response.status().as_u16());
    if faults.oauth_faults {
        slow_down(&faults, &path).await;
    }
    response
}

fn describe(req: &Request) -> (Method, String, String) {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| req.uri().path().to_owned());
    (req.method().clone(), route, req.uri().path().to_owned())
}

enum Injected {
    /// Answer this instead of handling the request.
    Answer(Response),
    /// Handle the request (it is safe: a GET), then cut the body short.
    Truncate,
}

/// Latency, then at most one fault, drawn once: 429, 500, truncated, malformed.
async fn inject(sim: &Simulator, faults: &Faults, method: &Method) -> Option<Injected> {
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    let draw: f64 = rand::random();
    let safe = method == Method::GET;
    let shares = [
        faults.error_429_share,
        faults.error_500_share,
        faults.truncated_share,
        faults.malformed_share,
    ];
    let mut cumulative = 0.0;
    let drawn = shares.iter().position(|share| {
        cumulative += share;
        draw < cumulative
    })?;
    let injected = match drawn {
        0 => Injected::Answer(too_many_requests(1)),
        1 => Injected::Answer(message(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal Server Error",
        )),
        2 if safe => Injected::Truncate,
        // Not handled (no state change); the error body itself is cut short.
        2 => Injected::Answer(raw(
            StatusCode::INTERNAL_SERVER_ERROR,
            "application/json",
            r#"{"message":"Internal Serv"#,
        )),
        _ if safe && rand::random::<bool>() => Injected::Answer(raw(
            StatusCode::OK,
            "application/json",
            r#"{"iccid": "8988280666000000000", "status": Enabled, <br>}"#,
        )),
        _ => Injected::Answer(raw(StatusCode::BAD_GATEWAY, "text/html", GATEWAY_PAGE)),
    };
    sim.count_injected();
    Some(injected)
}

const GATEWAY_PAGE: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n\
<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>awselb/2.0</center>\r\n</body>\r\n</html>\r\n";

async fn authorised(sim: &Simulator, req: Request, next: Next, rate_limited: bool) -> Response {
    let valid = bearer(req.headers()).is_some_and(|token| sim.tokens().valid(token, Instant::now()));
    if !valid {
        return message(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    if rate_limited {
        let limited = sim.limits().sims.as_mut().map(|b| b.take(Instant::now()));
        if let Some(Err(wait)) = limited {
            sim.count_rate_limited();
            return too_many_requests(retry_after_secs(wait));
        }
    }
    next.run(req).await
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn too_many_requests(retry_after: u64) -> Response {
    let mut response = message(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    response
}

fn raw(status: StatusCode, content_type: &'static str, body: &'static str) -> Response {
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// Keeps the status and headers, sends the first half of the body.
async fn truncate(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_TRUNCATED_BODY).await else {
        return message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    let cut = bytes.slice(..bytes.len() / 2);
    Response::from_parts(parts, Body::from(cut))
}

async fn slow_down(faults: &Faults, path: &str) {
    if let Some(slow) = &faults.slow_response {
        if path.contains(&slow.path_contains) {
            tokio::time::sleep(Duration::from_millis(slow.delay_ms)).await;
        }
    }
}
