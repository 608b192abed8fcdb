//! Which URLs a webhook may target: `http` or `https` with a host, and, unless
//! `WEBHOOK_ALLOW_PRIVATE`, only public addresses, so a subscription cannot be used to reach
//! the platform's own services (its database, Redis, a cloud metadata endpoint).
//!
//! The check is also what the dispatcher's HTTP client connects with: [`Resolver`] is its DNS
//! resolver, so a name is resolved once per new connection, refused if any answer is internal,
//! and the connection goes to exactly the addresses checked. A second DNS answer (a rebinding
//! attack: public when saved, `127.0.0.1` when delivering) is never consulted. Literal IP hosts
//! never reach a resolver: [`check_literal`] checks them before each request. Redirects are not
//! followed and proxies from the environment are not used (either would bypass the check).

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

/// Why a target is refused: `(code, message)`.
pub type Refusal = (&'static str, String);

type LookupFuture = Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send>>;

/// How names are looked up: the system's resolver, or a test's seam.
pub type Lookup = Arc<dyn Fn(String) -> LookupFuture + Send + Sync>;

/// Resolves and checks a target's host: every address must be public unless private ones are
/// allowed. Also the dispatcher client's DNS resolver ([`Resolve`]).
#[derive(Clone)]
pub struct Resolver {
    lookup: Lookup,
    allow_private: bool,
}

impl Resolver {
    /// The system's resolver (`getaddrinfo` through tokio).
    pub fn system(allow_private: bool) -> Self {
        Self::with_lookup(
            Arc::new(|host: String| {
                Box::pin(async move {
                    Ok(tokio::net::lookup_host((host.as_str(), 0))
                        .await?
                        .map(|address| address.ip())
                        .collect())
                }) as LookupFuture
            }),
            allow_private,
        )
    }

    /// A resolver with its own lookup (tests: a name that answers what the test says).
    pub fn with_lookup(lookup: Lookup, allow_private: bool) -> Self {
        Self {
            lookup,
            allow_private,
        }
    }

    /// The addresses of `host`, each checked.
    pub async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, Refusal> {
        let addresses = (self.lookup)(host.to_owned()).await.map_err(|error| {
            (
                "WEBHOOK_TARGET_UNRESOLVED",
                format!("cannot resolve {host}: {error}"),
            )
        })?;
        if addresses.is_empty() {
            return Err(("WEBHOOK_TARGET_UNRESOLVED", format!("{host} has no address")));
        }
        if !self.allow_private {
            // One internal answer refuses them all: a client may try any of them.
            if let Some(internal) = addresses.iter().find(|ip| !is_public(ip)) {
                return Err(not_allowed(host, internal));
            }
        }
        Ok(addresses)
    }
}

fn not_allowed(host: &str, ip: &IpAddr) -> Refusal {
    (
        "WEBHOOK_TARGET_NOT_ALLOWED",
        format!("{host} is an internal address ({ip}); targets must be public"),
    )
}

/// A refusal as the HTTP client's error (found again in its source chain by [`refusal_in`]).
#[derive(Debug, thiserror::Error)]
#[error("{0}: {1}")]
pub struct Refused(pub &'static str, pub String);

impl Resolve for Resolver {
    fn resolve(&self, name: Name) -> Resolving {
        let resolver = self.clone();
        Box::pin(async move {
            let addresses = resolver.addresses(name.as_str()).await.map_err(
                |(code, message)| -> Box<dyn std::error::Error + Send + Sync> {
                    Box::new(Refused(code, message))
                },
            )?;
            // Port 0: reqwest puts the URL's (or the scheme's) port in.
            let addrs: Addrs = Box::new(addresses.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// The refusal of [`Resolver`] behind an HTTP client's error, if that is why it failed.
pub fn refusal_in<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a Refused> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(refused) = error.downcast_ref::<Refused>() {
            return Some(refused);
        }
        current = error.source();
    }
    None
}

/// Parses `url` and checks its form: `http` or `https`, a host, at most 2048 characters.
fn parse(url: &str) -> Result<Url, Refusal> {
    let parsed = Url::parse(url).map_err(|error| ("INVALID_URL", format!("not a URL: {error}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(("INVALID_URL", "the URL must be http or https".into()));
    }
    if parsed.host_str().is_none() {
        return Err(("INVALID_URL", "the URL has no host".into()));
    }
    if url.len() > 2048 {
        return Err(("INVALID_URL", "the URL is longer than 2048 characters".into()));
    }
    Ok(parsed)
}

/// The host's IP when the URL names one literally (no resolver is asked for it).
fn literal_ip(url: &Url) -> Option<IpAddr> {
    let host = url.host_str()?;
    host.trim_start_matches('[').trim_end_matches(']').parse().ok()
}

/// Parses and checks `url` when a subscription is saved: its form, and its host's addresses
/// (resolved with `resolver`).
pub async fn check(url: &str, resolver: &Resolver) -> Result<Url, Refusal> {
    let parsed = parse(url)?;
    if resolver.allow_private {
        return Ok(parsed);
    }
    match literal_ip(&parsed) {
        Some(ip) if !is_public(&ip) => return Err(not_allowed(&ip.to_string(), &ip)),
        Some(_) => {}
        None => {
            resolver.addresses(parsed.host_str().unwrap_or_default()).await?;
        }
    }
    Ok(parsed)
}

/// Parses `url` before a delivery: its form, and a literal IP host checked (a name is checked
/// by the client's [`Resolver`] when it connects).
pub fn check_literal(url: &str, allow_private: bool) -> Result<Url, Refusal> {
    let parsed = parse(url)?;
    match literal_ip(&parsed) {
        Some(ip) if !allow_private && !is_public(&ip) => Err(not_allowed(&ip.to_string(), &ip)),
        _ => Ok(parsed),
    }
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

#[cfg(test)]
mod tests;
