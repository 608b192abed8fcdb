//! `POST /sims/import`: SIMs from a CSV (`iccid,imsi,msisdn,label,tags`). Every row is
//! checked first with the domain's own rules; one bad row refuses the whole file with a
//! report (row, field, reason) and nothing is written. A good file is registered as one bulk
//! job (action `register`), idempotent per item; a SIM that exists already is reported as
//! refused (`SIM_ALREADY_REGISTERED`) without failing the others.
//!
//! `?validate_only=true` only checks (200 with the report, no job); `?dry_run=true` submits
//! a dry-run job, which tells per SIM whether it would be registered.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use bulk_jobs::{NewItem, NewJob};
use domain::ids::{Imsi, Msisdn};
use domain::sim::{normalise_label, normalise_tags};
use platform::{ApiError, ApiQuery, Principal, Role};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::bulk::spec::BulkAction;
use crate::bulk::target::{check_iccid, csv_reader, ValidationReport};
use crate::commands::CommandHeaders;
use crate::openapi::ErrorBody;
use crate::routes::bulk::{accept, submission_key, JobAccepted};
use crate::routes::sims::RegisterSim;
use crate::state::AppState;

pub fn routes(max_body_bytes: usize) -> Router<AppState> {
    Router::new().route(
        "/sims/import",
        post(import).layer(DefaultBodyLimit::max(max_body_bytes)),
    )
}

/// The columns of an import, in any order; `iccid` and `imsi` are required.
const COLUMNS: [&str; 5] = ["iccid", "imsi", "msisdn", "label", "tags"];

#[derive(Debug, Default, Deserialize, Serialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ImportOptions {
    /// Only check the file: 200 with the report, nothing submitted.
    #[serde(default)]
    validate_only: bool,
    /// Submit a dry-run job: per SIM, would it be registered (or refused, with the code).
    #[serde(default)]
    dry_run: bool,
}

/// The report of a file that passed (and, unless `validate_only`, the job registering it).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ImportAccepted<'a> {
    report: ValidationReport,
    /// The bulk job (absent with `validate_only`).
    job: Option<&'a JobAccepted>,
}

/// Imports SIMs from a CSV after checking every row.
#[utoipa::path(post, path = "/api/v1/sims/import", tag = "bulk", params(ImportOptions,
        ("Idempotency-Key" = Option<String>, Header, description = "The same key and file answer the same job")),
    request_body(content = String, content_type = "text/csv",
        description = "A header line naming the columns (`iccid`, `imsi`, `msisdn`, `label`, `tags`; any order; iccid and imsi required), then one SIM per line; `tags` separated by `;`"),
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = ImportAccepted, description = "`validate_only`: every row is valid"),
        (status = 202, body = ImportAccepted, description = "Every row is valid; `job` registers them (`Location`: the job)"),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody, description = "Not `text/csv`"),
        (status = 422, body = ErrorBody, description = "`IMPORT_INVALID`: details is the report (rows, valid_rows, invalid_rows, errors: [{row, field, reason}], truncated); `TOO_MANY_ITEMS`; `EMPTY_TARGET`; `IDEMPOTENCY_KEY_REUSED`")))]
pub(crate) async fn import(
    State(state): State<AppState>,
    principal: Principal,
    headers: CommandHeaders,
    ApiQuery(options): ApiQuery<ImportOptions>,
    request_headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    principal.require(Role::Operator)?;
    let is_csv = request_headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("text/csv"));
    if !is_csv {
        return Err(ApiError::unsupported_media_type(
            "UNSUPPORTED_MEDIA_TYPE",
            "expected a request with Content-Type: text/csv",
        ));
    }
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::payload_too_large("PAYLOAD_TOO_LARGE", "the file is too large (BULK_MAX_BODY_BYTES)")
        } else {
            ApiError::bad_request("INVALID_BODY", "the request body could not be read")
        }
    })?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("INVALID_BODY", "the file is not UTF-8 text"))?;
    let (rows, report) = read_rows(text);
    if !report.is_valid() {
        return Err(report.refusal("IMPORT_INVALID", "file"));
    }
    if rows.is_empty() {
        return Err(ApiError::validation("EMPTY_TARGET", "the file has no SIM"));
    }
    if rows.len() > state.bulk.max_items {
        return Err(ApiError::validation(
            "TOO_MANY_ITEMS",
            format!(
                "an import holds at most {} SIMs (BULK_MAX_ITEMS); split it",
                state.bulk.max_items
            ),
        ));
    }
    if options.validate_only {
        return Ok((StatusCode::OK, Json(ImportAccepted { report, job: None })).into_response());
    }
    let idempotency = submission_key(&principal, &headers, &("import", options.dry_run, text));
    let job = NewJob {
        action: BulkAction::Register.as_str().to_owned(),
        params: json!({}),
        target: json!({ "kind": "import", "rows": report.rows }),
        dry_run: options.dry_run,
        created_by: principal.actor(),
        idempotency,
        items: rows
            .into_iter()
            .map(|row| NewItem {
                iccid: row.iccid.clone(),
                input: serde_json::to_value(&row).ok(),
            })
            .collect(),
    };
    let accepted = accept(&state, job).await?;
    let answer = ImportAccepted {
        report,
        job: Some(&accepted.job),
    };
    Ok(accepted.respond(StatusCode::ACCEPTED, answer))
}

/// The file's rows, each checked as `POST /sims` would check it; an unreadable header or a
/// duplicate ICCID is a problem too.
fn read_rows(text: &str) -> (Vec<RegisterSim>, ValidationReport) {
    let mut report = ValidationReport::default();
    let mut rows = Vec::new();
    let mut columns: HashMap<&str, usize> = HashMap::new();
    let mut first_line = HashMap::<String, u64>::new();
    for (n, record) in csv_reader(text).records().enumerate() {
        let line = n as u64 + 1;
        let record = match record {
            Ok(record) => record,
            Err(error) => {
                report.row(line, vec![("csv".into(), error.to_string())]);
                continue;
            }
        };
        if n == 0 {
            let problems = header_problems(&record, &mut columns);
            if !problems.is_empty() {
                // Without a usable header no row can be read.
                report.row(line, problems);
                return (Vec::new(), report);
            }
            continue;
        }
        if record.iter().all(str::is_empty) {
            continue;
        }
        let field = |name: &str| {
            columns
                .get(name)
                .and_then(|&i| record.get(i))
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let (row, mut problems) = check_row(
            field("iccid"),
            field("imsi"),
            field("msisdn"),
            field("label"),
            field("tags"),
        );
        if let Some(row) = &row {
            if let Some(first) = first_line.insert(row.iccid.clone(), line) {
                problems.push(("iccid".into(), format!("the ICCID is on line {first} already")));
            }
        }
        report.row(line, problems.clone());
        if problems.is_empty() {
            rows.extend(row);
        }
    }
    (rows, report)
}

fn header_problems(
    record: &csv::StringRecord,
    columns: &mut HashMap<&'static str, usize>,
) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    for (i, name) in record.iter().enumerate() {
        match COLUMNS.iter().find(|c| c.eq_ignore_ascii_case(name)) {
            Some(column) if columns.insert(column, i).is_some() => {
                problems.push((name.to_owned(), "the column is named twice".into()));
            }
            Some(_) => {}
            None => problems.push((
                name.to_owned(),
                format!("unknown column (expected {})", COLUMNS.join(", ")),
            )),
        }
    }
    for required in ["iccid", "imsi"] {
        if !columns.contains_key(required) {
            problems.push((required.to_owned(), "the header must name this column".into()));
        }
    }
    problems
}

/// One row: the registration and its problems (field, reason), by the domain's rules.
fn check_row(
    iccid: Option<String>,
    imsi: Option<String>,
    msisdn: Option<String>,
    label: Option<String>,
    tags: Option<String>,
) -> (Option<RegisterSim>, Vec<(String, String)>) {
    let mut problems = Vec::new();
    let mut problem = |field: &str, reason: String| problems.push((field.to_owned(), reason));
    let iccid = match iccid.as_deref().map(check_iccid) {
        Some(Ok(iccid)) => Some(iccid),
        Some(Err((_, reason))) => {
            problem("iccid", reason);
            None
        }
        None => {
            problem("iccid", "required".into());
            None
        }
    };
    match imsi.as_deref().map(Imsi::parse) {
        Some(Err(error)) => problem("imsi", error.to_string()),
        None => problem("imsi", "required".into()),
        Some(Ok(_)) => {}
    }
    if let Some(Err(error)) = msisdn.as_deref().map(Msisdn::parse) {
        problem("msisdn", error.to_string());
    }
    let label = match normalise_label(label) {
        Ok(label) => label,
        Err(error) => {
            problem("label", error.to_string());
            None
        }
    };
    let tags: Vec<String> = tags
        .unwrap_or_default()
        .split(';')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    let tags = match normalise_tags(tags) {
        Ok(tags) => tags,
        Err(error) => {
            problem("tags", error.to_string());
            Vec::new()
        }
    };
    let row = match (iccid, imsi) {
        (Some(iccid), Some(imsi)) if problems.is_empty() => {
            Some(RegisterSim::new(iccid, imsi, msisdn, label, tags))
        }
        _ => None,
    };
    (row, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_checked_by_the_domains_rules() {
        let file = "iccid,imsi,msisdn,label,tags\n\
                    8988303000000000019,901405100000001,,pump 1,fleet-7;north\n\
                    12345,901405100000001,,,\n\
                    8988303000000000027,,,,\n\
                    8988303000000000019,901405100000001,,,\n";
        let (rows, report) = read_rows(file);
        assert_eq!(rows.len(), 1);
        assert_eq!(report.rows, 4);
        assert_eq!(report.invalid_rows, 3);
        let named: Vec<(u64, &str)> = report.errors.iter().map(|e| (e.row, e.field.as_str())).collect();
        assert_eq!(named, [(3, "iccid"), (4, "imsi"), (5, "iccid")]);
    }

    #[test]
    fn an_unknown_column_refuses_the_file() {
        let (rows, report) = read_rows("iccid,imsi,colour\n8988303000000000019,901405100000001,red\n");
        assert!(rows.is_empty());
        assert_eq!(report.errors[0].field, "colour");
    }
}
