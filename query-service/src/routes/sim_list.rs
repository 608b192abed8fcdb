//! `GET /sims`: the fleet's list, filtered, sorted and paged, by page number or by keyset
//! cursor (`after=`), with a total that stays cheap (see [`paging::count`]).

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::DateTime;
use domain::{QuotaKind, SimStatus, Spelled};
use platform::{ApiError, ApiQuery, Principal};
use readmodel::sim_list::{self, After, SimFilter, Sort};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::consistency::ConsistentRead;
use crate::params::{invalid, parse_iccid, Page};
use crate::routes::paging::{self, Cursor};
use crate::state::AppState;

/// The list's filters and sort, shared by `GET /sims` and `GET /sims/export`. Filters combine
/// with AND.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SimFilterParams {
    /// One status or several, comma-separated: `inactive`, `active`, `suspended`, `terminated`.
    status: Option<String>,
    /// SIMs carrying this tag; several, comma-separated: SIMs carrying all of them.
    tag: Option<String>,
    /// Case-insensitive substring of the label.
    label: Option<String>,
    /// ICCID prefix (digits; a full 20-digit ICCID is normalised to 19).
    iccid: Option<String>,
    /// IMSI prefix (digits).
    imsi: Option<String>,
    /// MSISDN prefix (digits).
    msisdn: Option<String>,
    /// One quota state or several, comma-separated: `ok` (under 80 % used), `warning` (at
    /// least 80 % used, something left), `exhausted` (nothing left, 100 % used). Of the quota
    /// named by `quota`; without it, of the worse of the SIM's data and SMS quotas. A quota
    /// the provider has not reported yet has no state: such SIMs match no value.
    quota_state: Option<String>,
    /// `data` or `sms`: the quota `quota_state` looks at (only with `quota_state`).
    quota: Option<String>,
    /// `iccid` (default), `imsi`, `msisdn`, `label`, `status`, `registered_at`, `updated_at`,
    /// `last_seen_at`; a leading `-` sorts descending. Ties are broken by ICCID.
    sort: Option<String>,
}

/// `GET /sims` parameters: the paging, and the filters ([`SimFilterParams`]).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListSims {
    /// Page number, from 1 (default 1). Not with `after`.
    #[param(minimum = 1)]
    page: Option<u32>,
    /// Keyset pagination: the page after this cursor (from `X-Next-Cursor` or the `next`
    /// link of the page before, made with the same `sort`). Stable while SIMs change, and as
    /// fast on the last page as on the first. Not with `page`.
    after: Option<String>,
    /// SIMs per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    page_size: Option<u32>,
    #[serde(flatten)]
    #[param(ignore)]
    filters: SimFilterParams,
    /// Whatever else the query string holds (refused: a misspelt filter must not be ignored).
    #[serde(flatten)]
    #[param(ignore)]
    unknown: std::collections::BTreeMap<String, String>,
}

fn comma_list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn digits_prefix(parameter: &str, raw: &str, max_len: usize) -> Result<String, ApiError> {
    let value = raw.trim();
    if value.is_empty() || value.len() > max_len || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(parameter, format!("expected 1 to {max_len} digits")));
    }
    Ok(value.to_owned())
}

/// The filters and sort from their parameters (400 `INVALID_QUERY` naming a bad one).
pub(crate) fn parse_filter(params: &SimFilterParams) -> Result<(SimFilter, Sort), ApiError> {
    let sort = Sort::from_key(params.sort.as_deref())
        .ok_or_else(|| invalid("sort", format!("expected one of {}", Sort::keys().join(", "))))?;
    let mut filters = SimFilter::default();
    if let Some(raw) = &params.status {
        filters.statuses = Some(words::<SimStatus>("status", raw)?);
    }
    if let Some(raw) = &params.tag {
        let tags = comma_list(raw);
        if tags.is_empty() || tags.len() > 20 || tags.iter().any(|t| t.len() > 50) {
            return Err(invalid("tag", "expected 1 to 20 tags of at most 50 characters"));
        }
        filters.tags = Some(tags);
    }
    if let Some(raw) = &params.label {
        if raw.is_empty() || raw.chars().count() > 100 {
            return Err(invalid("label", "expected 1 to 100 characters"));
        }
        filters.label = Some(SimFilter::label_containing(raw));
    }
    if let Some(raw) = &params.iccid {
        let mut prefix = digits_prefix("iccid", raw, 20)?;
        if prefix.len() == 20 {
            prefix = parse_iccid(&prefix)
                .map_err(|e| invalid("iccid", e.message))?
                .to_string();
        }
        filters.iccid = Some(prefix);
    }
    if let Some(raw) = &params.imsi {
        filters.imsi = Some(digits_prefix("imsi", raw, 15)?);
    }
    if let Some(raw) = &params.msisdn {
        filters.msisdn = Some(digits_prefix("msisdn", raw, 15)?);
    }
    if let Some(raw) = &params.quota_state {
        filters.quota_states = Some(words("quota_state", raw)?);
    }
    if let Some(raw) = &params.quota {
        if params.quota_state.is_none() {
            return Err(invalid("quota", "goes with quota_state"));
        }
        filters.quota_kind = Some(match raw.trim() {
            "data" => QuotaKind::Data,
            "sms" => QuotaKind::Sms,
            _ => return Err(invalid("quota", "expected data or sms")),
        });
    }
    Ok((filters, sort))
}

/// One word or several, comma-separated, of `T`'s spellings.
fn words<T: Spelled + std::str::FromStr>(parameter: &str, raw: &str) -> Result<Vec<T>, ApiError> {
    let expected = || {
        let words: Vec<&str> = T::ALL.iter().map(|s| s.as_str()).collect();
        invalid(parameter, format!("expected one or more of {}", words.join(", ")))
    };
    let values: Vec<T> = comma_list(raw)
        .iter()
        .map(|word| word.parse())
        .collect::<Result<_, _>>()
        .map_err(|_| expected())?;
    if values.is_empty() {
        return Err(expected());
    }
    Ok(values)
}

/// List SIMs (paged or by keyset cursor, filtered, sorted).
#[utoipa::path(
    get, path = "/api/v1/sims", tag = "sims",
    params(ListSims, SimFilterParams, crate::openapi::ConsistencyHeader),
    responses(
        (status = 200, description = "One page of SIMs", body = Vec<readmodel::SimView>,
            headers(
                ("X-Total-Count" = i64, description = "SIMs matching the filters, over all pages: exact up to LIST_EXACT_COUNT_LIMIT (default 1000), the planner's estimate beyond (see X-Total-Count-Exact)"),
                ("X-Total-Count-Exact" = bool, description = "false: X-Total-Count is an estimate"),
                ("X-Page" = u32, description = "This page's number (not with `after`)"),
                ("X-Page-Size" = u32, description = "The page size used"),
                ("X-Next-Cursor" = String, description = "With `after` (or `after=` empty on the first page): the cursor of the next page, when there may be one"),
                ("Link" = String, description = "first, prev, next and last pages (RFC 8288); with `after`: first and next"),
            )),
        (status = 400, description = "`INVALID_QUERY`, `INVALID_CONSISTENCY_TOKEN`", body = crate::openapi::ErrorBody),
        (status = 503, description = "`CONSISTENCY_TIMEOUT`", body = crate::openapi::ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    _: Principal,
    RawQuery(raw_query): RawQuery,
    ApiQuery(params): ApiQuery<ListSims>,
    read: ConsistentRead,
) -> Result<Response, ApiError> {
    let keyset = params.after.is_some();
    if keyset && params.page.is_some() {
        return Err(invalid("after", "use either page or after, not both"));
    }
    if let Some(name) = params.unknown.keys().next() {
        return Err(invalid(name, "not a parameter of this list"));
    }
    let page = Page::parse(params.page, params.page_size)?;
    let (filters, sort) = parse_filter(&params.filters)?;
    // An empty `after=` asks for the first page with a cursor for the next.
    let cursor = match params.after.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(raw) => {
            let cursor = Cursor::decode(raw, &sort.key())?;
            if sort.column.time {
                if let Some(value) = &cursor.value {
                    DateTime::parse_from_rfc3339(value).map_err(|_| {
                        invalid("after", "not a cursor of this list (take it from X-Next-Cursor)")
                    })?;
                }
            }
            Some(cursor)
        }
    };

    let after = cursor.as_ref().map(|cursor| After {
        value: cursor.value.clone(),
        iccid: cursor.iccid.clone(),
    });
    let offset = (!keyset).then(|| page.offset());
    let sims = sim_list::page(&state.pool, &filters, sort, after.as_ref(), page.limit(), offset).await?;
    // A page that is not full and starts at a known place says the total itself: no count.
    let start = cursor.is_none().then(|| if keyset { 0 } else { page.offset() });
    let total = match paging::Total::of_short_page(start, sims.len(), page.limit()) {
        Some(total) => total,
        None => {
            let key = format!("sims {filters:?}");
            state
                .list_totals
                .count(&state.pool, key, read.fresh, |query| {
                    filters.push_from_where(query)
                })
                .await?
        }
    };

    let path = "/api/v1/sims";
    let headers = if keyset {
        let next = (sims.len() as i64 == page.limit())
            .then(|| sims.last())
            .flatten()
            .map(|last| {
                Cursor {
                    sort: sort.key(),
                    value: sort.value_of(last),
                    iccid: last.iccid.clone(),
                }
                .encode()
            });
        paging::keyset_headers(path, raw_query.as_deref(), page.page_size, total, next.as_deref())
    } else {
        paging::page_headers(path, raw_query.as_deref(), page, total)
    };
    Ok((headers, Json(sims)).into_response())
}
