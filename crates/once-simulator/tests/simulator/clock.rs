//! The simulated clock: what changes by itself with `autonomous` on, and that nothing does
//! with it off.

use std::collections::HashMap;
use std::time::Duration;

use crate::common::{quiet_with_limits, start, start_connected, Api};
use chrono::{TimeZone, Utc};
use once_simulator::{Simulator, SimulatorConfig};
use serde_json::Value;

fn config(autonomous: bool) -> SimulatorConfig {
    SimulatorConfig {
        sims: 1000,
        autonomous,
        clock_speed: 0.0, // only advance() moves it
        sims_rate_limit_per_sec: 0,
        start_time: Some(Utc.with_ymd_and_hms(2026, 3, 10, 9, 30, 0).unwrap()),
        ..Default::default()
    }
}

async fn all_sims(api: &Api) -> HashMap<String, Value> {
    let mut all = HashMap::new();
    for page in 1..=10 {
        let sims: Vec<Value> = api.get_body(&format!("/v1/sims?page={page}&pageSize=100")).await;
        for sim in sims {
            all.insert(sim["iccid"].as_str().unwrap().to_owned(), sim);
        }
    }
    assert_eq!(all.len(), 1000);
    all
}

/// Decimal megabytes as 1NCE writes them, in bytes (1 MB = 1,000,000 bytes).
fn mb_to_bytes(mb: rust_decimal::Decimal) -> u64 {
    u64::try_from(mb * rust_decimal::Decimal::from(1_000_000)).unwrap()
}

async fn data_left_bytes(api: &Api, iccid: &str) -> u64 {
    let quota = api.get_json(&format!("/v1/sims/{iccid}/quota/data")).await;
    let mb = rust_decimal::Decimal::from_str_exact(&quota["volume"].to_string())
        .or_else(|_| rust_decimal::Decimal::from_scientific(&quota["volume"].to_string()))
        .unwrap();
    mb_to_bytes(mb)
}

#[tokio::test]
async fn with_autonomous_on_advancing_accrues_usage_that_matches_the_quota() {
    let (running, api) = start_connected(config(true)).await;
    let sim = &running.simulator;
    let before = all_sims(&api).await;
    let mut left_before = HashMap::new();
    for iccid in before.keys() {
        left_before.insert(iccid.clone(), data_left_bytes(&api, iccid).await);
    }
    let start_day = sim.now().date_naive();
    sim.advance(Duration::from_secs(2 * 86_400));
    let end_day = sim.now().date_naive();
    let after = all_sims(&api).await;

    let mut with_usage = 0;
    let mut sms_seen = 0;
    let mut expired = 0;
    for iccid in before.keys() {
        let usage = api
            .get_json(&format!(
                "/v1/sims/{iccid}/usage?start_dt={start_day}&end_dt={end_day}"
            ))
            .await;
        let used: u64 = usage["stats"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                let mb = d["data"]["volume"].as_str().unwrap();
                mb_to_bytes(rust_decimal::Decimal::from_str_exact(mb).unwrap())
            })
            .sum();
        sms_seen += usage["stats"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["sms"]["volume"].as_str().unwrap().parse::<u64>().unwrap())
            .sum::<u64>();
        let quota = api.get_json(&format!("/v1/sims/{iccid}/quota/data")).await;
        let expiry = chrono::DateTime::parse_from_rfc3339(quota["expiry_date"].as_str().unwrap()).unwrap();
        if expiry <= sim.now() {
            // Expired meanwhile: whatever was left is gone, usage or not.
            assert_eq!(quota["volume"], 0, "{iccid}");
            expired += 1;
            continue;
        }
        if used > 0 {
            with_usage += 1;
            // Usage lands on the quota byte for byte (no auto top-up is configured).
            let left_after = data_left_bytes(&api, iccid).await;
            assert_eq!(left_before[iccid] - left_after, used, "{iccid}");
        } else {
            assert_eq!(data_left_bytes(&api, iccid).await, left_before[iccid], "{iccid}");
        }
    }
    assert!(with_usage > 100, "a busy fleet uses data: {with_usage} SIMs did");
    assert!(sms_seen > 0, "some devices sent SMS");
    assert!(
        expired < 50,
        "only the few quotas due within two days expired: {expired}"
    );
    let levels_moved = before
        .iter()
        .filter(|(iccid, old)| old["quota_status"]["id"] != after[*iccid]["quota_status"]["id"])
        .count();
    assert!(levels_moved > 0, "some quotas crossed a threshold");
}

#[tokio::test]
async fn with_autonomous_off_nothing_changes_by_itself() {
    let (running, api) = start_connected(config(false)).await;
    let sim = &running.simulator;
    let before = all_sims(&api).await;
    let start_day = sim.now().date_naive();
    sim.advance(Duration::from_secs(30 * 86_400));
    assert!(sim.now().date_naive() > start_day, "the clock itself moves");
    let after = all_sims(&api).await;
    assert_eq!(before, after);
    let end_day = sim.now().date_naive();
    for iccid in sim.iccids().iter().take(50) {
        let usage = api
            .get_json(&format!(
                "/v1/sims/{iccid}/usage?start_dt={start_day}&end_dt={end_day}"
            ))
            .await;
        assert!(usage["stats"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["data"]["volume"] == "0.000000" && d["sms"]["volume"] == "0"));
        let sms: Vec<Value> = api.get_body(&format!("/v1/sims/{iccid}/sms")).await;
        assert!(sms.is_empty());
    }
}

#[tokio::test]
async fn the_running_clock_moves_at_clock_speed() {
    let running = start(SimulatorConfig {
        clock_speed: 3600.0,
        ..quiet_with_limits(10)
    })
    .await;
    let t0 = running.simulator.now();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let moved = running.simulator.now() - t0;
    assert!(moved >= chrono::Duration::minutes(50), "{moved}");
    assert!(moved <= chrono::Duration::minutes(120), "{moved}");
}

#[test]
fn the_same_seed_gives_the_same_fleet() {
    let at = Some(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap());
    let make = |seed| {
        Simulator::new(SimulatorConfig {
            sims: 50,
            seed,
            start_time: at,
            ..Default::default()
        })
    };
    let (a, b, c) = (make(5), make(5), make(6));
    assert_eq!(a.iccids(), b.iccids());
    assert_ne!(a.iccids(), c.iccids());
    assert!(a
        .iccids()
        .iter()
        .all(|i| i.len() == 19 && i.starts_with("8988280666")));
}
