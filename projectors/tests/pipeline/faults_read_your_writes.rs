//! Read your writes, end to end with the real `projectors` process: every command, followed at
//! once by a query carrying its position as `X-Consistency-Token`, sees the command's effect —
//! the label just written and at least the command's version — from several clients at once,
//! with other commands arriving meanwhile.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use crate::common::apis::Apis;
use crate::common::faults::*;
use crate::common::processes::{ProjectorsProcess, ProjectorsSpec};
use crate::common::{NATS_URL, REDIS_URL};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;

const CLIENTS: usize = 4;
const COMMANDS_PER_CLIENT: usize = 50;

fn iccid(client: usize) -> String {
    format!("89883030004{client:08}")
}

/// Each client renames its own SIM again and again; each rename is read back at once with
/// its token and must be visible.
async fn renames_read_back_with_their_tokens(apis: &Apis) {
    let clients = (0..CLIENTS).map(|client| async move {
        let iccid = iccid(client);
        for i in 0..COMMANDS_PER_CLIENT {
            let label = format!("client {client} command {i}");
            let (status, answer) = apis
                .command(
                    Method::PATCH,
                    &format!("/sims/{iccid}"),
                    Some(json!({"label": label})),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{answer}");
            let position = answer["position"].as_i64().expect("a position");
            let version = answer["version"].as_i64().expect("a version");
            let (status, sim) = apis.query(&format!("/sims/{iccid}"), Some(position)).await;
            assert_eq!(status, StatusCode::OK, "token {position}: {sim}");
            assert_eq!(
                sim["label"],
                label.as_str(),
                "token {position} did not see its label"
            );
            assert!(
                sim["version"].as_i64().unwrap() >= version,
                "token {position}: version {} < {version}",
                sim["version"]
            );
            assert!(sim["last_position"].as_i64().unwrap() >= position);
        }
    });
    futures::future::join_all(clients).await;
}

async fn register_clients(apis: &Apis) {
    for client in 0..CLIENTS {
        let (status, body) = apis
            .command(
                Method::POST,
                "/sims",
                Some(json!({"iccid": iccid(client), "imsi": "901405100000009", "label": "new"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
}

/// Other SIMs' commands meanwhile, so the projector is never only waiting for the clients.
fn noise() -> Workload {
    Workload::new(10, 2, 400, Duration::from_millis(15))
}

/// The APIs on the test's database, caching under its Redis prefix, waiting 20 s at most for
/// a consistency token.
async fn apis(pool: &PgPool, env: &FaultEnv) -> Apis {
    Apis::start(pool, REDIS_URL, &env.redis_prefix, Duration::from_secs(20)).await
}

/// The clients registered and the noise started: `renames`, then the noise to its end.
async fn with_noise(apis: &Apis, pool: &PgPool, renames: impl Future<Output = ()>) {
    register_clients(apis).await;
    let noise = tokio::spawn(noise().run(pool.clone()));
    renames.await;
    noise.await.unwrap();
}

/// The clients' renames while `process` is killed twice, 1.5 s apart, and started again each
/// time (as `{label}-1`, `{label}-2`).
async fn renames_while_killed_twice(
    apis: &Apis,
    spec: &ProjectorsSpec,
    logs: &Path,
    process: &mut ProjectorsProcess,
    label: &str,
) {
    let killer = async {
        for kill in 1..=2 {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            process.kill();
            *process = ProjectorsProcess::start(spec, logs, &format!("{label}-{kill}")).await;
        }
    };
    tokio::join!(renames_read_back_with_their_tokens(apis), killer);
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn every_command_is_seen_by_the_query_carrying_its_token(pool: PgPool) {
    let (env, _stream) = FaultEnv::with_shared_stream(pool.clone(), "read-your-writes").await;
    let scenario = async {
        let apis = apis(&pool, &env).await;
        let mut process = ProjectorsProcess::start(&env.spec(NATS_URL), env.logs.path(), "run").await;
        with_noise(&apis, &pool, renames_read_back_with_their_tokens(&apis)).await;
        process.kill_running();
    };
    within(Duration::from_secs(120), scenario).await;
}

/// A projector killed mid-loop: the messages the dead process had been delivered come back
/// only after the ack wait, while the new process gets later ones at once. The projector
/// applies what the log holds between its checkpoint and each message first, so a token never
/// counts as reached before its event is applied.
#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn tokens_hold_across_a_projector_killed_mid_loop(pool: PgPool) {
    let (env, _stream) = FaultEnv::with_shared_stream(pool.clone(), "read-your-writes-kill").await;
    let spec = env.spec(NATS_URL);
    let scenario = async {
        let apis = apis(&pool, &env).await;
        let mut process = ProjectorsProcess::start(&spec, env.logs.path(), "run-0").await;
        let renames = renames_while_killed_twice(&apis, &spec, env.logs.path(), &mut process, "run");
        with_noise(&apis, &pool, renames).await;
        process.kill_running();
    };
    within(Duration::from_secs(120), scenario).await;
}

/// Partitions moving between replicas: two `projectors` processes share 4 partitions; one is
/// killed mid-loop (its partitions move to the other), started again (they move back), killed
/// again. Every token still waits for exactly the events before it: each read sees its write.
#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn tokens_hold_across_partition_moves(pool: PgPool) {
    let (env, _stream) = FaultEnv::with_shared_stream(pool.clone(), "read-your-writes-partitions").await;
    let mut spec = env.spec(NATS_URL);
    spec.partitions = 4;
    let scenario = async {
        let apis = apis(&pool, &env).await;
        let steady = ProjectorsProcess::start(&spec, env.logs.path(), "steady").await;
        let mut moving = ProjectorsProcess::start(&spec, env.logs.path(), "moving-0").await;
        let renames = renames_while_killed_twice(&apis, &spec, env.logs.path(), &mut moving, "moving");
        with_noise(&apis, &pool, renames).await;
        // Settled: two each.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let held = (
                steady.metric("projector_partitions_held").await,
                moving.metric("projector_partitions_held").await,
            );
            if held == (Some(2.0), Some(2.0)) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "partitions held: {held:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut steady = steady;
        steady.kill_running();
        moving.kill();
    };
    within(Duration::from_secs(150), scenario).await;
}
