//! The bulk worker killed for real (SIGKILL of the command API's binary, no shutdown code run)
//! in the middle of a job: another process takes the job over once the dead worker's leases
//! run out, and no SIM gets its command twice.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;
use testkit::eventually;

use crate::bulk_jobs::{finished, job, register, submit};
use crate::common::CommandApi;

/// The command API's binary, killed when dropped (even when the test fails).
struct Process(Child);

impl Process {
    async fn start(pool: &PgPool) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_command-service"))
            .env("DATABASE_URL", testkit::database_url(pool).await)
            .env("COMMAND_ADDR", format!("127.0.0.1:{port}"))
            .env("APP_ENV", "test")
            .env("BULK_ITEMS_PER_SEC", "20")
            .env("BULK_LEASE_SECS", "2")
            .env("RULE_ENGINE", "false")
            .env("WEBHOOK_WORKER", "false")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the command-service binary");
        let process = Self(child);
        let health = format!("http://127.0.0.1:{port}/health");
        eventually(Duration::from_secs(30), "the binary to answer", || async {
            reqwest::get(&health).await.is_ok_and(|r| r.status().is_success())
        })
        .await;
        process
    }

    fn kill(&mut self) {
        // `Child::kill` is SIGKILL on Unix.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_worker_killed_mid_job_is_taken_over_and_applies_no_item_twice(pool: PgPool) {
    // The API in this process runs no worker: the binary's is the only one at first.
    let app = CommandApi::start_with(pool.clone(), |config| config.bulk.worker = false).await;
    let token = app.token_for_role("operator").await;
    let sims = register(&app, &token, 1..=40).await;
    let mut worker = Process::start(&pool).await;
    let id = submit(&app, &token, json!({"action": "activate", "iccids": &sims})).await;
    eventually(Duration::from_secs(30), "some items to run", || async {
        job(&app, &token, &id).await["done"].as_i64().unwrap() >= 5
    })
    .await;
    worker.kill();
    let at_kill = job(&app, &token, &id).await;
    assert!(
        at_kill["done"].as_i64().unwrap() < 40,
        "killed mid-job: {at_kill}"
    );
    let claimed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM bulk_job_items WHERE job_id = $1 AND outcome IS NULL AND lease_owner IS NOT NULL",
    )
    .bind(uuid::Uuid::parse_str(&id).unwrap())
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        claimed > 0,
        "the dead worker still holds a claim on items it never ran"
    );

    // A new process (its own worker) finishes the job once the dead worker's leases end.
    let takeover = Process::start(&pool).await;
    let done = finished(&app, &token, &id).await;
    assert_eq!(
        (
            done["status"].as_str(),
            done["applied"].as_i64(),
            done["failed"].as_i64()
        ),
        (Some("done"), Some(40), Some(0)),
        "{done}"
    );
    assert_eq!(
        app.count_events("ActivationRequested").await,
        40,
        "one request per SIM"
    );
    let twice: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT iccid FROM events WHERE event_type = 'ActivationRequested' \
         GROUP BY iccid HAVING count(*) > 1) twice",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(twice, 0);
    drop(takeover);
}
