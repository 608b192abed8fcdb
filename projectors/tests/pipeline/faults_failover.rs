//! Relay failover between two real `projectors` processes on one database and stream (both
//! with the relay enabled, as two replicas run): `kill -9` of the one holding the advisory
//! lock, twice, while commands arrive. The other takes over within a few seconds and the
//! stream ends complete, in log order, without duplicates.
//!
//! Both processes also run the projector on the same durable consumer (there is no
//! relay-only mode), so this also shows that two projectors sharing the consumer leave correct
//! read models once settled. (It does not show read-your-writes across two projectors: see
//! "Fault tests" in docs/projectors.md.)

use std::time::Duration;

use crate::common::faults::*;
use crate::common::processes::ProjectorsProcess;
use crate::common::NATS_URL;
use sqlx::PgPool;
use tokio::time::Instant;

/// Which of the two reports holding the relay lock; waits until exactly one does.
async fn leader(processes: &[ProjectorsProcess; 2], within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let a = processes[0].is_relay_leader().await;
        let b = processes[1].is_relay_leader().await;
        match (a, b) {
            (Some(true), Some(false)) => return 0,
            (Some(false), Some(true)) => return 1,
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "no single relay leader within {within:?}: {a:?} {b:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn the_standby_relay_takes_over_when_the_leader_is_killed(pool: PgPool) {
    let (env, _stream, js) = FaultEnv::on_shared_nats(pool.clone(), "failover").await;
    let spec = env.spec(NATS_URL);
    let workload = Workload::new(30, 3, 900, Duration::from_millis(12));

    let scenario = async {
        let mut processes = [
            ProjectorsProcess::start(&spec, env.logs.path(), "a-0").await,
            ProjectorsProcess::start(&spec, env.logs.path(), "b-0").await,
        ];
        let mut active = leader(&processes, Duration::from_secs(10)).await;
        let writing = tokio::spawn(workload.run(pool.clone()));

        for failover in 1..=2 {
            // Let the leader publish for a while, mid-stream.
            tokio::time::sleep(Duration::from_millis(1200)).await;
            let before_kill = stream_messages(&js, &env.stream).await.unwrap_or(0);
            assert!(before_kill > 0, "the leader should have published");
            processes[active].kill();
            let killed_at = Instant::now();
            let standby = 1 - active;
            processes[standby].assert_running();
            let deadline = killed_at + Duration::from_secs(5);
            while processes[standby].is_relay_leader().await != Some(true) {
                assert!(
                    Instant::now() < deadline,
                    "the standby did not take the relay lock within 5 s; log:\n{}",
                    processes[standby].log_tail(3000)
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let took_over = killed_at.elapsed();
            // It publishes: the stream grows again while commands arrive.
            if !writing.is_finished() {
                let deadline = Instant::now() + Duration::from_secs(5);
                while stream_messages(&js, &env.stream).await.unwrap_or(0) <= before_kill {
                    assert!(Instant::now() < deadline, "the new leader does not publish");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            eprintln!("failover {failover}: lock taken over in {took_over:?}");
            // A replacement joins as the standby.
            let label = format!("{}-{failover}", if active == 0 { "a" } else { "b" });
            processes[active] = ProjectorsProcess::start(&spec, env.logs.path(), &label).await;
            assert_eq!(leader(&processes, Duration::from_secs(5)).await, standby);
            active = standby;
        }
        writing.await.unwrap();

        wait_for_pipeline(&js, &pool, &env.stream, Duration::from_secs(40)).await;
        for process in &mut processes {
            process.kill_running();
        }
        assert_nothing_missing_nothing_twice(&js, &pool, &env.stream).await;
    };
    within(Duration::from_secs(150), scenario).await;
}

/// The partitions each of two replicas holds (`projector_partitions_held`).
async fn held(processes: &[&ProjectorsProcess]) -> Vec<Option<f64>> {
    let mut held = Vec::new();
    for process in processes {
        held.push(process.metric("projector_partitions_held").await);
    }
    held
}

async fn wait_for_held(processes: &[&ProjectorsProcess], expected: &[f64], within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let now = held(processes).await;
        if now.iter().zip(expected).all(|(h, e)| *h == Some(*e)) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "partitions held {now:?}, expected {expected:?} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Four partitions and replicas that come and go while commands arrive: one replica holds
/// all four; a second one joins and they hold two each; the first is `kill -9`ed and the
/// second takes all four; then one is paused (SIGSTOP) and the other takes its partitions
/// once the paused one's lock sessions end. Nothing is missing or applied twice.
#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn partitions_are_shared_and_taken_over_when_a_replica_dies(pool: PgPool) {
    let (env, _stream, js) = FaultEnv::on_shared_nats(pool.clone(), "partitions").await;
    let mut spec = env.spec(NATS_URL);
    spec.partitions = 4;
    let workload = Workload::new(40, 3, 1200, Duration::from_millis(10));
    let scenario = async {
        let mut first = ProjectorsProcess::start(&spec, env.logs.path(), "first").await;
        wait_for_held(&[&first], &[4.0], Duration::from_secs(10)).await;
        let writing = tokio::spawn(workload.run(pool.clone()));

        let mut second = ProjectorsProcess::start(&spec, env.logs.path(), "second").await;
        let shared = wait_for_held(&[&first, &second], &[2.0, 2.0], Duration::from_secs(15)).await;
        eprintln!("a joining replica got its share in {shared:?}");

        tokio::time::sleep(Duration::from_millis(800)).await;
        first.kill();
        let taken = wait_for_held(&[&second], &[4.0], Duration::from_secs(15)).await;
        eprintln!("the survivor held every partition {taken:?} after the kill");

        let third = ProjectorsProcess::start(&spec, env.logs.path(), "third").await;
        wait_for_held(&[&second, &third], &[2.0, 2.0], Duration::from_secs(15)).await;
        third.pause();
        // Its heartbeat stops (not counted after 3 s) and its lock sessions end (idle 10 s).
        let taken = wait_for_held(&[&second], &[4.0], Duration::from_secs(30)).await;
        eprintln!("the other replica held every partition {taken:?} after the pause");
        writing.await.unwrap();
        third.resume();

        wait_for_pipeline(&js, &pool, &env.stream, Duration::from_secs(40)).await;
        second.kill_running();
        let mut third = third;
        third.kill();
        assert_nothing_missing_nothing_twice(&js, &pool, &env.stream).await;
    };
    within(Duration::from_secs(170), scenario).await;
}
