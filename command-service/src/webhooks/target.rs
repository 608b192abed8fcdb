//! Which URLs a webhook may target: `http` or `https` with a host, and, unless
//! `WEBHOOK_ALLOW_PRIVATE`, only public addresses, so a subscription cannot be used to reach
//! the platform's own services (its database, Redis, a cloud metadata endpoint). The host is
//! resolved when the subscription is saved and again before each delivery (the answer of a
//! name may change); redirects are not followed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use reqwest::Url;

/// Why a target is refused: `(code, message)`.
pub type Refusal = (&'static str, String);

/// Parses and checks `url`.
pub async fn check(url: &str, allow_private: bool) -> Result<Url, Refusal> {
    let parsed = Url::parse(url).map_err(|error| ("INVALID_URL", format!("not a URL: {error}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(("INVALID_URL", "the URL must be http or https".into()));
    }
    let Some(host) = parsed.host_str() else {
        return Err(("INVALID_URL", "the URL has no host".into()));
    };
    if url.len() > 2048 {
        return Err(("INVALID_URL", "the URL is longer than 2048 characters".into()));
    }
    if allow_private {
        return Ok(parsed);
    }
    let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
    let port = parsed.port_or_known_default().unwrap_or(443);
    let addresses: Vec<IpAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|error| {
            (
                "WEBHOOK_TARGET_UNRESOLVED",
                format!("cannot resolve {host}: {error}"),
            )
        })?
        .map(|address| address.ip())
        .collect();
    if addresses.is_empty() {
        return Err(("WEBHOOK_TARGET_UNRESOLVED", format!("{host} has no address")));
    }
    if let Some(internal) = addresses.iter().find(|ip| !is_public(ip)) {
        return Err((
            "WEBHOOK_TARGET_NOT_ALLOWED",
            format!("{host} is an internal address ({internal}); targets must be public"),
        ));
    }
    Ok(parsed)
}

fn is_public(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(&v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: &Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        // 100.64.0.0/10, shared address space (carrier-grade NAT)
        || (a == 100 && (64..128).contains(&b))
        // 198.18.0.0/15, benchmarking; 240.0.0.0/4, reserved
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240)
}

fn is_public_v6(ip: &Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // fc00::/7 unique local, fe80::/10 link-local
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80)
}
