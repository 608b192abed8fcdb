//! `GET /sims/export`: the list's rows as CSV, streamed.

use domain::SimStatus;
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;

use crate::common::*;

/// The records of an RFC 4180 text (quoted fields may hold commas, quotes and line breaks).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let (mut records, mut record, mut field) = (Vec::new(), Vec::new(), String::new());
    let (mut quoted, mut chars) = (false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(
        field.is_empty() && record.is_empty(),
        "the text ends with a line break"
    );
    records
}

async fn export(app: &QueryApi, query: &str) -> Vec<Vec<String>> {
    let response = app.get(&format!("/sims/export?{query}")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{query}");
    assert_eq!(response.headers()["content-type"], "text/csv; charset=utf-8");
    assert!(response.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
    parse_csv(&response.text().await.unwrap())
}

/// Every page of the list for `query`, as its rows.
async fn listed(app: &QueryApi, query: &str) -> Vec<Value> {
    let mut rows = Vec::new();
    for page in 1.. {
        let body = app
            .get_json(&format!("/sims?{query}&page={page}&page_size=500"))
            .await;
        let page_rows = body.as_array().unwrap().clone();
        if page_rows.is_empty() {
            return rows;
        }
        rows.extend(page_rows);
    }
    unreachable!()
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn export_rows_are_the_lists_rows_with_awkward_labels_quoted(pool: PgPool) {
    let app = QueryApi::start(pool.clone()).await;
    let labels = [
        "pump, north",
        "the \"big\" one",
        "two\nlines",
        "crlf\r\nend",
        "plain",
    ];
    for n in 1..=25u32 {
        let mut sim = sim_row(n);
        sim.status = [SimStatus::Inactive, SimStatus::Active, SimStatus::Suspended][(n % 3) as usize];
        sim.label = Some(format!("{} {n}", labels[n as usize % labels.len()]));
        sim.tags = if n % 2 == 0 {
            vec!["even".into(), "site:b".into()]
        } else {
            vec![]
        };
        (sim.data_total, sim.data_remaining) = (Some(1000), Some(i64::from(n) * 40));
        insert_sim(&pool, &sim).await;
    }
    for query in [
        "",
        "status=active",
        "tag=even&sort=-label",
        "quota_state=warning&quota=data",
        "label=%22big%22",
    ] {
        let records = export(&app, query).await;
        assert_eq!(
            records[0][..5],
            ["iccid", "imsi", "msisdn", "label", "tags"],
            "{query}"
        );
        let column = |name: &str| records[0].iter().position(|c| c == name).unwrap();
        let rows = listed(&app, query).await;
        assert!(!rows.is_empty(), "{query}");
        assert_eq!(records.len() - 1, rows.len(), "{query}");
        for (record, row) in records[1..].iter().zip(&rows) {
            assert_eq!(record.len(), records[0].len());
            assert_eq!(record[column("iccid")], row["iccid"].as_str().unwrap(), "{query}");
            assert_eq!(record[column("label")], row["label"].as_str().unwrap(), "{query}");
            assert_eq!(record[column("status")], row["status"].as_str().unwrap());
            let tags: Vec<&str> = row["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap())
                .collect();
            assert_eq!(record[column("tags")], tags.join(";"));
            assert_eq!(
                record[column("data_remaining")],
                row["data_remaining"].to_string()
            );
            assert_eq!(record[column("msisdn")], "", "null: empty");
        }
    }
    let warned = export(&app, "quota_state=warning&quota=data").await;
    assert!(
        warned[1..].iter().all(|r| r[18] == "warning"),
        "data_quota_state column"
    );
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_large_export_streams_every_row(pool: PgPool) {
    let app = QueryApi::start(pool.clone()).await;
    // 12,345 SIMs: more than a dozen cursor batches, the last one short.
    sqlx::query(
        "INSERT INTO sims (iccid, imsi, label, status, registered_at, version, last_position, updated_at) \
         SELECT '8988303' || lpad(g::text, 12, '0'), '90140' || lpad(g::text, 10, '0'), 'sim, ' || g, \
                'active', now(), 1, g, now() FROM generate_series(1, 12345) AS g",
    )
    .execute(&pool)
    .await
    .unwrap();
    let records = export(&app, "sort=-iccid").await;
    assert_eq!(records.len(), 12_346);
    assert_eq!(records[1][0], "8988303000000012345");
    assert_eq!(records[12_345][0], "8988303000000000001");
    assert_eq!(records[12_345][3], "sim, 1");
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn exports_refuse_what_the_list_refuses(pool: PgPool) {
    let app = QueryApi::start(pool).await;
    expect_invalid_queries(
        &app,
        [
            "/sims/export?status=sleeping",
            "/sims/export?quota_state=full",
            "/sims/export?quota=data",
            "/sims/export?sort=colour",
            "/sims/export?iccid=12ab",
            "/sims/export?iccid=89883030000000000010",
            "/sims/export?page=2",
            "/sims/export?colour=red",
        ],
    )
    .await;
    // The same errors as the list's.
    for query in ["status=sleeping", "iccid=12ab"] {
        let list = error_body(
            app.get(&format!("/sims?{query}")).send().await.unwrap(),
            StatusCode::BAD_REQUEST,
            "INVALID_QUERY",
        )
        .await;
        let export = error_body(
            app.get(&format!("/sims/export?{query}")).send().await.unwrap(),
            StatusCode::BAD_REQUEST,
            "INVALID_QUERY",
        )
        .await;
        assert!(list["details"]["parameter"].is_string(), "{list}");
        assert_eq!(list["details"], export["details"], "{query}");
    }
    let anonymous = reqwest::get(app.url("/api/v1/sims/export")).await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

/// Sessions of the test's database holding the export's cursor open in a transaction, and
/// that have run no statement for `quiet_ms`.
async fn open_export_cursors(pool: &PgPool, quiet_ms: i64) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND pid <> pg_backend_pid() AND state = 'idle in transaction' AND query LIKE '%sims_export%' \
         AND state_change < now() - make_interval(secs => $1::float8 / 1000)",
    )
    .bind(quiet_ms)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "eventstore::MIGRATOR")]
async fn a_filtered_export_of_100000_sims_streams_as_the_client_reads(pool: PgPool) {
    let app = QueryApi::start(pool.clone()).await;
    // 110,000 SIMs, of which the filter selects 100,000 (every eleventh is suspended).
    sqlx::query(
        "INSERT INTO sims (iccid, imsi, label, tags, status, registered_at, version, last_position, updated_at) \
         SELECT '8988303' || lpad(g::text, 12, '0'), '90140' || lpad(g::text, 10, '0'), 'meter ' || g, \
                ARRAY['fleet-7'], CASE WHEN g % 11 = 0 THEN 'suspended' ELSE 'active' END, now(), 1, g, now() \
         FROM generate_series(1, 110000) AS g",
    )
    .execute(&pool)
    .await
    .unwrap();

    let mut response = app
        .get("/sims/export?status=active&tag=fleet-7&sort=iccid")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body: Vec<u8> = Vec::new();
    while body.len() < 64 * 1024 {
        body.extend_from_slice(&response.chunk().await.unwrap().expect("more than 64 KiB"));
    }
    // The client stops reading. An export that gathered its rows would keep fetching (a new
    // statement every batch) until it had all of them, then end its transaction; a streamed
    // one waits, its cursor open and no statement running, for the socket to drain: what it
    // holds is a batch and the socket's buffers, not the 100,000 rows.
    // (Once the socket's buffers are full: within seconds on a loaded machine.)
    testkit::eventually(
        std::time::Duration::from_secs(15),
        "the export to wait for the client, its cursor open, fetching nothing for 1.5 s",
        || async { open_export_cursors(&pool, 1500).await == 1 },
    )
    .await;
    while let Some(chunk) = response.chunk().await.unwrap() {
        body.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(body).unwrap();
    let records = parse_csv(&text);
    assert_eq!(records.len(), 100_001, "the header and every selected SIM");
    assert_eq!(records[1][0], "8988303000000000001");
    assert_eq!(records[100_000][0], "8988303000000109999");
    assert!(records[1..].iter().all(|r| r[5] == "active"));
    testkit::eventually(
        std::time::Duration::from_secs(5),
        "the export's transaction to end",
        || async { open_export_cursors(&pool, 0).await == 0 },
    )
    .await;
}
