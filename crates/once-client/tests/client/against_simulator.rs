//! The client against `once-simulator`: a provider that keeps state, enforces the published
//! rate limits, revokes tokens and injects faults on demand.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Days;
use once_client::{
    ClientConfig, ClientError, OnceClient, Priority, QuotaKind, SimState, SimUpdate, SmsSubmission, SmsType,
};
use once_simulator::{Faults, RunningSimulator, Simulator, SimulatorConfig, SlowResponse};

use crate::support::assert_top_up_timed_out;

async fn simulator(sims: usize) -> RunningSimulator {
    Simulator::spawn(SimulatorConfig {
        sims,
        autonomous: false,
        ..Default::default()
    })
    .await
    .expect("the simulator starts")
}

/// A simulator of `sims` SIMs that injects `faults` from the start.
async fn faulty_simulator(sims: usize, faults: Faults) -> RunningSimulator {
    let running = simulator(sims).await;
    running.simulator.set_faults(faults);
    running
}

fn config(running: &RunningSimulator) -> ClientConfig {
    ClientConfig {
        timeout: Duration::from_secs(5),
        min_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_secs(1),
        ..ClientConfig::new(running.base_url(), "simulator", "simulator-secret")
    }
}

fn client(running: &RunningSimulator) -> OnceClient {
    OnceClient::new(config(running)).unwrap()
}

/// A client for injected faults: twenty retries make a call fail only when 21 draws in a row
/// are faults (at a 40 % fault share, 0.4^21 ≈ 4e-9). Ten were not enough: a test of ~30 calls
/// failed once in CI with 11 faults in a row (0.4^11 ≈ 4e-5 a call, more when a cut-short body
/// also costs the pooled connection an attempt).
fn persistent_client(running: &RunningSimulator) -> OnceClient {
    OnceClient::new(ClientConfig {
        max_retries: 20,
        ..config(running)
    })
    .unwrap()
}

/// Runs `call` for each input on a task of its own, with a clone of `client`, all at once; waits
/// for every task and returns their results in input order.
async fn on_tasks<I, T, F>(
    client: &OnceClient,
    inputs: impl IntoIterator<Item = I>,
    call: impl Fn(OnceClient, I) -> F,
) -> Vec<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let tasks: Vec<_> = inputs
        .into_iter()
        .map(|input| tokio::spawn(call(client.clone(), input)))
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

#[tokio::test]
async fn one_token_serves_many_calls() {
    let running = simulator(20).await;
    let iccids = running.simulator.iccids();
    let found = on_tasks(
        &client(&running),
        iccids.iter().take(12).cloned(),
        |client, iccid| async move { client.sim(&iccid).await.map(|sim| sim.iccid) },
    )
    .await;
    for (found, iccid) in found.into_iter().zip(&iccids) {
        assert_eq!(&found.unwrap(), iccid);
    }
    let stats = running.simulator.stats();
    assert_eq!(stats.token_calls(), 1, "{stats:?}");
    assert_eq!(stats.count("GET", "/v1/sims/{iccid}"), 12);
}

#[tokio::test]
async fn a_revoked_token_is_renewed_once() {
    let running = simulator(5).await;
    let client = client(&running);
    let iccid = running.simulator.iccids()[0].clone();
    client.sim(&iccid).await.unwrap();
    running.simulator.revoke_tokens();
    assert_eq!(client.sim(&iccid).await.unwrap().iccid, iccid);
    let stats = running.simulator.stats();
    assert_eq!(stats.token_calls(), 2, "{stats:?}");
    assert_eq!(stats.count_status("GET", "/v1/sims/{iccid}", 401), 1, "{stats:?}");
    assert_eq!(stats.count_status("GET", "/v1/sims/{iccid}", 200), 2, "{stats:?}");
}

#[tokio::test]
async fn wrong_credentials_fail_clearly() {
    let running = simulator(5).await;
    for (id, secret) in [("simulator", "wrong-secret"), ("nobody", "simulator-secret")] {
        let client = OnceClient::new(ClientConfig::new(running.base_url(), id, secret)).unwrap();
        let error = client.sims_page(1, 10).await.unwrap_err();
        assert!(
            matches!(
                error,
                ClientError::Unauthorized {
                    endpoint: "POST /oauth/token"
                }
            ),
            "{id}: {error:?}"
        );
        assert!(error.to_string().contains("POST /oauth/token"), "{error}");
    }
    let stats = running.simulator.stats();
    assert_eq!(stats.token_calls(), 2, "no retries of a refusal: {stats:?}");
    assert_eq!(stats.sims_calls, 0);
}

#[tokio::test]
async fn all_sims_walks_250_sims_over_3_pages() {
    let running = simulator(250).await;
    let sims = client(&running)
        .with_priority(Priority::ListSweep)
        .all_sims()
        .await
        .unwrap();
    let seen: Vec<String> = sims.iter().map(|sim| sim.iccid.clone()).collect();
    assert_eq!(seen.len(), 250);
    assert_eq!(
        seen.iter().cloned().collect::<BTreeSet<_>>(),
        running.simulator.iccids().into_iter().collect::<BTreeSet<_>>()
    );
    assert!(sims.iter().all(|sim| sim.imsi.is_some() && sim.status.is_some()));
    assert_eq!(running.simulator.stats().count("GET", "/v1/sims"), 3);

    let page = client(&running).sims_page(3, 100).await.unwrap();
    assert_eq!(
        (
            page.sims.len(),
            page.total_count,
            page.total_pages,
            page.current_page
        ),
        (50, 250, 3, 3)
    );
}

#[tokio::test]
async fn the_rate_limit_is_kept_by_concurrent_callers() {
    let running = simulator(10).await;
    let iccids = running.simulator.iccids();
    on_tasks(&client(&running), 0..8, |client, task| {
        let iccids = iccids.clone();
        async move {
            // 60 calls in all: tasks 0-3 make 8 each, tasks 4-7 make 7 each.
            let calls = if task < 4 { 8 } else { 7 };
            for call in 0..calls {
                let iccid = &iccids[(task + call) % iccids.len()];
                match call % 3 {
                    0 => drop(client.sim(iccid).await.unwrap()),
                    1 => drop(client.quota(iccid, QuotaKind::Data).await.unwrap()),
                    _ => drop(client.connectivity(iccid).await.unwrap()),
                }
            }
        }
    })
    .await;
    let stats = running.simulator.stats();
    assert_eq!(stats.sims_calls, 60, "{stats:?}");
    // The client grants at most 10 calls in any second (the limiter's own tests); arrivals can
    // bunch by a few milliseconds of scheduling on the way, which the provider's token bucket
    // (a second's worth of burst) absorbs, so one more in a second is not a refusal.
    assert!(stats.max_sims_calls_in_one_second <= 11, "{stats:?}");
    assert_eq!(
        stats.rate_limited, 0,
        "the provider never had to refuse: {stats:?}"
    );
}

#[tokio::test]
async fn gets_succeed_through_injected_429s_and_500s() {
    let running = faulty_simulator(
        10,
        Faults {
            error_429_share: 0.2,
            error_500_share: 0.2,
            latency_ms: 200,
            ..Default::default()
        },
    )
    .await;
    let iccids = running.simulator.iccids();
    let today = running.simulator.now().date_naive();
    on_tasks(
        &persistent_client(&running),
        iccids.into_iter().take(5),
        |client, iccid| async move {
            client.sim(&iccid).await.unwrap();
            client.quota(&iccid, QuotaKind::Sms).await.unwrap();
            client.usage(&iccid, today - Days::new(3), today).await.unwrap();
            client.connectivity(&iccid).await.unwrap();
        },
    )
    .await;
    let stats = running.simulator.stats();
    assert!(stats.injected_faults > 0, "{stats:?}");
    assert!(stats.sims_calls > 20, "faults were retried: {stats:?}");
}

#[tokio::test]
async fn gets_succeed_through_truncated_and_malformed_answers() {
    let running = faulty_simulator(
        250,
        Faults {
            truncated_share: 0.2,
            malformed_share: 0.2,
            ..Default::default()
        },
    )
    .await;
    let client = persistent_client(&running);
    assert_eq!(client.all_sims().await.unwrap().len(), 250);
    // Fifteen SIMs, 33 calls with the pages: at a 40 % fault share none is faulted with a
    // chance of 0.6^33 ≈ 5e-8 (with six, 0.6^15 ≈ 5e-4: it happened once in 200 runs).
    for iccid in running.simulator.iccids().iter().take(15) {
        assert_eq!(&client.sim(iccid).await.unwrap().iccid, iccid);
        client.quota(iccid, QuotaKind::Data).await.unwrap();
    }
    let stats = running.simulator.stats();
    assert!(stats.injected_faults > 0, "{stats:?}");
}

#[tokio::test]
async fn a_top_up_is_not_repeated_after_a_500() {
    let running = simulator(5).await;
    let client = client(&running);
    let iccid = running.simulator.iccids()[0].clone();
    client.sim(&iccid).await.unwrap(); // the token, before faults start
    running.simulator.set_faults(Faults {
        error_500_share: 1.0,
        ..Default::default()
    });
    let error = client.top_up(&iccid, None).await.unwrap_err();
    assert!(
        matches!(error, ClientError::Server { status: 500, .. }),
        "{error:?}"
    );
    assert!(error.outcome_unknown());
    assert_eq!(
        running.simulator.stats().count("POST", "/v1/sims/{iccid}/topup"),
        1
    );
}

#[tokio::test]
async fn a_slow_top_up_is_sent_once_and_carried_out_once() {
    let running = faulty_simulator(
        5,
        Faults {
            slow_response: Some(SlowResponse {
                path_contains: "/topup".into(),
                delay_ms: 1500,
            }),
            ..Default::default()
        },
    )
    .await;
    let client = OnceClient::new(ClientConfig {
        timeout: Duration::from_millis(500),
        ..config(&running)
    })
    .unwrap();
    let iccid = running.simulator.iccids()[0].clone();
    assert_top_up_timed_out(&client.top_up(&iccid, None).await.unwrap_err());
    // The simulator changed state before the slow answer: exactly one order.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(running.simulator.top_ups(&iccid), 1);
}

#[tokio::test]
async fn operator_requests_overtake_queued_background_calls() {
    let running = simulator(30).await;
    let client = client(&running);
    let iccids = running.simulator.iccids();
    client.sim(&iccids[0]).await.unwrap(); // the token, so every later call only waits for slots
    let finished: Arc<Mutex<Vec<(Priority, usize)>>> = Arc::default();
    let mut tasks = Vec::new();
    let mut spawn = |priority: Priority, number: usize| {
        let client = client.with_priority(priority);
        let iccid = iccids[number % iccids.len()].clone();
        let finished = finished.clone();
        tasks.push(tokio::spawn(async move {
            client.sim(&iccid).await.unwrap();
            finished.lock().unwrap().push((priority, number));
        }));
    };
    for number in 0..20 {
        spawn(Priority::Background, number);
    }
    // Let the background calls queue up (a few get their slots meanwhile).
    tokio::time::sleep(Duration::from_millis(300)).await;
    for number in 0..3 {
        spawn(Priority::OperatorRequest, number);
    }
    for task in tasks {
        task.await.unwrap();
    }
    let finished = finished.lock().unwrap().clone();
    let operator_positions: Vec<usize> = finished
        .iter()
        .enumerate()
        .filter(|(_, (priority, _))| *priority == Priority::OperatorRequest)
        .map(|(position, _)| position)
        .collect();
    assert_eq!(operator_positions.len(), 3);
    // Queued at about the 4th slot, they take the next three: well before the 20 background
    // calls, 16 or so of which were still waiting.
    assert!(operator_positions.iter().all(|&p| p < 10), "{finished:?}");
    let background_done_after = finished[operator_positions[2] + 1..]
        .iter()
        .filter(|(priority, _)| *priority == Priority::Background)
        .count();
    assert!(background_done_after >= 10, "{finished:?}");
}

#[tokio::test]
async fn every_call_reads_the_simulators_answers() {
    let running = simulator(5).await;
    let sim = &running.simulator;
    let client = client(&running);
    let iccid = sim.iccids()[1].clone();
    let today = sim.now().date_naive();

    // Usage: the simulator counts bytes, the wire carries MB strings; the client must give the
    // same bytes back.
    sim.add_usage(&iccid, today, 2_803, 2, 1);
    let usage = client.usage(&iccid, today - Days::new(1), today).await.unwrap();
    let day = usage.iter().find(|d| d.date == today).expect("today's usage");
    assert_eq!(day.data.volume_bytes, 2_803);
    assert_eq!((day.sms.volume_rx, day.sms.volume_tx), (2, 1));

    let before = client.quota(&iccid, QuotaKind::Data).await.unwrap();
    assert_eq!(before.total, 500_000_000);
    sim.consume_quota_to(&iccid, once_simulator::QuotaKind::Data, 90.0);
    let after = client.quota(&iccid, QuotaKind::Data).await.unwrap();
    assert_eq!(after.remaining, 50_000_000);

    let order = client.top_up(&iccid, Some("banktransfer")).await.unwrap();
    assert!(order.location.is_some());
    assert_eq!(sim.top_ups(&iccid), 1);

    let receipt = client
        .send_sms(&iccid, &SmsSubmission::text("1234567890", "hello device"))
        .await
        .unwrap();
    let sent = sim.mt_sms(&iccid);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1, "hello device");
    let id = receipt.id.expect("the Location names the SMS");
    assert_eq!(id, sent[0].0);
    assert_eq!(client.sms(&iccid, id).await.unwrap().sms_type, SmsType::Mt);
    let mo_id = sim.receive_mo_sms(&iccid, "hello platform");
    let messages = client.all_sms(&iccid).await.unwrap();
    let mo = messages
        .iter()
        .find(|m| m.id == mo_id)
        .expect("the MO SMS is listed");
    assert_eq!(mo.sms_type, SmsType::Mo);
    assert_eq!(mo.payload.as_deref(), Some("hello platform"));

    client
        .update_sim(&SimUpdate {
            iccid: iccid.clone(),
            label: Some("pump 7".into()),
            imei_lock: None,
            status: Some(SimState::Disabled),
        })
        .await
        .unwrap();
    let updated = client.sim(&iccid).await.unwrap();
    assert_eq!(updated.status, Some(SimState::Disabled));
    assert_eq!(updated.label.as_deref(), Some("pump 7"));

    client.connectivity(&iccid).await.unwrap();
    let events = client.sim_events(&iccid, 1, 10).await.unwrap();
    assert!(events.events.len() as u64 <= events.total_events.max(10));

    let missing = client.sim("8988303000999999999").await.unwrap_err();
    assert!(matches!(missing, ClientError::NotFound { .. }), "{missing:?}");
}
