//! Sync jobs queued on the command API, and their progress as the connector records it.

use crate::common::{expect_error, iccid, with_luhn, CommandApi, Exchange};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

async fn job(app: &CommandApi, token: &str, job_id: &str) -> Value {
    app.get(&format!("/sync-jobs/{job_id}"), token)
        .expect(StatusCode::OK)
        .await
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn sync_requests_queue_jobs_whose_progress_can_be_read(pool: PgPool) {
    let app = CommandApi::start(pool.clone()).await;
    let operator = app.token_for_role("operator").await;
    let viewer = app.token_for_role("viewer").await;

    // One SIM, named in its 20-digit form: the job is about the 19-digit ICCID.
    let sync_one = app.post(&format!("/sims/{}/sync", with_luhn(&iccid(7))), &operator);
    let accepted = sync_one.expect_answer(StatusCode::ACCEPTED).await;
    let one = accepted.body["job_id"].as_str().unwrap().to_owned();
    assert_eq!(accepted.header("location"), format!("/api/v1/sync-jobs/{one}"));
    assert_eq!(accepted.body["scope"], iccid(7));
    assert_eq!(accepted.body["status"], "queued");

    let all = app.post("/sims/sync-all", &operator).answer().await.body;
    let all_id = all["job_id"].as_str().unwrap().to_owned();
    assert_eq!(all["scope"], "all");

    // Queued until a connector shard claims it; viewers may read progress.
    let queued = job(&app, &viewer, &all_id).await;
    assert_eq!(queued["status"], "queued");
    assert_eq!(queued["requested_by"], "user:operator-user");

    // Two shards run the sync-all job: running until both finished, failed if one failed.
    let run = |shard: &'static str, status: &'static str, done: i32| {
        let pool = pool.clone();
        let all_id = Uuid::parse_str(&all_id).unwrap();
        async move {
            sqlx::query(
                "INSERT INTO sync_job_runs (job_id, shard, shard_count, status, sims_total, sims_done, events_recorded, finished_at) \
                 VALUES ($1, $2, 2, $3, 100, $4, 7, CASE WHEN $3 = 'running' THEN NULL ELSE now() END) \
                 ON CONFLICT (job_id, shard) DO UPDATE SET status = EXCLUDED.status, sims_done = EXCLUDED.sims_done, \
                 finished_at = EXCLUDED.finished_at",
            )
            .bind(all_id)
            .bind(shard)
            .bind(status)
            .bind(done)
            .execute(&pool)
            .await
            .unwrap();
        }
    };
    run("0/2", "completed", 100).await;
    run("1/2", "running", 40).await;
    let running = job(&app, &viewer, &all_id).await;
    assert_eq!(running["status"], "running");
    assert_eq!(running["sims_total"], 200);
    assert_eq!(running["sims_done"], 140);
    assert_eq!(running["runs"].as_array().unwrap().len(), 2);
    run("1/2", "completed", 100).await;
    let done = job(&app, &viewer, &all_id).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(done["events_recorded"], 14);
    assert!(done["finished_at"].is_string());
    run("1/2", "failed", 50).await;
    assert_eq!(job(&app, &viewer, &all_id).await["status"], "failed");

    // A one-SIM job needs one run.
    sqlx::query("INSERT INTO sync_job_runs (job_id, shard, shard_count, status, finished_at) VALUES ($1, '1/2', 2, 'completed', now())")
        .bind(Uuid::parse_str(&one).unwrap())
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(job(&app, &viewer, &one).await["status"], "completed");
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn sync_jobs_are_listed_newest_first_with_their_progress(pool: PgPool) {
    let app = CommandApi::start(pool.clone()).await;
    let operator = app.token_for_role("operator").await;
    let viewer = app.token_for_role("viewer").await;
    let mut queued = Vec::new();
    for n in 0..3 {
        let answer = app
            .post(&format!("/sims/{}/sync", iccid(n)), &operator)
            .answer()
            .await;
        queued.push(answer.body["job_id"].as_str().unwrap().to_owned());
    }
    let all = app.post("/sims/sync-all", &operator).answer().await.body;
    queued.push(all["job_id"].as_str().unwrap().to_owned());
    sqlx::query(
        "INSERT INTO sync_job_runs (job_id, shard, shard_count, status, sims_total, sims_done) VALUES ($1, '0/1', 1, 'running', 10, 4)",
    )
    .bind(Uuid::parse_str(&queued[3]).unwrap())
    .execute(&pool)
    .await
    .unwrap();

    let page = app
        .get("/sync-jobs?page_size=3", &viewer)
        .expect_answer(StatusCode::OK)
        .await;
    assert_eq!(page.header("x-total-count"), "4");
    let ids: Vec<&str> = page
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [&queued[3], &queued[2], &queued[1]]);
    assert_eq!(page.body[0]["status"], "running");
    assert_eq!(page.body[0]["sims_done"], 4);
    assert_eq!(page.body[0]["runs"].as_array().unwrap().len(), 1);
    assert_eq!(page.body[1]["status"], "queued");
    assert_eq!(page.body[1]["scope"], iccid(2));

    let rest: Value = app
        .get("/sync-jobs?page=2&page_size=3", &viewer)
        .expect(StatusCode::OK)
        .await;
    assert_eq!(rest.as_array().unwrap().len(), 1);
    assert_eq!(rest[0]["job_id"], queued[0].as_str());
    expect_error(
        app.get("/sync-jobs?page_size=101", &viewer),
        StatusCode::BAD_REQUEST,
        "INVALID_QUERY",
    )
    .await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn sync_requests_are_checked(pool: PgPool) {
    let app = CommandApi::start(pool.clone()).await;
    let operator = app.token_for_role("operator").await;
    let viewer = app.token_for_role("viewer").await;

    let cases = [
        (
            Method::POST,
            "/sims/sync-all".to_owned(),
            &viewer,
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
        ),
        (
            Method::POST,
            format!("/sims/{}/sync", iccid(1)),
            &viewer,
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
        ),
        (
            Method::POST,
            "/sims/12345/sync".to_owned(),
            &operator,
            StatusCode::UNPROCESSABLE_ENTITY,
            "INVALID_ICCID",
        ),
        (
            Method::GET,
            format!("/sync-jobs/{}", Uuid::now_v7()),
            &viewer,
            StatusCode::NOT_FOUND,
            "SYNC_JOB_NOT_FOUND",
        ),
    ];
    for (method, path, token, status, code) in cases {
        expect_error(app.request(method, &path, token), status, code).await;
    }
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM sync_jobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(jobs, 0, "refused requests queue nothing");
}
