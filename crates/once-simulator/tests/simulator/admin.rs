//! The `/_admin` test controls, the ops routes, and the binary.

use std::time::Duration;

use crate::common::{quiet, start, Api};
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test]
async fn admin_routes_drive_the_same_state_as_the_methods() {
    let running = start(quiet(5)).await;
    let api = Api::connect(&running).await;
    let http = reqwest::Client::new();
    let admin = |path: &str| format!("{}/_admin{path}", running.base_url());

    let iccids: Vec<String> = http
        .get(admin("/iccids"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(iccids, running.simulator.iccids());
    let iccid = iccids[0].clone();

    let post = |path: String, body: Value| {
        let http = http.clone();
        async move { http.post(path).json(&body).send().await.unwrap() }
    };
    assert_eq!(
        post(admin(&format!("/sims/{iccid}/status")), json!({"enabled": false}))
            .await
            .status(),
        200
    );
    assert_eq!(
        api.get_json(&format!("/v1/sims/{iccid}")).await["status"],
        "Disabled"
    );

    let r = post(
        admin(&format!("/sims/{iccid}/quota/data/consume")),
        json!({"used_percent": 90.0}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        api.get_json(&format!("/v1/sims/{iccid}")).await["quota_status"]["id"],
        1
    );

    let r = post(
        admin(&format!("/sims/{iccid}/usage")),
        json!({"data_bytes": 5000, "sms_mo": 1}),
    )
    .await;
    assert_eq!(r.status(), 200);

    let r = post(
        admin(&format!("/sims/{iccid}/mo_sms")),
        json!({"payload": "ping"}),
    )
    .await;
    let id = r.json::<Value>().await.unwrap()["id"].as_u64().unwrap();
    assert_eq!(
        api.get_json(&format!("/v1/sims/{iccid}/sms/{id}")).await["sms_type"]["description"],
        "MO"
    );

    let r = post(
        admin(&format!("/sims/{iccid}/imei")),
        json!({"imei": "356938035643809"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        api.get_json(&format!("/v1/sims/{iccid}")).await["imei"],
        "356938035643809"
    );

    let r = post(
        admin(&format!("/sims/{iccid}/connectivity")),
        json!({"operator": "Telia"}),
    )
    .await;
    assert_eq!(r.status(), 200);

    let added: Value = post(admin("/sims"), json!({})).await.json().await.unwrap();
    assert_eq!(running.simulator.iccids().len(), 6);
    let added = added["iccid"].as_str().unwrap().to_owned();
    api.request(Method::POST, &format!("/v1/sims/{added}/topup"))
        .send()
        .await
        .unwrap();
    let count: Value = http
        .get(admin(&format!("/sims/{added}/top_ups")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(count["count"], 1);

    api.send_json(
        Method::POST,
        &format!("/v1/sims/{added}/sms"),
        &json!({"payload": "hi"}),
    )
    .await;
    let mt: Value = http
        .get(admin(&format!("/sims/{added}/mt_sms")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(mt[0]["payload"], "hi");

    let r = post(admin(&format!("/sims/{added}/quota/sms/expire")), json!({})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        api.get_json(&format!("/v1/sims/{added}/quota/sms")).await["volume"],
        0
    );

    assert_eq!(
        post(
            admin("/sims/8988280666999999999/status"),
            json!({"enabled": true})
        )
        .await
        .status(),
        404
    );
    assert_eq!(
        post(admin(&format!("/sims/{iccid}/quota/voice/expire")), json!({}))
            .await
            .status(),
        404
    );

    // Faults: set, read back, refuse nonsense.
    let faults = json!({"error_500_share": 1.0});
    let r = http.put(admin("/faults")).json(&faults).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(api.get("/v1/sims").await.status(), 500);
    let read: Value = http
        .get(admin("/faults"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(read["error_500_share"], 1.0);
    let r = http
        .put(admin("/faults"))
        .json(&json!({"error_429_share": 3.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    http.put(admin("/faults")).json(&json!({})).send().await.unwrap();
    assert_eq!(api.get("/v1/sims").await.status(), 200);

    // Tokens.
    post(admin("/tokens/revoke"), json!({})).await;
    assert_eq!(api.get("/v1/sims").await.status(), 401);

    // Clock and stats.
    let before: Value = http
        .get(admin("/clock"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let after: Value = post(admin("/clock/advance"), json!({"secs": 86_400}))
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(before["now"], after["now"]);
    let stats: Value = http
        .get(admin("/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(stats["total_calls"].as_u64().unwrap() > 5);
    assert!(stats["by_route"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["route"] == "/v1/sims/{iccid}"));
    post(admin("/stats/reset"), json!({})).await;
    assert_eq!(running.simulator.stats().total_calls, 0);
}

#[tokio::test]
async fn ops_routes_answer() {
    let running = start(quiet(3)).await;
    let http = reqwest::Client::new();
    let health = http
        .get(format!("{}/health", running.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready = http
        .get(format!("{}/ready", running.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let api = Api::connect(&running).await;
    api.get("/v1/sims").await;
    let metrics = http
        .get(format!("{}/metrics", running.base_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("simulator_sims 3"), "{metrics}");
    assert!(metrics.contains(r#"route="/v1/sims""#), "{metrics}");
    let missing = http
        .get(format!("{}/nowhere", running.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
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
