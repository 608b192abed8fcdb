//! Query parameters shared by several routes: pages, time ranges.

use chrono::{DateTime, Duration, DurationRound, Utc};
use platform::ApiError;
use serde::Serialize;
use serde_json::json;

pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// The largest `page_size` of a paged list.
pub const MAX_PAGE_SIZE: u32 = 500;
pub const DEFAULT_EVENT_LIMIT: i64 = 100;
/// The largest `limit` of the event history and the feed.
pub const MAX_EVENT_LIMIT: i64 = 1000;
/// The longest range of hourly usage.
pub const MAX_HOURLY_DAYS: i64 = 31;
/// The longest range of daily usage.
pub const MAX_DAILY_DAYS: i64 = 366;

/// 400 `INVALID_QUERY` naming the parameter.
pub fn invalid(parameter: &str, reason: impl Into<String>) -> ApiError {
    let reason = reason.into();
    ApiError::bad_request(
        "INVALID_QUERY",
        format!("invalid query parameter {parameter}: {reason}"),
    )
    .with_details(json!({ "parameter": parameter, "reason": reason }))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub page: u32,
    pub page_size: u32,
}

impl Page {
    pub fn parse(page: Option<u32>, page_size: Option<u32>) -> Result<Self, ApiError> {
        let page = page.unwrap_or(1);
        if page < 1 {
            return Err(invalid("page", "pages start at 1"));
        }
        let page_size = page_size.unwrap_or(DEFAULT_PAGE_SIZE);
        if !(1..=MAX_PAGE_SIZE).contains(&page_size) {
            return Err(invalid(
                "page_size",
                format!("must be between 1 and {MAX_PAGE_SIZE}"),
            ));
        }
        Ok(Self { page, page_size })
    }

    pub fn offset(self) -> i64 {
        i64::from(self.page - 1) * i64::from(self.page_size)
    }

    pub fn limit(self) -> i64 {
        i64::from(self.page_size)
    }

    pub fn last_page(self, total: i64) -> u32 {
        let pages = (total + i64::from(self.page_size) - 1) / i64::from(self.page_size);
        pages.clamp(1, i64::from(u32::MAX)) as u32
    }
}

/// An event limit: 1..=1000, default 100.
pub fn event_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_EVENT_LIMIT);
    if !(1..=MAX_EVENT_LIMIT).contains(&limit) {
        return Err(invalid(
            "limit",
            format!("must be between 1 and {MAX_EVENT_LIMIT}"),
        ));
    }
    Ok(limit)
}

/// An RFC 3339 instant. A `+` that the query string decoded into a space (an unencoded
/// `+01:00` offset) is taken back.
pub fn parse_instant(parameter: &str, raw: &str) -> Result<DateTime<Utc>, ApiError> {
    let text = raw.trim();
    DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_rfc3339(&text.replace(' ', "+")))
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            invalid(
                parameter,
                "expected an RFC 3339 instant such as 2026-01-31T12:00:00Z",
            )
        })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    Hour,
    Day,
}

impl Granularity {
    pub fn table(self) -> &'static str {
        match self {
            Granularity::Hour => "sim_usage_hourly",
            Granularity::Day => "sim_usage_daily",
        }
    }

    /// The whole fleet's rollup: one row per bucket.
    pub fn fleet_table(self) -> &'static str {
        match self {
            Granularity::Hour => "fleet_usage_hourly",
            Granularity::Day => "fleet_usage_daily",
        }
    }

    fn bucket(self) -> Duration {
        match self {
            Granularity::Hour => Duration::hours(1),
            Granularity::Day => Duration::days(1),
        }
    }

    fn max_days(self) -> i64 {
        match self {
            Granularity::Hour => MAX_HOURLY_DAYS,
            Granularity::Day => MAX_DAILY_DAYS,
        }
    }
}

/// A usage query's range.
#[derive(Debug, Clone, Copy)]
pub struct UsageRange {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub granularity: Granularity,
}

impl UsageRange {
    /// Defaults: the last 24 hours, hourly. Bounded: `to` after `from`, at most 31 days of
    /// hours or 366 days of days (else 400 `INVALID_RANGE`).
    pub fn parse(
        from: Option<&str>,
        to: Option<&str>,
        granularity: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Self, ApiError> {
        let granularity = match granularity.map(str::trim) {
            None | Some("hour") => Granularity::Hour,
            Some("day") => Granularity::Day,
            Some(_) => return Err(invalid("granularity", "expected hour or day")),
        };
        let to = to.map(|raw| parse_instant("to", raw)).transpose()?.unwrap_or(now);
        let from = from
            .map(|raw| parse_instant("from", raw))
            .transpose()?
            .unwrap_or(to - Duration::hours(24));
        let range_error = |message: String| {
            ApiError::bad_request("INVALID_RANGE", message).with_details(json!({
                "from": from,
                "to": to,
                "granularity": granularity,
                "max_days": granularity.max_days(),
            }))
        };
        if to <= from {
            return Err(range_error("`to` must be after `from`".to_owned()));
        }
        if to - from > Duration::days(granularity.max_days()) {
            return Err(range_error(format!(
                "a range of {granularity:?} buckets spans at most {} days",
                granularity.max_days()
            )));
        }
        Ok(Self {
            from,
            to,
            granularity,
        })
    }

    /// The start of the bucket `from` falls in: buckets that overlap the range are answered.
    pub fn first_bucket(&self) -> DateTime<Utc> {
        self.from
            .duration_trunc(self.granularity.bucket())
            .unwrap_or(self.from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-03-01T12:30:00Z".parse().unwrap()
    }

    #[test]
    fn pages_are_bounded() {
        assert_eq!(
            Page::parse(None, None).unwrap(),
            Page {
                page: 1,
                page_size: 50
            }
        );
        assert_eq!(Page::parse(Some(3), Some(10)).unwrap().offset(), 20);
        assert!(Page::parse(Some(0), None).is_err());
        assert!(Page::parse(None, Some(0)).is_err());
        assert!(Page::parse(None, Some(501)).is_err());
        assert!(Page::parse(None, Some(500)).is_ok());
        assert_eq!(Page::parse(None, Some(10)).unwrap().last_page(0), 1);
        assert_eq!(Page::parse(None, Some(10)).unwrap().last_page(21), 3);
    }

    #[test]
    fn usage_ranges_default_and_are_bounded() {
        let range = UsageRange::parse(None, None, None, now()).unwrap();
        assert_eq!(range.to, now());
        assert_eq!(range.to - range.from, Duration::hours(24));
        assert_eq!(range.granularity, Granularity::Hour);
        assert_eq!(
            range.first_bucket(),
            "2026-02-28T12:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );

        let day = UsageRange::parse(Some("2026-01-01T10:00:00 01:00"), None, Some("day"), now()).unwrap();
        assert_eq!(day.from, "2026-01-01T09:00:00Z".parse::<DateTime<Utc>>().unwrap());
        assert_eq!(
            day.first_bucket(),
            "2026-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );

        let code = |r: Result<UsageRange, ApiError>| r.unwrap_err().code.to_string();
        assert_eq!(
            code(UsageRange::parse(Some("2026-03-01T12:30:00Z"), None, None, now())),
            "INVALID_RANGE"
        );
        assert_eq!(
            code(UsageRange::parse(Some("2026-01-01T00:00:00Z"), None, None, now())),
            "INVALID_RANGE"
        );
        assert_eq!(
            code(UsageRange::parse(Some("yesterday"), None, None, now())),
            "INVALID_QUERY"
        );
        assert_eq!(
            code(UsageRange::parse(None, None, Some("week"), now())),
            "INVALID_QUERY"
        );
        assert!(UsageRange::parse(Some("2025-03-01T12:30:00Z"), None, Some("day"), now()).is_ok());
        assert_eq!(
            code(UsageRange::parse(
                Some("2025-02-01T00:00:00Z"),
                None,
                Some("day"),
                now()
            )),
            "INVALID_RANGE"
        );
    }
}
