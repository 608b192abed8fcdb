//! Browser sessions: the refresh token in the `simp_refresh` cookie instead of the JSON body,
//! and the Origin check that keeps other sites from using that cookie (cross-site request
//! forgery). SameSite=Strict already keeps the cookie off cross-site requests in current
//! browsers; the Origin check does not rely on that.

use std::sync::Arc;

use axum::http::header::{HeaderMap, HeaderValue, COOKIE, HOST, ORIGIN};
use platform::ApiError;
use serde_json::json;

/// The refresh token's cookie.
pub const REFRESH_COOKIE: &str = "simp_refresh";
/// Sent only to the auth routes (login, refresh, logout), never with commands or reads.
const COOKIE_ATTRIBUTES: &str = "HttpOnly; Secure; SameSite=Strict; Path=/api/v1/auth";

/// `Set-Cookie` carrying `token` for `max_age_secs`.
pub fn refresh_cookie(token: &str, max_age_secs: u64) -> HeaderValue {
    // A JWT is base64url and dots: always a valid header value.
    HeaderValue::from_str(&format!(
        "{REFRESH_COOKIE}={token}; {COOKIE_ATTRIBUTES}; Max-Age={max_age_secs}"
    ))
    .expect("a JWT is a valid cookie value")
}

/// `Set-Cookie` that makes the browser drop the refresh cookie.
pub fn cleared_cookie() -> HeaderValue {
    HeaderValue::from_str(&format!("{REFRESH_COOKIE}=; {COOKIE_ATTRIBUTES}; Max-Age=0"))
        .expect("a literal header value")
}

/// The refresh cookie's value, if the request carries a non-empty one.
pub fn refresh_cookie_in(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == REFRESH_COOKIE && !value.is_empty())
        .map(|(_, value)| value)
}

/// The origins a cookie route accepts besides the request's own (`AUTH_ALLOWED_ORIGINS`),
/// normalised: lower case, no trailing slash, no default port.
#[derive(Debug, Clone, Default)]
pub struct AllowedOrigins(Arc<[String]>);

impl AllowedOrigins {
    /// A comma-separated list of `scheme://host[:port]`; empty entries are ignored.
    pub fn parse(list: &str) -> Result<Self, String> {
        let origins = list
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                let origin = normalise(entry.trim_end_matches('/'));
                let well_formed = origin.split_once("://").is_some_and(|(scheme, host)| {
                    matches!(scheme, "http" | "https") && !host.is_empty() && !host.contains('/')
                });
                well_formed
                    .then_some(origin)
                    .ok_or_else(|| format!("{entry:?} is not an origin such as https://sims.example.com"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self(origins.into()))
    }

    /// 403 `ORIGIN_NOT_ALLOWED` unless the request's `Origin` is the origin it was sent to
    /// (scheme from `X-Forwarded-Proto`, else http; host from `X-Forwarded-Host`, else
    /// `Host`) or one of the allowed ones. A request without `Origin` is refused: browsers
    /// send it on every POST, so only a non-browser client lacks it, and such a client has
    /// the JSON mode.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let refuse = |origin: Option<&str>| {
            ApiError::forbidden(
                "ORIGIN_NOT_ALLOWED",
                "a cookie session is only served to the dashboard's own origin",
            )
            .with_details(json!({ "origin": origin }))
        };
        let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else {
            return Err(refuse(None));
        };
        let origin_normalised = normalise(origin);
        let own = own_origin(headers);
        if own.as_deref() == Some(origin_normalised.as_str()) || self.0.contains(&origin_normalised) {
            Ok(())
        } else {
            Err(refuse(Some(origin)))
        }
    }
}

/// `scheme://host[:port]` the request was addressed to, as the proxy in front reports it.
fn own_origin(headers: &HeaderMap) -> Option<String> {
    let first = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let scheme = first("x-forwarded-proto").unwrap_or("http");
    let host = first("x-forwarded-host").or_else(|| first(HOST.as_str()))?;
    Some(normalise(&format!("{scheme}://{host}")))
}

/// Lower case, without the scheme's default port (browsers leave it out of `Origin`).
fn normalise(origin: &str) -> String {
    let origin = origin.to_ascii_lowercase();
    for (prefix, port) in [("http://", ":80"), ("https://", ":443")] {
        if origin.starts_with(prefix) {
            if let Some(bare) = origin.strip_suffix(port) {
                return bare.to_owned();
            }
        }
    }
    origin
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn the_own_origin_comes_from_the_proxy_headers_or_host() {
        let none = AllowedOrigins::default();
        let allowed = [
            vec![
                ("host", "sims.example.com:8000"),
                ("origin", "http://sims.example.com:8000"),
            ],
            vec![
                ("host", "SIMS.example.com"),
                ("origin", "http://sims.example.com:80"),
            ],
            vec![
                ("host", "command:8081"),
                ("x-forwarded-host", "sims.example.com"),
                ("x-forwarded-proto", "https"),
                ("origin", "https://sims.example.com"),
            ],
        ];
        for case in allowed {
            assert!(none.check(&headers(&case)).is_ok(), "{case:?}");
        }
        let refused = [
            vec![("host", "sims.example.com")],
            vec![("host", "sims.example.com"), ("origin", "null")],
            vec![
                ("host", "sims.example.com"),
                ("origin", "https://sims.example.com"),
            ],
            vec![("host", "sims.example.com"), ("origin", "http://evil.example")],
            vec![
                ("host", "sims.example.com"),
                ("x-forwarded-host", "other.example"),
                ("origin", "http://sims.example.com"),
            ],
        ];
        for case in refused {
            let error = none.check(&headers(&case)).unwrap_err();
            assert_eq!(error.code, "ORIGIN_NOT_ALLOWED", "{case:?}");
        }
    }

    #[test]
    fn listed_origins_are_allowed_and_malformed_ones_refused_at_start() {
        let listed = AllowedOrigins::parse(" https://Dash.example.com/ , http://localhost:5173,").unwrap();
        for origin in [
            "https://dash.example.com",
            "https://dash.example.com:443",
            "http://localhost:5173",
        ] {
            let request = headers(&[("host", "api.internal"), ("origin", origin)]);
            assert!(listed.check(&request).is_ok(), "{origin}");
        }
        for bad in ["dash.example.com", "ftp://x", "https://x/path", "https://"] {
            assert!(AllowedOrigins::parse(bad).is_err(), "{bad}");
        }
        assert!(AllowedOrigins::parse("").unwrap().0.is_empty());
    }

    #[test]
    fn the_refresh_cookie_is_found_among_others_and_set_with_every_attribute() {
        let request = headers(&[("cookie", "a=1; simp_refresh=abc.def.ghi; b=2")]);
        assert_eq!(refresh_cookie_in(&request), Some("abc.def.ghi"));
        assert_eq!(refresh_cookie_in(&headers(&[("cookie", "simp_refresh=")])), None);
        assert_eq!(
            refresh_cookie("t.o.k", 60),
            "simp_refresh=t.o.k; HttpOnly; Secure; SameSite=Strict; Path=/api/v1/auth; Max-Age=60"
        );
        assert_eq!(
            cleared_cookie(),
            "simp_refresh=; HttpOnly; Secure; SameSite=Strict; Path=/api/v1/auth; Max-Age=0"
        );
    }
}
