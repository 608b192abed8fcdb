//! Bulk jobs run by the command API's own worker: every action, refusals with the domain's
//! code, provider outcomes, idempotency (of submissions, and of items across a restart),
//! cancel and dry runs.

use std::time::Duration;

use crate::common::{iccid, CommandApi, Exchange};
use domain::sim::{Sim, SimCommand};
use eventstore::{CommandContext, EventMetadata};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;
use testkit::eventually;
use uuid::Uuid;

/// The command API with a worker running `rate` items per second, looking for work often,
/// and leases short enough for a restart test.
pub async fn start(pool: PgPool, rate: u32) -> (CommandApi, String) {
    let app = start_app(pool, rate).await;
    let token = app.token_for_role("operator").await;
    (app, token)
}

async fn start_app(pool: PgPool, rate: u32) -> CommandApi {
    CommandApi::start_with(pool, |config| {
        config.bulk.items_per_sec = rate;
        config.bulk.poll = Duration::from_millis(100);
        config.bulk.lease = Duration::from_secs(2);
    })
    .await
}

/// Submits `body` and returns the job's id.
pub async fn submit(app: &CommandApi, token: &str, body: Value) -> String {
    let accepted = app
        .post("/bulk-jobs", token)
        .json(&body)
        .expect(StatusCode::ACCEPTED)
        .await;
    accepted["id"].as_str().unwrap().to_owned()
}

pub async fn job(app: &CommandApi, token: &str, id: &str) -> Value {
    app.get(&format!("/bulk-jobs/{id}"), token)
        .expect(StatusCode::OK)
        .await
}

/// Waits until the job has finished (done or cancelled, nothing left to settle).
pub async fn finished(app: &CommandApi, token: &str, id: &str) -> Value {
    eventually(Duration::from_secs(30), "the bulk job to finish", || async {
        !job(app, token, id).await["finished_at"].is_null()
    })
    .await;
    job(app, token, id).await
}

/// The job's items, by ICCID: (outcome, code, provider outcome).
pub async fn outcomes(app: &CommandApi, token: &str, id: &str) -> Vec<(String, Value, Value, Value)> {
    let items = app
        .get(&format!("/bulk-jobs/{id}/items?page_size=1000"), token)
        .expect(StatusCode::OK)
        .await;
    items
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let iccid = i["iccid"].as_str().unwrap().to_owned();
            (
                iccid,
                i["outcome"].clone(),
                i["code"].clone(),
                i["provider_outcome"].clone(),
            )
        })
        .collect()
}

pub async fn register(app: &CommandApi, token: &str, sims: impl IntoIterator<Item = u32>) -> Vec<String> {
    let mut registered = Vec::new();
    for n in sims {
        registered.push(
            app.register_sim(token, &iccid(n)).await["aggregate_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    registered
}

async fn sim(app: &CommandApi, iccid: &str) -> Sim {
    app.state.store.load::<Sim>(iccid).await.unwrap().state
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn every_action_is_applied_and_refusals_carry_the_domains_code(pool: PgPool) {
    let (app, token) = start(pool.clone(), 1000).await;
    let sims = register(&app, &token, 1..=3).await;
    let unknown = iccid(99);

    // Activate: applied for registered SIMs, refused with SIM_NOT_FOUND for the stranger.
    let id = submit(
        &app,
        &token,
        json!({"action": "activate", "iccids": [&sims[0], &sims[1], &unknown]}),
    )
    .await;
    let done = finished(&app, &token, &id).await;
    assert_eq!(done["status"], "done");
    assert_eq!(
        (done["total"].as_i64(), done["done"].as_i64()),
        (Some(3), Some(3))
    );
    assert_eq!(
        (done["applied"].as_i64(), done["refused"].as_i64()),
        (Some(2), Some(1))
    );
    assert_eq!(done["created_by"], "user:operator-user");
    assert_eq!(done["provider_pending"], 2);
    let items = outcomes(&app, &token, &id).await;
    assert_eq!(items[0].1, "applied");
    assert_eq!(items[0].3, "pending");
    assert_eq!(
        (items[2].1.as_str(), items[2].2.as_str()),
        (Some("refused"), Some("SIM_NOT_FOUND"))
    );
    assert_eq!(app.count_events("ActivationRequested").await, 2);

    // The connector confirms the first activation and fails the second: the items show it.
    let request_of = |sim: Sim| match sim.pending_change() {
        Some(change) => change.request_id,
        None => panic!("an activation is pending"),
    };
    for (n, confirm) in [(0, true), (1, false)] {
        let request_id = request_of(sim(&app, &sims[n]).await);
        let at = chrono::Utc::now();
        let command = if confirm {
            SimCommand::ConfirmActivation { request_id, at }
        } else {
            SimCommand::FailActivation {
                request_id,
                reason: "provider said no".into(),
                at,
            }
        };
        let ctx = CommandContext::new(EventMetadata::new("connector:test"));
        app.state
            .store
            .execute::<Sim>(&sims[n], &sims[n], command, &ctx)
            .await
            .unwrap();
    }
    eventually(Duration::from_secs(10), "the provider outcomes", || async {
        let job = job(&app, &token, &id).await;
        job["provider_completed"] == 1 && job["provider_failed"] == 1 && job["provider_pending"] == 0
    })
    .await;
    let items = outcomes(&app, &token, &id).await;
    assert_eq!(
        (items[0].3.as_str(), items[1].3.as_str()),
        (Some("completed"), Some("failed"))
    );

    // Suspend: the active SIM is suspended; the one whose activation failed is refused.
    let id = submit(
        &app,
        &token,
        json!({"action": "suspend", "iccids": [&sims[0], &sims[1]]}),
    )
    .await;
    finished(&app, &token, &id).await;
    let items = outcomes(&app, &token, &id).await;
    assert_eq!(items[0].1, "applied");
    assert_eq!(
        (items[1].1.as_str(), items[1].2.as_str()),
        (Some("refused"), Some("SIM_NOT_ACTIVE"))
    );

    // Labels and tags.
    let all = json!(&sims);
    for body in [
        json!({"action": "set_label", "iccids": all, "params": {"label": "pump"}}),
        json!({"action": "add_tags", "iccids": all, "params": {"tags": ["fleet-7", "north"]}}),
        json!({"action": "remove_tags", "iccids": all, "params": {"tags": ["north"]}}),
    ] {
        let id = submit(&app, &token, body).await;
        assert_eq!(finished(&app, &token, &id).await["applied"], 3);
    }
    for iccid in &sims {
        let state = sim(&app, iccid).await;
        assert_eq!(state.label(), Some("pump"));
        assert_eq!(state.tags(), ["fleet-7"]);
    }

    // Top-up, SMS and sync: requests recorded, one per SIM.
    let id = submit(
        &app,
        &token,
        json!({"action": "top_up", "iccids": all, "params": {"quota": "sms"}}),
    )
    .await;
    assert_eq!(finished(&app, &token, &id).await["applied"], 3);
    assert_eq!(app.count_events("TopUpRequested").await, 3);
    let id = submit(
        &app,
        &token,
        json!({"action": "send_sms", "iccids": all, "params": {"payload": "hello"}}),
    )
    .await;
    assert_eq!(finished(&app, &token, &id).await["provider_pending"], 3);
    assert_eq!(app.count_events("SmsSendRequested").await, 3);
    let id = submit(&app, &token, json!({"action": "sync", "iccids": all})).await;
    assert_eq!(finished(&app, &token, &id).await["applied"], 3);
    let sync_jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM sync_jobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(sync_jobs, 3);

    // Terminate, then anything else is refused as on the single-SIM routes.
    let id = submit(&app, &token, json!({"action": "terminate", "iccids": [&sims[2]]})).await;
    assert_eq!(finished(&app, &token, &id).await["applied"], 1);
    let id = submit(&app, &token, json!({"action": "activate", "iccids": [&sims[2]]})).await;
    finished(&app, &token, &id).await;
    assert_eq!(outcomes(&app, &token, &id).await[0].2, "SIM_TERMINATED");
    let single = app.post(&format!("/sims/{}/activate", sims[2]), &token);
    crate::common::expect_error(single, StatusCode::GONE, "SIM_TERMINATED").await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn one_idempotency_key_is_one_job(pool: PgPool) {
    let (app, token) = start(pool.clone(), 1000).await;
    let sims = register(&app, &token, 1..=2).await;
    let body = json!({"action": "add_tags", "iccids": &sims, "params": {"tags": ["t"]}});
    let first = app
        .post("/bulk-jobs", &token)
        .header("idempotency-key", "k-1")
        .json(&body);
    let first = first.expect_answer(StatusCode::ACCEPTED).await;
    let again = app
        .post("/bulk-jobs", &token)
        .header("idempotency-key", "k-1")
        .json(&body);
    let again = again.expect_answer(StatusCode::ACCEPTED).await;
    assert_eq!(first.body["id"], again.body["id"]);
    assert_eq!(again.header("idempotent-replayed"), "true");
    assert_eq!(
        again.header("location"),
        format!("/api/v1/bulk-jobs/{}", first.body["id"].as_str().unwrap())
    );
    let other = json!({"action": "add_tags", "iccids": &sims, "params": {"tags": ["u"]}});
    let reused = app
        .post("/bulk-jobs", &token)
        .header("idempotency-key", "k-1")
        .json(&other);
    crate::common::expect_error(reused, StatusCode::UNPROCESSABLE_ENTITY, "IDEMPOTENCY_KEY_REUSED").await;
    finished(&app, &token, first.body["id"].as_str().unwrap()).await;
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM bulk_jobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(jobs, 1);
    assert_eq!(app.count_events("SimTagsChanged").await, 2);
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_worker_stopped_mid_job_applies_nothing_twice(pool: PgPool) {
    let (app, token) = start(pool.clone(), 20).await;
    let sims = register(&app, &token, 1..=40).await;
    let id = submit(&app, &token, json!({"action": "activate", "iccids": &sims})).await;
    eventually(Duration::from_secs(20), "some items to run", || async {
        job(&app, &token, &id).await["done"].as_i64().unwrap() >= 5
    })
    .await;
    app.running.stop().await.unwrap();
    let job_id = Uuid::parse_str(&id).unwrap();
    let (done,): (i32,) = sqlx::query_as("SELECT done FROM bulk_jobs WHERE id = $1")
        .bind(job_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(done < 40, "stopped mid-job ({done} done)");

    // A crash between a command and its record: the item's command was applied, its outcome
    // lost, its lease held by a worker that is gone.
    let lost: i32 = sqlx::query_scalar(
        "UPDATE bulk_job_items SET outcome = NULL, finished_at = NULL, provider_outcome = NULL, \
         lease_owner = gen_random_uuid(), lease_until = now() + interval '1 second', started_at = now() \
         WHERE job_id = $1 AND seq = 1 RETURNING seq",
    )
    .bind(job_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    sqlx::query("UPDATE bulk_jobs SET done = done - 1, applied = applied - 1, provider_pending = provider_pending - 1 WHERE id = $1")
        .bind(job_id)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(lost, 1);

    // A new process on the same database finishes the job.
    let app = start_app(pool.clone(), 1000).await;
    let token = app.admin_token().await;
    let done = finished(&app, &token, &id).await;
    assert_eq!(
        (done["status"].as_str(), done["applied"].as_i64()),
        (Some("done"), Some(40))
    );
    assert_eq!(
        app.count_events("ActivationRequested").await,
        40,
        "one request per SIM, no more"
    );
    let per_sim: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT iccid FROM events WHERE event_type = 'ActivationRequested' GROUP BY iccid HAVING count(*) > 1) twice",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(per_sim, 0);
    let retried: i32 =
        sqlx::query_scalar("SELECT attempts FROM bulk_job_items WHERE job_id = $1 AND seq = 1")
            .bind(job_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        retried, 2,
        "the lost item ran again, answered by its idempotency key"
    );
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn cancel_stops_the_items_not_started(pool: PgPool) {
    let (app, token) = start(pool.clone(), 5).await;
    let sims = register(&app, &token, 1..=30).await;
    let id = submit(
        &app,
        &token,
        json!({"action": "add_tags", "iccids": &sims, "params": {"tags": ["x"]}}),
    )
    .await;
    eventually(Duration::from_secs(20), "an item to run", || async {
        job(&app, &token, &id).await["done"].as_i64().unwrap() >= 1
    })
    .await;
    let cancelled = app
        .post(&format!("/bulk-jobs/{id}/cancel"), &token)
        .expect(StatusCode::OK)
        .await;
    assert_eq!(cancelled["status"], "cancelled");
    let done = finished(&app, &token, &id).await;
    let (ran, stopped) = (
        done["done"].as_i64().unwrap(),
        done["cancelled"].as_i64().unwrap(),
    );
    assert_eq!(ran + stopped, 30);
    assert!(stopped > 0, "{done}");
    assert_eq!(done["status"], "cancelled");
    assert_eq!(
        app.count_events("SimTagsChanged").await,
        ran,
        "only the items that ran changed a SIM"
    );
    let items = outcomes(&app, &token, &id).await;
    assert_eq!(
        items.iter().filter(|i| i.1 == "cancelled").count() as i64,
        stopped
    );
    // Again: the same answer; a finished job cannot be cancelled.
    let again = app
        .post(&format!("/bulk-jobs/{id}/cancel"), &token)
        .expect(StatusCode::OK)
        .await;
    assert_eq!(again["cancelled"], stopped);
    let quick = submit(&app, &token, json!({"action": "sync", "iccids": [&sims[0]]})).await;
    finished(&app, &token, &quick).await;
    let late = app.post(&format!("/bulk-jobs/{quick}/cancel"), &token);
    crate::common::expect_error(late, StatusCode::CONFLICT, "BULK_JOB_FINISHED").await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_dry_run_reports_and_writes_nothing(pool: PgPool) {
    let (app, token) = start(pool.clone(), 1000).await;
    let sims = register(&app, &token, 1..=2).await;
    app.post(&format!("/sims/{}/activate", sims[0]), &token)
        .expect(StatusCode::ACCEPTED)
        .await;
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();
    let body = json!({"action": "activate", "iccids": [&sims[0], &sims[1], iccid(50)], "dry_run": true});
    let id = submit(&app, &token, body).await;
    let done = finished(&app, &token, &id).await;
    assert_eq!(done["dry_run"], true);
    assert_eq!(
        (
            done["would_apply"].as_i64(),
            done["refused"].as_i64(),
            done["applied"].as_i64()
        ),
        (Some(1), Some(2), Some(0))
    );
    let items = outcomes(&app, &token, &id).await;
    assert_eq!(items[0].2, "CHANGE_PENDING");
    assert_eq!(items[1].1, "would_apply");
    assert_eq!(items[2].2, "SIM_NOT_FOUND");
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(after, events, "a dry run writes no event");
    assert_eq!(app.state.store.load::<Sim>(&sims[1]).await.unwrap().version, 1);
}
