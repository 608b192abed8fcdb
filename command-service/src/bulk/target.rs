//! Which SIMs a job acts on: a list of ICCIDs, a CSV with an `iccid` column, or a query-API
//! filter frozen at submission into its ICCIDs. Every ICCID is checked before anything is
//! written; a bad one refuses the job with a report (row, field, reason).

use std::collections::HashSet;

use domain::ids::Iccid;
use domain::DomainError;
use platform::ApiError;
use readmodel::sim_list::{self, FilterParams};
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::PgPool;

/// A report lists at most this many problems (and says how many there were).
const MAX_REPORTED: usize = 1_000;

/// One problem of one row.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RowError {
    /// In a list: the ICCID's place, from 1; in a CSV: the line (the header is line 1).
    pub row: u64,
    pub field: String,
    pub reason: String,
}

/// What checking rows found.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct ValidationReport {
    /// Data rows read (without the header).
    pub rows: u64,
    pub valid_rows: u64,
    pub invalid_rows: u64,
    /// The first problems, in row order (at most 1,000).
    pub errors: Vec<RowError>,
    /// More problems were found than listed.
    pub truncated: bool,
}

impl ValidationReport {
    /// Records the problems of one row (none: a valid row).
    pub fn row(&mut self, row: u64, errors: Vec<(String, String)>) {
        self.rows += 1;
        if errors.is_empty() {
            self.valid_rows += 1;
            return;
        }
        self.invalid_rows += 1;
        for (field, reason) in errors {
            if self.errors.len() < MAX_REPORTED {
                self.errors.push(RowError { row, field, reason });
            } else {
                self.truncated = true;
            }
        }
    }

    pub fn is_valid(&self) -> bool {
        self.invalid_rows == 0
    }

    /// 422 `code` with this report as the details.
    pub fn refusal(&self, code: &'static str, what: &str) -> ApiError {
        ApiError::validation(
            code,
            format!(
                "{} of {} rows of the {what} are invalid; nothing was written",
                self.invalid_rows, self.rows
            ),
        )
        .with_details(serde_json::to_value(self).unwrap_or_default())
    }
}

/// The ICCIDs of a target, in order, without duplicates, and how they were chosen.
pub struct Target {
    pub iccids: Vec<String>,
    pub record: Value,
}

/// Where a job's SIMs come from (exactly one).
pub enum TargetSpec<'a> {
    Iccids(&'a [String]),
    Csv(&'a str),
    Filter(&'a FilterParams),
}

impl TargetSpec<'_> {
    /// The target's ICCIDs: at most `max`, else 422 `TOO_MANY_ITEMS`; none: 422 `EMPTY_TARGET`.
    pub async fn resolve(&self, pool: &PgPool, max: usize) -> Result<Target, ApiError> {
        let target = match self {
            Self::Iccids(list) => {
                let mut report = ValidationReport::default();
                let mut iccids = Vec::with_capacity(list.len());
                for (n, raw) in list.iter().enumerate() {
                    let checked = check_iccid(raw);
                    report.row(
                        n as u64 + 1,
                        checked.as_ref().err().cloned().into_iter().collect(),
                    );
                    iccids.extend(checked.ok());
                }
                if !report.is_valid() {
                    return Err(report.refusal("INVALID_TARGET", "ICCID list"));
                }
                Target {
                    record: json!({ "kind": "iccids", "count": list.len() }),
                    iccids,
                }
            }
            Self::Csv(text) => {
                let (iccids, report) = iccids_of_csv(text);
                if !report.is_valid() {
                    return Err(report.refusal("INVALID_TARGET", "CSV"));
                }
                Target {
                    record: json!({ "kind": "csv", "rows": report.rows }),
                    iccids,
                }
            }
            Self::Filter(params) => {
                let filter = params.parse().map_err(|error| {
                    ApiError::validation("INVALID_FILTER", error.to_string())
                        .with_details(json!({ "parameter": error.parameter, "reason": error.reason }))
                })?;
                let iccids = sim_list::iccids(pool, &filter, max as i64 + 1).await?;
                Target {
                    record: json!({ "kind": "filter", "filter": params }),
                    iccids,
                }
            }
        };
        let iccids = without_duplicates(target.iccids);
        if iccids.len() > max {
            return Err(ApiError::validation(
                "TOO_MANY_ITEMS",
                format!("a job acts on at most {max} SIMs (BULK_MAX_ITEMS); split it"),
            )
            .with_details(json!({ "max_items": max })));
        }
        if iccids.is_empty() {
            return Err(ApiError::validation("EMPTY_TARGET", "the target selects no SIM"));
        }
        Ok(Target {
            iccids,
            record: target.record,
        })
    }
}

/// The ICCID, normalised to 19 digits; else `("iccid", reason)`.
pub fn check_iccid(raw: &str) -> Result<String, (String, String)> {
    Iccid::parse(raw.trim())
        .map(|iccid| iccid.to_string())
        .map_err(|error| ("iccid".to_owned(), format!("{} ({})", error, error.code())))
}

fn without_duplicates(iccids: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::with_capacity(iccids.len());
    iccids.into_iter().filter(|i| seen.insert(i.clone())).collect()
}

/// A CSV reader that takes rows of any length (a report names short rows itself).
pub fn csv_reader(text: &str) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes())
}

/// The ICCIDs of a CSV: the `iccid` column when the first line is a header naming one, else
/// the first column of every line (a plain list, one ICCID per line).
fn iccids_of_csv(text: &str) -> (Vec<String>, ValidationReport) {
    let mut report = ValidationReport::default();
    let mut iccids = Vec::new();
    let mut column = None;
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
            column = record.iter().position(|f| f.eq_ignore_ascii_case("iccid"));
            if column.is_some() {
                continue;
            }
        }
        if record.iter().all(str::is_empty) {
            continue;
        }
        let raw = record.get(column.unwrap_or(0)).unwrap_or("");
        let checked = check_iccid(raw);
        report.row(line, checked.as_ref().err().cloned().into_iter().collect());
        iccids.extend(checked.ok());
    }
    (iccids, report)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "8988303000000000019";

    #[test]
    fn a_csv_target_takes_its_iccid_column_or_its_first() {
        let (iccids, report) = iccids_of_csv(&format!("label,ICCID\npump,{GOOD}\n"));
        assert_eq!(iccids, [GOOD]);
        assert!(report.is_valid());
        let (plain, _) = iccids_of_csv(&format!("{GOOD}\n\n{GOOD}\n"));
        assert_eq!(plain.len(), 2, "duplicates are dropped later, blank lines now");
    }

    #[test]
    fn a_bad_csv_row_is_reported_by_line() {
        let (_, report) = iccids_of_csv(&format!("iccid\n{GOOD}\n12345\n"));
        assert_eq!(report.invalid_rows, 1);
        assert_eq!(report.errors[0].row, 3);
        assert_eq!(report.errors[0].field, "iccid");
    }
}
