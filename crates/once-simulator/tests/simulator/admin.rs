//! The `/_admin` test controls, the ops routes, and the binary.

use std::time::Duration;

use crate::common::{quiet, start, start_connected, Api};
use once_simulator::RunningSimulator;
use reqwest::{Method, Response};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

/// The routes of one simulator below a prefix, without auth: `/_admin` or the ops routes.
struct Unauthenticated {
    http: reqwest::Client,
    base: String,
}

impl Unauthenticated {
    fn new(running: &RunningSimulator, prefix: &str) -> Self {
        let base = format!("{}{prefix}", running.base_url());
        Self {
            http: reqwest::Client::new(),
            base,
        }
    }

    async fn get(&self, path: &str) -> Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    /// GET whose JSON answer is parsed as `T`, whatever the status.
    async fn get_body<T: DeserializeOwned>(&self, path: &str) -> T {
        self.get(path).await.json().await.unwrap()
    }

    async fn send_json(&self, method: Method, path: &str, body: &Value) -> Response {
        self.http
            .request(method, format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    async fn post(&self, path: &str, body: Value) -> Response {
        self.send_json(Method::POST, path, &body).await
    }

    async fn put(&self, path: &str, body: Value) -> Response {
        self.send_json(Method::PUT, path, &body).await
    }
}

#[tokio::test]
async fn the_portal_control_changes_label_and_imei_lock() {
    let (running, _api) = start_connected(quiet(3)).await;
    let admin = Unauthenticated::new(&running, "/_admin");
    let iccid = running.simulator.iccids()[1].clone();
    let changed = admin
        .post(
            &format!("/sims/{iccid}/details"),
            json!({"label": "portal", "imei_lock": true}),
        )
        .await;
    assert_eq!(changed.status(), 200);
    assert_eq!(
        running.simulator.details(&iccid),
        (Some("portal".to_owned()), true)
    );
    let unknown = admin
        .post("/sims/8988280666999999999/details", json!({"label": "x"}))
        .await;
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn admin_routes_drive_the_same_state_as_the_methods() {
    let (running, api) = start_connected(quiet(5)).await;
    let admin = Unauthenticated::new(&running, "/_admin");

    let iccids: Vec<String> = admin.get_body("/iccids").await;
    assert_eq!(iccids, running.simulator.iccids());
    let iccid = iccids[0].clone();
    let sim = format!("/v1/sims/{iccid}");

    // Each control answers 200, then the provider API shows its effect where there is one.
    for (control, body, shown) in [
        (
            "status",
            json!({"enabled": false}),
            Some(("/status", json!("Disabled"))),
        ),
        (
            "quota/data/consume",
            json!({"used_percent": 90.0}),
            Some(("/quota_status/id", json!(1))),
        ),
        ("usage", json!({"data_bytes": 5000, "sms_mo": 1}), None),
    ] {
        let path = format!("/sims/{iccid}/{control}");
        assert_eq!(admin.post(&path, body).await.status(), 200, "{path}");
        if let Some((pointer, expected)) = shown {
            assert_eq!(
                api.get_json(&sim).await.pointer(pointer),
                Some(&expected),
                "{path}"
            );
        }
    }

    let r = admin
        .post(&format!("/sims/{iccid}/mo_sms"), json!({"payload": "ping"}))
        .await;
    let id = r.json::<Value>().await.unwrap()["id"].as_u64().unwrap();
    assert_eq!(
        api.get_json(&format!("{sim}/sms/{id}")).await["sms_type"]["description"],
        "MO"
    );

    let r = admin
        .post(&format!("/sims/{iccid}/imei"), json!({"imei": "356938035643809"}))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(api.get_json(&sim).await["imei"], "356938035643809");

    let r = admin
        .post(
            &format!("/sims/{iccid}/connectivity"),
            json!({"operator": "Telia"}),
        )
        .await;
    assert_eq!(r.status(), 200);

    let added: Value = admin.post("/sims", json!({})).await.json().await.unwrap();
    assert_eq!(running.simulator.iccids().len(), 6);
    let added = added["iccid"].as_str().unwrap().to_owned();
    api.send(Method::POST, &format!("/v1/sims/{added}/topup")).await;
    let count: Value = admin.get_body(&format!("/sims/{added}/top_ups")).await;
    assert_eq!(count["count"], 1);

    api.send_sms(&added, &json!({"payload": "hi"})).await;
    let mt: Value = admin.get_body(&format!("/sims/{added}/mt_sms")).await;
    assert_eq!(mt[0]["payload"], "hi");

    let r = admin
        .post(&format!("/sims/{added}/quota/sms/expire"), json!({}))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        api.get_json(&format!("/v1/sims/{added}/quota/sms")).await["volume"],
        0
    );

    for (path, body) in [
        (
            "/sims/8988280666999999999/status".to_owned(),
            json!({"enabled": true}),
        ),
        (format!("/sims/{iccid}/quota/voice/expire"), json!({})),
    ] {
        assert_eq!(admin.post(&path, body).await.status(), 404, "{path}");
    }

    // Faults: set, read back, refuse nonsense.
    let r = admin.put("/faults", json!({"error_500_share": 1.0})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(api.get("/v1/sims").await.status(), 500);
    let read: Value = admin.get_body("/faults").await;
    assert_eq!(read["error_500_share"], 1.0);
    let r = admin.put("/faults", json!({"error_429_share": 3.0})).await;
    assert_eq!(r.status(), 422);
    admin.put("/faults", json!({})).await;
    assert_eq!(api.get("/v1/sims").await.status(), 200);

    // Tokens.
    admin.post("/tokens/revoke", json!({})).await;
    assert_eq!(api.get("/v1/sims").await.status(), 401);

    // Clock and stats.
    let before: Value = admin.get_body("/clock").await;
    let after: Value = admin
        .post("/clock/advance", json!({"secs": 86_400}))
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(before["now"], after["now"]);
    let stats: Value = admin.get_body("/stats").await;
    assert!(stats["total_calls"].as_u64().unwrap() > 5);
    assert!(stats["by_route"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["route"] == "/v1/sims/{iccid}"));
    admin.post("/stats/reset", json!({})).await;
    assert_eq!(running.simulator.stats().total_calls, 0);
}

#[tokio::test]
async fn ops_routes_answer() {
    let running = start(quiet(3)).await;
    let ops = Unauthenticated::new(&running, "");
    assert_eq!(ops.get("/health").await.status(), 200);
    assert_eq!(ops.get("/ready").await.status(), 200);
    let api = Api::connect(&running).await;
    api.get("/v1/sims").await;
    let metrics = ops.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("simulator_sims 3"), "{metrics}");
    assert!(metrics.contains(r#"route="/v1/sims""#), "{metrics}");
    assert_eq!(ops.get("/nowhere").await.status(), 404);
}

/// Kills the child on drop, even when the test panics.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_binary_serves_from_environment_configuration() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _child = Child(
        std::process::Command::new(env!("CARGO_BIN_EXE_once-simulator"))
            .env("SIMULATOR_ADDR", format!("127.0.0.1:{port}"))
            .env("SIMULATOR_SIMS", "42")
            .env("SIMULATOR_AUTONOMOUS", "false")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..100 {
        if http
            .get(format!("{base}/health"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "the binary came up");
    let token = crate::common::token(&http, &base).await;
    let response = http
        .get(format!("{base}/v1/sims"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(crate::common::header(&response, "X-Total-Count"), "42");
}
