//! 100,000 SIMs: modest memory, fast paging. (Its own test binary, so the memory reading is
//! this test's alone.)

use std::time::{Duration, Instant};

use crate::common::{header, quiet, start, Api};
use once_simulator::SimulatorConfig;
use serde_json::Value;

fn resident_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[tokio::test]
async fn a_fleet_of_100k_fits_in_modest_memory_and_pages_fast() {
    let before = resident_kb();
    let running = start(quiet(100_000)).await;
    if let (Some(before), Some(after)) = (before, resident_kb()) {
        let grown_mb = after.saturating_sub(before) / 1024;
        eprintln!("100k SIMs: {grown_mb} MB resident");
        assert!(grown_mb < 150, "100k SIMs took {grown_mb} MB");
    }
    let api = Api::connect(&running).await;
    let started = Instant::now();
    let response = api.get("/v1/sims?page=1000&pageSize=100").await;
    assert_eq!(header(&response, "X-Total-Pages"), "1000");
    let last: Vec<Value> = response.json().await.unwrap();
    assert_eq!(last.len(), 100);
    assert_eq!(last[99]["iccid"], running.simulator.iccids()[99_999].as_str());
    for page in [1, 317, 999] {
        let sims: Vec<Value> = api.get_body(&format!("/v1/sims?page={page}&pageSize=100")).await;
        assert_eq!(sims.len(), 100);
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    // A busy simulated day for the whole fleet stays well under a second's work per day.
    let busy = once_simulator::Simulator::new(SimulatorConfig {
        sims: 100_000,
        clock_speed: 0.0,
        ..Default::default()
    });
    let started = Instant::now();
    busy.advance(Duration::from_secs(86_400));
    eprintln!("one autonomous day for 100k SIMs: {:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(10));
}
