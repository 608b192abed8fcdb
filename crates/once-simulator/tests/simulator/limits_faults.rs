//! The rate limits, injected faults and the call log.

use std::time::{Duration, Instant};

use crate::common::{
    quiet, quiet_with_limits, start, start_connected, start_quiet_with_iccid, token_request, Api,
};
use futures::future::join_all;
use once_simulator::{Faults, RunningSimulator, SimulatorConfig, SlowResponse};
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test]
async fn a_burst_of_30_gets_429s_with_retry_after_and_every_arrival_is_counted() {
    let (running, api) = start_connected(quiet_with_limits(10)).await; // 10 requests per second
    running.simulator.reset_stats();
    let responses = join_all((0..30).map(|_| api.get("/v1/sims"))).await;
    let ok = responses.iter().filter(|r| r.status() == 200).count();
    let limited: Vec<_> = responses.iter().filter(|r| r.status() == 429).collect();
    assert_eq!(ok + limited.len(), 30);
    // The bucket holds 10 and refills 10/s while the burst arrives (slowly on a busy machine).
    assert!((10..=20).contains(&ok), "{ok} succeeded");
    for response in &limited {
        let retry: u64 = crate::common::header(response, "Retry-After").parse().unwrap();
        assert!(retry >= 1);
    }
    let stats = running.simulator.stats();
    assert_eq!(stats.sims_calls, 30);
    assert!(stats.max_sims_calls_in_one_second >= 25, "{stats:?}");
    assert_eq!(stats.rate_limited, limited.len() as u64);
    assert_eq!(stats.injected_faults, 0);
    assert_eq!(stats.count_status("GET", "/v1/sims", 429), limited.len() as u64);
    assert_eq!(stats.count_status("GET", "/v1/sims", 200), ok as u64);

    // After a second the bucket is full again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(api.get("/v1/sims").await.status(), 200);
}

#[tokio::test]
async fn a_client_keeping_to_ten_per_second_is_never_refused() {
    let (running, api) = start_connected(quiet_with_limits(10)).await;
    running.simulator.reset_stats();
    let started = Instant::now();
    for i in 0..25u32 {
        let due = started + Duration::from_millis(u64::from(i) * 100);
        tokio::time::sleep_until(due.into()).await;
        assert_eq!(api.get("/v1/sims").await.status(), 200, "request {i}");
    }
    let stats = running.simulator.stats();
    assert_eq!(stats.rate_limited, 0);
    // Scheduling jitter can bunch two calls together; the bucket absorbs that.
    assert!(stats.max_sims_calls_in_one_second <= 13, "{stats:?}");
}

/// A quiet fleet of `sims` and a connected client; then `faults` are switched on.
async fn start_faulty(sims: usize, faults: Faults) -> (RunningSimulator, Api) {
    let (running, api) = start_connected(quiet(sims)).await;
    running.simulator.set_faults(faults);
    (running, api)
}

#[tokio::test]
async fn injected_shares_are_roughly_honoured_and_counted_apart_from_the_limit() {
    let faults = Faults {
        error_429_share: 0.2,
        error_500_share: 0.2,
        ..Default::default()
    };
    let (running, api) = start_faulty(5, faults).await;
    running.simulator.reset_stats();
    let n = 400;
    let mut counts = [0usize; 3];
    for _ in 0..n {
        let response = api.get("/v1/sims?pageSize=1").await;
        match response.status().as_u16() {
            200 => counts[0] += 1,
            429 => {
                assert!(response.headers().contains_key("retry-after"));
                counts[1] += 1
            }
            500 => counts[2] += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert!((40..=120).contains(&counts[1]), "{counts:?}");
    assert!((40..=120).contains(&counts[2]), "{counts:?}");
    let stats = running.simulator.stats();
    assert_eq!(stats.injected_faults, (counts[1] + counts[2]) as u64);
    assert_eq!(stats.rate_limited, 0);
}

#[tokio::test]
async fn injected_errors_change_no_state() {
    let (running, api, iccid) = start_quiet_with_iccid(3, 0).await;
    let sim = &running.simulator;
    let before = api.get_json(&format!("/v1/sims/{iccid}")).await;
    let target = if before["status"] == "Enabled" {
        "Disabled"
    } else {
        "Enabled"
    };
    sim.set_faults(Faults {
        error_429_share: 0.5,
        error_500_share: 0.3,
        truncated_share: 0.1,
        malformed_share: 0.1,
        ..Default::default()
    });
    for _ in 0..20 {
        let put = api
            .send_json(
                Method::PUT,
                &format!("/v1/sims/{iccid}"),
                &json!({"status": target, "label": "x"}),
            )
            .await;
        assert!(
            put.status().is_client_error() || put.status().is_server_error(),
            "{}",
            put.status()
        );
        let top_up = api.send(Method::POST, &format!("/v1/sims/{iccid}/topup")).await;
        assert!(!top_up.status().is_success());
        let sms = api.send_sms(&iccid, &json!({"payload": "x"})).await;
        assert!(!sms.status().is_success());
    }
    sim.set_faults(Faults::default());
    assert_eq!(api.get_json(&format!("/v1/sims/{iccid}")).await, before);
    assert_eq!(sim.top_ups(&iccid), 0);
    assert!(sim.mt_sms(&iccid).is_empty());
    assert_eq!(sim.stats().injected_faults, 60);
}

#[tokio::test]
async fn truncated_and_malformed_bodies_do_not_parse() {
    let truncated = Faults {
        truncated_share: 1.0,
        ..Default::default()
    };
    let (running, api) = start_faulty(3, truncated).await;
    let iccid = running.simulator.iccids()[0].clone();
    let response = api.get(&format!("/v1/sims/{iccid}")).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(!text.is_empty() && text.starts_with('{'), "{text}");
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");

    running.simulator.set_faults(Faults {
        malformed_share: 1.0,
        ..Default::default()
    });
    let (mut html, mut broken) = (0, 0);
    for _ in 0..20 {
        let response = api.get(&format!("/v1/sims/{iccid}")).await;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
        match status {
            502 => {
                assert!(text.contains("<html>"));
                html += 1
            }
            200 => broken += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert!(html > 0 && broken > 0, "both kinds appear: {html} {broken}");
}

#[tokio::test]
async fn latency_is_added_before_the_answer() {
    let latency = Faults {
        latency_ms: 250,
        ..Default::default()
    };
    let (_running, api) = start_faulty(2, latency).await;
    let started = Instant::now();
    assert_eq!(api.get("/v1/sims").await.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(250));
}

#[tokio::test]
async fn slow_response_delays_after_the_change_was_made() {
    let slow_top_ups = Faults {
        slow_response: Some(SlowResponse {
            path_contains: "/topup".into(),
            delay_ms: 1500,
        }),
        ..Default::default()
    };
    let (running, api) = start_faulty(3, slow_top_ups).await;
    let sim = running.simulator.clone();
    let iccid = sim.iccids()[1].clone();
    // A client that gives up after 300 ms never hears that its top-up happened…
    let impatient = api
        .request(Method::POST, &format!("/v1/sims/{iccid}/topup"))
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(impatient.unwrap_err().is_timeout());
    // …but it did.
    assert_eq!(sim.top_ups(&iccid), 1);

    let started = Instant::now();
    let patient = api.send(Method::POST, &format!("/v1/sims/{iccid}/topup")).await;
    assert_eq!(patient.status(), 201);
    assert!(started.elapsed() >= Duration::from_millis(1500));
    assert_eq!(sim.top_ups(&iccid), 2);
    // Other paths are not slowed.
    let started = Instant::now();
    assert_eq!(api.get("/v1/sims").await.status(), 200);
    assert!(started.elapsed() < Duration::from_millis(1000));
}

#[tokio::test]
async fn oauth_faults_are_a_separate_switch_and_oauth_has_its_own_limit() {
    let running = start(SimulatorConfig {
        oauth_rate_limit_per_min: 3,
        ..quiet_with_limits(2)
    })
    .await;
    let http = reqwest::Client::new();
    let base = running.base_url();
    let ask = || token_request(&http, &base).send();
    running.simulator.set_faults(Faults {
        error_500_share: 1.0,
        ..Default::default()
    });
    assert_eq!(ask().await.unwrap().status(), 200, "v1 faults leave /oauth alone");
    running.simulator.set_faults(Faults {
        error_500_share: 1.0,
        oauth_faults: true,
        ..Default::default()
    });
    assert_eq!(ask().await.unwrap().status(), 500);
    running.simulator.set_faults(Faults::default());
    assert_eq!(ask().await.unwrap().status(), 200);
    assert_eq!(ask().await.unwrap().status(), 200);
    let limited = ask().await.unwrap();
    assert_eq!(limited.status(), 429, "the fourth token request within a minute");
    assert!(limited.headers().contains_key("retry-after"));
    assert_eq!(running.simulator.stats().rate_limited, 1);
}
