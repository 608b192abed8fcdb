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
use async_nats::jetstream;
use sqlx::PgPool;

/// The test's [`FaultEnv`] (`label`) and a directory for its private NATS server's store.
async fn env_and_nats_store(pool: PgPool, label: &str) -> (FaultEnv, TempDir) {
    let env = FaultEnv::new(pool, label).await;
    (env, TempDir::new(&format!("projectors-{label}-store")))
}

/// A private NATS server with its store in `dir`, a JetStream context on it, and the
/// projectors (started, ready) on it.
async fn projectors_on_a_private_nats(
    env: &FaultEnv,
    dir: &TempDir,
) -> (NatsServer, jetstream::Context, ProjectorsProcess) {
    let nats = NatsServer::start(dir.path()).await;
    let js = connect_jetstream(&nats.url()).await;
    let process = ProjectorsProcess::start(&env.spec(&nats.url()), env.logs.path(), "run").await;
    (nats, js, process)
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn nats_killed_and_restarted_mid_stream_loses_and_doubles_nothing(pool: PgPool) {
    let (env, nats_dir) = env_and_nats_store(pool.clone(), "nats-restart").await;
    let workload = Workload::new(30, 3, 900, Duration::from_millis(12));

    let scenario = async {
        let (mut nats, js, mut process) = projectors_on_a_private_nats(&env, &nats_dir).await;
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

        wait_for_pipeline(&js, &pool, &env.stream, Duration::from_secs(40)).await;
        process.kill_running();
        assert_nothing_missing_nothing_twice(&js, &pool, &env.stream).await;
        let rewinds = count_in_logs(env.logs.path(), "stream holds less than was acknowledged");
        eprintln!("relay rewinds logged: {rewinds}");
    };
    within(Duration::from_secs(150), scenario).await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_wiped_jetstream_store_is_republished_and_nothing_is_applied_twice(pool: PgPool) {
    let (env, nats_dir) = env_and_nats_store(pool.clone(), "nats-wipe").await;
    let first = Workload::new(30, 3, 450, Duration::from_millis(5));
    // After the wipe: new SIMs, so their registrations are accepted.
    let second = Workload {
        first_sim: first.sims,
        commands: 300,
        seed: first.seed.wrapping_add(1000),
        ..first.clone()
    };

    let scenario = async {
        let (mut nats, js, process) = projectors_on_a_private_nats(&env, &nats_dir).await;
        first.run(pool.clone()).await;
        wait_for_pipeline(&js, &pool, &env.stream, Duration::from_secs(40)).await;
        let published_before = events_stored(&pool).await as f64;
        let duplicates_before = process.metric("projector_duplicates_total").await.unwrap();

        // The store is lost: stream, consumer and every acknowledged message.
        nats.kill();
        nats.wipe_store();
        nats.restart().await;
        // Commands keep coming while the relay republishes.
        second.run(pool.clone()).await;
        wait_for_pipeline(&js, &pool, &env.stream, Duration::from_secs(40)).await;
        let rewinds = process.metric("relay_rewinds_total").await.unwrap();
        assert!(rewinds >= 1.0, "the relay should count the rewind ({rewinds})");
        // Every event published before the wipe came again and was skipped, not applied.
        let duplicates = process.metric("projector_duplicates_total").await.unwrap() - duplicates_before;
        assert!(
            duplicates >= published_before,
            "{duplicates} duplicates skipped after republishing {published_before} events"
        );
        let mut process = process;
        process.kill_running();
        assert_nothing_missing_nothing_twice(&js, &pool, &env.stream).await;
    };
    within(Duration::from_secs(150), scenario).await;
}
