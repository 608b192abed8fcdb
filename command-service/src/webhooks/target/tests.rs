//! The target check as the dispatcher's client uses it: a name is resolved by [`Resolver`]
//! (here with a seam that answers what the test says), refused when any answer is internal,
//! and the connection goes to exactly the address checked.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;

use super::*;
use crate::webhooks::dispatcher::client;
use crate::webhooks::WebhookSettings;

/// A resolver that answers from `answers` (a name not in it does not resolve), counting lookups.
fn seam(answers: &[(&str, &[IpAddr])], allow_private: bool) -> (Resolver, Arc<AtomicUsize>) {
    let answers: HashMap<String, Vec<IpAddr>> = answers
        .iter()
        .map(|(name, ips)| (name.to_string(), ips.to_vec()))
        .collect();
    let lookups = Arc::new(AtomicUsize::new(0));
    let counted = lookups.clone();
    let lookup: Lookup = Arc::new(move |host: String| {
        counted.fetch_add(1, Ordering::SeqCst);
        let answer = answers.get(&host).cloned();
        Box::pin(async move { answer.ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such name")) })
    });
    (Resolver::with_lookup(lookup, allow_private), lookups)
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// A receiver on 127.0.0.1 answering 204; its port.
async fn receiver() -> u16 {
    let router = Router::new().route("/hook", post(|| async { StatusCode::NO_CONTENT }));
    testkit::bench::serve(router).await.port()
}

#[tokio::test]
async fn a_public_looking_name_answering_an_internal_address_is_never_connected_to() {
    let port = receiver().await;
    for answer in [
        vec![ip("127.0.0.1")],
        vec![ip("10.1.2.3")],
        vec![ip("169.254.169.254")],
        vec![ip("::1")],
        // One internal answer among public ones is enough to refuse.
        vec![ip("93.184.216.34"), ip("127.0.0.1")],
    ] {
        let (resolver, lookups) = seam(&[("hooks.example.com", &answer)], false);
        let client = client(&WebhookSettings::default(), resolver).unwrap();
        let error = client
            .post(format!("http://hooks.example.com:{port}/hook"))
            .send()
            .await
            .expect_err("an internal address must not be reached");
        let refused = refusal_in(&error).unwrap_or_else(|| panic!("{answer:?}: {error:?}"));
        assert_eq!(refused.0, "WEBHOOK_TARGET_NOT_ALLOWED", "{answer:?}");
        assert_eq!(lookups.load(Ordering::SeqCst), 1, "resolved once");
    }
}

#[tokio::test]
async fn the_client_connects_to_exactly_the_address_the_resolver_checked() {
    let port = receiver().await;
    // `receiver.invalid` resolves nowhere but through the seam: a 204 proves the connection
    // went to the checked answer, not to a second lookup.
    let (resolver, lookups) = seam(&[("receiver.invalid", &[ip("127.0.0.1")])], true);
    let client = client(&WebhookSettings::default(), resolver).unwrap();
    for _ in 0..2 {
        let answer = client
            .post(format!("http://receiver.invalid:{port}/hook"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), reqwest::StatusCode::NO_CONTENT);
    }
    assert!(lookups.load(Ordering::SeqCst) >= 1);
    // A name the resolver does not know is unresolved, not looked up elsewhere.
    let error = client
        .post(format!("http://elsewhere.invalid:{port}/hook"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(refusal_in(&error).unwrap().0, "WEBHOOK_TARGET_UNRESOLVED");
}

#[tokio::test]
async fn localhost_and_internal_literals_are_refused_unless_allowed() {
    let strict = Resolver::system(false);
    let (code, message) = check("http://localhost:8080/hook", &strict).await.unwrap_err();
    assert_eq!(code, "WEBHOOK_TARGET_NOT_ALLOWED", "{message}");
    assert!(check("http://localhost:8080/hook", &Resolver::system(true))
        .await
        .is_ok());
    for url in [
        "http://127.0.0.1/hook",
        "http://[::1]:80/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.1/",
        "http://[::ffff:192.168.1.1]/",
    ] {
        assert_eq!(
            check(url, &strict).await.unwrap_err().0,
            "WEBHOOK_TARGET_NOT_ALLOWED",
            "{url}"
        );
        assert_eq!(
            check_literal(url, false).unwrap_err().0,
            "WEBHOOK_TARGET_NOT_ALLOWED",
            "{url}"
        );
        assert!(check_literal(url, true).is_ok(), "{url}");
    }
    assert!(check_literal("http://93.184.216.34/hook", false).is_ok());
    assert_eq!(
        check_literal("ftp://example.com/", false).unwrap_err().0,
        "INVALID_URL"
    );
}
