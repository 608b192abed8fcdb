//! The whole write-to-read path in one process, on the real Postgres, NATS and Redis:
//! command API → event store → relay → JetStream → projector → read models → query API.
//! After a random mix of commands: every read model answers what the audit replay of the
//! event store answers, a rebuild produces the same tables, and every event is on the stream
//! exactly once.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::common::apis::Apis;
use crate::common::{snapshot, Env, PROJECTOR, REDIS_URL};
use projectors::{rebuild, RebuildOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio::sync::watch;

/// The scale: 1,000 SIMs and a random mix of commands, sent by 16 concurrent clients.
const SIMS: usize = 1000;
const COMMANDS: usize = 3000;
const CLIENTS: usize = 16;

fn iccid(n: usize) -> String {
    format!("89883030002{n:08}")
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn commands_reach_read_models_replay_rebuild_and_the_stream_exactly_once(pool: PgPool) {
    let env = Env::new(pool.clone()).await;
    let (stop, shutdown) = watch::channel(false);

    // The relay and the projector, as the projectors process runs them.
    let relay_config = relay::RelayConfig {
        stream: env.stream.clone(),
        subject_prefix: env.prefix.clone(),
        ..Default::default()
    };
    let relay = relay::Relay::new(
        relay_config,
        pool.clone(),
        env.nats.clone(),
        env.metrics.registry(),
    )
    .unwrap();
    let relay_task = {
        let mut shutdown = shutdown.clone();
        tokio::spawn(relay.run(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        }))
    };
    let projector = env.projector().await;
    let projector_task = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move { projector.run(shutdown).await })
    };

    // Both APIs on their real start path, with the same (development) JWT settings.
    // Thousands of events through an unoptimised test build take longer than a client would wait.
    let apis = Apis::start(&pool, REDIS_URL, &env.redis_prefix, Duration::from_secs(120)).await;
    let (commands, queries, token) = (apis.commands, apis.queries, apis.token.clone());
    let client = Client::new();
    let command = |method: Method, path: String, body: Option<Value>| {
        let mut request = client
            .request(method, format!("http://{commands}/api/v1{path}"))
            .bearer_auth(&token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send()
    };

    // Each request: (method, path, body); answered with the position when accepted.
    type Request = (Method, String, Option<Value>);
    let send_all = |requests: Vec<Request>| {
        let command = &command;
        async move {
            let mut results = Vec::with_capacity(requests.len());
            for chunk in requests.chunks(CLIENTS) {
                let answers =
                    futures::future::join_all(chunk.iter().cloned().map(|(method, path, body)| async move {
                        let response = command(method, path, body).await.unwrap();
                        let status = response.status();
                        let position = if status.is_success() {
                            Some(
                                response.json::<Value>().await.unwrap()["position"]
                                    .as_i64()
                                    .unwrap(),
                            )
                        } else {
                            None
                        };
                        (status, position)
                    }))
                    .await;
                results.extend(answers);
            }
            results
        }
    };

    let registrations: Vec<Request> = (0..SIMS)
        .map(|n| {
            let body = json!({"iccid": iccid(n), "imsi": "901405100000001", "label": format!("sim {n}")});
            (Method::POST, "/sims".to_owned(), Some(body))
        })
        .collect();
    let mut last_position = 0_i64;
    for (status, position) in send_all(registrations).await {
        assert_eq!(status, StatusCode::CREATED);
        last_position = last_position.max(position.unwrap());
    }
    let mut rng = StdRng::seed_from_u64(20261129);
    let mix: Vec<Request> = (0..COMMANDS)
        .map(|i| {
            let sim = iccid(rng.random_range(0..SIMS));
            // (method, path after /sims/{sim}, body)
            let (method, action, body) = match rng.random_range(0..7) {
                0 => (Method::PATCH, "", Some(json!({"label": format!("renamed {i}")}))),
                1 => {
                    let body = json!({"tags": [format!("t{}", i % 5)], "imei_lock": i % 2 == 0});
                    (Method::PATCH, "", Some(body))
                }
                2 => (Method::POST, "/activate", None),
                3 => (Method::POST, "/topup", None),
                4 => (
                    Method::POST,
                    "/sms",
                    Some(json!({"payload": format!("hello {i}")})),
                ),
                5 => (Method::POST, "/topup", Some(json!({"quota": "sms"}))),
                _ if i % 3 == 0 => (Method::DELETE, "", None),
                _ => (Method::PATCH, "", Some(json!({"label": null}))),
            };
            (method, format!("/sims/{sim}{action}"), body)
        })
        .collect();
    let mut accepted = 0;
    for (status, position) in send_all(mix).await {
        assert!(
            status.is_success() || status == StatusCode::CONFLICT || status == StatusCode::GONE,
            "unexpected {status}"
        );
        if let Some(position) = position {
            accepted += 1;
            last_position = last_position.max(position);
        }
    }
    assert!(
        accepted > COMMANDS / 3,
        "the mix should mostly be accepted ({accepted})"
    );

    // Read your writes: the last command's position as the consistency token.
    let listed = client
        .get(format!("http://{queries}/api/v1/sims?page_size=10"))
        .bearer_auth(&token)
        .header("x-consistency-token", last_position.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), StatusCode::OK);
    assert_eq!(listed.headers()["x-total-count"], SIMS.to_string().as_str());

    // Every SIM: the projected row equals the replay of the event store.
    for n in 0..SIMS {
        let get = |path: String| {
            let request = client
                .get(format!("http://{queries}/api/v1{path}"))
                .bearer_auth(&token)
                .header("x-consistency-token", last_position.to_string());
            async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
        };
        let detail = get(format!("/sims/{}", iccid(n))).await;
        let state = get(format!("/sims/{}/state", iccid(n))).await;
        assert_eq!(
            detail,
            state,
            "read model and audit replay disagree for {}",
            iccid(n)
        );
    }

    // Every stored event is on the stream exactly once.
    env.wait_until_drained().await;
    let expected: BTreeSet<String> =
        sqlx::query_scalar("SELECT aggregate_type || ':' || aggregate_id || ':' || sequence FROM events")
            .fetch_all(&pool)
            .await
            .unwrap()
            .into_iter()
            .collect();
    let mut stream = env.js.get_stream(&env.stream).await.unwrap();
    let messages = stream.info().await.unwrap().state.messages;
    assert_eq!(messages as usize, expected.len(), "one message per event");
    let mut seen = BTreeSet::new();
    for sequence in 1..=messages {
        let message = stream.get_raw_message(sequence).await.unwrap();
        let id = message
            .headers
            .get("Nats-Msg-Id")
            .expect("a message id")
            .to_string();
        assert!(seen.insert(id.clone()), "{id} published twice");
    }
    assert_eq!(seen, expected);

    // A rebuild from the log produces the same read models.
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(15), projector_task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(15), relay_task)
        .await
        .unwrap()
        .unwrap();
    let live = snapshot(&pool, false).await;
    rebuild(&pool, &RebuildOptions::new(PROJECTOR)).await.unwrap();
    assert_eq!(
        snapshot(&pool, false).await,
        live,
        "a rebuild must equal the live read models"
    );
    env.cleanup().await;
}
