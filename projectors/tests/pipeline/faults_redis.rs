//! Redis faults with the real `projectors` process and the query API:
//!
//! - the test's keys flushed again and again while commands arrive (only this test's prefix:
//!   FLUSHDB would hit other tests sharing the server): reads stay correct and Redis never
//!   holds a stale entry once settled;
//! - Redis down (a closed port) for both the projector and the query API: everything is still
//!   applied, and `GET /sims/{iccid}` and `/fleet/summary` answer from Postgres.
//!
//! The query API alone with Redis down is also covered by `query-service/tests/sims.rs`
//! (`detail_without_redis_reads_postgres`).

use std::time::Duration;

use crate::common::apis::Apis;
use crate::common::faults::*;
use crate::common::processes::{free_port, ProjectorsProcess};
use crate::common::{NATS_URL, REDIS_URL};
use readmodel::{load_fleet_summary, load_sim};
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;

/// Deletes every key under `prefix:` (SCAN, not KEYS, not FLUSHDB); returns how many.
async fn flush_prefix(redis: &mut redis::aio::MultiplexedConnection, prefix: &str) -> usize {
    let mut cursor: u64 = 0;
    let mut deleted = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}:*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(redis)
            .await
            .unwrap();
        if !keys.is_empty() {
            let removed: usize = redis::cmd("DEL").arg(&keys).query_async(redis).await.unwrap();
            deleted += removed;
        }
        if next == 0 {
            return deleted;
        }
        cursor = next;
    }
}

/// Every SIM's detail and the fleet summary, without a consistency token (so from Redis when
/// it holds them), equal Postgres.
async fn assert_reads_equal_postgres(apis: &Apis, pool: &PgPool, iccids: &[String]) {
    for iccid in iccids {
        let (status, body) = apis.query(&format!("/sims/{iccid}"), None).await;
        assert_eq!(status, StatusCode::OK, "{iccid}: {body}");
        let expected = serde_json::to_value(load_sim(pool, iccid).await.unwrap().unwrap()).unwrap();
        assert_eq!(
            body, expected,
            "{iccid}: the query API's answer differs from Postgres"
        );
    }
    let (status, summary) = apis.query("/fleet/summary", None).await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    let expected = serde_json::to_value(load_fleet_summary(pool).await.unwrap()).unwrap();
    assert_eq!(summary, expected, "the fleet summary differs from Postgres");
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn flushing_the_cache_mid_stream_leaves_every_read_correct(pool: PgPool) {
    let (env, _stream, js) = FaultEnv::on_shared_nats(pool.clone(), "redis-flush").await;
    let workload = Workload::new(30, 3, 600, Duration::from_millis(10));
    let iccids = workload.iccids();

    let scenario = async {
        let mut redis = redis::Client::open(REDIS_URL)
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .expect("Redis at 127.0.0.1:6379");
        let apis = Apis::start(&pool, REDIS_URL, &env.redis_prefix, Duration::from_secs(20)).await;
        let mut process = ProjectorsProcess::start(&env.spec(NATS_URL), env.logs.path(), "run").await;
        let writing = tokio::spawn(workload.run(pool.clone()));
        let (mut flushes, mut flushed) = (0, 0);
        while !writing.is_finished() {
            tokio::time::sleep(Duration::from_millis(200)).await;
            flushed += flush_prefix(&mut redis, &env.redis_prefix).await;
            flushes += 1;
            // Reads go on meanwhile (from Redis or, after a flush, from Postgres).
            let (status, _) = apis
                .query(&format!("/sims/{}", iccids[flushes % iccids.len()]), None)
                .await;
            assert!(
                status == StatusCode::OK || status == StatusCode::NOT_FOUND,
                "{status}"
            );
        }
        writing.await.unwrap();
        assert!(flushed > 0, "the flushes should have removed cached entries");
        wait_for_pipeline(&js, &pool, &env.stream, Duration::from_secs(40)).await;

        // Settled: what Redis still holds is current, and every read is right.
        assert_cache_agrees(&pool, &env.cache().await, &iccids).await;
        assert_reads_equal_postgres(&apis, &pool, &iccids).await;
        // Flushed once more: the reads fall back to Postgres and are still right.
        flush_prefix(&mut redis, &env.redis_prefix).await;
        assert_reads_equal_postgres(&apis, &pool, &iccids).await;

        process.kill_running();
        assert_each_event_applied_once(&pool).await;
        eprintln!("{flushes} flushes removed {flushed} keys");
    };
    within(Duration::from_secs(150), scenario).await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn with_redis_down_everything_is_applied_and_reads_answer_from_postgres(pool: PgPool) {
    let (env, _stream, js) = FaultEnv::on_shared_nats(pool.clone(), "redis-down").await;
    let workload = Workload::new(20, 2, 300, Duration::ZERO);
    let iccids = workload.iccids();
    // A port nothing listens on: connections are refused at once.
    let down = format!("redis://127.0.0.1:{}", free_port());

    let scenario = async {
        let apis = Apis::start(&pool, &down, &env.redis_prefix, Duration::from_secs(20)).await;
        let mut spec = env.spec(NATS_URL);
        spec.redis_url = down.clone();
        let mut process = ProjectorsProcess::start(&spec, env.logs.path(), "run").await;
        workload.run(pool.clone()).await;
        wait_for_pipeline(&js, &pool, &env.stream, Duration::from_secs(40)).await;

        assert_reads_equal_postgres(&apis, &pool, &iccids).await;
        // With a consistency token too (the last event's position).
        let last: i64 = sqlx::query_scalar("SELECT max(position) FROM events")
            .fetch_one(&pool)
            .await
            .unwrap();
        let (status, body) = apis.query("/fleet/summary", Some(last)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["sims_total"], Value::from(iccids.len()));

        process.kill_running();
        assert_each_event_applied_once(&pool).await;
        assert_sims_equal_replay(&pool).await;
    };
    within(Duration::from_secs(120), scenario).await;
}
