//! `page`/`pageSize` as the provider validates them, and its paging headers.

use std::collections::HashMap;

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;

use super::message;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub page: u64,
    pub size: u64,
}

impl Page {
    /// `page` ≥ 1 (default 1), `pageSize` 1..=`max_size` (default 10). Not a number: 400; out of
    /// range: 422 (the documents' only validation status on these paths).
    pub fn from_query(query: &HashMap<String, String>, max_size: u64) -> Result<Self, Response> {
        let page = number(query, "page", 1)?;
        let size = number(query, "pageSize", 10)?;
        if page < 1 {
            return Err(message(
                StatusCode::UNPROCESSABLE_ENTITY,
                "page must be at least 1",
            ));
        }
        if !(1..=max_size).contains(&size) {
            return Err(message(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("pageSize must be between 1 and {max_size}"),
            ));
        }
        Ok(Self { page, size })
    }

    pub fn total_pages(&self, total: usize) -> u64 {
        (total as u64).div_ceil(self.size)
    }

    /// The index range of this page within `total` items (empty past the end).
    pub fn range(&self, total: usize) -> std::ops::Range<usize> {
        let start = (self.page - 1).saturating_mul(self.size).min(total as u64) as usize;
        let end = (start as u64 + self.size).min(total as u64) as usize;
        start..end
    }

    pub fn headers(&self, total: usize) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let values = [
            ("x-total-count", total as u64),
            ("x-total-pages", self.total_pages(total)),
            ("x-current-page", self.page),
            ("x-count-per-page", self.size),
        ];
        for (name, value) in values {
            headers.insert(HeaderName::from_static(name), HeaderValue::from(value));
        }
        headers
    }
}

fn number(query: &HashMap<String, String>, name: &str, default: u64) -> Result<u64, Response> {
    match query.get(name).map(|v| v.trim()) {
        None => Ok(default),
        Some(v) => v
            .parse::<i64>()
            .map(|n| n.max(0) as u64)
            .map_err(|_| message(StatusCode::BAD_REQUEST, format!("{name} must be an integer"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn validates_and_slices() {
        let p = Page::from_query(&q(&[("page", "3"), ("pageSize", "100")]), 100).unwrap();
        assert_eq!(p.range(250), 200..250);
        assert_eq!(p.total_pages(250), 3);
        let past = Page::from_query(&q(&[("page", "9"), ("pageSize", "100")]), 100).unwrap();
        assert!(past.range(250).is_empty());
        assert_eq!(
            Page::from_query(&q(&[]), 100).unwrap(),
            Page { page: 1, size: 10 }
        );
        let status = |r: Result<Page, Response>| r.unwrap_err().status();
        assert_eq!(status(Page::from_query(&q(&[("pageSize", "101")]), 100)), 422);
        assert_eq!(status(Page::from_query(&q(&[("pageSize", "0")]), 100)), 422);
        assert_eq!(status(Page::from_query(&q(&[("page", "0")]), 100)), 422);
        assert_eq!(status(Page::from_query(&q(&[("page", "-2")]), 100)), 422);
        assert_eq!(status(Page::from_query(&q(&[("page", "two")]), 100)), 400);
    }
}
