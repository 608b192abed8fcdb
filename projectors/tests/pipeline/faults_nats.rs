//! NATS faults, on a private `nats-server` per test (its own port and store directory; the
//! shared server other tests use is never touched):
//!
//! - the server is killed mid-stream and started again on the same port and store;
//! - the server is stopped, its store wiped (every acknowledged message and the stream itself
//!   gone, as after an OS crash before JetStream's lazy fsync), and started again: the relay
//!   must notice and republish, the projector must apply nothing twice.
//!
//! Afterwards nothing is missing from the stream or the read models and nothing is doubled.

use std::time::Duration;

use crate::common::faults::*;
use crate::common::processes::{count_in_logs, NatsServer, ProjectorsProcess, TempDir};
use sqlx::PgPool;

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn nats_killed_and_restarted_mid_stream_loses_and_doubles_nothing(pool: PgPool) {
    let env = FaultEnv::new(pool.clone(), "nats-restart").await;
    let nats_dir = TempDir::new("projectors-nats-restart-store");
    let workload = Workload {
        first_sim: 0,
        sims: 30,
        writers: 3,
        commands: 900,
        pause: Duration::from_millis(12),
        seed: rand::random(),
    };

    let scenario = async {
        let mut nats = NatsServer::start(nats_dir.path()).await;
        let js = connect_jetstream(&nats.url()).await;
        let mut process = ProjectorsProcess::start(&env.spec(&nats.url()), env.logs.path(), "run").await;
        let writing = tokio::spawn(workload.run(pool.clone()));

        for restart in 0..2 {
            tokio::time::sleep(Duration::from_millis(1000)).await;
            let before = stream_messages(&js, &env.stream).await.unwrap_or(0);
            assert!(
                before > 0,
                "the relay should have published before restart {restart}"
            );
            nats.kill();
            // Commands keep arriving in Postgres while NATS is gone.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            process.assert_running();
            nats.restart().await;
        }
        writing.await.unwrap();

        wait_for_relay(&js, &pool, &env.stream, Duration::from_secs(40)).await;
        wait_for_projection(&js, &pool, &env.stream, Duration::from_secs(40)).await;
        process.assert_running();
        process.kill();
        assert_nothing_missing_nothing_twice(&js, &pool, &env.stream).await;
        let rewinds = count_in_logs(env.logs.path(), "stream holds less than was acknowledged");
        eprintln!("relay rewinds logged: {rewinds}");
    };
    tokio::time::timeout(Duration::from_secs(150), scenario)
        .await
        .expect("the test timed out");
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_wiped_jetstream_store_is_republished_and_nothing_is_applied_twice(pool: PgPool) {
    let env = FaultEnv::new(pool.clone(), "nats-wipe").await;
    let nats_dir = TempDir::new("projectors-nats-wipe-store");
    let first = Workload {
        first_sim: 0,
        sims: 30,
        writers: 3,
        commands: 450,
        pause: Duration::from_millis(5),
        seed: rand::random(),
    };
    // After the wipe: new SIMs, so their registrations are accepted.
    let second = Workload {
        first_sim: first.sims,
        commands: 300,
        seed: first.seed.wrapping_add(1000),
        ..first.clone()
    };

    let scenario = async {
        let mut nats = NatsServer::start(nats_dir.path()).await;
        let js = connect_jetstream(&nats.url()).await;
        let process = ProjectorsProcess::start(&env.spec(&nats.url()), env.logs.path(), "run").await;
        first.run(pool.clone()).await;
        wait_for_relay(&js, &pool, &env.stream, Duration::from_secs(40)).await;
        wait_for_projection(&js, &pool, &env.stream, Duration::from_secs(40)).await;
        let published_before = events_stored(&pool).await as f64;
        let duplicates_before = process.metric("projector_duplicates_total").await.unwrap();

        // The store is lost: stream, consumer and every acknowledged message.
        nats.kill();
        nats.wipe_store();
        nats.restart().await;
        // Commands keep coming while the relay republishes.
        second.run(pool.clone()).await;
        wait_for_relay(&js, &pool, &env.stream, Duration::from_secs(40)).await;
        wait_for_projection(&js, &pool, &env.stream, Duration::from_secs(40)).await;
        let rewinds = process.metric("relay_rewinds_total").await.unwrap();
        assert!(rewinds >= 1.0, "the relay should count the rewind ({rewinds})");
        // Every event published before the wipe came again and was skipped, not applied.
        let duplicates = process.metric("projector_duplicates_total").await.unwrap() - duplicates_before;
        assert!(
            duplicates >= published_before,
            "{duplicates} duplicates skipped after republishing {published_before} events"
        );
        let mut process = process;
        process.assert_running();
        process.kill();
        assert_nothing_missing_nothing_twice(&js, &pool, &env.stream).await;
    };
    tokio::time::timeout(Duration::from_secs(150), scenario)
        .await
        .expect("the test timed out");
}
