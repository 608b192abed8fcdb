//! A bulk job end to end: submitted to the command API, run by its real bulk worker, carried
//! out at the simulator by the connector's real dispatch (through the relay and JetStream), and
//! settled by the worker from the connector's confirmations.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::common::Harness;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;
use testkit::{eventually, CommandApi};
use tokio::sync::watch;

const SIMS: usize = 1_000;

async fn get(commands: &CommandApi, token: &str, path: &str) -> Value {
    let answer = commands.get(path, token).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK, "{path}");
    answer.json().await.unwrap()
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_bulk_suspend_of_1000_sims_ends_with_1000_outcomes_and_the_provider_showing_them_disabled(
    pool: PgPool,
) {
    // No rate limit at the simulator, a generous one in the connector: the test is about every
    // item ending right, not about pacing (bulk_jobs.rs and the connector's own tests are).
    let harness = Harness::new(pool.clone(), SIMS, 0, &[("SYNC_REQUESTS_PER_SECOND", "1000")]).await;
    let iccids = harness.simulator().iccids();
    for iccid in &iccids {
        harness.simulator().set_status(iccid, true);
    }
    let connector = harness.connector().await;
    connector.poller.poll_once().await.unwrap();
    let (_relay_stop, _relay) = harness.start_relay();
    let (stop, shutdown) = watch::channel(false);
    let mut tasks = connector.spawn(shutdown);
    let commands = CommandApi::start_with(pool.clone(), |config| {
        config.bulk.items_per_sec = 500;
        config.bulk.poll = Duration::from_millis(100);
    })
    .await;
    let token = commands.token_for_role("operator").await;

    let accepted = commands
        .post("/bulk-jobs", &token)
        .json(&json!({"action": "suspend", "iccids": &iccids}))
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let accepted: Value = accepted.json().await.unwrap();
    assert_eq!(accepted["total"], SIMS);
    let job_path = format!("/bulk-jobs/{}", accepted["id"].as_str().unwrap());

    // `finished_at`: every item ran; the provider's outcomes settle afterwards.
    let started = std::time::Instant::now();
    eventually(
        Duration::from_secs(300),
        "the job to run and every suspension to settle at the provider",
        || async {
            let job = get(&commands, &token, &job_path).await;
            !job["finished_at"].is_null() && job["provider_pending"] == 0
        },
    )
    .await;
    eprintln!("1,000 suspensions settled in {:?}", started.elapsed());
    let job = get(&commands, &token, &job_path).await;
    for (counter, expected) in [
        ("total", SIMS),
        ("done", SIMS),
        ("applied", SIMS),
        ("refused", 0),
        ("failed", 0),
        ("cancelled", 0),
        ("provider_pending", 0),
        ("provider_completed", SIMS),
        ("provider_failed", 0),
        ("provider_unknown", 0),
    ] {
        assert_eq!(job[counter], expected, "{counter}: {job}");
    }
    assert_eq!(job["status"], "done");

    // 1,000 item outcomes, one per SIM, each applied and completed at the provider.
    let items = get(&commands, &token, &format!("{job_path}/items?page_size=1000")).await;
    let items = items.as_array().unwrap();
    assert_eq!(items.len(), SIMS);
    let mut seen = BTreeSet::new();
    for item in items {
        assert_eq!(
            (item["outcome"].as_str(), item["provider_outcome"].as_str()),
            (Some("applied"), Some("completed")),
            "{item}"
        );
        assert!(item["request_id"].is_string(), "{item}");
        seen.insert(item["iccid"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen, iccids.iter().cloned().collect::<BTreeSet<_>>());

    // The provider's own state: every SIM disabled, each by one request.
    let at_provider = connector.client.all_sims().await.unwrap();
    assert_eq!(at_provider.len(), SIMS);
    let disabled = at_provider
        .iter()
        .filter(|sim| sim.status == Some(once_client::SimState::Disabled))
        .count();
    assert_eq!(disabled, SIMS);
    assert_eq!(harness.count("SuspensionRequested").await, SIMS as i64);
    assert_eq!(harness.count("SuspensionCompleted").await, SIMS as i64);

    let _ = stop.send(true);
    while tasks.join_next().await.is_some() {}
    commands.running.stop().await.unwrap();
    harness.cleanup().await;
}
