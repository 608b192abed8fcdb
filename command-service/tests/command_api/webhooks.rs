//! Webhooks delivered by the command API's own dispatcher to a receiver in the test (a tiny
//! axum server on 127.0.0.1): order and signatures, the type filter, retries that never skip
//! an undelivered event, `failing` after the attempts allowed and resuming, a restart that
//! resumes from the cursor, and the admin-only routes' refusals.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::routing::post;
use axum::Router;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;
use testkit::eventually;
use webhooks::signature;

use crate::common::{expect_error, iccid, CommandApi, Exchange};

/// What the receiver got: each request's headers and body, and how many to answer 500.
#[derive(Default)]
pub(crate) struct Receiver {
    pub(crate) received: Mutex<Vec<(HeaderMap, Bytes)>>,
    /// Requests still to refuse with 500 (`u32::MAX`: all of them).
    fail: AtomicU32,
}

impl Receiver {
    /// Listens on 127.0.0.1 and returns its URL.
    pub(crate) async fn start(self: &Arc<Self>) -> String {
        let receiver = self.clone();
        let router = Router::new().route(
            "/hook",
            post(move |headers: HeaderMap, body: Bytes| {
                let receiver = receiver.clone();
                async move {
                    receiver.received.lock().unwrap().push((headers, body));
                    let fail = receiver.fail.load(Ordering::SeqCst);
                    if fail == 0 {
                        return AxumStatus::NO_CONTENT;
                    }
                    if fail != u32::MAX {
                        receiver.fail.fetch_sub(1, Ordering::SeqCst);
                    }
                    AxumStatus::INTERNAL_SERVER_ERROR
                }
            }),
        );
        format!("http://{}/hook", testkit::bench::serve(router).await)
    }

    /// The events received with a 2xx answer or not: (position, event type, X-Sim-Event-Id).
    pub(crate) fn events(&self) -> Vec<(i64, String, String)> {
        let received = self.received.lock().unwrap();
        received
            .iter()
            .map(|(headers, body)| {
                let event: Value = serde_json::from_slice(body).unwrap();
                let id = headers["x-sim-event-id"].to_str().unwrap().to_owned();
                (
                    event["position"].as_i64().unwrap(),
                    event["event_type"].as_str().unwrap().to_owned(),
                    id,
                )
            })
            .collect()
    }

    pub(crate) fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }
}

async fn start(pool: PgPool, max_attempts: i32) -> CommandApi {
    CommandApi::start_with(pool, |config| {
        config.webhooks.allow_private = true;
        config.webhooks.poll = Duration::from_millis(50);
        config.webhooks.backoff = Duration::from_millis(50);
        config.webhooks.backoff_max = Duration::from_millis(200);
        config.webhooks.max_attempts = max_attempts;
        config.webhooks.timeout = Duration::from_secs(2);
    })
    .await
}

pub(crate) async fn subscribe(app: &CommandApi, token: &str, url: &str, types: Value) -> (String, String) {
    let created = app
        .post("/webhooks", token)
        .json(&json!({"url": url, "event_types": types, "description": "test"}))
        .expect(StatusCode::CREATED)
        .await;
    assert_eq!(created["status"], "active", "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    (created["id"].as_str().unwrap().to_owned(), secret)
}

/// The positions of the stored events of `types`, in the log's order.
async fn positions(pool: &PgPool, types: &[&str]) -> Vec<i64> {
    sqlx::query_scalar(
        "SELECT position FROM events WHERE event_type = ANY($1) ORDER BY transaction_id, position",
    )
    .bind(types.iter().map(|t| t.to_string()).collect::<Vec<_>>())
    .fetch_all(pool)
    .await
    .unwrap()
}

pub(crate) async fn wait_for(receiver: &Receiver, count: usize) {
    eventually(
        Duration::from_secs(20),
        "the receiver to get its deliveries",
        || async { receiver.count() >= count },
    )
    .await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn events_are_delivered_in_order_signed_and_filtered_by_type(pool: PgPool) {
    let app = start(pool.clone(), 5).await;
    let token = app.admin_token().await;
    let receiver = Arc::new(Receiver::default());
    let url = receiver.start().await;
    let (id, secret) = subscribe(&app, &token, &url, json!(["SimRegistered", "SimLabel*"])).await;
    // The secret is shown once: never in a read.
    let shown = app
        .get(&format!("/webhooks/{id}"), &token)
        .expect(StatusCode::OK)
        .await;
    assert!(shown.get("secret").is_none(), "{shown}");

    for n in 1..=3 {
        app.register_sim(&token, &iccid(n)).await;
    }
    app.patch(&format!("/sims/{}", iccid(2)), &token)
        .json(&json!({"label": "renamed", "tags": ["fleet-7"]}))
        .expect(StatusCode::OK)
        .await;
    let wanted = positions(&pool, &["SimRegistered", "SimLabelChanged"]).await;
    assert_eq!(wanted.len(), 4);
    wait_for(&receiver, 4).await;
    // Nothing else comes (SimTagsChanged is filtered out).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events = receiver.events();
    let got: Vec<i64> = events.iter().map(|e| e.0).collect();
    assert_eq!(
        got, wanted,
        "in the log's order, each once, only the types asked for"
    );
    assert!(events
        .iter()
        .all(|e| e.1 == "SimRegistered" || e.1 == "SimLabelChanged"));

    let now = chrono::Utc::now().timestamp();
    for (headers, body) in receiver.received.lock().unwrap().iter() {
        let header = headers["x-signature"].to_str().unwrap();
        assert!(signature::verify(&secret, header, body, now, 300), "{header}");
        // Another secret, an altered body or an old timestamp (a replay) is refused.
        assert!(!signature::verify("whsec_other", header, body, now, 300));
        assert!(!signature::verify(&secret, header, b"{}", now, 300));
        assert!(!signature::verify(&secret, header, body, now + 3600, 300));
        let body_signature = headers["x-sim-signature"].to_str().unwrap();
        assert_eq!(body_signature, signature::body_signature_header(&secret, body));
        assert!(headers.contains_key("x-sim-delivery") && headers.contains_key("x-sim-timestamp"));
        // The envelope is the NATS message body / GET /events item.
        let event: Value = serde_json::from_slice(body).unwrap();
        for field in [
            "position",
            "aggregate_type",
            "aggregate_id",
            "sequence",
            "event_type",
            "iccid",
            "metadata",
            "payload",
        ] {
            assert!(event.get(field).is_some(), "{field} in {event}");
        }
    }

    let deliveries = app
        .get(&format!("/webhooks/{id}/deliveries?page_size=2"), &token)
        .expect_answer(StatusCode::OK)
        .await;
    assert_eq!(deliveries.header("x-total-count"), "4");
    let rows = deliveries.body.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["position"], wanted[3]);
    assert_eq!(rows[0]["attempts"], 1);
    assert_eq!(rows[0]["last_status"], 204, "the receiver's own status");
    assert!(!rows[0]["delivered_at"].is_null());
    assert!(app
        .metrics()
        .await
        .contains("webhook_deliveries_total{outcome=\"delivered\"} 4"));
    let shown = app
        .get(&format!("/webhooks/{id}"), &token)
        .expect(StatusCode::OK)
        .await;
    assert!(shown["cursor_position"].as_i64().unwrap() >= wanted[3], "{shown}");
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_failed_delivery_is_retried_and_nothing_after_it_is_sent_first(pool: PgPool) {
    let app = start(pool.clone(), 10).await;
    let token = app.admin_token().await;
    let receiver = Arc::new(Receiver::default());
    receiver.fail.store(2, Ordering::SeqCst);
    let url = receiver.start().await;
    let (id, _) = subscribe(&app, &token, &url, json!(["SimRegistered"])).await;
    app.register_sim(&token, &iccid(1)).await;
    app.register_sim(&token, &iccid(2)).await;
    let wanted = positions(&pool, &["SimRegistered"]).await;
    wait_for(&receiver, 4).await;
    let got: Vec<i64> = receiver.events().iter().map(|e| e.0).collect();
    // Two 500s for the first event, then it, then the second: never the second before the first.
    assert_eq!(got, vec![wanted[0], wanted[0], wanted[0], wanted[1]]);
    let ids: HashSet<String> = receiver.events().into_iter().map(|e| e.2).collect();
    assert_eq!(ids.len(), 2, "one event id per event, the same on every attempt");
    let deliveries = app
        .get(&format!("/webhooks/{id}/deliveries"), &token)
        .expect(StatusCode::OK)
        .await;
    let first = &deliveries.as_array().unwrap()[1];
    assert_eq!(first["position"], wanted[0]);
    assert_eq!(first["attempts"], 3, "{first}");
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_subscription_fails_after_the_attempts_allowed_and_resumes_when_made_active(pool: PgPool) {
    let app = start(pool.clone(), 3).await;
    let token = app.admin_token().await;
    let receiver = Arc::new(Receiver::default());
    receiver.fail.store(u32::MAX, Ordering::SeqCst);
    let url = receiver.start().await;
    let (id, _) = subscribe(&app, &token, &url, json!(["*"])).await;
    app.register_sim(&token, &iccid(1)).await;
    eventually(
        Duration::from_secs(20),
        "the subscription to be failing",
        || async {
            app.get(&format!("/webhooks/{id}"), &token)
                .expect(StatusCode::OK)
                .await["status"]
                == "failing"
        },
    )
    .await;
    let failing = app
        .get(&format!("/webhooks/{id}"), &token)
        .expect(StatusCode::OK)
        .await;
    assert!(
        failing["failure_reason"].as_str().unwrap().contains("500"),
        "{failing}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.count(), 3, "no attempt after the third");

    receiver.fail.store(0, Ordering::SeqCst);
    let resumed = app
        .patch(&format!("/webhooks/{id}"), &token)
        .json(&json!({"status": "active"}))
        .expect(StatusCode::OK)
        .await;
    assert!(
        resumed["failure_reason"].is_null() && resumed["attempts"] == 0,
        "{resumed}"
    );
    wait_for(&receiver, 4).await;
    let position = positions(&pool, &["SimRegistered"]).await[0];
    assert_eq!(
        receiver.events()[3].0,
        position,
        "the event it failed at comes first"
    );
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_restarted_dispatcher_resumes_from_the_cursor_without_sending_again(pool: PgPool) {
    let app = start(pool.clone(), 5).await;
    let token = app.admin_token().await;
    let receiver = Arc::new(Receiver::default());
    let url = receiver.start().await;
    subscribe(&app, &token, &url, json!(["SimRegistered"])).await;
    app.register_sim(&token, &iccid(1)).await;
    app.register_sim(&token, &iccid(2)).await;
    wait_for(&receiver, 2).await;
    app.running.stop().await.unwrap();

    // Written while no dispatcher runs: a service without one (WEBHOOK_WORKER=false).
    let writer = CommandApi::start_with(pool.clone(), |config| config.webhooks.worker = false).await;
    let writer_token = writer.admin_token().await;
    writer.register_sim(&writer_token, &iccid(3)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.count(), 2, "no dispatcher, no delivery");

    let _restarted = start(pool.clone(), 5).await;
    wait_for(&receiver, 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got: Vec<i64> = receiver.events().iter().map(|e| e.0).collect();
    assert_eq!(
        got,
        positions(&pool, &["SimRegistered"]).await,
        "each once, in order"
    );
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn only_admins_manage_webhooks_and_bad_targets_are_refused(pool: PgPool) {
    let app = CommandApi::start(pool.clone()).await;
    let admin = app.admin_token().await;
    for role in ["viewer", "operator"] {
        let token = app.token_for_role(role).await;
        let body = json!({"url": "https://example.com/hook", "event_types": ["*"]});
        expect_error(
            app.post("/webhooks", &token).json(&body),
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
        )
        .await;
        expect_error(app.get("/webhooks", &token), StatusCode::FORBIDDEN, "FORBIDDEN").await;
    }
    let refused = [
        ("not a url", "INVALID_URL"),
        ("ftp://example.com/hook", "INVALID_URL"),
        // Loopback and private ranges: not without WEBHOOK_ALLOW_PRIVATE.
        ("http://127.0.0.1:8081/api/v1/users", "WEBHOOK_TARGET_NOT_ALLOWED"),
        ("http://localhost/hook", "WEBHOOK_TARGET_NOT_ALLOWED"),
        ("http://10.1.2.3/hook", "WEBHOOK_TARGET_NOT_ALLOWED"),
        (
            "http://169.254.169.254/latest/meta-data",
            "WEBHOOK_TARGET_NOT_ALLOWED",
        ),
        ("http://[::1]/hook", "WEBHOOK_TARGET_NOT_ALLOWED"),
    ];
    for (url, code) in refused {
        let body = json!({"url": url, "event_types": ["*"]});
        expect_error(
            app.post("/webhooks", &admin).json(&body),
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
        )
        .await;
    }
    for types in [json!([]), json!(["Sim Registered"]), json!(["*Registered"])] {
        let body = json!({"url": "http://93.184.215.14/hook", "event_types": types});
        expect_error(
            app.post("/webhooks", &admin).json(&body),
            StatusCode::UNPROCESSABLE_ENTITY,
            "INVALID_EVENT_TYPES",
        )
        .await;
    }
    assert_eq!(app.count_rows(&["webhook_subscriptions"]).await, vec![0]);

    let body = json!({"url": "http://93.184.215.14/hook", "event_types": ["Quota*"]});
    let created = app
        .post("/webhooks", &admin)
        .json(&body)
        .expect(StatusCode::CREATED)
        .await;
    let id = created["id"].as_str().unwrap();
    let path = format!("/webhooks/{id}");
    expect_error(
        app.patch(&path, &admin).json(&json!({"status": "failing"})),
        StatusCode::UNPROCESSABLE_ENTITY,
        "INVALID_STATUS",
    )
    .await;
    let paused = app
        .patch(&path, &admin)
        .json(&json!({"status": "paused"}))
        .expect(StatusCode::OK)
        .await;
    assert_eq!(paused["status"], "paused");
    let listed = app.get("/webhooks", &admin).expect(StatusCode::OK).await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    app.delete(&path, &admin).expect(StatusCode::NO_CONTENT).await;
    expect_error(app.get(&path, &admin), StatusCode::NOT_FOUND, "WEBHOOK_NOT_FOUND").await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_receiver_that_never_answers_holds_back_no_other_subscription(pool: PgPool) {
    let app = CommandApi::start_with(pool, |config| {
        config.webhooks.allow_private = true;
        config.webhooks.poll = Duration::from_millis(50);
        config.webhooks.timeout = Duration::from_secs(60);
    })
    .await;
    let token = app.admin_token().await;
    // Accepts connections and never answers: each attempt waits for the 60 s timeout.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}/hook", silent.local_addr().unwrap());
    let _held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let receiver = Arc::new(Receiver::default());
    let url = receiver.start().await;
    subscribe(&app, &token, &silent_url, json!(["SimRegistered"])).await;
    subscribe(&app, &token, &url, json!(["SimRegistered"])).await;
    // Each event is delivered to the answering receiver while the other attempt hangs.
    for n in 1..=3 {
        app.register_sim(&token, &iccid(n)).await;
        eventually(
            Duration::from_secs(10),
            "the answering receiver to get the event while the other hangs",
            || async { receiver.count() >= n as usize },
        )
        .await;
    }
    assert_eq!(
        receiver.events().iter().map(|e| e.0).collect::<Vec<_>>(),
        positions(&app.pool, &["SimRegistered"]).await
    );
}
