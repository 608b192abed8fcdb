//! A sync against a provider that answers 20 % of calls with 429 or 500, 200 ms late, and
//! limits calls to 10 per second: it still converges, records nothing twice, and keeps under
//! the limit.

use crate::common::{poll_and_refresh_all, Harness};
use domain::{Quota, QuotaKind, Sim};
use eventstore::EventStore;
use once_simulator::Faults;
use sqlx::PgPool;

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_sync_through_errors_and_latency_converges_without_duplicates(pool: PgPool) {
    let harness = Harness::new(
        pool.clone(),
        30,
        10,
        &[
            ("SYNC_REQUESTS_PER_SECOND", "9"),
            ("SYNC_DETAIL_INTERVAL_SECS", "1"),
        ],
    )
    .await;
    harness.simulator().set_faults(Faults {
        error_429_share: 0.1,
        error_500_share: 0.1,
        latency_ms: 200,
        ..Faults::default()
    });
    let connector = harness.connector().await;
    // A poll may be cut short when a call exhausts its retries; the next one goes on.
    let mut complete = false;
    for _ in 0..5 {
        if let Ok(report) = connector.poller.poll_once().await {
            complete = report.complete;
            if complete {
                break;
            }
        }
    }
    assert!(complete, "a poll reached the end of the list");
    let stats = harness.simulator().stats();
    assert!(stats.injected_faults > 0, "faults were injected: {stats:?}");
    assert!(
        stats.max_sims_calls_in_one_second <= 10,
        "at most 10 calls in any second: {stats:?}"
    );

    // Converged: what the platform holds is what the provider says (read without faults).
    harness.simulator().set_faults(Faults::default());
    let store = EventStore::new(pool.clone());
    for iccid in harness.simulator().iccids() {
        let at_provider = connector.client.sim(&iccid).await.unwrap();
        let sim = store.load::<Sim>(&iccid).await.unwrap().state;
        assert!(sim.is_registered(), "{iccid} registered");
        assert_eq!(
            sim.provider_status().map(|s| s.to_string()),
            at_provider.status.map(|s| s.as_str().to_owned()),
            "{iccid} status"
        );
        let parsed = domain::Iccid::parse(&iccid).unwrap();
        let quota = store
            .load::<Quota>(&domain::quota_aggregate_id(&parsed, QuotaKind::Data))
            .await
            .unwrap()
            .state;
        let provider_quota = connector
            .client
            .quota(&iccid, once_client::QuotaKind::Data)
            .await
            .unwrap();
        assert_eq!(
            (quota.total(), quota.remaining()),
            (provider_quota.total, provider_quota.remaining)
        );
    }
    // Nothing twice: one registration per SIM, one assignment per quota.
    let duplicates: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT aggregate_id, event_type FROM events \
         WHERE event_type IN ('SimRegistered', 'QuotaAssigned') GROUP BY 1, 2 HAVING count(*) > 1) d",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(duplicates, 0);
    assert_eq!(harness.count("SimRegistered").await, 30);
    // And a clean poll afterwards finds nothing to record.
    let head = harness.head().await;
    poll_and_refresh_all(&connector.poller).await;
    harness.assert_nothing_after(head).await;
    harness.cleanup().await;
}
