//! `POST /1nce/data-streamer`: authenticate, bound the body, read the batch, store every
//! well-formed record durably, then (and only then) answer 200.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use platform::ApiError;
use serde::Serialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use super::inbox::{Inbox, Stored};
use super::metrics::StreamerMetrics;
use super::record::{self, Record, Rejection};
use crate::config::StreamerConfig;

pub const PATH: &str = "/1nce/data-streamer";

pub struct Receiver {
    /// SHA-256 of each accepted `user:password`: compared in constant time, all of them.
    credentials: Vec<[u8; 32]>,
    max_body_bytes: usize,
    max_records: usize,
    inbox: Inbox,
    metrics: StreamerMetrics,
    /// Wakes the applier once a batch is stored.
    stored: Arc<Notify>,
}

/// The 200 answer: what became of the batch.
#[derive(Debug, Serialize)]
pub struct Answer {
    /// Records new to the inbox.
    pub accepted: u64,
    /// Records received before (same stream and id): accepted, applied once.
    pub duplicates: u64,
    /// Malformed records, by their index in the batch.
    pub rejected: Vec<Rejection>,
}

impl Receiver {
    pub fn new(config: &StreamerConfig, inbox: Inbox, metrics: StreamerMetrics, stored: Arc<Notify>) -> Self {
        Self {
            credentials: config
                .credentials
                .iter()
                .map(|pair| Sha256::digest(pair.as_bytes()).into())
                .collect(),
            max_body_bytes: config.max_body_bytes,
            max_records: config.max_records,
            inbox,
            metrics,
            stored,
        }
    }

    /// The route, or none when no credentials are configured (the path then answers 404).
    pub fn routes(self: Arc<Self>) -> Router {
        if self.credentials.is_empty() {
            return Router::new();
        }
        Router::new().route(PATH, post(receive)).with_state(self)
    }

    /// Whether the `Authorization` header carries one of the configured pairs. 1NCE's form
    /// does not say whether it sends `Basic <base64>` or the bare base64, so both are read.
    fn authorised(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let value = value.trim();
        let encoded = match value.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("basic") => rest.trim(),
            Some(_) => return false,
            None => value,
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
            return false;
        };
        let presented: [u8; 32] = Sha256::digest(&decoded).into();
        // Every pair is compared, whatever matched: the time does not tell which one did.
        let mut matched = 0u8;
        for accepted in &self.credentials {
            matched |= constant_time_eq(&presented, accepted);
        }
        matched == 1
    }

    fn refuse(&self, error: ApiError) -> ApiError {
        self.metrics.error(error.status.as_u16());
        error
    }
}

/// 1 when equal, 0 otherwise, looking at every byte (fixed-length digests: no length leak).
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> u8 {
    let mut difference = 0u8;
    for (x, y) in a.iter().zip(b) {
        difference |= x ^ y;
    }
    // `black_box` keeps the optimiser from turning the loop into an early exit.
    u8::from(std::hint::black_box(difference) == 0)
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Answer>, ApiError> {
    if !receiver.authorised(&headers) {
        return Err(receiver.refuse(
            ApiError::unauthorized("UNAUTHENTICATED", "wrong or missing Data Streamer credentials")
                .with_header(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"1nce-data-streamer\""),
                ),
        ));
    }
    let too_large = || {
        ApiError::payload_too_large(
            "PAYLOAD_TOO_LARGE",
            format!("the body is larger than {} bytes", receiver.max_body_bytes),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > receiver.max_body_bytes) {
        return Err(receiver.refuse(too_large()));
    }
    let bytes = match axum::body::to_bytes(body, receiver.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(error) if is_length_limit(&error) => return Err(receiver.refuse(too_large())),
        Err(_) => {
            return Err(receiver.refuse(ApiError::bad_request(
                "BODY_UNREADABLE",
                "the body could not be read to its end",
            )))
        }
    };
    let items = batch(&bytes).map_err(|error| receiver.refuse(error))?;
    if items.len() > receiver.max_records {
        return Err(receiver.refuse(ApiError::payload_too_large(
            "TOO_MANY_RECORDS",
            format!(
                "{} records in one batch; at most {}",
                items.len(),
                receiver.max_records
            ),
        )));
    }
    let mut records: Vec<Record> = Vec::with_capacity(items.len());
    let mut rejected: Vec<(Rejection, &str)> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        match record::parse(index, item) {
            Ok(record) => records.push(record),
            Err(rejection) => rejected.push((rejection, item.get())),
        }
    }
    let stored = receiver.inbox.store(&records, &rejected).await.map_err(|error| {
        tracing::warn!(%error, "a Data Streamer batch could not be stored; 1NCE will send it again");
        receiver.refuse(ApiError::service_unavailable(
            "STORE_UNAVAILABLE",
            "the batch could not be stored; send it again",
        ))
    })?;
    receiver.stored.notify_one();
    count(&receiver.metrics, &records, &stored, rejected.len());
    if !rejected.is_empty() {
        tracing::warn!(
            rejected = rejected.len(),
            "malformed Data Streamer records were refused"
        );
    }
    Ok(Json(Answer {
        accepted: stored.accepted(),
        duplicates: stored.duplicate_count(),
        rejected: rejected.into_iter().map(|(rejection, _)| rejection).collect(),
    }))
}

/// The body as a JSON array of raw elements (each read on its own, so one bad record costs
/// only itself); 400 when it is not JSON, or JSON but not an array.
fn batch(bytes: &[u8]) -> Result<Vec<&RawValue>, ApiError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| ApiError::bad_request("INVALID_JSON", "the body is not UTF-8 JSON"))?;
    serde_json::from_str::<Vec<&RawValue>>(text).map_err(|error| {
        if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() {
            ApiError::bad_request("NOT_AN_ARRAY", "the body must be a JSON array of records")
        } else {
            ApiError::bad_request("INVALID_JSON", format!("the body is not JSON: {error}"))
        }
    })
}

fn is_length_limit(error: &axum::Error) -> bool {
    let mut source: Option<&dyn std::error::Error> = Some(error);
    while let Some(current) = source {
        if current.to_string().contains("length limit exceeded") {
            return true;
        }
        source = current.source();
    }
    false
}

fn count(metrics: &StreamerMetrics, records: &[Record], stored: &Stored, rejected: usize) {
    for record in records {
        metrics.saw(record.stream.as_str(), record.occurred_at);
    }
    for ((stream, kind), n) in &stored.new {
        metrics.received.with_label_values(&[stream, kind]).inc_by(*n);
    }
    for (stream, n) in &stored.duplicates {
        metrics.duplicates.with_label_values(&[stream]).inc_by(*n);
    }
    if rejected > 0 {
        metrics.rejected.inc_by(rejected as u64);
    }
}
