//! `GET /sims/export`: every SIM the list's filters select, as CSV, streamed. The rows come a
//! batch at a time from a server-side cursor (`readmodel::sim_list::SimCursor`) and each batch
//! is written out before the next is fetched, so the memory an export holds is one batch
//! (and the one fetched ahead), whatever the fleet's size; a slow client slows the cursor down
//! (the body is pulled as the socket drains) instead of piling rows up.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use domain::QuotaState;
use futures::stream::{self, StreamExt};
use platform::{ApiError, ApiQuery, Principal};
use readmodel::sim_list::SimCursor;
use readmodel::SimView;

use crate::consistency::ConsistentRead;
use crate::routes::sim_list::{parse_filter, SimFilterParams};
use crate::state::AppState;

/// Rows fetched from the cursor at a time.
pub const EXPORT_BATCH: i64 = 1000;

/// The CSV's columns; the first five are the import's (`iccid,imsi,msisdn,label,tags`).
pub const EXPORT_COLUMNS: &[&str] = &[
    "iccid",
    "imsi",
    "msisdn",
    "label",
    "tags",
    "status",
    "pending_change",
    "provider_status",
    "imei",
    "imei_lock",
    "ip_address",
    "network",
    "country",
    "rat",
    "last_seen_at",
    "data_total",
    "data_remaining",
    "data_expiry",
    "data_quota_state",
    "sms_total",
    "sms_remaining",
    "sms_expiry",
    "sms_quota_state",
    "registered_at",
    "terminated_at",
    "updated_at",
];

/// Every SIM matching the filters, as CSV (`text/csv`, a download).
#[utoipa::path(
    get, path = "/api/v1/sims/export", tag = "sims",
    params(SimFilterParams, crate::openapi::ConsistencyHeader),
    responses(
        (status = 200, description = "CSV (RFC 4180, CRLF line ends, UTF-8): a header row, then one row per SIM in \
            `sort` order. Columns: iccid, imsi, msisdn, label, tags (separated by `;`), status, pending_change, \
            provider_status, imei, imei_lock, ip_address, network, country, rat, last_seen_at, data_total, \
            data_remaining, data_expiry, data_quota_state, sms_total, sms_remaining, sms_expiry, sms_quota_state, \
            registered_at, terminated_at, updated_at. Empty field: no value. Streamed: a failure after the \
            first bytes ends the transfer early (the chunked body is cut short), never a partial file that looks whole.",
            content_type = "text/csv", body = String,
            headers(("Content-Disposition" = String, description = "`attachment; filename=\"sims.csv\"`"))),
        (status = 400, description = "`INVALID_QUERY` (a filter, the sort, or a parameter the export does not take), \
            `INVALID_CONSISTENCY_TOKEN`", body = crate::openapi::ErrorBody),
        (status = 503, description = "`CONSISTENCY_TIMEOUT`", body = crate::openapi::ErrorBody),
    )
)]
pub async fn export(
    State(state): State<AppState>,
    _: Principal,
    ApiQuery(params): ApiQuery<SimFilterParams>,
    _read: ConsistentRead,
) -> Result<Response, ApiError> {
    let (filters, sort) = parse_filter(&params)?;
    // Opened and first read before answering: a database that fails now answers an error,
    // not a 200 with a cut body.
    let mut cursor = SimCursor::open(&state.pool, &filters, sort, EXPORT_BATCH).await?;
    let first = cursor.next_batch().await?;
    let header = stream::once(async { Ok(Bytes::from(format!("{}\r\n", EXPORT_COLUMNS.join(",")))) });
    let rows = stream::unfold(Some((cursor, first)), |state| async move {
        let (mut cursor, rows) = state?;
        if rows.is_empty() {
            return None;
        }
        let chunk = Bytes::from(csv_rows(&rows));
        drop(rows);
        match cursor.next_batch().await {
            Ok(next) => Some((Ok(chunk), Some((cursor, next)))),
            Err(error) => {
                tracing::warn!(%error, "SIM export cut short");
                Some((Err(std::io::Error::other(error)), None))
            }
        }
    });
    let body = Body::from_stream(header.chain(rows));
    Ok((
        [
            (CONTENT_TYPE, "text/csv; charset=utf-8"),
            (CONTENT_DISPOSITION, "attachment; filename=\"sims.csv\""),
        ],
        body,
    )
        .into_response())
}

/// The rows of `sims`, each ending in CRLF.
fn csv_rows(sims: &[SimView]) -> String {
    let mut out = String::with_capacity(sims.len() * 256);
    for sim in sims {
        let time = |t: &Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.to_rfc3339()).unwrap_or_default();
        let number = |n: Option<i64>| n.map(|n| n.to_string()).unwrap_or_default();
        let state = |total: Option<i64>, remaining: Option<i64>| match (total, remaining) {
            (Some(total), Some(remaining)) => QuotaState::of(total, remaining).as_str().to_owned(),
            _ => String::new(),
        };
        let fields = [
            sim.iccid.clone(),
            sim.imsi.clone(),
            sim.msisdn.clone().unwrap_or_default(),
            sim.label.clone().unwrap_or_default(),
            sim.tags.join(";"),
            sim.status.as_str().to_owned(),
            sim.pending_change.clone().unwrap_or_default(),
            sim.provider_status.clone().unwrap_or_default(),
            sim.imei.clone().unwrap_or_default(),
            sim.imei_lock.to_string(),
            sim.ip_address.clone().unwrap_or_default(),
            sim.network.clone().unwrap_or_default(),
            sim.country.clone().unwrap_or_default(),
            sim.rat.clone().unwrap_or_default(),
            time(&sim.last_seen_at),
            number(sim.data_total),
            number(sim.data_remaining),
            time(&sim.data_expiry),
            state(sim.data_total, sim.data_remaining),
            number(sim.sms_total),
            number(sim.sms_remaining),
            time(&sim.sms_expiry),
            state(sim.sms_total, sim.sms_remaining),
            sim.registered_at.to_rfc3339(),
            time(&sim.terminated_at),
            sim.updated_at.to_rfc3339(),
        ];
        for (i, field) in fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_field(&mut out, field);
        }
        out.push_str("\r\n");
    }
    out
}

/// A field as RFC 4180 writes it: quoted (quotes doubled) when it holds a comma, a quote or a
/// line break.
fn push_field(out: &mut String, value: &str) {
    if value.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_only_when_they_must_be() {
        let mut out = String::new();
        for value in ["plain", "a,b", "say \"hi\"", "two\nlines", ""] {
            push_field(&mut out, value);
            out.push('|');
        }
        assert_eq!(out, "plain|\"a,b\"|\"say \"\"hi\"\"\"|\"two\nlines\"||");
    }
}
