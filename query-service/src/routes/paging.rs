//! What paged lists share: totals that stay cheap (exact up to a threshold, an estimate
//! beyond it, and a header saying which), the page headers and `Link`s, and the opaque
//! cursors of keyset pagination (`after=`).

use axum::http::header::{HeaderMap, HeaderName, HeaderValue, LINK};
use base64::Engine;
use platform::ApiError;
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Postgres, QueryBuilder};

use crate::params::{invalid, Page};

pub const X_TOTAL_COUNT: HeaderName = HeaderName::from_static("x-total-count");
/// `true` when `X-Total-Count` is exact, `false` when it is the planner's estimate (more rows
/// match than `LIST_EXACT_COUNT_LIMIT`; the estimate is never below that limit + 1).
pub const X_TOTAL_COUNT_EXACT: HeaderName = HeaderName::from_static("x-total-count-exact");
pub const X_PAGE: HeaderName = HeaderName::from_static("x-page");
pub const X_PAGE_SIZE: HeaderName = HeaderName::from_static("x-page-size");
/// The `after=` value of the next page (keyset pagination), when there may be one.
pub const X_NEXT_CURSOR: HeaderName = HeaderName::from_static("x-next-cursor");

/// How many rows match a list's filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Total {
    pub value: i64,
    pub exact: bool,
}

impl Total {
    /// A page shorter than its limit that starts at a known row (`start`: its offset, 0 for a
    /// keyset page without a cursor, `None` after a cursor) tells the total itself, exactly,
    /// with no count. An empty page past the first tells nothing.
    pub fn of_short_page(start: Option<i64>, rows: usize, limit: i64) -> Option<Self> {
        let start = start?;
        let rows = rows as i64;
        (rows < limit && (start == 0 || rows > 0)).then_some(Self {
            value: start + rows,
            exact: true,
        })
    }
}

/// Counts the rows of `from_where` (`FROM … WHERE …`, pushed by the closure) up to `limit`
/// exactly, in one bounded query; past it, asks the planner for its estimate instead of
/// counting every row (a `count(*)` over 100,000 SIMs on every page is what made lists slow).
pub async fn count(
    pool: &PgPool,
    limit: i64,
    from_where: impl Fn(&mut QueryBuilder<'_, Postgres>),
) -> Result<Total, sqlx::Error> {
    let mut bounded = QueryBuilder::new("SELECT count(*) FROM (SELECT 1 ");
    from_where(&mut bounded);
    bounded.push(" LIMIT ").push_bind(limit + 1).push(") AS bounded");
    let counted: i64 = bounded.build_query_scalar().fetch_one(pool).await?;
    if counted <= limit {
        return Ok(Total {
            value: counted,
            exact: true,
        });
    }
    let mut explain = QueryBuilder::new("EXPLAIN (FORMAT JSON) SELECT 1 ");
    from_where(&mut explain);
    let plan: serde_json::Value = explain.build_query_scalar().fetch_one(pool).await?;
    let estimate = plan[0]["Plan"]["Plan Rows"].as_f64().unwrap_or(0.0) as i64;
    Ok(Total {
        value: estimate.max(limit + 1),
        exact: false,
    })
}

/// Lists' totals, kept per filter for a short while (`LIST_TOTAL_CACHE_MS`, default 1,000;
/// 0: off): the bounded count is most of a filtered page's cost (3.5 ms of 4 for 100,000
/// SIMs filtered by status and tag), and a dashboard asks for the same filters again and
/// again, page after page. The rows of a page are always read fresh; only `X-Total-Count` may
/// be that old, as the fleet summary may. A read with a consistency token counts afresh.
pub struct Totals {
    max_age: std::time::Duration,
    exact_limit: i64,
    entries: std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, Total)>>,
}

/// Filters whose totals are kept at most (past it, the oldest half goes).
const TOTALS_KEPT: usize = 1024;

impl Totals {
    pub fn new(max_age: std::time::Duration, exact_limit: i64) -> Self {
        Self {
            max_age,
            exact_limit,
            entries: Default::default(),
        }
    }

    /// The total of `from_where`, from the cache under `key` (the list and its filters) when
    /// young enough and `fresh` is false, else counted ([`count`]) and kept.
    pub async fn count(
        &self,
        pool: &PgPool,
        key: String,
        fresh: bool,
        from_where: impl Fn(&mut QueryBuilder<'_, Postgres>),
    ) -> Result<Total, sqlx::Error> {
        let cached = !fresh && !self.max_age.is_zero();
        if cached {
            let entries = self.entries.lock().expect("totals lock");
            if let Some((at, total)) = entries.get(&key) {
                if at.elapsed() < self.max_age {
                    return Ok(*total);
                }
            }
        }
        let total = count(pool, self.exact_limit, from_where).await?;
        if !self.max_age.is_zero() {
            let mut entries = self.entries.lock().expect("totals lock");
            if entries.len() >= TOTALS_KEPT {
                let max_age = self.max_age;
                entries.retain(|_, (at, _)| at.elapsed() < max_age);
                if entries.len() >= TOTALS_KEPT {
                    let mut ages: Vec<std::time::Instant> = entries.values().map(|(at, _)| *at).collect();
                    ages.sort();
                    let cut = ages[ages.len() / 2];
                    entries.retain(|_, (at, _)| *at > cut);
                }
            }
            entries.insert(key, (std::time::Instant::now(), total));
        }
        Ok(total)
    }
}

/// The request's query string without the parameters a link replaces.
fn kept_parameters<'a>(raw_query: Option<&'a str>, replaced: &[&str]) -> Vec<&'a str> {
    raw_query
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter(|pair| {
            let name = pair.split('=').next().unwrap_or("");
            !replaced.contains(&name)
        })
        .collect()
}

fn link(path: &str, kept: &[&str], extra: &str, rel: &str) -> String {
    let mut query = kept.join("&");
    if !query.is_empty() && !extra.is_empty() {
        query.push('&');
    }
    query.push_str(extra);
    format!("<{path}?{query}>; rel=\"{rel}\"")
}

fn total_headers(headers: &mut HeaderMap, total: Total) {
    headers.insert(X_TOTAL_COUNT, HeaderValue::from(total.value));
    headers.insert(
        X_TOTAL_COUNT_EXACT,
        HeaderValue::from_static(if total.exact { "true" } else { "false" }),
    );
}

/// The headers of a numbered page: `X-Total-Count` (and `-Exact`), `X-Page`, `X-Page-Size`,
/// and `Link` (first, prev, next, last) keeping the request's other parameters. With an
/// estimated total, `last` is where the estimate says the list ends.
pub fn page_headers(path: &str, raw_query: Option<&str>, page: Page, total: Total) -> HeaderMap {
    let mut headers = HeaderMap::new();
    total_headers(&mut headers, total);
    headers.insert(X_PAGE, HeaderValue::from(page.page));
    headers.insert(X_PAGE_SIZE, HeaderValue::from(page.page_size));
    let kept = kept_parameters(raw_query, &["page"]);
    let numbered = |n: u32, rel: &str| link(path, &kept, &format!("page={n}"), rel);
    let last = page.last_page(total.value);
    let mut links = vec![numbered(1, "first")];
    if page.page > 1 {
        links.push(numbered((page.page - 1).min(last), "prev"));
    }
    if page.page < last {
        links.push(numbered(page.page + 1, "next"));
    }
    links.push(numbered(last, "last"));
    if let Ok(value) = HeaderValue::from_str(&links.join(", ")) {
        headers.insert(LINK, value);
    }
    headers
}

/// The headers of a keyset page: the totals, `X-Page-Size`, `X-Next-Cursor` and `Link`
/// (first, and next when there may be more).
pub fn keyset_headers(
    path: &str,
    raw_query: Option<&str>,
    page_size: u32,
    total: Total,
    next: Option<&str>,
) -> HeaderMap {
    let mut headers = HeaderMap::new();
    total_headers(&mut headers, total);
    headers.insert(X_PAGE_SIZE, HeaderValue::from(page_size));
    let kept = kept_parameters(raw_query, &["page", "after"]);
    let mut links = vec![link(path, &kept, "", "first")];
    if let Some(cursor) = next {
        if let Ok(value) = HeaderValue::from_str(cursor) {
            headers.insert(X_NEXT_CURSOR, value);
        }
        links.push(link(path, &kept, &format!("after={cursor}"), "next"));
    }
    if let Ok(value) = HeaderValue::from_str(&links.join(", ")) {
        headers.insert(LINK, value);
    }
    headers
}

/// Where a keyset page ends: the sort it was made for, the last row's sort value (`None`
/// when it was null) and its ICCID (the tie-breaker). Opaque to clients: base64url JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    #[serde(rename = "s")]
    pub sort: String,
    #[serde(rename = "v")]
    pub value: Option<String>,
    #[serde(rename = "i")]
    pub iccid: String,
}

impl Cursor {
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).expect("a cursor serializes");
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    /// 400 `INVALID_QUERY` (`after`) for anything this service did not write, or a cursor
    /// of another sort.
    pub fn decode(raw: &str, sort: &str) -> Result<Self, ApiError> {
        let bad = || invalid("after", "not a cursor of this list (take it from X-Next-Cursor)");
        if raw.len() > 512 {
            return Err(bad());
        }
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(raw.trim())
            .map_err(|_| bad())?;
        let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        if cursor.sort != sort {
            return Err(invalid(
                "after",
                format!("the cursor was made for sort={}, not sort={sort}", cursor.sort),
            ));
        }
        Ok(cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_headers_keep_other_parameters() {
        let page = Page::parse(Some(2), Some(10)).unwrap();
        let total = Total {
            value: 35,
            exact: true,
        };
        let headers = page_headers(
            "/api/v1/sims",
            Some("status=active&page=2&page_size=10"),
            page,
            total,
        );
        let link = headers[LINK].to_str().unwrap();
        assert!(
            link.contains("</api/v1/sims?status=active&page_size=10&page=3>; rel=\"next\""),
            "{link}"
        );
        assert!(link.contains("page=1>; rel=\"prev\""), "{link}");
        assert!(link.contains("page=4>; rel=\"last\""), "{link}");
        assert_eq!(headers[X_TOTAL_COUNT], "35");
        assert_eq!(headers[X_TOTAL_COUNT_EXACT], "true");
    }

    #[test]
    fn keyset_links_replace_the_cursor() {
        let total = Total {
            value: 5000,
            exact: false,
        };
        let headers = keyset_headers(
            "/api/v1/sims",
            Some("after=old&status=active"),
            50,
            total,
            Some("abc"),
        );
        let link = headers[LINK].to_str().unwrap();
        assert_eq!(
            link,
            "</api/v1/sims?status=active>; rel=\"first\", </api/v1/sims?status=active&after=abc>; rel=\"next\""
        );
        assert_eq!(headers[X_NEXT_CURSOR], "abc");
        assert_eq!(headers[X_TOTAL_COUNT_EXACT], "false");
        let last = keyset_headers("/api/v1/sims", None, 50, total, None);
        assert!(!last.contains_key(X_NEXT_CURSOR));
    }

    #[test]
    fn cursors_round_trip_and_refuse_strangers() {
        let cursor = Cursor {
            sort: "-label".into(),
            value: Some("pump \"7\"".into()),
            iccid: "8988303000000000019".into(),
        };
        let encoded = cursor.encode();
        assert!(encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(Cursor::decode(&encoded, "-label").unwrap(), cursor);
        assert!(Cursor::decode(&encoded, "label").is_err());
        assert!(Cursor::decode("not a cursor", "label").is_err());
        assert!(Cursor::decode(&"A".repeat(600), "label").is_err());
    }
}
