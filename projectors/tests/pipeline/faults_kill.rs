//! `kill -9` of the real `projectors` process (relay and projector together) at random moments
//! while commands keep arriving: after restarts, nothing is missing and nothing is applied
//! twice — on the stream, in the bookkeeping, in the usage sums, in the read models and in
//! Redis.

use std::time::Duration;

use crate::common::faults::*;
use crate::common::processes::{count_in_logs, ProjectorsProcess};
use crate::common::NATS_URL;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::PgPool;

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn kill_dash_nine_mid_stream_then_restart_loses_and_doubles_nothing(pool: PgPool) {
    let seed: u64 = rand::random();
    eprintln!("seed {seed}");
    let (env, _stream, js) = FaultEnv::on_shared_nats(pool.clone(), "kill").await;
    let spec = env.spec(NATS_URL);
    let workload = Workload {
        seed,
        ..Workload::new(40, 4, 1200, Duration::from_millis(12))
    };
    let iccids = workload.iccids();
    let mut rng = StdRng::seed_from_u64(seed);

    let scenario = async {
        let mut process = ProjectorsProcess::start(&spec, env.logs.path(), "run-0").await;
        let writing = tokio::spawn(workload.run(pool.clone()));
        // Kills at random moments while the commands arrive, and at least three in all (the
        // later ones while the projector catches up).
        let (mut kills, mut busy_kills, mut duplicates) = (0, 0, 0.0);
        while !writing.is_finished() || kills < 3 {
            tokio::time::sleep(Duration::from_millis(rng.random_range(300..1000))).await;
            process.assert_running();
            // Proof that the kill lands in a working process: it applied events since start.
            let applied = process
                .metric("projector_events_applied_total")
                .await
                .unwrap_or(0.0);
            duplicates += process.metric("projector_duplicates_total").await.unwrap_or(0.0);
            process.kill();
            kills += 1;
            if applied > 0.0 && !writing.is_finished() {
                busy_kills += 1;
            }
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..300))).await;
            process = ProjectorsProcess::start(&spec, env.logs.path(), &format!("run-{kills}")).await;
        }
        writing.await.unwrap();
        // Bursts that touch every SIM once, each cut by a kill: a kill after the ack and
        // before the cache write would leave that SIM's entry stale.
        for round in 0..4 {
            let label = format!("final {round}");
            let burst = relabel_all(&pool, &iccids, &label, 4);
            let cut_at = rng.random_range(1..iccids.len() as i64 - 4);
            let killer = async {
                kill_once_applied(&pool, &label, cut_at).await;
                process.kill_running();
            };
            tokio::join!(burst, killer);
            kills += 1;
            process = ProjectorsProcess::start(&spec, env.logs.path(), &format!("run-{kills}")).await;
            // Settled (the killed process's unacknowledged messages redelivered and skipped):
            // Redis must agree with Postgres for every SIM.
            wait_for_projection(&js, &pool, &env.stream, Duration::from_secs(30)).await;
            assert_cache_agrees(&pool, &env.cache().await, &iccids).await;
        }
        let events = events_stored(&pool).await;

        wait_for_pipeline(&js, &pool, &env.stream, Duration::from_secs(40)).await;
        process.assert_running();
        duplicates += process.metric("projector_duplicates_total").await.unwrap_or(0.0);
        let cached = assert_cache_agrees(&pool, &env.cache().await, &iccids).await;
        assert!(cached > 0, "the projector should have filled the cache");
        process.kill();

        assert_nothing_missing_nothing_twice(&js, &pool, &env.stream).await;
        assert!(busy_kills >= 2, "only {busy_kills} kills hit a busy projector");
        let ahead = count_in_logs(env.logs.path(), "stream is ahead of the checkpoint");
        eprintln!(
            "{events} events, {kills} kills ({busy_kills} mid-stream), {duplicates} redeliveries \
             skipped, {ahead} relay restarts found the stream ahead of its checkpoint"
        );
    };
    within(Duration::from_secs(150), scenario).await;
}

/// Returns once the projector has applied `count` of the burst labelled `label`: the kill
/// that follows lands somewhere inside the handling of one of the next events.
async fn kill_once_applied(pool: &PgPool, label: &str, count: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM sims WHERE label LIKE $1")
            .bind(format!("{label} %"))
            .fetch_one(pool)
            .await
            .unwrap();
        if applied >= count {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the projector never applied {count} events of {label:?} ({applied})"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
