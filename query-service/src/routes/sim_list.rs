//! `GET /sims`: the fleet's list, filtered, sorted and paged, by page number or by keyset
//! cursor (`after=`), with a total that stays cheap (see [`paging::count`]).

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::DateTime;
use platform::{ApiError, ApiQuery, Principal};
use readmodel::sim_list::{self, After, FilterParams, SimFilter, Sort};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::consistency::ConsistentRead;
use crate::params::{invalid, Page};
use crate::routes::paging::{self, Cursor};
use crate::state::AppState;

/// `GET /sims` parameters. Filters combine with AND.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
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
    /// `iccid` (default), `imsi`, `msisdn`, `label`, `status`, `registered_at`, `updated_at`,
    /// `last_seen_at`; a leading `-` sorts descending. Ties are broken by ICCID.
    sort: Option<String>,
}

/// The list's filters from its parameters (parsed by their owner, as a bulk job's filter is).
fn parse_filter(params: &ListSims) -> Result<SimFilter, ApiError> {
    FilterParams {
        status: params.status.clone(),
        tag: params.tag.clone(),
        label: params.label.clone(),
        iccid: params.iccid.clone(),
        imsi: params.imsi.clone(),
        msisdn: params.msisdn.clone(),
    }
    .parse()
    .map_err(|error| invalid(error.parameter, error.reason))
}

/// List SIMs (paged or by keyset cursor, filtered, sorted).
#[utoipa::path(
    get, path = "/api/v1/sims", tag = "sims",
    params(ListSims, crate::openapi::ConsistencyHeader),
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
    let page = Page::parse(params.page, params.page_size)?;
    let filters = parse_filter(&params)?;
    let sort = Sort::from_key(params.sort.as_deref())
        .ok_or_else(|| invalid("sort", format!("expected one of {}", Sort::keys().join(", "))))?;
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
