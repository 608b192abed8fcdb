//! What the client does with each kind of answer, against a scripted local server: retries,
//! the outcome-unknown rule for top-ups and SMS, token renewal, and decode errors over HTTP.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{assert_top_up_timed_out, http, json, token_answer, Reply, Scripted, Seen};
use once_client::{CallObserver, ClientConfig, ClientError, OnceClient, SmsSubmission};

const ICCID: &str = "8988303000123456789";
const SIM_PATH: &str = "/v1/sims/8988303000123456789";
const TOP_UP_PATH: &str = "/v1/sims/8988303000123456789/topup";
const SIM_JSON: &str = r#"{"iccid":"8988303000123456789","status":"Enabled"}"#;

#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<(&'static str, Option<u16>)>>,
    waits: AtomicUsize,
}

impl CallObserver for Recorder {
    fn call_finished(&self, endpoint: &'static str, status: Option<u16>, _elapsed: Duration) {
        self.calls.lock().unwrap().push((endpoint, status));
    }
    fn rate_limit_waited(&self, _waited: Duration) {
        self.waits.fetch_add(1, Ordering::SeqCst);
    }
}

fn config(base_url: &str) -> ClientConfig {
    ClientConfig {
        requests_per_second: 100,
        timeout: Duration::from_secs(5),
        max_retries: 3,
        min_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        ..ClientConfig::new(base_url, "id", "secret")
    }
}

fn client(server: &Scripted) -> OnceClient {
    OnceClient::new(config(&server.base_url)).unwrap()
}

/// Answers `/oauth/token` with a token and everything else with `api`.
async fn provider(api: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static) -> Scripted {
    Scripted::start(move |seen, earlier| {
        if seen.path() == "/oauth/token" {
            token_answer("token-1")
        } else {
            api(seen, earlier)
        }
    })
    .await
}

#[tokio::test]
async fn the_token_is_fetched_once_with_basic_auth_and_sent_as_bearer() {
    let server = provider(|_, _| Reply::Raw(json(200, SIM_JSON))).await;
    let client = client(&server);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move { client.sim(ICCID).await }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().iccid, ICCID);
    }
    assert_eq!(server.count("POST", "/oauth/token"), 1);
    let seen = server.seen();
    let oauth = seen.iter().find(|s| s.path() == "/oauth/token").unwrap();
    // "id:secret" in Base64.
    assert_eq!(oauth.header("authorization"), Some("Basic aWQ6c2VjcmV0"));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&oauth.body).unwrap(),
        serde_json::json!({"grant_type": "client_credentials"})
    );
    for call in seen.iter().filter(|s| s.path() == SIM_PATH) {
        assert_eq!(call.header("authorization"), Some("Bearer token-1"));
    }
}

/// The real API is `https://api.1nce.com`: the client must speak TLS to an `https` base URL
/// (a reqwest built without a TLS backend refuses the scheme before connecting).
#[tokio::test]
async fn an_https_base_url_is_reached_over_tls() {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("https://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let client = OnceClient::new(ClientConfig {
        max_retries: 0,
        ..config(&base)
    })
    .unwrap();
    let call = tokio::spawn(async move { client.sim(ICCID).await });
    let (mut socket, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
        .await
        .expect("the client never connected to the https base URL")
        .unwrap();
    let mut first = [0u8; 3];
    socket.read_exact(&mut first).await.unwrap();
    // A TLS record of type handshake (22), protocol version 3.x: the ClientHello.
    assert_eq!(
        (first[0], first[1]),
        (0x16, 0x03),
        "not a TLS ClientHello: {first:?}"
    );
    drop(socket);
    assert!(call.await.unwrap().is_err());
}

#[tokio::test]
async fn a_base_url_with_a_path_keeps_it() {
    let server = Scripted::start(|seen, _| match seen.path() {
        "/management-api/oauth/token" => token_answer("t"),
        "/management-api/v1/sims/8988303000123456789" => Reply::Raw(json(200, SIM_JSON)),
        _ => Reply::Raw(json(404, "{}")),
    })
    .await;
    let client = OnceClient::new(config(&format!("{}/management-api/", server.base_url))).unwrap();
    assert_eq!(client.sim(ICCID).await.unwrap().iccid, ICCID);
}

#[tokio::test]
async fn a_401_renews_the_token_once_and_a_second_401_is_unauthorized() {
    let server = Scripted::start(|seen, earlier| match seen.path() {
        "/oauth/token" => token_answer(&format!("token-{}", earlier + 1)),
        _ if seen.header("authorization") == Some("Bearer token-2") => Reply::Raw(json(200, SIM_JSON)),
        _ => Reply::Raw(json(401, r#"{"message":"expired"}"#)),
    })
    .await;
    let client = client(&server);
    assert_eq!(client.sim(ICCID).await.unwrap().iccid, ICCID);
    assert_eq!(server.count("POST", "/oauth/token"), 2);
    assert_eq!(server.count("GET", SIM_PATH), 2);

    let refusing = provider(|_, _| Reply::Raw(json(401, "{}"))).await;
    let client = self::client(&refusing);
    let error = client.sim(ICCID).await.unwrap_err();
    assert!(
        matches!(
            error,
            ClientError::Unauthorized {
                endpoint: "GET /v1/sims/{iccid}"
            }
        ),
        "{error:?}"
    );
    assert_eq!(refusing.count("POST", "/oauth/token"), 2, "renewed exactly once");
    assert_eq!(refusing.count("GET", SIM_PATH), 2, "repeated exactly once");
}

#[tokio::test]
async fn wrong_credentials_are_unauthorized_at_the_token_endpoint() {
    let server = Scripted::start(|_, _| {
        Reply::Raw(json(
            400,
            r#"{"statusCode":400,"errorCode":"BadCredentials","message":"User does not exist."}"#,
        ))
    })
    .await;
    let error = client(&server).sims_page(1, 10).await.unwrap_err();
    assert!(
        matches!(
            error,
            ClientError::Unauthorized {
                endpoint: "POST /oauth/token"
            }
        ),
        "{error:?}"
    );
    assert!(!error.is_retryable());
    assert_eq!(
        server.count("POST", "/oauth/token"),
        1,
        "a refusal is not retried"
    );
    assert_eq!(server.count("GET", "/v1/sims"), 0);
}

#[tokio::test]
async fn gets_are_retried_after_5xx_and_429_until_they_succeed() {
    let server = provider(|_, earlier| match earlier {
        0 => Reply::Raw(http(503, &[("content-type", "text/html")], "<html>busy</html>")),
        1 => Reply::Raw(json(429, r#"{"message":"Too Many Requests"}"#)),
        2 => Reply::Close,
        _ => Reply::Raw(json(200, SIM_JSON)),
    })
    .await;
    let recorder = Arc::new(Recorder::default());
    let client = OnceClient::new(ClientConfig {
        observer: Some(recorder.clone()),
        ..config(&server.base_url)
    })
    .unwrap();
    assert_eq!(client.sim(ICCID).await.unwrap().iccid, ICCID);
    assert_eq!(server.count("GET", SIM_PATH), 4);
    let calls = recorder.calls.lock().unwrap().clone();
    assert_eq!(
        calls,
        vec![
            ("POST /oauth/token", Some(200)),
            ("GET /v1/sims/{iccid}", Some(503)),
            ("GET /v1/sims/{iccid}", Some(429)),
            ("GET /v1/sims/{iccid}", None),
            ("GET /v1/sims/{iccid}", Some(200)),
        ]
    );
}

#[tokio::test]
async fn retries_end_with_the_last_error() {
    let server = provider(|_, _| Reply::Raw(json(500, "{}"))).await;
    let error = client(&server).sim(ICCID).await.unwrap_err();
    assert!(
        matches!(error, ClientError::Server { status: 500, .. }),
        "{error:?}"
    );
    assert!(error.is_retryable());
    assert_eq!(
        server.count("GET", SIM_PATH),
        4,
        "the first attempt and max_retries = 3 more"
    );

    let limited = provider(|_, _| Reply::Raw(json(429, "{}"))).await;
    let error = client(&limited).sim(ICCID).await.unwrap_err();
    assert!(
        matches!(
            error,
            ClientError::RateLimited {
                endpoint: "GET /v1/sims/{iccid}"
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let server = provider(|_, earlier| match earlier {
        0 => Reply::Raw(http(429, &[("retry-after", "1")], "")),
        _ => Reply::Raw(json(200, SIM_JSON)),
    })
    .await;
    let started = Instant::now();
    client(&server).sim(ICCID).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn other_4xx_are_not_retried_and_carry_the_providers_message() {
    let server = provider(|seen, _| match seen.path() {
        TOP_UP_PATH => Reply::Raw(json(400, r#"{"message":"Payment method used is not valid."}"#)),
        SIM_PATH => Reply::Raw(http(
            403,
            &[("content-type", "text/html")],
            "<html>Forbidden</html>",
        )),
        _ => Reply::Raw(json(404, r#"{"message":"SIM not found."}"#)),
    })
    .await;
    let client = client(&server);
    let error = client.top_up(ICCID, Some("cash")).await.unwrap_err();
    match &error {
        ClientError::Rejected {
            endpoint,
            status,
            message,
        } => {
            assert_eq!(*endpoint, "POST /v1/sims/{iccid}/topup");
            assert_eq!(*status, 400);
            assert_eq!(message.as_deref(), Some("Payment method used is not valid."));
        }
        other => panic!("{other:?}"),
    }
    assert!(!error.outcome_unknown() && !error.is_retryable());
    let seen = server.seen();
    let top_up = seen.iter().find(|s| s.path() == TOP_UP_PATH).unwrap();
    assert_eq!(top_up.target, format!("{TOP_UP_PATH}?payment_method=cash"));

    let error = client.sim(ICCID).await.unwrap_err();
    assert!(
        matches!(
            error,
            ClientError::Rejected {
                status: 403,
                message: None,
                ..
            }
        ),
        "{error:?}"
    );
    let error = client.connectivity("8988303000000000000").await.unwrap_err();
    assert!(
        matches!(
            error,
            ClientError::NotFound {
                endpoint: "GET /v1/sims/{iccid}/status"
            }
        ),
        "{error:?}"
    );
    assert_eq!(server.count("POST", TOP_UP_PATH), 1);
    assert_eq!(server.count("GET", SIM_PATH), 1);
}

#[tokio::test]
async fn a_top_up_is_not_repeated_after_a_5xx_and_its_outcome_is_unknown() {
    let server = provider(|_, _| Reply::Raw(json(502, "{}"))).await;
    let error = client(&server).top_up(ICCID, None).await.unwrap_err();
    assert!(
        matches!(error, ClientError::Server { status: 502, .. }),
        "{error:?}"
    );
    assert!(error.outcome_unknown());
    assert_eq!(server.count("POST", TOP_UP_PATH), 1);
}

#[tokio::test]
async fn a_top_up_is_not_repeated_when_the_connection_drops_after_sending() {
    let server = provider(|_, _| Reply::Close).await;
    let error = client(&server).top_up(ICCID, None).await.unwrap_err();
    assert!(
        matches!(
            error,
            ClientError::Transport {
                request_sent: true,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.outcome_unknown());
    assert_eq!(server.count("POST", TOP_UP_PATH), 1);
}

#[tokio::test]
async fn a_top_up_that_times_out_is_not_repeated() {
    let server = provider(|_, _| Reply::After(Duration::from_millis(800), json(201, ""))).await;
    let client = OnceClient::new(ClientConfig {
        timeout: Duration::from_millis(300),
        ..config(&server.base_url)
    })
    .unwrap();
    assert_top_up_timed_out(&client.top_up(ICCID, None).await.unwrap_err());
    assert_eq!(server.count("POST", TOP_UP_PATH), 1);
}

#[tokio::test]
async fn a_get_that_times_out_is_repeated() {
    let server = provider(|_, earlier| match earlier {
        0 => Reply::After(Duration::from_millis(800), json(200, SIM_JSON)),
        _ => Reply::Raw(json(200, SIM_JSON)),
    })
    .await;
    let client = OnceClient::new(ClientConfig {
        timeout: Duration::from_millis(300),
        ..config(&server.base_url)
    })
    .unwrap();
    assert_eq!(client.sim(ICCID).await.unwrap().iccid, ICCID);
    assert_eq!(server.count("GET", SIM_PATH), 2);
}

#[tokio::test]
async fn a_top_up_is_repeated_after_429_and_returns_the_order() {
    let server = provider(|_, earlier| match earlier {
        0 => Reply::Raw(json(429, "{}")),
        _ => Reply::Raw(http(
            201,
            &[("location", "https://api.1nce.com/management-api/v1/orders/1234")],
            "",
        )),
    })
    .await;
    let order = client(&server).top_up(ICCID, None).await.unwrap();
    assert_eq!(
        order.location.as_deref(),
        Some("https://api.1nce.com/management-api/v1/orders/1234")
    );
    assert_eq!(server.count("POST", TOP_UP_PATH), 2);
}

#[tokio::test]
async fn a_top_up_to_an_unreachable_provider_is_repeated_and_certainly_not_carried_out() {
    // A port nobody listens on: bind, learn the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = OnceClient::new(config(&format!("http://127.0.0.1:{port}"))).unwrap();
    let error = client.top_up(ICCID, None).await.unwrap_err();
    // The token call fails first, for the same reason.
    assert!(
        matches!(
            error,
            ClientError::Transport {
                request_sent: false,
                endpoint: "POST /oauth/token",
                ..
            }
        ),
        "{error:?}"
    );
    assert!(!error.outcome_unknown() && error.is_retryable());
}

#[tokio::test]
async fn an_sms_is_sent_once_and_its_id_read_from_the_location() {
    let server = provider(|_, _| {
        Reply::Raw(http(
            201,
            &[("location", "/v1/sims/8988303000123456789/sms/77")],
            "",
        ))
    })
    .await;
    let receipt = client(&server)
        .send_sms(ICCID, &SmsSubmission::text("1234567890", "hello"))
        .await
        .unwrap();
    assert_eq!(receipt.id, Some(77));
    let seen = server.seen();
    let sent = seen
        .iter()
        .find(|s| s.method == "POST" && s.path().ends_with("/sms"))
        .unwrap();
    assert_eq!(sent.header("content-type"), Some("application/json"));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&sent.body).unwrap(),
        serde_json::json!({"source_address": "1234567890", "payload": "hello"})
    );

    let failing = provider(|_, _| Reply::Raw(json(500, "{}"))).await;
    let error = client(&failing)
        .send_sms(ICCID, &SmsSubmission::text("1", "x"))
        .await
        .unwrap_err();
    assert!(error.outcome_unknown());
    assert_eq!(failing.count("POST", "/v1/sims/8988303000123456789/sms"), 1);
}

#[tokio::test]
async fn garbled_answers_are_asked_for_again_then_are_decode_errors() {
    let server = provider(|seen, earlier| match seen.path() {
        SIM_PATH => Reply::Raw(http(
            200,
            &[("content-type", "text/html")],
            "<html><body>Gateway</body></html>",
        )),
        "/v1/sims/8988303000123456789/status" => Reply::Raw(json(200, r#"{"status": "ONLINE", "serv"#)),
        // Cut short once, then whole.
        _ if earlier == 0 => Reply::Raw(json(200, r#"{"volume": 12.5, "total_vol"#)),
        _ => Reply::Raw(json(200, r#"{"volume": 12.5, "total_volume": 500}"#)),
    })
    .await;
    let client = client(&server);
    let error = client.sim(ICCID).await.unwrap_err();
    match &error {
        ClientError::Decode {
            endpoint,
            body_excerpt,
            ..
        } => {
            assert_eq!(*endpoint, "GET /v1/sims/{iccid}");
            assert!(body_excerpt.contains("Gateway"));
        }
        other => panic!("{other:?}"),
    }
    assert!(!error.is_retryable());
    assert_eq!(
        server.count("GET", SIM_PATH),
        4,
        "the first attempt and max_retries = 3 more"
    );
    let error = client.connectivity(ICCID).await.unwrap_err();
    assert!(
        matches!(
            error,
            ClientError::Decode {
                endpoint: "GET /v1/sims/{iccid}/status",
                ..
            }
        ),
        "{error:?}"
    );
    let quota = client.quota(ICCID, once_client::QuotaKind::Data).await.unwrap();
    assert_eq!(quota.remaining, 12_500_000);
}

#[tokio::test]
async fn valid_json_of_the_wrong_shape_is_a_decode_error_at_once() {
    let server = provider(|_, _| Reply::Raw(json(200, r#"{"imsi": "901405100000018"}"#))).await;
    let error = client(&server).sim(ICCID).await.unwrap_err();
    assert!(
        matches!(
            error,
            ClientError::Decode {
                endpoint: "GET /v1/sims/{iccid}",
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        server.count("GET", SIM_PATH),
        1,
        "asking again would give the same answer"
    );
}

#[tokio::test]
async fn the_sim_list_is_walked_to_its_end_and_a_failed_page_fails_the_walk() {
    let page = |from: usize, count: usize| -> String {
        let sims: Vec<String> = (from..from + count)
            .map(|n| format!(r#"{{"iccid":"89883030000000{n:05}"}}"#))
            .collect();
        format!("[{}]", sims.join(","))
    };
    let server = provider(move |seen, _| {
        let headers = |p: &str| -> Vec<u8> {
            let body = match p {
                "1" => page(0, 100),
                "2" => page(100, 100),
                _ => page(200, 50),
            };
            http(
                200,
                &[
                    ("x-total-count", "250"),
                    ("x-total-pages", "3"),
                    ("x-current-page", p),
                    ("x-count-per-page", "100"),
                ],
                &body,
            )
        };
        let p = seen
            .target
            .split("page=")
            .nth(1)
            .and_then(|r| r.split('&').next())
            .unwrap_or("1");
        Reply::Raw(headers(p))
    })
    .await;
    let sims = client(&server).all_sims().await.unwrap();
    assert_eq!(sims.len(), 250);
    assert_eq!(sims[249].iccid, "8988303000000000249");
    let pages: Vec<String> = server
        .seen()
        .iter()
        .filter(|s| s.path() == "/v1/sims")
        .map(|s| s.target.clone())
        .collect();
    assert_eq!(
        pages,
        vec![
            "/v1/sims?page=1&pageSize=100",
            "/v1/sims?page=2&pageSize=100",
            "/v1/sims?page=3&pageSize=100"
        ]
    );

    let broken = provider(move |seen, _| {
        if seen.target.contains("page=2") {
            Reply::Raw(json(200, "[{\"iccid\":"))
        } else {
            Reply::Raw(http(200, &[("x-total-pages", "3")], &page(0, 100)))
        }
    })
    .await;
    let error = client(&broken).all_sims().await.unwrap_err();
    assert!(
        matches!(
            error,
            ClientError::Decode {
                endpoint: "GET /v1/sims",
                ..
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_list_that_ignores_paging_is_not_walked_forever() {
    let server = provider(|_, _| {
        let sims: Vec<String> = (0..100).map(|n| format!(r#"{{"id":{n}}}"#)).collect();
        Reply::Raw(json(200, &format!("[{}]", sims.join(","))))
    })
    .await;
    let messages = client(&server).all_sms(ICCID).await.unwrap();
    assert_eq!(messages.len(), 100);
    assert_eq!(server.count("GET", "/v1/sims/8988303000123456789/sms"), 2);
}

#[tokio::test]
async fn a_label_change_keeps_the_sims_current_status() {
    let server = provider(|seen, _| match seen.method.as_str() {
        "GET" => Reply::Raw(json(
            200,
            r#"{"iccid":"8988303000123456789","status":"Disabled"}"#,
        )),
        _ => Reply::Raw(json(200, "")),
    })
    .await;
    client(&server)
        .update_sim(&once_client::SimUpdate {
            iccid: ICCID.into(),
            label: Some("pump 7".into()),
            imei_lock: None,
            status: None,
        })
        .await
        .unwrap();
    let seen = server.seen();
    let put = seen.iter().find(|s| s.method == "PUT").unwrap();
    assert_eq!(put.path(), SIM_PATH);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&put.body).unwrap(),
        serde_json::json!({"iccid": ICCID, "label": "pump 7", "status": "Disabled"})
    );
}

#[tokio::test]
async fn bad_arguments_are_refused_before_anything_is_sent() {
    let server = provider(|_, _| Reply::Raw(json(200, "[]"))).await;
    let client = client(&server);
    for error in [
        client.sims_page(0, 10).await.unwrap_err(),
        client.sims_page(1, 101).await.unwrap_err(),
        client.sim("../oauth/token").await.unwrap_err(),
        client.sim("").await.unwrap_err(),
    ] {
        assert!(matches!(error, ClientError::Config { .. }), "{error:?}");
    }
    assert!(server.seen().is_empty());
    assert!(OnceClient::new(ClientConfig::new("not a url", "a", "b")).is_err());
    assert!(OnceClient::new(ClientConfig {
        requests_per_second: 0,
        ..ClientConfig::new("http://127.0.0.1:1", "a", "b")
    })
    .is_err());
}
