//! What a bulk job acts on (a filter frozen at submission, a CSV), its items as pages and as
//! CSV, the CSV import of SIMs with its validation report, and what is refused.

use crate::bulk_jobs::{finished, job, outcomes, register, start, submit};
use crate::common::{expect_error, iccid, Exchange};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;

/// A row of the SIM list as the projectors would have written it.
async fn listed(pool: &PgPool, iccid: &str, tags: &[&str]) {
    sqlx::query(
        "INSERT INTO sims (iccid, imsi, tags, status, registered_at, version, last_position, updated_at) \
         VALUES ($1, '901405100000001', $2, 'inactive', now(), 1, 1, now())",
    )
    .bind(iccid)
    .bind(tags.iter().map(|t| t.to_string()).collect::<Vec<_>>())
    .execute(pool)
    .await
    .unwrap();
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_filter_is_frozen_into_its_sims_at_submission(pool: PgPool) {
    let (app, token) = start(pool.clone(), 2).await;
    let sims = register(&app, &token, 1..=4).await;
    for (n, sim) in sims.iter().enumerate() {
        listed(&pool, sim, if n < 3 { &["fleet-7"] } else { &["other"] }).await;
    }
    let body = json!({"action": "add_tags", "filter": {"tag": "fleet-7", "status": "inactive"}, "params": {"tags": ["seen"]}});
    let id = submit(&app, &token, body).await;
    // A SIM that matches only after the submission is not part of the job.
    listed(&pool, &iccid(40), &["fleet-7"]).await;
    let done = finished(&app, &token, &id).await;
    assert_eq!(
        (done["total"].as_i64(), done["applied"].as_i64()),
        (Some(3), Some(3))
    );
    assert_eq!(done["target"]["kind"], "filter");
    assert_eq!(done["target"]["filter"]["tag"], "fleet-7");
    let frozen: Vec<String> = outcomes(&app, &token, &id)
        .await
        .into_iter()
        .map(|i| i.0)
        .collect();
    assert_eq!(frozen, sims[..3]);

    let bad = app
        .post("/bulk-jobs", &token)
        .json(&json!({"action": "sync", "filter": {"status": "sleeping"}}));
    let error = expect_error(bad, StatusCode::UNPROCESSABLE_ENTITY, "INVALID_FILTER").await;
    assert_eq!(error["details"]["parameter"], "status");
    let nothing = app
        .post("/bulk-jobs", &token)
        .json(&json!({"action": "sync", "filter": {"tag": "nobody"}}));
    expect_error(nothing, StatusCode::UNPROCESSABLE_ENTITY, "EMPTY_TARGET").await;
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_csv_target_and_its_items_as_pages_and_csv(pool: PgPool) {
    let (app, token) = start(pool.clone(), 1000).await;
    let sims = register(&app, &token, 1..=5).await;
    let csv = format!(
        "label,iccid\na,{}\nb,{}\nc,{}\nd,{}\ne,{}\nagain,{}\n",
        sims[0],
        sims[1],
        sims[2],
        sims[3],
        iccid(77),
        sims[0]
    );
    let id = submit(
        &app,
        &token,
        json!({"action": "set_label", "csv": csv, "params": {"label": null}}),
    )
    .await;
    let done = finished(&app, &token, &id).await;
    assert_eq!(done["total"], 5, "a duplicate ICCID counts once");
    assert_eq!(
        (done["applied"].as_i64(), done["refused"].as_i64()),
        (Some(4), Some(1))
    );

    // Pages: by number and by cursor; the counts of an outcome.
    let first = app
        .get(&format!("/bulk-jobs/{id}/items?page_size=2"), &token)
        .expect_answer(StatusCode::OK)
        .await;
    assert_eq!(first.header("x-total-count"), "5");
    let cursor = first.header("x-next-cursor").to_owned();
    let next = app
        .get(
            &format!("/bulk-jobs/{id}/items?page_size=2&after={cursor}"),
            &token,
        )
        .expect(StatusCode::OK)
        .await;
    assert_eq!(next[0]["seq"], 3);
    let page3 = app
        .get(&format!("/bulk-jobs/{id}/items?page_size=2&page=3"), &token)
        .expect(StatusCode::OK)
        .await;
    assert_eq!(page3.as_array().unwrap().len(), 1);
    let refused = app
        .get(&format!("/bulk-jobs/{id}/items?outcome=refused"), &token)
        .expect_answer(StatusCode::OK)
        .await;
    assert_eq!(refused.header("x-total-count"), "1");
    assert_eq!(refused.body[0]["code"], "SIM_NOT_FOUND");

    // The whole list as CSV, by Accept or by format.
    for request in [
        app.get(&format!("/bulk-jobs/{id}/items"), &token)
            .header("accept", "text/csv"),
        app.get(&format!("/bulk-jobs/{id}/items?format=csv"), &token),
    ] {
        let response = request.response().await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv"));
        let text = response.text().await.unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 6, "{text}");
        assert!(lines[0].starts_with("seq,iccid,outcome,code"));
        assert!(lines[5].contains("refused,SIM_NOT_FOUND"), "{text}");
    }

    // The list of jobs, newest first.
    let second = submit(&app, &token, json!({"action": "sync", "iccids": [&sims[4]]})).await;
    let jobs = app.get("/bulk-jobs", &token).expect_answer(StatusCode::OK).await;
    assert_eq!(jobs.header("x-total-count"), "2");
    assert_eq!(jobs.body[0]["id"], second.as_str());
    assert_eq!(jobs.body[1]["id"], id.as_str());
}

fn import_file(rows: usize, bad: &[usize]) -> String {
    let mut file = String::from("iccid,imsi,msisdn,label,tags\n");
    for n in 0..rows {
        let sim = if bad.contains(&n) {
            "not-an-iccid".to_owned()
        } else {
            iccid(1000 + n as u32)
        };
        file.push_str(&format!("{sim},90140510000{n:04},,pump {n},fleet-7;north\n"));
    }
    file
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn an_import_is_checked_whole_then_registered_as_one_job(pool: PgPool) {
    let (app, token) = start(pool.clone(), 1000).await;
    let csv = |body: String| {
        app.post("/sims/import", &token)
            .header("content-type", "text/csv")
            .body(body)
    };

    // Three bad rows of 500: the report names them, nothing is written.
    let error = expect_error(
        csv(import_file(500, &[3, 250, 499])),
        StatusCode::UNPROCESSABLE_ENTITY,
        "IMPORT_INVALID",
    )
    .await;
    let report = &error["details"];
    assert_eq!(
        (report["rows"].as_i64(), report["invalid_rows"].as_i64()),
        (Some(500), Some(3))
    );
    let rows: Vec<i64> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["row"].as_i64().unwrap())
        .collect();
    assert_eq!(rows, [5, 252, 501], "lines of the file, the header being line 1");
    assert_eq!(report["errors"][0]["field"], "iccid");
    let written: (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM bulk_jobs)")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(written, (0, 0));

    // Validate only: the report, no job.
    let checked = csv(import_file(20, &[]))
        .query(&[("validate_only", "true")])
        .expect(StatusCode::OK)
        .await;
    assert_eq!(checked["report"]["valid_rows"], 20);
    assert!(checked["job"].is_null());

    // One SIM exists already: reported, the others registered.
    app.register_sim(&token, &iccid(1000)).await;
    let file = import_file(20, &[]);
    let accepted = csv(file.clone())
        .header("idempotency-key", "import-1")
        .expect_answer(StatusCode::ACCEPTED)
        .await;
    let id = accepted.body["job"]["id"].as_str().unwrap().to_owned();
    assert_eq!(accepted.header("location"), format!("/api/v1/bulk-jobs/{id}"));
    let done = finished(&app, &token, &id).await;
    assert_eq!(
        (done["action"].as_str(), done["status"].as_str()),
        (Some("register"), Some("done"))
    );
    assert_eq!(
        (done["applied"].as_i64(), done["refused"].as_i64()),
        (Some(19), Some(1))
    );
    assert_eq!(outcomes(&app, &token, &id).await[0].2, "SIM_ALREADY_REGISTERED");
    assert_eq!(app.count_events("SimRegistered").await, 20);
    let state = app
        .state
        .store
        .load::<domain::sim::Sim>(&iccid(1005))
        .await
        .unwrap()
        .state;
    assert_eq!(
        (state.label(), state.tags()),
        (Some("pump 5"), &["fleet-7".to_owned(), "north".to_owned()][..])
    );

    // The same key and file: the same job, nothing new.
    let again = csv(file)
        .header("idempotency-key", "import-1")
        .expect_answer(StatusCode::ACCEPTED)
        .await;
    assert_eq!(again.body["job"]["id"], id.as_str());
    assert_eq!(again.header("idempotent-replayed"), "true");
    assert_eq!(job(&app, &token, &id).await["total"], 20);
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn viewers_are_refused_and_bad_requests_are_explained(pool: PgPool) {
    let (app, operator) = start(pool.clone(), 1000).await;
    let viewer = app.token_for_role("viewer").await;
    let sims = register(&app, &operator, 1..=1).await;
    let id = submit(&app, &operator, json!({"action": "sync", "iccids": &sims})).await;
    let job_paths = [
        (Method::POST, "/bulk-jobs".to_owned()),
        (Method::GET, "/bulk-jobs".to_owned()),
        (Method::GET, format!("/bulk-jobs/{id}")),
        (Method::GET, format!("/bulk-jobs/{id}/items")),
        (Method::POST, format!("/bulk-jobs/{id}/cancel")),
        (Method::POST, "/sims/import".to_owned()),
    ];
    for (method, path) in job_paths {
        let request = app
            .request(method, &path, &viewer)
            .json(&json!({"action": "sync", "iccids": &sims}));
        expect_error(request, StatusCode::FORBIDDEN, "FORBIDDEN").await;
    }

    let post = |body: serde_json::Value| app.post("/bulk-jobs", &operator).json(&body);
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    let cases = [
        (post(json!({"action": "sync"})), unprocessable, "INVALID_TARGET"),
        (
            post(json!({"action": "sync", "iccids": &sims, "csv": "x"})),
            unprocessable,
            "INVALID_TARGET",
        ),
        (
            post(json!({"action": "fly", "iccids": &sims})),
            unprocessable,
            "INVALID_BODY",
        ),
        (
            post(json!({"action": "register", "iccids": &sims})),
            unprocessable,
            "INVALID_ACTION",
        ),
        (
            post(json!({"action": "sync", "iccids": []})),
            unprocessable,
            "EMPTY_TARGET",
        ),
        (
            post(json!({"action": "send_sms", "iccids": &sims})),
            unprocessable,
            "INVALID_PARAMS",
        ),
        (
            post(json!({"action": "suspend", "iccids": &sims, "params": {"label": "x"}})),
            unprocessable,
            "INVALID_PARAMS",
        ),
        (
            post(json!({"action": "add_tags", "iccids": &sims, "params": {"tags": []}})),
            unprocessable,
            "INVALID_PARAMS",
        ),
        (
            post(json!({"action": "set_label", "iccids": &sims, "params": {"label": "  "}})),
            unprocessable,
            "INVALID_LABEL",
        ),
        (
            app.post("/bulk-jobs", &operator)
                .header("content-type", "application/json")
                .body("{"),
            StatusCode::BAD_REQUEST,
            "MALFORMED_JSON",
        ),
        (
            app.get("/bulk-jobs/not-a-uuid", &operator),
            StatusCode::BAD_REQUEST,
            "INVALID_PATH",
        ),
        (
            app.get(&format!("/bulk-jobs/{}", uuid::Uuid::now_v7()), &operator),
            StatusCode::NOT_FOUND,
            "BULK_JOB_NOT_FOUND",
        ),
        (
            app.get(&format!("/bulk-jobs/{id}/items?outcome=maybe"), &operator),
            StatusCode::BAD_REQUEST,
            "INVALID_QUERY",
        ),
        (
            app.get("/bulk-jobs?page_size=1000", &operator),
            StatusCode::BAD_REQUEST,
            "INVALID_QUERY",
        ),
        (
            app.post("/sims/import", &operator).json(&json!({})),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            app.post("/sims/import", &operator)
                .header("content-type", "text/csv")
                .body("iccid\n"),
            unprocessable,
            "IMPORT_INVALID",
        ),
    ];
    for (request, status, code) in cases {
        expect_error(request, status, code).await;
    }
    let bad_list = post(json!({"action": "sync", "iccids": [&sims[0], "123", "abc"]}));
    let error = expect_error(bad_list, unprocessable, "INVALID_TARGET").await;
    let rows: Vec<i64> = error["details"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["row"].as_i64().unwrap())
        .collect();
    assert_eq!(rows, [2, 3]);
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM bulk_jobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(jobs, 1, "refused requests submit nothing");
}
